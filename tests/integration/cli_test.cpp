// The command-line tools as a user runs them: egress-connect and egressd's
// own flags (config checking, socket-path safety).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "harness.hpp"

namespace egress::test {
namespace {

RunResult connect_cli(const Daemon& d, std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {egress_connect_bin(), "--socket", d.socket()});
    return run(args, input);
}

TEST(EgressConnect, JsonPrintsTheReplyMetadata) {
    Daemon d;
    Listener echo(Listener::Mode::echo);
    auto r = connect_cli(d, {"--json", endpoint_string(echo.endpoint())});
    ASSERT_EQ(r.status, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["remote"], endpoint_string(echo.endpoint()));
    EXPECT_EQ(j["local"].get<std::string>().rfind("127.0.0.1:", 0), 0u);
    EXPECT_EQ(j["pool"], "default");
    EXPECT_EQ(j["attempts"], 1);
    EXPECT_GT(j["connect_us"].get<int>(), 0);
}

TEST(EgressConnect, RelaysStdinAndStdoutWithHalfClose) {
    Daemon d;
    Listener echo(Listener::Mode::echo);
    std::string input;
    for (int i = 0; i < 20000; ++i) input += "line " + std::to_string(i) + "\n";  // ~200 KB
    auto r = connect_cli(d, {endpoint_string(echo.endpoint())}, input);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, input);  // the echo only ends after our half-close reached it
}

TEST(EgressConnect, IPv6NeedsBrackets) {
    Daemon d;
    Listener echo(Listener::Mode::echo, "::1");
    auto ok = connect_cli(d, {"--json", "[::1]:" + std::to_string(echo.endpoint().port)});
    EXPECT_EQ(ok.status, 0) << ok.err;
    auto bad = connect_cli(d, {"--json", "::1:" + std::to_string(echo.endpoint().port)});
    EXPECT_EQ(bad.status, 2);
    EXPECT_NE(bad.err.find("brackets"), std::string::npos) << bad.err;
}

TEST(EgressConnect, RefusedConnectExitsOneWithTheErrnoName) {
    Daemon d;
    auto r = connect_cli(d, {endpoint_string(closed_port())});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err.rfind("egress-connect: ECONNREFUSED: Connection refused", 0), 0u) << r.err;
    auto j = connect_cli(d, {"--json", endpoint_string(closed_port())});
    EXPECT_EQ(j.status, 1);
    EXPECT_EQ(nlohmann::json::parse(j.out)["error"], "ECONNREFUSED");
}

TEST(EgressConnect, TimeoutFlagReachesTheDaemon) {
    Daemon d;
    auto r = connect_cli(d, {"--timeout", "200", std::string(kBlackHole) + ":80"});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("ETIMEDOUT"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("200 ms"), std::string::npos) << r.err;
}

TEST(EgressConnect, OptionsTakeTheirValueInEitherForm) {
    Daemon d;
    Listener echo(Listener::Mode::echo);
    auto r = run({egress_connect_bin(), "--socket=" + d.socket(), "--pool=default", "--timeout=1000", "--json",
                  endpoint_string(echo.endpoint())});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)["pool"], "default");
    // Options may also follow the destination.
    r = run({egress_connect_bin(), endpoint_string(echo.endpoint()), "--socket", d.socket(), "--json"});
    ASSERT_EQ(r.status, 0) << r.err;
    auto t = connect_cli(d, {"--timeout=200", std::string(kBlackHole) + ":80"});
    EXPECT_EQ(t.status, 1);
    EXPECT_NE(t.err.find("200 ms"), std::string::npos) << t.err;
}

TEST(EgressConnect, VersionAndHelp) {
    auto v = run({egress_connect_bin(), "--version"});
    EXPECT_EQ(v.status, 0) << v.err;
    EXPECT_EQ(v.out, std::string("egress-connect ") + EGRESSD_VERSION + "\n");
    for (const char* flag : {"--help", "-h"}) {
        auto h = run({egress_connect_bin(), flag});
        EXPECT_EQ(h.status, 0) << h.err;
        EXPECT_EQ(h.out.rfind("usage: egress-connect", 0), 0u) << h.out;
        EXPECT_NE(h.out.find("--version"), std::string::npos) << h.out;
        EXPECT_EQ(h.err, "");
    }
    auto bad = run({egress_connect_bin(), "--version=2"});
    EXPECT_EQ(bad.status, 2);
    EXPECT_NE(bad.err.find("--version takes no value"), std::string::npos) << bad.err;
}

TEST(EgressConnect, WarnsWhenEgressdCapsTheTimeout) {
    Daemon d;  // connect.max_timeout_ms 30000
    Listener echo(Listener::Mode::echo);
    auto r = connect_cli(d, {"--timeout=90000", "--json", endpoint_string(echo.endpoint())});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("egress-connect: warning: --timeout 90000 ms is above egressd's maximum; it applied 30000 ms"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)["timeout_ms"], 30000);
    auto quiet = connect_cli(d, {"--timeout=30000", "--json", endpoint_string(echo.endpoint())});
    ASSERT_EQ(quiet.status, 0) << quiet.err;
    EXPECT_EQ(quiet.err, "");
    EXPECT_FALSE(nlohmann::json::parse(quiet.out).contains("timeout_ms"));
}

TEST(EgressConnect, UsageErrorsExitTwo) {
    Daemon d;
    for (const auto& args : std::vector<std::vector<std::string>>{
             {}, {"--bogus", "127.0.0.1:1"}, {"127.0.0.1"}, {"127.0.0.1:0"}, {"127.0.0.1:65536"},
             {"bad..name:80"}, {"b\xc3\xbcrger.example:80"}, {"[example.com]:80"},
             {"--timeout", "soon", "127.0.0.1:1"}, {"--timeout=0", "127.0.0.1:1"},
             {"127.0.0.1:1", "127.0.0.1:2"}, {"--json=yes", "127.0.0.1:1"}}) {
        auto r = connect_cli(d, args);
        EXPECT_EQ(r.status, 2) << ::testing::PrintToString(args) << " -> " << r.err;
        EXPECT_NE(r.err.find("usage:"), std::string::npos);
    }
}

TEST(EgressConnect, UsageErrorsNameTheOption) {
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
        {{"--bogus", "127.0.0.1:1"}, "egress-connect: unknown option '--bogus'\n"},
        {{"--bogus=1", "127.0.0.1:1"}, "egress-connect: unknown option '--bogus'\n"},
        {{"-x", "127.0.0.1:1"}, "egress-connect: unknown option '-x'\n"},
        {{"127.0.0.1:1", "--timeout"}, "egress-connect: --timeout needs a value\n"},
        {{"127.0.0.1:1", "--pool"}, "egress-connect: --pool needs a value\n"},
        {{"--pool=", "127.0.0.1:1"}, "egress-connect: --pool needs a name\n"},
        {{"--socket"}, "egress-connect: --socket needs a value\n"},
        {{"--timeout=soon", "127.0.0.1:1"},
         "egress-connect: --timeout must be a positive number of milliseconds, got 'soon'\n"},
    };
    for (const auto& [args, first_line] : cases) {
        auto all = args;
        all.insert(all.begin(), egress_connect_bin());
        auto r = run(all, "", {"EGRESS_SOCKET=/tmp/no-egressd-here.sock"});
        EXPECT_EQ(r.status, 2) << ::testing::PrintToString(args);
        EXPECT_EQ(r.err.substr(0, first_line.size()), first_line) << r.err;  // getopt itself prints nothing
    }
}

TEST(EgressConnect, SaysWhenEgressdIsNotRunning) {
    auto r = run({egress_connect_bin(), "127.0.0.1:80"}, "", {"EGRESS_SOCKET=/tmp/no-egressd-here.sock"});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("/tmp/no-egressd-here.sock"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("is egressd running?"), std::string::npos) << r.err;
}

std::string write_temp(const std::string& name, const std::string& text) {
    const auto path = "/tmp/egressd-cli-" + std::to_string(::getpid()) + "-" + name;
    std::ofstream(path) << text;
    return path;
}

TEST(Egressd, CheckConfigAcceptsAValidFile) {
    const auto f = write_temp("good.json", R"({"connect": {"default_timeout_ms": 1000}, "log_level": "warn"})");
    auto r = run({egressd_bin(), "--check-config", f});
    EXPECT_EQ(r.status, 0) << r.err;
    ::unlink(f.c_str());
}

TEST(Egressd, CheckConfigReportsEveryErrorWithItsPath) {
    const auto f = write_temp("bad.json",
                              R"({"connect": {"default_timeout_ms": "soon"}, "limits": {"max_clients": 0},
                                  "log_levle": "info"})");
    auto r = run({egressd_bin(), "--check-config", f});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("connect.default_timeout_ms"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("\"soon\""), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("limits.max_clients"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("log_levle: unknown key"), std::string::npos) << r.err;
    ::unlink(f.c_str());
}

TEST(Egressd, RefusesToReplaceANonSocketFile) {
    const auto f = write_temp("not-a-socket", "precious");
    auto r = run({egressd_bin(), "--socket", f});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("is not a socket"), std::string::npos) << r.err;
    std::ifstream in(f);
    std::string kept;
    in >> kept;
    EXPECT_EQ(kept, "precious");
    ::unlink(f.c_str());
}

// Under systemd (JOURNAL_STREAM names stderr's device and inode) the log
// goes to the journal with priorities; a stderr redirected elsewhere keeps it.
TEST(Egressd, LogsToTheJournalOnlyWhenStderrIsTheJournalStream) {
    const auto f = write_temp("not-a-socket", "x");
    char tmpl[] = "/tmp/egressd-journal.XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    const auto err = dir + "/stderr";
    for (const bool journal : {false, true}) {
        SCOPED_TRACE(journal ? "JOURNAL_STREAM is stderr" : "JOURNAL_STREAM is another stream");
        const std::string stream = journal ? "$(stat -L -c %d:%i " + err + ")" : "1:1";
        sh("exec 2>" + err + "; JOURNAL_STREAM=" + stream + " " + egressd_bin() + " --socket " + f +
           " --metrics-listen= ; test $? = 1");
        std::ifstream in(err);
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (journal) EXPECT_EQ(text, "") << "logged to stderr under the journal";
        else EXPECT_NE(text.find("cannot start"), std::string::npos) << text;
    }
    std::system(("rm -rf " + dir).c_str());
    ::unlink(f.c_str());
}

TEST(Egressd, DoesNotStealALiveSocket) {
    Daemon first;
    auto r = run({egressd_bin(), "--socket", first.socket()});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("already listening"), std::string::npos) << r.err;
    EXPECT_TRUE(first.alive());
}

TEST(Egressd, ReplacesAStaleSocket) {
    char tmpl[] = "/tmp/egressd-stale.XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    const auto path = dir + "/egressd.sock";
    {  // a socket file whose owner is gone
        int fd = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
        ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        ::close(fd);
    }
    Daemon d("", {"--socket", path});  // the later --socket wins
    EXPECT_TRUE(d.alive());
    EXPECT_NE(d.log().find("replaced stale socket"), std::string::npos) << d.log();
    std::system(("rm -rf " + dir).c_str());
}

TEST(Egressd, UsageErrorsExitTwo) {
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
        {{"--no-such-flag"}, "egressd: unknown option '--no-such-flag'\n"},
        {{"--log-level", "loud"}, "egressd: --log-level must be"},
        {{"--config"}, "egressd: --config needs a value\n"},
        {{"--config="}, "egressd: --config needs a non-empty value\n"},
        {{"--version=1"}, "egressd: --version takes no value, got '--version=1'\n"},
        {{"config.json"}, "egressd: unexpected argument 'config.json'\n"},
    };
    for (const auto& [args, first_line] : cases) {
        auto all = args;
        all.insert(all.begin(), egressd_bin());
        auto r = run(all);
        EXPECT_EQ(r.status, 2) << ::testing::PrintToString(args);
        EXPECT_EQ(r.err.substr(0, first_line.size()), first_line) << r.err;
        EXPECT_NE(r.err.find("usage: egressd"), std::string::npos) << r.err;
    }
}

TEST(Egressd, VersionAndHelp) {
    auto v = run({egressd_bin(), "--version"});
    EXPECT_EQ(v.status, 0) << v.err;
    EXPECT_EQ(v.out, std::string("egressd ") + EGRESSD_VERSION + "\n");
    for (const char* flag : {"--help", "-h"}) {
        auto h = run({egressd_bin(), flag});
        EXPECT_EQ(h.status, 0) << h.err;
        EXPECT_EQ(h.out.rfind("usage: egressd", 0), 0u) << h.out;
    }
}

TEST(Egressd, CheckConfigInEitherForm) {
    const auto f = write_temp("either.json", R"({"log_level": "warn"})");
    auto separate = run({egressd_bin(), "--check-config", f});
    EXPECT_EQ(separate.status, 0) << separate.err;
    auto inline_value = run({egressd_bin(), "--check-config=" + f});
    EXPECT_EQ(inline_value.status, 0) << inline_value.err;
    ::unlink(f.c_str());
}

}  // namespace
}  // namespace egress::test
