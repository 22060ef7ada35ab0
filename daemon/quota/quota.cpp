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
    if (limits.max_inflight_per_uid && entry_->inflight >= *limits.max_inflight_per_uid)
        return QuotaRefusal{"max_inflight_per_uid", head(rule) + std::to_string(entry_->inflight) +
                                                        " requests in flight for uid " + std::to_string(uid_) +
                                                        " (limits.max_inflight_per_uid)"};
    return admit_request(rule, limits);
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

void QuotaTable::Slot::started() {
    if (!entry_) return;
    ++entry_->inflight;
    ++inflight_;
}

void QuotaTable::Slot::finished() {
    if (!entry_ || inflight_ == 0) return;
    --entry_->inflight;
    --inflight_;
}

void QuotaTable::Slot::release() {
    if (!entry_) return;
    entry_->inflight -= inflight_;
    inflight_ = 0;
    table_->closed(uid_, *std::exchange(entry_, nullptr));
}

std::optional<QuotaRefusal> QuotaTable::check_connection(std::uint32_t uid, const std::string& rule,
                                                         const QuotaLimits& limits) const {
    if (!limits.max_connections_per_uid) return std::nullopt;
    const auto open = connections(uid);
    if (open < *limits.max_connections_per_uid) return std::nullopt;
    return QuotaRefusal{"max_connections_per_uid", head(rule) + std::to_string(open) + " connections open for uid " +
                                                       std::to_string(uid) + " (limits.max_connections_per_uid)"};
}

QuotaTable::Slot QuotaTable::open(std::uint32_t uid) {
    auto [it, fresh] = uids_.try_emplace(uid);
    if (!fresh && it->second.connections == 0) --idle_;  // a remembered idle uid is back
    ++it->second.connections;
    return Slot(this, &it->second, uid);
}

std::uint32_t QuotaTable::connections(std::uint32_t uid) const {
    const auto it = uids_.find(uid);
    return it == uids_.end() ? 0 : it->second.connections;
}

std::uint32_t QuotaTable::inflight(std::uint32_t uid) const {
    const auto it = uids_.find(uid);
    return it == uids_.end() ? 0 : it->second.inflight;
}

void QuotaTable::closed(std::uint32_t uid, Entry& e) {
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
