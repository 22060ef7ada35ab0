// Egress policy: which client rule applies to a peer, and whether that rule
// lets a destination through. Pure: credentials, addresses, host names and
// facts about the host in, a decision out; user and group names are resolved
// by the config loader, the host's addresses by the address watcher
// (sys/address_watch.hpp), host names by the resolver.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "endpoint.hpp"
#include "result.hpp"
#include "pool/port_window.hpp"
#include "pool/routes.hpp"
#include "quota/limits.hpp"

namespace egress {

// The peer of a client connection, as the kernel recorded it when the
// client connected (SO_PEERCRED, SO_PEERGROUPS).
struct Credentials {
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;  // effective gid
    std::int32_t pid = 0;
    std::vector<std::uint32_t> groups;  // supplementary groups
};

// Which peers a client rule applies to: one uid, or one gid (the effective
// gid or any supplementary group).
struct ClientMatch {
    enum class Kind { uid, gid };
    Kind kind = Kind::uid;
    std::uint32_t id = 0;
    bool matches(const Credentials& c) const;
};

enum class Action { allow, deny };

// The names a name entry covers: one name ("api.example.com"), or with
// `wildcard` every name below a domain ("*.example.com": "a.example.com",
// "a.b.example.com", not "example.com" itself).
struct HostPattern {
    std::string domain;     // normalized (normalize_host_name), without the "*."
    bool wildcard = false;

    // `name` in normalize_host_name's form; ASCII case and one final dot are
    // ignored all the same. An empty name matches nothing.
    bool matches(std::string_view name) const;
    bool operator==(const HostPattern&) const = default;
};

// "api.example.com" or "*.example.com", normalized by normalize_host_name
// (lowercase, no final dot). EINVAL, saying what is wrong, for a name
// normalize_host_name refuses and for a '*' anywhere but alone as the first
// label of a longer name ("*", "*.", "a.*.b", "**.x").
Result<HostPattern> parse_host_pattern(std::string_view text);
std::string to_string(const HostPattern& p);  // as parse_host_pattern reads it

// One entry of a rule's ordered destination list: an address entry (`dest`)
// or a name entry (`host`), each with its ports.
struct DestEntry {
    Action action = Action::allow;
    Prefix dest;       // IPv4, or IPv6 outside the IPv4-mapped/compatible space; unused when host is set
    PortRange ports;   // 1-65535 when the entry names none
    std::optional<HostPattern> host;  // set: a name entry, matched on the name a request asked for
};

struct ClientRule {
    std::string name;
    std::optional<ClientMatch> match;  // unset: the default rule
    std::vector<DestEntry> destinations;
    Action otherwise = Action::allow;  // when no entry matches
    bool deny_private = true;          // the private ranges join the built-in deny list
    bool deny_host = true;             // so does every address of this host (HostFacts)
    bool adopt = true;                 // may send its own socket to be connected (adopt mode)
    bool adopt_other_netns = false;    // ... even one of another network namespace
    bool udp = true;                   // may ask for UDP sockets (TRANSPORT 17), by CONNECT or adopt mode
    std::optional<std::vector<std::string>> pools;  // unset: any pool
    QuotaLimits limits;                             // quotas per connection and per uid

    bool may_use_pool(std::string_view pool) const;
};

// A range of the built-in deny list.
struct BuiltinRange {
    Prefix prefix;
    const char* what;  // "loopback", "link-local", ...
    bool private_range;  // denied only with deny_private (the default)
};

// A socket egressd itself listens on (the metrics endpoint). An unspecified
// address (0.0.0.0 or ::) stands for every address of this host, loopback and
// unspecified ones included.
struct OwnListener {
    Endpoint at;       // address and port
    std::string what;  // "metrics endpoint", for the reason
};

// The listener egressd opened from `listen` ("ADDRESS:PORT", "[IPV6]:PORT",
// as in metrics.listen) on `port` (the port it got, which differs for :0).
// An address that does not parse stands for every address ("::").
OwnListener own_listener_at(std::string_view listen, std::uint16_t port, std::string what);

// What the policy knows about the host egressd runs on, as one immutable
// value: the watcher replaces the whole snapshot when an address comes or goes.
struct HostFacts {
    // Every address configured in egressd's network namespace, normalised
    // (see normalize), sorted by address_less and without duplicates; ports 0.
    std::vector<Endpoint> addresses;
    std::vector<OwnListener> listeners;
};

// A strict order on addresses (family, then bytes); ports are ignored.
bool address_less(const Endpoint& a, const Endpoint& b);
// `addresses` normalised, ports cleared, sorted and deduplicated, with `listeners`.
HostFacts make_host_facts(std::vector<Endpoint> addresses, std::vector<OwnListener> listeners);

// Every range of the built-in deny list, private ones included.
const std::vector<BuiltinRange>& builtin_ranges();

// The address an IPv6 destination really is: an IPv4-mapped (::ffff:a.b.c.d)
// or IPv4-compatible (::a.b.c.d, other than :: and ::1) address becomes the
// IPv4 address a.b.c.d; anything else is returned unchanged. Port is kept.
Endpoint normalize(const Endpoint& dest);

// A prefix that lies inside the IPv4-mapped or IPv4-compatible space (and so
// could never match a normalised address): the IPv4 prefix it stands for.
std::optional<Prefix> embedded_ipv4(const Prefix& p);

// An IPv4 address an IPv6 destination carries inside it, and how.
struct EmbeddedForm {
    Endpoint v4;       // with the destination's port
    const char* how;   // "NAT64, RFC 6052", ...
};

// Every IPv4 address a (normalised) IPv6 destination embeds: NAT64
// 64:ff9b::/96 (last 32 bits), 6to4 2002::/16 (bits 16-47), Teredo 2001::/32
// (the server in bits 32-63, the client in the last 32 bits inverted; two
// forms), IPv4-translated ::ffff:0:0:0/96 (last 32 bits). IPv4-mapped and
// -compatible addresses are not listed: normalize() turns them into IPv4.
std::vector<EmbeddedForm> embedded_forms(const Endpoint& dest);

struct Decision {
    bool allowed = true;
    std::string_view rule;  // the name of the rule that decided (its own string: valid while the rule is)
    std::string reason;  // for a denial: which entry or built-in range, for humans
};

// `dest` is where the request goes: an address literal the client sent
// (`name` empty), or one address `name` resolved to (`name` in
// normalize_host_name's form). Every resolved address is judged on its own.
//
// One form of the destination (the address itself, then every embedded IPv4
// form) is judged so: a listener of egressd's own at that address and port
// denies, whatever the rule says. Else the first matching destination entry
// decides: an address entry when its prefix holds the address, a name entry
// when its pattern matches `name` (never for a literal), either only when its
// ports hold the port. A deny entry denies. An address allow opens a built-in
// range only when it lies inside the narrowest range holding the address
// (allowing 127.0.0.0/8 opens loopback; allowing 0.0.0.0/0 does not); with
// deny_host, each address of this host outside the loopback ranges counts as
// such a range of its own (a /32 or /128). A name allow opens no range: any
// range holding the address denies, and else the allow stands (`otherwise`
// is not consulted), so DNS cannot lead a name past the built-in deny list.
// No entry matching: a built-in range denies, else `otherwise` decides.
//
// The destination is denied if any of its forms is. An embedded form is
// judged like a literal IPv4 destination with the same port and the same
// name, except that `otherwise` does not apply to it: when no entry matches
// and no range holds it, the IPv6 form's decision stands. A denial for an
// embedded form says which IPv4 address the destination embeds and how.
Decision evaluate(const ClientRule& rule, const Endpoint& dest, const HostFacts& host, std::string_view name = {});

// An early refusal of a request by name (`name` normalized, as for
// evaluate()), made before any DNS query: it saves the query and tells DNS
// nothing about a name the client may not reach. A denial when no address
// the name could resolve to could be allowed: walking the entries in order,
// skipping name entries that do not match the name and port, address deny
// entries (they can only deny more) and address allow entries whose ports do
// not hold `port` (they match no address at that port), the first entry left
// decides: a name deny denies; a name allow or an address allow means
// nullopt (undecided). Reaching the end denies when `otherwise` is deny.
// nullopt is no permission: every resolved address is still judged by
// evaluate(), which also applies the built-in deny list and own listeners.
std::optional<Decision> deny_before_resolving(const ClientRule& rule, std::string_view name, std::uint16_t port);

// The client rules in force: the first whose match fits the peer, else the
// default rule.
class ClientPolicy {
public:
    ClientPolicy();  // no rules; the built-in default rule
    ClientPolicy(std::vector<ClientRule> rules, ClientRule default_rule);

    const ClientRule& rule_for(const Credentials& peer) const;
    const std::vector<ClientRule>& rules() const { return rules_; }
    const ClientRule& default_rule() const { return default_; }

private:
    std::vector<ClientRule> rules_;
    ClientRule default_;
};

// Looks up user and group names (at config load; getpwnam/getgrnam in the
// daemon, a table in tests). An unset function resolves nothing.
struct NameResolver {
    std::function<std::optional<std::uint32_t>(const std::string&)> user;   // uid of a user name
    std::function<std::optional<std::uint32_t>(const std::string&)> group;  // gid of a group name
};

// The name of the default rule when the config gives none.
inline constexpr const char* kDefaultRuleName = "default";

}  // namespace egress
