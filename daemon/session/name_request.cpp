// A CONNECT to a host name: the name's own policy first (a name entry that
// denies it costs no DNS query), then NameConnect's lookups and attempts,
// each address judged and planned here as a literal request to it would be.
#include "session.hpp"

#include "logging/debug.hpp"
#include "session/clamp.hpp"

#include <spdlog/spdlog.h>

namespace egress {
namespace {

// What one attempt holds while it runs: its pool's in-flight count and the
// choice of sources, for the figures. `pools` keeps choice.pool valid.
struct SessionHold : AttemptHold {
    std::shared_ptr<PoolSet> pools;
    Choice choice;
    Endpoint dest;
    InflightTicket ticket;  // the pool's in-flight count only
};

}  // namespace

void Session::connect_name(std::uint64_t id, const proto::ConnectRequest& req, const ClientRule& rule,
                           InflightTicket ticket, std::uint32_t requested, std::uint32_t ms) {
    const auto& cfg = *ctx_.now.config;
    const auto& name = req.host;
    if (const auto d = deny_before_resolving(rule, name, req.dest.port)) {
        ctx_.metrics.names.request("denied").Increment();
        return deny(id, rule, "destination", "client rule '" + rule.name + "': " + d->reason, req.transport);
    }
    // The rule lives in the config, which the hooks hold: a reload during
    // the lookups changes nothing for this request.
    NameHooks hooks;
    hooks.judge = [config = ctx_.now.config, pools = ctx_.now.pools, host = ctx_.host, rule = &rule, name,
                   pool = req.pool](const Endpoint& a) -> std::optional<Error> {
        if (const auto d = evaluate(*rule, a, *host, name); !d.allowed)
            return Error{EACCES, "client rule '" + rule->name + "': " + d.reason};
        if (const auto& target = pools->pool_name_for(pool, a); !rule->may_use_pool(target))
            return Error{EACCES, "client rule '" + rule->name + "' may not use pool '" + target + "'"};
        return pools->check(pool, a);
    };
    hooks.plan = [&ctx = ctx_, pools = ctx_.now.pools, pool = req.pool, flags = req.flags,
                  transport = req.transport](const Endpoint& a) -> Result<AddressPlan> {
        auto choice = pools->choose(pool, a, ctx.random(), transport);
        if (!choice) return choice.error();
        AddressPlan p;
        p.plan.dest = a;
        p.plan.flags = flags;
        p.plan.transport = transport;
        p.plan.pool = choice->pool->name;
        p.plan.policy = choice->pool->policy;
        for (auto i : choice->order) p.plan.sources.push_back(choice->pool->sources[i]);
        auto hold = std::make_unique<SessionHold>();
        hold->pools = pools;
        hold->dest = a;
        hold->ticket.hold_pool(*choice->pool);
        hold->choice = std::move(*choice);
        p.hold = std::move(hold);
        return p;
    };
    hooks.lookup_done = [&m = ctx_.metrics.names](bool v6, const LookupAnswer& a) {
        m.lookup(v6, a.cached ? "cached" : to_string(a.status)).Increment();
    };
    hooks.attempt_done = [weak = weak_from_this()](AddressPlan& p, const ConnectOutcome& out) {
        const auto& h = static_cast<const SessionHold&>(*p.hold);
        if (auto self = weak.lock()) self->record_connect(*h.pools, h.choice, h.dest, out);
    };
    if (requested) ctx_.metrics.timeout_clamped.Increment();  // served, with the maximum
    EGRESS_DEBUG("session {}: request {} CONNECT {}:{} timeout {} ms", id_, id, name, req.dest.port, ms);
    auto op = std::make_shared<NameConnect>(
        ctx_.io, ctx_.sys, ctx_.random, ctx_.resolver, lane_, name, req.dest.port, std::chrono::milliseconds(ms),
        EyeballsTimings{std::chrono::milliseconds(cfg.resolution_delay_ms), std::chrono::milliseconds(cfg.attempt_delay_ms)},
        std::move(hooks));
    InFlight f;
    f.named = op;
    f.pools = ctx_.now.pools;
    f.ticket = std::move(ticket);
    f.timeout_requested = requested;
    f.timeout_ms = ms;
    f.dest = req.dest;
    f.started = request_start_;
    f.transport = req.transport;
    inflight_.emplace(id, std::move(f));
    op->start([weak = weak_from_this(), id](NameOutcome out) {
        if (auto self = weak.lock()) self->on_name_done(id, std::move(out));
    });
}

void Session::on_name_done(std::uint64_t id, NameOutcome n) {
    const auto f = inflight_.find(id);
    if (f == inflight_.end()) return;  // cannot happen: close() cancels first
    const auto t0 = f->second.started;
    const auto requested = f->second.timeout_requested, applied = f->second.timeout_ms;
    const auto name = f->second.named->name();
    const auto transport = f->second.transport;
    inflight_.erase(f);  // the ticket gives its counts back before the reply

    auto& m = ctx_.metrics.names;
    m.request(n.result).Increment();  // its lookups count as they answer (hooks.lookup_done)
    if (n.addresses) m.resolve_duration.observe(ctx_.index, static_cast<double>(n.resolve_us) / 1e6);
    if (n.out.err == 0) m.winner(n.winner_v6).Increment();
    if (n.first_failed) m.first_lost.Increment();

    proto::ConnectReply rep;
    rep.status = static_cast<std::uint32_t>(n.out.err);
    if (n.out.err) {
        rep.error_name = errno_name(n.out.err);
        rep.message = errno_text(n.out.err) + ": " + n.out.message;
    }
    if (n.out.err == EACCES) {
        const auto& rule = ctx_.now.config->clients.rule_for(peer_);
        ctx_.metrics.policy_denied(rule.name, "destination", transport);
        ctx_.log_event(spdlog::level::info, "denied/" + rule.name,
                       "denied a request of client {} (uid {}, gid {}, pid {}): {}", id_, peer_.uid, peer_.gid,
                       peer_.pid, n.out.message);
    }
    rep.local = n.out.local;
    rep.remote = n.out.remote;
    if (n.winner) rep.pool = n.winner->pool;
    n.winner.reset();  // the winning attempt's pool count, before the reply
    rep.attempts = n.out.attempts;
    rep.connect_us = n.out.connect_us;
    rep.addresses = n.addresses;
    rep.resolve_us = n.resolve_us;
    report_clamp(rep, requested, applied);
    EGRESS_DEBUG("session {}: request {} ({}) -> {} after {} address(es), {} attempts", id_, id, name,
                 n.out.err ? errno_name(n.out.err) : "ok", n.addresses, n.out.attempts);
    ctx_.metrics.request_duration.observe(
        ctx_.index, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    const bool with_fd = static_cast<bool>(n.out.fd);
    queue(id, proto::encode_connect_reply(id, rep, with_fd), std::move(n.out.fd));
}

}  // namespace egress
