#include "hostname.hpp"


namespace egress {
namespace {

bool letter_or_digit(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

std::string quoted(std::string_view text) {
    // A name is at most 254 characters; a hostile one is cut for the message.
    std::string s;
    for (char c : text.substr(0, 80)) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7F) {
            s += c;
        } else {
            static constexpr char kHex[] = "0123456789abcdef";
            s += "\\x";
            s += kHex[u >> 4];
            s += kHex[u & 15];
        }
    }
    return "'" + s + (text.size() > 80 ? "...'" : "'");
}

Error invalid(std::string_view name, const std::string& why) {
    return Error{EINVAL, "host name " + quoted(name) + " is not valid: " + why};
}

}  // namespace

Result<std::string> normalize_host_name(std::string_view text) {
    std::string_view name = text;
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    if (name.empty()) return invalid(text, "it is empty");
    if (name.size() > kMaxHostName)
        return invalid(text, "it has " + std::to_string(name.size()) + " characters, more than " +
                                 std::to_string(kMaxHostName));
    std::string out;
    out.reserve(name.size());
    std::size_t label_start = 0;
    bool label_digits_only = true;
    for (std::size_t i = 0; i <= name.size(); ++i) {
        if (i == name.size() || name[i] == '.') {
            const auto label = name.substr(label_start, i - label_start);
            if (label.empty()) return invalid(text, "it has an empty label");
            if (label.size() > kMaxHostLabel)
                return invalid(text, "a label has " + std::to_string(label.size()) + " characters, more than " +
                                         std::to_string(kMaxHostLabel));
            if (label.front() == '-' || label.back() == '-')
                return invalid(text, "label " + quoted(label) + " begins or ends with '-'");
            if (i == name.size() && label_digits_only)
                return invalid(text, "its last label is all digits (an address is not a name: send it as one)");
            if (i < name.size()) out += '.';
            label_start = i + 1;
            label_digits_only = true;
            continue;
        }
        const char c = name[i];
        if (static_cast<unsigned char>(c) >= 0x80)
            return invalid(text, "it is not ASCII (send an internationalized name in its punycode form, xn--...)");
        if (!letter_or_digit(c) && c != '-' && c != '_')
            return invalid(text, "character " + quoted(std::string_view(&c, 1)) +
                                     " is not a letter, digit, '-' or '_'");
        if (c < '0' || c > '9') label_digits_only = false;
        out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    return out;
}

Result<Destination> parse_destination(std::string_view text) {
    auto hp = split_host_port(text, "HOST:PORT");
    if (!hp) return hp.error();
    Destination d;
    d.port = hp->port;
    if (auto ep = parse_address(hp->host, d.port)) {
        if (hp->bracketed && !ep->v6)
            return Error{EINVAL, "brackets hold an IPv6 address, got '" + std::string(hp->host) + "'"};
        d.address = *ep;
        return d;
    }
    if (hp->bracketed) return Error{EINVAL, "'" + std::string(hp->host) + "' is not an IPv6 address"};
    auto name = normalize_host_name(hp->host);
    if (!name) return name.error();
    d.host = std::move(*name);
    return d;
}

std::string destination_string(const Destination& d) {
    if (d.address) return endpoint_string(*d.address);
    return d.host + ":" + std::to_string(d.port);
}

}  // namespace egress
