// One client connection: reads request datagrams, starts connects, writes
// replies (with the connected descriptor) in completion order.
//
// Every piece of its work runs on its loop's thread, as a task of its own
// FairQueue lane, so that a busy client gets its turn and no more.
//
// Ownership: the listener's registry, in-flight handlers and queued tasks
// hold the session through shared_ptr; in-flight connects reach it only
// through weak_ptr. An adopted connect holds it through shared_ptr until it
// ends (the watch outlives the client's connection: see watches_).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "codec.hpp"
#include "connector/adopt.hpp"
#include "connector/connector.hpp"
#include "connector/name_connect.hpp"
#include "broker/loop.hpp"
#include "session/inflight.hpp"
#include "unique_fd.hpp"

namespace egress {

class Session : public std::enable_shared_from_this<Session> {
public:
    using Closed = std::function<void(Session*)>;

    // Takes ownership of the accepted client descriptor; `peer` is who is at
    // its other end (SO_PEERCRED), which picks the client rule of each request;
    // `quota` counts this connection and its requests for the peer's uid.
    Session(LoopContext& ctx, UniqueFd client, Credentials peer, QuotaTable::Slot quota, Closed on_closed);
    ~Session();

    void start();
    // Cancels in-flight connects, closes every descriptor it holds, and tells
    // the listener. Safe to call more than once.
    void close(const std::string& why);

    // Shutdown: from now on every request gets an ESHUTDOWN reply that says
    // `why`; the connects in flight go on to their replies.
    void drain(std::string why);
    // The drain is out of time: every connect in flight is cancelled and
    // answered with ESHUTDOWN, `why` as its message.
    void abort_inflight(const std::string& why);
    // Closed, or nothing in flight and no reply waiting to be sent: the
    // drain is done with this client. Watched adopted connects do not count
    // (their replies have gone).
    bool idle() const { return closed_ || (inflight_.empty() && out_.empty()); }
    std::size_t inflight() const { return inflight_.size(); }

    std::uint64_t id() const { return id_; }

private:
    struct OutMsg {
        std::uint64_t request_id;
        proto::Bytes bytes;
        UniqueFd fd;  // attached with SCM_RIGHTS when set
    };

    // Reads and handles up to one batch of requests; returns how many.
    std::uint32_t read_some();
    // The next read_some, in this client's turn.
    void read_later();
    // The client has closed its socket or shut down its write side.
    bool peer_hung_up();
    // The descriptors one datagram carried, owned until its request is
    // decoded: adopt mode takes the one it needs, the rest close with this.
    using Attached = AttachedFds;
    void handle_datagram(proto::ByteView d, bool truncated, Attached& attached);
    void handle_connect(std::uint64_t id, proto::ByteView payload, Attached& attached);
    // Adopt mode's checks on the request, the rule and the socket (PROTOCOL.md
    // section 6a); false when a refusal has been sent.
    bool admit_adopted(std::uint64_t id, const proto::ConnectRequest& req, const ClientRule& rule, Attached& attached,
                       AdoptedSocket& out);
    void on_adopt_in_progress(std::uint64_t id, std::uint64_t watch, std::uint32_t timeout_ms, ConnectOutcome out);
    void on_adopt_done(std::uint64_t id, std::uint64_t watch, const void* op, PoolSet& pools, const Choice& choice,
                       const Endpoint& dest, bool port_given, ConnectOutcome out);
    // Records a finished connect in the pool's and source's figures.
    void record_connect(PoolSet& pools, const Choice& choice, const Endpoint& dest, const ConnectOutcome& out);
    void handle_status(std::uint64_t id, proto::ByteView payload);
    void on_connect_done(std::uint64_t id, ConnectOutcome out);
    // A CONNECT to a host name (name_request.cpp), past the checks every
    // request passes: the name's policy, its lookups and attempts.
    void connect_name(std::uint64_t id, const proto::ConnectRequest& req, const ClientRule& rule,
                      InflightTicket ticket, std::uint32_t requested, std::uint32_t ms);
    void on_name_done(std::uint64_t id, NameOutcome out);
    void reply_error(std::uint64_t id, std::uint8_t type, const Error& e, const char* kind);
    // Refuses a CONNECT with EACCES on behalf of `rule`; `reason`: destination, pool, adopt or transport.
    void deny(std::uint64_t id, const ClientRule& rule, const char* reason, const std::string& message,
              Transport transport = Transport::tcp);
    // Refuses a request with EAGAIN at one of `rule`'s limits.
    void throttle(std::uint64_t id, std::uint8_t type, const ClientRule& rule, const QuotaRefusal& q);
    void queue(std::uint64_t id, proto::Bytes bytes, UniqueFd fd = {});
    void flush();
    // Past limits.max_queued_replies replies the kernel will not take: drop.
    bool drop_if_not_reading();

    LoopContext& ctx_;
    std::shared_ptr<FairQueue::Lane> lane_;
    asio::posix::stream_descriptor sock_;
    Closed on_closed_;
    std::uint64_t id_;
    Credentials peer_;
    QuotaTable::Slot quota_;
    struct InFlight {
        std::shared_ptr<PendingConnect> op;  // an address request
        std::shared_ptr<NameConnect> named;  // or a host-name request
        // `pools` keeps the ticket's pool (and choice.pool) valid across a
        // reload: this entry may hold the last reference to the old PoolSet.
        // Declared before the ticket, it goes after it.
        std::shared_ptr<PoolSet> pools;
        InflightTicket ticket;
        // The request's TIMEOUT_MS when above connect.max_timeout_ms, else 0;
        // then `timeout_ms` (the maximum) was applied and the reply says so.
        std::uint32_t timeout_requested = 0;
        std::uint32_t timeout_ms = 0;
        // For the reply and the figures (not kept for adopted connects,
        // whose handlers carry them).
        Choice choice;
        Endpoint dest;
        std::chrono::steady_clock::time_point started;
        Transport transport = Transport::tcp;
    };
    // Cancels what an entry has under way (its completion never runs) and counts it.
    void cancel_inflight(InFlight& f);
    std::unordered_map<std::uint64_t, InFlight> inflight_;
    // Adopted connects whose reply (EINPROGRESS) has gone: egressd watches
    // them only for the metrics, under a key of their own since the request
    // id is free again. They count against max_inflight and the quotas, and
    // go on after the client closes its connection (its quota share is then
    // released when the last one ends).
    std::unordered_map<std::uint64_t, InFlight> watches_;
    std::uint64_t next_watch_ = 1;
    std::deque<OutMsg> out_;
    bool write_waiting_ = false;  // the kernel took no more replies: waiting to write
    bool batching_ = false;  // inside read_some: replies wait for one flush
    std::chrono::steady_clock::time_point request_start_;  // of the datagram being handled
    bool closed_ = false;
    std::optional<std::string> draining_;  // set by drain(): the ESHUTDOWN message
};

}  // namespace egress
