// egress-run: runs a program with libegress-preload.so preloaded, so that its
// TCP connects go through egressd (adopt mode) without a code change.
//
// Exit status: COMMAND's own; 2 for a usage error; 125 when egress-run
// itself fails (no shim found); 126 when COMMAND cannot be run; 127 when it
// is not found (as env(1) and timeout(1)).
#include <getopt.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "preload/settings.hpp"

#ifndef EGRESS_PRELOAD_INSTALLED
#error "EGRESS_PRELOAD_INSTALLED: the installed path of libegress-preload.so"
#endif

namespace {

const char* const kUsage =
    "usage: egress-run [--socket PATH] [--pool NAME] [--bypass CIDRS] [--fallback direct|closed]\n"
    "                  [--debug] [--preload PATH] -- COMMAND [ARGS...]\n"
    "  Runs COMMAND with its TCP connects brokered by egressd: egressd picks the source address\n"
    "  (from its pools) and port, and applies its policy; the connection is the program's own.\n"
    "  --socket PATH     egressd's socket (sets EGRESS_SOCKET; default $EGRESS_SOCKET, else\n"
    "                    /run/egressd/egressd.sock)\n"
    "  --pool NAME       ask for this source pool (EGRESS_POOL); default: egressd's routes decide\n"
    "  --bypass CIDRS    comma-separated addresses or blocks connected directly, besides loopback\n"
    "                    (EGRESS_BYPASS)\n"
    "  --fallback MODE   'closed' (default): when egressd is unreachable, connect() fails with\n"
    "                    ENETUNREACH; 'direct': connect directly instead (EGRESS_FALLBACK)\n"
    "  --debug           log every decision to stderr (EGRESS_DEBUG=1)\n"
    "  --preload PATH    the shim to preload (default: next to egress-run, else " EGRESS_PRELOAD_INSTALLED ")\n";

int usage(const std::string& why) {
    std::cerr << "egress-run: " << why << "\n" << kUsage;
    return 2;
}

std::string beside_self() {
    char buf[4096];
    const auto n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return "";
    std::string self(buf, static_cast<std::size_t>(n));
    const auto slash = self.rfind('/');
    return slash == std::string::npos ? "" : self.substr(0, slash + 1) + "libegress-preload.so";
}

bool readable(const std::string& path) { return !path.empty() && ::access(path.c_str(), R_OK) == 0; }

// Every entry of a --bypass list must parse; the shim itself only warns.
std::string bad_bypass_entry(const std::string& list) {
    std::size_t at = 0;
    while (at < list.size()) {
        const auto end = list.find_first_of(", \t", at);
        const auto item = list.substr(at, end == std::string::npos ? std::string::npos : end - at);
        egress::preload::Cidr c;
        if (!item.empty() && !egress::preload::parse_cidr(item.data(), item.size(), c)) return item;
        if (end == std::string::npos) break;
        at = end + 1;
    }
    return "";
}

}  // namespace

int main(int argc, char** argv) {
    enum { kSocket = 1, kPool, kBypass, kFallback, kDebug, kPreload, kHelp };
    static const option opts[] = {
        {"socket", required_argument, nullptr, kSocket},     {"pool", required_argument, nullptr, kPool},
        {"bypass", required_argument, nullptr, kBypass},     {"fallback", required_argument, nullptr, kFallback},
        {"debug", no_argument, nullptr, kDebug},             {"preload", required_argument, nullptr, kPreload},
        {"help", no_argument, nullptr, kHelp},               {nullptr, 0, nullptr, 0},
    };
    std::string preload;
    opterr = 0;
    const auto name_of = [&](int val) -> std::string {
        for (const option* o = opts; o->name; ++o)
            if (o->val == val) return std::string("--") + o->name;
        return "";
    };
    // "+": stop at the first non-option, so COMMAND's own options stay its
    // own; ":": a missing value is told apart from an unknown option.
    for (int c; (c = ::getopt_long(argc, argv, "+:", opts, nullptr)) != -1;) {
        const std::string arg = optarg ? optarg : "";
        switch (c) {
        case kSocket:
            if (arg.empty() || arg.size() >= egress::preload::Settings::kMaxPath)
                return usage("--socket needs a path of 1 to 107 bytes");
            ::setenv("EGRESS_SOCKET", arg.c_str(), 1);
            break;
        case kPool:
            if (arg.empty() || arg.size() > 64) return usage("--pool needs a name of 1 to 64 bytes");
            ::setenv("EGRESS_POOL", arg.c_str(), 1);
            break;
        case kBypass:
            if (const auto bad = bad_bypass_entry(arg); !bad.empty())
                return usage("--bypass: '" + bad + "' is not an IPv4/IPv6 address or CIDR block");
            ::setenv("EGRESS_BYPASS", arg.c_str(), 1);
            break;
        case kFallback:
            if (arg != "direct" && arg != "closed") return usage("--fallback is 'direct' or 'closed', not '" + arg + "'");
            ::setenv("EGRESS_FALLBACK", arg.c_str(), 1);
            break;
        case kDebug:
            ::setenv("EGRESS_DEBUG", "1", 1);
            break;
        case kPreload:
            preload = arg;
            break;
        case kHelp:
            std::cout << kUsage;
            return 0;
        case ':':
            return usage(name_of(optopt) + " needs a value");
        default:
            return usage(std::string("unknown option ") + argv[optind - 1]);
        }
    }
    if (optind >= argc) return usage("no COMMAND to run");

    if (preload.empty()) preload = readable(beside_self()) ? beside_self() : EGRESS_PRELOAD_INSTALLED;
    if (!readable(preload)) {
        std::cerr << "egress-run: cannot read the shim " << preload << ": " << std::strerror(errno) << "\n";
        return 125;
    }
    if (preload.front() != '/') {
        char cwd[4096];
        if (!::getcwd(cwd, sizeof cwd)) return std::cerr << "egress-run: getcwd: " << std::strerror(errno) << "\n", 125;
        preload = std::string(cwd) + "/" + preload;
    }
    // The loader splits LD_PRELOAD at spaces and colons: such a path would
    // be ignored and the program would run without the shim.
    if (preload.find_first_of(" :\t") != std::string::npos) {
        std::cerr << "egress-run: the shim's path '" << preload
                  << "' holds a space or ':', which LD_PRELOAD cannot carry; move or link it elsewhere\n";
        return 125;
    }
    // Prepended, so the shim's connect() is found before any other's.
    std::string value = preload;
    if (const char* old = std::getenv("LD_PRELOAD"); old && *old) value += std::string(":") + old;
    ::setenv("LD_PRELOAD", value.c_str(), 1);

    ::execvp(argv[optind], argv + optind);
    const int err = errno;
    std::cerr << "egress-run: cannot run " << argv[optind] << ": " << std::strerror(err) << "\n";
    return err == ENOENT ? 127 : 126;
}
