#include "handoff.hpp"

#include <cstring>

namespace egress {

void attach_reply(SendBatch& b, std::size_t i, std::span<const std::uint8_t> bytes, int fd) {
    b.set(i, const_cast<std::uint8_t*>(bytes.data()), bytes.size(), fd >= 0 ? CMSG_SPACE(sizeof(int)) : 0);
    if (fd < 0) return;
    auto& h = b.msgs[i].msg_hdr;
    cmsghdr* c = CMSG_FIRSTHDR(&h);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
}

SysResult send_datagram(Syscalls& sys, int sock, std::span<const std::uint8_t> bytes, int fd) {
    SendBatch one;
    attach_reply(one, 0, bytes, fd);
    return sys.sendmsg(sock, &one.msgs[0].msg_hdr, MSG_DONTWAIT | MSG_NOSIGNAL);
}

}  // namespace egress
