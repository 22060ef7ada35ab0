#include "histogram.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace egress {

ShardedHistogram::ShardedHistogram(const std::vector<double>& bounds, std::size_t shards)
    : bounds_(bounds), shards_(std::make_unique<Shard[]>(std::max<std::size_t>(shards, 1))),
      shard_count_(std::max<std::size_t>(shards, 1)) {
    if (bounds.size() > kMaxBuckets) throw std::invalid_argument("too many histogram buckets");
    if (!std::is_sorted(bounds.begin(), bounds.end()) ||
        std::adjacent_find(bounds.begin(), bounds.end()) != bounds.end())
        throw std::invalid_argument("histogram bounds must increase");
}

void ShardedHistogram::observe(std::size_t shard, double value) {
    auto& s = shards_[shard % shard_count_];
    // The first bound the value does not exceed (Prometheus's "le").
    const auto b = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
    s.buckets[b].fetch_add(1, std::memory_order_relaxed);
    s.sum.fetch_add(value, std::memory_order_relaxed);
}

prometheus::ClientMetric::Histogram ShardedHistogram::collect() const {
    std::vector<std::uint64_t> counts(bounds_.size() + 1, 0);
    double sum = 0;
    for (std::size_t i = 0; i < shard_count_; ++i) {
        for (std::size_t b = 0; b < counts.size(); ++b)
            counts[b] += shards_[i].buckets[b].load(std::memory_order_relaxed);
        sum += shards_[i].sum.load(std::memory_order_relaxed);
    }
    prometheus::ClientMetric::Histogram h;
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < counts.size(); ++b) {
        cumulative += counts[b];
        h.bucket.push_back({cumulative, b < bounds_.size() ? bounds_[b] : std::numeric_limits<double>::infinity()});
    }
    h.sample_count = cumulative;
    h.sample_sum = sum;
    return h;
}

ShardedHistogram& HistogramFamilies::Family::add(const std::map<std::string, std::string>& labels,
                                                 const std::vector<double>& bounds) {
    const std::lock_guard lock(owner_.mutex_);
    auto& slot = series_[labels];
    if (!slot) slot = std::make_unique<ShardedHistogram>(bounds, owner_.shards_);
    return *slot;
}

HistogramFamilies::Family& HistogramFamilies::add(const std::string& name, const std::string& help) {
    const std::lock_guard lock(mutex_);
    return families_.emplace_back(Family(*this, name, help));
}

std::vector<prometheus::MetricFamily> HistogramFamilies::Collect() const {
    const std::lock_guard lock(mutex_);
    std::vector<prometheus::MetricFamily> out;
    for (const auto& f : families_) {
        prometheus::MetricFamily mf{f.name_, f.help_, prometheus::MetricType::Histogram, {}};
        for (const auto& [labels, h] : f.series_) {
            prometheus::ClientMetric m;
            for (const auto& [k, v] : labels) m.label.push_back({k, v});
            m.histogram = h->collect();
            mf.metric.push_back(std::move(m));
        }
        out.push_back(std::move(mf));
    }
    return out;
}

}  // namespace egress
