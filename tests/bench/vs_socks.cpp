// vs-socks: egressd against two SOCKS5 proxies (microsocks, Dante) on the same
// connect workload: set-up rate and latency, then one bulk transfer over a
// socket from each. egressd hands over a plain socket; a proxy relays every byte.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "common.hpp"
#include "egress_client.hpp"
#include "netns.hpp"
#include "socks.hpp"
#include "worker.hpp"

namespace egress::bench {
namespace {

using clock_type = std::chrono::steady_clock;
using egress::test::enter_private_netns;
using egress::test::NetnsSetup;

const char* const kContenders[] = {"egressd", "microsocks", "dante"};
constexpr std::uint16_t kProxyPort = 1080;
constexpr std::size_t kChunk = 1 << 20;  // bulk write and read size

struct Setup {
    std::uint32_t connections, inflight, runs;
    std::uint64_t bytes;
    std::string microsocks, danted;  // programs
};

// The destination: accepts every connection, reads and discards all it
// receives, and answers one byte once a connection has delivered
// `ack_after` bytes (the bulk transfer's end). Runs on its own thread.
class Sink {
public:
    Sink(UniqueFd listener, std::uint64_t ack_after)
        : listener_(std::move(listener)), ep_(::epoll_create1(EPOLL_CLOEXEC)), stop_(::eventfd(0, EFD_CLOEXEC)),
          ack_after_(ack_after) {
        if (!ep_ || !stop_) throw std::runtime_error(std::string("sink: ") + std::strerror(errno));
        ::fcntl(listener_.get(), F_SETFL, O_NONBLOCK);
        for (int fd : {listener_.get(), stop_.get()}) {
            epoll_event ev{EPOLLIN, {.fd = fd}};
            ::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &ev);
        }
        thread_ = std::thread([this] { run(); });
    }
    ~Sink() { stop(); }
    // Stops the thread; returns what went wrong in it, "" when nothing did.
    std::string stop() {
        if (thread_.joinable()) {
            const std::uint64_t one = 1;
            (void)!::write(stop_.get(), &one, sizeof one);
            thread_.join();
        }
        return error_;
    }

private:
    void run() {
        std::vector<char> buf(kChunk);
        std::unordered_map<int, std::uint64_t> received;  // per open connection
        std::array<epoll_event, 64> events;
        for (;;) {
            const int n = ::epoll_wait(ep_.get(), events.data(), static_cast<int>(events.size()), -1);
            for (int i = 0; i < n; ++i) {
                const int fd = events[static_cast<std::size_t>(i)].data.fd;
                if (fd == stop_.get()) {
                    for (const auto& [c, _] : received) ::close(c);
                    return;
                }
                if (fd == listener_.get()) {
                    int c;
                    while ((c = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                        epoll_event ev{EPOLLIN, {.fd = c}};
                        ::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, c, &ev);
                        received[c] = 0;
                    }
                    if (errno != EAGAIN) {  // e.g. EMFILE: stop accepting rather than spin
                        error_ = std::string("sink accept: ") + std::strerror(errno);
                        ::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, nullptr);
                    }
                    continue;
                }
                const auto r = ::read(fd, buf.data(), buf.size());
                if (r > 0) {
                    auto& got = received[fd];
                    const bool was_short = got < ack_after_;
                    got += static_cast<std::uint64_t>(r);
                    if (was_short && got >= ack_after_) (void)!::send(fd, "k", 1, MSG_NOSIGNAL);
                } else if (r == 0 || errno != EAGAIN) {  // EOF or reset: the peer is done
                    ::close(fd);
                    received.erase(fd);
                }
            }
        }
    }

    UniqueFd listener_, ep_, stop_;
    std::uint64_t ack_after_;
    std::string error_;  // written by the thread, read after join
    std::thread thread_;
};

// Sends `bytes` over the connected socket and waits for the sink's answer;
// returns the seconds from the first byte to the answer (throws on failure).
double bulk_send(int fd, std::uint64_t bytes) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    const timeval limit{60, 0};  // a stalled relay fails the run instead of hanging it
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    static const std::vector<char> zeros(kChunk);
    const auto t0 = clock_type::now();
    for (std::uint64_t sent = 0; sent < bytes;) {
        const auto n = ::send(fd, zeros.data(), std::min<std::uint64_t>(kChunk, bytes - sent), MSG_NOSIGNAL);
        if (n <= 0) throw std::runtime_error("bulk send after " + std::to_string(sent) + " bytes: " + std::strerror(errno));
        sent += static_cast<std::uint64_t>(n);
    }
    char ack;
    const auto r = ::read(fd, &ack, 1);
    if (r != 1)
        throw std::runtime_error(std::string("bulk: no answer from the destination: ") +
                                 (r == 0 ? "connection closed" : std::strerror(errno)));
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// A temporary directory, removed with everything in it.
struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/egress-bench-socks.XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
        path = tmpl;
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

// Dante on `at`, no authentication, CONNECT from and to loopback only.
std::string write_danted_conf(const std::string& dir, const Endpoint& at) {
    const auto path = dir + "/danted.conf";
    std::ofstream(path) << "logoutput: stderr\n"
                        << "internal: " << address_string(at) << " port = " << at.port << "\n"
                        << "external: 127.0.0.1\n"
                        << "clientmethod: none\nsocksmethod: none\n"
                        << "user.privileged: root\nuser.unprivileged: nobody\n"
                        << "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }\n"
                        << "socks pass { from: 127.0.0.0/8 to: 127.0.0.0/8 command: connect }\n";
    return path;
}

// x rounded to `digits` decimals.
double round_to(double x, int digits) {
    const double k = std::pow(10.0, digits);
    return std::round(x * k) / k;
}

// One run of one contender in a fresh namespace: set-ups, then the bulk transfer.
json vs_once(const Args& a, const Setup& s, const std::string& who) {
    if (!a.has("no-netns")) {
        NetnsSetup ns;
        ns.extra_sources = 0;
        ns.black_hole = false;
        ns.port_range = "10000 65000";  // client->proxy and proxy->destination ports, TIME_WAIT included
        if (auto err = enter_private_netns(ns); !err.empty()) throw std::runtime_error(err);
    }
    const auto dest = *parse_address("127.0.0.1", kDestPort);
    const auto proxy_at = *parse_address("127.0.0.1", kProxyPort);
    auto listener = open_listener(dest);
    TempDir dir;
    std::optional<Egressd> daemon;
    std::optional<ServerProcess> proxy;
    if (who == "egressd") {
        daemon.emplace(a, json{{"log_level", "warn"},
                               {"metrics", {{"listen", ""}}},
                               {"limits", {{"max_inflight", 100000}, {"max_inflight_per_client", 100000},
                                           {"max_queued_replies", 100000}}}});
    } else if (who == "microsocks") {
        proxy.emplace(std::vector<std::string>{s.microsocks, "-i", "127.0.0.1", "-p", std::to_string(kProxyPort)},
                      dir.path + "/microsocks.log", proxy_at);
    } else {
        proxy.emplace(std::vector<std::string>{s.danted, "-f", write_danted_conf(dir.path, proxy_at), "-p",
                                               dir.path + "/danted.pid"},
                      dir.path + "/danted.log", proxy_at);
    }
    Sink sink(std::move(listener), s.bytes);  // after the forks above: no thread exists across them

    // CPU seconds of the server (its whole process group for a proxy) and of
    // this process (the client and the sink), around the set-up phase.
    auto server_cpu = [&] { return daemon ? cpu_seconds(daemon->pid()) : proxy->cpu_seconds(); };
    auto own_cpu = [] {
        rusage u{};
        ::getrusage(RUSAGE_SELF, &u);
        return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
               static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
    };
    const double server0 = server_cpu(), own0 = own_cpu();
    WorkerResult r;
    std::pair<double, double> cpu;  // server, bench
    UniqueFd bulk_fd;
    std::string bulk_error;
    if (daemon) {
        std::vector<Client> keep;
        r = run_clients(daemon->socket(), dest, 1, s.connections, s.inflight, [] {}, keep);
        cpu = {server_cpu() - server0, own_cpu() - own0};
        auto c = Client::open(daemon->socket());
        auto conn = c ? c->connect(dest) : Result<Connected>(c.error());
        if (conn) bulk_fd = std::move(conn->fd);
        else bulk_error = "bulk connect through egressd: " + conn.error().message;
    } else {
        r = run_socks_setups({.proxy = proxy_at, .dest = dest, .count = s.connections, .inflight = s.inflight});
        cpu = {server_cpu() - server0, own_cpu() - own0};
        const auto one = run_socks_setups({.proxy = proxy_at, .dest = dest, .count = 1, .inflight = 1},
                                          [&](UniqueFd fd) { bulk_fd = std::move(fd); });
        if (!bulk_fd)
            bulk_error = "bulk set-up through " + who + ": " +
                         (one.messages.empty() ? std::string("no socket") : one.messages.begin()->second);
    }
    double bulk_s = 0;
    if (bulk_fd) {
        try {
            bulk_s = bulk_send(bulk_fd.get(), s.bytes);
        } catch (const std::exception& e) {
            bulk_error = e.what();
        }
        bulk_fd.reset();
    }
    if (auto err = sink.stop(); !err.empty()) bulk_error += (bulk_error.empty() ? "" : "; ") + err;

    auto sum = r.summary();
    json j = {{"scenario", "vs-socks"},
              {"contender", who},
              {"connections", s.connections},
              {"inflight", s.inflight},
              {"setups", r.ok},
              {"errored", r.errored},
              {"total_s", sum["total_s"]},
              {"setups_per_s", r.total_s > 0 ? std::round(static_cast<double>(r.ok) / r.total_s) : 0.0},
              {"latency_ms", sum["latency_ms"]},
              {"errors", r.errors},
              {"messages", r.messages}};
    const double per = r.ok > 0 ? 1e6 / static_cast<double>(r.ok) : 0;
    j["cpu_us_per_setup"] = {{"server", round_to(cpu.first * per, 1)}, {"bench", round_to(cpu.second * per, 1)}};
    json bulk = {{"bytes", s.bytes}, {"seconds", round_to(bulk_s, 4)}};
    bulk["mib_per_s"] = bulk_s > 0 ? round_to(static_cast<double>(s.bytes) / (1 << 20) / bulk_s, 1) : 0.0;
    if (!bulk_error.empty()) bulk["error"] = bulk_error;
    j["bulk"] = bulk;
    return j;
}

bool failed(const json& j) {
    return j.contains("error") || j.value("errored", 0ULL) > 0 || j["bulk"].contains("error");
}

// One contender's report over its runs: set-up figures from the run with the
// median rate, bulk figures from the run with the median throughput; a
// failed run is reported instead.
json combine(std::vector<json> runs) {
    for (const auto& j : runs)
        if (failed(j)) return j;
    json all_rates = json::array(), all_mib = json::array();
    for (const auto& j : runs) all_rates.push_back(j["setups_per_s"]), all_mib.push_back(j["bulk"]["mib_per_s"]);
    auto by = [&](auto key) {
        std::sort(runs.begin(), runs.end(), [&](const json& x, const json& y) { return key(x) < key(y); });
        return runs[runs.size() / 2];
    };
    json out = by([](const json& j) { return j["setups_per_s"].get<double>(); });
    out["bulk"] = by([](const json& j) { return j["bulk"]["mib_per_s"].get<double>(); })["bulk"];
    out["runs"] = runs.size();
    out["setups_per_s_all"] = all_rates;
    out["mib_per_s_all"] = all_mib;
    return out;
}

void print_table(const std::vector<json>& reports, const Setup& s) {
    std::printf("%u set-ups, %u in flight, then %.0f MiB over one socket; median of %u run(s)\n\n", s.connections,
                s.inflight, static_cast<double>(s.bytes) / (1 << 20), s.runs);
    std::printf("%-11s %7s %7s %8s %10s %8s %8s %8s %8s %8s %10s %8s %9s\n", "contender", "setups", "errors",
                "total_s", "setups/s", "p50_ms", "p99_ms", "max_ms", "srv_us", "bench_us", "bulk_MiB", "bulk_s", "MiB/s");
    for (const auto& j : reports) {
        if (j.contains("error")) {
            std::printf("%-11s error: %s\n", j.value("contender", "?").c_str(), j["error"].get<std::string>().c_str());
            continue;
        }
        const auto& l = j["latency_ms"];
        const auto& b = j["bulk"];
        const auto& cpu = j["cpu_us_per_setup"];
        std::printf("%-11s %7llu %7llu %8.3f %10.0f %8.3f %8.3f %8.3f %8.1f %8.1f %10.0f %8.3f %9.1f\n",
                    j["contender"].get<std::string>().c_str(), j["setups"].get<unsigned long long>(),
                    j["errored"].get<unsigned long long>(), j["total_s"].get<double>(), j["setups_per_s"].get<double>(),
                    l.value("p50", 0.0), l.value("p99", 0.0), l.value("max", 0.0), cpu["server"].get<double>(),
                    cpu["bench"].get<double>(),
                    b["bytes"].get<double>() / (1 << 20), b["seconds"].get<double>(), b["mib_per_s"].get<double>());
        for (const auto& [name, msg] : j["messages"].items())
            std::printf("    %s x%llu: %s\n", name.c_str(), j["errors"][name].get<unsigned long long>(),
                        msg.get<std::string>().c_str());
        if (b.contains("error")) std::printf("    bulk: %s\n", b["error"].get<std::string>().c_str());
        if (j.value("runs", 1U) > 1)
            std::printf("    all runs: setups/s %s, MiB/s %s\n", j["setups_per_s_all"].dump().c_str(),
                        j["mib_per_s_all"].dump().c_str());
    }
    std::printf("\n");
    if (!reports[0].contains("ratios")) return;
    for (const auto& [name, v] : reports[0]["ratios"].items()) {
        auto verdict = [](double x, double target) {
            char buf[64];
            if (x >= target) std::snprintf(buf, sizeof buf, "target >= %.0fx: met", target);
            else std::snprintf(buf, sizeof buf, "target >= %.0fx: missed by %.2fx", target, target - x);
            return std::string(buf);
        };
        std::printf("egressd / %-10s set-up rate %.2fx (%s); bulk throughput %.2fx (%s)\n", name.c_str(),
                    v["setup_rate"].get<double>(), verdict(v["setup_rate"].get<double>(), 3).c_str(),
                    v["bulk"].get<double>(), verdict(v["bulk"].get<double>(), 2).c_str());
    }
}

// "1073741824", "1024M", "1G" (binary units) -> bytes; usage error otherwise.
std::uint64_t bytes_arg(const Args& a) {
    const auto text = a.get("bytes", "1G");
    std::size_t used = 0;
    std::uint64_t v = 0;
    try {
        v = std::stoull(text, &used);
    } catch (const std::exception&) {
        usage("--bytes takes a size such as 1G, 512M or 1048576, got '" + text + "'");
    }
    const auto unit = text.substr(used);
    if (unit == "K" || unit == "k") v <<= 10;
    else if (unit == "M" || unit == "m") v <<= 20;
    else if (unit == "G" || unit == "g") v <<= 30;
    else if (!unit.empty()) usage("--bytes: unknown unit '" + unit + "' (K, M or G)");
    if (v < (1 << 20) || v > (std::uint64_t{64} << 30)) usage("--bytes must be between 1M and 64G, got '" + text + "'");
    return v;
}

}  // namespace

int cmd_vs_socks(const Args& a) {
    Setup s;
    s.connections = a.num("connections", 5000);
    s.inflight = a.num("inflight", 64);
    s.runs = a.num("runs", 1);
    s.bytes = bytes_arg(a);
    // Ports: each set-up uses one client port and one proxy port of the
    // namespace's 55,000, held in TIME_WAIT for the rest of the run.
    if (s.connections > 20000) usage("--connections is at most 20000 (ports and TIME_WAIT within one run)");
    if (s.inflight > 1000) usage("--inflight is at most 1000");
    try {
        s.microsocks = find_program(a, "microsocks", "microsocks", "microsocks");
        s.danted = find_program(a, "danted", "danted", "dante-server");
    } catch (const std::exception& e) {
        std::cerr << "egress-bench vs-socks: " << e.what() << "\n";
        return 1;
    }
    // Interleaved (egressd, microsocks, dante, egressd, ...) so that machine
    // noise spreads over every contender.
    std::vector<std::vector<json>> runs(std::size(kContenders));
    for (std::uint32_t r = 0; r < s.runs; ++r)
        for (std::size_t c = 0; c < runs.size(); ++c) {
            auto j = in_child([&] { return vs_once(a, s, kContenders[c]); });
            j["contender"] = kContenders[c];
            runs[c].push_back(std::move(j));
        }
    std::vector<json> reports;
    for (auto& rs : runs) reports.push_back(combine(rs));
    auto& egressd = reports[0];
    if (!failed(egressd)) {
        for (std::size_t c = 1; c < reports.size(); ++c) {
            if (reports[c].contains("error") || reports[c]["setups_per_s"].get<double>() <= 0 ||
                reports[c]["bulk"]["mib_per_s"].get<double>() <= 0)
                continue;
            egressd["ratios"][kContenders[c]] = {
                {"setup_rate", round_to(egressd["setups_per_s"].get<double>() / reports[c]["setups_per_s"].get<double>(), 2)},
                {"bulk", round_to(egressd["bulk"]["mib_per_s"].get<double>() / reports[c]["bulk"]["mib_per_s"].get<double>(), 2)}};
        }
    }
    if (a.has("json")) {
        for (const auto& j : reports) std::cout << j.dump() << "\n";
    } else {
        print_table(reports, s);
    }
    for (const auto& rs : runs)
        for (const auto& j : rs)
            if (failed(j)) return 1;
    return 0;
}

}  // namespace egress::bench
