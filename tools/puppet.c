// puppet: a process the property run (__test__/reliability/property.spec.ts) drives by signal,
// so that the exit status each operation causes is known in advance.
//   puppet <code> <ignore-term 0|1> [exit-after-ms]
// SIGUSR1 makes it exit with <code>; with <ignore-term> 1 it ignores SIGTERM (only SIGKILL
// or SIGUSR1 end it); with exit-after-ms it also exits with <code> by itself after that long.
// Readiness is read from /proc/<pid>/status (SigCgt has SIGUSR1 once the handler is in place).
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t code;

static void on_usr1(int sig) {
  (void)sig;
  _exit(code);
}

int main(int argc, char **argv) {
  if (argc < 3) return 125;
  code = atoi(argv[1]);
  if (atoi(argv[2])) signal(SIGTERM, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  if (argc > 3) {
    usleep((useconds_t)atoi(argv[3]) * 1000);
    _exit(code);
  }
  for (;;) pause();
}
