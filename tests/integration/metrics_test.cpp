// /metrics as Prometheus sees it: after a known mix of outcomes, every
// counter matches what the clients were told.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include "egress_client.hpp"
#include "harness.hpp"

namespace egress::test {
namespace {

std::string series(const std::string& name, const std::string& labels) { return name + "{" + labels + "}"; }

TEST(Metrics, CountersMatchAKnownMixOfOutcomes) {
    Listener sink(Listener::Mode::hold);
    // Pool w: 40 ports in windows of 4 from one source, so filling it forces
    // window retries. Pool k: the whole range of one source, for parity.
    Daemon d(R"({"pools": {
                   "w": {"sources": ["127.0.0.2"], "port_strategy": "window", "window_size": 4,
                         "max_window_retries": 8, "port_range": "45000-45039", "client_selectable": true},
                   "k": {"sources": ["127.0.0.3"], "port_strategy": "kernel-range", "client_selectable": true},
                   "t": {"client_selectable": true}},
                 "default_pool": "k"})");
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);

    std::vector<Connected> held;
    std::uint64_t w_ok = 0, w_retries = 0, w_exhausted = 0;
    for (int i = 0; i < 41; ++i) {  // 40 fit, the 41st finds the pool exhausted
        auto r = c->connect(sink.endpoint(), {.pool = "w"});
        if (r) {
            ++w_ok;
            w_retries += r->meta.attempts - 1;
            held.push_back(std::move(*r));
        } else {
            ASSERT_EQ(r.error().code, EADDRNOTAVAIL) << r.error().message;
            ++w_exhausted;
        }
    }
    std::uint64_t k_ok = 0, k_switches = 0, refused = 0, timeouts = 0;
    for (int i = 0; i < 25; ++i) {
        auto r = c->connect(sink.endpoint(), {.pool = "k"});
        ASSERT_TRUE(r) << r.error().message;
        ++k_ok;
        k_switches += (r->meta.local->port & 1) != (40000 & 1);  // the namespace's range starts at 40000
        held.push_back(std::move(*r));
    }
    for (int i = 0; i < 3; ++i) refused += c->connect(closed_port(), {.pool = "k"}).error().code == ECONNREFUSED;
    for (int i = 0; i < 2; ++i)
        timeouts += c->connect(*parse_address(kBlackHole, 80), {.timeout_ms = 100, .pool = "t"}).error().code == ETIMEDOUT;
    EXPECT_EQ(refused, 3u);
    EXPECT_EQ(timeouts, 2u);
    EXPECT_EQ(w_ok, 40u);
    EXPECT_EQ(w_exhausted, 1u);
    EXPECT_GT(w_retries, 0u);

    const auto m = d.scrape();
    ASSERT_FALSE(m.empty()) << "no metrics at port " << d.metrics_port();
    const auto W = R"(pool="w",)", K = R"(pool="k",)";
    EXPECT_EQ(metric_value(m, series("egress_connects_total", std::string(W) + R"(result="ok",source="127.0.0.2")")), w_ok);
    EXPECT_EQ(metric_value(m, series("egress_connects_total", std::string(W) + R"(result="EADDRNOTAVAIL",source="127.0.0.2")")),
              w_exhausted);
    // Retries: the tries after the first, for the 40 successes and the exhausted one (its 10 tries).
    EXPECT_EQ(metric_value(m, series("egress_port_window_retries_total", std::string(W) + R"(source="127.0.0.2")")),
              w_retries + 9);
    EXPECT_EQ(metric_value(m, series("egress_connects_total", std::string(K) + R"(result="ok",source="127.0.0.3")")), k_ok);
    EXPECT_EQ(metric_value(m, series("egress_connects_total", std::string(K) + R"(result="ECONNREFUSED",source="127.0.0.3")")),
              refused);
    EXPECT_EQ(metric_value(m, R"(egress_connects_total{pool="t",result="ETIMEDOUT",source="kernel"})"), timeouts);
    EXPECT_EQ(metric_value(m, series("egress_port_parity_switches_total", std::string(K) + R"(source="127.0.0.3")")),
              k_switches);
    const double even = metric_value(m, series("egress_connect_duration_seconds_count",
                                               std::string(K) + R"(port_parity="even",result="ok",source="127.0.0.3")"));
    const double odd = metric_value(m, series("egress_connect_duration_seconds_count",
                                              std::string(K) + R"(port_parity="odd",result="ok",source="127.0.0.3")"));
    EXPECT_EQ(even + odd, k_ok);
    EXPECT_EQ(odd, k_switches);  // the range starts even, so every odd port is a switch
    EXPECT_EQ(metric_value(m, "egress_fd_handoffs_total"), w_ok + k_ok);
    EXPECT_EQ(metric_value(m, "egress_requests_in_flight"), 0);
    EXPECT_EQ(metric_value(m, "egress_clients_connected"), 1);
    EXPECT_EQ(metric_value(m, "egress_request_duration_seconds_count"), 41 + 25 + 3 + 2);
    EXPECT_GT(metric_value(m, "process_open_fds"), 0);
    EXPECT_GT(metric_value(m, "process_resident_memory_bytes"), 0);
    EXPECT_NE(m.find("egress_build_info{"), std::string::npos);
    EXPECT_EQ(m.find("198.18.0.2"), std::string::npos) << "a destination address leaked into a label";
}

TEST(Metrics, ProtocolErrorsAndDropsAreCountedByKind) {
    Daemon d;
    auto raw = raw_connect(d.socket());
    const std::uint8_t junk[] = {'n', 'o', 'p', 'e'};
    ASSERT_EQ(::send(raw.get(), junk, sizeof junk, 0), 4);
    char buf[64];
    EXPECT_EQ(::recv(raw.get(), buf, sizeof buf, 0), 0);  // dropped
    auto c = Client::open(d.socket());
    auto r = c->connect(*parse_address("127.0.0.1", 9), {.pool = "nope"});
    EXPECT_EQ(r.error().code, ENOENT);
    const auto m = d.scrape();
    EXPECT_EQ(metric_value(m, R"(egress_protocol_errors_total{kind="unframed"})"), 1);
    EXPECT_EQ(metric_value(m, R"(egress_clients_dropped_total{reason="unframed"})"), 1);
    EXPECT_EQ(metric_value(m, R"(egress_protocol_errors_total{kind="pool"})"), 1);
}

}  // namespace
}  // namespace egress::test
