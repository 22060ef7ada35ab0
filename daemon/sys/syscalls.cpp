#include "syscalls.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace egress {
namespace {
SysResult wrap(long v) { return v < 0 ? SysResult{-1, errno} : SysResult{v, 0}; }
}  // namespace

SysResult RealSyscalls::socket(int d, int t, int p) { return wrap(::socket(d, t, p)); }
SysResult RealSyscalls::setsockopt(int fd, int l, int n, const void* v, socklen_t len) {
    return wrap(::setsockopt(fd, l, n, v, len));
}
SysResult RealSyscalls::getsockopt(int fd, int l, int n, void* v, socklen_t* len) {
    return wrap(::getsockopt(fd, l, n, v, len));
}
SysResult RealSyscalls::bind(int fd, const sockaddr* a, socklen_t len) { return wrap(::bind(fd, a, len)); }
SysResult RealSyscalls::connect(int fd, const sockaddr* a, socklen_t len) {
    return wrap(::connect(fd, a, len));
}
SysResult RealSyscalls::getsockname(int fd, sockaddr* a, socklen_t* len) {
    return wrap(::getsockname(fd, a, len));
}
SysResult RealSyscalls::getpeername(int fd, sockaddr* a, socklen_t* len) {
    return wrap(::getpeername(fd, a, len));
}
SysResult RealSyscalls::listen(int fd, int backlog) { return wrap(::listen(fd, backlog)); }
SysResult RealSyscalls::accept4(int fd, int flags) { return wrap(::accept4(fd, nullptr, nullptr, flags)); }
SysResult RealSyscalls::recvmsg(int fd, msghdr* m, int flags) { return wrap(::recvmsg(fd, m, flags)); }
SysResult RealSyscalls::sendmsg(int fd, const msghdr* m, int flags) { return wrap(::sendmsg(fd, m, flags)); }
SysResult RealSyscalls::recvmmsg(int fd, mmsghdr* m, unsigned n, int flags) {
    return wrap(::recvmmsg(fd, m, n, flags, nullptr));
}
SysResult RealSyscalls::sendmmsg(int fd, mmsghdr* m, unsigned n, int flags) { return wrap(::sendmmsg(fd, m, n, flags)); }
SysResult RealSyscalls::fcntl_setfl(int fd, int flags) { return wrap(::fcntl(fd, F_SETFL, flags)); }
SysResult RealSyscalls::fcntl_getfl(int fd) { return wrap(::fcntl(fd, F_GETFL)); }
SysResult RealSyscalls::poll(pollfd* fds, nfds_t n, int timeout_ms) { return wrap(::poll(fds, n, timeout_ms)); }
SysResult RealSyscalls::shutdown(int fd, int how) { return wrap(::shutdown(fd, how)); }

}  // namespace egress
