#include "policy.hpp"

#include <algorithm>
#include <cerrno>

#include "hostname.hpp"

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
    return std::string(e.action == Action::allow ? "allow" : "deny") + " " +
           (e.host ? "host " + to_string(*e.host) : to_string(e.dest)) + " ports " + to_string(e.ports) +
           " (destinations[" + std::to_string(i) + "] of rule '" + rule.name + "')";
}

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// `name` equals `lower`, which is lowercase already, ASCII case ignored.
bool same_name(std::string_view name, std::string_view lower) {
    return name.size() == lower.size() &&
           std::equal(name.begin(), name.end(), lower.begin(), [](char a, char b) { return ascii_lower(a) == b; });
}

}  // namespace

bool HostPattern::matches(std::string_view name) const {
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    if (!wildcard) return !name.empty() && same_name(name, domain);
    // At least one label before ".domain": the domain itself is not below it.
    return name.size() > domain.size() + 1 && name[name.size() - domain.size() - 1] == '.' &&
           same_name(name.substr(name.size() - domain.size()), domain);
}

Result<HostPattern> parse_host_pattern(std::string_view text) {
    HostPattern p;
    auto rest = text;
    if (rest.substr(0, 2) == "*.") {
        p.wildcard = true;
        rest.remove_prefix(2);
    }
    if (rest.find('*') != std::string_view::npos || (p.wildcard && (rest.empty() || rest == ".")))
        return Error{EINVAL, "'*' may only be the whole first label, followed by a domain, as in \"*.example.com\""};
    auto name = normalize_host_name(rest);
    if (!name) return name.error();
    p.domain = std::move(*name);
    return p;
}

std::string to_string(const HostPattern& p) { return (p.wildcard ? "*." : "") + p.domain; }

bool ClientMatch::matches(const Credentials& c) const {
    if (kind == Kind::uid) return c.uid == id;
    return c.gid == id || std::find(c.groups.begin(), c.groups.end(), id) != c.groups.end();
}

bool ClientRule::may_use_pool(std::string_view pool) const {
    return !pools || std::find(pools->begin(), pools->end(), pool) != pools->end();
}

const std::vector<BuiltinRange>& builtin_ranges() {
    // Addresses a guest must not reach through the broker by default: the
    // host itself, the link (cloud metadata at 169.254.169.254), metadata
    // services elsewhere, groups, space no public host uses, and (unless a
    // rule sets deny_private false) the private ranges. A metadata address
    // inside a private range is listed on its own and is never private-only.
    static const std::vector<BuiltinRange> ranges{
        {prefix("127.0.0.0/8"), "loopback", false},
        {prefix("::1/128"), "loopback", false},
        {prefix("0.0.0.0/8"), "unspecified (\"this network\")", false},
        {prefix("::/128"), "unspecified", false},
        {prefix("169.254.0.0/16"), "link-local, cloud metadata", false},
        {prefix("fe80::/10"), "link-local", false},
        {prefix("fec0::/10"), "site-local (deprecated, RFC 3879)", false},
        {prefix("fd00:ec2::254/128"), "cloud metadata (AWS IPv6)", false},
        {prefix("100.100.100.200/32"), "cloud metadata (Alibaba Cloud)", false},
        {prefix("168.63.129.16/32"), "cloud platform endpoint (Azure WireServer)", false},
        {prefix("192.0.0.192/32"), "cloud metadata (Oracle Cloud)", false},
        {prefix("192.0.0.0/24"), "IETF protocol assignments (RFC 6890)", false},
        {prefix("198.18.0.0/15"), "benchmarking (RFC 2544)", false},
        {prefix("64:ff9b:1::/48"), "local-use NAT64 (RFC 8215, embeds IPv4 at a site-chosen length)", false},
        {prefix("224.0.0.0/4"), "multicast", false},
        {prefix("ff00::/8"), "multicast", false},
        {prefix("240.0.0.0/4"), "reserved (RFC 1112)", false},
        {prefix("255.255.255.255/32"), "broadcast", false},
        {prefix("10.0.0.0/8"), "private", true},
        {prefix("172.16.0.0/12"), "private", true},
        {prefix("192.168.0.0/16"), "private", true},
        {prefix("100.64.0.0/10"), "private (shared address space, CGNAT)", true},
        {prefix("fc00::/7"), "private (unique local)", true},
    };
    return ranges;
}

bool address_less(const Endpoint& a, const Endpoint& b) {
    if (a.v6 != b.v6) return b.v6;
    return std::lexicographical_compare(a.addr.begin(), a.addr.begin() + static_cast<long>(a.addr_len()),
                                        b.addr.begin(), b.addr.begin() + static_cast<long>(b.addr_len()));
}

HostFacts make_host_facts(std::vector<Endpoint> addresses, std::vector<OwnListener> listeners) {
    for (auto& a : addresses) {
        a = normalize(a);
        a.port = 0;
    }
    std::sort(addresses.begin(), addresses.end(), address_less);
    addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
    return HostFacts{std::move(addresses), std::move(listeners)};
}

OwnListener own_listener_at(std::string_view listen, std::uint16_t port, std::string what) {
    auto host = listen.substr(0, std::min(listen.rfind(':'), listen.size()));
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    auto at = parse_address(host, port).value_or(Endpoint{true, {}, port});
    return OwnListener{at, std::move(what)};
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

std::vector<EmbeddedForm> embedded_forms(const Endpoint& raw) {
    const auto d = normalize(raw);
    std::vector<EmbeddedForm> out;
    if (!d.v6) return out;
    const auto& a = d.addr;
    // The IPv4 address in bytes [at, at + 4), each XORed with `mask`.
    const auto v4_at = [&](std::size_t at, std::uint8_t mask = 0) {
        Endpoint v4;
        v4.port = d.port;
        for (std::size_t i = 0; i < 4; ++i) v4.addr[i] = static_cast<std::uint8_t>(a[at + i] ^ mask);
        return v4;
    };
    if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xFF && a[3] == 0x9B && zero_bytes(d, 4, 12))
        out.push_back({v4_at(12), "NAT64, RFC 6052"});
    if (a[0] == 0x20 && a[1] == 0x02) out.push_back({v4_at(2), "6to4, RFC 3056"});
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x00 && a[3] == 0x00) {
        out.push_back({v4_at(4), "Teredo server, RFC 4380"});
        out.push_back({v4_at(12, 0xFF), "Teredo client, RFC 4380"});
    }
    if (zero_bytes(d, 0, 8) && a[8] == 0xFF && a[9] == 0xFF && a[10] == 0 && a[11] == 0)
        out.push_back({v4_at(12), "IPv4-translated, RFC 2765"});
    return out;
}

namespace {

bool same_address(const Endpoint& a, const Endpoint& b) {
    return a.v6 == b.v6 && std::equal(a.addr.begin(), a.addr.begin() + static_cast<long>(a.addr_len()), b.addr.begin());
}

// 127.0.0.0/8 and ::1.
bool loopback(const Endpoint& dest) {
    return dest.v6 ? unspecified_or_loopback6(dest) && dest.addr[15] == 1 : dest.addr[0] == 127;
}

// 0.0.0.0/8 and ::.
bool unspecified(const Endpoint& dest) {
    return dest.v6 ? unspecified_or_loopback6(dest) && dest.addr[15] == 0 : dest.addr[0] == 0;
}

bool host_address(const HostFacts& host, const Endpoint& dest) {
    return std::binary_search(host.addresses.begin(), host.addresses.end(), dest, address_less);
}

// A listener of egressd's own that `dest` (normalised) reaches, for the reason.
std::optional<std::string> own_listener(const HostFacts& host, const Endpoint& dest) {
    for (const auto& l : host.listeners) {
        if (l.at.port != dest.port) continue;
        const auto at = normalize(l.at);
        const bool wildcard = std::all_of(at.addr.begin(), at.addr.end(), [](std::uint8_t b) { return b == 0; });
        if (wildcard ? host_address(host, dest) || loopback(dest) || unspecified(dest) : same_address(at, dest))
            return "egressd's own " + l.what + " listens on " + endpoint_string(l.at) +
                   " (denied whatever the rules say)";
    }
    return std::nullopt;
}

// The narrowest deny range that holds `dest` under `rule`: a built-in range
// (private ones with deny_private) or, with deny_host, a host address. Its
// text is built only for a denial: most destinations an allow entry opens
// lie in a private range.
struct Holder {
    unsigned len;
    const BuiltinRange* range;  // nullptr: an address of this host
    std::string text(const Endpoint& dest) const {
        if (!range) return "address of this host: " + address_string(dest) + " (deny_host)";
        return "built-in deny list: " + to_string(range->prefix) + " " + range->what +
               (range->private_range ? " (deny_private)" : "");
    }
};

// An address as two 64-bit words, its first byte in the top bits (an IPv4
// address fills the top half of the first).
struct Words {
    std::uint64_t hi = 0, lo = 0;
    explicit Words(const Endpoint& e) : hi(address_word(e, 0)), lo(address_word(e, 8)) {
        if (!e.v6) {
            hi &= ~std::uint64_t{0} << 32;
            lo = 0;
        }
    }
};

// A built-in range as masked words: a test of an address is two ANDs.
struct CompiledRange {
    std::uint64_t net_hi, net_lo, mask_hi, mask_lo;
    const BuiltinRange* range;
    bool holds(const Words& a) const { return (a.hi & mask_hi) == net_hi && (a.lo & mask_lo) == net_lo; }
};

// The built-in ranges of one family, narrowest first (in list order among
// equals): the first that holds an address is the narrowest that does.
const std::vector<CompiledRange>& narrowest_first(bool v6) {
    static const auto compile = [](bool six) {
        std::vector<const BuiltinRange*> sorted;
        for (const auto& r : builtin_ranges())
            if (r.prefix.net.v6 == six) sorted.push_back(&r);
        std::stable_sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->prefix.len > b->prefix.len; });
        std::vector<CompiledRange> out;
        // The top `bits` bits of a word.
        const auto top = [](unsigned bits) {
            return bits == 0 ? 0 : bits >= 64 ? ~std::uint64_t{0} : ~std::uint64_t{0} << (64 - bits);
        };
        for (const auto* r : sorted) {
            const auto len = r->prefix.len;
            const Words net(r->prefix.net);
            const auto mask_hi = top(std::min(len, 64u)), mask_lo = top(len > 64 ? len - 64 : 0);
            out.push_back({net.hi & mask_hi, net.lo & mask_lo, mask_hi, mask_lo, r});
        }
        return out;
    };
    static const std::vector<CompiledRange> v4 = compile(false), v6s = compile(true);
    return v6 ? v6s : v4;
}

std::optional<Holder> holder(const ClientRule& rule, const Endpoint& dest, const HostFacts& host) {
    if (rule.deny_host && !loopback(dest) && host_address(host, dest)) return Holder{dest.v6 ? 128u : 32u, nullptr};
    const Words a(dest);
    for (const auto& c : narrowest_first(dest.v6))
        if ((!c.range->private_range || rule.deny_private) && c.holds(a)) return Holder{c.range->prefix.len, c.range};
    return std::nullopt;
}

// One form of a destination, resolved from `name` (empty: a literal), under
// `rule`; nullopt when nothing but `otherwise` would decide and
// `use_otherwise` is false.
std::optional<Decision> judge(const ClientRule& rule, const Endpoint& dest, const HostFacts& host,
                              std::string_view name, bool use_otherwise) {
    if (auto own = own_listener(host, dest)) return Decision{false, rule.name, *own};
    const auto held = holder(rule, dest, host);
    for (std::size_t i = 0; i < rule.destinations.size(); ++i) {
        const auto& e = rule.destinations[i];
        const bool hit = e.host ? e.host->matches(name) : e.dest.contains(dest);
        if (!hit || !e.ports.contains(dest.port)) continue;
        if (e.action == Action::deny) return Decision{false, rule.name, entry_text(rule, i)};
        // A name vouches for no address: whatever it resolved to meets the ranges.
        if (e.host) {
            if (held)
                return Decision{false, rule.name,
                                held->text(dest) + "; " + entry_text(rule, i) + " allows " + std::string(name) +
                                    " by name, which opens no built-in range"};
            return Decision{true, rule.name, ""};
        }
        // Both prefixes hold the address, so one lies inside the other.
        if (held && e.dest.len < held->len)
            return Decision{false, rule.name,
                            held->text(dest) + "; " + entry_text(rule, i) +
                                " is wider than that range: allow the range, or a part of it, by an entry of its own"};
        return Decision{true, rule.name, ""};
    }
    if (held) return Decision{false, rule.name, held->text(dest)};
    if (!use_otherwise) return std::nullopt;
    if (rule.otherwise == Action::deny)
        return Decision{false, rule.name, "no destination entry of rule '" + rule.name + "' allows it (otherwise: deny)"};
    return Decision{true, rule.name, ""};
}

}  // namespace

Decision evaluate(const ClientRule& rule, const Endpoint& raw, const HostFacts& host, std::string_view name) {
    const auto dest = normalize(raw);
    auto decision = *judge(rule, dest, host, name, true);
    if (!decision.allowed) return decision;
    for (const auto& form : embedded_forms(dest)) {
        const auto d = judge(rule, form.v4, host, name, false);
        if (d && !d->allowed)
            return Decision{false, rule.name,
                            address_string(dest) + " embeds " + address_string(form.v4) + " (" + form.how +
                                "): " + d->reason};
    }
    return decision;
}

std::optional<Decision> deny_before_resolving(const ClientRule& rule, std::string_view name, std::uint16_t port) {
    const auto denied = [&](const std::string& why) {
        return Decision{false, rule.name, "host name " + std::string(name) + " is denied before resolving: " + why};
    };
    for (std::size_t i = 0; i < rule.destinations.size(); ++i) {
        const auto& e = rule.destinations[i];
        if (!e.ports.contains(port)) continue;
        if (!e.host) {
            if (e.action == Action::allow) return std::nullopt;  // some resolved address may lie in it
            continue;                                           // a deny only denies more
        }
        if (!e.host->matches(name)) continue;
        if (e.action == Action::allow) return std::nullopt;
        return denied(entry_text(rule, i));
    }
    if (rule.otherwise == Action::allow) return std::nullopt;
    return denied("no destination entry of rule '" + rule.name + "' allows it, or any address at port " +
                  std::to_string(port) + " (otherwise: deny)");
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
