// Fair turns: who runs next, what one turn may cost, lanes that come and go.
#include "sched/fair_queue.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace egress {
namespace {

// A queue whose wake-ups are counted; the test calls run() itself.
struct Loop {
    int wakes = 0;
    FairQueue q{[this] { ++wakes; }, 4};
    std::string trace;

    // A task that appends `name` to the trace and costs `cost`.
    FairQueue::Task task(char name, std::uint32_t cost = 1) {
        return [this, name, cost] {
            trace += name;
            return cost;
        };
    }
    // Runs turns until nothing is left (bounded).
    void drain() {
        for (int i = 0; i < 1000 && q.ready_lanes() > 0; ++i) q.run();
    }
};

TEST(FairQueue, WorkWakesTheLoopOnceUntilItRuns) {
    Loop l;
    auto a = l.q.lane();
    a->post(l.task('a'));
    a->post(l.task('a'));
    auto b = l.q.lane();
    b->post(l.task('b'));
    EXPECT_EQ(l.wakes, 1);
    l.q.run();
    EXPECT_EQ(l.wakes, 2);  // work remains: woken again
    l.drain();
    EXPECT_EQ(l.trace, "aab");
}

TEST(FairQueue, OneTurnRunsUpToAQuantumOfCost) {
    Loop l;
    auto a = l.q.lane();
    for (int i = 0; i < 10; ++i) a->post(l.task('a'));
    l.q.run();
    EXPECT_EQ(l.trace, "aaaa");
    a->post(l.task('A', 9));  // one expensive task still runs whole
    l.drain();
    EXPECT_EQ(l.trace, "aaaaaaaaaaA");
}

TEST(FairQueue, BusyLanesTakeTurns) {
    Loop l;
    auto a = l.q.lane();
    auto b = l.q.lane();
    for (int i = 0; i < 8; ++i) {
        a->post(l.task('a'));
        b->post(l.task('b'));
    }
    l.drain();
    EXPECT_EQ(l.trace, "aaaabbbbaaaabbbb");
}

TEST(FairQueue, ALaneThatWasIdleGoesBeforeLanesThatHaveBeenBusy) {
    Loop l;
    auto busy1 = l.q.lane();
    auto busy2 = l.q.lane();
    for (int i = 0; i < 40; ++i) {
        busy1->post(l.task('x'));
        busy2->post(l.task('y'));
    }
    for (int i = 0; i < 6; ++i) l.q.run();  // both have had turns
    l.trace.clear();
    auto quiet = l.q.lane();
    quiet->post(l.task('q'));
    l.q.run();
    l.q.run();
    EXPECT_EQ(l.trace, "qxxxx");
}

TEST(FairQueue, AnIdleLaneBanksNoCredit) {
    Loop l;
    auto busy = l.q.lane();
    auto late = l.q.lane();
    for (int i = 0; i < 40; ++i) busy->post(l.task('b'));
    for (int i = 0; i < 5; ++i) l.q.run();
    // `late` was idle for five turns: it does not get five turns in a row now.
    for (int i = 0; i < 40; ++i) late->post(l.task('l'));
    l.trace.clear();
    for (int i = 0; i < 4; ++i) l.q.run();
    EXPECT_EQ(l.trace, "llllbbbbllllbbbb");
}

TEST(FairQueue, WhatATaskPostsOnItsOwnLaneWaitsForTheLanesNextTurn) {
    Loop l;
    auto a = l.q.lane();
    auto b = l.q.lane();
    std::function<std::uint32_t()> again;
    int left = 3;
    again = [&] {
        l.trace += 'a';
        if (--left > 0) a->post(again);
        return 4U;  // a whole quantum
    };
    a->post(again);
    b->post(l.task('b', 4));
    b->post(l.task('b', 4));
    l.drain();
    EXPECT_EQ(l.trace, "ababa");
}

TEST(FairQueue, ClearedAndDestroyedLanesAreSkipped) {
    Loop l;
    auto a = l.q.lane();
    auto b = l.q.lane();
    auto c = l.q.lane();
    a->post(l.task('a'));
    b->post(l.task('b'));
    c->post(l.task('c'));
    a->clear();
    b.reset();
    l.drain();
    EXPECT_EQ(l.trace, "c");
    EXPECT_EQ(l.q.ready_lanes(), 0u);
}

TEST(FairQueue, ATaskMayClearItsOwnLane) {
    Loop l;
    auto a = l.q.lane();
    a->post([&] {
        l.trace += 'a';
        a->clear();
        return 1U;
    });
    a->post(l.task('x'));
    l.drain();
    EXPECT_EQ(l.trace, "a");
    a->post(l.task('y'));  // the lane still works afterwards
    l.drain();
    EXPECT_EQ(l.trace, "ay");
}

TEST(FairQueue, ATaskMayDropTheLastReferenceToItsLane) {
    Loop l;
    auto a = l.q.lane();
    std::weak_ptr<FairQueue::Lane> w = a;
    a->post([&] {
        a.reset();  // the queue keeps the lane alive through its turn
        l.trace += 'a';
        return 1U;
    });
    l.drain();
    EXPECT_EQ(l.trace, "a");
    EXPECT_TRUE(w.expired());
}

TEST(FairQueue, RunOrPostRunsAtOnceWhenNoLaneWaits) {
    Loop l;
    auto a = l.q.lane();
    a->run_or_post(l.task('a'));
    EXPECT_EQ(l.trace, "a");
    EXPECT_EQ(l.wakes, 0) << "no trip through the loop";
    EXPECT_EQ(l.q.ready_lanes(), 0u);
}

TEST(FairQueue, RunOrPostQueuesBehindALaneThatWaits) {
    Loop l;
    auto a = l.q.lane();
    auto b = l.q.lane();
    b->post(l.task('b'));
    a->run_or_post(l.task('a'));
    EXPECT_EQ(l.trace, "");
    l.drain();
    EXPECT_EQ(l.trace, "ba");
}

TEST(FairQueue, RunOrPostInsideATurnWaitsForItsOwnTurn) {
    Loop l;
    auto a = l.q.lane();
    auto b = l.q.lane();
    a->post([&] {
        l.trace += 'a';
        b->run_or_post(l.task('b'));  // not a turn inside a's turn
        l.trace += 'A';
        return 1U;
    });
    l.drain();
    EXPECT_EQ(l.trace, "aAb");
}

TEST(FairQueue, ATurnRunAtOnceCountsAsService) {
    Loop l;
    auto a = l.q.lane();
    auto b = l.q.lane();
    a->run_or_post(l.task('a', 8));  // two quanta of service for a
    a->run_or_post(l.task('A'));     // nothing waits: at once again
    // a's next turn starts where those ended: behind b, which has had none.
    a->post(l.task('x'));
    b->post(l.task('b'));
    b->post(l.task('b'));
    l.drain();
    EXPECT_EQ(l.trace, "aAbbx");
}

TEST(FairQueue, WhatARunAtOnceTurnPostsOnItsLaneWaitsForTheNextTurn) {
    Loop l;
    auto a = l.q.lane();
    a->run_or_post([&] {
        l.trace += 'a';
        a->post(l.task('y'));
        return 1U;
    });
    EXPECT_EQ(l.trace, "a");
    EXPECT_EQ(l.wakes, 1);
    EXPECT_EQ(l.q.ready_lanes(), 1u);
    l.drain();
    EXPECT_EQ(l.trace, "ay");
}

}  // namespace
}  // namespace egress
