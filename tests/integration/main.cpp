// Entry point of every integration test binary: a private network namespace
// first, while the process still has one thread, then the tests.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>

#include "netns.hpp"

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    ::testing::InitGoogleTest(&argc, argv);
    if (const auto err = egress::test::enter_private_netns(); !err.empty()) {
        std::fprintf(stderr, "SKIP: %s\n", err.c_str());
        return 77;  // meson's "skipped"; .ci/run treats a skip as a failure
    }
    return RUN_ALL_TESTS();
}
