// egress-bench: reproducible connect() experiments, each in its own private
// network namespace. `egress-bench --help` lists the scenarios; each lives in
// its own file (storm.cpp, hol.cpp, clients.cpp, ...).
#include <unistd.h>

#include <csignal>
#include <iostream>
#include <string>
#include <vector>

#include "common.hpp"
#include "egress_client.hpp"
#include "worker.hpp"

namespace egress::bench {

// The drop-in scenarios (dropin.cpp, nginx_bench.cpp).
int cmd_dropin(const Args& a);
int cmd_nginx(const Args& a);

namespace {

const char* const kUsage =
    "usage: egress-bench SCENARIO [options] [--json]\n"
    "\n"
    "  storm --mode direct-default|direct-window|direct-kernel-range|broker\n"
    "        [--strategy S[,S...]] [--connections N] [--sources K] [--range LO-HI] [--window W]\n"
    "        [--threads T[,T...]] [--transport tcp|udp]\n"
    "      N connects to one destination (defaults: N 19500, K 1, range 40000-59999, W 500).\n"
    "      --transport udp: N connected UDP sockets instead, every one held open (a UDP\n"
    "      port is taken for all destinations: the range fills at N = its size).\n"
    "      broker goes through egressd with pool strategy S (kernel-default, window,\n"
    "      kernel-range, userspace-random); several strategies run side by side and\n"
    "      are compared with the first. --runs R repeats each (interleaved) and\n"
    "      reports the median run. --threads runs egressd with T event loops (each\n"
    "      count in turn, at least T workers so every loop has a client) and adds\n"
    "      egressd's CPU per connect and the scaling it implies.\n"
    "\n"
    "  hol [--pending P[,P...]] [--live N] [--deadline MS]\n"
    "      Head-of-line: while P connects hang on a black hole (defaults 0,100,1000,10000),\n"
    "      time N live connects (default 1000) through egressd; then check that every\n"
    "      black-holed request was answered ETIMEDOUT at its deadline (default 3000 ms).\n"
    "\n"
    "  clients [--clients C[,C...]] [--connections N] [--inflight K] [--threads T[,T...]]\n"
    "      C client connections at once (defaults 1,10,100,1000) share N connects\n"
    "      (default 20000), each keeping K requests in flight (default 4): throughput,\n"
    "      latency (request to reply), egressd's resident memory per idle client and\n"
    "      CPU per connect; --threads repeats every level for each egressd loop count.\n"
    "\n"
    "  backlog [--pending P[,P...]] [--live N] [--new-pending K] [--valgrind PATH]\n"
    "      egressd's instructions per request (callgrind) while P connects hang on a\n"
    "      black hole (defaults 0,10,100,1000,10000): N live connects one at a time\n"
    "      (default 2000), then K more hanging ones (default 1000); each must cost\n"
    "      the same at every P (the ratio to the first level, target within 10%).\n"
    "      --keep-dumps DIR keeps callgrind's files for callgrind_annotate.\n"
    "\n"
    "  plot --out DIR [--connections N] [--strategy S] [--pending P[,P...]] [--live N] [--gnuplot PATH]\n"
    "      Charts as PNG (gnuplot, Debian package gnuplot-nox) with their .dat and .gp files:\n"
    "      storm-direct-default.png and storm-broker-S.png (latency per connect against\n"
    "      connection index, by local port parity; storm's options and defaults, S window)\n"
    "      and hol-cdf.png (live connect latency CDF per pending level; hol's options).\n"
    "\n"
    "  vs-socks [--connections N] [--inflight K] [--bytes B] [--runs R]\n"
    "           [--microsocks PATH] [--danted PATH]\n"
    "      egressd against microsocks and Dante (started on loopback in the namespace):\n"
    "      N set-ups (default 5000), K in flight (default 64), then B bytes (default 1G)\n"
    "      over one socket from each to a sink. Set-ups/s, latency, MiB/s and the\n"
    "      ratios egressd/microsocks and egressd/dante; --runs R interleaves and\n"
    "      reports medians.\n"
    "\n"
    "  fairness [--attackers A] [--requests N] [--outstanding K] [--probes P] [--rate R]\n"
    "      One client making P live connects one at a time at R per second (defaults\n"
    "      1000, 200), plus a SIGHUP every P/5 probes timed until STATUS shows the\n"
    "      reload, with no attack, then while A clients (default 5) each send N\n"
    "      CONNECTs (default 3000) without reading ('flood'), then while A clients\n"
    "      each keep K refused connects in flight (default 1024, 'refused'). Reports\n"
    "      the probe's p99 under each attack as a ratio to its p99 without one.\n"
    "\n"
    "  dropin [--connections N] [--range LO-HI] [--runs R] [--strategy S]\n"
    "         [--egress-run PATH] [--preload PATH] [--client PATH]\n"
    "      An unmodified program (egress-dropin-client) makes N plain blocking\n"
    "      connects (default 19500, at most 19900) to one listener in a peer\n"
    "      namespace and holds them all, once on its own and once under egress-run\n"
    "      with egressd's one-source pool (strategy S, default kernel-range).\n"
    "      Total time, errors, latency by port parity, and the ratio (target 5x).\n"
    "\n"
    "  nginx [--duration S | --requests N] [--connections C] [--workers W]\n"
    "        [--threads T] [--sources K] [--runs R] [--nginx PATH] [--wrk PATH]\n"
    "      nginx as a reverse proxy (W workers, default 2; no upstream keepalive)\n"
    "      to an nginx in a peer namespace, loaded by wrk (T threads, default 1;\n"
    "      C connections, default 64; for S seconds, default 10, or N requests),\n"
    "      once on its own and once under egress-run (pool of K sources, default 4).\n"
    "      Requests/s, latency percentiles, and the ratio (target 0.8x).\n"
    "\n"
    "  names [--runs R] [--requests N]\n"
    "      Host names, against a DNS server in a peer namespace: the time to connect\n"
    "      to a name whose AAAA is black-holed and whose A is live, through egressd\n"
    "      and with curl alone (R runs each, default 5); then N sequential requests\n"
    "      (default 1000) each to the live address, to a name with egressd's cache\n"
    "      off and to a cached name: the extra time a name costs, against the\n"
    "      resolution time egressd reports (RESOLVE_US).\n"
    "\n"
    "  common: --json (one JSON object per run), --no-netns (use the current namespace),\n"
    "          --egressd PATH (default: the egressd built beside this tool)\n";

// worker: one load-generating process (storm and clients start these).
int cmd_worker(const Args& a) {
    if (a.has("clients")) {
        // Many clients: report "connected", wait for a line, run, report, hold.
        auto dest = parse_endpoint(a.get("dest", ""));
        if (!dest) usage("--dest: " + dest.error().message);
        std::vector<Client> keep;
        const auto r = run_clients(a.get("socket", ""), *dest, a.num("clients", 1), a.num("per-client", 100),
                                   a.num("inflight", 4),
                                   [] {
                                       std::cout << "connected" << std::endl;
                                       std::string line;
                                       std::getline(std::cin, line);
                                   },
                                   keep);
        std::cout << r.to_json().dump() << std::endl;
        char c;
        while (::read(0, &c, 1) > 0) {
        }
        return 0;
    }
    WorkerOptions o;
    auto mode = parse_mode(a.get("mode", "broker"));
    if (!mode) usage("unknown --mode '" + a.get("mode", "") + "'");
    o.mode = *mode;
    o.socket = a.get("socket", "");
    auto dest = parse_endpoint(a.get("dest", ""));
    if (!dest) usage("--dest: " + dest.error().message);
    o.dest = *dest;
    o.count = a.num("count", 1000);
    o.inflight = a.num("inflight", 64);
    o.timeout_ms = a.has("timeout") ? a.num("timeout", 0) : 0;
    o.pool = a.get("pool", "");
    if (a.has("source")) {
        o.source = parse_address(a.get("source", ""));
        if (!o.source) usage("--source must be an IP address");
    }
    o.range = range_arg(a);
    o.window = a.num("window", 500);
    o.hold = a.has("hold");
    o.series = a.has("series");
    o.udp = a.get("transport", "tcp") == "udp";
    std::vector<int> held;
    const auto r = run_worker(o, held);
    std::cout << r.to_json().dump() << std::endl;
    if (o.hold) {
        char c;
        while (::read(0, &c, 1) > 0) {
        }
    }
    return 0;
}

}  // namespace

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "egress-bench: " << why << "\n" << kUsage;
    std::exit(2);
}

}  // namespace egress::bench

int main(int argc, char** argv) {
    using namespace egress::bench;
    std::signal(SIGPIPE, SIG_IGN);
    if (argc < 2) usage("no scenario given");
    const std::string scenario = argv[1];
    if (scenario == "--help" || scenario == "-h") {
        std::cout << kUsage;
        return 0;
    }
    const auto args = parse(argc, argv, 2);
    if (scenario == "worker") return cmd_worker(args);
    if (scenario == "storm") return cmd_storm(args);
    if (scenario == "hol") return cmd_hol(args);
    if (scenario == "clients") return cmd_clients(args);
    if (scenario == "backlog") return cmd_backlog(args);
    if (scenario == "plot") return cmd_plot(args);
    if (scenario == "vs-socks") return cmd_vs_socks(args);
    if (scenario == "fairness") return cmd_fairness(args);
    if (scenario == "dropin") return cmd_dropin(args);
    if (scenario == "nginx") return cmd_nginx(args);
    if (scenario == "names") return cmd_names(args);
    usage("unknown scenario '" + scenario + "'");
}
