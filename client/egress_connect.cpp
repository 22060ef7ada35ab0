// egress-connect: get a connected socket from egressd, then either print its
// metadata (--json) or relay stdin/stdout over it like nc (nc -u with --udp).
//
// Exit status: 0 success, 1 the connect or egressd failed, 2 usage error.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <charconv>
#include <cstdio>
#include <csignal>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cmdline.hpp"
#include "egress_client.hpp"

namespace {

using namespace egress;

const char* const kUsage =
    "usage: egress-connect [--socket PATH] [--timeout MS] [--pool NAME] [--nodelay] [--json] HOST:PORT\n"
    "       egress-connect --udp [--wait MS] [--socket PATH] [--timeout MS] [--pool NAME] [--json] HOST:PORT\n"
    "       egress-connect [--socket PATH] --status [--json]\n"
    "       egress-connect --version | --help\n"
    "  HOST is a host name (egressd resolves it) or an IPv4 or IPv6 address;\n"
    "  write IPv6 as [ADDR]:PORT.\n"
    "  Without --json, relays stdin to the connection and the connection to stdout.\n"
    "  --udp: a connected UDP socket; each line of stdin is one datagram, each\n"
    "  datagram received goes to stdout; after stdin ends, waits --wait MS\n"
    "  (default 1000) for more.\n"
    "  --status prints egressd's status (readable, or its JSON with --json).\n"
    "  Options take their value as --opt VALUE or --opt=VALUE.\n"
    "  EGRESS_SOCKET overrides the default socket path (/run/egressd/egressd.sock).\n";

enum Id { kSocket, kTimeout, kPool, kNodelay, kJson, kStatus, kUdp, kWait, kHelp, kVersion };

const cmdline::OptionSpec kSpecs[] = {
    {kSocket, "socket", true},
    {kTimeout, "timeout", true},
    {kPool, "pool", true},
    {kNodelay, "nodelay", false},
    {kJson, "json", false},
    {kStatus, "status", false},
    {kUdp, "udp", false},
    {kWait, "wait", true},
    {kHelp, "help", false, 'h'},
    {kVersion, "version", false},
};

int usage(const std::string& why) {
    std::cerr << "egress-connect: " << why << "\n" << kUsage;
    return 2;
}

// Copies everything from `in` to `out`; false if a write failed.
bool pump(int in, int out) {
    char buf[65536];
    for (;;) {
        const auto n = ::read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return true;
        for (ssize_t off = 0; off < n;) {
            const auto w = ::write(out, buf + off, static_cast<std::size_t>(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) return false;
            off += w;
        }
    }
}

// stdin -> socket until stdin ends (then half-close), socket -> stdout until
// the remote side ends. Returns once the remote side has ended.
int relay(int sock) {
    std::thread upstream([sock] {
        pump(STDIN_FILENO, sock);
        ::shutdown(sock, SHUT_WR);
    });
    upstream.detach();  // may sit in read(stdin) after the remote has gone
    const bool ok = pump(sock, STDOUT_FILENO);
    return ok ? 0 : 1;
}

bool send_all(int sock, const char* data, std::size_t n, int& err) {
    for (;;) {
        if (::send(sock, data, n, MSG_NOSIGNAL) >= 0) return true;
        if (errno == EINTR) continue;
        err = errno;
        return false;
    }
}

int udp_failed(int err) {
    std::cerr << "egress-connect: " << errno_name(err) << ": " << std::strerror(err)
              << (err == ECONNREFUSED ? " (the destination's port is unreachable: ICMP)" : "") << "\n";
    return 1;
}

// Like nc -u: each line of stdin (its newline kept) is one datagram; each
// datagram received is written to stdout as it came. After stdin ends, waits
// `wait_ms` from the last datagram for more. An error the socket reports
// (ECONNREFUSED for an ICMP port unreachable) ends it with status 1.
int relay_udp(int sock, int wait_ms) {
    std::string line;
    std::vector<char> buf(65536);
    bool input = true;
    auto last = std::chrono::steady_clock::now();
    for (;;) {
        pollfd p[2] = {{sock, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
        int timeout = -1;
        if (!input) {
            using std::chrono::milliseconds;
            const auto spent = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - last).count();
            if (spent >= wait_ms) return 0;
            timeout = wait_ms - static_cast<int>(spent);
        }
        const int r = ::poll(p, input ? 2 : 1, timeout);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return udp_failed(errno);
        if (p[0].revents) {
            const auto n = ::recv(sock, buf.data(), buf.size(), MSG_DONTWAIT);
            if (n < 0 && errno != EAGAIN && errno != EINTR) return udp_failed(errno);
            if (n >= 0) {
                if (::write(STDOUT_FILENO, buf.data(), static_cast<std::size_t>(n)) != n) return 1;
                last = std::chrono::steady_clock::now();
            }
        }
        if (input && p[1].revents) {
            const auto n = ::read(STDIN_FILENO, buf.data(), buf.size());
            if (n < 0 && errno == EINTR) continue;
            int err = 0;
            if (n <= 0) {
                input = false;
                last = std::chrono::steady_clock::now();
                if (!line.empty() && !send_all(sock, line.data(), line.size(), err)) return udp_failed(err);
                continue;
            }
            line.append(buf.data(), static_cast<std::size_t>(n));
            for (std::size_t nl; (nl = line.find('\n')) != std::string::npos; line.erase(0, nl + 1))
                if (!send_all(sock, line.data(), nl + 1, err)) return udp_failed(err);
        }
    }
}

std::string str(const nlohmann::json& j, const char* key) {
    return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

// The status document as an operator reads it.
void print_status(const nlohmann::json& st) {
    const auto up = st.value("uptime_s", 0.0);
    std::printf("egressd %s, up %.0f s, configuration generation %llu\n", str(st, "version").c_str(), up,
                st.value("config_generation", 0ULL));
    const auto& k = st["kernel"];
    std::printf("kernel %s: IP_LOCAL_PORT_RANGE %s, ephemeral ports %s, auto = %s\n  (%s)\n",
                str(k, "release").c_str(), k.value("ip_local_port_range", false) ? "yes" : "no",
                str(k, "ephemeral_port_range").c_str(), str(k, "auto_strategy").c_str(), str(k, "auto_reason").c_str());
    std::printf("clients %llu, requests in flight %llu\n", st.value("clients_connected", 0ULL),
                st.value("requests_in_flight", 0ULL));
    for (const auto& p : st["pools"]) {
        std::printf("\npool %s: %s, %s, ports %s%s, %llu in flight\n", str(p, "name").c_str(),
                    str(p, "selection").c_str(), str(p, "port_strategy").c_str(), str(p, "port_range").c_str(),
                    p.contains("window_size") ? (", window " + std::to_string(p["window_size"].get<int>())).c_str() : "",
                    p.value("in_flight", 0ULL));
        std::printf("  %-40s %10s %16s %15s  %s\n", "source", "ok", "parity switches", "window retries", "errors");
        // One row of TCP figures per source, and one of UDP figures where it has any.
        const auto row = [](const std::string& label, const nlohmann::json& f) {
            std::string errors;
            if (f.contains("errors"))
                for (const auto& [name, n] : f["errors"].items())
                    errors += (errors.empty() ? "" : " ") + name + "=" + std::to_string(n.get<unsigned long long>());
            std::printf("  %-40s %10llu %16llu %15llu  %s\n", label.c_str(), f.value("connects_ok", 0ULL),
                        f.value("parity_switches", 0ULL), f.value("window_retries", 0ULL),
                        errors.empty() ? "-" : errors.c_str());
        };
        for (const auto& src : p["sources"]) {
            row(str(src, "address"), src);
            if (!src.contains("udp")) continue;
            const auto& u = src["udp"];
            if (u.value("connects_ok", 0ULL) || (u.contains("errors") && !u["errors"].empty()))
                row("  udp", u);
        }
    }
}

int status(const std::string& socket_path, bool json_out) {
    auto client = Client::open(socket_path);
    if (!client) {
        std::cerr << "egress-connect: " << client.error().message << "\n";
        return 1;
    }
    auto st = client->status();
    if (!st) {
        std::cerr << "egress-connect: " << errno_name(st.error().code) << ": " << st.error().message << "\n";
        return 1;
    }
    const auto doc = nlohmann::json::parse(*st, nullptr, false);
    if (doc.is_discarded()) {
        std::cerr << "egress-connect: egressd sent a status that is not JSON\n";
        return 1;
    }
    if (json_out) std::cout << doc.dump(2) << "\n";
    else print_status(doc);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    std::string socket_path = default_client_socket_path();
    ConnectOptions opt;
    bool json_out = false;
    bool want_status = false;
    int wait_ms = 1000;
    bool wait_given = false;
    auto line = cmdline::parse(std::vector<std::string>(argv + 1, argv + argc), kSpecs);
    if (!line) return usage(line.error().message);
    for (const auto& o : line->options) {
        switch (o.id) {
        case kSocket:
            if (o.value.empty()) return usage("--socket needs a path");
            socket_path = o.value;
            break;
        case kTimeout: {
            const auto& s = o.value;
            unsigned ms = 0;
            const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), ms);
            if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || ms == 0)
                return usage("--timeout must be a positive number of milliseconds, got '" + s + "'");
            opt.timeout_ms = ms;
            break;
        }
        case kPool:
            if (o.value.empty()) return usage("--pool needs a name");
            opt.pool = o.value;
            break;
        case kNodelay: opt.nodelay = true; break;
        case kJson: json_out = true; break;
        case kStatus: want_status = true; break;
        case kUdp: opt.transport = Transport::udp; break;
        case kWait: {
            const auto& s = o.value;
            unsigned ms = 0;
            const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), ms);
            if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || ms > 3600000)
                return usage("--wait must be a number of milliseconds (0-3600000), got '" + s + "'");
            wait_ms = static_cast<int>(ms);
            wait_given = true;
            break;
        }
        case kHelp: std::cout << kUsage; return 0;
        case kVersion: std::cout << "egress-connect " << EGRESSD_VERSION << "\n"; return 0;
        }
    }
    if (line->operands.size() > 1) return usage("more than one destination given");
    const std::string target = line->operands.empty() ? "" : line->operands.front();
    if (want_status) {
        if (!target.empty()) return usage("--status takes no destination");
        return status(socket_path, json_out);
    }
    if (target.empty()) return usage("no destination given");
    const bool udp = opt.transport == Transport::udp;
    if (udp && opt.nodelay) return usage("--nodelay is a TCP option: not with --udp");
    if (wait_given && !udp) return usage("--wait is for --udp");
    auto dest = parse_destination(target);
    if (!dest) return usage(dest.error().message);

    auto client = Client::open(socket_path);
    if (!client) {
        std::cerr << "egress-connect: " << client.error().message << "\n";
        return 1;
    }
    opt.blocking = !json_out;  // the relay uses plain blocking reads and writes
    auto r = client->connect(*dest, opt);
    if (!r) {
        const auto& e = r.error();
        if (json_out)
            std::cout << nlohmann::json{{"error", errno_name(e.code)}, {"message", e.message}}.dump() << "\n";
        std::cerr << "egress-connect: " << errno_name(e.code) << ": " << e.message << "\n";
        return 1;
    }
    const auto& m = r->meta;
    if (m.timeout_ms)  // egressd applied its maximum instead of --timeout
        std::cerr << "egress-connect: warning: --timeout " << opt.timeout_ms << " ms is above egressd's maximum; it applied "
                  << m.timeout_ms << " ms (connect.max_timeout_ms)\n";
    if (json_out) {
        nlohmann::json j{{"local", m.local ? endpoint_string(*m.local) : ""},
                         {"remote", m.remote ? endpoint_string(*m.remote) : ""},
                         {"pool", m.pool},
                         {"attempts", m.attempts},
                         {"connect_us", m.connect_us},
                         {"transport", to_string(opt.transport)}};
        if (m.timeout_ms) j["timeout_ms"] = m.timeout_ms;
        if (!dest->address) {
            j["addresses"] = m.addresses;
            j["resolve_us"] = m.resolve_us;
        }
        std::cout << j.dump() << "\n";
        return 0;
    }
    const int rc = udp ? relay_udp(r->fd.get(), wait_ms) : relay(r->fd.get());
    std::cout.flush();
    std::_Exit(rc);  // the stdin reader may still be blocked; nothing else to flush
}
