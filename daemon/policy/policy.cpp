#include "policy.hpp"

#include <algorithm>

namespace egress {
namespace {

Prefix prefix(const char* text) { return *parse_prefix(text); }

bool zero_bytes(const Endpoint& e, std::size_t from, std::size_t to) {
    return std::all_of(e.addr.begin() + static_cast<long>(from), e.addr.begin() + static_cast<long>(to),
                       [](std::uint8_t b) { return b == 0; });
}

// ::ffff:0:0/96 and ::/96: the IPv4-mapped and IPv4-compatible spaces.
bool mapped_head(const Endpoint& e) { return zero_bytes(e, 0, 10) && e.addr[10] == 0xFF && e.addr[11] == 0xFF; }
bool compat_head(const Endpoint& e) { return zero_bytes(e, 0, 12); }

// :: and ::1 are IPv6's own unspecified and loopback addresses.
bool unspecified_or_loopback6(const Endpoint& e) { return zero_bytes(e, 0, 15) && e.addr[15] <= 1; }

Endpoint ipv4_tail(const Endpoint& e) {
    Endpoint v4;
    v4.port = e.port;
    std::copy(e.addr.begin() + 12, e.addr.end(), v4.addr.begin());
    return v4;
}

std::string entry_text(const ClientRule& rule, std::size_t i) {
    const auto& e = rule.destinations[i];
    return std::string(e.action == Action::allow ? "allow" : "deny") + " " + to_string(e.dest) + " ports " +
           to_string(e.ports) + " (destinations[" + std::to_string(i) + "] of rule '" + rule.name + "')";
}

}  // namespace

bool ClientMatch::matches(const Credentials& c) const {
    if (kind == Kind::uid) return c.uid == id;
    return c.gid == id || std::find(c.groups.begin(), c.groups.end(), id) != c.groups.end();
}

bool ClientRule::may_use_pool(std::string_view pool) const {
    return !pools || std::find(pools->begin(), pools->end(), pool) != pools->end();
}

const std::vector<BuiltinRange>& builtin_ranges() {
    // Addresses a guest must not reach through the broker by default: the
    // host itself, the link (cloud metadata at 169.254.169.254), groups.
    static const std::vector<BuiltinRange> ranges{
        {prefix("127.0.0.0/8"), "loopback", false},
        {prefix("::1/128"), "loopback", false},
        {prefix("0.0.0.0/8"), "unspecified (\"this network\")", false},
        {prefix("::/128"), "unspecified", false},
        {prefix("169.254.0.0/16"), "link-local, cloud metadata", false},
        {prefix("fe80::/10"), "link-local", false},
        {prefix("224.0.0.0/4"), "multicast", false},
        {prefix("ff00::/8"), "multicast", false},
        {prefix("255.255.255.255/32"), "broadcast", false},
        {prefix("10.0.0.0/8"), "private", true},
        {prefix("172.16.0.0/12"), "private", true},
        {prefix("192.168.0.0/16"), "private", true},
        {prefix("fc00::/7"), "private (unique local)", true},
    };
    return ranges;
}

Endpoint normalize(const Endpoint& dest) {
    if (!dest.v6) return dest;
    if (mapped_head(dest) || (compat_head(dest) && !unspecified_or_loopback6(dest))) return ipv4_tail(dest);
    return dest;
}

std::optional<Prefix> embedded_ipv4(const Prefix& p) {
    if (!p.net.v6 || p.len < 96) return std::nullopt;
    if (!mapped_head(p.net) && !compat_head(p.net)) return std::nullopt;
    if (p.len == 128 && unspecified_or_loopback6(p.net)) return std::nullopt;
    return Prefix{ipv4_tail(p.net), p.len - 96};
}

Decision evaluate(const ClientRule& rule, const Endpoint& raw) {
    const auto dest = normalize(raw);
    const BuiltinRange* builtin = nullptr;
    for (const auto& r : builtin_ranges())
        if ((!r.private_range || rule.deny_private) && r.prefix.contains(dest)) {
            builtin = &r;
            break;
        }
    const auto builtin_denial = [&](const std::string& why) {
        return Decision{false, rule.name,
                        "built-in deny list: " + to_string(builtin->prefix) + " " + builtin->what +
                            (builtin->private_range ? " (deny_private)" : "") + why};
    };
    for (std::size_t i = 0; i < rule.destinations.size(); ++i) {
        const auto& e = rule.destinations[i];
        if (!e.dest.contains(dest) || !e.ports.contains(dest.port)) continue;
        if (e.action == Action::deny) return Decision{false, rule.name, entry_text(rule, i)};
        // Both prefixes hold the address, so one lies inside the other.
        if (builtin && e.dest.len < builtin->prefix.len)
            return builtin_denial("; " + entry_text(rule, i) + " is wider than that range, allow it by name");
        return Decision{true, rule.name, ""};
    }
    if (builtin) return builtin_denial("");
    if (rule.otherwise == Action::deny)
        return Decision{false, rule.name, "no destination entry of rule '" + rule.name + "' allows it (otherwise: deny)"};
    return Decision{true, rule.name, ""};
}

ClientPolicy::ClientPolicy() { default_.name = kDefaultRuleName; }

ClientPolicy::ClientPolicy(std::vector<ClientRule> rules, ClientRule default_rule)
    : rules_(std::move(rules)), default_(std::move(default_rule)) {}

const ClientRule& ClientPolicy::rule_for(const Credentials& peer) const {
    for (const auto& r : rules_)
        if (r.match && r.match->matches(peer)) return r;
    return default_;
}

}  // namespace egress
