// hol (head-of-line): live connects through egressd while others hang on a
// black hole; then every hanging request must be answered ETIMEDOUT.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>

#include "common.hpp"
#include "egress_client.hpp"
#include "netns.hpp"
#include "runs.hpp"
#include "worker.hpp"

namespace egress::bench {
namespace {

using egress::test::enter_private_netns;
using egress::test::kBlackHole;
using egress::test::NetnsSetup;

}  // namespace

json hol_once(const Args& a, std::uint32_t pending, bool series) {
    const auto live = a.num("live", 1000);
    const auto deadline_ms = a.num("deadline", 3000);
    if (!a.has("no-netns")) {
        if (auto err = enter_private_netns(NetnsSetup{}); !err.empty()) throw std::runtime_error(err);
    }
    const auto dest = *parse_address("127.0.0.1", kDestPort);
    const auto listener = open_listener(dest);
    const json cfg = {{"log_level", "warn"},
                      {"metrics", {{"listen", ""}}},
                      {"connect", {{"max_timeout_ms", 600000}}},
                      {"limits", {{"max_inflight", 100000}, {"max_inflight_per_client", 100000},
                                  {"max_queued_replies", 100000}}}};
    Egressd daemon(a, cfg);
    const auto& sock = daemon.socket();

    // The hanging connects: all submitted, each with its send time.
    auto stuck = Client::open(sock);
    if (!stuck) throw std::runtime_error(stuck.error().message);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const double rss_before = rss_bytes(daemon.pid());
    const auto hole = *parse_address(kBlackHole, 80);
    std::map<std::uint64_t, std::chrono::steady_clock::time_point> sent;
    for (std::uint32_t i = 0; i < pending; ++i) {
        auto id = stuck->submit(hole, {.timeout_ms = deadline_ms});
        if (!id) throw std::runtime_error(id.error().message);
        sent[*id] = std::chrono::steady_clock::now();
    }
    // Let egressd take them all in before measuring (its status counts them).
    auto live_client = Client::open(sock);
    if (!live_client) throw std::runtime_error(live_client.error().message);
    for (int i = 0; i < 500; ++i) {
        auto st = live_client->status();
        if (st && json::parse(*st).value("requests_in_flight", 0U) >= pending) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const double rss_pending = rss_bytes(daemon.pid());
    std::vector<double> lat;
    std::uint64_t live_errors = 0;
    for (std::uint32_t i = 0; i < live; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        auto r = live_client->connect(dest);
        lat.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        if (!r) ++live_errors;  // the socket, if any, closes here
    }
    // Every hanging request must come back ETIMEDOUT at its deadline.
    std::uint64_t timedout = 0, other = 0;
    std::vector<double> late;
    for (std::uint32_t i = 0; i < pending; ++i) {
        auto c = stuck->next();
        if (!c) throw std::runtime_error(c.error().message);
        const double elapsed = std::chrono::duration<double, std::milli>(
                                   std::chrono::steady_clock::now() - sent[c->request_id]).count();
        if (!c->result && c->result.error().code == ETIMEDOUT) ++timedout;
        else ++other;
        late.push_back(elapsed - deadline_ms);
    }
    daemon.stop();

    WorkerResult r;
    r.lat_even_ms = lat;  // summary() wants parity buckets; parity means nothing here
    auto j = r.summary();
    json out{{"scenario", "hol"}, {"pending", pending}, {"live", live}, {"live_errors", live_errors},
             {"latency_ms", j["latency_ms"]}, {"black_hole_answered", timedout + other},
             {"black_hole_etimedout", timedout}, {"deadline_ms", deadline_ms}};
    if (pending > 0) out["rss_per_pending_bytes"] = std::round((rss_pending - rss_before) / pending);
    if (!late.empty()) {
        std::sort(late.begin(), late.end());
        out["deadline_error_ms"] = {{"min", std::round(late.front() * 10) / 10},
                                    {"max", std::round(late.back() * 10) / 10}};
    }
    if (series) out["series"] = lat;
    return out;
}

int cmd_hol(const Args& a) {
    const auto levels = number_list(a, "pending", "0,100,1000,10000");
    for (auto p : levels)
        if (p > 15000) usage("--pending above 15000 would pass egressd's open-files cap here");
    std::vector<json> runs;
    for (auto p : levels) runs.push_back(in_child([&] { return hol_once(a, p); }));
    if (a.has("json")) {
        for (const auto& j : runs) std::cout << j.dump() << "\n";
    } else {
        std::printf("%8s %6s %9s %9s %9s %9s %12s %12s %22s\n", "pending", "live", "p50_ms", "p99_ms", "max_ms",
                    "errors", "bh_answered", "bh_ETIMEDOUT", "deadline_error_ms");
        for (const auto& j : runs) {
            if (j.contains("error")) {
                std::printf("error: %s\n", j["error"].get<std::string>().c_str());
                continue;
            }
            const auto& l = j["latency_ms"];
            std::string err = "-";
            if (j.contains("deadline_error_ms"))
                err = "+" + std::to_string(j["deadline_error_ms"]["min"].get<double>()).substr(0, 5) + " .. +" +
                      std::to_string(j["deadline_error_ms"]["max"].get<double>()).substr(0, 5);
            std::printf("%8u %6u %9.4f %9.4f %9.3f %9llu %12llu %12llu %22s\n", j["pending"].get<unsigned>(),
                        j["live"].get<unsigned>(), l.value("p50", 0.0), l.value("p99", 0.0), l.value("max", 0.0),
                        j["live_errors"].get<unsigned long long>(), j["black_hole_answered"].get<unsigned long long>(),
                        j["black_hole_etimedout"].get<unsigned long long>(), err.c_str());
            if (j.contains("rss_per_pending_bytes"))
                std::printf("%8s egressd resident memory per pending connect: %.0f bytes\n", "",
                            j["rss_per_pending_bytes"].get<double>());
        }
        if (runs.size() > 1 && !runs.front().contains("error") && !runs.back().contains("error"))
            std::printf("\nlive p99 with %u pending is %.2fx the p99 with %u pending\n",
                        runs.back()["pending"].get<unsigned>(),
                        runs.back()["latency_ms"]["p99"].get<double>() / runs.front()["latency_ms"]["p99"].get<double>(),
                        runs.front()["pending"].get<unsigned>());
    }
    for (const auto& j : runs)
        if (j.contains("error") || j["live_errors"].get<unsigned long long>() > 0 ||
            j["black_hole_etimedout"] != j["pending"])
            return 1;
    return 0;
}

}  // namespace egress::bench
