// Internal to the config loader: the "dns" section.
#pragma once

#include <string>

#include "config/checker.hpp"
#include "config/config.hpp"

namespace egress::config_detail {

void parse_dns(Checker& ck, const json& v, const std::string& path, DnsConfig& out);

}  // namespace egress::config_detail
