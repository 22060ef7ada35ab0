#include "config/clients.hpp"

#include <algorithm>
#include <cmath>
#include <set>

namespace egress::config_detail {
namespace {

// (uid_t)-1 means "leave unchanged" to chown: not an id anyone can have.
constexpr std::uint32_t kMaxId = 4294967294u;

using Lookup = std::function<std::optional<std::uint32_t>(const std::string&)>;

std::string at(const std::string& path, std::size_t i) { return path + "[" + std::to_string(i) + "]"; }

bool valid_rule_name(const std::string& n) {
    return !n.empty() && n.size() <= 64 &&
           std::all_of(n.begin(), n.end(), [](unsigned char ch) { return ch > 0x20 && ch != 0x7F; });
}

// A name through `lookup`, or a numeric id.
std::optional<std::uint32_t> id_of(Checker& ck, const json& v, const std::string& path, const Lookup& lookup,
                                   const char* kind) {
    if (v.is_number_integer()) {
        std::uint32_t id = 0;
        const auto before = v.get<std::int64_t>();
        ck.uint(v, path, 0, kMaxId, id);
        if (before < 0 || before > kMaxId) return std::nullopt;
        return id;
    }
    const auto name = ck.string(v, path, (std::string("a ") + kind + " name or a numeric id").c_str());
    if (!name) return std::nullopt;
    const auto id = lookup ? lookup(*name) : std::nullopt;
    if (!id) ck.error(path, std::string("no ") + kind + " of that name on this system", v);
    return id;
}

std::optional<ClientMatch> parse_match(Checker& ck, const json& v, const std::string& path, const NameResolver& names) {
    std::optional<ClientMatch> m;
    if (v.is_object() && v.size() != 1) {
        ck.error(path, "expected exactly one of uid, gid, user, group", v);
        return std::nullopt;
    }
    const auto set = [&](ClientMatch::Kind kind, std::optional<std::uint32_t> id) {
        if (id) m = ClientMatch{kind, *id};
    };
    ck.object(v, path, {
        {"uid", [&](const json& s, const std::string& sp) {
            if (!s.is_number_integer()) return ck.error(sp, "expected a numeric uid", s);
            set(ClientMatch::Kind::uid, id_of(ck, s, sp, nullptr, "user"));
        }},
        {"gid", [&](const json& s, const std::string& sp) {
            if (!s.is_number_integer()) return ck.error(sp, "expected a numeric gid", s);
            set(ClientMatch::Kind::gid, id_of(ck, s, sp, nullptr, "group"));
        }},
        {"user", [&](const json& s, const std::string& sp) {
            if (!s.is_string()) return ck.error(sp, "expected a user name", s);
            set(ClientMatch::Kind::uid, id_of(ck, s, sp, names.user, "user"));
        }},
        {"group", [&](const json& s, const std::string& sp) {
            if (!s.is_string()) return ck.error(sp, "expected a group name", s);
            set(ClientMatch::Kind::gid, id_of(ck, s, sp, names.group, "group"));
        }},
    });
    return m;
}

// An address entry ("dest") or a name entry ("host"), never both.
std::optional<DestEntry> parse_entry(Checker& ck, const json& v, const std::string& path) {
    DestEntry e;
    bool ok = v.is_object();
    if (v.is_object() && !v.contains("action")) {
        ck.error(path + ".action", "required: \"allow\" or \"deny\"", v);
        ok = false;
    }
    if (v.is_object() && !v.contains("dest") && !v.contains("host")) {
        ck.error(path + ".dest", "required unless the entry has \"host\": a prefix such as \"192.0.2.0/24\"", v);
        ok = false;
    }
    if (v.is_object() && v.contains("dest") && v.contains("host")) {
        ck.error(path, "an entry has \"dest\" (an address entry) or \"host\" (a name entry), not both", v);
        ok = false;
    }
    ck.object(v, path, {
        {"action", [&](const json& s, const std::string& sp) {
            if (s == "allow" || s == "deny") {
                e.action = s == "allow" ? Action::allow : Action::deny;
                return;
            }
            ok = false;
            ck.error(sp, "expected \"allow\" or \"deny\"", s);
        }},
        {"dest", [&](const json& s, const std::string& sp) {
            const auto text = ck.string(s, sp, "a prefix such as \"192.0.2.0/24\"");
            auto p = text ? parse_prefix(*text) : Result<Prefix>(Error{EINVAL, ""});
            const auto v4 = p ? embedded_ipv4(*p) : std::nullopt;
            if (p && !v4) {
                e.dest = *p;
                return;
            }
            ok = false;
            if (!text) return;  // already reported
            if (!p) return ck.error(sp, p.error().message, s);
            ck.error(sp, "IPv4-mapped and IPv4-compatible IPv6 destinations are matched as the IPv4 address they "
                         "hold: write \"" + to_string(*v4) + "\"", s);
        }},
        {"host", [&](const json& s, const std::string& sp) {
            const auto text = ck.string(s, sp, "a host name such as \"api.example.com\" or \"*.example.com\"");
            if (!text) {
                ok = false;
                return;
            }
            auto pattern = parse_host_pattern(*text);
            if (!pattern) {
                ok = false;
                return ck.error(sp, pattern.error().message, s);
            }
            e.host = std::move(*pattern);
        }},
        {"ports", [&](const json& s, const std::string& sp) {
            const auto pr = s.is_string() ? parse_port_range(s.get<std::string>()) : std::nullopt;
            if (pr) {
                e.ports = *pr;
                return;
            }
            ok = false;
            ck.error(sp, "expected \"PORT\" or \"LO-HI\" with 1 <= LO <= HI <= 65535", s);
        }},
    });
    return ok ? std::optional(e) : std::nullopt;
}

// A rule's "limits": each key optional, absent meaning no limit from the rule.
void parse_limits(Checker& ck, const json& v, const std::string& path, QuotaLimits& out) {
    std::optional<double> rate;
    std::optional<std::uint32_t> burst;
    const auto count = [&](std::optional<std::uint32_t>& slot) {
        return [&](const json& s, const std::string& sp) {
            std::uint32_t n = 0;
            if (s.is_number_integer() && s.get<std::int64_t>() >= 1 && s.get<std::int64_t>() <= kMaxQuota)
                slot = s.get<std::uint32_t>();
            else ck.uint(s, sp, 1, kMaxQuota, n);  // reports the error
        };
    };
    ck.object(v, path, {
        {"max_inflight_per_connection", count(out.max_inflight_per_connection)},
        {"max_inflight_per_uid", count(out.max_inflight_per_uid)},
        {"max_connections_per_uid", count(out.max_connections_per_uid)},
        {"burst", count(burst)},
        {"requests_per_second", [&](const json& s, const std::string& sp) {
            if (s.is_number() && s.get<double>() >= kMinRate && s.get<double>() <= kMaxQuota)
                rate = s.get<double>();
            else ck.error(sp, "expected a number 0.01-1000000 (fractions allowed)", s);
        }},
    });
    if (burst && !v.contains("requests_per_second"))
        ck.error(path + ".burst", "needs requests_per_second", v["burst"]);
    if (rate) out.rate = RateLimit{*rate, burst.value_or(static_cast<std::uint32_t>(std::max(1.0, std::ceil(*rate))))};
}

// The keys a client rule and the default rule share.
std::map<std::string, std::function<void(const json&, const std::string&)>> rule_keys(Checker& ck, ClientRule& r) {
    return {
        {"name", [&](const json& s, const std::string& sp) {
            if (!s.is_string() || !valid_rule_name(s.get<std::string>()))
                return ck.error(sp, "rule names are 1-64 printable bytes without spaces", s);
            r.name = s.get<std::string>();
        }},
        {"destinations", [&](const json& s, const std::string& sp) {
            if (!s.is_array())
                return ck.error(sp, "expected an array of {\"action\", \"dest\" or \"host\", \"ports\"}", s);
            if (s.size() > kMaxDestEntries)
                return ck.error(sp, "at most " + std::to_string(kMaxDestEntries) + " entries", s.size());
            for (std::size_t i = 0; i < s.size(); ++i)
                if (auto e = parse_entry(ck, s[i], at(sp, i))) r.destinations.push_back(*e);
        }},
        {"otherwise", [&](const json& s, const std::string& sp) {
            if (s == "allow") r.otherwise = Action::allow;
            else if (s == "deny") r.otherwise = Action::deny;
            else ck.error(sp, "expected \"allow\" or \"deny\"", s);
        }},
        {"deny_private", [&](const json& s, const std::string& sp) { ck.boolean(s, sp, r.deny_private); }},
        {"deny_host", [&](const json& s, const std::string& sp) { ck.boolean(s, sp, r.deny_host); }},
        {"adopt", [&](const json& s, const std::string& sp) { ck.boolean(s, sp, r.adopt); }},
        {"adopt_other_netns", [&](const json& s, const std::string& sp) { ck.boolean(s, sp, r.adopt_other_netns); }},
        {"udp", [&](const json& s, const std::string& sp) { ck.boolean(s, sp, r.udp); }},
        {"limits", [&](const json& s, const std::string& sp) { parse_limits(ck, s, sp, r.limits); }},
        {"pools", [&](const json& s, const std::string& sp) {
            if (!s.is_array() || s.empty())
                return ck.error(sp, "expected a non-empty array of pool names (omit the key for any pool)", s);
            r.pools.emplace();
            for (std::size_t i = 0; i < s.size(); ++i) {
                const auto name = ck.string(s[i], at(sp, i), "the name of a pool");
                if (!name) continue;
                if (std::find(r.pools->begin(), r.pools->end(), *name) != r.pools->end())
                    ck.error(at(sp, i), "pool listed twice", s[i]);
                else r.pools->push_back(*name);
            }
        }},
    };
}

}  // namespace

void parse_clients(Checker& ck, const json& v, const std::string& path, const NameResolver& names, ClientRules& out) {
    if (!v.is_array()) return ck.error(path, "expected an array of client rules", v);
    if (v.size() > kMaxClientRules)
        return ck.error(path, "at most " + std::to_string(kMaxClientRules) + " client rules", v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
        const auto p = at(path, i);
        ClientRule r;
        bool ok = v[i].is_object();
        for (const char* key : {"name", "match"})
            if (v[i].is_object() && !v[i].contains(key)) {
                ck.error(p + "." + key, key == std::string("name") ? "required: the rule's name"
                                                                   : "required: {\"uid\"|\"gid\"|\"user\"|\"group\": ...}", v[i]);
                ok = false;
            }
        auto keys = rule_keys(ck, r);
        keys["match"] = [&](const json& s, const std::string& sp) {
            r.match = parse_match(ck, s, sp, names);
            if (!r.match) ok = false;
        };
        ck.object(v[i], p, keys);
        if (!ok) continue;
        out.rules.push_back(std::move(r));
        out.paths.push_back(p);
    }
}

void parse_default_client(Checker& ck, const json& v, const std::string& path, ClientRules& out) {
    out.default_path = path;
    ck.object(v, path, rule_keys(ck, out.default_rule));
}

void check_clients(const ClientRules& c, const std::vector<std::string>& pool_names, std::vector<std::string>& errors) {
    std::set<std::string> seen{c.default_rule.name};
    for (std::size_t i = 0; i < c.rules.size(); ++i)
        if (!seen.insert(c.rules[i].name).second)
            errors.push_back(c.paths[i] + ".name: another rule (or default_client) is named \"" + c.rules[i].name + "\"");
    const auto check_pools = [&](const ClientRule& r, const std::string& path) {
        if (!r.pools) return;
        for (std::size_t k = 0; k < r.pools->size(); ++k)
            if (std::find(pool_names.begin(), pool_names.end(), (*r.pools)[k]) == pool_names.end())
                errors.push_back(at(path + ".pools", k) + ": no pool named \"" + (*r.pools)[k] + "\"");
    };
    for (std::size_t i = 0; i < c.rules.size(); ++i) check_pools(c.rules[i], c.paths[i]);
    check_pools(c.default_rule, c.default_path);
}

std::optional<std::uint32_t> parse_owner(Checker& ck, const json& v, const std::string& path, const Lookup& lookup,
                                         const char* kind) {
    return id_of(ck, v, path, lookup, kind);
}

}  // namespace egress::config_detail
