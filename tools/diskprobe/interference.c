/*
 * interference: what a background zero-fill of a 64 MiB file (the journal's next segment,
 * prepared ahead) does to a journal's small syncs on the same file system.
 *
 *   cc -O2 -pthread -o interference tools/diskprobe/interference.c
 *   ./interference DIR PACED      # PACED 0: write the 64 MiB, then fdatasync (as tallyd)
 *                                 # PACED 1: 1 MiB at a time, each written back with
 *                                 #   sync_file_range and a 5 ms pause, then fdatasync
 *
 * One thread fills DIR/interference-next.tmp three times (64 MiB each, 0.3 s apart); the main
 * thread meanwhile appends 256 bytes + fdatasync to DIR/interference-journal (16 MiB,
 * preallocated) and records each append's latency. Prints the syncs' count, p50, p99,
 * p99.9 and max. Bounded: three fills, at most 2,000,000 appends. The files are removed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FILL_BYTES (64L << 20)
#define CHUNK (1L << 20)
#define JOURNAL_BYTES (16L << 20)
#define APPENDS_MAX 2000000L

static int paced;
static volatile int done;
static char next_path[4096], journal_path[4096];
static char zeros[CHUNK];
static uint64_t lat[APPENDS_MAX];

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void *fill(void *arg) {
  (void)arg;
  for (int round = 0; round < 3; round++) {
    unlink(next_path);
    int fd = open(next_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) die("open next");
    for (long o = 0; o < FILL_BYTES; o += CHUNK) {
      if (pwrite(fd, zeros, CHUNK, o) != CHUNK) die("pwrite next");
      if (paced) {
        sync_file_range(fd, o, CHUNK,
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                            SYNC_FILE_RANGE_WAIT_AFTER);
        usleep(5000);
      }
    }
    if (fdatasync(fd) != 0) die("fdatasync next");
    close(fd);
    usleep(300000);
  }
  done = 1;
  return 0;
}

static int cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: interference DIR PACED(0|1)\n");
    return 2;
  }
  paced = atoi(argv[2]);
  snprintf(next_path, sizeof next_path, "%s/interference-next.tmp", argv[1]);
  snprintf(journal_path, sizeof journal_path, "%s/interference-journal", argv[1]);
  int fd = open(journal_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) die("open journal");
  for (long o = 0; o < JOURNAL_BYTES; o += CHUNK)
    if (pwrite(fd, zeros, CHUNK, o) != CHUNK) die("pwrite journal");
  if (fdatasync(fd) != 0) die("fdatasync journal");
  char rec[256];
  memset(rec, 7, sizeof rec);
  long n = 0, off = 0;
  pthread_t t;
  if (pthread_create(&t, 0, fill, 0) != 0) die("pthread_create");
  while (!done && n < APPENDS_MAX) {
    uint64_t a = now_ns();
    if (pwrite(fd, rec, sizeof rec, off) != (ssize_t)sizeof rec) die("pwrite journal");
    if (fdatasync(fd) != 0) die("fdatasync journal");
    lat[n++] = now_ns() - a;
    off = (off + (long)sizeof rec) % JOURNAL_BYTES;
  }
  pthread_join(t, 0);
  close(fd);
  unlink(journal_path);
  unlink(next_path);
  qsort(lat, (size_t)n, sizeof *lat, cmp);
  printf("paced=%d syncs=%ld p50_us=%.0f p99_us=%.0f p999_us=%.0f max_ms=%.1f\n", paced, n,
         lat[n / 2] / 1e3, lat[n * 99 / 100] / 1e3, lat[n * 999 / 1000] / 1e3, lat[n - 1] / 1e6);
  return 0;
}
