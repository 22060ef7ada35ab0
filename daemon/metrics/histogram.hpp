// Histograms that every event loop observes into its own shard, merged when
// scraped. prometheus-cpp 1.0's Histogram takes a mutex on every Observe():
// loops observing the same series (one pool and source, or the request
// duration) would contend for it on every request. A shard is written by one
// loop (relaxed atomics, so a stray writer stays correct) and read by the
// scrape, which sums the shards.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace egress {

class ShardedHistogram {
public:
    // At most kMaxBuckets bounds, increasing (std::invalid_argument otherwise).
    ShardedHistogram(const std::vector<double>& bounds, std::size_t shards);

    // Counts one value in `shard`'s shard (taken modulo the shard count).
    void observe(std::size_t shard, double value);

    // The merged histogram, cumulative buckets ending with +Inf, as
    // prometheus-cpp's own Histogram reports it.
    prometheus::ClientMetric::Histogram collect() const;

    static constexpr std::size_t kMaxBuckets = 31;

private:
    struct alignas(64) Shard {
        std::array<std::atomic<std::uint64_t>, kMaxBuckets + 1> buckets{};  // last: above every bound
        std::atomic<double> sum{0};
    };
    std::vector<double> bounds_;
    std::unique_ptr<Shard[]> shards_;
    std::size_t shard_count_;
};

// Families of ShardedHistograms, exported as one Collectable (register it
// beside the Registry). Adding a series takes a mutex; observing does not.
class HistogramFamilies : public prometheus::Collectable {
public:
    explicit HistogramFamilies(std::size_t shards) : shards_(shards) {}

    class Family {
    public:
        // The series for `labels`, made on first use; the reference stays
        // valid as long as the HistogramFamilies.
        ShardedHistogram& add(const std::map<std::string, std::string>& labels, const std::vector<double>& bounds);

    private:
        friend class HistogramFamilies;
        Family(HistogramFamilies& owner, std::string name, std::string help)
            : owner_(owner), name_(std::move(name)), help_(std::move(help)) {}
        HistogramFamilies& owner_;
        std::string name_, help_;
        std::map<std::map<std::string, std::string>, std::unique_ptr<ShardedHistogram>> series_;
    };

    Family& add(const std::string& name, const std::string& help);
    std::vector<prometheus::MetricFamily> Collect() const override;

private:
    std::size_t shards_;
    mutable std::mutex mutex_;  // the families and their series maps
    std::deque<Family> families_;
};

}  // namespace egress
