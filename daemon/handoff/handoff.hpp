// Replies leave egressd here, with at most one descriptor attached
// (SCM_RIGHTS). The caller keeps ownership of the descriptor and closes its
// copy once the send succeeded: the client then holds the only one.
#pragma once

#include <cstdint>
#include <span>

#include "session/batch.hpp"
#include "sys/syscalls.hpp"
#include "unique_fd.hpp"

namespace egress {

// Sets message `i` of `batch` to `bytes`, attaching `fd` when it is >= 0.
// `bytes` must stay alive until the batch is sent.
void attach_reply(SendBatch& batch, std::size_t i, std::span<const std::uint8_t> bytes, int fd);

// Sends one datagram without blocking.
SysResult send_datagram(Syscalls& sys, int sock, std::span<const std::uint8_t> bytes, int fd);

// Ends a client connection whose last reply has been sent, so that the
// client reads that reply and then end-of-stream, never ECONNRESET first (the
// kernel resets a SOCK_SEQPACKET peer whose socket closes with datagrams
// unread). Stops further requests (the client's send fails with EPIPE),
// discards those already queued with any descriptors they carry, then closes.
void close_after_reply(Syscalls& sys, UniqueFd client);

}  // namespace egress
