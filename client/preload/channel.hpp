// The preload shim's connections to egressd: one per thread, opened on the
// thread's first brokered connect, closed at thread exit, never shared with
// a forked child. Its descriptors are close-on-exec and non-blocking.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "settings.hpp"
#include "wire.hpp"

namespace egress::preload {

// Calls through to the next definition (libc's), never back into the shim.
struct RealCalls {
    int (*connect)(int, const ::sockaddr*, socklen_t) = nullptr;
    ssize_t (*sendmsg)(int, const ::msghdr*, int) = nullptr;
};

// How one adopt exchange with egressd ended.
enum class Exchange {
    replied,        // `reply` holds egressd's answer
    not_delivered,  // egressd is unreachable: the request never reached it (`err` says why)
    lost,           // sent, but no reply came (`err`: the connection ended, or ETIMEDOUT)
};

// Sends the adopt request for socket `sock` and waits (at most `wait_ms`)
// for its reply, on this thread's connection to egressd; a connection found
// dead before the request reached egressd (egressd restarted) is replaced
// once. `spin`: try for the reply for a few tens of microseconds before
// sleeping (a blocking caller, which has nothing else to do meanwhile; an
// event loop's CPU is better left to the others on a busy host).
// Reentrant: a call from a signal handler that interrupted another
// exchange on the same thread uses a connection of its own.
Exchange exchange_adopt(const Settings& s, const RealCalls& real, int sock, const Addr& dest,
                        std::uint32_t timeout_ms, int wait_ms, bool spin, Reply& reply, int& err);

// Process-wide set-up: the thread-exit and fork handlers. Call once.
void channels_init();

}  // namespace egress::preload
