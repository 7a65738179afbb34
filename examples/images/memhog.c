/* memhog: allocates and touches memory in 1 MiB steps up to N MiB (argv[1]), printing
 * progress, then holds it for HOLD seconds (argv[2], default 0) and exits 0. Used to
 * check memory limits: under a lower limit the kernel's OOM killer ends it. Bounded:
 * N <= 65536, HOLD <= 3600. Built static so it runs in a busybox image. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024L * 1024L)

/* Where each block's address goes: a volatile store makes the block escape, so no
 * compiler may drop the malloc and memset as dead (clang does, at -O1 and above). */
static char* volatile last_block;

static long parse(const char* s, long max, const char* what) {
  char* end = NULL;
  long v = strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < 0 || v > max) {
    fprintf(stderr, "memhog: %s must be a number from 0 to %ld\n", what, max);
    exit(2);
  }
  return v;
}

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: memhog MIB [HOLD_SECONDS]\n");
    return 2;
  }
  long target = parse(argv[1], 65536, "MIB");
  long hold = argc == 3 ? parse(argv[2], 3600, "HOLD_SECONDS") : 0;
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (long i = 1; i <= target; ++i) {
    char* p = malloc(MIB);
    if (p == NULL) {
      printf("memhog: allocation failed after %ld MiB\n", i - 1);
      return 1;
    }
    /* Touch every page so the memory is really charged to us. */
    memset(p, (int)(i & 0xff) | 1, MIB);
    last_block = p;
    printf("memhog: %ld MiB\n", i);
  }
  printf("memhog: done %ld MiB\n", target);
  if (hold > 0) sleep((unsigned)hold);
  return 0;
}
