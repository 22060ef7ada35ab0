#include "peer_netns.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <stdexcept>
#include <thread>

namespace egress::test {
namespace {

void run_or_throw(const std::string& cmd) {
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("peer namespace set-up failed: " + cmd);
}

std::string ns_path(pid_t pid) { return "/proc/" + std::to_string(pid) + "/ns/net"; }

}  // namespace

PeerNetns::PeerNetns(const PeerNetnsSetup& s, int index) : index_(index) {
    if (index < 0 || index > 99) throw std::runtime_error("peer namespace index out of 0..99");
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
    holder_ = ::fork();
    if (holder_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (holder_ == 0) {
        // Only async-signal-safe calls here: the parent may have threads.
        // The holder dies with the process that made it, however that ends.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        ::close(ready[0]);
        const char ok = ::unshare(CLONE_NEWNET) == 0 ? '1' : '0';
        (void)!::write(ready[1], &ok, 1);
        ::close(ready[1]);
        for (;;) ::pause();
    }
    ::close(ready[1]);
    char ok = '0';
    const auto n = ::read(ready[0], &ok, 1);
    ::close(ready[0]);
    if (n != 1 || ok != '1') {
        ::kill(holder_, SIGKILL);
        ::waitpid(holder_, nullptr, 0);
        throw std::runtime_error("unshare(CLONE_NEWNET) failed in the peer namespace's holder");
    }
    const auto i = std::to_string(index);
    remote_v4_ = "10.200." + i + ".100";
    remote_v6_ = "fd00:200:" + i + "::100";
    for (int k = 1; k <= s.local_sources; ++k) {
        local_v4_.push_back("10.200." + i + "." + std::to_string(k));
        local_v6_.push_back("fd00:200:" + i + "::" + std::to_string(k));
    }
    const auto here = "pe" + i + "a", there = "pe" + i + "b";
    const auto in_peer = "nsenter --net=" + ns_path(holder_) + " ";
    std::string cmd = "ip link add " + here + " type veth peer name " + there + " netns " + std::to_string(holder_);
    for (const auto& a : local_v4_) cmd += " && ip addr add " + a + "/24 dev " + here;
    for (const auto& a : local_v6_) cmd += " && ip -6 addr add " + a + "/64 dev " + here + " nodad";
    cmd += " && ip link set " + here + " up";
    cmd += " && " + in_peer + "ip link set lo up";
    cmd += " && " + in_peer + "ip addr add " + remote_v4_ + "/24 dev " + there;
    cmd += " && " + in_peer + "ip -6 addr add " + remote_v6_ + "/64 dev " + there + " nodad";
    cmd += " && " + in_peer + "ip link set " + there + " up";
    cmd += " && " + in_peer + "sysctl -qw net.core.somaxconn=" + std::to_string(s.somaxconn);
    cmd += " && " + in_peer + "sysctl -qw net.ipv4.tcp_max_syn_backlog=" + std::to_string(s.somaxconn);
    try {
        run_or_throw(cmd);
    } catch (...) {
        ::kill(holder_, SIGKILL);
        ::waitpid(holder_, nullptr, 0);
        throw;
    }
}

PeerNetns::~PeerNetns() {
    if (holder_ > 0) {
        ::kill(holder_, SIGKILL);
        ::waitpid(holder_, nullptr, 0);
        // The kernel tears the namespace and its veth down after the holder
        // is gone: wait, so that the next peer with this index can be made.
        const auto here = "pe" + std::to_string(index_) + "a";
        for (int i = 0; i < 500 && ::if_nametoindex(here.c_str()) != 0; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

std::string PeerNetns::subnet_v4() const { return "10.200." + std::to_string(index_) + ".0/24"; }
std::string PeerNetns::subnet_v6() const { return "fd00:200:" + std::to_string(index_) + "::/64"; }

std::vector<std::string> PeerNetns::wrap(const std::vector<std::string>& argv) const {
    std::vector<std::string> out{"nsenter", "--net=" + ns_path(holder_), "--"};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
}

std::string PeerNetns::wrap_shell(const std::string& command) const {
    return "nsenter --net=" + ns_path(holder_) + " -- " + command;
}

int PeerNetns::make_socket(int domain, int type) const {
    int result = -1;
    std::thread t([&] {
        const int ns = ::open(ns_path(holder_).c_str(), O_RDONLY | O_CLOEXEC);
        if (ns < 0) return;
        if (::setns(ns, CLONE_NEWNET) == 0) result = ::socket(domain, type | SOCK_CLOEXEC, 0);
        ::close(ns);
    });
    t.join();
    return result;
}

int PeerNetns::listen_tcp(const std::string& address, int port, int backlog) const {
    int result = -1;
    // setns() moves only the calling thread: do it on a thread of its own.
    std::thread t([&] {
        const int ns = ::open(ns_path(holder_).c_str(), O_RDONLY | O_CLOEXEC);
        if (ns < 0) return;
        const bool entered = ::setns(ns, CLONE_NEWNET) == 0;
        ::close(ns);
        if (!entered) return;
        sockaddr_storage ss{};
        socklen_t len = 0;
        auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
        auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
        if (::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
            v4->sin_family = AF_INET;
            v4->sin_port = htons(static_cast<std::uint16_t>(port));
            len = sizeof *v4;
        } else if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons(static_cast<std::uint16_t>(port));
            len = sizeof *v6;
        } else {
            return;
        }
        const int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return;
        const int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, backlog) != 0) {
            ::close(fd);
            return;
        }
        result = fd;
    });
    t.join();
    return result;
}

}  // namespace egress::test
