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

void FairQueue::push_ready(std::uint64_t start, std::weak_ptr<Lane> lane) {
    ready_.push_back(Ready{start, seq_++, std::move(lane)});
    std::push_heap(ready_.begin(), ready_.end());
}

void FairQueue::make_ready(Lane& lane, std::uint64_t start) {
    lane.ready_ = true;
    push_ready(start, lane.weak_from_this());
    if (!woken_) {
        woken_ = true;
        wake_();
    }
}

std::uint64_t FairQueue::begin_turn(Lane& lane) {
    // As make_ready would have placed it: an idle lane banks no credit.
    const auto start = std::max(now_, lane.finish_);
    now_ = start;
    lane.ready_ = true;
    in_turn_ = true;
    return start;
}

void FairQueue::end_turn(Lane& lane, std::uint64_t start, std::uint32_t cost) {
    in_turn_ = false;
    lane.finish_ = start + std::max<std::uint32_t>(cost, 1);
    lane.ready_ = false;
    if (!lane.tasks_.empty()) make_ready(lane, lane.finish_);
}

void FairQueue::run() {
    woken_ = false;
    while (!ready_.empty()) {
        std::pop_heap(ready_.begin(), ready_.end());
        const auto start = ready_.back().start;
        auto lane = ready_.back().lane.lock();  // kept alive through its own tasks
        ready_.pop_back();
        if (!lane) continue;  // its client is gone
        if (lane->tasks_.empty()) {  // cleared meanwhile
            lane->ready_ = false;
            continue;
        }
        // ready_ stays set through the turn: what its tasks post waits for
        // the lane's next turn, which starts where this one ends.
        now_ = start;
        std::uint64_t cost = 0;
        in_turn_ = true;
        while (cost < quantum_ && !lane->tasks_.empty()) {
            auto task = std::move(lane->tasks_.front());
            lane->tasks_.pop_front();
            cost += std::max<std::uint32_t>(task(), 1);
        }
        in_turn_ = false;
        lane->finish_ = start + cost;
        if (lane->tasks_.empty()) lane->ready_ = false;
        else push_ready(lane->finish_, lane);
        break;  // one turn per run(): the loop polls for new work in between
    }
    if (!ready_.empty() && !woken_) {
        woken_ = true;
        wake_();
    }
}

}  // namespace egress
