// egressd: wires config, counters, the OS layer, the event loop and the
// listener together, then runs the loop until SIGINT or SIGTERM.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/utsname.h>
#include <systemd/sd-daemon.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/options.hpp"
#include "config/config.hpp"
#include "io/asio.hpp"
#include "listener/listener.hpp"
#include "stats/stats.hpp"
#include "sys/syscalls.hpp"

namespace {

using namespace egress;

// Reads and validates a config file; the errors name file and JSON path.
ConfigLoad load_file(const std::string& file) {
    std::ifstream in(file);
    if (!in) return ConfigLoad{nullptr, {file + ": cannot open: " + std::strerror(errno)}};
    std::stringstream text;
    text << in.rdbuf();
    auto load = parse_config(text.str());
    for (auto& e : load.errors) e = file + ": " + e;
    return load;
}

std::string kernel_release() {
    utsname u{};
    return uname(&u) == 0 ? u.release : "unknown";
}

int run(const Options& opt) {
    ConfigPtr config = default_config();
    if (opt.config_file) {
        auto load = load_file(*opt.config_file);
        for (const auto& e : load.errors) std::cerr << "egressd: " << e << "\n";
        if (!load.config) return 1;
        config = load.config;
    }
    auto logger = spdlog::stderr_color_mt("egressd");  // colour only on a terminal
    spdlog::set_default_logger(logger);
    spdlog::set_level(spdlog::level::from_str(opt.log_level.value_or(config->log_level)));

    const auto path = opt.socket_path.value_or(config->socket_path.empty() ? default_socket_path()
                                                                           : config->socket_path);
    UniqueFd listen_fd;
    try {
        listen_fd = open_listen_socket(path, config->socket_mode);
    } catch (const std::exception& e) {
        spdlog::critical("cannot start: {}", e.what());
        return 1;
    }

    asio::io_context io(1);
    RealSyscalls sys;
    Stats stats;
    BrokerContext ctx{io, sys, config, stats};
    Listener listener(ctx, std::move(listen_fd), path);

    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const error_code& ec, int sig) {
        if (ec) return;
        spdlog::info("received signal {}; shutting down", sig);
        listener.stop();
        io.stop();
    });

    listener.start();
    spdlog::info("egressd {} listening on {} (kernel {}, connect timeout {} ms default / {} ms max, "
                 "limits: {} in flight, {} per client, {} clients)",
                 EGRESSD_VERSION, path, kernel_release(), config->default_timeout_ms, config->max_timeout_ms,
                 config->limits.max_inflight, config->limits.max_inflight_per_client, config->limits.max_clients);
    spdlog::info("try it: egress-connect --socket {} --json 127.0.0.1:22", path);
    sd_notify(0, "READY=1");
    io.run();
    spdlog::info("stopped");
    return 0;
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
        std::cout << *opt->check_config_file << ": OK\n";
        return 0;
    }
    return run(*opt);
}
