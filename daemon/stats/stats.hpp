// Plain counters of what egressd did, owned by main and passed down by
// reference. The event loop is the only writer.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace egress {

// What one source address of one pool did.
struct SourceStats {
    std::uint64_t ok = 0;
    std::map<std::string, std::uint64_t> errors;  // by errno name
    std::uint64_t parity_switches = 0;
    std::uint64_t window_retries = 0;
};

struct Stats {
    std::uint64_t requests = 0;          // datagrams that framed as requests
    std::uint64_t handoffs = 0;          // descriptors delivered with SCM_RIGHTS
    std::uint64_t clients_accepted = 0;
    std::uint64_t clients_refused = 0;   // over limits.max_clients
    std::uint64_t clients_dropped = 0;   // closed by egressd for misbehaviour
    std::uint64_t accept_errors = 0;
    std::map<std::string, std::uint64_t> connects;         // by result: "ok" or errno name
    std::map<std::string, std::uint64_t> protocol_errors;  // by kind
    // pool -> source address ("kernel" where the kernel chose it) -> figures
    std::map<std::string, std::map<std::string, SourceStats>> sources;
    std::uint32_t clients_connected = 0;
    std::uint32_t inflight = 0;          // connects in flight, all clients
};

}  // namespace egress
