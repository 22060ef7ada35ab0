#include "options.hpp"

#include <cerrno>

#include "config/config.hpp"

namespace egress {

const char* const kUsage =
    "usage: egressd [--config FILE] [--socket PATH] [--log-level LEVEL] [--metrics-listen ADDR]\n"
    "       egressd --check-config FILE\n"
    "\n"
    "  --config FILE        JSON configuration (default: built-in defaults)\n"
    "  --socket PATH        listening socket (overrides socket.path)\n"
    "  --log-level LEVEL    trace, debug, info, warn, error, critical, off\n"
    "  --metrics-listen ADDR  Prometheus endpoint ADDRESS:PORT (overrides metrics.listen;\n"
    "                       --metrics-listen= disables it)\n"
    "  --check-config FILE  validate FILE, print every error, exit 0 or 1\n"
    "  --version            print the version and exit\n"
    "  --help               print this text and exit\n";

Result<Options> parse_options(const std::vector<std::string>& args) {
    Options o;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string arg = args[i];
        std::optional<std::string> inline_value;
        if (const auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
            inline_value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
        }
        auto value = [&](std::optional<std::string>& out) -> std::optional<Error> {
            if (inline_value) {
                out = *inline_value;
            } else if (i + 1 < args.size()) {
                out = args[++i];
            } else {
                return Error{EINVAL, arg + " needs a value"};
            }
            if (out->empty()) return Error{EINVAL, arg + " needs a non-empty value"};
            return std::nullopt;
        };
        std::optional<Error> e;
        const bool is_flag = arg == "--help" || arg == "-h" || arg == "--version";
        if (is_flag && inline_value) return Error{EINVAL, arg + " takes no value, got '" + args[i] + "'"};
        if (arg == "--config") {
            e = value(o.config_file);
        } else if (arg == "--check-config") {
            e = value(o.check_config_file);
        } else if (arg == "--socket") {
            e = value(o.socket_path);
        } else if (arg == "--log-level") {
            e = value(o.log_level);
            if (!e && !valid_log_level(*o.log_level))
                e = Error{EINVAL, "--log-level must be trace, debug, info, warn, error, critical or off, got '" +
                                      *o.log_level + "'"};
        } else if (arg == "--metrics-listen") {
            // The one option whose empty value means something: no endpoint.
            if (inline_value) o.metrics_listen = *inline_value;
            else if (i + 1 < args.size()) o.metrics_listen = args[++i];
            else e = Error{EINVAL, "--metrics-listen needs a value"};
            if (!e && !valid_listen_address(*o.metrics_listen))
                e = Error{EINVAL, "--metrics-listen must be ADDRESS:PORT or [IPV6]:PORT, got '" + *o.metrics_listen + "'"};
        } else if (arg == "--help" || arg == "-h") {
            o.help = true;
        } else if (arg == "--version") {
            o.version = true;
        } else {
            e = Error{EINVAL, "unknown argument '" + args[i] + "'"};
        }
        if (e) return *e;
    }
    if (o.socket_path && o.socket_path->front() != '/')
        return Error{EINVAL, "--socket needs an absolute path, got '" + *o.socket_path + "'"};
    return o;
}

}  // namespace egress
