#include "options.hpp"

#include <cerrno>
#include <cstdlib>

#include "cmdline.hpp"
#include "config/config.hpp"

namespace egress {

const char* const kUsage =
    "usage: egressd [--config FILE] [--socket PATH] [--log-level LEVEL] [--metrics-listen ADDR] [--threads N]\n"
    "       egressd --check-config FILE\n"
    "\n"
    "  --config FILE        JSON configuration (default: built-in defaults)\n"
    "  --socket PATH        listening socket (overrides socket.path)\n"
    "  --log-level LEVEL    trace, debug, info, warn, error, critical, off\n"
    "  --metrics-listen ADDR  Prometheus endpoint ADDRESS:PORT (overrides metrics.listen;\n"
    "                       --metrics-listen= disables it)\n"
    "  --threads N          event loops, one thread each (overrides threads; default and 0:\n"
    "                       one per CPU egressd may run on)\n"
    "  --check-config FILE  validate FILE, print every error, exit 0 or 1\n"
    "  --version            print the version and exit\n"
    "  -h, --help           print this text and exit\n"
    "\n"
    "Options take their value as --opt VALUE or --opt=VALUE.\n";

namespace {

enum Id { kConfig, kCheckConfig, kSocket, kLogLevel, kMetricsListen, kThreads, kHelp, kVersion };

const cmdline::OptionSpec kSpecs[] = {
    {kConfig, "config", true},
    {kCheckConfig, "check-config", true},
    {kSocket, "socket", true},
    {kLogLevel, "log-level", true},
    {kMetricsListen, "metrics-listen", true},
    {kThreads, "threads", true},
    {kHelp, "help", false, 'h'},
    {kVersion, "version", false},
};

}  // namespace

Result<Options> parse_options(const std::vector<std::string>& args) {
    auto line = cmdline::parse(args, kSpecs);
    if (!line) return line.error();
    if (!line->operands.empty()) return Error{EINVAL, "unexpected argument '" + line->operands.front() + "'"};
    Options o;
    for (const auto& opt : line->options) {
        // Every value but --metrics-listen's must be non-empty; a later option overrides an earlier one.
        if (opt.id != kMetricsListen && opt.id != kHelp && opt.id != kVersion && opt.value.empty())
            return Error{EINVAL, opt.spelling + " needs a non-empty value"};
        switch (opt.id) {
        case kConfig: o.config_file = opt.value; break;
        case kCheckConfig: o.check_config_file = opt.value; break;
        case kSocket: o.socket_path = opt.value; break;
        case kLogLevel:
            if (!valid_log_level(opt.value))
                return Error{EINVAL, "--log-level must be trace, debug, info, warn, error, critical or off, got '" +
                                         opt.value + "'"};
            o.log_level = opt.value;
            break;
        case kMetricsListen:  // the one option whose empty value means something: no endpoint
            if (!valid_listen_address(opt.value))
                return Error{EINVAL, "--metrics-listen must be ADDRESS:PORT or [IPV6]:PORT, got '" + opt.value + "'"};
            o.metrics_listen = opt.value;
            break;
        case kThreads: {
            char* end = nullptr;
            errno = 0;
            const auto n = std::strtoul(opt.value.c_str(), &end, 10);
            if (errno || *end || opt.value.front() == '-' || n > kMaxThreads)
                return Error{EINVAL, "--threads must be a number from 0 to " + std::to_string(kMaxThreads) +
                                         " (0: one per CPU), got '" + opt.value + "'"};
            o.threads = static_cast<std::uint32_t>(n);
            break;
        }
        case kHelp: o.help = true; break;
        case kVersion: o.version = true; break;
        }
    }
    if (o.socket_path && o.socket_path->front() != '/')
        return Error{EINVAL, "--socket needs an absolute path, got '" + *o.socket_path + "'"};
    return o;
}

}  // namespace egress
