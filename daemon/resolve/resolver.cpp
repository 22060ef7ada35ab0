#include "resolver.hpp"

#include <ares.h>
#include <arpa/inet.h>
#include <poll.h>

#include <stdexcept>

#include "sockaddr.hpp"

namespace egress {

const char* to_string(LookupStatus s) {
    switch (s) {
    case LookupStatus::ok: return "ok";
    case LookupStatus::no_name: return "no_name";
    case LookupStatus::no_data: return "no_data";
    case LookupStatus::server_failure: return "server_failure";
    case LookupStatus::timeout: return "timeout";
    case LookupStatus::failed: return "failed";
    }
    return "failed";
}

namespace {

LookupStatus status_of(int ares_status) {
    switch (ares_status) {
    case ARES_SUCCESS: return LookupStatus::ok;
    case ARES_ENOTFOUND: return LookupStatus::no_name;
    case ARES_ENODATA: return LookupStatus::no_data;
    case ARES_ESERVFAIL:
    case ARES_EREFUSED:
    case ARES_EFORMERR:
    case ARES_EBADRESP:
    case ARES_ECONNREFUSED:
    case ARES_ENOTIMP:
        return LookupStatus::server_failure;
    case ARES_ETIMEOUT: return LookupStatus::timeout;
    default: return LookupStatus::failed;
    }
}

std::string server_list(const std::vector<Endpoint>& servers) {
    std::string csv;
    for (const auto& s : servers) csv += (csv.empty() ? "" : ",") + endpoint_string(s);
    return csv;
}

}  // namespace

void init_resolver_library() {
    if (const int rc = ares_library_init(ARES_LIB_INIT_ALL); rc != ARES_SUCCESS)
        throw std::runtime_error(std::string("cannot initialize c-ares: ") + ares_strerror(rc));
}

std::string check_resolver_config(const DnsConfig& config) {
    try {
        asio::io_context scratch;
        Resolver probe(scratch, config);
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

// One c-ares socket, watched by the loop for as long as c-ares wants it.
struct Resolver::Watch {
    Watch(asio::io_context& io, int f) : sd(io), fd(f) {}
    asio::posix::stream_descriptor sd;  // not the owner: c-ares closes the socket
    int fd;
    bool want_read = false, want_write = false;
    bool reading = false, writing = false;  // a wait is armed
    bool gone = false;                      // c-ares is done with the socket
};

struct Resolver::Query {
    Resolver* owner;
    std::string name;
    bool v6;
    Done done;
};

Resolver::Resolver(asio::io_context& io, const DnsConfig& config)
    : io_(io), config_(config), timer_(io), cache_(config.cache_entries, std::chrono::seconds(config.cache_max_ttl_s)) {
    ares_options o{};
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS;
    o.sock_state_cb = [](void* self, ares_socket_t fd, int r, int w) { on_socket_state(self, fd, r, w); };
    o.sock_state_cb_data = this;
    std::string lookups = config.hosts_file ? "fb" : "b";
    o.lookups = lookups.data();
    if (config.timeout_ms) {
        mask |= ARES_OPT_TIMEOUTMS;
        o.timeout = static_cast<int>(*config.timeout_ms);
    }
    if (config.tries) {
        mask |= ARES_OPT_TRIES;
        o.tries = static_cast<int>(*config.tries);
    }
    if (config.ndots) {
        mask |= ARES_OPT_NDOTS;
        o.ndots = static_cast<int>(*config.ndots);
    }
    std::vector<char*> domains;
    if (config.search) {
        for (const auto& d : *config.search) domains.push_back(const_cast<char*>(d.c_str()));
        mask |= ARES_OPT_DOMAINS;
        o.domains = domains.data();
        o.ndomains = static_cast<int>(domains.size());
    }
    if (const int rc = ares_init_options(&channel_, &o, mask); rc != ARES_SUCCESS)
        throw std::runtime_error(std::string("cannot set up the resolver (c-ares): ") + ares_strerror(rc));
    if (!config.servers.empty()) {
        const auto csv = server_list(config.servers);
        if (const int rc = ares_set_servers_ports_csv(channel_, csv.c_str()); rc != ARES_SUCCESS) {
            ares_destroy(channel_);
            throw std::runtime_error("cannot use dns.servers " + csv + ": " + ares_strerror(rc));
        }
    }
}

Resolver::~Resolver() {
    // c-ares calls every pending query back with ARES_EDESTRUCTION (dropped
    // in on_answer) and reports each socket closed (released below).
    ares_destroy(channel_);
    for (auto& [fd, w] : watches_) {
        w->gone = true;
        w->sd.release();
    }
}

void Resolver::lookup(const std::string& name, bool v6, Done done) {
    if (auto hit = cache_.find(name, v6, std::chrono::steady_clock::now())) {
        LookupAnswer a;
        a.status = !hit->addresses.empty() ? LookupStatus::ok
                   : hit->no_name          ? LookupStatus::no_name
                                           : LookupStatus::no_data;
        a.addresses = std::move(hit->addresses);
        a.cached = true;
        asio::post(io_, [done = std::move(done), a = std::move(a)]() mutable { done(std::move(a)); });
        return;
    }
    auto* q = new Query{this, name, v6, std::move(done)};
    ++pending_;
    ares_addrinfo_hints hints{};
    hints.ai_family = v6 ? AF_INET6 : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    // In the answer's order: RFC 6724 sorting would cost a socket per address.
    hints.ai_flags = ARES_AI_NOSORT;
    in_lookup_ = true;
    ares_getaddrinfo(channel_, name.c_str(), nullptr, &hints, &Resolver::on_answer, q);
    in_lookup_ = false;
    reschedule();
}

void Resolver::on_answer(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
    auto* q = static_cast<Query*>(arg);
    if (status == ARES_EDESTRUCTION) {  // the channel is going: nobody waits
        if (result) ares_freeaddrinfo(result);
        delete q;
        return;
    }
    LookupAnswer a;
    a.status = status_of(status);
    std::uint32_t ttl = UINT32_MAX;
    if (status == ARES_SUCCESS && result) {
        for (auto* n = result->nodes; n; n = n->ai_next) {
            auto ep = from_sockaddr(n->ai_addr, n->ai_addrlen);
            if (!ep || ep->v6 != q->v6) continue;
            ep->port = 0;
            if (std::find(a.addresses.begin(), a.addresses.end(), *ep) == a.addresses.end()) a.addresses.push_back(*ep);
            ttl = std::min<std::uint32_t>(ttl, static_cast<std::uint32_t>(std::max(n->ai_ttl, 0)));
        }
        if (a.addresses.empty()) a.status = LookupStatus::no_data;
    }
    if (result) ares_freeaddrinfo(result);
    if (a.status != LookupStatus::ok) a.detail = ares_strerror(status);
    auto* self = q->owner;
    const auto now = std::chrono::steady_clock::now();
    if (a.status == LookupStatus::ok && ttl != UINT32_MAX)
        self->cache_.store(q->name, q->v6, {a.addresses, false}, std::chrono::seconds(ttl), now);
    // c-ares 1.18 does not give a negative answer's TTL (its SOA's minimum):
    // dns.negative_ttl_s stands for it.
    if (a.status == LookupStatus::no_name || a.status == LookupStatus::no_data)
        self->cache_.store(q->name, q->v6, {{}, a.status == LookupStatus::no_name},
                           std::chrono::seconds(self->config_.negative_ttl_s), now);
    self->finish(q, std::move(a));
}

void Resolver::finish(Query* q, LookupAnswer answer) {
    --pending_;
    auto done = std::move(q->done);
    delete q;
    // An answer inside ares_getaddrinfo (the hosts file, a name c-ares
    // refuses) waits for the loop: lookup() never calls back itself.
    if (in_lookup_) {
        asio::post(io_, [done = std::move(done), a = std::move(answer)]() mutable { done(std::move(a)); });
        return;
    }
    done(std::move(answer));
}

void Resolver::on_socket_state(void* self, int fd, int readable, int writable) {
    static_cast<Resolver*>(self)->socket_state(fd, readable != 0, writable != 0);
}

void Resolver::socket_state(int fd, bool readable, bool writable) {
    auto it = watches_.find(fd);
    if (!readable && !writable) {
        // c-ares closes the socket next: stop watching it first.
        if (it == watches_.end()) return;
        it->second->gone = true;
        it->second->sd.release();  // waits end with operation_aborted
        watches_.erase(it);
        return;
    }
    if (it == watches_.end()) {
        auto w = std::make_shared<Watch>(io_, fd);
        error_code ec;
        w->sd.assign(fd, ec);
        // Unwatched, the query times out through c-ares's timer instead.
        if (ec) return;
        it = watches_.emplace(fd, std::move(w)).first;
    }
    it->second->want_read = readable;
    it->second->want_write = writable;
    arm(it->second);
}

void Resolver::arm(const std::shared_ptr<Watch>& w) {
    if (w->gone) return;
    if (w->want_read && !w->reading) {
        w->reading = true;
        w->sd.async_wait(asio::posix::stream_descriptor::wait_read, [this, w](const error_code& ec) {
            w->reading = false;
            if (!ec && !w->gone) on_ready(w, true);
        });
    }
    if (w->want_write && !w->writing) {
        w->writing = true;
        w->sd.async_wait(asio::posix::stream_descriptor::wait_write, [this, w](const error_code& ec) {
            w->writing = false;
            if (!ec && !w->gone) on_ready(w, false);
        });
    }
}

void Resolver::on_ready(const std::shared_ptr<Watch>& w, bool read) {
    // The loop's reactor is edge-triggered: c-ares reads UDP until EAGAIN,
    // but a TCP answer one read at a time, so read while data waits.
    for (int rounds = 0; rounds < 64; ++rounds) {
        ares_process_fd(channel_, read ? w->fd : ARES_SOCKET_BAD, read ? ARES_SOCKET_BAD : w->fd);
        if (w->gone || !read) break;
        pollfd p{w->fd, POLLIN, 0};
        if (::poll(&p, 1, 0) != 1 || !(p.revents & POLLIN)) break;
    }
    if (!w->gone) arm(w);
    reschedule();
}

void Resolver::reschedule() {
    timeval tv{};
    if (!ares_timeout(channel_, nullptr, &tv)) {
        timer_.cancel();
        return;
    }
    timer_.expires_after(std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec));
    timer_.async_wait([this](const error_code& ec) {
        if (ec) return;
        ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        reschedule();
    });
}

}  // namespace egress
