// libegress as others get it: `meson install` into a temporary root, then
// everything built from that root alone (headers, egress.pc, libegress.so):
// each public header on its own, and the README's C++ and C examples, which
// then connect through the real egressd.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness.hpp"

namespace egress::test {
namespace {

namespace fs = std::filesystem;

// Splits a command line meson wrote ("ccache c++") into words; the first is
// looked up in $PATH, as run() takes a path.
std::vector<std::string> command(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> words;
    for (std::string w; in >> w;) words.push_back(w);
    if (words.empty()) return words;
    if (words[0].find('/') == std::string::npos) {
        std::istringstream path(std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin");
        for (std::string dir; std::getline(path, dir, ':');)
            if (::access((dir + "/" + words[0]).c_str(), X_OK) == 0) {
                words[0] = dir + "/" + words[0];
                break;
            }
    }
    return words;
}

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

std::string trimmed(const std::string& s) {
    const auto b = s.find_first_not_of(" \n");
    return b == std::string::npos ? "" : s.substr(b, s.find_last_not_of(" \n") - b + 1);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The body of the first fenced code block after the line `marker` in the
// README ("" when the marker or its block is missing).
std::string readme_example(const std::string& marker) {
    std::istringstream readme(read_file(env_or_die("README")));
    std::string line, body;
    bool found = false, in_block = false;
    while (std::getline(readme, line)) {
        if (!found) {
            found = line == marker;
        } else if (!in_block) {
            in_block = line.rfind("```", 0) == 0;
        } else if (line.rfind("```", 0) == 0) {
            return body;
        } else {
            body += line + "\n";
        }
    }
    return "";
}

// One `meson install` for the whole binary, into a directory removed at the end.
class Installed : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/egress-install.XXXXXX";
        destdir_ = ::mkdtemp(tmpl);
        install_ = run({env_or_die("MESON_BIN"), "install", "-C", env_or_die("BUILD_ROOT"), "--no-rebuild",
                        "--destdir", destdir_, "--quiet"});
    }
    static void TearDownTestSuite() { fs::remove_all(destdir_); }

    void SetUp() override {
        ASSERT_EQ(install_.status, 0) << "meson install failed (is every installed target in the test's "
                                         "depends?):\n" << install_.out << install_.err;
    }

    static std::string staged(const char* env) { return destdir_ + env_or_die(env); }

    // pkg-config answers about the installed egress.pc, with paths inside destdir.
    static RunResult pkg_config(const std::vector<std::string>& args) {
        return run(command(env_or_die("PKG_CONFIG_BIN")) + args, "",
                   {"PKG_CONFIG_PATH=" + staged("INSTALL_LIBDIR") + "/pkgconfig", "PKG_CONFIG_LIBDIR=/nonexistent",
                    "PKG_CONFIG_SYSROOT_DIR=" + destdir_});
    }

    static std::vector<std::string> words(const std::string& text) { return command(text); }

    // The compiler flags for the build's sanitizers: an instrumented
    // libegress needs its runtime in the program that loads it.
    static std::vector<std::string> sanitize_flags() {
        const std::string s = env_or_die("SANITIZE");
        if (s == "none") return {};
        return {"-fsanitize=" + s, "-fno-sanitize-recover=all"};
    }

    // Compiles `source` (file name `name`) with `compiler` and egress.pc's
    // flags only; every egress header it read must come from destdir.
    static RunResult build(const char* compiler, const std::string& name, const std::string& source,
                           const std::vector<std::string>& std_flags, const std::string& out = "") {
        const std::string src = destdir_ + "/" + name;
        std::ofstream(src) << source;
        auto cflags = pkg_config({"--cflags", "egress"});
        auto libs = pkg_config({"--libs", "egress"});
        EXPECT_EQ(cflags.status, 0) << cflags.err;
        EXPECT_EQ(libs.status, 0) << libs.err;
        const std::string deps = src + ".d";
        auto argv = command(env_or_die(compiler)) + std_flags +
                    std::vector<std::string>{"-Wall", "-Wextra", "-Werror", "-MD", "-MF", deps} + sanitize_flags() +
                    words(cflags.out);
        if (out.empty()) {
            argv = argv + std::vector<std::string>{"-fsyntax-only", src};
        } else {
            argv = argv + std::vector<std::string>{src, "-o", out} + words(libs.out);
        }
        auto r = run(argv);
        if (r.status == 0) {
            const auto listed = read_file(deps);
            EXPECT_NE(listed, "") << "the compiler wrote no " << deps;
            std::istringstream d(listed);
            for (std::string w; d >> w;)
                if (w.find("/egress/") != std::string::npos && w.rfind(destdir_, 0) != 0)
                    ADD_FAILURE() << name << " read " << w << ", outside the installed tree";
        }
        return r;
    }

    // Runs an example against a fresh egressd and an echo listener; it must
    // exit 0, report the brokered connection and print the echoed "ping".
    // The C++ example takes ADDR:PORT, the C example ADDR PORT.
    static void run_example(const std::string& exe, bool port_apart) {
        Daemon d;
        Listener echo(Listener::Mode::echo);
        const auto dest = echo.endpoint();
        std::vector<std::string> argv{exe};
        if (port_apart) {
            argv.push_back(address_string(dest));
            argv.push_back(std::to_string(dest.port));
        } else {
            argv.push_back(endpoint_string(dest));
        }
        auto r = run(argv, "",
                     {"EGRESS_SOCKET=" + d.socket(), "LD_LIBRARY_PATH=" + staged("INSTALL_LIBDIR")});
        EXPECT_EQ(r.status, 0) << r.out << r.err;
        EXPECT_NE(r.out.find("-> " + endpoint_string(dest) + " via pool default\n"), std::string::npos) << r.out;
        EXPECT_NE(r.out.find("\nping\n"), std::string::npos) << r.out;
    }

    // The README's example in `lang` ("C++" or "C"), built as a user of the
    // installed tree builds it (C: ADDR PORT, C++: ADDR:PORT), then run.
    static void build_and_run_readme_example(const std::string& lang) {
        const bool c = lang == "C";
        const auto source = readme_example("<!-- libegress example: " + lang + " -->");
        ASSERT_NE(source, "") << "README.md: no code block after the " << lang << " example's marker";
        const auto exe = destdir_ + (c ? "/example-c" : "/example-cpp");
        auto r = build(c ? "CC_CMD" : "CXX_CMD", c ? "example.c" : "example.cpp", source,
                       {c ? "-std=c99" : "-std=c++20"}, exe);
        ASSERT_EQ(r.status, 0) << r.err;
        run_example(exe, c);
    }

    static std::string destdir_;
    static RunResult install_;
};
std::string Installed::destdir_;
RunResult Installed::install_;

TEST_F(Installed, PkgConfigLinksLibegressAloneAndPointsIntoThePrefix) {
    auto libs = pkg_config({"--libs", "egress"});
    ASSERT_EQ(libs.status, 0) << libs.err;
    EXPECT_EQ(trimmed(libs.out), "-L" + staged("INSTALL_LIBDIR") + " -legress");
    auto cflags = pkg_config({"--cflags", "egress"});
    ASSERT_EQ(cflags.status, 0) << cflags.err;
    EXPECT_EQ(trimmed(cflags.out), "-I" + staged("INSTALL_INCLUDEDIR"));
    EXPECT_TRUE(fs::exists(staged("INSTALL_LIBDIR") + "/libegress.so"));
}

TEST_F(Installed, EveryPublicHeaderCompilesOnItsOwn) {
    int headers = 0;
    for (const auto& e : fs::directory_iterator(staged("INSTALL_INCLUDEDIR") + "/egress")) {
        const auto name = e.path().filename().string();
        const bool c = e.path().extension() == ".h";
        // (A declaration after it: ISO C forbids an empty translation unit.)
        const auto source = "#include <egress/" + name + ">\ntypedef int egress_header_check;\n";
        // C headers must be valid C99 and C++; C++ headers need C++20.
        auto r = build(c ? "CC_CMD" : "CXX_CMD", name + (c ? ".c" : ".cpp"), source,
                       {c ? "-std=c99" : "-std=c++20", "-pedantic"});
        EXPECT_EQ(r.status, 0) << name << ":\n" << r.err;
        if (c) {
            r = build("CXX_CMD", name + ".cpp", source, {"-std=c++20", "-pedantic"});
            EXPECT_EQ(r.status, 0) << name << " in C++:\n" << r.err;
        }
        ++headers;
    }
    EXPECT_GE(headers, 3) << "egress.h, egress_proto.h and egress_client.hpp at least";
}

TEST_F(Installed, LibegressExportsOnlyItsPublicApi) {
    auto r = run(command(env_or_die("NM_BIN")) +
                 std::vector<std::string>{"-D", "--defined-only", "-C", staged("INSTALL_LIBDIR") + "/libegress.so"});
    ASSERT_EQ(r.status, 0) << r.err;
    std::istringstream lines(r.out);
    int exported = 0;
    for (std::string line; std::getline(lines, line);) {
        // "ADDRESS TYPE NAME": the C ABI (egress_*) or the C++ API (egress::).
        const auto name = line.substr(std::min(line.size(), line.find(' ', line.find(' ') + 1) + 1));
        const bool c_abi = name.rfind("egress_", 0) == 0;
        const bool cpp_api = name.rfind("egress::", 0) == 0 && name.rfind("egress::proto::", 0) != 0;
        EXPECT_TRUE(c_abi || cpp_api) << "exported: " << line;
        ++exported;
    }
    EXPECT_GT(exported, 10) << r.out;
}

TEST_F(Installed, ReadmeCppExampleBuildsAndConnectsThroughEgressd) { build_and_run_readme_example("C++"); }

TEST_F(Installed, ReadmeCExampleBuildsAndConnectsThroughEgressd) { build_and_run_readme_example("C"); }

}  // namespace
}  // namespace egress::test
