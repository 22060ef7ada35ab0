// egressd with several event loops: each accepted client goes to the loop
// with the fewest clients (ties round-robin) and stays there; STATUS shows
// the loops; what the loops share (per-uid quotas, metrics, a reload's
// config) holds across them.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <numeric>
#include <optional>
#include <nlohmann/json.hpp>

#include "egress_client.hpp"
#include "harness.hpp"

namespace egress::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

std::vector<int> loop_clients(Client& c) {
    auto text = c.status();
    if (!text) {
        ADD_FAILURE() << text.error().message;
        return {};
    }
    const auto st = json::parse(*text);
    std::vector<int> out;
    if (!st.contains("loops")) ADD_FAILURE() << *text;
    for (const auto& l : st.value("loops", json::array())) out.push_back(l.at("clients").get<int>());
    return out;
}

int loop_total(Client& c) {
    const auto l = loop_clients(c);
    return std::accumulate(l.begin(), l.end(), 0);
}

int task_count(pid_t pid) {
    int n = 0;
    if (DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/task").c_str())) {
        while (const dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
        ::closedir(d);
    }
    return n;
}

TEST(Threads, ClientsGoToTheLoopWithFewest) {
    Daemon d("", {"--threads", "3"});
    {
        auto probe = Client::open(d.socket());
        ASSERT_TRUE(probe);
        auto st = json::parse(*probe->status());
        EXPECT_EQ(st["threads"], 3);
        ASSERT_EQ(st["loops"].size(), 3u);
        EXPECT_GE(task_count(d.pid()), 3);
    }
    // Clients opened one at a time, each located by the loop whose count
    // went up; clients[0] asks for the counts.
    std::vector<std::optional<Client>> clients;
    std::vector<std::size_t> home;
    auto first = Client::open(d.socket());
    ASSERT_TRUE(first);
    clients.emplace_back(std::move(*first));
    const auto total = [](const std::vector<int>& l) { return std::accumulate(l.begin(), l.end(), 0); };
    ASSERT_TRUE(eventually([&] { return total(loop_clients(*clients[0])) == 1; }));  // the probe is gone
    const auto counts0 = loop_clients(*clients[0]);
    home.push_back(static_cast<std::size_t>(std::find(counts0.begin(), counts0.end(), 1) - counts0.begin()));
    const auto open_one = [&] {
        const auto before = loop_clients(*clients[0]);
        auto c = Client::open(d.socket());
        ASSERT_TRUE(c) << c.error().message;
        clients.emplace_back(std::move(*c));
        std::vector<int> after;
        ASSERT_TRUE(eventually([&] { return total(after = loop_clients(*clients[0])) == total(before) + 1; }));
        std::size_t i = 0;
        while (i < after.size() && after[i] == before[i]) ++i;
        ASSERT_LT(i, after.size());
        home.push_back(i);
    };
    for (int i = 1; i < 6; ++i) ASSERT_NO_FATAL_FAILURE(open_one());
    EXPECT_EQ(loop_clients(*clients[0]), (std::vector<int>{2, 2, 2}));

    // Empty a loop that clients[0] is not on: the next two clients both go
    // there, where round-robin alone would spread them.
    const std::size_t empty = (home[0] + 1) % 3;
    for (std::size_t k = 1; k < clients.size(); ++k)
        if (home[k] == empty) clients[k].reset();
    std::vector<int> expect{2, 2, 2};
    expect[empty] = 0;
    EXPECT_TRUE(eventually([&] { return loop_clients(*clients[0]) == expect; }))
        << json(loop_clients(*clients[0])).dump();
    for (int i = 0; i < 2; ++i) {
        ASSERT_NO_FATAL_FAILURE(open_one());
        EXPECT_EQ(home.back(), empty);
    }
    EXPECT_EQ(loop_clients(*clients[0]), (std::vector<int>{2, 2, 2}));

    // Every loop serves its clients, all at once.
    Listener echo(Listener::Mode::echo);
    std::erase_if(clients, [](const auto& c) { return !c; });
    for (auto& c : clients)
        for (int k = 0; k < 20; ++k) ASSERT_TRUE(c->submit(echo.endpoint()));
    int ok = 0;
    for (auto& c : clients)
        for (int k = 0; k < 20; ++k) {
            auto r = c->next();
            ASSERT_TRUE(r);
            ok += static_cast<bool>(r->result);
        }
    EXPECT_EQ(ok, 6 * 20);
    EXPECT_EQ(metric_value(d.scrape(), R"(egress_connects_total{pool="default",result="ok",source="kernel",transport="tcp"})"),
              6 * 20);
}

// Two clients of a two-loop egressd, one on each loop.
void one_on_each_loop(const Daemon& d, std::optional<Client>& a, std::optional<Client>& b) {
    auto first = Client::open(d.socket());
    ASSERT_TRUE(first);
    a.emplace(std::move(*first));
    ASSERT_TRUE(eventually([&] { return loop_total(*a) == 1; }));  // the start-up probe is gone
    auto second = Client::open(d.socket());
    ASSERT_TRUE(second);
    b.emplace(std::move(*second));
    ASSERT_TRUE(eventually([&] { return loop_clients(*a) == std::vector<int>{1, 1}; }));
}

// The per-uid in-flight limit counts requests of one uid on every loop.
TEST(Threads, PerUidQuotaHoldsAcrossLoops) {
    Daemon d(R"({"default_client": {"name": "everyone", "limits": {"max_inflight_per_uid": 4},
                 "destinations": [{"action": "allow", "dest": "127.0.0.0/8"}]}})",
             {"--threads", "2"});
    std::optional<Client> a, b;
    ASSERT_NO_FATAL_FAILURE(one_on_each_loop(d, a, b));

    const auto hole = *parse_address(kBlackHole, 80);
    for (int i = 0; i < 4; ++i) {
        ASSERT_TRUE(a->submit(hole, {.timeout_ms = 3000}));
        ASSERT_TRUE(b->submit(hole, {.timeout_ms = 3000}));
    }
    int refused = 0, timed_out = 0;
    for (auto* c : {&*a, &*b})
        for (int i = 0; i < 4; ++i) {
            auto r = c->next();
            ASSERT_TRUE(r);
            ASSERT_FALSE(r->result);
            refused += r->result.error().code == EAGAIN;
            timed_out += r->result.error().code == ETIMEDOUT;
        }
    EXPECT_EQ(refused, 4);
    EXPECT_EQ(timed_out, 4);
    EXPECT_EQ(metric_value(d.scrape(), R"(egress_quota_refusals_total{limit="max_inflight_per_uid",rule="everyone"})"),
              4);
}

// A reload's config reaches every loop: a destination allowed before is
// refused after, on both loops.
TEST(Threads, ReloadReachesEveryLoop) {
    Listener echo(Listener::Mode::echo);
    Daemon d("", {"--threads", "2"});
    std::optional<Client> a, b;
    ASSERT_NO_FATAL_FAILURE(one_on_each_loop(d, a, b));
    ASSERT_TRUE(a->connect(echo.endpoint()));
    ASSERT_TRUE(b->connect(echo.endpoint()));

    std::ofstream(d.dir() + "/config.json") << R"({"default_client": {"name": "none", "destinations": []}})";
    ::kill(d.pid(), SIGHUP);
    ASSERT_TRUE(eventually([&] { return json::parse(*a->status())["config_generation"] == 2; }));
    for (auto* c : {&*a, &*b}) {
        auto r = c->connect(echo.endpoint());
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().code, EACCES) << r.error().message;
    }
}

}  // namespace
}  // namespace egress::test
