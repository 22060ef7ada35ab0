// The standard process_* metrics (open and maximum descriptors, resident
// memory, start time, CPU time), read from /proc/self when scraped.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

namespace egress {

class ProcessCollector final : public prometheus::Collectable {
public:
    std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace egress
