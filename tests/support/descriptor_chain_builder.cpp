#include "support/descriptor_chain_builder.h"

namespace tapvm::testing {

DescriptorChainBuilder& DescriptorChainBuilder::add(Gpa gpa, uint32_t len, uint16_t flags) {
    buffers_.push_back(RawDescriptor{gpa, len, flags, 0});
    return *this;
}

DescriptorChainBuilder& DescriptorChainBuilder::indirect() {
    indirect_ = true;
    return *this;
}

uint16_t DescriptorChainBuilder::build() {
    std::vector<RawDescriptor> descs = buffers_;
    if (descs.empty()) descs.push_back(RawDescriptor{});

    if (indirect_) {
        // Inside an indirect table the chain uses indices 0, 1, 2, ...
        for (size_t i = 0; i + 1 < descs.size(); ++i) {
            descs[i].flags |= kDescNext;
            descs[i].next = static_cast<uint16_t>(i + 1);
        }
        table_ = driver_.alloc(16 * descs.size());
        driver_.write_table(table_, descs);
        const uint16_t head = driver_.take_descriptors(1);
        driver_.write_descriptor(
            head, RawDescriptor{table_, static_cast<uint32_t>(16 * descs.size()), kDescIndirect, 0});
        return head;
    }

    const uint16_t size = driver_.size();
    const uint16_t head = driver_.take_descriptors(static_cast<uint16_t>(descs.size()));
    for (size_t i = 0; i < descs.size(); ++i) {
        const auto index = static_cast<uint16_t>((head + i) % size);
        if (i + 1 < descs.size()) {
            descs[i].flags |= kDescNext;
            descs[i].next = static_cast<uint16_t>((index + 1) % size);
        }
        driver_.write_descriptor(index, descs[i]);
    }
    return head;
}

uint16_t DescriptorChainBuilder::offer() {
    const uint16_t head = build();
    driver_.offer(head);
    return head;
}

}  // namespace tapvm::testing
