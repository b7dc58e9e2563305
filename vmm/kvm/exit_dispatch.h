// Routing of vCPU exits to the port I/O and MMIO buses, and the decision of
// what each exit means for the machine.  A free function over a parsed exit,
// so tests feed it fake exits and fake bus devices.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <set>
#include <utility>

#include "vmm/bus.h"
#include "vmm/io_event.h"
#include "vmm/kvm/exit.h"
#include "vmm/kvm/exit_action.h"

namespace tapvm::kvm {

// Accesses no device claimed.  Guests probe for hardware that is not there
// (Linux pokes legacy ports at boot), so these are normal: each is counted,
// and each address is logged the first time only.  The set of logged
// addresses is bounded so that a guest scanning its address space cannot
// grow it without limit.  Thread-safe: every vCPU thread shares one.
class UnclaimedAccessLog {
public:
    static constexpr size_t kMaxLoggedAddresses = 256;

    void record(AddressSpace space, uint64_t address, size_t size, bool is_write);
    uint64_t reads() const { return reads_.load(std::memory_order_relaxed); }
    uint64_t writes() const { return writes_.load(std::memory_order_relaxed); }

private:
    std::atomic<uint64_t> reads_{0};
    std::atomic<uint64_t> writes_{0};
    std::mutex mutex_;
    std::set<std::pair<AddressSpace, uint64_t>> logged_;
};

struct Buses {
    Buses(const Bus& pio_bus, const Bus& mmio_bus) : pio(pio_bus), mmio(mmio_bus) {}
    const Bus& pio;
    const Bus& mmio;
    UnclaimedAccessLog unclaimed;
};

// Handles every exit that needs no access to the vCPU's registers: port I/O
// (each element of a `rep ins/outs` in turn) and MMIO go to the buses (an
// unclaimed read returns all-ones like an empty bus, an unclaimed write is
// dropped); lifecycle exits become PowerOff/Reboot/Crash; everything KVM
// could not do becomes Fatal.  Emulation failures are completed elsewhere
// (emulation_fixup.h) before this is called; here they are Fatal.
ExitAction dispatch_exit(const VcpuExit& exit, Buses& buses);

}  // namespace tapvm::kvm
