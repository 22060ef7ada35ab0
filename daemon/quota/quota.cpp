#include "quota.hpp"

#include <cstdio>
#include <utility>

namespace egress {
namespace {

std::string head(const std::string& rule) { return "rule '" + rule + "': "; }

// 0.5 -> "0.5", 1000000 -> "1000000".
std::string number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.10g", v);
    return buf;
}

}  // namespace

QuotaTable::QuotaTable(Clock clock, std::size_t max_idle) : clock_(std::move(clock)), max_idle_(max_idle) {}

QuotaTable::Slot::Slot(Slot&& o) noexcept
    : table_(std::exchange(o.table_, nullptr)), entry_(std::exchange(o.entry_, nullptr)), uid_(o.uid_),
      inflight_(std::exchange(o.inflight_, 0)) {}

QuotaTable::Slot& QuotaTable::Slot::operator=(Slot&& o) noexcept {
    if (this != &o) {
        release();
        table_ = std::exchange(o.table_, nullptr);
        entry_ = std::exchange(o.entry_, nullptr);
        uid_ = o.uid_;
        inflight_ = std::exchange(o.inflight_, 0);
    }
    return *this;
}

std::optional<QuotaRefusal> QuotaTable::Slot::admit_connect(std::size_t on_connection, const std::string& rule,
                                                            const QuotaLimits& limits) {
    if (!entry_) return std::nullopt;
    if (limits.max_inflight_per_connection && on_connection >= *limits.max_inflight_per_connection)
        return QuotaRefusal{"max_inflight_per_connection",
                            head(rule) + std::to_string(on_connection) +
                                " requests in flight on this connection (limits.max_inflight_per_connection)"};
    // Counted first, checked after: two loops admitting at once cannot both
    // take the last place.
    const auto before = entry_->inflight.fetch_add(1, std::memory_order_relaxed);
    if (limits.max_inflight_per_uid && before >= *limits.max_inflight_per_uid) {
        entry_->inflight.fetch_sub(1, std::memory_order_relaxed);
        return QuotaRefusal{"max_inflight_per_uid", head(rule) + std::to_string(before) +
                                                        " requests in flight for uid " + std::to_string(uid_) +
                                                        " (limits.max_inflight_per_uid)"};
    }
    if (auto refused = admit_request(rule, limits)) {
        entry_->inflight.fetch_sub(1, std::memory_order_relaxed);
        return refused;
    }
    ++inflight_;
    return std::nullopt;
}

std::optional<QuotaRefusal> QuotaTable::Slot::admit_request(const std::string& rule, const QuotaLimits& limits) {
    if (!entry_ || !limits.rate) return std::nullopt;
    const auto now = table_->clock_();
    if (entry_->bucket.take(*limits.rate, now)) return std::nullopt;
    const auto wait = entry_->bucket.wait(*limits.rate, now);
    const auto ms = (wait.count() + 999999) / 1000000;  // rounded up: retrying then succeeds
    return QuotaRefusal{"requests_per_second",
                        head(rule) + "uid " + std::to_string(uid_) + " is over " + number(limits.rate->per_second) +
                            " requests per second, burst " + std::to_string(limits.rate->burst) +
                            " (limits.requests_per_second); retry in " + std::to_string(ms) + " ms"};
}

void QuotaTable::Slot::finished() {
    if (!entry_ || inflight_ == 0) return;
    entry_->inflight.fetch_sub(1, std::memory_order_relaxed);
    --inflight_;
}

void QuotaTable::Slot::release() {
    if (!entry_) return;
    entry_->inflight.fetch_sub(inflight_, std::memory_order_relaxed);
    inflight_ = 0;
    table_->closed(uid_, *std::exchange(entry_, nullptr));
}

std::optional<QuotaRefusal> QuotaTable::check_connection(std::uint32_t uid, const std::string& rule,
                                                         const QuotaLimits& limits) const {
    if (!limits.max_connections_per_uid) return std::nullopt;
    // One thread accepts: the count can only fall between this and open().
    const auto open = connections(uid);
    if (open < *limits.max_connections_per_uid) return std::nullopt;
    return QuotaRefusal{"max_connections_per_uid", head(rule) + std::to_string(open) + " connections open for uid " +
                                                       std::to_string(uid) + " (limits.max_connections_per_uid)"};
}

QuotaTable::Slot QuotaTable::open(std::uint32_t uid) {
    const std::lock_guard lock(mutex_);
    auto [it, fresh] = uids_.try_emplace(uid);
    if (!fresh && it->second.connections == 0) --idle_;  // a remembered idle uid is back
    ++it->second.connections;
    return Slot(this, &it->second, uid);
}

std::size_t QuotaTable::uids() const {
    const std::lock_guard lock(mutex_);
    return uids_.size();
}

std::uint32_t QuotaTable::connections(std::uint32_t uid) const {
    const std::lock_guard lock(mutex_);
    const auto it = uids_.find(uid);
    return it == uids_.end() ? 0 : it->second.connections;
}

std::uint32_t QuotaTable::inflight(std::uint32_t uid) const {
    const std::lock_guard lock(mutex_);
    const auto it = uids_.find(uid);
    return it == uids_.end() ? 0 : it->second.inflight.load(std::memory_order_relaxed);
}

void QuotaTable::closed(std::uint32_t uid, Entry& e) {
    const std::lock_guard lock(mutex_);
    if (--e.connections > 0) return;
    const auto now = clock_();
    if (e.bucket.full(now)) {
        uids_.erase(uid);
        return;
    }
    ++idle_;
    if (idle_ > max_idle_) forget_idle(now);
}

void QuotaTable::forget_idle(time_point now) {
    // First the idle uids whose bucket has refilled (nothing is lost), then,
    // if that is not enough, every idle uid: a bounded table matters more
    // than remembering a rate, and only > max_idle distinct uids get here.
    for (const bool all : {false, true}) {
        for (auto it = uids_.begin(); it != uids_.end();) {
            const bool drop = it->second.connections == 0 && (all || it->second.bucket.full(now));
            if (drop) --idle_;
            it = drop ? uids_.erase(it) : std::next(it);
        }
        if (idle_ <= max_idle_) return;
    }
}

}  // namespace egress
