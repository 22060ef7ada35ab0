// Stopping and restarting: SIGTERM drains (every request in flight gets its
// reply, new ones ESHUTDOWN, exit 0), a second signal or the drain timeout
// answers the rest with ESHUTDOWN, and two egressd serving one held socket
// in turn lose no client. Also what egressd tells systemd (sd_notify).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include "codec.hpp"
#include "harness.hpp"

namespace egress::test {
namespace {

Endpoint black_hole() { return *parse_address(kBlackHole, 80); }

proto::Bytes connect_to(std::uint64_t id, const Endpoint& dest, std::uint32_t timeout_ms = 0) {
    proto::ConnectRequest req;
    req.dest = dest;
    req.timeout_ms = timeout_ms;
    return proto::encode_connect(id, req);
}

TEST(Shutdown, SigtermAnswersEveryConnectInFlightThenExitsZero) {
    Daemon d(R"({"shutdown": {"drain_timeout_ms": 20000}})");
    Listener echo(Listener::Mode::echo);
    auto conn = raw_connect(d.socket());
    ASSERT_TRUE(conn);
    // Three connects toward the black hole, each ending in ETIMEDOUT at its own deadline.
    for (std::uint64_t id = 1; id <= 3; ++id)
        ASSERT_TRUE(send_datagram(conn.get(), connect_to(id, black_hole(), 600 + 200 * static_cast<std::uint32_t>(id))));
    ASSERT_TRUE(d.wait_log("request 3 CONNECT"));
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(::kill(d.pid(), SIGTERM), 0);
    ASSERT_TRUE(d.wait_log("draining: 3 connect(s) in flight")) << d.log();
    // The socket file is gone at once: a successor may bind it.
    EXPECT_FALSE(std::filesystem::exists(d.socket()));
    // A request on the open connection during the drain: ESHUTDOWN at once.
    ASSERT_TRUE(send_datagram(conn.get(), connect_to(9, echo.endpoint())));
    std::vector<std::uint64_t> timed_out;
    for (int i = 0; i < 4; ++i) {
        auto r = receive_reply(conn.get(), std::chrono::seconds(10));
        ASSERT_TRUE(r) << "reply " << i << " missing";
        const auto id = r->reply.header.request_id;
        if (id == 9) {
            EXPECT_EQ(status_of(r->reply), static_cast<std::uint32_t>(ESHUTDOWN));
            EXPECT_NE(message_of(r->reply).find("shutting down"), std::string::npos) << message_of(r->reply);
            EXPECT_TRUE(timed_out.empty()) << "the refusal waited for the connects in flight";
        } else {
            EXPECT_EQ(status_of(r->reply), static_cast<std::uint32_t>(ETIMEDOUT)) << message_of(r->reply);
            timed_out.push_back(id);
        }
    }
    EXPECT_EQ(timed_out, (std::vector<std::uint64_t>{1, 2, 3})) << "each at its own deadline, in order";
    EXPECT_EQ(d.stop(0, std::chrono::seconds(10)), 0);  // exits by itself
    EXPECT_GE(ms_since(t0), 700) << "egressd exited before its connects ended";
    EXPECT_NE(d.log().find("drained: every request in flight was answered"), std::string::npos) << d.log();
}

TEST(Shutdown, TheDrainTimeoutAnswersWhatIsLeftWithEshutdown) {
    Daemon d(R"({"shutdown": {"drain_timeout_ms": 300}})");
    auto conn = raw_connect(d.socket());
    ASSERT_TRUE(conn);
    ASSERT_TRUE(send_datagram(conn.get(), connect_to(5, black_hole(), 20000)));
    ASSERT_TRUE(d.wait_log("request 5 CONNECT"));
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(::kill(d.pid(), SIGTERM), 0);
    auto r = receive_reply(conn.get(), std::chrono::seconds(10));
    ASSERT_TRUE(r) << "the connect in flight got no reply";
    EXPECT_EQ(r->reply.header.request_id, 5u);
    EXPECT_EQ(status_of(r->reply), static_cast<std::uint32_t>(ESHUTDOWN));
    EXPECT_EQ(error_name_of(r->reply), "ESHUTDOWN");
    EXPECT_NE(message_of(r->reply).find("shutdown.drain_timeout_ms (300 ms)"), std::string::npos)
        << message_of(r->reply);
    EXPECT_GE(ms_since(t0), 250);
    EXPECT_EQ(d.stop(0, std::chrono::seconds(10)), 0);
}

TEST(Shutdown, ASecondSignalStopsAtOnceAndStillReplies) {
    Daemon d(R"({"shutdown": {"drain_timeout_ms": 60000}})");
    auto conn = raw_connect(d.socket());
    ASSERT_TRUE(conn);
    for (std::uint64_t id = 1; id <= 2; ++id) ASSERT_TRUE(send_datagram(conn.get(), connect_to(id, black_hole(), 60000)));
    ASSERT_TRUE(d.wait_log("request 2 CONNECT"));
    ASSERT_EQ(::kill(d.pid(), SIGTERM), 0);
    ASSERT_TRUE(d.wait_log("draining:"));
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(d.stop(SIGINT, std::chrono::seconds(10)), 0);
    EXPECT_LT(ms_since(t0), 5000) << "the second signal did not stop the drain";
    for (int i = 0; i < 2; ++i) {
        auto r = receive_reply(conn.get(), std::chrono::seconds(1));
        ASSERT_TRUE(r) << "reply " << i << " missing";
        EXPECT_EQ(status_of(r->reply), static_cast<std::uint32_t>(ESHUTDOWN));
        EXPECT_NE(message_of(r->reply).find("second signal"), std::string::npos) << message_of(r->reply);
    }
    bool closed = false;
    EXPECT_FALSE(receive_reply(conn.get(), std::chrono::seconds(1), &closed));
    EXPECT_TRUE(closed);
}

// What the clients of the restart test saw, request by request.
struct Tally {
    std::mutex m;
    long ok = 0, shutdown = 0, other_error = 0, unanswered = 0, refused = 0;
    std::string first_problem;
    void problem(long Tally::*counter, const std::string& what) {
        std::lock_guard lock(m);
        ++(this->*counter);
        if (first_problem.empty()) first_problem = what;
    }
};

TEST(Shutdown, RestartingOnAHeldSocketLosesNoClient) {
    HeldSocket held;
    Listener echo(Listener::Mode::echo);
    Tally tally;
    std::atomic<bool> running{true};
    // Each client: a new connection per request, as short-lived programs do,
    // and one more try on ESHUTDOWN, as the message advises.
    auto client = [&] {
        std::uint64_t id = 0;
        while (running) {
            auto conn = raw_connect(held.path);
            if (!conn) {
                tally.problem(&Tally::refused, std::string("connect: ") + std::strerror(errno));
                continue;
            }
            if (!send_datagram(conn.get(), connect_to(++id, echo.endpoint()))) {
                tally.problem(&Tally::unanswered, std::string("send: ") + std::strerror(errno));
                continue;
            }
            auto r = receive_reply(conn.get(), std::chrono::seconds(20));
            if (!r) {
                tally.problem(&Tally::unanswered, "request " + std::to_string(id) + " got no reply");
                continue;
            }
            const auto st = status_of(r->reply);
            std::lock_guard lock(tally.m);
            if (st == 0 && r->fd) ++tally.ok;
            else if (st == ESHUTDOWN) ++tally.shutdown;
            else {
                ++tally.other_error;
                if (tally.first_problem.empty()) tally.first_problem = message_of(r->reply);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(4));
        }
    };
    auto start = [&] {
        return std::make_unique<Daemon>(R"({"shutdown": {"drain_timeout_ms": 10000}})",
                                        Daemon::Passed{held.fd.get(), held.path});
    };
    auto current = start();
    std::vector<std::thread> clients;
    for (int i = 0; i < 4; ++i) clients.emplace_back(client);
    long served_before = 0;
    for (int round = 0; round < 4; ++round) {
        std::this_thread::sleep_for(std::chrono::milliseconds(400));
        {
            std::lock_guard lock(tally.m);
            EXPECT_GT(tally.ok, served_before) << "round " << round << ": no client was served";
            served_before = tally.ok;
        }
        std::unique_ptr<Daemon> next;
        // Even rounds as systemd restarts a service: the next egressd starts
        // once the last has exited, clients waiting in the held backlog
        // meanwhile. Odd rounds: the next one is up before the last stops.
        if (round % 2) next = start();
        EXPECT_EQ(current->stop(SIGTERM), 0) << "round " << round;
        current.reset();
        if (!next) next = start();
        current = std::move(next);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    running = false;
    for (auto& t : clients) t.join();
    current.reset();
    std::printf("restart under load: %ld served, %ld ESHUTDOWN, %ld other errors, %ld unanswered, %ld refused\n",
                tally.ok, tally.shutdown, tally.other_error, tally.unanswered, tally.refused);
    EXPECT_GT(tally.ok, 100);
    EXPECT_EQ(tally.refused, 0) << tally.first_problem;
    EXPECT_EQ(tally.unanswered, 0) << tally.first_problem;
    EXPECT_EQ(tally.other_error, 0) << tally.first_problem;
}

// A datagram socket standing in for systemd's notification socket.
class NotifySocket {
public:
    const std::string& path() const { return sock_.path; }
    // The next message, or "" after `timeout`.
    std::string next(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
        ::setsockopt(sock_.fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char buf[4096];
        const auto n = ::recv(sock_.fd.get(), buf, sizeof buf, 0);
        return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
    }
    // Messages until one contains `what`; that one, or "" after `timeout`.
    std::string until(const std::string& what, std::vector<std::string>* seen = nullptr,
                      std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        const auto t0 = std::chrono::steady_clock::now();
        while (ms_since(t0) < static_cast<double>(timeout.count())) {
            auto m = next(std::chrono::milliseconds(200));
            if (seen && !m.empty()) seen->push_back(m);
            if (m.find(what) != std::string::npos) return m;
        }
        return "";
    }

private:
    HeldSocket sock_{SOCK_DGRAM, -1};
};

TEST(Shutdown, TellsSystemdReadyReloadingStoppingStatusAndFeedsTheWatchdog) {
    NotifySocket notify;
    Daemon d("", {}, {"NOTIFY_SOCKET=" + notify.path(), "WATCHDOG_USEC=200000"});
    const auto ready = notify.until("READY=1");
    ASSERT_NE(ready, "") << d.log();
    // The harness's probe of the socket may still count as a client.
    EXPECT_NE(ready.find("STATUS=client connections: "), std::string::npos) << ready;
    EXPECT_NE(ready.find(", connects in flight: 0"), std::string::npos) << ready;
    // WATCHDOG_USEC=200000: a keep-alive every 100 ms from the loop.
    std::vector<std::string> seen;
    const auto t0 = std::chrono::steady_clock::now();
    int keepalives = 0;
    while (ms_since(t0) < 1000)
        if (notify.next(std::chrono::milliseconds(300)).find("WATCHDOG=1") != std::string::npos) ++keepalives;
    EXPECT_GE(keepalives, 5) << "keep-alives in one second";
    EXPECT_LE(keepalives, 15);
    // A client shows in the status line.
    auto conn = raw_connect(d.socket());
    ASSERT_TRUE(conn);
    EXPECT_NE(notify.until("STATUS=client connections: 1, connects in flight: 0"), "");
    // SIGHUP: RELOADING=1, then READY=1.
    ASSERT_EQ(::kill(d.pid(), SIGHUP), 0);
    seen.clear();
    const auto reloading = notify.until("RELOADING=1", &seen);
    ASSERT_NE(reloading, "");
    EXPECT_NE(reloading.find("MONOTONIC_USEC="), std::string::npos) << reloading;
    EXPECT_NE(notify.until("READY=1"), "") << "no READY=1 after the reload";
    // SIGTERM: STOPPING=1 with the draining status.
    conn.reset();
    ASSERT_EQ(::kill(d.pid(), SIGTERM), 0);
    const auto stopping = notify.until("STOPPING=1");
    ASSERT_NE(stopping, "");
    EXPECT_NE(stopping.find("STATUS=draining:"), std::string::npos) << stopping;
    EXPECT_EQ(d.stop(), 0);
}

TEST(Shutdown, NoWatchdogWithoutNotifySocket) {
    Daemon d;
    EXPECT_EQ(d.log().find("watchdog:"), std::string::npos);
    NotifySocket notify;
    Daemon with("", {}, {"NOTIFY_SOCKET=" + notify.path(), "WATCHDOG_USEC=4000000"});
    EXPECT_TRUE(with.wait_log("watchdog: a keep-alive every 1000 ms")) << with.log();
}

}  // namespace
}  // namespace egress::test
