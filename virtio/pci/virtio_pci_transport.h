// The virtio-pci transport (virtio 1.2 §4.1): puts any VirtioDevice on the
// PCI bus as a PciFunction that Linux's virtio_pci driver (modern or legacy)
// can drive.
//
//   auto transport = std::make_unique<virtio::VirtioPciTransport>(
//       net_device, memory, msi_allocator, io_events, virtio::VirtioPciOptions{.name = "virtio-net"});
//   host_bridge.add_device(transport->function());
//
// What the guest sees:
//   * vendor 0x1af4; transitional (legacy = true): device 0x1000 + legacy
//     type index (net 0x1000), revision 0, subsystem id = device type, as
//     legacy drivers require (§4.1.2.3); modern only: 0x1040 + type,
//     revision 1;
//   * BAR0 (transitional only): the legacy I/O interface, 256 bytes;
//   * BAR1, 32-bit memory: common config, ISR, device config, notify
//     doorbells (multiplier 4, queue_notify_off = queue index), MSI-X table
//     (num_queues + 1 vectors) and PBA — see virtio_pci_regs.h;
//   * vendor capabilities COMMON, NOTIFY, ISR, DEVICE and PCI_CFG, then MSI-X;
//   * INTA# for drivers without MSI-X.
//
// Kicks reach the device through one eventfd per queue (ioeventfd when the
// registry accepts it, the BAR handler otherwise); interrupts through
// MSI-X vectors or INTx + ISR.  The transport must outlive nothing: the
// function may stay on the bus after the transport is gone, its registers
// then read as zero.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "virtio/virtio_device.h"
#include "vmm/guest_memory.h"
#include "vmm/io_event.h"
#include "vmm/irq.h"

namespace tapvm::pci {
class PciFunction;
}

namespace tapvm::virtio {

class TransportCore;

struct VirtioPciOptions {
    // Transitional device with the legacy I/O BAR0; false = modern only
    // (device id 0x1040 + type, no I/O BAR).
    bool legacy = true;
    std::string name = "virtio";
};

class VirtioPciTransport {
public:
    // Throws Error when the device's shape cannot be exposed (no queues,
    // max queue size not a power of two up to 32768, a legacy interface for
    // a device type that has no transitional id) or MSI routes run out.
    // `memory`, `msi` and `io_events` must outlive the transport.
    VirtioPciTransport(std::shared_ptr<VirtioDevice> device, const GuestMemory& memory, MsiAllocator& msi,
                       IoEventRegistry& io_events, VirtioPciOptions options = {});
    ~VirtioPciTransport();
    VirtioPciTransport(const VirtioPciTransport&) = delete;
    VirtioPciTransport& operator=(const VirtioPciTransport&) = delete;

    // For the host bridge (PciHostBridge::add_device).
    const std::shared_ptr<pci::PciFunction>& function() const { return function_; }

    // Device status as the driver sees it (virtio 1.2 §2.1).
    uint8_t device_status() const;
    // Between a successful DRIVER_OK and the next reset.
    bool active() const;
    // The transport's interrupt, as handed to the device at activation.
    VirtioInterrupt& interrupt();
    // For the device, from any thread (its I/O thread included): it cannot
    // go on, e.g. a virtqueue is broken().  Sets DEVICE_NEEDS_RESET and
    // sends a configuration change interrupt (virtio 1.2 §2.1.2), once until
    // the driver resets the device.  Never blocks on a register access.
    void device_needs_reset();

private:
    std::shared_ptr<pci::PciFunction> function_;
    std::shared_ptr<TransportCore> core_;
};

}  // namespace tapvm::virtio
