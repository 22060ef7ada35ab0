#include "common.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include "sockaddr.hpp"

namespace egress::bench {
namespace {

bool wait_for_socket(const std::string& path, pid_t pid, std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
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

}  // namespace

std::string Args::get(const std::string& k, const std::string& def) const {
    auto it = values.find(k);
    return it == values.end() ? def : it->second;
}

std::uint32_t Args::num(const std::string& k, std::uint32_t def) const {
    if (!has(k)) return def;
    try {
        const auto v = std::stoul(values.at(k));
        if (v == 0 || v > 10'000'000) throw std::out_of_range(k);
        return static_cast<std::uint32_t>(v);
    } catch (const std::exception&) {
        usage("--" + k + " needs a positive number, got '" + values.at(k) + "'");
    }
}

Args parse(int argc, char** argv, int from) {
    static const char* flags[] = {"json", "no-netns", "hold", "series"};  // options without a value
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

Child spawn(const std::vector<std::string>& argv, const std::string& stderr_file) {
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

std::string read_line(Child& c) {
    std::size_t nl;
    while ((nl = c.unread.find('\n')) == std::string::npos) {
        char buf[65536];
        const auto n = ::read(c.out.get(), buf, sizeof buf);
        if (n <= 0) return std::exchange(c.unread, {});
        c.unread.append(buf, static_cast<std::size_t>(n));
    }
    auto line = c.unread.substr(0, nl);
    c.unread.erase(0, nl + 1);
    return line;
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

// Resident memory of a live process, in bytes (/proc/PID/status).
double rss_bytes(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string key; in >> key;) {
        if (key == "VmRSS:") {
            double kib = 0;
            in >> kib;
            return kib * 1024;
        }
        in.ignore(1 << 16, '\n');
    }
    return 0;
}

std::vector<std::uint32_t> number_list(const Args& a, const std::string& key, const std::string& def) {
    std::vector<std::uint32_t> out;
    std::stringstream list(a.get(key, def));
    for (std::string s; std::getline(list, s, ',');) {
        try {
            out.push_back(static_cast<std::uint32_t>(std::stoul(s)));
        } catch (const std::exception&) {
            usage("--" + key + " takes numbers, got '" + s + "'");
        }
    }
    return out;
}

void add_cpu_figures(json& run, double cpu_s, std::uint64_t connects) {
    const double total_s = run.value("total_s", 0.0);
    run["egressd_cpu_s"] = std::round(cpu_s * 1000) / 1000;
    run["egressd_cpu_us_per_connect"] = connects ? std::round(cpu_s * 1e7 / static_cast<double>(connects)) / 10 : 0.0;
    run["egressd_cores_busy"] = total_s > 0 ? std::round(cpu_s / total_s * 100) / 100 : 0.0;
    if (!run.contains("connects_per_s"))
        run["connects_per_s"] = total_s > 0 ? std::round(static_cast<double>(connects) / total_s) : 0.0;
}

void print_thread_scaling(const std::vector<json>& runs, const std::string& label) {
    std::printf("\n%-24s %7s %12s %13s %11s %12s %16s\n", label.c_str(), "threads", "connects/s", "cpu_us/connect",
                "cores_busy", "cpu_vs_first", "implied_max/s");
    std::map<std::string, double> first;  // per label: its first run's CPU per connect
    for (const auto& j : runs) {
        if (j.contains("error") || !j.contains("egressd_cpu_us_per_connect")) continue;
        const double us = j["egressd_cpu_us_per_connect"].get<double>();
        const auto t = j["threads"].get<unsigned>();
        auto& base = first[j.value("label", std::string("-"))];
        if (base == 0) base = us;
        std::printf("%-24s %7u %12.0f %13.1f %11.2f %11.2fx %16.0f\n", j.value("label", std::string("-")).c_str(), t,
                    j["connects_per_s"].get<double>(), us, j["egressd_cores_busy"].get<double>(),
                    base > 0 ? us / base : 0.0, us > 0 ? t * 1e6 / us : 0.0);
    }
    std::printf("implied_max/s: the connects/s egressd's CPU per connect allows with one core per thread; on a host\n"
                "whose cores the load generators share it is a bound, not a measurement.\n");
}

std::vector<std::uint32_t> thread_counts(const Args& a) {
    if (!a.has("threads")) return {0};
    auto list = number_list(a, "threads", "");
    for (auto t : list)
        if (t == 0 || t > 1024) usage("--threads takes 1-1024 per run");
    return list;
}

std::uint32_t effective_threads(std::uint32_t threads) {
    if (threads > 0) return threads;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    return static_cast<std::uint32_t>(std::max(1, CPU_COUNT(&set)));
}

// Runs `fn` in a child process (a fresh namespace each time) and returns its JSON.
json median_of_runs(const std::vector<json>& runs) {
    auto sorted = runs;
    std::sort(sorted.begin(), sorted.end(),
              [](const json& x, const json& y) { return x.value("total_s", 1e9) < y.value("total_s", 1e9); });
    json m = sorted[sorted.size() / 2];
    if (runs.size() > 1) {
        m["runs"] = runs.size();
        m["total_s_all"] = json::array();
        for (const auto& r : runs) m["total_s_all"].push_back(r.value("total_s", -1.0));
    }
    return m;
}

json in_child(const std::function<json()>& fn) {
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

UniqueFd open_listener(const Endpoint& at) {
    UniqueFd fd(::socket(at.v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const auto sa = to_sockaddr(at);
    if (!fd || ::bind(fd.get(), sa.get(), sa.len) != 0 || ::listen(fd.get(), 1 << 20) != 0)
        throw std::runtime_error("listener on " + endpoint_string(at) + ": " + std::strerror(errno));
    return fd;
}

void reap(Child& c) {
    c.in.reset();
    int st;
    if (c.pid > 0) ::waitpid(c.pid, &st, 0);
    c.pid = -1;
}

Egressd::Egressd(const Args& a, const json& config, const std::vector<std::string>& prefix,
                 std::chrono::milliseconds start_timeout) {
    char tmpl[] = "/tmp/egress-bench.XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    dir_ = tmpl;
    socket_ = dir_ + "/egressd.sock";
    // The scenarios connect to loopback listeners, which the built-in deny
    // list refuses unless a rule allows them.
    auto with_policy = config;
    if (!config.contains("clients") && !config.contains("default_client"))
        with_policy["default_client"] = {{"name", "bench-loopback"},
                                         {"destinations", {{{"action", "allow"}, {"dest", "127.0.0.0/8"}},
                                                           {{"action", "allow"}, {"dest", "::1/128"}}}}};
    std::ofstream(dir_ + "/config.json") << with_policy.dump(2);
    std::vector<std::string> argv = prefix;
    argv.insert(argv.end(), {egressd_path(a), "--config", dir_ + "/config.json", "--socket", socket_});
    proc_ = spawn(argv, dir_ + "/egressd.log");
    if (!wait_for_socket(socket_, proc_.pid, start_timeout)) {
        std::string log;
        std::ifstream in(dir_ + "/egressd.log");
        std::getline(in, log, '\0');
        stop();
        throw std::runtime_error("egressd did not start: " + log);
    }
}

Egressd::~Egressd() { stop(); }

void Egressd::stop() {
    if (proc_.pid > 0) {
        ::kill(proc_.pid, SIGTERM);
        int st;
        ::waitpid(proc_.pid, &st, 0);
        proc_.pid = -1;
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
    dir_.clear();
}

}  // namespace egress::bench
