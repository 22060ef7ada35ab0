// What every session shares: the loop, the OS layer, the config in force and
// the counters. Built in main and passed down.
#pragma once

#include "config/config.hpp"
#include "connector/connector.hpp"
#include "io/asio.hpp"
#include "metrics/metrics.hpp"
#include "pool/pools.hpp"
#include "session/batch.hpp"
#include "stats/stats.hpp"
#include "sys/syscalls.hpp"

namespace egress {

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
    RecvBatch recv_batch{};  // shared scratch, see batch.hpp
    SendBatch send_batch{};
};

}  // namespace egress
