// egress-connect: get a connected socket from egressd, then either print its
// metadata (--json) or relay stdin/stdout over it like nc.
//
// Exit status: 0 success, 1 the connect or egressd failed, 2 usage error.
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <csignal>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "egress_client.hpp"

namespace {

using namespace egress;

const char* const kUsage =
    "usage: egress-connect [--socket PATH] [--timeout MS] [--pool NAME] [--nodelay] [--json] HOST:PORT\n"
    "  HOST is an IPv4 or IPv6 address; write IPv6 as [ADDR]:PORT.\n"
    "  Without --json, relays stdin to the connection and the connection to stdout.\n"
    "  EGRESS_SOCKET overrides the default socket path (/run/egressd/egressd.sock).\n";

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

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    std::string socket_path = default_client_socket_path();
    ConnectOptions opt;
    bool json_out = false;
    std::string target;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto need = [&](const char* what) -> const char* {
            if (i + 1 >= argc) return nullptr;
            (void)what;
            return argv[++i];
        };
        if (a == "--socket") {
            const char* v = need("--socket");
            if (!v || !*v) return usage("--socket needs a path");
            socket_path = v;
        } else if (a == "--timeout") {
            const char* v = need("--timeout");
            if (!v) return usage("--timeout needs a value in milliseconds");
            const std::string s = v;
            unsigned ms = 0;
            const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), ms);
            if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || ms == 0)
                return usage("--timeout must be a positive number of milliseconds, got '" + s + "'");
            opt.timeout_ms = ms;
        } else if (a == "--pool") {
            const char* v = need("--pool");
            if (!v || !*v) return usage("--pool needs a name");
            opt.pool = v;
        } else if (a == "--nodelay") {
            opt.nodelay = true;
        } else if (a == "--json") {
            json_out = true;
        } else if (a == "--help" || a == "-h") {
            std::cout << kUsage;
            return 0;
        } else if (!a.empty() && a[0] == '-' && a != "-") {
            return usage("unknown option '" + a + "'");
        } else if (target.empty()) {
            target = a;
        } else {
            return usage("more than one destination given");
        }
    }
    if (target.empty()) return usage("no destination given");
    auto dest = parse_endpoint(target);
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
    if (json_out) {
        const auto& m = r->meta;
        nlohmann::json j{{"local", m.local ? endpoint_string(*m.local) : ""},
                         {"remote", m.remote ? endpoint_string(*m.remote) : ""},
                         {"pool", m.pool},
                         {"attempts", m.attempts},
                         {"connect_us", m.connect_us}};
        std::cout << j.dump() << "\n";
        return 0;
    }
    const int rc = relay(r->fd.get());
    std::cout.flush();
    std::_Exit(rc);  // the stdin reader may still be blocked; nothing else to flush
}
