// SOCKS5 for the vs-socks scenario: the client side of RFC 1928 (no
// authentication, CONNECT to an IP address), many set-ups in flight, and the
// SOCKS server processes the bench starts and stops.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common.hpp"
#include "endpoint.hpp"
#include "unique_fd.hpp"
#include "worker.hpp"

namespace egress::bench {

// The wire format (pure: no sockets).
namespace socks5 {
// Version 5, one method offered: "no authentication".
std::vector<std::uint8_t> greeting();
// "" when the 2-byte method reply accepts "no authentication", else why not.
std::string check_method_reply(const std::uint8_t* r);
std::vector<std::uint8_t> connect_request(const Endpoint& dest);
// Length of the whole CONNECT reply once `have` >= 5 of its bytes are known;
// 0 before that.
std::size_t reply_length(const std::uint8_t* r, std::size_t have);
// "" when the complete reply grants the connection, else why not.
std::string check_reply(const std::uint8_t* r, std::size_t len);
}  // namespace socks5

struct SocksSetupOptions {
    Endpoint proxy, dest;
    std::uint32_t count = 1000;
    std::uint32_t inflight = 64;
    std::uint32_t idle_timeout_ms = 10000;  // no progress at all for this long: the rest fail
};

// `count` set-ups through the proxy, `inflight` at a time. A set-up runs from
// socket() to a CONNECT reply granting the connection; its latency goes to
// lat_even_ms. Each ready socket (non-blocking) goes to `keep`, or is closed
// at once when keep is empty.
WorkerResult run_socks_setups(const SocksSetupOptions& o, const std::function<void(UniqueFd)>& keep = {});

// The program `name` from --KEY PATH, else from $PATH, /usr/sbin or /usr/bin;
// throws naming the missing program and its Debian package otherwise.
std::string find_program(const Args& a, const std::string& key, const std::string& name, const std::string& package);

// A server the bench runs, in its own process group under a guard process
// (stdin from /dev/null, stdout and stderr to `log`). The constructor
// returns once it accepts TCP connections on `listen` (bounded wait; throws
// with the log's tail otherwise). The whole group ends (SIGTERM, SIGKILL
// after 5 s) and is reaped when this object is destroyed or the process
// that made it dies, however it dies.
class ServerProcess {
public:
    ServerProcess(const std::vector<std::string>& argv, const std::string& log, const Endpoint& listen);
    ~ServerProcess();
    ServerProcess(const ServerProcess&) = delete;
    ServerProcess& operator=(const ServerProcess&) = delete;
    pid_t pid() const { return pid_; }
    // CPU seconds used so far by the group's live processes and the children
    // they have reaped.
    double cpu_seconds() const;

private:
    void stop();
    pid_t guard_ = -1, pid_ = -1;  // pid_ also names the group
    UniqueFd life_;                 // its EOF tells the guard to end the group
    UniqueFd report_;               // from the guard: the server's pid, then its end
    std::string name_, log_;
};

}  // namespace egress::bench
