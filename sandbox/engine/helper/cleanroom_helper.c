/*
 * cleanroom-helper: the first thing that runs in a sandbox when the command must not
 * run as the container's root, must be handed its command (a warm pool's member),
 * and a session's first process (its agent, which runs each of the session's commands).
 *
 * On cgroup v1 a process can be moved between cgroups only by its own uid, so the
 * engine places the sandbox while it still runs as the container's root (which is the
 * engine's uid outside); this helper then switches to the user asked for and execs
 * the command. It is mounted read-only from the host and built static, so no image
 * needs to contain anything.
 *
 *   cleanroom-helper [-k] [-u USER[:GROUP]] -- COMMAND [ARGS...]
 *   cleanroom-helper -R [-k] [-u USER[:GROUP]]
 *   cleanroom-helper -A
 *
 *   -u  switch to USER (a name from the image's /etc/passwd or a number) and GROUP
 *       (a name from /etc/group or a number; default: the user's primary group, or
 *       the uid when the user is only a number), with the user's supplementary groups
 *   -k  keep CAP_SETUID and CAP_SETGID; otherwise they are dropped before the command
 *       runs (the engine adds them only so that this helper can switch users)
 *   -R  receive the command on stdin instead (a warm pool's sandbox waits here, already
 *       confined, until it is taken): "CRR1", a 32-bit big-endian length, then that many
 *       bytes of NUL-terminated strings: the argument count, the arguments, then
 *       NAME=VALUE entries added to the environment. What follows on stdin is the
 *       command's own stdin. End of file before a whole request: exit 125, nothing run.
 *   -A  be a session's agent: the sandbox's first process (so every command it forks is
 *       already in the sandbox's cgroups), running the commands the engine sends on
 *       stdin and answering on stdout, framed; see "agent mode" below.
 *
 * Exit codes: 125 the helper failed, 126 the command is not executable, 127 not found.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_GROUPS 64
#define MAX_REQUEST (1 << 20)

static void die(const char *what, const char *detail) {
    fprintf(stderr, "cleanroom-helper: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(125);
}

static int numeric(const char *s, long *out) {
    char *end;
    if (!*s) return 0;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || errno || v < 0) return 0;
    *out = v;
    return 1;
}

/* The image's own /etc/passwd and /etc/group, parsed by hand: a static binary's
 * getpwnam would try NSS modules the image may not have. */
static int passwd_lookup(const char *name, long want_uid, long *uid, long *gid, char *user_out, size_t user_size) {
    FILE *f = fopen("/etc/passwd", "r");
    if (!f) return 0;
    char line[1024];
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        char *fields[7] = {0};
        char *save = NULL, *p = line;
        int i = 0;
        for (char *tok = strsep(&p, ":"); tok && i < 7; tok = strsep(&p, ":")) fields[i++] = tok;
        (void)save;
        if (i < 4) continue;
        long u, g;
        if (!numeric(fields[2], &u) || !numeric(fields[3], &g)) continue;
        if ((name && strcmp(fields[0], name) == 0) || (!name && u == want_uid)) {
            *uid = u;
            *gid = g;
            snprintf(user_out, user_size, "%s", fields[0]);
            found = 1;
            break;
        }
    }
    fclose(f);
    return found;
}

static int group_lookup(const char *name, long *gid) {
    FILE *f = fopen("/etc/group", "r");
    if (!f) return 0;
    char line[4096];
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        char *gname = strsep(&p, ":");
        strsep(&p, ":");
        char *gidtxt = strsep(&p, ":");
        long g;
        if (gname && gidtxt && strcmp(gname, name) == 0 && numeric(gidtxt, &g)) {
            *gid = g;
            found = 1;
            break;
        }
    }
    fclose(f);
    return found;
}

static int supplementary(const char *user, long primary, gid_t *out) {
    int n = 0;
    out[n++] = (gid_t)primary;
    if (!user[0]) return n;
    FILE *f = fopen("/etc/group", "r");
    if (!f) return n;
    char line[4096];
    while (fgets(line, sizeof line, f) && n < MAX_GROUPS) {
        line[strcspn(line, "\n")] = '\0';
        char *p = line;
        strsep(&p, ":");
        strsep(&p, ":");
        char *gidtxt = strsep(&p, ":");
        long g;
        if (!gidtxt || !p || !numeric(gidtxt, &g) || g == primary) continue;
        for (char *member = strsep(&p, ","); member; member = strsep(&p, ","))
            if (strcmp(member, user) == 0) { out[n++] = (gid_t)g; break; }
    }
    fclose(f);
    return n;
}

static void switch_user(char *spec) {
    char *group = strchr(spec, ':');
    if (group) *group++ = '\0';
    long uid = -1, gid = -1, n;
    char user[256] = "";
    if (numeric(spec, &n)) {
        uid = n;
        if (!passwd_lookup(NULL, n, &uid, &gid, user, sizeof user)) gid = n;
    } else if (!passwd_lookup(spec, -1, &uid, &gid, user, sizeof user)) {
        die(spec, "no such user in the image's /etc/passwd");  /* name first: "passwd: x" reads as a secret */
    }
    if (group && *group) {
        if (!numeric(group, &gid) && !group_lookup(group, &gid)) die(group, "no such group in the image's /etc/group");
    }
    gid_t groups[MAX_GROUPS];
    int count = supplementary(user, gid, groups);
    if (setgroups((size_t)count, groups) != 0) die("setgroups", strerror(errno));
    if (setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) != 0) die("setgid", strerror(errno));
    if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0) die("setuid", strerror(errno));
}

/* Clear CAP_SETUID and CAP_SETGID from the effective, permitted and inheritable
 * sets (a non-root user has none left anyway; root keeps only what the policy gave). */
static void drop_switch_caps(void) {
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) != 0) die("capget", strerror(errno));
    __u32 mask = ~((1u << CAP_SETUID) | (1u << CAP_SETGID));
    data[0].effective &= mask;
    data[0].permitted &= mask;
    data[0].inheritable &= mask;
    if (syscall(SYS_capset, &hdr, data) != 0) die("capset", strerror(errno));
}

/* Exactly n bytes from fd 0, unbuffered: whatever follows belongs to the command. */
static int read_exact(unsigned char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(0, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

/* The command sent on stdin (see -R): its argv, with its environment entries set. */
static char **receive(void) {
    unsigned char head[8];
    if (read_exact(head, sizeof head) != 0) die("stdin ended before a command arrived; nothing was run", NULL);
    if (memcmp(head, "CRR1", 4) != 0) die("not a command request on stdin", NULL);
    size_t len = ((size_t)head[4] << 24) | ((size_t)head[5] << 16) | ((size_t)head[6] << 8) | head[7];
    if (len == 0 || len > MAX_REQUEST) die("command request of a wrong size", NULL);
    char *buf = malloc(len + 1);
    if (!buf) die("out of memory", NULL);
    if (read_exact((unsigned char *)buf, len) != 0) die("stdin ended inside the command request", NULL);
    buf[len] = '\0';
    char *end = buf + len, *p = buf;
    long count;
    if (!numeric(p, &count) || count < 1 || count > 65536) die("command request without a command", NULL);
    p += strlen(p) + 1;
    char **args = calloc((size_t)count + 1, sizeof *args);
    if (!args) die("out of memory", NULL);
    for (long i = 0; i < count; i++) {
        if (p >= end) die("command request cut short", NULL);
        args[i] = p;
        p += strlen(p) + 1;
    }
    for (; p < end; p += strlen(p) + 1)
        if (strchr(p, '=') && putenv(p) != 0) die("putenv", strerror(errno));
    return args;
}

/* ---- agent mode (-A) ----------------------------------------------------------------
 *
 * A session's first process. Placed in the sandbox's cgroups by the engine before it
 * starts, like any sandbox, so every command it forks is confined from its first
 * instruction: no per-command cgroup move. It talks to the engine over the container's
 * own attach connection (stdin in, stdout out; stderr is for its own complaints).
 *
 * Every frame, both ways: a 12-byte head (kind, three zero bytes, the command's id as a
 * 32-bit big-endian number, the payload's length likewise) and the payload (at most
 * 1 MiB). Engine to agent:
 *   'E' run a command: NUL-terminated strings: flags ("k" keep CAP_SETUID/SETGID, "i" the
 *       command reads stdin frames; else /dev/null), user ("" = stay root), working
 *       directory ("" = the container's), the argument count, the arguments, then
 *       NAME=VALUE entries added to the container's environment
 *   'I' bytes for the command's stdin        'C' end of the command's stdin
 *   'K' kill the command's process group (SIGKILL)
 * Agent to engine:
 *   'H' ready (once, at start)   'O' stdout bytes   'R' stderr bytes
 *   'A' stdin bytes consumed (32-bit count; the engine keeps at most a window in flight,
 *       so a command that never reads its stdin cannot make the agent buffer it all)
 *   'X' the command is over: its status (32-bit; the exit code, or 128 + the signal)
 *   'F' the command could not be started by the agent: 32-bit code, then a message
 * A command's own failures before it runs (unknown user, missing working directory,
 * not found, not executable) are reported as the helper reports them: a line on its
 * stderr and 125, 126 or 127 as its status.
 *
 * One command at a time. Each runs in its own session (its own process group), as the
 * user asked for, with the switching capabilities dropped unless "k". The command is
 * over when it has exited and its stdout and stderr are at end of file, or AGENT_GRACE_MS
 * after it exited, whichever is first: a background process still holding the pipes does
 * not hold the command's result. Its later output is read and dropped (it is not
 * killed, and does not get SIGPIPE). As the first process (and a child subreaper) the
 * agent reaps every orphan. */
#define AGENT_HEAD 12
#define AGENT_MAX_PAYLOAD (1 << 20)
#define AGENT_CHUNK 65536
#define AGENT_GRACE_MS 100
#define AGENT_LEFTOVERS 32

struct agent_exec {
    uint32_t id;          /* 0: no command */
    pid_t pid;            /* 0 once reaped */
    pid_t group;          /* its process group (its own session) */
    int status;
    long exited_ms;
    int out, err, in;     /* our ends of its pipes; -1 once closed */
    int in_end;           /* the engine sent 'C' */
    unsigned char *pending;
    size_t pending_len, pending_cap;
};

static struct agent_exec ax;
static int leftovers[AGENT_LEFTOVERS];

static long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

static void put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16); p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void write_all(int fd, const unsigned char *buf, size_t n) {
    while (n) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) _exit(0);  /* the engine is gone: so is the session */
        buf += w;
        n -= (size_t)w;
    }
}

static void send_frame(char kind, uint32_t id, const void *payload, size_t len) {
    unsigned char head[AGENT_HEAD] = {(unsigned char)kind, 0, 0, 0};
    put32(head + 4, id);
    put32(head + 8, (uint32_t)len);
    write_all(1, head, sizeof head);
    if (len) write_all(1, payload, len);
}

static void send_u32(char kind, uint32_t id, uint32_t value) {
    unsigned char v[4];
    put32(v, value);
    send_frame(kind, id, v, sizeof v);
}

static void send_failed(uint32_t id, uint32_t code, const char *what, const char *detail) {
    char msg[512];
    int n = snprintf(msg + 4, sizeof msg - 4, "%s: %s", what, detail);
    put32((unsigned char *)msg, code);
    send_frame('F', id, msg, 4 + (size_t)(n < (int)sizeof msg - 4 ? n : (int)sizeof msg - 5));
}

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

/* The command's stdin: what is buffered goes to its pipe without ever blocking; every
 * byte written or dropped (the command closed its stdin or exited) is acknowledged. */
static void agent_flush_stdin(void) {
    size_t done = 0;
    while (ax.in >= 0 && done < ax.pending_len) {
        ssize_t w = write(ax.in, ax.pending + done, ax.pending_len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) break;
        if (w < 0) { close_fd(&ax.in); break; }  /* EPIPE: it will read no more */
        done += (size_t)w;
    }
    if (ax.in < 0) done = ax.pending_len;
    if (done) {
        memmove(ax.pending, ax.pending + done, ax.pending_len - done);
        ax.pending_len -= done;
        send_u32('A', ax.id, (uint32_t)done);
    }
    if (ax.in >= 0 && ax.in_end && ax.pending_len == 0) close_fd(&ax.in);
}

static void agent_stdin(uint32_t id, const unsigned char *data, size_t len) {
    if (id != ax.id || ax.in < 0) {  /* an earlier command's, or one that reads no more */
        send_u32('A', id, (uint32_t)len);
        return;
    }
    if (ax.pending_len + len > ax.pending_cap) {
        size_t cap = ax.pending_len + len + AGENT_CHUNK;
        unsigned char *grown = realloc(ax.pending, cap);
        if (!grown) die("out of memory", NULL);
        ax.pending = grown;
        ax.pending_cap = cap;
    }
    memcpy(ax.pending + ax.pending_len, data, len);
    ax.pending_len += len;
    agent_flush_stdin();
}

static void agent_kill(uint32_t id) {
    if (id != ax.id || !ax.id) return;
    kill(-ax.group, SIGKILL);  /* its whole group, even after it exited */
    if (ax.pid) kill(ax.pid, SIGKILL);  /* in case it had not made its own group yet */
}

/* In the forked child: become the command. Failures read like the helper's. */
static void agent_child(char *flags, char *user, char *workdir, char **args, char **env, int in, int out, int err) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setsid();
    if (in < 0) in = open("/dev/null", O_RDONLY);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) die("dup2", strerror(errno));
    if (*workdir && chdir(workdir) != 0) {
        fprintf(stderr, "cleanroom-helper: working directory %s: %s\n", workdir, strerror(errno));
        _exit(126);
    }
    if (*user) switch_user(user);
    if (!strchr(flags, 'k')) drop_switch_caps();
    for (; *env; env++)
        if (putenv(*env) != 0) die("putenv", strerror(errno));
    execvp(args[0], args);
    int code = errno == ENOENT ? 127 : 126;
    fprintf(stderr, "cleanroom-helper: %s: %s\n", args[0], strerror(errno));
    _exit(code);
}

/* 'E': parse, make the pipes, fork. */
static void agent_start(uint32_t id, char *payload, size_t len) {
    if (ax.id) { send_failed(id, 125, "agent", "a command is still running"); return; }
    char *end = payload + len, *p = payload, *fields[4];
    for (int i = 0; i < 4; i++) {
        if (p >= end) { send_failed(id, 125, "agent", "command request cut short"); return; }
        fields[i] = p;
        p += strlen(p) + 1;
    }
    long count;
    if (!numeric(fields[3], &count) || count < 1 || count > 65536) {
        send_failed(id, 125, "agent", "command request without a command");
        return;
    }
    char **args = calloc((size_t)count + 1, sizeof *args), **env = calloc(len / 2 + 2, sizeof *env);
    if (!args || !env) die("out of memory", NULL);
    for (long i = 0; i < count; i++) {
        if (p >= end) { send_failed(id, 125, "agent", "command request cut short"); free(args); free(env); return; }
        args[i] = p;
        p += strlen(p) + 1;
    }
    for (int n = 0; p < end; p += strlen(p) + 1)
        if (strchr(p, '=')) env[n++] = p;
    int out[2], err[2], in[2] = {-1, -1};
    int reads = strchr(fields[0], 'i') != NULL;
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 || (reads && pipe2(in, O_CLOEXEC) != 0)) {
        send_failed(id, 125, "pipe", strerror(errno));
        exit(125);  /* out of descriptors: this agent cannot go on */
    }
    pid_t pid = fork();
    if (pid < 0) {
        send_failed(id, 125, "fork", strerror(errno));  /* e.g. the pids limit: the session goes on */
        close(out[0]); close(out[1]); close(err[0]); close(err[1]);
        if (reads) { close(in[0]); close(in[1]); }
        free(args); free(env);
        return;
    }
    if (pid == 0) agent_child(fields[0], fields[1], fields[2], args, env, in[0], out[1], err[1]);
    free(args);
    free(env);
    close(out[1]);
    close(err[1]);
    if (reads) close(in[0]);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    if (reads) fcntl(in[1], F_SETFL, O_NONBLOCK);
    ax.id = id;
    ax.pid = ax.group = pid;
    ax.status = 0;
    ax.exited_ms = 0;
    ax.out = out[0];
    ax.err = err[0];
    ax.in = in[1];
    ax.in_end = 0;
    ax.pending_len = 0;
}

static void agent_leave(int *fd) {
    if (*fd < 0) return;
    for (int i = 0; i < AGENT_LEFTOVERS; i++)
        if (leftovers[i] < 0) { leftovers[i] = *fd; *fd = -1; return; }
    close_fd(fd);  /* too many left behind: this one's writer now gets EPIPE */
}

static void agent_reap(void);

/* Over: exited and drained, or the grace time after its exit has passed. */
static void agent_maybe_finish(void) {
    if (!ax.id || ax.pid) return;
    if ((ax.out >= 0 || ax.err >= 0) && now_ms() - ax.exited_ms < AGENT_GRACE_MS) return;
    agent_leave(&ax.out);
    agent_leave(&ax.err);
    close_fd(&ax.in);
    ax.pending_len = 0;
    agent_reap();  /* its orphans that died with it (a killed group): gone before the next command looks */
    send_u32('X', ax.id, (uint32_t)ax.status);
    ax.id = 0;
}

static void agent_reap(void) {
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        if (pid != ax.pid) continue;  /* an orphan: reaped, nothing more */
        ax.status = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
        ax.pid = 0;
        ax.exited_ms = now_ms();
    }
}

/* Relay what one of the command's pipes has (or drop a left-over pipe's). */
static void agent_relay(int *fd, char kind) {
    unsigned char buf[AGENT_CHUNK];
    ssize_t r = read(*fd, buf, sizeof buf);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (r <= 0) { close_fd(fd); return; }
    if (kind) send_frame(kind, ax.id, buf, (size_t)r);
}

static void agent_request(char kind, uint32_t id, unsigned char *payload, size_t len) {
    switch (kind) {
    case 'E': agent_start(id, (char *)payload, len); break;
    case 'I': agent_stdin(id, payload, len); break;
    case 'C': if (id == ax.id) { ax.in_end = 1; agent_flush_stdin(); } break;
    case 'K': agent_kill(id); break;
    default: fprintf(stderr, "cleanroom-helper: agent: unknown request kind %d\n", kind);
    }
}

static int agent(void) {
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) die("signalfd", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_CHILD_SUBREAPER, 1);  /* orphans come to us even without a PID namespace */
    /* Not dumpable: a command running as the container's root cannot open /proc/1/fd
     * and write into the channel (that needs CAP_SYS_PTRACE); each command is dumpable
     * again once it execs. */
    prctl(PR_SET_DUMPABLE, 0);
    fcntl(0, F_SETFD, FD_CLOEXEC);
    fcntl(1, F_SETFD, FD_CLOEXEC);
    for (int i = 0; i < AGENT_LEFTOVERS; i++) leftovers[i] = -1;
    ax.out = ax.err = ax.in = -1;
    size_t cap = AGENT_HEAD + AGENT_MAX_PAYLOAD, have = 0;
    unsigned char *ctl = malloc(cap);
    if (!ctl) die("out of memory", NULL);
    send_frame('H', 0, "cleanroom-agent 1", 17);
    for (;;) {
        struct pollfd fds[5 + AGENT_LEFTOVERS];
        int n = 0;
        fds[n++] = (struct pollfd){.fd = 0, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = ax.out, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = ax.err, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = ax.pending_len ? ax.in : -1, .events = POLLOUT};
        for (int i = 0; i < AGENT_LEFTOVERS; i++) fds[n++] = (struct pollfd){.fd = leftovers[i], .events = POLLIN};
        int timeout = -1;
        if (ax.id && !ax.pid) {
            long left = AGENT_GRACE_MS - (now_ms() - ax.exited_ms);
            timeout = left > 0 ? (int)left : 0;
        }
        if (poll(fds, (nfds_t)n, timeout) < 0 && errno != EINTR) die("poll", strerror(errno));
        if (fds[1].revents) {
            struct signalfd_siginfo si;
            int stop = 0;
            while (read(sfd, &si, sizeof si) == sizeof si)
                if (si.ssi_signo != SIGCHLD) stop = (int)si.ssi_signo;
            if (stop) {  /* stopped from outside: take the running command with us */
                agent_kill(ax.id);
                return 128 + stop;
            }
            agent_reap();
        }
        /* The command's output before its exit status: drain what is there now. */
        if (fds[2].revents) agent_relay(&ax.out, 'O');
        if (fds[3].revents) agent_relay(&ax.err, 'R');
        if (fds[4].revents) agent_flush_stdin();
        for (int i = 0; i < AGENT_LEFTOVERS; i++)
            if (fds[5 + i].revents) agent_relay(&leftovers[i], 0);
        if (fds[0].revents) {
            ssize_t r = read(0, ctl + have, cap - have);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {  /* the engine hung up: the session is over */
                agent_kill(ax.id);
                return 0;
            }
            have += (size_t)r;
            size_t at = 0;
            while (have - at >= AGENT_HEAD) {
                uint32_t len = get32(ctl + at + 8);
                if (len > AGENT_MAX_PAYLOAD) die("agent: a request larger than 1 MiB", NULL);
                if (have - at < AGENT_HEAD + len) break;
                agent_request((char)ctl[at], get32(ctl + at + 4), ctl + at + AGENT_HEAD, len);
                at += AGENT_HEAD + len;
            }
            memmove(ctl, ctl + at, have - at);
            have -= at;
        }
        agent_maybe_finish();
    }
}

int main(int argc, char **argv) {
    int keep = 0, receiving = 0;
    char *user = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "+kRAu:")) != -1) {
        switch (opt) {
        case 'A': return agent();
        case 'k': keep = 1; break;
        case 'R': receiving = 1; break;
        case 'u': user = optarg; break;
        default: die("usage: cleanroom-helper [-k] [-R] [-u USER[:GROUP]] [-- COMMAND [ARGS...]] | -A", NULL);
        }
    }
    char **command = argv + optind;
    if (receiving) command = receive();
    else if (optind >= argc) die("no command given", NULL);
    if (user) switch_user(user);
    if (!keep) drop_switch_caps();
    execvp(command[0], command);
    int code = errno == ENOENT ? 127 : 126;
    fprintf(stderr, "cleanroom-helper: %s: %s\n", command[0], strerror(errno));
    return code;
}
