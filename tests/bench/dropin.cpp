// dropin: an unmodified program (egress-dropin-client) makes N blocking
// connects to one destination in a peer namespace, once on its own and once
// under egress-run, whose preload shim sends each socket to egressd (adopt
// mode) for a pool source and the pool's port strategy. The storm of
// BACKGROUND.md part 2, with a program that knows nothing of egressd.
#include "dropin.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <stdexcept>

#include "egress_client.hpp"
#include "netns.hpp"
#include "worker.hpp"

namespace egress::bench {
namespace {

using egress::test::enter_private_netns;
using egress::test::NetnsSetup;
using egress::test::PeerNetns;
using egress::test::PeerNetnsSetup;

const char* const kModes[] = {"direct", "egress-run"};

std::string program_path(const Args& a, const std::string& key, const char* build, const char* installed) {
    if (a.has(key)) return a.get(key, "");
    return ::access(build, X_OK) == 0 ? build : installed;
}

std::string file_tail(const std::string& path) {
    std::ifstream in(path);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return all.size() > 1500 ? all.substr(all.size() - 1500) : all;
}

// The client's report line, or "" when none comes within `timeout_s`.
std::string read_line_within(Child& c, int timeout_s) {
    pollfd p{c.out.get(), POLLIN, 0};
    if (::poll(&p, 1, timeout_s * 1000) <= 0) return "";
    return read_line(c);
}

// One run in a fresh namespace: `mode` is "direct" or "egress-run".
json dropin_once(const Args& a, const std::string& mode) {
    const auto n = a.num("connections", 19500);
    const auto range = range_arg(a);
    if (!a.has("no-netns")) {
        NetnsSetup ns;
        ns.extra_sources = 0;
        ns.black_hole = false;
        ns.port_range = std::to_string(range.lo) + " " + std::to_string(range.hi);
        if (auto err = enter_private_netns(ns); !err.empty()) throw std::runtime_error(err);
    }
    // local_v4()[0] is the veth's primary address, the one the kernel picks for
    // a direct connect; the pool gets [1], so that the report shows whose
    // choice each connection's source was.
    PeerNetns peer(PeerNetnsSetup{.local_sources = 2});
    UniqueFd listener(peer.listen_tcp(peer.remote_v4(), kDestPort, 1 << 20));
    if (!listener) throw std::runtime_error("no listener in the peer namespace");
    const std::string pool_source = peer.local_v4()[1];
    std::optional<Egressd> daemon;
    std::vector<std::string> argv;
    if (mode == "egress-run") {
        daemon.emplace(a, dropin_egressd_config(peer, {pool_source}, a.get("strategy", "kernel-range")));
        argv = egress_run_prefix(a, daemon->socket());
    }
    const auto client = program_path(a, "client", DROPIN_CLIENT_BUILD_PATH, DROPIN_CLIENT_INSTALL_PATH);
    argv.insert(argv.end(), {client, peer.remote_v4(), std::to_string(kDestPort), std::to_string(n)});
    const auto err_file = (daemon ? daemon->dir() : std::string("/tmp")) + "/dropin-client." +
                          std::to_string(::getpid()) + ".err";
    auto kid = spawn(argv, err_file);
    const auto line = read_line_within(kid, 600);
    const double client_cpu_s = line.empty() ? 0 : cpu_seconds(kid.pid);  // still holding its sockets
    if (line.empty()) ::kill(kid.pid, SIGKILL);
    reap(kid);
    const auto stderr_tail = file_tail(err_file);
    std::remove(err_file.c_str());
    if (line.empty()) throw std::runtime_error("the client gave no report; its stderr: " + stderr_tail);
    const auto r = WorkerResult::from_json(json::parse(line));

    auto j = r.summary();
    j["scenario"] = "dropin";
    j["mode"] = mode;
    j["connections"] = n;
    j["range"] = to_string(range);
    j["client_cpu_s"] = std::round(client_cpu_s * 1000) / 1000;
    // Whose source each connection got: the kernel's (direct) or the pool's.
    const std::string expected = daemon ? pool_source : peer.local_v4()[0];
    const auto from_expected = r.sources.count(expected) ? r.sources.at(expected) : 0;
    if (from_expected != r.ok)
        j["problem"] = std::to_string(r.ok - from_expected) + " of " + std::to_string(r.ok) +
                       " connections did not come from " + expected +
                       (daemon ? " (the pool's source): they did not go through egressd" : "");
    if (daemon) {
        j["strategy"] = a.get("strategy", "kernel-range");
        j["egressd_cpu_s"] = std::round(cpu_seconds(daemon->pid()) * 1000) / 1000;
        j["egressd"] = pool_counts(daemon->socket());
        if (j["egressd"]["connects_ok"].get<unsigned long long>() != r.ok && !j.contains("problem"))
            j["problem"] = "egressd counted " + j["egressd"]["connects_ok"].dump() + " connects, the client " +
                           std::to_string(r.ok);
        daemon->stop();
    }
    if (!stderr_tail.empty()) j["stderr"] = stderr_tail;
    return j;
}

bool failed(const json& j) {
    return j.contains("error") || j.contains("problem") || j.value("errored", 0ULL) > 0;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

void print_report(const std::vector<json>& medians, const std::vector<double>& ratios, std::uint32_t repeats) {
    if (repeats > 1) std::printf("median of %u runs per mode\n", repeats);
    std::printf("%-11s %-13s %8s %8s %9s %8s %8s %8s %8s %7s %9s %7s %9s %9s %9s\n", "mode", "strategy", "connects",
                "errored", "total_s", "avg_ms", "p50_ms", "p99_ms", "max_ms", "even", "even_avg", "odd", "odd_avg",
                "client_s", "egressd_s");
    for (const auto& j : medians) {
        if (j.contains("error")) {
            std::printf("%-11s error: %s\n", j.value("mode", "?").c_str(), j["error"].get<std::string>().c_str());
            continue;
        }
        const auto& l = j["latency_ms"];
        char egressd_s[32] = "-";
        if (j.contains("egressd_cpu_s")) std::snprintf(egressd_s, sizeof egressd_s, "%.3f", j["egressd_cpu_s"].get<double>());
        std::printf("%-11s %-13s %8llu %8llu %9.3f %8.4f %8.4f %8.4f %8.3f %7llu %9.4f %7llu %9.4f %9.3f %9s\n",
                    j["mode"].get<std::string>().c_str(), j.value("strategy", std::string("-")).c_str(),
                    j["attempts"].get<unsigned long long>(), j["errored"].get<unsigned long long>(),
                    j["total_s"].get<double>(), l.value("avg", 0.0), l.value("p50", 0.0), l.value("p99", 0.0),
                    l.value("max", 0.0), j["even"]["count"].get<unsigned long long>(), j["even"].value("avg", 0.0),
                    j["odd"]["count"].get<unsigned long long>(), j["odd"].value("avg", 0.0),
                    j["client_cpu_s"].get<double>(), egressd_s);
        for (const auto& [name, msg] : j["messages"].items())
            std::printf("    %s x%llu: %s\n", name.c_str(), j["errors"][name].get<unsigned long long>(),
                        msg.get<std::string>().c_str());
        if (j.contains("problem")) std::printf("    problem: %s\n", j["problem"].get<std::string>().c_str());
        if (j.contains("stderr") && failed(j))
            std::printf("    the client's stderr (tail): %s\n", j["stderr"].get<std::string>().c_str());
        if (j.contains("egressd")) std::printf("    egressd's pool: %s\n", j["egressd"].dump().c_str());
        if (j.contains("total_s_all")) std::printf("    all runs: total_s %s\n", j["total_s_all"].dump().c_str());
    }
    if (ratios.empty()) return;
    std::printf("\nspeed-up under egress-run (direct total / egress-run total), per run:");
    for (double r : ratios) std::printf(" %.2fx", r);
    const double m = median(ratios);
    std::printf("\nspeed-up under egress-run: %.2fx (median of the runs' ratios; target >= 5x: %s)\n", m,
                m >= 5 ? "met" : "missed");
}

}  // namespace

int cmd_dropin(const Args& a) {
    const auto repeats = a.num("runs", 1);
    if (a.num("connections", 19500) > 19900)
        usage("--connections is at most 19900: the client holds every socket under a 20,000 open-files limit");
    // Interleaved (direct, egress-run, direct, ...) so that machine noise
    // spreads over both; the ratio of each pair is one side-by-side figure.
    std::vector<std::vector<json>> all(std::size(kModes));
    std::vector<double> ratios;
    for (std::uint32_t r = 0; r < repeats; ++r) {
        for (std::size_t m = 0; m < std::size(kModes); ++m) {
            auto j = in_child([&] { return dropin_once(a, kModes[m]); });
            j["mode"] = kModes[m];
            all[m].push_back(std::move(j));
        }
        const auto &d = all[0].back(), &s = all[1].back();
        if (!failed(d) && !failed(s) && s["total_s"].get<double>() > 0)
            ratios.push_back(std::round(d["total_s"].get<double>() / s["total_s"].get<double>() * 100) / 100);
    }
    std::vector<json> medians;
    for (const auto& runs : all) medians.push_back(median_of_runs(runs));
    if (a.has("json")) {
        for (auto& j : medians) {
            if (j["mode"] == "egress-run") j["ratio_per_run"] = ratios;
            std::cout << j.dump() << "\n";
        }
    } else {
        print_report(medians, ratios, repeats);
    }
    for (const auto& runs : all)
        for (const auto& j : runs)
            if (failed(j)) return 1;
    return 0;
}

json dropin_egressd_config(const PeerNetns& peer, const std::vector<std::string>& sources,
                           const std::string& strategy) {
    return {{"pools", {{kDropinPool, {{"sources", sources}, {"port_strategy", strategy},
                                {"selection", "round-robin"}, {"client_selectable", true}}}}},
            {"default_pool", kDropinPool},
            {"default_client",
             {{"name", "bench-peer"}, {"destinations", {{{"action", "allow"}, {"dest", peer.subnet_v4()}}}}}},
            {"log_level", "warn"},
            {"metrics", {{"listen", ""}}},
            {"limits",
             {{"max_inflight", 100000}, {"max_inflight_per_client", 10000}, {"max_queued_replies", 10000}}}};
}

std::vector<std::string> egress_run_prefix(const Args& a, const std::string& socket) {
    const auto run = program_path(a, "egress-run", EGRESS_RUN_BUILD_PATH, EGRESS_RUN_INSTALL_PATH);
    if (::access(run.c_str(), X_OK) != 0) throw std::runtime_error("egress-run not found at " + run + " (--egress-run PATH)");
    std::vector<std::string> argv{run, "--socket", socket, "--pool", kDropinPool, "--fallback", "closed"};
    if (a.has("preload")) argv.insert(argv.end(), {"--preload", a.get("preload", "")});
    else if (::access(EGRESS_PRELOAD_BUILD_PATH, R_OK) == 0 && run == EGRESS_RUN_BUILD_PATH)
        argv.insert(argv.end(), {"--preload", EGRESS_PRELOAD_BUILD_PATH});
    argv.push_back("--");
    return argv;
}

json pool_counts(const std::string& socket) {
    auto c = Client::open(socket);
    if (!c) throw std::runtime_error("egressd's status: " + c.error().message);
    auto st = c->status();
    if (!st) throw std::runtime_error("egressd's status: " + st.error().message);
    json out{{"connects_ok", 0}, {"errors", json::object()}, {"by_source", json::object()}};
    const auto doc = json::parse(*st);  // named: a loop over a temporary's member would dangle
    for (const auto& p : doc.at("pools")) {
        if (p.value("name", "") != kDropinPool) continue;
        for (const auto& s : p.at("sources")) {
            const auto ok = s.value("connects_ok", 0ULL);
            out["connects_ok"] = out["connects_ok"].get<unsigned long long>() + ok;
            out["by_source"][s.value("address", "?")] = ok;
            const auto errors = s.value("errors", json::object());  // the loop must not outlive it
            for (const auto& [name, count] : errors.items())
                out["errors"][name] = out["errors"].value(name, 0ULL) + count.get<unsigned long long>();
        }
    }
    return out;
}

}  // namespace egress::bench
