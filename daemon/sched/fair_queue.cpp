#include "sched/fair_queue.hpp"

#include <algorithm>

namespace egress {

FairQueue::FairQueue(std::function<void()> wake, std::uint32_t quantum)
    : wake_(std::move(wake)), quantum_(std::max<std::uint32_t>(quantum, 1)) {}

void FairQueue::Lane::post(Task t) {
    tasks_.push_back(std::move(t));
    // An idle lane banks no credit: its turn starts no earlier than now.
    if (!ready_) q_.make_ready(*this, std::max(q_.now_, finish_));
}

void FairQueue::make_ready(Lane& lane, std::uint64_t start) {
    lane.ready_ = true;
    ready_.emplace(start, lane.weak_from_this());
    if (!woken_) {
        woken_ = true;
        wake_();
    }
}

void FairQueue::run() {
    woken_ = false;
    while (!ready_.empty()) {
        const auto it = ready_.begin();
        const auto start = it->first;
        auto lane = it->second.lock();  // kept alive through its own tasks
        ready_.erase(it);
        if (!lane) continue;  // its client is gone
        if (lane->tasks_.empty()) {  // cleared meanwhile
            lane->ready_ = false;
            continue;
        }
        // ready_ stays set through the turn: what its tasks post waits for
        // the lane's next turn, which starts where this one ends.
        now_ = start;
        std::uint64_t cost = 0;
        while (cost < quantum_ && !lane->tasks_.empty()) {
            auto task = std::move(lane->tasks_.front());
            lane->tasks_.pop_front();
            cost += std::max<std::uint32_t>(task(), 1);
        }
        lane->finish_ = start + cost;
        if (lane->tasks_.empty()) lane->ready_ = false;
        else ready_.emplace(lane->finish_, lane);
        break;  // one turn per run(): the loop polls for new work in between
    }
    if (!ready_.empty() && !woken_) {
        woken_ = true;
        wake_();
    }
}

}  // namespace egress
