#include "config/dns.hpp"

#include "hostname.hpp"

namespace egress::config_detail {
namespace {

// "ADDRESS", "ADDRESS:PORT", "[IPV6]:PORT" or a bare IPv6 address; port 53 by default.
std::optional<Endpoint> parse_server(const std::string& text) {
    if (auto bare = parse_address(text, 53)) return bare;
    auto ep = parse_endpoint(text);
    if (!ep) return std::nullopt;
    return *ep;
}

}  // namespace

void parse_dns(Checker& ck, const json& v, const std::string& path, DnsConfig& out) {
    ck.object(v, path, {
        {"servers", [&](const json& s, const std::string& p) {
            if (!s.is_array()) return ck.error(p, "expected an array of server addresses", s);
            out.servers.clear();
            for (std::size_t i = 0; i < s.size(); ++i) {
                const auto item = p + "[" + std::to_string(i) + "]";
                const auto ep = s[i].is_string() ? parse_server(s[i].get<std::string>()) : std::nullopt;
                if (!ep)
                    ck.error(item, "expected \"ADDRESS\", \"ADDRESS:PORT\" or \"[IPV6]:PORT\" of a name server", s[i]);
                else
                    out.servers.push_back(*ep);
            }
        }},
        {"search", [&](const json& s, const std::string& p) {
            if (!s.is_array()) return ck.error(p, "expected an array of domains", s);
            std::vector<std::string> domains;
            for (std::size_t i = 0; i < s.size(); ++i) {
                const auto item = p + "[" + std::to_string(i) + "]";
                if (!s[i].is_string()) {
                    ck.error(item, "expected a domain name", s[i]);
                    continue;
                }
                auto d = normalize_host_name(s[i].get<std::string>());
                if (!d)
                    ck.error(item, d.error().message, s[i]);
                else
                    domains.push_back(std::move(*d));
            }
            out.search = std::move(domains);
        }},
        {"ndots", [&](const json& s, const std::string& p) {
            std::uint32_t n = 1;
            ck.uint(s, p, 0, 15, n);
            out.ndots = n;
        }},
        {"timeout_ms", [&](const json& s, const std::string& p) {
            std::uint32_t n = 0;
            ck.uint(s, p, 10, 60000, n);
            out.timeout_ms = n;
        }},
        {"tries", [&](const json& s, const std::string& p) {
            std::uint32_t n = 0;
            ck.uint(s, p, 1, 10, n);
            out.tries = n;
        }},
        {"hosts_file", [&](const json& s, const std::string& p) { ck.boolean(s, p, out.hosts_file); }},
        {"cache_entries", [&](const json& s, const std::string& p) { ck.uint(s, p, 0, 1000000, out.cache_entries); }},
        {"cache_max_ttl_s", [&](const json& s, const std::string& p) { ck.uint(s, p, 1, 86400, out.cache_max_ttl_s); }},
        {"negative_ttl_s", [&](const json& s, const std::string& p) { ck.uint(s, p, 0, 3600, out.negative_ttl_s); }},
    });
}

}  // namespace egress::config_detail
