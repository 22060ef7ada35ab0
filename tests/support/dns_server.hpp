// A small authoritative DNS server over UDP for integration tests and
// benchmarks: it answers A and AAAA queries from records the test sets, and
// can be told to fail, stay silent or answer late, per name and query type.
// RFC 1035 wire format, one question per query, no EDNS, no TCP.
//
// It claims authority for the whole tree: a name never set is NXDOMAIN, a set
// name without records of the asked type is NODATA; both carry an SOA for the
// root zone in the authority section (TTL and minimum 30 s) so that resolvers
// can tell them apart and cache them negatively (RFC 2308).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace egress::test {

struct DnsRecordSet {
    std::vector<std::string> a;      // IPv4 literals for A answers
    std::vector<std::string> aaaa;   // IPv6 literals for AAAA answers
    std::uint32_t ttl = 60;
};

// What the server does with a query instead of (or as) answering it.
enum class DnsBehaviour {
    answer,    // the default: records, NODATA or NXDOMAIN as the data say
    nxdomain,  // RCODE 3 with an SOA, even for a set name
    servfail,  // RCODE 2, no records
    refused,   // RCODE 5, no records
    drop,      // never answer (the query is still counted)
};

inline constexpr std::uint16_t kDnsTypeA = 1;
inline constexpr std::uint16_t kDnsTypeAAAA = 28;
inline constexpr std::uint16_t kDnsTypeAny = 0;  // in this API: "every type"

class DnsServer {
public:
    // Takes ownership of `udp_fd`, an AF_INET or AF_INET6 SOCK_DGRAM socket
    // already bound (for instance inside a test network namespace: the socket
    // stays in the namespace it was made in). Serves it on a thread of its own
    // until destroyed. Throws std::runtime_error naming the step that failed;
    // the fd is closed then too.
    explicit DnsServer(int udp_fd);
    // Binds a fresh UDP socket on `address` (an IPv4 or IPv6 literal) and
    // `port` (0: the kernel picks; see port()) in the caller's namespace.
    // Throws std::runtime_error naming the step that failed.
    explicit DnsServer(const std::string& address, std::uint16_t port = 0);
    // For self-tests: 127.0.0.1, a port the kernel picks.
    DnsServer() : DnsServer(std::string("127.0.0.1")) {}
    // Stops the thread promptly (replies still waiting on a delay are never
    // sent) and closes the socket.
    ~DnsServer();
    DnsServer(const DnsServer&) = delete;
    DnsServer& operator=(const DnsServer&) = delete;

    // The port the socket is bound to (host byte order).
    std::uint16_t port() const;

    // Names below are matched case-insensitively, with or without the final
    // dot. All members are thread-safe; a change applies to every query the
    // server reads after the call returns.

    // Replaces the records of `name` (an empty set makes the name exist with
    // no data). Every literal must be a valid address of its family: a bad
    // one is a bug in the test, reported on stderr before abort().
    void set(const std::string& name, DnsRecordSet records);
    // What to do with queries for `name` and `qtype` (kDnsTypeAny: all types)
    // instead of answering; an exact type wins over kDnsTypeAny.
    // DnsBehaviour::answer removes the setting for exactly that name and type.
    void behave(const std::string& name, std::uint16_t qtype, DnsBehaviour b);
    // Holds replies for `name` and `qtype` (kDnsTypeAny: all types) back by
    // `delay`, without holding back replies to other queries; an exact type
    // wins over kDnsTypeAny. A zero delay removes the setting for exactly
    // that name and type.
    void delay(const std::string& name, std::uint16_t qtype, std::chrono::milliseconds delay);

    // Well-formed queries read so far for `name` and `qtype` (kDnsTypeAny:
    // all types), whatever the answer (dropped ones too). A query is counted
    // before its reply is sent, so once a reply has arrived its query shows.
    std::size_t queries(const std::string& name, std::uint16_t qtype = kDnsTypeAny) const;
    // Well-formed queries read so far, all names; malformed ones never count.
    std::size_t queries() const;

private:
    struct State;
    void start(int udp_fd);
    std::unique_ptr<State> state_;
};

}  // namespace egress::test
