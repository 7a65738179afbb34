/* forkbomb <N>: tries to keep N processes alive; prints how many it managed. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 100;
  int ok = 0;
  for (int i = 0; i < n; ++i) {
    pid_t p = fork();
    if (p == 0) {
      pause();
      _exit(0);
    }
    if (p > 0) ++ok;
  }
  printf("%d\n", ok);
  fflush(stdout);
  return 0;
}
