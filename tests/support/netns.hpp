// A private network namespace for tests and benchmarks: traffic never leaves
// it. Call while the process has a single thread: unshare() moves only the
// calling thread.
#pragma once

#include <string>

namespace egress::test {

struct NetnsSetup {
    int extra_sources = 4;            // 127.0.0.2.. and ::2.. on lo
    std::string port_range = "40000 59999";  // net.ipv4.ip_local_port_range
    int somaxconn = 100000;           // accept queues that can hold a storm
    bool black_hole = true;           // veth + permanent neighbour for kBlackHole
};

// Frames to this address leave through a veth whose peer owns no address:
// SYNs vanish and connects hang. TEST-NET-3 (RFC 5737): in no range of the
// built-in deny list, so the broker tries it. bh0 itself holds 203.0.113.1,
// an address of this host, which the policy denies.
inline constexpr const char* kBlackHole = "203.0.113.2";

// Returns "" on success, else what failed.
std::string enter_private_netns(const NetnsSetup& setup = {});

}  // namespace egress::test
