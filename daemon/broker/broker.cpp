#include "broker.hpp"

#include <random>

namespace egress {
namespace {

// How often a draining loop looks whether its sessions are done.
constexpr auto kDrainPoll = std::chrono::milliseconds(10);

}  // namespace

Broker::Broker(Shared& shared, Snapshot first, std::size_t threads) : shared_(shared) {
    threads = std::max<std::size_t>(threads, 1);
    shared_.loop_clients.assign(threads, {});
    std::random_device seeds;
    for (std::size_t i = 0; i < threads; ++i) {
        const std::uint64_t seed = (std::uint64_t{seeds()} << 32) ^ seeds();
        loops_.push_back(std::make_unique<Loop>(shared, i, first, seed));
    }
}

Broker::~Broker() {
    for (auto& l : loops_) {
        l->ctx.io.stop();
        if (l->thread.joinable()) l->thread.join();
    }
}

void Broker::run() {
    // Each loop's io_context has work to wait for (sessions, timers) only
    // once clients come: keep the others running until stop() says.
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep;
    for (std::size_t i = 1; i < loops_.size(); ++i) {
        auto& l = *loops_[i];
        keep.push_back(asio::make_work_guard(l.ctx.io));
        l.thread = std::thread([&l] {
            // Signals are main's to handle (signal_set on loop 0).
            sigset_t all;
            sigfillset(&all);
            pthread_sigmask(SIG_BLOCK, &all, nullptr);
            l.ctx.io.run();
        });
    }
    home().io.run();
    keep.clear();
    for (std::size_t i = 1; i < loops_.size(); ++i)
        if (loops_[i]->thread.joinable()) loops_[i]->thread.join();
}

void Broker::hand_over(UniqueFd client, Credentials peer, QuotaTable::Slot quota) {
    // Fewest connections first: a proxy for load that a client's next
    // request cannot game, as the choice is made once per connection.
    std::size_t best = next_ % loops_.size();
    for (std::size_t k = 1; k < loops_.size(); ++k) {
        const auto i = (next_ + k) % loops_.size();
        if (shared_.loop_clients[i].get() < shared_.loop_clients[best].get()) best = i;
    }
    next_ = best + 1;
    auto& loop = *loops_[best];
    shared_.loop_clients[best].add();
    shared_.stats.clients_connected.add();
    asio::post(loop.ctx.io, [this, &loop, client = std::move(client), peer = std::move(peer),
                             quota = std::move(quota)]() mutable {
        start_session(loop, std::move(client), std::move(peer), std::move(quota));
    });
}

void Broker::start_session(Loop& loop, UniqueFd client, Credentials peer, QuotaTable::Slot quota) {
    auto on_closed = [this, &loop](Session* gone) {
        shared_.loop_clients[loop.ctx.index].sub();
        shared_.stats.clients_connected.sub();
        // Erase later: the session may be deep inside its own call stack.
        asio::post(loop.ctx.io, [&loop, gone] { loop.sessions.erase(gone); });
    };
    auto s = std::make_shared<Session>(loop.ctx, std::move(client), std::move(peer), std::move(quota), on_closed);
    loop.sessions.emplace(s.get(), s);
    if (loop.draining) s->drain(*loop.draining);
    s->start();
}

void Broker::publish(const Snapshot& next) {
    for (auto& l : loops_)
        asio::post(l->ctx.io, [ctx = &l->ctx, next] {
            // New lookups take the new resolver; those under way keep the old.
            if (next.config->dns != ctx->now.config->dns) {
                try {
                    ctx->resolver = std::make_shared<Resolver>(ctx->io, next.config->dns);
                } catch (const std::exception& e) {  // checked at reload: cannot happen but for memory
                    spdlog::error("loop {}: keeps its resolver: {}", ctx->index, e.what());
                }
            }
            ctx->now = next;
        });
}

void Broker::publish(std::shared_ptr<const HostFacts> host) {
    for (auto& l : loops_) asio::post(l->ctx.io, [ctx = &l->ctx, host] { ctx->host = host; });
}

void Broker::drain(std::string why, std::function<void()> drained) {
    drained_ = std::move(drained);
    loops_draining_ = loops_.size();
    for (auto& l : loops_)
        asio::post(l->ctx.io, [&loop = *l, why] {
            loop.draining = why;
            for (auto& [raw, s] : loop.sessions) s->drain(why);
        });
}

void Broker::no_more_clients() {
    // Posted after every hand_over: each loop sees this once the last
    // client it was given is its session.
    for (auto& l : loops_)
        asio::post(l->ctx.io, [this, &loop = *l] {
            loop.last_client = true;
            check_drained(loop);
        });
}

void Broker::check_drained(Loop& loop) {
    if (loop.drained_told || !loop.draining) return;
    const bool idle = loop.last_client && std::all_of(loop.sessions.begin(), loop.sessions.end(),
                                                      [](const auto& s) { return s.second->idle(); });
    if (idle) {
        loop.drained_told = true;
        asio::post(home().io, [this] {
            if (loops_draining_ && --loops_draining_ == 0 && drained_) std::exchange(drained_, nullptr)();
        });
        return;
    }
    loop.drain_poll.expires_after(kDrainPoll);
    loop.drain_poll.async_wait([this, &loop](const error_code& ec) {
        if (!ec) check_drained(loop);
    });
}

void Broker::abort_inflight(const std::string& why) {
    for (auto& l : loops_)
        asio::post(l->ctx.io, [&loop = *l, why] {
            // A session may close while it answers (a send fails): iterate a copy.
            std::vector<std::shared_ptr<Session>> sessions;
            for (auto& [raw, s] : loop.sessions) sessions.push_back(s);
            for (auto& s : sessions) s->abort_inflight(why);
        });
}

void Broker::stop() {
    for (auto& l : loops_)
        asio::post(l->ctx.io, [&loop = *l] {
            loop.drain_poll.cancel();
            auto sessions = std::move(loop.sessions);
            for (auto& [raw, s] : sessions) s->close("egressd is shutting down");
            // Adopted connects still watched, also those of closed sessions:
            // their sockets' copies close now, without figures.
            for (auto& [key, watch] : std::exchange(loop.ctx.adopt_watches, {}))
                if (auto op = watch.lock()) op->cancel();
            loop.ctx.io.stop();
        });
}

bool Broker::all_loops_turning() {
    bool all = true;
    for (auto& l : loops_) all = all && l->probe_seen.load(std::memory_order_acquire) == probe_;
    ++probe_;
    for (auto& l : loops_)
        asio::post(l->ctx.io, [&loop = *l, n = probe_] { loop.probe_seen.store(n, std::memory_order_release); });
    return all;
}

}  // namespace egress
