// Happy Eyeballs v2 (RFC 8305) for one connect to a host name: which address
// to try next and when, from the two lookups' answers and the attempts'
// failures. Pure: no sockets, no timers, no clock; the shell passes the time
// in and carries out each step (a non-blocking connect, a timer).
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <vector>

#include "endpoint.hpp"

namespace egress {

struct EyeballsTimings {
    std::chrono::milliseconds resolution_delay{50};  // RFC 8305 section 3: how long an A answer waits for AAAA
    std::chrono::milliseconds attempt_delay{250};    // "Connection Attempt Delay", section 5
};

// RFC 8305 section 5: "a subsequent connection MUST NOT be started within 10
// milliseconds of the previous attempt". A shorter attempt_delay counts as
// this, and a start brought forward by failures waits for it too.
inline constexpr std::chrono::milliseconds kMinAttemptGap{10};

// The schedule of one connect. The shell reports each event (an answer, a
// failed attempt), then calls next() and carries out the step, again and
// again until it gets a wait; it calls next() again at the wait's `until`
// or after the next event. It stops at the first attempt that succeeds
// (cancelling the others, section 5) or at `exhausted`.
//
// The order (sections 4 and 5, First Address Family Count 1): IPv6 first
// when an IPv6 address is known at the first attempt, else IPv4; then each
// attempt takes the other family than the previous one when that family has
// an untried address, else the same family. Within a family, addresses keep
// the order they were given (the DNS answer's). Nothing here
// sorts across families or learns from past connects.
class Eyeballs {
public:
    using Time = std::chrono::steady_clock::time_point;

    // `start`: when the lookups were sent (kept for the shell: started_at()).
    // An attempt_delay below kMinAttemptGap counts as kMinAttemptGap.
    Eyeballs(EyeballsTimings timings, Time start);

    // One family's lookup finished: v6 true for AAAA, false for A.
    // `addresses` may be empty (no records, or the lookup failed). Each
    // family answers once; a second call for the same family is ignored. An
    // address joins the family it is (Endpoint::v6), whichever answer brought
    // it; one already known (same family and address bytes, any port) is
    // ignored. Addresses that come after attempts began are tried from the
    // next attempt on (section 3).
    void answered(bool v6, std::vector<Endpoint> addresses, Time now);
    // The attempt `id` (from a start step) failed. An unknown or already
    // failed id is ignored.
    void failed(std::size_t id, Time now);

    struct Step {
        enum class Kind { start, wait, exhausted };
        Kind kind = Kind::wait;
        Endpoint address;           // start: connect to this now
        std::size_t id = 0;         // start: the attempt's id (0, 1, 2, ... in start order)
        std::optional<Time> until;  // wait: call next() again at this time; nullopt: only after the next event
    };

    // What to do at `now`:
    //  - start: the first attempt once the AAAA answer is in (section 3:
    //    at once), or once the A answer is in and either the AAAA answer is
    //    in too or resolution_delay has passed since the A answer; each later
    //    one attempt_delay after the previous start, or as soon as nothing is
    //    in flight (every earlier attempt failed), but never within
    //    kMinAttemptGap of the previous start;
    //  - wait: until the resolution delay or the pacing ends, or (nullopt)
    //    for an answer or an attempt's outcome;
    //  - exhausted: both families have answered, every address was attempted
    //    and every attempt failed (or there was no address at all). Final.
    Step next(Time now);

    std::size_t attempts() const { return failed_.size(); }  // start steps given
    std::size_t in_flight() const { return in_flight_; }     // started and not failed
    bool answered(bool v6) const { return family(v6).answered; }
    std::size_t known(bool v6) const { return family(v6).addresses.size(); }  // addresses of that family received
    Time started_at() const { return start_; }

private:
    struct Family {
        std::vector<Endpoint> addresses;  // in the order received, no duplicates
        std::size_t tried = 0;            // addresses[0, tried) have been started
        bool answered = false;

        bool untried() const { return tried < addresses.size(); }
    };

    Family& family(bool v6) { return v6 ? v6_ : v4_; }
    const Family& family(bool v6) const { return v6 ? v6_ : v4_; }
    Step start(bool v6, Time now);

    EyeballsTimings timings_;
    Time start_;
    Family v6_, v4_;
    std::optional<Time> a_answered_at_;  // starts the resolution delay
    std::vector<bool> failed_;           // per attempt id
    std::size_t in_flight_ = 0;
    bool last_v6_ = false;  // the family of the latest attempt
    Time last_start_{};
};

}  // namespace egress
