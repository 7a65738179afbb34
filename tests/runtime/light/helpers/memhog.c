/* memhog <MiB>: touches that much memory, one MiB at a time, then exits 0. */
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
  long mib = argc > 1 ? atol(argv[1]) : 64;
  for (long i = 0; i < mib; ++i) {
    char* p = malloc(1 << 20);
    if (!p) return 1;
    memset(p, 1, 1 << 20);
  }
  return 0;
}
