// The answers a loop's resolver keeps: a host name's addresses of one family,
// for the TTL the DNS gave them (at most a configured maximum), in at most a
// configured number of entries (the least recently used go first). Only
// answers with addresses are kept: a failure or "no such name" is asked
// again next time. Pure: the time is passed in.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "endpoint.hpp"

namespace egress {

class DnsCache {
public:
    using Time = std::chrono::steady_clock::time_point;

    // `max_entries` 0: nothing is kept.
    DnsCache(std::size_t max_entries, std::chrono::seconds max_ttl) : max_(max_entries), max_ttl_(max_ttl) {}

    // The addresses of `name` (normalized) for `v6`, if kept and not expired
    // at `now`; an expired entry is dropped.
    std::optional<std::vector<Endpoint>> find(const std::string& name, bool v6, Time now);
    // Keeps `addresses` for min(ttl, max_ttl); a TTL of 0, or no address, keeps nothing.
    void store(const std::string& name, bool v6, std::vector<Endpoint> addresses, std::chrono::seconds ttl, Time now);

    std::size_t size() const { return entries_.size(); }

private:
    struct Entry {
        std::string key;
        std::vector<Endpoint> addresses;
        Time expires;
    };
    static std::string key(const std::string& name, bool v6) { return (v6 ? "6 " : "4 ") + name; }

    std::size_t max_;
    std::chrono::seconds max_ttl_;
    std::list<Entry> entries_;  // most recently used first
    std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace egress
