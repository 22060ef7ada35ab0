#include "eyeballs.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace egress {
namespace {

bool same_address(const Endpoint& a, const Endpoint& b) {
    return a.v6 == b.v6 && std::memcmp(a.addr.data(), b.addr.data(), a.addr_len()) == 0;
}

Eyeballs::Step wait_step(std::optional<Eyeballs::Time> until) {
    Eyeballs::Step s;
    s.kind = Eyeballs::Step::Kind::wait;
    s.until = until;
    return s;
}

}  // namespace

Eyeballs::Eyeballs(EyeballsTimings timings, Time start) : timings_(timings), start_(start) {
    timings_.attempt_delay = std::max(timings_.attempt_delay, kMinAttemptGap);
}

void Eyeballs::answered(bool v6, std::vector<Endpoint> addresses, Time now) {
    Family& answering = family(v6);
    if (answering.answered) return;
    answering.answered = true;
    if (!v6) a_answered_at_ = now;
    for (auto& a : addresses) {
        // Section 3: late addresses join the list, the attempts go on with them.
        Family& f = family(a.v6);
        const bool known = std::any_of(f.addresses.begin(), f.addresses.end(),
                                       [&](const Endpoint& k) { return same_address(k, a); });
        if (!known) f.addresses.push_back(std::move(a));
    }
}

void Eyeballs::failed(std::size_t id, Time /*now*/) {
    if (id >= failed_.size() || failed_[id]) return;
    failed_[id] = true;
    --in_flight_;
}

Eyeballs::Step Eyeballs::next(Time now) {
    if (!v6_.untried() && !v4_.untried()) {
        if (v6_.answered && v4_.answered && in_flight_ == 0) return Step{Step::Kind::exhausted, {}, 0, std::nullopt};
        return wait_step(std::nullopt);  // for an answer, or an attempt's outcome
    }
    if (failed_.empty()) {
        // Section 3: a positive AAAA answer starts the first attempt at once; an
        // A answer that comes first waits the Resolution Delay for AAAA, and an
        // empty AAAA answer ends that wait.
        if (!v6_.answered && a_answered_at_) {
            const auto end = *a_answered_at_ + timings_.resolution_delay;
            if (now < end) return wait_step(end);
        }
    } else {
        // Section 5: one attempt at a time, the Connection Attempt Delay apart;
        // when every attempt so far has failed there is nothing to wait for but
        // the 10 ms floor.
        const auto due = last_start_ + (in_flight_ > 0 ? timings_.attempt_delay : kMinAttemptGap);
        if (now < due) return wait_step(due);
    }
    // Section 4, First Address Family Count 1: IPv6 first when it has an
    // address, then the families in turn while both have some left.
    if (failed_.empty()) return start(v6_.untried(), now);
    return start(family(!last_v6_).untried() ? !last_v6_ : last_v6_, now);
}

Eyeballs::Step Eyeballs::start(bool v6, Time now) {
    Family& f = family(v6);
    Step s;
    s.kind = Step::Kind::start;
    s.address = f.addresses[f.tried++];
    s.id = failed_.size();
    failed_.push_back(false);
    ++in_flight_;
    last_v6_ = v6;
    last_start_ = now;
    return s;
}

}  // namespace egress
