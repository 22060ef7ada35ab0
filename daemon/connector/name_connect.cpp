#include "name_connect.hpp"

namespace egress {
namespace {

const char* family_record(bool v6) { return v6 ? "AAAA" : "A"; }

std::uint64_t us_since(std::chrono::steady_clock::time_point t0) {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count());
}

std::string lookup_text(const LookupAnswer& a) {
    switch (a.status) {
    case LookupStatus::ok: return std::to_string(a.addresses.size()) + " address(es)";
    case LookupStatus::no_name: return "no such name";
    case LookupStatus::no_data: return "no record";
    case LookupStatus::server_failure: return "server failure (" + a.detail + ")";
    case LookupStatus::timeout: return "no answer from the DNS servers";
    case LookupStatus::failed: return "failed (" + a.detail + ")";
    }
    return a.detail;
}

}  // namespace

NameConnect::NameConnect(asio::io_context& io, Syscalls& sys, Random& random, std::shared_ptr<Resolver> resolver,
                         std::shared_ptr<FairQueue::Lane> lane, std::string name, std::uint16_t port,
                         std::chrono::milliseconds timeout, EyeballsTimings timings, NameHooks hooks)
    : io_(io), sys_(sys), random_(random), resolver_(std::move(resolver)), lane_(std::move(lane)),
      name_(std::move(name)), port_(port), timeout_(timeout), hooks_(std::move(hooks)),
      started_(std::chrono::steady_clock::now()), schedule_(timings, started_), next_step_(io), deadline_(io) {}

void NameConnect::start(Done done) {
    done_ = std::move(done);
    deadline_.expires_after(timeout_);
    deadline_.async_wait([self = shared_from_this()](const error_code& ec) {
        if (!ec && !self->finished_) self->on_deadline();
    });
    // RFC 8305 section 3: AAAA first, then A, without waiting in between.
    for (bool v6 : {true, false})
        resolver_->lookup(name_, v6, [weak = weak_from_this(), v6, counted = hooks_.lookup_done](LookupAnswer a) {
            if (counted) counted(v6, a);
            if (auto self = weak.lock(); self && !self->finished_) self->on_lookup(v6, std::move(a));
        });
}

void NameConnect::on_lookup(bool v6, LookupAnswer answer) {
    auto& slot = v6 ? result_.aaaa : result_.a;
    slot.done = true;
    slot.us = answer.cached ? 0 : us_since(started_);
    std::vector<Endpoint> usable;
    for (auto addr : answer.addresses) {
        if (usable.size() == kMaxAddressesPerFamily) break;
        addr.port = port_;
        if (auto why = hooks_.judge(addr)) {
            if (!skip_err_) skip_err_ = why->code;
            any_denied_ = any_denied_ || why->code == EACCES;
            if (skipped_.size() < 4) skipped_.push_back(endpoint_string(addr) + ": " + why->message);
            continue;
        }
        usable.push_back(addr);
    }
    slot.answer = std::move(answer);
    schedule_.answered(v6, std::move(usable), std::chrono::steady_clock::now());
    drive();
}

void NameConnect::drive() {
    if (driving_) return;  // an attempt that ends inside start(): the loop below goes on
    driving_ = true;
    while (!finished_) {
        const auto now = std::chrono::steady_clock::now();
        const auto step = schedule_.next(now);
        if (step.kind == Eyeballs::Step::Kind::start) {
            if (result_.addresses == 0) result_.resolve_us = std::max(result_.aaaa.us, result_.a.us);
            start_attempt(step.id, step.address);
            continue;
        }
        if (step.kind == Eyeballs::Step::Kind::exhausted) {
            if (attempts_.empty()) fail_without_attempts();
            else fail(ECONNREFUSED, "connect_failed", "");  // replaced in fail() by the last attempt's errno
            break;
        }
        if (step.until) {
            next_step_.expires_at(*step.until);
            next_step_.async_wait([weak = weak_from_this()](const error_code& ec) {
                if (auto self = weak.lock(); self && !ec && !self->finished_) self->drive();
            });
        }
        break;
    }
    driving_ = false;
}

std::chrono::milliseconds NameConnect::left() const {
    const auto gone = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_);
    return std::max(std::chrono::milliseconds(1), timeout_ - gone);
}

void NameConnect::start_attempt(std::size_t id, const Endpoint& address) {
    if (attempts_.size() <= id) attempts_.resize(id + 1);
    auto& a = attempts_[id];
    a.address = address;
    ++result_.addresses;
    if (!first_try_) first_try_ = std::chrono::steady_clock::now();
    auto planned = hooks_.plan(address);
    if (!planned) {
        a.err = planned.error().code;
        a.message = planned.error().message;
        schedule_.failed(id, std::chrono::steady_clock::now());
        return;
    }
    a.plan = std::move(*planned);
    // The request's own deadline (deadline_) decides; the attempt's comes a
    // little later, so that a hanging attempt never ends the request first.
    a.plan->plan.timeout = left() + std::chrono::milliseconds(100);
    a.plan->pool = a.plan->plan.pool;
    a.op = std::make_shared<PendingConnect>(io_, sys_, random_, std::move(a.plan->plan), lane_);
    a.live = true;
    // The op may finish inside start(): its handler finds the attempt in place.
    a.op->start([weak = weak_from_this(), id](ConnectOutcome out) {
        if (auto self = weak.lock(); self && !self->finished_) self->on_attempt_done(id, std::move(out));
    });
}

void NameConnect::on_attempt_done(std::size_t id, ConnectOutcome out) {
    auto& a = attempts_[id];
    a.live = false;
    tries_ += out.attempts;
    if (hooks_.attempt_done) hooks_.attempt_done(*a.plan, out);
    if (out.err == 0) return succeed(id, std::move(out));
    a.err = out.err;
    a.message = std::move(out.message);
    a.op.reset();
    a.plan.reset();  // its hold (the pool's in-flight count) goes
    schedule_.failed(id, std::chrono::steady_clock::now());
    drive();
}

void NameConnect::succeed(std::size_t id, ConnectOutcome out) {
    auto& a = attempts_[id];
    result_.winner_v6 = a.address.v6;
    result_.first_failed = id != 0;
    result_.winner = std::move(a.plan);
    a.op.reset();
    out.attempts = tries_;
    result_.out = std::move(out);
    result_.result = "connected";
    finish(std::move(result_));
}

void NameConnect::on_deadline() {
    const auto ms = std::to_string(timeout_.count());
    if (attempts_.empty()) {
        std::string state;
        for (bool v6 : {true, false}) {
            const auto& f = v6 ? result_.aaaa : result_.a;
            state += std::string(state.empty() ? "" : ", ") + family_record(v6) + ": " +
                     (f.done ? lookup_text(f.answer) : "no answer yet");
        }
        return fail(ETIMEDOUT, "resolve_timeout",
                    "resolving " + name_ + " took longer than the request's " + ms + " ms (" + state + ")");
    }
    fail(ETIMEDOUT, "timeout",
         "no address of " + name_ + " answered within " + ms + " ms (" + attempts_summary() + ")");
}

std::string NameConnect::attempts_summary() const {
    std::string s = std::to_string(attempts_.size()) + " tried:";
    for (const auto& a : attempts_)
        s += " " + endpoint_string(a.address) + " " + (a.live ? "pending" : a.err ? errno_name(a.err) : "closed") + ";";
    s.pop_back();
    return s;
}

void NameConnect::fail_without_attempts() {
    const auto& six = result_.aaaa.answer;
    const auto& four = result_.a.answer;
    const auto both = std::string(" (AAAA: ") + lookup_text(six) + ", A: " + lookup_text(four) + ")";
    if (!six.addresses.empty() || !four.addresses.empty()) {
        std::string why;
        for (const auto& s : skipped_) why += (why.empty() ? "" : "; ") + s;
        if (any_denied_)
            return fail(EACCES, "denied", "every address of " + name_ + " is denied: " + why);
        return fail(skip_err_ ? skip_err_ : EAFNOSUPPORT, "unusable", "no address of " + name_ + " is usable: " + why);
    }
    // "No such name" is the DNS's last word, whatever the other family says.
    if (six.status == LookupStatus::no_name || four.status == LookupStatus::no_name)
        return fail(ENXIO, "no_name", "no such name: " + name_ + both);
    if (six.status == LookupStatus::no_data && four.status == LookupStatus::no_data)
        return fail(ENODATA, "no_data", name_ + " has no A or AAAA record" + both);
    for (auto s : {LookupStatus::timeout, LookupStatus::server_failure, LookupStatus::failed}) {
        if (six.status != s && four.status != s) continue;
        if (s == LookupStatus::timeout)
            return fail(ETIMEDOUT, "resolve_timeout", "resolving " + name_ + ": no answer from the DNS servers" + both);
        if (s == LookupStatus::server_failure)
            return fail(EREMOTEIO, "server_failure", "resolving " + name_ + ": the DNS server failed" + both);
        return fail(EIO, "resolve_failed", "resolving " + name_ + " failed" + both);
    }
    fail(ENODATA, "no_data", name_ + " has no address" + both);
}

void NameConnect::fail(int err, const char* result, std::string message) {
    if (std::string_view(result) == "connect_failed") {
        // Every attempt failed: the last one's errno, and what each got.
        err = attempts_.back().err ? attempts_.back().err : err;
        message = "every address of " + name_ + " failed (" + attempts_summary() + ")";
        const auto& last = attempts_.back();
        if (!last.message.empty()) message += "; last: " + last.message;
    }
    result_.out.err = err;
    result_.out.message = std::move(message);
    result_.out.attempts = tries_;
    result_.result = result;
    result_.first_failed = !attempts_.empty();
    finish(std::move(result_));
}

void NameConnect::stop() {
    finished_ = true;
    next_step_.cancel();
    deadline_.cancel();
    // The attempts still pending lost: closed now, without figures.
    for (auto& a : attempts_) {
        if (a.op) a.op->cancel();
        a.op.reset();
        a.plan.reset();
    }
}

void NameConnect::finish(NameOutcome outcome) {
    stop();
    outcome.out.connect_us = first_try_ ? us_since(*first_try_) : 0;
    if (auto done = std::move(done_)) done(std::move(outcome));
}

void NameConnect::cancel() {
    if (finished_) return;
    done_ = nullptr;
    stop();
}

}  // namespace egress
