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
}

TEST(Options, UnknownArguments) {
    for (const char* arg : {"--nope", "-x", "-v", "config.json", "--config-file=x", "--CONFIG", "-", "--"})
        EXPECT_TRUE(IsError(parse({arg}), EINVAL, {std::string("unknown argument '") + arg + "'"})) << arg;
    EXPECT_TRUE(IsError(parse({"--config", "/a", "extra"}), EINVAL, {"'extra'"}));
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
    for (const char* flag : {"--config", "--check-config", "--socket", "--log-level", "--version", "--help"})
        EXPECT_NE(usage.find(flag), std::string::npos) << flag;
}

TEST(Options, FlagsWithoutValuesRejectAnInlineValue) {
    EXPECT_TRUE(IsError(parse({"--version=banana"}).ok() ? std::nullopt : std::optional<Error>(parse({"--version=banana"}).error()),
                        EINVAL, {"--version", "takes no value"}));
    EXPECT_FALSE(parse({"--help=no"}).ok());
    EXPECT_TRUE(parse({"--help"}).ok());
}

}  // namespace
}  // namespace egress
