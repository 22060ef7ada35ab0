// The preload shim's allocation-free encoder and decoder agree with the
// reference codec (proto/codec.cpp) byte for byte, and the decoder refuses
// what is not a reply without reading past the datagram.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "codec.hpp"
#include "endpoint.hpp"
#include "wire.hpp"

namespace {

using namespace egress;
using egress::preload::Addr;

Addr addr_of(const Endpoint& ep) {
    Addr a;
    a.v6 = ep.v6;
    std::memcpy(a.bytes, ep.addr.data(), ep.addr_len());
    a.port = ep.port;
    return a;
}

proto::Bytes shim_encode(std::uint64_t id, const Endpoint& dest, std::uint32_t timeout, std::uint32_t flags,
                         const std::string& pool) {
    std::uint8_t buf[preload::kMaxRequest];
    const auto n = preload::encode_adopt(buf, sizeof buf, id, addr_of(dest), timeout, flags, pool.data(), pool.size());
    return proto::Bytes(buf, buf + n);
}

proto::Bytes reference(std::uint64_t id, const Endpoint& dest, std::uint32_t timeout, std::uint32_t flags,
                       const std::string& pool) {
    proto::ConnectRequest req;
    req.dest = dest;
    req.timeout_ms = timeout;
    req.flags = EGRESS_CONNECT_ADOPT | flags;
    req.pool = pool;
    return proto::encode_connect(id, req);
}

TEST(PreloadWire, AdoptRequestMatchesTheReferenceEncoder) {
    const Endpoint dests[] = {*parse_address("192.0.2.10", 443), *parse_address("2001:db8::1", 8080),
                              *parse_address("::ffff:198.51.100.7", 1)};
    const std::string pools[] = {"", "edge", std::string(64, 'p')};
    for (const auto& d : dests)
        for (const auto& pool : pools)
            for (std::uint32_t timeout : {0u, 2500u, 0xffffffffu})
                for (std::uint32_t flags : {0u, static_cast<std::uint32_t>(EGRESS_CONNECT_TCP_NODELAY)}) {
                    SCOPED_TRACE(endpoint_string(d) + " pool '" + pool + "' timeout " + std::to_string(timeout));
                    const auto mine = shim_encode(0x0102030405060708ull, d, timeout, flags, pool);
                    EXPECT_EQ(mine, reference(0x0102030405060708ull, d, timeout, flags, pool));
                    EXPECT_LE(mine.size(), preload::kMaxRequest);
                }
}

TEST(PreloadWire, APoolLongerThanTheLimitIsCutLikeTheReference) {
    const auto d = *parse_address("192.0.2.1", 80);
    EXPECT_EQ(shim_encode(1, d, 0, 0, std::string(80, 'x')), reference(1, d, 0, 0, std::string(64, 'x')));
}

TEST(PreloadWire, ABufferTooSmallWritesNothing) {
    std::uint8_t buf[30];
    EXPECT_EQ(preload::encode_adopt(buf, sizeof buf, 1, addr_of(*parse_address("2001:db8::1", 80)), 0, 0, "", 0), 0u);
}

TEST(PreloadWire, DecodesEveryFieldItUsesFromAReferenceReply) {
    proto::ConnectReply rep;
    rep.status = EINPROGRESS;
    rep.error_name = "EINPROGRESS";
    rep.message = "Operation now in progress: connecting from 10.0.0.1";
    rep.local = *parse_address("fd00::5", 40001);
    rep.remote = *parse_address("fd00::100", 80);
    rep.pool = "edge";
    rep.attempts = 3;
    rep.connect_us = 77;
    rep.timeout_ms = 1500;
    const auto d = proto::encode_connect_reply(42, rep, false);
    preload::Reply out;
    ASSERT_TRUE(preload::decode_reply(d.data(), d.size(), out));
    EXPECT_EQ(out.type, EGRESS_MSG_CONNECT_REPLY);
    EXPECT_EQ(out.request_id, 42u);
    EXPECT_EQ(out.status, static_cast<std::uint32_t>(EINPROGRESS));
    EXPECT_STREQ(out.error_name, "EINPROGRESS");
    EXPECT_STREQ(out.message, rep.message.c_str());
    EXPECT_STREQ(out.pool, "edge");
    EXPECT_EQ(out.attempts, 3u);
    EXPECT_EQ(out.timeout_ms, 1500u);
    ASSERT_TRUE(out.has_local);
    EXPECT_TRUE(out.local.v6);
    EXPECT_EQ(out.local.port, 40001);
    EXPECT_EQ(0, std::memcmp(out.local.bytes, rep.local->addr.data(), 16));
}

TEST(PreloadWire, DecodesARefusalOfTheConnection) {
    proto::ErrorReply e;
    e.status = EAGAIN;
    e.error_name = "EAGAIN";
    e.message = "egressd serves its limit of 2000 clients";
    const auto d = proto::encode_error_reply(0, e);
    preload::Reply out;
    ASSERT_TRUE(preload::decode_reply(d.data(), d.size(), out));
    EXPECT_EQ(out.type, EGRESS_MSG_ERROR_REPLY);
    EXPECT_EQ(out.request_id, 0u);
    EXPECT_EQ(out.status, static_cast<std::uint32_t>(EAGAIN));
}

TEST(PreloadWire, ALongMessageIsCutToItsBuffer) {
    proto::ConnectReply rep;
    rep.status = EACCES;
    rep.error_name = "EACCES";
    rep.message = std::string(500, 'm');
    const auto d = proto::encode_connect_reply(1, rep, false);
    preload::Reply out;
    ASSERT_TRUE(preload::decode_reply(d.data(), d.size(), out));
    EXPECT_EQ(std::strlen(out.message), sizeof out.message - 1);
}

TEST(PreloadWire, RefusesWhatIsNotAReply) {
    preload::Reply out;
    proto::ConnectReply ok;
    auto good = proto::encode_connect_reply(7, ok, false);
    ASSERT_TRUE(preload::decode_reply(good.data(), good.size(), out));

    EXPECT_FALSE(preload::decode_reply(good.data(), 19, out)) << "shorter than a header";
    auto bad = good;
    bad[0] ^= 1;
    EXPECT_FALSE(preload::decode_reply(bad.data(), bad.size(), out)) << "magic";
    bad = good;
    bad[4] = 2;
    EXPECT_FALSE(preload::decode_reply(bad.data(), bad.size(), out)) << "version";
    bad = good;
    bad[16] += 1;
    EXPECT_FALSE(preload::decode_reply(bad.data(), bad.size(), out)) << "payload length";
    const auto status = proto::encode_status(3);
    EXPECT_FALSE(preload::decode_reply(status.data(), status.size(), out)) << "a request, not a reply";
    bad = good;
    bad.resize(bad.size() - 1);
    bad[16] -= 1;
    EXPECT_FALSE(preload::decode_reply(bad.data(), bad.size(), out)) << "a field cut short";
    // A CONNECT_REPLY whose only field is not STATUS.
    proto::Bytes no_status(good.begin(), good.begin() + 20);
    no_status[16] = 8;
    for (std::uint8_t b : {0x15, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00}) no_status.push_back(b);
    EXPECT_FALSE(preload::decode_reply(no_status.data(), no_status.size(), out)) << "no status";
}

TEST(PreloadWire, MutatedRepliesNeverReadPastTheDatagram) {
    proto::ConnectReply rep;
    rep.status = ECONNREFUSED;
    rep.message = "refused";
    rep.local = *parse_address("10.1.2.3", 5);
    rep.pool = "p";
    rep.timeout_ms = 9;
    const auto base = proto::encode_connect_reply(5, rep, false);
    std::mt19937 rng(11);
    for (int i = 0; i < 20000; ++i) {
        auto d = base;
        for (int k = 0; k < 3; ++k) d[rng() % d.size()] = static_cast<std::uint8_t>(rng());
        d.resize(rng() % (d.size() + 1));
        // Exactly sized heap copy: ASan reports any read past its end.
        std::vector<std::uint8_t> exact(d.begin(), d.end());
        preload::Reply out;
        (void)preload::decode_reply(exact.data(), exact.size(), out);
    }
}

}  // namespace
