#include "firmware/acpi/acpi_tables.h"

#include <fmt/format.h>

#include "firmware/acpi/dsdt.h"
#include "firmware/acpi/fadt.h"
#include "firmware/acpi/madt.h"
#include "firmware/acpi/mcfg.h"
#include "firmware/acpi/rsdp.h"
#include "firmware/acpi/xsdt.h"
#include "vmm/error.h"

namespace tapvm::acpi {

namespace {

constexpr uint64_t kTableAlignment = 16;

// Hands out consecutive aligned addresses in [next, end).
class Placer {
public:
    Placer(Gpa start, Gpa end) : start_(start), next_(start), end_(end) {
        if (start % kRsdpAlignment || start >= end)
            throw Error(fmt::format("acpi: bad table area [{:#x}, {:#x})", start, end));
    }

    Gpa place(uint64_t size) {
        Gpa at = next_;
        if (size > end_ - at)
            throw Error(fmt::format("acpi: tables do not fit in [{:#x}, {:#x})", start_, end_));
        next_ = at + size;
        next_ += (kTableAlignment - next_ % kTableAlignment) % kTableAlignment;
        if (next_ > end_) next_ = end_;
        return at;
    }

private:
    Gpa start_;
    Gpa next_;
    Gpa end_;
};

}  // namespace

const PlacedTable* AcpiTables::find(std::string_view signature) const {
    for (const auto& t : tables)
        if (t.signature == signature) return &t;
    return nullptr;
}

AcpiTables build_tables(const AcpiConfig& config, Gpa start, Gpa end) {
    // Validate the config before anything is laid out.
    Bytes madt = build_madt(config.num_cpus);
    Placer placer(start, end);
    AcpiTables out;

    // Tables are built in dependency order (the FADT needs the DSDT's
    // address, the XSDT everyone's, the RSDP the XSDT's); the RSDP's slot
    // is reserved first so that it sits at the start of the area.
    Gpa rsdp_at = placer.place(kRsdpSize);
    auto add = [&](std::string_view sig, Bytes bytes) {
        Gpa at = placer.place(bytes.size());
        out.tables.push_back({sig, at, std::move(bytes)});
        return at;
    };
    Gpa dsdt_at = add("DSDT", build_dsdt());
    Gpa fadt_at = add("FACP", build_fadt({.dsdt_address = dsdt_at, .i8042_present = config.i8042_present}));
    Gpa madt_at = add("APIC", std::move(madt));
    Gpa mcfg_at = add("MCFG", build_mcfg());
    Gpa xsdt_at = add("XSDT", build_xsdt({fadt_at, madt_at, mcfg_at}));

    out.tables.insert(out.tables.begin(), {"RSD PTR ", rsdp_at, build_rsdp(xsdt_at)});
    out.rsdp_address = rsdp_at;
    return out;
}

void write_tables(const GuestMemory& memory, const AcpiTables& tables) {
    for (const auto& t : tables.tables)
        if (!memory.write(t.address, t.bytes))
            throw Error(fmt::format("acpi: guest RAM does not cover the {} table at {:#x} ({} bytes)",
                                    t.signature, t.address, t.bytes.size()));
}

Gpa write_tables(const GuestMemory& memory, const AcpiConfig& config) {
    AcpiTables tables = build_tables(config);
    write_tables(memory, tables);
    return tables.rsdp_address;
}

}  // namespace tapvm::acpi
