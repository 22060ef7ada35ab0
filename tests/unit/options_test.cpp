// egressd's command line.
#include "cli/options.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

#include "expect.hpp"

namespace egress {
namespace {

using test::IsError;
using test::IsOk;

Result<Options> parse(std::vector<std::string> args) { return parse_options(args); }

TEST(Options, NoArgumentsMeansDefaults) {
    auto o = parse({});
    ASSERT_TRUE(IsOk(o));
    EXPECT_FALSE(o->config_file);
    EXPECT_FALSE(o->check_config_file);
    EXPECT_FALSE(o->socket_path);
    EXPECT_FALSE(o->log_level);
    EXPECT_FALSE(o->help);
    EXPECT_FALSE(o->version);
}

TEST(Options, EveryFlagWithASeparateValue) {
    auto o = parse({"--config", "/etc/egressd.json", "--socket", "/run/e.sock", "--log-level", "debug",
                    "--check-config", "other.json"});
    ASSERT_TRUE(IsOk(o));
    EXPECT_EQ(o->config_file, "/etc/egressd.json");
    EXPECT_EQ(o->socket_path, "/run/e.sock");
    EXPECT_EQ(o->log_level, "debug");
    EXPECT_EQ(o->check_config_file, "other.json");
    EXPECT_FALSE(o->help);
    EXPECT_FALSE(o->version);
}

TEST(Options, EveryFlagWithAnInlineValue) {
    auto o = parse({"--config=/etc/egressd.json", "--socket=/run/e.sock", "--log-level=warn",
                    "--check-config=other.json"});
    ASSERT_TRUE(IsOk(o));
    EXPECT_EQ(o->config_file, "/etc/egressd.json");
    EXPECT_EQ(o->socket_path, "/run/e.sock");
    EXPECT_EQ(o->log_level, "warn");
    EXPECT_EQ(o->check_config_file, "other.json");
}

TEST(Options, InlineValueKeepsLaterEqualsSigns) {
    auto o = parse({"--config=/etc/a=b.json"});
    ASSERT_TRUE(IsOk(o));
    EXPECT_EQ(o->config_file, "/etc/a=b.json");
}

TEST(Options, HelpAndVersion) {
    EXPECT_TRUE(parse({"--help"})->help);
    EXPECT_TRUE(parse({"-h"})->help);
    EXPECT_TRUE(parse({"--version"})->version);
    auto both = parse({"--version", "--help"});
    ASSERT_TRUE(IsOk(both));
    EXPECT_TRUE(both->help);
    EXPECT_TRUE(both->version);
}

TEST(Options, EveryLogLevel) {
    for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"})
        EXPECT_EQ(parse({"--log-level", level})->log_level, level);
}

TEST(Options, MissingValues) {
    for (const char* flag : {"--config", "--check-config", "--socket", "--log-level"}) {
        EXPECT_TRUE(IsError(parse({flag}), EINVAL, {std::string(flag) + " needs a value"}));
        EXPECT_TRUE(IsError(parse({std::string(flag) + "="}), EINVAL, {std::string(flag) + " needs a non-empty value"}));
        EXPECT_TRUE(IsError(parse({flag, ""}), EINVAL, {std::string(flag) + " needs a non-empty value"}));
    }
    EXPECT_TRUE(IsError(parse({"--log-level", "info", "--config"}), EINVAL, {"--config needs a value"}));
    EXPECT_TRUE(IsError(parse({"--socket=/run/e.sock", "--log-level"}), EINVAL, {"--log-level needs a value"}));
}

TEST(Options, UnknownOptionsAreNamed) {
    for (const char* arg : {"--nope", "-x", "-v", "--CONFIG", "--config-file"})
        EXPECT_TRUE(IsError(parse({arg}), EINVAL, {std::string("unknown option '") + arg + "'"})) << arg;
    // Named without the value, which may be long or private.
    EXPECT_TRUE(IsError(parse({"--config-file=x"}), EINVAL, {"unknown option '--config-file'"}));
    EXPECT_TRUE(IsError(parse({"--socket", "/run/e.sock", "--bogus"}), EINVAL, {"'--bogus'"}));
}

TEST(Options, OperandsAreRefused) {
    for (const char* arg : {"config.json", "-", ""})
        EXPECT_TRUE(IsError(parse({arg}), EINVAL, {std::string("unexpected argument '") + arg + "'"})) << arg;
    EXPECT_TRUE(IsError(parse({"--config", "/a", "extra"}), EINVAL, {"unexpected argument 'extra'"}));
    // "--" ends the options: what follows is an operand, even "--help".
    EXPECT_TRUE(IsOk(parse({"--"})));
    EXPECT_TRUE(IsError(parse({"--", "--help"}), EINVAL, {"unexpected argument '--help'"}));
}

TEST(Options, AnUnambiguousPrefixNamesTheOption) {
    auto o = parse({"--conf", "/etc/e.json", "--check=x.json", "--vers"});
    ASSERT_TRUE(IsOk(o));
    EXPECT_EQ(o->config_file, "/etc/e.json");
    EXPECT_EQ(o->check_config_file, "x.json");
    EXPECT_TRUE(o->version);
    EXPECT_TRUE(IsError(parse({"--c", "x"}), EINVAL, {"ambiguous option '--c'", "--config", "--check-config"}));
    // An error names the option in full, however it was abbreviated.
    EXPECT_TRUE(IsError(parse({"--conf"}), EINVAL, {"--config needs a value"}));
}

TEST(Options, AValueMayStartWithADash) {
    auto o = parse({"--config", "-odd.json", "--check-config", "--socket"});
    ASSERT_TRUE(IsOk(o));
    EXPECT_EQ(o->config_file, "-odd.json");
    EXPECT_EQ(o->check_config_file, "--socket");
    EXPECT_FALSE(o->socket_path);
}

TEST(Options, ALaterOptionOverridesAnEarlierOne) {
    auto o = parse({"--socket=/run/a.sock", "--log-level", "info", "--socket", "/run/b.sock", "--log-level=off"});
    ASSERT_TRUE(IsOk(o));
    EXPECT_EQ(o->socket_path, "/run/b.sock");
    EXPECT_EQ(o->log_level, "off");
}

TEST(Options, MetricsListenInBothFormsAndEmptyDisables) {
    EXPECT_EQ(parse({"--metrics-listen", "127.0.0.1:9100"})->metrics_listen, "127.0.0.1:9100");
    EXPECT_EQ(parse({"--metrics-listen=[::1]:9100"})->metrics_listen, "[::1]:9100");
    EXPECT_EQ(parse({"--metrics-listen="})->metrics_listen, "");
    EXPECT_EQ(parse({"--metrics-listen", ""})->metrics_listen, "");
    EXPECT_FALSE(parse({})->metrics_listen);
    EXPECT_TRUE(IsError(parse({"--metrics-listen"}), EINVAL, {"--metrics-listen needs a value"}));
    for (const char* bad : {"9100", "localhost:9100", "127.0.0.1"}) {
        EXPECT_TRUE(IsError(parse({"--metrics-listen", bad}), EINVAL, {"--metrics-listen", bad})) << bad;
        EXPECT_TRUE(IsError(parse({std::string("--metrics-listen=") + bad}), EINVAL, {bad})) << bad;
    }
}

// getopt_long keeps its place in globals: each parse starts afresh, also
// after one that stopped inside a cluster of short options.
TEST(Options, ParsingAgainStartsAfresh) {
    EXPECT_FALSE(parse({"-hx"}).ok());
    auto o = parse({"--config", "/a.json"});
    ASSERT_TRUE(IsOk(o));
    EXPECT_EQ(o->config_file, "/a.json");
    EXPECT_FALSE(o->help);
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(parse({"-h"})->help);
}

TEST(Options, RelativeSocketIsRejected) {
    for (const char* path : {"egressd.sock", "./egressd.sock", "run/egressd.sock", "~/e.sock"}) {
        EXPECT_TRUE(IsError(parse({"--socket", path}), EINVAL, {"absolute", path})) << path;
        EXPECT_TRUE(IsError(parse({std::string("--socket=") + path}), EINVAL, {"absolute", path})) << path;
    }
}

TEST(Options, BadLogLevel) {
    for (const char* level : {"loud", "INFO", "warning", "0"}) {
        EXPECT_TRUE(IsError(parse({"--log-level", level}), EINVAL, {"--log-level", "critical", level})) << level;
        EXPECT_TRUE(IsError(parse({std::string("--log-level=") + level}), EINVAL, {level})) << level;
    }
}

TEST(Options, UsageNamesEveryFlag) {
    const std::string usage = kUsage;
    for (const char* flag :
         {"--config", "--check-config", "--socket", "--log-level", "--metrics-listen", "--version", "--help", "-h"})
        EXPECT_NE(usage.find(flag), std::string::npos) << flag;
}

TEST(Options, FlagsWithoutValuesRejectAnInlineValue) {
    EXPECT_TRUE(IsError(parse({"--version=banana"}), EINVAL, {"--version takes no value, got '--version=banana'"}));
    EXPECT_TRUE(IsError(parse({"--help=no"}), EINVAL, {"--help takes no value"}));
    EXPECT_TRUE(parse({"--help"}).ok());
}

}  // namespace
}  // namespace egress
