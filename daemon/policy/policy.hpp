// Egress policy: which client rule applies to a peer, and whether that rule
// lets a destination through. Pure: credentials and addresses in, a decision
// out; user and group names are resolved by the config loader.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "endpoint.hpp"
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

// One entry of a rule's ordered destination list.
struct DestEntry {
    Action action = Action::allow;
    Prefix dest;       // IPv4, or IPv6 outside the IPv4-mapped/compatible space
    PortRange ports;   // 1-65535 when the entry names none
};

struct ClientRule {
    std::string name;
    std::optional<ClientMatch> match;  // unset: the default rule
    std::vector<DestEntry> destinations;
    Action otherwise = Action::allow;  // when no entry matches
    bool deny_private = false;         // add the private ranges to the built-in deny list
    std::optional<std::vector<std::string>> pools;  // unset: any pool
    QuotaLimits limits;                             // quotas per connection and per uid

    bool may_use_pool(std::string_view pool) const;
};

// A range of the built-in deny list.
struct BuiltinRange {
    Prefix prefix;
    const char* what;  // "loopback", "link-local", ...
    bool private_range;  // denied only with deny_private
};

// Every range of the built-in deny list, private ones included.
const std::vector<BuiltinRange>& builtin_ranges();

// The address an IPv6 destination really is: an IPv4-mapped (::ffff:a.b.c.d)
// or IPv4-compatible (::a.b.c.d, other than :: and ::1) address becomes the
// IPv4 address a.b.c.d; anything else is returned unchanged. Port is kept.
Endpoint normalize(const Endpoint& dest);

// A prefix that lies inside the IPv4-mapped or IPv4-compatible space (and so
// could never match a normalised address): the IPv4 prefix it stands for.
std::optional<Prefix> embedded_ipv4(const Prefix& p);

struct Decision {
    bool allowed = true;
    std::string rule;    // the rule that decided
    std::string reason;  // for a denial: which entry or built-in range, for humans
};

// The first matching destination entry decides. An allow entry opens a
// built-in range only when it lies inside that range (allowing 127.0.0.0/8
// opens loopback; allowing 0.0.0.0/0 does not). No entry matching: a built-in
// range denies, else `otherwise` decides.
Decision evaluate(const ClientRule& rule, const Endpoint& dest);

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
