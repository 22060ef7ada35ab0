#include "notify.hpp"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace egress {
namespace {

// How often the status line is refreshed when no watchdog asks for more.
constexpr auto kStatusPeriod = std::chrono::seconds(1);

void notify(const std::string& text) {
    if (const int r = sd_notify(0, text.c_str()); r < 0)
        spdlog::warn("cannot notify systemd ({}): {}", text.substr(0, text.find('\n')), std::strerror(-r));
}

}  // namespace

ServiceNotifier::ServiceNotifier(asio::io_context& io, std::function<std::string()> status,
                                 std::function<bool()> alive)
    : timer_(io), make_status_(std::move(status)), alive_(std::move(alive)), enabled_(std::getenv("NOTIFY_SOCKET") != nullptr) {
    std::uint64_t usec = 0;
    // 0: keep WATCHDOG_USEC and WATCHDOG_PID (nothing egressd starts reads them).
    if (enabled_ && sd_watchdog_enabled(0, &usec) > 0) watchdog_ = std::chrono::microseconds(usec);
}

void ServiceNotifier::ready() {
    if (!enabled_) return;
    last_status_ = make_status_();
    notify("READY=1\nSTATUS=" + last_status_);
    if (!ticking_) {
        ticking_ = true;
        if (watchdog_.count()) notify("WATCHDOG=1");
        tick();
    }
}

void ServiceNotifier::reloading() {
    if (!enabled_) return;
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    const auto usec = static_cast<std::uint64_t>(now.tv_sec) * 1000000 + static_cast<std::uint64_t>(now.tv_nsec) / 1000;
    notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\nSTATUS=reloading the configuration");
    last_status_.clear();
}

void ServiceNotifier::stopping() {
    if (!enabled_) return;
    last_status_ = make_status_();
    notify("STOPPING=1\nSTATUS=" + last_status_);
}

void ServiceNotifier::status() {
    if (!enabled_) return;
    auto now = make_status_();
    if (now == last_status_) return;
    last_status_ = std::move(now);
    notify("STATUS=" + last_status_);
}

std::chrono::microseconds ServiceNotifier::period() const {
    // Half the watchdog interval, as sd_watchdog_enabled(3) advises.
    return watchdog_.count() ? std::min<std::chrono::microseconds>(watchdog_ / 2, kStatusPeriod)
                             : std::chrono::microseconds(kStatusPeriod);
}

void ServiceNotifier::tick() {
    timer_.expires_after(period());
    timer_.async_wait([this](const error_code& ec) {
        if (ec) return;
        if (watchdog_.count()) {
            if (alive_()) notify("WATCHDOG=1");
            else spdlog::warn("an event loop has not turned for a keep-alive period; holding the watchdog's keep-alive");
        }
        status();
        tick();
    });
}

}  // namespace egress
