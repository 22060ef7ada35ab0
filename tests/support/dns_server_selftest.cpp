// Self-test of the DNS test server: hand-built queries over UDP on 127.0.0.1,
// replies decoded byte by byte; then c-ares resolving against it for real.
// Every wait is a poll()/select() with a timeout: no sleeps.
#include "dns_server.hpp"

#include <ares.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

// The project builds with -Wno-missing-field-initializers (see meson.build):
// designated initializers leave the other members at their defaults on
// purpose. Said here too so that a stand-alone -Wextra -Werror build agrees.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace {

using namespace std::chrono_literals;
using egress::test::DnsBehaviour;
using egress::test::DnsRecordSet;
using egress::test::DnsServer;
using egress::test::kDnsTypeA;
using egress::test::kDnsTypeAAAA;
using egress::test::kDnsTypeAny;
using Bytes = std::vector<std::uint8_t>;
using Clock = std::chrono::steady_clock;

constexpr std::uint16_t kTypeSoa = 6;
constexpr std::uint16_t kTypeTxt = 16;
constexpr auto kReplyTimeout = 2s;  // generous: sanitizer builds are slow

// ---- Building queries ----------------------------------------------------

void put_u16(Bytes& b, std::uint16_t v) {
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v));
}

// `name` as uncompressed labels (no final dot expected).
Bytes encode_name(std::string_view name) {
    Bytes b;
    while (!name.empty()) {
        const auto dot = name.find('.');
        const auto label = name.substr(0, dot);
        b.push_back(static_cast<std::uint8_t>(label.size()));
        b.insert(b.end(), label.begin(), label.end());
        name.remove_prefix(dot == std::string_view::npos ? name.size() : dot + 1);
    }
    b.push_back(0);
    return b;
}

// A standard query with one question of class IN.
Bytes make_query(std::uint16_t id, std::string_view name, std::uint16_t qtype, bool rd = true) {
    Bytes b;
    put_u16(b, id);
    put_u16(b, rd ? 0x0100 : 0);
    put_u16(b, 1);  // QDCOUNT
    put_u16(b, 0);
    put_u16(b, 0);
    put_u16(b, 0);
    const Bytes n = encode_name(name);
    b.insert(b.end(), n.begin(), n.end());
    put_u16(b, qtype);
    put_u16(b, 1);
    return b;
}

// The question section of a query made by make_query().
Bytes question_of(const Bytes& query) { return Bytes(query.begin() + 12, query.end()); }

// ---- Decoding replies ----------------------------------------------------

struct Rr {
    Bytes owner;  // as on the wire (a pointer stays a pointer)
    std::uint16_t type = 0, cls = 0;
    std::uint32_t ttl = 0;
    Bytes rdata;
};

struct Reply {
    std::size_t size = 0;
    std::uint16_t id = 0, flags = 0, qdcount = 0, ancount = 0, nscount = 0, arcount = 0;
    Bytes question;
    std::vector<Rr> answers, authority;

    bool qr() const { return flags & 0x8000; }
    bool aa() const { return flags & 0x0400; }
    bool tc() const { return flags & 0x0200; }
    bool rd() const { return flags & 0x0100; }
    bool ra() const { return flags & 0x0080; }
    int rcode() const { return flags & 0xF; }
    // The MINIMUM field of the first authority record, an SOA.
    std::uint32_t soa_minimum() const {
        const Bytes& r = authority.at(0).rdata;
        return std::uint32_t{r.at(r.size() - 4)} << 24 | std::uint32_t{r.at(r.size() - 3)} << 16 |
               std::uint32_t{r.at(r.size() - 2)} << 8 | r.at(r.size() - 1);
    }
};

// Reads a reply; a cursor past the end makes every read fail softly.
class Reader {
public:
    explicit Reader(const Bytes& d) : d_(d) {}
    bool ok() const { return ok_; }
    bool at_end() const { return pos_ == d_.size(); }
    std::uint16_t u16() {
        if (!need(2)) return 0;
        pos_ += 2;
        return static_cast<std::uint16_t>(d_[pos_ - 2] << 8 | d_[pos_ - 1]);
    }
    std::uint32_t u32() {
        const std::uint32_t hi = u16();
        return hi << 16 | u16();
    }
    Bytes bytes(std::size_t n) {
        if (!need(n)) return {};
        pos_ += n;
        return Bytes(d_.begin() + static_cast<long>(pos_ - n), d_.begin() + static_cast<long>(pos_));
    }
    // A name's bytes: labels up to a zero byte or a two-byte pointer.
    Bytes name() {
        const std::size_t start = pos_;
        while (need(1)) {
            const std::uint8_t len = d_[pos_];
            if ((len & 0xC0) == 0xC0) {
                if (!need(2)) break;
                pos_ += 2;
                break;
            }
            pos_ += 1 + len;
            if (len == 0) break;
        }
        if (pos_ > d_.size()) ok_ = false;
        return ok_ ? Bytes(d_.begin() + static_cast<long>(start), d_.begin() + static_cast<long>(pos_)) : Bytes{};
    }

private:
    bool need(std::size_t n) {
        if (pos_ + n > d_.size()) ok_ = false;
        return ok_;
    }
    const Bytes& d_;
    std::size_t pos_ = 0;
    bool ok_ = true;
};

Rr read_rr(Reader& r) {
    Rr rr;
    rr.owner = r.name();
    rr.type = r.u16();
    rr.cls = r.u16();
    rr.ttl = r.u32();
    rr.rdata = r.bytes(r.u16());
    return rr;
}

// The reply in `d`, or nullopt if it does not decode exactly to its end.
std::optional<Reply> parse_reply(const Bytes& d) {
    Reader r(d);
    Reply rep;
    rep.size = d.size();
    rep.id = r.u16();
    rep.flags = r.u16();
    rep.qdcount = r.u16();
    rep.ancount = r.u16();
    rep.nscount = r.u16();
    rep.arcount = r.u16();
    if (rep.qdcount == 1) {
        rep.question = r.name();
        const Bytes tail = r.bytes(4);
        rep.question.insert(rep.question.end(), tail.begin(), tail.end());
    }
    for (int i = 0; i < rep.ancount && r.ok(); ++i) rep.answers.push_back(read_rr(r));
    for (int i = 0; i < rep.nscount && r.ok(); ++i) rep.authority.push_back(read_rr(r));
    if (!r.ok() || !r.at_end() || rep.arcount != 0) return std::nullopt;
    return rep;
}

Bytes v4(const char* literal) {
    Bytes b(4);
    EXPECT_EQ(::inet_pton(AF_INET, literal, b.data()), 1) << literal;
    return b;
}

Bytes v6(const char* literal) {
    Bytes b(16);
    EXPECT_EQ(::inet_pton(AF_INET6, literal, b.data()), 1) << literal;
    return b;
}

// ---- A UDP client --------------------------------------------------------

// A UDP socket connected to the server on loopback: it sees only the
// server's datagrams. Throws std::runtime_error naming a failed set-up step.
class Client {
public:
    explicit Client(std::uint16_t port, int family = AF_INET) {
        fd_ = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) throw std::runtime_error(std::string("client socket: ") + std::strerror(errno));
        sockaddr_storage addr{};
        socklen_t len = 0;
        if (family == AF_INET) {
            auto& a = reinterpret_cast<sockaddr_in&>(addr);
            a.sin_family = AF_INET;
            a.sin_port = htons(port);
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            len = sizeof a;
        } else {
            auto& a = reinterpret_cast<sockaddr_in6&>(addr);
            a.sin6_family = AF_INET6;
            a.sin6_port = htons(port);
            a.sin6_addr = in6addr_loopback;
            len = sizeof a;
        }
        if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
            ::close(fd_);
            throw std::runtime_error(std::string("client connect: ") + std::strerror(errno));
        }
    }
    ~Client() { ::close(fd_); }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // Sends one datagram; a failure is a test failure.
    void send(const Bytes& datagram) {
        EXPECT_EQ(::send(fd_, datagram.data(), datagram.size(), 0), static_cast<ssize_t>(datagram.size()))
            << std::strerror(errno);
    }
    // The next datagram, or nullopt if none arrives within `timeout`.
    std::optional<Bytes> receive(std::chrono::milliseconds timeout) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
        Bytes buf(65536);
        const ssize_t n = ::recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n < 0) return std::nullopt;
        buf.resize(static_cast<std::size_t>(n));
        return buf;
    }
    // The next reply, decoded; nullopt (and a test failure) if none arrives
    // within kReplyTimeout or it does not decode.
    std::optional<Reply> reply() {
        const auto d = receive(std::chrono::duration_cast<std::chrono::milliseconds>(kReplyTimeout));
        if (!d) {
            ADD_FAILURE() << "no reply within " << kReplyTimeout.count() << " s";
            return std::nullopt;
        }
        auto r = parse_reply(*d);
        if (!r) ADD_FAILURE() << "reply of " << d->size() << " bytes does not decode";
        return r;
    }
    // Sends `query` and returns its reply (see reply()).
    std::optional<Reply> ask(const Bytes& query) {
        send(query);
        return reply();
    }

private:
    int fd_ = -1;
};

class DnsServerTest : public ::testing::Test {
protected:
    // Asks for `name`/`qtype` with a fresh ID; checks the ID and question echo.
    std::optional<Reply> ask(std::string_view name, std::uint16_t qtype) {
        const std::uint16_t id = next_id_++;
        const Bytes q = make_query(id, name, qtype);
        auto r = client_.ask(q);
        if (r) {
            EXPECT_EQ(r->id, id);
            EXPECT_EQ(r->question, question_of(q));
        }
        return r;
    }

    DnsServer server_;
    Client client_{server_.port()};
    std::uint16_t next_id_ = 0x4200;
};

// The checks every reply passes: a response, authoritative, RA, RD echoed
// (our queries set it), one question, size under 512.
void expect_header(const Reply& r, int rcode) {
    EXPECT_TRUE(r.qr());
    EXPECT_TRUE(r.aa());
    EXPECT_TRUE(r.ra());
    EXPECT_TRUE(r.rd());
    EXPECT_FALSE(r.tc());
    EXPECT_EQ(r.qdcount, 1);
    EXPECT_EQ(r.rcode(), rcode);
    EXPECT_LE(r.size, 512u);
}

// NODATA or NXDOMAIN: no answers and the root SOA with minimum TTL 30.
void expect_negative(const Reply& r, int rcode) {
    expect_header(r, rcode);
    EXPECT_EQ(r.ancount, 0);
    ASSERT_EQ(r.nscount, 1);
    EXPECT_EQ(r.authority[0].owner, Bytes{0});
    EXPECT_EQ(r.authority[0].type, kTypeSoa);
    EXPECT_EQ(r.authority[0].cls, 1);
    EXPECT_EQ(r.authority[0].ttl, 30u);
    EXPECT_EQ(r.soa_minimum(), 30u);
}

// An answer record: a pointer to the question's name, class IN.
void expect_answer(const Rr& rr, std::uint16_t type, std::uint32_t ttl, const Bytes& rdata) {
    EXPECT_EQ(rr.owner, (Bytes{0xC0, 0x0C}));
    EXPECT_EQ(rr.type, type);
    EXPECT_EQ(rr.cls, 1);
    EXPECT_EQ(rr.ttl, ttl);
    EXPECT_EQ(rr.rdata, rdata);
}

// ---- The wire protocol ---------------------------------------------------

TEST_F(DnsServerTest, AnswersAWithBothAddressesAndTheTtl) {
    server_.set("www.egress.test", {.a = {"192.0.2.1", "192.0.2.2"}, .ttl = 300});
    const auto r = ask("www.egress.test", kDnsTypeA);
    ASSERT_TRUE(r);
    expect_header(*r, 0);
    ASSERT_EQ(r->ancount, 2);
    EXPECT_EQ(r->nscount, 0);
    expect_answer(r->answers[0], kDnsTypeA, 300, v4("192.0.2.1"));
    expect_answer(r->answers[1], kDnsTypeA, 300, v4("192.0.2.2"));
}

TEST_F(DnsServerTest, AnswersAAAA) {
    server_.set("v6.egress.test", {.a = {"192.0.2.9"}, .aaaa = {"2001:db8::1", "2001:db8::2"}, .ttl = 77});
    const auto r = ask("v6.egress.test", kDnsTypeAAAA);
    ASSERT_TRUE(r);
    expect_header(*r, 0);
    ASSERT_EQ(r->ancount, 2);
    expect_answer(r->answers[0], kDnsTypeAAAA, 77, v6("2001:db8::1"));
    expect_answer(r->answers[1], kDnsTypeAAAA, 77, v6("2001:db8::2"));
}

TEST_F(DnsServerTest, NodataForATypeTheNameLacks) {
    server_.set("only-a.egress.test", {.a = {"192.0.2.3"}});
    server_.set("empty.egress.test", {});
    for (const auto& [name, type] : {std::pair{"only-a.egress.test", kDnsTypeAAAA},
                                     std::pair{"only-a.egress.test", kTypeTxt},
                                     std::pair{"empty.egress.test", kDnsTypeA}}) {
        SCOPED_TRACE(std::string(name) + " type " + std::to_string(type));
        const auto r = ask(name, type);
        ASSERT_TRUE(r);
        expect_negative(*r, 0);
    }
}

TEST_F(DnsServerTest, NxdomainForAnUnknownName) {
    server_.set("known.egress.test", {.a = {"192.0.2.4"}});
    for (std::uint16_t type : {kDnsTypeA, kDnsTypeAAAA, kTypeTxt}) {
        const auto r = ask("unknown.egress.test", type);
        ASSERT_TRUE(r);
        expect_negative(*r, 3);
    }
}

TEST_F(DnsServerTest, ServfailRefusedAndForcedNxdomain) {
    server_.set("sf.egress.test", {.a = {"192.0.2.5"}});
    server_.set("rf.egress.test", {.a = {"192.0.2.5"}});
    server_.set("nx.egress.test", {.a = {"192.0.2.5"}});
    server_.behave("sf.egress.test", kDnsTypeAny, DnsBehaviour::servfail);
    server_.behave("rf.egress.test", kDnsTypeAny, DnsBehaviour::refused);
    server_.behave("nx.egress.test", kDnsTypeAny, DnsBehaviour::nxdomain);
    auto r = ask("sf.egress.test", kDnsTypeA);
    ASSERT_TRUE(r);
    expect_header(*r, 2);
    EXPECT_EQ(r->ancount + r->nscount, 0);
    r = ask("rf.egress.test", kDnsTypeAAAA);
    ASSERT_TRUE(r);
    expect_header(*r, 5);
    EXPECT_EQ(r->ancount + r->nscount, 0);
    r = ask("nx.egress.test", kDnsTypeA);
    ASSERT_TRUE(r);
    expect_negative(*r, 3);
}

TEST_F(DnsServerTest, BehaviourPerTypeAndItsRemoval) {
    server_.set("mixed.egress.test", {.a = {"192.0.2.6"}, .aaaa = {"2001:db8::6"}});
    server_.behave("mixed.egress.test", kDnsTypeAny, DnsBehaviour::refused);
    server_.behave("mixed.egress.test", kDnsTypeA, DnsBehaviour::servfail);
    auto r = ask("mixed.egress.test", kDnsTypeA);  // the exact type wins
    ASSERT_TRUE(r);
    EXPECT_EQ(r->rcode(), 2);
    r = ask("mixed.egress.test", kDnsTypeAAAA);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->rcode(), 5);
    server_.behave("mixed.egress.test", kDnsTypeAny, DnsBehaviour::answer);
    r = ask("mixed.egress.test", kDnsTypeAAAA);
    ASSERT_TRUE(r);
    expect_header(*r, 0);
    EXPECT_EQ(r->ancount, 1);
}

TEST_F(DnsServerTest, DropNeverAnswersButServingGoesOn) {
    server_.set("drop.egress.test", {.a = {"192.0.2.7"}});
    server_.set("ping.egress.test", {.a = {"192.0.2.8"}});
    server_.behave("drop.egress.test", kDnsTypeAny, DnsBehaviour::drop);
    client_.send(make_query(1, "drop.egress.test", kDnsTypeA));
    EXPECT_FALSE(client_.receive(300ms));
    const auto r = ask("ping.egress.test", kDnsTypeA);  // read after the dropped one
    ASSERT_TRUE(r);
    EXPECT_EQ(r->ancount, 1);
    EXPECT_EQ(server_.queries("drop.egress.test"), 1u);
}

TEST_F(DnsServerTest, NamesMatchCaseInsensitivelyWithOrWithoutTheFinalDot) {
    server_.set("MiXeD.Case.TEST.", {.a = {"192.0.2.9"}});
    for (const char* name : {"mixed.case.test", "MIXED.CASE.TEST", "mIxEd.cAsE.tEsT"}) {
        SCOPED_TRACE(name);
        const auto r = ask(name, kDnsTypeA);  // also checks the question is echoed as sent
        ASSERT_TRUE(r);
        ASSERT_EQ(r->ancount, 1);
        EXPECT_EQ(r->answers[0].rdata, v4("192.0.2.9"));
    }
    server_.behave("mixed.CASE.test.", kDnsTypeA, DnsBehaviour::refused);
    const auto r = ask("Mixed.Case.Test", kDnsTypeA);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->rcode(), 5);
    EXPECT_EQ(server_.queries("MIXED.case.test."), 4u);
}

TEST_F(DnsServerTest, ADelayedAnswerDoesNotHoldBackOthers) {
    server_.set("slow.egress.test", {.a = {"192.0.2.10"}});
    server_.set("fast.egress.test", {.a = {"192.0.2.11"}});
    server_.delay("slow.egress.test", kDnsTypeA, 200ms);
    const auto start = Clock::now();
    client_.send(make_query(1, "slow.egress.test", kDnsTypeA));
    client_.send(make_query(2, "fast.egress.test", kDnsTypeA));
    const auto first = client_.reply();
    const auto first_at = Clock::now() - start;
    const auto second = client_.reply();
    const auto second_at = Clock::now() - start;
    ASSERT_TRUE(first && second);
    EXPECT_EQ(first->id, 2);
    EXPECT_LT(first_at, 200ms);
    EXPECT_EQ(second->id, 1);
    EXPECT_GE(second_at, 200ms);
    ASSERT_EQ(second->ancount, 1);
    EXPECT_EQ(second->answers[0].rdata, v4("192.0.2.10"));
    // The delay is per type: AAAA (NODATA here) comes at once.
    const auto t = Clock::now();
    const auto r = ask("slow.egress.test", kDnsTypeAAAA);
    ASSERT_TRUE(r);
    EXPECT_LT(Clock::now() - t, 200ms);
}

TEST_F(DnsServerTest, DelayedAnswersLeaveInDueOrder) {
    server_.set("d.egress.test", {.a = {"192.0.2.12"}});
    server_.set("e.egress.test", {.a = {"192.0.2.13"}});
    server_.delay("d.egress.test", kDnsTypeAny, 150ms);
    server_.delay("e.egress.test", kDnsTypeAny, 50ms);
    client_.send(make_query(1, "d.egress.test", kDnsTypeA));
    client_.send(make_query(2, "e.egress.test", kDnsTypeA));
    const auto first = client_.reply();
    const auto second = client_.reply();
    ASSERT_TRUE(first && second);
    EXPECT_EQ(first->id, 2);
    EXPECT_EQ(second->id, 1);
}

TEST_F(DnsServerTest, CountsQueriesPerNameAndType) {
    server_.set("count.egress.test", {.a = {"192.0.2.14"}});
    ask("count.egress.test", kDnsTypeA);
    ask("COUNT.egress.test", kDnsTypeA);
    ask("count.egress.test", kDnsTypeAAAA);
    ask("nowhere.egress.test", kDnsTypeA);
    EXPECT_EQ(server_.queries("count.egress.test"), 3u);
    EXPECT_EQ(server_.queries("count.egress.test.", kDnsTypeA), 2u);
    EXPECT_EQ(server_.queries("count.egress.test", kDnsTypeAAAA), 1u);
    EXPECT_EQ(server_.queries("count.egress.test", kTypeTxt), 0u);
    EXPECT_EQ(server_.queries("nowhere.egress.test"), 1u);
    EXPECT_EQ(server_.queries("never.egress.test"), 0u);
    EXPECT_EQ(server_.queries(), 4u);
}

TEST_F(DnsServerTest, GarbageGetsNoReplyAndTheServerLivesOn) {
    server_.set("alive.egress.test", {.a = {"192.0.2.15"}});
    Bytes response = make_query(7, "alive.egress.test", kDnsTypeA);
    response[2] |= 0x80;  // QR = 1
    Bytes two_questions = make_query(8, "alive.egress.test", kDnsTypeA);
    two_questions[5] = 2;
    Bytes status_opcode = make_query(9, "alive.egress.test", kDnsTypeA);
    status_opcode[2] |= 2 << 3;
    Bytes chaos = make_query(10, "alive.egress.test", kDnsTypeA);
    chaos.back() = 3;  // QCLASS CH
    Bytes overrun = make_query(11, "alive.egress.test", kDnsTypeA);
    overrun[12] = 60;  // the first label runs past the datagram
    Bytes pointer = make_query(12, "x", kDnsTypeA);
    pointer[12] = 0xC0;  // a compression pointer in the question
    pointer[13] = 0x0C;
    Bytes no_type = make_query(13, "alive.egress.test", kDnsTypeA);
    no_type.resize(no_type.size() - 3);
    Bytes long_name(12, 0);
    long_name[5] = 1;
    for (int i = 0; i < 5; ++i) {  // 5 labels of 60: 306 bytes > 255
        long_name.push_back(60);
        long_name.insert(long_name.end(), 60, 'a');
    }
    long_name.insert(long_name.end(), {0, 0, 1, 0, 1});
    const std::string text = "hello, this is not DNS at all";
    const std::vector<Bytes> garbage = {
        {}, {0x12}, Bytes(11, 0), Bytes(12, 0), Bytes(100, 0xFF), Bytes(text.begin(), text.end()),
        response, two_questions, status_opcode, chaos, overrun, pointer, no_type, long_name};
    for (const auto& g : garbage) client_.send(g);
    // Served in order: a reply to any garbage would arrive before this one.
    const auto r = ask("alive.egress.test", kDnsTypeA);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->ancount, 1);
    EXPECT_FALSE(client_.receive(0ms));
    EXPECT_EQ(server_.queries(), 1u);
}

TEST_F(DnsServerTest, CopiesRdAndIgnoresAnOptRecord) {
    server_.set("rd.egress.test", {.a = {"192.0.2.16"}});
    Bytes q = make_query(0x0101, "rd.egress.test", kDnsTypeA, /*rd=*/false);
    q[11] = 1;  // ARCOUNT: an EDNS OPT record follows
    q.insert(q.end(), {0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0});
    const auto r = client_.ask(q);
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->rd());
    EXPECT_TRUE(r->aa());
    EXPECT_EQ(r->id, 0x0101);
    EXPECT_EQ(r->arcount, 0);  // parse_reply checks this too
    EXPECT_EQ(r->ancount, 1);
}

TEST_F(DnsServerTest, ManyRecordsAreTruncatedUnder512Bytes) {
    DnsRecordSet many;
    for (int i = 1; i <= 40; ++i) many.a.push_back("192.0.2." + std::to_string(i));
    server_.set("many.egress.test", many);
    const auto r = ask("many.egress.test", kDnsTypeA);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->tc());
    EXPECT_LE(r->size, 512u);
    EXPECT_EQ(r->ancount, (512 - 12 - question_of(make_query(0, "many.egress.test", 1)).size()) / 16);
}

TEST_F(DnsServerTest, SetIsSafeWhileServing) {
    server_.set("flip.egress.test", {.a = {"192.0.2.17"}});
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        for (int i = 0; !stop; ++i)
            server_.set("flip.egress.test", i % 2 ? DnsRecordSet{.a = {"192.0.2.17"}}
                                                  : DnsRecordSet{.a = {"192.0.2.17", "192.0.2.18"}});
    });
    for (int i = 0; i < 200; ++i) {
        const auto r = ask("flip.egress.test", kDnsTypeA);
        if (!r) break;
        EXPECT_TRUE(r->ancount == 1 || r->ancount == 2);
    }
    stop = true;
    writer.join();
}

// ---- Construction and destruction ----------------------------------------

TEST(DnsServerSetUp, ServesASocketItIsGiven) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
    DnsServer server(fd);
    EXPECT_EQ(server.port(), ntohs(a.sin_port));
    server.set("given.egress.test", {.a = {"192.0.2.19"}});
    Client client(server.port());
    const auto r = client.ask(make_query(5, "given.egress.test", kDnsTypeA));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->ancount, 1);
}

TEST(DnsServerSetUp, ServesIPv6) {
    std::optional<DnsServer> server;
    try {
        server.emplace("::1");
    } catch (const std::runtime_error& e) {
        GTEST_SKIP() << "no IPv6 loopback: " << e.what();
    }
    server->set("six.egress.test", {.aaaa = {"2001:db8::19"}});
    Client client(server->port(), AF_INET6);
    const auto r = client.ask(make_query(6, "six.egress.test", kDnsTypeAAAA));
    ASSERT_TRUE(r);
    ASSERT_EQ(r->ancount, 1);
    EXPECT_EQ(r->answers[0].rdata, v6("2001:db8::19"));
}

// The descriptor is owned even when set-up fails: it is closed.
void expect_rejected_and_closed(int fd, const char* step) {
    try {
        DnsServer server(fd);
        ADD_FAILURE() << "accepted a socket that is " << step;
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(step), std::string::npos) << e.what();
    }
    EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
}

TEST(DnsServerSetUp, RejectsWhatIsNotABoundUdpSocket) {
    expect_rejected_and_closed(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "not SOCK_DGRAM");
    expect_rejected_and_closed(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), "not bound");
    expect_rejected_and_closed(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), "not AF_INET");
    EXPECT_THROW(DnsServer(-1), std::runtime_error);
    EXPECT_THROW(DnsServer("not-an-address"), std::runtime_error);
}

TEST(DnsServerSetUp, StopsPromptlyWithRepliesPending) {
    auto server = std::make_unique<DnsServer>();
    server->set("later.egress.test", {.a = {"192.0.2.20"}});
    server->set("now.egress.test", {.a = {"192.0.2.21"}});
    server->delay("later.egress.test", kDnsTypeAny, 10s);
    Client client(server->port());
    client.send(make_query(1, "later.egress.test", kDnsTypeA));
    ASSERT_TRUE(client.ask(make_query(2, "now.egress.test", kDnsTypeA)));  // the first is queued by now
    const auto start = Clock::now();
    server.reset();
    EXPECT_LT(Clock::now() - start, 1s);
    EXPECT_FALSE(client.receive(0ms));
}

// ---- c-ares 1.18 against the server --------------------------------------

class AresLibrary : public ::testing::Environment {
public:
    void SetUp() override { ASSERT_EQ(ares_library_init(ARES_LIB_INIT_ALL), ARES_SUCCESS); }
    void TearDown() override { ares_library_cleanup(); }
};
[[maybe_unused]] const auto* const ares_library = ::testing::AddGlobalTestEnvironment(new AresLibrary);

struct AresOptions {
    int tries = 1;
    int timeout_ms = 1000;
    int flags = 0;  // ARES_FLAG_*
};

struct AresResult {
    int status = -1;  // -1: the callback never ran
    int timeouts = 0;
    std::vector<std::string> addresses;  // sorted
    std::vector<int> ttls;
    std::chrono::milliseconds elapsed{0};
};

void on_addrinfo(void* arg, int status, int timeouts, ares_addrinfo* res) {
    auto& out = *static_cast<AresResult*>(arg);
    out.status = status;
    out.timeouts = timeouts;
    for (auto* n = res ? res->nodes : nullptr; n; n = n->ai_next) {
        char text[INET6_ADDRSTRLEN] = {};
        const void* addr = n->ai_family == AF_INET
                               ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(n->ai_addr)->sin_addr)
                               : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(n->ai_addr)->sin6_addr);
        ::inet_ntop(n->ai_family, addr, text, sizeof text);
        out.addresses.emplace_back(text);
        out.ttls.push_back(n->ai_ttl);
    }
    std::sort(out.addresses.begin(), out.addresses.end());
    if (res) ares_freeaddrinfo(res);
}

// Resolves `name` through a c-ares channel that asks only the server (no
// hosts file, no search list), running the select() loop for at most 5 s.
AresResult resolve(const DnsServer& server, const char* name, int family, const AresOptions& o = {}) {
    AresResult out;
    ares_options opts{};
    opts.flags = o.flags;
    opts.tries = o.tries;
    opts.timeout = o.timeout_ms;
    opts.lookups = const_cast<char*>("b");
    opts.ndomains = 0;
    ares_channel channel = nullptr;
    const int mask = ARES_OPT_FLAGS | ARES_OPT_TRIES | ARES_OPT_TIMEOUTMS | ARES_OPT_LOOKUPS | ARES_OPT_DOMAINS;
    EXPECT_EQ(ares_init_options(&channel, &opts, mask), ARES_SUCCESS);
    if (!channel) return out;
    const std::string servers = "127.0.0.1:" + std::to_string(server.port());
    EXPECT_EQ(ares_set_servers_ports_csv(channel, servers.c_str()), ARES_SUCCESS);
    ares_addrinfo_hints hints{};
    hints.ai_family = family;
    const auto start = Clock::now();
    ares_getaddrinfo(channel, name, nullptr, &hints, on_addrinfo, &out);
    while (out.status == -1 && Clock::now() - start < 5s) {
        fd_set readers, writers;
        FD_ZERO(&readers);
        FD_ZERO(&writers);
        const int nfds = ares_fds(channel, &readers, &writers);
        timeval cap{0, 100 * 1000}, tv{};
        ::select(nfds, &readers, &writers, nullptr, ares_timeout(channel, &cap, &tv));
        ares_process(channel, &readers, &writers);
    }
    out.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    EXPECT_NE(out.status, -1) << name << ": no result within 5 s";
    ares_destroy(channel);  // a callback still pending runs now, with ARES_EDESTRUCTION
    return out;
}

class AresTest : public ::testing::Test {
protected:
    void SetUp() override {
        server_.set("svc.egress.test",
                    {.a = {"192.0.2.30", "192.0.2.31"}, .aaaa = {"2001:db8::30", "2001:db8::31"}, .ttl = 123});
        server_.set("v4only.egress.test", {.a = {"192.0.2.32"}, .ttl = 45});
    }
    DnsServer server_;
};

TEST_F(AresTest, ResolvesIPv4WithTheSetTtl) {
    const auto r = resolve(server_, "svc.egress.test", AF_INET);
    EXPECT_EQ(r.status, ARES_SUCCESS) << ares_strerror(r.status);
    EXPECT_EQ(r.addresses, (std::vector<std::string>{"192.0.2.30", "192.0.2.31"}));
    EXPECT_EQ(r.ttls, (std::vector<int>{123, 123}));
    EXPECT_EQ(server_.queries("svc.egress.test", kDnsTypeA), 1u);
    EXPECT_EQ(server_.queries("svc.egress.test", kDnsTypeAAAA), 0u);
}

TEST_F(AresTest, ResolvesIPv6WithTheSetTtl) {
    const auto r = resolve(server_, "svc.egress.test", AF_INET6);
    EXPECT_EQ(r.status, ARES_SUCCESS) << ares_strerror(r.status);
    EXPECT_EQ(r.addresses, (std::vector<std::string>{"2001:db8::30", "2001:db8::31"}));
    EXPECT_EQ(r.ttls, (std::vector<int>{123, 123}));
    EXPECT_EQ(server_.queries("svc.egress.test", kDnsTypeAAAA), 1u);
}

TEST_F(AresTest, UnspecAsksBothTypes) {
    const auto r = resolve(server_, "svc.egress.test", AF_UNSPEC);
    EXPECT_EQ(r.status, ARES_SUCCESS) << ares_strerror(r.status);
    EXPECT_EQ(r.addresses.size(), 4u);
    EXPECT_EQ(server_.queries("svc.egress.test", kDnsTypeA), 1u);
    EXPECT_EQ(server_.queries("svc.egress.test", kDnsTypeAAAA), 1u);
    // With one family NODATA, the other's addresses are the result.
    const auto v4 = resolve(server_, "v4only.egress.test", AF_UNSPEC);
    EXPECT_EQ(v4.status, ARES_SUCCESS) << ares_strerror(v4.status);
    EXPECT_EQ(v4.addresses, std::vector<std::string>{"192.0.2.32"});
}

TEST_F(AresTest, UnknownNameIsNotFoundAndAskedOnce) {
    const auto r = resolve(server_, "nowhere.egress.test", AF_INET);
    EXPECT_EQ(r.status, ARES_ENOTFOUND) << ares_strerror(r.status);
    EXPECT_TRUE(r.addresses.empty());
    EXPECT_EQ(server_.queries("nowhere.egress.test"), 1u);  // no search-list variants
    EXPECT_EQ(server_.queries(), 1u);
}

TEST_F(AresTest, MissingFamilyIsNodata) {
    const auto r = resolve(server_, "v4only.egress.test", AF_INET6);
    EXPECT_EQ(r.status, ARES_ENODATA) << ares_strerror(r.status);
    EXPECT_TRUE(r.addresses.empty());
    EXPECT_EQ(server_.queries("v4only.egress.test", kDnsTypeAAAA), 1u);
}

TEST_F(AresTest, ForcedNxdomainIsNotFound) {
    server_.behave("svc.egress.test", kDnsTypeAny, DnsBehaviour::nxdomain);
    const auto r = resolve(server_, "svc.egress.test", AF_UNSPEC);
    EXPECT_EQ(r.status, ARES_ENOTFOUND) << ares_strerror(r.status);
}

// c-ares 1.18 discards SERVFAIL and REFUSED replies unless
// ARES_FLAG_NOCHECKRESP is set: it asks again until its tries are spent, then
// reports the initial error status of a query, ARES_ECONNREFUSED.
TEST_F(AresTest, ServfailAndRefusedAreRetriedAndReportedAsConnRefusedByDefault) {
    for (const auto b : {DnsBehaviour::servfail, DnsBehaviour::refused}) {
        server_.behave("svc.egress.test", kDnsTypeAny, b);
        const std::size_t before = server_.queries("svc.egress.test");
        const auto r = resolve(server_, "svc.egress.test", AF_INET, {.tries = 3});
        EXPECT_EQ(r.status, ARES_ECONNREFUSED) << ares_strerror(r.status);
        EXPECT_EQ(server_.queries("svc.egress.test") - before, 3u);
    }
}

TEST_F(AresTest, ServfailWithNoCheckResp) {
    server_.behave("svc.egress.test", kDnsTypeAny, DnsBehaviour::servfail);
    const auto r = resolve(server_, "svc.egress.test", AF_INET, {.tries = 3, .flags = ARES_FLAG_NOCHECKRESP});
    EXPECT_EQ(r.status, ARES_ESERVFAIL) << ares_strerror(r.status);
    EXPECT_EQ(server_.queries("svc.egress.test"), 1u);
}

TEST_F(AresTest, RefusedWithNoCheckResp) {
    server_.behave("svc.egress.test", kDnsTypeAny, DnsBehaviour::refused);
    const auto r = resolve(server_, "svc.egress.test", AF_INET6, {.flags = ARES_FLAG_NOCHECKRESP});
    EXPECT_EQ(r.status, ARES_EREFUSED) << ares_strerror(r.status);
}

TEST_F(AresTest, DropTimesOut) {
    server_.behave("svc.egress.test", kDnsTypeAny, DnsBehaviour::drop);
    const auto r = resolve(server_, "svc.egress.test", AF_INET, {.tries = 1, .timeout_ms = 200});
    EXPECT_EQ(r.status, ARES_ETIMEOUT) << ares_strerror(r.status);
    EXPECT_EQ(r.timeouts, 1);
    EXPECT_GE(r.elapsed, 200ms);
    EXPECT_EQ(server_.queries("svc.egress.test"), 1u);
}

// Each further try waits twice as long: 200 + 400 ms.
TEST_F(AresTest, DropWithTwoTriesDoublesTheTimeout) {
    server_.behave("svc.egress.test", kDnsTypeAny, DnsBehaviour::drop);
    const auto r = resolve(server_, "svc.egress.test", AF_INET, {.tries = 2, .timeout_ms = 200});
    EXPECT_EQ(r.status, ARES_ETIMEOUT) << ares_strerror(r.status);
    EXPECT_EQ(r.timeouts, 2);
    EXPECT_GE(r.elapsed, 600ms);
    EXPECT_EQ(server_.queries("svc.egress.test"), 2u);
}

// AF_UNSPEC ends when both queries have: a family that fails or times out
// costs its full timeout, then the other family's addresses are a success.
TEST_F(AresTest, UnspecWaitsForTheSlowerFamilyAndHidesItsFailure) {
    server_.behave("svc.egress.test", kDnsTypeAAAA, DnsBehaviour::drop);
    auto r = resolve(server_, "svc.egress.test", AF_UNSPEC, {.tries = 1, .timeout_ms = 200});
    EXPECT_EQ(r.status, ARES_SUCCESS) << ares_strerror(r.status);
    EXPECT_EQ(r.addresses, (std::vector<std::string>{"192.0.2.30", "192.0.2.31"}));
    EXPECT_GE(r.elapsed, 200ms);
    server_.behave("svc.egress.test", kDnsTypeAAAA, DnsBehaviour::servfail);
    r = resolve(server_, "svc.egress.test", AF_UNSPEC, {.flags = ARES_FLAG_NOCHECKRESP});
    EXPECT_EQ(r.status, ARES_SUCCESS) << ares_strerror(r.status);
    EXPECT_EQ(r.addresses.size(), 2u);
}

// A retry reuses the query ID, so a late answer to the first try completes
// the lookup.
TEST_F(AresTest, LateAnswerToTheFirstTryIsAccepted) {
    server_.delay("svc.egress.test", kDnsTypeAny, 300ms);
    const auto r = resolve(server_, "svc.egress.test", AF_INET, {.tries = 2, .timeout_ms = 200});
    EXPECT_EQ(r.status, ARES_SUCCESS) << ares_strerror(r.status);
    EXPECT_EQ(r.addresses.size(), 2u);
    EXPECT_GE(r.elapsed, 300ms);
    EXPECT_LT(r.elapsed, 500ms + 400ms);  // before the second try's answer would time out
    EXPECT_EQ(server_.queries("svc.egress.test"), 2u);
}

}  // namespace
