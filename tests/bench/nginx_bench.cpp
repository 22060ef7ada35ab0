// nginx: nginx as a reverse proxy on loopback, without upstream keepalive (a
// new upstream connection per request) to an nginx in a peer namespace,
// loaded by wrk; once on its own and once under egress-run, where every
// upstream connect goes through egressd (adopt mode, a pool of several
// sources). Requests/s and latency of both, and their ratio.
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
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

#include "dropin.hpp"
#include "netns.hpp"
#include "sockaddr.hpp"
#include "socks.hpp"

namespace egress::bench {
namespace {

using egress::test::enter_private_netns;
using egress::test::NetnsSetup;
using egress::test::PeerNetns;
using egress::test::PeerNetnsSetup;

const char* const kModes[] = {"direct", "egress-run"};
constexpr std::uint16_t kHttpPort = 8080;  // the proxy on loopback, the upstream on the peer's address

struct Setup {
    std::uint32_t duration_s = 0, requests = 0;  // one of the two
    std::uint32_t connections, workers, threads, sources, runs;
    std::string nginx, wrk, nsenter;
};

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/egress-bench-nginx.XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
        path = tmpl;
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

// An nginx configuration in the foreground whose every path lies under
// `prefix`; `server` is the body of its one server block. Workers run as
// root: egressd's socket is root's (mode 0660), and nginx would otherwise
// switch them to nobody.
std::string write_conf(const std::string& prefix, std::uint32_t workers, const std::string& server) {
    std::filesystem::create_directories(prefix);
    const auto path = prefix + "/nginx.conf";
    std::ofstream(path) << "daemon off;\nmaster_process on;\nuser root;\n"
                        << "worker_processes " << workers << ";\n"
                        << "pid " << prefix << "/nginx.pid;\nerror_log " << prefix << "/error.log warn;\n"
                        << "events { worker_connections 16384; }\n"
                        << "http {\n  access_log off;\n"
                        << "  client_body_temp_path " << prefix << "/body;\n  proxy_temp_path " << prefix << "/proxy;\n"
                        << "  fastcgi_temp_path " << prefix << "/fastcgi;\n  uwsgi_temp_path " << prefix << "/uwsgi;\n"
                        << "  scgi_temp_path " << prefix << "/scgi;\n"
                        << "  server {\n" << server << "  }\n}\n";
    return path;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string tail(const std::string& s) { return s.size() > 1500 ? s.substr(s.size() - 1500) : s; }

// "" when GET / through `at` answers 200 within a second, else what happened.
std::string http_get_ok(const Endpoint& at) {
    const auto sa = to_sockaddr(at);
    UniqueFd fd(::socket(sa.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
    const timeval limit{1, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    if (::connect(fd.get(), sa.get(), sa.len) != 0) return std::string("connect: ") + std::strerror(errno);
    const std::string req = "GET / HTTP/1.0\r\nHost: bench\r\n\r\n";
    if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
        return std::string("send: ") + std::strerror(errno);
    std::string got;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) got.append(buf, static_cast<std::size_t>(n));
    if (got.rfind("HTTP/1.1 200", 0) == 0) return "";
    return "answer: " + (got.empty() ? std::string("none") : got.substr(0, got.find('\r')));
}

// wrk's time with its unit ("812.00us", "2.31ms", "1.02s", "1.50m") in ms;
// negative when `v` is no such time.
double wrk_ms(const std::string& v) {
    double x = 0;
    char unit[4] = "";
    if (std::sscanf(v.c_str(), "%lf%3[a-z]", &x, unit) != 2) return -1;
    const std::string u = unit;
    if (u == "us") return x / 1000;
    if (u == "ms") return x;
    if (u == "s") return x * 1000;
    if (u == "m") return x * 60000;
    if (u == "h") return x * 3600000;
    return -1;
}

// The words of `out` that follow the first occurrence of `key`, or "" when
// `key` is absent (a plain scan: <regex> trips -Werror in the sanitized build).
std::string after(const std::string& out, const std::string& key) {
    const auto at = out.find(key);
    if (at == std::string::npos) return "";
    const auto from = at + key.size(), nl = out.find('\n', from);
    return out.substr(from, nl == std::string::npos ? std::string::npos : nl - from);
}

// wrk --latency's report: requests, seconds, rate, percentiles, errors.
json parse_wrk(const std::string& out) {
    json j;
    unsigned long long n = 0;
    char took[32] = "";
    const auto total = out.find(" requests in ");
    if (total != std::string::npos) {
        const auto line_start = out.rfind('\n', total) + 1;
        if (std::sscanf(out.c_str() + line_start, "%llu requests in %31[0-9.a-z]", &n, took) == 2) {
            j["requests"] = n;
            j["seconds"] = wrk_ms(took) / 1000;
        }
    }
    double rate = 0;
    if (std::sscanf(after(out, "Requests/sec:").c_str(), "%lf", &rate) == 1) j["requests_per_s"] = rate;
    const auto dist = out.find("Latency Distribution");
    if (dist != std::string::npos)
        for (const char* p : {"50", "75", "90", "99"}) {
            char v[32] = "";
            if (std::sscanf(after(out.substr(dist), std::string(" ") + p + "% ").c_str(), "%31s", v) == 1 && wrk_ms(v) >= 0)
                j[std::string("p") + p + "_ms"] = std::round(wrk_ms(v) * 1000) / 1000;
        }
    std::uint64_t errors = 0;
    unsigned long long c = 0, r = 0, w = 0, t = 0, bad = 0;
    if (std::sscanf(after(out, "Socket errors:").c_str(), " connect %llu, read %llu, write %llu, timeout %llu", &c, &r,
                    &w, &t) == 4) {
        j["socket_errors"] = {{"connect", c}, {"read", r}, {"write", w}, {"timeout", t}};
        errors += c + r + w + t;
    }
    if (std::sscanf(after(out, "Non-2xx or 3xx responses:").c_str(), "%llu", &bad) == 1) {
        j["non_2xx"] = bad;
        errors += bad;
    }
    j["errors"] = errors;
    if (!j.contains("requests") || !j.contains("requests_per_s") || !j.contains("p99_ms"))
        throw std::runtime_error("cannot read wrk's report: " + tail(out));
    return j;
}

// The line the --requests script prints when a thread has had its share.
constexpr const char* kThreadDone = "egress-bench: thread done";

// wrk's standard output, read to its end (bounded wait). With `threads` > 0
// (--requests), once that many threads have printed kThreadDone, wrk gets
// SIGINT: a stopped thread does not end wrk's run before its duration, and
// on SIGINT wrk reports what it did up to then, over the time it took.
std::string run_wrk(const std::vector<std::string>& argv, int timeout_s, std::uint32_t threads) {
    auto c = spawn(argv);
    std::string out;
    std::uint32_t done = 0;
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
        pollfd p{c.out.get(), POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
            ::kill(c.pid, SIGKILL);
            reap(c);
            throw std::runtime_error("wrk did not finish within " + std::to_string(timeout_s) + " s");
        }
        char buf[4096];
        const auto n = ::read(c.out.get(), buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
        if (threads > 0 && done < threads) {
            std::uint32_t seen = 0;
            for (auto at = out.find(kThreadDone); at != std::string::npos; at = out.find(kThreadDone, at + 1)) ++seen;
            if (seen >= threads && done < threads) ::kill(c.pid, SIGINT);
            done = seen;
        }
    }
    reap(c);
    return out;
}

// CPU seconds of the children this process has reaped (wrk, once run_wrk returns).
double reaped_children_cpu() {
    rusage u{};
    ::getrusage(RUSAGE_CHILDREN, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double per_request_us(double cpu_s, std::uint64_t requests) {
    return requests ? std::round(cpu_s * 1e6 / static_cast<double>(requests) * 10) / 10 : 0.0;
}

// One run in a fresh namespace: `mode` is "direct" or "egress-run".
json nginx_once(const Args& a, const Setup& s, const std::string& mode) {
    if (!a.has("no-netns")) {
        NetnsSetup ns;
        ns.extra_sources = 0;
        ns.black_hole = false;
        ns.port_range = "10000 65000";
        if (auto err = enter_private_netns(ns); !err.empty()) throw std::runtime_error(err);
    }
    PeerNetns peer(PeerNetnsSetup{.local_sources = static_cast<int>(s.sources)});
    TempDir dir;
    const auto upstream_at = *parse_address(peer.remote_v4(), kHttpPort);
    const auto proxy_at = *parse_address("127.0.0.1", kHttpPort);
    const auto up_conf = write_conf(dir.path + "/upstream", s.workers,
                                    "    listen " + endpoint_string(upstream_at) + " backlog=65535;\n"
                                    "    location / { return 200 \"a small static response\\n\"; }\n");
    auto in_peer = peer.wrap({s.nginx, "-p", dir.path + "/upstream", "-c", up_conf});
    in_peer[0] = s.nsenter;  // ServerProcess runs a path, without a $PATH search
    ServerProcess upstream(in_peer, dir.path + "/upstream.out", upstream_at);
    // No upstream block, hence no keepalive: HTTP/1.0 and a new connection per request.
    const auto px_conf = write_conf(dir.path + "/proxy", s.workers,
                                    "    listen " + endpoint_string(proxy_at) + " backlog=65535;\n"
                                    "    location / { proxy_pass http://" + endpoint_string(upstream_at) + "; }\n");
    std::optional<Egressd> daemon;
    std::vector<std::string> argv;
    if (mode == "egress-run") {
        daemon.emplace(a, dropin_egressd_config(peer, peer.local_v4(), a.get("strategy", "kernel-range")));
        argv = egress_run_prefix(a, daemon->socket());
    }
    argv.insert(argv.end(), {s.nginx, "-p", dir.path + "/proxy", "-c", px_conf});
    ServerProcess proxy(argv, dir.path + "/proxy.out", proxy_at);
    std::string why;
    for (int i = 0; i < 50 && !(why = http_get_ok(proxy_at)).empty(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!why.empty())
        throw std::runtime_error("no 200 through the proxy (" + why + "); its log: " +
                                 tail(read_file(dir.path + "/proxy/error.log") + read_file(dir.path + "/proxy.out")));

    std::vector<std::string> wrk{s.wrk, "-t", std::to_string(s.threads), "-c", std::to_string(s.connections),
                                 "--latency", "--timeout", "5s"};
    if (s.requests) {
        // Each thread stops after its share of the requests and says so
        // (run_wrk then ends the run).
        const auto script = dir.path + "/stop.lua";
        std::ofstream(script) << "local done, limit = 0, " << (s.requests + s.threads - 1) / s.threads << "\n"
                              << "function response(status, headers, body)\n"
                              << "  done = done + 1\n"
                              << "  if done == limit then\n"
                              << "    io.write(\"" << kThreadDone << "\\n\"); io.stdout:flush(); wrk.thread:stop()\n"
                              << "  end\nend\n";
        wrk.insert(wrk.end(), {"-d", "600s", "-s", script});
    } else {
        wrk.insert(wrk.end(), {"-d", std::to_string(s.duration_s) + "s"});
    }
    wrk.push_back("http://" + endpoint_string(proxy_at) + "/");
    const auto egressd_cpu = [&] { return daemon ? cpu_seconds(daemon->pid()) : 0.0; };
    const double px0 = proxy.cpu_seconds(), up0 = upstream.cpu_seconds(), eg0 = egressd_cpu();
    const double wrk0 = reaped_children_cpu();
    auto j = parse_wrk(run_wrk(wrk, s.requests ? 600 : static_cast<int>(s.duration_s) + 60, s.requests ? s.threads : 0));
    const auto requests = j.value("requests", 0ULL);
    // CPU per request of every process on the path: with both cores busy,
    // the rate is about the inverse of their sum.
    const double px = proxy.cpu_seconds() - px0, up = upstream.cpu_seconds() - up0, eg = egressd_cpu() - eg0,
                 wk = reaped_children_cpu() - wrk0;
    j["cpu_us_per_request"] = {{"proxy", per_request_us(px, requests)},
                               {"upstream", per_request_us(up, requests)},
                               {"egressd", per_request_us(eg, requests)},
                               {"wrk", per_request_us(wk, requests)},
                               {"total", per_request_us(px + up + eg + wk, requests)}};
    j["scenario"] = "nginx";
    j["mode"] = mode;
    j["workers"] = s.workers;
    j["connections"] = s.connections;
    j["threads"] = s.threads;
    // The proxy's error log names every upstream connect that failed.
    const auto log = read_file(dir.path + "/proxy/error.log");
    std::uint64_t log_errors = 0;
    for (std::size_t at = 0; (at = log.find("[error]", at)) != std::string::npos; ++at) ++log_errors;
    j["proxy_log_errors"] = log_errors;
    if (log_errors) j["proxy_log_tail"] = tail(log);
    if (daemon) {
        j["sources"] = s.sources;
        j["strategy"] = a.get("strategy", "kernel-range");
        j["egressd"] = pool_counts(daemon->socket());
        // Every request made one upstream connect, the warm-up one more.
        const auto through = j["egressd"]["connects_ok"].get<unsigned long long>();
        if (through < requests)
            j["problem"] = std::to_string(requests - std::min<unsigned long long>(through, requests)) + " of " +
                           std::to_string(requests) + " requests' upstream connects did not go through egressd";
    }
    return j;
}

bool failed(const json& j) {
    return j.contains("error") || j.contains("problem") || j.value("errors", 0ULL) > 0 ||
           j.value("proxy_log_errors", 0ULL) > 0;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

// One mode's report: the run of median rate, with every run's rate and p99.
json combine(std::vector<json> runs) {
    for (const auto& j : runs)
        if (j.contains("error")) return j;
    json rates = json::array(), p99s = json::array();
    for (const auto& j : runs) rates.push_back(j["requests_per_s"]), p99s.push_back(j["p99_ms"]);
    std::sort(runs.begin(), runs.end(), [](const json& x, const json& y) {
        return x["requests_per_s"].get<double>() < y["requests_per_s"].get<double>();
    });
    json out = runs[runs.size() / 2];
    out["runs"] = runs.size();
    out["requests_per_s_all"] = rates;
    out["p99_ms_all"] = p99s;
    return out;
}

void print_report(const std::vector<json>& reports, const std::vector<double>& ratios,
                  const std::vector<double>& cpu_ratios, const Setup& s) {
    std::printf("nginx proxy (%u workers) -> nginx upstream in a peer namespace, no upstream keepalive; wrk %u "
                "thread(s), %u connections, %s; median of %u run(s)\n\n",
                s.workers, s.threads, s.connections,
                s.requests ? (std::to_string(s.requests) + " requests").c_str()
                           : (std::to_string(s.duration_s) + " s").c_str(),
                s.runs);
    std::printf("%-11s %9s %8s %11s %8s %8s %8s %8s %7s %9s %9s %9s %7s %9s\n", "mode", "requests", "errors",
                "requests/s", "p50_ms", "p75_ms", "p90_ms", "p99_ms", "log_err", "proxy_us", "upstr_us", "egress_us",
                "wrk_us", "total_us");
    for (const auto& j : reports) {
        if (j.contains("error")) {
            std::printf("%-11s error: %s\n", j.value("mode", "?").c_str(), j["error"].get<std::string>().c_str());
            continue;
        }
        const auto& cpu = j["cpu_us_per_request"];
        std::printf("%-11s %9llu %8llu %11.0f %8.3f %8.3f %8.3f %8.3f %7llu %9.1f %9.1f %9.1f %7.1f %9.1f\n",
                    j["mode"].get<std::string>().c_str(), j["requests"].get<unsigned long long>(),
                    j["errors"].get<unsigned long long>(), j["requests_per_s"].get<double>(), j.value("p50_ms", 0.0),
                    j.value("p75_ms", 0.0), j.value("p90_ms", 0.0), j.value("p99_ms", 0.0),
                    j["proxy_log_errors"].get<unsigned long long>(), cpu["proxy"].get<double>(),
                    cpu["upstream"].get<double>(), cpu["egressd"].get<double>(), cpu["wrk"].get<double>(),
                    cpu["total"].get<double>());
        if (j.contains("socket_errors") && j["errors"].get<unsigned long long>() > 0)
            std::printf("    wrk socket errors %s, non-2xx %llu\n", j["socket_errors"].dump().c_str(),
                        j.value("non_2xx", 0ULL));
        if (j.contains("proxy_log_tail")) std::printf("    proxy log: %s\n", j["proxy_log_tail"].get<std::string>().c_str());
        if (j.contains("problem")) std::printf("    problem: %s\n", j["problem"].get<std::string>().c_str());
        if (j.contains("egressd")) std::printf("    egressd's pool: %s\n", j["egressd"].dump().c_str());
        if (j.value("runs", 1U) > 1)
            std::printf("    all runs: requests/s %s, p99_ms %s\n", j["requests_per_s_all"].dump().c_str(),
                        j["p99_ms_all"].dump().c_str());
    }
    if (ratios.empty()) return;
    std::printf("\negress-run / direct requests/s, per run:");
    for (double r : ratios) std::printf(" %.2fx", r);
    const double m = median(ratios);
    std::printf("\nunder egress-run nginx serves %.2fx the requests/s of direct (median of the runs' ratios; "
                "target >= 0.8x: %s)\n", m, m >= 0.8 ? "met" : "missed");
    std::printf("CPU per request of the whole path, direct / egress-run, per run:");
    for (double r : cpu_ratios) std::printf(" %.2fx", r);
    std::printf("\n(the requests/s ratio to expect while the path has both cores to itself and uses them fully: "
                "median %.2fx)\n", median(cpu_ratios));
}

}  // namespace

int cmd_nginx(const Args& a) {
    Setup s;
    if (a.has("requests") && a.has("duration")) usage("--requests and --duration exclude each other");
    s.requests = a.has("requests") ? a.num("requests", 0) : 0;
    s.duration_s = s.requests ? 0 : a.num("duration", 10);
    s.connections = a.num("connections", 64);
    s.workers = a.num("workers", 2);
    s.threads = a.num("threads", 1);
    s.sources = a.num("sources", 4);
    s.runs = a.num("runs", 1);
    if (s.sources > 50) usage("--sources is at most 50");
    if (s.threads > s.connections) usage("--threads must not exceed --connections");
    try {
        s.nginx = find_program(a, "nginx", "nginx", "nginx-light");
        s.wrk = find_program(a, "wrk", "wrk", "wrk");
        s.nsenter = find_program(a, "nsenter", "nsenter", "util-linux");
    } catch (const std::exception& e) {
        std::cerr << "egress-bench nginx: " << e.what() << "\n";
        return 1;
    }
    std::vector<std::vector<json>> all(std::size(kModes));
    std::vector<double> ratios, cpu_ratios;
    for (std::uint32_t r = 0; r < s.runs; ++r) {
        for (std::size_t m = 0; m < std::size(kModes); ++m) {
            auto j = in_child([&] { return nginx_once(a, s, kModes[m]); });
            j["mode"] = kModes[m];
            all[m].push_back(std::move(j));
        }
        const auto &d = all[0].back(), &e = all[1].back();
        if (!d.contains("error") && !e.contains("error") && d["requests_per_s"].get<double>() > 0)
            ratios.push_back(std::round(e["requests_per_s"].get<double>() / d["requests_per_s"].get<double>() * 100) / 100);
        if (!d.contains("error") && !e.contains("error") && e["cpu_us_per_request"]["total"].get<double>() > 0)
            cpu_ratios.push_back(std::round(d["cpu_us_per_request"]["total"].get<double>() /
                                            e["cpu_us_per_request"]["total"].get<double>() * 100) / 100);
    }
    std::vector<json> reports;
    for (auto& runs : all) reports.push_back(combine(runs));
    if (a.has("json")) {
        for (auto& j : reports) {
            if (j["mode"] == "egress-run") j["ratio_per_run"] = ratios, j["cpu_ratio_per_run"] = cpu_ratios;
            std::cout << j.dump() << "\n";
        }
    } else {
        print_report(reports, ratios, cpu_ratios, s);
    }
    for (const auto& runs : all)
        for (const auto& j : runs)
            if (failed(j)) return 1;
    return 0;
}

}  // namespace egress::bench
