// nopidfd: runs a command as if on a kernel older than 5.3, where pidfd does not exist.
// A seccomp filter makes pidfd_open, pidfd_send_signal, pidfd_getfd and clone3 (all new in
// 5.3+) fail with ENOSYS, then execs the command; the filter is inherited by every child.
// Needs only the kernel's uapi headers (linux-libc-dev, which gcc brings): no libseccomp.
//   cc -O2 -Wall -o target/nopidfd tools/nopidfd.c && target/nopidfd node app.js
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#else
#error "nopidfd: unsupported architecture"
#endif

#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_pidfd_send_signal
#define __NR_pidfd_send_signal 424
#endif
#ifndef __NR_pidfd_getfd
#define __NR_pidfd_getfd 438
#endif
#ifndef __NR_clone3
#define __NR_clone3 435
#endif

#define ENOSYS_IF(nr) \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), \
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA))

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: nopidfd <command> [args...]\n");
        return 2;
    }
    struct sock_filter filter[] = {
        // Another architecture's syscall numbers mean something else: kill, don't guess.
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        ENOSYS_IF(__NR_pidfd_open),
        ENOSYS_IF(__NR_pidfd_send_signal),
        ENOSYS_IF(__NR_pidfd_getfd),
        ENOSYS_IF(__NR_clone3),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        perror("nopidfd: PR_SET_NO_NEW_PRIVS");
        return 125;
    }
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        perror("nopidfd: PR_SET_SECCOMP");
        return 125;
    }
    // Prove the filter is in force before running anything under it.
    if (syscall(__NR_pidfd_open, getpid(), 0) != -1 || errno != ENOSYS) {
        fprintf(stderr, "nopidfd: pidfd_open still works under the filter\n");
        return 125;
    }
    execvp(argv[1], argv + 1);
    fprintf(stderr, "nopidfd: exec %s: %s\n", argv[1], strerror(errno));
    return 127;
}
