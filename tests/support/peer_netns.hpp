// A second network namespace behind a veth pair: the remote hosts that tests
// and benchmarks reach. egressd denies its own host's addresses, so what it
// connects to must live in another namespace. Create it from inside the
// private namespace of enter_private_netns().
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

namespace egress::test {

struct PeerNetnsSetup {
    int local_sources = 4;    // addresses on this side: 10.200.N.1.., fd00:200:N::1..
    int somaxconn = 100000;   // the peer's accept queues (per-namespace sysctl)
};

class PeerNetns {
public:
    // `index` (0..99) keeps the interfaces and subnets of several peers apart.
    // Throws std::runtime_error naming the step that failed.
    explicit PeerNetns(const PeerNetnsSetup& setup = {}, int index = 0);
    ~PeerNetns();  // kills the namespace's holder process; the veth goes with it
    PeerNetns(const PeerNetns&) = delete;
    PeerNetns& operator=(const PeerNetns&) = delete;

    // The peer's own addresses (on its end of the veth).
    const std::string& remote_v4() const { return remote_v4_; }
    const std::string& remote_v6() const { return remote_v6_; }
    // This side's addresses on the veth, usable as pool sources.
    const std::vector<std::string>& local_v4() const { return local_v4_; }
    const std::vector<std::string>& local_v6() const { return local_v6_; }
    // CIDRs covering the peer's subnets (for an allow rule).
    std::string subnet_v4() const;
    std::string subnet_v6() const;

    // `argv` run inside the peer namespace (nsenter --net=...).
    std::vector<std::string> wrap(const std::vector<std::string>& argv) const;
    // The same as one shell word list, for sh -c.
    std::string wrap_shell(const std::string& command) const;
    // A TCP socket bound to address:port and listening, made inside the peer
    // namespace (it stays there whichever thread uses it). -1 on failure.
    int listen_tcp(const std::string& address, int port, int backlog = 4096) const;
    // socket(2) inside the peer namespace (close-on-exec added). -1 on failure.
    int make_socket(int domain, int type) const;
    pid_t holder() const { return holder_; }

private:
    pid_t holder_ = -1;
    int index_ = 0;
    std::string remote_v4_, remote_v6_;
    std::vector<std::string> local_v4_, local_v6_;
};

}  // namespace egress::test
