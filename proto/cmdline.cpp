#include "cmdline.hpp"

#include <getopt.h>

#include <cerrno>

namespace egress::cmdline {
namespace {

// getopt_long's code for an option without a short form: kLongOnly + its index.
constexpr int kLongOnly = 256;
// What getopt_long returns for an operand when the optstring starts with '-'.
constexpr int kOperand = 1;

int code_of(const OptionSpec& s, std::size_t index) {
    return s.short_name ? static_cast<unsigned char>(s.short_name) : kLongOnly + static_cast<int>(index);
}

const OptionSpec* find(std::span<const OptionSpec> specs, int code) {
    for (std::size_t i = 0; i < specs.size(); ++i)
        if (code_of(specs[i], i) == code) return &specs[i];
    return nullptr;
}

bool is_long(const std::string& arg) { return arg.rfind("--", 0) == 0; }

// "--config" for an argument that used the long form (perhaps abbreviated), "-c" otherwise.
std::string spelling(const OptionSpec& s, const std::string& arg) {
    return is_long(arg) ? "--" + std::string(s.name) : std::string{'-', s.short_name};
}

// An unknown or ambiguous long option, named as written (without its value).
Error bad_long(std::span<const OptionSpec> specs, const std::string& arg) {
    const auto written = arg.substr(0, arg.find('='));
    std::string candidates;
    int n = 0;
    for (const auto& s : specs)
        if (("--" + std::string(s.name)).rfind(written, 0) == 0) candidates += (n++ ? ", --" : "--") + std::string(s.name);
    if (n > 1) return Error{EINVAL, "ambiguous option '" + written + "' (" + candidates + ")"};
    return Error{EINVAL, "unknown option '" + written + "'"};
}

}  // namespace

Result<CommandLine> parse(const std::vector<std::string>& args, std::span<const OptionSpec> specs) {
    // '-': operands come back in order, whatever POSIXLY_CORRECT says; ':': a
    // missing value is reported as ':', not '?'.
    std::string optstring = "-:";
    std::vector<option> longopts;
    for (std::size_t i = 0; i < specs.size(); ++i) {
        const auto& s = specs[i];
        longopts.push_back(option{s.name, s.takes_value ? required_argument : no_argument, nullptr, code_of(s, i)});
        if (s.short_name) optstring += s.takes_value ? std::string{s.short_name, ':'} : std::string{s.short_name};
    }
    longopts.push_back(option{nullptr, 0, nullptr, 0});

    std::vector<std::string> storage{"-"};  // argv[0], never read
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : storage) argv.push_back(s.data());
    argv.push_back(nullptr);
    const int argc = static_cast<int>(storage.size());

    optind = 0;  // 0, not 1: glibc also forgets a short-option cluster a previous parse left half read
    opterr = 0;  // the messages are ours
    CommandLine out;
    for (;;) {
        // Without permutation the element being read is argv[optind] (1 on the first call).
        const auto at = static_cast<std::size_t>(optind == 0 ? 1 : optind);
        const std::string arg = at < storage.size() ? storage[at] : "";
        const int c = getopt_long(argc, argv.data(), optstring.c_str(), longopts.data(), nullptr);
        if (c == -1) break;
        if (c == kOperand) {
            out.operands.emplace_back(optarg);
        } else if (c == ':') {
            const auto* s = find(specs, optopt);
            if (!s) return Error{EINVAL, "'" + arg + "' needs a value"};  // cannot happen
            return Error{EINVAL, spelling(*s, arg) + " needs a value"};
        } else if (c == '?') {
            if (optopt == 0) return bad_long(specs, arg);
            const auto* s = find(specs, optopt);
            if (!s) return Error{EINVAL, "unknown option '-" + std::string{static_cast<char>(optopt)} + "'"};
            return Error{EINVAL, spelling(*s, arg) + " takes no value, got '" + arg + "'"};
        } else if (const auto* s = find(specs, c)) {
            out.options.push_back(Occurrence{s->id, spelling(*s, arg), optarg ? optarg : ""});
        }
    }
    for (int i = optind; i < argc; ++i) out.operands.push_back(storage[static_cast<std::size_t>(i)]);
    return out;
}

}  // namespace egress::cmdline
