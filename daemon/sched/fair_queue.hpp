// Turns for the clients of one event loop: start-time fair queueing.
//
// Work for a client (reading its requests, finishing its connects, sending
// its replies) is posted on the client's Lane instead of run where it became
// possible, unless no other lane waits (run_or_post: then it runs at once, as
// the turn it would get next). run() serves the lane that has had the least service for one
// quantum of work, then yields to the event loop, so a client that always has
// work queued gets its share and no more: a lane that was idle starts at the
// current virtual time, ahead of every lane that has been busy since. Pure: the
// loop is reached only through the `wake` callback.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

namespace egress {

class FairQueue {
public:
    // Does some work and returns what it cost, in units of about one request
    // (at least 1).
    using Task = std::function<std::uint32_t()>;

    class Lane : public std::enable_shared_from_this<Lane> {
    public:
        explicit Lane(FairQueue& q) : q_(q) {}
        // Queues `t` behind this lane's other tasks.
        void post(Task t);
        // Runs `work` (a Task-like callable) at once as this lane's turn when
        // no lane waits for one and no turn is under way: the turn it would
        // have got next, without the trip through the event loop. Otherwise
        // posts it.
        template <class F>
        void run_or_post(F&& work) {
            if (!q_.idle() || ready_) return post(Task(std::forward<F>(work)));
            const auto start = q_.begin_turn(*this);
            q_.end_turn(*this, start, work());
        }
        // Drops every queued task (their captures are released now).
        void clear() { tasks_.clear(); }
        bool idle() const { return tasks_.empty(); }

    private:
        friend class FairQueue;
        FairQueue& q_;
        std::deque<Task> tasks_;
        std::uint64_t finish_ = 0;  // virtual time at the end of its last turn
        bool ready_ = false;        // in q_.ready_
    };

    // `wake` must make the event loop call run() soon (post it); it is called
    // once each time work appears while no run() is pending.
    FairQueue(std::function<void()> wake, std::uint32_t quantum);
    FairQueue(const FairQueue&) = delete;
    FairQueue& operator=(const FairQueue&) = delete;

    // A lane for one client. The queue must outlive every post() on it; a
    // lane may outlive the queue if nothing posts on it any more.
    std::shared_ptr<Lane> lane() { return std::make_shared<Lane>(*this); }

    // Runs the tasks of the lane with the least service until their cost
    // reaches one quantum or the lane is empty; wakes again if work remains.
    void run();

    std::size_t ready_lanes() const { return ready_.size(); }

private:
    void make_ready(Lane& lane, std::uint64_t start);
    // No lane has work and no turn is under way.
    bool idle() const { return ready_.empty() && !in_turn_; }
    // A turn of `lane` that run_or_post runs at once: where it starts, and
    // its end (what its work posted on the lane waits for the next turn).
    std::uint64_t begin_turn(Lane& lane);
    void end_turn(Lane& lane, std::uint64_t start, std::uint32_t cost);

    std::function<void()> wake_;
    std::uint32_t quantum_;
    std::uint64_t now_ = 0;  // virtual time: the start of the turn last served
    // Lanes with work, a min-heap by the virtual time their next turn starts;
    // equal times keep the order they arrived in (seq). A vector heap: no
    // allocation per turn once it has grown.
    struct Ready {
        std::uint64_t start;
        std::uint64_t seq;
        std::weak_ptr<Lane> lane;
        // std::push_heap keeps the greatest first: "greater" is the earlier turn.
        bool operator<(const Ready& o) const { return start != o.start ? start > o.start : seq > o.seq; }
    };
    void push_ready(std::uint64_t start, std::weak_ptr<Lane> lane);
    std::vector<Ready> ready_;
    std::uint64_t seq_ = 0;
    bool woken_ = false;
    bool in_turn_ = false;  // a task runs (run_or_post must not start another turn inside it)
};

}  // namespace egress
