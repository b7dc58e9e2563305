// Guest notifications that bypass the vCPU thread: a write to a registered
// address signals an eventfd inside KVM (ioeventfd).  Devices register their
// doorbells through this interface; tests use a fake that records them.
#pragma once

#include <cstdint>
#include <optional>

namespace tapvm {

enum class AddressSpace { Pio, Mmio };

struct IoEventSpec {
    AddressSpace space = AddressSpace::Mmio;
    uint64_t address = 0;
    uint32_t length = 0;                 // 0 = any width (MMIO only), else 1/2/4/8
    std::optional<uint64_t> datamatch;   // signal only when the written value matches
    int eventfd = -1;
    bool operator==(const IoEventSpec&) const = default;
};

class IoEventRegistry {
public:
    virtual ~IoEventRegistry() = default;
    // Throw Error on failure.
    virtual void add(const IoEventSpec& spec) = 0;
    virtual void remove(const IoEventSpec& spec) = 0;
};

}  // namespace tapvm
