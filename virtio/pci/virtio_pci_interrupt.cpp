#include "virtio/pci/virtio_pci_interrupt.h"

#include "devices/pci/msix.h"
#include "devices/pci/pci_function.h"
#include "virtio/pci/virtio_pci_regs.h"

namespace tapvm::virtio {

using pci_regs::kNoVector;

VirtioPciInterrupt::VirtioPciInterrupt(pci::PciFunction& function, uint16_t num_queues)
    : function_(function), msix_(function.msix()), queue_vectors_(num_queues), config_vector_(kNoVector) {
    for (auto& v : queue_vectors_) v.store(kNoVector, std::memory_order_relaxed);
}

bool VirtioPciInterrupt::msix_enabled() const { return msix_ && msix_->enabled(); }

void VirtioPciInterrupt::signal_queue(uint16_t queue_index) {
    if (queue_index >= queue_vectors_.size()) return;
    if (msix_enabled()) {
        // §4.1.5.3.1: with MSI-X enabled and NO_VECTOR mapped, no interrupt.
        // MsixTable::notify ignores NO_VECTOR and latches masked vectors.
        msix_->notify(queue_vectors_[queue_index].load(std::memory_order_relaxed));
        return;
    }
    raise_isr(pci_regs::kIsrQueue, true);
}

void VirtioPciInterrupt::signal_config() {
    generation_.fetch_add(1, std::memory_order_relaxed);
    // §4.1.4.5.1: the config bit is set before any config notification,
    // MSI-X or not; INTx is only used without MSI-X.
    const bool msix = msix_enabled();
    raise_isr(pci_regs::kIsrConfig, !msix);
    if (msix) msix_->notify(config_vector_.load(std::memory_order_relaxed));
}

void VirtioPciInterrupt::raise_isr(uint8_t bits, bool assert_intx) {
    std::lock_guard lock(isr_mutex_);
    isr_ |= bits;
    if (assert_intx) function_.set_intx_level(true);
}

uint8_t VirtioPciInterrupt::read_isr() {
    std::lock_guard lock(isr_mutex_);
    const uint8_t bits = isr_;
    isr_ = 0;
    function_.set_intx_level(false);
    return bits;
}

uint16_t VirtioPciInterrupt::set_config_vector(uint16_t vector) {
    const bool mappable = msix_ && vector < msix_->num_vectors();
    config_vector_.store(mappable ? vector : kNoVector, std::memory_order_relaxed);
    return config_vector();
}

uint16_t VirtioPciInterrupt::config_vector() const { return config_vector_.load(std::memory_order_relaxed); }

uint16_t VirtioPciInterrupt::set_queue_vector(uint16_t queue, uint16_t vector) {
    if (queue >= queue_vectors_.size()) return kNoVector;
    const bool mappable = msix_ && vector < msix_->num_vectors();
    queue_vectors_[queue].store(mappable ? vector : kNoVector, std::memory_order_relaxed);
    return queue_vector(queue);
}

uint16_t VirtioPciInterrupt::queue_vector(uint16_t queue) const {
    if (queue >= queue_vectors_.size()) return kNoVector;
    return queue_vectors_[queue].load(std::memory_order_relaxed);
}

uint8_t VirtioPciInterrupt::config_generation() const { return generation_.load(std::memory_order_relaxed); }

void VirtioPciInterrupt::reset() {
    for (auto& v : queue_vectors_) v.store(kNoVector, std::memory_order_relaxed);
    config_vector_.store(kNoVector, std::memory_order_relaxed);
    read_isr();
}

}  // namespace tapvm::virtio
