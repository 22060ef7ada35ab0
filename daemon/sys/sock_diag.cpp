#include "sock_diag.hpp"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "unique_fd.hpp"

namespace egress {

namespace {

// Sends one inet_diag dump request (`req`, then `prog_len` bytes of filter
// bytecode in `prog`) and counts, per source of `sources` of the family,
// the sockets whose local address is that source.
Result<std::vector<std::uint32_t>> dump_and_count(Syscalls& sys, const std::vector<Endpoint>& sources, bool v6,
                                                  const inet_diag_req_v2& req, const std::uint8_t* prog,
                                                  std::size_t prog_len) {
    std::vector<std::uint32_t> counts(sources.size(), 0);
    const auto made = sys.socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (!made.ok()) return Error{made.err, "socket(NETLINK_SOCK_DIAG) failed"};
    const UniqueFd nl(static_cast<int>(made.value));
    struct {
        nlmsghdr nlh;
        inet_diag_req_v2 req;
        nlattr attr;
        std::uint8_t prog[sizeof(inet_diag_bc_op) + sizeof(inet_diag_hostcond) + 16];
    } msg{};
    msg.req = req;
    msg.nlh.nlmsg_len = static_cast<std::uint32_t>(NLMSG_LENGTH(sizeof msg.req));
    if (prog_len) {
        std::memcpy(msg.prog, prog, prog_len);
        msg.attr.nla_type = INET_DIAG_REQ_BYTECODE;
        msg.attr.nla_len = static_cast<std::uint16_t>(NLA_HDRLEN + prog_len);
        msg.nlh.nlmsg_len += static_cast<std::uint32_t>(NLA_HDRLEN + prog_len);
    }
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    iovec out{&msg, msg.nlh.nlmsg_len};
    msghdr request{};
    request.msg_iov = &out;
    request.msg_iovlen = 1;
    if (const auto r = sys.sendmsg(nl.get(), &request, 0); !r.ok()) return Error{r.err, "sock_diag request failed"};

    const std::size_t alen = v6 ? 16 : 4;
    alignas(nlmsghdr) std::uint8_t buf[32768];
    for (;;) {
        iovec in{buf, sizeof buf};
        msghdr answer{};
        answer.msg_iov = &in;
        answer.msg_iovlen = 1;
        const auto r = sys.recvmsg(nl.get(), &answer, 0);
        if (!r.ok()) {
            if (r.err == EINTR) continue;
            return Error{r.err, "sock_diag dump failed"};
        }
        auto len = static_cast<unsigned>(r.value);
        for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type == NLMSG_DONE) return counts;
            if (h->nlmsg_type == NLMSG_ERROR) {
                const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
                return Error{-e->error, "sock_diag answered an error"};
            }
            const auto* d = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
            for (std::size_t i = 0; i < sources.size(); ++i)
                if (sources[i].v6 == v6 && std::memcmp(d->id.idiag_src, sources[i].addr.data(), alen) == 0)
                    ++counts[i];
        }
    }
}

}  // namespace

Result<std::vector<std::uint32_t>> count_connections(Syscalls& sys, const std::vector<Endpoint>& sources,
                                                     const Endpoint& dest) {
    // A dump of TCP sockets, filtered in the kernel by a bytecode program
    // with one condition: destination address and port == dest.
    const std::size_t alen = dest.addr_len();
    const std::size_t prog_len = sizeof(inet_diag_bc_op) + sizeof(inet_diag_hostcond) + alen;
    inet_diag_req_v2 req{};
    req.sdiag_family = dest.v6 ? AF_INET6 : AF_INET;
    req.sdiag_protocol = IPPROTO_TCP;
    req.idiag_states = (1u << TCP_ESTABLISHED) | (1u << TCP_SYN_SENT);
    std::uint8_t prog[sizeof(inet_diag_bc_op) + sizeof(inet_diag_hostcond) + 16] = {};
    inet_diag_bc_op op{};
    op.code = INET_DIAG_BC_D_COND;
    op.yes = static_cast<unsigned char>(prog_len);           // matched: run off the end, accept
    op.no = static_cast<unsigned short>(prog_len + 4);      // not matched: jump past the end, reject
    inet_diag_hostcond cond{};
    cond.family = req.sdiag_family;
    cond.prefix_len = static_cast<std::uint8_t>(alen * 8);
    cond.port = dest.port;
    std::memcpy(prog, &op, sizeof op);
    std::memcpy(prog + sizeof op, &cond, sizeof cond);
    std::memcpy(prog + sizeof op + sizeof cond, dest.addr.data(), alen);
    return dump_and_count(sys, sources, dest.v6, req, prog, prog_len);
}

Result<std::vector<std::uint32_t>> count_udp_ports(Syscalls& sys, const std::vector<Endpoint>& sources, bool v6) {
    // Every UDP socket of the family, in any state: a bound one holds its
    // port whether connected or not.
    inet_diag_req_v2 req{};
    req.sdiag_family = v6 ? AF_INET6 : AF_INET;
    req.sdiag_protocol = IPPROTO_UDP;
    req.idiag_states = ~0u;
    return dump_and_count(sys, sources, v6, req, nullptr, 0);
}

}  // namespace egress
