// Multiple APIC Description Table (MADT), ACPI 6.5 §5.2.12: the interrupt
// controllers, and the only way a Linux guest without MP-table support
// learns how many CPUs it has.
#pragma once

#include <cstdint>

#include "firmware/acpi/bytes.h"

namespace tapvm::acpi {

inline constexpr uint8_t kMadtRevision = 5;  // ACPI 6.3+

// vCPU i gets ACPI processor UID i and xAPIC ID i.  xAPIC IDs are 8 bits and
// 0xFF is the broadcast ID, and UID 0xFF means "all processors" in the
// Local APIC NMI entry, so IDs 0..254 are usable: at most 255 vCPUs without
// x2APIC entries.
inline constexpr unsigned kMaxCpus = 255;

// The IOAPIC's ID.  KVM's in-kernel IOAPIC resets its ID register to 0 and
// keeps only 4 bits of it, so 0 is the value the guest reads back.  It does
// not clash with CPU 0's local APIC ID: since the Pentium 4, xAPIC messages
// travel on the system bus and IOAPIC IDs are a namespace of their own
// (x86-64 Linux only requires IOAPIC IDs to differ from each other, see
// io_apic_unique_id()); QEMU and Firecracker use 0 too.
inline constexpr uint8_t kIoapicId = 0;

// MADT flags (Table 5.20).
inline constexpr uint32_t kMadtPcatCompat = 1u << 0;
// Interrupt controller structure types (Table 5.21).
inline constexpr uint8_t kMadtLocalApic = 0;
inline constexpr uint8_t kMadtIoApic = 1;
inline constexpr uint8_t kMadtInterruptOverride = 2;
inline constexpr uint8_t kMadtLocalApicNmi = 4;
// Local APIC flags (Table 5.23).
inline constexpr uint32_t kLocalApicEnabled = 1u << 0;
// MPS INTI flags (Table 5.26): polarity bits 1:0, trigger mode bits 3:2.
inline constexpr uint16_t kIntiConforming = 0x0;
inline constexpr uint16_t kIntiActiveHigh = 0x1;
inline constexpr uint16_t kIntiLevel = 0xc;

inline constexpr size_t kMadtEntriesOffset = 44;

// Throws UsageError unless 1 <= num_cpus <= kMaxCpus.
Bytes build_madt(unsigned num_cpus);

}  // namespace tapvm::acpi
