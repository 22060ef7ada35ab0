// What the running kernel offers, probed once at start (and on reload).
#pragma once

#include <string>
#include <vector>

#include "endpoint.hpp"
#include "pool/port_window.hpp"
#include "pool/selection.hpp"
#include "sys/syscalls.hpp"

namespace egress {

struct KernelInfo {
    std::string release;               // uname -r
    int major = 0, minor = 0;
    bool local_port_range = false;     // setsockopt(IP_LOCAL_PORT_RANGE) works (6.3+, 6.1.31+)
    PortRange ephemeral{32768, 60999};  // net.ipv4.ip_local_port_range of this namespace

    KernelVersion version() const { return {major, minor}; }
};

KernelInfo probe_kernel(Syscalls& sys);

// What `auto` means on this kernel, and why (for the start-up log).
struct AutoChoice {
    PortStrategy strategy;
    std::string reason;
};
AutoChoice resolve_auto(const KernelInfo& k);

// Every address configured on a local interface (getifaddrs).
std::vector<Endpoint> local_addresses();

}  // namespace egress
