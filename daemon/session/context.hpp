// What every session shares: the loop, the OS layer, the config in force and
// the counters. Built in main and passed down.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <unordered_map>

#include "config/config.hpp"
#include "connector/connector.hpp"
#include "io/asio.hpp"
#include "logging/rate_limit.hpp"
#include "metrics/metrics.hpp"
#include "pool/pools.hpp"
#include "quota/quota.hpp"
#include "sched/fair_queue.hpp"
#include "session/batch.hpp"
#include "sys/kernel.hpp"
#include "stats/stats.hpp"
#include "sys/syscalls.hpp"

namespace egress {

// Facts about this daemon for the status document; main keeps them current.
struct DaemonInfo {
    KernelInfo kernel;
    AutoChoice auto_choice{PortStrategy::kernel_default, ""};
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    std::uint64_t generation = 1;  // +1 per successful reload
    std::optional<std::uint64_t> netns_cookie;  // egressd's network namespace (SO_NETNS_COOKIE)
};

// `config` and `pools` are replaced together on reload; work in flight keeps
// the snapshot it started with alive through its own shared_ptr copies.
// `host` is replaced whole by the address watcher (sys/address_watch.hpp),
// on the loop's thread, whenever an address of this host comes or goes.
struct BrokerContext {
    asio::io_context& io;
    Syscalls& sys;
    ConfigPtr config;
    Stats& stats;
    Metrics& metrics;
    std::shared_ptr<PoolSet> pools;
    Random& random;
    FairQueue& turns;  // every client's work, in fair turns
    DaemonInfo info;
    std::shared_ptr<const HostFacts> host = std::make_shared<const HostFacts>();  // never null
    LogLimiter notable{std::chrono::seconds(10), 5};  // rate limit for warn/info events

    // Logs a notable event unless too many with the same key came lately.
    template <class... Args>
    void log_event(spdlog::level::level_enum level, const std::string& key, fmt::format_string<Args...> f,
                   Args&&... args) {
        if (!spdlog::should_log(level)) return;
        const auto held = notable.admit(key, std::chrono::steady_clock::now());
        if (!held) return;
        auto text = fmt::format(f, std::forward<Args>(args)...);
        if (*held) text += fmt::format(" ({} similar lines held back)", *held);
        spdlog::log(level, "{}", text);
    }
    // Per-uid counts behind the client rules' limits; outlives every session.
    QuotaTable quotas{[] { return std::chrono::steady_clock::now(); }};
    // Adopted connects being watched, every session's: they may outlive their
    // session, so the listener cancels what is left when egressd stops.
    std::unordered_map<const void*, std::weak_ptr<PendingConnect>> adopt_watches;
    RecvBatch recv_batch{};  // shared scratch, see batch.hpp
    SendBatch send_batch{};
};

}  // namespace egress
