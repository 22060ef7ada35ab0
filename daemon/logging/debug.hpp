// EGRESS_DEBUG: SPDLOG_DEBUG whose arguments are evaluated only when debug
// logging is on. SPDLOG_DEBUG (compiled in at SPDLOG_ACTIVE_LEVEL debug)
// evaluates them whatever the level, and on the request path they format
// addresses and error names for every request.
#pragma once

#include <spdlog/spdlog.h>

#define EGRESS_DEBUG(...)                                                           \
    do {                                                                            \
        if (spdlog::should_log(spdlog::level::debug)) SPDLOG_DEBUG(__VA_ARGS__);    \
    } while (0)
