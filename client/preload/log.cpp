#include "log.hpp"

#include <arpa/inet.h>
#include <string.h>
#include <unistd.h>

namespace egress::preload {

Line::Line() { *this << "egress-preload[" << static_cast<long>(::getpid()) << "]: "; }

Line& Line::operator<<(const char* s) {
    while (s && *s && n_ + 1 < sizeof buf_) buf_[n_++] = *s++;
    return *this;
}

Line& Line::operator<<(long v) {
    char tmp[24];
    int i = 0;
    unsigned long u = v < 0 ? 0ul - static_cast<unsigned long>(v) : static_cast<unsigned long>(v);
    do tmp[i++] = static_cast<char>('0' + u % 10);
    while ((u /= 10) && i < 23);
    if (v < 0) tmp[i++] = '-';
    while (i && n_ + 1 < sizeof buf_) buf_[n_++] = tmp[--i];
    return *this;
}

Line& Line::operator<<(const Addr& a) {
    char text[INET6_ADDRSTRLEN] = "?";
    ::inet_ntop(a.v6 ? AF_INET6 : AF_INET, a.bytes, text, sizeof text);
    if (a.v6) *this << "[" << text << "]";
    else *this << text;
    return *this << ":" << static_cast<long>(a.port);
}

Line& Line::err(int code) {
    const char* name = ::strerrorname_np(code);
    char desc[128];
    // The GNU strerror_r returns a pointer to a static string or to `desc`.
    const char* text = ::strerror_r(code, desc, sizeof desc);
    if (name) *this << name;
    else *this << "errno " << static_cast<long>(code);
    return *this << " (" << text << ")";
}

void Line::write() {
    buf_[n_++] = '\n';
    for (std::size_t off = 0; off < n_;) {
        const auto w = ::write(2, buf_ + off, n_ - off);
        if (w <= 0) break;
        off += static_cast<std::size_t>(w);
    }
}

}  // namespace egress::preload
