// egressd as a drop-in for real, unmodified programs: curl, nginx, HAProxy
// and Python 3 run under egress-run (the LD_PRELOAD shim), and every
// connection they make to the upstream is their own socket, sent to egressd
// in adopt mode and connected from its pool. The upstream lives in a peer
// namespace and logs the address of each connection; that log, what the
// programs report and egressd's metrics must agree. The programs' configs and
// the Python probe are in tests/integration/dropin/.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "dns_server.hpp"
#include "harness.hpp"
#include "peer_netns.hpp"
#include "sockaddr.hpp"

extern char** environ;

namespace egress::test {
namespace {

using namespace std::chrono_literals;


std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) out.push_back(line);
    return out;
}

std::vector<std::string> words_of(const std::string& line) {
    std::vector<std::string> out;
    std::istringstream in(line);
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

// `path`.in from tests/integration/dropin/ with each @KEY@ replaced.
std::string from_template(const std::string& name, const std::map<std::string, std::string>& values) {
    auto text = read_file(env_or_die("DROPIN_DIR") + "/" + name + ".in");
    for (const auto& [key, value] : values)
        for (auto at = text.find("@" + key + "@"); at != std::string::npos; at = text.find("@" + key + "@"))
            text.replace(at, key.size() + 2, value);
    EXPECT_EQ(text.find('@'), std::string::npos) << name << ": a placeholder was left";
    return text;
}

// Polls `done` every 10 ms until it holds or `timeout` passes; returns its last value.
template <typename F>
bool wait_until(F done, std::chrono::milliseconds timeout = 10s) {
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
        if (done()) return true;
        if (ms_since(t0) > static_cast<double>(timeout.count())) return false;
        std::this_thread::sleep_for(10ms);
    }
}

// `address` as inet_ntop writes it (nginx's $remote_addr, getsockname(),
// egressd's labels): "fd00:200:0::1" is "fd00:200::1".
std::string canonical(const std::string& address) { return address_string(*parse_address(address)); }

// The source address the kernel picks for `remote` (a UDP connect sends nothing).
std::string kernel_source(const std::string& remote) {
    const auto dest = parse_address(remote, 9);
    UniqueFd fd(::socket(dest->v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    const auto sa = to_sockaddr(*dest);
    if (::connect(fd.get(), sa.get(), sa.len) != 0) return "";
    SockAddr local;
    local.len = sizeof local.storage;
    ::getsockname(fd.get(), local.get(), &local.len);
    return address_string(*from_sockaddr(local.get(), local.len));
}

// The test's environment with DROPIN_PROGRAM_ENV's entries (NAME=VALUE,
// space-separated) set: what a sanitized build needs the programs to have.
std::vector<std::string> program_environment() {
    std::map<std::string, std::string> vars;
    for (char** e = environ; *e; ++e) {
        const std::string entry(*e);
        vars[entry.substr(0, entry.find('='))] = entry;
    }
    if (const char* extra = std::getenv("DROPIN_PROGRAM_ENV"))
        for (const auto& entry : words_of(extra)) vars[entry.substr(0, entry.find('='))] = entry;
    std::vector<std::string> out;
    for (auto& [name, entry] : vars) out.push_back(std::move(entry));
    return out;
}

// A program the test started, in a process group of its own, its output in
// files. The destructor ends the whole group (nginx's workers too) whatever
// the test's outcome, and prints the output when the test failed.
class Program {
public:
    Program(std::string name, std::vector<std::string> argv, const std::string& dir)
        : name_(std::move(name)), argv_(std::move(argv)), out_path_(dir + "/" + name_ + ".out"),
          err_path_(dir + "/" + name_ + ".err") {
        if (argv_[0].find('/') == std::string::npos) argv_[0] = "/usr/bin/" + argv_[0];  // curl, nsenter
        std::vector<char*> args;
        for (auto& a : argv_) args.push_back(a.data());
        args.push_back(nullptr);
        env_ = program_environment();
        std::vector<char*> envp;
        for (auto& e : env_) envp.push_back(e.data());
        envp.push_back(nullptr);
        pid_ = ::fork();
        if (pid_ == 0) {
            // Only async-signal-safe calls: the test process has threads.
            ::setpgid(0, 0);
            const int in = ::open("/dev/null", O_RDONLY);
            const int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            const int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            ::dup2(in, 0);
            ::dup2(out, 1);
            ::dup2(err, 2);
            ::close_range(3, ~0U, 0);
            ::execve(args[0], args.data(), envp.data());
            ::_exit(127);
        }
        if (pid_ < 0) ADD_FAILURE() << name_ << ": fork: " << std::strerror(errno);
        ::setpgid(pid_, pid_);  // also here, so a kill(-pid) right away reaches it
    }

    ~Program() {
        stop();
        // An instrumented egress-run or shim must report nothing either.
        if (const auto report = sanitizer_report(err()); !report.empty()) ADD_FAILURE() << name_ << ": " << report;
        if (::testing::Test::HasFailure()) std::fprintf(stderr, "%s\n", describe().c_str());
    }
    Program(const Program&) = delete;
    Program& operator=(const Program&) = delete;

    pid_t pid() const { return pid_; }
    std::string out() const { return read_file(out_path_); }
    std::string err() const { return read_file(err_path_); }

    // True while the program runs; once it has exited, its status is kept.
    bool running() {
        if (status_ || pid_ <= 0) return false;
        siginfo_t info{};
        // WNOWAIT: a zombie keeps its process group id reserved for reap().
        if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0)
            return true;
        reap();
        return false;
    }

    // The exit status (exit code, or 128+signal), or nullopt if the program
    // still runs after `timeout` (then it is ended and the test fails).
    std::optional<int> wait(std::chrono::milliseconds timeout = 30s) {
        if (!wait_until([&] { return !running(); }, timeout)) {
            ADD_FAILURE() << name_ << " still runs after " << timeout.count() << " ms";
            stop();
            return std::nullopt;
        }
        return status_;
    }

    std::string describe() const {
        std::string cmd;
        for (const auto& a : argv_) cmd += a + " ";
        auto tail = [](std::string s) { return s.size() > 6000 ? "..." + s.substr(s.size() - 6000) : s; };
        return "--- " + name_ + ": " + cmd + "(" + (status_ ? "status " + std::to_string(*status_) : "running") +
               ")\n--- stdout:\n" + tail(out()) + "--- stderr:\n" + tail(err());
    }

private:
    // Ends the group: SIGTERM, then SIGKILL for whatever is left after 5 s.
    void stop() {
        if (pid_ <= 0 || status_) return;
        ::kill(-pid_, SIGTERM);
        wait_until([&] { return !running(); }, 5s);
        if (!status_) {
            ::kill(-pid_, SIGKILL);
            wait_until([&] { return !running(); }, 5s);
        }
    }
    // The leader has exited: ends what is left of its group (a worker that
    // outlived its master), then reaps it.
    void reap() {
        ::kill(-pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }

    std::string name_;
    std::vector<std::string> argv_, env_;
    std::string out_path_, err_path_;
    pid_t pid_ = -1;
    std::optional<int> status_;
};

struct HttpReply {
    int status = 0;
    std::string body;
};

// One HTTP/1.0 GET / on a new connection, made by the test itself (not under
// the shim). nullopt with `error` set when it failed.
std::optional<HttpReply> http_get_from(const std::string& address, int port, std::string* error = nullptr) {
    auto fail = [&](const std::string& what) {
        if (error) *error = what + ": " + std::strerror(errno);
        return std::nullopt;
    };
    const auto dest = parse_address(address, static_cast<std::uint16_t>(port));
    UniqueFd fd(::socket(dest->v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const timeval tv{10, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const auto sa = to_sockaddr(*dest);
    if (::connect(fd.get(), sa.get(), sa.len) != 0) return fail("connect");
    const std::string req = "GET / HTTP/1.0\r\nHost: dropin\r\n\r\n";
    if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
        return fail("send");
    std::string response;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) response.append(buf, static_cast<std::size_t>(n));
    if (n < 0) return fail("read");
    const auto head_end = response.find("\r\n\r\n");
    if (response.compare(0, 9, "HTTP/1.1 ") != 0 || head_end == std::string::npos) {
        if (error) *error = "not an HTTP response: " + response.substr(0, 200);
        return std::nullopt;
    }
    HttpReply r;
    r.status = std::atoi(response.c_str() + 9);
    r.body = response.substr(head_end + 4);
    while (!r.body.empty() && (r.body.back() == '\n' || r.body.back() == '\r')) r.body.pop_back();
    return r;
}

// `total` GETs through a proxy on 127.0.0.1:`port`, from `threads` threads,
// one connection each. The upstream's answer is the address each upstream
// connection came from: they are tallied in `peers`.
struct Load {
    int ok = 0;
    std::vector<std::string> errors;
    std::map<std::string, int> peers;
};
Load load(int port, int total, int threads = 8) {
    Load result;
    std::mutex m;
    std::atomic<int> next{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&] {
            while (next++ < total) {
                std::string error;
                const auto r = http_get_from("127.0.0.1", port, &error);
                std::lock_guard lock(m);
                if (r && r->status == 200) {
                    ++result.ok;
                    ++result.peers[r->body];
                } else {
                    result.errors.push_back(r ? "status " + std::to_string(r->status) + ": " + r->body : error);
                }
            }
        });
    for (auto& t : pool) t.join();
    return result;
}

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
}

template <typename Map>
std::string show(const Map& m) {
    std::string s;
    for (const auto& [k, v] : m) s += (s.empty() ? "" : ", ") + k + "=" + std::to_string(v);
    return "{" + s + "}";
}

// What egressd counted: adopted connects that ended well, and finished
// connects per pool source.
struct Counts {
    double adopted_ok = 0;
    std::map<std::string, double> ok_by_source;
    double of(const std::string& source) const {
        const auto at = ok_by_source.find(source);
        return at == ok_by_source.end() ? 0 : at->second;
    }
    double ok() const {
        double sum = 0;
        for (const auto& [source, n] : ok_by_source) sum += n;
        return sum;
    }
    Counts since(const Counts& before) const {
        Counts d{adopted_ok - before.adopted_ok, {}};
        for (const auto& [source, n] : ok_by_source) d.ok_by_source[source] = n - before.ok_by_source.at(source);
        return d;
    }
};

// The test's files: configs, logs, the programs' output. Removed when the
// test passed, kept (and named) when it failed. Declared first in the
// fixture, so it outlives every program that writes into it.
class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/egressd-dropin.XXXXXX";
        path_ = ::mkdtemp(tmpl);
    }
    ~TempDir() {
        if (::testing::Test::HasFailure()) std::fprintf(stderr, "dropin: files kept in %s\n", path_.c_str());
        else std::filesystem::remove_all(path_);
    }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

class DropIn : public ::testing::Test {
protected:
    static constexpr const char* kPool = "peer";
    static constexpr const char* kRule = "dropin";

    void SetUp() override {
        // The pool leaves out the address the kernel would pick itself, so
        // that a connect that bypassed egressd shows in the upstream's log.
        kernel_v4_ = kernel_source(peer_.remote_v4());
        kernel_v6_ = kernel_source(peer_.remote_v6());
        for (const auto& a : peer_.local_v4())
            if (canonical(a) != kernel_v4_) pool_v4_.push_back(canonical(a));
        for (const auto& a : peer_.local_v6())
            if (canonical(a) != kernel_v6_) pool_v6_.push_back(canonical(a));
        ASSERT_GE(pool_v4_.size(), 2u) << kernel_v4_;
        ASSERT_GE(pool_v6_.size(), 2u) << kernel_v6_;
        auto sources = pool_v4_;
        sources.insert(sources.end(), pool_v6_.begin(), pool_v6_.end());
        auto allow = [](const std::string& cidr) { return nlohmann::json{{"action", "allow"}, {"dest", cidr}}; };
        const nlohmann::json config = {
            // Longer than any timeout a program sets below: what they see is their own.
            {"connect", {{"default_timeout_ms", 10000}}},
            {"pools", {{kPool, {{"sources", sources}}}}},
            {"default_pool", kPool},
            // The peer's subnets are private (denied by default): opened by prefix.
            {"default_client",
             {{"name", kRule},
              {"destinations",
               {allow(peer_.subnet_v4()), allow(peer_.subnet_v6()), allow(std::string(kBlackHole) + "/32")}}}},
        };
        d_ = std::make_unique<Daemon>(config.dump());
        ASSERT_GT(d_->metrics_port(), 0);

        upstream_port_ = next_test_port();
        std::filesystem::create_directories(dir_ + "/upstream-tmp");
        std::ofstream(dir_ + "/upstream.conf") << from_template(
            "nginx-upstream.conf",
            {{"DIR", dir_}, {"V4", peer_.remote_v4()}, {"V6", peer_.remote_v6()}, {"PORT", std::to_string(upstream_port_)}});
        upstream_ = std::make_unique<Program>(
            "upstream", peer_.wrap({"/usr/sbin/nginx", "-p", dir_, "-c", dir_ + "/upstream.conf", "-e",
                                    dir_ + "/upstream-error.log"}),
            dir_);
        // The test's own connects reach it directly (not through egressd).
        for (const auto& address : {peer_.remote_v4(), peer_.remote_v6()})
            ASSERT_TRUE(wait_until([&] {
                const auto r = http_get_from(address, upstream_port_);
                return (r && r->status == 200) || !upstream_->running();
            }) && upstream_->running())
                << "the upstream does not answer on " << address << "\n" << read_file(dir_ + "/upstream-error.log");
    }

    // `command` under egress-run, with this test's egressd and shim.
    std::vector<std::string> under_egress_run(const std::vector<std::string>& command,
                                              const std::vector<std::string>& options = {}) const {
        std::vector<std::string> argv{env_or_die("EGRESS_RUN_BIN"), "--socket", d_->socket(), "--preload",
                                      env_or_die("EGRESS_PRELOAD_LIB")};
        argv.insert(argv.end(), options.begin(), options.end());
        argv.push_back("--");
        argv.insert(argv.end(), command.begin(), command.end());
        return argv;
    }

    // Runs `command` under egress-run to its end. The Program is kept until
    // the test ends, so that its output is printed if any later check fails.
    struct Ran {
        int status = -1;
        std::string out, err;
        pid_t pid = -1;
        double ms = 0;
    };
    Ran run_under_egress(const std::string& name, const std::vector<std::string>& command,
                         const std::vector<std::string>& options = {}) {
        const auto t0 = std::chrono::steady_clock::now();
        // Numbered: two runs of one program keep their output apart.
        const auto unique = name + "-" + std::to_string(finished_.size() + 1);
        auto& p = *finished_.emplace_back(std::make_unique<Program>(unique, under_egress_run(command, options), dir_));
        const auto status = p.wait();
        return {status.value_or(-1), p.out(), p.err(), p.pid(), ms_since(t0)};
    }

    std::vector<std::string> probe(const std::string& mode, const std::string& host, int port,
                                   const std::string& seconds = "") const {
        std::vector<std::string> argv{"/usr/bin/python3", env_or_die("DROPIN_DIR") + "/probe.py", mode, host,
                                      std::to_string(port)};
        if (!seconds.empty()) argv.push_back(seconds);
        return argv;
    }

    Counts counts() const {
        const auto text = d_->scrape();
        Counts c;
        c.adopted_ok = std::max(0.0, metric_value(text, R"(egress_adopted_total{result="ok"})"));
        for (const auto* family : {&pool_v4_, &pool_v6_})
            for (const auto& source : *family)
                c.ok_by_source[source] = std::max(
                    0.0, metric_value(text, std::string(R"(egress_connects_total{pool=")") + kPool +
                                                R"(",result="ok",source=")" + source + R"(",transport="tcp"})"));
        return c;
    }
    // Polls until egressd has counted `n` more adopted connects than `before`:
    // it counts each once the connect has ended, which may be after the program saw it.
    Counts counts_after(const Counts& before, double n) const {
        Counts now;
        wait_until([&] {
            now = counts();
            return now.adopted_ok - before.adopted_ok >= n && now.ok() - before.ok() >= n;
        });
        return now.since(before);
    }

    // Requests egressd has answered (adopt requests among them).
    double requests() const { return metric("egress_request_duration_seconds_count"); }

    double metric(const std::string& series) const { return std::max(0.0, metric_value(d_->scrape(), series)); }

    // The peer addresses the upstream logged, one per connection.
    std::vector<std::string> upstream_peers() const { return lines_of(read_file(dir_ + "/upstream-peers.log")); }
    // Those logged after the first `skip`, once there are `n` of them.
    std::vector<std::string> upstream_peers_after(std::size_t skip, std::size_t n) const {
        std::vector<std::string> all;
        wait_until([&] {
            all = upstream_peers();
            return all.size() >= skip + n;
        });
        return std::vector<std::string>(all.begin() + static_cast<long>(std::min(skip, all.size())), all.end());
    }

    bool in_pool(const std::string& address) const {
        return std::count(pool_v4_.begin(), pool_v4_.end(), address) + std::count(pool_v6_.begin(), pool_v6_.end(), address) >
               0;
    }

    // Stops egressd as an operator would (SIGTERM); its socket goes with it.
    void stop_egressd() {
        ASSERT_TRUE(wait_until([&] { return d_->log().find(" listening on ") != std::string::npos; }));
        ASSERT_EQ(::kill(d_->pid(), SIGTERM), 0);
        ASSERT_TRUE(wait_until([&] { return !d_->alive(); })) << "egressd did not stop";
    }

    // The proxy tests: `total` requests through 127.0.0.1:`port`, whose
    // upstream connections must all be adopted and come from the pool.
    void expect_all_proxied_from_the_pool(Program& proxy, int port, int total) {
        ASSERT_TRUE(wait_until([&] {
            const auto r = http_get_from("127.0.0.1", port);
            return (r && r->status == 200) || !proxy.running();
        }) && proxy.running())
            << "the proxy does not answer";
        const auto before = counts();
        const auto logged = upstream_peers().size();

        const auto t0 = std::chrono::steady_clock::now();
        const auto result = load(port, total);
        std::fprintf(stderr, "dropin: %d requests in %.0f ms\n", total, ms_since(t0));
        EXPECT_EQ(result.ok, total);
        EXPECT_TRUE(result.errors.empty()) << result.errors.size() << " errors, the first: " << result.errors.front();
        for (const auto& [peer, n] : result.peers) EXPECT_TRUE(in_pool(peer)) << n << " requests came from " << peer;
        for (const auto& source : pool_v4_)
            EXPECT_GT(result.peers.count(source), 0u) << "round-robin never chose " << source << ": " << show(result.peers);

        const auto peers = upstream_peers_after(logged, static_cast<std::size_t>(total));
        EXPECT_EQ(peers.size(), static_cast<std::size_t>(total)) << "upstream connections";
        std::map<std::string, int> by_peer;
        for (const auto& p : peers) ++by_peer[p];
        for (const auto& [peer, n] : by_peer) EXPECT_TRUE(in_pool(peer)) << n << " upstream connections from " << peer;

        const auto counted = counts_after(before, total);
        EXPECT_EQ(counted.adopted_ok, total);
        EXPECT_EQ(counted.ok(), total) << show(counted.ok_by_source);
        for (const auto& [source, n] : by_peer)
            EXPECT_EQ(counted.of(source), n) << "egressd's count for " << source;
        EXPECT_TRUE(proxy.running()) << "the proxy died";
    }

    // A fresh index for each test: the kernel tears a namespace down
    // asynchronously, so the last test's veth may outlive its holder a while.
    static int next_peer_index() {
        static int next = 0;
        return next++ % 100;
    }

    TempDir temp_;
    const std::string dir_ = temp_.path();
    PeerNetns peer_{{}, next_peer_index()};
    std::string kernel_v4_, kernel_v6_;
    std::vector<std::string> pool_v4_, pool_v6_;
    std::unique_ptr<Daemon> d_;
    int upstream_port_ = 0;
    std::unique_ptr<Program> upstream_;
    std::vector<std::unique_ptr<Program>> finished_;
};

// ---- curl: its own non-blocking connect, IPv4 and IPv6 ----

TEST_F(DropIn, CurlConnectsFromThePoolOverIPv4AndIPv6) {
    for (const auto& [remote, pool] : {std::pair{peer_.remote_v4(), pool_v4_}, std::pair{peer_.remote_v6(), pool_v6_}}) {
        const auto before = counts();
        const auto url = "http://" + endpoint_string(*parse_address(remote, static_cast<std::uint16_t>(upstream_port_))) + "/";
        const auto r = run_under_egress("curl", {"curl", "-sS", "-g", "--max-time", "20", url});
        ASSERT_EQ(r.status, 0) << r.err;
        const auto peer = lines_of(r.out);
        ASSERT_EQ(peer.size(), 1u) << r.out;
        EXPECT_NE(std::find(pool.begin(), pool.end(), peer[0]), pool.end()) << "curl's connection came from " << peer[0];
        const auto counted = counts_after(before, 1);
        EXPECT_EQ(counted.adopted_ok, 1);
        EXPECT_EQ(counted.of(peer[0]), 1) << show(counted.ok_by_source);
    }
}

TEST_F(DropIn, DebugPrintsEachDecisionPrefixedWithTheProgramsPid) {
    const auto url = "http://" + peer_.remote_v4() + ":" + std::to_string(upstream_port_) + "/";
    const auto r = run_under_egress("curl", {"curl", "-sS", "--max-time", "20", url}, {"--debug"});
    ASSERT_EQ(r.status, 0) << r.err;
    const auto prefix = "egress-preload[" + std::to_string(r.pid) + "]: ";
    int decisions = 0;
    for (const auto& line : lines_of(r.err)) {
        if (line.rfind("egress-preload[", 0) != 0) continue;
        EXPECT_EQ(line.rfind(prefix, 0), 0u) << "egress-run execs curl, so the pid is the one it was started with: " << line;
        ++decisions;
    }
    EXPECT_GE(decisions, 1) << r.err;
}

TEST_F(DropIn, BypassedDestinationsConnectDirectly) {
    const auto before = counts();
    const auto url = "http://" + peer_.remote_v4() + ":" + std::to_string(upstream_port_) + "/";
    const auto r = run_under_egress("curl", {"curl", "-sS", "--max-time", "20", url}, {"--bypass", peer_.subnet_v4()});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(lines_of(r.out), std::vector<std::string>{kernel_v4_}) << "a direct connect has the kernel's source";
    EXPECT_EQ(counts().since(before).adopted_ok, 0);
}

// ---- nginx and HAProxy as reverse proxies ----

TEST_F(DropIn, NginxWithFourWorkersProxiesAThousandRequestsFromThePool) {
    const int port = next_test_port();
    std::filesystem::create_directories(dir_ + "/proxy-tmp");
    std::ofstream(dir_ + "/proxy.conf") << from_template(
        "nginx-proxy.conf", {{"DIR", dir_},
                             {"LISTEN", "127.0.0.1:" + std::to_string(port)},
                             {"UPSTREAM", peer_.remote_v4() + ":" + std::to_string(upstream_port_)}});
    Program nginx("nginx", under_egress_run({"/usr/sbin/nginx", "-p", dir_, "-c", dir_ + "/proxy.conf", "-e",
                                             dir_ + "/proxy-error.log"}),
                  dir_);
    expect_all_proxied_from_the_pool(nginx, port, 1000);
    const auto errors = read_file(dir_ + "/proxy-error.log");
    EXPECT_EQ(errors.find("[error]"), std::string::npos) << errors;
}

TEST_F(DropIn, HaproxyProxiesAThousandRequestsFromThePool) {
    const int port = next_test_port();
    std::ofstream(dir_ + "/haproxy.cfg") << from_template(
        "haproxy.cfg", {{"LISTEN", "127.0.0.1:" + std::to_string(port)},
                        {"UPSTREAM", peer_.remote_v4() + ":" + std::to_string(upstream_port_)}});
    Program haproxy("haproxy", under_egress_run({"/usr/sbin/haproxy", "-db", "-f", dir_ + "/haproxy.cfg"}), dir_);
    expect_all_proxied_from_the_pool(haproxy, port, 1000);
}

// ---- Python 3 ----

class Python : public DropIn {
protected:
    // Runs probe.py MODE under egress-run against both upstream addresses: the
    // connection comes from the pool, as the program's getsockname() and the
    // upstream agree, and egressd counted it.
    void expect_from_the_pool(const std::string& mode) {
        for (const auto& [remote, pool] : {std::pair{peer_.remote_v4(), pool_v4_}, std::pair{peer_.remote_v6(), pool_v6_}}) {
            const auto before = counts();
            const auto r = run_under_egress("python-" + mode, probe(mode, remote, upstream_port_));
            ASSERT_EQ(r.status, 0) << r.err;
            const auto words = words_of(r.out);
            ASSERT_EQ(words.size(), 3u) << r.out << r.err;
            EXPECT_EQ(words[0], "ok") << r.out;
            EXPECT_NE(std::find(pool.begin(), pool.end(), words[1]), pool.end()) << mode << " connected from " << words[1];
            EXPECT_EQ(words[2], words[1]) << "the upstream saw the address the program has";
            const auto counted = counts_after(before, 1);
            EXPECT_EQ(counted.adopted_ok, 1) << mode;
            EXPECT_EQ(counted.of(words[1]), 1) << mode << ": " << show(counted.ok_by_source);
        }
    }
};

TEST_F(Python, BlockingCreateConnectionConnectsFromThePool) { expect_from_the_pool("blocking"); }

TEST_F(Python, AsyncioOpenConnectionConnectsFromThePool) { expect_from_the_pool("asyncio"); }

TEST_F(Python, RawNonBlockingConnectFinishedBySelectConnectsFromThePool) { expect_from_the_pool("nonblocking"); }

// A resolver of the program's own (dnspython, c-ares) connects a UDP socket
// to the name server and sends its query there: under egress-run that socket
// gets a pool source. (glibc's getaddrinfo() calls connect() inside libc,
// where no preloaded shim sees it: its queries stay the kernel's.)
TEST_F(Python, ItsOwnResolversQueryGoesOverUdpFromThePool) {
    const int udp = peer_.make_socket(AF_INET, SOCK_DGRAM);
    ASSERT_GE(udp, 0);
    const auto at = to_sockaddr(*parse_address(peer_.remote_v4(), 53));
    ASSERT_EQ(::bind(udp, at.get(), at.len), 0) << std::strerror(errno);
    DnsServer dns(udp);
    dns.set("upstream.dropin.test", {.a = {peer_.remote_v4()}});
    const auto udp_ok = [&] {
        double n = 0;
        const auto text = d_->scrape();
        for (const auto& s : pool_v4_)
            n += std::max(0.0, metric_value(text, std::string(R"(egress_connects_total{pool=")") + kPool +
                                                      R"(",result="ok",source=")" + s + R"(",transport="udp"})"));
        return n;
    };
    const double before = udp_ok();
    const auto r = run_under_egress("python-dns", probe("dns", peer_.remote_v4(), 53));
    ASSERT_EQ(r.status, 0) << r.err;
    const auto words = words_of(r.out);
    ASSERT_EQ(words.size(), 3u) << r.out << r.err;
    EXPECT_EQ(words[0], "ok") << r.out;
    EXPECT_EQ(words[1], peer_.remote_v4()) << "the answer's address";
    EXPECT_NE(std::find(pool_v4_.begin(), pool_v4_.end(), words[2]), pool_v4_.end()) << "queried from " << words[2];
    EXPECT_EQ(dns.queries("upstream.dropin.test"), 1u);
    EXPECT_TRUE(wait_until([&] { return udp_ok() - before >= 1; }))
        << "no UDP connect from the pool counted:\n" << d_->scrape();
}

// ---- A black-holed upstream: each program's own timeout decides ----
// egressd's deadline is 10 s here, so anything the programs see near their
// own 1-1.5 s is theirs.

TEST_F(DropIn, CurlConnectTimeoutIsCurlsOwn) {
    const double before = requests();
    const auto r = run_under_egress("curl", {"curl", "-sS", "--connect-timeout", "1", std::string("http://") + kBlackHole + "/"});
    EXPECT_EQ(r.status, 28) << "curl's 'operation timed out': " << r.err;
    EXPECT_GE(r.ms, 900);
    EXPECT_LT(r.ms, 5000);
    EXPECT_EQ(requests() - before, 1) << "the connect went to egressd";
}

TEST_F(Python, AsyncioWaitForTimesOutByItself) {
    const double before = requests();
    const auto r = run_under_egress("python-asyncio-timeout", probe("asyncio-timeout", kBlackHole, 80, "1"));
    ASSERT_EQ(r.status, 0) << r.err;
    const auto words = words_of(r.out);
    ASSERT_EQ(words.size(), 2u) << r.out << r.err;
    EXPECT_EQ(words[0], "timeout");
    EXPECT_NEAR(std::stod(words[1]), 1.0, 0.5) << "asyncio's own timeout";
    EXPECT_EQ(requests() - before, 1) << "the connect went to egressd";
}

TEST_F(Python, BlockingConnectWithSndtimeoGetsEtimedoutNearIt) {
    const double before = requests();
    const auto r = run_under_egress("python-sndtimeo", probe("sndtimeo", kBlackHole, 80, "1.5"));
    ASSERT_EQ(r.status, 0) << r.err;
    const auto words = words_of(r.out);
    ASSERT_EQ(words.size(), 2u) << r.out << r.err;
    EXPECT_EQ(words[0], "ETIMEDOUT");
    EXPECT_NEAR(std::stod(words[1]), 1.5, 0.75) << "SO_SNDTIMEO is the deadline";
    EXPECT_EQ(requests() - before, 1) << "the connect went to egressd";
}

// ---- A port nobody listens on: the program's ECONNREFUSED ----

TEST_F(Python, ARefusedPortIsTheProgramsEconnrefused) {
    const double before = requests();
    for (const auto* mode : {"blocking", "nonblocking", "asyncio"}) {
        const auto r = run_under_egress(std::string("python-refused-") + mode, probe(mode, peer_.remote_v4(), upstream_port_ + 1));
        ASSERT_EQ(r.status, 0) << r.err;
        const auto words = words_of(r.out);
        ASSERT_FALSE(words.empty()) << r.err;
        EXPECT_EQ(words[0], "ECONNREFUSED") << mode << ": " << r.out;
    }
    EXPECT_EQ(requests() - before, 3) << "each connect went to egressd";
}

// ---- Policy: a denied destination is the program's EACCES ----

TEST_F(Python, ADeniedDestinationFailsWithEacces) {
    const std::string series = std::string(R"(egress_policy_denials_total{reason="destination",rule=")") + kRule + R"("})";
    const double before = metric(series);
    for (const auto* mode : {"blocking", "nonblocking"}) {
        const auto r = run_under_egress(std::string("python-denied-") + mode, probe(mode, "169.254.169.254", 80));
        ASSERT_EQ(r.status, 0) << r.err;
        const auto words = words_of(r.out);
        ASSERT_FALSE(words.empty()) << r.err;
        EXPECT_EQ(words[0], "EACCES") << mode << ": " << r.out;
    }
    EXPECT_TRUE(wait_until([&] { return metric(series) - before == 2; })) << metric(series) - before;
}

// ---- egressd unreachable: fail closed, or direct when asked ----

TEST_F(Python, WithEgressdStoppedConnectsFailClosedWithEnetunreach) {
    const auto logged = upstream_peers().size();
    ASSERT_NO_FATAL_FAILURE(stop_egressd());
    const auto r = run_under_egress("python-closed", probe("blocking", peer_.remote_v4(), upstream_port_));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(words_of(r.out).front(), "ENETUNREACH") << r.out;
    EXPECT_EQ(lines_of(r.err).size(), 1u) << "one line on stderr says why:\n" << r.err;
    const auto c = run_under_egress("curl-closed", {"curl", "-sS", "--max-time", "20",
                                                     "http://" + peer_.remote_v4() + ":" + std::to_string(upstream_port_) + "/"});
    EXPECT_EQ(c.status, 7) << "curl's 'could not connect': " << c.err;
    // Nothing reached the upstream: fail closed means no direct connect either.
    EXPECT_EQ(upstream_peers().size(), logged) << join(upstream_peers());
}

TEST_F(Python, WithEgressdStoppedFallbackDirectStillConnects) {
    ASSERT_NO_FATAL_FAILURE(stop_egressd());
    const auto r = run_under_egress("python-direct", probe("blocking", peer_.remote_v4(), upstream_port_),
                                    {"--fallback", "direct"});
    ASSERT_EQ(r.status, 0) << r.err;
    const auto words = words_of(r.out);
    ASSERT_EQ(words.size(), 3u) << r.out << r.err;
    EXPECT_EQ(words[0], "ok");
    EXPECT_EQ(words[1], kernel_v4_) << "a direct connect has the kernel's source";
    const auto c = run_under_egress("curl-direct", {"curl", "-sS", "--max-time", "20",
                                                     "http://" + peer_.remote_v4() + ":" + std::to_string(upstream_port_) + "/"},
                                    {"--fallback", "direct"});
    EXPECT_EQ(c.status, 0) << c.err;
    EXPECT_EQ(lines_of(c.out), std::vector<std::string>{kernel_v4_});
}

}  // namespace
}  // namespace egress::test
