// names: host names through egressd. (1) Happy Eyeballs: the time to connect
// to a name whose AAAA is black-holed and whose A is live, through egressd
// and with curl alone on the same set-up (the same DNS server, the same
// peer). (2) The cost of a name request against a literal one when
// resolution is fast: sequential requests to the live address, to a name
// (no cache: every request asks the DNS server), and to a name egressd has
// cached; the extra time should be the resolution itself (RESOLVE_US).
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"
#include "dns_server.hpp"
#include "egress_client.hpp"
#include "netns.hpp"
#include "peer_netns.hpp"

namespace egress::bench {
namespace {

using egress::test::DnsRecordSet;
using egress::test::DnsServer;
using egress::test::enter_private_netns;
using egress::test::NetnsSetup;
using egress::test::PeerNetns;
using egress::test::PeerNetnsSetup;

constexpr const char* kEyeballsName = "he.bench.test";  // AAAA black-holed, A live
constexpr const char* kFastName = "fast.bench.test";    // A live only
constexpr std::uint16_t kPort = 8080;

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Accepts and answers every connection with an empty HTTP response, so that
// curl's request ends at once; egressd's clients just close.
class Responder {
public:
    explicit Responder(int fd) : fd_(fd), thread_([this] { serve(); }) {}
    ~Responder() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }

private:
    void serve() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) != 1) continue;
            const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) continue;
            pollfd q{c, POLLIN, 0};
            if (::poll(&q, 1, 20) == 1) {  // curl sends a request; egressd's clients send nothing
                char buf[2048];
                (void)!::recv(c, buf, sizeof buf, MSG_DONTWAIT);
                static const char kReply[] = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                (void)!::send(c, kReply, sizeof kReply - 1, MSG_NOSIGNAL);
            }
            ::close(c);
        }
    }
    int fd_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

json stats_ms(std::vector<double> v) {
    if (v.empty()) return json::object();
    std::sort(v.begin(), v.end());
    const auto pick = [&](double q) { return v[std::min(v.size() - 1, static_cast<std::size_t>(q * v.size()))]; };
    double sum = 0;
    for (double x : v) sum += x;
    const auto r3 = [](double x) { return std::round(x * 1000) / 1000; };
    return {{"n", v.size()}, {"min", r3(v.front())}, {"p50", r3(pick(0.5))}, {"mean", r3(sum / v.size())},
            {"p99", r3(pick(0.99))}, {"max", r3(v.back())}};
}

// curl's own time to connect (its Happy Eyeballs, 200 ms), resolving through
// the same DNS server: /etc/resolv.conf is replaced in a mount namespace of
// curl's own, so the host's resolver is never touched.
double curl_connect_ms(const std::string& resolv_conf, const std::string& url) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        ::dup2(out[1], 1);
        if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
            ::mount(resolv_conf.c_str(), "/etc/resolv.conf", nullptr, MS_BIND, nullptr) != 0)
            ::_exit(126);
        ::execlp("curl", "curl", "-s", "-o", "/dev/null", "--max-time", "5", "-w", "%{time_connect}", url.c_str(),
                 static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(out[1]);
    std::string text;
    char buf[256];
    for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
    ::close(out[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw std::runtime_error("curl failed (exit " + std::to_string(WEXITSTATUS(status)) + "): " + text);
    return std::stod(text) * 1000;
}

json egressd_config(const PeerNetns& peer, std::uint32_t cache_entries) {
    return {{"log_level", "warn"},
            {"metrics", {{"listen", ""}}},
            {"dns", {{"servers", {peer.remote_v4() + ":53"}}, {"hosts_file", false}, {"search", json::array()},
                     {"cache_entries", cache_entries}}},
            {"default_client",
             {{"name", "bench"},
              {"destinations", {{{"action", "allow"}, {"dest", peer.subnet_v4()}},
                                {{"action", "allow"}, {"dest", peer.subnet_v6()}}}}}}};
}

json names_once(const Args& a) {
    const auto runs = a.num("runs", 5);
    const auto requests = a.num("requests", 1000);
    if (auto err = enter_private_netns(NetnsSetup{.black_hole = false}); !err.empty()) throw std::runtime_error(err);
    PeerNetns peer(PeerNetnsSetup{.local_sources = 1});
    // The IPv6 black hole: an address of the peer's subnet that nobody owns,
    // with a neighbour entry that sends its frames nowhere.
    const std::string hole6 = "fd00:200:0::dead";
    if (std::system(("ip -6 neigh add " + hole6 + " lladdr 02:00:00:00:0d:0d dev pe0a nud permanent").c_str()) != 0)
        throw std::runtime_error("cannot make the IPv6 black hole");
    const int udp = peer.make_socket(AF_INET, SOCK_DGRAM);
    if (udp < 0) throw std::runtime_error("cannot make the DNS server's socket");
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(53);
    ::inet_pton(AF_INET, peer.remote_v4().c_str(), &sa.sin_addr);
    if (::bind(udp, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) throw std::runtime_error("bind :53 failed");
    DnsServer dns(udp);
    dns.set(kEyeballsName, DnsRecordSet{.a = {peer.remote_v4()}, .aaaa = {hole6}, .ttl = 300});
    dns.set(kFastName, DnsRecordSet{.a = {peer.remote_v4()}, .aaaa = {}, .ttl = 300});
    const int lfd = peer.listen_tcp(peer.remote_v4(), kPort);
    if (lfd < 0) throw std::runtime_error("cannot listen in the peer");
    Responder responder(lfd);

    const auto dir = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp");
    const auto resolv = dir + "/egress-bench-names-resolv." + std::to_string(::getpid());
    std::ofstream(resolv) << "nameserver " << peer.remote_v4() << "\noptions attempts:1 timeout:2\n";

    // (1) Happy Eyeballs, side by side, one of each per run.
    std::vector<double> egressd_he, curl_he;
    std::uint32_t he_v4 = 0;
    {
        Egressd daemon(a, egressd_config(peer, 0));  // no cache: each run resolves
        auto c = Client::open(daemon.socket());
        if (!c) throw std::runtime_error(c.error().message);
        Destination he;
        he.host = kEyeballsName;
        he.port = kPort;
        for (std::uint32_t i = 0; i < runs; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            auto r = c->connect(he, {.timeout_ms = 5000});
            const double ms = ms_since(t0);
            if (!r) throw std::runtime_error("egressd: " + r.error().message);
            egressd_he.push_back(ms);
            he_v4 += r->meta.remote && !r->meta.remote->v6;
            curl_he.push_back(curl_connect_ms(resolv, "http://" + std::string(kEyeballsName) + ":" +
                                                          std::to_string(kPort) + "/"));
        }
    }

    // (2) The cost of a name: literal, name with no cache, name cached.
    const auto live = *parse_address(peer.remote_v4(), kPort);
    Destination fast;
    fast.host = kFastName;
    fast.port = kPort;
    std::vector<double> literal, literal2, uncached, cached, resolve_uncached;  // literal2: beside the cached ones
    for (const bool with_cache : {false, true}) {
        Egressd daemon(a, egressd_config(peer, with_cache ? 4096 : 0));
        auto c = Client::open(daemon.socket());
        if (!c) throw std::runtime_error(c.error().message);
        if (with_cache && !c->connect(fast)) throw std::runtime_error("cannot warm the cache");
        // Interleaved, so that both kinds see the same machine.
        for (std::uint32_t i = 0; i < requests; ++i) {
            for (const bool by_name : {false, true}) {
                const auto t0 = std::chrono::steady_clock::now();
                auto r = by_name ? c->connect(fast) : c->connect(live);
                const double ms = ms_since(t0);
                if (!r) throw std::runtime_error(r.error().message);
                if (!by_name) {
                    (with_cache ? literal2 : literal).push_back(ms);
                } else if (with_cache) {
                    cached.push_back(ms);
                } else {
                    uncached.push_back(ms);
                    resolve_uncached.push_back(static_cast<double>(r->meta.resolve_us) / 1000);
                }
            }
        }
    }
    std::remove(resolv.c_str());
    const auto mean = [](const std::vector<double>& v) {
        double s = 0;
        for (double x : v) s += x;
        return v.empty() ? 0 : s / v.size();
    };
    const auto r3 = [](double x) { return std::round(x * 1000) / 1000; };
    return {{"scenario", "names"},
            {"eyeballs",
             {{"runs", runs}, {"egressd_ms", stats_ms(egressd_he)}, {"curl_connect_ms", stats_ms(curl_he)},
              {"egressd_won_over_ipv4", he_v4}}},
            {"cost",
             {{"requests", requests},
              {"literal_ms", stats_ms(literal)},
              {"literal_beside_cached_ms", stats_ms(literal2)},
              {"name_uncached_ms", stats_ms(uncached)},
              {"name_cached_ms", stats_ms(cached)},
              {"resolve_ms_uncached", stats_ms(resolve_uncached)},
              {"extra_uncached_ms", r3(mean(uncached) - mean(literal))},
              {"extra_cached_ms", r3(mean(cached) - mean(literal2))},
              {"extra_minus_resolve_ms", r3(mean(uncached) - mean(literal) - mean(resolve_uncached))}}},
            {"dns_queries", dns.queries()}};
}

}  // namespace

int cmd_names(const Args& a) {
    const auto j = in_child([&] { return names_once(a); });
    if (a.has("json") || j.contains("error")) {
        std::cout << j.dump() << "\n";
        return j.contains("error") ? 1 : 0;
    }
    const auto& e = j["eyeballs"];
    std::printf("Happy Eyeballs: %s (AAAA black-holed, A live), %u runs\n", kEyeballsName,
                e["runs"].get<unsigned>());
    std::printf("  %-28s p50 %8.1f ms  min %8.1f  max %8.1f\n", "egressd (250 ms delay)",
                e["egressd_ms"]["p50"].get<double>(), e["egressd_ms"]["min"].get<double>(),
                e["egressd_ms"]["max"].get<double>());
    std::printf("  %-28s p50 %8.1f ms  min %8.1f  max %8.1f\n", "curl alone (200 ms delay)",
                e["curl_connect_ms"]["p50"].get<double>(), e["curl_connect_ms"]["min"].get<double>(),
                e["curl_connect_ms"]["max"].get<double>());
    const auto& c = j["cost"];
    std::printf("Cost of a name, %u sequential requests each, literal and name interleaved (mean / p50 / p99 ms):\n",
                c["requests"].get<unsigned>());
    for (const char* k :
         {"literal_ms", "name_uncached_ms", "resolve_ms_uncached", "literal_beside_cached_ms", "name_cached_ms"})
        std::printf("  %-26s %8.3f %8.3f %8.3f\n", k, c[k]["mean"].get<double>(), c[k]["p50"].get<double>(),
                    c[k]["p99"].get<double>());
    std::printf("  extra per name request: %.3f ms uncached (resolution itself %.3f ms: %.3f ms besides), "
                "%.3f ms cached\n",
                c["extra_uncached_ms"].get<double>(), c["resolve_ms_uncached"]["mean"].get<double>(),
                c["extra_minus_resolve_ms"].get<double>(), c["extra_cached_ms"].get<double>());
    return 0;
}

}  // namespace egress::bench
