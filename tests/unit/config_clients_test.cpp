// Client rules, default_client and the socket's owner and group in the JSON
// configuration: every key, and every way to get it wrong.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "config/config.hpp"

namespace egress {
namespace {

// A fake user and group database: no real accounts needed.
NameResolver fake_names() {
    static const std::map<std::string, std::uint32_t> users{{"alice", 1000}, {"bob", 1001}};
    static const std::map<std::string, std::uint32_t> groups{{"sandbox", 500}};
    const auto in = [](const std::map<std::string, std::uint32_t>& m) {
        return [&m](const std::string& n) -> std::optional<std::uint32_t> {
            const auto it = m.find(n);
            return it == m.end() ? std::nullopt : std::optional(it->second);
        };
    };
    return {in(users), in(groups)};
}

ConfigPtr parse_ok(std::string_view json) {
    const auto load = parse_config(json, fake_names());
    for (const auto& e : load.errors) ADD_FAILURE() << e;
    EXPECT_TRUE(load.config) << json;
    return load.config ? load.config : default_config();
}

// The single error a document produces; fails the test if there are more or none.
std::string only_error(std::string_view json) {
    const auto load = parse_config(json, fake_names());
    EXPECT_FALSE(load.config) << json;
    EXPECT_EQ(load.errors.size(), 1u) << json;
    return load.errors.empty() ? "" : load.errors.front();
}

#define EXPECT_ERROR(json, ...)                                                          \
    do {                                                                                 \
        const auto err_ = only_error(json);                                              \
        for (const char* w_ : {__VA_ARGS__}) EXPECT_NE(err_.find(w_), std::string::npos) \
            << "'" << w_ << "' missing from: " << err_;                                  \
    } while (0)

TEST(ConfigClients, BuiltinDefault) {
    const auto c = default_config();
    EXPECT_TRUE(c->clients.rules().empty());
    const auto& d = c->clients.default_rule();
    EXPECT_EQ(d.name, "default");
    EXPECT_FALSE(d.match);
    EXPECT_TRUE(d.destinations.empty());
    EXPECT_EQ(d.otherwise, Action::allow);
    EXPECT_TRUE(d.deny_private);  // private by default
    EXPECT_TRUE(d.deny_host);
    EXPECT_FALSE(d.pools);
    EXPECT_FALSE(c->socket_owner);
    EXPECT_FALSE(c->socket_group);
}

TEST(ConfigClients, EveryKeyIsParsed) {
    const auto c = parse_ok(R"({
        "pools": {"p1": {}, "p2": {}}, "default_pool": "p1",
        "socket": {"owner": "alice", "group": "sandbox"},
        "clients": [
            {"name": "sandbox", "match": {"uid": 1000},
             "destinations": [{"action": "deny", "dest": "192.0.2.0/24", "ports": "80-443"},
                              {"action": "allow", "dest": "2001:db8::/32"}],
             "pools": ["p2"], "deny_private": true, "otherwise": "deny"},
            {"name": "g", "match": {"gid": 7}},
            {"name": "u", "match": {"user": "bob"}},
            {"name": "grp", "match": {"group": "sandbox"}}],
        "default_client": {"name": "rest", "destinations": [{"action": "allow", "dest": "127.0.0.1"}],
                           "pools": ["p1", "p2"]}
    })");
    ASSERT_EQ(c->clients.rules().size(), 4u);
    const auto& s = c->clients.rules()[0];
    EXPECT_EQ(s.name, "sandbox");
    EXPECT_EQ(s.match->kind, ClientMatch::Kind::uid);
    EXPECT_EQ(s.match->id, 1000u);
    ASSERT_EQ(s.destinations.size(), 2u);
    EXPECT_EQ(s.destinations[0].action, Action::deny);
    EXPECT_EQ(to_string(s.destinations[0].dest), "192.0.2.0/24");
    EXPECT_EQ(s.destinations[0].ports, (PortRange{80, 443}));
    EXPECT_EQ(s.destinations[1].action, Action::allow);
    EXPECT_EQ(s.destinations[1].ports, (PortRange{1, 65535}));
    EXPECT_EQ(*s.pools, std::vector<std::string>{"p2"});
    EXPECT_TRUE(s.deny_private);
    EXPECT_EQ(s.otherwise, Action::deny);
    EXPECT_EQ(c->clients.rules()[1].match->kind, ClientMatch::Kind::gid);
    EXPECT_EQ(c->clients.rules()[1].match->id, 7u);
    EXPECT_EQ(c->clients.rules()[2].match->kind, ClientMatch::Kind::uid);
    EXPECT_EQ(c->clients.rules()[2].match->id, 1001u);
    EXPECT_EQ(c->clients.rules()[3].match->kind, ClientMatch::Kind::gid);
    EXPECT_EQ(c->clients.rules()[3].match->id, 500u);
    const auto& d = c->clients.default_rule();
    EXPECT_EQ(d.name, "rest");
    EXPECT_EQ(to_string(d.destinations.at(0).dest), "127.0.0.1/32");
    EXPECT_EQ(d.pools->size(), 2u);
    EXPECT_EQ(c->socket_owner, 1000u);
    EXPECT_EQ(c->socket_group, 500u);
    EXPECT_EQ(c->clients.rule_for({1001, 0, 9}).name, "u");
    EXPECT_EQ(c->clients.rule_for({5, 500, 9}).name, "grp");
    EXPECT_EQ(c->clients.rule_for({5, 5, 9}).name, "rest");
}

TEST(ConfigClients, NumericSocketOwnerAndGroup) {
    const auto c = parse_ok(R"({"socket": {"owner": 0, "group": 4294967294}})");
    EXPECT_EQ(c->socket_owner, 0u);
    EXPECT_EQ(c->socket_group, 4294967294u);
}

TEST(ConfigClients, SocketOwnerAndGroupErrors) {
    EXPECT_ERROR(R"({"socket": {"owner": "mallory"}})", "socket.owner", "no user of that name", "\"mallory\"");
    EXPECT_ERROR(R"({"socket": {"group": "wheel"}})", "socket.group", "no group of that name");
    EXPECT_ERROR(R"({"socket": {"owner": -1}})", "socket.owner", "0-4294967294");
    EXPECT_ERROR(R"({"socket": {"group": 4294967295}})", "socket.group", "0-4294967294");
    EXPECT_ERROR(R"({"socket": {"owner": ""}})", "socket.owner", "a user name or a numeric id");
    EXPECT_ERROR(R"({"socket": {"group": true}})", "socket.group");
    // Without a resolver no name resolves.
    const auto load = parse_config(R"({"socket": {"owner": "alice"}})");
    EXPECT_FALSE(load.config);
}

TEST(ConfigClients, RuleErrorsNameTheirPath) {
    EXPECT_ERROR(R"({"clients": {}})", "clients:", "expected an array of client rules");
    EXPECT_ERROR(R"({"clients": [7]})", "clients[0]", "expected an object");
    EXPECT_ERROR(R"({"clients": [{"match": {"uid": 1}}]})", "clients[0].name", "required");
    EXPECT_ERROR(R"({"clients": [{"name": "a"}]})", "clients[0].match", "required");
    EXPECT_ERROR(R"({"clients": [{"name": "a b", "match": {"uid": 1}}]})", "clients[0].name", "printable");
    EXPECT_ERROR(R"({"clients": [{"name": "", "match": {"uid": 1}}]})", "clients[0].name");
    EXPECT_ERROR(R"({"clients": [{"name": "a", "match": {"uid": 1}, "colour": "red"}]})", "clients[0].colour",
                 "unknown key");
    EXPECT_ERROR(R"({"clients": [{"name": "a", "match": {}}]})", "clients[0].match", "exactly one of");
    EXPECT_ERROR(R"({"clients": [{"name": "a", "match": {"uid": 1, "gid": 2}}]})", "clients[0].match", "exactly one");
    EXPECT_ERROR(R"({"clients": [{"name": "a", "match": {"pid": 1}}]})", "clients[0].match.pid", "unknown key");
    EXPECT_ERROR(R"({"clients": [{"name": "a", "match": {"uid": "1000"}}]})", "clients[0].match.uid", "numeric uid");
    EXPECT_ERROR(R"({"clients": [{"name": "a", "match": {"gid": -3}}]})", "clients[0].match.gid", "0-4294967294");
    EXPECT_ERROR(R"({"clients": [{"name": "a", "match": {"user": "mallory"}}]})", "clients[0].match.user",
                 "no user of that name");
    EXPECT_ERROR(R"({"clients": [{"name": "a", "match": {"group": 5}}]})", "clients[0].match.group",
                 "expected a group name");
    EXPECT_ERROR(R"({"clients": [{"name": "a", "match": {"uid": 1}}, {"name": "a", "match": {"uid": 2}}]})",
                 "clients[1].name", "another rule");
    EXPECT_ERROR(R"({"clients": [{"name": "default", "match": {"uid": 1}}]})", "clients[0].name", "another rule");
    EXPECT_ERROR(R"({"clients": [{"name": "a", "match": {"uid": 1}, "deny_private": "yes"}]})",
                 "clients[0].deny_private", "true or false");
    EXPECT_ERROR(R"({"clients": [{"name": "a", "match": {"uid": 1}, "deny_host": 0}]})",
                 "clients[0].deny_host", "true or false");
    EXPECT_ERROR(R"({"default_client": {"deny_host": "no"}})", "default_client.deny_host", "true or false");
    EXPECT_ERROR(R"({"clients": [{"name": "a", "match": {"uid": 1}, "otherwise": "maybe"}]})",
                 "clients[0].otherwise", "\"allow\" or \"deny\"");
}

TEST(ConfigClients, DestinationErrorsNameTheirPath) {
    const auto with = [](const std::string& entries) {
        return R"({"clients": [{"name": "a", "match": {"uid": 1}, "destinations": )" + entries + "}]}";
    };
    EXPECT_ERROR(with("{}"), "clients[0].destinations", "expected an array");
    EXPECT_ERROR(with(R"([{"dest": "192.0.2.0/24"}])"), "clients[0].destinations[0].action", "required");
    EXPECT_ERROR(with(R"([{"action": "allow"}])"), "clients[0].destinations[0].dest", "required");
    EXPECT_ERROR(with(R"([{"action": "allow", "dest": "192.0.2.0/24"}, {"action": "permit", "dest": "::/0"}])"),
                 "clients[0].destinations[1].action", "\"permit\"");
    EXPECT_ERROR(with(R"([{"action": "deny", "dest": "192.0.2.1/24"}])"), "clients[0].destinations[0].dest",
                 "host bits", "192.0.2.0/24");
    EXPECT_ERROR(with(R"([{"action": "deny", "dest": "192.0.2.0/33"}])"), "destinations[0].dest", "0-32");
    EXPECT_ERROR(with(R"([{"action": "deny", "dest": "::/129"}])"), "destinations[0].dest", "0-128");
    EXPECT_ERROR(with(R"([{"action": "deny", "dest": "example.com"}])"), "destinations[0].dest", "not an IP");
    EXPECT_ERROR(with(R"([{"action": "deny", "dest": ""}])"), "destinations[0].dest");
    EXPECT_ERROR(with(R"([{"action": "allow", "dest": "::ffff:127.0.0.1"}])"), "destinations[0].dest",
                 "write \"127.0.0.1/32\"");
    EXPECT_ERROR(with(R"([{"action": "allow", "dest": "::ffff:0:0/96"}])"), "write \"0.0.0.0/0\"");
    EXPECT_ERROR(with(R"([{"action": "allow", "dest": "::169.254.169.254"}])"), "write \"169.254.169.254/32\"");
    EXPECT_ERROR(with(R"([{"action": "deny", "dest": "0.0.0.0/0", "ports": "0-80"}])"),
                 "clients[0].destinations[0].ports", "1 <= LO");
    EXPECT_ERROR(with(R"([{"action": "deny", "dest": "0.0.0.0/0", "ports": "90-80"}])"), "destinations[0].ports");
    EXPECT_ERROR(with(R"([{"action": "deny", "dest": "0.0.0.0/0", "ports": 80}])"), "destinations[0].ports");
    EXPECT_ERROR(with(R"([{"action": "deny", "dest": "0.0.0.0/0", "ports": "65536"}])"), "destinations[0].ports");
    EXPECT_ERROR(with(R"([{"action": "deny", "dest": "0.0.0.0/0", "port": "80"}])"), "destinations[0].port",
                 "unknown key");
    std::string many = "[";
    for (int i = 0; i < 1025; ++i) many += std::string(i ? "," : "") + R"({"action": "deny", "dest": "::/0"})";
    EXPECT_ERROR(with(many + "]"), "clients[0].destinations", "at most 1024");
    // Accepted: the edges.
    parse_ok(with(R"([{"action": "deny", "dest": "0.0.0.0/0", "ports": "1-65535"},
                      {"action": "deny", "dest": "::/0", "ports": "65535"},
                      {"action": "allow", "dest": "::1"}, {"action": "allow", "dest": "::"}])"));
}

TEST(ConfigClients, HostEntriesAreParsedNormalizedAndMatchedIgnoringCase) {
    const auto c = parse_ok(R"({"clients": [{"name": "sandbox", "match": {"uid": 1000},
        "destinations": [{"action": "allow", "host": "API.Example.COM.", "ports": "443"},
                         {"action": "deny", "host": "*.Corp.Example"},
                         {"action": "allow", "dest": "192.0.2.0/24"}],
        "otherwise": "deny"}]})");
    const auto& r = c->clients.rules().at(0);
    ASSERT_EQ(r.destinations.size(), 3u);
    EXPECT_EQ(r.destinations[0].action, Action::allow);
    EXPECT_EQ(r.destinations[0].host, (HostPattern{"api.example.com", false}));
    EXPECT_EQ(r.destinations[0].ports, (PortRange{443, 443}));
    EXPECT_EQ(r.destinations[1].action, Action::deny);
    EXPECT_EQ(r.destinations[1].host, (HostPattern{"corp.example", true}));
    EXPECT_EQ(r.destinations[1].ports, (PortRange{1, 65535}));
    EXPECT_FALSE(r.destinations[2].host);
    EXPECT_EQ(to_string(r.destinations[2].dest), "192.0.2.0/24");
    const HostFacts none{};
    EXPECT_TRUE(evaluate(r, *parse_address("8.8.8.8", 443), none, "api.example.com").allowed);
    EXPECT_FALSE(evaluate(r, *parse_address("8.8.8.8", 80), none, "api.example.com").allowed);
    EXPECT_FALSE(evaluate(r, *parse_address("8.8.8.8", 443), none).allowed);  // a literal meets no name entry
    EXPECT_FALSE(evaluate(r, *parse_address("192.0.2.1", 443), none, "x.corp.example").allowed);
    EXPECT_TRUE(evaluate(r, *parse_address("192.0.2.1", 443), none, "corp.example").allowed);
    const auto early = deny_before_resolving(r, "x.corp.example", 443);
    ASSERT_TRUE(early);
    EXPECT_NE(early->reason.find("deny host *.corp.example ports 1-65535 (destinations[1] of rule 'sandbox')"),
              std::string::npos) << early->reason;
}

TEST(ConfigClients, HostEntryErrorsNameTheirPath) {
    const auto with = [](const std::string& entries) {
        return R"({"clients": [{"name": "a", "match": {"uid": 1}, "destinations": )" + entries + "}]}";
    };
    EXPECT_ERROR(with(R"([{"action": "allow", "dest": "192.0.2.0/24", "host": "api.example.com"}])"),
                 "clients[0].destinations[0]: ", "\"dest\" (an address entry) or \"host\" (a name entry), not both",
                 "api.example.com");
    EXPECT_ERROR(with(R"([{"action": "allow", "ports": "443"}])"), "clients[0].destinations[0].dest",
                 "required unless the entry has \"host\"");
    EXPECT_ERROR(with(R"([{"host": "api.example.com"}])"), "clients[0].destinations[0].action", "required");
    EXPECT_ERROR(with(R"([{"action": "deny", "host": ""}])"), "clients[0].destinations[0].host",
                 "expected a host name such as");
    EXPECT_ERROR(with(R"([{"action": "deny", "host": 7}])"), "clients[0].destinations[0].host", "got 7");
    for (const char* star : {"*", "*.", "a.*.b", "**.x", "*.*.x", "x*.example.com"}) {
        const auto got = std::string("got \"") + star + "\"";
        EXPECT_ERROR(with(std::string(R"([{"action": "allow", "dest": "::/0"}, {"action": "deny", "host": ")") + star +
                          "\"}]"),
                     "clients[0].destinations[1].host: ", "'*' may only be the whole first label", got.c_str());
    }
    // normalize_host_name's own message, with the path and the value.
    EXPECT_ERROR(with(R"([{"action": "deny", "host": "a..example.com"}])"), "clients[0].destinations[0].host",
                 "host name 'a..example.com' is not valid: it has an empty label", "got \"a..example.com\"");
    EXPECT_ERROR(with(R"([{"action": "deny", "host": "192.0.2.1"}])"), "destinations[0].host", "all digits");
    EXPECT_ERROR(with(R"([{"action": "deny", "host": "caf\u00e9.example"}])"), "destinations[0].host", "punycode");
    EXPECT_ERROR(with(R"([{"action": "deny", "host": "-a.example"}])"), "destinations[0].host", "begins or ends");
    EXPECT_ERROR(with(R"([{"action": "deny", "host": "api.example.com", "ports": "0"}])"),
                 "clients[0].destinations[0].ports", "1 <= LO");
    // A misspelt "host": the entry lacks both keys, and the spelling is unknown.
    const auto typo = parse_config(with(R"([{"action": "deny", "hostname": "api.example.com"}])"), fake_names());
    EXPECT_EQ(typo.errors, (std::vector<std::string>{
                               "clients[0].destinations[0].dest: required unless the entry has \"host\": a prefix such "
                               "as \"192.0.2.0/24\", got {\"action\":\"deny\",\"hostname\":\"api.example.com\"}",
                               "clients[0].destinations[0].hostname: unknown key, got \"api.example.com\""}));
    EXPECT_ERROR(R"({"default_client": {"destinations": [{"action": "deny", "host": "*"}]}})",
                 "default_client.destinations[0].host", "'*'");
    // Accepted: the edges of a name.
    parse_ok(with(R"([{"action": "deny", "host": "*.com"}, {"action": "allow", "host": "localhost"},
                      {"action": "allow", "host": "_service._tcp.example.com."},
                      {"action": "allow", "host": "xn--caf-dma.example", "ports": "1-65535"}])"));
}

TEST(ConfigClients, PoolListErrors) {
    const auto with = [](const std::string& pools) {
        return R"({"pools": {"p": {}}, "default_pool": "p",
                   "clients": [{"name": "a", "match": {"uid": 1}, "pools": )" + pools + "}]}";
    };
    EXPECT_ERROR(with("[]"), "clients[0].pools", "non-empty");
    EXPECT_ERROR(with(R"("p")"), "clients[0].pools", "array");
    EXPECT_ERROR(with(R"(["p", "q"])"), "clients[0].pools[1]", "no pool named \"q\"");
    EXPECT_ERROR(with(R"(["p", "p"])"), "clients[0].pools[1]", "listed twice");
    EXPECT_ERROR(with(R"([3])"), "clients[0].pools[0]", "the name of a pool");
    EXPECT_ERROR(R"({"default_client": {"pools": ["nope"]}})", "default_client.pools[0]", "no pool named \"nope\"");
}

TEST(ConfigClients, DefaultClientKeys) {
    EXPECT_ERROR(R"({"default_client": {"match": {"uid": 1}}})", "default_client.match", "unknown key");
    EXPECT_ERROR(R"({"default_client": []})", "default_client", "expected an object");
    EXPECT_ERROR(R"({"default_client": {"name": "x"}, "clients": [{"name": "x", "match": {"uid": 1}}]})",
                 "clients[0].name", "another rule");
    const auto c = parse_ok(R"({"default_client": {"deny_private": true, "otherwise": "deny"}})");
    EXPECT_EQ(c->clients.default_rule().name, "default");
    EXPECT_TRUE(c->clients.default_rule().deny_private);
    EXPECT_EQ(c->clients.default_rule().otherwise, Action::deny);
}

TEST(ConfigClients, AdoptIsAllowedInOwnNamespaceByDefaultAndSetPerRule) {
    const auto c = parse_ok(R"({
        "clients": [{"name": "no-adopt", "match": {"uid": 1}, "adopt": false},
                    {"name": "any-netns", "match": {"uid": 2}, "adopt_other_netns": true},
                    {"name": "plain", "match": {"uid": 3}}],
        "default_client": {"adopt": false}
    })");
    const auto& r = c->clients.rules();
    ASSERT_EQ(r.size(), 3u);
    EXPECT_FALSE(r[0].adopt);
    EXPECT_FALSE(r[0].adopt_other_netns);
    EXPECT_TRUE(r[1].adopt);
    EXPECT_TRUE(r[1].adopt_other_netns);
    EXPECT_TRUE(r[2].adopt);
    EXPECT_FALSE(r[2].adopt_other_netns);
    EXPECT_FALSE(c->clients.default_rule().adopt);
    EXPECT_TRUE(default_config()->clients.default_rule().adopt);
    EXPECT_FALSE(default_config()->clients.default_rule().adopt_other_netns);
    EXPECT_ERROR(R"({"clients": [{"name": "a", "match": {"uid": 1}, "adopt": "yes"}]})", "clients[0].adopt",
                 "true or false");
    EXPECT_ERROR(R"({"default_client": {"adopt_other_netns": 1}})", "default_client.adopt_other_netns",
                 "true or false");
}

TEST(ConfigClients, DenyPrivateAndDenyHostDefaultToTrueAndOptOutPerRule) {
    const auto c = parse_ok(R"({
        "clients": [{"name": "open", "match": {"uid": 1}, "deny_private": false, "deny_host": false},
                    {"name": "half", "match": {"uid": 2}, "deny_host": false},
                    {"name": "plain", "match": {"uid": 3}},
                    {"name": "explicit", "match": {"uid": 4}, "deny_private": true, "deny_host": true}],
        "default_client": {"deny_private": false}
    })");
    const auto& r = c->clients.rules();
    ASSERT_EQ(r.size(), 4u);
    EXPECT_FALSE(r[0].deny_private);
    EXPECT_FALSE(r[0].deny_host);
    EXPECT_TRUE(r[1].deny_private);
    EXPECT_FALSE(r[1].deny_host);
    EXPECT_TRUE(r[2].deny_private);
    EXPECT_TRUE(r[2].deny_host);
    EXPECT_TRUE(r[3].deny_private);
    EXPECT_TRUE(r[3].deny_host);
    EXPECT_FALSE(c->clients.default_rule().deny_private);
    EXPECT_TRUE(c->clients.default_rule().deny_host);
    const auto d = parse_ok(R"({"default_client": {"deny_host": false}})");
    EXPECT_FALSE(d->clients.default_rule().deny_host);
    EXPECT_TRUE(d->clients.default_rule().deny_private);
}

TEST(ConfigClients, LimitsAreParsed) {
    const auto c = parse_ok(R"({
        "clients": [{"name": "sandbox", "match": {"uid": 1000},
                     "limits": {"max_inflight_per_connection": 8, "max_inflight_per_uid": 64,
                                "requests_per_second": 2.5, "burst": 20, "max_connections_per_uid": 4}},
                    {"name": "rate-only", "match": {"uid": 1001}, "limits": {"requests_per_second": 2.5}},
                    {"name": "none", "match": {"uid": 1002}, "limits": {}}],
        "default_client": {"limits": {"max_inflight_per_uid": 1000000, "requests_per_second": 0.01}}})");
    const auto& l = c->clients.rules()[0].limits;
    EXPECT_EQ(l.max_inflight_per_connection, 8u);
    EXPECT_EQ(l.max_inflight_per_uid, 64u);
    ASSERT_TRUE(l.rate);
    EXPECT_EQ(l.rate->per_second, 2.5);
    EXPECT_EQ(l.rate->burst, 20u);
    EXPECT_EQ(l.max_connections_per_uid, 4u);
    // Without burst: one second's worth, rounded up.
    ASSERT_TRUE(c->clients.rules()[1].limits.rate);
    EXPECT_EQ(c->clients.rules()[1].limits.rate->burst, 3u);
    const auto& none = c->clients.rules()[2].limits;
    EXPECT_FALSE(none.max_inflight_per_connection || none.max_inflight_per_uid || none.rate ||
                 none.max_connections_per_uid);
    const auto& d = c->clients.default_rule().limits;
    EXPECT_EQ(d.max_inflight_per_uid, 1000000u);
    ASSERT_TRUE(d.rate);
    EXPECT_EQ(d.rate->burst, 1u);  // at least one token
    EXPECT_FALSE(default_config()->clients.default_rule().limits.rate);  // no limits unless configured
}

TEST(ConfigClients, LimitErrorsNameTheirPath) {
    const auto with = [](const std::string& limits) {
        return R"({"clients": [{"name": "a", "match": {"uid": 1}, "limits": )" + limits + "}]}";
    };
    for (const char* key : {"max_inflight_per_connection", "max_inflight_per_uid", "max_connections_per_uid"}) {
        const auto path = std::string("clients[0].limits.") + key;
        EXPECT_ERROR(with(std::string("{\"") + key + "\": 0}"), path.c_str(), "expected an integer 1-1000000", "got 0");
        EXPECT_ERROR(with(std::string("{\"") + key + "\": 1000001}"), path.c_str(), "1-1000000");
        EXPECT_ERROR(with(std::string("{\"") + key + "\": 2.5}"), path.c_str(), "integer");
        EXPECT_ERROR(with(std::string("{\"") + key + "\": \"8\"}"), path.c_str(), "integer");
        parse_ok(with(std::string("{\"") + key + "\": 1}"));
        parse_ok(with(std::string("{\"") + key + "\": 1000000}"));
    }
    EXPECT_ERROR(with(R"({"requests_per_second": 0})"), "clients[0].limits.requests_per_second",
                 "expected a number 0.01-1000000", "got 0");
    EXPECT_ERROR(with(R"({"requests_per_second": 0.009})"), "clients[0].limits.requests_per_second");
    EXPECT_ERROR(with(R"({"requests_per_second": -5})"), "clients[0].limits.requests_per_second");
    EXPECT_ERROR(with(R"({"requests_per_second": 1000000.5})"), "clients[0].limits.requests_per_second");
    EXPECT_ERROR(with(R"({"requests_per_second": true})"), "clients[0].limits.requests_per_second");
    EXPECT_ERROR(with(R"({"requests_per_second": "10"})"), "clients[0].limits.requests_per_second");
    parse_ok(with(R"({"requests_per_second": 0.01})"));
    parse_ok(with(R"({"requests_per_second": 1000000})"));
    EXPECT_ERROR(with(R"({"burst": 5})"), "clients[0].limits.burst", "needs requests_per_second");
    EXPECT_ERROR(with(R"({"requests_per_second": 1, "burst": 0})"), "clients[0].limits.burst", "1-1000000");
    EXPECT_ERROR(with(R"({"max_inflight": 5})"), "clients[0].limits.max_inflight", "unknown key");
    EXPECT_ERROR(with("[]"), "clients[0].limits", "expected an object");
    EXPECT_ERROR(R"({"default_client": {"limits": {"burst": 2}}})", "default_client.limits.burst",
                 "needs requests_per_second");
}

TEST(ConfigClients, AtMost256Rules) {
    std::string rules = "[";
    for (int i = 0; i < 257; ++i)
        rules += std::string(i ? "," : "") + R"({"name": "r)" + std::to_string(i) + R"(", "match": {"uid": 1}})";
    EXPECT_ERROR(R"({"clients": )" + rules + "]}", "clients:", "at most 256");
}

}  // namespace
}  // namespace egress
