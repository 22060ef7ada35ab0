#include "pools.hpp"

#include <algorithm>

namespace egress {
namespace {

// Readings kept at most. At the bound expired ones are dropped; if none has
// expired, one arbitrary reading goes (it costs one extra probe later).
constexpr std::size_t kMaxReadings = 4096;

}  // namespace

PoolSet::PoolSet(const Config& config, PortStrategy auto_strategy, PortRange ephemeral, KernelVersion kernel,
                 LoadProbe probe, Clock clock)
    : routes_(config.routes, config.default_pool),
      probe_(std::move(probe)),
      clock_(std::move(clock)),
      cache_ttl_(config.least_loaded_cache_ms) {
    for (const auto& pc : config.pools) {
        Pool p;
        p.name = pc.name;
        p.sources = pc.sources;
        for (const auto& s : pc.sources) p.labels.push_back(address_string(s));
        p.selection = pc.selection;
        p.client_selectable = pc.client_selectable;
        p.policy.strategy = pc.port_strategy == PortStrategy::automatic ? auto_strategy : pc.port_strategy;
        p.policy.range = pc.port_range.value_or(ephemeral);
        p.policy.kernel = kernel;
        p.policy.window_size = pc.window_size;
        p.policy.max_window_retries = pc.max_window_retries;
        p.policy.userspace_max_attempts = pc.userspace_max_attempts;
        pools_.push_back(std::move(p));
    }
}

Result<std::size_t> PoolSet::serving(const std::string& requested, const Endpoint& dest) const {
    const auto& name = pool_name_for(requested, dest);
    std::size_t index = pools_.size();
    for (std::size_t i = 0; i < pools_.size(); ++i)
        if (pools_[i].name == name) index = i;
    if (index == pools_.size()) return Error{ENOENT, "no pool named '" + name + "'"};
    const Pool* pool = &pools_[index];
    if (!requested.empty() && !pool->client_selectable)
        return Error{EACCES, "pool '" + name + "' may not be chosen by clients (client_selectable is false)"};
    // Only sources of the destination's family can reach it.
    const bool any = pool->sources.empty() ||
                     std::any_of(pool->sources.begin(), pool->sources.end(), [&](const Endpoint& s) { return s.v6 == dest.v6; });
    if (!any) return Error{EAFNOSUPPORT, "pool '" + name + "' has no " + (dest.v6 ? "IPv6" : "IPv4") + " source"};
    return index;
}

std::optional<Error> PoolSet::check(const std::string& requested, const Endpoint& dest) const {
    auto p = serving(requested, dest);
    if (!p) return p.error();
    return std::nullopt;
}

Result<Choice> PoolSet::choose(const std::string& requested, const Endpoint& dest, std::uint64_t random,
                               Transport transport) {
    auto found = serving(requested, dest);
    if (!found) return found.error();
    Pool* pool = &pools_[*found];
    Choice c{pool, {}};
    if (pool->sources.empty()) return c;  // the kernel picks the address
    std::vector<std::size_t> eligible;
    for (std::size_t i = 0; i < pool->sources.size(); ++i)
        if (pool->sources[i].v6 == dest.v6) eligible.push_back(i);

    std::vector<std::uint32_t> loads;
    if (pool->selection == Selection::least_loaded) {
        const auto all = load(*pool, dest, transport);
        for (auto i : eligible) loads.push_back(all[i]);
    }
    for (auto k : source_order(pool->selection, eligible.size(), pool->turn.add(), random, loads))
        c.order.push_back(eligible[k]);
    return c;
}

std::pair<std::string, std::string> PoolSet::reading_key(const Pool& pool, const Endpoint& dest, Transport transport) {
    if (transport == Transport::udp) return {pool.name, dest.v6 ? "udp/ipv6" : "udp/ipv4"};
    return {pool.name, endpoint_string(dest)};
}

std::vector<std::uint32_t> PoolSet::load(Pool& pool, const Endpoint& dest, Transport transport) {
    const auto now = clock_();
    const auto key = reading_key(pool, dest, transport);
    const std::lock_guard lock(readings_mutex_);
    auto it = readings_.find(key);
    if (it != readings_.end() && now - it->second.at < cache_ttl_) return it->second.counts;
    auto counts = probe_(pool.sources, dest, transport);
    // Without a usable reading every source looks equal: selection degrades to round-robin.
    const bool usable = counts && counts->size() == pool.sources.size();
    Reading r{now, usable ? *counts : std::vector<std::uint32_t>(pool.sources.size(), 0)};
    if (readings_.size() >= kMaxReadings) {
        for (auto i = readings_.begin(); i != readings_.end();)
            i = now - i->second.at >= cache_ttl_ ? readings_.erase(i) : std::next(i);
        if (readings_.size() >= kMaxReadings) readings_.erase(readings_.begin());
    }
    return readings_.insert_or_assign(key, std::move(r)).first->second.counts;
}

void PoolSet::record_success(Pool& pool, std::size_t source, const Endpoint& dest, Transport transport) {
    if (pool.selection != Selection::least_loaded) return;
    const std::lock_guard lock(readings_mutex_);
    const auto it = readings_.find(reading_key(pool, dest, transport));
    if (it != readings_.end() && source < it->second.counts.size()) ++it->second.counts[source];
}

}  // namespace egress
