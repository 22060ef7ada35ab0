// What egressd says about a connect: the CONNECT_REPLY's fields as values.
// Part of libegress's public API (installed), and of the codec.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "endpoint.hpp"

namespace egress::proto {

// status 0: success, and local/remote are set. Otherwise an errno with its
// name and a reason; the descriptive fields may still be set where known.
struct ConnectReply {
    std::uint32_t status = 0;
    std::string error_name;
    std::string message;
    std::optional<Endpoint> local;
    std::optional<Endpoint> remote;
    std::string pool;
    std::uint32_t attempts = 0;
    std::uint64_t connect_us = 0;
    // The deadline egressd applied, in two cases (PROTOCOL.md sections 6, 6a):
    // the request asked for more than the daemon's maximum, which was applied
    // instead; and an adopt-mode reply with status EINPROGRESS (after the
    // default and the maximum), so the program knows how long the connect may
    // still take. 0: absent.
    std::uint32_t timeout_ms = 0;
    // A host-name request (DEST_HOST): how many of the name's addresses a
    // connect was tried to, and how long resolving it took (0: an answer
    // egressd had cached). 0 for an address request.
    std::uint32_t addresses = 0;
    std::uint64_t resolve_us = 0;
};

}  // namespace egress::proto
