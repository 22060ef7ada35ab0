// Keeps the set of this host's addresses current: a NETLINK_ROUTE socket
// subscribed to IPv4 and IPv6 address notifications, read by the event loop
// without ever blocking it. The messages are parsed by host/netlink_addr.hpp.
#pragma once

#include <cstdint>
#include <array>
#include <functional>
#include <memory>
#include <vector>

#include "endpoint.hpp"
#include "host/netlink_addr.hpp"
#include "io/asio.hpp"
#include "sys/syscalls.hpp"

namespace egress {

class AddressWatch : public std::enable_shared_from_this<AddressWatch> {
public:
    // Receives every distinct address of this host (ports 0) after the first
    // dump and then after each change, on the loop's thread.
    using Publish = std::function<void(std::vector<Endpoint>)>;

    AddressWatch(asio::io_context& io, Syscalls& sys, Publish publish);

    // Opens and subscribes the socket, runs the first RTM_GETADDR dump to its
    // end (blocking, at start-up, before the loop runs), publishes, then
    // watches the socket from the loop. Throws std::runtime_error when the
    // socket cannot be opened or the dump fails or takes over `timeout_ms`.
    void start(int timeout_ms = 5000);
    // Closes the socket; nothing is published after.
    void stop();

    // Datagrams read per wake-up before yielding to the loop again.
    static constexpr int kMaxDatagramsPerWake = 64;

private:
    void request_dump();
    void wait();
    // Reads what is queued; false when the socket failed beyond recovery.
    bool drain(int max_datagrams);
    void handle(const AddrMessages& m);

    Syscalls& sys_;
    Publish publish_;
    asio::posix::stream_descriptor sd_;
    // One datagram at a time; on the heap (not a static thread_local: static
    // TLS takes room from every thread's stack, civetweb's small ones too).
    struct alignas(8) Buffer : std::array<std::uint8_t, 65536> {};  // nlmsghdr alignment
    std::unique_ptr<Buffer> buf_ = std::make_unique<Buffer>();
    HostAddressTable table_;    // what was last published
    HostAddressTable pending_;  // a dump in progress, with the changes that came meanwhile
    bool dumping_ = false;
    bool dumped_ = false;       // a dump has ended and been published
    bool redump_ = false;       // an overrun during the dump: run another when it ends
    std::uint32_t seq_ = 0;
};

}  // namespace egress
