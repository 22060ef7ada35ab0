/* preload_probe: the "unmodified program" that preload_test runs under
 * libegress-preload.so. Plain C and libc only: it knows nothing of egressd,
 * it calls connect(), sendto() and sendmsg() as any program would, and prints
 * one machine-readable line per result on stdout, each with a single write()
 * so that lines from threads and forked children never interleave:
 *
 *   probe pid=PID                                  (always first)
 *   connect RC ERR ms=N local=A:P peer=A:P state=S flags=same|changed errno=kept|changed fd=N
 *   so_error RC ERR ms=N local=A:P peer=A:P state=S   (after EINPROGRESS or EINTR: writable + SO_ERROR)
 *   echo DATA                                      (what the echo server sent back, "-" for nothing)
 *
 * RC is 0 or -1, ERR the errno name or "-". errno=kept: a successful call
 * left errno at the sentinel the probe set before it. flags: F_GETFL after
 * the call against before it. IPv6 endpoints print as [ADDR]:PORT.
 *
 * Commands (ADDR is an IPv4 or IPv6 literal; --v6 makes an AF_INET6 socket,
 * an IPv4 ADDR becoming ::ffff:ADDR):
 *   connect [--nonblock] [--v6] [--udp] [--sndtimeo MS] [--alarm MS] [--restart] [--crash-handler]
 *           [--wait MS] [--then-wait MS] [--bind ADDR] [--send TEXT] [--count N]
 *           [--close] [--step] [--hold] [--addrlen N] ADDR PORT
 *       --alarm: a SIGALRM handler (SA_RESTART with --restart) fires MS into
 *       the call and prints "alarm". --crash-handler: SIGSEGV and SIGBUS
 *       handlers as a crash reporter installs them. --wait: after EINPROGRESS, wait up to MS (default 10000)
 *       for the connect to finish; --then-wait: the same after EINTR (default:
 *       no wait). --addrlen: pass N as connect()'s address length (24: the
 *       RFC 2133 sockaddr_in6, which the kernel accepts). --count: N
 *       sockets, kept open unless --close. --step: before each connect after
 *       the first, print "step I" and wait for a line on stdin. --hold: at
 *       the end print "hold", wait for a line, then print each socket still
 *       open as it is now ("held fd=N peer=A:P state=S").
 *   fastopen [--nonblock] [--dontwait] [--v6] [--sendmsg] [--wait MS] ADDR PORT TEXT
 *       sendto() (or sendmsg()) with MSG_FASTOPEN (and MSG_DONTWAIT) on a
 *       fresh socket; after EINPROGRESS, waits (as connect's --wait), then
 *       sends "+later" itself; then half-closes and prints what the echo
 *       server returned.
 *   threads T M ADDR PORT [--hold]
 *       T threads start together and make M blocking connects each, holding
 *       every socket: "thread I ok=K fail=F err=E", then
 *       "ports total=N distinct=D wrongpeer=W". --hold: "hold connected"
 *       and "hold joined" (after the threads ended and the sockets closed,
 *       with "joined fds=N": descriptors beyond 0-2 still open).
 *   fork N M ADDR PORT [--hold]
 *       connects once ("connect ..."), forks N children that make M connects
 *       each ("child I pid=P ok=K fail=F err=E") while the parent makes M too
 *       ("parent ok=K fail=F err=E"); --hold: "hold" once all have reported,
 *       the children still alive; then "reaped I status=S" and one last
 *       parent connect.
 *   execfds ADDR PORT [ADDR2 PORT2]
 *       connects (the socket without FD_CLOEXEC: "mine fd=N"), lists its
 *       descriptors ("fd before N cloexec=0|1 target=T"), then execs itself
 *       as "fds [ADDR2 PORT2]".
 *   fds [ADDR PORT]
 *       lists its descriptors ("fd after ..."), then connects if asked.
 *   closefork ADDR PORT
 *       connects, then closes every descriptor from 3 up, as a daemon does,
 *       opens /dev/null 8 times (taking the numbers just freed) and forks: the
 *       child ("child open=K of=8") and then the parent ("parent open=K of=8")
 *       count how many of those 8 are still open; then the parent connects
 *       again.
 *   closethread ADDR PORT
 *       the same inside a thread, which then ends: "after-thread open=K of=8".
 *   sigconnect ADDR PORT
 *       connect() from a SIGUSR1 handler raised in main: "handler RC ERR local=A:P".
 *   sigstorm N H ADDR PORT
 *       N blocking connects in main while a 1 ms SIGALRM timer (SA_RESTART)
 *       runs a handler that connects too (at most H times):
 *       "main ok=K eintr=I fail=F err=E" and "handler ok=K fail=F err=E".
 *       An EINTR in main counts as ok once the connect finishes.
 *   unix PATH          connect() an AF_UNIX stream socket: "unix RC ERR".
 *   env [ARGS...]      "env NAME=VALUE" (or "env NAME" when unset) for each
 *                      EGRESS_* variable and LD_PRELOAD, then "arg I VALUE".
 *   exit N             exits with status N.
 * Exit status: 0 (or exit's N), or 2 on a usage error.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* What errno holds before each call: a value no call sets, so a success
 * that touched errno shows. */
#define ERRNO_SENTINEL 4242
/* How long the probe waits for anything (writability, an echo, a reply):
 * a safety net, far above what any test expects. */
#define SAFETY_MS 10000

/* One line, one write(). */
static void say(const char* fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t off = 0;
    while (off < n) {
        ssize_t w = write(1, buf + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        off += w;
    }
}

static void usage(const char* why) {
    fprintf(stderr, "preload_probe: %s (see the comment at the top of preload_probe.c)\n", why);
    exit(2);
}

static const char* errname(int e) {
    const char* n = strerrorname_np(e);
    return n ? n : "E?";
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Reads one line from stdin (the test's go-ahead); exits on end-of-file. */
static void wait_line(void) {
    char c;
    for (;;) {
        ssize_t n = read(0, &c, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) exit(0);
        if (c == '\n') return;
    }
}

struct target {
    struct sockaddr_storage ss;
    socklen_t len;
    int family;
};

/* ADDR PORT into a sockaddr; v6: an AF_INET6 one, mapping an IPv4 ADDR. */
static void parse_target(const char* addr, const char* port, int v6, struct target* t) {
    memset(t, 0, sizeof *t);
    char* end;
    long p = strtol(port, &end, 10);
    if (*end || p < 0 || p > 65535) usage("bad port");
    struct sockaddr_in* s4 = (struct sockaddr_in*)&t->ss;
    struct sockaddr_in6* s6 = (struct sockaddr_in6*)&t->ss;
    struct in_addr a4;
    if (inet_pton(AF_INET, addr, &a4) == 1 && !v6) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((unsigned short)p);
        s4->sin_addr = a4;
        t->len = sizeof *s4;
    } else if (inet_pton(AF_INET, addr, &a4) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((unsigned short)p);
        s6->sin6_addr.s6_addr[10] = 0xff;
        s6->sin6_addr.s6_addr[11] = 0xff;
        memcpy(&s6->sin6_addr.s6_addr[12], &a4, 4);
        t->len = sizeof *s6;
    } else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((unsigned short)p);
        t->len = sizeof *s6;
    } else {
        usage("bad address");
    }
    t->family = t->ss.ss_family;
}

static void format_sa(const struct sockaddr_storage* ss, char* out, size_t n) {
    char a[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in* s = (const struct sockaddr_in*)ss;
        inet_ntop(AF_INET, &s->sin_addr, a, sizeof a);
        snprintf(out, n, "%s:%u", a, ntohs(s->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6* s = (const struct sockaddr_in6*)ss;
        inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof a);
        snprintf(out, n, "[%s]:%u", a, ntohs(s->sin6_port));
    } else {
        snprintf(out, n, "-");
    }
}

static void local_of(int fd, char* out, size_t n) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (getsockname(fd, (struct sockaddr*)&ss, &len) != 0) ss.ss_family = AF_UNSPEC;
    format_sa(&ss, out, n);
}

static void peer_of(int fd, char* out, size_t n) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (getpeername(fd, (struct sockaddr*)&ss, &len) != 0) ss.ss_family = AF_UNSPEC;
    format_sa(&ss, out, n);
}

static const char* tcp_state(int fd) {
    static const char* names[] = {"?",         "ESTABLISHED", "SYN_SENT",   "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
                                  "TIME_WAIT", "CLOSE",       "CLOSE_WAIT", "LAST_ACK", "LISTEN",    "CLOSING"};
    struct tcp_info info;
    socklen_t len = sizeof info;
    memset(&info, 0, sizeof info);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return "-";
    return info.tcpi_state < sizeof names / sizeof names[0] ? names[info.tcpi_state] : "?";
}

/* Waits for writability, then reads SO_ERROR as a program's event loop
 * would; a socket that is writable but not connected reports ENOTCONN, and
 * one still connecting after max_ms reports PENDING. Prints "so_error ...";
 * returns 0 when connected. */
static int finish_connect(int fd, int max_ms) {
    const double t0 = now_ms();
    struct pollfd p;
    p.fd = fd;
    p.events = POLLOUT;
    p.revents = 0;
    int r;
    do {
        int left = max_ms - (int)(now_ms() - t0);
        r = poll(&p, 1, left > 0 ? left : 0);
    } while (r < 0 && errno == EINTR);
    const int ms = (int)(now_ms() - t0);
    if (r == 0) {
        say("so_error -1 PENDING ms=%d state=%s", ms, tcp_state(fd));
        return -1;
    }
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    char local[80], peer[80];
    local_of(fd, local, sizeof local);
    peer_of(fd, peer, sizeof peer);
    if (err == 0 && strcmp(peer, "-") == 0) err = ENOTCONN;
    say("so_error %d %s ms=%d local=%s peer=%s state=%s", err ? -1 : 0, err ? errname(err) : "-", ms, local, peer,
        tcp_state(fd));
    return err ? -1 : 0;
}

/* Sends `extra` (if any), half-closes, and prints everything the echo
 * server sends back until it closes. */
static void echo_exchange(int fd, const char* extra) {
    if (extra && *extra) {
        size_t len = strlen(extra);
        if (send(fd, extra, len, MSG_NOSIGNAL) != (ssize_t)len) say("send -1 %s", errname(errno));
    }
    shutdown(fd, SHUT_WR);
    char buf[512];
    size_t got = 0;
    const double t0 = now_ms();
    for (;;) {
        struct pollfd p;
        p.fd = fd;
        p.events = POLLIN;
        p.revents = 0;
        int left = SAFETY_MS - (int)(now_ms() - t0);
        if (left <= 0 || poll(&p, 1, left) <= 0) break;
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) break;
        got += (size_t)n;
        if (got == sizeof buf - 1) break;
    }
    buf[got] = 0;
    say("echo %s", got ? buf : "-");
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig) {
    (void)sig;
    alarms++;
    (void)!write(1, "alarm\n", 6); /* the test's cue: the call has been interrupted */
}

static void arm_alarm(int ms, int restart, void (*handler)(int), int interval) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it;
    memset(&it, 0, sizeof it);
    it.it_value.tv_sec = ms / 1000;
    it.it_value.tv_usec = (ms % 1000) * 1000;
    if (interval) it.it_interval = it.it_value;
    setitimer(ITIMER_REAL, &it, NULL);
}

/* As crash reporters do: SIGSEGV and SIGBUS caught (without SA_RESTART, as
 * they never interrupt a call), reported, then the default action. */
static void on_crash(int sig) {
    (void)!write(2, "crash\n", 6);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_crash_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_crash;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

static void disarm_alarm(void) {
    struct itimerval it;
    memset(&it, 0, sizeof it);
    setitimer(ITIMER_REAL, &it, NULL);
}

struct connect_opts {
    int nonblock, v6, udp, sndtimeo_ms, alarm_ms, restart, wait_ms, then_wait_ms, count, close_each, step, hold;
    int addrlen, crash_handler;
    const char *bind_addr, *send_text;
};

/* One connect() as the options say; prints its line and any follow-up.
 * Returns the socket, or -1 once closed (--close) or when none was made. */
static int one_connect(const struct connect_opts* o, const struct target* t) {
    int fd = socket(t->family, o->udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    if (fd < 0) {
        say("socket -1 %s", errname(errno));
        return -1;
    }
    if (o->nonblock) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (o->sndtimeo_ms) {
        struct timeval tv;
        tv.tv_sec = o->sndtimeo_ms / 1000;
        tv.tv_usec = (o->sndtimeo_ms % 1000) * 1000;
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    if (o->bind_addr) {
        struct target b;
        parse_target(o->bind_addr, "0", t->family == AF_INET6, &b);
        if (bind(fd, (struct sockaddr*)&b.ss, b.len) != 0) say("bind -1 %s", errname(errno));
    }
    const int before = fcntl(fd, F_GETFL);
    alarms = 0;
    if (o->crash_handler) install_crash_handler();
    if (o->alarm_ms) arm_alarm(o->alarm_ms, o->restart, on_alarm, 0);
    const double t0 = now_ms();
    errno = ERRNO_SENTINEL;
    const int rc = connect(fd, (const struct sockaddr*)&t->ss, o->addrlen ? (socklen_t)o->addrlen : t->len);
    const int err = errno;
    const int ms = (int)(now_ms() - t0);
    if (o->alarm_ms) disarm_alarm();
    const int after = fcntl(fd, F_GETFL);
    char local[80], peer[80];
    local_of(fd, local, sizeof local);
    peer_of(fd, peer, sizeof peer);
    const char* state = o->udp ? "-" : tcp_state(fd);
    if (rc == 0)
        say("connect 0 - ms=%d local=%s peer=%s state=%s flags=%s errno=%s fd=%d signals=%d", ms, local, peer, state,
            before == after ? "same" : "changed", err == ERRNO_SENTINEL ? "kept" : errname(err), fd, (int)alarms);
    else
        say("connect -1 %s ms=%d local=%s peer=%s state=%s flags=%s fd=%d signals=%d", errname(err), ms, local, peer,
            state, before == after ? "same" : "changed", fd, (int)alarms);
    int connected = rc == 0;
    if (rc != 0 && err == EINPROGRESS) connected = finish_connect(fd, o->wait_ms) == 0;
    if (rc != 0 && err == EINTR && o->then_wait_ms) connected = finish_connect(fd, o->then_wait_ms) == 0;
    if (connected && o->send_text) echo_exchange(fd, o->send_text);
    if (!o->close_each) return fd;
    close(fd);
    return -1;
}

static int need_int(int argc, char** argv, int* i) {
    if (*i + 1 >= argc) usage("an option lacks its value");
    return atoi(argv[++*i]);
}

static int cmd_connect(int argc, char** argv) {
    struct connect_opts o;
    memset(&o, 0, sizeof o);
    o.count = 1;
    o.wait_ms = SAFETY_MS;
    const char* pos[2];
    int npos = 0;
    for (int i = 0; i < argc; ++i) {
        const char* a = argv[i];
        if (!strcmp(a, "--nonblock"))
            o.nonblock = 1;
        else if (!strcmp(a, "--v6"))
            o.v6 = 1;
        else if (!strcmp(a, "--udp"))
            o.udp = 1;
        else if (!strcmp(a, "--crash-handler"))
            o.crash_handler = 1;
        else if (!strcmp(a, "--restart"))
            o.restart = 1;
        else if (!strcmp(a, "--close"))
            o.close_each = 1;
        else if (!strcmp(a, "--step"))
            o.step = 1;
        else if (!strcmp(a, "--hold"))
            o.hold = 1;
        else if (!strcmp(a, "--sndtimeo"))
            o.sndtimeo_ms = need_int(argc, argv, &i);
        else if (!strcmp(a, "--alarm"))
            o.alarm_ms = need_int(argc, argv, &i);
        else if (!strcmp(a, "--wait"))
            o.wait_ms = need_int(argc, argv, &i);
        else if (!strcmp(a, "--then-wait"))
            o.then_wait_ms = need_int(argc, argv, &i);
        else if (!strcmp(a, "--count"))
            o.count = need_int(argc, argv, &i);
        else if (!strcmp(a, "--addrlen"))
            o.addrlen = need_int(argc, argv, &i);
        else if (!strcmp(a, "--bind")) {
            if (i + 1 >= argc) usage("--bind lacks its value");
            o.bind_addr = argv[++i];
        } else if (!strcmp(a, "--send")) {
            if (i + 1 >= argc) usage("--send lacks its value");
            o.send_text = argv[++i];
        } else if (npos < 2)
            pos[npos++] = a;
        else
            usage("too many arguments");
    }
    if (npos != 2) usage("connect needs ADDR PORT");
    struct target t;
    parse_target(pos[0], pos[1], o.v6, &t);
    int held[64], nheld = 0;
    for (int k = 0; k < o.count; ++k) {
        if (k > 0 && o.step) {
            say("step %d", k);
            wait_line();
        }
        const int fd = one_connect(&o, &t);
        if (fd >= 0 && nheld < 64) held[nheld++] = fd;
    }
    if (o.hold) {
        say("hold");
        wait_line();
        for (int k = 0; k < nheld; ++k) {
            char peer[80];
            peer_of(held[k], peer, sizeof peer);
            say("held fd=%d peer=%s state=%s", held[k], peer, o.udp ? "-" : tcp_state(held[k]));
        }
    }
    return 0;
}

static int cmd_fastopen(int argc, char** argv) {
    int nonblock = 0, v6 = 0, use_sendmsg = 0, dontwait = 0, wait_ms = SAFETY_MS;
    const char* pos[3];
    int npos = 0;
    for (int i = 0; i < argc; ++i) {
        if (!strcmp(argv[i], "--nonblock"))
            nonblock = 1;
        else if (!strcmp(argv[i], "--v6"))
            v6 = 1;
        else if (!strcmp(argv[i], "--sendmsg"))
            use_sendmsg = 1;
        else if (!strcmp(argv[i], "--dontwait"))
            dontwait = MSG_DONTWAIT;
        else if (!strcmp(argv[i], "--wait"))
            wait_ms = need_int(argc, argv, &i);
        else if (npos < 3)
            pos[npos++] = argv[i];
        else
            usage("too many arguments");
    }
    if (npos != 3) usage("fastopen needs ADDR PORT TEXT");
    struct target t;
    parse_target(pos[0], pos[1], v6, &t);
    const char* text = pos[2];
    const size_t len = strlen(text);
    int fd = socket(t.family, SOCK_STREAM, 0);
    if (nonblock) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    const int before = fcntl(fd, F_GETFL);
    const double t0 = now_ms();
    errno = ERRNO_SENTINEL;
    ssize_t rc;
    if (use_sendmsg) {
        struct iovec iov;
        iov.iov_base = (void*)text;
        iov.iov_len = len;
        struct msghdr m;
        memset(&m, 0, sizeof m);
        m.msg_name = &t.ss;
        m.msg_namelen = t.len;
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        rc = sendmsg(fd, &m, MSG_FASTOPEN | MSG_NOSIGNAL | dontwait);
    } else {
        rc = sendto(fd, text, len, MSG_FASTOPEN | MSG_NOSIGNAL | dontwait, (const struct sockaddr*)&t.ss, t.len);
    }
    const int err = errno;
    const int ms = (int)(now_ms() - t0);
    const int after = fcntl(fd, F_GETFL);
    char local[80], peer[80];
    local_of(fd, local, sizeof local);
    peer_of(fd, peer, sizeof peer);
    if (rc >= 0)
        say("fastopen %d - ms=%d local=%s peer=%s state=%s flags=%s errno=%s", (int)rc, ms, local, peer, tcp_state(fd),
            before == after ? "same" : "changed", err == ERRNO_SENTINEL ? "kept" : errname(err));
    else
        say("fastopen -1 %s ms=%d local=%s peer=%s state=%s flags=%s", errname(err), ms, local, peer, tcp_state(fd),
            before == after ? "same" : "changed");
    if (rc >= 0)
        echo_exchange(fd, NULL);
    else if (err == EINPROGRESS && finish_connect(fd, wait_ms) == 0)
        echo_exchange(fd, "+later");
    close(fd);
    return 0;
}

/* Descriptors beyond 0, 1 and 2, except the one listing them. */
static int list_fds(const char* label) {
    DIR* d = opendir("/proc/self/fd");
    if (!d) return -1;
    int count = 0;
    struct dirent* e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        int fd = atoi(e->d_name);
        if (fd == dirfd(d)) continue;
        char path[64], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n > 0 ? n : 0] = 0;
        const int flags = fcntl(fd, F_GETFD);
        if (label) say("fd %s %d cloexec=%d target=%s", label, fd, (flags & FD_CLOEXEC) ? 1 : 0, target);
        if (fd > 2) ++count;
    }
    closedir(d);
    return count;
}

struct thread_job {
    int index, m, ok, fail, first_err;
    const struct target* t;
    int* fds;
    pthread_barrier_t *start, *done, *release;
};

static void* thread_main(void* arg) {
    struct thread_job* j = arg;
    pthread_barrier_wait(j->start);
    for (int k = 0; k < j->m; ++k) {
        int fd = socket(j->t->family, SOCK_STREAM, 0);
        if (fd >= 0 && connect(fd, (const struct sockaddr*)&j->t->ss, j->t->len) == 0) {
            j->fds[j->ok++] = fd;
            continue;
        }
        if (!j->fail++) j->first_err = errno;
        if (fd >= 0) close(fd);
    }
    pthread_barrier_wait(j->done);
    pthread_barrier_wait(j->release);
    return NULL;
}

static int compare_strings(const void* a, const void* b) { return strcmp(*(char* const*)a, *(char* const*)b); }

static int cmd_threads(int argc, char** argv) {
    if (argc < 4) usage("threads needs T M ADDR PORT");
    const int nt = atoi(argv[0]), m = atoi(argv[1]);
    const int hold = argc > 4 && !strcmp(argv[4], "--hold");
    if (nt < 1 || m < 1) usage("threads needs T >= 1 and M >= 1");
    struct target t;
    parse_target(argv[2], argv[3], 0, &t);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl); /* T*M sockets held at once */
    pthread_barrier_t start, done, release;
    pthread_barrier_init(&start, NULL, (unsigned)nt);
    pthread_barrier_init(&done, NULL, (unsigned)nt + 1);
    pthread_barrier_init(&release, NULL, (unsigned)nt + 1);
    struct thread_job* jobs = calloc((size_t)nt, sizeof *jobs);
    pthread_t* tids = calloc((size_t)nt, sizeof *tids);
    for (int i = 0; i < nt; ++i) {
        jobs[i].index = i;
        jobs[i].m = m;
        jobs[i].t = &t;
        jobs[i].fds = calloc((size_t)m, sizeof(int));
        jobs[i].start = &start;
        jobs[i].done = &done;
        jobs[i].release = &release;
        pthread_create(&tids[i], NULL, thread_main, &jobs[i]);
    }
    pthread_barrier_wait(&done);
    char** locals = calloc((size_t)nt * (size_t)m, sizeof(char*));
    int total = 0, wrong_peer = 0;
    char want[80];
    format_sa(&t.ss, want, sizeof want);
    for (int i = 0; i < nt; ++i) {
        say("thread %d ok=%d fail=%d err=%s", i, jobs[i].ok, jobs[i].fail,
            jobs[i].fail ? errname(jobs[i].first_err) : "-");
        for (int k = 0; k < jobs[i].ok; ++k) {
            char buf[80];
            peer_of(jobs[i].fds[k], buf, sizeof buf);
            if (strcmp(buf, want) != 0) ++wrong_peer;
            local_of(jobs[i].fds[k], buf, sizeof buf);
            locals[total++] = strdup(buf);
        }
    }
    qsort(locals, (size_t)total, sizeof *locals, compare_strings);
    int distinct = 0;
    for (int k = 0; k < total; ++k)
        if (k == 0 || strcmp(locals[k], locals[k - 1]) != 0) ++distinct;
    say("ports total=%d distinct=%d wrongpeer=%d", total, distinct, wrong_peer);
    if (hold) {
        say("hold connected");
        wait_line();
    }
    pthread_barrier_wait(&release);
    for (int i = 0; i < nt; ++i) {
        pthread_join(tids[i], NULL);
        for (int k = 0; k < jobs[i].ok; ++k) close(jobs[i].fds[k]);
    }
    say("joined fds=%d", list_fds(NULL));
    for (int k = 0; k < total; ++k) free(locals[k]);
    free(locals);
    for (int i = 0; i < nt; ++i) free(jobs[i].fds);
    free(jobs);
    free(tids);
    if (hold) {
        say("hold joined");
        wait_line();
    }
    return 0;
}

/* M blocking connects, each socket closed after; counts into ok/fail. */
static void connect_loop(const struct target* t, int m, int* ok, int* fail, int* first_err) {
    *ok = *fail = *first_err = 0;
    for (int k = 0; k < m; ++k) {
        int fd = socket(t->family, SOCK_STREAM, 0);
        if (fd >= 0 && connect(fd, (const struct sockaddr*)&t->ss, t->len) == 0)
            ++*ok;
        else if (!(*fail)++)
            *first_err = errno;
        if (fd >= 0) close(fd);
    }
}

static int cmd_fork(int argc, char** argv) {
    if (argc < 4) usage("fork needs N M ADDR PORT");
    const int n = atoi(argv[0]), m = atoi(argv[1]);
    const int hold = argc > 4 && !strcmp(argv[4], "--hold");
    struct target t;
    parse_target(argv[2], argv[3], 0, &t);
    struct connect_opts o;
    memset(&o, 0, sizeof o);
    o.wait_ms = SAFETY_MS;
    o.close_each = 1;
    one_connect(&o, &t); /* the parent's connection to egressd exists before the forks */
    int done[2], release[2];
    if (pipe(done) != 0 || pipe(release) != 0) return 1;
    pid_t* kids = calloc((size_t)n, sizeof *kids);
    for (int i = 0; i < n; ++i) {
        kids[i] = fork();
        if (kids[i] == 0) {
            close(done[0]);
            close(release[1]);
            int ok, fail, err;
            connect_loop(&t, m, &ok, &fail, &err);
            say("child %d pid=%d ok=%d fail=%d err=%s", i, (int)getpid(), ok, fail, fail ? errname(err) : "-");
            (void)!write(done[1], "x", 1);
            char c;
            while (read(release[0], &c, 1) > 0) {
            }
            _exit(fail ? 1 : 0);
        }
    }
    close(done[1]);
    close(release[0]);
    int ok, fail, err;
    connect_loop(&t, m, &ok, &fail, &err);
    say("parent ok=%d fail=%d err=%s", ok, fail, fail ? errname(err) : "-");
    for (int i = 0; i < n; ++i) {
        char c;
        if (read(done[0], &c, 1) != 1) break;
    }
    if (hold) {
        say("hold");
        wait_line();
    }
    close(release[1]);
    for (int i = 0; i < n; ++i) {
        int status = 0;
        waitpid(kids[i], &status, 0);
        say("reaped %d status=%d", i, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    free(kids);
    one_connect(&o, &t);
    return 0;
}

static int cmd_execfds(int argc, char** argv) {
    if (argc != 2 && argc != 4) usage("execfds needs ADDR PORT [ADDR2 PORT2]");
    struct target t;
    parse_target(argv[0], argv[1], 0, &t);
    struct connect_opts o;
    memset(&o, 0, sizeof o);
    o.wait_ms = SAFETY_MS;
    say("mine fd=%d", one_connect(&o, &t));
    list_fds("before");
    char* args[] = {(char*)"preload_probe", (char*)"fds", argc == 4 ? argv[2] : NULL, argc == 4 ? argv[3] : NULL, NULL};
    execv("/proc/self/exe", args);
    say("execv -1 %s", errname(errno));
    return 1;
}

static int cmd_fds(int argc, char** argv) {
    list_fds("after");
    if (argc == 2) {
        struct target t;
        parse_target(argv[0], argv[1], 0, &t);
        struct connect_opts o;
        memset(&o, 0, sizeof o);
        o.wait_ms = SAFETY_MS;
        one_connect(&o, &t);
    }
    return 0;
}

#define NULLS 8

/* Closes every descriptor from 3 up, then opens /dev/null NULLS times. */
static void close_all_then_reuse(int* nulls) {
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) max = 65536;
    for (int fd = 3; fd < max; ++fd) close(fd);
    for (int i = 0; i < NULLS; ++i) nulls[i] = open("/dev/null", O_RDONLY);
}

static int count_open(const int* nulls) {
    int n = 0;
    for (int i = 0; i < NULLS; ++i)
        if (nulls[i] >= 0 && fcntl(nulls[i], F_GETFD) >= 0) ++n;
    return n;
}

static int cmd_closefork(int argc, char** argv) {
    if (argc != 2) usage("closefork needs ADDR PORT");
    struct target t;
    parse_target(argv[0], argv[1], 0, &t);
    struct connect_opts o;
    memset(&o, 0, sizeof o);
    o.wait_ms = SAFETY_MS;
    o.close_each = 1;
    one_connect(&o, &t);
    int nulls[NULLS];
    close_all_then_reuse(nulls);
    const pid_t child = fork();
    if (child == 0) {
        say("child open=%d of=%d", count_open(nulls), NULLS);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    say("parent open=%d of=%d", count_open(nulls), NULLS);
    one_connect(&o, &t);
    return 0;
}

struct closer {
    const struct target* t;
    int nulls[NULLS];
};

static void* closer_main(void* arg) {
    struct closer* c = arg;
    struct connect_opts o;
    memset(&o, 0, sizeof o);
    o.wait_ms = SAFETY_MS;
    o.close_each = 1;
    one_connect(&o, c->t);
    close_all_then_reuse(c->nulls);
    return NULL;
}

static int cmd_closethread(int argc, char** argv) {
    if (argc != 2) usage("closethread needs ADDR PORT");
    struct closer c;
    struct target t;
    parse_target(argv[0], argv[1], 0, &t);
    c.t = &t;
    pthread_t tid;
    pthread_create(&tid, NULL, closer_main, &c);
    pthread_join(tid, NULL);
    say("after-thread open=%d of=%d", count_open(c.nulls), NULLS);
    return 0;
}

static struct target handler_target;
static volatile sig_atomic_t handler_rc = 1, handler_err, handler_fd = -1;

static void on_usr1(int sig) {
    (void)sig;
    const int saved = errno;
    handler_fd = socket(handler_target.family, SOCK_STREAM, 0);
    handler_rc = connect(handler_fd, (const struct sockaddr*)&handler_target.ss, handler_target.len);
    handler_err = errno;
    errno = saved;
}

static int cmd_sigconnect(int argc, char** argv) {
    if (argc != 2) usage("sigconnect needs ADDR PORT");
    parse_target(argv[0], argv[1], 0, &handler_target);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    char local[80];
    local_of(handler_fd, local, sizeof local);
    say("handler %d %s local=%s", (int)handler_rc, handler_rc ? errname(handler_err) : "-", local);
    return 0;
}

static volatile sig_atomic_t storm_max, storm_ok, storm_fail, storm_err;

static void on_storm(int sig) {
    (void)sig;
    if (storm_ok + storm_fail >= storm_max) return;
    const int saved = errno;
    const int fd = socket(handler_target.family, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (const struct sockaddr*)&handler_target.ss, handler_target.len) == 0) {
        storm_ok++;
    } else if (!storm_fail++) {
        storm_err = errno;
    }
    if (fd >= 0) close(fd);
    errno = saved;
}

static int cmd_sigstorm(int argc, char** argv) {
    if (argc != 4) usage("sigstorm needs N H ADDR PORT");
    const int n = atoi(argv[0]);
    storm_max = atoi(argv[1]);
    parse_target(argv[2], argv[3], 0, &handler_target);
    arm_alarm(1, 1, on_storm, 1);
    int ok = 0, eintr = 0, fail = 0, first_err = 0;
    for (int k = 0; k < n; ++k) {
        const int fd = socket(handler_target.family, SOCK_STREAM, 0);
        int rc = connect(fd, (const struct sockaddr*)&handler_target.ss, handler_target.len);
        if (rc != 0 && errno == EINTR) {
            ++eintr;
            struct pollfd p;
            p.fd = fd;
            p.events = POLLOUT;
            p.revents = 0;
            while (poll(&p, 1, SAFETY_MS) < 0 && errno == EINTR) {
            }
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            if (err == 0 && getpeername(fd, (struct sockaddr*)&ss, &sl) != 0) err = ENOTCONN;
            rc = err ? -1 : 0;
            errno = err;
        }
        if (rc == 0)
            ++ok;
        else if (!fail++)
            first_err = errno;
        close(fd);
    }
    disarm_alarm();
    say("main ok=%d eintr=%d fail=%d err=%s", ok, eintr, fail, fail ? errname(first_err) : "-");
    say("handler ok=%d fail=%d err=%s", (int)storm_ok, (int)storm_fail, storm_fail ? errname(storm_err) : "-");
    return 0;
}

static int cmd_unix(int argc, char** argv) {
    if (argc != 1) usage("unix needs PATH");
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, argv[0], sizeof a.sun_path - 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    errno = ERRNO_SENTINEL;
    int rc = connect(fd, (struct sockaddr*)&a, sizeof a);
    say("unix %d %s", rc, rc ? errname(errno) : "-");
    return 0;
}

static int cmd_env(int argc, char** argv) {
    static const char* names[] = {"EGRESS_SOCKET",   "EGRESS_POOL",  "EGRESS_BYPASS",
                                  "EGRESS_FALLBACK", "EGRESS_DEBUG", "LD_PRELOAD"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i) {
        const char* v = getenv(names[i]);
        if (v)
            say("env %s=%s", names[i], v);
        else
            say("env %s", names[i]);
    }
    for (int i = 0; i < argc; ++i) say("arg %d %s", i, argv[i]);
    return 0;
}

int main(int argc, char** argv) {
    /* As an ordinary program: a write to a closed socket kills it (the test
     * harness ignores SIGPIPE, and the disposition survives execve). */
    signal(SIGPIPE, SIG_DFL);
    say("probe pid=%d", (int)getpid());
    if (argc < 2) usage("no command");
    const char* cmd = argv[1];
    argc -= 2;
    argv += 2;
    if (!strcmp(cmd, "connect")) return cmd_connect(argc, argv);
    if (!strcmp(cmd, "fastopen")) return cmd_fastopen(argc, argv);
    if (!strcmp(cmd, "threads")) return cmd_threads(argc, argv);
    if (!strcmp(cmd, "fork")) return cmd_fork(argc, argv);
    if (!strcmp(cmd, "execfds")) return cmd_execfds(argc, argv);
    if (!strcmp(cmd, "fds")) return cmd_fds(argc, argv);
    if (!strcmp(cmd, "closefork")) return cmd_closefork(argc, argv);
    if (!strcmp(cmd, "closethread")) return cmd_closethread(argc, argv);
    if (!strcmp(cmd, "sigconnect")) return cmd_sigconnect(argc, argv);
    if (!strcmp(cmd, "sigstorm")) return cmd_sigstorm(argc, argv);
    if (!strcmp(cmd, "unix")) return cmd_unix(argc, argv);
    if (!strcmp(cmd, "env")) return cmd_env(argc, argv);
    if (!strcmp(cmd, "exit") && argc == 1) return atoi(argv[0]);
    usage("unknown command");
    return 2;
}
