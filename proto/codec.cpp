#include "codec.hpp"

#include <endian.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "hostname.hpp"

namespace egress::proto {
namespace {

// ---- little-endian primitives ----

// N bytes at `off`, which the caller has checked are there.
// (A memcpy of the little-endian form: one load or store, where a loop of
// shifts costs a few instructions a byte.)
template <std::size_t N>
std::uint64_t get_le(ByteView b, std::size_t off) {
    static_assert(N <= 8);
    std::uint64_t v = 0;
    std::memcpy(&v, b.data() + off, N);
    return le64toh(v);
}

template <std::size_t N>
void put_le(std::uint8_t* at, std::uint64_t v) {
    static_assert(N <= 8);
    const auto le = htole64(v);
    std::memcpy(at, &le, N);
}

std::string hex16(std::uint16_t v) {
    static const char digits[] = "0123456789abcdef";
    std::string s = "0x0000";
    for (int i = 0; i < 4; ++i) s[5 - i] = digits[(v >> (4 * i)) & 0xF];
    return s;
}

// ---- writing ----

class Writer {
public:
    // Writes into a buffer on the stack, sized for a typical message, and
    // moves to the heap only for a long one; finish() makes the one
    // allocation the message needs.
    Writer(std::uint8_t type, std::uint16_t flags, std::uint64_t id) {
        auto* h = room(EGRESS_HEADER_SIZE);
        put_le<4>(h, EGRESS_MAGIC);
        h[4] = EGRESS_VERSION;
        h[5] = type;
        put_le<2>(h + 6, flags);
        put_le<8>(h + 8, id);
        put_le<4>(h + 16, 0);  // payload length, patched by finish()
    }
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    void field(std::uint16_t type, const std::uint8_t* data, std::size_t len) {
        auto* f = field_header(type, len);
        if (len) std::memcpy(f, data, len);
    }
    void u32(std::uint16_t type, std::uint32_t v) { put_le<4>(field_header(type, 4), v); }
    void u64(std::uint16_t type, std::uint64_t v) { put_le<8>(field_header(type, 8), v); }
    // Text longer than the protocol allows is cut, never sent oversized,
    // and never inside a UTF-8 character.
    void text(std::uint16_t type, const std::string& s, std::size_t max) {
        auto n = s.size() < max ? s.size() : max;
        while (n < s.size() && n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
        field(type, reinterpret_cast<const std::uint8_t*>(s.data()), n);
    }
    void endpoint(std::uint16_t type, const Endpoint& ep) {
        const auto n = ep.addr_len();
        auto* f = field_header(type, n + 2);
        std::memcpy(f, ep.addr.data(), n);
        put_le<2>(f + n, ep.port);
    }
    Bytes finish() {
        patch_length();
        if (heap_.empty()) return Bytes(buf_, buf_ + pos_);
        heap_.resize(pos_);
        return std::move(heap_);
    }
    void finish_into(Bytes& out) {
        patch_length();
        out.assign(buf_, buf_ + pos_);
    }

private:
    static constexpr std::size_t kTypical = 256;  // a reply with a message, two endpoints and a pool

    void patch_length() { put_le<4>(buf_ + 16, pos_ - EGRESS_HEADER_SIZE); }

    // Writes a field's type and length; returns where its `len` bytes go.
    std::uint8_t* field_header(std::uint16_t type, std::size_t len) {
        auto* f = room(EGRESS_FIELD_HEADER_SIZE + len);
        put_le<2>(f, type);
        put_le<2>(f + 2, len);
        return f + EGRESS_FIELD_HEADER_SIZE;
    }
    // The next n bytes of the message, to be written.
    std::uint8_t* room(std::size_t n) {
        if (pos_ + n > cap_) grow(pos_ + n);
        auto* at = buf_ + pos_;
        pos_ += n;
        return at;
    }
    void grow(std::size_t need) {
        const auto cap = std::max(cap_ * 2, need);
        const bool on_stack = heap_.empty();
        heap_.resize(cap);
        if (on_stack) std::memcpy(heap_.data(), stack_.data(), pos_);
        buf_ = heap_.data();
        cap_ = cap;
    }

    std::array<std::uint8_t, kTypical> stack_;  // not zeroed: only what is written is read
    Bytes heap_;
    std::uint8_t* buf_ = stack_.data();
    std::size_t cap_ = kTypical;
    std::size_t pos_ = 0;
};

// ---- reading ----

struct Field {
    std::uint16_t type;
    ByteView value;
};

// Walks type-length-value fields, rejecting truncation and duplicates
// (except of `repeatable`, a field type the message lets repeat).
class FieldReader {
public:
    explicit FieldReader(ByteView payload, std::uint16_t repeatable = 0xFFFF) : p_(payload), repeatable_(repeatable) {}

    // false at the end or on error; check error() afterwards.
    bool next(Field& f) {
        if (error_ || off_ == p_.size()) return false;
        if (p_.size() - off_ < EGRESS_FIELD_HEADER_SIZE) {
            fail("field header truncated at payload offset " + std::to_string(off_));
            return false;
        }
        f.type = static_cast<std::uint16_t>(get_le<2>(p_, off_));
        const auto len = static_cast<std::size_t>(get_le<2>(p_, off_ + 2));
        if (p_.size() - off_ - EGRESS_FIELD_HEADER_SIZE < len) {
            fail("field " + hex16(f.type) + " claims " + std::to_string(len) + " bytes but " +
                 std::to_string(p_.size() - off_ - EGRESS_FIELD_HEADER_SIZE) + " remain");
            return false;
        }
        f.value = p_.subspan(off_ + EGRESS_FIELD_HEADER_SIZE, len);
        off_ += EGRESS_FIELD_HEADER_SIZE + len;
        if (f.type < 64) {
            if ((seen_ & (1ULL << f.type)) && f.type != repeatable_) {
                fail("field " + hex16(f.type) + " appears twice");
                return false;
            }
            seen_ |= 1ULL << f.type;
        }
        return true;
    }
    bool seen(std::uint16_t type) const { return type < 64 && (seen_ & (1ULL << type)); }
    void fail(std::string message) {
        if (!error_) error_ = Error{EBADMSG, std::move(message)};
    }
    const std::optional<Error>& error() const { return error_; }

private:
    ByteView p_;
    std::uint16_t repeatable_;
    std::size_t off_ = 0;
    std::uint64_t seen_ = 0;
    std::optional<Error> error_;
};

bool want_len(FieldReader& r, const Field& f, std::size_t len, const char* what) {
    if (f.value.size() == len) return true;
    r.fail("field " + hex16(f.type) + " (" + what + ") must be " + std::to_string(len) +
           " bytes, got " + std::to_string(f.value.size()));
    return false;
}

std::optional<Endpoint> read_endpoint(FieldReader& r, const Field& f, const char* what) {
    const auto n = f.value.size();
    if (n != EGRESS_ENDPOINT_V4_SIZE && n != EGRESS_ENDPOINT_V6_SIZE) {
        r.fail("field " + hex16(f.type) + " (" + what + ") must be 6 (IPv4) or 18 (IPv6) bytes, got " +
               std::to_string(n));
        return std::nullopt;
    }
    Endpoint ep;
    ep.v6 = n == EGRESS_ENDPOINT_V6_SIZE;
    std::memcpy(ep.addr.data(), f.value.data(), ep.addr_len());
    ep.port = static_cast<std::uint16_t>(get_le<2>(f.value, ep.addr_len()));
    return ep;
}

std::optional<std::string> read_text(FieldReader& r, const Field& f, const char* what,
                                     std::size_t min, std::size_t max) {
    if (f.value.size() < min || f.value.size() > max) {
        r.fail("field " + hex16(f.type) + " (" + what + ") must be " + std::to_string(min) + "-" +
               std::to_string(max) + " bytes, got " + std::to_string(f.value.size()));
        return std::nullopt;
    }
    for (auto c : f.value) {
        if (c == 0) {
            r.fail("field " + hex16(f.type) + " (" + what + ") contains a NUL byte");
            return std::nullopt;
        }
    }
    return std::string(f.value.begin(), f.value.end());
}

// Fields common to CONNECT_REPLY and ERROR_REPLY. Returns false if unknown.
template <class R>
bool read_status_field(FieldReader& r, const Field& f, R& out) {
    switch (f.type) {
    case EGRESS_FIELD_STATUS:
        if (want_len(r, f, 4, "status")) out.status = static_cast<std::uint32_t>(get_le<4>(f.value, 0));
        return true;
    case EGRESS_FIELD_ERROR_NAME:
        if (auto s = read_text(r, f, "error name", 1, EGRESS_MAX_NAME)) out.error_name = *s;
        return true;
    case EGRESS_FIELD_MESSAGE:
        if (auto s = read_text(r, f, "message", 0, EGRESS_MAX_TEXT)) out.message = *s;
        return true;
    default:
        return false;
    }
}

// PROTOCOL.md section 5: ERROR_NAME and MESSAGE come with a failure status,
// and only with one.
std::optional<Error> check_error_fields(const FieldReader& r, std::uint32_t status, const char* what) {
    const bool named = r.seen(EGRESS_FIELD_ERROR_NAME), explained = r.seen(EGRESS_FIELD_MESSAGE);
    if (status != 0 && !(named && explained))
        return Error{EBADMSG, std::string(what) + " with status " + std::to_string(status) + " lacks field " +
                                  (named ? "0x0012 (message)" : "0x0011 (error name)")};
    if (status == 0 && (named || explained))
        return Error{EBADMSG, std::string(what) + " with status 0 carries field " +
                                  (named ? "0x0011 (error name)" : "0x0012 (message)")};
    return std::nullopt;
}

}  // namespace

std::optional<Header> read_header(ByteView d) {
    if (d.size() < EGRESS_HEADER_SIZE || get_le<4>(d, 0) != EGRESS_MAGIC) return std::nullopt;
    Header h;
    h.version = d[4];
    h.type = d[5];
    h.flags = static_cast<std::uint16_t>(get_le<2>(d, 6));
    h.request_id = get_le<8>(d, 8);
    h.payload_len = static_cast<std::uint32_t>(get_le<4>(d, 16));
    return h;
}

std::optional<Error> check_request_header(const Header& h, std::size_t size) {
    if (h.version != EGRESS_VERSION)
        return Error{EPROTONOSUPPORT, "protocol version " + std::to_string(h.version) +
                                          " is not supported (this daemon speaks version " +
                                          std::to_string(EGRESS_VERSION) + ")"};
    if (size > EGRESS_MAX_DATAGRAM)
        return Error{EMSGSIZE, "datagram of " + std::to_string(size) + " bytes exceeds the " +
                                   std::to_string(EGRESS_MAX_DATAGRAM) + "-byte limit"};
    if (h.payload_len != size - EGRESS_HEADER_SIZE)
        return Error{EBADMSG, "header says payload is " + std::to_string(h.payload_len) +
                                  " bytes but the datagram carries " +
                                  std::to_string(size - EGRESS_HEADER_SIZE)};
    if (h.flags != 0)
        return Error{EINVAL, "request header flags must be 0, got " + hex16(h.flags)};
    return std::nullopt;
}

Bytes encode_connect(std::uint64_t id, const ConnectRequest& req) {
    Writer w(EGRESS_MSG_CONNECT, 0, id);
    if (req.host.empty()) {
        w.endpoint(EGRESS_FIELD_DEST, req.dest);
    } else {
        std::uint8_t b[EGRESS_MAX_HOST_NAME + 2];
        const auto n = std::min<std::size_t>(req.host.size(), EGRESS_MAX_HOST_NAME);
        std::memcpy(b, req.host.data(), n);
        b[n] = static_cast<std::uint8_t>(req.dest.port);
        b[n + 1] = static_cast<std::uint8_t>(req.dest.port >> 8);
        w.field(EGRESS_FIELD_DEST_HOST, b, n + 2);
    }
    if (req.timeout_ms) w.u32(EGRESS_FIELD_TIMEOUT_MS, req.timeout_ms);
    if (req.flags) w.u32(EGRESS_FIELD_CONNECT_FLAGS, req.flags);
    if (!req.pool.empty()) w.text(EGRESS_FIELD_POOL, req.pool, EGRESS_MAX_NAME);
    // TCP is the default: a TCP request's bytes are those of a daemon that predates TRANSPORT.
    if (req.transport != Transport::tcp) w.u32(EGRESS_FIELD_TRANSPORT, static_cast<std::uint32_t>(req.transport));
    return w.finish();
}

Result<ConnectRequest> decode_connect(ByteView payload) {
    ConnectRequest req;
    FieldReader r(payload);
    Field f;
    while (r.next(f)) {
        switch (f.type) {
        case EGRESS_FIELD_DEST:
            if (auto ep = read_endpoint(r, f, "destination")) req.dest = *ep;
            break;
        case EGRESS_FIELD_DEST_HOST: {
            const auto n = f.value.size();
            if (n < 3 || n > EGRESS_MAX_HOST_NAME + 2) {
                r.fail("field 0x0002 (destination host) must be 3-" + std::to_string(EGRESS_MAX_HOST_NAME + 2) +
                       " bytes (a name of 1-" + std::to_string(EGRESS_MAX_HOST_NAME) + " bytes, then the port), got " +
                       std::to_string(n));
                break;
            }
            auto name = normalize_host_name(
                std::string_view(reinterpret_cast<const char*>(f.value.data()), n - 2));
            if (!name) return name.error();
            req.host = std::move(*name);
            req.dest.port = static_cast<std::uint16_t>(get_le<2>(f.value, n - 2));
            break;
        }
        case EGRESS_FIELD_TIMEOUT_MS:
            if (want_len(r, f, 4, "timeout_ms")) req.timeout_ms = static_cast<std::uint32_t>(get_le<4>(f.value, 0));
            break;
        case EGRESS_FIELD_CONNECT_FLAGS:
            if (want_len(r, f, 4, "connect flags")) {
                req.flags = static_cast<std::uint32_t>(get_le<4>(f.value, 0));
                if (req.flags & ~EGRESS_CONNECT_KNOWN_FLAGS)
                    return Error{EINVAL, "unknown connect flag bits " +
                                             std::to_string(req.flags & ~EGRESS_CONNECT_KNOWN_FLAGS)};
            }
            break;
        case EGRESS_FIELD_POOL:
            if (auto s = read_text(r, f, "pool", 1, EGRESS_MAX_NAME)) req.pool = *s;
            break;
        case EGRESS_FIELD_TRANSPORT:
            if (want_len(r, f, 4, "transport")) {
                const auto t = get_le<4>(f.value, 0);
                if (t != EGRESS_TRANSPORT_TCP && t != EGRESS_TRANSPORT_UDP)
                    return Error{EPROTONOSUPPORT, "transport " + std::to_string(t) +
                                                      " is not supported: 6 (TCP) or 17 (UDP)"};
                req.transport = static_cast<Transport>(t);
            }
            break;
        default:
            r.fail("field " + hex16(f.type) + " is not valid in a CONNECT request");
        }
    }
    if (r.error()) return *r.error();
    const bool by_name = r.seen(EGRESS_FIELD_DEST_HOST);
    if (!r.seen(EGRESS_FIELD_DEST) && !by_name)
        return Error{EBADMSG, "CONNECT request has no destination (field 0x0001 or 0x0002)"};
    if (r.seen(EGRESS_FIELD_DEST) && by_name)
        return Error{EINVAL, "a CONNECT names an address (field 0x0001) or a host name (field 0x0002), not both"};
    if (req.dest.port == 0) return Error{EINVAL, "destination port 0 is not connectable"};
    if (by_name && (req.flags & EGRESS_CONNECT_ADOPT))
        return Error{EINVAL, "ADOPT connects a program's socket to the address its connect() named: it takes "
                             "field 0x0001, not a host name"};
    if (req.transport == Transport::udp && (req.flags & EGRESS_CONNECT_TCP_NODELAY))
        return Error{EINVAL, "TCP_NODELAY is a TCP option: it does not apply to a UDP connect"};
    return req;
}

Bytes encode_status(std::uint64_t id) { return Writer(EGRESS_MSG_STATUS, 0, id).finish(); }

std::optional<Error> decode_status(ByteView payload) {
    if (!payload.empty())
        return Error{EBADMSG, "a STATUS request carries no fields, got " + std::to_string(payload.size()) + " bytes"};
    return std::nullopt;
}

Bytes encode_status_reply(std::uint64_t id, const StatusReply& rep) {
    Writer w(EGRESS_MSG_STATUS_REPLY, 0, id);
    w.u32(EGRESS_FIELD_STATUS, rep.status);
    if (rep.status != 0) {
        w.text(EGRESS_FIELD_ERROR_NAME, rep.error_name.empty() ? errno_name(static_cast<int>(rep.status)) : rep.error_name,
               EGRESS_MAX_NAME);
        w.text(EGRESS_FIELD_MESSAGE, rep.message, EGRESS_MAX_TEXT);
    }
    constexpr std::size_t kChunk = 65535;
    for (std::size_t off = 0; off < rep.json.size(); off += kChunk) {
        const auto n = std::min(kChunk, rep.json.size() - off);
        w.field(EGRESS_FIELD_JSON, reinterpret_cast<const std::uint8_t*>(rep.json.data()) + off, n);
    }
    return w.finish();
}

namespace {

void write_connect_reply(Writer& w, const ConnectReply& rep) {
    w.u32(EGRESS_FIELD_STATUS, rep.status);
    if (rep.status != 0) {
        w.text(EGRESS_FIELD_ERROR_NAME, rep.error_name.empty() ? errno_name(static_cast<int>(rep.status)) : rep.error_name,
               EGRESS_MAX_NAME);
        w.text(EGRESS_FIELD_MESSAGE, rep.message, EGRESS_MAX_TEXT);
    }
    if (rep.local) w.endpoint(EGRESS_FIELD_LOCAL, *rep.local);
    if (rep.remote) w.endpoint(EGRESS_FIELD_REMOTE, *rep.remote);
    if (!rep.pool.empty()) w.text(EGRESS_FIELD_POOL, rep.pool, EGRESS_MAX_NAME);
    if (rep.attempts) w.u32(EGRESS_FIELD_ATTEMPTS, rep.attempts);
    if (rep.connect_us) w.u64(EGRESS_FIELD_CONNECT_US, rep.connect_us);
    if (rep.timeout_ms) w.u32(EGRESS_FIELD_TIMEOUT_MS, rep.timeout_ms);
    if (rep.addresses) w.u32(EGRESS_FIELD_ADDRESSES, rep.addresses);
    if (rep.resolve_us) w.u64(EGRESS_FIELD_RESOLVE_US, rep.resolve_us);
}

}  // namespace

Bytes encode_connect_reply(std::uint64_t id, const ConnectReply& rep, bool fd_attached) {
    Writer w(EGRESS_MSG_CONNECT_REPLY, fd_attached ? EGRESS_HDR_FLAG_FD_ATTACHED : 0, id);
    write_connect_reply(w, rep);
    return w.finish();
}

void encode_connect_reply(Bytes& out, std::uint64_t id, const ConnectReply& rep, bool fd_attached) {
    Writer w(EGRESS_MSG_CONNECT_REPLY, fd_attached ? EGRESS_HDR_FLAG_FD_ATTACHED : 0, id);
    write_connect_reply(w, rep);
    w.finish_into(out);
}

Bytes encode_error_reply(std::uint64_t id, const ErrorReply& rep) {
    Writer w(EGRESS_MSG_ERROR_REPLY, 0, id);
    w.u32(EGRESS_FIELD_STATUS, rep.status);
    w.text(EGRESS_FIELD_ERROR_NAME, rep.error_name.empty() ? errno_name(static_cast<int>(rep.status)) : rep.error_name,
           EGRESS_MAX_NAME);
    w.text(EGRESS_FIELD_MESSAGE, rep.message, EGRESS_MAX_TEXT);
    return w.finish();
}

Result<Reply> decode_reply(ByteView d) {
    const auto h = read_header(d);
    if (!h) return Error{EBADMSG, "reply shorter than a header or with a wrong magic"};
    if (h->version != EGRESS_VERSION)
        return Error{EPROTONOSUPPORT, "reply has protocol version " + std::to_string(h->version)};
    if (h->payload_len != d.size() - EGRESS_HEADER_SIZE)
        return Error{EBADMSG, "reply payload length does not match the datagram"};
    FieldReader r(d.subspan(EGRESS_HEADER_SIZE), h->type == EGRESS_MSG_STATUS_REPLY ? EGRESS_FIELD_JSON : 0xFFFF);
    Field f;
    if (h->type == EGRESS_MSG_ERROR_REPLY) {
        ErrorReply e;
        while (r.next(f))
            if (!read_status_field(r, f, e)) r.fail("field " + hex16(f.type) + " is not valid in an ERROR reply");
        if (r.error()) return *r.error();
        if (!r.seen(EGRESS_FIELD_STATUS) || e.status == 0) return Error{EBADMSG, "ERROR reply without a status"};
        if (auto bad = check_error_fields(r, e.status, "ERROR reply")) return *bad;
        return Reply{*h, e};
    }
    if (h->type == EGRESS_MSG_STATUS_REPLY) {
        StatusReply st;
        while (r.next(f)) {
            if (f.type == EGRESS_FIELD_JSON) st.json.append(f.value.begin(), f.value.end());
            else if (!read_status_field(r, f, st)) r.fail("field " + hex16(f.type) + " is not valid in a STATUS reply");
        }
        if (r.error()) return *r.error();
        if (!r.seen(EGRESS_FIELD_STATUS)) return Error{EBADMSG, "STATUS reply without a status"};
        if (auto bad = check_error_fields(r, st.status, "STATUS reply")) return *bad;
        return Reply{*h, st};
    }
    if (h->type != EGRESS_MSG_CONNECT_REPLY)
        return Error{EBADMSG, "unknown reply type " + std::to_string(h->type)};
    ConnectReply c;
    while (r.next(f)) {
        if (read_status_field(r, f, c)) continue;
        switch (f.type) {
        case EGRESS_FIELD_LOCAL:
            c.local = read_endpoint(r, f, "local");
            break;
        case EGRESS_FIELD_REMOTE:
            c.remote = read_endpoint(r, f, "remote");
            break;
        case EGRESS_FIELD_POOL:
            if (auto s = read_text(r, f, "pool", 1, EGRESS_MAX_NAME)) c.pool = *s;
            break;
        case EGRESS_FIELD_ATTEMPTS:
            if (want_len(r, f, 4, "attempts")) c.attempts = static_cast<std::uint32_t>(get_le<4>(f.value, 0));
            break;
        case EGRESS_FIELD_CONNECT_US:
            if (want_len(r, f, 8, "connect_us")) c.connect_us = get_le<8>(f.value, 0);
            break;
        case EGRESS_FIELD_TIMEOUT_MS:
            if (want_len(r, f, 4, "timeout_ms")) c.timeout_ms = static_cast<std::uint32_t>(get_le<4>(f.value, 0));
            break;
        case EGRESS_FIELD_ADDRESSES:
            if (want_len(r, f, 4, "addresses")) c.addresses = static_cast<std::uint32_t>(get_le<4>(f.value, 0));
            break;
        case EGRESS_FIELD_RESOLVE_US:
            if (want_len(r, f, 8, "resolve_us")) c.resolve_us = get_le<8>(f.value, 0);
            break;
        default:
            r.fail("field " + hex16(f.type) + " is not valid in a CONNECT reply");
        }
    }
    if (r.error()) return *r.error();
    if (!r.seen(EGRESS_FIELD_STATUS)) return Error{EBADMSG, "CONNECT reply without a status"};
    if (auto bad = check_error_fields(r, c.status, "CONNECT reply")) return *bad;
    return Reply{*h, c};
}

}  // namespace egress::proto
