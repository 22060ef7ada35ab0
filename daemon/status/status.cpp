#include "status.hpp"

#include <cmath>

namespace egress {
namespace {

nlohmann::json transport_figures(const SourceMetrics& m, Transport t) {
    nlohmann::json errors = nlohmann::json::object();
    for (const auto& [name, n] : m.errors(t)) errors[name] = static_cast<std::uint64_t>(n);
    return {{"connects_ok", static_cast<std::uint64_t>(m.ok(t))},
            {"errors", errors},
            {"parity_switches", static_cast<std::uint64_t>(m.parity_switches(t))},
            {"window_retries", static_cast<std::uint64_t>(m.window_retries(t))}};
}

// TCP's figures at the top (as before UDP came), UDP's in "udp".
nlohmann::json source_figures(const std::string& address, const SourceMetrics* m) {
    nlohmann::json j{{"address", address}};
    if (!m) return j;
    j.update(transport_figures(*m, Transport::tcp));
    j["udp"] = transport_figures(*m, Transport::udp);
    return j;
}

// A rule's limits as configured; absent keys: no limit.
nlohmann::json limit_figures(const QuotaLimits& l) {
    nlohmann::json j = nlohmann::json::object();
    if (l.max_inflight_per_connection) j["max_inflight_per_connection"] = *l.max_inflight_per_connection;
    if (l.max_inflight_per_uid) j["max_inflight_per_uid"] = *l.max_inflight_per_uid;
    if (l.rate) {
        j["requests_per_second"] = l.rate->per_second;
        j["burst"] = l.rate->burst;
    }
    if (l.max_connections_per_uid) j["max_connections_per_uid"] = *l.max_connections_per_uid;
    return j;
}

nlohmann::json rule_figures(const ClientRule& r, Metrics& metrics) {
    std::string match = "default";
    if (r.match) match = (r.match->kind == ClientMatch::Kind::uid ? "uid " : "gid ") + std::to_string(r.match->id);
    return {{"name", r.name},
            {"match", match},
            {"destinations", r.destinations.size()},
            {"deny_private", r.deny_private},
            {"deny_host", r.deny_host},
            {"adopt", r.adopt},
            {"adopt_other_netns", r.adopt_other_netns},
            {"udp", r.udp},
            {"denied", static_cast<std::uint64_t>(metrics.policy_denials(r.name))},
            {"limits", limit_figures(r.limits)},
            {"throttled", static_cast<std::uint64_t>(metrics.quota_refusals(r.name))}};
}

}  // namespace

nlohmann::json status_document(const LoopContext& ctx) {
    const auto& info = *ctx.now.info;
    nlohmann::json pools = nlohmann::json::array();
    for (const auto& p : ctx.now.pools->pools()) {
        nlohmann::json sources = nlohmann::json::array();
        for (std::size_t i = 0; i < p.sources.size(); ++i)
            sources.push_back(source_figures(p.labels[i], i < p.source_metrics.size() ? p.source_metrics[i] : nullptr));
        if (p.sources.empty()) sources.push_back(source_figures(kKernelSource, p.kernel_metrics));
        nlohmann::json pool{{"name", p.name},
                            {"selection", to_string(p.selection)},
                            {"port_strategy", to_string(p.policy.strategy)},
                            {"port_range", to_string(p.policy.range)},
                            {"client_selectable", p.client_selectable},
                            {"in_flight", p.inflight.get()},
                            {"sources", sources}};
        if (p.policy.strategy == PortStrategy::window) {
            pool["window_size"] = p.policy.window_size;
            pool["max_window_retries"] = p.policy.max_window_retries;
        }
        pools.push_back(std::move(pool));
    }
    nlohmann::json clients = nlohmann::json::array();
    for (const auto& r : ctx.now.config->clients.rules()) clients.push_back(rule_figures(r, ctx.metrics));
    clients.push_back(rule_figures(ctx.now.config->clients.default_rule(), ctx.metrics));
    nlohmann::json loops = nlohmann::json::array();
    for (const auto& n : ctx.shared.loop_clients) loops.push_back(nlohmann::json::object({{"clients", n.get()}}));
    nlohmann::json servers = nlohmann::json::array();
    for (const auto& e : ctx.now.config->dns.servers) servers.push_back(endpoint_string(e));
    const nlohmann::json dns{{"servers", servers},  // empty: resolv.conf's
                             {"lookups_pending", ctx.resolver->pending()},
                             {"cached_answers", ctx.resolver->cached_entries()}};
    const auto uptime = std::chrono::duration<double>(std::chrono::steady_clock::now() - info.started).count();
    return {{"version", EGRESSD_VERSION},
            {"uptime_s", std::round(uptime * 1000) / 1000},
            {"config_generation", info.generation},
            {"kernel",
             {{"release", info.kernel.release},
              {"ip_local_port_range", info.kernel.local_port_range},
              {"ephemeral_port_range", to_string(info.kernel.ephemeral)},
              {"auto_strategy", to_string(info.auto_choice.strategy)},
              {"auto_reason", info.auto_choice.reason}}},
            {"threads", info.threads},
            {"loops", loops},
            {"clients_connected", ctx.shared.stats.clients_connected.get()},
            {"requests_in_flight", ctx.shared.stats.inflight.get()},
            {"quota_uids", ctx.shared.quotas.uids()},
            {"host_addresses", ctx.host->addresses.size()},
            {"features", nlohmann::json::array({"adopt", "host_names", "udp"})},
            {"dns", dns},
            {"pools", pools},
            {"clients", clients}};
}

}  // namespace egress
