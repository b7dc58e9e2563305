#include "firmware/huge_page_buffer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <utility>

namespace tapvm::boot {
namespace {

TEST(HugePageBuffer, IsZeroFilledAndWritable) {
    HugePageBuffer buffer(3 << 20);
    ASSERT_EQ(buffer.size(), 3u << 20);
    EXPECT_TRUE(std::ranges::all_of(buffer.bytes(), [](uint8_t b) { return b == 0; }));
    buffer.bytes()[12345] = 0x77;
    EXPECT_EQ(buffer.bytes()[12345], 0x77);
}

TEST(HugePageBuffer, MoveTransfersOwnership) {
    HugePageBuffer a(4096);
    a.bytes()[0] = 1;
    const uint8_t* data = a.bytes().data();
    HugePageBuffer b(std::move(a));
    EXPECT_EQ(a.size(), 0u);
    EXPECT_TRUE(a.bytes().empty());
    EXPECT_EQ(b.bytes().data(), data);
    EXPECT_EQ(b.bytes()[0], 1);
    HugePageBuffer c(0);
    c = std::move(b);
    EXPECT_EQ(c.size(), 4096u);
    EXPECT_EQ(b.size(), 0u);
}

TEST(HugePageBuffer, EmptyBufferHasNoMapping) {
    HugePageBuffer empty(0);
    EXPECT_EQ(empty.size(), 0u);
    EXPECT_EQ(empty.bytes().data(), nullptr);
}

}  // namespace
}  // namespace tapvm::boot
