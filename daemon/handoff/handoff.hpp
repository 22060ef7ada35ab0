// Replies leave egressd here, with at most one descriptor attached
// (SCM_RIGHTS). The caller keeps ownership of the descriptor and closes its
// copy once the send succeeded: the client then holds the only one.
#pragma once

#include <cstdint>
#include <span>

#include "session/batch.hpp"
#include "sys/syscalls.hpp"

namespace egress {

// Sets message `i` of `batch` to `bytes`, attaching `fd` when it is >= 0.
// `bytes` must stay alive until the batch is sent.
void attach_reply(SendBatch& batch, std::size_t i, std::span<const std::uint8_t> bytes, int fd);

// Sends one datagram without blocking.
SysResult send_datagram(Syscalls& sys, int sock, std::span<const std::uint8_t> bytes, int fd);

}  // namespace egress
