// libegress-preload.so: loaded with LD_PRELOAD, it hands a program's TCP
// and UDP connects to egressd in adopt mode (PROTOCOL.md section 6a): the
// program's own socket travels to egressd, which binds a pool source,
// applies the pool's port strategy and connects it in place. The descriptor,
// its flags, options and event-loop registrations stay the program's. A
// UDP sendto() with an address of its own is the kernel's: not brokered.
//
// Written for any host program: no allocation, no locks, no exceptions and
// no C++ runtime on the connect path; errno is preserved on success; its
// own descriptors are close-on-exec; a forked child never uses the parent's
// connection to egressd.
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "channel.hpp"
#include "egress_proto.h"
#include "log.hpp"
#include "settings.hpp"

namespace egress::preload {
namespace {

using ConnectFn = int (*)(int, const sockaddr*, socklen_t);
using SendtoFn = ssize_t (*)(int, const void*, size_t, int, const sockaddr*, socklen_t);
using SendmsgFn = ssize_t (*)(int, const msghdr*, int);

ConnectFn g_connect;
SendtoFn g_sendto;
SendmsgFn g_sendmsg;
Settings g_settings;
RealCalls g_real;
pthread_once_t g_once = PTHREAD_ONCE_INIT;
std::atomic<bool> g_warned_unreachable{false};

// How long the shim waits for egressd's reply: it leaves as soon as
// egressd's connect() returns, so only a stuck egressd takes this long.
constexpr int kReplyWaitMs = 5000;
// A retry after a draining egressd's refusal needs at least this much of the
// reply wait left to be worth making.
constexpr long kMinRetryWaitMs = 10;
// A blocking caller's wait when the reply names no deadline.
constexpr std::uint32_t kDefaultWaitMs = 3000;

void warn(void*, const char* text) { (Line() << text).write(); }

void init() {
    g_connect = reinterpret_cast<ConnectFn>(::dlsym(RTLD_NEXT, "connect"));
    g_sendto = reinterpret_cast<SendtoFn>(::dlsym(RTLD_NEXT, "sendto"));
    g_sendmsg = reinterpret_cast<SendmsgFn>(::dlsym(RTLD_NEXT, "sendmsg"));
    g_real.connect = g_connect;
    g_real.sendmsg = g_sendmsg;
    Environment env;
    env.socket = ::getenv("EGRESS_SOCKET");
    env.pool = ::getenv("EGRESS_POOL");
    env.bypass = ::getenv("EGRESS_BYPASS");
    env.fallback = ::getenv("EGRESS_FALLBACK");
    env.debug = ::getenv("EGRESS_DEBUG");
    parse_settings(env, g_settings, warn, nullptr);
    channels_init();
    // A forked child is a process of its own: it says once for itself that
    // egressd is unreachable.
    ::pthread_atfork(nullptr, nullptr, [] { g_warned_unreachable.store(false); });
}

__attribute__((constructor)) void on_load() { ::pthread_once(&g_once, init); }

void ready() { ::pthread_once(&g_once, init); }

bool to_addr(const sockaddr* sa, socklen_t len, Addr& out) {
    if (!sa || len < sizeof(sa_family_t)) return false;
    out = Addr{};
    if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        std::memcpy(out.bytes, &in->sin_addr, 4);
        out.port = ntohs(in->sin_port);
        return true;
    }
    // The kernel takes an AF_INET6 address without sin6_scope_id (24 bytes,
    // RFC 2133's size) as well as the full one.
    constexpr socklen_t kSin6LenRfc2133 = 24;
    if (sa->sa_family == AF_INET6 && len >= kSin6LenRfc2133) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        out.v6 = true;
        std::memcpy(out.bytes, &in6->sin6_addr, 16);
        out.port = ntohs(in6->sin6_port);
        return true;
    }
    return false;
}

int tcp_state(int fd) {
    tcp_info info{};
    socklen_t len = sizeof info;
    return ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 ? info.tcpi_state : -1;
}

// Is the UDP socket `fd` connected to `dest`?
bool udp_connected_to(int fd, const Addr& dest) {
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    Addr got;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0 ||
        !to_addr(reinterpret_cast<const sockaddr*>(&peer), len, got))
        return false;
    return got.v6 == dest.v6 && got.port == dest.port && std::memcmp(got.bytes, dest.bytes, 16) == 0;
}

// Should this call go to egressd? Only for an unconnected TCP socket or any
// UDP socket (`udp` says which; a UDP socket may be connected again), and a
// destination that does not bypass it; everything else is the kernel's.
bool brokered(int fd, const sockaddr* sa, socklen_t len, Addr& dest, bool& udp) {
    if (!to_addr(sa, len, dest) || dest.port == 0) return false;
    int protocol = 0;
    socklen_t plen = sizeof protocol;
    if (::getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &plen) != 0 ||
        (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)) {
        if (g_settings.debug && protocol != 0) (Line() << "connect fd " << long{fd} << " to " << dest
                                                       << ": neither TCP nor UDP, passed to the kernel").write();
        return false;
    }
    udp = protocol == IPPROTO_UDP;
    if (bypassed(g_settings, dest)) {
        if (g_settings.debug) (Line() << "connect fd " << long{fd} << " to " << dest << ": bypass, direct").write();
        return false;
    }
    // A TCP connect already under way or done: the kernel answers (EALREADY,
    // EISCONN, or the outcome), as it would without the shim.
    return udp || tcp_state(fd) == TCP_CLOSE;
}

long now_ms() {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

// The socket's SO_SNDTIMEO in ms (rounded up), 0 when none.
std::uint32_t send_timeout_ms(int fd) {
    timeval tv{};
    socklen_t len = sizeof tv;
    if (::getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) != 0 || (tv.tv_sec == 0 && tv.tv_usec == 0)) return 0;
    const long long ms = tv.tv_sec * 1000LL + (tv.tv_usec + 999) / 1000;
    return ms > 0x7fffffff ? 0x7fffffffu : static_cast<std::uint32_t>(ms);
}

// Would the kernel restart a blocking connect() that a signal handler
// interrupted? Only without SO_SNDTIMEO, and when the handler has
// SA_RESTART. The shim cannot tell which signal came, so it restarts only
// when every handler the program installed has SA_RESTART, and otherwise
// returns EINTR (the connect carries on, as in the kernel).
bool kernel_would_restart(bool has_sndtimeo) {
    if (has_sndtimeo) return false;
    for (int sig = 1; sig < NSIG; ++sig) {
        // Faults are raised by the faulting thread itself: they never
        // interrupt a wait, so crash handlers (sanitizers, faulthandler,
        // Breakpad) without SA_RESTART do not count.
        if (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGTRAP || sig == SIGSYS)
            continue;
        struct sigaction sa;
        if (::sigaction(sig, nullptr, &sa) != 0) continue;  // reserved by libc
        if (!(sa.sa_flags & SA_SIGINFO) && (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN)) continue;
        if (!(sa.sa_flags & SA_RESTART)) return false;
    }
    return true;
}

// Blocking semantics for a blocking caller: waits for the connect egressd
// started, `wait_ms` at most. 0, or an errno.
int wait_connected(int fd, std::uint32_t wait_ms, bool has_sndtimeo) {
    const long deadline = now_ms() + wait_ms;
    for (;;) {
        const long left = deadline - now_ms();
        int r = 0;
        if (left > 0) {
            pollfd p{fd, POLLOUT, 0};
            r = ::poll(&p, 1, static_cast<int>(left));
            if (r < 0 && errno == EINTR && kernel_would_restart(has_sndtimeo)) continue;
            if (r < 0) return errno;
        }
        if (r == 0) {
            // Out of time: abort the half-open connect, so that it cannot
            // complete behind the caller's back, and say so.
            sockaddr unspec{};
            unspec.sa_family = AF_UNSPEC;
            g_connect(fd, &unspec, sizeof unspec);
            return ETIMEDOUT;
        }
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
        return err;
    }
}

int fail(int code) {
    errno = code;
    return -1;
}

// egressd could not take the request (`err` says why): fail closed with
// ENETUNREACH, or connect directly when EGRESS_FALLBACK=direct.
int unreachable(int fd, const sockaddr* sa, socklen_t len, const Addr& dest, int err, int saved_errno) {
    const Settings& s = g_settings;
    const bool direct = s.fallback == Fallback::direct;
    if (s.debug || (!direct && !g_warned_unreachable.exchange(true))) {
        Line l;
        l << "connect fd " << long{fd} << " to " << dest << ": egressd unreachable at " << s.socket_path << ": ";
        l.err(err);
        l << (direct ? "; connecting directly (EGRESS_FALLBACK=direct)"
                     : "; failing closed with ENETUNREACH (EGRESS_FALLBACK=direct would connect directly)");
        l.write();
    }
    if (!direct) return fail(ENETUNREACH);
    errno = saved_errno;  // what the failed try to reach egressd left there is not the program's
    return g_connect(fd, sa, len);
}

// The connect of `fd` to `sa` through egressd; the return value and errno
// of connect(2). `dontwait`: this one call is non-blocking (MSG_DONTWAIT).
int connect_via_egressd(int fd, const sockaddr* sa, socklen_t len, const Addr& dest, int saved_errno,
                        bool dontwait = false, bool udp = false) {
    const Settings& s = g_settings;
    if (s.pool_too_long) return fail(EINVAL);
    const long start = now_ms();
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0) return -1;
    const bool blocking = !(fl & O_NONBLOCK) && !dontwait;
    const std::uint32_t sndtimeo = blocking ? send_timeout_ms(fd) : 0;
    // egressd takes only non-blocking TCP sockets; a UDP socket's connect()
    // never waits, so it goes as it is (another thread may be using it).
    const bool set_flags = !udp && !(fl & O_NONBLOCK);
    if (set_flags && ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) return -1;
    const auto restore = [&] {
        if (set_flags) ::fcntl(fd, F_SETFL, fl);
    };

    Reply rep;
    int err = 0;
    // A blocking caller's SO_SNDTIMEO bounds the whole call, the wait for a
    // stuck egressd's reply included.
    const int reply_wait = sndtimeo && sndtimeo < static_cast<std::uint32_t>(kReplyWaitMs)
                               ? static_cast<int>(sndtimeo) : kReplyWaitMs;
    Exchange got = exchange_adopt(s, g_real, fd, dest, sndtimeo, reply_wait, blocking, rep, err);
    // ESHUTDOWN on a socket still untouched: the egressd of a connection
    // opened before its drain refused the request. Once more on a fresh
    // connection, which reaches a successor if one listens already; if that
    // egressd is stopping too, or none listens, it is unreachable.
    // egressd has not connected the socket (yet).
    const auto untouched = [&] { return udp ? !udp_connected_to(fd, dest) : tcp_state(fd) == TCP_CLOSE; };
    const auto refused_by_drain = [&] { return got == Exchange::replied && rep.status == ESHUTDOWN && untouched(); };
    if (refused_by_drain()) {
        // Too little of the caller's time left to wait for a successor's
        // reply: egressd is unreachable now.
        const long left = reply_wait - (now_ms() - start);
        if (left >= kMinRetryWaitMs)
            got = exchange_adopt(s, g_real, fd, dest, sndtimeo, static_cast<int>(left), blocking, rep, err);
        if (left < kMinRetryWaitMs || refused_by_drain()) got = Exchange::not_delivered, err = ESHUTDOWN;
    }
    // egressd closed the connection without acting on the request (it
    // cancels what is in flight when it closes): as if it were unreachable.
    const bool dropped = got == Exchange::lost && err == ECONNRESET && untouched();
    if (got == Exchange::not_delivered || dropped) {
        restore();
        return unreachable(fd, sa, len, dest, err, saved_errno);
    }
    // An egressd that predates UDP refuses the socket's type: the kernel
    // connects it, as before the shim brokered UDP.
    if (udp && got == Exchange::replied && rep.status == EPROTOTYPE && untouched()) {
        if (s.debug) (Line() << "connect fd " << long{fd} << " to " << dest
                             << ": egressd does not broker UDP, passed to the kernel").write();
        restore();
        errno = saved_errno;
        return g_connect(fd, sa, len);
    }
    std::uint32_t status = rep.status;
    if (got == Exchange::lost) {
        // egressd took the request but no reply came: if it started the
        // connect, that connect is the caller's now. If it has not yet, it
        // still may (a stalled egressd reads its queue when it wakes): a
        // non-blocking caller is told EINPROGRESS, the one answer under
        // which a later connect is no surprise; a blocking caller's socket
        // is blocking again by then, which egressd refuses to adopt.
        // A UDP connect completes at once: connected or not, nothing is under way.
        const int st = udp ? -1 : tcp_state(fd);
        status = udp ? (udp_connected_to(fd, dest) ? 0 : static_cast<std::uint32_t>(err))
                 : st == TCP_SYN_SENT ? EINPROGRESS
                 : st == TCP_ESTABLISHED ? 0
                 : (!blocking && err == ETIMEDOUT) ? EINPROGRESS
                                                  : static_cast<std::uint32_t>(err);
        if (s.debug) (Line() << "connect fd " << long{fd} << " to " << dest << ": no reply from egressd: ").err(err).write();
    }
    if (got == Exchange::replied && status == ESHUTDOWN) {
        // A stopping egressd abandoned the connect it had started: it is the
        // caller's now, as when no reply comes.
        // Established or already past it is connected; only a closed socket
        // (or one whose state cannot be read) failed.
        const int st = udp ? -1 : tcp_state(fd);
        status = udp ? (udp_connected_to(fd, dest) ? 0 : ENETUNREACH)
                 : st == TCP_SYN_SENT ? EINPROGRESS
                 : st >= 0 && st != TCP_CLOSE ? 0
                                              : ENETUNREACH;
    }
    const bool replied_in_progress = got == Exchange::replied && status == EINPROGRESS;
    if (status == EINPROGRESS && blocking) {
        std::uint32_t wait = rep.timeout_ms ? rep.timeout_ms : kDefaultWaitMs;
        if (sndtimeo) {
            const long spent = now_ms() - start;
            wait = spent >= static_cast<long>(sndtimeo) ? 0 : sndtimeo - static_cast<std::uint32_t>(spent);
        }
        status = static_cast<std::uint32_t>(wait_connected(fd, wait, sndtimeo != 0));
    }
    if (s.debug && got == Exchange::replied) {
        // One line per decision: for a blocking caller, the outcome it gets.
        Line l;
        l << "connect fd " << long{fd} << " to " << dest << " via egressd";
        if (rep.pool[0]) l << " (pool " << rep.pool << ")";
        if (rep.has_local) l << " from " << rep.local;
        l << ": ";
        if (status == 0) l << "connected";
        else l.err(static_cast<int>(status));
        if (!replied_in_progress && status != 0 && rep.message[0]) l << ": " << rep.message;
        l.write();
    }
    restore();
    if (status == 0) {
        errno = saved_errno;
        return 0;
    }
    return fail(static_cast<int>(status));
}

}  // namespace
}  // namespace egress::preload

using namespace egress::preload;

extern "C" __attribute__((visibility("default"))) int connect(int fd, const sockaddr* sa, socklen_t len) {
    const int saved = errno;
    ready();
    if (!g_connect) return fail(ENOSYS);
    Addr dest;
    bool udp = false;
    if (!brokered(fd, sa, len, dest, udp)) {
        errno = saved;
        return g_connect(fd, sa, len);
    }
    return connect_via_egressd(fd, sa, len, dest, saved, false, udp);
}

// TCP Fast Open (MSG_FASTOPEN on an unconnected socket): the connect goes
// through egressd, then the data is sent; no data rides on the SYN. A
// non-blocking caller whose connect did not complete at once gets
// EINPROGRESS and sends again once the socket is writable, as the kernel
// asks when it has no Fast Open cookie.
extern "C" __attribute__((visibility("default"))) ssize_t sendto(int fd, const void* buf, size_t n, int flags,
                                                                 const sockaddr* sa, socklen_t len) {
    const int saved = errno;
    ready();
    if (!g_sendto) return fail(ENOSYS);
    Addr dest;
    bool udp = false;
    if (!(flags & MSG_FASTOPEN) || !brokered(fd, sa, len, dest, udp) || udp) {
        errno = saved;
        return g_sendto(fd, buf, n, flags, sa, len);
    }
    if (connect_via_egressd(fd, sa, len, dest, saved, flags & MSG_DONTWAIT) != 0) return -1;
    return g_sendto(fd, buf, n, flags & ~MSG_FASTOPEN, nullptr, 0);
}

extern "C" __attribute__((visibility("default"))) ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
    const int saved = errno;
    ready();
    if (!g_sendmsg) return fail(ENOSYS);
    Addr dest;
    bool udp = false;
    if (!(flags & MSG_FASTOPEN) || !msg ||
        !brokered(fd, static_cast<const sockaddr*>(msg->msg_name), msg->msg_namelen, dest, udp) || udp) {
        errno = saved;
        return g_sendmsg(fd, msg, flags);
    }
    if (connect_via_egressd(fd, static_cast<const sockaddr*>(msg->msg_name), msg->msg_namelen, dest, saved,
                            flags & MSG_DONTWAIT) != 0)
        return -1;
    msghdr rest = *msg;
    rest.msg_name = nullptr;
    rest.msg_namelen = 0;
    return g_sendmsg(fd, &rest, flags & ~MSG_FASTOPEN);
}
