#include "handoff.hpp"

#include <cerrno>
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

void close_after_reply(Syscalls& sys, UniqueFd client) {
    // After SHUT_RD nothing more can arrive, so the queue only shrinks; its
    // size is bounded by the client's send buffer, the cap by caution.
    constexpr int kMaxDiscarded = 65536;
    sys.shutdown(client.get(), SHUT_RD);
    for (int i = 0; i < kMaxDiscarded; ++i) {
        char byte;
        iovec iov{&byte, 1};
        msghdr m{};
        m.msg_iov = &iov;
        m.msg_iovlen = 1;  // no control buffer: the kernel closes attached descriptors
        const auto r = sys.recvmsg(client.get(), &m, MSG_DONTWAIT | MSG_TRUNC);
        if (!r.ok() && r.err == EINTR) continue;
        // End of the queue (0 once it is empty after SHUT_RD), or an error. A
        // zero-length datagram also reads as 0: the client sent what the
        // protocol forbids and may see a reset.
        if (!r.ok() || r.value == 0) break;
    }
}

}  // namespace egress
