#include "handoff.hpp"

#include <sys/socket.h>

#include <cstring>

namespace egress {

SysResult send_datagram(Syscalls& sys, int sock, std::span<const std::uint8_t> bytes, int fd) {
    iovec iov{const_cast<std::uint8_t*>(bytes.data()), bytes.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (fd >= 0) {
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    return sys.sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

}  // namespace egress
