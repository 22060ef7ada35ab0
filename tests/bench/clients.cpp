// clients: many client connections at once, each pipelining requests:
// throughput, request-to-reply latency and egressd's memory per idle client.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <thread>

#include "common.hpp"
#include "netns.hpp"
#include "worker.hpp"

namespace egress::bench {
namespace {

using egress::test::enter_private_netns;
using egress::test::NetnsSetup;

constexpr std::uint32_t kClientsPerWorker = 250;

json clients_once(const Args& a, std::uint32_t clients, std::uint32_t threads) {
    const auto total = a.num("connections", 20000);
    const auto inflight = a.num("inflight", 4);
    if (!a.has("no-netns")) {
        NetnsSetup ns;
        ns.black_hole = false;
        if (auto err = enter_private_netns(ns); !err.empty()) throw std::runtime_error(err);
    }
    const auto dest = *parse_address("127.0.0.1", kDestPort);
    const auto listener = open_listener(dest);
    json cfg = {{"log_level", "warn"}, {"metrics", {{"listen", ""}}},
                {"limits", {{"max_clients", clients + 16}, {"max_inflight", 100000}}}};
    if (threads > 0) cfg["threads"] = threads;
    Egressd daemon(a, cfg);
    const auto& sock = daemon.socket();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the readiness probe's session ends
    const double rss_base = rss_bytes(daemon.pid());

    const std::uint32_t workers = (clients + kClientsPerWorker - 1) / kClientsPerWorker;
    const std::uint32_t per_client = std::max<std::uint32_t>(1, total / clients);
    std::vector<Child> kids;
    for (std::uint32_t w = 0; w < workers; ++w) {
        const auto m = clients / workers + (w < clients % workers ? 1 : 0);
        kids.push_back(spawn({self_exe(), "worker", "--socket", sock, "--dest", endpoint_string(dest), "--clients",
                              std::to_string(m), "--per-client", std::to_string(per_client), "--inflight",
                              std::to_string(inflight)}));
    }
    for (auto& c : kids)
        if (read_line(c) != "connected") throw std::runtime_error("a worker could not connect its clients");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // egressd has accepted them all
    const double rss_idle = rss_bytes(daemon.pid());
    const double cpu_at_start = cpu_seconds(daemon.pid());
    for (auto& c : kids) (void)!::write(c.in.get(), "go\n", 3);
    WorkerResult total_r;
    for (auto& c : kids) {
        const auto line = read_line(c);
        if (line.empty()) throw std::runtime_error("a worker died without a report");
        total_r.merge(WorkerResult::from_json(json::parse(line)));
    }
    const double cpu_s = cpu_seconds(daemon.pid()) - cpu_at_start;
    for (auto& c : kids) reap(c);
    daemon.stop();
    auto j = total_r.summary();
    json run = {{"scenario", "clients"}, {"clients", clients}, {"threads", effective_threads(threads)},
                {"workers", workers}, {"inflight_per_client", inflight},
                {"connects", total_r.attempts}, {"errored", total_r.errored}, {"total_s", j["total_s"]},
                {"connects_per_s", total_r.total_s > 0 ? std::round(static_cast<double>(total_r.ok) / total_r.total_s) : 0},
                {"latency_ms", j["latency_ms"]}, {"rss_base_kib", std::round(rss_base / 1024)},
                {"rss_per_idle_client_bytes", std::round((rss_idle - rss_base) / clients)},
                {"errors", j["errors"]}, {"messages", j["messages"]}};
    add_cpu_figures(run, cpu_s, total_r.ok);
    return run;
}

}  // namespace

int cmd_clients(const Args& a) {
    const auto levels = number_list(a, "clients", "1,10,100,1000");
    for (auto c : levels)
        if (c == 0 || c > 5000) usage("--clients takes 1-5000 per level");
    std::vector<json> runs;
    for (auto t : thread_counts(a))
        for (auto c : levels) {
            auto j = in_child([&] { return clients_once(a, c, t); });
            if (!j.contains("error")) j["label"] = std::to_string(c) + " clients";
            runs.push_back(std::move(j));
        }
    if (a.has("json")) {
        for (const auto& j : runs) std::cout << j.dump() << "\n";
    } else {
        std::printf("%8s %7s %9s %8s %9s %12s %9s %9s %9s %16s\n", "clients", "threads", "connects", "errored",
                    "total_s", "connects/s", "p50_ms", "p99_ms", "max_ms", "rss/idle client");
        for (const auto& j : runs) {
            if (j.contains("error")) {
                std::printf("error: %s\n", j["error"].get<std::string>().c_str());
                continue;
            }
            const auto& l = j["latency_ms"];
            std::printf("%8u %7u %9llu %8llu %9.3f %12.0f %9.4f %9.4f %9.3f %14.0f B\n", j["clients"].get<unsigned>(),
                        j["threads"].get<unsigned>(), j["connects"].get<unsigned long long>(),
                        j["errored"].get<unsigned long long>(), j["total_s"].get<double>(),
                        j["connects_per_s"].get<double>(), l.value("p50", 0.0), l.value("p99", 0.0),
                        l.value("max", 0.0), j["rss_per_idle_client_bytes"].get<double>());
        }
        print_thread_scaling(runs, "level");
    }
    for (const auto& j : runs)
        if (j.contains("error") || j["errored"].get<unsigned long long>() > 0) return 1;
    return 0;
}

}  // namespace egress::bench
