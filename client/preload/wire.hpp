// The preload shim's side of the wire protocol (proto/PROTOCOL.md): an
// adopt-mode CONNECT out, a CONNECT_REPLY or ERROR_REPLY in. Pure, and free
// of allocation and of the C++ runtime: it runs inside any program's
// connect(), signal handlers included. proto/codec.cpp is the reference;
// tests/unit/preload_wire_test.cpp checks the two agree byte for byte.
#pragma once

#include <cstddef>
#include <cstdint>

namespace egress::preload {

// An IP endpoint: address bytes in network order, port in host order.
struct Addr {
    bool v6 = false;
    std::uint8_t bytes[16] = {};
    std::uint16_t port = 0;
};

// Room for any request encode_adopt() writes: header, DEST (v6), TIMEOUT_MS,
// CONNECT_FLAGS, POOL (64 bytes).
inline constexpr std::size_t kMaxRequest = 20 + 22 + 8 + 8 + 68;

// Writes the CONNECT with the ADOPT flag (plus `extra_flags`) to `dest`;
// `timeout_ms` 0 leaves the deadline to egressd, `pool` of length 0 to its
// routes (at most 64 bytes are sent). Returns the datagram's size, or 0
// when `cap` is too small.
std::size_t encode_adopt(std::uint8_t* out, std::size_t cap, std::uint64_t request_id, const Addr& dest,
                         std::uint32_t timeout_ms, std::uint32_t extra_flags, const char* pool,
                         std::size_t pool_len);

struct Reply {
    std::uint8_t type = 0;       // EGRESS_MSG_CONNECT_REPLY or EGRESS_MSG_ERROR_REPLY
    std::uint16_t flags = 0;     // header flags (FD_ATTACHED)
    std::uint64_t request_id = 0;
    std::uint32_t status = 0;    // an errno, 0 for success
    std::uint32_t attempts = 0;
    std::uint32_t timeout_ms = 0;  // EINPROGRESS adopt replies: the deadline applied
    bool has_local = false;
    Addr local;
    char error_name[65] = {};    // NUL-terminated, cut to fit
    char message[160] = {};      // the start of MESSAGE, for a log line
    char pool[65] = {};
};

// Decodes a reply datagram. False when it cannot be one of egressd's
// replies: framing, version, a field that overruns, a CONNECT_REPLY or
// ERROR_REPLY without a status. Fields this shim does not use are skipped.
bool decode_reply(const std::uint8_t* data, std::size_t size, Reply& out);

}  // namespace egress::preload
