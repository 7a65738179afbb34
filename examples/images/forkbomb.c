/* forkbomb: tries to fork up to N children (argv[1]); each child sleeps SECONDS
 * (argv[2], default 3) and exits. Prints how many forks succeeded and how many failed
 * with EAGAIN (the pids limit), then kills and reaps every child it made, so it never
 * leaves processes behind. Bounded: N <= 100000, SECONDS <= 60. Built static. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static long parse(const char* s, long max, const char* what) {
  char* end = NULL;
  long v = strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < 0 || v > max) {
    fprintf(stderr, "forkbomb: %s must be a number from 0 to %ld\n", what, max);
    exit(2);
  }
  return v;
}

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: forkbomb N [SECONDS]\n");
    return 2;
  }
  long n = parse(argv[1], 100000, "N");
  long secs = argc == 3 ? parse(argv[2], 60, "SECONDS") : 3;
  pid_t* kids = calloc((size_t)(n > 0 ? n : 1), sizeof(pid_t));
  if (kids == NULL) return 1;
  long ok = 0, eagain = 0, other = 0;
  for (long i = 0; i < n; ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      sleep((unsigned)secs);
      _exit(0);
    }
    if (pid > 0) {
      kids[ok++] = pid;
    } else if (errno == EAGAIN) {
      ++eagain;
    } else {
      ++other;
    }
  }
  printf("forkbomb: forked=%ld eagain=%ld other_errors=%ld\n", ok, eagain, other);
  fflush(stdout);
  for (long i = 0; i < ok; ++i) kill(kids[i], SIGKILL);
  for (long i = 0; i < ok; ++i) {
    while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR) {
    }
  }
  free(kids);
  return 0;
}
