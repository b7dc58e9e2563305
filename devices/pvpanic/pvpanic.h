// The pvpanic device (QEMU docs/specs/pvpanic.rst, ISA interface): one I/O
// port through which the guest kernel reports a panic before it reboots or
// halts.  It is how tapvm tells "the guest rebooted" from "the guest crashed
// and panic=-1 rebooted it", so a panic ends tapvm with a non-zero status.
// Linux binds it through the DSDT device "QEMU0001" (pvpanic-mmio driver,
// which accepts an I/O resource).
#pragma once

#include <functional>

#include "vmm/bus.h"

namespace tapvm {

class PvPanic : public BusDevice {
public:
    // Event bits (read: what the device understands; write: what happened).
    static constexpr uint8_t kPanicked = 1u << 0;      // host should handle the panic
    static constexpr uint8_t kCrashLoaded = 1u << 1;   // guest handles it (kdump)

    explicit PvPanic(std::function<void(uint8_t events)> on_event) : on_event_(std::move(on_event)) {}

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    std::function<void(uint8_t)> on_event_;
};

}  // namespace tapvm
