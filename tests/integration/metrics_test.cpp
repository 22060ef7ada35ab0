// /metrics as Prometheus sees it: after a known mix of outcomes, every
// counter matches what the clients were told.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "egress_client.hpp"
#include "harness.hpp"
#include "sockaddr.hpp"

namespace egress::test {
namespace {

std::string series(const std::string& name, const std::string& labels) { return name + "{" + labels + "}"; }

// Whether this kernel searches a socket's own port range (IP_LOCAL_PORT_RANGE)
// parity first: before 6.8 it does, from 6.8 it scans the range in one pass.
bool ranged_search_prefers_parity() {
    utsname u{};
    int major = 0, minor = 0;
    if (::uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return true;
    return major < 6 || (major == 6 && minor < 8);
}

// Narrows the namespace's net.ipv4.ip_local_port_range for one test and
// puts the old value back. egressd reads it at start: construct this first.
class PortRangeSysctl {
public:
    explicit PortRangeSysctl(const std::string& range) {
        std::ifstream(kPath) >> lo_ >> hi_;
        std::ofstream(kPath) << range;
    }
    ~PortRangeSysctl() { std::ofstream(kPath) << lo_ << " " << hi_; }

private:
    static constexpr const char* kPath = "/proc/sys/net/ipv4/ip_local_port_range";
    int lo_ = 40000, hi_ = 59999;
};

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
    std::uint64_t k_ok = 0, k_odd = 0, refused = 0, timeouts = 0;
    for (int i = 0; i < 25; ++i) {
        auto r = c->connect(sink.endpoint(), {.pool = "k"});
        ASSERT_TRUE(r) << r.error().message;
        ++k_ok;
        k_odd += (r->meta.local->port & 1) != (40000 & 1);  // the namespace's range starts at 40000
        held.push_back(std::move(*r));
    }
    // A per-socket range is searched parity first only before 6.8.
    const std::uint64_t k_switches = ranged_search_prefers_parity() ? k_odd : 0;
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
    EXPECT_EQ(metric_value(m, series("egress_connects_total", std::string(W) + R"(result="ok",source="127.0.0.2",transport="tcp")")), w_ok);
    EXPECT_EQ(metric_value(m, series("egress_connects_total", std::string(W) + R"(result="EADDRNOTAVAIL",source="127.0.0.2",transport="tcp")")),
              w_exhausted);
    // Retries: the tries after the first, for the 40 successes and the exhausted one (its 10 tries).
    EXPECT_EQ(metric_value(m, series("egress_port_window_retries_total", std::string(W) + R"(source="127.0.0.2",transport="tcp")")),
              w_retries + 9);
    EXPECT_EQ(metric_value(m, series("egress_connects_total", std::string(K) + R"(result="ok",source="127.0.0.3",transport="tcp")")), k_ok);
    EXPECT_EQ(metric_value(m, series("egress_connects_total", std::string(K) + R"(result="ECONNREFUSED",source="127.0.0.3",transport="tcp")")),
              refused);
    EXPECT_EQ(metric_value(m, R"(egress_connects_total{pool="t",result="ETIMEDOUT",source="kernel",transport="tcp"})"), timeouts);
    EXPECT_EQ(metric_value(m, series("egress_port_parity_switches_total", std::string(K) + R"(source="127.0.0.3",transport="tcp")")),
              k_switches);
    const double even = metric_value(m, series("egress_connect_duration_seconds_count",
                                               std::string(K) + R"(port_parity="even",result="ok",source="127.0.0.3",transport="tcp")"));
    const double odd = metric_value(m, series("egress_connect_duration_seconds_count",
                                              std::string(K) + R"(port_parity="odd",result="ok",source="127.0.0.3",transport="tcp")"));
    EXPECT_EQ(even + odd, k_ok);
    EXPECT_EQ(odd, k_odd);  // port_parity is the local port's, whatever the kernel
    EXPECT_EQ(metric_value(m, "egress_fd_handoffs_total"), w_ok + k_ok);
    EXPECT_EQ(metric_value(m, "egress_requests_in_flight"), 0);
    EXPECT_EQ(metric_value(m, "egress_clients_connected"), 1);
    EXPECT_EQ(metric_value(m, "egress_request_duration_seconds_count"), 41 + 25 + 3 + 2);
    EXPECT_GT(metric_value(m, "process_open_fds"), 0);
    EXPECT_GT(metric_value(m, "process_resident_memory_bytes"), 0);
    EXPECT_NE(m.find("egress_build_info{"), std::string::npos);
    EXPECT_EQ(m.find(kBlackHole), std::string::npos) << "a destination address leaked into a label";
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

TEST(Metrics, PromtoolAcceptsTheExposition) {
    Listener sink(Listener::Mode::hold);
    Daemon d;
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->connect(sink.endpoint()));
    EXPECT_FALSE(c->connect(closed_port()));
    EXPECT_FALSE(c->connect(sink.endpoint(), {.pool = "nope"}));
    const auto text = d.scrape();
    ASSERT_FALSE(text.empty());
    auto r = run({"/usr/bin/promtool", "check", "metrics"}, text);
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_EQ(r.out + r.err, "") << "promtool has lint findings";
}

// On 6.8+ a kernel-range pool (what `auto` picks there) lands on either
// parity about half the time, and that is not the slow path: no switches.
TEST(Metrics, KernelRangeConnectsOnBothParitiesCountNoSwitchesWithoutAParityPreference) {
    Listener sink(Listener::Mode::hold);
    Daemon d(R"({"pools": {"k": {"sources": ["127.0.0.3"], "port_strategy": "kernel-range"}}, "default_pool": "k"})");
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    std::vector<Connected> held;
    std::uint64_t odd = 0;
    for (int i = 0; i < 200; ++i) {
        auto r = c->connect(sink.endpoint());
        ASSERT_TRUE(r) << r.error().message;
        odd += r->meta.local->port & 1;
        held.push_back(std::move(*r));
    }
    const auto m = d.scrape();
    const auto K = std::string(R"(pool="k",)");
    EXPECT_EQ(metric_value(m, series("egress_connect_duration_seconds_count", K + R"(port_parity="odd",result="ok",source="127.0.0.3",transport="tcp")")),
              odd);
    EXPECT_EQ(metric_value(m, series("egress_connect_duration_seconds_count", K + R"(port_parity="even",result="ok",source="127.0.0.3",transport="tcp")")),
              200 - odd);
    const double switches = metric_value(m, series("egress_port_parity_switches_total", K + R"(source="127.0.0.3",transport="tcp")"));
    if (ranged_search_prefers_parity()) {
        EXPECT_EQ(switches, odd);  // before 6.8 the range's even half comes first
    } else {
        EXPECT_GT(odd, 0u) << "a contiguous scan should land on both parities";
        EXPECT_LT(odd, 200u) << "a contiguous scan should land on both parities";
        EXPECT_EQ(switches, 0);
    }
}

// A plain connect (kernel-default) is searched parity first on every kernel:
// with 10 even ports in the range, 10 connects to one destination take them
// all, and every further one is a switch.
TEST(Metrics, KernelDefaultPoolPastItsPreferredHalfCountsSwitches) {
    PortRangeSysctl narrow("40000 40019");
    Listener sink(Listener::Mode::hold);
    Daemon d(R"({"pools": {"d": {"sources": ["127.0.0.4"], "port_strategy": "kernel-default"}}, "default_pool": "d"})");
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    std::vector<Connected> held;
    std::vector<std::uint16_t> ports;
    for (int i = 0; i < 15; ++i) {
        auto r = c->connect(sink.endpoint());
        ASSERT_TRUE(r) << r.error().message;
        ports.push_back(r->meta.local->port);
        held.push_back(std::move(*r));
    }
    for (int i = 0; i < 10; ++i) EXPECT_EQ(ports[i] % 2, 0) << "connect " << i << " port " << ports[i];
    for (int i = 10; i < 15; ++i) EXPECT_EQ(ports[i] % 2, 1) << "connect " << i << " port " << ports[i];
    const auto m = d.scrape();
    EXPECT_EQ(metric_value(m, R"(egress_port_parity_switches_total{pool="d",source="127.0.0.4",transport="tcp"})"), 5);
    EXPECT_EQ(metric_value(m, R"(egress_connects_total{pool="d",result="ok",source="127.0.0.4",transport="tcp"})"), 15);
}

// Opens `n` TCP connections to 127.0.0.1:`port` that send nothing.
std::vector<UniqueFd> idle_connections(int port, int n) {
    std::vector<UniqueFd> out;
    const auto sa = to_sockaddr(*parse_address("127.0.0.1", static_cast<std::uint16_t>(port)));
    for (int i = 0; i < n; ++i) {
        UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        EXPECT_EQ(::connect(fd.get(), sa.get(), sa.len), 0) << std::strerror(errno);
        out.push_back(std::move(fd));
    }
    return out;
}

// Any local user can connect to the metrics port and say nothing: ten such
// connections, kept open, must not keep a scrape waiting.
TEST(Metrics, TenIdleConnectionsDoNotDelayAScrape) {
    Daemon d;
    ASSERT_FALSE(d.scrape().empty());
    const auto idle = idle_connections(d.metrics_port(), 10);
    const auto t0 = std::chrono::steady_clock::now();
    const auto text = d.scrape();
    const double ms = ms_since(t0);
    EXPECT_NE(text.find("egress_build_info{"), std::string::npos) << "no exposition after " << ms << " ms";
    EXPECT_LT(ms, 1000) << "a scrape behind 10 idle connections took " << ms << " ms";
}

// The idle connections do not hold egressd up at SIGTERM either.
TEST(Metrics, IdleConnectionsDoNotDelayShutdown) {
    Daemon d;
    const auto idle = idle_connections(d.metrics_port(), 10);
    while (d.log().find(" listening on ") == std::string::npos) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const auto t0 = std::chrono::steady_clock::now();
    ::kill(d.pid(), SIGTERM);
    while (d.alive() && ms_since(t0) < 5000) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_LT(ms_since(t0), 1000) << "egressd took this long to exit on SIGTERM";
}  // ~Daemon checks the exit status

// A metrics port someone else listens on fails start-up, and the message
// says which port and which errno, not civetweb's "null context".
TEST(Metrics, BusyMetricsPortFailsStartUpNamingPortAndErrno) {
    Listener squatter(Listener::Mode::hold);
    const auto listen = "127.0.0.1:" + std::to_string(squatter.endpoint().port);
    char tmpl[] = "/tmp/egressd-busy.XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    // `timeout`: should egressd start after all, the test fails instead of hanging.
    const auto r = run({"/usr/bin/timeout", "10", egressd_bin(), "--socket", dir + "/egressd.sock",
                        "--metrics-listen", listen});
    std::system(("rm -rf " + dir).c_str());
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.status, 124) << "egressd started on a busy metrics port";
    EXPECT_NE(r.err.find("cannot serve metrics on " + listen + ": EADDRINUSE (Address already in use)"),
              std::string::npos)
        << r.err;
}

// A real Prometheus (Debian's), on loopback in the test namespace, scrapes
// egressd every second; its HTTP API then answers queries over our series.
class RealPrometheus {
public:
    explicit RealPrometheus(int target_port) {
        char tmpl[] = "/tmp/egressd-prom.XXXXXX";
        dir_ = ::mkdtemp(tmpl);
        std::ofstream(dir_ + "/prometheus.yml") << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                                                   "scrape_configs:\n  - job_name: egressd\n    static_configs:\n"
                                                   "      - targets: ['127.0.0.1:" << target_port << "']\n";
        pid_ = ::fork();
        if (pid_ == 0) {
            const int log = ::open((dir_ + "/prometheus.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            ::dup2(log, 1);
            ::dup2(log, 2);
            ::execl("/usr/bin/prometheus", "prometheus", ("--config.file=" + dir_ + "/prometheus.yml").c_str(),
                    ("--storage.tsdb.path=" + dir_ + "/data").c_str(), "--web.listen-address=127.0.0.1:29090",
                    static_cast<char*>(nullptr));
            ::_exit(127);
        }
    }
    ~RealPrometheus() {
        ::kill(pid_, SIGTERM);
        int st;
        ::waitpid(pid_, &st, 0);
        if (::testing::Test::HasFailure()) {
            std::ifstream in(dir_ + "/prometheus.log");
            std::stringstream s;
            s << in.rdbuf();
            std::fprintf(stderr, "--- prometheus log ---\n%s\n", s.str().c_str());
        }
        std::system(("rm -rf " + dir_).c_str());
    }
    // The "result" array of an instant query (null on failure).
    nlohmann::json query(const std::string& promql) const {
        std::string q;
        for (unsigned char ch : promql) {
            if (std::isalnum(ch) || ch == '_' || ch == '.') q += static_cast<char>(ch);
            else {
                char hex[4];
                std::snprintf(hex, sizeof hex, "%%%02X", ch);
                q += hex;
            }
        }
        const auto body = http_get(29090, "/api/v1/query?query=" + q);
        const auto j = nlohmann::json::parse(body, nullptr, false);
        if (j.is_discarded() || j.value("status", "") != "success") return nullptr;
        return j["data"]["result"];
    }
    // Polls `promql` until it returns a non-empty result (safety bound).
    nlohmann::json wait_for(const std::string& promql, std::chrono::seconds bound = std::chrono::seconds(30)) const {
        const auto t0 = std::chrono::steady_clock::now();
        for (;;) {
            auto r = query(promql);
            if (r.is_array() && !r.empty()) return r;
            if (ms_since(t0) > static_cast<double>(bound.count()) * 1000) return nullptr;
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
    }

private:
    std::string dir_;
    pid_t pid_ = -1;
};

TEST(Metrics, ARealPrometheusScrapesAndQueriesEgressd) {
    Listener sink(Listener::Mode::hold);
    Daemon d(R"({"pools": {"p": {"sources": ["127.0.0.2"], "port_strategy": "window"}}, "default_pool": "p"})");
    RealPrometheus prom(d.metrics_port());
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    std::vector<Connected> held;
    // Traffic before and after the first scrapes, so rate() has two points.
    for (int i = 0; i < 50; ++i) held.push_back(std::move(*c->connect(sink.endpoint())));
    ASSERT_FALSE(prom.wait_for(R"(up{job="egressd"} == 1)").is_null()) << "Prometheus never scraped egressd";
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    for (int i = 0; i < 50; ++i) held.push_back(std::move(*c->connect(sink.endpoint())));

    const auto total = prom.wait_for(R"(egress_connects_total{pool="p",result="ok"} >= 100)");
    ASSERT_FALSE(total.is_null()) << "egress_connects_total never reached 100 in Prometheus";
    EXPECT_EQ(total[0]["metric"]["source"], "127.0.0.2");
    const auto p99 = prom.wait_for(
        R"(histogram_quantile(0.99, sum by (le) (rate(egress_connect_duration_seconds_bucket{pool="p"}[30s]))) > 0)");
    ASSERT_FALSE(p99.is_null()) << "no histogram_quantile over egress_connect_duration_seconds";
    const double seconds = std::stod(p99[0]["value"][1].get<std::string>());
    EXPECT_GT(seconds, 0);
    EXPECT_LT(seconds, 10);
}

TEST(Status, ReportsPoolsSourcesAndWorkInFlight) {
    Listener sink(Listener::Mode::hold);
    Daemon d(R"({"pools": {"p": {"sources": ["127.0.0.2"], "port_strategy": "window"},
                           "t": {"client_selectable": true}},
                 "default_pool": "p"})");
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(c->connect(sink.endpoint()));
    EXPECT_FALSE(c->connect(closed_port()));
    auto hanging = Client::open(d.socket());
    for (int i = 0; i < 7; ++i) ASSERT_TRUE(hanging->submit(*parse_address(kBlackHole, 80), {.timeout_ms = 20000, .pool = "t"}));

    // Through the library, while the 7 hang.
    nlohmann::json st;
    const auto t0 = std::chrono::steady_clock::now();
    do {
        auto text = c->status();
        ASSERT_TRUE(text) << text.error().message;
        st = nlohmann::json::parse(*text);
        // Admitted requests and the pool's connects are counted at two steps.
    } while ((st["requests_in_flight"] != 7 || st["pools"][1]["in_flight"] != 7) && ms_since(t0) < 5000);
    EXPECT_EQ(st["requests_in_flight"], 7);
    EXPECT_EQ(st["clients_connected"], 2);
    EXPECT_EQ(st["config_generation"], 1);
    EXPECT_EQ(st["kernel"]["ephemeral_port_range"], "40000-59999");
    ASSERT_EQ(st["pools"].size(), 2u);
    const auto& p = st["pools"][0];
    EXPECT_EQ(p["name"], "p");
    EXPECT_EQ(p["port_strategy"], "window");
    EXPECT_EQ(p["sources"][0]["address"], "127.0.0.2");
    EXPECT_EQ(p["sources"][0]["connects_ok"], 5);
    EXPECT_EQ(p["sources"][0]["errors"]["ECONNREFUSED"], 1);
    EXPECT_EQ(st["pools"][1]["in_flight"], 7);
    EXPECT_EQ(st["pools"][1]["sources"][0]["address"], "kernel");

    // Through the command line: readable, and raw JSON.
    auto readable = run({egress_connect_bin(), "--socket", d.socket(), "--status"});
    EXPECT_EQ(readable.status, 0) << readable.err;
    EXPECT_NE(readable.out.find("pool p: round-robin, window"), std::string::npos) << readable.out;
    EXPECT_NE(readable.out.find("ECONNREFUSED=1"), std::string::npos) << readable.out;
    auto raw = run({egress_connect_bin(), "--socket", d.socket(), "--status", "--json"});
    EXPECT_EQ(raw.status, 0) << raw.err;
    EXPECT_EQ(nlohmann::json::parse(raw.out)["pools"][0]["name"], "p");

    // A reload counts as a new generation.
    ::kill(d.pid(), SIGHUP);
    const auto t1 = std::chrono::steady_clock::now();
    do st = nlohmann::json::parse(*c->status());
    while (st["config_generation"] != 2 && ms_since(t1) < 5000);
    EXPECT_EQ(st["config_generation"], 2);
}

TEST(Status, ReplyArrivesBetweenConnectRepliesWithoutLosingThem) {
    Listener sink(Listener::Mode::hold);
    Daemon d;
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    auto id = c->submit(sink.endpoint());
    ASSERT_TRUE(id);
    ASSERT_TRUE(c->status());  // the CONNECT reply that came first is kept
    auto done = c->next();
    ASSERT_TRUE(done);
    EXPECT_EQ(done->request_id, *id);
    EXPECT_TRUE(done->result);
}

// A port egressd listens on is one connect() never picks: inside the range
// its pools search, egressd says so at start-up (and after a reload).
TEST(Metrics, WarnsWhenItsOwnPortLiesInsideThePortRange) {
    const auto inside = std::string("port 45000, inside net.ipv4.ip_local_port_range (40000-59999)");
    {
        Daemon d("", {"--metrics-listen", "127.0.0.1:45000"});
        EXPECT_TRUE(d.wait_log(inside)) << d.log();
    }
    {
        Daemon d(R"({"pools": {"narrow": {"port_range": "30000-31000"}}, "default_pool": "narrow"})",
                 {"--metrics-listen", "127.0.0.1:30500"});
        EXPECT_TRUE(d.wait_log("port 30500, inside pool narrow's port range (30000-31000)")) << d.log();
        EXPECT_EQ(d.log().find("ip_local_port_range ("), std::string::npos) << d.log();
    }
    Daemon quiet;  // the tests' ports lie below the namespace's range
    EXPECT_TRUE(quiet.wait_log(" listening on "));
    EXPECT_EQ(quiet.log().find("connect() never picks"), std::string::npos) << quiet.log();
}

}  // namespace
}  // namespace egress::test
