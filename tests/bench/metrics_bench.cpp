// What recording one finished connect costs on the request path: the
// per-source handles (no label lookups), prometheus-cpp's atomics and the
// histogram's uncontended mutex. Compare with the ~15 us a connect costs.
#include <benchmark/benchmark.h>
#include <prometheus/registry.h>

#include <cerrno>

#include "metrics/metrics.hpp"

namespace {

using egress::Metrics;

void BM_RecordOkConnect(benchmark::State& state) {
    prometheus::Registry registry;
    Metrics m(registry, {"bench", "kernel", "window"});
    auto& source = m.source("pool", "192.0.2.1");
    bool odd = false;
    for (auto _ : state) {
        source.connect_done(0, egress::Transport::tcp, 0, odd, odd, 0, 0.000015);
        m.inflight.Increment();
        m.inflight.Decrement();
        m.request_duration.observe(0, 0.00002);
        m.handoffs.Increment();
        odd = !odd;
    }
}
BENCHMARK(BM_RecordOkConnect);

void BM_RecordFailedConnect(benchmark::State& state) {
    prometheus::Registry registry;
    Metrics m(registry, {"bench", "kernel", "window"});
    auto& source = m.source("pool", "192.0.2.1");
    for (auto _ : state) source.connect_done(0, egress::Transport::tcp, ECONNREFUSED, false, false, 1, 0.0001);
}
BENCHMARK(BM_RecordFailedConnect);

// The lookup the handles avoid: a label-set lookup per connect.
void BM_LookupByLabelsInstead(benchmark::State& state) {
    prometheus::Registry registry;
    auto& family = prometheus::BuildCounter().Name("x_total").Help("x").Register(registry);
    for (auto _ : state)
        family.Add({{"pool", "pool"}, {"source", "192.0.2.1"}, {"result", "ok"}}).Increment();
}
BENCHMARK(BM_LookupByLabelsInstead);

}  // namespace

BENCHMARK_MAIN();
