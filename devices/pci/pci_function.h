// One PCI function: its configuration space (type 0 header, BARs,
// capabilities, INTx) and the Bus mappings of its BARs.
//
// Devices are built on a PciFunction by composition: the virtio-pci
// transport creates one, adds BARs, places its register blocks as regions
// inside them, adds its capabilities and MSI-X, and hands it to the
// PciHostBridge, which gives it a slot, an INTx GSI and BAR addresses.
//
//   auto fn = std::make_shared<pci::PciFunction>(pci::PciIdentity{
//       .vendor_id = 0x1af4, .device_id = 0x1041, .class_code = 0x02});
//   fn->add_bar(0, pci::BarKind::Mmio64, 0x4000, /*prefetchable=*/false);
//   fn->add_bar_region(0, 0x0000, 0x1000, common_cfg);
//   fn->add_msix(3, 0, 0x2000, 0, 0x3000, msi_allocator);
//   fn->add_capability(pci::kCapIdVendorSpecific, cap_body);
//   fn->set_intx(1, nullptr);            // INTA#, line connected by the bridge
//   fn->on_bar_change([&](unsigned bar, auto old_base, auto new_base) { ... });
//   host_bridge.add_device(fn);
//
// Configuration space semantics (PCI Local Bus Specification 3.0, §6):
//   - 256 bytes of conventional space; accesses at 256..4095 (ECAM's extended
//     space) read as zero and ignore writes.
//   - Every byte has a writable mask and a write-1-to-clear mask; a guest write
//     changes only writable bits, and clears W1C bits written as one.
//   - Command: I/O Space, Memory Space, Bus Master and Interrupt Disable
//     are writable.  Status: Capabilities List is set when capabilities
//     exist; Interrupt Status (bit 3) follows set_intx_level(); the error bits
//     are W1C.
//   - BARs (§6.2.5.1): the address bits below the BAR size are hard-wired to
//     zero, so writing all-ones and reading back yields the size mask plus the
//     type bits.  A 64-bit BAR takes two slots (index and index + 1).
//   - A BAR is mapped on its Bus (PciBuses) while the matching decode bit is
//     on, its address is non-zero, and its range is sane: it lies inside the
//     address space of its kind and does not end at the very top of it (where
//     a BAR being sized points).  If the Bus refuses the range (overlap), a
//     warning is logged and the BAR stays unmapped; guest input never throws.
//     A guest write that moves the BAR moves the mapping; clearing the decode
//     bit removes it.  Observers registered with on_bar_change() hear about
//     every change of the mapping.
//   - Capabilities form a list from 0x40 upward, dword aligned, linked from
//     the Capabilities Pointer (0x34).
//
// Threads: config accesses come from vCPU threads, set_intx_level() and
// MSI-X notifications from device threads; both are safe concurrently.
// Guest config writes are serialized, and observers and capability hooks run
// on the writing thread after the function's state lock is released, so they
// may call back into the function (bar_address(), peek_config(), ...).
// Assembly calls (add_*, set_intx, on_*) must happen before the guest runs.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "devices/pci/bar.h"
#include "devices/pci/pci_regs.h"
#include "vmm/bus.h"
#include "vmm/irq.h"
#include "vmm/log_limiter.h"

namespace tapvm::pci {

class MsixTable;

// What the guest sees at offsets 0x00-0x0b and 0x2c-0x2f.
struct PciIdentity {
    uint16_t vendor_id = 0;
    uint16_t device_id = 0;
    uint8_t class_code = 0;
    uint8_t subclass = 0;
    uint8_t prog_if = 0;
    uint8_t revision = 0;
    uint16_t subsystem_vendor_id = 0;
    uint16_t subsystem_id = 0;
};

// The address spaces BARs are mapped into.  Either may be null (a function
// with no BAR of that kind needs no bus); the buses must outlive the function.
struct PciBuses {
    Bus* mmio = nullptr;
    Bus* pio = nullptr;
};

// `bar` is the BAR's first slot; old_base/new_base are the mapped addresses
// before and after (nullopt = not mapped).  Called only on a real change.
using BarChangeObserver = std::function<void(unsigned bar, std::optional<uint64_t> old_base,
                                             std::optional<uint64_t> new_base)>;
// Called after every guest config write, with the offset and the bytes as the
// guest wrote them (before masking).
using ConfigWriteObserver = std::function<void(uint16_t offset, std::span<const uint8_t> data)>;

// Behaviour for a capability whose bytes are more than storage (virtio's
// VIRTIO_PCI_CAP_PCI_CFG window, MSI-X Message Control).  Offsets are relative
// to the capability's first byte (its ID); a guest access that covers only
// part of the capability is clipped to the part that overlaps it.
struct CapabilityHooks {
    // After a guest write has been stored (masked).  `data` = the bytes the
    // guest wrote.  Read the stored result with PciFunction::peek_config().
    std::function<void(uint16_t offset, std::span<const uint8_t> data)> on_write;
    // Before a guest read returns: `data` holds the stored bytes and the hook
    // may replace them.
    std::function<void(uint16_t offset, std::span<uint8_t> data)> on_read;
};

class PciFunction {
public:
    explicit PciFunction(const PciIdentity& identity, std::string name = "pci-function");
    ~PciFunction();  // removes its BARs from the buses
    PciFunction(const PciFunction&) = delete;
    PciFunction& operator=(const PciFunction&) = delete;

    const std::string& name() const { return name_; }

    // --- Assembly (before the guest runs); mistakes throw Error -------------

    // Declares BAR `index` (0..5; a Mmio64 BAR also takes index + 1).  `size`
    // is a power of two: at least 16 for memory (4 for I/O), at most 2 GiB for
    // Mmio32 and 64 KiB for Io.
    void add_bar(unsigned index, BarKind kind, uint64_t size, bool prefetchable = false);

    // Places `handler` at [offset, offset + size) inside BAR `bar`; accesses
    // there reach handler->read/write with offsets relative to the region.
    // Regions may not overlap.  BAR bytes covered by no region read as zero
    // and ignore writes.
    void add_bar_region(unsigned bar, uint64_t offset, uint64_t size,
                        std::shared_ptr<BusDevice> handler);

    // Appends a capability: header (ID, next pointer) followed by `body`.
    // For a vendor-specific capability the body starts with its length byte
    // (e.g. virtio's cap_len).  `writable_mask`, if given, is per body byte
    // (shorter = the rest read-only).  Returns the capability's config offset.
    uint8_t add_capability(uint8_t cap_id, std::span<const uint8_t> body,
                           std::span<const uint8_t> writable_mask = {},
                           CapabilityHooks hooks = {});

    // MSI-X (PCI 3.0 §6.8.2): a table of `num_vectors` entries at
    // `table_offset` in BAR `table_bar` and its Pending Bit Array at
    // `pba_offset` in BAR `pba_bar` (both 8-byte aligned memory BARs; they
    // may share one), plus the MSI-X capability.  One MsiVector per entry is
    // allocated from `allocator` now.  Once MSI-X is enabled, INTx is not
    // driven (§6.8.2: a function enabled for MSI-X must not use INTx#).
    MsixTable& add_msix(unsigned num_vectors, unsigned table_bar, uint64_t table_offset,
                        unsigned pba_bar, uint64_t pba_offset, MsiAllocator& allocator);

    // INTx: `pin` 1..4 = INTA#..INTD# (Interrupt Pin, 0x3d).  `line` may be
    // null and connected later (the host bridge does, once it knows the slot).
    // The line must outlive the function.
    void set_intx(unsigned pin, IrqLine* line);
    void connect_intx(IrqLine* line);
    // Interrupt Line (0x3c): the GSI, for the guest's information only.
    void set_interrupt_line(uint8_t gsi);

    // The buses BARs are mapped on.  Any BAR already decodable is mapped now.
    void attach(PciBuses buses);

    // VMM-side BAR placement (the host bridge's allocator): writes the BAR's
    // address register(s) as firmware would.  Throws Error if `address` is not
    // aligned to the BAR size or does not fit its kind.  Takes effect on the
    // bus when decoding is on.
    void set_bar_address(unsigned bar, uint64_t address);
    // VMM-side command register write (e.g. turn decoding on for firmware-less
    // boots); same effects as a guest write.
    void set_command(uint16_t command);

    void on_bar_change(BarChangeObserver observer);
    void on_config_write(ConfigWriteObserver observer);

    // --- Guest configuration accesses (from the host bridge) -----------------
    // `offset` < 4096; an access running past 4096 reads as all-ones / is
    // dropped (the host bridge never produces one).
    void read_config(uint16_t offset, std::span<uint8_t> data);
    void write_config(uint16_t offset, std::span<const uint8_t> data);

    // --- VMM-side raw access: no masks, no hooks, no side effects ------------
    // (Poking a BAR or the command register does not remap anything.)
    void peek_config(uint16_t offset, std::span<uint8_t> data) const;
    void poke_config(uint16_t offset, std::span<const uint8_t> data);

    // --- State ---------------------------------------------------------------
    // Where BAR `bar` is mapped now (nullopt: not mapped / not a BAR start).
    std::optional<uint64_t> bar_address(unsigned bar) const;
    // The address the BAR registers hold, mapped or not (nullopt: no BAR).
    std::optional<uint64_t> bar_register_address(unsigned bar) const;
    std::optional<BarKind> bar_kind(unsigned bar) const;
    uint64_t bar_size(unsigned bar) const;  // 0 if there is no such BAR
    // The BusDevice standing for the whole BAR (its regions, BAR-relative
    // offsets), mapped or not; null if there is no such BAR.  For accesses to
    // BAR contents that do not come through the bus, such as virtio's
    // VIRTIO_PCI_CAP_PCI_CFG window (virtio 1.2 §4.1.4.9).
    std::shared_ptr<BarDispatcher> bar_device(unsigned bar) const;
    uint16_t command() const;
    uint8_t interrupt_pin() const;
    uint8_t interrupt_line() const;
    std::shared_ptr<MsixTable> msix() const { return msix_; }

    // --- INTx ----------------------------------------------------------------
    // The device's interrupt condition (level).  Sets/clears Interrupt Status
    // and drives the line unless Interrupt Disable is set or MSI-X is enabled;
    // the line is re-driven when the guest toggles either.
    void set_intx_level(bool asserted);
    bool intx_level() const;

private:
    mutable LogLimiter guest_log_;  // lines the guest can trigger (vmm/log_limiter.h)
    struct Bar {
        BarKind kind = BarKind::Mmio32;
        uint64_t size = 0;
        bool prefetchable = false;
        uint64_t address = 0;                     // what the registers hold
        std::optional<uint64_t> mapped;           // where it is on the bus
        std::shared_ptr<BarDispatcher> dispatcher;
    };
    struct Capability {
        uint8_t offset = 0;
        uint8_t length = 0;  // header + body
        CapabilityHooks hooks;
    };
    struct BarChange {
        unsigned bar;
        std::optional<uint64_t> old_base;
        std::optional<uint64_t> new_base;
    };

    // All private helpers expect mutex_ held.
    void init_header(const PciIdentity& identity);
    uint32_t config_dword(uint16_t offset) const;
    void set_config_dword(uint16_t offset, uint32_t value);
    uint16_t config_word(uint16_t offset) const;
    void set_config_word(uint16_t offset, uint16_t value);
    Bar* bar_slot(unsigned bar);
    const Bar* bar_slot(unsigned bar) const;
    void store_guest_bytes(uint16_t offset, std::span<const uint8_t> data);
    void reload_bar_addresses();
    void write_bar_registers(unsigned index, const Bar& bar);
    bool bar_decodable(const Bar& bar) const;
    Bus* bus_for(const Bar& bar) const;
    void update_mappings(std::vector<BarChange>& changes);
    void drive_intx();
    void msix_control_written();

    const std::string name_;
    mutable std::mutex mutex_;        // config bytes, BAR and INTx state
    std::mutex write_serializer_;     // one guest config write at a time
    std::array<uint8_t, kConfigSpaceSize> config_{};
    std::array<uint8_t, kConfigSpaceSize> writable_{};
    std::array<uint8_t, kConfigSpaceSize> write_one_to_clear_{};
    std::array<std::optional<Bar>, kNumBars> bars_;  // set at each BAR's first slot
    std::vector<Capability> capabilities_;
    uint16_t next_capability_offset_ = kCapabilityStart;  // may reach 256 (full)
    PciBuses buses_;
    IrqLine* intx_line_ = nullptr;
    bool intx_level_ = false;
    bool intx_driven_ = false;        // what the line was last set to
    std::shared_ptr<MsixTable> msix_;
    uint8_t msix_capability_ = 0;
    std::vector<BarChangeObserver> bar_observers_;
    std::vector<ConfigWriteObserver> write_observers_;
};

}  // namespace tapvm::pci
