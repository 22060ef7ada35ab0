#include "wire.hpp"

#include "egress_proto.h"

namespace egress::preload {
namespace {

struct Writer {
    std::uint8_t* out;
    std::size_t cap;
    std::size_t n = 0;
    bool ok = true;

    void byte(std::uint8_t b) {
        if (n < cap) out[n++] = b;
        else ok = false;
    }
    void le(std::uint64_t v, int width) {
        for (int i = 0; i < width; ++i) byte(static_cast<std::uint8_t>(v >> (8 * i)));
    }
    void field(std::uint16_t type, std::uint16_t len) {
        le(type, 2);
        le(len, 2);
    }
};

std::uint64_t get_le(const std::uint8_t* p, int width) {
    std::uint64_t v = 0;
    for (int i = width - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

void copy_text(char* dst, std::size_t cap, const std::uint8_t* src, std::size_t len) {
    const std::size_t n = len < cap - 1 ? len : cap - 1;
    for (std::size_t i = 0; i < n; ++i) dst[i] = src[i] ? static_cast<char>(src[i]) : '?';
    dst[n] = '\0';
}

bool read_endpoint(const std::uint8_t* v, std::size_t len, Addr& out) {
    if (len != EGRESS_ENDPOINT_V4_SIZE && len != EGRESS_ENDPOINT_V6_SIZE) return false;
    out = Addr{};
    out.v6 = len == EGRESS_ENDPOINT_V6_SIZE;
    const std::size_t alen = out.v6 ? 16 : 4;
    for (std::size_t i = 0; i < alen; ++i) out.bytes[i] = v[i];
    out.port = static_cast<std::uint16_t>(get_le(v + alen, 2));
    return true;
}

}  // namespace

std::size_t encode_adopt(std::uint8_t* out, std::size_t cap, std::uint64_t id, const Addr& dest,
                         std::uint32_t timeout_ms, std::uint32_t extra_flags, const char* pool,
                         std::size_t pool_len) {
    if (pool_len > EGRESS_MAX_NAME) pool_len = EGRESS_MAX_NAME;
    const std::size_t alen = dest.v6 ? 16 : 4;
    const std::size_t payload = 4 + alen + 2 + (timeout_ms ? 8 : 0) + 8 + (pool_len ? 4 + pool_len : 0);
    Writer w{out, cap};
    w.le(EGRESS_MAGIC, 4);
    w.byte(EGRESS_VERSION);
    w.byte(EGRESS_MSG_CONNECT);
    w.le(0, 2);
    w.le(id, 8);
    w.le(payload, 4);
    w.field(EGRESS_FIELD_DEST, static_cast<std::uint16_t>(alen + 2));
    for (std::size_t i = 0; i < alen; ++i) w.byte(dest.bytes[i]);
    w.le(dest.port, 2);
    if (timeout_ms) {
        w.field(EGRESS_FIELD_TIMEOUT_MS, 4);
        w.le(timeout_ms, 4);
    }
    w.field(EGRESS_FIELD_CONNECT_FLAGS, 4);
    w.le(EGRESS_CONNECT_ADOPT | extra_flags, 4);
    if (pool_len) {
        w.field(EGRESS_FIELD_POOL, static_cast<std::uint16_t>(pool_len));
        for (std::size_t i = 0; i < pool_len; ++i) w.byte(static_cast<std::uint8_t>(pool[i]));
    }
    return w.ok ? w.n : 0;
}

bool decode_reply(const std::uint8_t* d, std::size_t size, Reply& out) {
    out = Reply{};
    if (size < EGRESS_HEADER_SIZE || get_le(d, 4) != EGRESS_MAGIC || d[4] != EGRESS_VERSION) return false;
    out.type = d[5];
    out.flags = static_cast<std::uint16_t>(get_le(d + 6, 2));
    out.request_id = get_le(d + 8, 8);
    if (get_le(d + 16, 4) != size - EGRESS_HEADER_SIZE) return false;
    if (out.type != EGRESS_MSG_CONNECT_REPLY && out.type != EGRESS_MSG_ERROR_REPLY) return false;
    bool has_status = false;
    std::size_t at = EGRESS_HEADER_SIZE;
    while (at < size) {
        if (size - at < EGRESS_FIELD_HEADER_SIZE) return false;
        const auto type = static_cast<std::uint16_t>(get_le(d + at, 2));
        const auto len = static_cast<std::size_t>(get_le(d + at + 2, 2));
        const std::uint8_t* v = d + at + EGRESS_FIELD_HEADER_SIZE;
        if (len > size - at - EGRESS_FIELD_HEADER_SIZE) return false;
        at += EGRESS_FIELD_HEADER_SIZE + len;
        switch (type) {
        case EGRESS_FIELD_STATUS:
            if (len != 4) return false;
            out.status = static_cast<std::uint32_t>(get_le(v, 4));
            has_status = true;
            break;
        case EGRESS_FIELD_ATTEMPTS:
            if (len != 4) return false;
            out.attempts = static_cast<std::uint32_t>(get_le(v, 4));
            break;
        case EGRESS_FIELD_TIMEOUT_MS:
            if (len != 4) return false;
            out.timeout_ms = static_cast<std::uint32_t>(get_le(v, 4));
            break;
        case EGRESS_FIELD_LOCAL:
            if (!read_endpoint(v, len, out.local)) return false;
            out.has_local = true;
            break;
        case EGRESS_FIELD_ERROR_NAME:
            copy_text(out.error_name, sizeof out.error_name, v, len);
            break;
        case EGRESS_FIELD_MESSAGE:
            copy_text(out.message, sizeof out.message, v, len);
            break;
        case EGRESS_FIELD_POOL:
            copy_text(out.pool, sizeof out.pool, v, len);
            break;
        default:
            break;  // REMOTE, CONNECT_US, ...: not needed here
        }
    }
    if (!has_status) return false;
    return out.type != EGRESS_MSG_ERROR_REPLY || out.status != 0;
}

}  // namespace egress::preload
