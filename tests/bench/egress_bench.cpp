// egress-bench: reproducible connect() experiments, each in its own private
// network namespace. `egress-bench --help` lists the scenarios.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iterator>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "egress_client.hpp"
#include "netns.hpp"
#include "pool/selection.hpp"
#include "sockaddr.hpp"
#include "unique_fd.hpp"
#include "worker.hpp"

namespace {

using namespace egress;
using namespace egress::bench;
using namespace egress::test;
using nlohmann::json;

const char* const kUsage =
    "usage: egress-bench SCENARIO [options] [--json]\n"
    "\n"
    "  storm --mode direct-default|direct-window|direct-kernel-range|broker\n"
    "        [--strategy S[,S...]] [--connections N] [--sources K] [--range LO-HI] [--window W]\n"
    "      N connects to one destination (defaults: N 19500, K 1, range 40000-59999, W 500).\n"
    "      broker goes through egressd with pool strategy S (kernel-default, window,\n"
    "      kernel-range, userspace-random); several strategies run side by side and\n"
    "      are compared with the first. --runs R repeats each (interleaved) and\n"
    "      reports the median run.\n"
    "\n"
    "  hol [--pending P[,P...]] [--live N] [--deadline MS]\n"
    "      Head-of-line: while P connects hang on a black hole (defaults 0,100,1000,10000),\n"
    "      time N live connects (default 1000) through egressd; then check that every\n"
    "      black-holed request was answered ETIMEDOUT at its deadline (default 3000 ms).\n"
    "\n"
    "  common: --json (one JSON object per run), --no-netns (use the current namespace),\n"
    "          --egressd PATH (default: the egressd built beside this tool)\n";

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "egress-bench: " << why << "\n" << kUsage;
    std::exit(2);
}

struct Args {
    std::map<std::string, std::string> values;
    bool has(const std::string& k) const { return values.count(k) > 0; }
    std::string get(const std::string& k, const std::string& def) const {
        auto it = values.find(k);
        return it == values.end() ? def : it->second;
    }
    std::uint32_t num(const std::string& k, std::uint32_t def) const {
        if (!has(k)) return def;
        try {
            const auto v = std::stoul(values.at(k));
            if (v == 0 || v > 10'000'000) throw std::out_of_range(k);
            return static_cast<std::uint32_t>(v);
        } catch (const std::exception&) {
            usage("--" + k + " needs a positive number, got '" + values.at(k) + "'");
        }
    }
};

Args parse(int argc, char** argv, int from) {
    static const char* flags[] = {"json", "no-netns", "hold"};  // options without a value
    Args a;
    for (int i = from; i < argc; ++i) {
        std::string k = argv[i];
        if (k.rfind("--", 0) != 0) usage("unexpected argument '" + k + "'");
        k = k.substr(2);
        bool is_flag = false;
        for (auto f : flags) is_flag |= k == f;
        if (is_flag) {
            a.values[k] = "1";
        } else {
            if (i + 1 >= argc) usage("--" + k + " needs a value");
            a.values[k] = argv[++i];
        }
    }
    return a;
}

PortRange range_arg(const Args& a) {
    auto r = parse_port_range(a.get("range", "40000-59999"));
    if (!r) usage("--range must be LO-HI, got '" + a.get("range", "") + "'");
    return *r;
}

std::string self_exe() {
    char buf[4096];
    const auto n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "egress-bench";
}

std::string egressd_path(const Args& a) {
    if (a.has("egressd")) return a.get("egressd", "");
    if (::access(EGRESSD_BUILD_PATH, X_OK) == 0) return EGRESSD_BUILD_PATH;
    return EGRESSD_INSTALL_PATH;
}

struct Child {
    pid_t pid = -1;
    UniqueFd in, out;  // our ends of its stdin and stdout
};

Child spawn(const std::vector<std::string>& argv, const std::string& stderr_file = "") {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    Child c;
    c.pid = ::fork();
    if (c.pid == 0) {
        ::dup2(in[0], 0);
        ::dup2(out[1], 1);
        if (!stderr_file.empty()) {
            const int fd = ::open(stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            ::dup2(fd, 2);
        }
        std::vector<char*> args;
        for (const auto& s : argv) args.push_back(const_cast<char*>(s.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    c.in = UniqueFd(in[1]);
    c.out = UniqueFd(out[0]);
    return c;
}

std::string read_line(int fd) {
    std::string s;
    char ch;
    while (::read(fd, &ch, 1) == 1 && ch != '\n') s += ch;
    return s;
}

bool wait_for_socket(const std::string& path, pid_t pid) {
    for (int i = 0; i < 1000; ++i) {
        UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
        if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return true;
        int st;
        if (::waitpid(pid, &st, WNOHANG) == pid) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
}

// User plus system CPU time a live process has used (/proc/PID/stat).
double cpu_seconds(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::istringstream rest(stat.substr(stat.rfind(')') + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) utime = std::stoull(field);
        if (i == 15) stime = std::stoull(field);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// ---- worker: one load-generating process --------------------------------

int cmd_worker(const Args& a) {
    WorkerOptions o;
    auto mode = parse_mode(a.get("mode", "broker"));
    if (!mode) usage("unknown --mode '" + a.get("mode", "") + "'");
    o.mode = *mode;
    o.socket = a.get("socket", "");
    auto dest = parse_endpoint(a.get("dest", ""));
    if (!dest) usage("--dest: " + dest.error().message);
    o.dest = *dest;
    o.count = a.num("count", 1000);
    o.inflight = a.num("inflight", 64);
    o.timeout_ms = a.has("timeout") ? a.num("timeout", 0) : 0;
    o.pool = a.get("pool", "");
    if (a.has("source")) {
        o.source = parse_address(a.get("source", ""));
        if (!o.source) usage("--source must be an IP address");
    }
    o.range = range_arg(a);
    o.window = a.num("window", 500);
    o.hold = a.has("hold");
    std::vector<int> held;
    const auto r = run_worker(o, held);
    std::cout << r.to_json().dump() << std::endl;
    if (o.hold) {
        char c;
        while (::read(0, &c, 1) > 0) {
        }
    }
    return 0;
}

// ---- storm: N connects to one destination --------------------------------

constexpr std::uint16_t kDestPort = 5000;         // outside every ephemeral range used here
// Sockets one worker holds: under the 20,000 open-files cap with room for its
// own few descriptors. 19,500 connects thus run in one process, as egressd
// (one thread) does them: a like-for-like comparison.
constexpr std::uint32_t kPerWorker = 19900;

json storm_once(const Args& a, Mode mode, const std::string& strategy) {
    const auto n = a.num("connections", 19500);
    const auto k = a.num("sources", 1);
    const auto range = range_arg(a);
    const auto window = a.num("window", 500);
    if (!a.has("no-netns")) {
        NetnsSetup ns;
        ns.extra_sources = static_cast<int>(std::max<std::uint32_t>(k, 4));
        ns.port_range = std::to_string(range.lo) + " " + std::to_string(range.hi);
        ns.black_hole = false;
        if (auto err = enter_private_netns(ns); !err.empty()) throw std::runtime_error(err);
    }
    // The destination: a listener whose accept queue holds every connection.
    UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int one = 1;
    ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    auto dest = *parse_address("127.0.0.1", kDestPort);
    const auto sa = to_sockaddr(dest);
    if (::bind(listener.get(), sa.get(), sa.len) != 0 || ::listen(listener.get(), 1 << 20) != 0)
        throw std::runtime_error(std::string("listener: ") + std::strerror(errno));

    char tmpl[] = "/tmp/egress-bench.XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    Child daemon;
    const auto sock = dir + "/egressd.sock";
    if (mode == Mode::broker) {
        json sources = json::array();
        for (std::uint32_t i = 0; i < k; ++i) sources.push_back("127.0.0." + std::to_string(i + 2));
        json cfg = {{"pools", {{"bench", {{"sources", sources}, {"port_strategy", strategy},
                                          {"window_size", window}, {"selection", "round-robin"}}}}},
                    {"default_pool", "bench"},
                    {"log_level", "warn"},
                    {"limits", {{"max_inflight", 100000}, {"max_clients", 1000}}}};
        std::ofstream(dir + "/config.json") << cfg.dump(2);
        daemon = spawn({egressd_path(a), "--config", dir + "/config.json", "--socket", sock}, dir + "/egressd.log");
        if (!wait_for_socket(sock, daemon.pid)) throw std::runtime_error("egressd did not start; see " + dir + "/egressd.log");
    }
    const std::uint32_t workers = (n + kPerWorker - 1) / kPerWorker;
    std::vector<Child> kids;
    for (std::uint32_t w = 0; w < workers; ++w) {
        const auto count = n / workers + (w < n % workers ? 1 : 0);
        std::vector<std::string> argv{self_exe(), "worker", "--mode", to_string(mode), "--dest", endpoint_string(dest),
                                      "--count", std::to_string(count), "--hold", "--range",
                                      to_string(range), "--window", std::to_string(window)};
        if (mode == Mode::broker) argv.insert(argv.end(), {"--socket", sock});
        else if (k >= 1) argv.insert(argv.end(), {"--source", "127.0.0.2"});
        kids.push_back(spawn(argv));
    }
    WorkerResult total;
    for (auto& c : kids) {
        const auto line = read_line(c.out.get());
        if (line.empty()) throw std::runtime_error("a worker died without a report");
        total.merge(WorkerResult::from_json(json::parse(line)));
    }
    for (auto& c : kids) {
        c.in.reset();  // workers close their sockets and exit
        int st;
        ::waitpid(c.pid, &st, 0);
    }
    double egressd_cpu_s = 0;
    if (daemon.pid > 0) {
        egressd_cpu_s = cpu_seconds(daemon.pid);
        ::kill(daemon.pid, SIGTERM);
        int st;
        ::waitpid(daemon.pid, &st, 0);
    }
    std::system(("rm -rf " + dir).c_str());
    auto j = total.summary();
    j["scenario"] = "storm";
    j["mode"] = to_string(mode);
    if (mode == Mode::broker) j["strategy"] = strategy;
    j["connections"] = n;
    j["sources_configured"] = k;
    j["range"] = to_string(range);
    j["window"] = window;
    j["workers"] = workers;
    if (mode == Mode::broker) j["egressd_cpu_s"] = std::round(egressd_cpu_s * 1000) / 1000;
    return j;
}

// Runs `fn` in a child process (a fresh namespace each time) and returns its JSON.
template <class Fn>
json in_child(Fn fn) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(p[0]);
        json j;
        try {
            j = fn();
        } catch (const std::exception& e) {
            j = {{"error", e.what()}};
        }
        const auto s = j.dump() + "\n";
        (void)!::write(p[1], s.data(), s.size());
        ::_exit(0);
    }
    ::close(p[1]);
    std::string s;
    char buf[65536];
    ssize_t r;
    while ((r = ::read(p[0], buf, sizeof buf)) > 0) s.append(buf, static_cast<std::size_t>(r));
    ::close(p[0]);
    int st;
    ::waitpid(pid, &st, 0);
    if (s.empty()) return {{"error", "the run died"}};
    return json::parse(s);
}

void print_storm_table(const std::vector<json>& runs) {
    std::printf("%-20s %-17s %8s %8s %9s %8s %8s %8s %8s %8s %7s %7s\n", "mode", "strategy", "attempts", "errored",
                "total_s", "min_ms", "avg_ms", "p50_ms", "p99_ms", "max_ms", "even", "odd");
    for (const auto& j : runs) {
        if (j.contains("error")) {
            std::printf("error: %s\n", j["error"].get<std::string>().c_str());
            continue;
        }
        const auto& l = j["latency_ms"];
        std::printf("%-20s %-17s %8llu %8llu %9.3f %8.4f %8.4f %8.4f %8.4f %8.3f %7llu %7llu\n",
                    j["mode"].get<std::string>().c_str(), j.value("strategy", std::string("-")).c_str(),
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
            std::printf("%s is %.1fx faster than %s (%.3f s vs %.3f s)\n",
                        runs[i].value("strategy", runs[i]["mode"].get<std::string>()).c_str(), t > 0 ? base / t : 0.0,
                        runs[0].value("strategy", runs[0]["mode"].get<std::string>()).c_str(), t, base);
        }
    }
}

// The run of median total time among `runs` (one strategy).
const json& median_run(std::vector<json>& runs) {
    std::sort(runs.begin(), runs.end(), [](const json& x, const json& y) {
        return x.value("total_s", 1e9) < y.value("total_s", 1e9);
    });
    return runs[runs.size() / 2];
}

int cmd_storm(const Args& a) {
    auto mode = parse_mode(a.get("mode", "broker"));
    if (!mode) usage("unknown --mode '" + a.get("mode", "") + "'");
    std::vector<std::string> strategies;
    std::stringstream list(a.get("strategy", "window"));
    for (std::string s; std::getline(list, s, ',');) {
        if (!parse_port_strategy(s)) usage("unknown --strategy '" + s + "'");
        strategies.push_back(s);
    }
    if (*mode != Mode::broker) strategies = {""};
    const auto repeats = a.num("runs", 1);
    // Interleaved (A B A B ...) so that machine noise spreads over every strategy.
    std::vector<std::vector<json>> all(strategies.size());
    for (std::uint32_t r = 0; r < repeats; ++r)
        for (std::size_t i = 0; i < strategies.size(); ++i)
            all[i].push_back(in_child([&] { return storm_once(a, *mode, strategies[i]); }));
    std::vector<json> medians;
    for (auto& runs : all) {
        json m = median_run(runs);
        if (repeats > 1) {
            m["runs"] = repeats;
            m["total_s_all"] = json::array();
            for (const auto& r : runs) m["total_s_all"].push_back(r.value("total_s", -1.0));
        }
        medians.push_back(std::move(m));
    }
    if (a.has("json")) {
        for (const auto& j : medians) std::cout << j.dump() << "\n";
    } else {
        if (repeats > 1) std::printf("median of %u runs per strategy (all totals below the table)\n", repeats);
        print_storm_table(medians);
        if (repeats > 1)
            for (const auto& m : medians)
                std::printf("%s totals: %s\n", m.value("strategy", m.value("mode", std::string("?"))).c_str(),
                            m["total_s_all"].dump().c_str());
    }
    for (const auto& runs : all)
        for (const auto& j : runs)
            if (j.contains("error") || j.value("errored", 0ULL) > 0) return 1;
    return 0;
}

// ---- hol: live connects while others hang ---------------------------------

json hol_once(const Args& a, std::uint32_t pending) {
    const auto live = a.num("live", 1000);
    const auto deadline_ms = a.num("deadline", 3000);
    if (!a.has("no-netns")) {
        if (auto err = enter_private_netns(NetnsSetup{}); !err.empty()) throw std::runtime_error(err);
    }
    UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const auto dest = *parse_address("127.0.0.1", kDestPort);
    const auto sa = to_sockaddr(dest);
    if (::bind(listener.get(), sa.get(), sa.len) != 0 || ::listen(listener.get(), 1 << 20) != 0)
        throw std::runtime_error(std::string("listener: ") + std::strerror(errno));
    char tmpl[] = "/tmp/egress-bench.XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    const auto sock = dir + "/egressd.sock";
    const json cfg = {{"log_level", "warn"},
                      {"metrics", {{"listen", ""}}},
                      {"connect", {{"max_timeout_ms", 600000}}},
                      {"limits", {{"max_inflight", 100000}, {"max_inflight_per_client", 100000},
                                  {"max_queued_replies", 100000}}}};
    std::ofstream(dir + "/config.json") << cfg.dump();
    auto daemon = spawn({egressd_path(a), "--config", dir + "/config.json", "--socket", sock}, dir + "/egressd.log");
    if (!wait_for_socket(sock, daemon.pid)) throw std::runtime_error("egressd did not start; see " + dir + "/egressd.log");

    // The hanging connects: all submitted, each with its send time.
    auto stuck = Client::open(sock);
    if (!stuck) throw std::runtime_error(stuck.error().message);
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
    ::kill(daemon.pid, SIGTERM);
    int st;
    ::waitpid(daemon.pid, &st, 0);
    std::system(("rm -rf " + dir).c_str());

    WorkerResult r;
    r.lat_even_ms = lat;  // summary() wants parity buckets; parity means nothing here
    auto j = r.summary();
    json out{{"scenario", "hol"}, {"pending", pending}, {"live", live}, {"live_errors", live_errors},
             {"latency_ms", j["latency_ms"]}, {"black_hole_answered", timedout + other},
             {"black_hole_etimedout", timedout}, {"deadline_ms", deadline_ms}};
    if (!late.empty()) {
        std::sort(late.begin(), late.end());
        out["deadline_error_ms"] = {{"min", std::round(late.front() * 10) / 10},
                                    {"max", std::round(late.back() * 10) / 10}};
    }
    return out;
}

int cmd_hol(const Args& a) {
    std::vector<std::uint32_t> levels;
    std::stringstream list(a.get("pending", "0,100,1000,10000"));
    for (std::string s; std::getline(list, s, ',');) {
        try {
            levels.push_back(static_cast<std::uint32_t>(std::stoul(s)));
        } catch (const std::exception&) {
            usage("--pending takes numbers, got '" + s + "'");
        }
        if (levels.back() > 15000) usage("--pending above 15000 would pass egressd's open-files cap here");
    }
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

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    if (argc < 2) usage("no scenario given");
    const std::string scenario = argv[1];
    if (scenario == "--help" || scenario == "-h") {
        std::cout << kUsage;
        return 0;
    }
    const auto args = parse(argc, argv, 2);
    if (scenario == "worker") return cmd_worker(args);
    if (scenario == "storm") return cmd_storm(args);
    if (scenario == "hol") return cmd_hol(args);
    usage("unknown scenario '" + scenario + "'");
}
