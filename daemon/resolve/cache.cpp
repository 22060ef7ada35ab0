#include "cache.hpp"

namespace egress {

std::optional<DnsCache::Answer> DnsCache::find(const std::string& name, bool v6, Time now) {
    const auto it = index_.find(key(name, v6));
    if (it == index_.end()) return std::nullopt;
    if (it->second->expires <= now) {
        entries_.erase(it->second);
        index_.erase(it);
        return std::nullopt;
    }
    entries_.splice(entries_.begin(), entries_, it->second);
    return it->second->answer;
}

void DnsCache::store(const std::string& name, bool v6, Answer answer, std::chrono::seconds ttl, Time now) {
    if (max_ == 0 || ttl.count() <= 0) return;
    const auto expires = now + std::min(ttl, max_ttl_);
    auto k = key(name, v6);
    if (const auto it = index_.find(k); it != index_.end()) {
        it->second->answer = std::move(answer);
        it->second->expires = expires;
        entries_.splice(entries_.begin(), entries_, it->second);
        return;
    }
    if (entries_.size() >= max_) {
        index_.erase(entries_.back().key);
        entries_.pop_back();
    }
    entries_.push_front(Entry{k, std::move(answer), expires});
    index_.emplace(std::move(k), entries_.begin());
}

}  // namespace egress
