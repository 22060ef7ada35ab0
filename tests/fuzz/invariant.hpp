// What the fuzz targets assert: a broken invariant prints what broke and
// aborts, which libFuzzer reports as a finding and saves the input.
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>

#include "codec.hpp"

namespace egress::fuzz {

inline void require(bool ok, const std::string& what) {
    if (ok) return;
    std::fprintf(stderr, "fuzz invariant broken: %s\n", what.c_str());
    std::abort();
}

inline std::string hex16(unsigned v) {
    char b[8];
    std::snprintf(b, sizeof b, "0x%04x", v & 0xFFFF);
    return b;
}

// A refusal must carry one of the errno values the protocol documents for it
// and a reason a person can read.
inline void require_error(const Error& e, std::initializer_list<int> allowed, const char* where) {
    bool known = false;
    for (int code : allowed) known = known || e.code == code;
    require(known, std::string(where) + ": undocumented errno " + errno_name(e.code) + " (" + e.message + ")");
    require(!e.message.empty(), std::string(where) + ": " + errno_name(e.code) + " without a reason");
}

// The field types of a payload and how often each appears, read by a walker
// independent of the codec's. nullopt: the fields do not tile the payload.
inline std::optional<std::map<std::uint16_t, int>> field_counts(proto::ByteView payload) {
    std::map<std::uint16_t, int> counts;
    std::size_t off = 0;
    while (off < payload.size()) {
        if (payload.size() - off < EGRESS_FIELD_HEADER_SIZE) return std::nullopt;
        const auto type = static_cast<std::uint16_t>(payload[off] | payload[off + 1] << 8);
        const std::size_t len = payload[off + 2] | payload[off + 3] << 8;
        if (payload.size() - off - EGRESS_FIELD_HEADER_SIZE < len) return std::nullopt;
        ++counts[type];
        off += EGRESS_FIELD_HEADER_SIZE + len;
    }
    return counts;
}

// PROTOCOL.md section 5 for an accepted message: only listed fields, each at
// most once (JSON excepted), the required ones present. `error_fields`: whether
// ERROR_NAME and MESSAGE must be present (true) or absent (false).
inline void require_fields(proto::ByteView payload, std::initializer_list<std::uint16_t> allowed,
                           std::initializer_list<std::uint16_t> required, std::optional<bool> error_fields,
                           const char* what) {
    const auto counts = field_counts(payload);
    require(counts.has_value(), std::string(what) + " accepted with fields that do not tile the payload");
    for (const auto& [type, n] : *counts) {
        bool listed = false;
        for (auto a : allowed) listed = listed || a == type;
        require(listed, std::string(what) + " accepted with field " + hex16(type) + ", not listed for it");
        require(n == 1 || type == EGRESS_FIELD_JSON,
                std::string(what) + " accepted with field " + hex16(type) + " " + std::to_string(n) + " times");
    }
    for (auto r : required)
        require(counts->count(r) == 1, std::string(what) + " accepted without required field " + hex16(r));
    if (error_fields)
        for (auto f : {EGRESS_FIELD_ERROR_NAME, EGRESS_FIELD_MESSAGE})
            require((counts->count(static_cast<std::uint16_t>(f)) == 1) == *error_fields,
                    std::string(what) + ": field " + hex16(f) +
                        (*error_fields ? " missing though status is not 0" : " present though status is 0"));
}

}  // namespace egress::fuzz
