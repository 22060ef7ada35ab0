// backlog: egressd's instructions per request, counted by callgrind, as a
// function of the connects already pending: starting a connect must cost
// O(1) in them, so the figures must stay flat from 0 to 10,000 pending.
#include <arpa/inet.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "common.hpp"
#include "egress_client.hpp"
#include "netns.hpp"

namespace egress::bench {
namespace {

namespace fs = std::filesystem;
using egress::test::enter_private_netns;
using egress::test::kBlackHole;
using egress::test::NetnsSetup;
using clock_type = std::chrono::steady_clock;

// egressd under callgrind starts in seconds and takes in 10,000 connects in
// tens of seconds; these bounds end a run that is stuck, not a slow one.
constexpr auto kStartBound = std::chrono::seconds(60);
constexpr auto kTakeInBound = std::chrono::seconds(300);
// A black-holed connect's deadline: none expires while a run measures.
constexpr std::uint32_t kHangMs = 600000;
// The flatness target: cost at the last level within 10% of the first.
constexpr double kFlatWithin = 0.10;

struct Tools {
    std::string valgrind, control;  // valgrind and callgrind_control
};

// A temporary directory for callgrind's files, removed with its contents.
struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/egress-backlog.XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
        path = tmpl;
    }
    ~TempDir() { fs::remove_all(path); }
};

// Runs `callgrind_control COMMAND PID`; throws unless callgrind said OK.
void control(const Tools& t, const std::string& dir, const std::string& command, pid_t pid) {
    auto c = spawn({t.control, command, std::to_string(pid)}, dir + "/control.err");
    std::string out;
    char buf[4096];
    ssize_t r;
    while ((r = ::read(c.out.get(), buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(r));
    reap(c);
    if (out.find("OK.") == std::string::npos)
        throw std::runtime_error("callgrind_control " + command + " " + std::to_string(pid) + " failed: " + out);
}

// Dumps egressd's counts since the last zero; returns the instructions.
std::uint64_t dump(const Tools& t, const std::string& dir, pid_t pid) {
    std::set<std::string> before;
    for (const auto& e : fs::directory_iterator(dir)) before.insert(e.path().string());
    control(t, dir, "--dump", pid);
    for (const auto& e : fs::directory_iterator(dir)) {
        const auto name = e.path().string();
        if (before.count(name) || e.path().filename().string().rfind("cg.", 0) != 0) continue;
        std::ifstream in(name);
        for (std::string line; std::getline(in, line);)
            if (line.rfind("totals:", 0) == 0) return std::stoull(line.substr(7));
        throw std::runtime_error("callgrind dump " + name + " has no totals line");
    }
    throw std::runtime_error("callgrind_control --dump wrote no file in " + dir);
}

// Connects to `remote` ("%08X:%04X" as /proc/net/tcp writes it) in
// SYN_SENT in this namespace: read from the kernel, so counting them costs
// egressd nothing.
std::uint32_t syn_sent(const std::string& remote) {
    std::ifstream in("/proc/net/tcp");
    std::uint32_t n = 0;
    std::string line, slot, local, rem, state;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
        std::istringstream s(line);
        if (s >> slot >> local >> rem >> state && state == "02" && rem == remote) ++n;
    }
    return n;
}

// Waits until `target` connects to `remote` are in SYN_SENT (throws past kTakeInBound).
void wait_syn_sent(const std::string& remote, std::uint32_t target) {
    const auto end = clock_type::now() + kTakeInBound;
    std::uint32_t n = 0;
    while ((n = syn_sent(remote)) < target) {
        if (clock_type::now() > end)
            throw std::runtime_error("egressd started only " + std::to_string(n) + " of " + std::to_string(target) +
                                     " black-holed connects within " +
                                     std::to_string(std::chrono::seconds(kTakeInBound).count()) + " s");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

// `n` CONNECTs to the black hole, not waiting for replies (there are none).
void submit_hanging(Client& c, const Endpoint& hole, std::uint32_t n) {
    for (std::uint32_t i = 0; i < n; ++i)
        if (auto id = c.submit(hole, {.timeout_ms = kHangMs}); !id) throw std::runtime_error(id.error().message);
}

std::uint64_t in_flight(Client& c) {
    auto st = c.status();
    if (!st) throw std::runtime_error("status request failed: " + st.error().message);
    return json::parse(*st).value("requests_in_flight", std::uint64_t{0});
}

json backlog_once(const Args& a, const Tools& t, std::uint32_t pending) {
    const auto live = a.num("live", 2000);
    const auto extra = a.num("new-pending", 1000);
    if (!a.has("no-netns")) {
        if (auto err = enter_private_netns(NetnsSetup{}); !err.empty()) throw std::runtime_error(err);
    }
    const auto dest = *parse_address("127.0.0.1", kDestPort);
    const auto listener = open_listener(dest);
    const auto hole = *parse_address(kBlackHole, 80);
    in_addr hole_addr{};
    ::inet_pton(AF_INET, kBlackHole, &hole_addr);
    char remote[32];
    std::snprintf(remote, sizeof remote, "%08X:%04X", hole_addr.s_addr, hole.port);

    const json cfg = {{"log_level", "warn"},
                      {"metrics", {{"listen", ""}}},
                      {"connect", {{"max_timeout_ms", kHangMs}}},
                      {"limits", {{"max_inflight", 100000}, {"max_inflight_per_client", 100000},
                                  {"max_queued_replies", 100000}}}};
    TempDir cg;
    const auto t0 = clock_type::now();
    Egressd daemon(a, cfg, {t.valgrind, "--tool=callgrind", "--callgrind-out-file=" + cg.path + "/cg.%p"},
                   kStartBound);
    const pid_t pid = daemon.pid();
    // One client connection carries the backlog and the live requests, so
    // its own table of requests in flight holds the backlog too.
    auto client = Client::open(daemon.socket());
    if (!client) throw std::runtime_error("cannot connect to egressd: " + client.error().message);
    if (in_flight(*client) != 0) throw std::runtime_error("egressd is not idle");
    const auto base = syn_sent(remote);
    json out{{"scenario", "backlog"}, {"pending", pending}, {"live", live}, {"new_pending", extra}};

    // The backlog: P connects that hang, and what starting them cost.
    control(t, cg.path, "--zero", pid);
    submit_hanging(*client, hole, pending);
    wait_syn_sent(remote, base + pending);
    const auto backlog_instr = dump(t, cg.path, pid);
    if (pending > 0) out["backlog_instructions_per_request"] = static_cast<double>(backlog_instr) / pending;
    if (const auto n = in_flight(*client); n != pending)
        throw std::runtime_error("egressd holds " + std::to_string(n) + " connects in flight, expected " +
                                 std::to_string(pending));

    // Live connects, one at a time, while the backlog hangs.
    control(t, cg.path, "--zero", pid);
    std::uint64_t live_errors = 0;
    for (std::uint32_t i = 0; i < live; ++i)
        if (!client->connect(dest)) ++live_errors;  // the socket, if any, closes here
    const auto live_instr = dump(t, cg.path, pid);
    out["live_errors"] = live_errors;
    out["instructions_total"] = live_instr;
    out["instructions_per_request"] = static_cast<double>(live_instr) / live;

    // New connects that join the backlog and hang too.
    control(t, cg.path, "--zero", pid);
    submit_hanging(*client, hole, extra);
    wait_syn_sent(remote, base + pending + extra);
    out["new_pending_instructions_per_request"] = static_cast<double>(dump(t, cg.path, pid)) / extra;
    daemon.stop();
    if (a.has("keep-dumps")) {
        const fs::path to = fs::path(a.get("keep-dumps", "")) / ("pending-" + std::to_string(pending));
        fs::create_directories(to);
        for (const auto& e : fs::directory_iterator(cg.path))
            fs::copy(e.path(), to / e.path().filename(), fs::copy_options::overwrite_existing);
    }
    out["wall_s"] = std::chrono::duration<double>(clock_type::now() - t0).count();
    return out;
}

void print_table(const std::vector<json>& runs) {
    std::printf("%8s %6s %16s %7s %11s %18s %7s %18s %8s\n", "pending", "live", "instr/live_req", "ratio",
                "new_pending", "instr/new_pending", "ratio", "instr/backlog_req", "wall_s");
    for (const auto& j : runs) {
        if (j.contains("error")) {
            std::printf("error: %s\n", j["error"].get<std::string>().c_str());
            continue;
        }
        const auto backlog = j.contains("backlog_instructions_per_request")
                                 ? std::to_string(std::llround(j["backlog_instructions_per_request"].get<double>()))
                                 : std::string("-");
        std::printf("%8u %6u %16.0f %7.3f %11u %18.0f %7.3f %18s %8.1f\n", j["pending"].get<unsigned>(),
                    j["live"].get<unsigned>(), j["instructions_per_request"].get<double>(),
                    j["ratio_to_first"].get<double>(), j["new_pending"].get<unsigned>(),
                    j["new_pending_instructions_per_request"].get<double>(),
                    j["new_pending_ratio_to_first"].get<double>(), backlog.c_str(), j["wall_s"].get<double>());
        if (j["live_errors"].get<unsigned long long>() > 0)
            std::printf("%8s %llu live connects failed\n", "", j["live_errors"].get<unsigned long long>());
    }
    const auto& first = runs.front();
    const auto& last = runs.back();
    if (runs.size() < 2 || first.contains("error") || last.contains("error")) return;
    auto verdict = [&](const char* what, const char* key) {
        const double r = last[key].get<double>();
        std::printf("%s at %u pending / at %u pending: %.3f (%s)\n", what, last["pending"].get<unsigned>(),
                    first["pending"].get<unsigned>(), r,
                    r <= 1 + kFlatWithin ? "flat: within 10%" : "NOT flat: more than 10% above");
    };
    std::printf("\n");
    verdict("instructions per live request   ", "ratio_to_first");
    verdict("instructions per new pending one", "new_pending_ratio_to_first");
}

}  // namespace

int cmd_backlog(const Args& a) {
    const auto levels = number_list(a, "pending", "0,10,100,1000,10000");
    const auto extra = a.num("new-pending", 1000);
    for (auto p : levels)
        if (p + extra > 15000) usage("--pending plus --new-pending above 15000 would pass egressd's open-files cap here");
    const std::string valgrind = a.get("valgrind", "/usr/bin/valgrind");
    const Tools tools{valgrind, (fs::path(valgrind).parent_path() / "callgrind_control").string()};
    for (const auto& tool : {tools.valgrind, tools.control})
        if (::access(tool.c_str(), X_OK) != 0) {
            std::cerr << "egress-bench backlog: " << tool << " is not there; install valgrind "
                      << "(scripts/install-deps.sh does) or give --valgrind PATH\n";
            return 1;
        }
    std::vector<json> runs;
    for (auto p : levels) runs.push_back(in_child([&] { return backlog_once(a, tools, p); }));
    const json* first = nullptr;
    for (auto& j : runs) {
        if (j.contains("error")) continue;
        if (!first) first = &j;
        j["ratio_to_first"] = j["instructions_per_request"].get<double>() / (*first)["instructions_per_request"].get<double>();
        j["new_pending_ratio_to_first"] = j["new_pending_instructions_per_request"].get<double>() /
                                          (*first)["new_pending_instructions_per_request"].get<double>();
    }
    if (a.has("json")) {
        for (const auto& j : runs) std::cout << j.dump() << "\n";
    } else {
        print_table(runs);
    }
    for (const auto& j : runs)
        if (j.contains("error") || j["live_errors"].get<unsigned long long>() > 0) return 1;
    return 0;
}

}  // namespace egress::bench
