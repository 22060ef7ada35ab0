// Integration harness: the test binary enters a private network namespace in
// main() (loopback up, a black-hole veth), runs the real egressd binary and
// talks to it only through its socket protocol and its command-line tools.
#pragma once

#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "codec.hpp"
#include "endpoint.hpp"
#include "netns.hpp"
#include "unique_fd.hpp"

namespace egress::test {


// Runs a command (argv[0] is a path) and waits; fails the test on a spawn error.
struct RunResult {
    int status = -1;  // exit code, or 128+signal
    std::string out;
    std::string err;
};
RunResult run(const std::vector<std::string>& argv, const std::string& stdin_data = "",
              const std::vector<std::string>& extra_env = {});
void sh(const std::string& command);  // runs via /bin/sh, asserts exit 0
// The first line of a sanitizer's report in a child's output, or "". run()
// and Daemon fail the test on one: a sanitized build must report nothing.
std::string sanitizer_report(const std::string& output);

// Ports for listeners and metrics endpoints the tests bind: below the
// namespace's ephemeral range (40000-59999). An explicitly bound port is
// skipped by connect()'s port search, so one inside the range would shrink
// the port space a pool under test counts on.
std::uint16_t next_test_port();

// The value of a variable meson test sets (a binary's path); aborts with a
// hint when the test runs without it.
std::string env_or_die(const char* name);
std::string egressd_bin();
std::string egress_connect_bin();

// `config_json` ("" is "{}") with, unless it has "clients" or "default_client",
// a default rule that allows the loopback destinations the tests listen on
// (the built-in deny list refuses them otherwise).
std::string test_config(const std::string& config_json);

// A running egressd with its own socket and log in a fresh temp directory.
class Daemon {
public:
    // `config_json` empty: built-in defaults; either way through test_config().
    // `extra_env`: NAME=VALUE entries added to egressd's environment.
    explicit Daemon(const std::string& config_json = "", std::vector<std::string> extra_args = {},
                    std::vector<std::string> extra_env = {});
    // A socket handed over as systemd does (descriptor 3, LISTEN_FDS=1,
    // LISTEN_PID): `listen_fd` listens at `path`; egressd gets no --socket.
    struct Passed {
        int listen_fd;
        std::string path;
        std::vector<std::string> env = {};  // as extra_env above
    };
    Daemon(const std::string& config_json, const Passed& passed);
    // Stops egressd with SIGTERM; fails the test unless it exits 0 and its
    // log holds no sanitizer report.
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    const std::string& socket() const { return socket_; }
    const std::string& dir() const { return dir_; }
    pid_t pid() const { return pid_; }
    std::string log() const;
    bool alive() const;
    // Sends `sig` (SIGTERM: the drain; 0: none) and waits up to `timeout` for egressd
    // to exit; its status (exit code, or 128+signal), -1 if it still runs.
    // The destructor then checks that status as usual.
    int stop(int sig = SIGTERM, std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // Waits up to `timeout` for `text` to appear in the log.
    bool wait_log(const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;
    // The port of its Prometheus endpoint (an ephemeral port on 127.0.0.1).
    int metrics_port() const;
    // GET /metrics: the exposition text.
    std::string scrape() const;
    // Descriptors egressd holds now (/proc/PID/fd).
    int open_fds() const;
    // Polls until open_fds() == n or the timeout passes; returns the last count.
    int wait_fds(int n, std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;
    // Polls until the count stops changing for a while: the idle baseline.
    int settled_fds() const;
    // User plus system CPU time egressd has used, in seconds (/proc/PID/stat).
    double cpu_seconds() const;
    // Sets egressd's soft RLIMIT_NOFILE (prlimit(2)); returns the previous one.
    long limit_fds(long soft) const;

private:
    void spawn(std::vector<std::string> argv, int passed_fd, const std::vector<std::string>& extra_env);

    std::string dir_;
    std::string socket_;
    pid_t pid_ = -1;
    static constexpr int kRunning = -1;
    mutable int exit_status_ = kRunning;  // waitpid status once reaped
};

std::string egress_bench_bin();

// An `egress-bench worker` process: makes its connects, reports, and holds
// every socket it got until this object dies (so ports stay in use).
class BenchWorker {
public:
    explicit BenchWorker(const std::vector<std::string>& args);
    ~BenchWorker();
    BenchWorker(BenchWorker&& o) noexcept
        : pid_(std::exchange(o.pid_, -1)), in_(std::move(o.in_)), out_(std::move(o.out_)) {}
    // Waits for the worker's report (a JSON object).
    std::string report();

private:
    pid_t pid_ = -1;
    UniqueFd in_, out_;
};

// Echoes every byte `fd` (a connected socket) sends until it closes, on a
// detached thread that then closes `fd`.
void echo_detached(int fd);

// A TCP listener in the test process. Echo mode: every accepted connection
// gets its bytes back. Hold mode: connections wait in the backlog.
class Listener {
public:
    enum class Mode { echo, hold };
    explicit Listener(Mode mode, const std::string& address = "127.0.0.1", int backlog = 100000);
    ~Listener();
    Endpoint endpoint() const { return ep_; }

private:
    UniqueFd fd_;
    Endpoint ep_;
    std::thread thread_;
};

// A TCP port on 127.0.0.1 with nothing listening: connects are refused.
Endpoint closed_port();

// A Unix socket of `type` bound at a fresh path (in a temp directory removed
// with it): listening with `backlog` as systemd's egressd.socket holds one,
// or not listening when `backlog` is negative.
struct HeldSocket {
    explicit HeldSocket(int type = SOCK_SEQPACKET, int backlog = 4096);
    ~HeldSocket();
    HeldSocket(const HeldSocket&) = delete;
    HeldSocket& operator=(const HeldSocket&) = delete;
    std::string dir, path;
    UniqueFd fd;
};

// A blocking raw client socket to egressd, for hand-made datagrams.
UniqueFd raw_connect(const std::string& socket_path);

double ms_since(std::chrono::steady_clock::time_point t0);

// What a raw client may attach to a datagram.
struct Ancillary {
    std::vector<int> fds;                // SCM_RIGHTS
    std::optional<ucred> credentials;    // SCM_CREDENTIALS
};
// Sends one datagram; false when the send failed (errno says why).
bool send_datagram(int sock, const proto::Bytes& datagram, const Ancillary& extra = {});
// One reply received on a raw socket, with the descriptor it carried.
struct Received {
    proto::Reply reply;
    UniqueFd fd;
};
// Waits up to `timeout` for the next datagram. nullopt: end-of-stream, an
// error or the timeout (`closed` tells end-of-stream apart). An undecodable
// reply fails the test.
std::optional<Received> receive_reply(int sock, std::chrono::milliseconds timeout = std::chrono::seconds(5),
                                      bool* closed = nullptr);
// Sends one datagram and returns the reply, or nullopt when egressd closed
// the connection instead.
std::optional<proto::Reply> exchange(int sock, const proto::Bytes& datagram, const Ancillary& extra = {});
std::uint32_t status_of(const proto::Reply& r);
std::string message_of(const proto::Reply& r);
std::string error_name_of(const proto::Reply& r);

// Polls `done` every 10 ms until it holds or `timeout` passes; its last answer.
template <class F>
bool eventually(F done, std::chrono::milliseconds timeout = std::chrono::seconds(3)) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= until) return done();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}


// A plain HTTP/1.0 GET on 127.0.0.1; returns the body ("" on failure).
std::string http_get(int port, const std::string& path);

// The value of one sample in Prometheus text, e.g.
// metric_value(text, R"(egress_connects_total{pool="p",result="ok",source="127.0.0.2"})");
// -1 when absent. Labels must be written in the order the exposition uses.
double metric_value(const std::string& exposition, const std::string& series);

}  // namespace egress::test
