// egressd's command line. Pure: argv in, options or a usage error out.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "result.hpp"

namespace egress {

struct Options {
    std::optional<std::string> config_file;
    std::optional<std::string> check_config_file;  // --check-config FILE: validate and exit
    std::optional<std::string> socket_path;
    std::optional<std::string> log_level;
    std::optional<std::string> metrics_listen;  // "" disables the endpoint
    std::optional<std::uint32_t> threads;       // 0: one per CPU
    bool help = false;
    bool version = false;
};

Result<Options> parse_options(const std::vector<std::string>& args);

extern const char* const kUsage;

}  // namespace egress
