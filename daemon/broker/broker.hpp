// The Broker: egressd's event loops and what they share, built in main and
// run there (main's thread runs loop 0; each other loop has a thread).
//
// The listener hands each accepted client to a loop (hand_over); from then
// on the client's requests, connects and replies stay on that loop. The
// Broker carries what changes for all loops at once (a reload's snapshot, the
// host's addresses, a drain, the stop) to each of them as posted work, so no
// loop ever waits for another.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "broker/loop.hpp"
#include "session/session.hpp"
#include "unique_fd.hpp"

namespace egress {

class Broker {
public:
    // `threads` loops (at least 1), each starting with `first`.
    Broker(Shared& shared, Snapshot first, std::size_t threads);
    ~Broker();
    Broker(const Broker&) = delete;
    Broker& operator=(const Broker&) = delete;

    // Loop 0 runs on the thread that calls run(); main's signals, timers,
    // listener and address watch live there too.
    LoopContext& home() { return loops_.front()->ctx; }
    std::size_t threads() const { return loops_.size(); }
    Shared& shared() { return shared_; }

    // Starts loops 1..N-1 on threads of their own, runs loop 0 until stop()
    // has reached every loop, then joins the threads.
    void run();

    // A new client: to the loop with the fewest client connections (ties go
    // round-robin), where its Session is made and started. Call on loop 0.
    void hand_over(UniqueFd client, Credentials peer, QuotaTable::Slot quota);

    // Each loop takes `next` (or `host`) before its next request.
    void publish(const Snapshot& next);
    void publish(std::shared_ptr<const HostFacts> host);

    // Shutdown, first step: every session answers new requests with
    // ESHUTDOWN (`why`) while its connects finish. `drained` runs on loop 0
    // once no_more_clients() has been called and every session of every loop
    // is idle.
    void drain(std::string why, std::function<void()> drained);
    // The listener has handed over its last client.
    void no_more_clients();
    // Every connect still in flight is cancelled and answered with ESHUTDOWN.
    void abort_inflight(const std::string& why);
    // Every loop closes its sessions, cancels its watched adopted connects
    // and stops; run() returns once loop 0 has.
    void stop();

    // For the service watchdog: true when every loop has run the keep-alive
    // probe posted to it by the previous call (a loop that stopped turning
    // never does). Call on loop 0, once per keep-alive period.
    bool all_loops_turning();

private:
    struct Loop {
        Loop(Shared& s, std::size_t i, Snapshot first, std::uint64_t seed)
            : ctx(s, i, std::move(first), seed), drain_poll(ctx.io) {}
        LoopContext ctx;
        // Touched on this loop's thread only:
        std::unordered_map<Session*, std::shared_ptr<Session>> sessions;
        std::optional<std::string> draining;  // the ESHUTDOWN message
        bool last_client = false;             // no_more_clients() reached this loop
        bool drained_told = false;
        // Made with the loop, so that its io_context opens its descriptors
        // (epoll, eventfd, timerfd) at start-up and not with its first client.
        asio::steady_timer drain_poll;
        // Read by loop 0 (the watchdog):
        std::atomic<std::uint64_t> probe_seen{0};
        std::thread thread;
    };
    void start_session(Loop& loop, UniqueFd client, Credentials peer, QuotaTable::Slot quota);
    // On `loop`'s thread: tells loop 0 once the loop's drain is done, or
    // looks again shortly.
    void check_drained(Loop& loop);

    Shared& shared_;
    std::vector<std::unique_ptr<Loop>> loops_;
    std::size_t next_ = 0;  // round-robin start for ties (loop 0 only)
    std::uint64_t probe_ = 0;
    std::size_t loops_draining_ = 0;  // loop 0 only
    std::function<void()> drained_;
};

}  // namespace egress
