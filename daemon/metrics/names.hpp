// The metrics of host-name requests (DEST_HOST): lookups by family and
// result, requests by outcome, which family won Happy Eyeballs, how often
// the first address tried did not, and the time to resolve. Every label
// value is one of a fixed list, so each handle is made at start-up and a
// request never takes a lock to find one.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <array>
#include <string_view>

#include "metrics/histogram.hpp"

namespace egress {

class NameMetrics {
public:
    NameMetrics(prometheus::Registry& registry, HistogramFamilies& histograms);

    // egress_dns_lookups_total{family="ipv4"|"ipv6", result}: result is
    // "cached" or a LookupStatus name (ok, no_name, no_data, server_failure,
    // timeout, failed).
    prometheus::Counter& lookup(bool v6, std::string_view result);
    // egress_name_requests_total{result}: "connected", "denied", "no_name",
    // "no_data", "server_failure", "resolve_timeout", "resolve_failed",
    // "unusable", "connect_failed", "timeout", "cancelled".
    prometheus::Counter& request(std::string_view result);
    // egress_happy_eyeballs_wins_total{family}.
    prometheus::Counter& winner(bool v6) { return *wins_[v6 ? 1 : 0]; }
    // egress_happy_eyeballs_first_address_lost_total: requests whose first
    // address tried did not give the connection (it failed, or a later one
    // won while it was still pending).
    prometheus::Counter& first_lost;
    // egress_dns_resolve_duration_seconds: from the request to the answers
    // that let its first attempt start (cache hits included, as 0).
    ShardedHistogram& resolve_duration;

    static constexpr std::array<std::string_view, 7> kLookupResults{"ok",      "cached",         "no_name", "no_data",
                                                                    "timeout", "server_failure", "failed"};
    static constexpr std::array<std::string_view, 11> kRequestResults{
        "connected",      "denied",  "no_name",   "no_data",   "server_failure", "resolve_timeout", "resolve_failed",
        "unusable",       "connect_failed", "timeout", "cancelled"};

private:
    std::array<std::array<prometheus::Counter*, kLookupResults.size()>, 2> lookups_{};
    std::array<prometheus::Counter*, kRequestResults.size()> requests_{};
    std::array<prometheus::Counter*, 2> wins_{};
};

}  // namespace egress
