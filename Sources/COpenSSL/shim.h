#ifndef TALLY_COPENSSL_SHIM_H
#define TALLY_COPENSSL_SHIM_H
#include <openssl/sha.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

/* SHA-256 of up to three concatenated parts through the one-shot SHA256_* functions: the
   same compression code as EVP (with SHA-NI where the CPU has it), without EVP's per-call
   dispatch. Deprecated in OpenSSL 3 for new algorithms' sake, kept for SHA-256. */
static inline void tally_sha256(const void *a, size_t an, const void *b, size_t bn,
                                const void *c, size_t cn, unsigned char out[32]) {
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  if (an) SHA256_Update(&ctx, a, an);
  if (bn) SHA256_Update(&ctx, b, bn);
  if (cn) SHA256_Update(&ctx, c, cn);
  SHA256_Final(out, &ctx);
#pragma clang diagnostic pop
}

/* SHA-256 over a stream of parts (a snapshot hashed as LMDB writes it). */
typedef struct { SHA256_CTX ctx; } tally_sha256_stream;

static inline void tally_sha256_stream_init(tally_sha256_stream *s) {
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
  SHA256_Init(&s->ctx);
#pragma clang diagnostic pop
}

static inline void tally_sha256_stream_update(tally_sha256_stream *s, const void *p, size_t n) {
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
  if (n) SHA256_Update(&s->ctx, p, n);
#pragma clang diagnostic pop
}

static inline void tally_sha256_stream_final(tally_sha256_stream *s, unsigned char out[32]) {
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
  SHA256_Final(out, &s->ctx);
#pragma clang diagnostic pop
}
#endif
