#include "socks.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "sockaddr.hpp"

namespace egress::bench {

namespace socks5 {

std::vector<std::uint8_t> greeting() { return {5, 1, 0}; }

std::string check_method_reply(const std::uint8_t* r) {
    if (r[0] != 5) return "method reply has version " + std::to_string(r[0]) + ", expected 5";
    if (r[1] == 0xff) return "the proxy accepts none of the offered methods (no authentication)";
    if (r[1] != 0) return "the proxy chose method " + std::to_string(r[1]) + ", not 0 (no authentication)";
    return "";
}

std::vector<std::uint8_t> connect_request(const Endpoint& dest) {
    std::vector<std::uint8_t> req{5, 1, 0, static_cast<std::uint8_t>(dest.v6 ? 4 : 1)};
    for (std::size_t i = 0; i < dest.addr_len(); ++i) req.push_back(dest.addr[i]);
    req.push_back(static_cast<std::uint8_t>(dest.port >> 8));
    req.push_back(static_cast<std::uint8_t>(dest.port & 0xff));
    return req;
}

std::size_t reply_length(const std::uint8_t* r, std::size_t have) {
    if (have < 5) return 0;
    switch (r[3]) {
    case 1: return 4 + 4 + 2;
    case 4: return 4 + 16 + 2;
    case 3: return 4 + 1 + r[4] + 2;
    default: return 5;  // a bad address type: check_reply says so
    }
}

std::string check_reply(const std::uint8_t* r, std::size_t len) {
    static const char* const kReplies[] = {"succeeded",
                                           "general SOCKS server failure",
                                           "connection not allowed by ruleset",
                                           "network unreachable",
                                           "host unreachable",
                                           "connection refused",
                                           "TTL expired",
                                           "command not supported",
                                           "address type not supported"};
    if (len < 5) return "CONNECT reply too short (" + std::to_string(len) + " bytes)";
    if (r[0] != 5) return "CONNECT reply has version " + std::to_string(r[0]) + ", expected 5";
    if (r[1] != 0)
        return "CONNECT refused: reply " + std::to_string(r[1]) + " (" + (r[1] < 9 ? kReplies[r[1]] : "unassigned") + ")";
    if (r[2] != 0) return "CONNECT reply has reserved byte " + std::to_string(r[2]) + ", expected 0";
    if (r[3] != 1 && r[3] != 3 && r[3] != 4) return "CONNECT reply has address type " + std::to_string(r[3]);
    return "";
}

}  // namespace socks5

namespace {

using clock_type = std::chrono::steady_clock;

void record_failure(WorkerResult& r, const std::string& name, const std::string& message) {
    ++r.errored;
    if (!r.errors[name]++) r.messages[name] = message;
}

// One set-up in progress.
struct SetUp {
    enum class Stage { connecting, method, reply } stage = Stage::connecting;
    UniqueFd fd;
    std::array<std::uint8_t, 4 + 1 + 255 + 2> buf{};  // the longest CONNECT reply
    std::size_t have = 0;
    clock_type::time_point t0;
};

// A failed step: an error name for the counts and what happened.
struct Failure {
    std::string name, message;
};

bool send_all(int fd, const std::vector<std::uint8_t>& bytes, Failure& f, const char* what) {
    const auto n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(bytes.size())) return true;
    const int err = n < 0 ? errno : EAGAIN;
    f = {errno_name(err), std::string("sending the ") + what + ": " + (n < 0 ? errno_text(err) : "short write")};
    return false;
}

// Reads toward `want` bytes in s.buf; false with f set on EOF or an error,
// false with f empty when the socket has nothing more yet.
bool read_toward(SetUp& s, std::size_t want, Failure& f, const char* what) {
    while (s.have < want) {
        const auto n = ::read(s.fd.get(), s.buf.data() + s.have, want - s.have);
        if (n > 0) {
            s.have += static_cast<std::size_t>(n);
        } else if (n == 0) {
            f = {"SOCKS_EOF", std::string("the proxy closed the connection in the ") + what + " after " +
                                  std::to_string(s.have) + " bytes"};
            return false;
        } else {
            if (errno != EAGAIN) f = {errno_name(errno), std::string("reading the ") + what + ": " + errno_text(errno)};
            return false;
        }
    }
    return true;
}

enum class Step { wait, done, failed };

// Advances one set-up as far as its socket allows.
Step advance(SetUp& s, int epfd, const Endpoint& dest, Failure& f) {
    const int fd = s.fd.get();
    if (s.stage == SetUp::Stage::connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == EINPROGRESS) return Step::wait;
        if (err) {
            f = {errno_name(err), "connect to the proxy: " + errno_text(err)};
            return Step::failed;
        }
        if (!send_all(fd, socks5::greeting(), f, "greeting")) return Step::failed;
        epoll_event ev{EPOLLIN, {.fd = fd}};
        ::epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
        s.stage = SetUp::Stage::method;
    }
    if (s.stage == SetUp::Stage::method) {
        if (!read_toward(s, 2, f, "method reply")) return f.name.empty() ? Step::wait : Step::failed;
        if (auto why = socks5::check_method_reply(s.buf.data()); !why.empty()) {
            f = {"SOCKS_PROTOCOL", why};
            return Step::failed;
        }
        if (!send_all(fd, socks5::connect_request(dest), f, "CONNECT request")) return Step::failed;
        s.stage = SetUp::Stage::reply;
        s.have = 0;
    }
    if (!read_toward(s, 5, f, "CONNECT reply")) return f.name.empty() ? Step::wait : Step::failed;
    const auto len = socks5::reply_length(s.buf.data(), s.have);
    if (!read_toward(s, len, f, "CONNECT reply")) return f.name.empty() ? Step::wait : Step::failed;
    if (auto why = socks5::check_reply(s.buf.data(), len); !why.empty()) {
        f = {s.buf[1] != 0 ? "SOCKS_REFUSED" : "SOCKS_PROTOCOL", why};
        return Step::failed;
    }
    return Step::done;
}

}  // namespace

WorkerResult run_socks_setups(const SocksSetupOptions& o, const std::function<void(UniqueFd)>& keep) {
    WorkerResult r;
    UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
    if (!ep) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
    const auto proxy = to_sockaddr(o.proxy);
    std::unordered_map<int, SetUp> live;
    std::uint32_t started = 0;
    const auto t_start = clock_type::now();

    auto finish = [&](int fd, Step step, const Failure& f) {
        auto& s = live.at(fd);
        ::epoll_ctl(ep.get(), EPOLL_CTL_DEL, fd, nullptr);
        if (step == Step::done) {
            ++r.ok;
            r.lat_even_ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - s.t0).count());
            if (keep) keep(std::move(s.fd));
        } else {
            record_failure(r, f.name, f.message);
        }
        live.erase(fd);
    };
    auto start = [&] {
        ++started, ++r.attempts;
        SetUp s;
        s.t0 = clock_type::now();
        s.fd = UniqueFd(::socket(proxy.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!s.fd) return record_failure(r, errno_name(errno), std::string("socket: ") + errno_text(errno));
        if (::connect(s.fd.get(), proxy.get(), proxy.len) != 0 && errno != EINPROGRESS)
            return record_failure(r, errno_name(errno), "connect to the proxy: " + errno_text(errno));
        const int fd = s.fd.get();
        epoll_event ev{EPOLLOUT, {.fd = fd}};
        if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
            return record_failure(r, errno_name(errno), "epoll_ctl: " + errno_text(errno));
        live.emplace(fd, std::move(s));
    };

    std::array<epoll_event, 256> events;
    while (started < o.count || !live.empty()) {
        while (live.size() < o.inflight && started < o.count) start();
        if (live.empty()) continue;
        const int n = ::epoll_wait(ep.get(), events.data(), static_cast<int>(events.size()),
                                   static_cast<int>(o.idle_timeout_ms));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {  // nothing moved for the whole idle timeout: give up on the rest
            const Failure f{"ETIMEDOUT", "no progress from the proxy for " + std::to_string(o.idle_timeout_ms) + " ms"};
            while (!live.empty()) finish(live.begin()->first, Step::failed, f);
            while (started < o.count) ++started, ++r.attempts, record_failure(r, f.name, f.message);
            break;
        }
        for (int i = 0; i < n; ++i) {
            const int fd = events[static_cast<std::size_t>(i)].data.fd;
            Failure f;
            const auto step = advance(live.at(fd), ep.get(), o.dest, f);
            if (step != Step::wait) finish(fd, step, f);
        }
    }
    r.total_s = std::chrono::duration<double>(clock_type::now() - t_start).count();
    return r;
}

std::string find_program(const Args& a, const std::string& key, const std::string& name, const std::string& package) {
    if (a.has(key)) {
        const auto path = a.get(key, "");
        if (::access(path.c_str(), X_OK) != 0) throw std::runtime_error("--" + key + " " + path + ": not an executable");
        return path;
    }
    std::string dirs = std::getenv("PATH") ? std::getenv("PATH") : "";
    std::stringstream list(dirs + ":/usr/sbin:/usr/bin:/sbin");
    for (std::string dir; std::getline(list, dir, ':');) {
        if (dir.empty()) continue;
        const auto path = dir + "/" + name;
        if (::access(path.c_str(), X_OK) == 0) return path;
    }
    throw std::runtime_error(name + " not found in $PATH, /usr/sbin or /usr/bin: install the Debian package " + package +
                             " (scripts/install-deps.sh does) or pass --" + key + " PATH");
}

namespace {

std::string log_tail(const std::string& path) {
    std::ifstream in(path);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return all.size() > 2000 ? all.substr(all.size() - 2000) : all;
}

bool accepts(const Endpoint& at) {
    const auto sa = to_sockaddr(at);
    UniqueFd fd(::socket(sa.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
    return fd && ::connect(fd.get(), sa.get(), sa.len) == 0;
}

// The guard: a child of the bench that starts the server as the leader of a
// new process group, reports its pid (then its wait status, should it end
// first) on `report`, and ends the whole group, with SIGTERM then SIGKILL
// after 5 s, once `life` reads EOF: when the bench stops it or dies in any
// way. It reaps the group's orphans and exits. Never returns.
[[noreturn]] void guard(int life, int report, char** args, int in, int out) {
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, SIG_IGN);  // a Ctrl-C must not skip the clean-up
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    const pid_t server = ::fork();
    if (server == 0) {
        ::setpgid(0, 0);
        for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) ::signal(sig, SIG_DFL);
        ::dup2(in, 0);
        ::dup2(out, 1);
        ::dup2(out, 2);
        ::execv(args[0], args);
        ::_exit(127);
    }
    if (server < 0) ::_exit(1);
    ::setpgid(server, server);  // also here, so that the group exists whichever runs first
    (void)!::write(report, &server, sizeof server);
    int st = 0;
    bool reaped = false;
    for (;;) {
        pollfd p{life, POLLIN, 0};
        ::poll(&p, 1, 20);
        if (::waitpid(server, &st, WNOHANG) == server) {
            reaped = true;
            (void)!::write(report, &st, sizeof st);
            break;
        }
        if (p.revents) break;
    }
    ::kill(-server, SIGTERM);
    for (int i = 0; i < 500 && !reaped; ++i) {  // 5 s to exit on SIGTERM
        reaped = ::waitpid(server, &st, WNOHANG) == server;
        if (!reaped) ::usleep(10000);
    }
    ::kill(-server, SIGKILL);  // the leader if it ignored SIGTERM, and any worker left behind
    if (!reaped) ::waitpid(server, &st, 0);
    for (int i = 0; i < 200 && ::kill(-server, 0) == 0; ++i) {  // orphans come here: 2 s at most
        while (::waitpid(-1, &st, WNOHANG) > 0) {
        }
        ::usleep(10000);
    }
    ::_exit(0);
}

}  // namespace

ServerProcess::ServerProcess(const std::vector<std::string>& argv, const std::string& log, const Endpoint& listen)
    : name_(argv.at(0).substr(argv.at(0).rfind('/') + 1)), log_(log) {
    std::vector<char*> args;
    for (const auto& s : argv) args.push_back(const_cast<char*>(s.c_str()));
    args.push_back(nullptr);
    UniqueFd out(::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    UniqueFd in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!out || !in) throw std::runtime_error("cannot open " + log + " or /dev/null: " + std::strerror(errno));
    int life[2], report[2];
    if (::pipe2(life, O_CLOEXEC) != 0 || ::pipe2(report, O_CLOEXEC) != 0)
        throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    guard_ = ::fork();
    if (guard_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (guard_ == 0) {
        ::close(life[1]);
        ::close(report[0]);
        guard(life[0], report[1], args.data(), in.get(), out.get());
    }
    ::close(life[0]);
    ::close(report[1]);
    life_ = UniqueFd(life[1]);
    report_ = UniqueFd(report[0]);
    if (::read(report_.get(), &pid_, sizeof pid_) != sizeof pid_) {
        stop();
        throw std::runtime_error("could not start " + name_ + " (fork failed in its guard)");
    }
    for (int i = 0; i < 1000; ++i) {  // 10 s at most
        if (accepts(listen)) return;
        pollfd p{report_.get(), POLLIN, 0};
        if (::poll(&p, 1, 10) == 1) {  // the guard reports the server's end
            int st = 0;
            const bool got = ::read(report_.get(), &st, sizeof st) == sizeof st;
            stop();
            const auto how = !got                         ? std::string("ended (its guard died)")
                             : WIFSIGNALED(st)            ? "was killed by signal " + std::to_string(WTERMSIG(st))
                             : WEXITSTATUS(st) == 127     ? std::string("could not be executed (exit status 127)")
                                                          : "exited with status " + std::to_string(WEXITSTATUS(st));
            throw std::runtime_error(name_ + " " + how + " before accepting on " + endpoint_string(listen) +
                                     "; its log " + log_ + ":\n" + log_tail(log_));
        }
    }
    stop();
    throw std::runtime_error(name_ + " did not accept on " + endpoint_string(listen) + " within 10 s; its log:\n" +
                             log_tail(log_));
}

ServerProcess::~ServerProcess() { stop(); }

double ServerProcess::cpu_seconds() const {
    unsigned long long ticks = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        std::ifstream in(entry.path() / "stat");
        std::string stat;
        if (!std::getline(in, stat) || stat.rfind(')') == std::string::npos) continue;
        // Fields after "(comm)": state ppid pgrp ... utime(14) stime cutime cstime(17).
        std::istringstream rest(stat.substr(stat.rfind(')') + 2));
        std::string field;
        unsigned long long sum = 0;
        long pgrp = 0;
        for (int i = 3; i <= 17 && rest >> field; ++i) {
            if (i == 5) pgrp = std::stol(field);
            if (i >= 14) sum += std::stoull(field);
        }
        if (pgrp == pid_) ticks += sum;
    }
    return static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

void ServerProcess::stop() {
    if (guard_ <= 0) return;
    life_.reset();  // the guard ends the group (bounded) and exits
    int st;
    ::waitpid(guard_, &st, 0);
    guard_ = pid_ = -1;
}

}  // namespace egress::bench
