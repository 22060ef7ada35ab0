// Scratch space for moving request and reply datagrams in batches
// (recvmmsg/sendmmsg). A loop runs on one thread and a batch is used up
// before control returns to it, so one instance serves every session of a
// loop.
#pragma once

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "egress_proto.h"
#include "unique_fd.hpp"

namespace egress {

template <std::size_t N, std::size_t MaxFds>
struct DatagramBatch {
    static constexpr std::size_t kSize = N;
    static constexpr std::size_t kControlSize = CMSG_SPACE(sizeof(int) * MaxFds);
    struct alignas(cmsghdr) Control {
        char bytes[kControlSize];
    };

    std::array<mmsghdr, N> msgs{};
    std::array<iovec, N> iov{};
    std::array<Control, N> control{};

    // Points message i at `data` with room for its ancillary data.
    void set(std::size_t i, void* data, std::size_t len, std::size_t control_len = kControlSize) {
        iov[i] = iovec{data, len};
        msgs[i] = mmsghdr{};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_control = control_len ? control[i].bytes : nullptr;
        msgs[i].msg_hdr.msg_controllen = control_len;
    }
};

// The descriptors one received datagram carried, owned: they close with it
// unless taken (adopt mode takes one).
struct AttachedFds {
    std::vector<UniqueFd> fds;
    int count = 0;  // fds, plus one when the kernel closed what did not fit (MSG_CTRUNC)
};

// Requests: at most one client's turn (see session.cpp), with room to see (and
// close) descriptors a client wrongly attaches.
struct RecvBatch : DatagramBatch<32, 32> {
    std::array<std::array<std::uint8_t, EGRESS_MAX_DATAGRAM>, kSize> bufs;
    std::array<AttachedFds, kSize> attached;  // of message i, after receive_requests()
    // Readies the first `n` messages to receive into. The kernel writes only
    // into the messages it fills, so only those (and any never readied) are
    // set again: a lone request costs one, not kSize.
    void prepare(std::size_t n) {
        for (std::size_t i = 0; i < used_; ++i) set(i, bufs[i].data(), bufs[i].size());
        for (std::size_t i = std::max(used_, ready_); i < n; ++i) set(i, bufs[i].data(), bufs[i].size());
        ready_ = std::max(ready_, n);
        used_ = 0;
    }
    // The kernel filled the first `n` messages.
    void filled(std::size_t n) { used_ = n; }
    // Closes what the first `n` messages carried and was not taken.
    void release(std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) attached[i] = AttachedFds{};
    }

private:
    std::size_t ready_ = 0;  // messages [0, ready_) have been set at least once
    std::size_t used_ = 0;   // messages [0, used_) were filled since
};

// Replies: at most one descriptor each.
using SendBatch = DatagramBatch<32, 1>;

}  // namespace egress
