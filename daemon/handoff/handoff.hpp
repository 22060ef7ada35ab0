// Sending a reply datagram, with at most one descriptor attached (SCM_RIGHTS).
#pragma once

#include <span>
#include <cstdint>

#include "sys/syscalls.hpp"

namespace egress {

// Sends `bytes` as one datagram on `sock` without blocking; attaches `fd`
// when it is >= 0. The caller keeps ownership of `fd` and closes its copy
// once this succeeds (the client then holds the only one).
SysResult send_datagram(Syscalls& sys, int sock, std::span<const std::uint8_t> bytes, int fd);

}  // namespace egress
