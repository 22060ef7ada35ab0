// Load figures every event loop checks its limits against and changes as
// clients come and connects go. Owned by the Broker; the figures a dashboard
// needs are in metrics/metrics.hpp.
#pragma once

#include <atomic>
#include <cstdint>

namespace egress {

// A count that several event loops change and any of them reads: a relaxed
// atomic (it orders nothing else), copyable so that the structs holding one
// stay plain values.
template <class T>
class SharedCount {
public:
    SharedCount(T v = 0) : v_(v) {}
    SharedCount(const SharedCount& o) : v_(o.get()) {}
    SharedCount& operator=(const SharedCount& o) {
        v_.store(o.get(), std::memory_order_relaxed);
        return *this;
    }

    T get() const { return v_.load(std::memory_order_relaxed); }
    operator T() const { return get(); }
    // Returns the value before.
    T add(T n = 1) { return v_.fetch_add(n, std::memory_order_relaxed); }
    void sub(T n = 1) { v_.fetch_sub(n, std::memory_order_relaxed); }
    // Counts one more unless that would pass `limit`: counted first and
    // checked after, so that two loops cannot both take the last place.
    bool add_below(T limit) {
        if (add() < limit) return true;
        sub();
        return false;
    }

private:
    std::atomic<T> v_;
};

struct Stats {
    SharedCount<std::uint32_t> clients_connected;  // accepted and not yet closed
    SharedCount<std::uint32_t> inflight;           // connects in flight, every client's
};

}  // namespace egress
