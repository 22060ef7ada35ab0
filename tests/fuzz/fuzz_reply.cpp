// libFuzzer target: one reply datagram, decoded the way the client library
// does (decode_reply: CONNECT_REPLY, STATUS_REPLY, ERROR_REPLY).
// Invariants, beyond not crashing:
// - a refusal is EBADMSG or EPROTONOSUPPORT with a reason;
// - an accepted reply is version 1, its payload_len matches, its body is the
//   one its type names, and it obeys PROTOCOL.md section 5: listed fields,
//   each once (JSON may repeat), STATUS present, ERROR_NAME and MESSAGE
//   present exactly when status is not 0 (always, in an ERROR_REPLY);
// - it re-encodes into a reply that decodes to the same value, and encoding
//   that again gives the same bytes.
#include "invariant.hpp"

namespace {

using namespace egress;
using egress::fuzz::require;

bool same(const proto::ConnectReply& a, const proto::ConnectReply& b) {
    return a.status == b.status && a.error_name == b.error_name && a.message == b.message && a.local == b.local &&
           a.remote == b.remote && a.pool == b.pool && a.attempts == b.attempts && a.connect_us == b.connect_us &&
           a.timeout_ms == b.timeout_ms && a.addresses == b.addresses && a.resolve_us == b.resolve_us;
}
bool same(const proto::StatusReply& a, const proto::StatusReply& b) {
    return a.status == b.status && a.error_name == b.error_name && a.message == b.message && a.json == b.json;
}
bool same(const proto::ErrorReply& a, const proto::ErrorReply& b) {
    return a.status == b.status && a.error_name == b.error_name && a.message == b.message;
}

proto::Bytes encode(const proto::Reply& r) {
    const auto id = r.header.request_id;
    if (const auto* c = std::get_if<proto::ConnectReply>(&r.body))
        return proto::encode_connect_reply(id, *c, r.header.flags & EGRESS_HDR_FLAG_FD_ATTACHED);
    if (const auto* s = std::get_if<proto::StatusReply>(&r.body)) return proto::encode_status_reply(id, *s);
    return proto::encode_error_reply(id, std::get<proto::ErrorReply>(r.body));
}

// The body's type must be the one the header names, and survive a round trip.
template <class Body>
void check_round_trip(const proto::Reply& r, std::uint8_t type, const char* what) {
    require(r.header.type == type, std::string(what) + " decoded from a header of type " + std::to_string(r.header.type));
    const auto bytes = encode(r);
    const auto again = proto::decode_reply(bytes);
    require(again.ok(), std::string("re-encoded ") + what + " does not decode: " + (again ? "" : again.error().message));
    require(again->header.type == type && again->header.request_id == r.header.request_id,
            std::string("re-encoded ") + what + " changed its header");
    require(same(std::get<Body>(r.body), std::get<Body>(again->body)),
            std::string("re-encoded ") + what + " decodes to a different value");
    require(encode(*again) == bytes, std::string(what) + " encoding is not a fixpoint");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const proto::ByteView d(data, size);
    const auto r = proto::decode_reply(d);
    if (!r) {
        fuzz::require_error(r.error(), {EBADMSG, EPROTONOSUPPORT}, "decode_reply");
        return 0;
    }
    require(size >= EGRESS_HEADER_SIZE && r->header.version == EGRESS_VERSION &&
                r->header.payload_len == size - EGRESS_HEADER_SIZE,
            "accepted a reply whose header PROTOCOL.md refuses");
    const auto payload = d.subspan(EGRESS_HEADER_SIZE);
    if (const auto* c = std::get_if<proto::ConnectReply>(&r->body)) {
        fuzz::require_fields(payload,
                             {EGRESS_FIELD_STATUS, EGRESS_FIELD_ERROR_NAME, EGRESS_FIELD_MESSAGE, EGRESS_FIELD_LOCAL,
                              EGRESS_FIELD_REMOTE, EGRESS_FIELD_POOL, EGRESS_FIELD_ATTEMPTS, EGRESS_FIELD_CONNECT_US,
                              EGRESS_FIELD_TIMEOUT_MS, EGRESS_FIELD_ADDRESSES, EGRESS_FIELD_RESOLVE_US},
                             {EGRESS_FIELD_STATUS}, c->status != 0, "CONNECT_REPLY");
        check_round_trip<proto::ConnectReply>(*r, EGRESS_MSG_CONNECT_REPLY, "CONNECT_REPLY");
    } else if (const auto* s = std::get_if<proto::StatusReply>(&r->body)) {
        fuzz::require_fields(payload, {EGRESS_FIELD_STATUS, EGRESS_FIELD_ERROR_NAME, EGRESS_FIELD_MESSAGE, EGRESS_FIELD_JSON},
                             {EGRESS_FIELD_STATUS}, s->status != 0, "STATUS_REPLY");
        check_round_trip<proto::StatusReply>(*r, EGRESS_MSG_STATUS_REPLY, "STATUS_REPLY");
    } else {
        const auto& e = std::get<proto::ErrorReply>(r->body);
        require(e.status != 0, "ERROR_REPLY accepted with status 0");
        fuzz::require_fields(payload, {EGRESS_FIELD_STATUS, EGRESS_FIELD_ERROR_NAME, EGRESS_FIELD_MESSAGE},
                             {EGRESS_FIELD_STATUS}, true, "ERROR_REPLY");
        check_round_trip<proto::ErrorReply>(*r, EGRESS_MSG_ERROR_REPLY, "ERROR_REPLY");
    }
    return 0;
}
