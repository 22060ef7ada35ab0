#include "config.hpp"


#include <algorithm>
#include <set>

#include "config/checker.hpp"
#include "config/dns.hpp"
#include "config/clients.hpp"

namespace egress {
namespace {

using config_detail::Checker;
using config_detail::json;

void parse_pool(Checker& ck, const json& v, const std::string& path, PoolConfig& pool) {
    ck.object(v, path, {
        {"sources", [&](const json& s, const std::string& sp) {
            if (!s.is_array()) return ck.error(sp, "expected an array of IP addresses", s);
            for (std::size_t i = 0; i < s.size(); ++i) {
                const auto ip = sp + "[" + std::to_string(i) + "]";
                const auto text = ck.string(s[i], ip, "an IP address");
                if (!text) continue;
                const auto ep = parse_address(*text);
                if (!ep) ck.error(ip, "expected an IPv4 or IPv6 address", s[i]);
                else if (std::find(pool.sources.begin(), pool.sources.end(), *ep) != pool.sources.end())
                    ck.error(ip, "duplicate source address", s[i]);
                else pool.sources.push_back(*ep);
            }
        }},
        {"selection", [&](const json& s, const std::string& sp) {
            const auto sel = s.is_string() ? parse_selection(s.get<std::string>()) : std::nullopt;
            if (!sel) ck.error(sp, "expected round-robin, random or least-loaded", s);
            else pool.selection = *sel;
        }},
        {"port_strategy", [&](const json& s, const std::string& sp) {
            const auto st = s.is_string() ? parse_port_strategy(s.get<std::string>()) : std::nullopt;
            if (!st) ck.error(sp, "expected auto, window, kernel-range, userspace-random or kernel-default", s);
            else pool.port_strategy = *st;
        }},
        {"port_range", [&](const json& s, const std::string& sp) {
            const auto r = s.is_string() ? parse_port_range(s.get<std::string>()) : std::nullopt;
            if (!r) ck.error(sp, "expected \"LO-HI\" with 1 <= LO <= HI <= 65535", s);
            else pool.port_range = *r;
        }},
        {"window_size", [&](const json& s, const std::string& sp) { ck.uint(s, sp, 1, 65535, pool.window_size); }},
        {"max_window_retries", [&](const json& s, const std::string& sp) {
            ck.uint(s, sp, 0, 64, pool.max_window_retries);
        }},
        {"userspace_max_attempts", [&](const json& s, const std::string& sp) {
            ck.uint(s, sp, 1, 64, pool.userspace_max_attempts);
        }},
        {"client_selectable", [&](const json& s, const std::string& sp) { ck.boolean(s, sp, pool.client_selectable); }},
    });
}

// Appends a valid route to `routes` and its JSON path to `paths`.
void parse_route(Checker& ck, const json& v, const std::string& path, std::vector<Route>& routes,
                 std::vector<std::string>& paths) {
    Route r;
    bool ok = true;
    if (v.is_object() && !v.contains("dest")) {
        ck.error(path + ".dest", "required: a destination prefix such as \"192.0.2.0/24\"", v);
        ok = false;
    }
    if (v.is_object() && !v.contains("pool")) {
        ck.error(path + ".pool", "required: the name of a pool", v);
        ok = false;
    }
    ck.object(v, path, {
        {"dest", [&](const json& s, const std::string& sp) {
            const auto text = ck.string(s, sp, "a destination prefix such as \"192.0.2.0/24\"");
            if (!text) return void(ok = false);
            auto p = parse_prefix(*text);
            if (!p) {
                ck.error(sp, p.error().message, s);
                ok = false;
            } else {
                r.dest = *p;
            }
        }},
        {"ports", [&](const json& s, const std::string& sp) {
            const auto pr = s.is_string() ? parse_port_range(s.get<std::string>()) : std::nullopt;
            if (!pr) {
                ck.error(sp, "expected \"PORT\" or \"LO-HI\"", s);
                ok = false;
            } else {
                r.ports = *pr;
            }
        }},
        {"pool", [&](const json& s, const std::string& sp) {
            const auto name = ck.string(s, sp, "the name of a pool");
            if (!name) ok = false;
            else r.pool = *name;
        }},
    });
    if (ok && v.is_object()) {
        routes.push_back(r);
        paths.push_back(path);
    }
}

// Every key that appears more than once in one object, named by its path.
// JSON parsers disagree on which of two equal keys wins (here the last, in
// silence), so a config file that has them says two things at once. Only
// places that survive in the parsed document are named: a duplicate inside
// a value that a later duplicate replaced is reported as that outer one.
std::vector<std::string> duplicate_keys(std::string_view text) {
    struct Step {
        bool array = false;
        std::string key;        // objects: the key being read
        std::size_t index = 0;  // arrays: the element being read
    };
    struct Frame {
        Step at;
        std::set<std::string> keys;
    };
    std::vector<Frame> stack;
    std::vector<std::vector<Step>> found;
    const auto element_done = [&] {
        if (!stack.empty() && stack.back().at.array) ++stack.back().at.index;
    };
    json::parser_callback_t cb = [&](int, json::parse_event_t event, json& parsed) {
        switch (event) {
        case json::parse_event_t::object_start:
            stack.push_back(Frame{});
            break;
        case json::parse_event_t::array_start:
            stack.push_back(Frame{Step{true}, {}});
            break;
        case json::parse_event_t::key:
            if (!stack.empty()) {
                auto& top = stack.back();
                top.at.key = parsed.get<std::string>();
                if (!top.keys.insert(top.at.key).second) {
                    std::vector<Step> path;
                    for (const auto& f : stack) path.push_back(f.at);
                    found.push_back(std::move(path));
                }
            }
            break;
        case json::parse_event_t::object_end:
        case json::parse_event_t::array_end:
            if (!stack.empty()) stack.pop_back();
            element_done();
            break;
        case json::parse_event_t::value:
            element_done();
            break;
        }
        return true;
    };
    json doc;
    try {
        doc = json::parse(text.begin(), text.end(), cb);
    } catch (const json::exception&) {
        return {};  // not JSON: parse_config says so
    }
    std::vector<std::string> errors;
    for (const auto& path : found) {
        const json* node = &doc;
        std::string name;
        for (std::size_t i = 0; node && i < path.size(); ++i) {
            const auto& step = path[i];
            // Named as Checker names paths (an empty key included).
            if (step.array) {
                name += "[" + std::to_string(step.index) + "]";
                node = node->is_array() && step.index < node->size() ? &(*node)[step.index] : nullptr;
            } else {
                name = name.empty() ? step.key : name + "." + step.key;
                if (i + 1 < path.size())
                    node = node->is_object() && node->contains(step.key) ? &(*node)[step.key] : nullptr;
                else if (!node->is_object() || !node->contains(step.key))
                    node = nullptr;
            }
        }
        if (node) errors.push_back(name + ": duplicate key (only one of them would apply)");
    }
    return errors;
}

}  // namespace

const PoolConfig* Config::find_pool(std::string_view name) const {
    for (const auto& p : pools)
        if (p.name == name) return &p;
    return nullptr;
}

bool valid_listen_address(std::string_view text) {
    if (text.empty()) return true;
    const auto ep = parse_endpoint(text);
    return ep.ok() || (text.size() > 2 && text.substr(text.size() - 2) == ":0" &&
                       parse_endpoint(std::string(text.substr(0, text.size() - 2)) + ":1").ok());
}

bool valid_log_level(std::string_view l) {
    return l == "trace" || l == "debug" || l == "info" || l == "warn" || l == "error" || l == "critical" ||
           l == "off";
}

ConfigPtr default_config() { return parse_config("{}").config; }

ConfigLoad parse_config(std::string_view text, const NameResolver& names) {
    ConfigLoad load;
    json doc;
    try {
        doc = json::parse(text.begin(), text.end());
    } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e400
        load.errors.push_back(std::string("(document): not valid JSON: ") + e.what());
        return load;
    }
    load.errors = duplicate_keys(text);
    Config c;
    std::vector<std::string> route_paths;  // JSON path of each entry of c.routes
    config_detail::ClientRules clients;
    clients.default_rule.name = kDefaultRuleName;
    Checker ck(load.errors);
    ck.object(doc, "", {
        {"socket", [&](const json& v, const std::string& p) {
            ck.object(v, p, {
                {"path", [&](const json& s, const std::string& sp) {
                    if (!s.is_string() || s.get<std::string>().empty() || s.get<std::string>().front() != '/' ||
                        s.get<std::string>().size() > 107)
                        ck.error(sp, "expected an absolute path of at most 107 bytes", s);
                    else
                        c.socket_path = s.get<std::string>();
                }},
                {"mode", [&](const json& s, const std::string& sp) {
                    // An octal string ("0660") so that it reads like chmod's.
                    std::uint32_t mode = 0;
                    bool good = s.is_string() && !s.get<std::string>().empty() && s.get<std::string>().size() <= 4;
                    if (good)
                        for (char ch : s.get<std::string>()) {
                            if (ch < '0' || ch > '7') good = false;
                            mode = mode * 8 + static_cast<std::uint32_t>(ch - '0');
                        }
                    if (!good)
                        ck.error(sp, "expected an octal mode string such as \"0660\"", s);
                    else
                        c.socket_mode = mode;
                }},
                {"owner", [&](const json& s, const std::string& sp) {
                    c.socket_owner = config_detail::parse_owner(ck, s, sp, names.user, "user");
                }},
                {"group", [&](const json& s, const std::string& sp) {
                    c.socket_group = config_detail::parse_owner(ck, s, sp, names.group, "group");
                }},
            });
        }},
        {"threads", [&](const json& v, const std::string& p) { ck.uint(v, p, 0, kMaxThreads, c.threads); }},
        {"log_level", [&](const json& v, const std::string& p) {
            if (!v.is_string() || !valid_log_level(v.get<std::string>()))
                ck.error(p, "expected one of trace, debug, info, warn, error, critical, off", v);
            else
                c.log_level = v.get<std::string>();
        }},
        {"metrics", [&](const json& v, const std::string& p) {
            ck.object(v, p, {
                {"listen", [&](const json& s, const std::string& sp) {
                    if (!s.is_string() || !valid_listen_address(s.get<std::string>()))
                        ck.error(sp, "expected \"ADDRESS:PORT\", \"[IPV6]:PORT\" or \"\" (no metrics endpoint)", s);
                    else
                        c.metrics_listen = s.get<std::string>();
                }},
            });
        }},
        {"connect", [&](const json& v, const std::string& p) {
            ck.object(v, p, {
                {"default_timeout_ms", [&](const json& s, const std::string& sp) {
                    ck.uint(s, sp, 1, 600000, c.default_timeout_ms);
                }},
                {"max_timeout_ms", [&](const json& s, const std::string& sp) {
                    ck.uint(s, sp, 1, 600000, c.max_timeout_ms);
                }},
                // RFC 8305 section 5: at least 10 ms, at most 2 s.
                {"attempt_delay_ms", [&](const json& s, const std::string& sp) {
                    ck.uint(s, sp, 10, 2000, c.attempt_delay_ms);
                }},
                {"resolution_delay_ms", [&](const json& s, const std::string& sp) {
                    ck.uint(s, sp, 0, 2000, c.resolution_delay_ms);
                }},
            });
        }},
        {"dns", [&](const json& v, const std::string& p) { config_detail::parse_dns(ck, v, p, c.dns); }},
        {"shutdown", [&](const json& v, const std::string& p) {
            ck.object(v, p, {
                {"drain_timeout_ms", [&](const json& s, const std::string& sp) {
                    ck.uint(s, sp, 0, 600000, c.drain_timeout_ms);
                }},
            });
        }},
        {"limits", [&](const json& v, const std::string& p) {
            ck.object(v, p, {
                {"max_inflight", [&](const json& s, const std::string& sp) {
                    ck.uint(s, sp, 1, 1000000, c.limits.max_inflight);
                }},
                {"max_inflight_per_client", [&](const json& s, const std::string& sp) {
                    ck.uint(s, sp, 1, 1000000, c.limits.max_inflight_per_client);
                }},
                {"max_clients", [&](const json& s, const std::string& sp) {
                    ck.uint(s, sp, 1, 1000000, c.limits.max_clients);
                }},
                {"max_queued_replies", [&](const json& s, const std::string& sp) {
                    ck.uint(s, sp, 1, 1000000, c.limits.max_queued_replies);
                }},
            });
        }},
        {"pools", [&](const json& v, const std::string& p) {
            if (!v.is_object() || v.empty()) return ck.error(p, "expected an object of named pools", v);
            for (const auto& [name, spec] : v.items()) {
                PoolConfig pool;
                pool.name = name;
                // Clients name pools in requests: 1-64 bytes, printable.
                const bool printable = std::all_of(name.begin(), name.end(),
                                                   [](unsigned char ch) { return ch >= 0x20 && ch != 0x7F; });
                if (name.empty() || name.size() > 64 || !printable)
                    ck.error(p + "." + name, "pool names are 1-64 printable bytes", name);
                parse_pool(ck, spec, p + "." + name, pool);
                c.pools.push_back(std::move(pool));
            }
        }},
        {"routes", [&](const json& v, const std::string& p) {
            if (!v.is_array()) return ck.error(p, "expected an array of routes", v);
            for (std::size_t i = 0; i < v.size(); ++i) parse_route(ck, v[i], p + "[" + std::to_string(i) + "]", c.routes, route_paths);
        }},
        {"default_pool", [&](const json& v, const std::string& p) {
            if (auto name = ck.string(v, p, "the name of a pool")) c.default_pool = *name;
        }},
        {"least_loaded_cache_ms", [&](const json& v, const std::string& p) {
            ck.uint(v, p, 0, 60000, c.least_loaded_cache_ms);
        }},
        {"clients", [&](const json& v, const std::string& p) { config_detail::parse_clients(ck, v, p, names, clients); }},
        {"default_client", [&](const json& v, const std::string& p) {
            config_detail::parse_default_client(ck, v, p, clients);
        }},
    });
    if (c.pools.empty()) {
        PoolConfig builtin;
        builtin.name = "default";
        builtin.client_selectable = true;
        c.pools.push_back(builtin);
    }
    if (!c.find_pool(c.default_pool))
        load.errors.push_back("default_pool: no pool named \"" + c.default_pool + "\"" +
                              (doc.contains("default_pool") ? "" : " (name one with default_pool)"));
    for (std::size_t i = 0; i < c.routes.size(); ++i)
        if (!c.find_pool(c.routes[i].pool))
            load.errors.push_back(route_paths[i] + ".pool: no pool named \"" + c.routes[i].pool + "\"");
    for (const auto& [i, j] : route_conflicts(c.routes))
        load.errors.push_back(route_paths[i] + " and " + route_paths[j] + ": both match " + to_string(c.routes[i].dest) +
                              " ports " + to_string(c.routes[i].ports) + " with equal specificity");
    std::vector<std::string> pool_names;
    for (const auto& p : c.pools) pool_names.push_back(p.name);
    config_detail::check_clients(clients, pool_names, load.errors);
    c.clients = ClientPolicy(std::move(clients.rules), std::move(clients.default_rule));
    // Replies to connects a client was allowed to have in flight must fit in
    // its queue: only a client that keeps sending without reading is dropped.
    if (c.limits.max_queued_replies < c.limits.max_inflight_per_client)
        load.errors.push_back("limits.max_queued_replies: must be at least limits.max_inflight_per_client (" +
                              std::to_string(c.limits.max_inflight_per_client) + "), got " +
                              std::to_string(c.limits.max_queued_replies));
    if (c.default_timeout_ms > c.max_timeout_ms)
        load.errors.push_back("connect.default_timeout_ms: must not exceed connect.max_timeout_ms (" +
                              std::to_string(c.max_timeout_ms) + "), got " + std::to_string(c.default_timeout_ms));
    if (load.errors.empty()) load.config = std::make_shared<const Config>(std::move(c));
    return load;
}

}  // namespace egress
