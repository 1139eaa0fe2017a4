/*
 * diskprobe: append + fdatasync throughput of the file system holding DIR.
 *
 *   cc -O2 -o diskprobe diskprobe.c
 *   diskprobe [-s SECONDS] [-n MAX_APPENDS] [-c PREALLOC_BYTES] [-b MAX_BYTES] [-m MODES]
 *             DIR SIZE...
 *
 * For each mode and each SIZE (bytes; suffixes k/K = KiB, m/M = MiB), writes SIZE bytes with
 * one pwrite at the next offset, then calls fdatasync once, and repeats until SECONDS have
 * passed or MAX_APPENDS appends are done, whichever comes first. That is one journal append
 * and its commit: the number that bounds a write-ahead journal that syncs once per record
 * (or once per group of records SIZE bytes long).
 *
 * Modes (-m, comma separated; default prealloc,fallocate,append):
 *   prealloc   the file is first filled with zeros (PREALLOC_BYTES, at most what the run can
 *              write) and fdatasync'd, untimed; appends then overwrite it sequentially from
 *              offset 0, wrapping to 0 at its end. No block allocation or size change in the
 *              timed loop, so fdatasync writes data only (the "wraps" column counts returns
 *              to offset 0).
 *   fallocate  a fresh file reserved with fallocate(2) (MAX_BYTES, at most what the run can
 *              write); appends write into it sequentially and stop at its end. On ext4/xfs
 *              the reserved extents are "unwritten", so each sync also commits the extent
 *              conversion to the file system journal.
 *   append     a fresh empty file that grows with every append (size change + allocation
 *              on every sync); stops after MAX_BYTES.
 *   dsync      (not in the default) as prealloc, but the file is reopened with O_DSYNC and
 *              each pwrite returns once durable: no fdatasync call.
 *   direct     (not in the default) as dsync, plus O_DIRECT (no page cache); sizes must be
 *              whole 4 KiB blocks (others are skipped with a note).
 *   directsync (not in the default) O_DIRECT without O_DSYNC, then fdatasync per append
 *              (the write reaches the device, the sync flushes its cache); whole blocks.
 *
 * Output (stdout): '#' comment lines, then one tab-separated line per mode and size:
 *   mode size_bytes appends seconds appends_per_s MB_per_s entries256_per_s
 *   p50_us p99_us max_us file_bytes wraps
 * MB is 10^6 bytes; entries256_per_s = bytes per second / 256 (the rate in 256-byte
 * entries); latencies are per append (pwrite + fdatasync, or the O_DSYNC pwrite). The probe files are
 * DIR/diskprobe-<pid>.<mode>.<size> and are removed afterwards.
 *
 * Exit status: 0 ok, 2 usage, 1 I/O error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

static double seconds_max = 4.0;
static long appends_max = 200000;
static long long prealloc_bytes = 256LL << 20;
static long long bytes_max = 1LL << 30;
static const char *dir;
static char path[4096];

static void die(const char *what) {
  fprintf(stderr, "diskprobe: %s: %s\n", what, strerror(errno));
  if (path[0]) unlink(path);
  exit(1);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void pwrite_all(int fd, const char *buf, size_t len, off_t off) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pwrite(fd, buf + done, len - done, off + (off_t)done);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("pwrite");
    }
    done += (size_t)n;
  }
}

static long long parse_size(const char *s) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || v <= 0) return -1;
  if (*end == 'k' || *end == 'K') { v <<= 10; end++; }
  else if (*end == 'm' || *end == 'M') { v <<= 20; end++; }
  else if (*end == 'g' || *end == 'G') { v <<= 30; end++; }
  return *end ? -1 : v;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static const char *fs_name(long type) {
  switch ((unsigned long)type) {
  case 0xEF53: return "ext2/3/4";
  case 0x58465342: return "xfs";
  case 0x9123683E: return "btrfs";
  case 0x01021994: return "tmpfs";
  case 0x794C7630: return "overlayfs";
  case 0x2FC12FC1: return "zfs";
  case 0xF2F52010: return "f2fs";
  default: return "other";
  }
}

enum mode { PREALLOC, FALLOCATE, APPEND, DSYNC, DIRECT, DIRECTSYNC };
#define MODES 6
static const char *mode_names[] = {"prealloc", "fallocate", "append", "dsync", "direct",
                                   "directsync"};

static void run(enum mode mode, long long size, char *buf, uint64_t *lat) {
  snprintf(path, sizeof path, "%s/diskprobe-%d.%s.%lld", dir, (int)getpid(), mode_names[mode],
           size);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) die("open");

  /* The largest file this run can need; the prealloc and fallocate files are no larger. */
  long long need = size * (long long)appends_max;
  long long file_bytes = 0, limit = 0; /* limit: bytes before wrap (prealloc) or stop */
  if ((mode == DIRECT || mode == DIRECTSYNC) && size % 4096 != 0) {
    printf("# direct needs sizes in whole 4 KiB blocks; skipped for %lld\n", size);
    close(fd);
    unlink(path);
    path[0] = 0;
    return;
  }
  int prefilled = mode == PREALLOC || mode == DSYNC || mode == DIRECT || mode == DIRECTSYNC;
  if (prefilled) {
    long long cap = prealloc_bytes < need ? prealloc_bytes : need;
    file_bytes = cap / size * size;
    if (file_bytes < size) file_bytes = size;
    static char zeros[1 << 20];
    for (long long off = 0; off < file_bytes; off += (long long)sizeof zeros) {
      long long n = file_bytes - off < (long long)sizeof zeros ? file_bytes - off
                                                               : (long long)sizeof zeros;
      pwrite_all(fd, zeros, (size_t)n, (off_t)off);
    }
    if (fdatasync(fd) != 0) die("fdatasync (prefill)");
    limit = file_bytes;
  } else if (mode == FALLOCATE) {
    long long cap = bytes_max < need ? bytes_max : need;
    file_bytes = cap / size * size;
    if (file_bytes < size) file_bytes = size;
    int rc;
    while ((rc = fallocate(fd, 0, 0, (off_t)file_bytes)) != 0 && errno == EINTR) {}
    if (rc != 0) {
      if (errno == EOPNOTSUPP) {
        printf("# fallocate not supported here; mode fallocate skipped for %lld\n", size);
        close(fd);
        unlink(path);
        path[0] = 0;
        return;
      }
      die("fallocate");
    }
    if (fsync(fd) != 0) die("fsync (fallocate)");
    limit = file_bytes;
  } else {
    limit = bytes_max / size * size;
    if (limit < size) limit = size;
  }
  /* Make the new directory entry durable too, so the first timed sync does not pay for it. */
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) { fsync(dfd); close(dfd); }
  /* dsync and direct: the prefilled file reopened so that each pwrite returns once durable
     (O_DSYNC; direct adds O_DIRECT, bypassing the page cache), with no fdatasync call. */
  int sync_each = 1;
  if (mode == DSYNC || mode == DIRECT) {
    close(fd);
    fd = open(path, O_WRONLY | O_CLOEXEC | O_DSYNC | (mode == DIRECT ? O_DIRECT : 0));
    if (fd < 0) die("open (O_DSYNC)");
    sync_each = 0;
  } else if (mode == DIRECTSYNC) {
    /* O_DIRECT without O_DSYNC: the write reaches the device, then fdatasync flushes its
       cache (the page cache holds nothing of the file). */
    close(fd);
    fd = open(path, O_WRONLY | O_CLOEXEC | O_DIRECT);
    if (fd < 0) die("open (O_DIRECT)");
  }

  long appends = 0, wraps = 0;
  long long off = 0;
  uint64_t deadline_ns = (uint64_t)(seconds_max * 1e9);
  uint64_t t0 = now_ns(), t = t0;
  while (appends < appends_max && t - t0 < deadline_ns) {
    if (off + size > limit) {
      if (!prefilled) break;
      off = 0;
      wraps++;
    }
    buf[0] = (char)appends; /* every record differs a little */
    pwrite_all(fd, buf, (size_t)size, (off_t)off);
    if (sync_each && fdatasync(fd) != 0) die("fdatasync");
    uint64_t t1 = now_ns();
    lat[appends++] = t1 - t;
    t = t1;
    off += size;
  }
  double secs = (double)(t - t0) / 1e9;
  if (!prefilled) {
    struct stat st;
    if (fstat(fd, &st) == 0) file_bytes = st.st_size;
  }
  close(fd);
  unlink(path);
  path[0] = 0;

  qsort(lat, (size_t)appends, sizeof *lat, cmp_u64);
  uint64_t p50 = appends ? lat[(appends - 1) * 50 / 100] : 0;
  uint64_t p99 = appends ? lat[(appends - 1) * 99 / 100] : 0;
  uint64_t mx = appends ? lat[appends - 1] : 0;
  double rate = secs > 0 ? appends / secs : 0;
  double bps = rate * (double)size;
  printf("%s\t%lld\t%ld\t%.3f\t%.0f\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f\t%lld\t%ld\n", mode_names[mode],
         size, appends, secs, rate, bps / 1e6, bps / 256.0, p50 / 1e3, p99 / 1e3, mx / 1e3,
         file_bytes, wraps);
  fflush(stdout);
}

static void usage(void) {
  fprintf(stderr,
          "usage: diskprobe [-s SECONDS] [-n MAX_APPENDS] [-c PREALLOC_BYTES] [-b MAX_BYTES]\n"
          "                 [-m prealloc,fallocate,append,dsync,direct,directsync] DIR SIZE...\n");
  exit(2);
}

int main(int argc, char **argv) {
  int modes[MODES] = {1, 1, 1, 0, 0, 0};
  int opt;
  while ((opt = getopt(argc, argv, "s:n:c:b:m:")) != -1) {
    switch (opt) {
    case 's': seconds_max = atof(optarg); if (seconds_max <= 0) usage(); break;
    case 'n': appends_max = atol(optarg); if (appends_max <= 0) usage(); break;
    case 'c': if ((prealloc_bytes = parse_size(optarg)) <= 0) usage(); break;
    case 'b': if ((bytes_max = parse_size(optarg)) <= 0) usage(); break;
    case 'm':
      modes[0] = strstr(optarg, "prealloc") != NULL;
      modes[1] = strstr(optarg, "fallocate") != NULL;
      modes[2] = strstr(optarg, "append") != NULL;
      modes[3] = strstr(optarg, "dsync") != NULL;
      modes[4] = strstr(optarg, "direct,") != NULL || (strlen(optarg) >= 6 &&
                 strcmp(optarg + strlen(optarg) - 6, "direct") == 0);
      modes[5] = strstr(optarg, "directsync") != NULL;
      if (!modes[0] && !modes[1] && !modes[2] && !modes[3] && !modes[4] && !modes[5]) usage();
      break;
    default: usage();
    }
  }
  if (argc - optind < 2) usage();
  dir = argv[optind++];
  int nsizes = argc - optind;
  long long sizes[64];
  if (nsizes > 64) usage();
  long long size_max = 0;
  for (int i = 0; i < nsizes; i++) {
    if ((sizes[i] = parse_size(argv[optind + i])) <= 0) usage();
    if (sizes[i] > size_max) size_max = sizes[i];
  }

  struct statfs sf;
  if (statfs(dir, &sf) != 0) die("statfs");
  char *buf;
  if (posix_memalign((void **)&buf, 4096, (size_t)size_max) != 0) die("posix_memalign");
  uint64_t x = 0x9E3779B97F4A7C15ull; /* non-zero, non-repeating payload */
  for (long long i = 0; i < size_max; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    buf[i] = (char)(x >> 24);
  }
  uint64_t *lat = malloc(sizeof *lat * (size_t)appends_max);
  if (!lat) die("malloc");

  printf("# dir %s  fs %s (f_type 0x%lx)  block %ld  limits: %.1f s or %ld appends per run, "
         "prealloc %lld B, other files %lld B\n",
         dir, fs_name((long)sf.f_type), (unsigned long)sf.f_type, (long)sf.f_bsize, seconds_max,
         appends_max, prealloc_bytes, bytes_max);
  printf("mode\tsize_bytes\tappends\tseconds\tappends_per_s\tMB_per_s\tentries256_per_s\t"
         "p50_us\tp99_us\tmax_us\tfile_bytes\twraps\n");
  fflush(stdout);
  for (int m = 0; m < MODES; m++) {
    if (!modes[m]) continue;
    for (int i = 0; i < nsizes; i++) run((enum mode)m, sizes[i], buf, lat);
  }
  free(lat);
  free(buf);
  return 0;
}
