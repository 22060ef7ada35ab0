// Per-uid accounting behind the client rules' quotas: connections and
// requests in flight per uid, and one token bucket per uid. Pure: the clock
// is injected; the session layer turns a refusal into an EAGAIN reply.
//
// Counts are kept per uid, whatever rule governs each of its connections
// (a uid can match a gid rule on one connection and a uid rule on another);
// each check uses the limits of the rule given with it, so the rules in
// force after a reload apply to the next request while counts carry on.
//
// Thread-safe: every event loop shares one table. A request's checks touch
// only its uid's atomics (no lock); opening and closing a connection, and the
// readers below, take the table's mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "quota/limits.hpp"
#include "quota/token_bucket.hpp"

namespace egress {

// Why a connection or request was refused. `limit` is the key under a rule's
// "limits" (also the metrics label); `message` names rule, uid and limit.
struct QuotaRefusal {
    const char* limit;
    std::string message;
};

class QuotaTable {
    struct Entry;

public:
    using time_point = std::chrono::steady_clock::time_point;
    using Clock = std::function<time_point()>;

    // Uids with no connection whose bucket is still refilling are remembered
    // (so reconnecting does not refill it) up to `max_idle`; past that the
    // refilled ones are forgotten, then all idle ones.
    static constexpr std::size_t kMaxIdleUids = 1024;
    explicit QuotaTable(Clock clock, std::size_t max_idle = kMaxIdleUids);
    QuotaTable(const QuotaTable&) = delete;
    QuotaTable& operator=(const QuotaTable&) = delete;

    // One client connection's share of its uid's counts, from open() until
    // release() or destruction (both give back its requests in flight too).
    // The table must outlive every slot.
    class Slot {
    public:
        Slot() = default;
        Slot(Slot&& o) noexcept;
        Slot& operator=(Slot&& o) noexcept;
        ~Slot() { release(); }

        // A CONNECT on this connection, which has `on_connection` requests in
        // flight: checks max_inflight_per_connection, max_inflight_per_uid,
        // then takes a token of the uid's bucket. nullopt: admitted, and
        // counted in flight from now until finished() (the uid's limit holds
        // exactly, however many loops admit at once).
        std::optional<QuotaRefusal> admit_connect(std::size_t on_connection, const std::string& rule,
                                                  const QuotaLimits& limits);
        // Any other request (STATUS): the rate only.
        std::optional<QuotaRefusal> admit_request(const std::string& rule, const QuotaLimits& limits);
        void finished();  // one admitted CONNECT is done (or cancelled)
        void release();   // the connection closed; safe to call again

        std::uint32_t uid() const { return uid_; }

    private:
        friend class QuotaTable;
        Slot(QuotaTable* t, Entry* e, std::uint32_t uid) : table_(t), entry_(e), uid_(uid) {}
        QuotaTable* table_ = nullptr;
        Entry* entry_ = nullptr;  // node of table_->uids_: stable until erased, never while a slot holds it
        std::uint32_t uid_ = 0;
        std::uint32_t inflight_ = 0;  // this connection's share of entry_->inflight (one loop's)
    };

    // nullopt: `uid` may open one more connection under `rule`'s limits.
    std::optional<QuotaRefusal> check_connection(std::uint32_t uid, const std::string& rule,
                                                 const QuotaLimits& limits) const;
    // Counts a connection of `uid` (check_connection first to enforce).
    Slot open(std::uint32_t uid);

    std::size_t uids() const;  // remembered uids, idle ones included
    std::uint32_t connections(std::uint32_t uid) const;
    std::uint32_t inflight(std::uint32_t uid) const;

private:
    struct Entry {
        std::uint32_t connections = 0;          // under mutex_
        std::atomic<std::uint32_t> inflight{0};  // every loop's requests of this uid
        TokenBucket bucket;                      // lock-free itself
    };
    void closed(std::uint32_t uid, Entry& e);
    void forget_idle(time_point now);

    Clock clock_;
    std::size_t max_idle_;
    mutable std::mutex mutex_;  // uids_, idle_ and each Entry::connections
    std::size_t idle_ = 0;  // entries with no connection
    std::unordered_map<std::uint32_t, Entry> uids_;
};

}  // namespace egress
