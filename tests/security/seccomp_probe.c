/* seccomp_probe: attempts each syscall cleanroom's hardened profile denies, from inside a
 * sandbox, and prints one line per probe:
 *
 *     <probe> attempt=<OK|ERRNO NAME|SIG<n>> verdict=<ERRNO NAME|SIG<n>|->
 *
 * attempt: what the workload sees when it makes the call (arguments are chosen so that,
 *          where the kernel gets the call, it fails harmlessly or touches only this process).
 * verdict: what the sandbox's seccomp profile decided, without the kernel's own checks.
 *          The probe stacks a filter of its own that answers SECCOMP_RET_TRACE for exactly
 *          this call. Seccomp takes the strictest action of all filters: if the sandbox's
 *          profile returns ERRNO, that errno comes back; if the profile allows the call,
 *          our TRACE wins and, with no tracer attached, the kernel returns ENOSYS without
 *          running it. So verdict=EPERM means "our profile said EPERM", never "the kernel
 *          lacked a capability"; verdict=ENOSYS means the profile let the call through
 *          (or itself answered ENOSYS, as for clone3).
 *
 * Build: gcc -static -O2 -o seccomp_probe seccomp_probe.c -lpthread
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "seccomp_probe supports x86_64 and aarch64"
#endif

#define KEY_SPEC_PROCESS_KEYRING -2
#define UFFD_USER_MODE_ONLY 1

static long c_unshare_newuser(void) { return unshare(CLONE_NEWUSER); }

static long reap(long pid) {
    if (pid == 0) _exit(0); /* the child of a successful clone */
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    return pid < 0 ? -1 : 0;
}

static long c_clone_newuser(void) { return reap(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)); }
static long c_clone_plain(void) { return reap(syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0)); }

static long clone3_with(uint64_t flags) {
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = flags;
    args.exit_signal = SIGCHLD;
    return reap(syscall(SYS_clone3, &args, sizeof args));
}
static long c_clone3_newuser(void) { return clone3_with(CLONE_NEWUSER); }
static long c_clone3_plain(void) { return clone3_with(0); }

static void *thread_body(void *arg) { return arg; }
static long c_thread(void) {
    /* glibc creates threads with clone3 and falls back to clone on ENOSYS. */
    pthread_t t;
    int rc = pthread_create(&t, NULL, thread_body, NULL);
    if (rc != 0) { errno = rc; return -1; }
    pthread_join(t, NULL);
    return 0;
}

static long c_keyctl(void) { return syscall(SYS_keyctl, 9999, 0, 0, 0, 0); /* unknown op: EOPNOTSUPP */ }
static long c_add_key(void) {
    return syscall(SYS_add_key, "user", "cleanroom-probe", "x", 1, KEY_SPEC_PROCESS_KEYRING);
}
static long c_request_key(void) { return syscall(SYS_request_key, "user", "cleanroom-no-such-key", NULL, 0); }
static long c_ptrace(void) { return ptrace(PTRACE_PEEKUSER, getppid(), 0, 0); /* not our tracee: ESRCH */ }

static char vm_src[8] = "probe", vm_dst[8];
static long vm_call(int nr) {
    struct iovec local = {vm_dst, sizeof vm_dst}, remote = {vm_src, sizeof vm_src};
    return syscall(nr, getpid(), &local, 1, &remote, 1, 0); /* our own memory */
}
static long c_process_vm_readv(void) { return vm_call(SYS_process_vm_readv); }
static long c_process_vm_writev(void) { return vm_call(SYS_process_vm_writev); }

static long c_bpf(void) { return syscall(SYS_bpf, 0, (void *)1, 16); /* unreadable attr: EFAULT */ }
static long c_perf_event_open(void) { return syscall(SYS_perf_event_open, (void *)1, 0, -1, -1, 0); }
static long c_userfaultfd(void) { return syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY); }
static long c_io_uring_setup(void) { return syscall(SYS_io_uring_setup, 1, (void *)1); }
static long c_io_uring_enter(void) { return syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0); }
static long c_io_uring_register(void) { return syscall(SYS_io_uring_register, -1, 0, NULL, 0); }
static long c_mount(void) { return mount("none", "/tmp", (const char *)1, 0, NULL); }
static long c_umount2(void) { return umount2("/tmp", 0x80000000); /* unknown flag: EINVAL */ }
static long c_pivot_root(void) { return syscall(SYS_pivot_root, (char *)1, (char *)1); }
static long c_move_mount(void) { return syscall(SYS_move_mount, -1, "", -1, "", 0); }
static long c_fsopen(void) { return syscall(SYS_fsopen, "tmpfs", 0); }
static long c_fsconfig(void) { return syscall(SYS_fsconfig, -1, 0, NULL, NULL, 0); }
static long c_fsmount(void) { return syscall(SYS_fsmount, -1, 0, 0); }
static long c_open_tree(void) { return syscall(SYS_open_tree, AT_FDCWD, "/", 0); /* an O_PATH fd */ }
static long c_kexec_load(void) { return syscall(SYS_kexec_load, 0, 0, NULL, 0); }
static long c_kexec_file_load(void) { return syscall(SYS_kexec_file_load, -1, -1, 0, "", 0); }
static long c_init_module(void) { return syscall(SYS_init_module, NULL, 0, ""); }
static long c_finit_module(void) { return syscall(SYS_finit_module, -1, "", 0); }
static long c_open_by_handle_at(void) { return syscall(SYS_open_by_handle_at, -1, (void *)1, 0); }

#if defined(__x86_64__)
static long c_i386_getpid(void) {
    /* The 32-bit ABI: int 0x80 with the i386 number of getpid (20). */
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20) : "memory");
    if (ret < 0 && ret > -4096) { errno = (int)-ret; return -1; }
    return ret;
}
static long c_x32_getpid(void) { return syscall(0x40000000 | 39); }
#endif

struct probe {
    const char *name;
    long (*call)(void);
    uint32_t arch;
    int nr; /* -1: no verdict (a library path, not one syscall) */
};

static const struct probe PROBES[] = {
    {"unshare_newuser", c_unshare_newuser, NATIVE_ARCH, SYS_unshare},
    {"clone_newuser", c_clone_newuser, NATIVE_ARCH, SYS_clone},
    {"clone_plain", c_clone_plain, NATIVE_ARCH, SYS_clone},
    {"clone3_newuser", c_clone3_newuser, NATIVE_ARCH, SYS_clone3},
    {"clone3_plain", c_clone3_plain, NATIVE_ARCH, SYS_clone3},
    {"pthread_create", c_thread, NATIVE_ARCH, -1},
    {"keyctl", c_keyctl, NATIVE_ARCH, SYS_keyctl},
    {"add_key", c_add_key, NATIVE_ARCH, SYS_add_key},
    {"request_key", c_request_key, NATIVE_ARCH, SYS_request_key},
    {"ptrace", c_ptrace, NATIVE_ARCH, SYS_ptrace},
    {"process_vm_readv", c_process_vm_readv, NATIVE_ARCH, SYS_process_vm_readv},
    {"process_vm_writev", c_process_vm_writev, NATIVE_ARCH, SYS_process_vm_writev},
    {"bpf", c_bpf, NATIVE_ARCH, SYS_bpf},
    {"perf_event_open", c_perf_event_open, NATIVE_ARCH, SYS_perf_event_open},
    {"userfaultfd", c_userfaultfd, NATIVE_ARCH, SYS_userfaultfd},
    {"io_uring_setup", c_io_uring_setup, NATIVE_ARCH, SYS_io_uring_setup},
    {"io_uring_enter", c_io_uring_enter, NATIVE_ARCH, SYS_io_uring_enter},
    {"io_uring_register", c_io_uring_register, NATIVE_ARCH, SYS_io_uring_register},
    {"mount", c_mount, NATIVE_ARCH, SYS_mount},
    {"umount2", c_umount2, NATIVE_ARCH, SYS_umount2},
    {"pivot_root", c_pivot_root, NATIVE_ARCH, SYS_pivot_root},
    {"move_mount", c_move_mount, NATIVE_ARCH, SYS_move_mount},
    {"fsopen", c_fsopen, NATIVE_ARCH, SYS_fsopen},
    {"fsconfig", c_fsconfig, NATIVE_ARCH, SYS_fsconfig},
    {"fsmount", c_fsmount, NATIVE_ARCH, SYS_fsmount},
    {"open_tree", c_open_tree, NATIVE_ARCH, SYS_open_tree},
    {"kexec_load", c_kexec_load, NATIVE_ARCH, SYS_kexec_load},
    {"kexec_file_load", c_kexec_file_load, NATIVE_ARCH, SYS_kexec_file_load},
    {"init_module", c_init_module, NATIVE_ARCH, SYS_init_module},
    {"finit_module", c_finit_module, NATIVE_ARCH, SYS_finit_module},
    {"open_by_handle_at", c_open_by_handle_at, NATIVE_ARCH, SYS_open_by_handle_at},
#if defined(__x86_64__)
    {"i386_abi", c_i386_getpid, AUDIT_ARCH_I386, 20},
    {"x32_abi", c_x32_getpid, AUDIT_ARCH_X86_64, 0x40000000 | 39},
#endif
};

static int trace_only(uint32_t arch, int nr) {
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof code / sizeof code[0], code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

/* Run one call in a child (a successful unshare or clone must not change this process);
 * the exit status carries 0 for success or the errno. */
static void run(const struct probe *p, int verdict, char *out, size_t len) {
    pid_t pid = fork();
    if (pid == 0) {
        if (verdict && trace_only(p->arch, p->nr) != 0) _exit(255);
        errno = 0;
        long r = p->call();
        _exit(r < 0 ? (errno ? errno : 254) : 0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) {
        snprintf(out, len, "SIG%d", WTERMSIG(status));
    } else if (WEXITSTATUS(status) == 0) {
        snprintf(out, len, "OK");
    } else if (WEXITSTATUS(status) == 255) {
        snprintf(out, len, "NOFILTER");
    } else {
        const char *name = strerrorname_np(WEXITSTATUS(status));
        snprintf(out, len, "%s", name ? name : "E?");
    }
}

int main(int argc, char **argv) {
    for (size_t i = 0; i < sizeof PROBES / sizeof PROBES[0]; i++) {
        const struct probe *p = &PROBES[i];
        if (argc > 1) {
            int wanted = 0;
            for (int a = 1; a < argc; a++) wanted |= strcmp(argv[a], p->name) == 0;
            if (!wanted) continue;
        }
        char attempt[32], verdict[32] = "-";
        run(p, 0, attempt, sizeof attempt);
        if (p->nr >= 0) run(p, 1, verdict, sizeof verdict);
        printf("%s attempt=%s verdict=%s\n", p->name, attempt, verdict);
    }
    return 0;
}
