// One CONNECT in flight, counted everywhere it counts: egressd's total (and
// its gauge), the client's quota share for its uid, and its pool. Each count
// is taken as the request passes the check that needs it and given back when
// the ticket goes (reply sent, connect cancelled, session closed, or a later
// check refused the request), so no path can forget one.
#pragma once

#include <utility>

#include "metrics/metrics.hpp"
#include "pool/pools.hpp"
#include "quota/quota.hpp"
#include "stats/stats.hpp"

namespace egress {

class InflightTicket {
public:
    InflightTicket() = default;
    InflightTicket(InflightTicket&& o) noexcept
        : stats_(std::exchange(o.stats_, nullptr)), gauge_(o.gauge_), quota_(std::exchange(o.quota_, nullptr)),
          pool_(std::exchange(o.pool_, nullptr)) {}
    InflightTicket& operator=(InflightTicket&& o) noexcept {
        if (this != &o) {
            release();
            stats_ = std::exchange(o.stats_, nullptr);
            gauge_ = o.gauge_;
            quota_ = std::exchange(o.quota_, nullptr);
            pool_ = std::exchange(o.pool_, nullptr);
        }
        return *this;
    }
    ~InflightTicket() { release(); }

    // One of egressd's `max` places (limits.max_inflight); false when every
    // one is taken, across all loops.
    bool take_place(Stats& stats, prometheus::Gauge& gauge, std::uint32_t max) {
        if (!stats.inflight.add_below(max)) return false;
        stats_ = &stats;
        gauge_ = &gauge;
        gauge.Increment();
        return true;
    }
    // `slot` has admitted this request (QuotaTable::Slot::admit_connect); the
    // ticket gives it back. The slot must outlive the ticket.
    void hold_quota(QuotaTable::Slot& slot) { quota_ = &slot; }
    // The connect goes through `pool`, which must outlive the ticket.
    void hold_pool(Pool& pool) {
        pool.inflight.add();
        pool_ = &pool;
    }
    Pool* pool() const { return pool_; }

    // Gives back every count held; safe to call again.
    void release() {
        if (pool_) std::exchange(pool_, nullptr)->inflight.sub();
        if (quota_) std::exchange(quota_, nullptr)->finished();
        if (stats_) {
            std::exchange(stats_, nullptr)->inflight.sub();
            gauge_->Decrement();
        }
    }

private:
    Stats* stats_ = nullptr;
    prometheus::Gauge* gauge_ = nullptr;
    QuotaTable::Slot* quota_ = nullptr;
    Pool* pool_ = nullptr;
};

}  // namespace egress
