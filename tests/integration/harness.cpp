#include "harness.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "sockaddr.hpp"

namespace egress::test {

std::string env_or_die(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) {
        std::fprintf(stderr, "%s is not set (run the tests through meson test)\n", name);
        std::abort();
    }
    return v;
}

namespace {

std::string read_all(int fd) {
    std::string s;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<std::size_t>(n));
    return s;
}

bool can_connect_unix(const std::string& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

// "exit code 1" or "signal 6 (Aborted)", for failure messages.
std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status))
        return "signal " + std::to_string(WTERMSIG(status)) + " (" + ::strsignal(WTERMSIG(status)) + ")";
    return "status " + std::to_string(status);
}

// The exit code, or 128+signal, as a shell reports it.
int exit_code_of(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

}  // namespace

std::string sanitizer_report(const std::string& output) {
    // ASan and LSan print "==PID==ERROR: ...Sanitizer", UBSan "file:line: runtime error: ...".
    for (const char* marker : {"Sanitizer:", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", ": runtime error: "}) {
        const auto at = output.find(marker);
        if (at == std::string::npos) continue;
        const auto begin = output.rfind('\n', at);
        const auto start = begin == std::string::npos ? 0 : begin + 1;
        return output.substr(start, output.find('\n', at) - start);
    }
    return "";
}

std::uint16_t next_test_port() {
    static std::atomic<std::uint16_t> next{20000};
    return next++;
}

std::string egressd_bin() { return env_or_die("EGRESSD_BIN"); }
std::string egress_connect_bin() { return env_or_die("EGRESS_CONNECT_BIN"); }
std::string egress_bench_bin() { return env_or_die("EGRESS_BENCH_BIN"); }

BenchWorker::BenchWorker(const std::vector<std::string>& args) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC)) {
        ADD_FAILURE() << "pipe: " << std::strerror(errno);
        return;
    }
    std::vector<std::string> argv{egress_bench_bin(), "worker", "--hold"};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = ::fork();
    if (pid_ == 0) {
        ::dup2(in[0], 0);
        ::dup2(out[1], 1);
        std::vector<char*> a;
        for (const auto& x : argv) a.push_back(const_cast<char*>(x.c_str()));
        a.push_back(nullptr);
        ::execv(a[0], a.data());
        ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    in_ = UniqueFd(in[1]);
    out_ = UniqueFd(out[0]);
}

std::string BenchWorker::report() {
    std::string line;
    char c;
    while (::read(out_.get(), &c, 1) == 1 && c != '\n') line += c;
    return line;
}

BenchWorker::~BenchWorker() {
    if (pid_ <= 0) return;
    in_.reset();  // the worker closes its sockets and exits
    int status = 0;
    ::waitpid(pid_, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        ADD_FAILURE() << "egress-bench worker ended with " << describe_status(status);
}

RunResult run(const std::vector<std::string>& argv, const std::string& stdin_data,
              const std::vector<std::string>& extra_env) {
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC)) {
        ADD_FAILURE() << "pipe: " << std::strerror(errno);
        return {};
    }
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(in[0], 0);
        ::dup2(out[1], 1);
        ::dup2(err[1], 2);
        for (const auto& e : extra_env) ::putenv(const_cast<char*>(e.c_str()));
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    std::thread writer([fd = in[1], stdin_data] {
        (void)!::write(fd, stdin_data.data(), stdin_data.size());
        ::close(fd);
    });
    RunResult r;
    std::thread err_reader([&] { r.err = read_all(err[0]); });
    r.out = read_all(out[0]);
    err_reader.join();
    writer.join();
    ::close(out[0]);
    ::close(err[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.status = exit_code_of(status);
    // A sanitized child's finding fails the test whatever exit code it expects.
    if (const auto report = sanitizer_report(r.err); !report.empty())
        ADD_FAILURE() << argv[0] << ": " << report << "\n" << r.err;
    return r;
}

std::string test_config(const std::string& config_json) {
    auto doc = nlohmann::json::parse(config_json.empty() ? "{}" : config_json);
    if (doc.is_object() && !doc.contains("clients") && !doc.contains("default_client"))
        doc["default_client"] = {{"name", "test-loopback"},
                                 {"destinations", {{{"action", "allow"}, {"dest", "127.0.0.0/8"}},
                                                   {{"action", "allow"}, {"dest", "::1/128"}}}}};
    return doc.dump();
}

void sh(const std::string& command) { ASSERT_EQ(std::system(command.c_str()), 0) << command; }

Daemon::Daemon(const std::string& config_json, std::vector<std::string> extra_args,
               std::vector<std::string> extra_env) {
    char tmpl[] = "/tmp/egressd-test.XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    socket_ = dir_ + "/egressd.sock";
    std::vector<std::string> argv{egressd_bin(), "--socket", socket_, "--log-level", "debug",
                                  "--metrics-listen", "127.0.0.1:" + std::to_string(next_test_port()),
                                  "--config", dir_ + "/config.json"};
    std::ofstream(dir_ + "/config.json") << test_config(config_json);
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    for (std::size_t i = 0; i + 1 < extra_args.size(); ++i)
        if (extra_args[i] == "--socket") socket_ = extra_args[i + 1];  // the last one wins, as in egressd
    spawn(std::move(argv), -1, extra_env);
}

Daemon::Daemon(const std::string& config_json, const Passed& passed) {
    char tmpl[] = "/tmp/egressd-test.XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    socket_ = passed.path;
    std::ofstream(dir_ + "/config.json") << test_config(config_json);
    spawn({egressd_bin(), "--log-level", "debug", "--metrics-listen", "127.0.0.1:" + std::to_string(next_test_port()),
           "--config", dir_ + "/config.json"},
          passed.listen_fd, passed.env);
}

void Daemon::spawn(std::vector<std::string> argv, int passed_fd, const std::vector<std::string>& extra_env) {
    // The suite runs with the thread count it is given (scripts/test.sh runs
    // it with 1 and with several); a test's own --threads comes later and wins.
    if (const char* t = std::getenv("EGRESSD_TEST_THREADS"); t && *t) argv.insert(argv.begin() + 1, {"--threads", t});
    const std::string log = dir_ + "/egressd.log";
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    // The environment, with room for LISTEN_PID, which only the child knows:
    // built here, since the child of a threaded process may not allocate.
    std::vector<std::string> env_text;
    for (char** e = environ; *e; ++e)
        if (std::strncmp(*e, "LISTEN_", 7) != 0) env_text.emplace_back(*e);
    env_text.insert(env_text.end(), extra_env.begin(), extra_env.end());
    if (passed_fd >= 0) {
        env_text.emplace_back("LISTEN_FDS=1");
        env_text.emplace_back("LISTEN_PID=" + std::string(20, '\0'));
    }
    std::vector<char*> env;
    for (auto& e : env_text) env.push_back(e.data());
    env.push_back(nullptr);
    char* pid_slot = passed_fd >= 0 ? env_text.back().data() + std::strlen("LISTEN_PID=") : nullptr;
    pid_ = ::fork();
    if (pid_ == 0) {
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, 2);
        const int devnull = ::open("/dev/null", O_RDWR);
        ::dup2(devnull, 0);
        ::dup2(devnull, 1);
        if (passed_fd >= 0) {
            // SD_LISTEN_FDS_START; dup2 clears close-on-exec, unless the
            // descriptor is 3 already.
            if (passed_fd == 3) ::fcntl(3, F_SETFD, 0);
            else ::dup2(passed_fd, 3);
            char digits[20];
            int n = 0;
            for (pid_t p = ::getpid(); p > 0; p /= 10) digits[n++] = static_cast<char>('0' + p % 10);
            for (int i = 0; i < n; ++i) pid_slot[i] = digits[n - 1 - i];
            pid_slot[n] = '\0';
        }
        // Only 0, 1 and 2 (and a passed socket) cross into egressd, so its
        // descriptor counts are its own.
        ::close_range(passed_fd >= 0 ? 4 : 3, ~0U, 0);
        ::execve(args[0], args.data(), env.data());
        ::_exit(127);
    }
    const auto t0 = std::chrono::steady_clock::now();
    // A passed socket accepts connections before egressd runs: wait for its log instead.
    const auto up = [&] {
        return passed_fd >= 0 ? this->log().find(" listening on ") != std::string::npos : can_connect_unix(socket_);
    };
    while (!up()) {
        if (!alive() || ms_since(t0) > 5000) {
            ADD_FAILURE() << "egressd did not come up; its log:\n" << this->log();
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

Daemon::~Daemon() {
    if (pid_ > 0) {
        if (alive()) {
            // egressd logs "listening on" once its SIGTERM handler is in place;
            // a SIGTERM sent earlier kills it, which is not a clean exit.
            const auto t0 = std::chrono::steady_clock::now();
            while (log().find(" listening on ") == std::string::npos && alive() && ms_since(t0) < 5000)
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            ::kill(pid_, SIGTERM);
            ::waitpid(pid_, &exit_status_, 0);
        }
        // SIGTERM ends egressd cleanly: anything else, or a sanitizer's report, is a failure.
        const auto text = log();
        if (!WIFEXITED(exit_status_) || WEXITSTATUS(exit_status_) != 0)
            ADD_FAILURE() << "egressd ended with " << describe_status(exit_status_);
        if (const auto report = sanitizer_report(text); !report.empty()) ADD_FAILURE() << "egressd: " << report;
        if (::testing::Test::HasFailure()) std::fprintf(stderr, "--- egressd log ---\n%s\n", text.c_str());
    }
    std::system(("rm -rf " + dir_).c_str());
}

std::string Daemon::log() const {
    std::ifstream in(dir_ + "/egressd.log");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

int Daemon::metrics_port() const {
    // The socket accepts before egressd logs the rest of its start-up: wait for the line.
    const std::string key = "metrics on http://127.0.0.1:";
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
        const auto text = log();
        const auto at = text.find(key);
        if (at != std::string::npos) return std::atoi(text.c_str() + at + key.size());
        if (ms_since(t0) > 5000) {
            ADD_FAILURE() << "egressd never logged its metrics port:\n" << text;
            return -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

std::string Daemon::scrape() const { return http_get(metrics_port(), "/metrics"); }

std::string http_get(int port, const std::string& path) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    auto sa = to_sockaddr(*parse_address("127.0.0.1", static_cast<std::uint16_t>(port)));
    const timeval tv{5, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (port <= 0 || ::connect(fd.get(), sa.get(), sa.len) != 0) return "";
    const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd.get(), req.data(), req.size()) != static_cast<ssize_t>(req.size())) return "";
    const auto response = read_all(fd.get());
    const auto body = response.find("\r\n\r\n");
    return body == std::string::npos ? "" : response.substr(body + 4);
}

double metric_value(const std::string& text, const std::string& series) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ')
            return std::stod(line.substr(series.size() + 1));
    return -1;
}

int Daemon::stop(int sig, std::chrono::milliseconds timeout) {
    if (!alive()) return exit_status_ == kRunning ? -1 : exit_code_of(exit_status_);
    wait_log(" listening on ");  // the handlers are in place (see ~Daemon)
    ::kill(pid_, sig);
    const auto t0 = std::chrono::steady_clock::now();
    while (alive() && ms_since(t0) < static_cast<double>(timeout.count()))
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return alive() ? -1 : exit_code_of(exit_status_);
}

bool Daemon::wait_log(const std::string& text, std::chrono::milliseconds timeout) const {
    const auto t0 = std::chrono::steady_clock::now();
    while (log().find(text) == std::string::npos) {
        if (ms_since(t0) > static_cast<double>(timeout.count())) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

bool Daemon::alive() const {
    if (pid_ <= 0 || exit_status_ != kRunning) return false;
    if (::waitpid(pid_, &exit_status_, WNOHANG) != 0) return false;  // reaped: exit_status_ is set
    exit_status_ = kRunning;
    return true;
}

int Daemon::open_fds() const {
    int n = 0;
    if (DIR* d = ::opendir(("/proc/" + std::to_string(pid_) + "/fd").c_str())) {
        while (dirent* e = ::readdir(d))
            if (e->d_name[0] != '.') ++n;
        ::closedir(d);
    }
    return n;
}

int Daemon::wait_fds(int n, std::chrono::milliseconds timeout) const {
    const auto t0 = std::chrono::steady_clock::now();
    int now = open_fds();
    while (now != n && ms_since(t0) < static_cast<double>(timeout.count())) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        now = open_fds();
    }
    return now;
}

int Daemon::settled_fds() const {
    int last = open_fds();
    for (int stable = 0; stable < 10;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        const int now = open_fds();
        stable = now == last ? stable + 1 : 0;
        last = now;
    }
    return last;
}

double Daemon::cpu_seconds() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Fields after the command name, which is in parentheses and may hold spaces.
    std::istringstream rest(text.substr(text.rfind(')') + 2));
    std::string field;
    unsigned long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) utime = std::stoul(field);
        if (i == 15) stime = std::stoul(field);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

long Daemon::limit_fds(long soft) const {
    rlimit old{}, now{};
    if (::prlimit(pid_, RLIMIT_NOFILE, nullptr, &old) != 0) {
        ADD_FAILURE() << "prlimit(" << pid_ << "): " << std::strerror(errno);
        return -1;
    }
    now = old;
    now.rlim_cur = static_cast<rlim_t>(soft);
    if (::prlimit(pid_, RLIMIT_NOFILE, &now, nullptr) != 0)
        ADD_FAILURE() << "prlimit(" << pid_ << ", " << soft << "): " << std::strerror(errno);
    return static_cast<long>(old.rlim_cur);
}

void echo_detached(int fd) {
    std::thread([fd] {
        char buf[4096];
        ssize_t n;
        while ((n = ::read(fd, buf, sizeof buf)) > 0)
            if (::write(fd, buf, static_cast<std::size_t>(n)) != n) break;
        ::close(fd);
    }).detach();
}

Listener::Listener(Mode mode, const std::string& address, int backlog) {
    auto ep = parse_address(address, 0);
    fd_ = UniqueFd(::socket(ep->v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int one = 1;
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    auto sa = to_sockaddr(*ep);
    do {
        ep->port = next_test_port();
        sa = to_sockaddr(*ep);
    } while (::bind(fd_.get(), sa.get(), sa.len) != 0 && errno == EADDRINUSE && ep->port < 39000);
    if (::listen(fd_.get(), backlog) != 0) {
        ADD_FAILURE() << "listener on " << address << ": " << std::strerror(errno);
        return;
    }
    sa.len = sizeof sa.storage;
    ::getsockname(fd_.get(), sa.get(), &sa.len);
    ep_ = *from_sockaddr(sa.get(), sa.len);
    if (mode == Mode::hold) return;
    thread_ = std::thread([fd = fd_.get()] {
        for (;;) {
            const int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) return;  // shut down
            echo_detached(c);
        }
    });
}

Listener::~Listener() {
    ::shutdown(fd_.get(), SHUT_RDWR);  // wakes the accept loop
    if (thread_.joinable()) thread_.join();
}

Endpoint closed_port() {
    // Bind a port, then close it: nothing listens there now.
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    auto sa = to_sockaddr(*parse_address("127.0.0.1", 0));
    ::bind(fd.get(), sa.get(), sa.len);
    sa.len = sizeof sa.storage;
    ::getsockname(fd.get(), sa.get(), &sa.len);
    return *from_sockaddr(sa.get(), sa.len);
}

HeldSocket::HeldSocket(int type, int backlog) {
    char tmpl[] = "/tmp/egressd-held.XXXXXX";
    dir = ::mkdtemp(tmpl);
    path = dir + "/egressd.sock";
    fd = UniqueFd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << path << ": " << std::strerror(errno);
    if (backlog >= 0) {
        EXPECT_EQ(::listen(fd.get(), backlog), 0) << std::strerror(errno);
    }
}

HeldSocket::~HeldSocket() { std::filesystem::remove_all(dir); }

UniqueFd raw_connect(const std::string& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        ADD_FAILURE() << "connect " << path << ": " << std::strerror(errno);
    const timeval tv{5, 0};  // a safety net: no test waits forever on a reply
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

bool send_datagram(int sock, const proto::Bytes& datagram, const Ancillary& extra) {
    iovec iov{const_cast<std::uint8_t*>(datagram.data()), datagram.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control(CMSG_SPACE(sizeof(int) * extra.fds.size()) + CMSG_SPACE(sizeof(ucred)));
    std::size_t used = 0;
    if (!extra.fds.empty() || extra.credentials) {
        msg.msg_control = control.data();
        msg.msg_controllen = control.size();
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        if (!extra.fds.empty()) {
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * extra.fds.size());
            std::memcpy(CMSG_DATA(c), extra.fds.data(), sizeof(int) * extra.fds.size());
            used += CMSG_SPACE(sizeof(int) * extra.fds.size());
            c = CMSG_NXTHDR(&msg, c);
        }
        if (extra.credentials) {
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_CREDENTIALS;
            c->cmsg_len = CMSG_LEN(sizeof(ucred));
            std::memcpy(CMSG_DATA(c), &*extra.credentials, sizeof(ucred));
            used += CMSG_SPACE(sizeof(ucred));
        }
        msg.msg_controllen = used;
    }
    return ::sendmsg(sock, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(datagram.size());
}

std::optional<Received> receive_reply(int sock, std::chrono::milliseconds timeout, bool* closed) {
    if (closed) *closed = false;
    pollfd p{sock, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    std::vector<std::uint8_t> buf(EGRESS_MAX_STATUS_REPLY);
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const auto n = ::recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n <= 0) {
        if (closed) *closed = n == 0 || errno == ECONNRESET;
        return std::nullopt;
    }
    Received r;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
            r.fd = UniqueFd(fd);
        }
    auto decoded = proto::decode_reply(proto::ByteView(buf.data(), static_cast<std::size_t>(n)));
    if (!decoded) {
        ADD_FAILURE() << "undecodable reply of " << n << " bytes: " << decoded.error().message;
        return std::nullopt;
    }
    r.reply = std::move(*decoded);
    return r;
}

std::optional<proto::Reply> exchange(int sock, const proto::Bytes& datagram, const Ancillary& extra) {
    if (!send_datagram(sock, datagram, extra)) return std::nullopt;
    auto r = receive_reply(sock);
    if (!r) return std::nullopt;
    return std::move(r->reply);
}

std::uint32_t status_of(const proto::Reply& r) {
    if (auto* c = std::get_if<proto::ConnectReply>(&r.body)) return c->status;
    if (auto* s = std::get_if<proto::StatusReply>(&r.body)) return s->status;
    return std::get<proto::ErrorReply>(r.body).status;
}

std::string message_of(const proto::Reply& r) {
    if (auto* c = std::get_if<proto::ConnectReply>(&r.body)) return c->message;
    if (auto* s = std::get_if<proto::StatusReply>(&r.body)) return s->message;
    return std::get<proto::ErrorReply>(r.body).message;
}

std::string error_name_of(const proto::Reply& r) {
    if (auto* c = std::get_if<proto::ConnectReply>(&r.body)) return c->error_name;
    if (auto* s = std::get_if<proto::StatusReply>(&r.body)) return s->error_name;
    return std::get<proto::ErrorReply>(r.body).error_name;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace egress::test
