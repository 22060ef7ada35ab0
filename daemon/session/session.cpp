#include "session.hpp"

#include "handoff/handoff.hpp"
#include "session/clamp.hpp"
#include "logging/debug.hpp"
#include "status/status.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <array>
#include <cstring>

namespace egress {
namespace {

// Requests read in one turn of the client's lane: few while other clients
// wait for their turn, so that a client with a long queue of requests delays
// them by little; a whole batch when no one else waits, so that a lone busy
// client pays fewer system calls per request. Either way the turn is charged
// what it read.
constexpr unsigned kContendedBatch = kTurnQuantum;
constexpr unsigned kLoneBatch = RecvBatch::kSize;

}  // namespace

Session::Session(LoopContext& ctx, UniqueFd client, Credentials peer, QuotaTable::Slot quota, Closed on_closed)
    : ctx_(ctx), lane_(ctx.turns.lane()), sock_(ctx.io), on_closed_(std::move(on_closed)),
      id_(ctx.shared.next_session_id.fetch_add(1, std::memory_order_relaxed)),
      peer_(std::move(peer)), quota_(std::move(quota)) {
    sock_.assign(client.release());
}

Session::~Session() {
    // A connect still under way must not call back into a session that is
    // gone (its completion captures `this`); close() cancels them too.
    for (auto& [rid, f] : inflight_)
        if (f.op) f.op->cancel();
}

void Session::start() {
    ctx_.metrics.clients.Increment();
    read_later();
}

void Session::read_later() {
    lane_->post([self = shared_from_this()] { return self->closed_ ? 1U : self->read_some(); });
}

std::uint32_t Session::read_some() {
    auto& b = ctx_.recv_batch;
    bool drained = false;
    std::uint32_t handled = 0;
    const unsigned batch = ctx_.turns.ready_lanes() > 0 ? kContendedBatch : kLoneBatch;
    batching_ = true;  // replies made meanwhile go out together, below
    // Until the batch is full or the socket has nothing more: only a read
    // that found the queue empty (EAGAIN, or fewer datagrams than asked)
    // makes an edge-triggered wait safe.
    while (handled < batch && !closed_ && !drained) {
        const std::size_t want = batch - handled;
        const auto r = receive_requests(ctx_.sys, sock_.native_handle(), b, want);
        if (!r.ok()) {
            if (r.err == EAGAIN || r.err == EWOULDBLOCK) drained = true;
            else if (r.err != EINTR) close(std::string("receive failed: ") + errno_name(r.err));
            continue;
        }
        const auto n = static_cast<std::size_t>(r.value);
        handled += static_cast<std::uint32_t>(n);
        // A short batch found the queue empty, as EAGAIN would: the wait
        // below is safe, and one receive call a request is spared. (recvmmsg
        // also stops short at an error it keeps for the next call; on a Unix
        // socket that is the peer's reset, whose own wake-up ends the wait.)
        drained = n < want;
        for (std::size_t i = 0; i < n && !closed_; ++i) {
            const auto& m = b.msgs[i];
            // Zero bytes is end-of-stream once the peer has hung up, and
            // otherwise a zero-length datagram: unframeable, like any short one.
            if (m.msg_len == 0 && peer_hung_up()) {
                close("client closed the connection");
                break;
            }
            const bool truncated = (m.msg_hdr.msg_flags & MSG_TRUNC) || m.msg_len > b.bufs[i].size();
            handle_datagram(proto::ByteView(b.bufs[i].data(), std::min<std::size_t>(m.msg_len, b.bufs[i].size())),
                            truncated, b.attached[i]);
        }
        b.release(n);  // what no request took closes with its batch
    }
    batching_ = false;
    if (closed_) return std::max(handled, 1U);
    flush();
    if (closed_) return std::max(handled, 1U);
    // No back-pressure on reading: a client may send its requests before it
    // reads any reply (PROTOCOL.md section 1). Its turns bound what it costs
    // the others; limits.max_queued_replies bounds what it can make wait.
    if (drained) {
        sock_.async_wait(asio::posix::stream_descriptor::wait_read, [self = shared_from_this()](const error_code& ec) {
            if (ec || self->closed_) return;
            // At once when no other client waits for a turn (the usual case);
            // otherwise behind them.
            self->lane_->run_or_post([self] { return self->closed_ ? 1U : self->read_some(); });
        });
    } else {
        read_later();  // more to read: after the other clients' turns
    }
    return std::max(handled, 1U);
}

bool Session::peer_hung_up() {
    pollfd p{sock_.native_handle(), POLLRDHUP, 0};
    const auto r = ctx_.sys.poll(&p, 1, 0);
    return !r.ok() || (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

namespace {

Error descriptors_refused(int count) {
    return Error{EBADMSG, "requests must not carry descriptors (only a CONNECT with ADOPT carries one); egressd "
                          "closed the " + std::to_string(count) + " it received"};
}

}  // namespace

void Session::handle_datagram(proto::ByteView d, bool truncated, Attached& attached) {
    const auto h = proto::read_header(d);
    if (!h) {
        ctx_.metrics.protocol_error("unframed").Increment();
        ctx_.metrics.client_dropped("unframed").Increment();
        ctx_.log_event(spdlog::level::info, "drop-unframed", "dropped client {}: it sent a datagram of {} bytes that "
                       "cannot be framed", id_, d.size());
        return close("datagram of " + std::to_string(d.size()) +
                     " bytes cannot be framed (shorter than a header or wrong magic)");
    }
    request_start_ = std::chrono::steady_clock::now();
    const auto reply_type = h->type == EGRESS_MSG_CONNECT  ? EGRESS_MSG_CONNECT_REPLY
                            : h->type == EGRESS_MSG_STATUS ? EGRESS_MSG_STATUS_REPLY
                                                           : EGRESS_MSG_ERROR_REPLY;
    if (truncated)
        return reply_error(h->request_id, reply_type,
                           Error{EMSGSIZE, "datagram exceeds the " + std::to_string(EGRESS_MAX_DATAGRAM) +
                                               "-byte limit"},
                           "oversized");
    // Only a well-formed CONNECT may carry a descriptor (adopt mode, decided
    // once its fields are read); anything else is refused as before.
    const auto header_error = proto::check_request_header(*h, d.size());
    if (attached.count && (h->type != EGRESS_MSG_CONNECT || header_error))
        return reply_error(h->request_id, reply_type, descriptors_refused(attached.count), "fd_attached");
    if (header_error) return reply_error(h->request_id, reply_type, *header_error, "header");
    // Every reply carries its request's id: two in flight would be ambiguous.
    if (inflight_.count(h->request_id))
        return reply_error(h->request_id, reply_type,
                           Error{EEXIST, "request id " + std::to_string(h->request_id) + " is already in flight"},
                           "duplicate_id");
    if (draining_) return reply_error(h->request_id, reply_type, Error{ESHUTDOWN, *draining_}, "shutdown");
    if (h->type == EGRESS_MSG_STATUS) return handle_status(h->request_id, d.subspan(EGRESS_HEADER_SIZE));
    if (h->type != EGRESS_MSG_CONNECT)
        return reply_error(h->request_id, EGRESS_MSG_ERROR_REPLY,
                           Error{EOPNOTSUPP, "message type " + std::to_string(h->type) + " is not a request"},
                           "unknown_type");
    handle_connect(h->request_id, d.subspan(EGRESS_HEADER_SIZE), attached);
}

bool Session::admit_adopted(std::uint64_t id, const proto::ConnectRequest& req, const ClientRule& rule,
                            Attached& attached, AdoptedSocket& out) {
    const auto refuse = [&](int code, std::string message, const char* kind) {
        reply_error(id, EGRESS_MSG_CONNECT_REPLY, Error{code, std::move(message)}, kind);
        return false;
    };
    if (attached.count != 1)
        return refuse(EBADMSG, "a CONNECT with ADOPT carries exactly one descriptor, got " +
                                   std::to_string(attached.count) + (attached.count ? "; egressd closed them" : ""),
                      "adopt_descriptors");
    if (req.flags & EGRESS_CONNECT_BLOCKING)
        return refuse(EINVAL, "ADOPT cannot be combined with BLOCKING: egressd never changes a program's file flags",
                      "adopt_flags");
    if (!rule.adopt) {
        deny(id, rule, "adopt", "client rule '" + rule.name + "' does not allow adopt mode (\"adopt\": false)");
        return false;
    }
    auto checked = inspect_adopted(ctx_.sys, attached.fds.front().get(), ctx_.shared.netns_cookie, rule.adopt_other_netns);
    if (!checked) {
        if (checked.error().code == EACCES) {
            deny(id, rule, "adopt", "client rule '" + rule.name + "': " + checked.error().message +
                                        " (a rule may allow it with \"adopt_other_netns\": true)");
            return false;
        }
        return refuse(checked.error().code, checked.error().message, "adopt_socket");
    }
    if (!checked->v6 && req.dest.v6)
        return refuse(EAFNOSUPPORT, "the adopted socket is AF_INET and cannot reach the IPv6 destination " +
                                        endpoint_string(req.dest),
                      "adopt_socket");
    // The socket decides the transport; TRANSPORT, when it says UDP, must agree.
    if (req.transport == Transport::udp && checked->transport != Transport::udp)
        return refuse(EPROTOTYPE, "the request's TRANSPORT is UDP but the adopted socket is a TCP socket",
                      "adopt_socket");
    if (checked->transport == Transport::udp && (req.flags & EGRESS_CONNECT_TCP_NODELAY))
        return refuse(EINVAL, "TCP_NODELAY is a TCP option: it does not apply to the adopted UDP socket",
                      "adopt_flags");
    out = *checked;
    return true;
}

void Session::handle_connect(std::uint64_t id, proto::ByteView payload, Attached& attached) {
    const auto& cfg = *ctx_.now.config;
    auto req = proto::decode_connect(payload);
    if (!req && attached.count)
        return reply_error(id, EGRESS_MSG_CONNECT_REPLY, descriptors_refused(attached.count), "fd_attached");
    if (!req) return reply_error(id, EGRESS_MSG_CONNECT_REPLY, req.error(), "bad_field");
    const bool adopt = req->flags & EGRESS_CONNECT_ADOPT;
    if (attached.count && !adopt)
        return reply_error(id, EGRESS_MSG_CONNECT_REPLY, descriptors_refused(attached.count), "fd_attached");
    // ::ffff:a.b.c.d is the IPv4 address a.b.c.d: judged, routed and connected as IPv4.
    req->dest = unmap_ipv4(req->dest);
    // The rules in force now decide, also for a connection older than them.
    const auto& rule = cfg.clients.rule_for(peer_);
    AdoptedSocket adopted;
    if (adopt && !admit_adopted(id, *req, rule, attached, adopted)) return;
    if (adopt) req->transport = adopted.transport;
    const auto transport = req->transport;
    if (transport == Transport::udp && !rule.udp)
        return deny(id, rule, "transport", "client rule '" + rule.name + "' does not allow UDP (\"udp\": false)",
                    transport);
    // Watched adopted connects count like those awaiting their reply.
    const auto on_connection = inflight_.size() + watches_.size();
    if (on_connection >= cfg.limits.max_inflight_per_client)
        return reply_error(id, EGRESS_MSG_CONNECT_REPLY,
                           Error{EAGAIN, "this connection already has " + std::to_string(on_connection) +
                                             " requests in flight (limits.max_inflight_per_client)"},
                           "client_inflight_limit");
    // Counted from here; a refusal below gives the counts back with the ticket.
    InflightTicket ticket;
    if (!ticket.take_place(ctx_.shared.stats, ctx_.metrics.inflight, cfg.limits.max_inflight))
        return reply_error(id, EGRESS_MSG_CONNECT_REPLY,
                           Error{EAGAIN, "egressd has " + std::to_string(ctx_.shared.stats.inflight.get()) +
                                             " connects in flight (limits.max_inflight)"},
                           "global_inflight_limit");

    auto pools = ctx_.now.pools;  // keeps choice.pool valid across a reload
    if (auto q = quota_.admit_connect(on_connection, rule.name, rule.limits))
        return throttle(id, EGRESS_MSG_CONNECT_REPLY, rule, *q);
    ticket.hold_quota(quota_);
    // More than the maximum is served with the maximum, and the reply says so (report_clamp).
    const bool clamped = req->timeout_ms > cfg.max_timeout_ms;
    const auto ms = req->timeout_ms == 0 ? cfg.default_timeout_ms : clamped ? cfg.max_timeout_ms : req->timeout_ms;
    const std::uint32_t requested = clamped ? req->timeout_ms : 0;
    if (!req->host.empty()) return connect_name(id, *req, rule, std::move(ticket), requested, ms);
    if (const auto d = evaluate(rule, req->dest, *ctx_.host); !d.allowed)
        return deny(id, rule, "destination",
                    endpoint_string(req->dest) + " is denied by client rule '" + rule.name + "': " + d.reason,
                    transport);
    if (const auto& target = pools->pool_name_for(req->pool, req->dest); !rule.may_use_pool(target))
        return deny(id, rule, "pool",
                    "client rule '" + rule.name + "' may not use pool '" + target + "'" +
                        (req->pool.empty() ? " (where the routes send " + endpoint_string(req->dest) + ")" : ""),
                    transport);
    auto choice = pools->choose(req->pool, req->dest, ctx_.random(), transport);
    if (!choice) return reply_error(id, EGRESS_MSG_CONNECT_REPLY, choice.error(), "pool");

    ConnectPlan plan;
    plan.dest = req->dest;
    plan.flags = req->flags;
    plan.transport = transport;
    plan.pool = choice->pool->name;
    plan.policy = choice->pool->policy;
    for (auto i : choice->order) plan.sources.push_back(choice->pool->sources[i]);
    plan.timeout = std::chrono::milliseconds(ms);
    if (clamped) ctx_.metrics.timeout_clamped.Increment();  // served, with the maximum
    const bool port_given = adopted.bound && adopted.bound->port;
    if (adopt) {
        plan.adopted = std::move(attached.fds.front());
        plan.adopted_v6 = adopted.v6;
        // A bound socket cannot change its address: one source at most, and
        // none when the program chose its own.
        if (adopted.bound || plan.sources.size() > 1) plan.sources.resize(adopted.bound ? 0 : 1);
        // A port the program bound is connected as it is; an explicit port
        // egressd bound could not be changed for a retry, so userspace-random
        // becomes the pool's whole range through IP_LOCAL_PORT_RANGE.
        if (port_given) plan.policy.strategy = PortStrategy::kernel_default;
        else if (plan.policy.strategy == PortStrategy::userspace_random) plan.policy.strategy = PortStrategy::kernel_range;
    }
    EGRESS_DEBUG("session {}: request {} CONNECT{} {} {} pool {} timeout {} ms", id_, id, adopt ? " (adopt)" : "",
                 to_string(transport), endpoint_string(plan.dest), plan.pool, ms);

    auto op = std::make_shared<PendingConnect>(ctx_.io, ctx_.sys, ctx_.random, std::move(plan), lane_);
    ticket.hold_pool(*choice->pool);
    if (adopt) {
        inflight_.emplace(id, InFlight{op, nullptr, pools, std::move(ticket), requested, ms});
        // The watch may outlive this connection: it holds the session.
        const auto watch = next_watch_++;
        const void* tag = op.get();
        ctx_.adopt_watches.emplace(tag, op);
        op->start(
            [self = shared_from_this(), id, watch, tag, pools, c = *choice, dest = req->dest, port_given](
                ConnectOutcome out) { self->on_adopt_done(id, watch, tag, *pools, c, dest, port_given, std::move(out)); },
            [self = shared_from_this(), id, watch, ms](ConnectOutcome out) {
                self->on_adopt_in_progress(id, watch, ms, std::move(out));
            });
        return;
    }
    inflight_.emplace(id, InFlight{op, nullptr, std::move(pools), std::move(ticket), requested, ms, std::move(*choice), req->dest,
                                   request_start_});
    // `this` and the id fit in std::function's own storage: no allocation.
    // The session outlives the call: its destructor and close() cancel it.
    op->start([this, id](ConnectOutcome out) { on_connect_done(id, std::move(out)); });
}

void Session::on_adopt_in_progress(std::uint64_t id, std::uint64_t watch, std::uint32_t timeout_ms,
                                   ConnectOutcome out) {
    auto it = inflight_.find(id);
    if (it == inflight_.end()) return;  // cannot happen: this runs inside start()
    const auto& pool = it->second.ticket.pool()->name;
    proto::ConnectReply rep;
    rep.status = EINPROGRESS;
    rep.error_name = errno_name(EINPROGRESS);
    rep.message = errno_text(EINPROGRESS) + ": " + out.message +
                  "; wait for it to become writable, then read SO_ERROR";
    rep.local = out.local;
    rep.pool = pool;
    rep.attempts = out.attempts;
    rep.connect_us = out.connect_us;
    rep.timeout_ms = timeout_ms;
    // The id is free once the reply has gone; the watch keeps the counts.
    watches_.emplace(watch, std::move(it->second));
    inflight_.erase(it);
    ctx_.metrics.request_duration.observe(
        ctx_.index, std::chrono::duration<double>(std::chrono::steady_clock::now() - request_start_).count());
    EGRESS_DEBUG("session {}: request {} -> EINPROGRESS (adopted socket, watched)", id_, id);
    queue(id, proto::encode_connect_reply(id, rep, false));
}

void Session::on_adopt_done(std::uint64_t id, std::uint64_t watch, const void* op, PoolSet& pools,
                            const Choice& choice, const Endpoint& dest, bool port_given, ConnectOutcome out) {
    ctx_.adopt_watches.erase(op);
    UniqueFd copy = std::move(out.fd);  // egressd's copy of the program's socket: closes on return
    if (port_given) out.parity_switch = false;  // the program chose the port: no search to judge
    record_connect(pools, choice, dest, out);
    ctx_.metrics.adopted(out.err);
    if (auto w = watches_.find(watch); w != watches_.end()) {
        // The reply (EINPROGRESS) went long ago: only the figures are left.
        watches_.erase(w);
        EGRESS_DEBUG("session {}: adopted connect {} ended: {}", id_, watch,
                     out.err == 0 ? "ok" : out.err < 0 ? "failed" : errno_name(out.err));
        if (closed_ && watches_.empty()) quota_.release();
        return;
    }
    auto f = inflight_.find(id);
    if (f == inflight_.end()) return;
    const auto requested = f->second.timeout_requested, applied = f->second.timeout_ms;
    inflight_.erase(f);
    proto::ConnectReply rep;
    rep.status = static_cast<std::uint32_t>(out.err);
    if (out.err) {
        rep.error_name = errno_name(out.err);
        rep.message = errno_text(out.err) + ": " + out.message;
    } else {
        rep.remote = out.remote;
    }
    rep.local = out.local;
    rep.pool = choice.pool->name;
    rep.attempts = out.attempts;
    rep.connect_us = out.connect_us;
    report_clamp(rep, requested, applied);
    ctx_.metrics.request_duration.observe(
        ctx_.index, std::chrono::duration<double>(std::chrono::steady_clock::now() - request_start_).count());
    queue(id, proto::encode_connect_reply(id, rep, false));
}

void Session::record_connect(PoolSet& pools, const Choice& choice, const Endpoint& dest, const ConnectOutcome& out) {
    auto& pool = *choice.pool;
    const bool has_source = out.source.has_value();
    const std::size_t source = has_source ? choice.order[*out.source] : 0;
    auto* figures = has_source ? pool.source_metrics.at(source) : pool.kernel_metrics;
    figures->connect_done(ctx_.index, out.transport, out.err, out.local && (out.local->port & 1), out.parity_switch,
                          out.window_retries, static_cast<double>(out.connect_us) / 1e6);
    if (!out.err && has_source) pools.record_success(pool, source, dest, out.transport);
    if (out.err == EADDRNOTAVAIL)
        ctx_.log_event(spdlog::level::warn, "exhausted/" + pool.name, "pool {}: no free source port toward {} ({})",
                       pool.name, endpoint_string(dest), out.message);
}

void Session::handle_status(std::uint64_t id, proto::ByteView payload) {
    if (auto e = proto::decode_status(payload)) return reply_error(id, EGRESS_MSG_STATUS_REPLY, *e, "bad_field");
    const auto& rule = ctx_.now.config->clients.rule_for(peer_);
    if (auto q = quota_.admit_request(rule.name, rule.limits)) return throttle(id, EGRESS_MSG_STATUS_REPLY, rule, *q);
    proto::StatusReply rep;
    rep.json = status_document(ctx_).dump();
    if (rep.json.size() + 1024 > EGRESS_MAX_STATUS_REPLY)
        return reply_error(id, EGRESS_MSG_STATUS_REPLY,
                           Error{EMSGSIZE, "the status document (" + std::to_string(rep.json.size()) +
                                               " bytes) exceeds the protocol's limit"},
                           "status_too_large");
    queue(id, proto::encode_status_reply(id, rep));
}

void Session::on_connect_done(std::uint64_t id, ConnectOutcome out) {
    const auto f = inflight_.find(id);
    if (f == inflight_.end()) return;  // cannot happen: close() cancels, and a cancelled connect does not call
    const auto pools = std::move(f->second.pools);  // keeps choice.pool valid to the end
    const auto choice = std::move(f->second.choice);
    const auto dest = f->second.dest;
    const auto t0 = f->second.started;
    const auto requested = f->second.timeout_requested, applied = f->second.timeout_ms;
    inflight_.erase(f);  // the ticket gives its counts back before the reply
    auto& pool = *choice.pool;
    record_connect(*pools, choice, dest, out);
    proto::ConnectReply rep;
    rep.status = static_cast<std::uint32_t>(out.err);
    if (out.err) {
        rep.error_name = errno_name(out.err);
        rep.message = errno_text(out.err) + ": " + out.message;
    }
    rep.local = out.local;
    rep.remote = out.remote;
    rep.pool = pool.name;
    rep.attempts = out.attempts;
    rep.connect_us = out.connect_us;
    report_clamp(rep, requested, applied);
    EGRESS_DEBUG("session {}: request {} -> {} in {} us, {} attempts", id_, id, out.err ? errno_name(out.err) : "ok",
                 out.connect_us, out.attempts);
    // Metrics before the reply: a client that has its reply sees them counted.
    ctx_.metrics.request_duration.observe(
        ctx_.index, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    const bool with_fd = static_cast<bool>(out.fd);
    auto bytes = ctx_.reply_buffer();
    proto::encode_connect_reply(bytes, id, rep, with_fd);
    queue(id, std::move(bytes), std::move(out.fd));
}

void Session::reply_error(std::uint64_t id, std::uint8_t type, const Error& e, const char* kind) {
    ctx_.metrics.protocol_error(kind).Increment();
    ctx_.metrics.request_duration.observe(
        ctx_.index, std::chrono::duration<double>(std::chrono::steady_clock::now() - request_start_).count());
    EGRESS_DEBUG("session {}: request {} refused: {}: {}", id_, id, errno_name(e.code), e.message);
    const auto code = static_cast<std::uint32_t>(e.code);
    if (type == EGRESS_MSG_CONNECT_REPLY) {
        proto::ConnectReply rep;
        rep.status = code;
        rep.error_name = errno_name(e.code);
        rep.message = e.message;
        return queue(id, proto::encode_connect_reply(id, rep, false));
    }
    if (type == EGRESS_MSG_STATUS_REPLY)
        return queue(id, proto::encode_status_reply(id, proto::StatusReply{code, errno_name(e.code), e.message, ""}));
    queue(id, proto::encode_error_reply(id, proto::ErrorReply{code, errno_name(e.code), e.message}));
}

void Session::deny(std::uint64_t id, const ClientRule& rule, const char* reason, const std::string& message,
                   Transport transport) {
    ctx_.metrics.policy_denied(rule.name, reason, transport);
    ctx_.log_event(spdlog::level::info, "denied/" + rule.name, "denied a request of client {} (uid {}, gid {}, pid {}): {}",
                   id_, peer_.uid, peer_.gid, peer_.pid, message);
    reply_error(id, EGRESS_MSG_CONNECT_REPLY, Error{EACCES, message}, "policy");
}

void Session::throttle(std::uint64_t id, std::uint8_t type, const ClientRule& rule, const QuotaRefusal& q) {
    ctx_.metrics.quota_refused(rule.name, q.limit);
    ctx_.log_event(spdlog::level::info, "quota/" + rule.name,
                   "refused a request of client {} (uid {}, gid {}, pid {}): {}", id_, peer_.uid, peer_.gid, peer_.pid,
                   q.message);
    reply_error(id, type, Error{EAGAIN, q.message}, "quota");
}

void Session::queue(std::uint64_t id, proto::Bytes bytes, UniqueFd fd) {
    if (closed_) return;  // the fd, if any, closes here
    out_.push_back(OutMsg{id, std::move(bytes), std::move(fd)});
    if (drop_if_not_reading()) return;
    if (!write_waiting_ && !batching_) flush();
}

bool Session::drop_if_not_reading() {
    // Only replies the kernel has refused count: a burst of replies to a
    // client that reads them is never a reason to drop it.
    if (!write_waiting_ || out_.size() <= ctx_.now.config->limits.max_queued_replies) return false;
    ctx_.metrics.client_dropped("reply_queue_full").Increment();
    ctx_.log_event(spdlog::level::info, "drop-queue", "dropped client {}: it does not read its replies ({} queued)",
                   id_, out_.size());
    close("client does not read its replies (limits.max_queued_replies reached)");
    return true;
}

void Session::flush() {
    auto& b = ctx_.send_batch;
    while (!out_.empty() && !closed_) {
        const auto n = std::min(out_.size(), SendBatch::kSize);
        for (std::size_t i = 0; i < n; ++i) attach_reply(b, i, out_[i].bytes, out_[i].fd ? out_[i].fd.get() : -1);
        const auto r = ctx_.sys.sendmmsg(sock_.native_handle(), b.msgs.data(), static_cast<unsigned>(n),
                                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r.ok()) {
            for (long k = 0; k < r.value; ++k) {
                if (out_.front().fd) ctx_.metrics.handoffs.Increment();
                ctx_.reuse(std::move(out_.front().bytes));
                out_.pop_front();  // closes egressd's copy of a handed-off socket
            }
            continue;
        }
        // The first message failed.
        if (r.err == EINTR) continue;
        if (r.err == EAGAIN || r.err == EWOULDBLOCK) {
            write_waiting_ = true;
            if (drop_if_not_reading()) return;
            sock_.async_wait(asio::posix::stream_descriptor::wait_write,
                             [self = shared_from_this()](const error_code& ec) {
                                 if (ec || self->closed_) return;
                                 self->lane_->run_or_post([self] {
                                     self->write_waiting_ = false;
                                     if (!self->closed_) self->flush();
                                     return 1U;
                                 });
                             });
            return;
        }
        auto& m = out_.front();
        if (r.err == ETOOMANYREFS && m.fd) {
            // The client holds too many undelivered descriptors: say so instead.
            proto::ConnectReply rep;
            rep.status = ETOOMANYREFS;
            rep.error_name = errno_name(ETOOMANYREFS);
            rep.message = "the connected socket could not be passed: too many descriptors in flight to this client";
            m.bytes = proto::encode_connect_reply(m.request_id, rep, false);
            m.fd.reset();
            ctx_.metrics.handoffs_refused.Increment();
            continue;
        }
        return close(std::string("send failed: ") + errno_name(r.err));
    }
}

void Session::cancel_inflight(InFlight& f) {
    if (f.named) {
        f.named->cancel();
        ctx_.metrics.names.request("cancelled").Increment();
        return;
    }
    f.op->cancel();
    ctx_.metrics.cancelled(f.ticket.pool()->name).Increment();
}

void Session::drain(std::string why) { draining_ = std::move(why); }

void Session::abort_inflight(const std::string& why) {
    if (closed_) return;
    auto cancelled = std::exchange(inflight_, {});
    batching_ = true;  // one flush for all the replies, below
    for (auto& [rid, f] : cancelled) {
        cancel_inflight(f);  // its completion never runs: this is its reply
        f.ticket.release();
        reply_error(rid, EGRESS_MSG_CONNECT_REPLY, Error{ESHUTDOWN, why}, "shutdown");
    }
    batching_ = false;
    if (!write_waiting_) flush();
}

void Session::close(const std::string& why) {
    if (closed_) return;
    closed_ = true;
    auto self = shared_from_this();  // outlive the registry's erase below
    EGRESS_DEBUG("session {}: closing: {} ({} in flight cancelled)", id_, why, inflight_.size());
    for (auto& [rid, f] : inflight_) cancel_inflight(f);
    inflight_.clear();  // the tickets give their counts back
    lane_->clear();  // queued work holds the session: let it go
    // With this connection's requests in flight; watched adopted connects
    // keep the share until the last one ends (on_adopt_done).
    if (watches_.empty()) quota_.release();
    out_.clear();
    error_code ignored;
    sock_.close(ignored);
    ctx_.metrics.clients.Decrement();
    if (on_closed_) std::exchange(on_closed_, nullptr)(this);
}

}  // namespace egress
