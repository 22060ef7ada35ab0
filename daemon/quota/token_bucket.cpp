#include "token_bucket.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace egress {
namespace {

using std::chrono::nanoseconds;
constexpr auto kMaxNs = std::numeric_limits<nanoseconds::rep>::max();

// Saturating: huge limits or gaps end at the largest duration, never wrap.
nanoseconds times(nanoseconds d, std::uint32_t n) {
    nanoseconds::rep out = 0;
    return __builtin_mul_overflow(d.count(), static_cast<nanoseconds::rep>(n), &out) ? nanoseconds(kMaxNs)
                                                                                      : nanoseconds(out);
}

TokenBucket::time_point later(TokenBucket::time_point t, nanoseconds d) {
    nanoseconds::rep out = 0;
    if (__builtin_add_overflow(t.time_since_epoch().count(), d.count(), &out)) return TokenBucket::time_point::max();
    return TokenBucket::time_point(nanoseconds(out));
}

// The burst that fits in a duration: interval x burst never saturates.
std::uint32_t usable_burst(const RateLimit& r) {
    const auto fits = kMaxNs / r.interval().count();
    return static_cast<std::uint32_t>(std::clamp<std::int64_t>(fits, 1, std::max<std::uint32_t>(r.burst, 1)));
}

}  // namespace

nanoseconds RateLimit::interval() const {
    // NaN, zero or negative rates (refused by the config loader) refill never.
    if (!(per_second > 0)) return nanoseconds(kMaxNs);
    const double ns = std::round(1e9 / per_second);
    if (ns >= static_cast<double>(kMaxNs)) return nanoseconds(kMaxNs);
    return nanoseconds(std::max<nanoseconds::rep>(1, static_cast<nanoseconds::rep>(ns)));
}

nanoseconds TokenBucket::debt(const RateLimit& r, time_point now, time_point full_at) {
    if (full_at <= now) return nanoseconds(0);
    const auto capacity = times(r.interval(), usable_burst(r));
    // full_at > now: the difference is positive; it only overflows when
    // `now` lies before the clock's epoch, which a steady clock never does.
    nanoseconds::rep ahead = 0;
    if (__builtin_sub_overflow(full_at.time_since_epoch().count(), now.time_since_epoch().count(), &ahead))
        return capacity;
    return std::min(nanoseconds(ahead), capacity);
}

bool TokenBucket::take(const RateLimit& r, time_point now) {
    auto seen = full_at_.load(std::memory_order_relaxed);
    for (;;) {
        const time_point full_at{time_point::duration(seen)};
        const auto owed = debt(r, now, full_at);
        // Forget debt beyond an empty bucket (a lowered limit, a clock that
        // went back): from here on it refills at the limit's pace.
        const auto base = full_at > now ? later(now, owed) : full_at;
        const bool granted = available(r, now, base) > 0;
        const auto next = granted ? later(later(now, owed), r.interval()) : base;
        if (next == full_at) return granted;
        // Another thread took a token meanwhile: decide again on its state.
        if (full_at_.compare_exchange_weak(seen, next.time_since_epoch().count(), std::memory_order_relaxed))
            return granted;
    }
}

std::uint32_t TokenBucket::available(const RateLimit& r, time_point now) const {
    return available(r, now, full_at());
}

std::uint32_t TokenBucket::available(const RateLimit& r, time_point now, time_point full_at) {
    const auto burst = usable_burst(r);
    const auto t = r.interval().count();
    // Whole tokens missing: the debt in intervals, rounded up.
    const auto d = debt(r, now, full_at).count();
    const auto missing = d / t + (d % t != 0);
    return missing >= burst ? 0 : burst - static_cast<std::uint32_t>(missing);
}

nanoseconds TokenBucket::wait(const RateLimit& r, time_point now) const {
    const auto full_at = this->full_at();
    if (available(r, now, full_at) > 0) return nanoseconds(0);
    // Empty: the next token is back when the debt is down to burst - 1 intervals.
    const auto rest = debt(r, now, full_at) - times(r.interval(), usable_burst(r) - 1);
    return std::max(rest, nanoseconds(1));
}

}  // namespace egress
