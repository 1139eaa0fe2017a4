#include <lmdb.h>
#include <sys/types.h>

/* glibc declares sync_file_range only under _GNU_SOURCE, which the Swift Glibc module is not
   built with: its declaration (fcntl.h's, glibc >= 2.6), and a wrapper that writes back the
   dirty pages of one range of a file and waits for them, after any writeback of the range
   already under way (SYNC_FILE_RANGE_WAIT_BEFORE | WRITE | WAIT_AFTER: 1 | 2 | 4). It
   makes nothing durable: no metadata, no disk cache flush. */
int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags);

static inline int tally_writeback_range(int fd, off_t offset, off_t nbytes) {
  return sync_file_range(fd, offset, nbytes, 1 | 2 | 4);
}

/* malloc.h's mallopt, which the Swift Glibc module does not export: M_MMAP_THRESHOLD (-3)
   fixed at `bytes` (and so no longer raised by glibc as large blocks are freed). */
int mallopt(int param, int value);

static inline int tally_fix_mmap_threshold(int bytes) { return mallopt(-3, bytes); }

/* malloc.h's malloc_trim, not exported either: returns the free memory of every arena to
   the system (the top of each, and whole free pages inside them). */
int malloc_trim(size_t pad);

/* cachestat(2) (Linux >= 6.5, syscall 451 on x86_64 and the generic table): the dirty pages
   of the file range [offset, offset + length) (length 0: to the end), or -1 with errno
   (ENOSYS on older kernels). Declared here rather than through unistd.h's syscall. */
long syscall(long number, ...);

static inline long tally_dirty_pages(int fd, unsigned long long offset,
                                     unsigned long long length) {
  struct { unsigned long long off, len; } range = { offset, length };
  struct {
    unsigned long long nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
  } cs;
  long rc = syscall(451, fd, &range, &cs, 0UL);
  return rc == 0 ? (long)cs.nr_dirty : -1;
}
