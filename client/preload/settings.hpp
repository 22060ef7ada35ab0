// What the preload shim is told through its environment, parsed once at
// load time into fixed storage. Pure: values in, settings and warnings out;
// tested in tests/unit/preload_settings_test.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "wire.hpp"

namespace egress::preload {

// An address block that bypasses egressd.
struct Cidr {
    Addr base;  // port unused
    int prefix = 0;
};

// Parses "ADDR" or "ADDR/LEN" (IPv4 or IPv6). False when it is neither.
bool parse_cidr(const char* text, std::size_t len, Cidr& out);
// Does `a` (an IPv4 address, or an IPv6 one; an IPv4-mapped IPv6 address is
// matched as the IPv4 address it is) lie inside `c`?
bool cidr_contains(const Cidr& c, const Addr& a);

enum class Fallback { closed, direct };

struct Settings {
    static constexpr std::size_t kMaxBypass = 64;
    static constexpr std::size_t kMaxPath = 108;  // sun_path
    char socket_path[kMaxPath] = {};
    char pool[65] = {};
    std::size_t pool_len = 0;
    bool pool_too_long = false;  // every brokered connect then fails with EINVAL
    Cidr bypass[kMaxBypass];     // the built-in entries first
    std::size_t bypass_count = 0;
    Fallback fallback = Fallback::closed;
    bool debug = false;
};

// The environment the shim reads; nullptr means unset.
struct Environment {
    const char* socket = nullptr;    // EGRESS_SOCKET
    const char* pool = nullptr;      // EGRESS_POOL
    const char* bypass = nullptr;    // EGRESS_BYPASS: CIDRs separated by commas or spaces
    const char* fallback = nullptr;  // EGRESS_FALLBACK: "closed" (default) or "direct"
    const char* debug = nullptr;     // EGRESS_DEBUG: "1" (or any value but "0" and "")
};

inline constexpr const char* kDefaultSocket = "/run/egressd/egressd.sock";

// Receives one warning per problem found (a NUL-terminated line without a
// newline); problems never stop the parse: an unreadable bypass entry is
// left out (its destinations then go through egressd's policy, the safe
// side), an unknown fallback value means "closed".
using WarnFn = void (*)(void* ctx, const char* line);
void parse_settings(const Environment& env, Settings& out, WarnFn warn, void* ctx);

// Is the destination one that bypasses egressd (loopback, unspecified, or
// an EGRESS_BYPASS block)?
bool bypassed(const Settings& s, const Addr& dest);

}  // namespace egress::preload
