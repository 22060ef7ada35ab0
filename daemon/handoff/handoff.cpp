#include "handoff.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace egress {

SysResult receive_requests(Syscalls& sys, int sock, RecvBatch& batch, std::size_t max) {
    max = std::min(max, RecvBatch::kSize);
    batch.prepare(max);
    const auto r = sys.recvmmsg(sock, batch.msgs.data(), static_cast<unsigned>(max),
                                MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
    // A failed call may have written into the first message before failing.
    batch.filled(r.ok() ? static_cast<std::size_t>(r.value) : 1);
    if (!r.ok()) return r;
    // Own every descriptor, in every datagram read, before anything can end
    // the session.
    for (std::size_t i = 0; i < static_cast<std::size_t>(r.value); ++i)
        batch.attached[i] = take_attached_fds(batch.msgs[i].msg_hdr);
    return r;
}

AttachedFds take_attached_fds(msghdr& msg) {
    AttachedFds out;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const auto n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t k = 0; k < n; ++k) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof fd);
            out.fds.emplace_back(fd);
            ++out.count;
        }
    }
    if (msg.msg_flags & MSG_CTRUNC) ++out.count;  // the kernel closed what did not fit
    return out;
}

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
