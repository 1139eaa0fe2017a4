/*
 * ceiling.c — the "C ceiling" for Tally's write path.
 *
 * Performs, per ledger entry, the same LMDB reads and writes the Swift engine
 * does, with the same durability (default LMDB flags: one write transaction =
 * one durable commit per batch), and nothing else. Its throughput is the
 * practical hardware/LMDB limit the Swift engine is measured against.
 *
 * Usage: ceiling --dir DIR --accounts N --entries M --batch B
 * Prints one JSON line on stdout. Exit codes: 1 usage/system error,
 * 2 LMDB error (or a ledger invariant violated).
 *
 * Build: gcc -std=c11 -O2 -Wall -Wextra $(pkg-config --cflags lmdb libcrypto) \
 *            ceiling.c -o ceiling $(pkg-config --libs lmdb libcrypto)
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include <lmdb.h>
#include <openssl/sha.h>

/* __int128 is a GCC/Clang extension; __extension__ keeps -pedantic quiet. */
__extension__ typedef __int128 i128;
__extension__ typedef unsigned __int128 u128;

enum {
    NAME_MAX_LEN = 12,    /* "acct-%07d" */
    ID_LEN = 14,          /* "e-%012d" */
    ACCOUNT_REC_LEN = 64, /* u64 BE number + 56 zero bytes */
    BAL_LEN = 64,         /* 4 x 16-byte BE balances */
    BAL_REC_LEN = 72,     /* balances + u64 BE last seq */
    HEAD_LEN = 48,        /* chain(32) + seq(8) + ts(8) */
    /* Event: 1+1+8+8 + 2+14 + 2 + 2*(2+12+1+16) + 5 = 103 bytes. */
    EVENT_MAX = 128,
};

static const uint64_t MAX_ACCOUNTS = 9999999ULL;    /* fits "%07d" */
static const uint64_t MAX_ENTRIES = 999999999999ULL; /* fits "%012d" */
static const int64_t TS_START = 1700000000000000000LL;

/* ---------- error handling ---------- */

/* Every LMDB call goes through this: a benchmark that silently ignores a
 * failed put would measure the wrong thing. */
static void check(int rc, const char *what) {
    if (rc != MDB_SUCCESS) {
        fprintf(stderr, "ceiling: %s: %s (%d)\n", what, mdb_strerror(rc), rc);
        exit(2);
    }
}

static void die(const char *msg) {
    fprintf(stderr, "ceiling: %s\n", msg);
    exit(1);
}

/* ---------- big-endian codecs ---------- */

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--) { p[i] = (uint8_t)v; v >>= 8; }
}

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

/* 16-byte big-endian two's complement, as the Swift engine stores Int128. */
static void put_i128(uint8_t *p, i128 v) {
    u128 u = (u128)v;
    for (int i = 15; i >= 0; i--) { p[i] = (uint8_t)u; u >>= 8; }
}

static i128 get_i128(const uint8_t *p) {
    u128 u = 0;
    for (int i = 0; i < 16; i++) u = (u << 8) | p[i];
    return (i128)u; /* GCC defines this conversion as modulo 2^128 */
}

/* ---------- per-batch account cache ---------- */

/* Balances of one account, loaded on first touch in a batch and written back
 * once at the end of the batch (that is what batching buys: one balances put
 * per touched account instead of one per leg). */
typedef struct {
    uint64_t number;
    uint64_t last_seq;
    uint32_t slot; /* its slot in the hash table, so reset is O(touched) */
    i128 bal[4];   /* posted_debits, posted_credits, pending_debits, pending_credits */
} Account;

/* Open addressing with linear probing, keyed by account number (never 0).
 * Capacity is a power of two >= 2x the most accounts a batch can touch, so
 * the load factor stays <= 0.5 and probes are short and always terminate. */
typedef struct {
    uint32_t *slots; /* 0 = empty, else index+1 into accts */
    uint32_t mask;
    unsigned shift;
    Account *accts;
    uint32_t count;
    uint32_t cap_accts;
} Cache;

static void cache_init(Cache *c, uint64_t max_touched) {
    uint64_t cap = 16;
    unsigned bits = 4;
    while (cap < 2 * max_touched) { cap <<= 1; bits++; }
    c->slots = calloc(cap, sizeof *c->slots);
    c->accts = calloc(max_touched, sizeof *c->accts);
    if (!c->slots || !c->accts) die("out of memory");
    c->mask = (uint32_t)(cap - 1);
    c->shift = 64 - bits;
    c->count = 0;
    c->cap_accts = (uint32_t)max_touched;
}

/* Forget the batch: clear only the slots we used (bounded by count). */
static void cache_reset(Cache *c) {
    for (uint32_t i = 0; i < c->count; i++) c->slots[c->accts[i].slot] = 0;
    c->count = 0;
}

/* Returns the cached account, or NULL with *slot_out set to the empty slot
 * where it belongs. Fibonacci hashing spreads sequential numbers. */
static Account *cache_find(Cache *c, uint64_t number, uint32_t *slot_out) {
    uint32_t s = (uint32_t)((number * 0x9E3779B97F4A7C15ULL) >> c->shift);
    for (uint32_t probes = 0; probes <= c->mask; probes++) {
        uint32_t v = c->slots[s];
        if (v == 0) { *slot_out = s; return NULL; }
        if (c->accts[v - 1].number == number) return &c->accts[v - 1];
        s = (s + 1) & c->mask;
    }
    die("account cache full"); /* unreachable: load factor <= 0.5 */
    return NULL;
}

/* ---------- LMDB handles ---------- */

typedef struct {
    MDB_env *env;
    MDB_dbi meta, log, hashes, ids, accounts, balances, history;
} Store;

/* Fixed-width zero-padded decimal; callers guarantee v < 10^width (checked
 * on the command line), so nothing is ever truncated. Cheaper than snprintf,
 * which would otherwise be a visible cost in the hot loop. */
static void put_dec(char *p, uint64_t v, int width) {
    for (int i = width - 1; i >= 0; i--) { p[i] = (char)('0' + v % 10); v /= 10; }
}

/* "acct-%07llu" */
static void format_name(char *buf, uint64_t number) {
    memcpy(buf, "acct-", 5);
    put_dec(buf + 5, number, 7);
    buf[NAME_MAX_LEN] = '\0';
}

/* Resolve an account for this batch: cache hit, or name -> number via
 * `accounts` and number -> balances via `balances` (absent = all zero). */
static Account *touch(Store *st, MDB_txn *txn, Cache *c, uint64_t number, const char *name) {
    uint32_t slot;
    Account *a = cache_find(c, number, &slot);
    if (a) return a;

    MDB_val k = {NAME_MAX_LEN, (void *)name}, v;
    check(mdb_get(txn, st->accounts, &k, &v), "get accounts");
    if (v.mv_size != ACCOUNT_REC_LEN) die("bad account record size");
    uint64_t stored = get_u64(v.mv_data);
    if (stored != number) die("account number mismatch");

    if (c->count >= c->cap_accts) die("too many accounts touched in batch");
    a = &c->accts[c->count];
    memset(a, 0, sizeof *a);
    a->number = stored;
    a->slot = slot;

    uint8_t nk[8];
    put_u64(nk, stored);
    MDB_val bk = {8, nk}, bv;
    int rc = mdb_get(txn, st->balances, &bk, &bv);
    if (rc == MDB_SUCCESS) {
        if (bv.mv_size != BAL_REC_LEN) die("bad balances record size");
        const uint8_t *p = bv.mv_data;
        for (int j = 0; j < 4; j++) a->bal[j] = get_i128(p + 16 * j);
        a->last_seq = get_u64(p + BAL_LEN);
    } else if (rc != MDB_NOTFOUND) {
        check(rc, "get balances");
    }

    c->slots[slot] = c->count + 1;
    c->count++;
    return a;
}

/* ---------- setup ---------- */

/* DIR must be absent (we create it) or an empty directory, so a run never
 * measures appends onto an old ledger. */
static void prepare_dir(const char *dir) {
    if (mkdir(dir, 0755) == 0) return;
    if (errno != EEXIST) { perror("ceiling: mkdir"); exit(1); }
    DIR *d = opendir(dir);
    if (!d) { perror("ceiling: opendir"); exit(1); }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            closedir(d);
            die("--dir exists and is not empty");
        }
    }
    closedir(d);
}

static MDB_dbi open_db(MDB_txn *txn, const char *name) {
    MDB_dbi dbi;
    check(mdb_dbi_open(txn, name, MDB_CREATE, &dbi), name);
    return dbi;
}

static uint64_t parse_u64(const char *s, const char *flag) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || end == s || s[0] == '-') {
        fprintf(stderr, "ceiling: bad value for %s: %s\n", flag, s);
        exit(1);
    }
    return v;
}

static double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void) {
    fprintf(stderr, "usage: ceiling --dir DIR --accounts N --entries M --batch B\n");
    exit(1);
}

int main(int argc, char **argv) {
    const char *dir = NULL;
    uint64_t n = 0, m = 0, b = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        if (!strcmp(argv[i], "--dir")) dir = argv[++i];
        else if (!strcmp(argv[i], "--accounts")) n = parse_u64(argv[++i], "--accounts");
        else if (!strcmp(argv[i], "--entries")) m = parse_u64(argv[++i], "--entries");
        else if (!strcmp(argv[i], "--batch")) b = parse_u64(argv[++i], "--batch");
        else usage();
    }
    if (!dir || n < 2 || m < 1 || b < 1) usage();
    if (n > MAX_ACCOUNTS) die("--accounts must be <= 9999999");
    if (m > MAX_ENTRIES) die("--entries must be <= 999999999999");
    const uint64_t b_req = b; /* echoed as given, like the Swift tool */
    if (b > m) b = m;         /* a batch never exceeds the run */

    /* ---- Phase 1 (untimed): environment, DBs, N accounts. ---- */
    prepare_dir(dir);
    Store st;
    check(mdb_env_create(&st.env), "env_create");
    check(mdb_env_set_maxdbs(st.env, 16), "set_maxdbs");
    check(mdb_env_set_mapsize(st.env, (size_t)16 << 30), "set_mapsize");
    /* Default sync behaviour on purpose: no NOSYNC/WRITEMAP/MAPASYNC, so each
     * commit is as durable as the Swift engine's. */
    check(mdb_env_open(st.env, dir, MDB_NOTLS, 0644), "env_open");

    MDB_txn *txn;
    check(mdb_txn_begin(st.env, NULL, 0, &txn), "txn_begin setup");
    st.meta = open_db(txn, "meta");
    st.log = open_db(txn, "log");
    st.hashes = open_db(txn, "hashes");
    st.ids = open_db(txn, "ids");
    st.accounts = open_db(txn, "accounts");
    st.balances = open_db(txn, "balances");
    st.history = open_db(txn, "history");
    {
        char name[NAME_MAX_LEN + 1];
        uint8_t rec[ACCOUNT_REC_LEN];
        memset(rec, 0, sizeof rec);
        for (uint64_t a = 1; a <= n; a++) {
            format_name(name, a);
            put_u64(rec, a);
            MDB_val k = {NAME_MAX_LEN, name}, v = {sizeof rec, rec};
            /* Zero-padded names arrive sorted, so APPEND is valid (setup only). */
            check(mdb_put(txn, st.accounts, &k, &v, MDB_APPEND), "put accounts");
        }
    }
    check(mdb_txn_commit(txn), "commit setup");

    /* A batch touches at most 2 accounts per entry, and never more than N. */
    Cache cache;
    cache_init(&cache, (2 * b < n) ? 2 * b : n);

    /* ---- Phase 2 (timed): M entries, B per durable commit. ---- */
    uint8_t chain[32];
    memset(chain, 0, sizeof chain); /* genesis: 32 zero bytes */
    int64_t ts = TS_START - 1;
    uint64_t seq = 0;

    double t0 = now_sec();
    while (seq < m) {
        uint64_t batch_end = (m - seq < b) ? m : seq + b;
        check(mdb_txn_begin(st.env, NULL, 0, &txn), "txn_begin");

        while (seq < batch_end) {
            seq++;
            ts++; /* strictly increasing nanosecond timestamps */
            const uint64_t i = seq;

            /* Deterministic pseudo-random pair of distinct accounts. */
            uint64_t nums[2];
            nums[0] = ((i * 7919ULL) % n) + 1;
            nums[1] = ((i * 104729ULL + 12345ULL) % n) + 1;
            if (nums[1] == nums[0]) nums[1] = (nums[0] % n) + 1;
            const i128 amount = (i128)(1 + (i % 1000));

            /* a. Idempotency probe: the id must be new. */
            char id[ID_LEN + 1];
            memcpy(id, "e-", 2);
            put_dec(id + 2, i, 12); /* "e-%012llu" */
            id[ID_LEN] = '\0';
            MDB_val idk = {ID_LEN, id}, tmp;
            int rc = mdb_get(txn, st.ids, &idk, &tmp);
            if (rc == MDB_SUCCESS) die("duplicate entry id");
            if (rc != MDB_NOTFOUND) check(rc, "get ids");

            /* b. Resolve accounts and apply the legs (0 = debit, 1 = credit). */
            char names[2][NAME_MAX_LEN + 1];
            Account *acc[2];
            for (int l = 0; l < 2; l++) {
                format_name(names[l], nums[l]);
                acc[l] = touch(&st, txn, &cache, nums[l], names[l]);
                i128 *slot = &acc[l]->bal[l]; /* posted_debits or posted_credits */
                if (__builtin_add_overflow(*slot, amount, slot)) {
                    fprintf(stderr, "ceiling: balance overflow\n");
                    exit(2);
                }
                acc[l]->last_seq = i;
            }

            /* c. Event bytes. buf[0] is the 0x00 leaf-domain prefix, so the
             * leaf hash needs no copy; the event itself starts at buf+1. */
            uint8_t buf[1 + EVENT_MAX];
            uint8_t *ev = buf + 1, *p = ev;
            buf[0] = 0x00;
            *p++ = 1; /* version */
            *p++ = 5; /* type: transfer */
            put_u64(p, i); p += 8;
            put_u64(p, (uint64_t)ts); p += 8;
            put_u16(p, ID_LEN); p += 2;
            memcpy(p, id, ID_LEN); p += ID_LEN;
            put_u16(p, 2); p += 2;
            for (int l = 0; l < 2; l++) {
                put_u16(p, NAME_MAX_LEN); p += 2;
                memcpy(p, names[l], NAME_MAX_LEN); p += NAME_MAX_LEN;
                *p++ = (uint8_t)l; /* side */
                put_i128(p, amount); p += 16;
            }
            memset(p, 0, 5); p += 5; /* no ref, no value date, no reversal, u16 0 metadata */
            const size_t ev_len = (size_t)(p - ev);

            /* d. leaf = H(0x00 || event); chain = H(prev_chain || leaf). */
            uint8_t hrec[64]; /* leaf || chain, as stored in `hashes` */
            if (!SHA256(buf, 1 + ev_len, hrec)) die("SHA256 failed");
            uint8_t link[64];
            memcpy(link, chain, 32);
            memcpy(link + 32, hrec, 32);
            if (!SHA256(link, 64, chain)) die("SHA256 failed");
            memcpy(hrec + 32, chain, 32);

            /* e. Log, hashes (append-only by seq), id index. */
            uint8_t seqk[8];
            put_u64(seqk, i);
            MDB_val sk = {8, seqk};
            MDB_val evv = {ev_len, ev};
            check(mdb_put(txn, st.log, &sk, &evv, MDB_APPEND), "put log");
            MDB_val hv = {64, hrec};
            check(mdb_put(txn, st.hashes, &sk, &hv, MDB_APPEND), "put hashes");
            uint8_t idrec[9];
            memcpy(idrec, seqk, 8);
            idrec[8] = 5; /* kind */
            MDB_val idv = {9, idrec};
            check(mdb_put(txn, st.ids, &idk, &idv, 0), "put ids");

            /* f. Per-leg balance history: (number, seq) -> balances after. */
            for (int l = 0; l < 2; l++) {
                uint8_t hk[16], hb[BAL_LEN];
                put_u64(hk, acc[l]->number);
                memcpy(hk + 8, seqk, 8);
                for (int j = 0; j < 4; j++) put_i128(hb + 16 * j, acc[l]->bal[j]);
                MDB_val hkv = {16, hk}, hbv = {BAL_LEN, hb};
                check(mdb_put(txn, st.history, &hkv, &hbv, 0), "put history");
            }
        }

        /* End of batch: write back each touched account once, then the head. */
        for (uint32_t k = 0; k < cache.count; k++) {
            const Account *a = &cache.accts[k];
            uint8_t nk[8], rec[BAL_REC_LEN];
            put_u64(nk, a->number);
            for (int j = 0; j < 4; j++) put_i128(rec + 16 * j, a->bal[j]);
            put_u64(rec + BAL_LEN, a->last_seq);
            MDB_val bk = {8, nk}, bv = {BAL_REC_LEN, rec};
            check(mdb_put(txn, st.balances, &bk, &bv, 0), "put balances");
        }
        uint8_t head[HEAD_LEN];
        memcpy(head, chain, 32);
        put_u64(head + 32, seq);
        put_u64(head + 40, (uint64_t)ts);
        MDB_val hk = {4, (void *)"head"}, hv = {HEAD_LEN, head};
        check(mdb_put(txn, st.meta, &hk, &hv, 0), "put meta");

        /* The durable commit: LMDB fdatasyncs the data pages, then writes the
         * meta page synchronously. This is what a batch pays for. */
        check(mdb_txn_commit(txn), "commit");
        cache_reset(&cache);
    }
    double secs = now_sec() - t0;

    mdb_env_close(st.env);
    free(cache.slots);
    free(cache.accts);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rate = secs > 0 ? (double)m / secs : 0.0;
    printf("{\"engine\":\"c-ceiling\",\"accounts\":%llu,\"entries\":%llu,\"batch\":%llu,"
           "\"seconds\":%.3f,\"entries_per_sec\":%llu,\"peak_rss_kb\":%ld}\n",
           (unsigned long long)n, (unsigned long long)m, (unsigned long long)b_req, secs,
           (unsigned long long)(rate + 0.5), ru.ru_maxrss);
    return 0;
}
