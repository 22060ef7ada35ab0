#include "dns_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

namespace egress::test {
namespace {

using Clock = std::chrono::steady_clock;
using Bytes = std::vector<std::uint8_t>;

constexpr std::size_t kHeaderSize = 12;
constexpr std::size_t kMaxReply = 512;        // RFC 1035 4.2.1, without EDNS
constexpr std::size_t kMaxNameWire = 255;     // RFC 1035 2.3.4
constexpr std::size_t kReadBatch = 64;        // datagrams read per wake-up
constexpr std::uint16_t kClassIn = 1;
constexpr std::uint16_t kTypeSoa = 6;
constexpr std::uint32_t kNegativeTtl = 30;    // the SOA's TTL and MINIMUM
constexpr std::uint8_t kNoError = 0, kServFail = 2, kNxDomain = 3, kRefused = 5;

// Owns one file descriptor and closes it when destroyed.
class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    ~UniqueFd() { reset(); }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    int get() const { return fd_; }
    int release() { return std::exchange(fd_, -1); }
    void reset(int fd = -1) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

// The exception constructors throw: names the step, and errno's text if set.
std::runtime_error failure(const std::string& step, int err = errno) {
    std::string what = "DnsServer: " + step;
    if (err != 0) what += std::string(": ") + std::strerror(err);
    return std::runtime_error(what);
}

// The key a name is stored and looked up under: ASCII lower case, without
// one final dot ("" is the root).
std::string normalise(std::string_view name) {
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    std::string key(name);
    for (char& c : key)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return key;
}

// A record set in wire form: address bytes in network order.
struct Records {
    std::vector<std::array<std::uint8_t, 4>> a;
    std::vector<std::array<std::uint8_t, 16>> aaaa;
    std::uint32_t ttl = 0;
};

// The address bytes of `literal` in family `af` (N = 4 or 16); aborts with a
// message naming `name` if it is not a literal of that family (a test bug).
template <std::size_t N>
std::array<std::uint8_t, N> address_bytes(int af, const std::string& name, const std::string& literal) {
    std::array<std::uint8_t, N> bytes{};
    if (::inet_pton(af, literal.c_str(), bytes.data()) != 1) {
        std::fprintf(stderr, "DnsServer::set(\"%s\"): \"%s\" is not an IPv%c address\n",
                     name.c_str(), literal.c_str(), af == AF_INET ? '4' : '6');
        std::abort();
    }
    return bytes;
}

Records encode_records(const std::string& name, const DnsRecordSet& set) {
    Records r;
    r.ttl = set.ttl;
    for (const auto& literal : set.a) r.a.push_back(address_bytes<4>(AF_INET, name, literal));
    for (const auto& literal : set.aaaa) r.aaaa.push_back(address_bytes<16>(AF_INET6, name, literal));
    return r;
}

std::uint16_t read_u16(std::span<const std::uint8_t> d, std::size_t at) {
    return static_cast<std::uint16_t>(d[at] << 8 | d[at + 1]);
}

// The question name starting at `at`, normalised, and the offset just past
// it; nullopt if the labels run past the datagram, exceed 255 bytes, or use
// compression pointers or extended label types.
std::optional<std::pair<std::string, std::size_t>> parse_name(std::span<const std::uint8_t> d, std::size_t at) {
    std::string name;
    const std::size_t start = at;
    while (at < d.size()) {
        const std::size_t len = d[at];
        if (len == 0) return std::pair(normalise(name), at + 1);
        if ((len & 0xC0) != 0) return std::nullopt;
        if (at + 1 + len > d.size() || at + 1 + len + 1 - start > kMaxNameWire) return std::nullopt;
        if (!name.empty()) name += '.';
        name.append(reinterpret_cast<const char*>(d.data() + at + 1), len);
        at += 1 + len;
    }
    return std::nullopt;
}

// A well-formed query as read off the wire.
struct Query {
    std::uint16_t id = 0;
    bool rd = false;
    std::string name;                     // normalised
    std::uint16_t qtype = 0;
    std::span<const std::uint8_t> question;  // QNAME..QCLASS as received
};

// The query in `d`, or nullopt unless it is a standard query (QR = 0,
// OPCODE = 0) with exactly one question of class IN. Records after the
// question (an OPT, say) are ignored.
std::optional<Query> parse_query(std::span<const std::uint8_t> d) {
    if (d.size() < kHeaderSize) return std::nullopt;
    const std::uint16_t flags = read_u16(d, 2);
    if ((flags & 0x8000) != 0 || ((flags >> 11) & 0xF) != 0) return std::nullopt;
    if (read_u16(d, 4) != 1) return std::nullopt;
    auto name = parse_name(d, kHeaderSize);
    if (!name || name->second + 4 > d.size()) return std::nullopt;
    if (read_u16(d, name->second + 2) != kClassIn) return std::nullopt;
    Query q;
    q.id = read_u16(d, 0);
    q.rd = (flags & 0x0100) != 0;
    q.name = std::move(name->first);
    q.qtype = read_u16(d, name->second);
    q.question = d.subspan(kHeaderSize, name->second + 4 - kHeaderSize);
    return q;
}

// Appends big-endian fields to a byte vector.
class Writer {
public:
    void u8(std::uint8_t v) { out_.push_back(v); }
    void u16(std::uint16_t v) {
        u8(static_cast<std::uint8_t>(v >> 8));
        u8(static_cast<std::uint8_t>(v));
    }
    void u32(std::uint32_t v) {
        u16(static_cast<std::uint16_t>(v >> 16));
        u16(static_cast<std::uint16_t>(v));
    }
    void bytes(std::span<const std::uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
    // `dotted` as uncompressed labels; its labels are short constants.
    void name(std::string_view dotted) {
        while (!dotted.empty()) {
            const auto dot = dotted.find('.');
            const auto label = dotted.substr(0, dot);
            u8(static_cast<std::uint8_t>(label.size()));
            out_.insert(out_.end(), label.begin(), label.end());
            dotted.remove_prefix(dot == std::string_view::npos ? dotted.size() : dot + 1);
        }
        u8(0);
    }
    void put_u16_at(std::size_t at, std::uint16_t v) {
        out_[at] = static_cast<std::uint8_t>(v >> 8);
        out_[at + 1] = static_cast<std::uint8_t>(v);
    }
    std::size_t size() const { return out_.size(); }
    Bytes take() { return std::move(out_); }

private:
    Bytes out_;
};

// What a reply says, before it is encoded. The rdata spans point into the
// server's records: encode while holding the lock that guards them.
struct Outcome {
    std::uint8_t rcode = kNoError;
    std::uint16_t rrtype = 0;
    std::uint32_t ttl = 0;
    std::vector<std::span<const std::uint8_t>> rdata;
    bool soa = false;
};

// The reply the data and the behaviour call for. `found` is null for a name
// never set. `b` is never DnsBehaviour::drop.
Outcome decide(const Query& q, DnsBehaviour b, const Records* found) {
    Outcome o;
    if (b == DnsBehaviour::servfail || b == DnsBehaviour::refused) {
        o.rcode = b == DnsBehaviour::servfail ? kServFail : kRefused;
        return o;
    }
    if (b == DnsBehaviour::nxdomain || found == nullptr) {
        o.rcode = kNxDomain;
        o.soa = true;
        return o;
    }
    o.rrtype = q.qtype;
    o.ttl = found->ttl;
    if (q.qtype == kDnsTypeA)
        for (const auto& a : found->a) o.rdata.emplace_back(a);
    if (q.qtype == kDnsTypeAAAA)
        for (const auto& a : found->aaaa) o.rdata.emplace_back(a);
    o.soa = o.rdata.empty();  // NODATA
    return o;
}

// The SOA of the root zone, which this server claims: negative answers are
// cached for kNegativeTtl (RFC 2308 section 5).
void write_soa(Writer& w) {
    w.u8(0);  // owner: the root
    w.u16(kTypeSoa);
    w.u16(kClassIn);
    w.u32(kNegativeTtl);
    const std::size_t rdlength_at = w.size();
    w.u16(0);
    w.name("ns.egress.test");
    w.name("hostmaster.egress.test");
    for (std::uint32_t v : {1u, 3600u, 600u, 86400u, kNegativeTtl}) w.u32(v);  // serial .. minimum
    w.put_u16_at(rdlength_at, static_cast<std::uint16_t>(w.size() - rdlength_at - 2));
}

// The reply datagram: the query's ID and question echoed, AA and RA set, RD
// copied. Answers that would push it past 512 bytes are left out and TC set.
Bytes encode_reply(const Query& q, const Outcome& o) {
    Writer w;
    w.u16(q.id);
    w.u16(0);  // flags, below
    w.u16(1);
    w.u16(0);  // ANCOUNT, below
    w.u16(o.soa ? 1 : 0);
    w.u16(0);
    w.bytes(q.question);
    std::uint16_t ancount = 0;
    bool truncated = false;
    for (const auto& rdata : o.rdata) {
        if (w.size() + 12 + rdata.size() > kMaxReply) {
            truncated = true;
            break;
        }
        w.u16(0xC00C);  // pointer to the question's name
        w.u16(o.rrtype);
        w.u16(kClassIn);
        w.u32(o.ttl);
        w.u16(static_cast<std::uint16_t>(rdata.size()));
        w.bytes(rdata);
        ++ancount;
    }
    if (o.soa) write_soa(w);
    const std::uint16_t flags = 0x8000 | 0x0400 | (truncated ? 0x0200 : 0) | (q.rd ? 0x0100 : 0) | 0x0080 | o.rcode;
    w.put_u16_at(2, flags);
    w.put_u16_at(6, ancount);
    return w.take();
}

// A reply waiting for its time.
struct Pending {
    Bytes reply;
    sockaddr_storage to{};
    socklen_t to_len = 0;
};
// Ordered by due time; equal times keep their arrival order.
using PendingQueue = std::multimap<Clock::time_point, Pending>;

// poll()'s timeout for the earliest pending reply, rounded up so the reply is
// due on wake-up; -1 if none waits.
int poll_timeout(const PendingQueue& queue) {
    if (queue.empty()) return -1;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(queue.begin()->first - Clock::now()).count();
    return static_cast<int>(std::clamp<decltype(left)>(left, 0, INT_MAX));
}

// Best effort: a test server on loopback; a reply that cannot be sent is lost
// as a datagram on the wire could be.
void send_reply(int fd, const Pending& p) {
    ::sendto(fd, p.reply.data(), p.reply.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
             reinterpret_cast<const sockaddr*>(&p.to), p.to_len);
}

// The socket's port, after checking it is a bound AF_INET/AF_INET6 datagram
// socket. Throws std::runtime_error otherwise.
std::uint16_t bound_udp_port(int fd) {
    int type = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) throw failure("getsockopt(SO_TYPE)");
    if (type != SOCK_DGRAM) throw failure("the socket is not SOCK_DGRAM", 0);
    sockaddr_storage addr{};
    len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) throw failure("getsockname");
    std::uint16_t port = 0;
    if (addr.ss_family == AF_INET) port = ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
    else if (addr.ss_family == AF_INET6) port = ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
    else throw failure("the socket is not AF_INET or AF_INET6", 0);
    if (port == 0) throw failure("the socket is not bound", 0);
    return port;
}

// A UDP socket bound to `address`:`port`. Throws std::runtime_error.
int bind_udp(const std::string& address, std::uint16_t port) {
    sockaddr_storage addr{};
    socklen_t len = 0;
    auto& v4 = reinterpret_cast<sockaddr_in&>(addr);
    auto& v6 = reinterpret_cast<sockaddr_in6&>(addr);
    if (::inet_pton(AF_INET, address.c_str(), &v4.sin_addr) == 1) {
        v4.sin_family = AF_INET;
        v4.sin_port = htons(port);
        len = sizeof v4;
    } else if (::inet_pton(AF_INET6, address.c_str(), &v6.sin6_addr) == 1) {
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons(port);
        len = sizeof v6;
    } else {
        throw failure("\"" + address + "\" is not an IP address", 0);
    }
    UniqueFd fd(::socket(addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) throw failure("socket");
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0)
        throw failure("bind to " + address + " port " + std::to_string(port));
    return fd.release();
}

}  // namespace

struct DnsServer::State {
    using Key = std::pair<std::string, std::uint16_t>;  // normalised name, type

    UniqueFd sock;
    UniqueFd wake;  // an eventfd: readable once the server must stop
    std::uint16_t port = 0;

    mutable std::mutex mutex;  // guards everything below
    std::map<std::string, Records> names;
    std::map<Key, DnsBehaviour> behaviours;
    std::map<Key, std::chrono::milliseconds> delays;
    std::map<Key, std::size_t> counts;
    std::size_t total = 0;

    std::thread thread;  // started last, joined by ~DnsServer

    // The setting for `name` and `qtype`, else for kDnsTypeAny, else `fallback`.
    template <typename T>
    static T setting(const std::map<Key, T>& m, const std::string& name, std::uint16_t qtype, T fallback) {
        if (auto it = m.find({name, qtype}); it != m.end()) return it->second;
        if (auto it = m.find({name, kDnsTypeAny}); it != m.end()) return it->second;
        return fallback;
    }

    // Reads and answers queries until `wake` is readable. Never throws.
    void serve() {
        PendingQueue queue;
        Bytes buffer(65536);
        for (;;) {
            pollfd fds[2] = {{wake.get(), POLLIN, 0}, {sock.get(), POLLIN, 0}};
            if (::poll(fds, 2, poll_timeout(queue)) < 0 && errno != EINTR) {
                std::fprintf(stderr, "DnsServer: poll: %s; serving stops\n", std::strerror(errno));
                return;
            }
            if (fds[0].revents != 0) return;
            if ((fds[1].revents & POLLERR) != 0) clear_error();
            if ((fds[1].revents & POLLIN) != 0) read_batch(buffer, queue);
            send_due(queue);
        }
    }

    // Reads up to kReadBatch datagrams without blocking and handles each.
    void read_batch(Bytes& buffer, PendingQueue& queue) {
        for (std::size_t i = 0; i < kReadBatch; ++i) {
            Pending p;
            p.to_len = sizeof p.to;
            const ssize_t n = ::recvfrom(sock.get(), buffer.data(), buffer.size(), MSG_DONTWAIT | MSG_TRUNC,
                                         reinterpret_cast<sockaddr*>(&p.to), &p.to_len);
            if (n < 0) return;  // EAGAIN: drained; anything else: poll again
            if (static_cast<std::size_t>(n) > buffer.size()) continue;  // truncated: malformed
            handle(std::span<const std::uint8_t>(buffer.data(), static_cast<std::size_t>(n)), std::move(p), queue);
        }
    }

    // Counts a well-formed query and sends its reply now or queues it for
    // later; ignores anything else.
    void handle(std::span<const std::uint8_t> datagram, Pending p, PendingQueue& queue) {
        const auto q = parse_query(datagram);
        if (!q) return;
        std::chrono::milliseconds wait{0};
        {
            std::lock_guard lock(mutex);
            ++counts[{q->name, q->qtype}];
            ++total;
            const auto b = setting(behaviours, q->name, q->qtype, DnsBehaviour::answer);
            if (b == DnsBehaviour::drop) return;
            wait = setting(delays, q->name, q->qtype, std::chrono::milliseconds{0});
            const auto found = names.find(q->name);
            p.reply = encode_reply(*q, decide(*q, b, found == names.end() ? nullptr : &found->second));
        }
        if (wait.count() <= 0) send_reply(sock.get(), p);
        else queue.emplace(Clock::now() + wait, std::move(p));
    }

    // Sends, in due order, every queued reply whose time has come.
    void send_due(PendingQueue& queue) {
        const auto now = Clock::now();
        while (!queue.empty() && queue.begin()->first <= now) {
            send_reply(sock.get(), queue.begin()->second);
            queue.erase(queue.begin());
        }
    }

    // Reads and discards a pending socket error (an ICMP error on a connected
    // socket) so that poll() does not keep reporting it.
    void clear_error() {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    }
};

DnsServer::DnsServer(int udp_fd) { start(udp_fd); }

DnsServer::DnsServer(const std::string& address, std::uint16_t port) { start(bind_udp(address, port)); }

void DnsServer::start(int udp_fd) {
    state_ = std::make_unique<State>();
    state_->sock.reset(udp_fd);  // owned from here on, closed if a step fails
    state_->port = bound_udp_port(udp_fd);
    state_->wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (state_->wake.get() < 0) throw failure("eventfd");
    state_->thread = std::thread([s = state_.get()] { s->serve(); });
}

DnsServer::~DnsServer() {
    const std::uint64_t one = 1;
    if (::write(state_->wake.get(), &one, sizeof one) != sizeof one)
        std::fprintf(stderr, "DnsServer: cannot wake the server thread: %s\n", std::strerror(errno));
    state_->thread.join();
}

std::uint16_t DnsServer::port() const { return state_->port; }

void DnsServer::set(const std::string& name, DnsRecordSet records) {
    Records r = encode_records(name, records);
    std::lock_guard lock(state_->mutex);
    state_->names[normalise(name)] = std::move(r);
}

void DnsServer::behave(const std::string& name, std::uint16_t qtype, DnsBehaviour b) {
    std::lock_guard lock(state_->mutex);
    if (b == DnsBehaviour::answer) state_->behaviours.erase({normalise(name), qtype});
    else state_->behaviours[{normalise(name), qtype}] = b;
}

void DnsServer::delay(const std::string& name, std::uint16_t qtype, std::chrono::milliseconds delay) {
    std::lock_guard lock(state_->mutex);
    if (delay.count() <= 0) state_->delays.erase({normalise(name), qtype});
    else state_->delays[{normalise(name), qtype}] = delay;
}

std::size_t DnsServer::queries(const std::string& name, std::uint16_t qtype) const {
    const std::string key = normalise(name);
    std::lock_guard lock(state_->mutex);
    if (qtype != kDnsTypeAny) {
        const auto it = state_->counts.find({key, qtype});
        return it == state_->counts.end() ? 0 : it->second;
    }
    std::size_t n = 0;
    for (auto it = state_->counts.lower_bound({key, 0}); it != state_->counts.end() && it->first.first == key; ++it)
        n += it->second;
    return n;
}

std::size_t DnsServer::queries() const {
    std::lock_guard lock(state_->mutex);
    return state_->total;
}

}  // namespace egress::test
