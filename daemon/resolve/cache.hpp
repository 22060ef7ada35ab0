// The answers a loop's resolver keeps: a host name's addresses of one family,
// for the TTL the DNS gave them (at most a configured maximum), in at most a
// configured number of entries (the least recently used go first). A
// negative answer ("no such name", "no record of this family") is kept too,
// for the TTL the resolver gives it; a failure is never kept. Pure: the
// time is passed in.
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

    struct Answer {
        std::vector<Endpoint> addresses;  // empty: a negative answer
        bool no_name = false;             // negative: the name does not exist (else: no record)
        bool operator==(const Answer&) const = default;
    };

    // The answer for `name` (normalized) and `v6`, if kept and not expired
    // at `now`; an expired entry is dropped.
    std::optional<Answer> find(const std::string& name, bool v6, Time now);
    // Keeps `answer` for min(ttl, max_ttl); a TTL of 0 keeps nothing.
    void store(const std::string& name, bool v6, Answer answer, std::chrono::seconds ttl, Time now);

    std::size_t size() const { return entries_.size(); }

private:
    struct Entry {
        std::string key;
        Answer answer;
        Time expires;
    };
    static std::string key(const std::string& name, bool v6) { return (v6 ? "6 " : "4 ") + name; }

    std::size_t max_;
    std::chrono::seconds max_ttl_;
    std::list<Entry> entries_;  // most recently used first
    std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace egress
