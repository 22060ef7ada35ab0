// Address messages from NETLINK_ROUTE, built by hand: RTM_NEWADDR and
// RTM_DELADDR, IFA_LOCAL against IFA_ADDRESS, both families, the end of a
// dump, errors, and every way a datagram can be short or malformed.
#include "host/netlink_addr.hpp"

#include <gtest/gtest.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace egress {
namespace {

using Bytes = std::vector<std::uint8_t>;

template <class T>
void put(Bytes& b, const T& v) {
    const auto at = b.size();
    b.resize(at + sizeof v);
    std::memcpy(b.data() + at, &v, sizeof v);
}

void pad4(Bytes& b) { b.resize((b.size() + 3) & ~std::size_t{3}, 0); }

Bytes attr(std::uint16_t type, const Bytes& payload) {
    Bytes b;
    put(b, rtattr{static_cast<unsigned short>(RTA_LENGTH(payload.size())), type});
    b.insert(b.end(), payload.begin(), payload.end());
    pad4(b);
    return b;
}

Bytes ip(const char* text) {
    const auto e = parse_address(text);
    EXPECT_TRUE(e) << text;
    return Bytes(e->addr.begin(), e->addr.begin() + static_cast<long>(e->addr_len()));
}

Bytes ifaddr(std::uint8_t family, std::uint32_t ifindex, std::vector<Bytes> attrs, std::uint8_t prefixlen = 24) {
    Bytes b;
    put(b, ifaddrmsg{family, prefixlen, 0, RT_SCOPE_UNIVERSE, ifindex});
    for (const auto& a : attrs) b.insert(b.end(), a.begin(), a.end());
    return b;
}

// One netlink message: header, then `body` padded to 4 bytes.
Bytes msg(std::uint16_t type, const Bytes& body, std::uint16_t flags = 0) {
    Bytes b;
    put(b, nlmsghdr{static_cast<std::uint32_t>(NLMSG_LENGTH(body.size())), type, flags, 7, 0});
    b.insert(b.end(), body.begin(), body.end());
    pad4(b);
    return b;
}

Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes b;
    for (const auto& p : parts) b.insert(b.end(), p.begin(), p.end());
    return b;
}

Bytes error_body(int err) {
    Bytes b;
    put(b, nlmsgerr{err, nlmsghdr{}});
    return b;
}

AddrChange change(bool added, std::uint32_t ifindex, const char* addr) { return AddrChange{added, ifindex, *parse_address(addr)}; }

TEST(ParseAddrMessages, NewAddrIpv4) {
    const auto m = parse_addr_messages(
        msg(RTM_NEWADDR, ifaddr(AF_INET, 3, {attr(IFA_ADDRESS, ip("192.0.2.1")), attr(IFA_LOCAL, ip("192.0.2.1"))})));
    EXPECT_EQ(m.changes, std::vector<AddrChange>{change(true, 3, "192.0.2.1")});
    EXPECT_FALSE(m.done);
    EXPECT_EQ(m.error, 0);
    EXPECT_TRUE(m.problems.empty());
}

TEST(ParseAddrMessages, PointToPointIpv4TakesIfaLocalNotThePeer) {
    for (const auto& attrs : {std::vector<Bytes>{attr(IFA_ADDRESS, ip("10.9.0.2")), attr(IFA_LOCAL, ip("10.9.0.1"))},
                              std::vector<Bytes>{attr(IFA_LOCAL, ip("10.9.0.1")), attr(IFA_ADDRESS, ip("10.9.0.2"))}}) {
        const auto m = parse_addr_messages(msg(RTM_NEWADDR, ifaddr(AF_INET, 4, attrs, 32)));
        EXPECT_EQ(m.changes, std::vector<AddrChange>{change(true, 4, "10.9.0.1")});
    }
    // Only IFA_ADDRESS (no local address given): that one.
    const auto m = parse_addr_messages(msg(RTM_NEWADDR, ifaddr(AF_INET, 4, {attr(IFA_ADDRESS, ip("10.9.0.3"))})));
    EXPECT_EQ(m.changes, std::vector<AddrChange>{change(true, 4, "10.9.0.3")});
}

TEST(ParseAddrMessages, Ipv6IsIfaAddressUnlessIfaLocalIsGiven) {
    auto m = parse_addr_messages(msg(RTM_NEWADDR, ifaddr(AF_INET6, 2, {attr(IFA_ADDRESS, ip("2001:db8::1"))}, 64)));
    EXPECT_EQ(m.changes, std::vector<AddrChange>{change(true, 2, "2001:db8::1")});
    m = parse_addr_messages(msg(RTM_NEWADDR, ifaddr(AF_INET6, 2, {attr(IFA_ADDRESS, ip("2001:db8::2")),
                                                                  attr(IFA_LOCAL, ip("2001:db8::1"))}, 128)));
    EXPECT_EQ(m.changes, std::vector<AddrChange>{change(true, 2, "2001:db8::1")});
}

TEST(ParseAddrMessages, DelAddrAndOtherAttributesAreSkipped) {
    ifa_cacheinfo ci{};
    Bytes cib(reinterpret_cast<const std::uint8_t*>(&ci), reinterpret_cast<const std::uint8_t*>(&ci) + sizeof ci);
    const auto m = parse_addr_messages(msg(
        RTM_DELADDR, ifaddr(AF_INET, 9, {attr(IFA_LABEL, Bytes{'b', 'h', '0', 0, 'x'}), attr(IFA_CACHEINFO, cib),
                                         attr(IFA_FLAGS, Bytes{0, 0, 0, 0}), attr(IFA_LOCAL, ip("203.0.113.1"))})));
    EXPECT_EQ(m.changes, std::vector<AddrChange>{change(false, 9, "203.0.113.1")});
    EXPECT_TRUE(m.problems.empty());
}

TEST(ParseAddrMessages, ADumpDatagramInOrderThenDone) {
    const auto m = parse_addr_messages(cat({
        msg(RTM_NEWADDR, ifaddr(AF_INET, 1, {attr(IFA_LOCAL, ip("127.0.0.1"))}), NLM_F_MULTI),
        msg(RTM_NEWADDR, ifaddr(AF_INET6, 1, {attr(IFA_ADDRESS, ip("::1"))}), NLM_F_MULTI),
        msg(RTM_DELADDR, ifaddr(AF_INET, 5, {attr(IFA_LOCAL, ip("192.0.2.9"))}), NLM_F_MULTI),
        msg(NLMSG_DONE, Bytes{0, 0, 0, 0}, NLM_F_MULTI),
    }));
    EXPECT_EQ(m.changes, (std::vector<AddrChange>{change(true, 1, "127.0.0.1"), change(true, 1, "::1"),
                                                  change(false, 5, "192.0.2.9")}));
    EXPECT_TRUE(m.done);
    EXPECT_TRUE(m.problems.empty());
}

TEST(ParseAddrMessages, ErrorsAreReportedAndAcksAreNot) {
    auto m = parse_addr_messages(msg(NLMSG_ERROR, error_body(-ENOBUFS)));
    EXPECT_EQ(m.error, ENOBUFS);
    EXPECT_FALSE(m.done);
    m = parse_addr_messages(msg(NLMSG_ERROR, error_body(-EBUSY)));
    EXPECT_EQ(m.error, EBUSY);
    m = parse_addr_messages(msg(NLMSG_ERROR, error_body(0)));
    EXPECT_EQ(m.error, 0);
    EXPECT_TRUE(m.problems.empty());
    m = parse_addr_messages(msg(NLMSG_ERROR, Bytes{1, 2}));
    EXPECT_EQ(m.error, 0);
    EXPECT_EQ(m.problems.size(), 1u);
}

TEST(ParseAddrMessages, OtherFamiliesAndTypesAreIgnored) {
    const auto m = parse_addr_messages(cat({
        msg(RTM_NEWADDR, ifaddr(AF_UNIX, 1, {attr(IFA_LOCAL, Bytes{1, 2, 3, 4})})),
        msg(RTM_NEWADDR, ifaddr(AF_UNSPEC, 1, {})),
        msg(RTM_NEWLINK, Bytes(16, 0)),
        msg(NLMSG_NOOP, Bytes{}),
        msg(RTM_NEWADDR, ifaddr(AF_INET, 2, {attr(IFA_LOCAL, ip("192.0.2.2"))})),
    }));
    EXPECT_EQ(m.changes, std::vector<AddrChange>{change(true, 2, "192.0.2.2")});
    EXPECT_TRUE(m.problems.empty());
}

TEST(ParseAddrMessages, TruncatedHeadersStopTheDatagramAndKeepWhatCameBefore) {
    const auto good = msg(RTM_NEWADDR, ifaddr(AF_INET, 2, {attr(IFA_LOCAL, ip("192.0.2.2"))}));
    auto cut = good;
    cut.resize(10);  // less than a header
    auto m = parse_addr_messages(cat({good, cut}));
    EXPECT_EQ(m.changes.size(), 1u);
    EXPECT_EQ(m.problems.size(), 1u);

    auto longer = good;  // nlmsg_len beyond the datagram
    longer.resize(good.size() - 4);
    m = parse_addr_messages(cat({good, longer}));
    EXPECT_EQ(m.changes.size(), 1u);
    ASSERT_EQ(m.problems.size(), 1u);
    EXPECT_NE(m.problems[0].find("does not fit"), std::string::npos) << m.problems[0];

    auto tiny = good;  // nlmsg_len below the header's own size
    tiny[0] = 8, tiny[1] = tiny[2] = tiny[3] = 0;
    m = parse_addr_messages(cat({tiny, good}));
    EXPECT_TRUE(m.changes.empty());
    EXPECT_EQ(m.problems.size(), 1u);

    EXPECT_TRUE(parse_addr_messages(Bytes{}).changes.empty());
    EXPECT_TRUE(parse_addr_messages(Bytes{}).problems.empty());
}

TEST(ParseAddrMessages, AMalformedAddressMessageIsSkippedAndTheNextOneRead) {
    const auto next = msg(RTM_NEWADDR, ifaddr(AF_INET, 2, {attr(IFA_LOCAL, ip("192.0.2.2"))}));
    Bytes over_attr = attr(IFA_LOCAL, ip("192.0.2.3"));
    over_attr[0] = 40;  // rta_len beyond the message
    Bytes under_attr = attr(IFA_LOCAL, ip("192.0.2.3"));
    under_attr[0] = 2;  // rta_len below the attribute header
    for (const auto& bad : {
             msg(RTM_NEWADDR, Bytes{AF_INET, 24, 0}),                                   // shorter than ifaddrmsg
             msg(RTM_NEWADDR, ifaddr(AF_INET, 1, {over_attr})),                         // attribute overruns
             msg(RTM_NEWADDR, ifaddr(AF_INET, 1, {under_attr})),                        // attribute too short
             msg(RTM_NEWADDR, ifaddr(AF_INET, 1, {attr(IFA_LOCAL, ip("2001:db8::1"))})),  // 16 bytes for IPv4
             msg(RTM_DELADDR, ifaddr(AF_INET6, 1, {attr(IFA_ADDRESS, ip("192.0.2.1"))})),  // 4 bytes for IPv6
             msg(RTM_NEWADDR, ifaddr(AF_INET, 1, {attr(IFA_LABEL, Bytes{'l', 'o', 0})})),  // no address at all
         }) {
        const auto m = parse_addr_messages(cat({bad, next}));
        EXPECT_EQ(m.changes, std::vector<AddrChange>{change(true, 2, "192.0.2.2")});
        EXPECT_EQ(m.problems.size(), 1u);
    }
}

TEST(HostAddressTable, AnAddressOnTwoInterfacesStaysUntilBothLoseIt) {
    HostAddressTable t;
    t.apply(change(true, 2, "192.0.2.1"));
    t.apply(change(true, 3, "192.0.2.1"));
    t.apply(change(true, 2, "2001:db8::1"));
    t.apply(change(true, 1, "10.0.0.1"));
    t.apply(change(true, 1, "10.0.0.1"));  // reported twice: once
    EXPECT_EQ(t.addresses(), (std::vector<Endpoint>{*parse_address("10.0.0.1"), *parse_address("192.0.2.1"),
                                                    *parse_address("2001:db8::1")}));
    t.apply(change(false, 2, "192.0.2.1"));
    EXPECT_EQ(t.addresses().size(), 3u);
    t.apply(change(false, 3, "192.0.2.1"));
    EXPECT_EQ(t.addresses(), (std::vector<Endpoint>{*parse_address("10.0.0.1"), *parse_address("2001:db8::1")}));
    t.apply(change(false, 7, "198.51.100.1"));  // never known: nothing happens
    EXPECT_EQ(t.addresses().size(), 2u);
    t.clear();
    EXPECT_TRUE(t.addresses().empty());
}

}  // namespace
}  // namespace egress
