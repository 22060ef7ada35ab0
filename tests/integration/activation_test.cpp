// Socket activation: egressd serves a listening socket handed over as
// systemd hands it (LISTEN_FDS, LISTEN_PID, descriptor 3), never removes a
// socket file it did not create, and a client waiting in that socket's
// backlog while no egressd runs is served by the next one.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "codec.hpp"
#include "harness.hpp"

namespace egress::test {
namespace {

// One STATUS exchange on a new connection; its status, or -1 without a reply.
long status_via(const std::string& path) {
    auto conn = raw_connect(path);
    if (!conn) return -1;
    auto r = exchange(conn.get(), proto::encode_status(1));
    return r ? static_cast<long>(status_of(*r)) : -1;
}

TEST(Activation, ServesThePassedSocketAndLeavesItsFileAlone) {
    HeldSocket held;
    {
        Daemon d("", Daemon::Passed{held.fd.get(), held.path});
        EXPECT_EQ(status_via(held.path), 0);
        EXPECT_NE(d.log().find("(passed by systemd)"), std::string::npos) << d.log();
        EXPECT_TRUE(d.alive());
    }  // SIGTERM, exit 0
    EXPECT_TRUE(std::filesystem::exists(held.path)) << "egressd removed a socket it did not create";
}

TEST(Activation, AClientThatConnectsBetweenTwoDaemonsIsServedByTheNext) {
    HeldSocket held;
    { Daemon first("", Daemon::Passed{held.fd.get(), held.path}); }
    // No egressd runs: the connection waits in the held socket's backlog.
    auto conn = raw_connect(held.path);
    ASSERT_TRUE(conn) << "refused while no egressd ran: " << std::strerror(errno);
    ASSERT_TRUE(send_datagram(conn.get(), proto::encode_status(7)));
    Daemon next("", Daemon::Passed{held.fd.get(), held.path});
    auto r = receive_reply(conn.get());
    ASSERT_TRUE(r) << "the waiting client got no reply";
    EXPECT_EQ(r->reply.header.request_id, 7u);
    EXPECT_EQ(status_of(r->reply), 0u);
}

TEST(Activation, RefusesAPassedSocketItCannotServe) {
    HeldSocket stream(SOCK_STREAM);
    HeldSocket quiet(SOCK_SEQPACKET, -1);
    HeldSocket good;
    struct Case {
        std::vector<int> fds;
        std::string expect;
    } cases[] = {
        {{stream.fd.get()}, "not an AF_UNIX SOCK_SEQPACKET socket that listens"},
        {{quiet.fd.get()}, "not an AF_UNIX SOCK_SEQPACKET socket that listens"},
        {{good.fd.get(), stream.fd.get()}, "passed 2 sockets"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.expect);
        int err_pipe[2];
        ASSERT_EQ(::pipe2(err_pipe, O_CLOEXEC), 0);
        const pid_t pid = ::fork();
        if (pid == 0) {
            ::dup2(err_pipe[1], 2);
            // Out of the way first, so that placing one cannot clobber another.
            std::vector<int> high;
            for (const int fd : c.fds) high.push_back(::fcntl(fd, F_DUPFD, 100));
            for (std::size_t i = 0; i < high.size(); ++i) ::dup2(high[i], 3 + static_cast<int>(i));
            ::close_range(3 + static_cast<unsigned>(c.fds.size()), ~0U, 0);
            const std::string n = "LISTEN_FDS=" + std::to_string(c.fds.size());
            const std::string p = "LISTEN_PID=" + std::to_string(::getpid());
            const auto bin = egressd_bin();
            char* env[] = {const_cast<char*>(n.c_str()), const_cast<char*>(p.c_str()), nullptr};
            ::execle(bin.c_str(), bin.c_str(), "--metrics-listen=", static_cast<char*>(nullptr), env);
            ::_exit(127);
        }
        ::close(err_pipe[1]);
        std::string err;
        char buf[4096];
        for (ssize_t n; (n = ::read(err_pipe[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<std::size_t>(n));
        ::close(err_pipe[0]);
        int status = 0;
        ::waitpid(pid, &status, 0);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << "status " << status << "; " << err;
        EXPECT_NE(err.find(c.expect), std::string::npos) << err;
    }
}

}  // namespace
}  // namespace egress::test
