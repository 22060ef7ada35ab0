// The connector's retry logic over a scripted syscall layer (fake_syscalls.hpp):
// which tries it makes, in which order, with which options, what it reports,
// and that it leaves no descriptor behind.
#include "connector/connector.hpp"

#include <fcntl.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "connector/adopt.hpp"
#include "egress_proto.h"
#include "expect.hpp"
#include "fake_syscalls.hpp"

namespace egress {
namespace {

using namespace std::chrono_literals;
using test::Call;
using test::FakeSyscalls;
using test::IsError;
using test::IsOk;
using test::ip;
using test::kIpBindAddressNoPort;
using test::kIpLocalPortRange;
using test::open_fds;
using test::SocketFacts;

Endpoint ep(std::string_view text) {
    auto e = parse_endpoint(text);
    EXPECT_TRUE(e.ok()) << text;
    return e ? *e : Endpoint{};
}

// ---- the fixture ----

struct Reported {
    int done_calls = 0;
    std::optional<ConnectOutcome> out;
};

std::optional<Error> error_of(const ConnectOutcome& o) {
    if (o.err == 0) return std::nullopt;
    return Error{o.err, o.message};
}

class ConnectorTest : public testing::Test {
protected:
    void SetUp() override {
        fds_before_ = open_fds();
        io_.emplace();
        // Create the reactor's own descriptors now, so that counts taken
        // during the test see only sockets.
        asio::steady_timer warm(*io_);
        io_fds_ = open_fds();
    }
    void TearDown() override {
        io_.reset();
        EXPECT_EQ(open_fds(), fds_before_) << "a descriptor leaked";
    }

    asio::io_context& io() { return *io_; }

    // Descriptors open besides the reactor's.
    std::size_t sockets_open() const { return open_fds() - io_fds_; }

    ConnectPlan plan(std::vector<Endpoint> sources, PortPolicy policy, std::string_view dest = "192.0.2.80:443") {
        ConnectPlan p;
        p.dest = ep(dest);
        p.sources = std::move(sources);
        p.policy = policy;
        p.pool = "edge";
        p.timeout = 2000ms;
        return p;
    }

    std::shared_ptr<PendingConnect> start(ConnectPlan p, Reported& run) {
        auto c = std::make_shared<PendingConnect>(io(), sys, rng, std::move(p));
        c->start([&run](ConnectOutcome o) {
            ++run.done_calls;
            run.out = std::move(o);
        });
        return c;
    }

    // Runs the loop until it has nothing left to do, within a safety bound.
    void run_loop(std::chrono::milliseconds bound = 2000ms) {
        io().restart();
        io().run_for(bound);
    }

    // The tries the connector will make with the current random engine.
    std::vector<Attempt> expected_attempts(const PortPolicy& policy, std::size_t sources) const {
        Random copy = rng;
        AttemptPlan p(policy, sources);
        std::vector<Attempt> out;
        while (auto a = p.next(copy())) out.push_back(*a);
        return out;
    }

    FakeSyscalls sys;
    Random rng{42};

private:
    std::optional<asio::io_context> io_;
    std::size_t fds_before_ = 0;
    std::size_t io_fds_ = 0;
};

// The policies below model a kernel before 6.8, where a per-socket range is
// still searched parity first: the parity tests judge every port.
constexpr KernelVersion kParityKernel{6, 7};

PortPolicy window_policy(std::uint32_t retries = 2) {
    PortPolicy p;
    p.strategy = PortStrategy::window;
    p.kernel = kParityKernel;
    p.range = {40000, 40999};
    p.window_size = 100;
    p.max_window_retries = retries;
    return p;
}

PortPolicy kernel_range_policy(PortRange r = {40000, 59999}) {
    PortPolicy p;
    p.strategy = PortStrategy::kernel_range;
    p.range = r;
    p.kernel = kParityKernel;
    return p;
}

PortPolicy userspace_policy(std::uint32_t attempts, PortRange r = {50000, 50009}) {
    PortPolicy p;
    p.strategy = PortStrategy::userspace_random;
    p.range = r;
    p.userspace_max_attempts = attempts;
    return p;
}

// ---- the fast path ----

TEST_F(ConnectorTest, FastPathCompletesWithoutTheEventLoop) {
    Reported run;
    const auto c = start(plan({ip("192.0.2.1")}, kernel_range_policy()), run);
    // Done inside start(), before the loop ran.
    ASSERT_EQ(run.done_calls, 1);
    const auto& out = *run.out;
    EXPECT_EQ(out.err, 0) << out.message;
    EXPECT_TRUE(out.fd);
    EXPECT_EQ(out.fd.get(), sys.created.at(0));
    EXPECT_GE(::fcntl(out.fd.get(), F_GETFD), 0);
    EXPECT_EQ(out.remote, ep("192.0.2.80:443"));
    EXPECT_EQ(out.local, ep("192.0.2.1:40000"));
    EXPECT_EQ(out.attempts, 1u);
    EXPECT_EQ(out.window_retries, 0u);
    EXPECT_EQ(out.source, 0u);
    EXPECT_FALSE(out.parity_switch);
    EXPECT_EQ(sys.kinds(), (std::vector<Call::Kind>{Call::socket, Call::setsockopt, Call::setsockopt, Call::bind,
                                                     Call::connect, Call::getpeername, Call::getsockname}));
    EXPECT_EQ(sys.calls[0].value, static_cast<std::uint32_t>(SOCK_STREAM));
    EXPECT_EQ(sys.calls[0].domain, AF_INET);
    EXPECT_EQ(sys.of(Call::connect).at(0).addr, ep("192.0.2.80:443"));
    EXPECT_TRUE(sys.of(Call::getsockopt).empty());
    // Nothing was left for the loop.
    EXPECT_EQ(io().poll(), 0u);
    EXPECT_EQ(run.done_calls, 1);
    EXPECT_EQ(sockets_open(), 1u);  // the handed-over socket only
}

TEST_F(ConnectorTest, OptionsAreSetInOrderOnTheSameSocket) {
    Reported run;
    start(plan({ip("192.0.2.1")}, kernel_range_policy({40000, 59999})), run);
    ASSERT_EQ(run.done_calls, 1);
    const int fd = sys.created.at(0);
    ASSERT_GE(sys.calls.size(), 5u);
    // IP_LOCAL_PORT_RANGE, then IP_BIND_ADDRESS_NO_PORT, then bind with port 0, then connect.
    EXPECT_EQ(sys.calls[1].kind, Call::setsockopt);
    EXPECT_EQ(sys.calls[1].level, IPPROTO_IP);
    EXPECT_EQ(sys.calls[1].name, kIpLocalPortRange);
    EXPECT_EQ(sys.calls[1].value, encode_local_port_range({40000, 59999}));
    EXPECT_EQ(sys.calls[2].kind, Call::setsockopt);
    EXPECT_EQ(sys.calls[2].level, IPPROTO_IP);
    EXPECT_EQ(sys.calls[2].name, kIpBindAddressNoPort);
    EXPECT_EQ(sys.calls[2].value, 1u);
    EXPECT_EQ(sys.calls[3].kind, Call::bind);
    EXPECT_EQ(sys.calls[3].addr, ip("192.0.2.1"));
    EXPECT_EQ(sys.calls[4].kind, Call::connect);
    for (std::size_t i = 1; i <= 4; ++i) EXPECT_EQ(sys.calls[i].fd, fd) << i;
}

TEST_F(ConnectorTest, ConnectedAtOnceIsComplete) {
    sys.connect_results = {0};
    Reported run;
    start(plan({ip("192.0.2.1")}, kernel_range_policy()), run);
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_EQ(run.out->err, 0);
    EXPECT_TRUE(run.out->fd);
    EXPECT_EQ(run.out->local, ep("192.0.2.1:40000"));
    EXPECT_EQ(run.out->remote, ep("192.0.2.80:443"));  // the destination, though getpeername never ran
    EXPECT_EQ(run.out->attempts, 1u);
}

TEST_F(ConnectorTest, ASocketTheLoopCannotRegisterIsClosed) {
    // getpeername says "not yet", so the connector must register the socket
    // with the reactor; a duplicate of the reactor's own epoll descriptor is
    // refused (EINVAL) and must still be closed.
    sys.peer_errs = {ENOTCONN};
    sys.substitute_socket = [] {
        for (int fd = 3; fd < 64; ++fd) {
            char link[64] = {};
            if (::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), link, sizeof link - 1) > 0 &&
                std::string(link).find("eventpoll") != std::string::npos)
                return ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
        }
        return -1;
    };
    Reported run;
    start(plan({ip("192.0.2.1")}, kernel_range_policy()), run);
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_TRUE(IsError(error_of(*run.out), EINVAL, {"cannot register"}));
    EXPECT_EQ(sockets_open(), 0u);
}

TEST_F(ConnectorTest, ExhaustionIsChargedToTheLastSourceTried) {
    sys.connect_default = EADDRNOTAVAIL;
    Reported run;
    start(plan({ip("192.0.2.1"), ip("192.0.2.2")}, kernel_range_policy()), run);
    ASSERT_EQ(run.done_calls, 1);
    ASSERT_TRUE(run.out->source);
    EXPECT_EQ(*run.out->source, 1u);
    EXPECT_EQ(run.out->window_retries, 0u);
}

TEST_F(ConnectorTest, V6UsesAnInet6SocketAndTheSameOptions) {
    Reported run;
    start(plan({ip("2001:db8::1")}, kernel_range_policy(), "[2001:db8::80]:443"), run);
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_EQ(run.out->err, 0) << run.out->message;
    EXPECT_EQ(sys.calls.at(0).domain, AF_INET6);
    EXPECT_EQ(sys.of(Call::bind).at(0).addr, ip("2001:db8::1"));
    // Both options go through SOL_IP on IPv6 sockets too.
    EXPECT_EQ(sys.options(kIpBindAddressNoPort).at(0).level, IPPROTO_IP);
    EXPECT_EQ(sys.options(kIpLocalPortRange).at(0).level, IPPROTO_IP);
    EXPECT_EQ(run.out->remote, ep("[2001:db8::80]:443"));
    EXPECT_EQ(run.out->local, ep("[2001:db8::1]:40000"));
}

TEST_F(ConnectorTest, WithoutSourcesNothingIsBound) {
    Reported run;
    start(plan({}, kernel_range_policy()), run);
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_EQ(run.out->err, 0);
    EXPECT_TRUE(sys.of(Call::bind).empty());
    EXPECT_TRUE(sys.options(kIpBindAddressNoPort).empty());
    EXPECT_EQ(sys.options(kIpLocalPortRange).size(), 1u);
    EXPECT_FALSE(run.out->source);  // the kernel chose the address
}

TEST_F(ConnectorTest, KernelDefaultSetsNoPortRange) {
    PortPolicy p;
    p.strategy = PortStrategy::kernel_default;
    Reported run;
    start(plan({ip("192.0.2.1")}, p), run);
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_EQ(run.out->err, 0);
    EXPECT_TRUE(sys.options(kIpLocalPortRange).empty());
    EXPECT_EQ(sys.options(kIpBindAddressNoPort).size(), 1u);
    EXPECT_EQ(sys.of(Call::bind).size(), 1u);
}

TEST_F(ConnectorTest, FlagsSetNoDelayAndBlockingMode) {
    auto p = plan({ip("192.0.2.1")}, kernel_range_policy());
    p.flags = EGRESS_CONNECT_TCP_NODELAY | EGRESS_CONNECT_BLOCKING;
    Reported run;
    start(std::move(p), run);
    ASSERT_EQ(run.done_calls, 1);
    ASSERT_EQ(run.out->err, 0) << run.out->message;
    // TCP_NODELAY first of all options.
    ASSERT_GE(sys.calls.size(), 2u);
    EXPECT_EQ(sys.calls[1].kind, Call::setsockopt);
    EXPECT_EQ(sys.calls[1].level, IPPROTO_TCP);
    EXPECT_EQ(sys.calls[1].name, TCP_NODELAY);
    EXPECT_EQ(sys.calls[1].value, 1u);
    const auto setfl = sys.of(Call::fcntl_setfl);
    ASSERT_EQ(setfl.size(), 1u);
    EXPECT_EQ(setfl[0].value & O_NONBLOCK, 0u);
    const int fl = ::fcntl(run.out->fd.get(), F_GETFL);
    ASSERT_GE(fl, 0);
    EXPECT_EQ(fl & O_NONBLOCK, 0);
}

TEST_F(ConnectorTest, WithoutFlagsNoDelayAndModeAreLeftAlone) {
    Reported run;
    start(plan({ip("192.0.2.1")}, kernel_range_policy()), run);
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_TRUE(sys.options(TCP_NODELAY).empty());
    EXPECT_TRUE(sys.of(Call::fcntl_setfl).empty());
    EXPECT_NE(::fcntl(run.out->fd.get(), F_GETFL) & O_NONBLOCK, 0);
}

// ---- UDP ----

ConnectPlan udp(ConnectPlan p) {
    p.transport = Transport::udp;
    return p;
}

TEST_F(ConnectorTest, UdpBindsAddressAndPortInOneCallAndCompletesAtOnce) {
    sys.connect_results = {0};  // a UDP connect() only records the peer
    Reported run;
    start(udp(plan({ip("192.0.2.1")}, kernel_range_policy({40000, 40999}), "192.0.2.53:53")), run);
    ASSERT_EQ(run.done_calls, 1);
    const auto& out = *run.out;
    ASSERT_EQ(out.err, 0) << out.message;
    EXPECT_EQ(out.transport, Transport::udp);
    EXPECT_EQ(sys.kinds(), (std::vector<Call::Kind>{Call::socket, Call::setsockopt, Call::bind, Call::connect,
                                                     Call::getsockname}));
    EXPECT_EQ(sys.calls[0].value, static_cast<std::uint32_t>(SOCK_DGRAM));
    EXPECT_EQ(sys.calls[1].name, kIpLocalPortRange) << "the range before the bind that searches it";
    EXPECT_TRUE(sys.options(kIpBindAddressNoPort).empty()) << "nothing to defer for UDP";
    EXPECT_EQ(out.remote, ep("192.0.2.53:53"));
    EXPECT_EQ(out.local, ep("192.0.2.1:40000"));
    EXPECT_EQ(io().poll(), 0u) << "nothing waits on the loop";
}

TEST_F(ConnectorTest, UdpPortsRunningOutMoveOnLikeTcpExhaustion) {
    // A full source: bind() says EADDRINUSE; the automatic bind of connect() says EAGAIN.
    const auto policy = userspace_policy(3);
    sys.bind_errs = {EADDRINUSE, EADDRINUSE, EADDRINUSE};  // every try on the first source
    sys.connect_results = {0};
    Reported run;
    start(udp(plan({ip("192.0.2.1"), ip("192.0.2.2")}, policy)), run);
    ASSERT_EQ(run.done_calls, 1);
    ASSERT_EQ(run.out->err, 0) << run.out->message;
    EXPECT_EQ(run.out->attempts, 4u);
    EXPECT_EQ(run.out->window_retries, 2u);
    EXPECT_EQ(run.out->source, 1u);
    EXPECT_EQ(sockets_open(), 1u) << "every socket of a failed try is closed";

    sys = FakeSyscalls{};
    sys.connect_default = EAGAIN;
    Reported none;
    start(udp(plan({}, kernel_range_policy())), none);
    ASSERT_EQ(none.done_calls, 1);
    EXPECT_TRUE(IsError(error_of(*none.out), EADDRNOTAVAIL, {"pool 'edge' is exhausted", "kernel-chosen"}));
    EXPECT_EQ(none.out->attempts, 1u);
    EXPECT_EQ(sockets_open(), 1u);
}

TEST_F(ConnectorTest, AWindowPoolsUdpConnectSearchesItsWholeRangeOnce) {
    sys.bind_errs = {EADDRINUSE};
    sys.connect_results = {0};
    Reported run;
    start(udp(plan({ip("192.0.2.1"), ip("192.0.2.2")}, window_policy(8))), run);
    ASSERT_EQ(run.done_calls, 1);
    ASSERT_EQ(run.out->err, 0) << run.out->message;
    EXPECT_EQ(run.out->attempts, 2u) << "one search per source, no window retries";
    EXPECT_EQ(run.out->window_retries, 0u);
    const auto ranges = sys.options(kIpLocalPortRange);
    ASSERT_EQ(ranges.size(), 2u);
    for (const auto& r : ranges) EXPECT_EQ(r.value, encode_local_port_range({40000, 40999}));
}

TEST_F(ConnectorTest, EagainFromATcpConnectIsNoExhaustion) {
    sys.connect_results = {EAGAIN};
    Reported run;
    start(plan({ip("192.0.2.1"), ip("192.0.2.2")}, kernel_range_policy()), run);
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_EQ(run.out->err, EAGAIN);
    EXPECT_EQ(run.out->attempts, 1u);
}

TEST_F(ConnectorTest, UdpCountsNoParitySwitch) {
    sys.connect_results = {0};
    sys.local_port = [](const std::optional<PortRange>&, std::uint16_t) -> std::uint16_t { return 40001; };
    PortPolicy p;
    p.strategy = PortStrategy::kernel_default;
    p.range = {40000, 40999};
    Reported run;
    start(udp(plan({ip("192.0.2.1")}, p)), run);
    ASSERT_EQ(run.done_calls, 1);
    ASSERT_EQ(run.out->err, 0);
    EXPECT_EQ(run.out->local->port, 40001);
    EXPECT_FALSE(run.out->parity_switch);
}

// ---- retries ----

TEST_F(ConnectorTest, RetriesWindowsThenTheRangeThenTheNextSource) {
    const auto policy = window_policy(2);
    const std::vector<Endpoint> sources{ip("192.0.2.1"), ip("192.0.2.2")};
    const auto base_seed = rng;
    for (std::size_t failures = 0; failures < 8; ++failures) {
        SCOPED_TRACE(std::to_string(failures) + " failures");
        sys = FakeSyscalls{};
        rng = base_seed;
        rng.discard(failures * 3);  // a different draw sequence each round
        const auto want = expected_attempts(policy, sources.size());
        ASSERT_EQ(want.size(), 8u);
        sys.connect_results.assign(failures, EADDRNOTAVAIL);
        Reported run;
        start(plan(sources, policy), run);
        ASSERT_EQ(run.done_calls, 1);
        const auto& out = *run.out;
        ASSERT_EQ(out.err, 0) << out.message;
        EXPECT_EQ(out.attempts, failures + 1);
        std::uint32_t retries = 0;
        for (std::size_t k = 0; k <= failures; ++k) retries += want[k].retry_on_source;
        EXPECT_EQ(out.window_retries, retries);
        EXPECT_EQ(out.source, want[failures].slot);

        // One socket per try, each with the planned source and range.
        const auto sockets = sys.of(Call::socket);
        const auto binds = sys.of(Call::bind);
        const auto ranges = sys.options(kIpLocalPortRange);
        const auto connects = sys.of(Call::connect);
        ASSERT_EQ(sockets.size(), failures + 1);
        ASSERT_EQ(binds.size(), failures + 1);
        ASSERT_EQ(ranges.size(), failures + 1);
        ASSERT_EQ(connects.size(), failures + 1);
        for (std::size_t k = 0; k <= failures; ++k) {
            EXPECT_EQ(binds[k].addr, sources[want[k].slot]) << k;
            EXPECT_EQ(ranges[k].value, encode_local_port_range(*want[k].local_range)) << k;
            EXPECT_EQ(ranges[k].fd, connects[k].fd) << k;
            const PortRange r{static_cast<std::uint16_t>(ranges[k].value & 0xFFFF),
                              static_cast<std::uint16_t>(ranges[k].value >> 16)};
            EXPECT_TRUE(policy.range.contains(r.lo) && policy.range.contains(r.hi)) << k;
            EXPECT_EQ(r.size(), k % 4 == 3 ? policy.range.size() : policy.window_size) << k;
        }
        // Each failed socket was closed before the next one was opened.
        for (auto n : sys.fds_at_socket) EXPECT_EQ(n, sys.fds_at_socket.front());
        EXPECT_EQ(sockets_open(), 1u);
        // The fake reports the lower bound of the last try's range as the port.
        auto local = sources[want[failures].slot];
        local.port = want[failures].local_range->lo;
        EXPECT_EQ(out.local, local);
        EXPECT_FALSE(out.parity_switch);
    }
}

TEST_F(ConnectorTest, ExhaustionOfEverySourceIsEADDRNOTAVAIL) {
    sys.connect_default = EADDRNOTAVAIL;
    Reported run;
    start(plan({ip("192.0.2.1"), ip("192.0.2.2")}, window_policy(2)), run);
    ASSERT_EQ(run.done_calls, 1);
    const auto& out = *run.out;
    EXPECT_TRUE(IsError(error_of(out), EADDRNOTAVAIL,
                        {"pool 'edge'", "is exhausted", "192.0.2.80:443", "2 source address(es)", "after 8 attempts"}));
    EXPECT_EQ(out.attempts, 8u);
    EXPECT_EQ(out.window_retries, 6u);
    EXPECT_FALSE(out.fd);
    EXPECT_FALSE(out.local);
    EXPECT_FALSE(out.remote);
    EXPECT_EQ(sys.of(Call::socket).size(), 8u);
    EXPECT_EQ(sys.of(Call::connect).size(), 8u);
    EXPECT_EQ(sockets_open(), 0u);
    EXPECT_EQ(io().poll(), 0u);
}

TEST_F(ConnectorTest, ExhaustionWithoutSourcesNamesTheKernelChosenAddress) {
    sys.connect_default = EADDRNOTAVAIL;
    Reported run;
    start(plan({}, window_policy(1), "[2001:db8::80]:8443"), run);
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_TRUE(IsError(error_of(*run.out), EADDRNOTAVAIL,
                        {"is exhausted", "[2001:db8::80]:8443", "kernel-chosen address", "after 3 attempts"}));
    EXPECT_EQ(run.out->attempts, 3u);
    EXPECT_EQ(run.out->window_retries, 2u);
    EXPECT_FALSE(run.out->source);
    EXPECT_TRUE(sys.of(Call::bind).empty());
    EXPECT_EQ(sockets_open(), 0u);
}

TEST_F(ConnectorTest, KernelRangeTriesEachSourceOnceInOrder) {
    const std::vector<Endpoint> sources{ip("192.0.2.3"), ip("192.0.2.1"), ip("192.0.2.2")};
    sys.connect_results = {EADDRNOTAVAIL, EADDRNOTAVAIL};
    Reported run;
    start(plan(sources, kernel_range_policy()), run);
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_EQ(run.out->err, 0);
    EXPECT_EQ(run.out->attempts, 3u);
    EXPECT_EQ(run.out->window_retries, 0u);  // each try on a new source
    EXPECT_EQ(run.out->source, 2u);
    EXPECT_EQ(run.out->local, ep("192.0.2.2:40000"));
    const auto binds = sys.of(Call::bind);
    ASSERT_EQ(binds.size(), 3u);
    for (std::size_t k = 0; k < 3; ++k) EXPECT_EQ(binds[k].addr, sources[k]) << k;
    for (const auto& r : sys.options(kIpLocalPortRange)) EXPECT_EQ(r.value, encode_local_port_range({40000, 59999}));
    // IP_BIND_ADDRESS_NO_PORT before every bind, on the same socket.
    for (std::size_t i = 0; i < sys.calls.size(); ++i)
        if (sys.calls[i].kind == Call::bind) {
            ASSERT_GT(i, 0u);
            EXPECT_EQ(sys.calls[i - 1].kind, Call::setsockopt);
            EXPECT_EQ(sys.calls[i - 1].name, kIpBindAddressNoPort);
            EXPECT_EQ(sys.calls[i - 1].fd, sys.calls[i].fd);
        }
}

TEST_F(ConnectorTest, KernelRangeExhaustsAfterOneTryPerSource) {
    sys.connect_default = EADDRNOTAVAIL;
    Reported run;
    start(plan({ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3")}, kernel_range_policy()), run);
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_TRUE(IsError(error_of(*run.out), EADDRNOTAVAIL, {"is exhausted", "3 source address(es)", "after 3 attempts"}));
    EXPECT_EQ(run.out->window_retries, 0u);
}

TEST_F(ConnectorTest, UserspaceRandomBindsExplicitPortsAndRetriesOnEADDRINUSE) {
    const auto policy = userspace_policy(4);
    const auto want = expected_attempts(policy, 1);
    ASSERT_EQ(want.size(), 4u);
    sys.bind_errs = {EADDRINUSE, EADDRINUSE};
    Reported run;
    start(plan({ip("192.0.2.1")}, policy), run);
    ASSERT_EQ(run.done_calls, 1);
    const auto& out = *run.out;
    ASSERT_EQ(out.err, 0) << out.message;
    EXPECT_EQ(out.attempts, 3u);
    EXPECT_EQ(out.window_retries, 2u);
    const auto binds = sys.of(Call::bind);
    ASSERT_EQ(binds.size(), 3u);
    for (std::size_t k = 0; k < 3; ++k) {
        auto a = ip("192.0.2.1");
        a.port = want[k].bind_port;
        EXPECT_EQ(binds[k].addr, a) << k;
        EXPECT_TRUE(policy.range.contains(binds[k].addr->port)) << k;
    }
    EXPECT_TRUE(sys.options(kIpBindAddressNoPort).empty());
    EXPECT_TRUE(sys.options(kIpLocalPortRange).empty());
    EXPECT_EQ(sys.of(Call::connect).size(), 1u);
    EXPECT_EQ(out.local->port, want[2].bind_port);
    // No window: parity against the whole range (an even lower bound).
    EXPECT_EQ(out.parity_switch, (want[2].bind_port & 1) == 1);
    EXPECT_EQ(sockets_open(), 1u);
}

TEST_F(ConnectorTest, UserspaceRandomRetriesOnEADDRNOTAVAILFromConnect) {
    sys.connect_results = {EADDRNOTAVAIL};
    Reported run;
    start(plan({ip("192.0.2.1")}, userspace_policy(4)), run);
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_EQ(run.out->err, 0);
    EXPECT_EQ(run.out->attempts, 2u);
}

TEST_F(ConnectorTest, UserspaceRandomExhaustion) {
    sys.bind_errs.assign(8, EADDRINUSE);
    Reported run;
    start(plan({ip("192.0.2.1"), ip("192.0.2.2")}, userspace_policy(4)), run);
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_TRUE(IsError(error_of(*run.out), EADDRNOTAVAIL, {"is exhausted", "after 8 attempts"}));
    EXPECT_EQ(run.out->window_retries, 6u);
    const auto binds = sys.of(Call::bind);
    ASSERT_EQ(binds.size(), 8u);
    for (std::size_t k = 0; k < 8; ++k) EXPECT_EQ(address_string(*binds[k].addr), k < 4 ? "192.0.2.1" : "192.0.2.2");
    EXPECT_TRUE(sys.of(Call::connect).empty());
    EXPECT_EQ(sockets_open(), 0u);
}

TEST_F(ConnectorTest, UserspaceRandomWithoutSourcesBindsTheWildcardAddress) {
    const auto policy = userspace_policy(2);
    const auto want4 = expected_attempts(policy, 0);
    Reported run4;
    start(plan({}, policy, "192.0.2.80:443"), run4);
    ASSERT_EQ(run4.done_calls, 1);
    EXPECT_EQ(run4.out->err, 0);
    auto any4 = ip("0.0.0.0");
    any4.port = want4[0].bind_port;
    EXPECT_EQ(sys.of(Call::bind).at(0).addr, any4);

    sys = FakeSyscalls{};
    const auto want6 = expected_attempts(policy, 0);
    Reported run6;
    start(plan({}, policy, "[2001:db8::80]:443"), run6);
    ASSERT_EQ(run6.done_calls, 1);
    EXPECT_EQ(run6.out->err, 0);
    auto any6 = ip("::");
    any6.port = want6[0].bind_port;
    EXPECT_EQ(sys.of(Call::bind).at(0).addr, any6);
    EXPECT_EQ(sys.calls.at(0).domain, AF_INET6);
}

// ---- failures that are not port exhaustion: reported at once ----

TEST_F(ConnectorTest, SocketFailureIsReportedWithoutRetry) {
    // Out of descriptors (process or system) or of kernel memory: no other
    // source or window would fare better, so the first failure is the answer.
    for (const int err : {EMFILE, ENFILE, ENOBUFS, ENOMEM}) {
        SCOPED_TRACE(errno_name(err));
        sys = FakeSyscalls{};
        sys.socket_errs = {err};
        Reported run;
        start(plan({ip("192.0.2.1"), ip("192.0.2.2")}, window_policy(2)), run);
        ASSERT_EQ(run.done_calls, 1);
        EXPECT_TRUE(IsError(error_of(*run.out), err, {"socket()"}));
        EXPECT_EQ(run.out->attempts, 1u);
        EXPECT_EQ(sys.calls.size(), 1u);
        EXPECT_FALSE(run.out->fd);
        EXPECT_EQ(sockets_open(), 0u);
    }
}

TEST_F(ConnectorTest, ConnectsSucceedAgainOnceDescriptorsFreeUp) {
    sys.socket_errs = {EMFILE};
    Reported failed, next;
    start(plan({ip("192.0.2.1")}, window_policy(2)), failed);
    ASSERT_EQ(failed.done_calls, 1);
    EXPECT_TRUE(IsError(error_of(*failed.out), EMFILE, {"socket()"}));
    sys.connect_results = {0};
    start(plan({ip("192.0.2.1")}, window_policy(2)), next);
    ASSERT_EQ(next.done_calls, 1);
    EXPECT_EQ(next.out->err, 0) << next.out->message;
    EXPECT_TRUE(next.out->fd);
}

TEST_F(ConnectorTest, ConnectFailureIsReportedWithoutRetry) {
    for (const int err : {ENETUNREACH, EHOSTUNREACH, ECONNREFUSED, EACCES, EPERM}) {
        SCOPED_TRACE(errno_name(err));
        sys = FakeSyscalls{};
        sys.connect_results = {err};
        Reported run;
        start(plan({ip("192.0.2.1"), ip("192.0.2.2")}, window_policy(2)), run);
        ASSERT_EQ(run.done_calls, 1);
        EXPECT_TRUE(IsError(error_of(*run.out), err, {"connect()"}));
        EXPECT_EQ(run.out->attempts, 1u);
        EXPECT_EQ(run.out->source, 0u);
        EXPECT_EQ(sys.of(Call::socket).size(), 1u);
        EXPECT_EQ(sockets_open(), 0u);
    }
}

TEST_F(ConnectorTest, FailureAfterRetriesStopsThere) {
    sys.connect_results = {EADDRNOTAVAIL, EADDRNOTAVAIL, ENETUNREACH};
    Reported run;
    start(plan({ip("192.0.2.1"), ip("192.0.2.2")}, window_policy(2)), run);
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_TRUE(IsError(error_of(*run.out), ENETUNREACH, {"connect()"}));
    EXPECT_EQ(run.out->attempts, 3u);
    EXPECT_EQ(run.out->window_retries, 2u);
    EXPECT_EQ(sys.of(Call::socket).size(), 3u);
    EXPECT_EQ(sockets_open(), 0u);
}

TEST_F(ConnectorTest, BindFailureOtherThanEADDRINUSEIsReported) {
    sys.bind_errs = {EACCES};
    Reported run;
    start(plan({ip("192.0.2.1"), ip("192.0.2.2")}, kernel_range_policy()), run);
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_TRUE(IsError(error_of(*run.out), EACCES, {"bind()", "192.0.2.1"}));
    EXPECT_EQ(run.out->attempts, 1u);
    EXPECT_EQ(sockets_open(), 0u);
}

TEST_F(ConnectorTest, BindEADDRNOTAVAILMovesToTheNextSource) {
    // A source address no longer configured on the host.
    sys.bind_errs = {EADDRNOTAVAIL};
    Reported run;
    start(plan({ip("192.0.2.1"), ip("192.0.2.2")}, kernel_range_policy()), run);
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_EQ(run.out->err, 0);
    EXPECT_EQ(run.out->source, 1u);
    EXPECT_EQ(run.out->attempts, 2u);
}

TEST_F(ConnectorTest, OptionFailuresAreReported) {
    for (const auto& [opt, err, word] : std::vector<std::tuple<int, int, std::string>>{
             {kIpLocalPortRange, ENOPROTOOPT, "IP_LOCAL_PORT_RANGE 40000-59999"},
             {kIpBindAddressNoPort, EPERM, "IP_BIND_ADDRESS_NO_PORT"},
             {TCP_NODELAY, EINVAL, "TCP_NODELAY"}}) {
        SCOPED_TRACE(word);
        sys = FakeSyscalls{};
        sys.setsockopt_errs[opt] = err;
        auto p = plan({ip("192.0.2.1"), ip("192.0.2.2")}, kernel_range_policy());
        p.flags = EGRESS_CONNECT_TCP_NODELAY;
        Reported run;
        start(std::move(p), run);
        ASSERT_EQ(run.done_calls, 1);
        EXPECT_TRUE(IsError(error_of(*run.out), err, {word}));
        EXPECT_EQ(run.out->attempts, 1u);
        EXPECT_TRUE(sys.of(Call::connect).empty());
        EXPECT_EQ(sockets_open(), 0u);
    }
}

// ---- parity switch ----

TEST_F(ConnectorTest, ParityIsJudgedAgainstTheWindowLowerBound) {
    const auto policy = window_policy(2);  // range starts even: 40000
    // Find a seed whose first window starts on an odd port, so that the
    // window's parity and the range's differ.
    for (std::uint64_t seed = 1;; ++seed) {
        rng.seed(seed);
        if (expected_attempts(policy, 1).front().local_range->lo % 2 == 1) break;
        ASSERT_LT(seed, 1000u);
    }
    const auto window = *expected_attempts(policy, 1).front().local_range;
    const auto seed_state = rng;
    for (const auto& [offset, switched] : std::vector<std::pair<int, bool>>{{0, false}, {1, true}, {2, false}, {99, true}}) {
        SCOPED_TRACE("port window.lo + " + std::to_string(offset));
        sys = FakeSyscalls{};
        rng = seed_state;
        sys.local_port = [offset = offset](const std::optional<PortRange>& r, std::uint16_t) {
            return static_cast<std::uint16_t>(r->lo + offset);
        };
        Reported run;
        start(plan({ip("192.0.2.1")}, policy), run);
        ASSERT_EQ(run.done_calls, 1);
        ASSERT_EQ(run.out->err, 0);
        EXPECT_EQ(run.out->local->port, window.lo + offset);
        EXPECT_EQ(run.out->parity_switch, switched);
    }
}

TEST_F(ConnectorTest, ParityAfterRetriesIsJudgedAgainstTheLastTry) {
    const auto policy = window_policy(0);  // a window, then the whole range
    for (std::uint64_t seed = 1;; ++seed) {
        rng.seed(seed);
        if (expected_attempts(policy, 1).front().local_range->lo % 2 == 1) break;
        ASSERT_LT(seed, 1000u);
    }
    sys.connect_results = {EADDRNOTAVAIL};
    sys.local_port = [](const std::optional<PortRange>&, std::uint16_t) -> std::uint16_t { return 40001; };
    Reported run;
    start(plan({ip("192.0.2.1")}, policy), run);
    ASSERT_EQ(run.done_calls, 1);
    ASSERT_EQ(run.out->err, 0);
    EXPECT_EQ(run.out->attempts, 2u);
    EXPECT_EQ(sys.options(kIpLocalPortRange).back().value, encode_local_port_range(policy.range));
    EXPECT_TRUE(run.out->parity_switch);  // odd port, range starts at 40000
}

TEST_F(ConnectorTest, ParityForKernelRangeIsJudgedAgainstTheWholeRange) {
    for (const auto& [range, port, switched] : std::vector<std::tuple<PortRange, std::uint16_t, bool>>{
             {{40001, 59999}, 40002, true},
             {{40001, 59999}, 40003, false},
             {{40000, 59999}, 59999, true},
             {{40000, 59999}, 59998, false}}) {
        sys = FakeSyscalls{};
        sys.local_port = [port = port](const std::optional<PortRange>&, std::uint16_t) { return port; };
        Reported run;
        start(plan({ip("192.0.2.1")}, kernel_range_policy(range)), run);
        ASSERT_EQ(run.done_calls, 1);
        EXPECT_EQ(run.out->parity_switch, switched) << to_string(range) << " port " << port;
    }
}

TEST_F(ConnectorTest, ParityForKernelDefaultIsJudgedAgainstThePolicyRange) {
    PortPolicy p;
    p.strategy = PortStrategy::kernel_default;
    p.range = {32768, 60999};
    sys.local_port = [](const std::optional<PortRange>& r, std::uint16_t) -> std::uint16_t {
        EXPECT_FALSE(r);
        return 32769;
    };
    Reported run;
    start(plan({ip("192.0.2.1")}, p), run);
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_TRUE(run.out->parity_switch);
}

// Every strategy on both kinds of kernel, the port always of the other
// parity than the lower bound of the range searched: a switch is reported
// only where that search prefers a parity.
TEST_F(ConnectorTest, ParitySwitchCountsOnlyWhereTheKernelSearchPrefersAParity) {
    const KernelVersion before{6, 7}, since{6, 18};
    const std::vector<std::tuple<PortStrategy, KernelVersion, bool>> cases{
        {PortStrategy::kernel_default, before, true},    {PortStrategy::kernel_default, since, true},
        {PortStrategy::window, before, true},            {PortStrategy::window, since, false},
        {PortStrategy::kernel_range, before, true},      {PortStrategy::kernel_range, since, false},
        {PortStrategy::userspace_random, before, false}, {PortStrategy::userspace_random, since, false},
    };
    for (const auto& [strategy, kernel, counted] : cases) {
        SCOPED_TRACE(std::string(to_string(strategy)) + " on " + std::to_string(kernel.major) + "." +
                     std::to_string(kernel.minor));
        PortPolicy p = window_policy();
        p.strategy = strategy;
        p.range = {40000, 40999};
        p.kernel = kernel;
        sys = FakeSyscalls{};
        // One above the lower bound of the range searched (the window, else the whole range).
        sys.local_port = [](const std::optional<PortRange>& r, std::uint16_t) {
            return static_cast<std::uint16_t>((r ? r->lo : 40000) + 1);
        };
        Reported run;
        start(plan({ip("192.0.2.1")}, p), run);
        ASSERT_EQ(run.done_calls, 1);
        ASSERT_EQ(run.out->err, 0);
        ASSERT_TRUE(run.out->local);
        EXPECT_EQ(run.out->parity_switch, counted);
    }
}

TEST_F(ConnectorTest, NoParitySwitchOnTheLowerBoundsParityOnAnyKernel) {
    for (const auto kernel : {KernelVersion{6, 7}, KernelVersion{6, 18}}) {
        PortPolicy p;
        p.strategy = PortStrategy::kernel_default;
        p.range = {40000, 40999};
        p.kernel = kernel;
        sys = FakeSyscalls{};
        sys.local_port = [](const std::optional<PortRange>&, std::uint16_t) -> std::uint16_t { return 40002; };
        Reported run;
        start(plan({ip("192.0.2.1")}, p), run);
        ASSERT_EQ(run.done_calls, 1);
        EXPECT_FALSE(run.out->parity_switch) << kernel.major << "." << kernel.minor;
    }
}

TEST_F(ConnectorTest, UnknownLocalAddressMeansNoParitySwitch) {
    sys.getsockname_err = ENOBUFS;
    sys.local_port = [](const std::optional<PortRange>&, std::uint16_t) -> std::uint16_t { return 40001; };
    Reported run;
    start(plan({ip("192.0.2.1")}, kernel_range_policy()), run);
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_EQ(run.out->err, 0);  // still connected
    EXPECT_TRUE(run.out->fd);
    EXPECT_FALSE(run.out->local);
    EXPECT_FALSE(run.out->parity_switch);
}

// ---- completion through the event loop ----

TEST_F(ConnectorTest, PendingConnectCompletesOnWritability) {
    sys.peer_errs = {ENOTCONN};  // not yet established inside connect()
    auto p = plan({ip("192.0.2.1")}, kernel_range_policy());
    p.timeout = 20ms;
    Reported run;
    start(std::move(p), run);
    EXPECT_EQ(run.done_calls, 0);
    EXPECT_EQ(sockets_open(), 1u);
    const auto t0 = std::chrono::steady_clock::now();
    run_loop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
    ASSERT_EQ(run.done_calls, 1);
    const auto& out = *run.out;
    ASSERT_EQ(out.err, 0) << out.message;
    EXPECT_TRUE(out.fd);
    EXPECT_EQ(out.fd.get(), sys.created.at(0));
    EXPECT_EQ(out.remote, ep("192.0.2.80:443"));
    EXPECT_EQ(out.local, ep("192.0.2.1:40000"));
    EXPECT_EQ(out.attempts, 1u);
    const auto so = sys.of(Call::getsockopt);
    ASSERT_EQ(so.size(), 1u);
    EXPECT_EQ(so[0].level, SOL_SOCKET);
    EXPECT_EQ(so[0].name, SO_ERROR);
    EXPECT_EQ(sys.of(Call::getpeername).size(), 2u);
    EXPECT_EQ(sockets_open(), 1u);
}

TEST_F(ConnectorTest, PendingConnectCompletesInBlockingModeWhenAsked) {
    sys.peer_errs = {ENOTCONN};
    auto p = plan({ip("192.0.2.1")}, kernel_range_policy());
    p.flags = EGRESS_CONNECT_BLOCKING;
    Reported run;
    start(std::move(p), run);
    run_loop();
    ASSERT_EQ(run.done_calls, 1);
    ASSERT_EQ(run.out->err, 0) << run.out->message;
    EXPECT_EQ(::fcntl(run.out->fd.get(), F_GETFL) & O_NONBLOCK, 0);
}

TEST_F(ConnectorTest, SoErrorIsReportedWithoutRetry) {
    for (const int err : {ECONNREFUSED, EHOSTUNREACH, EADDRNOTAVAIL}) {
        SCOPED_TRACE(errno_name(err));
        sys = FakeSyscalls{};
        sys.peer_errs = {ENOTCONN};
        sys.so_error = err;
        Reported run;
        start(plan({ip("192.0.2.1"), ip("192.0.2.2")}, window_policy(2)), run);
        EXPECT_EQ(run.done_calls, 0);
        run_loop();
        ASSERT_EQ(run.done_calls, 1);
        EXPECT_TRUE(IsError(error_of(*run.out), err, {"connect to the destination failed"}));
        EXPECT_EQ(run.out->attempts, 1u);
        EXPECT_FALSE(run.out->fd);
        EXPECT_EQ(sys.of(Call::socket).size(), 1u);
        EXPECT_EQ(sockets_open(), 0u);
    }
}

TEST_F(ConnectorTest, AWakeUpWithoutAPeerIsNotAnOutcome) {
    // Not connected inside connect(); then a wake-up with no error and no
    // peer (still connecting): the connect waits on, and the next wake-up
    // finds it established.
    sys.peer_errs = {ENOTCONN, ENOTCONN};
    Reported run;
    start(plan({ip("192.0.2.1")}, kernel_range_policy()), run);
    run_loop();
    ASSERT_EQ(run.done_calls, 1);
    ASSERT_TRUE(run.out->fd) << run.out->message;
    EXPECT_EQ(std::count_if(sys.calls.begin(), sys.calls.end(),
                            [](const auto& c) { return c.kind == Call::getpeername; }),
              3);
    EXPECT_EQ(run.out->remote, *parse_endpoint("192.0.2.80:443"));
}

TEST_F(ConnectorTest, WritableButPeerUnreadableIsReported) {
    sys.peer_errs = {ENOTCONN, EBADF};
    Reported run;
    start(plan({ip("192.0.2.1")}, kernel_range_policy()), run);
    run_loop();
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_TRUE(IsError(error_of(*run.out), EBADF, {"no peer"}));
    EXPECT_EQ(sockets_open(), 0u);
}

TEST_F(ConnectorTest, DeadlineGivesETIMEDOUT) {
    sys.writable = false;  // the handshake never completes
    sys.peer_errs = {ENOTCONN};
    auto p = plan({ip("192.0.2.1")}, kernel_range_policy());
    p.timeout = 20ms;
    Reported run;
    const auto t0 = std::chrono::steady_clock::now();
    start(std::move(p), run);
    EXPECT_EQ(run.done_calls, 0);
    run_loop(2000ms);
    const auto elapsed = std::chrono::steady_clock::now() - t0;
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_TRUE(IsError(error_of(*run.out), ETIMEDOUT, {"20 ms"}));
    EXPECT_EQ(run.out->attempts, 1u);
    EXPECT_FALSE(run.out->fd);
    EXPECT_GE(elapsed, 20ms);
    EXPECT_LT(elapsed, 1s);
    EXPECT_GE(run.out->connect_us, 20000u);
    EXPECT_TRUE(sys.of(Call::getsockopt).empty());
    EXPECT_EQ(sockets_open(), 0u);
}

TEST_F(ConnectorTest, ExpiredDeadlineAndWritableTogetherReportOnce) {
    // Both wake-ups are ready on the first poll: whichever runs first
    // decides, the other must not report again.
    sys.peer_errs = {ENOTCONN};
    auto p = plan({ip("192.0.2.1")}, kernel_range_policy());
    p.timeout = 0ms;
    Reported run;
    start(std::move(p), run);
    run_loop();
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_TRUE(run.out->err == 0 || run.out->err == ETIMEDOUT) << run.out->message;
    EXPECT_EQ(sockets_open(), run.out->fd ? 1u : 0u);
}

TEST_F(ConnectorTest, EachPendingConnectHasItsOwnDeadline) {
    sys.writable = false;
    sys.peer_errs = {ENOTCONN, ENOTCONN};
    auto slow = plan({ip("192.0.2.1")}, kernel_range_policy());
    slow.timeout = 60ms;
    auto fast = plan({ip("192.0.2.1")}, kernel_range_policy());
    fast.timeout = 10ms;
    std::optional<ConnectOutcome> slow_out, fast_out;
    std::vector<int> order;
    auto a = std::make_shared<PendingConnect>(io(), sys, rng, std::move(slow));
    a->start([&](ConnectOutcome o) {
        order.push_back(1);
        slow_out = std::move(o);
    });
    auto b = std::make_shared<PendingConnect>(io(), sys, rng, std::move(fast));
    b->start([&](ConnectOutcome o) {
        order.push_back(2);
        fast_out = std::move(o);
    });
    run_loop();
    EXPECT_EQ(order, (std::vector<int>{2, 1}));
    ASSERT_TRUE(fast_out && slow_out);
    EXPECT_TRUE(IsError(error_of(*fast_out), ETIMEDOUT, {"10 ms"}));
    EXPECT_TRUE(IsError(error_of(*slow_out), ETIMEDOUT, {"60 ms"}));
    EXPECT_EQ(sockets_open(), 0u);
}

// ---- cancel ----

TEST_F(ConnectorTest, CancelBeforeCompletionClosesTheSocketAndNeverCallsDone) {
    sys.writable = false;
    sys.peer_errs = {ENOTCONN};
    auto p = plan({ip("192.0.2.1")}, kernel_range_policy());
    p.timeout = 10ms;
    Reported run;
    auto c = start(std::move(p), run);
    EXPECT_EQ(sockets_open(), 1u);
    c->cancel();
    EXPECT_EQ(sockets_open(), 0u);  // closed now, not when the loop runs
    std::weak_ptr<PendingConnect> weak = c;
    c.reset();
    run_loop();
    EXPECT_EQ(run.done_calls, 0);
    EXPECT_TRUE(weak.expired());  // its handlers were released
}

TEST_F(ConnectorTest, CancelBeforeTheLoopRunsNeverCallsDone) {
    sys.peer_errs = {ENOTCONN};  // writable at once: the wait would complete on the first poll
    Reported run;
    auto c = start(plan({ip("192.0.2.1")}, kernel_range_policy()), run);
    c->cancel();
    c->cancel();  // twice is harmless
    run_loop();
    EXPECT_EQ(run.done_calls, 0);
    EXPECT_TRUE(sys.of(Call::getsockopt).empty());
    EXPECT_EQ(sockets_open(), 0u);
}

TEST_F(ConnectorTest, CancelAfterDoneLeavesTheOutcomeAlone) {
    Reported run;
    auto c = start(plan({ip("192.0.2.1")}, kernel_range_policy()), run);
    ASSERT_EQ(run.done_calls, 1);
    c->cancel();
    run_loop();
    EXPECT_EQ(run.done_calls, 1);
    ASSERT_TRUE(run.out->fd);
    EXPECT_GE(::fcntl(run.out->fd.get(), F_GETFD), 0);  // the handed-over socket is still open
    EXPECT_EQ(sockets_open(), 1u);
}

TEST_F(ConnectorTest, DroppingTheOwnerDoesNotAbandonAPendingConnect) {
    // The connect owns itself through its handlers while it is pending.
    sys.peer_errs = {ENOTCONN};
    Reported run;
    start(plan({ip("192.0.2.1")}, kernel_range_policy()), run);  // the returned pointer is dropped
    run_loop();
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_EQ(run.out->err, 0);
}

// ---- no descriptor left behind over many connects ----

TEST_F(ConnectorTest, ManyConnectsLeaveNoDescriptorBehind) {
    for (int i = 0; i < 50; ++i) {
        sys = FakeSyscalls{};
        switch (i % 5) {
        case 0: sys.connect_results = {EADDRNOTAVAIL, EADDRNOTAVAIL}; break;
        case 1: sys.peer_errs = {ENOTCONN}; sys.so_error = ECONNREFUSED; break;
        case 2: sys.connect_default = EADDRNOTAVAIL; break;
        case 3: sys.bind_errs = {EADDRINUSE}; break;
        default: sys.peer_errs = {ENOTCONN}; break;
        }
        Reported run;
        start(plan({ip("192.0.2.1"), ip("192.0.2.2")}, i % 5 == 3 ? userspace_policy(3) : window_policy(1)), run);
        run_loop();
        ASSERT_EQ(run.done_calls, 1) << i;
        EXPECT_EQ(sockets_open(), run.out->fd ? 1u : 0u) << i;
    }
    EXPECT_EQ(sockets_open(), 0u);
}

// ---- adopt mode: the program's own socket ----

constexpr std::uint64_t kOwnNetns = 1;

int inspect_error(FakeSyscalls& sys, int fd, std::optional<std::uint64_t> own = kOwnNetns, bool any = false) {
    auto r = inspect_adopted(sys, fd, own, any);
    return r ? 0 : r.error().code;
}

TEST_F(ConnectorTest, AdoptChecksRefuseEachWrongSocketWithItsErrno) {
    struct Case {
        const char* what;
        SocketFacts facts;
        bool nonblocking;
        int err;
        const char* says;
    };
    const Case cases[] = {
        {"unix socket", {.domain = AF_UNIX}, true, EAFNOSUPPORT, "AF_INET"},
        {"raw", {.type = SOCK_RAW}, true, EPROTOTYPE, "SOCK_STREAM or SOCK_DGRAM"},
        {"datagram, not UDP", {.type = SOCK_DGRAM, .protocol = IPPROTO_UDPLITE}, true, EPROTONOSUPPORT,
         "IPPROTO_UDP"},
        {"sctp", {.protocol = IPPROTO_SCTP}, true, EPROTONOSUPPORT, "IPPROTO_TCP"},
        {"listening", {.state = TCP_LISTEN}, true, EINVAL, "listening"},
        {"connecting", {.state = TCP_SYN_SENT}, true, EALREADY, "in progress"},
        {"connected", {.state = TCP_ESTABLISHED}, true, EISCONN, "connected"},
        {"half closed", {.state = TCP_CLOSE_WAIT}, true, EISCONN, "connected"},
        {"blocking", {}, false, EINVAL, "blocking"},
        {"other netns", {.netns = 2}, true, EACCES, "another network namespace"},
    };
    for (const auto& c : cases) {
        const UniqueFd fd(sys.adopt_socket(c.facts, c.nonblocking));
        auto r = inspect_adopted(sys, fd.get(), kOwnNetns, false);
        ASSERT_FALSE(r) << c.what;
        EXPECT_TRUE(IsError(r, c.err, {c.says})) << c.what << ": " << r.error().message;
    }
    // A pipe is not a socket: SO_DOMAIN says so.
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    const UniqueFd r0(p[0]), r1(p[1]);
    FakeSyscalls plain;  // knows no socket by that number
    EXPECT_TRUE(IsError(inspect_adopted(plain, p[0], kOwnNetns, false), ENOTSOCK, {"not a socket"}));
    // Nothing was changed on any of them: only reads.
    EXPECT_TRUE(sys.of(Call::setsockopt).empty());
    EXPECT_TRUE(sys.of(Call::fcntl_setfl).empty());
    EXPECT_TRUE(sys.of(Call::bind).empty());
}

TEST_F(ConnectorTest, AdoptTakesAUdpSocketBlockingOrConnected) {
    const SocketFacts udp{.type = SOCK_DGRAM, .protocol = IPPROTO_UDP, .state = TCP_ESTABLISHED};
    const UniqueFd blocking(sys.adopt_socket(udp, false));
    auto r = inspect_adopted(sys, blocking.get(), kOwnNetns, false);
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(r->transport, Transport::udp);
    EXPECT_TRUE(sys.of(Call::fcntl_getfl).empty()) << "its connect() never waits: blocking is fine";
    const UniqueFd other(sys.adopt_socket({.type = SOCK_DGRAM, .protocol = IPPROTO_UDP, .netns = 2}));
    EXPECT_EQ(inspect_error(sys, other.get()), EACCES) << "the namespace check holds for UDP too";
    const UniqueFd tcp(sys.adopt_socket());
    r = inspect_adopted(sys, tcp.get(), kOwnNetns, false);
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(r->transport, Transport::tcp);
}

TEST_F(ConnectorTest, AdoptNamespaceCheckFailsClosedAndARuleMayWaiveIt) {
    const UniqueFd other(sys.adopt_socket({.netns = 2}));
    EXPECT_EQ(inspect_error(sys, other.get(), kOwnNetns, true), 0);
    const UniqueFd own(sys.adopt_socket());
    EXPECT_EQ(inspect_error(sys, own.get()), 0);
    EXPECT_EQ(inspect_error(sys, own.get(), std::nullopt), EACCES);  // egressd could not read its own
}

TEST_F(ConnectorTest, AdoptReportsWhatTheProgramBound) {
    const UniqueFd fresh(sys.adopt_socket({.domain = AF_INET6}));
    auto r = inspect_adopted(sys, fresh.get(), kOwnNetns, false);
    ASSERT_TRUE(IsOk(r));
    EXPECT_TRUE(r->v6);
    EXPECT_FALSE(r->bound);
    const UniqueFd addr(sys.adopt_socket({.bound = ip("192.0.2.7")}));
    r = inspect_adopted(sys, addr.get(), kOwnNetns, false);
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(r->bound, ip("192.0.2.7"));
    const UniqueFd port(sys.adopt_socket({.bound = ep("0.0.0.0:5555")}));
    r = inspect_adopted(sys, port.get(), kOwnNetns, false);
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(r->bound, ep("0.0.0.0:5555"));
}

ConnectPlan adopt_plan(ConnectPlan p, int fd, bool v6 = false) {
    p.adopted = UniqueFd(fd);
    p.adopted_v6 = v6;
    return p;
}

TEST_F(ConnectorTest, AdoptedUnboundSocketGetsThePoolSourceOnItself) {
    const int fd = sys.adopt_socket();
    Reported run;
    start(adopt_plan(plan({ip("192.0.2.1")}, kernel_range_policy({40000, 59999})), fd), run);
    ASSERT_EQ(run.done_calls, 1);
    ASSERT_EQ(run.out->err, 0) << run.out->message;
    EXPECT_TRUE(sys.of(Call::socket).empty()) << "adopt mode opens no socket";
    EXPECT_EQ(sys.kinds(), (std::vector<Call::Kind>{Call::setsockopt, Call::setsockopt, Call::bind, Call::connect,
                                                     Call::getpeername, Call::getsockname}));
    for (const auto& c : sys.calls) EXPECT_EQ(c.fd, fd);
    EXPECT_EQ(sys.calls[0].name, kIpLocalPortRange);
    EXPECT_EQ(sys.calls[1].name, kIpBindAddressNoPort);
    EXPECT_EQ(sys.of(Call::bind).at(0).addr, ip("192.0.2.1"));
    EXPECT_EQ(run.out->fd.get(), fd);  // egressd's copy, for the caller to close
    EXPECT_EQ(run.out->local, ep("192.0.2.1:40000"));
    EXPECT_EQ(run.out->source, 0u);
}

TEST_F(ConnectorTest, AdoptedSocketBoundToAnAddressKeepsItAndGetsThePortStrategy) {
    const int fd = sys.adopt_socket({.bound = ip("192.0.2.7")});
    Reported run;
    // The session gives a socket the program bound no source of the pool.
    start(adopt_plan(plan({}, kernel_range_policy({40000, 49999})), fd), run);
    ASSERT_EQ(run.done_calls, 1);
    ASSERT_EQ(run.out->err, 0) << run.out->message;
    EXPECT_TRUE(sys.of(Call::bind).empty());
    EXPECT_TRUE(sys.options(kIpBindAddressNoPort).empty());
    ASSERT_EQ(sys.options(kIpLocalPortRange).size(), 1u);
    EXPECT_EQ(sys.options(kIpLocalPortRange)[0].value, encode_local_port_range({40000, 49999}));
    EXPECT_EQ(run.out->local, ep("192.0.2.7:40000"));
    EXPECT_FALSE(run.out->source);
}

TEST_F(ConnectorTest, AdoptedSocketBoundToAPortIsConnectedAsItIs) {
    const int fd = sys.adopt_socket({.bound = ep("0.0.0.0:5555")});
    Reported run;
    PortPolicy as_is;
    as_is.strategy = PortStrategy::kernel_default;  // what the session asks for a bound port
    auto p = adopt_plan(plan({}, as_is), fd);
    p.flags = EGRESS_CONNECT_TCP_NODELAY;
    start(std::move(p), run);
    ASSERT_EQ(run.done_calls, 1);
    ASSERT_EQ(run.out->err, 0) << run.out->message;
    EXPECT_EQ(sys.kinds(), (std::vector<Call::Kind>{Call::setsockopt, Call::connect, Call::getpeername,
                                                     Call::getsockname}));
    EXPECT_EQ(sys.calls[0].level, IPPROTO_TCP);
    EXPECT_EQ(sys.calls[0].name, TCP_NODELAY);
    EXPECT_EQ(run.out->local->port, 5555);
}

TEST_F(ConnectorTest, AdoptedWindowRetriesStayOnTheSameSocketAndBindOnce) {
    const int fd = sys.adopt_socket();
    sys.connect_results = {EADDRNOTAVAIL, EADDRNOTAVAIL, 0};
    Reported run;
    start(adopt_plan(plan({ip("192.0.2.1")}, window_policy(4)), fd), run);
    ASSERT_EQ(run.done_calls, 1);
    ASSERT_EQ(run.out->err, 0) << run.out->message;
    EXPECT_TRUE(sys.of(Call::socket).empty());
    EXPECT_EQ(sys.of(Call::bind).size(), 1u) << "a bound socket cannot change its address";
    EXPECT_EQ(sys.of(Call::connect).size(), 3u);
    const auto windows = sys.options(kIpLocalPortRange);
    ASSERT_EQ(windows.size(), 3u);
    for (const auto& c : sys.calls) EXPECT_EQ(c.fd, fd);
    EXPECT_EQ(run.out->attempts, 3u);
    EXPECT_EQ(run.out->window_retries, 2u);
    EXPECT_EQ(sockets_open(), 1u);  // the adopted socket, egressd's copy in the outcome
}

TEST_F(ConnectorTest, AdoptedConnectUnderWayIsReportedThenWatchedWithoutSoError) {
    const int fd = sys.adopt_socket();
    sys.peer_errs = {ENOTCONN};  // not established inside connect()
    Reported run;
    std::optional<ConnectOutcome> progress;
    auto c = std::make_shared<PendingConnect>(io(), sys, rng, adopt_plan(plan({ip("192.0.2.1")}, kernel_range_policy()), fd));
    c->start([&run](ConnectOutcome o) {
        ++run.done_calls;
        run.out = std::move(o);
    }, [&](ConnectOutcome o) { progress = std::move(o); });
    ASSERT_TRUE(progress) << "the reply leaves while connect() is under way";
    EXPECT_EQ(progress->err, EINPROGRESS);
    EXPECT_FALSE(progress->fd);
    EXPECT_EQ(progress->local, ep("192.0.2.1:40000"));
    EXPECT_EQ(progress->attempts, 1u);
    EXPECT_EQ(run.done_calls, 0);
    run_loop();
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_EQ(run.out->err, 0) << run.out->message;
    EXPECT_EQ(run.out->remote, ep("192.0.2.80:443"));
    for (const auto& g : sys.of(Call::getsockopt)) EXPECT_NE(g.name, SO_ERROR) << "SO_ERROR is the program's";
    EXPECT_FALSE(sys.of(Call::getsockopt).empty());  // TCP_INFO
}

TEST_F(ConnectorTest, AdoptedConnectThatFailsAfterTheReplyIsCountedUnseen) {
    const int fd = sys.adopt_socket();
    sys.peer_errs = {ENOTCONN};
    sys.state_after_connect = TCP_CLOSE;  // refused: the program's SO_ERROR holds why
    sys.so_error = ECONNREFUSED;
    Reported run;
    bool told = false;
    auto c = std::make_shared<PendingConnect>(io(), sys, rng, adopt_plan(plan({}, kernel_range_policy()), fd));
    c->start([&run](ConnectOutcome o) {
        ++run.done_calls;
        run.out = std::move(o);
    }, [&](ConnectOutcome) { told = true; });
    EXPECT_TRUE(told);
    run_loop();
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_EQ(run.out->err, kAdoptedFailureUnseen);
    EXPECT_FALSE(run.out->fd);
    for (const auto& g : sys.of(Call::getsockopt)) EXPECT_NE(g.name, SO_ERROR);
    EXPECT_EQ(sockets_open(), 0u) << "egressd's copy is closed";
}

TEST_F(ConnectorTest, AdoptedIpv6SocketReachesAnIpv4DestinationMapped) {
    const int fd = sys.adopt_socket({.domain = AF_INET6});
    Reported run;
    start(adopt_plan(plan({ip("192.0.2.1")}, kernel_range_policy()), fd, true), run);
    ASSERT_EQ(run.done_calls, 1);
    ASSERT_EQ(run.out->err, 0) << run.out->message;
    EXPECT_EQ(sys.of(Call::bind).at(0).addr, ip("::ffff:192.0.2.1"));
    EXPECT_EQ(sys.of(Call::connect).at(0).addr, ep("[::ffff:192.0.2.80]:443"));
    // Reported as the IPv4 endpoints the policy judged.
    EXPECT_EQ(run.out->remote, ep("192.0.2.80:443"));
    EXPECT_EQ(run.out->local, ep("192.0.2.1:40000"));
}

TEST_F(ConnectorTest, AdoptedConnectThatFailsAtOnceClosesOnlyEgressdsCopy) {
    const int fd = sys.adopt_socket();
    sys.connect_results = {ENETUNREACH};
    Reported run;
    start(adopt_plan(plan({}, kernel_range_policy()), fd), run);
    ASSERT_EQ(run.done_calls, 1);
    EXPECT_EQ(run.out->err, ENETUNREACH);
    EXPECT_EQ(sockets_open(), 0u);
}

}  // namespace
}  // namespace egress
