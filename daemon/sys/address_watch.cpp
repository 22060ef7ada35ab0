#include "sys/address_watch.hpp"

#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>

namespace egress {
namespace {

std::runtime_error failure(const std::string& what, int err) {
    return std::runtime_error("host address watch: " + what + ": " + std::strerror(err));
}

}  // namespace

AddressWatch::AddressWatch(asio::io_context& io, Syscalls& sys, Publish publish)
    : sys_(sys), publish_(std::move(publish)), sd_(io) {}

void AddressWatch::start(int timeout_ms) {
    const auto fd = sys_.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    if (!fd.ok()) throw failure("socket(NETLINK_ROUTE)", fd.err);
    sd_.assign(static_cast<int>(fd.value));  // owns the descriptor from here
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
    if (const auto r = sys_.bind(sd_.native_handle(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa); !r.ok())
        throw failure("bind to the address groups", r.err);
    request_dump();
    // The first dump, before the loop runs: wait on the socket until it ends.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (dumping_) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) throw std::runtime_error("host address watch: the first address dump did not end in time");
        pollfd p{sd_.native_handle(), POLLIN, 0};
        const auto r = sys_.poll(&p, 1, static_cast<int>(left.count()));
        if (!r.ok() && r.err != EINTR) throw failure("poll", r.err);
        if (r.value > 0 && !drain(kMaxDatagramsPerWake)) throw std::runtime_error("host address watch: dump failed");
    }
    if (!dumped_) throw std::runtime_error("host address watch: the first address dump failed");
    wait();
}

void AddressWatch::stop() {
    error_code ignored;
    sd_.close(ignored);
}

void AddressWatch::request_dump() {
    struct {
        nlmsghdr nlh;
        ifaddrmsg ifa;
    } req{};
    req.nlh.nlmsg_len = sizeof req;
    req.nlh.nlmsg_type = RTM_GETADDR;
    req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.nlh.nlmsg_seq = ++seq_;
    req.ifa.ifa_family = AF_UNSPEC;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    iovec iov{&req, sizeof req};
    msghdr msg{};
    msg.msg_name = &kernel;
    msg.msg_namelen = sizeof kernel;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    pending_.clear();
    dumping_ = true;
    redump_ = false;
    if (const auto r = sys_.sendmsg(sd_.native_handle(), &msg, 0); !r.ok()) {
        // Without a dump the set would go stale silently: say so loudly.
        spdlog::error("host addresses: cannot request a dump ({}); the set known stays as it was",
                      std::strerror(r.err));
        dumping_ = false;
    }
}

void AddressWatch::wait() {
    sd_.async_wait(asio::posix::stream_descriptor::wait_read, [self = shared_from_this()](const error_code& ec) {
        if (ec) return;  // closed by stop()
        if (self->drain(kMaxDatagramsPerWake)) self->wait();
    });
}

bool AddressWatch::drain(int max_datagrams) {
    for (int i = 0; i < max_datagrams; ++i) {
        iovec iov{buf_->data(), buf_->size()};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        const auto r = sys_.recvmsg(sd_.native_handle(), &msg, MSG_DONTWAIT);
        if (!r.ok()) {
            if (r.err == EAGAIN || r.err == EWOULDBLOCK) return true;
            if (r.err == EINTR) continue;
            if (r.err == ENOBUFS) {
                // Notifications were dropped: only a fresh dump tells the truth again.
                spdlog::warn("host addresses: notifications overran the socket buffer; dumping the addresses again");
                if (dumping_) redump_ = true;
                else request_dump();
                continue;
            }
            spdlog::error("host addresses: reading the netlink socket failed ({}); the set known is no longer updated",
                          std::strerror(r.err));
            return false;
        }
        if (msg.msg_flags & MSG_TRUNC) {
            spdlog::warn("host addresses: a netlink datagram was truncated; dumping the addresses again");
            if (dumping_) redump_ = true;
            else request_dump();
            continue;
        }
        handle(parse_addr_messages({buf_->data(), static_cast<std::size_t>(r.value)}));
    }
    return true;
}

void AddressWatch::handle(const AddrMessages& m) {
    for (const auto& p : m.problems) spdlog::warn("host addresses: skipped a netlink message: {}", p);
    for (const auto& c : m.changes) {
        SPDLOG_DEBUG("host addresses: {} {} on interface {}", c.added ? "+" : "-", address_string(c.address),
                     c.ifindex);
        (dumping_ ? pending_ : table_).apply(c);
    }
    if (m.error) {
        spdlog::error("host addresses: the kernel answered the dump with {}; the set known stays as it was",
                      std::strerror(m.error));
        dumping_ = false;
        return;
    }
    if (dumping_ && m.done) {
        dumping_ = false;
        if (redump_) return request_dump();
        table_ = pending_;
        dumped_ = true;
        const auto all = table_.addresses();
        spdlog::info("host addresses: {} known", all.size());
        publish_(all);
        return;
    }
    if (!dumping_ && !m.changes.empty()) publish_(table_.addresses());
}

}  // namespace egress
