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

// Sends one inet_diag dump request (`req`, then the filter bytecode `prog`,
// if any) and counts, per source of `sources` of the family, the sockets
// whose local address is that source.
Result<std::vector<std::uint32_t>> dump_and_count(Syscalls& sys, const std::vector<Endpoint>& sources, bool v6,
                                                  const inet_diag_req_v2& req, const std::vector<std::uint8_t>& prog) {
    std::vector<std::uint32_t> counts(sources.size(), 0);
    const auto made = sys.socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (!made.ok()) return Error{made.err, "socket(NETLINK_SOCK_DIAG) failed"};
    const UniqueFd nl(static_cast<int>(made.value));
    // nlmsghdr, the request, then (with a filter) one attribute holding it.
    const std::size_t head = NLMSG_LENGTH(sizeof req);
    std::vector<std::uint8_t> msg(head + (prog.empty() ? 0 : NLA_HDRLEN + prog.size()), 0);
    nlmsghdr nlh{};
    nlh.nlmsg_len = static_cast<std::uint32_t>(msg.size());
    nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    std::memcpy(msg.data(), &nlh, sizeof nlh);
    std::memcpy(msg.data() + NLMSG_HDRLEN, &req, sizeof req);
    if (!prog.empty()) {
        nlattr attr{};
        attr.nla_type = INET_DIAG_REQ_BYTECODE;
        attr.nla_len = static_cast<std::uint16_t>(NLA_HDRLEN + prog.size());
        std::memcpy(msg.data() + head, &attr, sizeof attr);
        std::memcpy(msg.data() + head + NLA_HDRLEN, prog.data(), prog.size());
    }
    iovec out{msg.data(), msg.size()};
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
    std::vector<std::uint8_t> prog(prog_len, 0);
    inet_diag_bc_op op{};
    op.code = INET_DIAG_BC_D_COND;
    op.yes = static_cast<unsigned char>(prog_len);           // matched: run off the end, accept
    op.no = static_cast<unsigned short>(prog_len + 4);      // not matched: jump past the end, reject
    inet_diag_hostcond cond{};
    cond.family = req.sdiag_family;
    cond.prefix_len = static_cast<std::uint8_t>(alen * 8);
    cond.port = dest.port;
    std::memcpy(prog.data(), &op, sizeof op);
    std::memcpy(prog.data() + sizeof op, &cond, sizeof cond);
    std::memcpy(prog.data() + sizeof op + sizeof cond, dest.addr.data(), alen);
    return dump_and_count(sys, sources, dest.v6, req, prog);
}

Result<std::vector<std::uint32_t>> count_udp_ports(Syscalls& sys, const std::vector<Endpoint>& sources, bool v6) {
    // Every UDP socket of the family, in any state (a bound one holds its
    // port whether connected or not), whose local address is one of the
    // sources: filtered in the kernel by one condition per source, OR-ed.
    // The kernel checks that following each op's `yes` offset walks the
    // program to its end, and `yes` is one byte: a match steps onto a JMP
    // whose `no` (two bytes) reaches the end (accept); a miss skips it to
    // the next source; the last miss jumps past the end (reject).
    inet_diag_req_v2 req{};
    req.sdiag_family = v6 ? AF_INET6 : AF_INET;
    req.sdiag_protocol = IPPROTO_UDP;
    req.idiag_states = ~0u;
    std::vector<const Endpoint*> mine;
    for (const auto& s : sources)
        if (s.v6 == v6) mine.push_back(&s);
    if (mine.empty()) return std::vector<std::uint32_t>(sources.size(), 0);
    const std::size_t alen = v6 ? 16 : 4;
    const std::size_t cond_len = sizeof(inet_diag_bc_op) + sizeof(inet_diag_hostcond) + alen;
    const std::size_t jmp_len = sizeof(inet_diag_bc_op);
    const std::size_t total = mine.size() * cond_len + (mine.size() - 1) * jmp_len;
    if (NLA_HDRLEN + total > 0xFFFF) return dump_and_count(sys, sources, v6, req, {});  // too many: unfiltered
    std::vector<std::uint8_t> prog(total, 0);
    std::size_t at = 0;
    for (std::size_t i = 0; i < mine.size(); ++i) {
        const bool last = i + 1 == mine.size();
        inet_diag_bc_op op{};
        op.code = INET_DIAG_BC_S_COND;
        op.yes = static_cast<unsigned char>(cond_len);
        op.no = static_cast<unsigned short>(last ? total - at + 4 : cond_len + jmp_len);
        inet_diag_hostcond cond{};
        cond.family = req.sdiag_family;
        cond.prefix_len = static_cast<std::uint8_t>(alen * 8);
        cond.port = -1;  // any port
        std::memcpy(prog.data() + at, &op, sizeof op);
        std::memcpy(prog.data() + at + sizeof op, &cond, sizeof cond);
        std::memcpy(prog.data() + at + sizeof op + sizeof cond, mine[i]->addr.data(), alen);
        at += cond_len;
        if (last) break;
        inet_diag_bc_op jmp{};
        jmp.code = INET_DIAG_BC_JMP;
        jmp.yes = static_cast<unsigned char>(jmp_len);
        jmp.no = static_cast<unsigned short>(total - at);  // to the end: accept
        std::memcpy(prog.data() + at, &jmp, sizeof jmp);
        at += jmp_len;
    }
    return dump_and_count(sys, sources, v6, req, prog);
}

}  // namespace egress
