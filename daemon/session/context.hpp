// What every session shares: the loop, the OS layer, the config in force and
// the counters. Built in main and passed down.
#pragma once

#include "config/config.hpp"
#include "connector/connector.hpp"
#include "io/asio.hpp"
#include "metrics/metrics.hpp"
#include "pool/pools.hpp"
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
};

// `config` and `pools` are replaced together on reload; work in flight keeps
// the snapshot it started with alive through its own shared_ptr copies.
struct BrokerContext {
    asio::io_context& io;
    Syscalls& sys;
    ConfigPtr config;
    Stats& stats;
    Metrics& metrics;
    std::shared_ptr<PoolSet> pools;
    Random& random;
    DaemonInfo info;
    RecvBatch recv_batch{};  // shared scratch, see batch.hpp
    SendBatch send_batch{};
};

}  // namespace egress
