// The ACPI tables as bytes: checksums, lengths, pointers between tables,
// and the fields a Linux guest reads, checked at their spec offsets (ACPI
// 6.5 §5.2) without going through the builders' own constants where it
// matters.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "firmware/acpi/acpi_tables.h"
#include "firmware/acpi/madt.h"
#include "firmware/acpi/sleep_registers.h"
#include "vmm/error.h"
#include "vmm/layout.h"

namespace tapvm::acpi {
namespace {

uint64_t le(const Bytes& b, size_t offset, size_t width) {
    uint64_t v = 0;
    for (size_t i = 0; i < width; ++i) v |= uint64_t{b.at(offset + i)} << (8 * i);
    return v;
}

uint8_t byte_sum(const Bytes& b, size_t len) {
    uint8_t s = 0;
    for (size_t i = 0; i < len; ++i) s = static_cast<uint8_t>(s + b.at(i));
    return s;
}

std::string text(const Bytes& b, size_t offset, size_t len) {
    return std::string(reinterpret_cast<const char*>(b.data()) + offset, len);
}

const PlacedTable& table(const AcpiTables& t, std::string_view sig) {
    const PlacedTable* p = t.find(sig);
    if (!p) throw std::runtime_error("no table " + std::string(sig));
    return *p;
}

// One table of a fresh build, by value (the build itself is a temporary).
Bytes built(const AcpiConfig& config, std::string_view sig) { return table(build_tables(config), sig).bytes; }

const PlacedTable* table_at(const AcpiTables& t, uint64_t address) {
    for (const auto& p : t.tables)
        if (p.address == address) return &p;
    return nullptr;
}

struct MadtEntry {
    uint8_t type;
    size_t offset;  // of the entry in the table
};

// Walks the MADT's interrupt controller structures by their own lengths.
std::vector<MadtEntry> madt_entries(const Bytes& madt) {
    std::vector<MadtEntry> out;
    size_t off = 44;
    while (off < madt.size()) {
        uint8_t len = madt.at(off + 1);
        if (len < 2 || off + len > madt.size()) throw std::runtime_error("bad MADT entry length");
        out.push_back({madt[off], off});
        off += len;
    }
    return out;
}

class AcpiTablesForCpus : public ::testing::TestWithParam<unsigned> {};

TEST_P(AcpiTablesForCpus, EveryTableSumsToZeroAndHeaderLengthMatches) {
    AcpiTables t = build_tables({.num_cpus = GetParam()});
    ASSERT_EQ(t.tables.size(), 6u);
    for (const auto& p : t.tables) {
        if (p.signature == "RSD PTR ") continue;
        SCOPED_TRACE(std::string(p.signature));
        EXPECT_EQ(text(p.bytes, 0, 4), p.signature);
        EXPECT_EQ(le(p.bytes, 4, 4), p.bytes.size());
        EXPECT_EQ(byte_sum(p.bytes, p.bytes.size()), 0);
        EXPECT_EQ(text(p.bytes, 10, 6), "TAPVM ");
        EXPECT_EQ(text(p.bytes, 16, 8), "TAPVMACP");
        EXPECT_EQ(text(p.bytes, 28, 4), "TAPV");
    }
}

TEST_P(AcpiTablesForCpus, MadtListsOneEnabledLocalApicPerCpu) {
    const unsigned n = GetParam();
    const Bytes madt = built({.num_cpus = n}, "APIC");
    EXPECT_EQ(le(madt, 36, 4), layout::kLapicAddr);
    EXPECT_EQ(le(madt, 40, 4) & 1, 1u) << "PCAT_COMPAT";
    std::vector<unsigned> ids;
    for (const auto& e : madt_entries(madt)) {
        if (e.type != 0) continue;
        ASSERT_EQ(madt[e.offset + 1], 8);
        EXPECT_EQ(madt[e.offset + 2], madt[e.offset + 3]) << "UID = APIC ID";
        EXPECT_EQ(le(madt, e.offset + 4, 4) & 1, 1u) << "enabled";
        ids.push_back(madt[e.offset + 3]);
    }
    ASSERT_EQ(ids.size(), n);
    for (unsigned i = 0; i < n; ++i) EXPECT_EQ(ids[i], i);
}

TEST_P(AcpiTablesForCpus, MadtHasIoApicOverridesAndNmi) {
    const Bytes madt = built({.num_cpus = GetParam()}, "APIC");
    int ioapics = 0, nmis = 0;
    std::vector<std::vector<uint64_t>> overrides;  // {source irq, gsi, flags}
    for (const auto& e : madt_entries(madt)) {
        switch (e.type) {
        case 1:
            ++ioapics;
            EXPECT_EQ(madt[e.offset + 1], 12);
            EXPECT_EQ(madt[e.offset + 2], kIoapicId);
            EXPECT_EQ(le(madt, e.offset + 4, 4), layout::kIoapicAddr);
            EXPECT_EQ(le(madt, e.offset + 8, 4), 0u) << "GSI base";
            break;
        case 2:
            EXPECT_EQ(madt[e.offset + 1], 10);
            EXPECT_EQ(madt[e.offset + 2], 0) << "bus ISA";
            overrides.push_back({madt[e.offset + 3], le(madt, e.offset + 4, 4), le(madt, e.offset + 8, 2)});
            break;
        case 4:
            ++nmis;
            EXPECT_EQ(madt[e.offset + 1], 6);
            EXPECT_EQ(madt[e.offset + 2], 0xff) << "all processors";
            EXPECT_EQ(madt[e.offset + 5], 1) << "LINT1";
            break;
        case 0:
            break;
        default:
            ADD_FAILURE() << "unexpected MADT entry type " << int(e.type);
        }
    }
    EXPECT_EQ(ioapics, 1);
    EXPECT_EQ(nmis, 1);
    // IRQ0 -> GSI2 conforming; SCI on GSI 9, active high (1) | level (3 << 2).
    std::vector<std::vector<uint64_t>> expected{{0, 2, 0}, {layout::kSciIrq, layout::kSciIrq, 0xd}};
    EXPECT_EQ(overrides, expected);
}

INSTANTIATE_TEST_SUITE_P(Cpus, AcpiTablesForCpus, ::testing::Values(1u, 2u, 8u, 64u, kMaxCpus));

TEST(AcpiTables, CpuCountOutsideOneTo255IsAUsageError) {
    EXPECT_EQ(kMaxCpus, 255u);  // xAPIC IDs 0..254
    EXPECT_THROW(build_tables({.num_cpus = 0}), UsageError);
    EXPECT_THROW(build_tables({.num_cpus = kMaxCpus + 1}), UsageError);
    EXPECT_NO_THROW(build_tables({.num_cpus = kMaxCpus}));
}

TEST(AcpiTables, RsdpHasBothChecksumsAndPointsAtXsdt) {
    AcpiTables t = build_tables({.num_cpus = 2});
    const PlacedTable& rsdp = table(t, "RSD PTR ");
    ASSERT_EQ(rsdp.bytes.size(), 36u);
    EXPECT_EQ(t.rsdp_address, rsdp.address);
    EXPECT_EQ(rsdp.address % 16, 0u);
    EXPECT_EQ(text(rsdp.bytes, 0, 8), "RSD PTR ");
    EXPECT_EQ(byte_sum(rsdp.bytes, 20), 0) << "ACPI 1.0 checksum";
    EXPECT_EQ(byte_sum(rsdp.bytes, 36), 0) << "extended checksum";
    EXPECT_EQ(rsdp.bytes[15], 2) << "revision";
    EXPECT_EQ(le(rsdp.bytes, 20, 4), 36u) << "length";
    EXPECT_EQ(le(rsdp.bytes, 24, 8), table(t, "XSDT").address);
}

TEST(AcpiTables, XsdtPointsAtFadtMadtAndMcfg) {
    AcpiTables t = build_tables({.num_cpus = 2});
    const Bytes& xsdt = table(t, "XSDT").bytes;
    ASSERT_EQ((xsdt.size() - 36) % 8, 0u);
    std::multiset<std::string> pointed;
    for (size_t off = 36; off < xsdt.size(); off += 8) {
        const PlacedTable* p = table_at(t, le(xsdt, off, 8));
        ASSERT_NE(p, nullptr) << "XSDT entry points at no table";
        pointed.insert(std::string(p->signature));
    }
    EXPECT_EQ(pointed, (std::multiset<std::string>{"FACP", "APIC", "MCFG"}));
}

TEST(AcpiTables, FadtIsRevision6HardwareReducedAndPointsAtDsdt) {
    AcpiTables t = build_tables({.num_cpus = 2});
    const Bytes& fadt = table(t, "FACP").bytes;
    EXPECT_EQ(fadt.size(), 276u);
    EXPECT_EQ(fadt[8], 6) << "revision";
    EXPECT_EQ(fadt[131] & 0x0f, 5) << "minor version";
    EXPECT_EQ(le(fadt, 140, 8), table(t, "DSDT").address) << "X_DSDT";
    EXPECT_EQ(le(fadt, 40, 4), 0u) << "32-bit DSDT left zero";
    EXPECT_EQ(le(fadt, 36, 4), 0u) << "no FACS";
    EXPECT_EQ(le(fadt, 132, 8), 0u) << "no X_FACS";
    EXPECT_EQ(le(fadt, 46, 2), layout::kSciIrq);
    uint32_t flags = static_cast<uint32_t>(le(fadt, 112, 4));
    EXPECT_TRUE(flags & (1u << 20)) << "HW_REDUCED_ACPI";
    EXPECT_TRUE(flags & (1u << 10)) << "RESET_REG_SUP";
    EXPECT_TRUE(flags & (1u << 4)) << "no fixed power button";
    // No legacy PM blocks on a hardware-reduced platform.
    for (size_t off = 56; off < 88; off += 4) EXPECT_EQ(le(fadt, off, 4), 0u) << off;
}

TEST(AcpiTables, FadtSleepAndResetRegistersAreBytePorts) {
    const Bytes fadt = built({.num_cpus = 1}, "FACP");
    auto expect_io_byte = [&](size_t off, uint64_t port) {
        SCOPED_TRACE(off);
        EXPECT_EQ(fadt[off + 0], 1) << "SystemIO";
        EXPECT_EQ(fadt[off + 1], 8) << "bit width";
        EXPECT_EQ(fadt[off + 2], 0) << "bit offset";
        EXPECT_EQ(fadt[off + 3], 1) << "byte access";
        EXPECT_EQ(le(fadt, off + 4, 8), port);
    };
    expect_io_byte(116, layout::kAcpiResetReg);
    EXPECT_EQ(fadt[128], layout::kAcpiResetValue);
    expect_io_byte(244, layout::kAcpiSleepControl);
    expect_io_byte(256, layout::kAcpiSleepStatus);
}

TEST(AcpiTables, FadtBootArchitectureFlags) {
    auto boot_flags = [](bool i8042) {
        return le(built({.num_cpus = 1, .i8042_present = i8042}, "FACP"), 109, 2);
    };
    uint64_t with = boot_flags(true), without = boot_flags(false);
    EXPECT_TRUE(with & (1u << 2)) << "VGA not present";
    EXPECT_FALSE(with & (1u << 3)) << "MSI must stay usable";
    EXPECT_TRUE(with & (1u << 5)) << "CMOS RTC not present";
    EXPECT_TRUE(with & (1u << 1)) << "8042";
    EXPECT_FALSE(without & (1u << 1)) << "8042";
    EXPECT_EQ(with & ~uint64_t{2}, without);
}

TEST(AcpiTables, McfgDescribesTheEcamWindow) {
    const Bytes mcfg = built({.num_cpus = 1}, "MCFG");
    ASSERT_EQ(mcfg.size(), 44u + 16);
    EXPECT_EQ(le(mcfg, 44, 8), layout::kEcamStart);
    EXPECT_EQ(le(mcfg, 52, 2), 0u) << "segment";
    EXPECT_EQ(mcfg[54], 0) << "start bus";
    EXPECT_EQ(mcfg[55], layout::kPciBusCount - 1) << "end bus";
    EXPECT_EQ((uint64_t{mcfg[55]} - mcfg[54] + 1) << 20, layout::kEcamSize);
}

bool contains(const Bytes& hay, const std::vector<uint8_t>& needle) {
    return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

TEST(AcpiTables, DsdtNamesTheDevicesAndSoftOff) {
    const Bytes dsdt = built({.num_cpus = 1}, "DSDT");
    EXPECT_EQ(dsdt[8], 2) << "revision 2: 64-bit integers";
    EXPECT_TRUE(contains(dsdt, {0x0c, 0x41, 0xd0, 0x0a, 0x08})) << "EISAID PNP0A08";
    EXPECT_TRUE(contains(dsdt, {0x0c, 0x41, 0xd0, 0x0a, 0x03})) << "EISAID PNP0A03";
    EXPECT_TRUE(contains(dsdt, {0x0c, 0x41, 0xd0, 0x05, 0x01})) << "EISAID PNP0501";
    // Name (\_S5_, Package (4) {5, Zero, Zero, Zero}); 0 and 1 would be ZeroOp/OneOp.
    static_assert(layout::kAcpiS5SleepType > 1, "the expected bytes below use a BytePrefix");
    EXPECT_TRUE(contains(dsdt, {0x08, 0x5c, '_', 'S', '5', '_', 0x12, 0x07, 0x04, 0x0a, layout::kAcpiS5SleepType,
                                0x00, 0x00, 0x00}));
    // Device (\_SB.COM1)'s _CRS: IO (Decode16, 0x3F8, 0x3F8, 1, 8), IRQNoFlags {4}
    EXPECT_TRUE(contains(dsdt, {0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00, 0x79}));
}

TEST(AcpiTables, AllTablesLieInTheAcpiAreaAlignedAndDisjoint) {
    AcpiTables t = build_tables({.num_cpus = kMaxCpus});
    uint64_t prev_end = layout::kAcpiStart;
    for (const auto& p : t.tables) {  // in address order
        SCOPED_TRACE(std::string(p.signature));
        EXPECT_EQ(p.address % 16, 0u);
        EXPECT_GE(p.address, prev_end);
        prev_end = p.address + p.bytes.size();
        EXPECT_LE(prev_end, layout::kAcpiEnd);
    }
    EXPECT_EQ(t.tables.front().signature, "RSD PTR ");
    EXPECT_EQ(t.rsdp_address, layout::kAcpiStart);
}

TEST(AcpiTables, TablesThatDoNotFitAreAnError) {
    EXPECT_THROW(build_tables({.num_cpus = 8}, layout::kAcpiStart, layout::kAcpiStart + 0x200), Error);
    EXPECT_THROW(build_tables({.num_cpus = 8}, layout::kAcpiStart + 8, layout::kAcpiEnd), Error) << "unaligned";
}

TEST(AcpiTables, WriteTablesCopiesEveryTableIntoGuestMemory) {
    GuestMemory mem({{0, 0x100000}});
    const AcpiConfig config{.num_cpus = 4};
    Gpa rsdp = write_tables(mem, config);
    AcpiTables expected = build_tables(config);
    EXPECT_EQ(rsdp, expected.rsdp_address);
    for (const auto& p : expected.tables) {
        Bytes got(p.bytes.size());
        ASSERT_TRUE(mem.read(p.address, got));
        EXPECT_EQ(got, p.bytes) << p.signature;
    }
    // The legacy scan (16-byte steps over 0xE0000-0xFFFFF) finds exactly our RSDP.
    std::vector<Gpa> found;
    for (Gpa a = 0xe0000; a < 0x100000; a += 16) {
        Bytes sig(8);
        ASSERT_TRUE(mem.read(a, sig));
        if (text(sig, 0, 8) == "RSD PTR ") found.push_back(a);
    }
    EXPECT_EQ(found, std::vector<Gpa>{rsdp});
}

TEST(AcpiTables, WriteTablesOutsideRamIsAnError) {
    GuestMemory mem({{0x100000, 0x100000}});
    EXPECT_THROW(write_tables(mem, AcpiConfig{.num_cpus = 1}), Error);
}

TEST(AcpiSleepRegisters, PowerOffValueFollowsTheRegisterFormat) {
    // SLP_TYP in bits 4:2, SLP_EN bit 5: S5 with SLP_TYP 5 is 0b0011'0100.
    EXPECT_EQ(layout::kAcpiS5SleepType, 5);
    EXPECT_EQ(kPowerOffValue, 0x34);
    EXPECT_TRUE(is_power_off_request(0x34));
    EXPECT_TRUE(is_power_off_request(0x34 | 0xc3)) << "reserved bits are ignored";
    EXPECT_FALSE(is_power_off_request(0x14)) << "SLP_EN clear";
    EXPECT_FALSE(is_power_off_request(sleep_control_value(3))) << "S3 is not power-off";
    EXPECT_EQ(sleep_type_of(sleep_control_value(7)), 7);
}

}  // namespace
}  // namespace tapvm::acpi
