// libFuzzer target: one request datagram, decoded the way egressd's session
// does (frame, check the header, decode CONNECT or STATUS).
// Invariants, beyond not crashing:
// - every refusal carries an errno PROTOCOL.md section 9 documents for it;
// - an accepted CONNECT obeys section 5 (listed fields, each once, DEST set,
//   port not 0, known flags, POOL 1-64 bytes without NUL); DEST or DEST_HOST,
//   never both, the host name valid and normalized (a fixpoint of
//   normalize_host_name), never with ADOPT;
// - it re-encodes, no larger, into a request that passes the same checks and
//   decodes to the same value, and encoding that again gives the same bytes;
// - the only STATUS request accepted is the empty one the encoder writes.
#include "hostname.hpp"
#include "invariant.hpp"

namespace {

using namespace egress;
using egress::fuzz::require;
using egress::fuzz::require_error;

bool same(const proto::ConnectRequest& a, const proto::ConnectRequest& b) {
    return a.dest == b.dest && a.host == b.host && a.timeout_ms == b.timeout_ms && a.flags == b.flags &&
           a.pool == b.pool && a.transport == b.transport;
}

void check_connect(const proto::Header& h, proto::ByteView datagram) {
    const auto payload = datagram.subspan(EGRESS_HEADER_SIZE);
    const auto req = proto::decode_connect(payload);
    if (!req) return require_error(req.error(), {EBADMSG, EINVAL, EPROTONOSUPPORT}, "decode_connect");
    const bool by_name = !req->host.empty();
    fuzz::require_fields(payload,
                         {EGRESS_FIELD_DEST, EGRESS_FIELD_DEST_HOST, EGRESS_FIELD_TIMEOUT_MS, EGRESS_FIELD_CONNECT_FLAGS,
                          EGRESS_FIELD_POOL, EGRESS_FIELD_TRANSPORT},
                         {by_name ? std::uint16_t{EGRESS_FIELD_DEST_HOST} : std::uint16_t{EGRESS_FIELD_DEST}}, std::nullopt,
                         "CONNECT");
    if (by_name) {
        const auto again = normalize_host_name(req->host);
        require(again.ok() && *again == req->host, "CONNECT accepted with a host name that is not normalized");
        require(!(req->flags & EGRESS_CONNECT_ADOPT), "CONNECT accepted with a host name and ADOPT");
        require(req->dest == Endpoint{false, {}, req->dest.port}, "a host-name CONNECT carries an address");
    }
    require(req->transport == Transport::tcp || req->transport == Transport::udp, "CONNECT accepted with a transport "
                                                                                  "other than TCP or UDP");
    require(!(req->transport == Transport::udp && (req->flags & EGRESS_CONNECT_TCP_NODELAY)),
            "UDP CONNECT accepted with TCP_NODELAY");
    require(req->dest.port != 0, "CONNECT accepted with destination port 0");
    require((req->flags & ~EGRESS_CONNECT_KNOWN_FLAGS) == 0, "CONNECT accepted with unknown flags");
    require(req->pool.size() <= EGRESS_MAX_NAME && req->pool.find('\0') == std::string::npos,
            "CONNECT accepted with a pool name of " + std::to_string(req->pool.size()) + " bytes or with NUL");
    if (!req->dest.v6)
        for (std::size_t i = 4; i < req->dest.addr.size(); ++i)
            require(req->dest.addr[i] == 0, "IPv4 destination with bytes past its address");

    const auto again = proto::encode_connect(h.request_id, *req);
    require(again.size() <= datagram.size(), "re-encoded CONNECT grew from " + std::to_string(datagram.size()) +
                                                 " to " + std::to_string(again.size()) + " bytes");
    const auto h2 = proto::read_header(again);
    require(h2 && h2->type == EGRESS_MSG_CONNECT && h2->request_id == h.request_id, "re-encoded CONNECT header");
    require(!proto::check_request_header(*h2, again.size()), "re-encoded CONNECT fails the header check");
    const auto req2 = proto::decode_connect(proto::ByteView(again).subspan(EGRESS_HEADER_SIZE));
    require(req2.ok(), "re-encoded CONNECT does not decode: " + (req2 ? std::string() : req2.error().message));
    require(same(*req, *req2), "re-encoded CONNECT decodes to a different request");
    require(proto::encode_connect(h.request_id, *req2) == again, "CONNECT encoding is not a fixpoint");
}

void check_status(const proto::Header& h, proto::ByteView datagram) {
    const auto e = proto::decode_status(datagram.subspan(EGRESS_HEADER_SIZE));
    if (e) {
        require(datagram.size() > EGRESS_HEADER_SIZE, "empty STATUS request refused");
        return require_error(*e, {EBADMSG}, "decode_status");
    }
    const auto canonical = proto::encode_status(h.request_id);
    require(proto::Bytes(datagram.begin(), datagram.end()) == canonical,
            "accepted STATUS request differs from the encoder's");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const proto::ByteView d(data, size);
    const auto h = proto::read_header(d);
    if (!h) {
        require(size < EGRESS_HEADER_SIZE ||
                    (data[0] | data[1] << 8 | data[2] << 16 | static_cast<std::uint32_t>(data[3]) << 24) != EGRESS_MAGIC,
                "a datagram with a header and the magic was not framed");
        return 0;
    }
    require(size >= EGRESS_HEADER_SIZE, "framed a datagram shorter than a header");
    if (const auto e = proto::check_request_header(*h, size)) {
        require_error(*e, {EPROTONOSUPPORT, EMSGSIZE, EBADMSG, EINVAL}, "check_request_header");
        return 0;
    }
    require(h->version == EGRESS_VERSION && h->flags == 0 && size <= EGRESS_MAX_DATAGRAM &&
                h->payload_len == size - EGRESS_HEADER_SIZE,
            "header check passed a header PROTOCOL.md section 8 refuses");
    if (h->type == EGRESS_MSG_CONNECT) check_connect(*h, d);
    if (h->type == EGRESS_MSG_STATUS) check_status(*h, d);
    return 0;
}
