// One of egressd's event loops, and what its sessions reach through it.
//
// Each loop runs on its own thread with its own io_context, fair turns,
// random source, log limiter and scratch space: a client's requests stay on
// the loop that took the client, and nothing here is shared but `shared`.
// The config in force reaches a loop as a Snapshot posted to it (reload), the
// host's addresses likewise (the address watch), so a request reads both
// without a lock.
#pragma once

#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "codec.hpp"
#include "config/config.hpp"
#include "connector/connector.hpp"
#include "handoff/batch.hpp"
#include "io/asio.hpp"
#include "logging/rate_limit.hpp"
#include "metrics/metrics.hpp"
#include "pool/pools.hpp"
#include "quota/quota.hpp"
#include "resolve/resolver.hpp"
#include "sched/fair_queue.hpp"
#include "stats/stats.hpp"
#include "sys/kernel.hpp"
#include "sys/syscalls.hpp"

namespace egress {

// The work one client may do in one turn of its loop's FairQueue, in requests
// read or connects finished: a turn of a busy client delays the others by this.
inline constexpr std::uint32_t kTurnQuantum = 8;

// Facts about this daemon for the status document, current as of a snapshot.
struct DaemonInfo {
    KernelInfo kernel;
    AutoChoice auto_choice{PortStrategy::kernel_default, ""};
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    std::uint64_t generation = 1;  // +1 per successful reload
    std::size_t threads = 1;       // event loops
};

// The config in force and what was built from it, replaced whole on reload.
// Work in flight keeps the snapshot it started with alive through its own
// shared_ptr copies.
struct Snapshot {
    ConfigPtr config;
    std::shared_ptr<PoolSet> pools;  // one for every loop: thread-safe
    std::shared_ptr<const DaemonInfo> info;
};

// What every loop shares. Each member is safe to use from any loop's thread.
struct Shared {
    Syscalls& sys;
    Metrics& metrics;
    Stats stats;
    // Per-uid counts behind the client rules' limits; outlives every session.
    QuotaTable quotas{[] { return std::chrono::steady_clock::now(); }};
    // This network namespace's cookie (adopt mode); set before the loops run.
    std::optional<std::uint64_t> netns_cookie;
    std::atomic<std::uint64_t> next_session_id{1};
    // Client connections on each loop, for the hand-over and the status
    // document; sized by the Broker before any loop runs, never resized.
    std::vector<SharedCount<std::uint32_t>> loop_clients;
    // Rate limit for warn/info events, every loop's: an operator reads "at
    // most 5 a key per 10 s" whatever the thread count. Its lock is taken
    // only for an event about to be logged, and spdlog's sink takes its own
    // for each line anyway.
    std::mutex notable_mutex;
    LogLimiter notable{std::chrono::seconds(10), 5};
};

struct LoopContext {
    LoopContext(Shared& s, std::size_t i, Snapshot first, std::uint64_t seed)
        : shared(s), sys(s.sys), metrics(s.metrics), index(i), now(std::move(first)), random(seed),
          turns([this] { asio::post(io, [this] { turns.run(); }); }, kTurnQuantum),
          resolver(std::make_shared<Resolver>(io, now.config->dns)) {}
    LoopContext(const LoopContext&) = delete;
    LoopContext& operator=(const LoopContext&) = delete;

    // One thread runs it, and only that thread touches its sockets and
    // timers (others post to it): the reactor's per-descriptor lock, taken
    // twice a request, is left out; posting and timer registration keep theirs.
    asio::io_context io{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
    Shared& shared;
    Syscalls& sys;
    Metrics& metrics;
    std::size_t index;  // 0: the loop on egressd's main thread
    Snapshot now;
    std::shared_ptr<const HostFacts> host = std::make_shared<const HostFacts>();  // never null
    Random random;
    FairQueue turns;  // this loop's clients' work, in fair turns
    // Host-name lookups; replaced when a reload changes "dns" (lookups under
    // way keep the one they started with).
    std::shared_ptr<Resolver> resolver;

    // Logs a notable event unless too many with the same key came lately.
    template <class... Args>
    void log_event(spdlog::level::level_enum level, const std::string& key, fmt::format_string<Args...> f,
                   Args&&... args) {
        if (!spdlog::should_log(level)) return;
        std::optional<std::uint64_t> held;
        {
            const std::lock_guard lock(shared.notable_mutex);
            held = shared.notable.admit(key, std::chrono::steady_clock::now());
        }
        if (!held) return;
        auto text = fmt::format(f, std::forward<Args>(args)...);
        if (*held) text += fmt::format(" ({} similar lines held back)", *held);
        spdlog::log(level, "{}", text);
    }
    // Adopted connects being watched on this loop: they may outlive their
    // session, so the loop cancels what is left when egressd stops.
    std::unordered_map<const void*, std::weak_ptr<PendingConnect>> adopt_watches;
    RecvBatch recv_batch{};  // scratch for every session of this loop, see batch.hpp
    SendBatch send_batch{};

    // Buffers of replies already sent, for the next replies to be written
    // into: a reply costs no allocation once the loop has sent a few.
    proto::Bytes reply_buffer() {
        if (spare_replies.empty()) return {};
        auto b = std::move(spare_replies.back());
        spare_replies.pop_back();
        return b;
    }
    void reuse(proto::Bytes&& sent) {
        if (spare_replies.size() < kSpareReplies && sent.capacity() <= kSpareReplySize)
            spare_replies.push_back(std::move(sent));
    }
    static constexpr std::size_t kSpareReplies = 64, kSpareReplySize = 512;
    std::vector<proto::Bytes> spare_replies;
};

}  // namespace egress
