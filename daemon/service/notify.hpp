// What egressd tells its service manager through sd_notify(3): ready,
// reloading, stopping, a one-line status, and the watchdog's keep-alive.
// Every message is sent from event loop 0, the watchdog's too, and a
// keep-alive only goes when `alive` says every other loop has turned since
// the last one: a loop that stops turning stops the keep-alives, and systemd
// restarts egressd.
// Without NOTIFY_SOCKET (not under systemd) nothing is sent and no timer runs.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "io/asio.hpp"

namespace egress {

class ServiceNotifier {
public:
    // `status` makes the STATUS= line (clients, connects in flight); `alive`
    // is asked once per keep-alive period.
    ServiceNotifier(asio::io_context& io, std::function<std::string()> status,
                    std::function<bool()> alive = [] { return true; });

    void ready();      // READY=1 and the status; starts the keep-alives
    void reloading();  // RELOADING=1 (with MONOTONIC_USEC, as systemd 253 asks)
    void stopping();   // STOPPING=1 and the status
    // Sends the status line now if it changed since the last one.
    void status();
    // The watchdog interval systemd asked for (WATCHDOG_USEC); 0: none.
    std::chrono::microseconds watchdog() const { return watchdog_; }
    // How often the loop sends its keep-alive and refreshes the status.
    std::chrono::microseconds period() const;

private:
    void tick();

    asio::steady_timer timer_;
    std::function<std::string()> make_status_;
    std::function<bool()> alive_;
    bool enabled_;
    std::chrono::microseconds watchdog_{0};
    std::string last_status_;
    bool ticking_ = false;
};

}  // namespace egress
