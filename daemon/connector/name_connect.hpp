// One CONNECT to a host name (DEST_HOST): its AAAA and A lookups at once,
// its addresses tried as Happy Eyeballs v2 says (RFC 8305, eyeballs.hpp), the
// first connect to succeed wins and every other attempt is closed at once.
// The request's deadline covers the lookups and the connects together.
//
// Every resolved address is judged by the session before it joins (policy,
// route, pool: NameHooks::judge), and each attempt is planned like a literal
// request to that address (NameHooks::plan): DNS is no way around the
// policy, and each attempt uses the pool and port strategy of its route.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "connector/connector.hpp"
#include "connector/eyeballs.hpp"
#include "resolve/resolver.hpp"

namespace egress {

// The addresses of one family a request tries at most (in the answer's
// order): each attempt holds a socket, and a name may have hundreds.
inline constexpr std::size_t kMaxAddressesPerFamily = 16;

// What the session keeps for one attempt while it runs (its pool's
// in-flight count, its choice of source): released with the attempt.
struct AttemptHold {
    virtual ~AttemptHold() = default;
};

struct AddressPlan {
    ConnectPlan plan;  // its timeout is replaced by what is left of the request's; moved into the attempt
    std::string pool;  // plan.pool, kept for the reply
    std::unique_ptr<AttemptHold> hold;
};

struct NameHooks {
    // Whether a resolved address (port set) may be tried; the error says why
    // not (EACCES: the policy; EAFNOSUPPORT, ...: no pool can serve it).
    std::function<std::optional<Error>(const Endpoint&)> judge;
    // The plan for an attempt to an address judge() let through.
    std::function<Result<AddressPlan>(const Endpoint&)> plan;
    // An attempt ended with its own outcome (not the ones closed because
    // another won): for the connect metrics.
    std::function<void(AddressPlan&, const ConnectOutcome&)> attempt_done;
    // Each family's lookup answered, for the DNS metrics: also one that comes
    // after the request has ended (a late AAAA once IPv4 has won). It must
    // not need the NameConnect, which may be gone by then.
    std::function<void(bool v6, const LookupAnswer&)> lookup_done;
};

// How one family's lookup went, for the reply and the metrics.
struct FamilyLookup {
    bool done = false;
    LookupAnswer answer;
    std::uint64_t us = 0;  // from the start to this answer
};

struct NameOutcome {
    // The winner's outcome (fd, local, remote), or the failure: err and a
    // message that names the host and what happened. attempts: connect
    // tries over every address.
    ConnectOutcome out;  // connect_us: from the first attempt's start
    // What failed, when out.err != 0: "denied", "no_name", "no_data",
    // "server_failure", "resolve_timeout", "resolve_failed", "unusable",
    // "connect_failed" or "timeout". "connected" on success.
    const char* result = "connected";
    std::optional<AddressPlan> winner;
    std::uint32_t addresses = 0;     // addresses a connect was tried to
    std::uint64_t resolve_us = 0;    // until the first answer that let attempts begin (0: cached)
    bool winner_v6 = false;
    bool first_failed = false;       // the first address tried did not win
    FamilyLookup aaaa, a;
};

class NameConnect : public std::enable_shared_from_this<NameConnect> {
public:
    using Done = std::function<void(NameOutcome)>;

    NameConnect(asio::io_context& io, Syscalls& sys, Random& random, std::shared_ptr<Resolver> resolver,
                std::shared_ptr<FairQueue::Lane> lane, std::string name, std::uint16_t port,
                std::chrono::milliseconds timeout, EyeballsTimings timings, NameHooks hooks);

    // Starts the lookups. `done` runs exactly once, never inside start(),
    // unless cancel() runs first.
    void start(Done done);
    // Abandons the request: every attempt's socket is closed now, and `done`
    // never runs.
    void cancel();

    const std::string& name() const { return name_; }

private:
    struct Attempt {
        Endpoint address;
        std::shared_ptr<PendingConnect> op;
        std::optional<AddressPlan> plan;
        bool live = false;
        int err = 0;
        std::string message;
    };
    void on_lookup(bool v6, LookupAnswer answer);
    // Carries out every step the schedule has now; arms the timer for the next.
    void drive();
    void start_attempt(std::size_t id, const Endpoint& address);
    void on_attempt_done(std::size_t id, ConnectOutcome out);
    void on_deadline();
    void succeed(std::size_t id, ConnectOutcome out);
    void fail(int err, const char* result, std::string message);
    // No more steps: the timers stop and every attempt still pending is closed.
    void stop();
    void finish(NameOutcome outcome);
    // Why nothing could be tried, once both lookups are in and no address is left.
    void fail_without_attempts();
    std::string attempts_summary() const;
    std::chrono::milliseconds left() const;

    asio::io_context& io_;
    Syscalls& sys_;
    Random& random_;
    std::shared_ptr<Resolver> resolver_;
    std::shared_ptr<FairQueue::Lane> lane_;
    std::string name_;
    std::uint16_t port_;
    std::chrono::milliseconds timeout_;
    NameHooks hooks_;
    std::chrono::steady_clock::time_point started_;
    std::optional<std::chrono::steady_clock::time_point> first_try_;  // CONNECT_US counts from here
    Eyeballs schedule_;
    asio::steady_timer next_step_;
    asio::steady_timer deadline_;
    std::vector<Attempt> attempts_;  // by attempt id
    std::vector<std::string> skipped_;  // addresses judge() refused, and why
    bool any_denied_ = false;           // one of them by the policy
    int skip_err_ = 0;                  // the first refusal's errno
    NameOutcome result_;
    std::uint32_t tries_ = 0;
    bool driving_ = false;
    bool finished_ = false;
    Done done_;
};

}  // namespace egress
