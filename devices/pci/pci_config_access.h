// The two ways an x86 guest reaches PCI configuration space:
//
//   - Configuration mechanism #1 (PCI Local Bus Specification 3.0 §3.2.2.3.2),
//     eight ports at layout::kPciConfigAddress (0xcf8): CONFIG_ADDRESS is the
//     dword at 0xcf8 (bit 31 enable, 23:16 bus, 15:11 device, 10:8 function,
//     7:2 register); CONFIG_DATA is 0xcfc-0xcff, where a byte, word or dword
//     access at 0xcfc + k reaches register (CONFIG_ADDRESS & 0xfc) + k.
//   - ECAM (PCI Express Base Specification §7.2.2), layout::kEcamSize bytes of
//     MMIO at layout::kEcamStart: offset = bus << 20 | device << 15 |
//     function << 12 | register, giving each function 4 KiB.
//
// Both forward to a PciConfigTarget (the host bridge's slot table), which
// they only observe: the bridge owns its functions, and a Bus that still holds
// these devices after the bridge is gone (teardown in any order) sees absent
// functions instead of keeping the functions, and with them BAR mappings on
// that very Bus, alive.  Accesses
// to absent functions, with the enable bit clear, or of odd shapes read as
// all-ones and are dropped on write: guests probe, they must never crash us.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "vmm/bus.h"

namespace tapvm::pci {

// Where configuration accesses land.  `reg` + data.size() <= 4096.
class PciConfigTarget {
public:
    virtual ~PciConfigTarget() = default;
    virtual void read_config(unsigned bus, unsigned slot, unsigned fn, uint16_t reg,
                             std::span<uint8_t> data) const = 0;
    virtual void write_config(unsigned bus, unsigned slot, unsigned fn, uint16_t reg,
                              std::span<const uint8_t> data) const = 0;
};

// Ports 0xcf8-0xcff (insert with size kSize at layout::kPciConfigAddress).
class PciConfigPorts : public BusDevice {
public:
    static constexpr uint64_t kSize = 8;
    static constexpr uint32_t kEnable = 1u << 31;
    // Bits the CONFIG_ADDRESS register keeps: enable, bus, device, function,
    // dword register number.  Reserved bits 30:24 and 1:0 read as zero.
    static constexpr uint32_t kAddressMask = 0x80fffffc;

    explicit PciConfigPorts(std::weak_ptr<const PciConfigTarget> target)
        : target_(std::move(target)) {}

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    uint32_t config_address() const { return address_.load(); }

private:
    std::weak_ptr<const PciConfigTarget> target_;
    // One register shared by all vCPUs, as on real chipsets.  Guests serialize
    // address+data pairs themselves (Linux's pci_config_lock).
    std::atomic<uint32_t> address_{0};
};

// The ECAM window (insert with size layout::kEcamSize at layout::kEcamStart).
class PciEcam : public BusDevice {
public:
    explicit PciEcam(std::weak_ptr<const PciConfigTarget> target) : target_(std::move(target)) {}

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    std::weak_ptr<const PciConfigTarget> target_;
};

}  // namespace tapvm::pci
