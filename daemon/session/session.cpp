#include "session.hpp"

#include "handoff/handoff.hpp"
#include "status/status.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <array>
#include <cstring>

namespace egress {
namespace {

// Requests read in one turn of the client's lane: few, so that a client with
// a long queue of requests delays the others by little.
constexpr unsigned kReadBatch = RecvBatch::kSize;

std::uint64_t next_session_id = 1;

}  // namespace

Session::Session(BrokerContext& ctx, UniqueFd client, Credentials peer, QuotaTable::Slot quota, Closed on_closed)
    : ctx_(ctx), lane_(ctx.turns.lane()), sock_(ctx.io), on_closed_(std::move(on_closed)), id_(next_session_id++),
      peer_(std::move(peer)), quota_(std::move(quota)) {
    sock_.assign(client.release());
}

Session::~Session() = default;

void Session::start() {
    ++ctx_.stats.clients_connected;
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
    batching_ = true;  // replies made meanwhile go out together, below
    // Until the batch is full or the socket has nothing more: only a read
    // that found nothing makes an edge-triggered wait safe.
    while (handled < kReadBatch && !closed_ && !drained) {
        b.prepare();
        const auto r = ctx_.sys.recvmmsg(sock_.native_handle(), b.msgs.data(), kReadBatch - handled,
                                         MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
        if (!r.ok()) {
            if (r.err == EAGAIN || r.err == EWOULDBLOCK) drained = true;
            else if (r.err != EINTR) close(std::string("receive failed: ") + errno_name(r.err));
            continue;
        }
        const auto n = static_cast<std::size_t>(r.value);
        handled += static_cast<std::uint32_t>(n);
        // Close every descriptor a client attached, in every datagram read,
        // before anything can end the session: egressd never keeps one.
        std::array<int, RecvBatch::kSize> fds{};
        for (std::size_t i = 0; i < n; ++i) fds[i] = close_attached_fds(b.msgs[i].msg_hdr);
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
                            truncated, fds[i]);
        }
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
            if (!ec && !self->closed_) self->read_later();
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

int Session::close_attached_fds(msghdr& msg) {
    int fds = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const auto n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t k = 0; k < n; ++k) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof fd);
            UniqueFd closer(fd);
            ++fds;
        }
    }
    if (msg.msg_flags & MSG_CTRUNC) ++fds;  // the kernel closed what did not fit
    return fds;
}

void Session::handle_datagram(proto::ByteView d, bool truncated, int fds_received) {
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
    if (fds_received)
        return reply_error(h->request_id, reply_type,
                           Error{EBADMSG, "requests must not carry descriptors; egressd closed the " +
                                              std::to_string(fds_received) + " it received"},
                           "fd_attached");
    if (auto e = proto::check_request_header(*h, d.size())) return reply_error(h->request_id, reply_type, *e, "header");
    // Every reply carries its request's id: two in flight would be ambiguous.
    if (inflight_.count(h->request_id))
        return reply_error(h->request_id, reply_type,
                           Error{EEXIST, "request id " + std::to_string(h->request_id) + " is already in flight"},
                           "duplicate_id");
    if (h->type == EGRESS_MSG_STATUS) return handle_status(h->request_id, d.subspan(EGRESS_HEADER_SIZE));
    if (h->type != EGRESS_MSG_CONNECT)
        return reply_error(h->request_id, EGRESS_MSG_ERROR_REPLY,
                           Error{EOPNOTSUPP, "message type " + std::to_string(h->type) + " is not a request"},
                           "unknown_type");
    handle_connect(h->request_id, d.subspan(EGRESS_HEADER_SIZE));
}

void Session::handle_connect(std::uint64_t id, proto::ByteView payload) {
    const auto& cfg = *ctx_.config;
    auto req = proto::decode_connect(payload);
    if (!req) return reply_error(id, EGRESS_MSG_CONNECT_REPLY, req.error(), "bad_field");
    // ::ffff:a.b.c.d is the IPv4 address a.b.c.d: judged, routed and connected as IPv4.
    req->dest = unmap_ipv4(req->dest);
    if (inflight_.size() >= cfg.limits.max_inflight_per_client)
        return reply_error(id, EGRESS_MSG_CONNECT_REPLY,
                           Error{EAGAIN, "this connection already has " + std::to_string(inflight_.size()) +
                                             " requests in flight (limits.max_inflight_per_client)"},
                           "client_inflight_limit");
    if (ctx_.stats.inflight >= cfg.limits.max_inflight)
        return reply_error(id, EGRESS_MSG_CONNECT_REPLY,
                           Error{EAGAIN, "egressd has " + std::to_string(ctx_.stats.inflight) +
                                             " connects in flight (limits.max_inflight)"},
                           "global_inflight_limit");

    auto pools = ctx_.pools;  // keeps choice.pool valid across a reload
    // The rules in force now decide, also for a connection older than them.
    const auto& rule = cfg.clients.rule_for(peer_);
    if (auto q = quota_.admit_connect(inflight_.size(), rule.name, rule.limits))
        return throttle(id, EGRESS_MSG_CONNECT_REPLY, rule, *q);
    if (const auto d = evaluate(rule, req->dest, *ctx_.host); !d.allowed)
        return deny(id, rule, "destination", endpoint_string(req->dest) + " is denied by client rule '" + rule.name +
                                                 "': " + d.reason);
    if (const auto& target = pools->pool_name_for(req->pool, req->dest); !rule.may_use_pool(target))
        return deny(id, rule, "pool", "client rule '" + rule.name + "' may not use pool '" + target + "'" +
                                          (req->pool.empty() ? " (where the routes send " +
                                                                   endpoint_string(req->dest) + ")"
                                                             : ""));
    auto choice = pools->choose(req->pool, req->dest, ctx_.random());
    if (!choice) return reply_error(id, EGRESS_MSG_CONNECT_REPLY, choice.error(), "pool");

    ConnectPlan plan;
    plan.dest = req->dest;
    plan.flags = req->flags;
    plan.pool = choice->pool->name;
    plan.policy = choice->pool->policy;
    for (auto i : choice->order) plan.sources.push_back(choice->pool->sources[i]);
    const auto ms = req->timeout_ms == 0 ? cfg.default_timeout_ms : std::min(req->timeout_ms, cfg.max_timeout_ms);
    plan.timeout = std::chrono::milliseconds(ms);
    SPDLOG_DEBUG("session {}: request {} CONNECT {} pool {} timeout {} ms", id_, id, endpoint_string(plan.dest),
                 plan.pool, ms);

    auto op = std::make_shared<PendingConnect>(ctx_.io, ctx_.sys, ctx_.random, std::move(plan), lane_);
    inflight_.emplace(id, InFlight{op, pools, choice->pool});
    quota_.started();
    ++choice->pool->inflight;
    ++ctx_.stats.inflight;
    ctx_.metrics.inflight.Increment();
    op->start([weak = weak_from_this(), id, pools, c = *choice, dest = req->dest, t0 = request_start_](
                  ConnectOutcome out) {
        if (auto self = weak.lock()) self->on_connect_done(id, *pools, c, dest, t0, std::move(out));
    });
}

void Session::handle_status(std::uint64_t id, proto::ByteView payload) {
    if (auto e = proto::decode_status(payload)) return reply_error(id, EGRESS_MSG_STATUS_REPLY, *e, "bad_field");
    const auto& rule = ctx_.config->clients.rule_for(peer_);
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

void Session::on_connect_done(std::uint64_t id, PoolSet& pools, const Choice& choice, const Endpoint& dest,
                              std::chrono::steady_clock::time_point t0, ConnectOutcome out) {
    if (inflight_.erase(id)) {
        quota_.finished();
        --choice.pool->inflight;
        --ctx_.stats.inflight;
        ctx_.metrics.inflight.Decrement();
    }
    auto& pool = *choice.pool;
    const bool has_source = out.source.has_value();
    const std::size_t source = has_source ? choice.order[*out.source] : 0;
    auto* figures = has_source ? pool.source_metrics.at(source) : pool.kernel_metrics;
    figures->connect_done(out.err, out.local && (out.local->port & 1), out.parity_switch, out.window_retries,
                          static_cast<double>(out.connect_us) / 1e6);
    if (!out.err && has_source) pools.record_success(pool, source, dest);
    if (out.err == EADDRNOTAVAIL)
        ctx_.log_event(spdlog::level::warn, "exhausted/" + pool.name, "pool {}: no free source port toward {} ({})",
                       pool.name, endpoint_string(dest), out.message);
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
    SPDLOG_DEBUG("session {}: request {} -> {} in {} us, {} attempts", id_, id, out.err ? errno_name(out.err) : "ok",
                 out.connect_us, out.attempts);
    // Metrics before the reply: a client that has its reply sees them counted.
    ctx_.metrics.request_duration.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    const bool with_fd = static_cast<bool>(out.fd);
    queue(id, proto::encode_connect_reply(id, rep, with_fd), std::move(out.fd));
}

void Session::reply_error(std::uint64_t id, std::uint8_t type, const Error& e, const char* kind) {
    ctx_.metrics.protocol_error(kind).Increment();
    ctx_.metrics.request_duration.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - request_start_).count());
    SPDLOG_DEBUG("session {}: request {} refused: {}: {}", id_, id, errno_name(e.code), e.message);
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

void Session::deny(std::uint64_t id, const ClientRule& rule, const char* reason, const std::string& message) {
    ctx_.metrics.policy_denied(rule.name, reason);
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
    if (!write_waiting_ || out_.size() <= ctx_.config->limits.max_queued_replies) return false;
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
                                 self->lane_->post([self] {
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
            continue;
        }
        return close(std::string("send failed: ") + errno_name(r.err));
    }
}

void Session::close(const std::string& why) {
    if (closed_) return;
    closed_ = true;
    auto self = shared_from_this();  // outlive the registry's erase below
    SPDLOG_DEBUG("session {}: closing: {} ({} in flight cancelled)", id_, why, inflight_.size());
    for (auto& [rid, f] : inflight_) {
        f.op->cancel();
        --f.pool->inflight;
        ctx_.metrics.cancelled(f.pool->name).Increment();
        --ctx_.stats.inflight;
        ctx_.metrics.inflight.Decrement();
    }
    inflight_.clear();
    lane_->clear();  // queued work holds the session: let it go
    quota_.release();  // with this connection's requests in flight
    out_.clear();
    error_code ignored;
    sock_.close(ignored);
    --ctx_.stats.clients_connected;
    ctx_.metrics.clients.Decrement();
    if (on_closed_) std::exchange(on_closed_, nullptr)(this);
}

}  // namespace egress
