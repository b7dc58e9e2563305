#include "firmware/acpi/madt.h"

#include <string>

#include "firmware/acpi/sdt.h"
#include "vmm/error.h"
#include "vmm/layout.h"

namespace tapvm::acpi {

namespace {

// The legacy timer: ISA IRQ 0 (the PIT) arrives on IOAPIC pin 2, as on
// every PC, and KVM's in-kernel PIT raises GSI 0, which the GSI router sends to IOAPIC pin 2 accordingly.
constexpr uint8_t kPitIsaIrq = 0;
constexpr uint32_t kPitGsi = 2;
// Local APIC NMIs: LINT1 of every processor, as the PC wiring has it.
constexpr uint8_t kAllProcessors = 0xff;
constexpr uint8_t kNmiLint = 1;

void put_local_apic(Bytes& t, uint8_t uid_and_id) {
    put_u8(t, kMadtLocalApic);
    put_u8(t, 8);  // Length
    put_u8(t, uid_and_id);  // ACPI Processor UID
    put_u8(t, uid_and_id);  // APIC ID
    put_u32(t, kLocalApicEnabled);
}

void put_io_apic(Bytes& t) {
    put_u8(t, kMadtIoApic);
    put_u8(t, 12);
    put_u8(t, kIoapicId);
    put_u8(t, 0);  // Reserved
    put_u32(t, static_cast<uint32_t>(layout::kIoapicAddr));
    put_u32(t, 0);  // Global System Interrupt Base: pins are GSIs 0..23
}

void put_override(Bytes& t, uint8_t isa_irq, uint32_t gsi, uint16_t inti_flags) {
    put_u8(t, kMadtInterruptOverride);
    put_u8(t, 10);
    put_u8(t, 0);  // Bus: ISA
    put_u8(t, isa_irq);
    put_u32(t, gsi);
    put_u16(t, inti_flags);
}

void put_local_apic_nmi(Bytes& t) {
    put_u8(t, kMadtLocalApicNmi);
    put_u8(t, 6);
    put_u8(t, kAllProcessors);
    put_u16(t, kIntiConforming);
    put_u8(t, kNmiLint);
}

}  // namespace

static_assert(layout::kLapicAddr <= UINT32_MAX && layout::kIoapicAddr <= UINT32_MAX);
static_assert(layout::kSciIrq < layout::kIoapicPins);

Bytes build_madt(unsigned num_cpus) {
    if (num_cpus < 1 || num_cpus > kMaxCpus)
        throw UsageError("tapvm supports 1 to " + std::to_string(kMaxCpus) + " vCPUs, not " +
                         std::to_string(num_cpus));
    Bytes t = start_table("APIC", kMadtRevision);
    put_u32(t, static_cast<uint32_t>(layout::kLapicAddr));
    // PCAT_COMPAT: the machine also has dual 8259s (KVM's in-kernel PIC),
    // which the OS must mask when it uses the APICs.
    put_u32(t, kMadtPcatCompat);
    for (unsigned cpu = 0; cpu < num_cpus; ++cpu) put_local_apic(t, static_cast<uint8_t>(cpu));
    put_io_apic(t);
    put_override(t, kPitIsaIrq, kPitGsi, kIntiConforming);
    // The SCI: level-triggered, active high, on its own pin.  A
    // hardware-reduced OS never enables it; listing it keeps GSI 9's
    // polarity right for any OS that does look.
    put_override(t, layout::kSciIrq, layout::kSciIrq, kIntiActiveHigh | kIntiLevel);
    put_local_apic_nmi(t);
    finish_table(t);
    return t;
}

}  // namespace tapvm::acpi
