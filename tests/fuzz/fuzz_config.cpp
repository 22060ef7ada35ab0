// libFuzzer target: parse_config on arbitrary text.
// Invariants, beyond not crashing or throwing:
// - it returns a config or errors, never both, never neither;
// - every error begins with a JSON path into the document ("pools.a.sources[2]",
//   or a key the document lacks under an existing object) or "(document)" /
//   "(top level)" when there is no object to point into, then ": " and a reason;
// - an accepted config holds what parse_config promises: a default pool that
//   exists, routes to existing pools, values within their documented bounds;
// - parsing is deterministic.
#include <nlohmann/json.hpp>

#include <cctype>
#include <set>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "invariant.hpp"

namespace {

using namespace egress;
using egress::fuzz::require;
using json = nlohmann::json;

// A key the document lacks but an error may name: a config key, [a-z_]+.
std::size_t config_key_length(std::string_view s) {
    std::size_t n = 0;
    while (n < s.size() && (std::islower(static_cast<unsigned char>(s[n])) || s[n] == '_')) ++n;
    return n;
}

// One way to read the start of an error as a path: what follows it, and
// whether the path ended in " and " (another path follows) or ": ".
struct Reading {
    std::string_view tail;
    bool and_follows;
};

// Every way `rest` starts with a path from `node`, ending in ": " or " and ".
// Keys may themselves contain '.', '[', ": " or " and ", so every key that
// fits is tried, and every reading kept.
void paths_from(const json& node, std::string_view rest, bool top, std::vector<Reading>& out) {
    if (!top) {
        if (rest.substr(0, 2) == ": ") out.push_back({rest.substr(2), false});
        if (rest.substr(0, 5) == " and ") out.push_back({rest.substr(5), true});
    }
    if (node.is_object()) {
        const auto sep = top ? std::string_view() : std::string_view(".");
        if (rest.substr(0, sep.size()) != sep) return;
        const auto after = rest.substr(sep.size());
        for (const auto& [key, value] : node.items())
            if (after.substr(0, key.size()) == key) paths_from(value, after.substr(key.size()), false, out);
        // A missing key, named as such: it must end the path.
        const auto n = config_key_length(after);
        if (n > 0 && !node.contains(std::string(after.substr(0, n))) && after.substr(n, 2) == ": ")
            out.push_back({after.substr(n + 2), false});
        return;
    }
    if (node.is_array() && rest.substr(0, 1) == "[") {
        std::size_t i = 0, k = 1;
        while (k < rest.size() && std::isdigit(static_cast<unsigned char>(rest[k]))) i = i * 10 + (rest[k++] - '0');
        if (k > 1 && k < 8 && rest.substr(k, 1) == "]" && i < node.size())
            paths_from(node[i], rest.substr(k + 1), false, out);
    }
}

// "PATH: reason", or "PATH and PATH: reason" ("routes[0] and routes[3]: both match ...").
bool path_then_reason(const json& doc, std::string_view e) {
    std::vector<Reading> readings;
    paths_from(doc, e, true, readings);
    for (const auto& r : readings)
        if (r.and_follows ? path_then_reason(doc, r.tail) : !r.tail.empty()) return true;
    return false;
}

void check_error(const json& doc, bool parsed, const std::string& error) {
    const std::string_view e = error;
    if (!parsed) return require(e.substr(0, 12) == "(document): ", "unparsable document reported as: " + error);
    if (!doc.is_object()) return require(e.substr(0, 13) == "(top level): ", "non-object document reported as: " + error);
    require(path_then_reason(doc, e), "error does not begin with a JSON path in the document and a reason: " + error);
}

void check_config(const Config& c) {
    require(!c.pools.empty(), "config without pools");
    std::set<std::string> names;
    for (const auto& p : c.pools) {
        require(names.insert(p.name).second, "pool \"" + p.name + "\" twice");
        require(!p.name.empty() && p.name.size() <= 64, "pool name of " + std::to_string(p.name.size()) + " bytes");
        require(p.window_size >= 1 && p.window_size <= 65535 && p.max_window_retries <= 64 &&
                    p.userspace_max_attempts >= 1 && p.userspace_max_attempts <= 64,
                "pool \"" + p.name + "\" has a bound outside its documented range");
        if (p.port_range) require(p.port_range->lo >= 1 && p.port_range->lo <= p.port_range->hi, "bad pool port range");
    }
    require(c.find_pool(c.default_pool) != nullptr, "default_pool \"" + c.default_pool + "\" does not exist");
    for (const auto& r : c.routes) require(c.find_pool(r.pool) != nullptr, "route to missing pool \"" + r.pool + "\"");
    require(c.limits.max_queued_replies >= c.limits.max_inflight_per_client, "queue smaller than per-client in-flight");
    require(c.default_timeout_ms >= 1 && c.default_timeout_ms <= c.max_timeout_ms && c.max_timeout_ms <= 600000,
            "timeouts outside their bounds");
    require(c.limits.max_inflight >= 1 && c.limits.max_clients >= 1, "a limit of 0");
    require(c.socket_path.empty() || (c.socket_path.front() == '/' && c.socket_path.size() <= 107), "bad socket path");
    require(c.socket_mode <= 07777, "socket mode above 07777");
    require(valid_log_level(c.log_level) && valid_listen_address(c.metrics_listen), "bad log level or metrics address");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto load = parse_config(text);
    require((load.config != nullptr) != !load.errors.empty(), "parse_config returned both or neither of config, errors");
    const auto again = parse_config(text);
    require(again.errors == load.errors && (again.config != nullptr) == (load.config != nullptr),
            "parse_config is not deterministic");
    if (load.config) {
        check_config(*load.config);
        return 0;
    }
    const auto doc = json::parse(text.begin(), text.end(), nullptr, false);
    for (const auto& e : load.errors) check_error(doc, !doc.is_discarded(), e);
    return 0;
}
