#include "settings.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace egress::preload {
namespace {

// Loopback and the unspecified addresses (which the kernel connects to the
// host itself) never go through egressd: its policy would deny them anyway.
constexpr const char* kBuiltinBypass[] = {"127.0.0.0/8", "0.0.0.0/32", "::1/128", "::/128"};

bool is_mapped_v4(const Addr& a) {
    if (!a.v6) return false;
    for (int i = 0; i < 10; ++i)
        if (a.bytes[i]) return false;
    return a.bytes[10] == 0xff && a.bytes[11] == 0xff;
}

void append(char* buf, std::size_t cap, const char* s, std::size_t n = static_cast<std::size_t>(-1)) {
    std::size_t at = std::strlen(buf);
    for (std::size_t i = 0; i < n && s[i] && at + 1 < cap; ++i) buf[at++] = s[i];
    buf[at] = '\0';
}

bool is_separator(char c) { return c == ',' || c == ' ' || c == '\t' || c == '\n'; }

}  // namespace

bool parse_cidr(const char* text, std::size_t len, Cidr& out) {
    char addr[64];
    std::size_t slash = len;
    for (std::size_t i = 0; i < len; ++i)
        if (text[i] == '/') {
            slash = i;
            break;
        }
    if (slash == 0 || slash >= sizeof addr) return false;
    std::memcpy(addr, text, slash);
    addr[slash] = '\0';
    out = Cidr{};
    int max = 32;
    if (::inet_pton(AF_INET, addr, out.base.bytes) == 1) {
        out.base.v6 = false;
    } else if (::inet_pton(AF_INET6, addr, out.base.bytes) == 1) {
        out.base.v6 = true;
        max = 128;
    } else {
        return false;
    }
    out.prefix = max;
    if (slash == len) return true;
    if (slash + 1 == len || len - slash - 1 > 3) return false;
    int p = 0;
    for (std::size_t i = slash + 1; i < len; ++i) {
        if (text[i] < '0' || text[i] > '9') return false;
        p = p * 10 + (text[i] - '0');
    }
    if (p > max) return false;
    out.prefix = p;
    return true;
}

bool cidr_contains(const Cidr& c, const Addr& a) {
    Addr x = a;
    if (is_mapped_v4(a)) {
        x.v6 = false;
        std::memcpy(x.bytes, a.bytes + 12, 4);
    }
    if (x.v6 != c.base.v6) return false;
    const int full = c.prefix / 8, rest = c.prefix % 8;
    if (std::memcmp(x.bytes, c.base.bytes, static_cast<std::size_t>(full)) != 0) return false;
    if (rest == 0) return true;
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (x.bytes[full] & mask) == (c.base.bytes[full] & mask);
}

void parse_settings(const Environment& env, Settings& out, WarnFn warn, void* ctx) {
    out = Settings{};
    char line[256];
    const auto say = [&](const char* a, const char* b, std::size_t blen, const char* c) {
        line[0] = '\0';
        append(line, sizeof line, a);
        append(line, sizeof line, b, blen);
        append(line, sizeof line, c);
        if (warn) warn(ctx, line);
    };

    const char* path = env.socket && *env.socket ? env.socket : kDefaultSocket;
    if (std::strlen(path) >= Settings::kMaxPath) {
        say("EGRESS_SOCKET is longer than a Unix socket path may be (107 bytes); using ", kDefaultSocket,
            std::strlen(kDefaultSocket), " instead");
        path = kDefaultSocket;
    }
    append(out.socket_path, sizeof out.socket_path, path);

    if (env.pool && *env.pool) {
        const std::size_t n = std::strlen(env.pool);
        if (n > 64) {
            out.pool_too_long = true;
            say("EGRESS_POOL is longer than 64 bytes (", env.pool, 40, "...): brokered connects fail with EINVAL");
        } else {
            append(out.pool, sizeof out.pool, env.pool);
            out.pool_len = n;
        }
    }

    for (const char* b : kBuiltinBypass) parse_cidr(b, std::strlen(b), out.bypass[out.bypass_count++]);
    if (const char* p = env.bypass) {
        while (*p) {
            while (is_separator(*p)) ++p;
            const char* start = p;
            while (*p && !is_separator(*p)) ++p;
            const auto len = static_cast<std::size_t>(p - start);
            if (len == 0) break;
            Cidr c;
            if (out.bypass_count == Settings::kMaxBypass) {
                say("EGRESS_BYPASS has more than 60 entries; ignoring '", start, len, "' and the rest");
                break;
            }
            if (parse_cidr(start, len, c)) out.bypass[out.bypass_count++] = c;
            else say("EGRESS_BYPASS entry '", start, len, "' is not an address or CIDR block; ignoring it");
        }
    }

    if (env.fallback && *env.fallback) {
        if (std::strcmp(env.fallback, "direct") == 0) out.fallback = Fallback::direct;
        else if (std::strcmp(env.fallback, "closed") != 0)
            say("EGRESS_FALLBACK '", env.fallback, 40, "' is neither 'closed' nor 'direct'; failing closed");
    }
    out.debug = env.debug && *env.debug && std::strcmp(env.debug, "0") != 0;
}

bool bypassed(const Settings& s, const Addr& dest) {
    for (std::size_t i = 0; i < s.bypass_count; ++i)
        if (cidr_contains(s.bypass[i], dest)) return true;
    return false;
}

}  // namespace egress::preload
