// The command-line parser egressd and egress-connect share.
#include "cmdline.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

#include "expect.hpp"

namespace egress::cmdline {
namespace {

using test::IsError;
using test::IsOk;

enum { kName, kVerbose, kOut, kAll };
const OptionSpec kSpecs[] = {
    {kName, "name", true},
    {kVerbose, "verbose", false, 'v'},
    {kOut, "out", true, 'o'},
    {kAll, "all", false},
};

Result<CommandLine> run(std::vector<std::string> args) { return parse(args, kSpecs); }

TEST(Cmdline, OptionsAndOperandsKeepTheirOrder) {
    auto c = run({"a", "--name=x", "b", "-v", "--name", "y", "-o", "f", "-ofile", "--out=g", "c"});
    ASSERT_TRUE(IsOk(c));
    ASSERT_EQ(c->options.size(), 6u);
    const std::vector<std::pair<int, std::string>> want{{kName, "x"}, {kVerbose, ""}, {kName, "y"},
                                                        {kOut, "f"},  {kOut, "file"}, {kOut, "g"}};
    for (std::size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(c->options[i].id, want[i].first) << i;
        EXPECT_EQ(c->options[i].value, want[i].second) << i;
    }
    EXPECT_EQ(c->options[1].spelling, "-v");
    EXPECT_EQ(c->options[3].spelling, "-o");
    EXPECT_EQ(c->options[5].spelling, "--out");
    EXPECT_EQ(c->operands, (std::vector<std::string>{"a", "b", "c"}));
}

// The order must not depend on the environment (POSIXLY_CORRECT stops at the
// first operand in getopt's default mode).
TEST(Cmdline, OptionsAfterAnOperandUnderPosixlyCorrect) {
    ::setenv("POSIXLY_CORRECT", "1", 1);
    auto c = run({"a", "--all"});
    ::unsetenv("POSIXLY_CORRECT");
    ASSERT_TRUE(IsOk(c));
    ASSERT_EQ(c->options.size(), 1u);
    EXPECT_EQ(c->operands, (std::vector<std::string>{"a"}));
}

TEST(Cmdline, DoubleDashEndsTheOptions) {
    auto c = run({"--all", "--", "--name", "-v", "-"});
    ASSERT_TRUE(IsOk(c));
    ASSERT_EQ(c->options.size(), 1u);
    EXPECT_EQ(c->operands, (std::vector<std::string>{"--name", "-v", "-"}));
}

TEST(Cmdline, ClustersOfShortFlags) {
    auto c = run({"-vvo", "x"});
    ASSERT_TRUE(IsOk(c));
    ASSERT_EQ(c->options.size(), 3u);
    EXPECT_EQ(c->options[2].value, "x");
}

TEST(Cmdline, ErrorsNameTheOption) {
    EXPECT_TRUE(IsError(run({"--name"}), EINVAL, {"--name needs a value"}));
    EXPECT_TRUE(IsError(run({"-o"}), EINVAL, {"-o needs a value"}));
    EXPECT_TRUE(IsError(run({"--out"}), EINVAL, {"--out needs a value"}));
    EXPECT_TRUE(IsError(run({"--all=yes"}), EINVAL, {"--all takes no value, got '--all=yes'"}));
    EXPECT_TRUE(IsError(run({"--verb=1"}), EINVAL, {"--verbose takes no value"}));
    EXPECT_TRUE(IsError(run({"--nope=1"}), EINVAL, {"unknown option '--nope'"}));
    EXPECT_TRUE(IsError(run({"-vx"}), EINVAL, {"unknown option '-x'"}));
    EXPECT_TRUE(IsError(run({"-n"}), EINVAL, {"unknown option '-n'"}));
}

TEST(Cmdline, AmbiguousPrefixListsTheCandidates) {
    const OptionSpec specs[] = {{0, "pool", true}, {1, "port", true}};
    EXPECT_TRUE(IsError(parse({"--po", "x"}, specs), EINVAL, {"ambiguous option '--po' (--pool, --port)"}));
    auto c = parse({"--poo", "x"}, specs);
    ASSERT_TRUE(IsOk(c));
    EXPECT_EQ(c->options.at(0).spelling, "--pool");
}

TEST(Cmdline, NothingAtAll) {
    auto c = run({});
    ASSERT_TRUE(IsOk(c));
    EXPECT_TRUE(c->options.empty());
    EXPECT_TRUE(c->operands.empty());
}

}  // namespace
}  // namespace egress::cmdline
