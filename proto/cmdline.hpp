// The command-line parser egressd and egress-connect share: glibc's
// getopt_long under a pure interface, strings in, options and operands (or a
// usage error naming the option) out. The programs give the options meaning.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "result.hpp"

namespace egress::cmdline {

struct OptionSpec {
    int id;                    // the caller's name for the option, copied into Occurrence
    const char* name;          // long name without "--"
    bool takes_value = false;  // "--name VALUE" or "--name=VALUE"; otherwise a flag
    char short_name = 0;       // 0: long form only
};

struct Occurrence {
    int id = 0;
    std::string spelling;  // the form used, without a value: "--config" (also for "--conf"), "-h"
    std::string value;     // "" for a flag; may be "" when written "--name=" or "--name ''"
};

struct CommandLine {
    std::vector<Occurrence> options;    // in command-line order: a later one may override
    std::vector<std::string> operands;  // arguments that are no option, in order ("--" ends the options)
};

// Parses `args` (argv without the program name). Long options may be
// abbreviated to any unambiguous prefix, as getopt_long allows. Errors are
// EINVAL with a message naming the option: unknown, ambiguous, missing its
// value, or a flag given one. getopt's global state is reset on entry and
// getopt prints nothing; not thread-safe (one parse at a time).
Result<CommandLine> parse(const std::vector<std::string>& args, std::span<const OptionSpec> specs);

}  // namespace egress::cmdline
