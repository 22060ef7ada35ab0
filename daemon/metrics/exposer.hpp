// The /metrics endpoint: prometheus-cpp's Exposer over its embedded civetweb,
// configured so that clients which connect and say nothing cannot stall
// scrapes, and so that a failure to listen says why in errno terms.
#pragma once

#include <prometheus/exposer.h>

#include <memory>
#include <string>

namespace egress {

// civetweb serves each connection on one worker thread, first come first
// served, and a worker stays with a connection until its request has arrived
// or the request timeout has passed since it was accepted (civetweb 1.15,
// read_message()). A connection that sends nothing, or a byte now and then,
// therefore holds a worker for kMetricsRequestTimeoutMs at most.
//  - kMetricsThreads workers: up to kMetricsThreads - 1 idle connections
//    leave a worker free, so they do not delay a scrape at all;
//  - each further kMetricsThreads idle connections add at most
//    kMetricsRequestTimeoutMs to a scrape (47 still stay within a second).
// The timeout also bounds each stalled write of a response; a scraper sends
// its request as soon as it connects, so half a second is ample even across
// a network. 16 idle workers cost 16 sleeping threads and no CPU.
inline constexpr int kMetricsThreads = 16;
inline constexpr int kMetricsRequestTimeoutMs = 500;

// Serves on `listen` (ADDRESS:PORT or [IPV6]:PORT, as civetweb's
// listening_ports reads it) until destroyed; the caller registers the
// collectables. Keep-alive stays off: a scraper's connection is closed after
// each response instead of holding a worker until its next scrape.
// linger_timeout_ms stays unset: on Linux civetweb then closes without
// SO_LINGER and without waiting for the peer, so a close never holds a worker
// (0 would reset connections and could cut a response short).
//
// Throws std::runtime_error when the endpoint cannot start. what() is the
// errno civetweb met, as "EADDRINUSE (Address already in use)", or else
// civetweb's own start-up messages.
std::unique_ptr<prometheus::Exposer> make_exposer(const std::string& listen);

}  // namespace egress
