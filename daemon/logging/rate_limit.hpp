// Keeps a storm of identical log lines from flooding the journal: per key,
// at most `burst` lines per `interval`; the next line let through says how
// many were held back. Pure: the caller passes the time.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

namespace egress {

class LogLimiter {
public:
    using time_point = std::chrono::steady_clock::time_point;

    LogLimiter(std::chrono::milliseconds interval, unsigned burst, std::size_t max_keys = 1024)
        : interval_(interval), burst_(burst), max_keys_(max_keys) {}

    // nullopt: hold this line back. Otherwise log it, adding the returned
    // count of lines with this key held back since the last one logged.
    std::optional<std::uint64_t> admit(const std::string& key, time_point now);

private:
    struct Window {
        time_point start;
        unsigned logged = 0;
        std::uint64_t held = 0;
    };
    std::chrono::milliseconds interval_;
    unsigned burst_;
    std::size_t max_keys_;
    std::unordered_map<std::string, Window> windows_;
};

}  // namespace egress
