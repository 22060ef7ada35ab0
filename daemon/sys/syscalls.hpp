// Every socket syscall egressd makes goes through this interface (the
// request path, the listener's start-up and accept loop, kernel probing,
// sock_diag, the address watch), so tests can inject failures (EMFILE,
// EADDRNOTAVAIL, EAGAIN) without a test mode in the daemon. Each call
// returns its value, or -1 with the errno in `err`. Outside it, by design:
// file-system calls on the socket's file at start-up (lstat, unlink, the
// mode and owner), descriptor flags of a socket systemd passed, /proc reads,
// uname, getifaddrs and libsystemd's own calls.
#pragma once

#include <poll.h>
#include <sys/socket.h>

namespace egress {

struct SysResult {
    long value = 0;
    int err = 0;  // errno when value == -1
    bool ok() const { return value >= 0; }
};

class Syscalls {
public:
    virtual ~Syscalls() = default;
    virtual SysResult socket(int domain, int type, int protocol) = 0;
    virtual SysResult setsockopt(int fd, int level, int name, const void* value, socklen_t len) = 0;
    virtual SysResult getsockopt(int fd, int level, int name, void* value, socklen_t* len) = 0;
    virtual SysResult bind(int fd, const sockaddr* addr, socklen_t len) = 0;
    virtual SysResult connect(int fd, const sockaddr* addr, socklen_t len) = 0;
    virtual SysResult getsockname(int fd, sockaddr* addr, socklen_t* len) = 0;
    virtual SysResult getpeername(int fd, sockaddr* addr, socklen_t* len) = 0;
    virtual SysResult listen(int fd, int backlog) = 0;
    virtual SysResult accept4(int fd, int flags) = 0;
    virtual SysResult recvmsg(int fd, msghdr* msg, int flags) = 0;
    virtual SysResult sendmsg(int fd, const msghdr* msg, int flags) = 0;
    // Batches: the number of messages moved, or -1 if the first one failed.
    virtual SysResult recvmmsg(int fd, mmsghdr* msgs, unsigned count, int flags) = 0;
    virtual SysResult sendmmsg(int fd, mmsghdr* msgs, unsigned count, int flags) = 0;
    virtual SysResult fcntl_setfl(int fd, int flags) = 0;
    virtual SysResult fcntl_getfl(int fd) = 0;
    // The number of descriptors with events (0 when none, at once with timeout 0).
    virtual SysResult poll(pollfd* fds, nfds_t count, int timeout_ms) = 0;
    virtual SysResult shutdown(int fd, int how) = 0;
};

// The real kernel.
class RealSyscalls final : public Syscalls {
public:
    SysResult socket(int domain, int type, int protocol) override;
    SysResult setsockopt(int fd, int level, int name, const void* value, socklen_t len) override;
    SysResult getsockopt(int fd, int level, int name, void* value, socklen_t* len) override;
    SysResult bind(int fd, const sockaddr* addr, socklen_t len) override;
    SysResult connect(int fd, const sockaddr* addr, socklen_t len) override;
    SysResult getsockname(int fd, sockaddr* addr, socklen_t* len) override;
    SysResult getpeername(int fd, sockaddr* addr, socklen_t* len) override;
    SysResult listen(int fd, int backlog) override;
    SysResult accept4(int fd, int flags) override;
    SysResult recvmsg(int fd, msghdr* msg, int flags) override;
    SysResult sendmsg(int fd, const msghdr* msg, int flags) override;
    SysResult recvmmsg(int fd, mmsghdr* msgs, unsigned count, int flags) override;
    SysResult sendmmsg(int fd, mmsghdr* msgs, unsigned count, int flags) override;
    SysResult fcntl_setfl(int fd, int flags) override;
    SysResult fcntl_getfl(int fd) override;
    SysResult poll(pollfd* fds, nfds_t count, int timeout_ms) override;
    SysResult shutdown(int fd, int how) override;
};

}  // namespace egress
