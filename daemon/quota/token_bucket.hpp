// A token bucket: `burst` tokens, refilled at `per_second`, one taken per
// request. Pure: the caller passes the time, so tests drive the clock.
// Thread-safe without a lock: its one state is an atomic, and take() moves it
// with compare-and-swap, so event loops sharing a uid's bucket never wait.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace egress {

// How fast a bucket refills and how many tokens it holds.
struct RateLimit {
    double per_second = 1;    // > 0; fractions allowed (0.5: one token every 2 s)
    std::uint32_t burst = 1;  // capacity, >= 1 (and at most what fits in 292 years of intervals)

    // The time one token takes to come back: 1 s / per_second, at least 1 ns.
    std::chrono::nanoseconds interval() const;
};

class TokenBucket {
public:
    using time_point = std::chrono::steady_clock::time_point;

    TokenBucket() = default;
    TokenBucket(const TokenBucket& o) : full_at_(o.full_at_.load(std::memory_order_relaxed)) {}
    TokenBucket& operator=(const TokenBucket& o) {
        full_at_.store(o.full_at_.load(std::memory_order_relaxed), std::memory_order_relaxed);
        return *this;
    }

    // Takes a token if one is available at `now`. A new bucket is full.
    bool take(const RateLimit& r, time_point now);
    // Whole tokens available at `now`, 0..burst.
    std::uint32_t available(const RateLimit& r, time_point now) const;
    // How long from `now` until take() succeeds; zero when it would now.
    std::chrono::nanoseconds wait(const RateLimit& r, time_point now) const;
    // Full at `now` whatever the limit: forgetting this bucket loses nothing.
    bool full(time_point now) const { return full_at() <= now; }

private:
    time_point full_at() const { return time_point(time_point::duration(full_at_.load(std::memory_order_relaxed))); }
    // Tokens missing at `now` for a bucket full at `full_at`, as time to
    // refill them: 0 (full) up to burst intervals (empty). A limit lowered by
    // a reload, or a clock that went backwards, can leave full_at further
    // ahead: that counts as empty, and the next take() starts the refill
    // from there.
    static std::chrono::nanoseconds debt(const RateLimit& r, time_point now, time_point full_at);
    static std::uint32_t available(const RateLimit& r, time_point now, time_point full_at);

    // When the bucket will be full again (the GCRA's theoretical arrival
    // time), in steady-clock ticks: each token taken moves it one interval
    // later. The one state there is, so a change of limit on reload applies
    // from the next take.
    std::atomic<time_point::duration::rep> full_at_{time_point::min().time_since_epoch().count()};
};

}  // namespace egress
