// How a virtio-pci device interrupts its driver (virtio 1.2 §4.1.5.3,
// §4.1.5.4): through the MSI-X vector the driver mapped to the queue (or to
// configuration changes) when MSI-X is enabled, else by setting an ISR bit
// and asserting INTx until the driver reads the ISR.
//
// signal_queue()/signal_config() come from device threads; the vector and
// ISR registers from vCPU threads.  Vector numbers are atomics, the ISR and
// the INTx level change together under one mutex so that a read-to-clear
// can never leave the line asserted with an empty ISR (a level-triggered
// interrupt storm) or clear a bit without deasserting.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "virtio/virtio_device.h"

namespace tapvm::pci {
class PciFunction;
class MsixTable;
}  // namespace tapvm::pci

namespace tapvm::virtio {

class VirtioPciInterrupt : public VirtioInterrupt {
public:
    // `function` must outlive this object and already have its MSI-X table
    // (if it has one).
    VirtioPciInterrupt(pci::PciFunction& function, uint16_t num_queues);

    void signal_queue(uint16_t queue_index) override;
    void signal_config() override;

    // config_msix_vector / queue_msix_vector (§4.1.5.1.2.1): a vector the
    // table does not have cannot be mapped and reads back as NO_VECTOR.
    // Both setters return what is now stored.
    uint16_t set_config_vector(uint16_t vector);
    uint16_t config_vector() const;
    uint16_t set_queue_vector(uint16_t queue, uint16_t vector);
    uint16_t queue_vector(uint16_t queue) const;

    // ISR status (§4.1.4.5): reading returns the bits and clears them, which
    // deasserts INTx.
    uint8_t read_isr();
    // config_generation (§4.1.4.3): changes whenever the device signals a
    // configuration change.
    uint8_t config_generation() const;
    bool msix_enabled() const;

    // Device reset: all events unmapped (§4.1.5.1.2.1), ISR clear, INTx low.
    void reset();

private:
    void raise_isr(uint8_t bits, bool assert_intx);

    pci::PciFunction& function_;
    std::shared_ptr<pci::MsixTable> msix_;  // null: no MSI-X capability
    std::vector<std::atomic<uint16_t>> queue_vectors_;
    std::atomic<uint16_t> config_vector_;
    std::atomic<uint8_t> generation_{0};
    std::mutex isr_mutex_;
    uint8_t isr_ = 0;
};

}  // namespace tapvm::virtio
