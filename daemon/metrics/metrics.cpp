#include "metrics.hpp"

#include <cstring>

namespace egress {
namespace {

// A negative value is no errno: an adopted connect that failed after its
// reply, whose errno only the program saw.
std::string errno_label(int err) {
    if (err < 0) return "unknown";
    if (const char* name = strerrorname_np(err)) return name;
    return "E" + std::to_string(err);
}

}  // namespace

const std::vector<double>& Metrics::connect_buckets() {
    static const std::vector<double> b{
        0.00001, 0.00002, 0.00003, 0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.001, 0.002, 0.003, 0.005,
        0.01,    0.02,    0.05,    0.1,     0.2,    0.5,    1,      2,      5,     10};
    return b;
}

Metrics::Metrics(prometheus::Registry& r, const BuildInfo& info, std::size_t shards)
    : histograms_(std::make_shared<HistogramFamilies>(shards)),
      inflight(prometheus::BuildGauge()
                   .Name("egress_requests_in_flight")
                   .Help("CONNECT requests received and not yet answered")
                   .Register(r)
                   .Add({})),
      clients(prometheus::BuildGauge()
                  .Name("egress_clients_connected")
                  .Help("Client connections to egressd's socket")
                  .Register(r)
                  .Add({})),
      request_duration(histograms_->add("egress_request_duration_seconds",
                                        "From a CONNECT request's arrival to its reply being queued")
                           .add({}, connect_buckets())),
      handoffs(prometheus::BuildCounter()
                   .Name("egress_fd_handoffs_total")
                   .Help("Connected sockets delivered to clients with SCM_RIGHTS")
                   .Register(r)
                   .Add({})),
      handoffs_refused(prometheus::BuildCounter()
                           .Name("egress_fd_handoffs_refused_total")
                           .Help("Connected sockets a client could not take (ETOOMANYREFS: too many descriptors "
                                 "in flight to it); each was closed and its reply says why")
                           .Register(r)
                           .Add({})),
      clients_refused(prometheus::BuildCounter()
                          .Name("egress_clients_refused_total")
                          .Help("Client connections refused at limits.max_clients")
                          .Register(r)
                          .Add({})),
      accept_errors(prometheus::BuildCounter()
                        .Name("egress_accept_errors_total")
                        .Help("accept() failures on the listening socket (EMFILE, ENFILE, ...)")
                        .Register(r)
                        .Add({})),
      timeout_clamped(prometheus::BuildCounter()
                          .Name("egress_timeout_clamped_total")
                          .Help("CONNECT requests served with connect.max_timeout_ms because they asked for a "
                                "longer timeout (the reply carries TIMEOUT_MS)")
                          .Register(r)
                          .Add({})),
      names(r, *histograms_),
      connect_duration_(histograms_->add("egress_connect_duration_seconds",
                                         "Time from the first connect() try to its outcome")),
      connects_(prometheus::BuildCounter()
                    .Name("egress_connects_total")
                    .Help("Finished connects by outcome: ok or the errno name")
                    .Register(r)),
      parity_switches_(prometheus::BuildCounter()
                           .Name("egress_port_parity_switches_total")
                           .Help("Connects whose kernel port search prefers the parity of the range's lower "
                                 "bound (kernel-default; window and kernel-range before Linux 6.8) and whose "
                                 "port has the other: the preferred half was exhausted")
                           .Register(r)),
      window_retries_(prometheus::BuildCounter()
                          .Name("egress_port_window_retries_total")
                          .Help("Connect tries after the first on the same source (EADDRNOTAVAIL)")
                          .Register(r)),
      protocol_errors_(prometheus::BuildCounter()
                           .Name("egress_protocol_errors_total")
                           .Help("Requests refused before any connect, by kind")
                           .Register(r)),
      dropped_(prometheus::BuildCounter()
                   .Name("egress_clients_dropped_total")
                   .Help("Client connections egressd closed for misbehaviour, by reason")
                   .Register(r)),
      cancelled_(prometheus::BuildCounter()
                     .Name("egress_connects_cancelled_total")
                     .Help("Connects abandoned because their client went away")
                     .Register(r)),
      policy_denials_(prometheus::BuildCounter()
                          .Name("egress_policy_denials_total")
                          .Help("Requests refused with EACCES by a client rule, by rule name and reason "
                                "(destination or pool)")
                          .Register(r)),
      quota_refusals_(prometheus::BuildCounter()
                          .Name("egress_quota_refusals_total")
                          .Help("Requests and connections refused with EAGAIN at a client rule's limit, by rule "
                                "name and limit")
                          .Register(r)),
      adopted_(prometheus::BuildCounter()
                   .Name("egress_adopted_total")
                   .Help("Connects of sockets clients sent in adopt mode, by outcome: ok, the errno name, or "
                         "unknown (failed after the reply; the errno went to the program)")
                   .Register(r)),
      denied_connects_{&connects_.Add({{"pool", ""}, {"source", ""}, {"result", "EACCES"}, {"transport", "tcp"}}),
                       &connects_.Add({{"pool", ""}, {"source", ""}, {"result", "EACCES"}, {"transport", "udp"}})} {
    prometheus::BuildGauge()
        .Name("egress_build_info")
        .Help("Always 1; the labels describe this egressd")
        .Register(r)
        .Add({{"version", info.version}, {"kernel", info.kernel}, {"port_strategy_auto", info.auto_strategy}})
        .Set(1);
}

SourceMetrics& Metrics::source(const std::string& pool, const std::string& source) {
    SourceMetrics* made = nullptr;
    {
        const std::lock_guard lock(labels_);
        auto& slot = sources_[{pool, source}];
        if (slot) return *slot;
        slot = std::make_unique<SourceMetrics>();
        made = slot.get();
        made->m_ = this;
        made->pool_ = pool;
        made->source_ = source;
    }
    made->handles(Transport::tcp);
    return *made;
}

SourceMetrics::Handles& SourceMetrics::handles(Transport t) {
    if (auto* h = made_[index(t)].load(std::memory_order_acquire)) return *h;
    const std::lock_guard lock(m_->labels_);
    auto& slot = per_transport_[index(t)];
    if (slot) return *slot;  // another loop made them meanwhile
    slot = std::make_unique<Handles>();
    auto& h = *slot;
    const std::string tr = to_string(t);
    const prometheus::Labels ps{{"pool", pool_}, {"source", source_}, {"transport", tr}};
    h.ok = &m_->connects_.Add({{"pool", pool_}, {"source", source_}, {"result", "ok"}, {"transport", tr}});
    h.parity = &m_->parity_switches_.Add(ps);
    h.retries = &m_->window_retries_.Add(ps);
    const auto ok_with = [&](const char* parity) {
        return &m_->connect_duration_.add(
            {{"pool", pool_}, {"source", source_}, {"result", "ok"}, {"port_parity", parity}, {"transport", tr}},
            Metrics::connect_buckets());
    };
    h.ok_even = ok_with("even");
    h.ok_odd = ok_with("odd");
    made_[index(t)].store(&h, std::memory_order_release);
    return h;
}

prometheus::Counter& Metrics::protocol_error(const std::string& kind) {
    const std::lock_guard lock(labels_);
    auto& c = protocol_error_kinds_[kind];
    if (!c) c = &protocol_errors_.Add({{"kind", kind}});
    return *c;
}

prometheus::Counter& Metrics::client_dropped(const std::string& reason) {
    const std::lock_guard lock(labels_);
    auto& c = dropped_reasons_[reason];
    if (!c) c = &dropped_.Add({{"reason", reason}});
    return *c;
}

prometheus::Counter& Metrics::cancelled(const std::string& pool) {
    const std::lock_guard lock(labels_);
    auto& c = cancelled_pools_[pool];
    if (!c) c = &cancelled_.Add({{"pool", pool}});
    return *c;
}

void Metrics::policy_denied(const std::string& rule, const std::string& reason, Transport transport) {
    denied_connects_[transport == Transport::udp ? 1 : 0]->Increment();
    const std::lock_guard lock(labels_);
    auto& c = denials_[{rule, reason}];
    if (!c) c = &policy_denials_.Add({{"rule", rule}, {"reason", reason}});
    c->Increment();
}

double Metrics::policy_denials(const std::string& rule) const {
    const std::lock_guard lock(labels_);
    double n = 0;
    for (auto it = denials_.lower_bound({rule, ""}); it != denials_.end() && it->first.first == rule; ++it)
        n += it->second->Value();
    return n;
}

void Metrics::quota_refused(const std::string& rule, const std::string& limit) {
    const std::lock_guard lock(labels_);
    auto& c = refusals_[{rule, limit}];
    if (!c) c = &quota_refusals_.Add({{"rule", rule}, {"limit", limit}});
    c->Increment();
}

double Metrics::quota_refusals(const std::string& rule) const {
    const std::lock_guard lock(labels_);
    double n = 0;
    for (auto it = refusals_.lower_bound({rule, ""}); it != refusals_.end() && it->first.first == rule; ++it)
        n += it->second->Value();
    return n;
}

void Metrics::adopted(int err) {
    const std::lock_guard lock(labels_);
    auto& c = adopted_results_[err];
    if (!c) c = &adopted_.Add({{"result", err == 0 ? std::string("ok") : errno_label(err)}});
    c->Increment();
}

void SourceMetrics::connect_done(std::size_t shard, Transport transport, int err, bool odd_port, bool parity_switch,
                                 std::uint32_t retries, double seconds) {
    auto& h = handles(transport);
    if (retries) h.retries->Increment(retries);
    if (err == 0) {
        h.ok->Increment();
        if (parity_switch) h.parity->Increment();
        (odd_port ? h.ok_odd : h.ok_even)->observe(shard, seconds);
        return;
    }
    if (err > 0 && err < Handles::kFastErrnos)
        if (const auto* known = h.fast_errors[static_cast<std::size_t>(err)].load(std::memory_order_acquire)) {
            known->count->Increment();
            known->duration->observe(shard, seconds);
            return;
        }
    ErrorHandles e;
    {
        const std::lock_guard lock(m_->labels_);
        auto it = h.errors.find(err);
        if (it == h.errors.end()) {
            const auto name = errno_label(err);
            const std::string tr = to_string(transport);
            it = h.errors
                     .emplace(err, ErrorHandles{&m_->connects_.Add({{"pool", pool_},
                                                                    {"source", source_},
                                                                    {"result", name},
                                                                    {"transport", tr}}),
                                                &m_->connect_duration_.add({{"pool", pool_},
                                                                            {"source", source_},
                                                                            {"result", name},
                                                                            {"port_parity", "none"},
                                                                            {"transport", tr}},
                                                                           Metrics::connect_buckets())})
                     .first;
            // A map node stays where it is: publish it for lock-free reads.
            if (err > 0 && err < Handles::kFastErrnos)
                h.fast_errors[static_cast<std::size_t>(err)].store(&it->second, std::memory_order_release);
        }
        e = it->second;
    }
    e.count->Increment();
    e.duration->observe(shard, seconds);
}

double SourceMetrics::ok(Transport t) const {
    const auto* h = existing(t);
    return h ? h->ok->Value() : 0;
}

double SourceMetrics::parity_switches(Transport t) const {
    const auto* h = existing(t);
    return h ? h->parity->Value() : 0;
}

double SourceMetrics::window_retries(Transport t) const {
    const auto* h = existing(t);
    return h ? h->retries->Value() : 0;
}

std::map<std::string, double> SourceMetrics::errors(Transport t) const {
    std::map<std::string, double> out;
    const auto* h = existing(t);
    if (!h) return out;
    const std::lock_guard lock(m_->labels_);
    for (const auto& [err, e] : h->errors) out[errno_label(err)] = e.count->Value();
    return out;
}

}  // namespace egress
