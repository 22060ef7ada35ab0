// egressd's configuration: parsed and validated into an immutable snapshot.
// Pure: the loader reads text, never files or sockets.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "endpoint.hpp"
#include "pool/port_window.hpp"
#include "pool/routes.hpp"
#include "pool/selection.hpp"
#include "policy/policy.hpp"

namespace egress {

// A named set of source addresses and how to pick source address and port.
struct PoolConfig {
    std::string name;
    std::vector<Endpoint> sources;  // empty: the kernel picks the address
    Selection selection = Selection::round_robin;
    PortStrategy port_strategy = PortStrategy::automatic;
    std::optional<PortRange> port_range;  // unset: net.ipv4.ip_local_port_range
    std::uint32_t window_size = 500;
    std::uint32_t max_window_retries = 8;
    std::uint32_t userspace_max_attempts = 16;
    bool client_selectable = false;  // may a request name this pool?
};

struct Limits {
    // Connects in flight across all clients; each holds one descriptor.
    std::uint32_t max_inflight = 10000;
    // Connects in flight on one client connection; more get EAGAIN at once.
    std::uint32_t max_inflight_per_client = 1024;
    // Client connections at once; each holds one descriptor.
    std::uint32_t max_clients = 2000;
    // Replies queued for a client that does not read them; past this the
    // client is dropped (its replies would otherwise pin memory and fds).
    // At least max_inflight_per_client, so that a client is dropped only if
    // it keeps sending without reading.
    std::uint32_t max_queued_replies = 2048;
};

// How egressd resolves host names (CONNECT with DEST_HOST). Unset settings
// come from /etc/resolv.conf, as c-ares reads it.
struct DnsConfig {
    std::vector<Endpoint> servers;  // port 53 unless given; empty: resolv.conf's nameservers
    std::optional<std::vector<std::string>> search;  // normalized domains; unset: resolv.conf's
    std::optional<std::uint32_t> ndots;       // unset: resolv.conf's (1)
    std::optional<std::uint32_t> timeout_ms;  // per try; unset: resolv.conf's
    std::optional<std::uint32_t> tries;       // unset: resolv.conf's attempts
    bool hosts_file = true;                   // /etc/hosts before DNS
    // Answers kept per event loop, each for its TTL and at most
    // cache_max_ttl_s; 0 entries: every request asks the DNS.
    std::uint32_t cache_entries = 4096;
    std::uint32_t cache_max_ttl_s = 300;
    // How long "no such name" and "no record of this family" are kept (a
    // name with A records only would otherwise ask for AAAA every time).
    std::uint32_t negative_ttl_s = 5;

    bool operator==(const DnsConfig&) const = default;
};

// The most event loops egressd runs (threads, --threads).
inline constexpr std::uint32_t kMaxThreads = 1024;

struct Config {
    std::string socket_path;   // empty: $RUNTIME_DIRECTORY/egressd.sock or /run/egressd/egressd.sock
    std::uint32_t socket_mode = 0660;
    std::optional<std::uint32_t> socket_owner;  // uid; unset: egressd's own
    std::optional<std::uint32_t> socket_group;  // gid; unset: egressd's own
    std::string log_level = "info";
    std::string metrics_listen = "127.0.0.1:9464";  // Prometheus endpoint; empty: none
    std::uint32_t default_timeout_ms = 3000;  // when a request gives none
    std::uint32_t max_timeout_ms = 30000;     // a request asking for more gets this
    // Happy Eyeballs (RFC 8305) for a host name: how long an A answer waits
    // for the AAAA answer, and the time between the starts of two attempts.
    std::uint32_t resolution_delay_ms = 50;
    std::uint32_t attempt_delay_ms = 250;
    DnsConfig dns;
    // SIGTERM/SIGINT: how long egressd waits for connects in flight before it
    // answers them with ESHUTDOWN and exits (0: answer them at once).
    std::uint32_t drain_timeout_ms = 5000;
    // Event loops, one thread each; 0: one per CPU egressd may run on
    // (sched_getaffinity). Read at start-up only.
    std::uint32_t threads = 0;
    Limits limits;
    // Built-in when none are configured: one pool "default" with no sources.
    std::vector<PoolConfig> pools;
    std::vector<Route> routes;
    std::string default_pool = "default";
    // How long least-loaded selection trusts one reading of the socket table.
    std::uint32_t least_loaded_cache_ms = 1000;
    // Who may connect where. Built-in: one rule, "default", that allows every
    // destination outside the built-in deny list, through any pool.
    ClientPolicy clients;

    const PoolConfig* find_pool(std::string_view name) const;
};

using ConfigPtr = std::shared_ptr<const Config>;

struct ConfigLoad {
    ConfigPtr config;                 // set when errors is empty
    std::vector<std::string> errors;  // each names the JSON path and the value
};

// Parses a JSON document. Unknown keys are errors (they are usually typos).
// User and group names are looked up through `names`.
ConfigLoad parse_config(std::string_view json_text, const NameResolver& names = {});

// The built-in defaults.
ConfigPtr default_config();

bool valid_log_level(std::string_view level);
// "" (none), "ADDRESS:PORT" or "[IPV6]:PORT"; port 0 picks a free port.
bool valid_listen_address(std::string_view text);

}  // namespace egress
