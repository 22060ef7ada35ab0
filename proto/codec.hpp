// The wire codec: bytes in, a message or a precise error out; no I/O.
// proto/PROTOCOL.md is the specification this implements.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "connect_reply.hpp"
#include "egress_proto.h"
#include "endpoint.hpp"
#include "result.hpp"

namespace egress::proto {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

struct Header {
    std::uint8_t version = EGRESS_VERSION;
    std::uint8_t type = 0;
    std::uint16_t flags = 0;
    std::uint64_t request_id = 0;
    std::uint32_t payload_len = 0;
};

struct ConnectRequest {
    Endpoint dest;  // DEST; with DEST_HOST only its port is set
    std::string host;  // DEST_HOST, normalized (hostname.hpp); empty: DEST was sent
    std::uint32_t timeout_ms = 0;  // 0: the daemon's default
    std::uint32_t flags = 0;       // EGRESS_CONNECT_* bits
    std::string pool;              // empty: the route decides
    Transport transport = Transport::tcp;  // TRANSPORT; absent: TCP
};

// The reply to STATUS: status 0 and a JSON document (see PROTOCOL.md).
struct StatusReply {
    std::uint32_t status = 0;
    std::string error_name;
    std::string message;
    std::string json;
};

// The reply to a request whose version or type the daemon does not speak.
struct ErrorReply {
    std::uint32_t status = 0;
    std::string error_name;
    std::string message;
};

// ---- framing -------------------------------------------------------------

// Reads the fixed header. nullopt: the datagram cannot be framed (shorter than
// a header, or wrong magic): nothing about it can be trusted, not even its id.
std::optional<Header> read_header(ByteView datagram);

// Checks what a framed request's header promises: version, flags, payload
// length against the datagram's size. The error is what to reply.
std::optional<Error> check_request_header(const Header& h, std::size_t datagram_size);

// ---- requests (client -> daemon) ------------------------------------------

Bytes encode_connect(std::uint64_t request_id, const ConnectRequest& req);
// Decodes a CONNECT payload (the bytes after the header).
Result<ConnectRequest> decode_connect(ByteView payload);

Bytes encode_status(std::uint64_t request_id);
// A STATUS request carries no fields.
std::optional<Error> decode_status(ByteView payload);

// ---- replies (daemon -> client) -------------------------------------------

// `fd_attached` sets EGRESS_HDR_FLAG_FD_ATTACHED: the sender attaches one fd.
Bytes encode_connect_reply(std::uint64_t request_id, const ConnectReply& reply, bool fd_attached);
// The same, written into `out` (what it held is replaced; its capacity is
// reused, so a buffer that has held a reply takes the next without allocating).
void encode_connect_reply(Bytes& out, std::uint64_t request_id, const ConnectReply& reply, bool fd_attached);
Bytes encode_error_reply(std::uint64_t request_id, const ErrorReply& reply);
// The JSON travels in as many JSON fields as it needs (each < 64 KiB).
Bytes encode_status_reply(std::uint64_t request_id, const StatusReply& reply);

struct Reply {
    Header header;
    std::variant<ConnectReply, ErrorReply, StatusReply> body;
};
// Decodes a whole reply datagram, header included.
Result<Reply> decode_reply(ByteView datagram);

}  // namespace egress::proto
