#include "names.hpp"

#include <grp.h>
#include <pwd.h>

#include <cerrno>
#include <vector>

namespace egress {
namespace {

// Entries larger than this (huge group member lists) are treated as absent.
constexpr std::size_t kMaxEntryBuffer = 1 << 20;

std::optional<std::uint32_t> uid_of(const std::string& name) {
    std::vector<char> buf(16384);
    for (;;) {
        passwd pw{}, *found = nullptr;
        const int rc = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
        if (rc == ERANGE && buf.size() < kMaxEntryBuffer) {
            buf.resize(buf.size() * 2);
            continue;
        }
        if (rc != 0 || !found) return std::nullopt;
        return pw.pw_uid;
    }
}

std::optional<std::uint32_t> gid_of(const std::string& name) {
    std::vector<char> buf(16384);
    for (;;) {
        group gr{}, *found = nullptr;
        const int rc = ::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found);
        if (rc == ERANGE && buf.size() < kMaxEntryBuffer) {
            buf.resize(buf.size() * 2);
            continue;
        }
        if (rc != 0 || !found) return std::nullopt;
        return gr.gr_gid;
    }
}

}  // namespace

NameResolver system_names() { return NameResolver{uid_of, gid_of}; }

}  // namespace egress
