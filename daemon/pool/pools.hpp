// The pools in force: which pool serves a request, in which order to try its
// sources, and the port policy of each. Logic only: the socket-table reading
// (for least-loaded) and the clock are injected. One PoolSet serves every
// event loop: choose() and record_success() are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "endpoint.hpp"
#include "pool/selection.hpp"
#include "result.hpp"
#include "stats/stats.hpp"

namespace egress {

class SourceMetrics;  // metrics/metrics.hpp; the pool only carries the handles

// The load on each source, from the socket table (any process): TCP, the
// connections it holds to `dest`; UDP, the UDP ports it has taken toward any
// destination (a UDP port is taken for all of them), `dest` giving the family.
using LoadProbe = std::function<Result<std::vector<std::uint32_t>>(const std::vector<Endpoint>& sources,
                                                                   const Endpoint& dest, Transport transport)>;
using Clock = std::function<std::chrono::steady_clock::time_point()>;

struct Pool {
    std::string name;
    std::vector<Endpoint> sources;
    std::vector<std::string> labels;  // per source: its address, for logs and metrics
    Selection selection = Selection::round_robin;
    PortPolicy policy;                // `auto` already resolved
    bool client_selectable = false;
    // Shared by every event loop (the PoolSet is one for all).
    SharedCount<std::uint64_t> turn;      // round-robin position
    SharedCount<std::uint32_t> inflight;  // connects under way through this pool
    std::vector<SourceMetrics*> source_metrics;  // per source, set by main
    SourceMetrics* kernel_metrics = nullptr;     // when the kernel picks the address
};

// The sources to try for one connect, best first (indices into pool.sources).
struct Choice {
    Pool* pool = nullptr;
    std::vector<std::size_t> order;
};

class PoolSet {
public:
    // `auto_strategy`: what `auto` resolves to on this kernel; `ephemeral`:
    // the system's port range, used by pools that set none; `kernel`: the
    // running kernel, carried in each policy (port_search_prefers_parity).
    PoolSet(const Config& config, PortStrategy auto_strategy, PortRange ephemeral, KernelVersion kernel,
            LoadProbe probe, Clock clock);

    // `requested` empty: the route decides. Errors: ENOENT (no such pool),
    // EACCES (the pool may not be named by clients), EAFNOSUPPORT (no
    // source of the destination's family).
    // `transport` decides what least-loaded counts (LoadProbe).
    Result<Choice> choose(const std::string& requested, const Endpoint& dest, std::uint64_t random,
                          Transport transport = Transport::tcp);
    // What choose() would refuse, without choosing (no round-robin turn, no
    // socket-table reading): nullopt when it would serve `dest`.
    std::optional<Error> check(const std::string& requested, const Endpoint& dest) const;

    // The name of the pool a request would go through: `requested`, or when
    // empty the one the routes pick for `dest`. Whether it exists is not checked.
    const std::string& pool_name_for(const std::string& requested, const Endpoint& dest) const {
        return requested.empty() ? routes_.pool_for(dest) : requested;
    }

    // A connect through pool/source succeeded: least-loaded counts it until
    // its next reading of the socket table.
    void record_success(Pool& pool, std::size_t source, const Endpoint& dest, Transport transport = Transport::tcp);

    const std::vector<Pool>& pools() const { return pools_; }
    std::vector<Pool>& pools() { return pools_; }

private:
    // The index of the pool that serves `dest`, or why none may (choose()'s errors).
    Result<std::size_t> serving(const std::string& requested, const Endpoint& dest) const;
    struct Reading {
        std::chrono::steady_clock::time_point at;
        std::vector<std::uint32_t> counts;  // per source of the pool
    };
    std::vector<std::uint32_t> load(Pool& pool, const Endpoint& dest, Transport transport);
    // A reading's key: (pool, the destination) for TCP, (pool, the family) for UDP.
    static std::pair<std::string, std::string> reading_key(const Pool& pool, const Endpoint& dest, Transport transport);

    std::vector<Pool> pools_;
    RouteTable routes_;
    LoadProbe probe_;
    Clock clock_;
    std::chrono::milliseconds cache_ttl_;
    // Least-loaded pools only: the one lock a request takes, held for a map
    // lookup (and, once per cache_ttl_ per destination, a socket-table read).
    std::mutex readings_mutex_;
    std::map<std::pair<std::string, std::string>, Reading> readings_;  // reading_key() -> reading
};

}  // namespace egress
