// The JSON configuration: defaults, every key, and every way to get it wrong.
#include "config/config.hpp"

#include <gtest/gtest.h>

#include <string>

namespace egress {
namespace {

// The single error a document produces; fails the test if there are more or none.
std::string only_error(std::string_view json) {
    const auto load = parse_config(json);
    EXPECT_FALSE(load.config) << json;
    EXPECT_EQ(load.errors.size(), 1u) << json;
    return load.errors.empty() ? "" : load.errors.front();
}

ConfigPtr parse_ok(std::string_view json) {
    const auto load = parse_config(json);
    for (const auto& e : load.errors) ADD_FAILURE() << e;
    EXPECT_TRUE(load.config) << json;
    return load.config ? load.config : default_config();
}

void expect_defaults(const Config& c) {
    EXPECT_EQ(c.socket_path, "");
    EXPECT_EQ(c.socket_mode, 0660u);
    EXPECT_EQ(c.log_level, "info");
    EXPECT_EQ(c.default_timeout_ms, 3000u);
    EXPECT_EQ(c.max_timeout_ms, 30000u);
    EXPECT_EQ(c.drain_timeout_ms, 5000u);
    EXPECT_EQ(c.limits.max_inflight, 10000u);
    EXPECT_EQ(c.limits.max_inflight_per_client, 1024u);
    EXPECT_EQ(c.limits.max_clients, 2000u);
    EXPECT_EQ(c.limits.max_queued_replies, 2048u);
}

TEST(Config, Defaults) {
    expect_defaults(*default_config());
    expect_defaults(*parse_ok("{}"));
    expect_defaults(*parse_ok(R"({"socket": {}, "connect": {}, "limits": {}})"));
}

TEST(Config, EveryKeyIsParsed) {
    const auto c = parse_ok(R"({
        "socket": {"path": "/run/test/egressd.sock", "mode": "0600"},
        "log_level": "debug",
        "connect": {"default_timeout_ms": 1500, "max_timeout_ms": 9000},
        "shutdown": {"drain_timeout_ms": 0},
        "limits": {"max_inflight": 11, "max_inflight_per_client": 12, "max_clients": 13,
                   "max_queued_replies": 14}
    })");
    EXPECT_EQ(c->socket_path, "/run/test/egressd.sock");
    EXPECT_EQ(c->socket_mode, 0600u);
    EXPECT_EQ(c->log_level, "debug");
    EXPECT_EQ(c->default_timeout_ms, 1500u);
    EXPECT_EQ(c->max_timeout_ms, 9000u);
    EXPECT_EQ(c->drain_timeout_ms, 0u);
    EXPECT_EQ(c->limits.max_inflight, 11u);
    EXPECT_EQ(c->limits.max_inflight_per_client, 12u);
    EXPECT_EQ(c->limits.max_clients, 13u);
    EXPECT_EQ(c->limits.max_queued_replies, 14u);
}

TEST(Config, EachKeyAloneLeavesTheOthersAtTheirDefaults) {
    const auto c = parse_ok(R"({"limits": {"max_clients": 5}})");
    EXPECT_EQ(c->limits.max_clients, 5u);
    EXPECT_EQ(c->limits.max_inflight, 10000u);
    EXPECT_EQ(c->default_timeout_ms, 3000u);
}

TEST(Config, EveryLogLevel) {
    for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
        EXPECT_TRUE(valid_log_level(level)) << level;
        EXPECT_EQ(parse_ok(std::string(R"({"log_level": ")") + level + "\"}")->log_level, level);
    }
    for (const char* level : {"", "INFO", "warning", "verbose", "info "}) EXPECT_FALSE(valid_log_level(level)) << level;
}

TEST(Config, DuplicateKeysAreErrorsNamingTheirPath) {
    EXPECT_EQ(only_error(R"({"log_level": "info", "log_level": "debug"})"),
              "log_level: duplicate key (only one of them would apply)");
    EXPECT_EQ(only_error(R"({"connect": {"default_timeout_ms": 1000, "default_timeout_ms": 2000}})"),
              "connect.default_timeout_ms: duplicate key (only one of them would apply)");
    EXPECT_EQ(only_error(R"({"clients": [{"name": "a", "match": {"uid": 1}}, {"name": "b", "match": {"uid": 2}, "match": {"uid": 3}}]})"),
              "clients[1].match: duplicate key (only one of them would apply)");
    EXPECT_EQ(only_error(R"({"pools": {"p": {"sources": ["192.0.2.1"]}, "q": {}, "p": {}}, "default_pool": "q"})"),
              "pools.p: duplicate key (only one of them would apply)");
    // Equal keys in different objects are not duplicates.
    parse_ok(R"({"pools": {"p": {"selection": "random"}, "q": {"selection": "random"}}, "default_pool": "p"})");
    const auto two = parse_config(R"({"log_level": "info", "log_level": "info", "socket": {"mode": "0600", "mode": "0600"}})");
    EXPECT_FALSE(two.config);
    EXPECT_EQ(two.errors.size(), 2u);
}

TEST(Config, UnknownKeysNameTheirPath) {
    EXPECT_EQ(only_error(R"({"colour": "blue"})"), R"(colour: unknown key, got "blue")");
    EXPECT_EQ(only_error(R"({"limits": {"max_inflght": 5}})"), "limits.max_inflght: unknown key, got 5");
    EXPECT_EQ(only_error(R"({"socket": {"user": "root"}})"), R"(socket.user: unknown key, got "root")");
    EXPECT_EQ(only_error(R"({"connect": {"timeout_ms": 1}})"), "connect.timeout_ms: unknown key, got 1");
}

TEST(Config, WrongTypes) {
    EXPECT_EQ(only_error(R"({"socket": "/run/x.sock"})"), R"(socket: expected an object, got "/run/x.sock")");
    EXPECT_EQ(only_error(R"({"limits": [1, 2]})"), "limits: expected an object, got [1,2]");
    EXPECT_EQ(only_error(R"({"log_level": 5})"),
              "log_level: expected one of trace, debug, info, warn, error, critical, off, got 5");
    EXPECT_EQ(only_error(R"({"limits": {"max_clients": "10"}})"),
              R"(limits.max_clients: expected an integer 1-1000000, got "10")");
    for (const char* v : {"1.5", "true", "null", "[]", "{}"})
        EXPECT_EQ(only_error(std::string(R"({"connect": {"max_timeout_ms": )") + v + "}}"),
                  std::string("connect.max_timeout_ms: expected an integer 1-600000, got ") + v);
    EXPECT_EQ(only_error(R"({"socket": {"path": 7}})"),
              "socket.path: expected an absolute path of at most 107 bytes, got 7");
}

TEST(Config, TopLevelMustBeAnObject) {
    EXPECT_EQ(only_error("[]"), "(top level): expected an object, got []");
    EXPECT_EQ(only_error("42"), "(top level): expected an object, got 42");
}

TEST(Config, OutOfRangeValues) {
    EXPECT_EQ(only_error(R"({"connect": {"default_timeout_ms": 0}})"),
              "connect.default_timeout_ms: expected an integer 1-600000, got 0");
    EXPECT_EQ(only_error(R"({"connect": {"max_timeout_ms": 600001}})"),
              "connect.max_timeout_ms: expected an integer 1-600000, got 600001");
    EXPECT_EQ(only_error(R"({"shutdown": {"drain_timeout_ms": 600001}})"),
              "shutdown.drain_timeout_ms: expected an integer 0-600000, got 600001");
    EXPECT_EQ(only_error(R"({"shutdown": {"drain_ms": 1}})"), "shutdown.drain_ms: unknown key, got 1");
    for (const char* key : {"max_inflight", "max_inflight_per_client", "max_clients", "max_queued_replies"}) {
        for (const char* v : {"0", "-1", "1000001", "4294967297", "18446744073709551615"})
            EXPECT_EQ(only_error(std::string(R"({"limits": {")") + key + "\": " + v + "}}"),
                      std::string("limits.") + key + ": expected an integer 1-1000000, got " + v);
        // The range edges, each with companions that keep max_queued_replies >= max_inflight_per_client.
        const std::string k = key;
        parse_ok(k == "max_inflight_per_client" ? R"({"limits": {"max_inflight_per_client": 1}})"
                                                 : R"({"limits": {"max_inflight_per_client": 1, ")" + k + "\": 1}}");
        parse_ok(k == "max_queued_replies" ? R"({"limits": {"max_queued_replies": 1000000}})"
                                            : R"({"limits": {"max_queued_replies": 1000000, ")" + k + "\": 1000000}}");
    }
    const auto c = parse_ok(R"({"connect": {"default_timeout_ms": 1, "max_timeout_ms": 600000}})");
    EXPECT_EQ(c->default_timeout_ms, 1u);
    EXPECT_EQ(c->max_timeout_ms, 600000u);
}

TEST(Config, HugeNumbersAreRejectedNotWrapped) {
    // Larger than any integer type: nlohmann reads it as a float.
    EXPECT_EQ(only_error(R"({"limits": {"max_clients": 99999999999999999999}})").rfind("limits.max_clients:", 0), 0u);
}

TEST(Config, NumbersBeyondADoubleAreAnErrorNotAnException) {
    // nlohmann throws out_of_range, not parse_error, for these (found by tests/fuzz).
    for (const char* text : {R"({"limits": {"max_clients": 1e400}})", "-1e99999", R"([7e705])"}) {
        const auto e = only_error(text);
        EXPECT_EQ(e.rfind("(document): not valid JSON: ", 0), 0u) << text << " -> " << e;
        EXPECT_NE(e.find("number overflow"), std::string::npos) << e;
    }
}

TEST(Config, DefaultTimeoutMustNotExceedMax) {
    EXPECT_EQ(only_error(R"({"connect": {"default_timeout_ms": 5000, "max_timeout_ms": 4000}})"),
              "connect.default_timeout_ms: must not exceed connect.max_timeout_ms (4000), got 5000");
    // Against the built-in max when only the default is given.
    EXPECT_EQ(only_error(R"({"connect": {"default_timeout_ms": 40000}})"),
              "connect.default_timeout_ms: must not exceed connect.max_timeout_ms (30000), got 40000");
    EXPECT_EQ(only_error(R"({"connect": {"max_timeout_ms": 2000}})"),
              "connect.default_timeout_ms: must not exceed connect.max_timeout_ms (2000), got 3000");
    parse_ok(R"({"connect": {"default_timeout_ms": 4000, "max_timeout_ms": 4000}})");
}

TEST(Config, QueuedRepliesMustCoverTheInflightLimit) {
    EXPECT_EQ(only_error(R"({"limits": {"max_inflight_per_client": 5000}})"),
              "limits.max_queued_replies: must be at least limits.max_inflight_per_client (5000), got 2048");
    parse_ok(R"({"limits": {"max_inflight_per_client": 5000, "max_queued_replies": 5000}})");
}

TEST(Config, InvalidJson) {
    for (const char* text : {"", "{", "not json", R"({"log_level": "info",})", "{'log_level': 'info'}"}) {
        const auto e = only_error(text);
        EXPECT_EQ(e.rfind("(document): not valid JSON: ", 0), 0u) << text << " -> " << e;
    }
}

TEST(Config, EveryErrorIsReportedAtOnce) {
    const auto load = parse_config(R"({
        "colour": 1,
        "socket": {"path": "relative.sock", "mode": "999"},
        "log_level": "loud",
        "connect": {"default_timeout_ms": 0},
        "limits": {"max_clients": 0, "max_queued_replies": "many"}
    })");
    EXPECT_FALSE(load.config);
    const std::vector<std::string> paths = {"colour: ", "socket.path: ", "socket.mode: ", "log_level: ",
                                            "connect.default_timeout_ms: ", "limits.max_clients: ",
                                            "limits.max_queued_replies: "};
    ASSERT_EQ(load.errors.size(), paths.size());
    for (const auto& p : paths) {
        bool found = false;
        for (const auto& e : load.errors) found = found || e.rfind(p, 0) == 0;
        EXPECT_TRUE(found) << "no error for " << p;
    }
}

TEST(Config, SocketPath) {
    EXPECT_EQ(parse_ok(R"({"socket": {"path": "/x"}})")->socket_path, "/x");
    const std::string longest = "/" + std::string(106, 'p');
    EXPECT_EQ(parse_ok(R"({"socket": {"path": ")" + longest + "\"}}")->socket_path, longest);
    const std::string too_long = "\"/" + std::string(107, 'p') + "\"";
    for (const std::string& bad : {std::string("\"\""), std::string("\"relative.sock\""), std::string("\"./x.sock\""), too_long})
        EXPECT_EQ(only_error(R"({"socket": {"path": )" + bad + "}}")
                      .rfind("socket.path: expected an absolute path of at most 107 bytes, got ", 0),
                  0u)
            << bad;
}

TEST(Config, SocketModeIsOctal) {
    const std::pair<const char*, std::uint32_t> good[] = {
        {"0660", 0660}, {"660", 0660}, {"0600", 0600}, {"0666", 0666}, {"0", 0}, {"7", 07}, {"0777", 0777}};
    for (const auto& [text, mode] : good)
        EXPECT_EQ(parse_ok(std::string(R"({"socket": {"mode": ")") + text + "\"}}")->socket_mode, mode) << text;
    for (const char* bad : {"\"\"", "\"0880\"", "\"06600\"", "\"rw-rw----\"", "\"0o660\"", "\"-660\"", "660", "432"})
        EXPECT_EQ(only_error(std::string(R"({"socket": {"mode": )") + bad + "}}"),
                  std::string(R"(socket.mode: expected an octal mode string such as "0660", got )") + bad)
            << bad;
}

TEST(Config, LongValuesAreShortenedInMessages) {
    const auto e = only_error(R"({"log_level": ")" + std::string(200, 'x') + "\"}");
    EXPECT_LT(e.size(), 200u);
    EXPECT_NE(e.find("..."), std::string::npos);
}

// ---- pools and routes ----

TEST(ConfigPools, WithoutPoolsThereIsOneBuiltInDefault) {
    for (const auto& c : {default_config(), parse_ok("{}")}) {
        ASSERT_EQ(c->pools.size(), 1u);
        const auto& p = c->pools.front();
        EXPECT_EQ(p.name, "default");
        EXPECT_TRUE(p.sources.empty());
        EXPECT_TRUE(p.client_selectable);
        EXPECT_EQ(c->default_pool, "default");
        EXPECT_TRUE(c->routes.empty());
        EXPECT_EQ(c->least_loaded_cache_ms, 1000u);
        EXPECT_EQ(c->find_pool("default"), &p);
        EXPECT_EQ(c->find_pool("other"), nullptr);
    }
}

TEST(ConfigPools, EveryPoolKeyIsParsed) {
    const auto c = parse_ok(R"({
        "pools": {"fast": {"sources": ["192.0.2.1", "2001:db8::1"], "selection": "least-loaded",
                           "port_strategy": "userspace-random", "port_range": "40000-49999",
                           "window_size": 1000, "max_window_retries": 0, "userspace_max_attempts": 64,
                           "client_selectable": true}},
        "default_pool": "fast",
        "least_loaded_cache_ms": 0
    })");
    ASSERT_EQ(c->pools.size(), 1u);  // configured pools replace the built-in one
    const auto& p = c->pools.front();
    EXPECT_EQ(p.name, "fast");
    ASSERT_EQ(p.sources.size(), 2u);
    EXPECT_EQ(address_string(p.sources[0]), "192.0.2.1");
    EXPECT_EQ(address_string(p.sources[1]), "2001:db8::1");
    EXPECT_EQ(p.selection, Selection::least_loaded);
    EXPECT_EQ(p.port_strategy, PortStrategy::userspace_random);
    ASSERT_TRUE(p.port_range);
    EXPECT_EQ(p.port_range->lo, 40000);
    EXPECT_EQ(p.port_range->hi, 49999);
    EXPECT_EQ(p.window_size, 1000u);
    EXPECT_EQ(p.max_window_retries, 0u);
    EXPECT_EQ(p.userspace_max_attempts, 64u);
    EXPECT_TRUE(p.client_selectable);
    EXPECT_EQ(c->default_pool, "fast");
    EXPECT_EQ(c->least_loaded_cache_ms, 0u);
}

TEST(ConfigPools, PoolDefaults) {
    const auto c = parse_ok(R"({"pools": {"default": {}}})");
    const auto& p = c->pools.front();
    EXPECT_TRUE(p.sources.empty());
    EXPECT_EQ(p.selection, Selection::round_robin);
    EXPECT_EQ(p.port_strategy, PortStrategy::automatic);
    EXPECT_FALSE(p.port_range);
    EXPECT_EQ(p.window_size, 500u);
    EXPECT_EQ(p.max_window_retries, 8u);
    EXPECT_EQ(p.userspace_max_attempts, 16u);
    EXPECT_FALSE(p.client_selectable);  // a configured pool must opt in
}

TEST(ConfigPools, EverySelectionAndStrategyName) {
    const std::pair<const char*, Selection> selections[] = {
        {"round-robin", Selection::round_robin}, {"random", Selection::random}, {"least-loaded", Selection::least_loaded}};
    for (const auto& [text, sel] : selections)
        EXPECT_EQ(parse_ok(std::string(R"({"pools": {"default": {"selection": ")") + text + "\"}}}")->pools[0].selection,
                  sel)
            << text;
    const std::pair<const char*, PortStrategy> strategies[] = {{"auto", PortStrategy::automatic},
                                                               {"window", PortStrategy::window},
                                                               {"kernel-range", PortStrategy::kernel_range},
                                                               {"userspace-random", PortStrategy::userspace_random},
                                                               {"kernel-default", PortStrategy::kernel_default}};
    for (const auto& [text, st] : strategies)
        EXPECT_EQ(
            parse_ok(std::string(R"({"pools": {"default": {"port_strategy": ")") + text + "\"}}}")->pools[0].port_strategy,
            st)
            << text;
}

TEST(ConfigPools, PoolErrorsNameTheirPath) {
    const auto pool = [](const std::string& spec) { return only_error(R"({"pools": {"default": )" + spec + "}}"); };
    EXPECT_EQ(pool(R"({"colour": 1})"), "pools.default.colour: unknown key, got 1");
    EXPECT_EQ(pool(R"({"sources": "192.0.2.1"})"),
              R"(pools.default.sources: expected an array of IP addresses, got "192.0.2.1")");
    EXPECT_EQ(pool(R"({"sources": ["192.0.2.1", "example.com"]})"),
              R"(pools.default.sources[1]: expected an IPv4 or IPv6 address, got "example.com")");
    EXPECT_EQ(pool(R"({"sources": ["192.0.2.1", "192.0.2.1"]})"),
              R"(pools.default.sources[1]: duplicate source address, got "192.0.2.1")");
    EXPECT_EQ(pool(R"({"sources": [""]})").rfind("pools.default.sources[0]: ", 0), 0u);
    EXPECT_EQ(pool(R"({"selection": "fastest"})"),
              R"(pools.default.selection: expected round-robin, random or least-loaded, got "fastest")");
    EXPECT_EQ(pool(R"({"port_strategy": "magic"})").rfind("pools.default.port_strategy: expected auto, window", 0), 0u);
    for (const char* range : {R"("50000-40000")", R"("0-100")", R"("1-65536")", R"("a-b")", R"("")", "4000"})
        EXPECT_EQ(pool(std::string(R"({"port_range": )") + range + "}"),
                  std::string(R"(pools.default.port_range: expected "LO-HI" with 1 <= LO <= HI <= 65535, got )") + range);
    EXPECT_EQ(pool(R"({"window_size": 0})"), "pools.default.window_size: expected an integer 1-65535, got 0");
    EXPECT_EQ(pool(R"({"max_window_retries": 65})"),
              "pools.default.max_window_retries: expected an integer 0-64, got 65");
    EXPECT_EQ(pool(R"({"userspace_max_attempts": 0})"),
              "pools.default.userspace_max_attempts: expected an integer 1-64, got 0");
    EXPECT_EQ(pool(R"({"client_selectable": "yes"})"),
              R"(pools.default.client_selectable: expected true or false, got "yes")");
    EXPECT_EQ(pool("[]"), "pools.default: expected an object, got []");
}

TEST(ConfigPools, PoolsMustBeANonEmptyObject) {
    EXPECT_EQ(only_error(R"({"pools": {}})"), "pools: expected an object of named pools, got {}");
    EXPECT_EQ(only_error(R"({"pools": ["default"]})"), R"(pools: expected an object of named pools, got ["default"])");
}

TEST(ConfigPools, PoolNamesAreOneTo64PrintableBytes) {
    const std::string name(65, 'p');
    const auto load = parse_config(R"({"pools": {")" + name + R"(": {}, "default": {}}})");
    ASSERT_EQ(load.errors.size(), 1u);
    EXPECT_EQ(load.errors[0].rfind("pools." + name + ": pool names are 1-64 printable bytes", 0), 0u) << load.errors[0];
    parse_ok(R"({"pools": {")" + std::string(64, 'p') + R"(": {}, "default": {}}})");
    // No request could name these: empty, or with a NUL or control byte.
    for (const char* bad : {R"("")", R"("a\u0000b")", R"("tab\there")"}) {
        const auto l = parse_config(std::string(R"({"pools": {)") + bad + R"(: {}, "default": {}}})");
        ASSERT_EQ(l.errors.size(), 1u) << bad;
        EXPECT_NE(l.errors[0].find("pool names are 1-64 printable bytes"), std::string::npos) << l.errors[0];
    }
}

TEST(ConfigPools, DefaultPoolMustExist) {
    EXPECT_EQ(only_error(R"({"pools": {"fast": {}}})"),
              R"(default_pool: no pool named "default" (name one with default_pool))");
    EXPECT_EQ(only_error(R"({"pools": {"fast": {}}, "default_pool": "slow"})"), R"(default_pool: no pool named "slow")");
    EXPECT_EQ(only_error(R"({"default_pool": "fast"})"), R"(default_pool: no pool named "fast")");
    EXPECT_EQ(only_error(R"({"default_pool": ""})").rfind("default_pool: expected the name of a pool", 0), 0u);
}

TEST(ConfigRoutes, EveryRouteKeyIsParsed) {
    const auto c = parse_ok(R"({
        "pools": {"default": {}, "web": {}},
        "routes": [{"dest": "192.0.2.0/24", "ports": "443", "pool": "web"},
                   {"dest": "2001:db8::/32", "ports": "8000-8999", "pool": "web"},
                   {"dest": "198.51.100.7", "pool": "default"}]
    })");
    ASSERT_EQ(c->routes.size(), 3u);
    EXPECT_EQ(to_string(c->routes[0].dest), "192.0.2.0/24");
    EXPECT_EQ(c->routes[0].ports, (PortRange{443, 443}));
    EXPECT_EQ(c->routes[0].pool, "web");
    EXPECT_EQ(to_string(c->routes[1].dest), "2001:db8::/32");
    EXPECT_EQ(c->routes[1].ports, (PortRange{8000, 8999}));
    EXPECT_EQ(to_string(c->routes[2].dest), "198.51.100.7/32");  // a bare address is a host route
    EXPECT_EQ(c->routes[2].ports, (PortRange{1, 65535}));      // no ports: all of them
}

TEST(ConfigRoutes, RouteErrorsNameTheirPath) {
    const auto route = [](const std::string& r) { return only_error(R"({"routes": [)" + r + "]}"); };
    EXPECT_EQ(route(R"({"pool": "default"})").rfind("routes[0].dest: required", 0), 0u);
    EXPECT_EQ(route(R"({"dest": "192.0.2.0/24"})").rfind("routes[0].pool: required", 0), 0u);
    EXPECT_EQ(route(R"({"dest": "192.0.2.0/24", "pool": "nope"})"), R"(routes[0].pool: no pool named "nope")");
    EXPECT_EQ(route(R"({"dest": "192.0.2.0/24", "pool": "default", "via": 1})"), "routes[0].via: unknown key, got 1");
    EXPECT_EQ(route(R"({"dest": "192.0.2.0/24", "pool": "default", "ports": "0"})"),
              R"(routes[0].ports: expected "PORT" or "LO-HI", got "0")");
    const auto host_bits = route(R"({"dest": "192.0.2.1/24", "pool": "default"})");
    EXPECT_EQ(host_bits.rfind("routes[0].dest: ", 0), 0u) << host_bits;
    EXPECT_NE(host_bits.find("192.0.2.0/24"), std::string::npos) << host_bits;  // suggests the fix
    for (const char* dest : {"example.com", "192.0.2.0/33", "2001:db8::/129", "192.0.2.0/", "192.0.2.0/x"})
        EXPECT_EQ(route(std::string(R"({"pool": "default", "dest": ")") + dest + "\"}").rfind("routes[0].dest: ", 0), 0u)
            << dest;
    EXPECT_EQ(only_error(R"({"routes": {}})"), "routes: expected an array of routes, got {}");
    EXPECT_EQ(route(R"("192.0.2.0/24")"), R"(routes[0]: expected an object, got "192.0.2.0/24")");
}

TEST(ConfigRoutes, EqualRoutesConflict) {
    const auto e = only_error(R"({"routes": [{"dest": "192.0.2.0/24", "ports": "1-100", "pool": "default"},
                                             {"dest": "192.0.2.0/24", "ports": "51-150", "pool": "default"}]})");
    EXPECT_EQ(e.rfind("routes[0] and routes[1]", 0), 0u) << e;
    EXPECT_NE(e.find("192.0.2.0/24"), std::string::npos) << e;
    parse_ok(R"({"routes": [{"dest": "192.0.2.0/24", "ports": "1-100", "pool": "default"},
                            {"dest": "192.0.2.0/24", "ports": "101-200", "pool": "default"},
                            {"dest": "192.0.2.0/25", "ports": "1-100", "pool": "default"}]})");
}

TEST(ConfigRoutes, LeastLoadedCacheRange) {
    EXPECT_EQ(only_error(R"({"least_loaded_cache_ms": 60001})"),
              "least_loaded_cache_ms: expected an integer 0-60000, got 60001");
    EXPECT_EQ(parse_ok(R"({"least_loaded_cache_ms": 60000})")->least_loaded_cache_ms, 60000u);
}

}  // namespace
}  // namespace egress
