// Scratch space for moving request and reply datagrams in batches
// (recvmmsg/sendmmsg). The event loop is single-threaded and a batch is used
// up before control returns to it, so one instance serves every session.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>

#include "egress_proto.h"

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

// Requests: at most one client's turn (see session.cpp), with room to see (and
// close) descriptors a client wrongly attaches.
struct RecvBatch : DatagramBatch<32, 32> {
    std::array<std::array<std::uint8_t, EGRESS_MAX_DATAGRAM>, kSize> bufs;
    void prepare() {
        for (std::size_t i = 0; i < kSize; ++i) set(i, bufs[i].data(), bufs[i].size());
    }
};

// Replies: at most one descriptor each.
using SendBatch = DatagramBatch<32, 1>;

}  // namespace egress
