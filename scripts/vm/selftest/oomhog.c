/* Runs inside the VM (PID 1's child): proves cgroup v2 memory OOM works.
 * Creates $LIFEWATCH_CGROUP_ROOT/lwtest with memory.max=32M, swap.max=0,
 * forks a hog into it, reaps it, prints memory.events and the wait status as
 * "LWTEST key=value" lines for selftest.sh, exits 0 only if all checks pass. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char cg[512];

static int write_file(const char *name, const char *val) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", cg, name);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0) { fprintf(stderr, "open %s: %s\n", p, strerror(errno)); return -1; }
    ssize_t n = write(fd, val, strlen(val));
    int e = errno;
    close(fd);
    if (n < 0) { fprintf(stderr, "write %s: %s\n", p, strerror(e)); return -1; }
    return 0;
}

static int exists(const char *name) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", cg, name);
    int ok = access(p, F_OK) == 0;
    printf("LWTEST file_%s=%d\n", name, ok);
    return ok;
}

int main(void) {
    const char *root = getenv("LIFEWATCH_CGROUP_ROOT");
    if (!root) { fprintf(stderr, "LIFEWATCH_CGROUP_ROOT unset (not in the VM?)\n"); return 2; }
    printf("LWTEST in_vm=%s\n", getenv("LIFEWATCH_VM") ? getenv("LIFEWATCH_VM") : "0");
    snprintf(cg, sizeof cg, "%s/lwtest", root);
    if (mkdir(cg, 0755) < 0 && errno != EEXIST) { perror("mkdir lwtest"); return 2; }

    int ok = 1;
    ok &= exists("cgroup.kill");
    ok &= exists("pids.max");
    ok &= exists("memory.pressure");
    if (write_file("memory.max", "32M") < 0) return 2;
    /* Without swap.max=0 the hog could be swapped instead of killed (no swap
     * in this guest, but be explicit). */
    if (write_file("memory.swap.max", "0") < 0) ok = 0;
    fflush(stdout);

    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 2; }
    if (pid == 0) {
        /* "0" moves the writing process itself into the cgroup. */
        if (write_file("cgroup.procs", "0") < 0) _exit(3);
        size_t chunk = 1 << 20;
        for (int i = 0; i < 256; i++) {       /* 256 MiB, far above 32M */
            char *p = malloc(chunk);
            if (!p) _exit(4);
            memset(p, i | 1, chunk);          /* touch every page */
        }
        _exit(0);                             /* must not get here */
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) { perror("waitpid"); return 2; }
    printf("LWTEST hog_status=0x%x signaled=%d signal=%d exited=%d\n", status,
           WIFSIGNALED(status), WIFSIGNALED(status) ? WTERMSIG(status) : 0,
           WIFEXITED(status) ? WEXITSTATUS(status) : -1);

    char p[600], line[128];
    long oom_kill = -1;
    snprintf(p, sizeof p, "%s/memory.events", cg);
    FILE *f = fopen(p, "r");
    if (!f) { perror("memory.events"); return 2; }
    while (fgets(line, sizeof line, f)) {
        char key[64]; long v;
        if (sscanf(line, "%63s %ld", key, &v) == 2) {
            printf("LWTEST memory.events.%s=%ld\n", key, v);
            if (!strcmp(key, "oom_kill")) oom_kill = v;
        }
    }
    fclose(f);
    rmdir(cg);

    ok &= oom_kill >= 1;
    ok &= WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    printf("LWTEST result=%s\n", ok ? "pass" : "fail");
    return ok ? 0 : 1;
}
