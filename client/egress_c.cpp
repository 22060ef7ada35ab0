// The C ABI over the C++ client.
#include <cerrno>
#include <cstring>
#include <new>

#include "egress.h"
#include "egress_client.hpp"
#include "egress_proto.h"

struct egress_client {
    egress::Client client;
};

namespace {

using namespace egress;

template <std::size_t N>
void copy(char (&dst)[N], const std::string& src) {
    const auto n = src.size() < N - 1 ? src.size() : N - 1;
    std::memcpy(dst, src.data(), n);
    dst[n] = '\0';
}

void fill_error(egress_reply* out, const Error& e) {
    if (!out) return;
    *out = egress_reply{};
    out->status = e.code ? e.code : EIO;
    copy(out->error_name, errno_name(out->status));
    copy(out->message, e.message);
}

int fill(egress_reply* out, Result<Connected>& r) {
    if (!r) {
        fill_error(out, r.error());
        return -1;
    }
    if (out) {
        *out = egress_reply{};
        const auto& m = r->meta;
        if (m.local) copy(out->local, endpoint_string(*m.local));
        if (m.remote) copy(out->remote, endpoint_string(*m.remote));
        copy(out->pool, m.pool);
        out->attempts = m.attempts;
        out->connect_us = m.connect_us;
    }
    return r->fd.release();
}

// An address literal, or (`names`) a host name for egressd to resolve.
Result<Destination> destination(const char* address, std::uint16_t port, bool names = true) {
    if (!address) return Error{EINVAL, "no address given"};
    if (port == 0) return Error{EINVAL, "port 0 is not connectable"};
    Destination d;
    d.port = port;
    if (auto ep = parse_address(address, port)) {
        d.address = *ep;
        return d;
    }
    if (!names) return Error{EINVAL, std::string("'") + address + "' is not an IP address"};
    auto name = normalize_host_name(address);
    if (!name) return name.error();
    d.host = std::move(*name);
    return d;
}

ConnectOptions options(const egress_connect_options* o) {
    ConnectOptions c;
    if (!o) return c;
    c.timeout_ms = o->timeout_ms;
    c.nodelay = o->flags & EGRESS_CONNECT_TCP_NODELAY;
    c.blocking = o->flags & EGRESS_CONNECT_BLOCKING;
    if (o->flags & EGRESS_OPTION_UDP) c.transport = Transport::udp;
    if (o->pool) c.pool = o->pool;
    return c;
}

}  // namespace

extern "C" {

egress_client* egress_open(const char* path, egress_reply* error) {
    auto c = Client::open(path ? path : default_client_socket_path());
    if (!c) {
        fill_error(error, c.error());
        return nullptr;
    }
    return new (std::nothrow) egress_client{std::move(*c)};
}

void egress_close(egress_client* client) { delete client; }

int egress_connect(egress_client* client, const char* address, uint16_t port, const egress_connect_options* o,
                   egress_reply* out) {
    auto dest = destination(address, port);
    if (!dest) {
        fill_error(out, dest.error());
        return -1;
    }
    auto r = client->client.connect(*dest, options(o));
    return fill(out, r);
}

int egress_submit(egress_client* client, const char* address, uint16_t port, const egress_connect_options* o,
                  uint64_t* request_id, egress_reply* error) {
    auto dest = destination(address, port);
    if (!dest) {
        fill_error(error, dest.error());
        return -1;
    }
    auto id = client->client.submit(*dest, options(o));
    if (!id) {
        fill_error(error, id.error());
        return -1;
    }
    if (request_id) *request_id = *id;
    return 0;
}

int egress_next(egress_client* client, uint64_t* request_id, egress_reply* out) {
    auto c = client->client.next();
    if (!c) {
        fill_error(out, c.error());
        return -1;
    }
    if (request_id) *request_id = c->request_id;
    return fill(out, c->result);
}

int egress_adopt(egress_client* client, int fd, const char* address, uint16_t port, const egress_connect_options* o,
                 egress_reply* out) {
    auto dest = destination(address, port, false);
    if (!dest) {
        fill_error(out, dest.error());
        return -1;
    }
    auto r = client->client.adopt(fd, *dest->address, options(o));
    if (!r) {
        fill_error(out, r.error());
        return -1;
    }
    if (out) {
        *out = egress_reply{};
        out->status = static_cast<int>(r->status);
        copy(out->error_name, r->error_name);
        copy(out->message, r->message);
        if (r->local) copy(out->local, endpoint_string(*r->local));
        if (r->remote) copy(out->remote, endpoint_string(*r->remote));
        copy(out->pool, r->pool);
        out->attempts = r->attempts;
        out->connect_us = r->connect_us;
    }
    return r->status == 0 ? 0 : -1;
}

int egress_fd(const egress_client* client) { return client->client.native_handle(); }

}  // extern "C"
