#include "channel.hpp"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "egress_proto.h"

namespace egress::preload {
namespace {

struct Channel {
    int fd = -1;
    pid_t pid = 0;      // the process that opened it
    dev_t dev = 0;      // its identity, to notice a program that closed or
    ino_t ino = 0;      // reused the descriptor number behind our back
    std::uint64_t next_id = 1;
    volatile bool busy = false;  // an exchange is under way (a signal handler may interrupt it)
    bool keyed = false; // the thread-exit destructor is armed
};

// Static TLS: no allocation on first use, usable from signal handlers.
thread_local Channel t_channel __attribute__((tls_model("initial-exec")));

// Every open channel's descriptor and identity, so that a forked child can
// close those of the parent's other threads, whose thread-locals it cannot
// reach. A slot is free at fd 0, being filled at -1, in use at fd + 1.
// Channels beyond the slots still work; a child then inherits those
// descriptors until it execs (they are close-on-exec) but never uses them.
struct Slot {
    std::atomic<int> fd{0};
    dev_t dev = 0;
    ino_t ino = 0;
};
constexpr std::size_t kSlots = 256;
Slot g_slots[kSlots];
pthread_key_t g_exit_key;
bool g_have_key = false;

// Is `fd` still the socket identified by dev and ino? A program may close
// the shim's descriptor (daemons close all they did not open) and reuse the
// number for a file of its own, which the shim must then never touch.
bool same_file(int fd, dev_t dev, ino_t ino) {
    struct stat st;
    return ::fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

void remember(int fd, dev_t dev, ino_t ino) {
    for (auto& s : g_slots) {
        int expected = 0;
        if (!s.fd.compare_exchange_strong(expected, -1)) continue;
        s.dev = dev;
        s.ino = ino;
        s.fd.store(fd + 1, std::memory_order_release);
        return;
    }
}

void forget(int fd) {
    for (auto& s : g_slots) {
        int expected = fd + 1;
        if (s.fd.compare_exchange_strong(expected, 0)) return;
    }
}

// Closes the channel's descriptor if it is still the channel's socket.
void close_channel(Channel& c) {
    if (c.fd >= 0) {
        forget(c.fd);
        if (same_file(c.fd, c.dev, c.ino)) ::close(c.fd);
    }
    c.fd = -1;
}

void on_thread_exit(void*) {
    if (t_channel.fd >= 0 && t_channel.pid == ::getpid()) close_channel(t_channel);
}

void after_fork_in_child() {
    // The child runs one thread; the parent's channels are not its own.
    for (auto& s : g_slots)
        if (const int v = s.fd.exchange(0); v > 0 && same_file(v - 1, s.dev, s.ino)) ::close(v - 1);
    t_channel.fd = -1;
    t_channel.busy = false;
}

// Is c.fd still the connection this channel opened?
bool still_ours(Channel& c) {
    if (c.fd < 0) return false;
    if (!same_file(c.fd, c.dev, c.ino)) {
        forget(c.fd);  // the program closed it (and may reuse the number): not ours to close
        c.fd = -1;
        return false;
    }
    if (c.pid != ::getpid()) {  // a child made without fork handlers (raw clone): our copy
        close_channel(c);
        return false;
    }
    return true;
}

bool open_channel(Channel& c, const Settings& s, const RealCalls& real, int& err) {
    const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return err = errno, false;
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, s.socket_path, std::strlen(s.socket_path) + 1);
    if (real.connect(fd, reinterpret_cast<const sockaddr*>(&sun), sizeof sun) != 0) {
        err = errno;  // ENOENT, ECONNREFUSED, EACCES; EAGAIN: its backlog is full
        ::close(fd);
        return false;
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        err = errno;
        ::close(fd);
        return false;
    }
    c.fd = fd;
    c.pid = ::getpid();
    c.dev = st.st_dev;
    c.ino = st.st_ino;
    remember(fd, st.st_dev, st.st_ino);
    return true;
}

// How long a wait for egressd's reply spins before it sleeps.
constexpr long kSpinNs = 50'000;

long now_ns() {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

long now_ms() {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

// Waits for `events` on fd until `deadline`; EINTR is retried (the exchange
// must finish, or its reply would be read as another's). 0, or an errno.
int wait_for(int fd, short events, long deadline) {
    for (;;) {
        const long left = deadline - now_ms();
        if (left <= 0) return ETIMEDOUT;
        pollfd p{fd, events, 0};
        const int r = ::poll(&p, 1, static_cast<int>(left));
        if (r > 0) return 0;
        if (r < 0 && errno != EINTR) return errno;
    }
}

enum class Sent { ok, dead, failed };

Sent send_request(const RealCalls& real, int fd, const std::uint8_t* req, std::size_t n, int sock, long deadline,
                  int& err) {
    iovec iov{const_cast<std::uint8_t*>(req), n};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cm), &sock, sizeof sock);
    for (;;) {
        if (real.sendmsg(fd, &msg, MSG_NOSIGNAL) >= 0) return Sent::ok;
        err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN) {
            if ((err = wait_for(fd, POLLOUT, deadline)) != 0) return Sent::failed;
            continue;
        }
        return err == EPIPE || err == ECONNRESET || err == ENOTCONN ? Sent::dead : Sent::failed;
    }
}

// Reads replies until the one for `id` (or a refusal of the connection, id 0).
Exchange receive_reply(int fd, std::uint64_t id, long deadline, bool spin, Reply& reply, int& err) {
    // An adopt reply is at most ~800 bytes (its texts are bounded); a larger
    // datagram arrives truncated (MSG_TRUNC) and is refused. The buffers are
    // small because this may run on a signal handler's alternate stack.
    std::uint8_t buf[1024];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    // egressd answers within tens of microseconds. A thread that sleeps for
    // the answer pays a wake-up on top, and on a virtual machine whose idle
    // vCPUs halt that costs as much again: `spin` first tries for a short
    // while, yielding the CPU in case egressd is waiting for this very one.
    const long spin_until = now_ns() + kSpinNs;
    bool spinning = spin;
    for (;;) {
        if (!spinning && (err = wait_for(fd, POLLIN, deadline)) != 0) return Exchange::lost;
        iovec iov{buf, sizeof buf};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        const ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EAGAIN && spinning) {
            if (now_ns() >= spin_until) spinning = false;
            else ::sched_yield();
            continue;
        }
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) return err = n == 0 ? ECONNRESET : errno, Exchange::lost;
        // An adopt reply never carries a descriptor: close any that came.
        for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
                for (std::size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
                    int stray;
                    std::memcpy(&stray, CMSG_DATA(cm) + i * sizeof(int), sizeof stray);
                    ::close(stray);
                }
        if ((msg.msg_flags & MSG_TRUNC) || !decode_reply(buf, static_cast<std::size_t>(n), reply))
            return err = EPROTO, Exchange::lost;
        if (reply.request_id == id) return Exchange::replied;
        if (reply.request_id == 0 && reply.type == EGRESS_MSG_ERROR_REPLY) return Exchange::replied;
        // Anything else answers no request of ours: skip it.
    }
}

Exchange run(Channel& c, const Settings& s, const RealCalls& real, int sock, const Addr& dest,
             std::uint32_t timeout_ms, int wait_ms, bool spin, Reply& reply, int& err) {
    const long deadline = now_ms() + wait_ms;
    for (int round = 0; round < 2; ++round) {
        const bool reused = still_ours(c);
        if (!reused && !open_channel(c, s, real, err)) return Exchange::not_delivered;
        std::uint8_t req[kMaxRequest];
        const std::uint64_t id = c.next_id++;
        const std::size_t n = encode_adopt(req, sizeof req, id, dest, timeout_ms, 0, s.pool, s.pool_len);
        const Sent sent = send_request(real, c.fd, req, n, sock, deadline, err);
        if (sent == Sent::dead) {
            close_channel(c);
            if (reused) continue;  // egressd went away since the last use: once more, afresh
            return Exchange::not_delivered;
        }
        if (sent == Sent::failed) {
            close_channel(c);
            return Exchange::not_delivered;
        }
        const Exchange got = receive_reply(c.fd, id, deadline, spin, reply, err);
        // After a refusal, an end of stream or a timeout the connection is
        // done for (a late reply would answer the wrong request); after
        // ESHUTDOWN its egressd is stopping: the next exchange opens afresh.
        if (got != Exchange::replied || reply.request_id != id || reply.status == ESHUTDOWN) close_channel(c);
        return got;
    }
    return Exchange::not_delivered;
}

}  // namespace

void channels_init() {
    g_have_key = ::pthread_key_create(&g_exit_key, on_thread_exit) == 0;
    ::pthread_atfork(nullptr, nullptr, after_fork_in_child);
}

Exchange exchange_adopt(const Settings& s, const RealCalls& real, int sock, const Addr& dest,
                        std::uint32_t timeout_ms, int wait_ms, bool spin, Reply& reply, int& err) {
    Channel& mine = t_channel;
    if (mine.busy) {
        // Reentered from a signal handler mid-exchange: a connection of its own.
        Channel temp;
        const auto r = run(temp, s, real, sock, dest, timeout_ms, wait_ms, spin, reply, err);
        close_channel(temp);
        return r;
    }
    mine.busy = true;
    if (!mine.keyed && g_have_key) {
        // A non-null value arms the destructor; the key is one of the first
        // a process creates, so this stores into the thread's static array.
        ::pthread_setspecific(g_exit_key, reinterpret_cast<void*>(1));
        mine.keyed = true;
    }
    const auto r = run(mine, s, real, sock, dest, timeout_ms, wait_ms, spin, reply, err);
    mine.busy = false;
    return r;
}

}  // namespace egress::preload
