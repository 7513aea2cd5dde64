/*
 * cleanroom-helper: the first thing that runs in a sandbox (or a session's exec) when
 * the command must not run as the container's root, or must wait to be confined.
 *
 * On cgroup v1 a process can be moved between cgroups only by its own uid, so the
 * engine places the sandbox while it still runs as the container's root (which is the
 * engine's uid outside); this helper then switches to the user asked for and execs
 * the command. It is mounted read-only from the host and built static, so no image
 * needs to contain anything.
 *
 *   cleanroom-helper [-W] [-s] [-k] [-u USER[:GROUP]] -- COMMAND [ARGS...]
 *   cleanroom-helper -R [-k] [-u USER[:GROUP]]
 *
 *   -W  wait (at most 10 s) until this process sits in the sandbox's cgroups, i.e.
 *       every line of /proc/1/cgroup naming cleanroom's subtree is also in
 *       /proc/self/cgroup (a session's exec starts outside them: the engine moves it)
 *   -s  start a new session (the engine kills the whole process group on a timeout)
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
 *
 * Exit codes: 125 the helper failed, 126 the command is not executable, 127 not found.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_GROUPS 64
#define MAX_REQUEST (1 << 20)

static void die(const char *what, const char *detail) {
    fprintf(stderr, "cleanroom-helper: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(125);
}

static int read_file(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (int)n;
}

/* Every line of /proc/1/cgroup naming the subtree is also one of ours; when none
 * names it (a cgroup namespace hides the path), the two files must be equal. */
static int confined(void) {
    char init[8192], self[8192];
    if (read_file("/proc/1/cgroup", init, sizeof init) < 0 || read_file("/proc/self/cgroup", self, sizeof self) < 0)
        return 0;
    int named = 0;
    char *save = NULL;
    for (char *line = strtok_r(init, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strstr(line, "cleanroom")) continue;
        named = 1;
        char needle[1024];
        snprintf(needle, sizeof needle, "%s\n", line);
        if (!strstr(self, needle)) return 0;
    }
    if (named) return 1;
    read_file("/proc/1/cgroup", init, sizeof init);
    return strcmp(init, self) == 0;
}

static void wait_confined(void) {
    struct timespec pause = {0, 500000};  /* 0.5 ms: the engine places it within milliseconds */
    for (int i = 0; i < 20000; i++) {
        if (confined()) return;
        nanosleep(&pause, NULL);
    }
    die("this process was not moved into the sandbox's cgroups within 10 s; nothing was run", NULL);
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
        die("no such user in the image's /etc/passwd", spec);
    }
    if (group && *group) {
        if (!numeric(group, &gid) && !group_lookup(group, &gid)) die("no such group in the image's /etc/group", group);
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

int main(int argc, char **argv) {
    int wait = 0, new_session = 0, keep = 0, receiving = 0;
    char *user = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "+WskRu:")) != -1) {
        switch (opt) {
        case 'W': wait = 1; break;
        case 's': new_session = 1; break;
        case 'k': keep = 1; break;
        case 'R': receiving = 1; break;
        case 'u': user = optarg; break;
        default: die("usage: cleanroom-helper [-W] [-s] [-k] [-R] [-u USER[:GROUP]] [-- COMMAND [ARGS...]]", NULL);
        }
    }
    char **command = argv + optind;
    if (receiving) command = receive();
    else if (optind >= argc) die("no command given", NULL);
    if (wait) wait_confined();
    if (new_session) setsid();
    if (user) switch_user(user);
    if (!keep) drop_switch_caps();
    execvp(command[0], command);
    int code = errno == ENOENT ? 127 : 126;
    fprintf(stderr, "cleanroom-helper: %s: %s\n", command[0], strerror(errno));
    return code;
}
