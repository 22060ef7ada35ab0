// Internal to the config loader: client rules ("clients", "default_client")
// and the socket's owner and group. Names are resolved here, at load.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/checker.hpp"
#include "policy/policy.hpp"

namespace egress::config_detail {

// Bounds on the policy's size: it is walked on every request.
inline constexpr std::size_t kMaxClientRules = 256;
inline constexpr std::size_t kMaxDestEntries = 1024;
// Bounds on a rule's limits: counts 1..kMaxQuota, rates kMinRate..kMaxQuota
// per second (a token every 100 s at the slowest).
inline constexpr std::uint32_t kMaxQuota = 1000000;
inline constexpr double kMinRate = 0.01;

// Parsed client rules with the JSON path of each, for checks that need the
// whole document (pool names, unique rule names).
struct ClientRules {
    std::vector<ClientRule> rules;
    std::vector<std::string> paths;
    ClientRule default_rule;
    std::string default_path = "default_client";
};

void parse_clients(Checker& ck, const json& v, const std::string& path, const NameResolver& names, ClientRules& out);
void parse_default_client(Checker& ck, const json& v, const std::string& path, ClientRules& out);

// Errors for rule names used twice and pools no pool entry defines.
void check_clients(const ClientRules& c, const std::vector<std::string>& pool_names, std::vector<std::string>& errors);

// socket.owner / socket.group: a name, resolved now, or a numeric id.
std::optional<std::uint32_t> parse_owner(Checker& ck, const json& v, const std::string& path,
                                         const std::function<std::optional<std::uint32_t>(const std::string&)>& lookup,
                                         const char* kind);

}  // namespace egress::config_detail
