// Every Prometheus metric egressd exports, declared in one place and built
// from an injected registry. These names are an API: dashboards and alerts
// depend on them (README, "Metrics").
//
// The request path never looks a metric up by labels: each (pool, source)
// gets its handles once (SourceMetrics) and keeps them. Label values are
// bounded: configured pool names and source addresses, errno names.
//
// Thread-safe: every event loop shares one Metrics. Counters and gauges are
// prometheus-cpp's own (atomic); histograms are sharded by loop (histogram.hpp:
// prometheus-cpp's take a mutex per observation), so callers pass their loop's
// index; the lookups by label, made on refusals and on the first failure of
// each errno per source, take one mutex (a failure's handles are then read
// without it).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "metrics/histogram.hpp"
#include "metrics/names.hpp"
#include "endpoint.hpp"

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace egress {

// Label value for the source when the kernel chose the address.
inline constexpr const char* kKernelSource = "kernel";

struct BuildInfo {
    std::string version;
    std::string kernel;
    std::string auto_strategy;  // what `auto` resolved to
};

class Metrics;

// The handles of one (pool, source), for each transport. Owned by Metrics;
// lives as long as it. The TCP series exist from the start; the UDP ones
// appear with the first UDP connect, so that a TCP-only egressd exports no
// more series than before.
class SourceMetrics {
public:
    // One finished connect, counted in `shard` (the loop's index). `odd_port`
    // only matters when err == 0.
    void connect_done(std::size_t shard, Transport transport, int err, bool odd_port, bool parity_switch,
                      std::uint32_t retries, double seconds);

    // The figures of one transport so far (0 and empty before its first connect).
    double ok(Transport t = Transport::tcp) const;
    double parity_switches(Transport t = Transport::tcp) const;
    double window_retries(Transport t = Transport::tcp) const;
    std::map<std::string, double> errors(Transport t = Transport::tcp) const;  // errno name -> count

private:
    friend class Metrics;
    struct ErrorHandles {
        prometheus::Counter* count = nullptr;
        ShardedHistogram* duration = nullptr;
    };
    struct Handles {
        prometheus::Counter* ok = nullptr;
        prometheus::Counter* parity = nullptr;
        prometheus::Counter* retries = nullptr;
        ShardedHistogram* ok_even = nullptr;
        ShardedHistogram* ok_odd = nullptr;
        std::map<int, ErrorHandles> errors;  // created on first use of each errno; under m_->labels_
        // The handles of errno e, once made, for reading without the lock: a
        // refused or timed-out connect is as common as a successful one in a
        // storm against a closed port or a black hole.
        static constexpr int kFastErrnos = 160;
        std::array<std::atomic<const ErrorHandles*>, kFastErrnos> fast_errors{};
    };
    // The handles of `t`, made on first use (UDP); nullptr from the const
    // readers before then.
    Handles& handles(Transport t);
    const Handles* existing(Transport t) const { return made_[index(t)].load(std::memory_order_acquire); }
    static std::size_t index(Transport t) { return t == Transport::udp ? 1 : 0; }

    Metrics* m_ = nullptr;
    std::string pool_, source_;
    std::array<std::unique_ptr<Handles>, 2> per_transport_;  // written under m_->labels_
    std::array<std::atomic<Handles*>, 2> made_{};          // published once made
};

class Metrics {
    std::shared_ptr<HistogramFamilies> histograms_;  // first: the members below refer to it

public:
    // `shards`: the event loops that observe (one histogram shard each).
    Metrics(prometheus::Registry& registry, const BuildInfo& info, std::size_t shards = 1);

    // The histograms, to be registered with the exposer beside the registry.
    std::shared_ptr<prometheus::Collectable> histograms() const { return histograms_; }

    // The handles for (pool, source), created on first use.
    SourceMetrics& source(const std::string& pool, const std::string& source);

    prometheus::Gauge& inflight;
    prometheus::Gauge& clients;
    ShardedHistogram& request_duration;  // observe(loop index, seconds)
    prometheus::Counter& handoffs;
    // Connected sockets a client could not take (ETOOMANYREFS): closed, and
    // the reply says why.
    prometheus::Counter& handoffs_refused;
    prometheus::Counter& clients_refused;
    prometheus::Counter& accept_errors;
    // Requests served with connect.max_timeout_ms because they asked for more.
    prometheus::Counter& timeout_clamped;
    NameMetrics names;  // host-name requests
    prometheus::Counter& protocol_error(const std::string& kind);
    prometheus::Counter& client_dropped(const std::string& reason);
    prometheus::Counter& cancelled(const std::string& pool);
    // A request the client's rule refused (`reason`: destination, pool,
    // adopt or transport): egress_connects_total{result="EACCES"} with empty
    // pool and source (no connect was made) and the request's transport, and
    // egress_policy_denials_total{rule, reason}.
    void policy_denied(const std::string& rule, const std::string& reason, Transport transport = Transport::tcp);
    // Denials by `rule` so far, every reason.
    double policy_denials(const std::string& rule) const;
    // A request or connection refused with EAGAIN at one of `rule`'s limits
    // (`limit`: the key under the rule's "limits"):
    // egress_quota_refusals_total{rule, limit}.
    void quota_refused(const std::string& rule, const std::string& limit);
    // Refusals by `rule` so far, every limit.
    double quota_refusals(const std::string& rule) const;
    // An adopted socket's connect ended (it is also counted as any connect,
    // in egress_connects_total): egress_adopted_total{result}, result "ok",
    // the errno name, or "unknown" for a failure after the reply (err < 0).
    void adopted(int err);

    // Connect-time buckets, 10 us to 10 s: fine enough to separate the
    // 0.01-0.03 ms fast path from the 0.3-5 ms slow-path port search.
    static const std::vector<double>& connect_buckets();

private:
    friend class SourceMetrics;
    mutable std::mutex labels_;  // the maps below, and each SourceMetrics::errors_
    HistogramFamilies::Family& connect_duration_;
    prometheus::Family<prometheus::Counter>& connects_;
    prometheus::Family<prometheus::Counter>& parity_switches_;
    prometheus::Family<prometheus::Counter>& window_retries_;
    prometheus::Family<prometheus::Counter>& protocol_errors_;
    prometheus::Family<prometheus::Counter>& dropped_;
    prometheus::Family<prometheus::Counter>& cancelled_;
    prometheus::Family<prometheus::Counter>& policy_denials_;
    prometheus::Family<prometheus::Counter>& quota_refusals_;
    prometheus::Family<prometheus::Counter>& adopted_;
    std::map<int, prometheus::Counter*> adopted_results_;
    std::array<prometheus::Counter*, 2> denied_connects_;  // by transport
    std::map<std::pair<std::string, std::string>, std::unique_ptr<SourceMetrics>> sources_;
    std::map<std::string, prometheus::Counter*> protocol_error_kinds_, dropped_reasons_, cancelled_pools_;
    std::map<std::pair<std::string, std::string>, prometheus::Counter*> denials_;  // (rule, reason)
    std::map<std::pair<std::string, std::string>, prometheus::Counter*> refusals_;  // (rule, limit)
};

}  // namespace egress
