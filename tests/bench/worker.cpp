#include "worker.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "egress_client.hpp"
#include "pool/selection.hpp"
#include "sockaddr.hpp"

#ifndef IP_LOCAL_PORT_RANGE
#define IP_LOCAL_PORT_RANGE 51
#endif

namespace egress::bench {
namespace {

using clock_type = std::chrono::steady_clock;

double ms_between(clock_type::time_point a, clock_type::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

nlohmann::json stats(std::vector<double> v) {
    if (v.empty()) return {{"count", 0}};
    std::sort(v.begin(), v.end());
    auto pct = [&](double p) { return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))]; };
    const double avg = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
    auto r = [](double x) { return std::round(x * 10000) / 10000; };
    return {{"count", v.size()}, {"min", r(v.front())}, {"avg", r(avg)}, {"p50", r(pct(0.50))},
            {"p99", r(pct(0.99))}, {"max", r(v.back())}};
}

void record_ok(const WorkerOptions& o, WorkerResult& r, const Endpoint& local, double ms) {
    ++r.ok;
    (local.port % 2 ? r.lat_odd_ms : r.lat_even_ms).push_back(ms);
    ++r.sources[address_string(local)];
    if (o.series) {
        const auto now = std::chrono::duration<double, std::milli>(clock_type::now().time_since_epoch()).count();
        r.series.push_back({now, ms, local.port % 2 == 1});
    }
}

void record_error(WorkerResult& r, int code, const std::string& message) {
    ++r.errored;
    const auto name = errno_name(code);
    if (!r.errors[name]++) r.messages[name] = message;
}

void run_broker(const WorkerOptions& o, WorkerResult& r, std::vector<int>& held) {
    auto client = Client::open(o.socket);
    if (!client) {
        record_error(r, client.error().code, client.error().message);
        r.errored = r.attempts = o.count;
        return;
    }
    ConnectOptions opt{.timeout_ms = o.timeout_ms, .pool = o.pool};
    if (o.udp) opt.transport = Transport::udp;
    std::uint32_t sent = 0, done = 0, pending = 0;
    while (done < o.count) {
        while (pending < o.inflight && sent < o.count) {
            if (!client->submit(o.dest, opt)) return record_error(r, EPIPE, "lost egressd");
            ++sent, ++pending, ++r.attempts;
        }
        auto c = client->next();
        if (!c) return record_error(r, c.error().code, c.error().message);
        --pending, ++done;
        if (!c->result) {
            record_error(r, c->result.error().code, c->result.error().message);
            continue;
        }
        auto& conn = *c->result;
        r.tries += conn.meta.attempts;
        record_ok(o, r, conn.meta.local.value_or(Endpoint{}), static_cast<double>(conn.meta.connect_us) / 1000.0);
        if (o.hold) held.push_back(conn.fd.release());
    }
}

void run_direct(const WorkerOptions& o, WorkerResult& r, std::vector<int>& held) {
    std::mt19937_64 rng(std::random_device{}());
    PortPolicy policy;
    policy.strategy = o.mode == Mode::direct_window         ? PortStrategy::window
                      : o.mode == Mode::direct_kernel_range ? PortStrategy::kernel_range
                                                            : PortStrategy::kernel_default;
    policy.range = o.range;
    policy.window_size = o.window;
    const auto dest = to_sockaddr(o.dest);
    const int one = 1;
    for (std::uint32_t i = 0; i < o.count; ++i) {
        ++r.attempts;
        AttemptPlan plan(policy, o.source ? 1 : 0);
        int err = EADDRNOTAVAIL;
        const auto t0 = clock_type::now();
        while (auto a = plan.next(rng())) {
            ++r.tries;
            const int fd = ::socket(dest.family(), (o.udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                err = errno;
                break;
            }
            // As egressd does it: the range first; for UDP the bind takes the
            // port (EADDRINUSE when the range is full), for TCP connect() does.
            if (a->local_range) {
                const auto v = encode_local_port_range(*a->local_range);
                ::setsockopt(fd, IPPROTO_IP, IP_LOCAL_PORT_RANGE, &v, sizeof v);
            }
            int bound = 0;
            if (o.source) {
                if (!o.udp) ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
                const auto src = to_sockaddr(*o.source);
                bound = ::bind(fd, src.get(), src.len);
            }
            if (bound == 0 && ::connect(fd, dest.get(), dest.len) == 0) {
                SockAddr local;
                local.len = sizeof local.storage;
                ::getsockname(fd, local.get(), &local.len);
                record_ok(o, r, from_sockaddr(local.get(), local.len).value_or(Endpoint{}), ms_between(t0, clock_type::now()));
                if (o.hold) held.push_back(fd);
                else ::close(fd);
                err = 0;
                break;
            }
            err = errno;
            ::close(fd);
            // UDP: a full range is EADDRINUSE from bind(), EAGAIN from connect()'s automatic bind.
            const bool exhausted = err == EADDRNOTAVAIL || (o.udp && (err == EADDRINUSE || err == EAGAIN));
            if (!exhausted) break;  // else the next try; the kernel's own errno is reported if none is left
        }
        if (err) record_error(r, err, errno_text(err));
    }
}

}  // namespace

std::optional<Mode> parse_mode(const std::string& s) {
    if (s == "broker") return Mode::broker;
    if (s == "direct-default") return Mode::direct_default;
    if (s == "direct-window") return Mode::direct_window;
    if (s == "direct-kernel-range") return Mode::direct_kernel_range;
    return std::nullopt;
}

const char* to_string(Mode m) {
    switch (m) {
    case Mode::broker: return "broker";
    case Mode::direct_default: return "direct-default";
    case Mode::direct_window: return "direct-window";
    case Mode::direct_kernel_range: return "direct-kernel-range";
    }
    return "?";
}

WorkerResult run_worker(const WorkerOptions& o, std::vector<int>& held) {
    WorkerResult r;
    const auto t0 = clock_type::now();
    if (o.mode == Mode::broker) run_broker(o, r, held);
    else run_direct(o, r, held);
    r.total_s = ms_between(t0, clock_type::now()) / 1000.0;
    return r;
}

WorkerResult run_clients(const std::string& socket, const Endpoint& dest, std::uint32_t clients,
                         std::uint32_t per_client, std::uint32_t inflight, const std::function<void()>& ready,
                         std::vector<Client>& keep) {
    WorkerResult r;
    for (std::uint32_t i = 0; i < clients; ++i) {
        auto c = Client::open(socket);
        if (!c) {
            record_error(r, c.error().code, c.error().message);
            return r;
        }
        keep.push_back(std::move(*c));
    }
    ready();
    struct State {
        std::uint32_t sent = 0, done = 0;
        std::map<std::uint64_t, clock_type::time_point> at;
    };
    std::vector<State> st(clients);
    std::vector<pollfd> fds(clients);
    const auto t0 = clock_type::now();
    auto top_up = [&](std::size_t i) {
        while (st[i].sent - st[i].done < inflight && st[i].sent < per_client) {
            auto id = keep[i].submit(dest);
            if (!id) return record_error(r, id.error().code, id.error().message);
            st[i].at[*id] = clock_type::now();
            ++st[i].sent;
            ++r.attempts;
        }
    };
    for (std::size_t i = 0; i < clients; ++i) {
        fds[i] = pollfd{keep[i].native_handle(), POLLIN, 0};
        top_up(i);
    }
    std::uint64_t remaining = std::uint64_t{clients} * per_client;
    while (remaining > 0) {
        if (::poll(fds.data(), fds.size(), 10000) <= 0) {
            record_error(r, ETIMEDOUT, "no reply from egressd for 10 s");
            break;
        }
        for (std::size_t i = 0; i < clients; ++i) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            auto c = keep[i].next();  // one datagram is waiting: this does not block
            if (!c) {
                record_error(r, c.error().code, c.error().message);
                fds[i].fd = -1;
                remaining -= per_client - st[i].done;
                continue;
            }
            const auto it = st[i].at.find(c->request_id);
            if (it != st[i].at.end()) {
                r.lat_even_ms.push_back(ms_between(it->second, clock_type::now()));
                st[i].at.erase(it);
            }
            ++st[i].done;
            --remaining;
            if (c->result) ++r.ok;  // the socket closes here
            else record_error(r, c->result.error().code, c->result.error().message);
            top_up(i);
        }
    }
    r.total_s = ms_between(t0, clock_type::now()) / 1000.0;
    return r;
}

nlohmann::json WorkerResult::to_json() const {
    nlohmann::json j{{"attempts", attempts}, {"ok", ok}, {"errored", errored}, {"tries", tries}, {"total_s", total_s},
            {"lat_even_ms", lat_even_ms}, {"lat_odd_ms", lat_odd_ms}, {"errors", errors},
            {"messages", messages}, {"sources", sources}};
    if (!series.empty()) {
        auto& s = j["series"] = nlohmann::json::array();
        for (const auto& x : series) s.push_back({x.done_ms, x.ms, x.odd ? 1 : 0});
    }
    return j;
}

WorkerResult WorkerResult::from_json(const nlohmann::json& j) {
    WorkerResult r;
    r.attempts = j.at("attempts");
    r.ok = j.at("ok");
    r.errored = j.at("errored");
    r.tries = j.at("tries");
    r.total_s = j.at("total_s");
    r.lat_even_ms = j.at("lat_even_ms").get<std::vector<double>>();
    r.lat_odd_ms = j.at("lat_odd_ms").get<std::vector<double>>();
    r.errors = j.at("errors").get<std::map<std::string, std::uint64_t>>();
    r.messages = j.at("messages").get<std::map<std::string, std::string>>();
    r.sources = j.at("sources").get<std::map<std::string, std::uint64_t>>();
    if (j.contains("series"))
        for (const auto& x : j["series"]) r.series.push_back({x.at(0), x.at(1), x.at(2) == 1});
    return r;
}

void WorkerResult::merge(const WorkerResult& o) {
    attempts += o.attempts;
    ok += o.ok;
    errored += o.errored;
    tries += o.tries;
    total_s = std::max(total_s, o.total_s);  // workers run side by side
    lat_even_ms.insert(lat_even_ms.end(), o.lat_even_ms.begin(), o.lat_even_ms.end());
    lat_odd_ms.insert(lat_odd_ms.end(), o.lat_odd_ms.begin(), o.lat_odd_ms.end());
    for (const auto& [k, v] : o.errors) errors[k] += v;
    for (const auto& [k, v] : o.messages) messages.emplace(k, v);
    for (const auto& [k, v] : o.sources) sources[k] += v;
    const auto mid = series.insert(series.end(), o.series.begin(), o.series.end());
    std::inplace_merge(series.begin(), mid, series.end(),
                       [](const Sample& x, const Sample& y) { return x.done_ms < y.done_ms; });
}

nlohmann::json WorkerResult::summary() const {
    std::vector<double> all = lat_even_ms;
    all.insert(all.end(), lat_odd_ms.begin(), lat_odd_ms.end());
    auto lat = stats(all);
    lat.erase("count");
    return {{"attempts", attempts}, {"errored", errored}, {"total_s", std::round(total_s * 1000) / 1000},
            {"latency_ms", lat}, {"even", stats(lat_even_ms)}, {"odd", stats(lat_odd_ms)},
            {"tries", tries}, {"errors", errors}, {"messages", messages}, {"sources", sources}};
}

}  // namespace egress::bench
