// One load-generating process: N connects to one destination, either through
// egressd (broker) or made in this process (direct-*), holding every socket
// until told to stop so that the ports stay in use.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "endpoint.hpp"
#include "pool/port_window.hpp"

namespace egress {
class Client;
}

namespace egress::bench {

enum class Mode { broker, direct_default, direct_window, direct_kernel_range };
std::optional<Mode> parse_mode(const std::string& s);
const char* to_string(Mode m);

struct WorkerOptions {
    Mode mode = Mode::broker;
    std::string socket;                // broker: egressd's socket
    Endpoint dest;
    std::uint32_t count = 1000;
    std::uint32_t inflight = 64;       // broker: requests in flight
    std::uint32_t timeout_ms = 0;      // broker: 0 = egressd's default
    std::string pool;                  // broker: empty = egressd's route
    std::optional<Endpoint> source;    // direct: bind this address
    PortRange range{40000, 59999};     // direct-window / direct-kernel-range
    std::uint32_t window = 500;        // direct-window
    bool hold = false;                 // keep sockets until stdin closes
    bool series = false;               // also record WorkerResult::series
    bool udp = false;                  // connected UDP sockets instead of TCP connects
};

// One successful connect, for charts: when it completed (steady clock, which
// every process on the host shares), its latency, its local port's parity.
struct Sample {
    double done_ms = 0;
    double ms = 0;
    bool odd = false;
};

struct WorkerResult {
    std::uint64_t attempts = 0;        // connects asked for
    std::uint64_t ok = 0;
    std::uint64_t errored = 0;
    std::uint64_t tries = 0;           // socket+connect tries (retries included)
    double total_s = 0;
    std::vector<double> lat_even_ms;   // per successful connect, by local port parity
    std::vector<double> lat_odd_ms;
    std::map<std::string, std::uint64_t> errors;     // errno name -> count
    std::map<std::string, std::string> messages;     // errno name -> first message
    std::map<std::string, std::uint64_t> sources;    // local address -> count
    std::vector<Sample> series;        // with WorkerOptions::series: in completion order

    nlohmann::json to_json() const;
    static WorkerResult from_json(const nlohmann::json& j);
    // Adds o's counts; the series stays in completion order across workers.
    void merge(const WorkerResult& o);
    // The human/JSON report: attempts, errored, total_s, latency_ms{...}, even, odd, ...
    nlohmann::json summary() const;
};

// Runs the worker; the sockets it made stay open in `held` when hold is set.
WorkerResult run_worker(const WorkerOptions& o, std::vector<int>& held);

// Many clients in one process: `clients` connections to egressd, each keeping
// `inflight` CONNECTs in flight until it has had `per_client` replies; every
// socket received is closed at once. `ready` runs once every client is
// connected, before any request (the caller may wait there). Latency is
// request sent to reply received, in lat_even_ms.
WorkerResult run_clients(const std::string& socket, const Endpoint& dest, std::uint32_t clients,
                         std::uint32_t per_client, std::uint32_t inflight, const std::function<void()>& ready,
                         std::vector<egress::Client>& keep);

}  // namespace egress::bench
