// What every egress-bench scenario shares: the command line, child processes,
// a private egressd per run, and readings of /proc.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "endpoint.hpp"
#include "pool/port_window.hpp"
#include "unique_fd.hpp"

namespace egress::bench {

using nlohmann::json;

// Prints why and the usage text, exits 2 (egress_bench.cpp owns the text).
[[noreturn]] void usage(const std::string& why);

// --key value options; the keys listed in parse() are flags without a value.
struct Args {
    std::map<std::string, std::string> values;
    bool has(const std::string& k) const { return values.count(k) > 0; }
    std::string get(const std::string& k, const std::string& def) const;
    // A positive number (usage error otherwise), or def when absent.
    std::uint32_t num(const std::string& k, std::uint32_t def) const;
};
Args parse(int argc, char** argv, int from);
PortRange range_arg(const Args& a);
// "1,10,100": a comma-separated list of numbers (usage error otherwise).
std::vector<std::uint32_t> number_list(const Args& a, const std::string& key, const std::string& def);
// --threads N[,N...]: egressd's event loops per run; {0} (egressd's own
// default) when absent. Usage error outside 1-1024.
std::vector<std::uint32_t> thread_counts(const Args& a);
// The loops egressd runs for `threads` (0: the CPUs this process may run on,
// as egressd counts them).
std::uint32_t effective_threads(std::uint32_t threads);

// The listener every scenario connects to: below every ephemeral range used here.
inline constexpr std::uint16_t kDestPort = 5000;
// A TCP listener on `at` whose accept queue can hold a whole storm (throws).
UniqueFd open_listener(const Endpoint& at);

std::string self_exe();
std::string egressd_path(const Args& a);

// A child process with pipes to its stdin and stdout.
struct Child {
    pid_t pid = -1;
    UniqueFd in, out;  // our ends of its stdin and stdout
    std::string unread;  // read from `out` past the last line returned
};
Child spawn(const std::vector<std::string>& argv, const std::string& stderr_file = "");
// Closes its stdin and waits for it to exit.
void reap(Child& c);
// The next line of its stdout, without the newline; "" at end of file.
std::string read_line(Child& c);

// A private egressd on a socket in a fresh temporary directory, stopped (and
// the directory removed) by stop() or the destructor.
class Egressd {
public:
    // Starts `path` (or, when prefix is non-empty, `prefix... path`, e.g. under
    // valgrind) with `config`; throws when its socket does not answer within
    // start_timeout.
    Egressd(const Args& a, const json& config, const std::vector<std::string>& prefix = {},
            std::chrono::milliseconds start_timeout = std::chrono::seconds(5));
    ~Egressd();
    Egressd(const Egressd&) = delete;
    Egressd& operator=(const Egressd&) = delete;

    const std::string& socket() const { return socket_; }
    const std::string& dir() const { return dir_; }
    pid_t pid() const { return proc_.pid; }
    void stop();

private:
    Child proc_;
    std::string dir_, socket_;
};

// User plus system CPU seconds (every thread), and resident bytes, of a live process.
double cpu_seconds(pid_t pid);
double rss_bytes(pid_t pid);
// Adds egressd's CPU to a run's JSON: "egressd_cpu_s", "egressd_cpu_us_per_connect"
// (per successful connect) and "egressd_cores_busy" (CPU seconds over the
// run's "total_s").
void add_cpu_figures(json& run, double cpu_s, std::uint64_t connects);
// The thread-count table: per run connects/s, CPU per connect, cores busy,
// and CPU per connect against the first run with the same "label" (which
// should not grow with threads).
void print_thread_scaling(const std::vector<json>& runs, const std::string& label);

// Runs fn in a forked child (so each run gets a fresh network namespace) and
// returns its JSON; a throw becomes {"error": what}.
json in_child(const std::function<json()>& fn);

// The run of median total time ("total_s") among the runs of one mode; with
// several runs it also carries "runs" and every run's total ("total_s_all",
// in the order they ran).
json median_of_runs(const std::vector<json>& runs);

// Scenarios.
int cmd_storm(const Args& a);
int cmd_hol(const Args& a);
int cmd_clients(const Args& a);
int cmd_backlog(const Args& a);
int cmd_plot(const Args& a);
int cmd_vs_socks(const Args& a);
int cmd_fairness(const Args& a);
int cmd_names(const Args& a);

}  // namespace egress::bench
