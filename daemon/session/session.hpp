// One client connection: reads request datagrams, starts connects, writes
// replies (with the connected descriptor) in completion order.
//
// Every piece of its work runs as a task of its own FairQueue lane, so that
// a busy client gets its turn and no more.
//
// Ownership: the listener's registry, in-flight handlers and queued tasks
// hold the session through shared_ptr; in-flight connects reach it only
// through weak_ptr.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "codec.hpp"
#include "connector/connector.hpp"
#include "session/context.hpp"
#include "unique_fd.hpp"

namespace egress {

class Session : public std::enable_shared_from_this<Session> {
public:
    using Closed = std::function<void(Session*)>;

    // Takes ownership of the accepted client descriptor; `peer` is who is at
    // its other end (SO_PEERCRED), which picks the client rule of each request;
    // `quota` counts this connection and its requests for the peer's uid.
    Session(BrokerContext& ctx, UniqueFd client, Credentials peer, QuotaTable::Slot quota, Closed on_closed);
    ~Session();

    void start();
    // Cancels in-flight connects, closes every descriptor it holds, and tells
    // the listener. Safe to call more than once.
    void close(const std::string& why);

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
    // Closes the descriptors attached to a received datagram; returns how many.
    static int close_attached_fds(msghdr& msg);
    void handle_datagram(proto::ByteView d, bool truncated, int fds_received);
    void handle_connect(std::uint64_t id, proto::ByteView payload);
    void handle_status(std::uint64_t id, proto::ByteView payload);
    void on_connect_done(std::uint64_t id, PoolSet& pools, const Choice& choice, const Endpoint& dest,
                         std::chrono::steady_clock::time_point t0, ConnectOutcome out);
    void reply_error(std::uint64_t id, std::uint8_t type, const Error& e, const char* kind);
    // Refuses a CONNECT with EACCES on behalf of `rule`; `reason`: destination or pool.
    void deny(std::uint64_t id, const ClientRule& rule, const char* reason, const std::string& message);
    // Refuses a request with EAGAIN at one of `rule`'s limits.
    void throttle(std::uint64_t id, std::uint8_t type, const ClientRule& rule, const QuotaRefusal& q);
    void queue(std::uint64_t id, proto::Bytes bytes, UniqueFd fd = {});
    void flush();
    // Past limits.max_queued_replies replies the kernel will not take: drop.
    bool drop_if_not_reading();

    BrokerContext& ctx_;
    std::shared_ptr<FairQueue::Lane> lane_;
    asio::posix::stream_descriptor sock_;
    Closed on_closed_;
    std::uint64_t id_;
    Credentials peer_;
    QuotaTable::Slot quota_;
    struct InFlight {
        std::shared_ptr<PendingConnect> op;
        // `pools` keeps `pool` valid: after a reload, cancelling `op` may drop
        // the completion handler's reference, the last one to the old PoolSet.
        std::shared_ptr<PoolSet> pools;
        Pool* pool;
    };
    std::unordered_map<std::uint64_t, InFlight> inflight_;
    std::deque<OutMsg> out_;
    bool write_waiting_ = false;  // the kernel took no more replies: waiting to write
    bool batching_ = false;  // inside read_some: replies wait for one flush
    std::chrono::steady_clock::time_point request_start_;  // of the datagram being handled
    bool closed_ = false;
};

}  // namespace egress
