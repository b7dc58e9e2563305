// Fluent construction of one descriptor chain on a FakeDriverQueue:
//
//   uint16_t head = driver.chain()
//                       .readable(header_gpa, 12)
//                       .writable(buffer_gpa, 1500)
//                       .build();          // writes the descriptors only
//   driver.offer(head);                    // or .offer() instead of .build()
//
// .indirect() puts the buffers in an indirect table (allocated from the
// driver's data area) referenced by a single descriptor of the main table,
// the way Linux does with VIRTIO_F_INDIRECT_DESC.  Buffers are chained in
// the order given; nothing is validated, so a test can build a readable
// buffer after a writable one on purpose.
#pragma once

#include <cstdint>
#include <vector>

#include "support/fake_driver_queue.h"

namespace tapvm::testing {

class DescriptorChainBuilder {
public:
    explicit DescriptorChainBuilder(FakeDriverQueue& driver) : driver_(driver) {}

    DescriptorChainBuilder& readable(Gpa gpa, uint32_t len) { return add(gpa, len, 0); }
    DescriptorChainBuilder& writable(Gpa gpa, uint32_t len) { return add(gpa, len, kDescWrite); }
    // A buffer with explicit extra flags (e.g. a stray kDescIndirect).
    DescriptorChainBuilder& add(Gpa gpa, uint32_t len, uint16_t flags);
    DescriptorChainBuilder& indirect();

    // Writes the descriptors (and the indirect table) and returns the head
    // index.  Does not touch the avail ring.  With no buffers added, writes
    // one zero-length descriptor.
    uint16_t build();
    // build() + FakeDriverQueue::offer(head).
    uint16_t offer();

    // After build() with indirect(): where the table went.
    Gpa indirect_table() const { return table_; }

private:
    FakeDriverQueue& driver_;
    std::vector<RawDescriptor> buffers_;
    bool indirect_ = false;
    Gpa table_ = 0;
};

}  // namespace tapvm::testing
