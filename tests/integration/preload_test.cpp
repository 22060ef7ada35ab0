// libegress-preload.so and egress-run against the real egressd: an unmodified
// C program (preload_probe.c) connects to hosts in a peer namespace behind a
// veth, and the shim sends its sockets to egressd in adopt mode (PROTOCOL.md
// section 6a). What the program sees (return values, errno, its flags and
// descriptors), what the remote host sees (the source address) and what
// egressd counts are checked against the shim's contract.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "harness.hpp"
#include "peer_netns.hpp"

extern char** environ;

namespace egress::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

std::string shim_lib() { return env_or_die("EGRESS_PRELOAD_LIB"); }
std::string egress_run_bin() { return env_or_die("EGRESS_RUN_BIN"); }
std::string probe_bin() { return env_or_die("PRELOAD_PROBE_BIN"); }

std::string real_path(const std::string& p) {
    char buf[PATH_MAX];
    return ::realpath(p.c_str(), buf) ? std::string(buf) : p;
}

// The remote hosts, made once for the whole binary (its holder is killed and
// reaped at exit).
const PeerNetns& peer() {
    static PeerNetns p;
    return p;
}

// The test's environment without the shim's variables, plus `extra`. In a
// sanitized build the shim and the probe are both instrumented, but
// LD_PRELOAD puts the shim ahead of the probe's own ASan runtime: ASan's
// check that it comes first is turned off for the children.
std::vector<std::string> child_env(const std::vector<std::string>& extra) {
    static const char* ours[] = {"LD_PRELOAD=",      "EGRESS_SOCKET=", "EGRESS_POOL=", "EGRESS_BYPASS=",
                                 "EGRESS_FALLBACK=", "EGRESS_DEBUG=",  "ASAN_OPTIONS="};
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
        const std::string s(*e);
        if (std::none_of(std::begin(ours), std::end(ours), [&](const char* p) { return s.rfind(p, 0) == 0; }))
            env.push_back(s);
    }
    if (const char* sanitized = std::getenv("PRELOAD_SANITIZED"); sanitized && *sanitized) {
        const char* asan = std::getenv("ASAN_OPTIONS");
        env.push_back(std::string("ASAN_OPTIONS=") + (asan && *asan ? std::string(asan) + ":" : "") +
                      "verify_asan_link_order=0");
    }
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
}

struct Exit {
    int status = -1;  // exit code, or 128+signal
    std::string out, err;
};

// A child process in its own process group with piped stdin, stdout and
// stderr, an environment of exactly `env`, and nothing else inherited
// (descriptors 3 and up closed, SIGPIPE at its default, no signal blocked).
// Lines are read from stdout with a deadline; finish() or the destructor
// reaps it, killing the group if it outlives its deadline.
class Proc {
public:
    Proc(const std::vector<std::string>& argv, const std::vector<std::string>& env, const std::string& cwd = "") {
        int in[2], out[2], err[2];
        if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC)) {
            ADD_FAILURE() << "pipe: " << std::strerror(errno);
            return;
        }
        std::vector<char*> args, envp;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
        envp.push_back(nullptr);
        pid_ = ::fork();
        if (pid_ < 0) {
            ADD_FAILURE() << "fork: " << std::strerror(errno);
            return;
        }
        if (pid_ == 0) {
            ::setpgid(0, 0);
            ::dup2(in[0], 0);
            ::dup2(out[1], 1);
            ::dup2(err[1], 2);
            ::close_range(3, ~0U, 0);
            ::signal(SIGPIPE, SIG_DFL);
            sigset_t none;
            sigemptyset(&none);
            ::sigprocmask(SIG_SETMASK, &none, nullptr);
            if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(125);
            ::execve(args[0], args.data(), envp.data());
            ::_exit(127);
        }
        ::setpgid(pid_, pid_);  // as the child does: whichever runs first
        ::close(in[0]);
        ::close(out[1]);
        ::close(err[1]);
        in_ = UniqueFd(in[1]);
        out_ = UniqueFd(out[0]);
        err_thread_ = std::thread([this, fd = err[0]] {
            char buf[4096];
            for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) err_.append(buf, static_cast<std::size_t>(n));
            ::close(fd);
        });
    }
    ~Proc() {
        if (pid_ > 0 && !reaped_) finish(0ms);
        if (err_thread_.joinable()) err_thread_.join();
    }
    Proc(const Proc&) = delete;
    Proc& operator=(const Proc&) = delete;

    pid_t pid() const { return pid_; }

    // The next line on stdout, or nullopt at end-of-file or after `timeout`.
    std::optional<std::string> line(std::chrono::milliseconds timeout = 20s) {
        const auto t0 = std::chrono::steady_clock::now();
        for (;;) {
            if (const auto nl = pending_.find('\n'); nl != std::string::npos) {
                auto l = pending_.substr(0, nl);
                pending_.erase(0, nl + 1);
                return l;
            }
            const int left = static_cast<int>(static_cast<double>(timeout.count()) - ms_since(t0));
            if (!out_ || left <= 0) return std::nullopt;
            read_some(left);
        }
    }
    // Reads lines until one starts with `prefix`; nullopt as line() does.
    std::optional<std::string> line_starting(const std::string& prefix, std::chrono::milliseconds timeout = 20s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            auto l = line(left);
            if (!l || l->rfind(prefix, 0) == 0) return l;
        }
    }
    void send(const std::string& text) {
        const auto s = text + "\n";
        EXPECT_EQ(::write(in_.get(), s.data(), s.size()), static_cast<ssize_t>(s.size()));
    }
    // Closes stdin, reads stdout to its end and reaps the process. Still
    // running after `timeout`: its process group is killed and, unless the
    // timeout was 0 (the destructor's), the test fails.
    Exit finish(std::chrono::milliseconds timeout = 60s) {
        if (pid_ <= 0 || reaped_) return {};
        in_.reset();
        const auto t0 = std::chrono::steady_clock::now();
        for (int left; out_ && (left = static_cast<int>(static_cast<double>(timeout.count()) - ms_since(t0))) > 0;)
            read_some(left);
        if (out_) {
            ::kill(-pid_, SIGKILL);
            if (timeout.count() > 0)
                ADD_FAILURE() << "the program did not end within " << timeout.count() << " ms; killed";
        }
        int status = 0;
        ::waitpid(pid_, &status, 0);
        reaped_ = true;
        out_.reset();
        if (err_thread_.joinable()) err_thread_.join();
        if (const auto report = sanitizer_report(err_); !report.empty()) ADD_FAILURE() << report << "\n" << err_;
        Exit e;
        e.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        e.out = all_;
        e.err = err_;
        return e;
    }

private:
    // Appends what stdout has within `ms`; at end-of-file closes out_.
    void read_some(int ms) {
        pollfd p{out_.get(), POLLIN, 0};
        if (::poll(&p, 1, ms) != 1) return;
        char buf[4096];
        const auto n = ::read(out_.get(), buf, sizeof buf);
        if (n <= 0) {
            out_.reset();
            return;
        }
        pending_.append(buf, static_cast<std::size_t>(n));
        all_.append(buf, static_cast<std::size_t>(n));
    }

    pid_t pid_ = -1;
    bool reaped_ = false;
    UniqueFd in_, out_;
    std::string pending_, all_, err_;
    std::thread err_thread_;
};

// One probe line: its words (those without '=') and its key=value fields.
struct Fields {
    std::string text;
    std::vector<std::string> words;
    std::map<std::string, std::string> kv;
    std::string word(std::size_t i) const { return i < words.size() ? words[i] : ""; }
    std::string operator[](const std::string& k) const {
        const auto it = kv.find(k);
        return it == kv.end() ? "" : it->second;
    }
    int num(const std::string& k) const { return std::atoi((*this)[k].c_str()); }
};

Fields fields(const std::string& line) {
    Fields f;
    f.text = line;
    std::istringstream in(line);
    for (std::string w; in >> w;) {
        const auto eq = w.find('=');
        if (eq == std::string::npos)
            f.words.push_back(w);
        else
            f.kv[w.substr(0, eq)] = w.substr(eq + 1);
    }
    return f;
}

// Every line of `out` whose first word is `kind`.
std::vector<Fields> lines_of(const std::string& out, const std::string& kind) {
    std::vector<Fields> v;
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);)
        if (auto f = fields(l); f.word(0) == kind) v.push_back(std::move(f));
    return v;
}

Fields first_of(const std::string& out, const std::string& kind) {
    auto v = lines_of(out, kind);
    if (v.empty()) {
        ADD_FAILURE() << "no '" << kind << "' line in:\n" << out;
        return {};
    }
    return v.front();
}

// An address in inet_ntop's form ("fd00:200:0::2" -> "fd00:200::2").
std::string canonical(const std::string& address) {
    in6_addr a6{};
    char text[INET6_ADDRSTRLEN];
    if (::inet_pton(AF_INET6, address.c_str(), &a6) == 1 && ::inet_ntop(AF_INET6, &a6, text, sizeof text)) return text;
    return address;
}

// "10.200.0.2:40001", "[fd00:200::2]:40001", "[::ffff:10.200.0.2]:40001":
// the address, canonical, an IPv4-mapped one as the IPv4 address it is.
std::string host_of(const std::string& endpoint) {
    if (endpoint.empty() || endpoint == "-") return endpoint;
    if (endpoint[0] == '[') {
        auto h = canonical(endpoint.substr(1, endpoint.find(']') - 1));
        return h.rfind("::ffff:", 0) == 0 && h.find('.') != std::string::npos ? h.substr(7) : h;
    }
    return endpoint.substr(0, endpoint.rfind(':'));
}

std::string lines_matching(const std::string& text, const std::string& prefix) {
    std::string r;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
        if (l.rfind(prefix, 0) == 0) r += l + "\n";
    return r;
}

// The probe's "env" lines: NAME -> value, "(unset)" when it was not set.
std::map<std::string, std::string> env_of(const std::string& out) {
    std::map<std::string, std::string> env;
    for (const auto& l : lines_of(out, "env")) {
        const auto rest = l.text.substr(4);  // after "env "; a value may hold spaces
        const auto eq = rest.find('=');
        if (eq == std::string::npos)
            env[rest] = "(unset)";
        else
            env[rest.substr(0, eq)] = rest.substr(eq + 1);
    }
    return env;
}

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> v;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
        if (!l.empty()) v.push_back(l);
    return v;
}

// The sum of every sample of a metric family (any labels).
double metric_sum(const std::string& text, const std::string& name) {
    double sum = 0;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
        if (l.rfind(name, 0) == 0 && l.size() > name.size() && (l[name.size()] == '{' || l[name.size()] == ' '))
            sum += std::stod(l.substr(l.rfind(' ') + 1));
    return sum;
}

// Requests egressd has answered or refused, whatever the outcome.
double requests_seen(const Daemon& d) {
    const auto text = d.scrape();
    return metric_sum(text, "egress_request_duration_seconds_count") + metric_sum(text, "egress_policy_denials_total");
}

// Polls `series` until it reads `want` (adopted connects are counted when
// egressd's watch sees them end, after the reply); returns the last value.
double wait_metric(const Daemon& d, const std::string& series, double want, std::chrono::milliseconds timeout = 5s) {
    const auto t0 = std::chrono::steady_clock::now();
    double v = metric_value(d.scrape(), series);
    while (v != want && ms_since(t0) < static_cast<double>(timeout.count())) {
        std::this_thread::sleep_for(20ms);
        v = metric_value(d.scrape(), series);
    }
    return v;
}

// A TCP listener inside the peer namespace, served by a thread here: it
// records the source address of every connection it accepts, then echoes
// (bytes back until end-of-stream) or closes the connection at once.
class PeerServer {
public:
    enum class Mode { echo, close };
    PeerServer(const std::string& address, Mode mode) {
        for (int tries = 0; fd_ < 0 && tries < 50; ++tries) {
            port_ = next_test_port();
            fd_ = peer().listen_tcp(address, port_);
        }
        if (fd_ < 0) {
            ADD_FAILURE() << "cannot listen on " << address << " in the peer namespace";
            return;
        }
        thread_ = std::thread([this, mode] {
            for (;;) {
                sockaddr_storage ss{};
                socklen_t len = sizeof ss;
                const int c = ::accept4(fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
                if (c < 0) return;  // shut down
                char host[INET6_ADDRSTRLEN] = "?";
                if (ss.ss_family == AF_INET)
                    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, host, sizeof host);
                else
                    ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, host, sizeof host);
                {
                    std::lock_guard lock(mutex_);
                    sources_.push_back(
                        host_of(ss.ss_family == AF_INET6 ? "[" + std::string(host) + "]:0" : std::string(host) + ":0"));
                }
                if (mode == Mode::close) {
                    ::close(c);
                    continue;
                }
                echo_detached(c);
            }
        });
    }
    ~PeerServer() {
        ::shutdown(fd_, SHUT_RDWR);  // wakes the accept loop
        if (thread_.joinable()) thread_.join();
        if (fd_ >= 0) ::close(fd_);
    }
    PeerServer(const PeerServer&) = delete;
    PeerServer& operator=(const PeerServer&) = delete;

    std::string port() const { return std::to_string(port_); }
    // The sources of the connections accepted so far, once there are `n`
    // (or the timeout passed).
    std::vector<std::string> sources(std::size_t n = 0, std::chrono::milliseconds timeout = 5s) const {
        const auto t0 = std::chrono::steady_clock::now();
        for (;;) {
            {
                std::lock_guard lock(mutex_);
                if (sources_.size() >= n || ms_since(t0) > static_cast<double>(timeout.count())) return sources_;
            }
            std::this_thread::sleep_for(5ms);
        }
    }

private:
    int fd_ = -1;
    int port_ = 0;
    std::thread thread_;
    mutable std::mutex mutex_;
    std::vector<std::string> sources_;
};

// A port on the peer's address where nothing listens: connects are refused.
std::string closed_peer_port() { return std::to_string(next_test_port()); }

// The egressd configuration: pools of this side's veth addresses (the first
// address of each family, the kernel's choice for a direct connect, is in
// no pool, so a direct connect shows), a client rule that opens the peer's
// subnets and the black hole but denies the peer's port 9 and leaves
// loopback denied (a connect the shim should have bypassed then fails).
std::string preload_config(int default_timeout_ms = 1500) {
    const auto& p = peer();
    json pools = {
        {"peer", {{"sources", {p.local_v4()[1], p.local_v4()[2], p.local_v6()[1], p.local_v6()[2]}}}},
        {"other", {{"sources", {p.local_v4()[3]}}, {"client_selectable", true}}},
        {"tiny",
         {{"sources", {p.local_v4()[3]}},
          {"port_strategy", "kernel-range"},
          {"port_range", "40000-40001"},
          {"client_selectable", true}}},
    };
    json rule = {{"name", "preload"},
                 {"destinations",
                  {{{"action", "deny"}, {"dest", p.remote_v4()}, {"ports", "9"}},
                   {{"action", "deny"}, {"dest", p.remote_v6()}, {"ports", "9"}},
                   {{"action", "allow"}, {"dest", p.subnet_v4()}},
                   {{"action", "allow"}, {"dest", p.subnet_v6()}},
                   {{"action", "allow"}, {"dest", kBlackHole}}}}};
    return json{{"connect", {{"default_timeout_ms", default_timeout_ms}}},
                {"pools", pools},
                {"default_pool", "peer"},
                {"default_client", rule}}
        .dump();
}

std::vector<std::string> peer_pool_v4() { return {peer().local_v4()[1], peer().local_v4()[2]}; }
std::vector<std::string> peer_pool_v6() { return {peer().local_v6()[1], peer().local_v6()[2]}; }

bool in(const std::string& x, const std::vector<std::string>& set) {
    return std::any_of(set.begin(), set.end(), [&](const std::string& s) { return canonical(s) == canonical(x); });
}

std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
    return s;
}

// A line for a connect that egressd made from one of `pool` and that returned
// `rc` (0 for connect(), the byte count for a MSG_FASTOPEN send).
void expect_connected_from(const Fields& f, const std::vector<std::string>& pool, const std::string& remote,
                           const std::string& rc = "0") {
    EXPECT_EQ(f.word(1), rc) << f.text;
    EXPECT_TRUE(in(host_of(f["local"]), pool)) << "not from the pool (" << joined(pool) << "): " << f.text;
    EXPECT_EQ(host_of(f["peer"]), canonical(remote)) << f.text;
    // CLOSE_WAIT: connected, and the remote host already closed its end.
    EXPECT_TRUE(f["state"] == "ESTABLISHED" || f["state"] == "CLOSE_WAIT") << f.text;
    if (f.word(0) != "so_error") {  // the line of the call itself
        EXPECT_EQ(f["flags"], "same") << f.text;
        EXPECT_EQ(f["errno"], "kept") << "errno changed by a successful call: " << f.text;
    }
}

class Preload : public ::testing::Test {
protected:
    // The probe under the shim (LD_PRELOAD set directly, not through
    // egress-run), talking to `d_`, plus `extra` variables.
    std::vector<std::string> shim_env(const std::vector<std::string>& extra = {}) const {
        std::vector<std::string> env{"LD_PRELOAD=" + shim_lib(), "EGRESS_SOCKET=" + d_->socket()};
        env.insert(env.end(), extra.begin(), extra.end());
        return child_env(env);
    }
    Exit probe(const std::vector<std::string>& args, const std::vector<std::string>& extra_env = {}) const {
        std::vector<std::string> argv{probe_bin()};
        argv.insert(argv.end(), args.begin(), args.end());
        return Proc(argv, shim_env(extra_env)).finish();
    }
    Exit egress_run(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
                    const std::string& cwd = "") const {
        std::vector<std::string> argv{egress_run_bin()};
        argv.insert(argv.end(), args.begin(), args.end());
        return Proc(argv, child_env(env), cwd).finish();
    }

    const PeerNetns& p_ = peer();
    std::unique_ptr<Daemon> d_ = std::make_unique<Daemon>(preload_config());
};

// ---- the shim connects a plain program's sockets through egressd ----

TEST_F(Preload, ABlockingConnectIsMadeByEgressdFromAPoolSourceAndCarriesBytes) {
    PeerServer echo(p_.remote_v4(), PeerServer::Mode::echo);
    const auto r = probe({"connect", "--send", "hello", p_.remote_v4(), echo.port()});
    EXPECT_EQ(r.status, 0) << r.err;
    const auto c = first_of(r.out, "connect");
    expect_connected_from(c, peer_pool_v4(), p_.remote_v4());
    EXPECT_EQ(first_of(r.out, "echo").word(1), "hello") << r.out;
    // The remote host saw the pool source the program's socket reports.
    const auto seen = echo.sources(1);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0], host_of(c["local"]));
    EXPECT_EQ(r.err, "") << "the shim wrote to stderr without EGRESS_DEBUG";
}

TEST_F(Preload, IPv6AndIPv4MappedDestinationsAreAdoptedToo) {
    PeerServer echo6(p_.remote_v6(), PeerServer::Mode::echo);
    PeerServer echo4(p_.remote_v4(), PeerServer::Mode::echo);
    const auto r6 = probe({"connect", "--send", "six", p_.remote_v6(), echo6.port()});
    expect_connected_from(first_of(r6.out, "connect"), peer_pool_v6(), p_.remote_v6());
    EXPECT_EQ(first_of(r6.out, "echo").word(1), "six") << r6.out;
    // An AF_INET6 socket to ::ffff:10.200.0.100 leaves from an IPv4 source.
    const auto rm = probe({"connect", "--v6", "--send", "mapped", p_.remote_v4(), echo4.port()});
    expect_connected_from(first_of(rm.out, "connect"), peer_pool_v4(), p_.remote_v4());
    EXPECT_EQ(first_of(rm.out, "echo").word(1), "mapped") << rm.out;
    EXPECT_EQ(echo6.sources(1).size(), 1u);
    EXPECT_EQ(echo4.sources(1).size(), 1u);
}

TEST_F(Preload, ANonBlockingConnectReturnsAtOnceAndSoErrorSaysConnected) {
    PeerServer echo(p_.remote_v4(), PeerServer::Mode::echo);
    const auto r = probe({"connect", "--nonblock", "--send", "nb", p_.remote_v4(), echo.port()});
    const auto c = first_of(r.out, "connect");
    EXPECT_LT(c.num("ms"), 1000) << c.text;
    EXPECT_EQ(c["flags"], "same") << "O_NONBLOCK must stay set: " << c.text;
    if (c.word(1) == "0") {
        expect_connected_from(c, peer_pool_v4(), p_.remote_v4());
    } else {
        EXPECT_EQ(c.word(2), "EINPROGRESS") << c.text;
        expect_connected_from(first_of(r.out, "so_error"), peer_pool_v4(), p_.remote_v4());
    }
    EXPECT_EQ(first_of(r.out, "echo").word(1), "nb") << r.out;
}

TEST_F(Preload, MetricsCountEveryAdoptedConnect) {
    PeerServer sink(p_.remote_v4(), PeerServer::Mode::close);
    const auto r = probe({"connect", "--count", "5", "--close", p_.remote_v4(), sink.port()});
    const auto cs = lines_of(r.out, "connect");
    ASSERT_EQ(cs.size(), 5u) << r.out;
    for (const auto& c : cs) expect_connected_from(c, peer_pool_v4(), p_.remote_v4());
    EXPECT_EQ(wait_metric(*d_, R"(egress_adopted_total{result="ok"})", 5), 5);
    const auto text = d_->scrape();
    double from_pool = 0;
    for (const auto& s : peer_pool_v4())
        from_pool +=
            std::max(0.0, metric_value(text, R"(egress_connects_total{pool="peer",result="ok",source=")" + s + "\",transport=\"tcp\"}"));
    EXPECT_EQ(from_pool, 5) << lines_matching(text, "egress_connects_total");
    EXPECT_EQ(sink.sources(5).size(), 5u);
}

TEST_F(Preload, EgressPoolChoosesThePool) {
    PeerServer sink(p_.remote_v4(), PeerServer::Mode::close);
    const auto r = probe({"connect", p_.remote_v4(), sink.port()}, {"EGRESS_POOL=other"});
    expect_connected_from(first_of(r.out, "connect"), {p_.local_v4()[3]}, p_.remote_v4());
}

// ---- errors: each the errno a kernel connect would give, flags untouched ----

TEST_F(Preload, ARefusedPortIsEconnrefusedBlockingAndThroughSoErrorNonBlocking) {
    const auto port = closed_peer_port();
    const auto b = first_of(probe({"connect", p_.remote_v4(), port}).out, "connect");
    EXPECT_EQ(b.word(1), "-1") << b.text;
    EXPECT_EQ(b.word(2), "ECONNREFUSED") << b.text;
    EXPECT_EQ(b["flags"], "same") << b.text;
    const auto r = probe({"connect", "--nonblock", p_.remote_v4(), port});
    const auto nb = first_of(r.out, "connect");
    EXPECT_EQ(nb["flags"], "same") << nb.text;
    if (nb.word(2) == "EINPROGRESS")
        EXPECT_EQ(first_of(r.out, "so_error").word(2), "ECONNREFUSED") << r.out;
    else
        EXPECT_EQ(nb.word(2), "ECONNREFUSED") << nb.text;
}

TEST_F(Preload, ABlackHoleTimesOutAtSoSndtimeoAndTheHalfOpenConnectIsAborted) {
    const auto c = first_of(probe({"connect", "--sndtimeo", "500", kBlackHole, "80"}).out, "connect");
    EXPECT_EQ(c.word(1), "-1") << c.text;
    EXPECT_EQ(c.word(2), "ETIMEDOUT") << c.text;
    EXPECT_GE(c.num("ms"), 450) << c.text;
    EXPECT_LT(c.num("ms"), 1400) << "SO_SNDTIMEO (500 ms) is the caller's bound, before egressd's 1500: " << c.text;
    EXPECT_EQ(c["state"], "CLOSE") << "the SYN_SENT connect must be aborted: " << c.text;
    EXPECT_EQ(c["flags"], "same") << c.text;
}

TEST_F(Preload, ABlackHoleTimesOutAtEgressdsDeadlineWithoutSoSndtimeo) {
    const auto c = first_of(probe({"connect", kBlackHole, "80"}).out, "connect");
    EXPECT_EQ(c.word(1), "-1") << c.text;
    EXPECT_EQ(c.word(2), "ETIMEDOUT") << c.text;
    EXPECT_GE(c.num("ms"), 1400) << "connect.default_timeout_ms is 1500: " << c.text;
    EXPECT_LT(c.num("ms"), 3000) << c.text;
    EXPECT_EQ(c["state"], "CLOSE") << "the SYN_SENT connect must be aborted: " << c.text;
    EXPECT_EQ(c["flags"], "same") << c.text;
}

// A connect that hangs until the test lets it through: the peer's listener
// has a backlog of 0 and one connection already queued, so its kernel drops
// SYNs; once the test accepts that one, the next SYN retransmission (a
// second after the first SYN) gets in.
class HeldListener {
public:
    explicit HeldListener(const PeerNetns& p) : port_(next_test_port()), fd_(p.listen_tcp(p.remote_v4(), port_, 0)) {
        EXPECT_TRUE(fd_) << "no listener in the peer namespace";
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(static_cast<std::uint16_t>(port_));
        ::inet_pton(AF_INET, p.remote_v4().c_str(), &sa.sin_addr);
        EXPECT_EQ(::connect(filler_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0) << std::strerror(errno);
        EXPECT_TRUE(queued(5000)) << "the filler never reached the accept queue";
    }
    std::string port() const { return std::to_string(port_); }
    // Accepts the filler: the next SYN gets in.
    void release() { first_ = UniqueFd(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC)); }
    // Is a connection waiting in the accept queue (within `ms`)?
    bool queued(int ms) {
        pollfd p{fd_.get(), POLLIN, 0};
        return ::poll(&p, 1, ms) == 1;
    }

private:
    int port_;
    UniqueFd fd_, filler_{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)}, first_;
};

TEST_F(Preload, ASignalInterruptsTheWaitWithEintrAndTheConnectCarriesOn) {
    // A handler without SA_RESTART, and one with it on a socket with
    // SO_SNDTIMEO: the kernel's connect gives EINTR for both.
    for (const bool restart : {false, true}) {
        SCOPED_TRACE(restart ? "SA_RESTART, SO_SNDTIMEO" : "no SA_RESTART");
        HeldListener held(p_);
        std::vector<std::string> argv{probe_bin(), "connect", "--alarm", "300", "--then-wait", "8000"};
        if (restart) argv.insert(argv.end(), {"--restart", "--sndtimeo", "5000"});
        argv.insert(argv.end(), {p_.remote_v4(), held.port()});
        Proc proc(argv, shim_env());
        const auto line = proc.line_starting("connect");
        ASSERT_TRUE(line);
        const auto c = fields(*line);
        EXPECT_EQ(c.word(2), "EINTR") << c.text;
        EXPECT_GE(c.num("ms"), 250) << c.text;
        EXPECT_LT(c.num("ms"), 1000) << c.text;
        EXPECT_EQ(c["signals"], "1") << c.text;
        EXPECT_EQ(c["state"], "SYN_SENT") << "the connect goes on after EINTR, as the kernel's does: " << c.text;
        EXPECT_EQ(c["flags"], "same") << c.text;
        // Let it through: the retransmitted SYN completes the program's connect.
        held.release();
        const auto done = proc.line_starting("so_error", 10s);
        ASSERT_TRUE(done) << "no so_error line";
        expect_connected_from(fields(*done), peer_pool_v4(), p_.remote_v4());
        EXPECT_TRUE(held.queued(5000)) << "the interrupted connect never arrived";
        const auto r = proc.finish();
        EXPECT_EQ(r.status, 0) << r.err;
    }
}

// Without SO_SNDTIMEO the kernel restarts a connect that an SA_RESTART
// handler interrupted: the call goes on waiting and returns its outcome.
TEST_F(Preload, AnSaRestartHandlerLeavesABlockingConnectWaitingAsTheKernelDoes) {
    HeldListener held(p_);
    Proc proc({probe_bin(), "connect", "--alarm", "300", "--restart", p_.remote_v4(), held.port()}, shim_env());
    ASSERT_TRUE(proc.line_starting("alarm")) << "the handler never ran";
    held.release();
    const auto line = proc.line_starting("connect");
    ASSERT_TRUE(line);
    const auto c = fields(*line);
    expect_connected_from(c, peer_pool_v4(), p_.remote_v4());
    EXPECT_EQ(c["signals"], "1") << c.text;
    EXPECT_GE(c.num("ms"), 300) << "it returned before the handler ran: " << c.text;
    EXPECT_EQ(proc.finish().status, 0);
}

// The same with a crash reporter's SIGSEGV and SIGBUS handlers installed
// too (as ASan, CPython's faulthandler or Breakpad install them, without
// SA_RESTART): a fault signal is delivered to the faulting thread at the
// fault and never interrupts a wait, so the kernel still restarts the call.
TEST_F(Preload, ACrashHandlerDoesNotTurnAnSaRestartSignalIntoEintr) {
    HeldListener held(p_);
    Proc proc({probe_bin(), "connect", "--crash-handler", "--alarm", "300", "--restart", p_.remote_v4(), held.port()},
              shim_env());
    ASSERT_TRUE(proc.line_starting("alarm")) << "the handler never ran";
    held.release();
    const auto line = proc.line_starting("connect");
    ASSERT_TRUE(line);
    expect_connected_from(fields(*line), peer_pool_v4(), p_.remote_v4());
    EXPECT_EQ(proc.finish().status, 0);
}

TEST_F(Preload, APolicyDenialIsEaccesAndLeavesTheSocketUnconnected) {
    for (const bool nonblock : {false, true}) {
        std::vector<std::string> args{"connect", p_.remote_v4(), "9"};
        if (nonblock) args.insert(args.begin() + 1, "--nonblock");
        const auto c = first_of(probe(args).out, "connect");
        EXPECT_EQ(c.word(1), "-1") << c.text;
        EXPECT_EQ(c.word(2), "EACCES") << c.text;
        EXPECT_EQ(c["peer"], "-") << c.text;
        EXPECT_EQ(c["flags"], "same") << c.text;
    }
    const auto v6 = first_of(probe({"connect", p_.remote_v6(), "9"}).out, "connect");
    EXPECT_EQ(v6.word(2), "EACCES") << v6.text;
}

TEST_F(Preload, AnExhaustedPoolIsEaddrnotavail) {
    PeerServer sink(p_.remote_v4(), PeerServer::Mode::close);
    // Pool "tiny" has two ports; the probe holds every socket it connects.
    const auto r = probe({"connect", "--count", "3", p_.remote_v4(), sink.port()}, {"EGRESS_POOL=tiny"});
    const auto cs = lines_of(r.out, "connect");
    ASSERT_EQ(cs.size(), 3u) << r.out;
    expect_connected_from(cs[0], {p_.local_v4()[3]}, p_.remote_v4());
    expect_connected_from(cs[1], {p_.local_v4()[3]}, p_.remote_v4());
    EXPECT_EQ(cs[2].word(1), "-1") << cs[2].text;
    EXPECT_EQ(cs[2].word(2), "EADDRNOTAVAIL") << cs[2].text;
    EXPECT_EQ(cs[2]["flags"], "same") << cs[2].text;
}

TEST_F(Preload, TheCallersFileFlagsAndErrnoSurviveEveryOutcome) {
    PeerServer sink(p_.remote_v4(), PeerServer::Mode::close);
    const std::vector<std::vector<std::string>> cases = {
        {"connect", p_.remote_v4(), sink.port()},
        {"connect", "--nonblock", p_.remote_v4(), sink.port()},
        {"connect", p_.remote_v4(), closed_peer_port()},
        {"connect", "--nonblock", p_.remote_v4(), closed_peer_port()},
        {"connect", p_.remote_v4(), "9"},
        {"connect", "--sndtimeo", "200", kBlackHole, "80"},
        {"connect", "--nonblock", "--wait", "100", kBlackHole, "80"},
    };
    for (const auto& args : cases) {
        const auto c = first_of(probe(args).out, "connect");
        EXPECT_EQ(c["flags"], "same") << c.text;
        if (c.word(1) == "0") {
            EXPECT_EQ(c["errno"], "kept") << c.text;
        }
    }
}

// ---- threads, fork, exec, signals ----

TEST_F(Preload, EightThreadsMakeTwoHundredConnectsEachAtOnce) {
    PeerServer sink(p_.remote_v4(), PeerServer::Mode::close);
    Proc proc({probe_bin(), "threads", "8", "200", p_.remote_v4(), sink.port(), "--hold"}, shim_env());
    ASSERT_TRUE(proc.line_starting("hold connected", 60s)) << "the threads did not finish";
    // One egressd connection per thread, all still open.
    EXPECT_EQ(wait_metric(*d_, "egress_clients_connected", 8), 8);
    proc.send("go");
    ASSERT_TRUE(proc.line_starting("hold joined"));
    proc.send("go");
    const auto r = proc.finish();
    EXPECT_EQ(r.status, 0) << r.err;
    const auto threads = lines_of(r.out, "thread");
    ASSERT_EQ(threads.size(), 8u) << r.out;
    for (const auto& t : threads) {
        EXPECT_EQ(t["ok"], "200") << t.text;
        EXPECT_EQ(t["fail"], "0") << t.text;
    }
    const auto ports = first_of(r.out, "ports");
    EXPECT_EQ(ports["total"], "1600") << ports.text;
    EXPECT_EQ(ports["distinct"], "1600") << "two sockets share a local address and port: " << ports.text;
    EXPECT_EQ(ports["wrongpeer"], "0") << ports.text;
    const auto seen = sink.sources(1600, 10s);
    EXPECT_EQ(seen.size(), 1600u);
    EXPECT_EQ(std::count_if(seen.begin(), seen.end(), [](const auto& s) { return in(s, peer_pool_v4()); }), 1600);
    EXPECT_EQ(wait_metric(*d_, R"(egress_adopted_total{result="ok"})", 1600), 1600);
}

TEST_F(Preload, AThreadsEgressdConnectionEndsWithTheThread) {
    PeerServer sink(p_.remote_v4(), PeerServer::Mode::close);
    Proc proc({probe_bin(), "threads", "8", "2", p_.remote_v4(), sink.port(), "--hold"}, shim_env());
    ASSERT_TRUE(proc.line_starting("hold connected", 60s));
    proc.send("go");
    const auto joined = proc.line_starting("joined");
    ASSERT_TRUE(joined);
    // The threads have ended and the program closed every socket it had.
    EXPECT_EQ(fields(*joined)["fds"], "0") << "descriptors left behind by ended threads: " << *joined;
    EXPECT_EQ(wait_metric(*d_, "egress_clients_connected", 0), 0)
        << "egressd still serves connections of threads that have ended";
    proc.send("go");
    EXPECT_EQ(proc.finish().status, 0);
}

TEST_F(Preload, ForkedChildrenConnectOnTheirOwnEgressdConnectionsWhileTheParentDoesToo) {
    PeerServer sink(p_.remote_v4(), PeerServer::Mode::close);
    Proc proc({probe_bin(), "fork", "4", "50", p_.remote_v4(), sink.port(), "--hold"}, shim_env());
    ASSERT_TRUE(proc.line_starting("hold", 60s)) << "parent and children did not all report";
    // The parent and four children, each on a connection of its own.
    EXPECT_EQ(wait_metric(*d_, "egress_clients_connected", 5), 5);
    proc.send("go");
    const auto r = proc.finish();
    EXPECT_EQ(r.status, 0) << r.err;
    const auto children = lines_of(r.out, "child");
    ASSERT_EQ(children.size(), 4u) << r.out;
    std::set<std::string> pids;
    for (const auto& c : children) {
        EXPECT_EQ(c["ok"], "50") << c.text;
        EXPECT_EQ(c["fail"], "0") << c.text;
        pids.insert(c["pid"]);
    }
    EXPECT_EQ(pids.size(), 4u);
    const auto parent = first_of(r.out, "parent");
    EXPECT_EQ(parent["ok"], "50") << parent.text;
    for (const auto& reaped : lines_of(r.out, "reaped")) EXPECT_EQ(reaped["status"], "0") << reaped.text;
    // The first and the last connect of the parent, around the children's lives.
    const auto connects = lines_of(r.out, "connect");
    ASSERT_EQ(connects.size(), 2u) << r.out;
    for (const auto& c : connects) expect_connected_from(c, peer_pool_v4(), p_.remote_v4());
    EXPECT_EQ(sink.sources(252).size(), 252u);
}

TEST_F(Preload, AnExecdProgramInheritsNoShimDescriptor) {
    PeerServer sink(p_.remote_v4(), PeerServer::Mode::close);
    const auto r = probe({"execfds", p_.remote_v4(), sink.port(), p_.remote_v4(), sink.port()});
    EXPECT_EQ(r.status, 0) << r.err;
    const auto mine = first_of(r.out, "mine")["fd"];
    ASSERT_NE(mine, "-1") << r.out;
    for (const auto& f : lines_of(r.out, "fd")) {
        const auto fd = f.word(2);
        if (fd == "0" || fd == "1" || fd == "2" || fd == mine) continue;
        if (f.word(1) == "before")
            EXPECT_EQ(f["cloexec"], "1") << "a shim descriptor without FD_CLOEXEC: " << f.text;
        else
            ADD_FAILURE() << "the exec'd program inherited a descriptor it never opened: " << f.text;
    }
    // The probe's own socket (no FD_CLOEXEC) did cross: the exec happened.
    const auto after = lines_of(r.out, "fd");
    EXPECT_TRUE(std::any_of(after.begin(), after.end(), [&](const Fields& f) {
        return f.word(1) == "after" && f.word(2) == mine;
    })) << r.out;
    // The shim works in the new program image too.
    const auto connects = lines_of(r.out, "connect");
    ASSERT_EQ(connects.size(), 2u) << r.out;
    expect_connected_from(connects[1], peer_pool_v4(), p_.remote_v4());
}

TEST_F(Preload, ConnectWorksFromASignalHandler) {
    PeerServer sink(p_.remote_v4(), PeerServer::Mode::close);
    const auto h = first_of(probe({"sigconnect", p_.remote_v4(), sink.port()}).out, "handler");
    EXPECT_EQ(h.word(1), "0") << h.text;
    EXPECT_TRUE(in(host_of(h["local"]), peer_pool_v4())) << h.text;
}

TEST_F(Preload, ConnectsFromASignalHandlerThatInterruptsConnectsAllWork) {
    PeerServer sink(p_.remote_v4(), PeerServer::Mode::close);
    const auto r = probe({"sigstorm", "300", "100", p_.remote_v4(), sink.port()});
    EXPECT_EQ(r.status, 0) << r.err;
    const auto m = first_of(r.out, "main");
    const auto h = first_of(r.out, "handler");
    EXPECT_EQ(m["ok"], "300") << m.text;
    EXPECT_EQ(m["fail"], "0") << m.text;
    EXPECT_GE(h.num("ok"), 1) << h.text;
    EXPECT_EQ(h["fail"], "0") << h.text;
}

// A daemon that closes every descriptor it did not open (and so the shim's
// connection) and reuses the numbers: the shim must not close them later.
TEST_F(Preload, AForkedChildKeepsTheDescriptorsTheProgramReopened) {
    PeerServer sink(p_.remote_v4(), PeerServer::Mode::close);
    const auto r = probe({"closefork", p_.remote_v4(), sink.port()});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(first_of(r.out, "child")["open"], "8") << "the fork closed a descriptor of the program's:\n" << r.out;
    EXPECT_EQ(first_of(r.out, "parent")["open"], "8") << r.out;
    const auto cs = lines_of(r.out, "connect");
    ASSERT_EQ(cs.size(), 2u) << r.out;
    expect_connected_from(cs[1], peer_pool_v4(), p_.remote_v4());
}

TEST_F(Preload, AnEndingThreadClosesNoDescriptorOfTheProgram) {
    PeerServer sink(p_.remote_v4(), PeerServer::Mode::close);
    const auto r = probe({"closethread", p_.remote_v4(), sink.port()});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(first_of(r.out, "after-thread")["open"], "8")
        << "the thread's end closed a descriptor of the program's:\n"
        << r.out;
}

// ---- MSG_FASTOPEN ----

TEST_F(Preload, FastOpenSendtoAndSendmsgConnectThroughEgressdThenSendTheData) {
    PeerServer echo(p_.remote_v4(), PeerServer::Mode::echo);
    for (const char* how : {"sendto", "sendmsg"}) {
        std::vector<std::string> args{"fastopen", p_.remote_v4(), echo.port(), "early"};
        if (std::string(how) == "sendmsg") args.insert(args.begin() + 1, "--sendmsg");
        const auto r = probe(args);
        const auto f = first_of(r.out, "fastopen");
        expect_connected_from(f, peer_pool_v4(), p_.remote_v4(), "5");
        EXPECT_EQ(first_of(r.out, "echo").word(1), "early") << how << ": " << r.out;
    }
    EXPECT_EQ(wait_metric(*d_, R"(egress_adopted_total{result="ok"})", 2), 2);
    const auto seen = echo.sources(2);
    EXPECT_EQ(std::count_if(seen.begin(), seen.end(), [](const auto& s) { return in(s, peer_pool_v4()); }), 2);
}

TEST_F(Preload, ANonBlockingFastOpenSendsNothingUntilTheConnectHasCompleted) {
    PeerServer echo(p_.remote_v4(), PeerServer::Mode::echo);
    for (int i = 0; i < 5; ++i) {
        const auto r = probe({"fastopen", "--nonblock", p_.remote_v4(), echo.port(), "early"});
        const auto f = first_of(r.out, "fastopen");
        EXPECT_EQ(f["flags"], "same") << f.text;
        EXPECT_TRUE(in(host_of(f["local"]), peer_pool_v4())) << "not connected by egressd: " << f.text;
        const auto e = first_of(r.out, "echo").word(1);
        if (f.word(1) == "5") {
            EXPECT_EQ(e, "early") << r.out;
        } else {
            EXPECT_EQ(f.word(2), "EINPROGRESS") << f.text;
            // The program sent "+later" itself once connected: "early" never left.
            EXPECT_EQ(e, "+later") << r.out;
        }
    }
}

// MSG_DONTWAIT makes the one call non-blocking on a blocking socket: the
// kernel answers EINPROGRESS at once, whatever the destination does.
TEST_F(Preload, FastOpenWithMsgDontwaitDoesNotWaitForTheConnect) {
    const auto r = probe({"fastopen", "--dontwait", "--wait", "100", kBlackHole, "80", "early"});
    const auto f = first_of(r.out, "fastopen");
    EXPECT_EQ(f.word(1), "-1") << f.text;
    EXPECT_EQ(f.word(2), "EINPROGRESS") << f.text;
    EXPECT_LT(f.num("ms"), 500) << "the call waited for the connect: " << f.text;
    EXPECT_EQ(f["flags"], "same") << f.text;
}

// ---- what the shim leaves to libc ----

TEST_F(Preload, UdpConnectsGoThroughEgressdFromAPoolSource) {
    for (const bool v6 : {false, true}) {
        const auto& remote = v6 ? p_.remote_v6() : p_.remote_v4();
        const auto u = first_of(probe({"connect", "--udp", remote, "53"}).out, "connect");
        EXPECT_EQ(u.word(1), "0") << u.text;
        EXPECT_EQ(u["errno"], "kept") << u.text;
        EXPECT_EQ(u["flags"], "same") << "a blocking UDP socket stays blocking: " << u.text;
        EXPECT_TRUE(in(host_of(u["local"]), v6 ? peer_pool_v6() : peer_pool_v4())) << "not from the pool: " << u.text;
        EXPECT_EQ(host_of(u["peer"]), canonical(remote)) << u.text;
    }
    // A denied UDP destination is refused like a TCP one.
    const auto denied = first_of(probe({"connect", "--udp", p_.remote_v4(), "9"}).out, "connect");
    EXPECT_EQ(denied.word(1), "-1") << denied.text;
    EXPECT_EQ(denied.word(2), "EACCES") << denied.text;
    EXPECT_EQ(wait_metric(*d_, R"(egress_adopted_total{result="ok"})", 2), 2);
}

// An egressd from before UDP refuses a UDP socket's type (EPROTOTYPE): the
// shim then leaves the connect to the kernel, as it did before.
TEST_F(Preload, WithAnEgressdThatPredatesUdpTheKernelConnectsUdpSockets) {
    HeldSocket old(SOCK_SEQPACKET, 8);
    std::thread refuser([fd = old.fd.get()] {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 10000) != 1) return;
        UniqueFd conn(::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC));
        std::uint8_t buf[4096];
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
        iovec iov{buf, sizeof buf};
        msghdr m{};
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = control;
        m.msg_controllen = sizeof control;
        const auto n = ::recvmsg(conn.get(), &m, MSG_CMSG_CLOEXEC);
        if (n < static_cast<ssize_t>(EGRESS_HEADER_SIZE)) return;
        for (auto* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))  // the program's socket: not ours to keep
            if (c->cmsg_type == SCM_RIGHTS) {
                int got = -1;
                std::memcpy(&got, CMSG_DATA(c), sizeof got);
                ::close(got);
            }
        const auto h = proto::read_header(proto::ByteView(buf, static_cast<std::size_t>(n)));
        proto::ConnectReply rep;
        rep.status = EPROTOTYPE;
        rep.error_name = "EPROTOTYPE";
        rep.message = "the adopted socket is of type 2, not SOCK_STREAM";
        const auto out = proto::encode_connect_reply(h ? h->request_id : 0, rep, false);
        ::send(conn.get(), out.data(), out.size(), MSG_NOSIGNAL);
    });
    std::vector<std::string> argv{probe_bin(), "connect", "--udp", p_.remote_v4(), "53"};
    const auto r = Proc(argv, child_env({"LD_PRELOAD=" + shim_lib(), "EGRESS_SOCKET=" + old.path})).finish();
    refuser.join();
    const auto u = first_of(r.out, "connect");
    EXPECT_EQ(u.word(1), "0") << u.text << "\n" << r.err;
    EXPECT_EQ(u["errno"], "kept") << u.text;
    EXPECT_EQ(host_of(u["peer"]), p_.remote_v4()) << u.text;
    EXPECT_EQ(host_of(u["local"]), p_.local_v4()[0]) << "the kernel's source: " << u.text;
}

TEST_F(Preload, UnixSocketsGoStraightToLibc) {
    const std::string path = d_->dir() + "/stream.sock";
    UniqueFd ux(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    ASSERT_EQ(::bind(ux.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(::listen(ux.get(), 8), 0);
    EXPECT_EQ(first_of(probe({"unix", path}).out, "unix").word(1), "0");
    EXPECT_EQ(requests_seen(*d_), 0) << "egressd was asked about an AF_UNIX connect";
}

TEST_F(Preload, LoopbackAndUnspecifiedDestinationsBypassEgressd) {
    Listener v4(Listener::Mode::echo, "127.0.0.1"), v4b(Listener::Mode::echo, "127.0.0.2"),
        v6(Listener::Mode::echo, "::1");
    const auto p4 = std::to_string(v4.endpoint().port), p4b = std::to_string(v4b.endpoint().port),
               p6 = std::to_string(v6.endpoint().port);
    // egressd's rule here denies loopback: only a direct connect succeeds.
    const std::vector<std::vector<std::string>> cases = {
        {"connect", "127.0.0.1", p4},
        {"connect", "127.0.0.2", p4b},
        {"connect", "0.0.0.0", p4},
        {"connect", "::1", p6},
        {"connect", "::", p6},
        {"connect", "--v6", "127.0.0.1", p4},
        {"connect", "--nonblock", "127.0.0.1", p4},
    };
    for (const auto& args : cases) {
        const auto r = probe(args);
        const auto c = first_of(r.out, "connect");
        const bool ok = c.word(1) == "0" || (c.word(2) == "EINPROGRESS" && first_of(r.out, "so_error").word(1) == "0");
        EXPECT_TRUE(ok) << r.out;
        EXPECT_EQ(c["flags"], "same") << c.text;
    }
    EXPECT_EQ(requests_seen(*d_), 0) << "egressd was asked about a loopback destination";
}

TEST_F(Preload, EgressBypassSendsListedSubnetsDirect) {
    PeerServer sink4(p_.remote_v4(), PeerServer::Mode::close);
    PeerServer sink6(p_.remote_v6(), PeerServer::Mode::close);
    const auto c4 =
        first_of(probe({"connect", p_.remote_v4(), sink4.port()}, {"EGRESS_BYPASS=192.0.2.0/24," + p_.subnet_v4()}).out,
                 "connect");
    EXPECT_EQ(c4.word(1), "0") << c4.text;
    EXPECT_EQ(host_of(c4["local"]), p_.local_v4()[0]) << "the kernel's source, not a pool's: " << c4.text;
    const auto c6 =
        first_of(probe({"connect", p_.remote_v6(), sink6.port()}, {"EGRESS_BYPASS=" + p_.subnet_v6()}).out, "connect");
    EXPECT_EQ(c6.word(1), "0") << c6.text;
    // An AF_INET6 socket to ::ffff:10.200.0.100 is inside the IPv4 block.
    const auto mapped = first_of(
        probe({"connect", "--v6", p_.remote_v4(), sink4.port()}, {"EGRESS_BYPASS=" + p_.subnet_v4()}).out, "connect");
    EXPECT_EQ(mapped.word(1), "0") << mapped.text;
    EXPECT_EQ(host_of(mapped["local"]), p_.local_v4()[0]) << "the kernel's source, not a pool's: " << mapped.text;
    EXPECT_EQ(requests_seen(*d_), 0) << "egressd was asked about a bypassed destination";
    // A destination outside the list still goes through egressd.
    const auto via =
        first_of(probe({"connect", p_.remote_v4(), sink4.port()}, {"EGRESS_BYPASS=192.0.2.0/24"}).out, "connect");
    expect_connected_from(via, peer_pool_v4(), p_.remote_v4());
    EXPECT_GT(requests_seen(*d_), 0) << "egressd's counts miss a request";
}

// The kernel takes an AF_INET6 address of 24 bytes (RFC 2133's sockaddr_in6,
// without sin6_scope_id): it is no less a TCP connect to the peer.
TEST_F(Preload, AShortSockaddrIn6StillGoesThroughEgressd) {
    PeerServer sink(p_.remote_v6(), PeerServer::Mode::close);
    const auto r = probe({"connect", "--addrlen", "24", p_.remote_v6(), sink.port()});
    expect_connected_from(first_of(r.out, "connect"), peer_pool_v6(), p_.remote_v6());
    EXPECT_GT(requests_seen(*d_), 0) << "the connect bypassed egressd";
}

// ---- egressd unreachable, stuck, restarted ----

// A stopped egressd still accepts on its socket (the kernel's backlog) and
// takes the request, but never answers: the caller's bound still holds.
TEST_F(Preload, AStuckEgressdHoldsABlockingCallerNoLongerThanItsSoSndtimeo) {
    PeerServer sink(p_.remote_v4(), PeerServer::Mode::close);
    ASSERT_EQ(::kill(d_->pid(), SIGSTOP), 0);
    struct Resume {
        pid_t pid;
        ~Resume() { ::kill(pid, SIGCONT); }
    } resume{d_->pid()};
    const auto c = first_of(probe({"connect", "--sndtimeo", "500", p_.remote_v4(), sink.port()}).out, "connect");
    EXPECT_EQ(c.word(1), "-1") << c.text;
    EXPECT_LT(c.num("ms"), 1400) << "SO_SNDTIMEO is 500 ms: " << c.text;
    EXPECT_EQ(c["flags"], "same") << c.text;
}

// The same stuck egressd holds the request, with the program's socket in it,
// after the caller has been given an error. Once awake it must not connect
// that socket behind the caller's back: a connect() that failed leaves the
// socket unconnected (as the shim's own abort at a timeout intends). Only
// EINPROGRESS would tell the program to expect the connect to go on.
TEST_F(Preload, ASocketWhoseConnectFailedStaysUnconnectedWhenEgressdWakesLate) {
    for (const bool nonblock : {false, true}) {
        SCOPED_TRACE(nonblock ? "non-blocking" : "blocking, SO_SNDTIMEO 300 ms");
        PeerServer sink(p_.remote_v4(), PeerServer::Mode::close);
        const double seen = requests_seen(*d_);  // before egressd stops: it serves /metrics too
        ASSERT_EQ(::kill(d_->pid(), SIGSTOP), 0);
        struct Resume {
            pid_t pid;
            ~Resume() { ::kill(pid, SIGCONT); }
        } resume{d_->pid()};
        std::vector<std::string> argv{probe_bin(), "connect", "--hold", p_.remote_v4(), sink.port()};
        if (nonblock)
            argv.insert(argv.begin() + 2, {"--nonblock", "--wait", "100"});
        else
            argv.insert(argv.begin() + 2, {"--sndtimeo", "300"});
        Proc proc(argv, shim_env());
        const auto line = proc.line_starting("connect");
        ASSERT_TRUE(line);
        const auto c = fields(*line);
        EXPECT_EQ(c.word(1), "-1") << c.text;
        ASSERT_TRUE(proc.line_starting("hold"));
        ::kill(d_->pid(), SIGCONT);
        // egressd reads what it was sent while stopped; a connect it starts
        // reaches the peer within milliseconds.
        const auto t0 = std::chrono::steady_clock::now();
        while (requests_seen(*d_) <= seen && ms_since(t0) < 5000) std::this_thread::sleep_for(20ms);
        const auto arrived = sink.sources(1, 1s);
        proc.send("go");
        const auto held = proc.line_starting("held");
        ASSERT_TRUE(held);
        if (c.word(2) != "EINPROGRESS") {
            EXPECT_TRUE(arrived.empty()) << "after " << c.word(2) << " the peer got a connection from "
                                         << arrived.front();
            EXPECT_EQ(fields(*held)["state"], "CLOSE") << "after " << c.word(2) << ": " << *held;
        }
        EXPECT_EQ(proc.finish().status, 0);
    }
}

TEST_F(Preload, AnUnreachableEgressdFailsClosedWithOneLinePerProcess) {
    PeerServer sink(p_.remote_v4(), PeerServer::Mode::close);
    // A stale socket: a file nobody listens on (connect: ECONNREFUSED).
    const std::string stale = d_->dir() + "/stale.sock";
    {
        UniqueFd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, stale.c_str(), sizeof a.sun_path - 1);
        ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    }
    for (const auto& path : {d_->dir() + "/missing.sock", stale}) {
        for (const bool nonblock : {false, true}) {
            std::vector<std::string> argv{probe_bin(), "connect",      "--count",  "3",
                                          "--close",   p_.remote_v4(), sink.port()};
            if (nonblock) argv.insert(argv.begin() + 2, "--nonblock");
            const auto r = Proc(argv, child_env({"LD_PRELOAD=" + shim_lib(), "EGRESS_SOCKET=" + path})).finish();
            const auto cs = lines_of(r.out, "connect");
            ASSERT_EQ(cs.size(), 3u) << r.out;
            for (const auto& c : cs) {
                EXPECT_EQ(c.word(1), "-1") << path << ": " << c.text;
                EXPECT_EQ(c.word(2), "ENETUNREACH") << path << ": " << c.text;
                EXPECT_EQ(c["flags"], "same") << c.text;
            }
            EXPECT_EQ(split_lines(r.err).size(), 1u) << "one stderr line per process, got:\n" << r.err;
        }
    }
    // Per process, not per thread: four threads, one line.
    const auto t = Proc({probe_bin(), "threads", "4", "2", p_.remote_v4(), sink.port()},
                        child_env({"LD_PRELOAD=" + shim_lib(), "EGRESS_SOCKET=" + d_->dir() + "/missing.sock"}))
                       .finish();
    EXPECT_EQ(lines_of(t.out, "thread").size(), 4u) << t.out;
    for (const auto& l : lines_of(t.out, "thread")) {
        EXPECT_EQ(l["fail"], "2") << l.text;
        EXPECT_EQ(l["err"], "ENETUNREACH") << l.text;
    }
    EXPECT_EQ(split_lines(t.err).size(), 1u) << "one stderr line per process, got:\n" << t.err;
    EXPECT_EQ(sink.sources(0).size(), 0u) << "a connect went out directly";
}

TEST_F(Preload, FallbackDirectConnectsDirectlyOnlyWhenEgressdIsUnreachable) {
    PeerServer sink(p_.remote_v4(), PeerServer::Mode::close);
    const auto r = Proc({probe_bin(), "connect", p_.remote_v4(), sink.port()},
                        child_env({"LD_PRELOAD=" + shim_lib(), "EGRESS_SOCKET=" + d_->dir() + "/missing.sock",
                                   "EGRESS_FALLBACK=direct"}))
                       .finish();
    const auto c = first_of(r.out, "connect");
    EXPECT_EQ(c.word(1), "0") << c.text;
    EXPECT_EQ(host_of(c["local"]), p_.local_v4()[0]) << "the kernel's source: " << c.text;
    EXPECT_EQ(c["errno"], "kept") << "errno changed by a successful connect: " << c.text;
    EXPECT_EQ(sink.sources(1).size(), 1u);
    // egressd up: its answer stands, a denial is not retried directly.
    const auto denied = first_of(probe({"connect", p_.remote_v4(), "9"}, {"EGRESS_FALLBACK=direct"}).out, "connect");
    EXPECT_EQ(denied.word(2), "EACCES") << denied.text;
}

TEST_F(Preload, AnEgressdRestartBetweenTwoConnectsOfOneProcessIsSurvived) {
    PeerServer sink(p_.remote_v4(), PeerServer::Mode::close);
    char tmpl[] = "/tmp/egress-preload.XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    const std::string sock = dir + "/egressd.sock";
    auto d = std::make_unique<Daemon>(preload_config(), std::vector<std::string>{"--socket", sock});
    Proc proc({probe_bin(), "connect", "--count", "4", "--step", "--close", p_.remote_v4(), sink.port()},
              child_env({"LD_PRELOAD=" + shim_lib(), "EGRESS_SOCKET=" + sock}));
    auto next = [&] { return proc.line_starting("connect").value_or("connect (none)"); };
    expect_connected_from(fields(next()), peer_pool_v4(), p_.remote_v4());
    ASSERT_TRUE(proc.line_starting("step"));
    d.reset();  // egressd stops, a new one takes the same socket path
    d = std::make_unique<Daemon>(preload_config(), std::vector<std::string>{"--socket", sock});
    proc.send("go");
    expect_connected_from(fields(next()), peer_pool_v4(), p_.remote_v4());
    ASSERT_TRUE(proc.line_starting("step"));
    d.reset();  // and now none at all: fail closed
    proc.send("go");
    const auto down = fields(next());
    EXPECT_EQ(down.word(2), "ENETUNREACH") << down.text;
    ASSERT_TRUE(proc.line_starting("step"));
    d = std::make_unique<Daemon>(preload_config(), std::vector<std::string>{"--socket", sock});
    proc.send("go");
    expect_connected_from(fields(next()), peer_pool_v4(), p_.remote_v4());
    const auto r = proc.finish();
    EXPECT_EQ(r.status, 0) << "the program did not survive the restarts: " << r.err;
    d.reset();
    std::system(("rm -rf " + dir).c_str());
}

TEST_F(Preload, ADrainingEgressdSendsTheProgramToItsSuccessorNeverEshutdown) {
    PeerServer sink(p_.remote_v4(), PeerServer::Mode::close);
    char tmpl[] = "/tmp/egress-preload.XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    const std::string sock = dir + "/egressd.sock";
    auto cfg = json::parse(preload_config());
    cfg["shutdown"] = {{"drain_timeout_ms", 20000}};
    auto old = std::make_unique<Daemon>(cfg.dump(), std::vector<std::string>{"--socket", sock});
    Proc proc({probe_bin(), "connect", "--count", "3", "--step", "--close", p_.remote_v4(), sink.port()},
              child_env({"LD_PRELOAD=" + shim_lib(), "EGRESS_SOCKET=" + sock}));
    auto next = [&] { return proc.line_starting("connect").value_or("connect (none)"); };
    expect_connected_from(fields(next()), peer_pool_v4(), p_.remote_v4());
    ASSERT_TRUE(proc.line_starting("step"));
    // A connect in flight keeps the old egressd draining, and so holding the
    // program's connection to it, which now refuses with ESHUTDOWN.
    auto holder = raw_connect(sock);
    ASSERT_TRUE(holder);
    proto::ConnectRequest hang;
    hang.dest = *parse_address(kBlackHole, 80);
    hang.timeout_ms = 15000;
    // An id of its own: the program's first request was 1 too.
    ASSERT_TRUE(send_datagram(holder.get(), proto::encode_connect(77, hang)));
    ASSERT_TRUE(old->wait_log("request 77 CONNECT")) << old->log();
    ASSERT_EQ(::kill(old->pid(), SIGTERM), 0);
    ASSERT_TRUE(old->wait_log("draining:")) << old->log();
    // No successor yet: egressd is unreachable, and the program is told so.
    proc.send("go");
    const auto none = fields(next());
    EXPECT_EQ(none.word(2), "ENETUNREACH") << none.text;
    ASSERT_TRUE(proc.line_starting("step"));
    // A successor binds the path while the old one still drains.
    auto successor = std::make_unique<Daemon>(preload_config(), std::vector<std::string>{"--socket", sock});
    proc.send("go");
    expect_connected_from(fields(next()), peer_pool_v4(), p_.remote_v4());
    const auto r = proc.finish();
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(old->alive()) << "the old egressd stopped draining early:\n" << old->log();
    successor.reset();
    old.reset();
    std::system(("rm -rf " + dir).c_str());
}

// ---- EGRESS_DEBUG ----

TEST_F(Preload, EgressDebugPrintsOneLinePerDecisionWithThePid) {
    PeerServer sink(p_.remote_v4(), PeerServer::Mode::close);
    Listener local(Listener::Mode::echo, "127.0.0.1");
    const auto adopted = probe({"connect", "--count", "2", p_.remote_v4(), sink.port()}, {"EGRESS_DEBUG=1"});
    const auto bypassed = probe({"connect", "127.0.0.1", std::to_string(local.endpoint().port)}, {"EGRESS_DEBUG=1"});
    const auto refused = probe({"connect", p_.remote_v4(), closed_peer_port()}, {"EGRESS_DEBUG=1"});
    const auto timed_out = probe({"connect", "--sndtimeo", "200", kBlackHole, "80"}, {"EGRESS_DEBUG=1"});
    const auto denied = probe({"connect", p_.remote_v4(), "9"}, {"EGRESS_DEBUG=1"});
    const auto udp = probe({"connect", "--udp", p_.remote_v4(), "53"}, {"EGRESS_DEBUG=1"});
    for (const auto* r : {&refused, &timed_out, &denied, &udp}) {
        const auto prefix = "egress-preload[" + first_of(r->out, "probe")["pid"] + "]: ";
        const auto lines = split_lines(r->err);
        EXPECT_EQ(lines.size(), 1u) << first_of(r->out, "connect").text << ": one line per decision, got:\n" << r->err;
        for (const auto& l : lines) {
            EXPECT_EQ(l.rfind(prefix, 0), 0u) << "'" << l << "' lacks '" << prefix << "'";
        }
    }
    std::vector<std::string> said;  // each run's first line, without its prefix
    for (const auto* r : {&adopted, &bypassed}) {
        const auto prefix = "egress-preload[" + first_of(r->out, "probe")["pid"] + "]: ";
        const auto lines = split_lines(r->err);
        EXPECT_EQ(lines.size(), lines_of(r->out, "connect").size()) << "one line per connect:\n" << r->err;
        for (const auto& l : lines) EXPECT_EQ(l.rfind(prefix, 0), 0u) << "'" << l << "' lacks '" << prefix << "'";
        if (!lines.empty()) said.push_back(lines[0].substr(std::min(prefix.size(), lines[0].size())));
    }
    if (said.size() == 2) {
        EXPECT_NE(said[0], said[1]) << "an adopted and a bypassed connect read alike";
    }
    // A forked child's lines carry its own pid.
    const auto forked = probe({"fork", "1", "1", p_.remote_v4(), sink.port()}, {"EGRESS_DEBUG=1"});
    const auto child = "egress-preload[" + first_of(forked.out, "child")["pid"] + "]: ";
    const auto parent = "egress-preload[" + first_of(forked.out, "probe")["pid"] + "]: ";
    EXPECT_FALSE(lines_matching(forked.err, child).empty()) << "no line of the child's:\n" << forked.err;
    EXPECT_EQ(
        split_lines(lines_matching(forked.err, child)).size() + split_lines(lines_matching(forked.err, parent)).size(),
        split_lines(forked.err).size())
        << forked.err;
    const auto quiet = probe({"connect", p_.remote_v4(), sink.port()});
    EXPECT_EQ(quiet.err, "") << "stderr without EGRESS_DEBUG";
}

// ---- egress-run ----

TEST_F(Preload, EgressRunSetsTheEnvironmentAndPrependsTheShim) {
    const auto r = egress_run({"--socket", "/run/x.sock", "--pool", "other", "--bypass", "192.0.2.0/24,2001:db8::/32",
                               "--fallback", "direct", "--debug", "--", probe_bin(), "env", "a", "b c"},
                              {"LD_PRELOAD=libm.so.6"});
    EXPECT_EQ(r.status, 0) << r.err;
    auto env = env_of(r.out);
    EXPECT_EQ(env["EGRESS_SOCKET"], "/run/x.sock");
    EXPECT_EQ(env["EGRESS_POOL"], "other");
    EXPECT_EQ(env["EGRESS_BYPASS"], "192.0.2.0/24,2001:db8::/32");
    EXPECT_EQ(env["EGRESS_FALLBACK"], "direct");
    EXPECT_EQ(env["EGRESS_DEBUG"], "1");
    const auto preload = env["LD_PRELOAD"];
    const auto sep = preload.find_first_of(": ");
    ASSERT_NE(sep, std::string::npos) << "the existing LD_PRELOAD was dropped: " << preload;
    EXPECT_EQ(preload.substr(sep + 1), "libm.so.6") << preload;
    EXPECT_EQ(preload[0], '/') << "not an absolute path: " << preload;
    EXPECT_EQ(real_path(preload.substr(0, sep)), real_path(shim_lib())) << preload;
    const auto args = lines_of(r.out, "arg");
    ASSERT_EQ(args.size(), 2u) << r.out;
    EXPECT_EQ(args[0].text, "arg 0 a");
    EXPECT_EQ(args[1].text, "arg 1 b c");
}

TEST_F(Preload, EgressRunPreloadNamesTheShimByAnAbsolutePath) {
    const auto dir = real_path(shim_lib()).substr(0, real_path(shim_lib()).rfind('/'));
    const auto name = real_path(shim_lib()).substr(dir.size() + 1);
    const auto abs = egress_run({"--preload", real_path(shim_lib()), "--", probe_bin(), "env"});
    EXPECT_EQ(env_of(abs.out)["LD_PRELOAD"], real_path(shim_lib())) << abs.err;
    // Relative to where egress-run starts: the program may change directory.
    const auto rel = egress_run({"--preload", name, "--", probe_bin(), "env"}, {}, dir);
    const auto rel_preload = env_of(rel.out)["LD_PRELOAD"];
    EXPECT_EQ(real_path(rel_preload), real_path(shim_lib())) << rel.err;
    EXPECT_EQ(rel_preload.substr(0, 1), "/") << "LD_PRELOAD names the shim by a relative path: " << rel_preload;
}

TEST_F(Preload, EgressRunConnectsAnUnmodifiedProgramThroughEgressd) {
    PeerServer echo(p_.remote_v4(), PeerServer::Mode::echo);
    const auto r = egress_run(
        {"--socket", d_->socket(), "--", probe_bin(), "connect", "--send", "run", p_.remote_v4(), echo.port()});
    EXPECT_EQ(r.status, 0) << r.err;
    expect_connected_from(first_of(r.out, "connect"), peer_pool_v4(), p_.remote_v4());
    EXPECT_EQ(first_of(r.out, "echo").word(1), "run") << r.out;
    const auto pooled = egress_run(
        {"--socket", d_->socket(), "--pool", "other", "--", probe_bin(), "connect", p_.remote_v4(), echo.port()});
    expect_connected_from(first_of(pooled.out, "connect"), {p_.local_v4()[3]}, p_.remote_v4());
    const auto bypassed = egress_run({"--socket", d_->socket(), "--bypass", p_.subnet_v4(), "--", probe_bin(),
                                      "connect", p_.remote_v4(), echo.port()});
    EXPECT_EQ(host_of(first_of(bypassed.out, "connect")["local"]), p_.local_v4()[0]) << bypassed.out;
    const auto closed = egress_run({"--socket", d_->dir() + "/missing.sock", "--fallback", "closed", "--", probe_bin(),
                                    "connect", p_.remote_v4(), echo.port()});
    EXPECT_EQ(first_of(closed.out, "connect").word(2), "ENETUNREACH") << closed.out;
    const auto direct = egress_run({"--socket", d_->dir() + "/missing.sock", "--fallback", "direct", "--", probe_bin(),
                                    "connect", p_.remote_v4(), echo.port()});
    EXPECT_EQ(host_of(first_of(direct.out, "connect")["local"]), p_.local_v4()[0]) << direct.out;
}

TEST_F(Preload, EgressRunExitCodesAndMessages) {
    const std::string not_exec = d_->dir() + "/not-executable";
    std::ofstream(not_exec) << "#!/bin/sh\nexit 0\n";
    ::chmod(not_exec.c_str(), 0644);
    const auto probe = probe_bin();
    struct Case {
        std::vector<std::string> args;
        int status;
        const char* says;  // in the first line of stderr, case-insensitive; "" for anything
    };
    const std::vector<Case> cases = {
        {{"--", d_->dir() + "/no-such-program"}, 127, "no-such-program"},
        {{"--", "no-such-program-on-the-path"}, 127, "no-such-program-on-the-path"},
        {{"--", not_exec}, 126, "not-executable"},
        {{"--no-such-option", "--", probe, "exit", "0"}, 2, "--no-such-option"},
        {{"--bypass", "10.0.0.0/33", "--", probe, "exit", "0"}, 2, "10.0.0.0/33"},
        {{"--bypass", "nonsense", "--", probe, "exit", "0"}, 2, "nonsense"},
        {{"--bypass", "192.0.2.0/24,fd00::/129", "--", probe, "exit", "0"}, 2, "fd00::/129"},
        {{"--fallback", "maybe", "--", probe, "exit", "0"}, 2, "maybe"},
        {{"--socket"}, 2, "--socket"},  // an option without its value
        {{"--pool"}, 2, "--pool"},
        {{"--"}, 2, "command"},
        {{}, 2, "command"},
        {{"--", probe, "exit", "7"}, 7, ""},
        {{"--", probe, "exit", "0"}, 0, ""},
    };
    for (const auto& c : cases) {
        const auto r = egress_run(c.args);
        std::string what = "egress-run";
        for (const auto& a : c.args) what += " " + a;
        EXPECT_EQ(r.status, c.status) << what << "\n" << r.err;
        auto first = r.err.substr(0, r.err.find('\n'));
        std::transform(first.begin(), first.end(), first.begin(), [](unsigned char ch) { return std::tolower(ch); });
        if (*c.says) {
            EXPECT_NE(first.find(c.says), std::string::npos) << what << ": no '" << c.says << "' in:\n" << r.err;
        }
        if (c.status == 2) {
            EXPECT_NE(r.err.find("usage: egress-run"), std::string::npos) << what << ": no usage message:\n" << r.err;
        }
        if (c.status == 0 || c.status == 7) {
            EXPECT_EQ(r.err, "") << what;
        }
    }
}

}  // namespace
}  // namespace egress::test
