// fairness: one well-behaved client's live connects, and egressd's reaction
// to SIGHUP, while other clients attack the event loop; each attack is
// measured against the same figures without it, in one run.
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "codec.hpp"
#include "common.hpp"
#include "egress_client.hpp"
#include "netns.hpp"

namespace egress::bench {
namespace {

using Clock = std::chrono::steady_clock;

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

int unix_connect(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
        if (fd >= 0) ::close(fd);
        return -1;
    }
    return fd;
}

// Blocks until the datagram is sent or `fd` fails; false on failure.
bool send_all(int fd, const proto::Bytes& b) {
    for (;;) {
        if (::send(fd, b.data(), b.size(), MSG_NOSIGNAL) >= 0) return true;
        if (errno != EINTR) return false;
    }
}

// An attacker's life: connect (again and again once egressd drops it),
// send `burst` CONNECTs to `closed`, then `after(fd, id)` until it fails.
// Connects to a closed port are refused at once: no source port stays in use.
[[noreturn]] void attack(const std::string& sock, const Endpoint& closed, std::uint32_t burst,
                         const std::function<void(int, std::uint64_t&)>& after) {
    std::uint64_t id = 1;
    for (;;) {
        const int fd = unix_connect(sock);
        if (fd < 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            continue;
        }
        bool alive = true;
        for (std::uint32_t i = 0; i < burst && alive; ++i)
            alive = send_all(fd, proto::encode_connect(id++, proto::ConnectRequest{.dest = closed}));
        if (alive) after(fd, id);
        ::close(fd);
    }
}

// flood: never read; hold the connection until egressd closes it.
[[noreturn]] void flood(const std::string& sock, const Endpoint& closed, std::uint32_t requests) {
    attack(sock, closed, requests, [](int fd, std::uint64_t&) {
        pollfd p{fd, POLLRDHUP, 0};
        while (::poll(&p, 1, -1) >= 0 && !(p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
        }
    });
}

// refused: keep `outstanding` in flight, a new request for every reply read.
[[noreturn]] void refused(const std::string& sock, const Endpoint& closed, std::uint32_t outstanding) {
    std::vector<std::uint8_t> buf(EGRESS_MAX_DATAGRAM);
    attack(sock, closed, outstanding, [&](int fd, std::uint64_t& id) {
        for (;;) {
            const auto n = ::recv(fd, buf.data(), buf.size(), 0);
            if (n <= 0 && errno != EINTR) return;
            if (n > 0 && !send_all(fd, proto::encode_connect(id++, proto::ConnectRequest{.dest = closed}))) return;
        }
    });
}

struct Phase {
    std::string name;
    std::vector<double> lat_ms;
    std::vector<double> connect_ms;  // of lat_ms, the connect itself (CONNECT_US)
    std::uint64_t errors = 0;
    std::vector<double> sighup_ms;  // SIGHUP to the new config generation in STATUS
    double egressd_cpu = 0;         // egressd's CPU seconds per second while probing
};

std::uint64_t generation(Client& c) {
    auto st = c.status();
    if (!st) throw std::runtime_error("status: " + st.error().message);
    return json::parse(*st).value("config_generation", 0ULL);
}

Phase run_phase(const Args& a, const std::string& attack) {
    const auto attackers = a.num("attackers", 5);
    const auto probes = a.num("probes", 1000);
    const auto rate = a.num("rate", 200);
    // The probe connects to a live listener; the attacks to a closed port.
    const auto dest = *parse_address("127.0.0.1", kDestPort);
    const auto closed = *parse_address("127.0.0.1", kDestPort + 1);
    const auto listener = open_listener(dest);
    const json cfg = {{"log_level", "warn"}, {"metrics", {{"listen", ""}}}};
    Egressd daemon(a, cfg);
    // egressd gets a core of its own and the bench's processes the others:
    // otherwise the probe, woken on egressd's core, may wait out egressd's
    // time slice in the kernel's scheduler, which is not what this measures.
    const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus >= 2 && !a.has("no-pin")) {
        cpu_set_t mine, its;
        CPU_ZERO(&mine);
        CPU_ZERO(&its);
        CPU_SET(0, &its);
        for (long c = 1; c < cpus; ++c) CPU_SET(c, &mine);
        if (::sched_setaffinity(daemon.pid(), sizeof its, &its) != 0 || ::sched_setaffinity(0, sizeof mine, &mine) != 0)
            throw std::runtime_error(std::string("sched_setaffinity: ") + std::strerror(errno));
    }

    std::vector<pid_t> kids;
    for (std::uint32_t i = 0; attack != "none" && i < attackers; ++i) {
        const pid_t pid = ::fork();
        if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
        if (pid == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            // Lowest CPU priority: on a small host the attackers would
            // otherwise delay the probe process itself, not only egressd.
            if (::nice(19) == -1 && errno != 0) std::_Exit(1);
            if (attack == "flood") flood(daemon.socket(), closed, a.num("requests", 3000));
            refused(daemon.socket(), closed, a.num("outstanding", 1024));
        }
        kids.push_back(pid);
    }
    // Let the attack reach its steady state before measuring.
    std::this_thread::sleep_for(std::chrono::milliseconds(attack == "none" ? 100 : 1000));

    Phase ph;
    ph.name = attack;
    auto probe = Client::open(daemon.socket());
    if (!probe) throw std::runtime_error(probe.error().message);
    const auto gap = std::chrono::microseconds(1000000 / rate);
    const double cpu0 = cpu_seconds(daemon.pid());
    const auto t_start = Clock::now();
    auto next = Clock::now();
    for (std::uint32_t i = 0; i < probes; ++i) {
        std::this_thread::sleep_until(next);
        next += gap;
        const auto t0 = Clock::now();
        auto r = probe->connect(dest);
        ph.lat_ms.push_back(ms(Clock::now() - t0));
        if (!r) ++ph.errors;
        else ph.connect_ms.push_back(static_cast<double>(r->meta.connect_us) / 1000);
        if (i % (probes / 5 ? probes / 5 : 1) == 0) {
            // SIGHUP, then ask for the status until the reload shows.
            const auto before = generation(*probe);
            const auto s0 = Clock::now();
            ::kill(daemon.pid(), SIGHUP);
            while (generation(*probe) == before && ms(Clock::now() - s0) < 10000) {
            }
            ph.sighup_ms.push_back(ms(Clock::now() - s0));
            next = Clock::now() + gap;
        }
    }
    ph.egressd_cpu = (cpu_seconds(daemon.pid()) - cpu0) / (ms(Clock::now() - t_start) / 1000);
    for (auto pid : kids) ::kill(pid, SIGKILL);
    for (auto pid : kids) ::waitpid(pid, nullptr, 0);
    daemon.stop();
    return ph;
}

double quantile(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

json phase_json(const Phase& p) {
    return {{"attack", p.name},
            {"probes", p.lat_ms.size()},
            {"errors", p.errors},
            {"connect_ms", {{"p50", quantile(p.connect_ms, 0.5)}, {"p99", quantile(p.connect_ms, 0.99)}}},
            {"latency_ms", {{"p50", quantile(p.lat_ms, 0.5)}, {"p99", quantile(p.lat_ms, 0.99)},
                            {"max", quantile(p.lat_ms, 1.0)}}},
            {"sighup_ms", {{"p50", quantile(p.sighup_ms, 0.5)}, {"max", quantile(p.sighup_ms, 1.0)}}},
            {"egressd_cpu", p.egressd_cpu}};
}

}  // namespace

int cmd_fairness(const Args& a) {
    const std::vector<std::string> attacks{"none", "flood", "refused"};
    std::vector<json> runs;
    for (const auto& attack : attacks)
        runs.push_back(in_child([&] {
            if (!a.has("no-netns")) {
                if (auto err = test::enter_private_netns(test::NetnsSetup{}); !err.empty())
                    throw std::runtime_error(err);
            }
            return phase_json(run_phase(a, attack));
        }));
    for (const auto& r : runs)
        if (r.contains("error")) {
            std::cerr << "egress-bench fairness: " << r["error"].get<std::string>() << "\n";
            return 1;
        }
    const double base = std::max(runs[0]["latency_ms"]["p99"].get<double>(), 1e-3);
    for (auto& r : runs) r["p99_ratio"] = r["latency_ms"]["p99"].get<double>() / base;
    if (a.has("json")) {
        for (const auto& r : runs) std::cout << r.dump() << "\n";
    } else {
        std::printf("%-8s %7s %7s %9s %9s %9s %10s %12s %12s %12s\n", "attack", "probes", "errors", "p50_ms",
                    "p99_ms", "max_ms", "p99_ratio", "sighup_p50", "sighup_max", "egressd_cpu");
        for (const auto& r : runs) {
            const auto& l = r["latency_ms"];
            std::printf("%-8s %7zu %7llu %9.3f %9.3f %9.3f %9.2fx %10.2fms %10.2fms %11.0f%%\n",
                        r["attack"].get<std::string>().c_str(), r["probes"].get<std::size_t>(),
                        r["errors"].get<unsigned long long>(), l["p50"].get<double>(), l["p99"].get<double>(),
                        l["max"].get<double>(), r["p99_ratio"].get<double>(), r["sighup_ms"]["p50"].get<double>(),
                        r["sighup_ms"]["max"].get<double>(), r["egressd_cpu"].get<double>() * 100);
        }
    }
    for (const auto& r : runs)
        if (r["errors"].get<unsigned long long>() > 0) return 1;
    return 0;
}

}  // namespace egress::bench
