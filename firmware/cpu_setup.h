// The CPU state in which a Linux kernel is entered in 64-bit mode, and the
// guest memory it depends on (boot GDT, identity-mapped page tables).
//
// boot.rst "64-bit Boot Protocol": the CPU is in 64-bit mode with paging
// enabled; the kernel, the zero page and the command line are identity
// mapped; a GDT holds flat 4 GiB descriptors for __BOOT_CS (0x10,
// execute/read) and __BOOT_DS (0x18, read/write); CS = __BOOT_CS,
// DS = ES = SS = __BOOT_DS; interrupts are disabled; %rsi holds the zero
// page's address.  The same state enters an ELF vmlinux's startup_64.
//
// Nothing here knows <linux/kvm.h>: the vCPU code converts this plain state
// into kvm_sregs/kvm_regs field by field (the names match kvm_segment's).
#pragma once

#include <cstdint>

#include "vmm/guest_memory.h"
#include "vmm/layout.h"

namespace tapvm::boot {

inline constexpr uint16_t kBootCsSelector = 0x10;   // __BOOT_CS: GDT entry 2
inline constexpr uint16_t kBootDsSelector = 0x18;   // __BOOT_DS: GDT entry 3
inline constexpr uint16_t kBootTssSelector = 0x20;  // GDT entries 4-5 (a 16-byte system descriptor)
inline constexpr uint64_t kBootGdtEntries = 6;

// The identity map covers [0, 4 GiB) with 2 MiB pages: every place tapvm
// puts the kernel, zero page, command line and initrd (all below the PCI
// hole).  2 MiB rather than 1 GiB pages: every x86-64 CPU has them.
inline constexpr uint64_t kIdentityMappedBytes = 4ull << 30;
inline constexpr uint64_t kPageTablesBytes = (2 + kIdentityMappedBytes / (1ull << 30)) * 4096;  // PML4, PDPT, PDs

// x86 control register and EFER bits (Intel SDM Vol. 3A §2.5, §2.2.1).
inline constexpr uint64_t kCr0Pe = 1ull << 0;
inline constexpr uint64_t kCr0Et = 1ull << 4;
inline constexpr uint64_t kCr0Pg = 1ull << 31;
inline constexpr uint64_t kCr4Pae = 1ull << 5;
inline constexpr uint64_t kEferLme = 1ull << 8;
inline constexpr uint64_t kEferLma = 1ull << 10;
inline constexpr uint64_t kRflagsReserved1 = 1ull << 1;  // bit 1 always reads 1; IF clear

// Page-table entry bits (SDM Vol. 3A §4.5).
inline constexpr uint64_t kPtePresent = 1ull << 0;
inline constexpr uint64_t kPteWritable = 1ull << 1;
inline constexpr uint64_t kPteLargePage = 1ull << 7;  // PS: a 2 MiB page in a PD entry

// Same fields, same meaning as struct kvm_segment: `limit` is the byte
// limit after granularity scaling (0xffffffff for a flat 4 GiB segment).
struct SegmentState {
    uint64_t base = 0;
    uint32_t limit = 0;
    uint16_t selector = 0;
    uint8_t type = 0;
    uint8_t present = 0;
    uint8_t dpl = 0;
    uint8_t db = 0;
    uint8_t s = 0;
    uint8_t l = 0;
    uint8_t g = 0;
    uint8_t avl = 0;
    uint8_t unusable = 0;
};

// As struct kvm_dtable.
struct DescriptorTableState {
    uint64_t base = 0;
    uint16_t limit = 0;
};

struct LongModeEntryState {
    // Special registers (kvm_sregs).
    uint64_t cr0 = 0;
    uint64_t cr3 = 0;
    uint64_t cr4 = 0;
    uint64_t efer = 0;
    SegmentState cs, ds, es, fs, gs, ss, tr, ldt;
    DescriptorTableState gdt, idt;
    // General registers (kvm_regs); all others zero.
    uint64_t rip = 0;
    uint64_t rsi = 0;
    uint64_t rsp = 0;
    uint64_t rflags = 0;
};

// The 8-byte GDT descriptor for a code or data segment (SDM Vol. 3A §3.4.5).
uint64_t encode_segment_descriptor(const SegmentState& segment);

// The register state alone (no memory writes).  The boot stack grows down
// from the zero page; the kernel switches to its own before it pushes much.
LongModeEntryState long_mode_entry_state(Gpa entry, Gpa zero_page = layout::kZeroPageAddr);

// Writes the boot GDT at layout::kGdtAddr, matching `state`'s segments.
void write_boot_gdt(const GuestMemory& memory, const LongModeEntryState& state);

// Writes PML4, PDPT and PDs at layout::kPageTablesAddr identity-mapping
// [0, kIdentityMappedBytes).  Returns the CR3 value (the PML4's address).
Gpa write_identity_page_tables(const GuestMemory& memory);

// All of the above: writes GDT and page tables, returns the state whose RIP
// is `entry` and whose RSI is the zero page.  Throws UsageError if the
// entry is not identity mapped, Error if the low memory it needs is not
// guest RAM.
LongModeEntryState setup_long_mode(const GuestMemory& memory, Gpa entry);

}  // namespace tapvm::boot
