#include "rate_limit.hpp"

namespace egress {

std::optional<std::uint64_t> LogLimiter::admit(const std::string& key, time_point now) {
    auto it = windows_.find(key);
    if (it == windows_.end()) {
        if (windows_.size() >= max_keys_) {
            // Forget windows that have ended; if none has, start afresh: a
            // bounded table matters more than a perfect count.
            for (auto i = windows_.begin(); i != windows_.end();)
                i = now - i->second.start >= interval_ ? windows_.erase(i) : std::next(i);
            if (windows_.size() >= max_keys_) windows_.clear();
        }
        it = windows_.emplace(key, Window{now, 0, 0}).first;
    }
    auto& w = it->second;
    if (now - w.start >= interval_) {
        w.start = now;
        w.logged = 0;
    }
    if (w.logged >= burst_) {
        ++w.held;
        return std::nullopt;
    }
    ++w.logged;
    const auto held = w.held;
    w.held = 0;
    return held;
}

}  // namespace egress
