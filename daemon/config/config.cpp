#include "config.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <map>

namespace egress {
namespace {

using json = nlohmann::json;

std::string show(const json& v) {
    auto s = v.dump();
    return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

// Walks a JSON object, reporting each problem with its path.
class Checker {
public:
    explicit Checker(std::vector<std::string>& errors) : errors_(errors) {}

    void error(const std::string& path, const std::string& what, const json& value) {
        errors_.push_back(path + ": " + what + ", got " + show(value));
    }

    // Visits each key of `obj` through its handler; unknown keys are errors.
    void object(const json& obj, const std::string& path,
                const std::map<std::string, std::function<void(const json&, const std::string&)>>& keys) {
        if (!obj.is_object()) {
            error(path.empty() ? "(top level)" : path, "expected an object", obj);
            return;
        }
        for (const auto& [key, value] : obj.items()) {
            const auto child = path.empty() ? key : path + "." + key;
            const auto it = keys.find(key);
            if (it == keys.end())
                error(child, "unknown key", value);
            else
                it->second(value, child);
        }
    }

    void uint(const json& v, const std::string& path, std::uint32_t lo, std::uint32_t hi, std::uint32_t& out) {
        if (!v.is_number_integer() || v.get<std::int64_t>() < lo || v.get<std::int64_t>() > hi) {
            error(path, "expected an integer " + std::to_string(lo) + "-" + std::to_string(hi), v);
            return;
        }
        out = v.get<std::uint32_t>();
    }

private:
    std::vector<std::string>& errors_;
};

}  // namespace

bool valid_log_level(std::string_view l) {
    return l == "trace" || l == "debug" || l == "info" || l == "warn" || l == "error" || l == "critical" ||
           l == "off";
}

ConfigPtr default_config() { return std::make_shared<const Config>(); }

ConfigLoad parse_config(std::string_view text) {
    ConfigLoad load;
    json doc;
    try {
        doc = json::parse(text.begin(), text.end());
    } catch (const json::parse_error& e) {
        load.errors.push_back(std::string("(document): not valid JSON: ") + e.what());
        return load;
    }
    Config c;
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
            });
        }},
        {"log_level", [&](const json& v, const std::string& p) {
            if (!v.is_string() || !valid_log_level(v.get<std::string>()))
                ck.error(p, "expected one of trace, debug, info, warn, error, critical, off", v);
            else
                c.log_level = v.get<std::string>();
        }},
        {"connect", [&](const json& v, const std::string& p) {
            ck.object(v, p, {
                {"default_timeout_ms", [&](const json& s, const std::string& sp) {
                    ck.uint(s, sp, 1, 600000, c.default_timeout_ms);
                }},
                {"max_timeout_ms", [&](const json& s, const std::string& sp) {
                    ck.uint(s, sp, 1, 600000, c.max_timeout_ms);
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
    });
    if (c.default_timeout_ms > c.max_timeout_ms)
        load.errors.push_back("connect.default_timeout_ms: must not exceed connect.max_timeout_ms (" +
                              std::to_string(c.max_timeout_ms) + "), got " + std::to_string(c.default_timeout_ms));
    if (load.errors.empty()) load.config = std::make_shared<const Config>(std::move(c));
    return load;
}

}  // namespace egress
