#include "exposer.hpp"

#include <CivetServer.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace egress {
namespace {

// civetweb reports start-up failures (bind, listen, bad options) through
// log_message, on the thread that constructs the server, before the
// constructor throws a message that names none of them. While make_exposer
// constructs one, this thread's messages are collected here.
thread_local std::vector<std::string>* startup_log = nullptr;

// Messages outside start-up are dropped: civetweb logs per connection, and
// any local user can open connections.
int log_message(const mg_connection*, const char* message) {
    if (startup_log && message) startup_log->emplace_back(message);
    return 1;  // handled: civetweb writes nothing itself
}

// The errno of civetweb's socket messages, "cannot bind to 127.0.0.1:9464:
// 98 (Address already in use)": the number between ": " and " ("; 0 when no
// message carries one.
int errno_of(const std::vector<std::string>& messages) {
    for (const auto& m : messages) {
        for (auto open = m.find(" ("); open != std::string::npos; open = m.find(" (", open + 1)) {
            const auto colon = m.rfind(": ", open);
            if (colon == std::string::npos) continue;
            const auto digits = m.substr(colon + 2, open - colon - 2);
            if (digits.empty() || digits.size() > 4 ||
                !std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); }))
                continue;
            return std::stoi(digits);
        }
    }
    return 0;
}

std::string describe(int err) {
    const char* name = strerrorname_np(err);
    return (name ? std::string(name) : "errno " + std::to_string(err)) + " (" + std::strerror(err) + ")";
}

}  // namespace

std::unique_ptr<prometheus::Exposer> make_exposer(const std::string& listen) {
    const std::vector<std::string> options{
        "listening_ports",    listen,
        "num_threads",        std::to_string(kMetricsThreads),
        "request_timeout_ms", std::to_string(kMetricsRequestTimeoutMs),
        "enable_keep_alive",  "no",
    };
    CivetCallbacks callbacks;  // copied by the server
    callbacks.log_message = log_message;
    std::vector<std::string> messages;
    startup_log = &messages;
    try {
        auto exposer = std::make_unique<prometheus::Exposer>(options, &callbacks);
        startup_log = nullptr;
        return exposer;
    } catch (const std::exception& e) {
        startup_log = nullptr;
        if (const int err = errno_of(messages)) throw std::runtime_error(describe(err));
        std::string what;
        for (const auto& m : messages) what += (what.empty() ? "" : "; ") + m;
        throw std::runtime_error(what.empty() ? e.what() : what);
    }
}

}  // namespace egress
