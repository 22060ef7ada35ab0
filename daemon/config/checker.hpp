// Internal to the config loader: walks a JSON document and reports each
// problem with its JSON path and the offending value.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace egress::config_detail {

using json = nlohmann::json;

inline std::string show(const json& v) {
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

    bool boolean(const json& v, const std::string& path, bool& out) {
        if (!v.is_boolean()) {
            error(path, "expected true or false", v);
            return false;
        }
        out = v.get<bool>();
        return true;
    }

    std::optional<std::string> string(const json& v, const std::string& path, const char* what) {
        if (!v.is_string() || v.get<std::string>().empty()) {
            error(path, std::string("expected ") + what, v);
            return std::nullopt;
        }
        return v.get<std::string>();
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

}  // namespace egress::config_detail
