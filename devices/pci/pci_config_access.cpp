#include "devices/pci/pci_config_access.h"

#include <algorithm>

#include "devices/pci/pci_regs.h"

namespace tapvm::pci {

namespace {

constexpr uint64_t kConfigAddressOffset = 0;  // 0xcf8
constexpr uint64_t kConfigDataOffset = 4;     // 0xcfc
constexpr uint64_t kConfigDataSize = 4;

uint32_t load_le(std::span<const uint8_t> data) {
    uint32_t v = 0;
    for (size_t i = 0; i < data.size() && i < 4; ++i) v |= uint32_t(data[i]) << (8 * i);
    return v;
}

void store_le(std::span<uint8_t> data, uint32_t v) {
    for (size_t i = 0; i < data.size(); ++i) data[i] = i < 4 ? uint8_t(v >> (8 * i)) : 0xff;
}

void fill_absent(std::span<uint8_t> data) { std::fill(data.begin(), data.end(), 0xff); }

// Where a CONFIG_DATA access lands, if CONFIG_ADDRESS enables one.
struct Target {
    unsigned bus, slot, fn;
    uint16_t reg;
};

std::optional<Target> data_target(uint32_t address, uint64_t offset, size_t width) {
    if (offset < kConfigDataOffset) return std::nullopt;
    uint64_t lane = offset - kConfigDataOffset;
    if (width == 0 || lane + width > kConfigDataSize) return std::nullopt;
    if (!(address & PciConfigPorts::kEnable)) return std::nullopt;
    return Target{(address >> 16) & 0xff, (address >> 11) & 0x1f, (address >> 8) & 0x7,
                  static_cast<uint16_t>((address & 0xfc) + lane)};
}

}  // namespace

void PciConfigPorts::read(uint64_t offset, std::span<uint8_t> data) {
    // CONFIG_ADDRESS decodes only as a full dword (PCI 3.0 §3.2.2.3.2); byte
    // accesses to 0xcf8-0xcfb belong to other (legacy) mechanisms.
    if (offset == kConfigAddressOffset && data.size() == 4) {
        store_le(data, address_.load());
        return;
    }
    auto t = data_target(address_.load(), offset, data.size());
    auto target = target_.lock();
    if (!t || !target) return fill_absent(data);
    target->read_config(t->bus, t->slot, t->fn, t->reg, data);
}

void PciConfigPorts::write(uint64_t offset, std::span<const uint8_t> data) {
    if (offset == kConfigAddressOffset && data.size() == 4) {
        address_.store(load_le(data) & kAddressMask);
        return;
    }
    auto t = data_target(address_.load(), offset, data.size());
    auto target = target_.lock();
    if (!t || !target) return;
    target->write_config(t->bus, t->slot, t->fn, t->reg, data);
}

namespace {

std::optional<Target> ecam_target(uint64_t offset, size_t width) {
    // PCIe Base Spec §7.2.2: A[27:20] bus, A[19:15] device, A[14:12]
    // function, A[11:0] register.  An access may not leave its function's 4 KiB.
    uint16_t reg = offset & (kExtConfigSpaceSize - 1);
    if (width == 0 || reg + width > kExtConfigSpaceSize) return std::nullopt;
    return Target{static_cast<unsigned>((offset >> 20) & 0xff),
                  static_cast<unsigned>((offset >> 15) & 0x1f),
                  static_cast<unsigned>((offset >> 12) & 0x7), reg};
}

}  // namespace

void PciEcam::read(uint64_t offset, std::span<uint8_t> data) {
    auto t = ecam_target(offset, data.size());
    auto target = target_.lock();
    if (!t || !target) return fill_absent(data);
    target->read_config(t->bus, t->slot, t->fn, t->reg, data);
}

void PciEcam::write(uint64_t offset, std::span<const uint8_t> data) {
    auto t = ecam_target(offset, data.size());
    auto target = target_.lock();
    if (!t || !target) return;
    target->write_config(t->bus, t->slot, t->fn, t->reg, data);
}

}  // namespace tapvm::pci
