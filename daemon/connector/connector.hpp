// One asynchronous TCP connect: non-blocking socket, connect() -> EINPROGRESS,
// completion on writability, SO_ERROR decides; a deadline reaps black holes.
// Nothing here blocks the event loop.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "endpoint.hpp"
#include "io/asio.hpp"
#include "sys/syscalls.hpp"
#include "unique_fd.hpp"

namespace egress {

struct ConnectPlan {
    Endpoint dest;
    std::optional<Endpoint> source;  // bind to this address first; port 0 = any
    std::uint32_t flags = 0;         // EGRESS_CONNECT_* bits
    std::chrono::milliseconds timeout{3000};
};

struct ConnectOutcome {
    int err = 0;            // 0 on success, else an errno
    std::string message;    // why, when err != 0
    UniqueFd fd;            // the connected socket, on success
    std::optional<Endpoint> local;
    std::optional<Endpoint> remote;
    std::uint32_t attempts = 0;
    std::uint64_t connect_us = 0;  // from connect() to its outcome
};

class PendingConnect : public std::enable_shared_from_this<PendingConnect> {
public:
    using Done = std::function<void(ConnectOutcome)>;

    PendingConnect(asio::io_context& io, Syscalls& sys, ConnectPlan plan);

    // Starts the connect. `done` runs exactly once, possibly before start()
    // returns (a connect that fails at once), unless cancel() runs first.
    void start(Done done);

    // Abandons the connect: its socket is closed now and `done` never runs.
    void cancel();

private:
    void on_writable(const error_code& ec);
    void on_deadline(const error_code& ec);
    void fail(int err, std::string message);
    void finish(ConnectOutcome outcome);

    Syscalls& sys_;
    ConnectPlan plan_;
    asio::posix::stream_descriptor sock_;
    asio::steady_timer deadline_;
    Done done_;
    std::chrono::steady_clock::time_point started_;
    bool finished_ = false;
};

}  // namespace egress
