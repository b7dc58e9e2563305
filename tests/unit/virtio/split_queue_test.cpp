#include "virtio/split_queue.h"

#include <gtest/gtest.h>

#include "support/testkit.h"
#include "virtio/features.h"

namespace tapvm::virtio {
namespace {

using testing::FakeDriverQueue;

TEST(SplitQueueSmoke, PopsWhatTheDriverOffers) {
    GuestMemory memory({{0, 16 << 20}});
    FakeDriverQueue driver(memory, {.size = 8});
    std::string why;
    auto queue = SplitQueue::create(memory, driver.config(), 0, why);
    ASSERT_TRUE(queue) << why;
    const Gpa buf = driver.alloc(100);
    const uint16_t head = driver.chain().readable(buf, 10).writable(buf + 16, 50).offer();
    DescriptorChain chain;
    ASSERT_EQ(queue->pop(chain).status, PopStatus::kChain);
    EXPECT_EQ(chain.head(), head);
    EXPECT_EQ(chain.readable_bytes(), 10u);
    EXPECT_EQ(chain.writable_bytes(), 50u);
    queue->complete(chain, 7);
    queue->publish();
    EXPECT_EQ(driver.next_used(), (testing::UsedEntry{head, 7}));
}

}  // namespace
}  // namespace tapvm::virtio
