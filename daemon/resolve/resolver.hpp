// Host-name lookups for one event loop: c-ares, driven by the loop. Its
// sockets are watched by the loop's reactor and its timeouts by a loop timer,
// so a lookup never blocks the loop, and nothing here is shared between
// loops (each has its own channel and cache).
//
// c-ares reads /etc/resolv.conf (servers, search list, ndots, timeout,
// attempts) unless the config overrides a setting, and /etc/hosts first
// unless dns.hosts_file is false.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.hpp"
#include "endpoint.hpp"
#include "io/asio.hpp"
#include "resolve/cache.hpp"

struct ares_channeldata;
struct ares_addrinfo;

namespace egress {

// How a lookup of one family ended.
enum class LookupStatus {
    ok,              // addresses found
    no_name,         // NXDOMAIN: the name does not exist
    no_data,         // the name exists, with no record of this family
    server_failure,  // SERVFAIL, REFUSED, a malformed answer, no server reachable
    timeout,         // no server answered in time (c-ares's timeout and tries)
    failed,          // anything else (out of memory, a bad name for c-ares)
};
const char* to_string(LookupStatus s);

struct LookupAnswer {
    LookupStatus status = LookupStatus::failed;
    std::vector<Endpoint> addresses;  // ports 0; in the order the answer gave them
    std::string detail;               // c-ares's words for a failure
    bool cached = false;              // answered from the cache, no query sent
};

// c-ares's process-wide set-up: once, in main, before any Resolver and
// before the loops' threads start. Throws std::runtime_error on failure.
void init_resolver_library();
// Whether `config` would make a Resolver: the reason it would not, or "".
std::string check_resolver_config(const DnsConfig& config);

class Resolver {
public:
    // Throws std::runtime_error when c-ares cannot be set up (a server it
    // does not take, no memory): at start-up and reload only.
    Resolver(asio::io_context& io, const DnsConfig& config);
    ~Resolver();  // pending lookups end without calling back
    Resolver(const Resolver&) = delete;
    Resolver& operator=(const Resolver&) = delete;

    using Done = std::function<void(LookupAnswer)>;
    // Looks up `name` (normalized) for one family. `done` runs exactly once,
    // on the loop, never inside lookup() itself, unless the Resolver is
    // destroyed first.
    void lookup(const std::string& name, bool v6, Done done);

    std::size_t pending() const { return pending_; }
    const DnsConfig& config() const { return config_; }
    std::size_t cached_entries() const { return cache_.size(); }

private:
    struct Watch;
    struct Query;
    static void on_socket_state(void* self, int fd, int readable, int writable);
    static void on_answer(void* query, int status, int timeouts, ::ares_addrinfo* result);
    void socket_state(int fd, bool readable, bool writable);
    void arm(const std::shared_ptr<Watch>& w);
    void on_ready(const std::shared_ptr<Watch>& w, bool read);
    // Arms the timer for c-ares's next timeout, if it has one.
    void reschedule();
    void finish(Query* q, LookupAnswer answer);

    asio::io_context& io_;
    DnsConfig config_;
    ares_channeldata* channel_ = nullptr;
    asio::steady_timer timer_;
    std::unordered_map<int, std::shared_ptr<Watch>> watches_;
    DnsCache cache_;
    std::size_t pending_ = 0;
    bool in_lookup_ = false;  // inside ares_getaddrinfo: an answer then is posted
};

}  // namespace egress
