// Client rules' quotas against the real egressd: requests in flight per
// connection and per uid, requests per second per uid, connections per uid,
// each refused at once with EAGAIN naming rule and limit and counted; other
// clients served meanwhile; counts across a reload; the global caps.
// Limited clients run as uid 4242 in forked processes (the tests run as root).
#include <gtest/gtest.h>
#include <grp.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>
#include <fstream>
#include <functional>
#include <optional>

#include "egress_client.hpp"
#include "harness.hpp"

namespace egress::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr uid_t kSandbox = 4242;
Endpoint black_hole() { return *parse_address(kBlackHole, 80); }

// A process running as uid and gid `uid`: it runs `body`, which reports
// what it saw as lines through `say`, then keeps its connections open until
// this object is destroyed. The body must not use gtest: the parent asserts.
class AsUid {
public:
    using Say = std::function<void(const std::string&)>;
    AsUid(uid_t uid, const std::function<void(const Say&)>& body) {
        int out[2], hold[2];
        if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(hold, O_CLOEXEC) != 0) {
            ADD_FAILURE() << "pipe: " << std::strerror(errno);
            return;
        }
        pid_ = ::fork();
        if (pid_ == 0) {
            ::close(out[0]);
            ::close(hold[1]);
            if (::setgroups(0, nullptr) != 0 || ::setgid(uid) != 0 || ::setuid(uid) != 0) ::_exit(126);
            body([fd = out[1]](const std::string& line) {
                const auto text = line + "\n";
                [[maybe_unused]] auto n = ::write(fd, text.data(), text.size());
            });
            char c;
            while (::read(hold[0], &c, 1) > 0) {}  // until the parent closes its end
            ::_exit(0);
        }
        ::close(out[1]);
        ::close(hold[0]);
        out_ = UniqueFd(out[0]);
        hold_ = UniqueFd(hold[1]);
    }
    ~AsUid() {
        hold_.reset();
        for (int i = 0; i < 500 && pid_ > 0; ++i) {
            if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
            std::this_thread::sleep_for(10ms);
        }
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    // The next line the process said; "(nothing)" after `timeout` or at its end.
    std::string line(std::chrono::milliseconds timeout = 15s) {
        const auto t0 = std::chrono::steady_clock::now();
        for (;;) {
            if (const auto nl = buf_.find('\n'); nl != std::string::npos) {
                auto l = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                return l;
            }
            const auto left = timeout.count() - static_cast<long>(ms_since(t0));
            pollfd p{out_.get(), POLLIN, 0};
            if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) return "(nothing)";
            char chunk[4096];
            const auto n = ::read(out_.get(), chunk, sizeof chunk);
            if (n <= 0) return "(nothing)";
            buf_.append(chunk, static_cast<std::size_t>(n));
        }
    }

private:
    pid_t pid_ = -1;
    UniqueFd out_, hold_;
    std::string buf_;
};

// "OK" or "ERRNO message", for a child to report.
std::string outcome(const Result<Connected>& r) {
    return r ? std::string("OK") : errno_name(r.error().code) + " " + r.error().message;
}

// A daemon whose socket uid 4242 can reach; `rule` is the sandbox rule's
// extra keys, `others` the rule of everyone else (root: this process).
struct QuotaDaemon {
    explicit QuotaDaemon(const std::string& rule, const std::string& extra = "")
        : d(R"({"socket": {"mode": "0666"}, )" + extra + R"(
                "clients": [{"name": "sandbox", "match": {"uid": 4242}, )" + rule + R"(}],
                "default_client": {"name": "others", "destinations": [{"action": "allow", "dest": "127.0.0.0/8"}]}})") {
        EXPECT_EQ(::chmod(d.dir().c_str(), 0711), 0);
    }
    double metric(const std::string& series) const { return metric_value(d.scrape(), series); }
    Daemon d;
};

std::string refusals(const char* limit) {
    return std::string(R"(egress_quota_refusals_total{limit=")") + limit + R"(",rule="sandbox"})";
}

TEST(Quota, InflightPerConnectionAndPerUid) {
    QuotaDaemon q(R"("limits": {"max_inflight_per_connection": 3, "max_inflight_per_uid": 5})");
    const auto socket = q.d.socket();
    AsUid sandbox(kSandbox, [&](const AsUid::Say& say) {
        auto a = Client::open(socket), b = Client::open(socket);
        if (!a || !b) return say("cannot open: " + (a ? b.error().message : a.error().message));
        for (int i = 0; i < 4; ++i) (void)a->submit(black_hole(), {.timeout_ms = 2000});
        auto first = a->next();  // the 4th, refused at once; the others hang
        say(first ? std::to_string(first->request_id) + " " + outcome(first->result) : "next failed");
        for (int i = 0; i < 3; ++i) (void)b->submit(black_hole(), {.timeout_ms = 2000});
        first = b->next();
        say(first ? std::to_string(first->request_id) + " " + outcome(first->result) : "next failed");
        int timed_out = 0;
        const auto one = [&](Client& c) {
            auto r = c.next();
            timed_out += r && !r->result && r->result.error().code == ETIMEDOUT;
        };
        for (int i = 0; i < 3; ++i) one(*a);
        for (int i = 0; i < 2; ++i) one(*b);
        say("timed out " + std::to_string(timed_out));
        // Every slot is free again.
        say(outcome(b->connect(black_hole(), {.timeout_ms = 100})));
    });
    EXPECT_EQ(sandbox.line(), "4 EAGAIN rule 'sandbox': 3 requests in flight on this connection "
                              "(limits.max_inflight_per_connection)");
    EXPECT_EQ(sandbox.line(), "3 EAGAIN rule 'sandbox': 5 requests in flight for uid 4242 "
                              "(limits.max_inflight_per_uid)");
    // While uid 4242 is at its limits, root (rule 'others') is not.
    auto root = Client::open(q.d.socket());
    ASSERT_TRUE(root);
    Listener echo(Listener::Mode::echo);
    for (int i = 0; i < 8; ++i) ASSERT_TRUE(root->submit(black_hole(), {.timeout_ms = 100}));
    for (int i = 0; i < 8; ++i) {
        auto r = root->next();
        ASSERT_TRUE(r);
        EXPECT_EQ(r->result.error().code, ETIMEDOUT) << r->result.error().message;
    }
    auto ok = root->connect(echo.endpoint());
    EXPECT_TRUE(ok) << ok.error().message;

    EXPECT_EQ(sandbox.line(), "timed out 5");
    const auto after = sandbox.line();
    EXPECT_EQ(after.rfind("ETIMEDOUT ", 0), 0u) << "an admitted request, not " << after;
    EXPECT_EQ(q.metric(refusals("max_inflight_per_connection")), 1);
    EXPECT_EQ(q.metric(refusals("max_inflight_per_uid")), 1);
    EXPECT_EQ(q.metric(R"(egress_protocol_errors_total{kind="quota"})"), 2);
    auto status = json::parse(*root->status());
    EXPECT_EQ(status["clients"][0]["name"], "sandbox");
    EXPECT_EQ(status["clients"][0]["throttled"], 2);
    EXPECT_EQ(status["clients"][0]["limits"], json::parse(R"({"max_inflight_per_connection": 3,
                                                              "max_inflight_per_uid": 5})"));
    EXPECT_EQ(status["clients"][1]["throttled"], 0);
}

TEST(Quota, RequestsPerSecondArePerUid) {
    Listener echo(Listener::Mode::echo);
    QuotaDaemon q(R"("destinations": [{"action": "allow", "dest": "127.0.0.0/8"}],
                     "limits": {"requests_per_second": 0.5, "burst": 3})");
    const auto socket = q.d.socket();
    const auto to = echo.endpoint();
    AsUid sandbox(kSandbox, [&](const AsUid::Say& say) {
        auto a = Client::open(socket);
        if (!a) return say("cannot open: " + a.error().message);
        for (int i = 0; i < 3; ++i) say(outcome(a->connect(to)));
        say(outcome(a->connect(to)));  // over the burst
        // A second connection of the same uid draws on the same bucket.
        auto b = Client::open(socket);
        if (!b) return say("cannot open: " + b.error().message);
        say(outcome(b->connect(to)));
        auto st = b->status();
        say(st ? "status OK" : errno_name(st.error().code) + " " + st.error().message);
        // Retrying: a token comes back within 2 s (0.5 per second).
        const auto t0 = std::chrono::steady_clock::now();
        int refused = 0;
        for (;;) {
            auto r = b->connect(to);
            if (r || r.error().code != EAGAIN || ms_since(t0) > 10000) {
                say(outcome(r));
                break;
            }
            ++refused;
            std::this_thread::sleep_for(50ms);
        }
        say("refused " + std::to_string(refused) + " in " + std::to_string(static_cast<long>(ms_since(t0))) + " ms");
    });
    for (int i = 0; i < 3; ++i) EXPECT_EQ(sandbox.line(), "OK") << i;
    const auto over = sandbox.line();
    EXPECT_EQ(over.rfind("EAGAIN rule 'sandbox': uid 4242 is over 0.5 requests per second, burst 3 "
                         "(limits.requests_per_second); retry in ", 0), 0u) << over;
    const auto again = sandbox.line();
    EXPECT_EQ(again.rfind("EAGAIN rule 'sandbox': uid 4242 is over", 0), 0u) << again;
    const auto status = sandbox.line();
    EXPECT_EQ(status.rfind("EAGAIN rule 'sandbox': uid 4242 is over", 0), 0u) << status;

    // Root is not throttled meanwhile.
    auto root = Client::open(q.d.socket());
    ASSERT_TRUE(root);
    for (int i = 0; i < 20; ++i) {
        auto r = root->connect(to);
        ASSERT_TRUE(r) << r.error().message;
    }
    EXPECT_TRUE(root->status());

    EXPECT_EQ(sandbox.line(), "OK");  // after a bounded wait
    const auto tally = sandbox.line();
    int refused = -1;
    long waited = -1;
    ASSERT_EQ(std::sscanf(tally.c_str(), "refused %d in %ld ms", &refused, &waited), 2) << tally;
    EXPECT_LE(waited, 10000);
    EXPECT_EQ(q.metric(refusals("requests_per_second")), 3 + refused);
    EXPECT_EQ(q.metric(R"(egress_connects_total{pool="default",result="ok",source="kernel",transport="tcp"})"), 3 + 20 + 1);
}

TEST(Quota, ConnectionsPerUid) {
    Listener echo(Listener::Mode::echo);
    QuotaDaemon q(R"("destinations": [{"action": "allow", "dest": "127.0.0.0/8"}],
                     "limits": {"max_connections_per_uid": 2})");
    const int idle = q.d.settled_fds();
    const auto socket = q.d.socket();
    const auto to = echo.endpoint();
    std::optional<AsUid> child;
    auto& sandbox = child.emplace(kSandbox, [&](const AsUid::Say& say) {
        auto a = Client::open(socket), b = Client::open(socket), c = Client::open(socket);
        if (!a || !b || !c) return say("cannot open");
        say(outcome(c->connect(to)));  // the third: refused with a reply, then closed
        say(outcome(a->connect(to)) + " " + outcome(b->connect(to)));
        *a = std::move(*c);  // closes the first connection
        // egressd sees the close asynchronously: retry a bounded number of times.
        std::string last;
        for (int i = 0; i < 100; ++i) {
            auto d = Client::open(socket);
            last = d ? outcome(d->connect(to)) : d.error().message;
            if (last == "OK") break;
            std::this_thread::sleep_for(50ms);
        }
        say(last);
    });
    EXPECT_EQ(sandbox.line(), "EAGAIN rule 'sandbox': 2 connections open for uid 4242 "
                              "(limits.max_connections_per_uid)");
    EXPECT_EQ(sandbox.line(), "OK OK") << "the two connections within the limit are served";
    // Root opens as many as it likes meanwhile.
    std::vector<Client> roots;
    for (int i = 0; i < 5; ++i) {
        auto c = Client::open(q.d.socket());
        ASSERT_TRUE(c);
        auto r = c->connect(to);
        ASSERT_TRUE(r) << r.error().message;
        roots.push_back(std::move(*c));
    }
    EXPECT_EQ(sandbox.line(), "OK") << "a connection closed makes room for another";
    const auto refused = q.metric(refusals("max_connections_per_uid"));
    EXPECT_GE(refused, 1);
    EXPECT_EQ(q.metric("egress_clients_refused_total"), 0) << "not the global max_clients";
    auto status = json::parse(*roots[0].status());
    EXPECT_EQ(status["clients"][0]["throttled"], refused);
    roots.clear();
    child.reset();
    EXPECT_EQ(q.d.wait_fds(idle), idle) << "egressd let go of every refused and closed connection";
    // uid 4242 has no connection left and no bucket to remember: only root's entry remains.
    auto root = Client::open(q.d.socket());
    ASSERT_TRUE(root);
    EXPECT_EQ(json::parse(*root->status())["quota_uids"], 1);
}

TEST(Quota, CountsSurviveAReloadAndNewLimitsApplyToNewRequests) {
    Daemon d(R"({"clients": [{"name": "root", "match": {"uid": 0}}]})");
    auto a = Client::open(d.socket());
    ASSERT_TRUE(a);
    // A reply first: egressd's loop runs, so its SIGHUP handler is in place
    // (the socket accepts before that, and SIGHUP's default action kills).
    ASSERT_TRUE(a->status());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(a->submit(black_hole(), {.timeout_ms = 1500}));
    std::ofstream(d.dir() + "/config.json")
        << R"({"clients": [{"name": "root", "match": {"uid": 0}, "limits": {"max_inflight_per_uid": 3}}]})";
    ::kill(d.pid(), SIGHUP);
    const auto t0 = std::chrono::steady_clock::now();
    while (d.log().find("reloaded configuration") == std::string::npos && ms_since(t0) < 5000)
        std::this_thread::sleep_for(10ms);
    auto b = Client::open(d.socket());
    ASSERT_TRUE(b) << b.error().message << "\n" << d.log();
    auto r = b->connect(black_hole(), {.timeout_ms = 100});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, EAGAIN) << r.error().message;
    EXPECT_EQ(r.error().message, "rule 'root': 3 requests in flight for uid 0 (limits.max_inflight_per_uid)");
    for (int i = 0; i < 3; ++i) {  // the requests admitted before the reload carry on
        auto done = a->next();
        ASSERT_TRUE(done);
        EXPECT_EQ(done->result.error().code, ETIMEDOUT) << done->result.error().message;
    }
    r = b->connect(black_hole(), {.timeout_ms = 100});
    EXPECT_EQ(r.error().code, ETIMEDOUT) << r.error().message;
}

TEST(Quota, GlobalInflightCapRefusesNewWorkAndServesTheRest) {
    Listener echo(Listener::Mode::echo);
    Daemon d(R"({"limits": {"max_inflight": 4}})");
    auto a = Client::open(d.socket()), b = Client::open(d.socket());
    ASSERT_TRUE(a && b);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(a->submit(black_hole(), {.timeout_ms = 1500}));
    // a and b may be served by different event loops: b asks once a's are in.
    ASSERT_TRUE(eventually([&] { return metric_value(d.scrape(), "egress_requests_in_flight") == 4; }));
    auto r = b->connect(echo.endpoint());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, EAGAIN);
    EXPECT_EQ(r.error().message, "egressd has 4 connects in flight (limits.max_inflight)");
    EXPECT_TRUE(b->status()) << "other requests are still answered";
    for (int i = 0; i < 4; ++i) {
        auto done = a->next();
        ASSERT_TRUE(done);
        EXPECT_EQ(done->result.error().code, ETIMEDOUT) << done->result.error().message;
    }
    r = b->connect(echo.endpoint());
    EXPECT_TRUE(r) << r.error().message;
    EXPECT_EQ(metric_value(d.scrape(), R"(egress_protocol_errors_total{kind="global_inflight_limit"})"), 1);
}

}  // namespace
}  // namespace egress::test
