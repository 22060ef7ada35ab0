// storm: N connects to one destination, direct or through egressd, with the
// per-connect latency split by local port parity (the published experiment).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "common.hpp"
#include "netns.hpp"
#include "pool/selection.hpp"
#include "runs.hpp"
#include "worker.hpp"

namespace egress::bench {
namespace {

using egress::test::enter_private_netns;
using egress::test::NetnsSetup;

// Sockets one worker holds: under the 20,000 open-files cap with room for its
// own few descriptors. 19,500 connects thus run in one process, as egressd
// (one thread) does them: a like-for-like comparison.
constexpr std::uint32_t kPerWorker = 19900;

}  // namespace

json storm_once(const Args& a, Mode mode, const std::string& strategy, bool series, std::uint32_t threads) {
    const auto n = a.num("connections", 19500);
    const auto k = a.num("sources", 1);
    const auto range = range_arg(a);
    const auto window = a.num("window", 500);
    const bool udp = a.get("transport", "tcp") == "udp";
    if (!a.has("no-netns")) {
        NetnsSetup ns;
        ns.extra_sources = static_cast<int>(std::max<std::uint32_t>(k, 4));
        ns.port_range = std::to_string(range.lo) + " " + std::to_string(range.hi);
        ns.black_hole = false;
        if (auto err = enter_private_netns(ns); !err.empty()) throw std::runtime_error(err);
    }
    const auto dest = *parse_address("127.0.0.1", kDestPort);
    const auto listener = open_listener(dest);
    std::optional<Egressd> daemon;
    if (mode == Mode::broker) {
        json sources = json::array();
        for (std::uint32_t i = 0; i < k; ++i) sources.push_back("127.0.0." + std::to_string(i + 2));
        json cfg = {{"pools", {{"bench", {{"sources", sources}, {"port_strategy", strategy},
                                          {"window_size", window}, {"selection", "round-robin"}}}}},
                    {"default_pool", "bench"},
                    {"log_level", "warn"},
                    {"limits", {{"max_inflight", 100000}, {"max_clients", 1000}}}};
        // A port egressd listens on is one connect() never picks: its metrics
        // endpoint stays out of the range under test.
        const int metrics_port = range.lo > 1024 ? 1024 : range.hi < 65535 ? 65535 : 0;
        cfg["metrics"] = {{"listen", metrics_port ? "127.0.0.1:" + std::to_string(metrics_port) : ""}};
        if (threads > 0) cfg["threads"] = threads;
        daemon.emplace(a, cfg);
    }
    const double cpu_at_start = daemon ? cpu_seconds(daemon->pid()) : 0;
    // A client's requests stay on one loop: with --threads, at least one
    // worker (one client connection each) per loop.
    const std::uint32_t workers =
        std::min(n, std::max((n + kPerWorker - 1) / kPerWorker, daemon && threads > 0 ? threads : 1U));
    std::vector<Child> kids;
    for (std::uint32_t w = 0; w < workers; ++w) {
        const auto count = n / workers + (w < n % workers ? 1 : 0);
        std::vector<std::string> argv{self_exe(), "worker", "--mode", to_string(mode), "--dest", endpoint_string(dest),
                                      "--count", std::to_string(count), "--hold", "--range",
                                      to_string(range), "--window", std::to_string(window)};
        if (series) argv.push_back("--series");
        if (udp) argv.insert(argv.end(), {"--transport", "udp"});
        if (daemon) argv.insert(argv.end(), {"--socket", daemon->socket()});
        else if (k >= 1) argv.insert(argv.end(), {"--source", "127.0.0.2"});
        kids.push_back(spawn(argv));
    }
    WorkerResult total;
    for (auto& c : kids) {
        const auto line = read_line(c);
        if (line.empty()) throw std::runtime_error("a worker died without a report");
        total.merge(WorkerResult::from_json(json::parse(line)));
    }
    // Before the workers close their sockets: the connects' CPU, not the teardown's.
    const double egressd_cpu_s = daemon ? cpu_seconds(daemon->pid()) - cpu_at_start : 0;
    for (auto& c : kids) reap(c);  // workers close their sockets and exit
    if (daemon) daemon->stop();
    auto j = total.summary();
    j["scenario"] = "storm";
    j["mode"] = to_string(mode);
    j["transport"] = udp ? "udp" : "tcp";
    if (mode == Mode::broker) j["strategy"] = strategy;
    j["connections"] = n;
    j["sources_configured"] = k;
    j["range"] = to_string(range);
    j["window"] = window;
    j["workers"] = workers;
    if (mode == Mode::broker) {
        j["threads"] = effective_threads(threads);
        add_cpu_figures(j, egressd_cpu_s, total.ok);
    }
    if (series) {
        auto& s = j["series"] = json::array();
        for (const auto& x : total.series) s.push_back({x.ms, x.odd ? 1 : 0});
    }
    return j;
}

namespace {

void print_storm_table(const std::vector<json>& runs) {
    std::printf("%-20s %-17s %3s %8s %8s %9s %8s %8s %8s %8s %8s %7s %7s\n", "mode", "strategy", "thr", "attempts", "errored",
                "total_s", "min_ms", "avg_ms", "p50_ms", "p99_ms", "max_ms", "even", "odd");
    for (const auto& j : runs) {
        if (j.contains("error")) {
            std::printf("error: %s\n", j["error"].get<std::string>().c_str());
            continue;
        }
        const auto& l = j["latency_ms"];
        const auto thr = j.contains("threads") ? std::to_string(j["threads"].get<unsigned>()) : std::string("-");
        std::printf("%-20s %-17s %3s %8llu %8llu %9.3f %8.4f %8.4f %8.4f %8.4f %8.3f %7llu %7llu\n",
                    j["mode"].get<std::string>().c_str(), j.value("strategy", std::string("-")).c_str(), thr.c_str(),
                    j["attempts"].get<unsigned long long>(), j["errored"].get<unsigned long long>(),
                    j["total_s"].get<double>(), l.value("min", 0.0), l.value("avg", 0.0), l.value("p50", 0.0),
                    l.value("p99", 0.0), l.value("max", 0.0), j["even"]["count"].get<unsigned long long>(),
                    j["odd"]["count"].get<unsigned long long>());
        for (const auto& [name, msg] : j["messages"].items())
            std::printf("    %s x%llu: %s\n", name.c_str(), j["errors"][name].get<unsigned long long>(),
                        msg.get<std::string>().c_str());
    }
    std::printf("\n%-20s %-17s %10s %10s %10s %10s\n", "parity", "", "count", "min_ms", "avg_ms", "max_ms");
    for (const auto& j : runs) {
        if (j.contains("error")) continue;
        for (const char* side : {"even", "odd"}) {
            const auto& s = j[side];
            std::printf("%-20s %-17s %10llu %10.4f %10.4f %10.3f\n",
                        (j["mode"].get<std::string>() + " " + side).c_str(), j.value("strategy", std::string("-")).c_str(),
                        s["count"].get<unsigned long long>(), s.value("min", 0.0), s.value("avg", 0.0), s.value("max", 0.0));
        }
    }
    if (runs.size() > 1 && !runs[0].contains("error")) {
        std::printf("\n");
        const double base = runs[0]["total_s"].get<double>();
        for (std::size_t i = 1; i < runs.size(); ++i) {
            if (runs[i].contains("error")) continue;
            const double t = runs[i]["total_s"].get<double>();
            auto name = [](const json& j) {
                auto n = j.value("strategy", j["mode"].get<std::string>());
                if (j.contains("threads")) n += "/" + std::to_string(j["threads"].get<unsigned>()) + "t";
                return n;
            };
            std::printf("%s is %.2fx as fast as %s (%.3f s vs %.3f s)\n", name(runs[i]).c_str(), t > 0 ? base / t : 0.0,
                        name(runs[0]).c_str(), t, base);
        }
    }
}

}  // namespace

int cmd_storm(const Args& a) {
    auto mode = parse_mode(a.get("mode", "broker"));
    if (!mode) usage("unknown --mode '" + a.get("mode", "") + "'");
    if (const auto t = a.get("transport", "tcp"); t != "tcp" && t != "udp") usage("--transport is tcp or udp, not '" + t + "'");
    std::vector<std::string> strategies;
    std::stringstream list(a.get("strategy", "window"));
    for (std::string s; std::getline(list, s, ',');) {
        if (!parse_port_strategy(s)) usage("unknown --strategy '" + s + "'");
        strategies.push_back(s);
    }
    if (*mode != Mode::broker) strategies = {""};
    if (*mode != Mode::broker && a.has("threads")) usage("--threads is egressd's: only with --mode broker");
    const auto threads = *mode == Mode::broker ? thread_counts(a) : std::vector<std::uint32_t>{0};
    struct Variant {
        std::string strategy;
        std::uint32_t threads;
    };
    std::vector<Variant> variants;
    for (auto t : threads)
        for (const auto& s : strategies) variants.push_back({s, t});
    const auto repeats = a.num("runs", 1);
    // Interleaved (A B A B ...) so that machine noise spreads over every variant.
    std::vector<std::vector<json>> all(variants.size());
    for (std::uint32_t r = 0; r < repeats; ++r)
        for (std::size_t i = 0; i < variants.size(); ++i)
            all[i].push_back(in_child([&] { return storm_once(a, *mode, variants[i].strategy, false, variants[i].threads); }));
    std::vector<json> medians;
    for (std::size_t i = 0; i < all.size(); ++i) {
        auto m = median_of_runs(all[i]);
        if (!m.contains("error") && *mode == Mode::broker) m["label"] = variants[i].strategy;
        medians.push_back(std::move(m));
    }
    if (a.has("json")) {
        for (const auto& j : medians) std::cout << j.dump() << "\n";
    } else {
        if (a.get("transport", "tcp") == "udp")
            std::printf("transport udp: connected UDP sockets, every one held open until the run ends\n");
        if (repeats > 1) std::printf("median of %u runs per variant (all totals below the table)\n", repeats);
        print_storm_table(medians);
        if (*mode == Mode::broker) print_thread_scaling(medians, "strategy");
        if (repeats > 1)
            for (const auto& m : medians)
                std::printf("%s/%u thread(s) totals: %s\n", m.value("strategy", m.value("mode", std::string("?"))).c_str(),
                            m.value("threads", 0U), m["total_s_all"].dump().c_str());
    }
    for (const auto& runs : all)
        for (const auto& j : runs)
            if (j.contains("error") || j.value("errored", 0ULL) > 0) return 1;
    return 0;
}

}  // namespace egress::bench
