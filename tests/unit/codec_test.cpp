// The wire codec against proto/PROTOCOL.md: round trips, the golden byte
// vectors the document shows, and every malformed input a client can send.
#include "codec.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <map>
#include <random>
#include <sstream>
#include <string>

#include "expect.hpp"

namespace egress::proto {
namespace {

using test::IsError;
using test::IsOk;

// ---- building datagrams by hand, so malformed ones can be made too ----

Bytes le(std::uint64_t v, int n) {
    Bytes b;
    for (int i = 0; i < n; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    return b;
}

Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

Bytes text(std::string_view s) { return Bytes(s.begin(), s.end()); }

// A field whose length is the value's real size.
Bytes field(std::uint16_t type, const Bytes& value) {
    return cat({le(type, 2), le(value.size(), 2), value});
}

Bytes header(std::uint64_t payload_len, std::uint8_t type = EGRESS_MSG_CONNECT, std::uint16_t flags = 0,
             std::uint8_t version = EGRESS_VERSION, std::uint64_t id = 7) {
    return cat({le(EGRESS_MAGIC, 4), {version, type}, le(flags, 2), le(id, 8), le(payload_len, 4)});
}

Bytes datagram(const Bytes& payload, std::uint8_t type = EGRESS_MSG_CONNECT) {
    return cat({header(payload.size(), type), payload});
}

// Endpoint value: address in network order, port little-endian.
Bytes v4_value(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d, std::uint16_t port) {
    return cat({{a, b, c, d}, le(port, 2)});
}

const Bytes kDest = field(EGRESS_FIELD_DEST, v4_value(192, 0, 2, 1, 443));

Endpoint ep(std::string_view text) {
    auto r = parse_endpoint(text);
    EXPECT_TRUE(r.ok()) << text;
    return r.ok() ? *r : Endpoint{};
}

Bytes from_hex(std::string_view hex) {
    Bytes out;
    std::istringstream in{std::string(hex)};
    std::string tok;
    while (in >> tok) {
        EXPECT_EQ(tok.size(), 2u) << "bad hex byte '" << tok << "'";
        out.push_back(static_cast<std::uint8_t>(std::stoul(tok, nullptr, 16)));
    }
    return out;
}

ByteView payload_of(const Bytes& d) { return ByteView(d).subspan(EGRESS_HEADER_SIZE); }

void expect_same(const ConnectRequest& a, const ConnectRequest& b) {
    EXPECT_EQ(a.dest, b.dest);
    EXPECT_EQ(a.host, b.host);
    EXPECT_EQ(a.timeout_ms, b.timeout_ms);
    EXPECT_EQ(a.flags, b.flags);
    EXPECT_EQ(a.pool, b.pool);
    EXPECT_EQ(a.transport, b.transport);
}

void expect_same(const ConnectReply& a, const ConnectReply& b) {
    EXPECT_EQ(a.status, b.status);
    EXPECT_EQ(a.error_name, b.error_name);
    EXPECT_EQ(a.message, b.message);
    EXPECT_EQ(a.local, b.local);
    EXPECT_EQ(a.remote, b.remote);
    EXPECT_EQ(a.pool, b.pool);
    EXPECT_EQ(a.attempts, b.attempts);
    EXPECT_EQ(a.connect_us, b.connect_us);
    EXPECT_EQ(a.timeout_ms, b.timeout_ms);
    EXPECT_EQ(a.addresses, b.addresses);
    EXPECT_EQ(a.resolve_us, b.resolve_us);
}

// Decodes a request the way the daemon does: frame, check header, decode.
Result<ConnectRequest> decode_request(const Bytes& d) {
    const auto h = read_header(d);
    if (!h) return Error{-1, "unframeable"};
    if (auto e = check_request_header(*h, d.size())) return *e;
    return decode_connect(payload_of(d));
}

// ---- the golden vectors: proto/PROTOCOL.md shows exactly these bytes ----

// CONNECT id 1 to 127.0.0.1:8080, timeout 1000 ms, TCP_NODELAY.
constexpr std::string_view kGoldenConnect =
    "45 47 52 53 01 01 00 00 01 00 00 00 00 00 00 00 1a 00 00 00 01 00 06 00 7f 00 00 01 90 1f 03 00 "
    "04 00 e8 03 00 00 04 00 04 00 01 00 00 00";
// CONNECT id 5 to example.com port 443, timeout 5000 ms.
constexpr std::string_view kGoldenHost =
    "45 47 52 53 01 01 00 00 05 00 00 00 00 00 00 00 19 00 00 00 02 00 0d 00 65 78 61 6d 70 6c 65 2e 63 6f 6d "
    "bb 01 03 00 04 00 88 13 00 00";
// CONNECT id 6 to 192.0.2.53:53 over UDP.
constexpr std::string_view kGoldenUdp =
    "45 47 52 53 01 01 00 00 06 00 00 00 00 00 00 00 12 00 00 00 01 00 06 00 c0 00 02 35 35 00 06 00 "
    "04 00 11 00 00 00";
// CONNECT_REPLY id 5 to it: the second of two addresses won.
constexpr std::string_view kGoldenReplyHost =
    "45 47 52 53 01 81 01 00 05 00 00 00 00 00 00 00 4f 00 00 00 10 00 04 00 00 00 00 00 13 00 06 00 c0 00 02 07 "
    "40 9c 14 00 06 00 c6 33 64 14 bb 01 05 00 07 00 64 65 66 61 75 6c 74 15 00 04 00 02 00 00 00 16 00 08 00 "
    "08 d6 03 00 00 00 00 00 18 00 04 00 02 00 00 00 19 00 08 00 3a 07 00 00 00 00 00 00";
// CONNECT id 3 in adopt mode to 192.0.2.10:443, timeout 2000 ms, ADOPT | TCP_NODELAY.
constexpr std::string_view kGoldenAdopt =
    "45 47 52 53 01 01 00 00 03 00 00 00 00 00 00 00 1a 00 00 00 01 00 06 00 c0 00 02 0a bb 01 03 00 "
    "04 00 d0 07 00 00 04 00 04 00 05 00 00 00";
// CONNECT_REPLY id 3 to the adopt request: EINPROGRESS, no descriptor, the deadline applied.
constexpr std::string_view kGoldenAdoptReply =
    "45 47 52 53 01 81 00 00 03 00 00 00 00 00 00 00 56 00 00 00 10 00 04 00 73 00 00 00 11 00 0b 00 "
    "45 49 4e 50 52 4f 47 52 45 53 53 12 00 19 00 4f 70 65 72 61 74 69 6f 6e 20 6e 6f 77 20 69 6e 20 "
    "70 72 6f 67 72 65 73 73 13 00 06 00 c6 33 64 07 41 9c 05 00 04 00 65 64 67 65 15 00 04 00 01 00 "
    "00 00 03 00 04 00 d0 07 00 00";
// CONNECT_REPLY id 1, success, descriptor attached.
constexpr std::string_view kGoldenReplyOk =
    "45 47 52 53 01 81 01 00 01 00 00 00 00 00 00 00 3b 00 00 00 10 00 04 00 00 00 00 00 13 00 06 00 "
    "7f 00 00 01 40 9c 14 00 06 00 7f 00 00 01 90 1f 05 00 07 00 64 65 66 61 75 6c 74 15 00 04 00 01 "
    "00 00 00 16 00 08 00 55 00 00 00 00 00 00 00";
// CONNECT_REPLY id 4, success, descriptor attached, served with the maximum timeout.
constexpr std::string_view kGoldenReplyClamped =
    "45 47 52 53 01 81 01 00 04 00 00 00 00 00 00 00 43 00 00 00 10 00 04 00 00 00 00 00 13 00 06 00 "
    "7f 00 00 01 40 9c 14 00 06 00 7f 00 00 01 90 1f 05 00 07 00 64 65 66 61 75 6c 74 15 00 04 00 01 "
    "00 00 00 16 00 08 00 55 00 00 00 00 00 00 00 03 00 04 00 30 75 00 00";
// CONNECT_REPLY id 2, ECONNREFUSED, as the daemon words it.
constexpr std::string_view kGoldenReplyRefused =
    "45 47 52 53 01 81 00 00 02 00 00 00 00 00 00 00 70 00 00 00 10 00 04 00 6f 00 00 00 11 00 0c 00 "
    "45 43 4f 4e 4e 52 45 46 55 53 45 44 12 00 35 00 43 6f 6e 6e 65 63 74 69 6f 6e 20 72 65 66 75 73 "
    "65 64 3a 20 63 6f 6e 6e 65 63 74 20 74 6f 20 74 68 65 20 64 65 73 74 69 6e 61 74 69 6f 6e 20 66 "
    "61 69 6c 65 64 05 00 07 00 64 65 66 61 75 6c 74 15 00 04 00 01 00 00 00 16 00 08 00 3e 00 00 00 "
    "00 00 00 00";
// ERROR_REPLY id 0: the max_clients refusal.
constexpr std::string_view kGoldenErrorReply =
    "45 47 52 53 01 ff 00 00 00 00 00 00 00 00 00 00 4e 00 00 00 10 00 04 00 0b 00 00 00 11 00 06 00 "
    "45 41 47 41 49 4e 12 00 38 00 65 67 72 65 73 73 64 20 61 6c 72 65 61 64 79 20 73 65 72 76 65 73 "
    "20 32 30 30 30 20 63 6c 69 65 6e 74 73 20 28 6c 69 6d 69 74 73 2e 6d 61 78 5f 63 6c 69 65 6e 74 "
    "73 29";

ConnectRequest golden_request() {
    ConnectRequest r;
    r.dest = ep("127.0.0.1:8080");
    r.timeout_ms = 1000;
    r.flags = EGRESS_CONNECT_TCP_NODELAY;
    return r;
}

ConnectRequest golden_adopt() {
    ConnectRequest r;
    r.dest = ep("192.0.2.10:443");
    r.timeout_ms = 2000;
    r.flags = EGRESS_CONNECT_ADOPT | EGRESS_CONNECT_TCP_NODELAY;
    return r;
}

ConnectReply golden_reply_ok() {
    ConnectReply r;
    r.local = ep("127.0.0.1:40000");
    r.remote = ep("127.0.0.1:8080");
    r.pool = "default";
    r.attempts = 1;
    r.connect_us = 85;
    return r;
}

ConnectReply golden_reply_clamped() {
    ConnectReply r = golden_reply_ok();
    r.timeout_ms = 30000;
    return r;
}

ConnectReply golden_adopt_reply() {
    ConnectReply r;
    r.status = EINPROGRESS;
    r.error_name = "EINPROGRESS";
    r.message = "Operation now in progress";
    r.local = ep("198.51.100.7:40001");
    r.pool = "edge";
    r.attempts = 1;
    r.timeout_ms = 2000;
    return r;
}

ConnectReply golden_reply_refused() {
    ConnectReply r;
    r.status = ECONNREFUSED;
    r.error_name = "ECONNREFUSED";
    r.message = "Connection refused: connect to the destination failed";
    r.pool = "default";
    r.attempts = 1;
    r.connect_us = 62;
    return r;
}

ErrorReply golden_error_reply() {
    ErrorReply r;
    r.status = EAGAIN;
    r.error_name = "EAGAIN";
    r.message = "egressd already serves 2000 clients (limits.max_clients)";
    return r;
}

TEST(Golden, ConnectRequestBytes) {
    EXPECT_EQ(encode_connect(1, golden_request()), from_hex(kGoldenConnect));
    const auto d = from_hex(kGoldenConnect);
    auto r = decode_request(d);
    ASSERT_TRUE(IsOk(r));
    expect_same(*r, golden_request());
}

ConnectRequest golden_host() {
    ConnectRequest r;
    r.host = "example.com";
    r.dest.port = 443;
    r.timeout_ms = 5000;
    return r;
}

ConnectReply golden_reply_host() {
    ConnectReply r;
    r.local = ep("192.0.2.7:40000");
    r.remote = ep("198.51.100.20:443");
    r.pool = "default";
    r.attempts = 2;
    r.connect_us = 251400;
    r.addresses = 2;
    r.resolve_us = 1850;
    return r;
}

TEST(Golden, HostNameRequestAndReplyBytes) {
    EXPECT_EQ(encode_connect(5, golden_host()), from_hex(kGoldenHost));
    auto r = decode_request(from_hex(kGoldenHost));
    ASSERT_TRUE(IsOk(r));
    expect_same(*r, golden_host());
    EXPECT_EQ(encode_connect_reply(5, golden_reply_host(), true), from_hex(kGoldenReplyHost));
    auto rep = decode_reply(from_hex(kGoldenReplyHost));
    ASSERT_TRUE(IsOk(rep));
    expect_same(std::get<ConnectReply>(rep->body), golden_reply_host());
}

TEST(Golden, AdoptConnectRequestBytes) {
    EXPECT_EQ(encode_connect(3, golden_adopt()), from_hex(kGoldenAdopt));
    auto r = decode_request(from_hex(kGoldenAdopt));
    ASSERT_TRUE(IsOk(r));
    expect_same(*r, golden_adopt());
    EXPECT_EQ(EGRESS_CONNECT_ADOPT, 0x4u);
}

TEST(Golden, AdoptReplyInProgressBytes) {
    EXPECT_EQ(encode_connect_reply(3, golden_adopt_reply(), false), from_hex(kGoldenAdoptReply));
    auto r = decode_reply(from_hex(kGoldenAdoptReply));
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(r->header.flags, 0);
    expect_same(std::get<ConnectReply>(r->body), golden_adopt_reply());
}

TEST(Golden, ConnectReplySuccessBytes) {
    EXPECT_EQ(encode_connect_reply(1, golden_reply_ok(), true), from_hex(kGoldenReplyOk));
    auto r = decode_reply(from_hex(kGoldenReplyOk));
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(r->header.flags, EGRESS_HDR_FLAG_FD_ATTACHED);
    expect_same(std::get<ConnectReply>(r->body), golden_reply_ok());
}

TEST(Golden, ConnectReplyClampedTimeoutBytes) {
    EXPECT_EQ(encode_connect_reply(4, golden_reply_clamped(), true), from_hex(kGoldenReplyClamped));
    auto r = decode_reply(from_hex(kGoldenReplyClamped));
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(r->header.flags, EGRESS_HDR_FLAG_FD_ATTACHED);
    expect_same(std::get<ConnectReply>(r->body), golden_reply_clamped());
}

TEST(Golden, ConnectReplyRefusedBytes) {
    EXPECT_EQ(encode_connect_reply(2, golden_reply_refused(), false), from_hex(kGoldenReplyRefused));
    EXPECT_EQ(errno_name(ECONNREFUSED), "ECONNREFUSED");
    EXPECT_EQ(ECONNREFUSED, 111);
}

TEST(Golden, ErrorReplyBytes) {
    EXPECT_EQ(encode_error_reply(0, golden_error_reply()), from_hex(kGoldenErrorReply));
    EXPECT_EQ(EAGAIN, 11);
}

ConnectRequest golden_udp() {
    ConnectRequest r;
    r.dest = ep("192.0.2.53:53");
    r.transport = Transport::udp;
    return r;
}

TEST(Golden, UdpConnectRequestBytes) {
    EXPECT_EQ(encode_connect(6, golden_udp()), from_hex(kGoldenUdp));
    auto r = decode_request(from_hex(kGoldenUdp));
    ASSERT_TRUE(IsOk(r));
    expect_same(*r, golden_udp());
}

// Reads the annotated dump that follows `<!-- golden: NAME -->` in
// PROTOCOL.md. Lines are "OFFSET  HEX BYTES...  comment"; the offsets are
// checked too, so a hand-edited dump that loses a byte is caught.
Bytes doc_dump(const std::string& doc, const std::string& name) {
    const auto marker = doc.find("<!-- golden: " + name + " -->");
    if (marker == std::string::npos) {
        ADD_FAILURE() << "PROTOCOL.md has no golden dump named " << name;
        return {};
    }
    std::istringstream in(doc.substr(marker));
    std::string line;
    std::getline(in, line);  // the marker
    std::getline(in, line);  // the opening fence
    Bytes out;
    while (std::getline(in, line) && line.rfind("```", 0) != 0) {
        const auto offset = std::stoul(line.substr(0, 4), nullptr, 16);
        EXPECT_EQ(offset, out.size()) << name << ": offset column disagrees: " << line;
        std::istringstream hex(line.substr(6, 24));
        std::string tok;
        while (hex >> tok) {
            EXPECT_EQ(tok.size(), 2u) << name << ": " << line;
            out.push_back(static_cast<std::uint8_t>(std::stoul(tok, nullptr, 16)));
        }
    }
    return out;
}

TEST(Golden, ProtocolDocumentShowsTheseBytes) {
    std::ifstream f(EGRESS_PROTOCOL_MD);
    ASSERT_TRUE(f) << "cannot open " << EGRESS_PROTOCOL_MD;
    std::stringstream doc;
    doc << f.rdbuf();
    EXPECT_EQ(doc_dump(doc.str(), "connect_request"), from_hex(kGoldenConnect));
    EXPECT_EQ(doc_dump(doc.str(), "connect_adopt"), from_hex(kGoldenAdopt));
    EXPECT_EQ(doc_dump(doc.str(), "connect_adopt_reply"), from_hex(kGoldenAdoptReply));
    EXPECT_EQ(doc_dump(doc.str(), "connect_reply_ok"), from_hex(kGoldenReplyOk));
    EXPECT_EQ(doc_dump(doc.str(), "connect_reply_clamped"), from_hex(kGoldenReplyClamped));
    EXPECT_EQ(doc_dump(doc.str(), "connect_reply_refused"), from_hex(kGoldenReplyRefused));
    EXPECT_EQ(doc_dump(doc.str(), "error_reply"), from_hex(kGoldenErrorReply));
    EXPECT_EQ(doc_dump(doc.str(), "connect_host"), from_hex(kGoldenHost));
    EXPECT_EQ(doc_dump(doc.str(), "connect_reply_host"), from_hex(kGoldenReplyHost));
    EXPECT_EQ(doc_dump(doc.str(), "connect_udp"), from_hex(kGoldenUdp));
}

// ---- framing: read_header and check_request_header ----

TEST(Header, ReadsEveryField) {
    const auto d = cat({le(EGRESS_MAGIC, 4), {1, 0x81}, le(0xBEEF, 2), le(0x0102030405060708, 8), le(0, 4)});
    const auto h = read_header(d);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->version, 1);
    EXPECT_EQ(h->type, 0x81);
    EXPECT_EQ(h->flags, 0xBEEF);
    EXPECT_EQ(h->request_id, 0x0102030405060708u);
    EXPECT_EQ(h->payload_len, 0u);
}

TEST(Header, MagicIsTheAsciiBytesEGRS) {
    const auto d = header(0);
    EXPECT_EQ(std::string(d.begin(), d.begin() + 4), "EGRS");
}

TEST(Header, ShorterThanAHeaderCannotBeFramed) {
    const auto full = datagram(kDest);
    for (std::size_t n = 0; n < EGRESS_HEADER_SIZE; ++n)
        EXPECT_FALSE(read_header(ByteView(full.data(), n))) << n << " bytes";
    EXPECT_TRUE(read_header(ByteView(full.data(), EGRESS_HEADER_SIZE)));
}

TEST(Header, WrongMagicCannotBeFramed) {
    for (std::size_t i = 0; i < 4; ++i) {
        auto d = datagram(kDest);
        d[i] ^= 0x20;  // "egrs", "EgRS", ...
        EXPECT_FALSE(read_header(d)) << "byte " << i;
    }
    auto swapped = datagram(kDest);
    std::memcpy(swapped.data(), "SRGE", 4);  // the magic written big-endian
    EXPECT_FALSE(read_header(swapped));
}

TEST(Header, ValidRequestHeaderPasses) {
    const auto d = datagram(kDest);
    EXPECT_FALSE(check_request_header(*read_header(d), d.size()));
}

TEST(Header, WrongVersionIsEPROTONOSUPPORT) {
    for (std::uint8_t v : {0, 2, 255}) {
        const auto d = cat({header(kDest.size(), EGRESS_MSG_CONNECT, 0, v), kDest});
        EXPECT_TRUE(IsError(check_request_header(*read_header(d), d.size()), EPROTONOSUPPORT,
                            {"version " + std::to_string(v)}));
    }
}

TEST(Header, OversizedIsEMSGSIZE) {
    const Bytes filler(EGRESS_MAX_DATAGRAM - EGRESS_HEADER_SIZE - kDest.size(), 0);
    auto at_limit = datagram(cat({kDest, filler}));
    ASSERT_EQ(at_limit.size(), EGRESS_MAX_DATAGRAM);
    EXPECT_FALSE(check_request_header(*read_header(at_limit), at_limit.size()));
    const auto over = datagram(cat({kDest, filler, {0}}));
    EXPECT_TRUE(IsError(check_request_header(*read_header(over), over.size()), EMSGSIZE, {"4097", "4096"}));
}

TEST(Header, PayloadLengthLargerThanDatagramIsEBADMSG) {
    const auto d = cat({header(kDest.size() + 1), kDest});
    EXPECT_TRUE(IsError(check_request_header(*read_header(d), d.size()), EBADMSG, {"11", "10"}));
}

TEST(Header, PayloadLengthSmallerThanDatagramIsEBADMSG) {
    const auto d = cat({header(kDest.size() - 1), kDest});
    EXPECT_TRUE(IsError(check_request_header(*read_header(d), d.size()), EBADMSG, {"9", "10"}));
    const auto huge = cat({header(0xFFFFFFFF), kDest});
    EXPECT_TRUE(IsError(check_request_header(*read_header(huge), huge.size()), EBADMSG, {"4294967295"}));
}

TEST(Header, NonzeroRequestFlagsAreEINVAL) {
    for (int bit = 0; bit < 16; ++bit) {
        const auto flags = static_cast<std::uint16_t>(1u << bit);
        const auto d = cat({header(kDest.size(), EGRESS_MSG_CONNECT, flags), kDest});
        std::ostringstream code;
        code << "0x" << std::hex << std::setw(4) << std::setfill('0') << flags;
        EXPECT_TRUE(IsError(check_request_header(*read_header(d), d.size()), EINVAL, {code.str()}));
    }
}

// Only the first problem is reported, in this order. (The daemon refuses an
// oversized datagram before it calls this: PROTOCOL.md section 9.)
TEST(Header, ChecksVersionThenSizeThenLengthThenFlags) {
    const Bytes big(EGRESS_MAX_DATAGRAM, 0);
    auto all_wrong = cat({header(1, EGRESS_MSG_CONNECT, 1, 9), big});
    EXPECT_TRUE(IsError(check_request_header(*read_header(all_wrong), all_wrong.size()), EPROTONOSUPPORT));
    auto size_len_flags = cat({header(1, EGRESS_MSG_CONNECT, 1), big});
    EXPECT_TRUE(IsError(check_request_header(*read_header(size_len_flags), size_len_flags.size()), EMSGSIZE));
    auto len_flags = cat({header(1, EGRESS_MSG_CONNECT, 1), kDest});
    EXPECT_TRUE(IsError(check_request_header(*read_header(len_flags), len_flags.size()), EBADMSG));
}

// ---- CONNECT round trips ----

TEST(ConnectRequest, MinimalV4RoundTrip) {
    ConnectRequest req;
    req.dest = ep("192.0.2.1:443");
    const auto d = encode_connect(7, req);
    EXPECT_EQ(d, datagram(kDest));  // only the destination field: optional ones are left out
    const auto h = read_header(d);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->type, EGRESS_MSG_CONNECT);
    EXPECT_EQ(h->flags, 0);
    EXPECT_EQ(h->request_id, 7u);
    auto r = decode_request(d);
    ASSERT_TRUE(IsOk(r));
    expect_same(*r, req);
}

TEST(ConnectRequest, FullV4RoundTrip) {
    ConnectRequest req;
    req.dest = ep("10.1.2.3:65535");
    req.timeout_ms = 0xFFFFFFFF;
    req.flags = EGRESS_CONNECT_TCP_NODELAY | EGRESS_CONNECT_BLOCKING;
    req.pool = "default";
    const auto d = encode_connect(0xFFFFFFFFFFFFFFFF, req);
    EXPECT_EQ(read_header(d)->request_id, 0xFFFFFFFFFFFFFFFFu);
    auto r = decode_request(d);
    ASSERT_TRUE(IsOk(r));
    expect_same(*r, req);
}

// The codec carries ADOPT like any known bit; which combinations make sense
// (not with BLOCKING) and the descriptor it needs are the daemon's to judge.
TEST(ConnectRequest, AdoptFlagRoundTrips) {
    EXPECT_EQ(EGRESS_CONNECT_KNOWN_FLAGS, 0x7u);
    for (std::uint32_t bits : {EGRESS_CONNECT_ADOPT, EGRESS_CONNECT_ADOPT | EGRESS_CONNECT_TCP_NODELAY,
                               EGRESS_CONNECT_ADOPT | EGRESS_CONNECT_BLOCKING}) {
        ConnectRequest req;
        req.dest = ep("[2001:db8::1]:443");
        req.flags = bits;
        auto r = decode_request(encode_connect(9, req));
        ASSERT_TRUE(IsOk(r)) << bits;
        EXPECT_EQ(r->flags, bits);
    }
    const auto wire = cat({kDest, field(EGRESS_FIELD_CONNECT_FLAGS, le(EGRESS_CONNECT_ADOPT, 4))});
    auto r = decode_connect(wire);
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(r->flags, 4u);
}

TEST(ConnectRequest, V6RoundTrips) {
    for (const char* text : {"[2001:db8::1]:80", "[::1]:1", "[::ffff:192.0.2.1]:8080", "[fe80::1:2:3:4]:22"}) {
        ConnectRequest req;
        req.dest = ep(text);
        auto minimal = decode_request(encode_connect(1, req));
        ASSERT_TRUE(IsOk(minimal)) << text;
        expect_same(*minimal, req);
        EXPECT_TRUE(minimal->dest.v6);

        req.timeout_ms = 250;
        req.flags = EGRESS_CONNECT_BLOCKING;
        req.pool = "p";
        auto full = decode_request(encode_connect(2, req));
        ASSERT_TRUE(IsOk(full)) << text;
        expect_same(*full, req);
    }
}

TEST(ConnectRequest, V6DestinationIs18BytesAddressFirst) {
    ConnectRequest req;
    req.dest = ep("[2001:db8::1]:258");
    const auto d = encode_connect(7, req);
    const Bytes value = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x02, 0x01};
    EXPECT_EQ(d, datagram(field(EGRESS_FIELD_DEST, value)));
}

TEST(ConnectRequest, FieldsMayComeInAnyOrder) {
    const auto payload = cat({field(EGRESS_FIELD_POOL, text("default")),
                              field(EGRESS_FIELD_CONNECT_FLAGS, le(3, 4)),
                              field(EGRESS_FIELD_TIMEOUT_MS, le(5, 4)), kDest});
    auto r = decode_connect(payload);
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(r->dest, ep("192.0.2.1:443"));
    EXPECT_EQ(r->timeout_ms, 5u);
    EXPECT_EQ(r->flags, 3u);
    EXPECT_EQ(r->pool, "default");
}

TEST(ConnectRequest, ExplicitZeroTimeoutAndFlagsMeanDefaults) {
    auto r = decode_connect(cat({kDest, field(EGRESS_FIELD_TIMEOUT_MS, le(0, 4)),
                                 field(EGRESS_FIELD_CONNECT_FLAGS, le(0, 4))}));
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(r->timeout_ms, 0u);
    EXPECT_EQ(r->flags, 0u);
}

TEST(ConnectRequest, PoolOfMaxLengthIsAccepted) {
    const std::string pool(EGRESS_MAX_NAME, 'p');
    auto r = decode_connect(cat({kDest, field(EGRESS_FIELD_POOL, text(pool))}));
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(r->pool, pool);
}

TEST(ConnectRequest, EncoderCutsAnOverlongPoolToTheLimit) {
    ConnectRequest req;
    req.dest = ep("192.0.2.1:443");
    req.pool = std::string(EGRESS_MAX_NAME + 10, 'p');
    auto r = decode_request(encode_connect(1, req));
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(r->pool, std::string(EGRESS_MAX_NAME, 'p'));
}

// ---- CONNECT: every malformed payload ----

TEST(ConnectMalformed, EmptyPayloadHasNoDestination) {
    EXPECT_TRUE(IsError(decode_connect({}), EBADMSG, {"no destination", "0x0001"}));
}

TEST(ConnectMalformed, MissingDestination) {
    const auto payload = cat({field(EGRESS_FIELD_TIMEOUT_MS, le(100, 4)), field(EGRESS_FIELD_POOL, text("default"))});
    EXPECT_TRUE(IsError(decode_connect(payload), EBADMSG, {"no destination", "0x0001"}));
}

TEST(ConnectMalformed, TruncatedFieldHeader) {
    for (std::size_t extra = 1; extra < EGRESS_FIELD_HEADER_SIZE; ++extra) {
        const auto payload = cat({kDest, Bytes(extra, 0x03)});
        EXPECT_TRUE(IsError(decode_connect(payload), EBADMSG, {"truncated", "offset 10"})) << extra;
    }
}

TEST(ConnectMalformed, FieldLengthBeyondPayload) {
    const auto payload = cat({le(EGRESS_FIELD_DEST, 2), le(6, 2), Bytes{192, 0, 2, 1, 0}});
    EXPECT_TRUE(IsError(decode_connect(payload), EBADMSG, {"0x0001", "claims 6", "5 remain"}));
    const auto lying = cat({kDest, le(EGRESS_FIELD_POOL, 2), le(0xFFFF, 2), text("default")});
    EXPECT_TRUE(IsError(decode_connect(lying), EBADMSG, {"0x0005", "claims 65535", "7 remain"}));
}

TEST(ConnectMalformed, DuplicateFields) {
    EXPECT_TRUE(IsError(decode_connect(cat({kDest, kDest})), EBADMSG, {"0x0001", "twice"}));
    const auto t = field(EGRESS_FIELD_TIMEOUT_MS, le(1, 4));
    EXPECT_TRUE(IsError(decode_connect(cat({kDest, t, t})), EBADMSG, {"0x0003", "twice"}));
    const auto f = field(EGRESS_FIELD_CONNECT_FLAGS, le(1, 4));
    EXPECT_TRUE(IsError(decode_connect(cat({f, kDest, f})), EBADMSG, {"0x0004", "twice"}));
    const auto p = field(EGRESS_FIELD_POOL, text("a"));
    EXPECT_TRUE(IsError(decode_connect(cat({p, kDest, p})), EBADMSG, {"0x0005", "twice"}));
}

TEST(ConnectMalformed, DestinationOfWrongSize) {
    for (std::size_t n : {0, 1, 4, 5, 7, 16, 17, 19, 32}) {
        const auto payload = field(EGRESS_FIELD_DEST, Bytes(n, 1));
        EXPECT_TRUE(IsError(decode_connect(payload), EBADMSG, {"0x0001", "got " + std::to_string(n)})) << n;
    }
}

TEST(ConnectMalformed, U32FieldsOfWrongSize) {
    for (std::uint16_t type : {EGRESS_FIELD_TIMEOUT_MS, EGRESS_FIELD_CONNECT_FLAGS}) {
        for (std::size_t n : {0, 1, 3, 5, 8}) {
            const auto payload = cat({kDest, field(type, Bytes(n, 0))});
            std::ostringstream code;
            code << "0x000" << type;
            EXPECT_TRUE(IsError(decode_connect(payload), EBADMSG, {code.str(), "must be 4 bytes", "got " + std::to_string(n)}))
                << type << " with " << n << " bytes";
        }
    }
}

TEST(ConnectMalformed, UnknownFieldTypes) {
    const std::map<std::uint16_t, std::string> unknown = {
        {0x0000, "0x0000"}, {0x0007, "0x0007"}, {0x0010, "0x0010"},  // STATUS: a reply field
        {0x0013, "0x0013"}, {0x003f, "0x003f"}, {0x0040, "0x0040"},  // beyond the duplicate bitmap
        {0x1234, "0x1234"}, {0xffff, "0xffff"}};
    for (const auto& [type, code] : unknown) {
        const auto payload = cat({kDest, field(type, le(0, 4))});
        EXPECT_TRUE(IsError(decode_connect(payload), EBADMSG, {code, "not valid in a CONNECT request"}));
    }
}

TEST(ConnectTransport, AbsentIsTcpAndTcpIsNotWritten) {
    auto r = decode_connect(kDest);
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(r->transport, Transport::tcp);
    ConnectRequest tcp;
    tcp.dest = ep("127.0.0.1:8080");
    EXPECT_EQ(encode_connect(1, tcp).size(), EGRESS_HEADER_SIZE + 10u) << "no TRANSPORT field for TCP";
}

TEST(ConnectTransport, SixAndSeventeenAreTcpAndUdp) {
    auto tcp = decode_connect(cat({kDest, field(EGRESS_FIELD_TRANSPORT, le(6, 4))}));
    ASSERT_TRUE(IsOk(tcp));
    EXPECT_EQ(tcp->transport, Transport::tcp);
    auto udp = decode_connect(cat({kDest, field(EGRESS_FIELD_TRANSPORT, le(17, 4))}));
    ASSERT_TRUE(IsOk(udp));
    EXPECT_EQ(udp->transport, Transport::udp);
}

TEST(ConnectTransport, AnyOtherProtocolIsEPROTONOSUPPORT) {
    for (std::uint64_t t : {0ULL, 1ULL, 58ULL, 132ULL, 256ULL + 17, 0xffffffffULL})
        EXPECT_TRUE(IsError(decode_connect(cat({kDest, field(EGRESS_FIELD_TRANSPORT, le(t, 4))})), EPROTONOSUPPORT,
                            {"transport " + std::to_string(t), "6 (TCP) or 17 (UDP)"}))
            << t;
}

TEST(ConnectTransport, ItIsAU32) {
    for (std::size_t n : {0, 1, 2, 8})
        EXPECT_TRUE(IsError(decode_connect(cat({kDest, field(EGRESS_FIELD_TRANSPORT, Bytes(n, 17))})), EBADMSG,
                            {"0x0006", "must be 4 bytes"}))
            << n;
}

TEST(ConnectTransport, UdpTakesNoTcpNodelay) {
    const auto payload = cat({kDest, field(EGRESS_FIELD_TRANSPORT, le(17, 4)),
                              field(EGRESS_FIELD_CONNECT_FLAGS, le(EGRESS_CONNECT_TCP_NODELAY, 4))});
    EXPECT_TRUE(IsError(decode_connect(payload), EINVAL, {"TCP_NODELAY", "UDP"}));
    const auto blocking = cat({kDest, field(EGRESS_FIELD_TRANSPORT, le(17, 4)),
                               field(EGRESS_FIELD_CONNECT_FLAGS, le(EGRESS_CONNECT_BLOCKING, 4))});
    EXPECT_TRUE(IsOk(decode_connect(blocking)));
}

TEST(ConnectMalformed, PortZeroIsEINVAL) {
    EXPECT_TRUE(IsError(decode_connect(field(EGRESS_FIELD_DEST, v4_value(192, 0, 2, 1, 0))), EINVAL, {"port 0"}));
    const auto v6 = field(EGRESS_FIELD_DEST, cat({Bytes(15, 0), Bytes{1}, le(0, 2)}));
    EXPECT_TRUE(IsError(decode_connect(v6), EINVAL, {"port 0"}));
}

TEST(ConnectMalformed, UnknownConnectFlagBitsAreEINVAL) {
    for (std::uint32_t bits : {0x8u, 0x10u, 0x80000000u, 0xFFFFFFFFu}) {
        const auto payload = cat({kDest, field(EGRESS_FIELD_CONNECT_FLAGS, le(bits, 4))});
        EXPECT_TRUE(IsError(decode_connect(payload), EINVAL, {"unknown connect flag bits"})) << bits;
    }
    for (std::uint32_t bits : {1u, 2u, 3u, 4u, 5u, 7u})
        EXPECT_TRUE(IsOk(decode_connect(cat({kDest, field(EGRESS_FIELD_CONNECT_FLAGS, le(bits, 4))}))));
}

TEST(ConnectMalformed, PoolEmptyTooLongOrWithNul) {
    EXPECT_TRUE(IsError(decode_connect(cat({kDest, field(EGRESS_FIELD_POOL, {})})), EBADMSG,
                        {"0x0005", "1-64 bytes", "got 0"}));
    EXPECT_TRUE(IsError(decode_connect(cat({kDest, field(EGRESS_FIELD_POOL, Bytes(65, 'p'))})), EBADMSG,
                        {"0x0005", "1-64 bytes", "got 65"}));
    EXPECT_TRUE(IsError(decode_connect(cat({kDest, field(EGRESS_FIELD_POOL, text(std::string("de\0fault", 8)))})),
                        EBADMSG, {"0x0005", "NUL"}));
}

Bytes host_value(std::string_view name, std::uint16_t port) { return cat({text(name), le(port, 2)}); }

TEST(ConnectHost, AHostNameAndPortDecodeNormalized) {
    auto r = decode_connect(field(EGRESS_FIELD_DEST_HOST, host_value("API.Example.COM.", 443)));
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(r->host, "api.example.com");
    EXPECT_EQ(r->dest.port, 443);
    EXPECT_EQ(r->dest, (Endpoint{false, {}, 443}));
}

TEST(ConnectHost, RoundTripsWithEveryOtherField) {
    ConnectRequest req;
    req.host = "a.example";
    req.dest.port = 8443;
    req.timeout_ms = 700;
    req.flags = EGRESS_CONNECT_TCP_NODELAY | EGRESS_CONNECT_BLOCKING;
    req.pool = "web";
    const auto d = encode_connect(5, req);
    auto r = decode_request(d);
    ASSERT_TRUE(IsOk(r));
    expect_same(*r, req);
    // The field is the name's bytes, then the port little-endian.
    EXPECT_EQ(Bytes(d.begin() + EGRESS_HEADER_SIZE, d.begin() + EGRESS_HEADER_SIZE + 15),
              field(EGRESS_FIELD_DEST_HOST, host_value("a.example", 8443)));
}

TEST(ConnectHost, TheLongestNameFits) {
    std::string name;
    for (int i = 0; i < 4; ++i) name += std::string(i < 3 ? 63 : 61, 'a' + i) + (i < 3 ? "." : "");
    ASSERT_EQ(name.size(), 253u);
    auto r = decode_connect(field(EGRESS_FIELD_DEST_HOST, host_value(name + ".", 1)));
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(r->host, name);
    EXPECT_TRUE(IsError(decode_connect(field(EGRESS_FIELD_DEST_HOST, host_value(name + "a.", 1))), EBADMSG,
                        {"0x0002", "3-256 bytes", "got 257"}));
}

TEST(ConnectHost, AnInvalidNameIsEINVALSayingWhy) {
    EXPECT_TRUE(IsError(decode_connect(field(EGRESS_FIELD_DEST_HOST, host_value("a..b", 80))), EINVAL,
                        {"'a..b'", "empty label"}));
    EXPECT_TRUE(IsError(decode_connect(field(EGRESS_FIELD_DEST_HOST, host_value("b\xc3\xbcrger.de", 80))), EINVAL,
                        {"punycode"}));
    EXPECT_TRUE(IsError(decode_connect(field(EGRESS_FIELD_DEST_HOST, host_value("127.0.0.1", 80))), EINVAL,
                        {"all digits"}));
    EXPECT_TRUE(IsError(decode_connect(field(EGRESS_FIELD_DEST_HOST, host_value(std::string("a\0b", 3), 80))), EINVAL,
                        {"\\x00"}));
}

TEST(ConnectHost, TooShortOrPortZeroOrBothDestinationsAreRefused) {
    EXPECT_TRUE(IsError(decode_connect(field(EGRESS_FIELD_DEST_HOST, {})), EBADMSG, {"0x0002", "got 0"}));
    EXPECT_TRUE(IsError(decode_connect(field(EGRESS_FIELD_DEST_HOST, le(80, 2))), EBADMSG, {"0x0002", "got 2"}));
    EXPECT_TRUE(IsError(decode_connect(field(EGRESS_FIELD_DEST_HOST, host_value("x.example", 0))), EINVAL, {"port 0"}));
    EXPECT_TRUE(IsError(decode_connect(cat({kDest, field(EGRESS_FIELD_DEST_HOST, host_value("x.example", 80))})), EINVAL,
                        {"not both"}));
    EXPECT_TRUE(IsError(decode_connect(field(EGRESS_FIELD_TIMEOUT_MS, le(5, 4))), EBADMSG, {"0x0001 or 0x0002"}));
}

TEST(ConnectHost, AdoptTakesAnAddressNotAName) {
    EXPECT_TRUE(IsError(decode_connect(cat({field(EGRESS_FIELD_DEST_HOST, host_value("x.example", 80)),
                                            field(EGRESS_FIELD_CONNECT_FLAGS, le(EGRESS_CONNECT_ADOPT, 4))})),
                        EINVAL, {"ADOPT", "0x0001"}));
}

// ---- replies ----

TEST(Reply, SuccessRoundTripWithDescriptorFlag) {
    ConnectReply rep;
    rep.local = ep("[2001:db8::2]:40000");
    rep.remote = ep("[2001:db8::1]:443");
    rep.pool = "default";
    rep.attempts = 3;
    rep.connect_us = 0xFFFFFFFFFFFFFFFF;
    rep.addresses = 2;
    rep.resolve_us = 1234;
    auto r = decode_reply(encode_connect_reply(99, rep, true));
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(r->header.type, EGRESS_MSG_CONNECT_REPLY);
    EXPECT_EQ(r->header.flags, EGRESS_HDR_FLAG_FD_ATTACHED);
    EXPECT_EQ(r->header.request_id, 99u);
    expect_same(std::get<ConnectReply>(r->body), rep);
}

TEST(Reply, MinimalSuccessIsStatusOnly) {
    const auto d = encode_connect_reply(1, ConnectReply{}, false);
    EXPECT_EQ(Bytes(d.begin() + EGRESS_HEADER_SIZE, d.end()), field(EGRESS_FIELD_STATUS, le(0, 4)));
    auto r = decode_reply(d);
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(r->header.flags, 0);
    expect_same(std::get<ConnectReply>(r->body), ConnectReply{});
}

TEST(Reply, ErrorConnectReplyRoundTrip) {
    ConnectReply rep;
    rep.status = ETIMEDOUT;
    rep.error_name = "ETIMEDOUT";
    rep.message = "Connection timed out: no answer from the destination within 1000 ms";
    rep.pool = "default";
    rep.attempts = 1;
    rep.connect_us = 1000123;
    auto r = decode_reply(encode_connect_reply(5, rep, false));
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(r->header.flags, 0);
    const auto& c = std::get<ConnectReply>(r->body);
    expect_same(c, rep);
    EXPECT_FALSE(c.local);
    EXPECT_FALSE(c.remote);
}

TEST(Reply, AdoptInProgressCarriesTheAppliedDeadline) {
    ConnectReply rep;
    rep.status = EINPROGRESS;
    rep.error_name = "EINPROGRESS";
    rep.message = "Operation now in progress";
    rep.pool = "edge";
    rep.attempts = 1;
    rep.timeout_ms = 2500;
    const auto d = encode_connect_reply(9, rep, false);
    auto r = decode_reply(d);
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(std::get<ConnectReply>(r->body).timeout_ms, 2500u);
    const auto tail = field(EGRESS_FIELD_TIMEOUT_MS, le(2500, 4));
    EXPECT_TRUE(std::equal(tail.begin(), tail.end(), d.end() - static_cast<long>(tail.size())));
}

// A request served with the maximum timeout: TIMEOUT_MS in any CONNECT_REPLY,
// a failure's as well as a success's.
TEST(Reply, ClampedTimeoutRoundTripsOnSuccessAndFailure) {
    for (const int status : {0, ETIMEDOUT, ECONNREFUSED}) {
        ConnectReply rep;
        rep.status = static_cast<std::uint32_t>(status);
        if (status) {
            rep.error_name = errno_name(status);
            rep.message = "no answer within 30000 ms (requested 90000 ms, clamped to connect.max_timeout_ms)";
        } else {
            rep.local = ep("127.0.0.1:40000");
            rep.remote = ep("127.0.0.1:8080");
        }
        rep.pool = "default";
        rep.attempts = 1;
        rep.timeout_ms = 30000;
        auto r = decode_reply(encode_connect_reply(5, rep, status == 0));
        ASSERT_TRUE(IsOk(r)) << status;
        expect_same(std::get<ConnectReply>(r->body), rep);
    }
    ConnectReply plain;  // timeout_ms 0, not clamped: STATUS and POOL only
    plain.pool = "default";
    EXPECT_EQ(encode_connect_reply(6, plain, true).size(), EGRESS_HEADER_SIZE + (4 + 4) + (4 + 7));
}

TEST(Reply, ErrorReplyRoundTrip) {
    ErrorReply rep;
    rep.status = EOPNOTSUPP;
    rep.error_name = "EOPNOTSUPP";
    rep.message = "message type 2 is not a request";
    auto r = decode_reply(encode_error_reply(12, rep));
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(r->header.type, EGRESS_MSG_ERROR_REPLY);
    EXPECT_EQ(r->header.flags, 0);
    EXPECT_EQ(r->header.request_id, 12u);
    const auto& e = std::get<ErrorReply>(r->body);
    EXPECT_EQ(e.status, rep.status);
    EXPECT_EQ(e.error_name, rep.error_name);
    EXPECT_EQ(e.message, rep.message);
}

TEST(Reply, EmptyMessageIsAllowed) {
    ErrorReply rep;
    rep.status = EAGAIN;
    rep.error_name = "EAGAIN";
    auto r = decode_reply(encode_error_reply(1, rep));
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(std::get<ErrorReply>(r->body).message, "");
}

TEST(Reply, EncoderCutsOverlongText) {
    ConnectReply rep;
    rep.status = EINVAL;
    rep.error_name = std::string(100, 'E');
    rep.message = std::string(1000, 'm');
    auto r = decode_reply(encode_connect_reply(1, rep, false));
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(std::get<ConnectReply>(r->body).error_name.size(), EGRESS_MAX_NAME);
    EXPECT_EQ(std::get<ConnectReply>(r->body).message.size(), EGRESS_MAX_TEXT);
}

TEST(Reply, EncoderNeverCutsInsideAUtf8Character) {
    proto::ConnectReply rep;
    rep.status = ECONNREFUSED;
    rep.message = std::string(EGRESS_MAX_TEXT - 1, 'x') + "\xC3\xA9";  // 'e' with acute: 2 bytes over the edge
    auto r = proto::decode_reply(proto::encode_connect_reply(1, rep, false));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(std::get<proto::ConnectReply>(r->body).message, std::string(EGRESS_MAX_TEXT - 1, 'x'));
}

TEST(Reply, ErrorWithoutANameGetsTheErrnoName) {
    proto::ConnectReply rep;
    rep.status = ETIMEDOUT;
    auto r = proto::decode_reply(proto::encode_connect_reply(1, rep, false));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(std::get<proto::ConnectReply>(r->body).error_name, "ETIMEDOUT");
    auto e = proto::decode_reply(proto::encode_error_reply(2, proto::ErrorReply{EAGAIN, "", "busy"}));
    ASSERT_TRUE(e.ok()) << e.error().message;
    EXPECT_EQ(std::get<proto::ErrorReply>(e->body).error_name, "EAGAIN");
}

TEST(Status, RequestIsAHeaderOnly) {
    const auto b = proto::encode_status(9);
    ASSERT_EQ(b.size(), EGRESS_HEADER_SIZE);
    const auto h = proto::read_header(b);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->type, EGRESS_MSG_STATUS);
    EXPECT_FALSE(proto::check_request_header(*h, b.size()));
    EXPECT_FALSE(proto::decode_status(proto::ByteView(b).subspan(EGRESS_HEADER_SIZE)));
    const std::uint8_t extra[] = {1, 0, 0, 0};
    EXPECT_TRUE(IsError(proto::decode_status(extra), EBADMSG, {"no fields"}));
}

TEST(Status, LargeJsonTravelsInSeveralFieldsAndComesBackWhole) {
    proto::StatusReply rep;
    rep.json = "{\"pad\":\"" + std::string(150000, 'x') + "\"}";
    const auto b = proto::encode_status_reply(3, rep);
    EXPECT_LT(b.size(), EGRESS_MAX_STATUS_REPLY);
    auto r = proto::decode_reply(b);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->header.type, EGRESS_MSG_STATUS_REPLY);
    EXPECT_EQ(std::get<proto::StatusReply>(r->body).json, rep.json);
}

TEST(Status, ErrorStatusReplyRoundTrip) {
    auto r = proto::decode_reply(proto::encode_status_reply(4, proto::StatusReply{EMSGSIZE, "", "too big", ""}));
    ASSERT_TRUE(r.ok()) << r.error().message;
    const auto& st = std::get<proto::StatusReply>(r->body);
    EXPECT_EQ(st.status, static_cast<std::uint32_t>(EMSGSIZE));
    EXPECT_EQ(st.error_name, "EMSGSIZE");
    EXPECT_EQ(st.message, "too big");
}

TEST(ReplyMalformed, FramingAndHeader) {
    const auto good = encode_error_reply(1, golden_error_reply());
    EXPECT_TRUE(IsError(decode_reply(ByteView(good.data(), 19)), EBADMSG, {"header"}));
    auto magic = good;
    magic[0] = 'X';
    EXPECT_TRUE(IsError(decode_reply(magic), EBADMSG, {"magic"}));
    auto version = good;
    version[4] = 2;
    EXPECT_TRUE(IsError(decode_reply(version), EPROTONOSUPPORT, {"version 2"}));
    auto longer = good;
    longer.push_back(0);
    EXPECT_TRUE(IsError(decode_reply(longer), EBADMSG, {"length"}));
    EXPECT_TRUE(IsError(decode_reply(encode_connect(1, golden_request())), EBADMSG, {"type 1"}));
}

TEST(ReplyMalformed, Fields) {
    const auto status = field(EGRESS_FIELD_STATUS, le(0, 4));
    const auto reply = [](const Bytes& payload) { return datagram(payload, EGRESS_MSG_CONNECT_REPLY); };
    EXPECT_TRUE(IsError(decode_reply(reply({})), EBADMSG, {"without a status"}));
    EXPECT_TRUE(IsError(decode_reply(reply(cat({status, status}))), EBADMSG, {"0x0010", "twice"}));
    EXPECT_TRUE(IsError(decode_reply(reply(field(EGRESS_FIELD_STATUS, le(0, 2)))), EBADMSG, {"0x0010"}));
    EXPECT_TRUE(IsError(decode_reply(reply(cat({status, field(EGRESS_FIELD_DEST, v4_value(1, 2, 3, 4, 5))}))),
                        EBADMSG, {"0x0001", "not valid in a CONNECT reply"}));
    EXPECT_TRUE(IsError(decode_reply(reply(cat({status, field(EGRESS_FIELD_LOCAL, Bytes(5, 0))}))), EBADMSG,
                        {"0x0013", "got 5"}));
    EXPECT_TRUE(IsError(decode_reply(reply(cat({status, field(EGRESS_FIELD_ATTEMPTS, le(1, 8))}))), EBADMSG,
                        {"0x0015", "got 8"}));
    EXPECT_TRUE(IsError(decode_reply(reply(cat({status, field(EGRESS_FIELD_CONNECT_US, le(1, 4))}))), EBADMSG,
                        {"0x0016", "got 4"}));
    EXPECT_TRUE(IsError(decode_reply(reply(cat({status, field(EGRESS_FIELD_TIMEOUT_MS, le(1, 8))}))), EBADMSG,
                        {"0x0003", "got 8"}));
    EXPECT_TRUE(IsError(decode_reply(reply(cat({status, field(EGRESS_FIELD_ERROR_NAME, {})}))), EBADMSG,
                        {"0x0011", "got 0"}));
    EXPECT_TRUE(IsError(decode_reply(reply(cat({status, field(EGRESS_FIELD_MESSAGE, Bytes(513, 'm'))}))), EBADMSG,
                        {"0x0012", "got 513"}));
    EXPECT_TRUE(IsError(decode_reply(reply(cat({status, field(EGRESS_FIELD_MESSAGE, Bytes(3, 0))}))), EBADMSG,
                        {"0x0012", "NUL"}));
}

TEST(ReplyMalformed, ErrorReplyNeedsANonzeroStatusAndOnlyStatusFields) {
    const auto reply = [](const Bytes& payload) { return datagram(payload, EGRESS_MSG_ERROR_REPLY); };
    EXPECT_TRUE(IsError(decode_reply(reply({})), EBADMSG, {"without a status"}));
    EXPECT_TRUE(IsError(decode_reply(reply(field(EGRESS_FIELD_STATUS, le(0, 4)))), EBADMSG, {"without a status"}));
    EXPECT_TRUE(IsError(decode_reply(reply(cat({field(EGRESS_FIELD_STATUS, le(EINVAL, 4)),
                                                field(EGRESS_FIELD_POOL, text("default"))}))),
                        EBADMSG, {"0x0005", "not valid in an ERROR reply"}));
}

// Section 5's presence rules, which tests/fuzz found the decoder did not enforce.
TEST(ReplyMalformed, ErrorNameAndMessageComeWithAFailureStatusOnly) {
    const auto ok = field(EGRESS_FIELD_STATUS, le(0, 4));
    const auto failed = field(EGRESS_FIELD_STATUS, le(EAGAIN, 4));
    const auto name = field(EGRESS_FIELD_ERROR_NAME, text("EAGAIN"));
    const auto message = field(EGRESS_FIELD_MESSAGE, text("busy"));
    for (auto type : {EGRESS_MSG_CONNECT_REPLY, EGRESS_MSG_STATUS_REPLY, EGRESS_MSG_ERROR_REPLY}) {
        const auto reply = [type](const Bytes& payload) { return datagram(payload, static_cast<std::uint8_t>(type)); };
        SCOPED_TRACE("reply type " + std::to_string(type));
        EXPECT_TRUE(IsError(decode_reply(reply(cat({failed, message}))), EBADMSG, {"lacks field 0x0011"}));
        EXPECT_TRUE(IsError(decode_reply(reply(cat({failed, name}))), EBADMSG, {"lacks field 0x0012"}));
        EXPECT_TRUE(IsOk(decode_reply(reply(cat({failed, name, message})))));
        if (type == EGRESS_MSG_ERROR_REPLY) continue;  // never status 0
        EXPECT_TRUE(IsError(decode_reply(reply(cat({ok, name}))), EBADMSG, {"status 0", "0x0011"}));
        EXPECT_TRUE(IsError(decode_reply(reply(cat({ok, message}))), EBADMSG, {"status 0", "0x0012"}));
    }
}

TEST(ReplyMalformed, StatusReplyRepeatsOnlyJson) {
    const auto status = field(EGRESS_FIELD_STATUS, le(0, 4));
    const auto json = field(EGRESS_FIELD_JSON, text("{}"));
    const auto reply = [](const Bytes& payload) { return datagram(payload, EGRESS_MSG_STATUS_REPLY); };
    EXPECT_TRUE(IsError(decode_reply(reply(cat({status, status, json}))), EBADMSG, {"0x0010", "twice"}));
    EXPECT_TRUE(IsError(decode_reply(reply(json)), EBADMSG, {"without a status"}));
    EXPECT_TRUE(IsError(decode_reply(reply(cat({status, field(EGRESS_FIELD_POOL, text("p"))}))), EBADMSG,
                        {"0x0005", "not valid in a STATUS reply"}));
    auto r = decode_reply(reply(cat({json, status, json, json})));
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(std::get<StatusReply>(r->body).json, "{}{}{}");
}

// ---- random mutation: decoding never crashes and always decides ----

void mutate(Bytes& d, std::mt19937_64& rng) {
    const auto pick = [&](std::size_t n) { return n ? static_cast<std::size_t>(rng() % n) : 0; };
    static const std::uint8_t interesting[] = {0, 1, 2, 3, 4, 5, 6, 0x10, 0x12, 0x40, 0x7f, 0x80, 0xff};
    switch (rng() % 7) {
    case 0:  // flip one bit anywhere
        if (!d.empty()) d[pick(d.size())] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
        break;
    case 1:  // an interesting value in the payload (field types and lengths)
        if (d.size() > EGRESS_HEADER_SIZE)
            d[EGRESS_HEADER_SIZE + pick(d.size() - EGRESS_HEADER_SIZE)] = interesting[pick(sizeof interesting)];
        break;
    case 2:  // truncate
        d.resize(pick(d.size() + 1));
        break;
    case 3:  // append random bytes
        for (auto n = 1 + pick(8); n > 0; --n) d.push_back(static_cast<std::uint8_t>(rng()));
        break;
    case 4: {  // repeat a slice of the payload (duplicate fields)
        if (d.size() <= EGRESS_HEADER_SIZE) break;
        const auto from = EGRESS_HEADER_SIZE + pick(d.size() - EGRESS_HEADER_SIZE);
        const auto len = 1 + pick(d.size() - from);
        const Bytes slice(d.begin() + static_cast<long>(from), d.begin() + static_cast<long>(from + len));
        d.insert(d.begin() + static_cast<long>(EGRESS_HEADER_SIZE + pick(d.size() - EGRESS_HEADER_SIZE + 1)),
                 slice.begin(), slice.end());
        break;
    }
    case 5:  // a random byte anywhere
        if (!d.empty()) d[pick(d.size())] = static_cast<std::uint8_t>(rng());
        break;
    default:  // grow past the datagram limit now and then
        if (rng() % 8 == 0) d.resize(EGRESS_MAX_DATAGRAM + 1 + pick(64), 0);
    }
}

void fix_payload_len(Bytes& d) {
    if (d.size() < EGRESS_HEADER_SIZE) return;
    const auto len = le(d.size() - EGRESS_HEADER_SIZE, 4);
    std::copy(len.begin(), len.end(), d.begin() + 16);
}

// A successful decode must satisfy every documented constraint and survive
// re-encoding unchanged.
void check_decoded(ByteView payload, std::map<int, int>& outcomes) {
    auto r = decode_connect(payload);
    if (!r) {
        const int code = r.error().code;
        ASSERT_TRUE(code == EBADMSG || code == EINVAL || code == EPROTONOSUPPORT) << errno_name(code);
        ASSERT_FALSE(r.error().message.empty());
        ++outcomes[code];
        return;
    }
    ++outcomes[0];
    ASSERT_NE(r->dest.port, 0);
    ASSERT_EQ(r->flags & ~EGRESS_CONNECT_KNOWN_FLAGS, 0u);
    ASSERT_LE(r->pool.size(), EGRESS_MAX_NAME);
    ASSERT_EQ(r->pool.find('\0'), std::string::npos);
    auto again = decode_request(encode_connect(1, *r));
    ASSERT_TRUE(IsOk(again));
    expect_same(*again, *r);
}

TEST(CodecFuzz, MutatedDatagramsAlwaysDecodeOrFailCleanly) {
    std::mt19937_64 rng(20240601);  // fixed seed: a failure reproduces exactly
    ConnectRequest req;
    req.dest = ep("[2001:db8::1]:443");
    req.timeout_ms = 1500;
    req.flags = EGRESS_CONNECT_TCP_NODELAY;
    req.pool = "default";
    ConnectRequest named = req;
    named.host = "api.example.com";
    const Bytes seeds[] = {encode_connect(42, req), encode_connect(43, golden_request()), encode_connect(44, named),
                           from_hex(kGoldenReplyOk), from_hex(kGoldenReplyRefused), from_hex(kGoldenErrorReply)};
    std::map<int, int> request_outcomes;  // errno (0: decoded) -> count
    std::map<int, int> header_outcomes;
    int replies_decoded = 0;
    for (int i = 0; i < 20000; ++i) {
        Bytes d = seeds[i % std::size(seeds)];
        for (auto n = 1 + rng() % 4; n > 0; --n) mutate(d, rng);
        if (rng() % 2) fix_payload_len(d);
        SCOPED_TRACE("iteration " + std::to_string(i));

        // The daemon's path: frame, check the header, decode the fields.
        if (const auto h = read_header(d)) {
            if (const auto e = check_request_header(*h, d.size())) {
                ASSERT_TRUE(e->code == EPROTONOSUPPORT || e->code == EMSGSIZE || e->code == EBADMSG ||
                            e->code == EINVAL)
                    << errno_name(e->code);
                ++header_outcomes[e->code];
            } else {
                ++header_outcomes[0];
            }
        } else {
            ++header_outcomes[-1];
        }
        // The field decoder on whatever follows the header, whatever the header says.
        if (d.size() >= EGRESS_HEADER_SIZE) check_decoded(payload_of(d), request_outcomes);
        if (HasFatalFailure()) return;
        // The client's reply decoder must survive the same bytes.
        auto rep = decode_reply(d);
        if (rep) {
            ++replies_decoded;
        } else {
            ASSERT_TRUE(rep.error().code == EBADMSG || rep.error().code == EPROTONOSUPPORT);
        }
    }
    // The loop really reached each branch, not just the framing check.
    for (int code : {-1, 0, EPROTONOSUPPORT, EMSGSIZE, EBADMSG, EINVAL})
        EXPECT_GT(header_outcomes[code], 20) << errno_name(code);
    for (int code : {0, EBADMSG, EINVAL}) EXPECT_GT(request_outcomes[code], 20) << errno_name(code);
    EXPECT_GT(replies_decoded, 100);
}

}  // namespace
}  // namespace egress::proto
