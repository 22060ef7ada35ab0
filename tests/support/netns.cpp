#include "netns.hpp"

#include <sched.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace egress::test {
namespace {

bool write_sysctl(const std::string& path, const std::string& value) {
    std::ofstream f(path);
    f << value;
    f.flush();
    return static_cast<bool>(f);
}

}  // namespace

std::string enter_private_netns(const NetnsSetup& s) {
    if (::unshare(CLONE_NEWNET) != 0)
        return std::string("unshare(CLONE_NEWNET) failed: ") + std::strerror(errno) + " (needs root or CAP_SYS_ADMIN)";
    std::string cmd = "ip link set lo up";
    for (int i = 0; i < s.extra_sources; ++i) {
        cmd += " && ip addr add 127.0.0." + std::to_string(i + 2) + "/32 dev lo";
        cmd += " && ip -6 addr add ::" + std::to_string(i + 2) + "/128 dev lo nodad";
    }
    if (s.black_hole)
        cmd += " && ip link add bh0 type veth peer name bh1 && ip addr add 203.0.113.1/24 dev bh0"
               " && ip link set bh0 up && ip link set bh1 up"
               " && ip neigh add " + std::string(kBlackHole) + " lladdr 02:00:00:00:00:02 dev bh0 nud permanent";
    if (std::system(cmd.c_str()) != 0) return "namespace set-up failed: " + cmd;
    if (!write_sysctl("/proc/sys/net/ipv4/ip_local_port_range", s.port_range))
        return "cannot set net.ipv4.ip_local_port_range to " + s.port_range;
    if (!write_sysctl("/proc/sys/net/core/somaxconn", std::to_string(s.somaxconn)))
        return "cannot set net.core.somaxconn to " + std::to_string(s.somaxconn);
    return "";
}

}  // namespace egress::test
