// Datagram I/O on client connections, in one place: requests arrive here in
// batches, with every descriptor a client attached taken into ownership, and
// replies leave here with at most one descriptor attached (SCM_RIGHTS). For a
// reply the caller keeps ownership of the descriptor and closes its copy once
// the send succeeded: the client then holds the only one.
#pragma once

#include <cstdint>
#include <span>

#include "handoff/batch.hpp"
#include "sys/syscalls.hpp"
#include "unique_fd.hpp"

namespace egress {

// Receives up to `max` (at most RecvBatch::kSize) request datagrams into
// `batch` without blocking: on success the number read, and for each,
// batch.attached[i] owns the descriptors it carried (release() closes them).
// Fewer than `max` means the socket had no more at that moment, or an error
// the next call reports (on a Unix socket, the peer's reset, which wakes the
// socket's waiters itself).
SysResult receive_requests(Syscalls& sys, int sock, RecvBatch& batch, std::size_t max);

// The descriptors a received message carries (SCM_RIGHTS), owned.
AttachedFds take_attached_fds(msghdr& msg);

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
