// egressd: wires config, counters, the OS layer, the Broker's event loops and
// the listener together, then runs them until SIGINT or SIGTERM has drained them.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif
#include <systemd/sd-daemon.h>

#include <fmt/ranges.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "cli/options.hpp"
#include "config/config.hpp"
#include "connector/adopt.hpp"
#include "io/asio.hpp"
#include "broker/broker.hpp"
#include "listener/listener.hpp"
#include "metrics/exposer.hpp"
#include "metrics/metrics.hpp"
#include "metrics/process.hpp"
#include "pool/pools.hpp"
#include "resolve/resolver.hpp"
#include "service/notify.hpp"
#include "sys/address_watch.hpp"
#include "sys/kernel.hpp"
#include "sys/names.hpp"
#include "sys/sock_diag.hpp"
#include "stats/stats.hpp"
#include "sys/syscalls.hpp"

namespace {

using namespace egress;

// systemd sets JOURNAL_STREAM to the device and inode ("DEV:INO") of the
// journal stream it connected to stdout/stderr; a stderr redirected since
// (by a shell, a test) is not that stream.
bool stderr_is_journal() {
    const char* js = std::getenv("JOURNAL_STREAM");
    unsigned long long dev = 0, ino = 0;
    struct stat st {};
    return js && std::sscanf(js, "%llu:%llu", &dev, &ino) == 2 && ::fstat(STDERR_FILENO, &st) == 0 &&
           st.st_dev == dev && st.st_ino == ino;
}

// Reads and validates a config file; the errors name file and JSON path.
ConfigLoad load_file(const std::string& file) {
    std::ifstream in(file);
    if (!in) return ConfigLoad{nullptr, {file + ": cannot open: " + std::strerror(errno)}};
    std::stringstream text;
    text << in.rdbuf();
    auto load = parse_config(text.str(), system_names());
    for (auto& e : load.errors) e = file + ": " + e;
    return load;
}

// Source addresses no local interface holds: a warning, not an error, since
// an address may be added after egressd starts (bind() then succeeds).
std::vector<std::string> unowned_sources(const Config& c) {
    std::vector<std::string> out;
    const auto local = local_addresses();
    for (const auto& p : c.pools)
        for (const auto& s : p.sources)
            if (std::find(local.begin(), local.end(), s) == local.end())
                out.push_back("pools." + p.name + ".sources: " + address_string(s) +
                              " is not configured on any local interface");
    return out;
}

// The pools of `config`, each source wired to its metric handles.
std::shared_ptr<PoolSet> make_pools(const Config& config, const KernelInfo& kernel, Metrics& metrics, Syscalls& sys) {
    auto pools = std::make_shared<PoolSet>(
        config, resolve_auto(kernel).strategy, kernel.ephemeral, kernel.version(),
        [&sys](const std::vector<Endpoint>& sources, const Endpoint& dest, Transport transport) {
            return transport == Transport::udp ? count_udp_ports(sys, sources, dest.v6)
                                               : count_connections(sys, sources, dest);
        },
        [] { return std::chrono::steady_clock::now(); });
    for (auto& p : pools->pools()) {
        p.kernel_metrics = &metrics.source(p.name, kKernelSource);
        for (const auto& label : p.labels) p.source_metrics.push_back(&metrics.source(p.name, label));
    }
    return pools;
}

// connect() never picks a port something in this namespace listens on
// (the kernel's search skips every bound port, whatever its address): each
// of egressd's own listening ports inside a range the pools search is one
// port fewer there, for every destination.
void warn_own_ports_in_ranges(const std::vector<OwnListener>& own, const PoolSet& pools, const KernelInfo& kernel) {
    for (const auto& l : own) {
        if (kernel.ephemeral.contains(l.at.port))
            spdlog::warn("egressd's {} listens on port {}, inside net.ipv4.ip_local_port_range ({}): connect() never "
                         "picks that port; move the listener out of the range",
                         l.what, l.at.port, to_string(kernel.ephemeral));
        for (const auto& p : pools.pools())
            if (!(p.policy.range == kernel.ephemeral) && p.policy.range.contains(l.at.port))
                spdlog::warn("egressd's {} listens on port {}, inside pool {}'s port range ({}): connect() never "
                             "picks that port; move the listener out of the range",
                             l.what, l.at.port, p.name, to_string(p.policy.range));
    }
}

// How many event loops: the option, else the config, else one per CPU this
// process may run on (its affinity mask, as taskset or CPUAffinity= set it).
std::size_t thread_count(const Options& opt, const Config& config) {
    const auto wanted = opt.threads.value_or(config.threads);
    if (wanted) return wanted;
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    if (::sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_COUNT(&cpus) > 0)
        return static_cast<std::size_t>(CPU_COUNT(&cpus));
    return std::max(1U, std::thread::hardware_concurrency());
}

// One snapshot of the config in force, for start-up and for each reload:
// the pools built from it on this kernel, and the facts the status shows.
Snapshot make_snapshot(ConfigPtr config, const KernelInfo& kernel, Metrics& metrics, Syscalls& sys,
                       std::uint64_t generation, std::size_t threads, std::chrono::steady_clock::time_point started) {
    auto info = std::make_shared<DaemonInfo>();
    info->kernel = kernel;
    info->auto_choice = resolve_auto(kernel);
    info->generation = generation;
    info->threads = threads;
    info->started = started;
    auto pools = make_pools(*config, kernel, metrics, sys);
    return Snapshot{std::move(config), std::move(pools), std::move(info)};
}

// SIGHUP: re-reads the config file and the kernel's port range. A config
// with errors is refused whole and the one in force stays.
void reload(Broker& broker, Snapshot& current, const Options& opt, const std::string& socket_path,
            const std::vector<OwnListener>& own) {
    ConfigPtr next = default_config();
    if (opt.config_file) {
        auto load = load_file(*opt.config_file);
        if (!load.config) {
            for (const auto& e : load.errors) spdlog::error("reload refused: {}", e);
            return;
        }
        next = load.config;
    }
    for (const auto& w : unowned_sources(*next)) spdlog::warn("{}", w);
    const auto& before = *current.config;
    const auto wanted = next->socket_path.empty() ? default_socket_path() : next->socket_path;
    if (!opt.socket_path && wanted != socket_path)
        spdlog::warn("socket.path changed to {}; egressd keeps {} until it restarts", wanted, socket_path);
    if (next->socket_mode != before.socket_mode || next->socket_owner != before.socket_owner ||
        next->socket_group != before.socket_group)
        spdlog::warn("socket.mode, socket.owner or socket.group changed; they apply when egressd restarts");
    if (!opt.threads && next->threads != before.threads)
        spdlog::warn("threads changed to {}; egressd keeps its {} event loop(s) until it restarts", next->threads,
                     broker.threads());
    if (next->dns != before.dns) {
        if (const auto why = check_resolver_config(next->dns); !why.empty())
            return spdlog::error("reload refused: dns: {}", why);
    }
    if (!opt.log_level) spdlog::set_level(spdlog::level::from_str(next->log_level));
    const auto kernel = probe_kernel(broker.shared().sys);
    current = make_snapshot(next, kernel, broker.shared().metrics, broker.shared().sys, current.info->generation + 1,
                            broker.threads(), current.info->started);
    warn_own_ports_in_ranges(own, *current.pools, kernel);
    broker.publish(current);
    spdlog::info("reloaded configuration: {} pool(s), {} route(s), {} client rule(s), port range {}",
                 next->pools.size(), next->routes.size(), next->clients.rules().size(), to_string(kernel.ephemeral));
}

int run(const Options& opt) {
    ConfigPtr config = default_config();
    if (opt.config_file) {
        auto load = load_file(*opt.config_file);
        for (const auto& e : load.errors) std::cerr << "egressd: " << e << "\n";
        if (!load.config) return 1;
        config = load.config;
    }
    // Under systemd stderr is the journal's stream: log there with
    // priorities; elsewhere to stderr (colour only on a terminal).
    auto logger = stderr_is_journal()
                      ? spdlog::create<spdlog::sinks::systemd_sink_mt>("egressd", "egressd")
                      : spdlog::stderr_color_mt("egressd");
    spdlog::set_default_logger(logger);
    spdlog::set_level(spdlog::level::from_str(opt.log_level.value_or(config->log_level)));

    auto path = opt.socket_path.value_or(config->socket_path.empty() ? default_socket_path() : config->socket_path);
    // Clients may connect as soon as the socket listens, before the reload
    // handler below is in place: a SIGHUP then must not kill the daemon, and
    // there is nothing to reload yet (the config was just read).
    std::signal(SIGHUP, SIG_IGN);
    RealSyscalls sys;  // every socket call egressd makes, from here on
    UniqueFd listen_fd;
    bool passed = false;
    try {
        // A socket systemd holds (egressd.socket) outlives egressd: clients
        // wait in its backlog across a restart instead of being refused.
        if (auto handed = passed_listen_socket(sys)) {
            listen_fd = std::move(handed->fd);
            passed = true;
            if (opt.socket_path || !config->socket_path.empty())
                spdlog::warn("serving the socket systemd passed ({}); --socket and socket.path are ignored",
                             handed->path.empty() ? "unnamed" : handed->path);
            path = handed->path;
        } else {
            listen_fd = open_listen_socket(sys, path, config->socket_mode, config->socket_owner, config->socket_group);
        }
    } catch (const std::exception& e) {
        spdlog::critical("cannot start: {}", e.what());
        return 1;
    }

    const auto kernel = probe_kernel(sys);
    const auto choice = resolve_auto(kernel);
    for (const auto& w : unowned_sources(*config)) spdlog::warn("{}", w);
    try {
        init_resolver_library();
        if (const auto why = check_resolver_config(config->dns); !why.empty()) throw std::runtime_error(why);
    } catch (const std::exception& e) {
        spdlog::critical("cannot start: dns: {}", e.what());
        return 1;
    }

    // Metrics: one registry, scraped by the exposer's own threads.
    auto registry = std::make_shared<prometheus::Registry>();
    auto process = std::make_shared<ProcessCollector>();
    const auto threads = thread_count(opt, *config);
    Metrics metrics(*registry, BuildInfo{EGRESSD_VERSION, kernel.release, to_string(choice.strategy)}, threads);
    std::unique_ptr<prometheus::Exposer> exposer;
    const auto metrics_listen = opt.metrics_listen.value_or(config->metrics_listen);
    if (!metrics_listen.empty()) {
        try {
            exposer = make_exposer(metrics_listen);
        } catch (const std::exception& e) {
            spdlog::critical("cannot start: cannot serve metrics on {}: {}", metrics_listen, e.what());
            return 1;
        }
        exposer->RegisterCollectable(registry);
        exposer->RegisterCollectable(metrics.histograms());
        exposer->RegisterCollectable(process);
    }

    Shared shared{sys, metrics};
    // Adopted sockets must live in this namespace (unless a rule says
    // otherwise): its cookie, read once from a socket of egressd's own.
    if (auto probe = sys.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); probe.ok()) {
        UniqueFd own_sock(static_cast<int>(probe.value));
        shared.netns_cookie = netns_cookie(sys, own_sock.get());
    }
    if (!shared.netns_cookie)
        spdlog::warn("cannot read this network namespace's cookie (SO_NETNS_COOKIE, Linux 5.14): adopt mode "
                     "refuses sockets unless a client rule sets adopt_other_netns");
    Snapshot current = make_snapshot(config, kernel, metrics, sys, 1, threads, std::chrono::steady_clock::now());
    Broker broker(shared, current, threads);
    auto& io = broker.home().io;
    Listener listener(broker, std::move(listen_fd), path, !passed);
    bool listener_draining = false;
    // The policy denies this host's addresses (kept current from netlink) and
    // egressd's own listeners.
    std::vector<OwnListener> own;
    if (exposer)
        own.push_back(own_listener_at(metrics_listen, static_cast<std::uint16_t>(exposer->GetListeningPorts().at(0)),
                                      "metrics endpoint"));
    warn_own_ports_in_ranges(own, *current.pools, kernel);
    auto host_watch = std::make_shared<AddressWatch>(io, sys, [&broker, own](std::vector<Endpoint> addresses) {
        broker.publish(std::make_shared<const HostFacts>(make_host_facts(std::move(addresses), own)));
    });
    try {
        host_watch->start();
    } catch (const std::exception& e) {
        spdlog::critical("cannot start: {}", e.what());
        return 1;
    }

    ServiceNotifier notifier(
        io,
        [&] {
            return fmt::format("{}client connections: {}, connects in flight: {}",
                               listener_draining ? "draining: " : "", shared.stats.clients_connected.get(),
                               shared.stats.inflight.get());
        },
        [&broker] { return broker.all_loops_turning(); });
    // SIGTERM or SIGINT: drain (answer what is in flight, refuse the rest
    // with ESHUTDOWN) for up to shutdown.drain_timeout_ms, then exit 0. A
    // second signal ends the drain at once, still answering every request.
    asio::signal_set signals(io, SIGINT, SIGTERM);
    asio::steady_timer drain_deadline(io);
    const auto finish = [&](const char* how) {
        spdlog::info("{}", how);
        signals.cancel();
        drain_deadline.cancel();
        listener.stop();
        broker.stop();
    };
    const auto abort_drain = [&](const std::string& why) {
        const auto left = shared.stats.inflight.get();
        broker.abort_inflight(why);
        finish(fmt::format("drain cut short: {} connect(s) in flight answered with ESHUTDOWN", left).c_str());
    };
    std::function<void(const error_code&, int)> on_second = [&](const error_code& ec, int sig) {
        if (ec) return;
        spdlog::warn("received signal {} while draining; stopping now", sig);
        abort_drain(fmt::format("egressd is shutting down: a second signal ({}) stopped it before this connect "
                                "finished", sig));
    };
    signals.async_wait([&](const error_code& ec, int sig) {
        if (ec) return;
        const auto drain_ms = current.config->drain_timeout_ms;
        const auto inflight = shared.stats.inflight.get();
        const auto clients = shared.stats.clients_connected.get();
        listener_draining = true;
        notifier.stopping();
        signals.async_wait(on_second);
        drain_deadline.expires_after(std::chrono::milliseconds(drain_ms));
        drain_deadline.async_wait([&, drain_ms](const error_code& e) {
            if (e) return;
            spdlog::warn("drain timed out after {} ms with {} connect(s) in flight", drain_ms,
                         shared.stats.inflight.get());
            abort_drain(fmt::format("egressd is shutting down: this connect did not finish within "
                                    "shutdown.drain_timeout_ms ({} ms)",
                                    drain_ms));
        });
        broker.drain("egressd is shutting down and takes no new requests; connect again to reach the next egressd",
                     [&] { finish("drained: every request in flight was answered"); });
        listener.drain();
        // Logged once the socket path is gone, so that whoever reads it may bind the path.
        spdlog::info("received signal {}; draining: {} connect(s) in flight on {} client connection(s), waiting up to "
                     "{} ms (shutdown.drain_timeout_ms); new requests get ESHUTDOWN",
                     sig, inflight, clients, drain_ms);
    });
    asio::signal_set hangup(io, SIGHUP);
    std::function<void(const error_code&, int)> on_hangup = [&](const error_code& ec, int) {
        if (ec) return;
        notifier.reloading();
        reload(broker, current, opt, path, own);
        notifier.ready();
        hangup.async_wait(on_hangup);
    };
    hangup.async_wait(on_hangup);

    listener.start();
    spdlog::info("egressd {} listening on {}{} (kernel {}, {} event loop(s), connect timeout {} ms default / {} ms "
                 "max, limits: {} in flight, {} per client, {} clients)",
                 EGRESSD_VERSION, path, passed ? " (passed by systemd)" : "", kernel.release, threads,
                 config->default_timeout_ms, config->max_timeout_ms, config->limits.max_inflight,
                 config->limits.max_inflight_per_client, config->limits.max_clients);
    spdlog::info("port strategy auto = {}: {}", to_string(choice.strategy), choice.reason);
    for (const auto& p : current.pools->pools())
        spdlog::info("pool {}: {} source(s) [{}], selection {}, port strategy {}, range {}{}", p.name,
                     p.sources.size(), fmt::join(p.labels, ", "), to_string(p.selection), to_string(p.policy.strategy),
                     to_string(p.policy.range),
                     p.policy.strategy == PortStrategy::window ? ", window " + std::to_string(p.policy.window_size) : "");
    if (exposer)
        spdlog::info("metrics on http://{}:{}/metrics", metrics_listen.substr(0, metrics_listen.rfind(':')),
                     exposer->GetListeningPorts().at(0));
    else
        spdlog::info("metrics endpoint disabled");
    spdlog::info("{} client rule(s) and the default rule '{}'; loopback, link-local, metadata, reserved, private "
                 "and this host's own addresses are denied unless a rule allows them (SECURITY.md)",
                 config->clients.rules().size(), config->clients.default_rule().name);
    spdlog::info("try it: egress-connect --socket {} --status", path);
    if (notifier.watchdog().count())
        spdlog::info("watchdog: a keep-alive every {} ms once every event loop has turned (WatchdogSec={} ms)",
                     notifier.period().count() / 1000, notifier.watchdog().count() / 1000);
    notifier.ready();
    broker.run();
    spdlog::info("stopped");
    // civetweb's orderly stop inside ~Exposer takes about 1.7 s (its threads
    // wake on timeouts). Every client is closed and the socket removed by
    // now, so the process ends without waiting for it.
    spdlog::shutdown();
    std::fflush(nullptr);
#if defined(__SANITIZE_ADDRESS__)
    // _Exit skips the leak check LeakSanitizer makes at exit: make it here
    // (a leak ends the process with its report and a non-zero status).
    __lsan_do_leak_check();
#endif
    std::_Exit(0);
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    auto opt = parse_options(std::vector<std::string>(argv + 1, argv + argc));
    if (!opt) {
        std::cerr << "egressd: " << opt.error().message << "\n" << kUsage;
        return 2;
    }
    if (opt->help) {
        std::cout << kUsage;
        return 0;
    }
    if (opt->version) {
        std::cout << "egressd " << EGRESSD_VERSION << "\n";
        return 0;
    }
    if (opt->check_config_file) {
        const auto load = load_file(*opt->check_config_file);
        for (const auto& e : load.errors) std::cerr << "egressd: " << e << "\n";
        if (!load.config) return 1;
        for (const auto& w : unowned_sources(*load.config)) std::cerr << "egressd: warning: " << w << "\n";
        std::cout << *opt->check_config_file << ": OK\n";
        return 0;
    }
    return run(*opt);
}
