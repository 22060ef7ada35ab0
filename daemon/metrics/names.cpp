#include "metrics/names.hpp"

#include <prometheus/histogram.h>

#include <string>

namespace egress {
namespace {

template <std::size_t N>
std::size_t index_of(const std::array<std::string_view, N>& values, std::string_view v) {
    for (std::size_t i = 0; i < N; ++i)
        if (values[i] == v) return i;
    return N - 1;  // cannot happen: callers pass listed values; the last is the catch-all
}

// 100 us (a cache hit, a near server) to 10 s (the longest a request waits).
std::vector<double> resolve_buckets() {
    return {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

}  // namespace

NameMetrics::NameMetrics(prometheus::Registry& r, HistogramFamilies& histograms)
    : first_lost(prometheus::BuildCounter()
                     .Name("egress_happy_eyeballs_first_address_lost_total")
                     .Help("Host-name requests whose first address tried did not give the connection (it failed, "
                           "or a later address won while it was pending)")
                     .Register(r)
                     .Add({})),
      resolve_duration(histograms
                           .add("egress_dns_resolve_duration_seconds",
                                "From a host-name request to the lookups that let its first connect attempt start")
                           .add({}, resolve_buckets())) {
    auto& lookups = prometheus::BuildCounter()
                        .Name("egress_dns_lookups_total")
                        .Help("Host-name lookups by family and result (cached: answered from egressd's cache)")
                        .Register(r);
    for (int v6 = 0; v6 < 2; ++v6)
        for (std::size_t i = 0; i < kLookupResults.size(); ++i)
            lookups_[v6][i] = &lookups.Add(
                {{"family", v6 ? "ipv6" : "ipv4"}, {"result", std::string(kLookupResults[i])}});
    auto& requests = prometheus::BuildCounter()
                         .Name("egress_name_requests_total")
                         .Help("CONNECT requests to a host name, by outcome")
                         .Register(r);
    for (std::size_t i = 0; i < kRequestResults.size(); ++i)
        requests_[i] = &requests.Add({{"result", std::string(kRequestResults[i])}});
    auto& wins = prometheus::BuildCounter()
                     .Name("egress_happy_eyeballs_wins_total")
                     .Help("Host-name connects by the family of the address that won")
                     .Register(r);
    wins_[0] = &wins.Add({{"family", "ipv4"}});
    wins_[1] = &wins.Add({{"family", "ipv6"}});
}

prometheus::Counter& NameMetrics::lookup(bool v6, std::string_view result) {
    return *lookups_[v6 ? 1 : 0][index_of(kLookupResults, result)];
}

prometheus::Counter& NameMetrics::request(std::string_view result) {
    return *requests_[index_of(kRequestResults, result)];
}

}  // namespace egress
