// libegress: ask egressd for connected sockets.
// Installed as <egress/egress_client.hpp>; includes only installed headers.
//
// A Client owns one connection to egressd. connect() is the blocking
// one-shot form; submit() + next() keep many requests in flight on the same
// connection. Not thread-safe: use one Client per thread.
#pragma once

#include <cstdint>
#include <deque>
#include <string>

#include "connect_reply.hpp"
#include "egress_export.h"
#include "endpoint.hpp"
#include "hostname.hpp"
#include "result.hpp"
#include "unique_fd.hpp"

namespace egress {

struct ConnectOptions {
    std::uint32_t timeout_ms = 0;  // 0: egressd's default
    bool nodelay = false;          // TCP_NODELAY on the returned socket
    bool blocking = false;         // the socket arrives in blocking mode
    std::string pool;              // empty: egressd's route decides
    // UDP: a connected SOCK_DGRAM socket (nodelay does not apply). Adopt
    // mode: the socket's own type decides, and UDP here must match it.
    Transport transport = Transport::tcp;
};

// A connected socket, owned by the caller, and what egressd said about it.
// meta.timeout_ms is not 0 when egressd served the request with a shorter
// deadline than options.timeout_ms asked for: its maximum
// (connect.max_timeout_ms), which it applied instead.
struct Connected {
    UniqueFd fd;
    proto::ConnectReply meta;
};

struct Completion {
    std::uint64_t request_id = 0;
    Result<Connected> result = Error{};
};

// $EGRESS_SOCKET if set, else /run/egressd/egressd.sock.
EGRESS_API std::string default_client_socket_path();

class EGRESS_API Client {
public:
    // Connects to egressd. The error says where it looked and why it failed.
    static Result<Client> open(const std::string& socket_path = default_client_socket_path());

    // Sends one CONNECT and waits for its reply. Replies to other requests
    // that arrive meanwhile are kept for next().
    Result<Connected> connect(const Endpoint& dest, const ConnectOptions& options = {});
    // The same for an address or a host name (parse_destination), which
    // egressd resolves and connects with Happy Eyeballs; meta.remote says
    // which address it reached, meta.addresses how many it tried.
    Result<Connected> connect(const Destination& dest, const ConnectOptions& options = {});

    // Sends a CONNECT without waiting; returns its request id.
    Result<std::uint64_t> submit(const Endpoint& dest, const ConnectOptions& options = {});
    Result<std::uint64_t> submit(const Destination& dest, const ConnectOptions& options = {});
    // Waits for the next reply, whichever request it answers. An error
    // result at the top level means the connection to egressd itself failed.
    Result<Completion> next();

    // Adopt mode (PROTOCOL.md section 6a): asks egressd to connect `fd`, the
    // caller's own non-blocking TCP socket, to `dest`, and waits for the
    // reply, which leaves as soon as connect() returns. Its status is 0
    // (connected), EINPROGRESS (under way: wait until `fd` is writable, then
    // read SO_ERROR, as after a non-blocking connect()) or the errno egressd
    // reports; LOCAL says which address it got. `fd` stays the caller's
    // (options.blocking is refused by egressd). An error result means the
    // request could not be sent or answered.
    Result<proto::ConnectReply> adopt(int fd, const Endpoint& dest, const ConnectOptions& options = {});

    // Asks egressd for its status document (JSON text, see PROTOCOL.md).
    Result<std::string> status();

    // The descriptor to poll() for readability before next().
    int native_handle() const { return sock_.get(); }

private:
    explicit Client(UniqueFd sock) : sock_(std::move(sock)) {}

    UniqueFd sock_;
    std::uint64_t next_id_ = 1;
    std::deque<Completion> parked_;
};

}  // namespace egress
