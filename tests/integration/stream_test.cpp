// A bounded stream of random and mutated requests from many clients at once
// against a live egressd. Afterwards: the daemon is alive, its descriptor
// count is back to idle, and every well-formed request was answered exactly
// once, with the outcome its destination dictates.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <random>
#include <thread>

#include "harness.hpp"

namespace egress::test {
namespace {

constexpr int kClients = 6;
constexpr auto kDuration = std::chrono::seconds(20);
constexpr std::size_t kMaxOutstanding = 64;  // per well-behaved connection
constexpr auto kReplyBound = std::chrono::seconds(5);

struct Targets {
    Endpoint echo, refused, black_hole;
};

// What a request on the checked connection must get back: a status, or
// (for a mutated request) any reply at all.
struct Expect {
    const char* what;
    std::optional<std::uint32_t> status;
};

struct Tally {
    long well_formed = 0, mutated = 0, garbage = 0, drops = 0, vanished = 0;
    std::vector<std::string> failures;
};

proto::Bytes connect_request(std::uint64_t id, const Endpoint& dest, std::uint32_t timeout_ms) {
    proto::ConnectRequest req;
    req.dest = dest;
    req.timeout_ms = timeout_ms;
    return proto::encode_connect(id, req);
}

class StreamClient {
public:
    StreamClient(const std::string& socket, const Targets& t, unsigned seed)
        : socket_(socket), t_(t), rng_(seed), good_(raw_connect(socket)), bad_(raw_connect(socket)) {
        if (::pipe(pipe_) != 0) fail("pipe failed");
    }
    ~StreamClient() {
        ::close(pipe_[0]);
        ::close(pipe_[1]);
    }

    Tally run(std::chrono::steady_clock::time_point until) {
        while (std::chrono::steady_clock::now() < until && tally_.failures.size() < 10) {
            const auto pick = rng_() % 100;
            if (pick < 40) well_formed();
            else if (pick < 60) mutated();
            else if (pick < 85) garbage();
            else if (pick < 90) vanish();
            else while (collect(std::chrono::milliseconds(0))) {}
            while (outstanding_.size() >= kMaxOutstanding && collect(kReplyBound)) {}
            if (outstanding_.size() >= kMaxOutstanding) return fail("no reply within 5 s"), std::move(tally_);
        }
        const auto t0 = std::chrono::steady_clock::now();
        while (!outstanding_.empty() && ms_since(t0) < 10000 && collect(kReplyBound)) {}
        for (const auto& [id, e] : outstanding_)
            fail("request " + std::to_string(id) + " (" + e.what + ") was never answered");
        return std::move(tally_);
    }

private:
    void fail(const std::string& what) { tally_.failures.push_back(what); }

    void send_checked(std::uint64_t id, const proto::Bytes& bytes, Expect e) {
        if (!send_datagram(good_.get(), bytes)) return fail(std::string("send failed: ") + std::strerror(errno));
        outstanding_.emplace(id, e);
    }

    // A request that must get exactly its outcome.
    void well_formed() {
        ++tally_.well_formed;
        const auto id = next_id_++;
        switch (rng_() % 4) {
        case 0: return send_checked(id, connect_request(id, t_.echo, 0), {"echo", 0});
        case 1: return send_checked(id, connect_request(id, t_.refused, 0), {"refused", ECONNREFUSED});
        case 2:
            return send_checked(id, connect_request(id, t_.black_hole, 50 + rng_() % 250), {"black hole", ETIMEDOUT});
        default: return send_checked(id, proto::encode_status(id), {"status", 0});
        }
    }

    // A framed request with random damage outside the magic and the id: it
    // must still get exactly one reply, whatever the verdict.
    void mutated() {
        ++tally_.mutated;
        const auto id = next_id_++;
        auto bytes = rng_() % 4 ? connect_request(id, rng_() % 2 ? t_.refused : t_.black_hole, 100)
                                : proto::encode_status(id);
        for (int k = 1 + static_cast<int>(rng_() % 4); k > 0; --k) {
            const auto r = rng_() % (bytes.size() - 12);  // bytes 4..7 and 16..: not the magic, not the id
            bytes[r < 4 ? 4 + r : 12 + r] = static_cast<std::uint8_t>(rng_());
        }
        if (rng_() % 4 == 0) bytes.resize(EGRESS_HEADER_SIZE + rng_() % 2 * (rng_() % 6000));
        send_checked(id, bytes, {"mutated", std::nullopt});
    }

    // Anything at all on a second connection: a reply or a disconnect.
    void garbage() {
        ++tally_.garbage;
        auto bytes = connect_request(1, t_.refused, 100);
        Ancillary extra;
        switch (rng_() % 6) {
        case 0: bytes.resize(rng_() % EGRESS_HEADER_SIZE); break;                      // unframeable
        case 1: for (auto& b : bytes) b = static_cast<std::uint8_t>(rng_()); break;   // noise
        case 2: bytes[rng_() % 4] ^= 0x20; break;                                    // wrong magic
        case 3: extra.fds.assign(1 + rng_() % 8, pipe_[0]); break;
        case 4: extra.credentials = ucred{::getpid(), ::getuid(), ::getgid()}; break;
        default: bytes.resize(EGRESS_MAX_DATAGRAM + rng_() % 60000, 0x55); break;    // truncated
        }
        bool closed = false;
        errno = 0;
        const bool sent = send_datagram(bad_.get(), bytes, extra);
        if (sent && receive_reply(bad_.get(), kReplyBound, &closed)) return;
        if (sent && !closed) return fail("garbage got neither a reply nor a disconnect within 5 s");
        if (!sent && errno != EPIPE && errno != ECONNRESET) return fail(std::string("send: ") + std::strerror(errno));
        ++tally_.drops;
        bad_ = raw_connect(socket_);
    }

    // A client that leaves with connects in flight.
    void vanish() {
        ++tally_.vanished;
        auto c = raw_connect(socket_);
        const std::uint64_t n = 1 + rng_() % 8;
        for (std::uint64_t id = 1; id <= n; ++id) send_datagram(c.get(), connect_request(id, t_.black_hole, 300));
    }

    // Takes one reply on the checked connection; false when none came in time.
    bool collect(std::chrono::milliseconds timeout) {
        bool closed = false;
        auto r = receive_reply(good_.get(), timeout, &closed);
        if (closed) fail("egressd closed the connection that sent only framed requests");
        if (!r) return false;
        if (r->fd) {
            const linger now{1, 0};  // reset, not TIME_WAIT: the port is free at once
            ::setsockopt(r->fd.get(), SOL_SOCKET, SO_LINGER, &now, sizeof now);
        }
        const auto id = r->reply.header.request_id;
        const auto it = outstanding_.find(id);
        if (it == outstanding_.end()) {
            fail("reply to request " + std::to_string(id) + ", which is not outstanding (answered twice?)");
            return true;
        }
        const auto got = status_of(r->reply);
        if (it->second.status && got != *it->second.status)
            fail(std::string(it->second.what) + " request " + std::to_string(id) + " got status " +
                 std::to_string(got) + ": " + message_of(r->reply));
        outstanding_.erase(it);
        return true;
    }

    std::string socket_;
    Targets t_;
    std::mt19937 rng_;
    UniqueFd good_, bad_;
    int pipe_[2] = {-1, -1};
    std::uint64_t next_id_ = 1;
    std::map<std::uint64_t, Expect> outstanding_;
    Tally tally_;
};

TEST(Stream, RandomAndMutatedRequestsFromManyClients) {
    // Short connect timeouts: a request mutated into a valid one ends fast.
    Daemon d(R"({"connect": {"default_timeout_ms": 300, "max_timeout_ms": 300}})", {"--log-level", "info"});
    Listener echo(Listener::Mode::echo);
    // Nothing listens on a test port, and being below the ephemeral range it
    // can never be a connect's own source port (a self-connect succeeds).
    const Targets targets{echo.endpoint(), *parse_address("127.0.0.1", next_test_port()),
                          *parse_address(kBlackHole, 80)};
    const int idle = d.settled_fds();

    std::vector<Tally> tallies(kClients);
    {
        const auto until = std::chrono::steady_clock::now() + kDuration;
        std::vector<std::thread> threads;
        for (int i = 0; i < kClients; ++i)
            threads.emplace_back([&, i] {
                StreamClient c(d.socket(), targets, 1000u + static_cast<unsigned>(i));
                tallies[i] = c.run(until);
            });
        for (auto& t : threads) t.join();
    }

    Tally sum;
    for (int i = 0; i < kClients; ++i) {
        for (const auto& f : tallies[i].failures) ADD_FAILURE() << "client " << i << ": " << f;
        sum.well_formed += tallies[i].well_formed;
        sum.mutated += tallies[i].mutated;
        sum.garbage += tallies[i].garbage;
        sum.drops += tallies[i].drops;
        sum.vanished += tallies[i].vanished;
    }
    std::printf("%d clients, %lld s: %ld well-formed, %ld mutated, %ld garbage (%ld disconnects), %ld vanished\n",
                kClients, static_cast<long long>(kDuration.count()), sum.well_formed, sum.mutated, sum.garbage,
                sum.drops, sum.vanished);
    EXPECT_TRUE(d.alive());
    EXPECT_EQ(d.wait_fds(idle, std::chrono::seconds(10)), idle) << "descriptor count did not return to idle";
    const auto text = d.scrape();
    EXPECT_GT(metric_value(text, R"(egress_clients_dropped_total{reason="unframed"})"), 0);
    EXPECT_GT(metric_value(text, R"(egress_protocol_errors_total{kind="fd_attached"})"), 0);
    EXPECT_GT(metric_value(text, R"(egress_protocol_errors_total{kind="oversized"})"), 0);
    EXPECT_GT(sum.well_formed, 0);
}

}  // namespace
}  // namespace egress::test
