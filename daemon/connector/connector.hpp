// One asynchronous TCP connect: non-blocking socket, connect() -> EINPROGRESS,
// completion on writability, SO_ERROR decides; a deadline reaps black holes.
// Nothing here blocks the event loop.
//
// A UDP connect (ConnectPlan::transport) takes the same source and port
// steps on a SOCK_DGRAM socket; its connect() only records the peer, so it
// completes inside start(), and no traffic is waited for.
//
// Adopt mode connects a program's own socket instead (ConnectPlan::adopted):
// every try is made on that one socket, and the outcome is judged by its TCP
// state, never by SO_ERROR, which is the program's to read.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "endpoint.hpp"
#include "io/asio.hpp"
#include "pool/selection.hpp"
#include "sched/fair_queue.hpp"
#include "sys/syscalls.hpp"
#include "unique_fd.hpp"

namespace egress {

using Random = std::mt19937_64;

struct ConnectPlan {
    Endpoint dest;
    std::vector<Endpoint> sources;  // tried in this order; empty: the kernel picks
    PortPolicy policy;              // how each try picks its port
    std::string pool;               // for messages
    std::uint32_t flags = 0;        // EGRESS_CONNECT_* bits
    Transport transport = Transport::tcp;
    std::chrono::milliseconds timeout{3000};
    // Adopt mode: egressd's copy of the program's socket (checked by
    // inspect_adopted), of family AF_INET6 when `adopted_v6`. Unset: every
    // try opens a socket of its own. An IPv4 `dest` or source on an AF_INET6
    // socket is used in its mapped form (::ffff:a.b.c.d).
    UniqueFd adopted;
    bool adopted_v6 = false;
};

struct ConnectOutcome {
    int err = 0;            // 0 on success, else an errno
    std::string message;    // why, when err != 0
    UniqueFd fd;            // the connected socket, on success
    std::optional<Endpoint> local;
    std::optional<Endpoint> remote;
    std::uint32_t attempts = 0;        // tries made (socket + connect)
    std::uint32_t window_retries = 0;  // tries after the first on the same source
    std::optional<std::size_t> source; // index into plan.sources of the last try
    bool parity_switch = false;        // the kernel's search prefers the lower bound's parity
                                       // (port_search_prefers_parity) and the port has the other
    std::uint64_t connect_us = 0;      // from the first try to the outcome
    Transport transport = Transport::tcp;  // the plan's
};

// Adopt mode: the outcome of a connect that failed after the reply left. Its
// errno went to the program's SO_ERROR, which egressd does not read.
inline constexpr int kAdoptedFailureUnseen = -1;

class PendingConnect : public std::enable_shared_from_this<PendingConnect> {
public:
    using Done = std::function<void(ConnectOutcome)>;

    // With a lane, the connect's completions (writable, deadline) run as
    // tasks of that lane, in the client's fair turn; without one, at once.
    PendingConnect(asio::io_context& io, Syscalls& sys, Random& random, ConnectPlan plan,
                   std::shared_ptr<FairQueue::Lane> lane = nullptr);

    // Starts the connect. `done` runs exactly once, possibly before start()
    // returns (a connect that fails at once), unless cancel() runs first.
    // Adopt mode: when connect() is under way, `in_progress` runs first, once,
    // inside start(), with err EINPROGRESS, local, attempts and source (no fd);
    // `done` then runs when the socket is established (err 0, fd = egressd's
    // copy), closed (kAdoptedFailureUnseen) or the deadline passes (ETIMEDOUT).
    void start(Done done, Done in_progress = nullptr);

    // Abandons the connect: its socket is closed now and `done` never runs.
    void cancel();

    const std::string& pool() const { return plan_.pool; }

private:
    // Whether a try's errno means the source's ports ran out (try another).
    bool ports_exhausted(int err) const;
    // One try; returns 0 when the connect is under way (or done), else errno.
    int try_once(const Attempt& a, std::string& what);
    // Runs `step` now, or as a task of lane_ when there is one.
    void in_turn(void (PendingConnect::*step)(const error_code&), const error_code& ec);
    void wait_writable();
    void on_writable(const error_code& ec);
    // The socket is established: fill in the outcome and hand it over.
    void complete(UniqueFd fd, std::optional<Endpoint> remote);
    void on_deadline(const error_code& ec);
    void fail(int err, std::string message);
    void finish(ConnectOutcome outcome);
    // The outcome's shared figures: attempts, retries, source, time so far.
    void account(ConnectOutcome& out) const;
    // `e` as the socket being connected addresses it (mapped on an adopted AF_INET6 socket).
    Endpoint on_socket(const Endpoint& e) const;

    Syscalls& sys_;
    Random& random_;
    ConnectPlan plan_;
    std::shared_ptr<FairQueue::Lane> lane_;
    bool adopt_;  // plan_.adopted was set: adopt mode
    bool udp_;    // plan_.transport is UDP
    std::optional<Attempt> attempt_;  // the try in progress
    std::uint32_t attempts_ = 0;
    std::uint32_t retries_ = 0;
    asio::io_context& io_;
    // Made only for a connect that did not complete at once: most to near
    // peers do, and making Asio objects takes the io_context's service lock.
    struct Waiting {
        explicit Waiting(asio::io_context& io) : sock(io), deadline(io) {}
        asio::posix::stream_descriptor sock;
        asio::steady_timer deadline;
    };
    std::optional<Waiting> wait_;
    Done done_;
    Done in_progress_;
    bool adopted_bound_ = false;  // adopt mode: a try already bound the program's socket
    std::chrono::steady_clock::time_point started_;
    bool finished_ = false;
};

}  // namespace egress
