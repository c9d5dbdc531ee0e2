// A process whose thread-group leader calls pthread_exit() while another thread runs on and
// ends the process with `exit_group(42)` after `argv[1]` ms (default 1500): its leader is a
// zombie in /proc long before the process exits. Prints its PID once the leader is about to go.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *later(void *arg) {
  usleep((useconds_t)(long)arg * 1000);
  exit(42);
}

int main(int argc, char **argv) {
  long ms = argc > 1 ? atol(argv[1]) : 1500;
  pthread_t t;
  if (pthread_create(&t, NULL, later, (void *)ms) != 0) return 2;
  printf("%d\n", getpid());
  fflush(stdout);
  pthread_exit(NULL);
}
