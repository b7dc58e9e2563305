#include "firmware/cpu_setup.h"

#include <gtest/gtest.h>

#include <optional>

#include "vmm/error.h"
#include "vmm/layout.h"

namespace tapvm::boot {
namespace {

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t GiB = 1ull << 30;
constexpr uint64_t kAddrMask = 0x000ffffffffff000ull;

// An independent 4-level walk, as the CPU does it (SDM Vol. 3A §4.5):
// PML4 -> PDPT -> PD (2 MiB page if PS) -> PT.
std::optional<uint64_t> translate(const GuestMemory& mem, uint64_t cr3, uint64_t va) {
    uint64_t table = cr3 & kAddrMask;
    const int shifts[] = {39, 30, 21, 12};
    for (int level = 0; level < 4; ++level) {
        uint64_t index = (va >> shifts[level]) & 0x1ff;
        auto entry = mem.read_obj<uint64_t>(table + index * 8);
        if (!entry || !(*entry & kPtePresent)) return std::nullopt;
        bool large = (*entry & kPteLargePage) && (level == 1 || level == 2);
        if (large) {
            uint64_t page_mask = (1ull << shifts[level]) - 1;
            return (*entry & kAddrMask & ~page_mask) | (va & page_mask);
        }
        if (level == 3) return (*entry & kAddrMask) | (va & 0xfff);
        table = *entry & kAddrMask;
    }
    return std::nullopt;
}

class CpuSetup : public ::testing::Test {
protected:
    GuestMemory memory_{{{0, 64 * MiB}}};
};

TEST_F(CpuSetup, PageTablesIdentityMapTheFirstFourGiB) {
    LongModeEntryState st = setup_long_mode(memory_, 0x1000000);
    EXPECT_EQ(st.cr3, layout::kPageTablesAddr);
    for (uint64_t va : std::initializer_list<uint64_t>{0x0, 0x7000, 0x20000, 0x1000000, 0x1000200, 0x12345678,
                        3 * GiB - 1, 3 * GiB + 0x1234, 4 * GiB - 1}) {
        auto pa = translate(memory_, st.cr3, va);
        ASSERT_TRUE(pa.has_value()) << std::hex << va;
        EXPECT_EQ(*pa, va) << std::hex << va;
    }
}

TEST_F(CpuSetup, NothingAboveFourGiBIsMapped) {
    LongModeEntryState st = setup_long_mode(memory_, 0x1000000);
    EXPECT_FALSE(translate(memory_, st.cr3, 4 * GiB).has_value());
    EXPECT_FALSE(translate(memory_, st.cr3, 0xffffffff81000000ull).has_value());
}

TEST_F(CpuSetup, PagesAreWritableTwoMiBPages) {
    setup_long_mode(memory_, 0x1000000);
    // The PD entry that maps 0x1000000 (PD 0, index 8).
    auto pd_entry = memory_.read_obj<uint64_t>(layout::kPageTablesAddr + 2 * 4096 + 8 * 8);
    ASSERT_TRUE(pd_entry.has_value());
    EXPECT_EQ(*pd_entry & kAddrMask, 0x1000000u);
    EXPECT_TRUE(*pd_entry & kPteLargePage);
    EXPECT_TRUE(*pd_entry & kPteWritable);
}

SegmentState decode(uint64_t d) {
    SegmentState s;
    uint32_t raw_limit = static_cast<uint32_t>((d & 0xffff) | ((d >> 32) & 0xf0000));
    s.base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24);
    s.type = (d >> 40) & 0xf;
    s.s = (d >> 44) & 1;
    s.dpl = (d >> 45) & 3;
    s.present = (d >> 47) & 1;
    s.avl = (d >> 52) & 1;
    s.l = (d >> 53) & 1;
    s.db = (d >> 54) & 1;
    s.g = (d >> 55) & 1;
    s.limit = s.g ? (raw_limit << 12) | 0xfff : raw_limit;
    return s;
}

void expect_same_segment(const SegmentState& in_gdt, const SegmentState& in_state) {
    EXPECT_EQ(in_gdt.base, in_state.base);
    EXPECT_EQ(in_gdt.limit, in_state.limit);
    EXPECT_EQ(in_gdt.type, in_state.type);
    EXPECT_EQ(in_gdt.s, in_state.s);
    EXPECT_EQ(in_gdt.dpl, in_state.dpl);
    EXPECT_EQ(in_gdt.present, in_state.present);
    EXPECT_EQ(in_gdt.l, in_state.l);
    EXPECT_EQ(in_gdt.db, in_state.db);
    EXPECT_EQ(in_gdt.g, in_state.g);
}

TEST_F(CpuSetup, GdtInMemoryMatchesTheSegmentRegisters) {
    LongModeEntryState st = setup_long_mode(memory_, 0x1000000);
    ASSERT_EQ(st.gdt.base, layout::kGdtAddr);
    ASSERT_EQ(st.gdt.limit + 1u, kBootGdtEntries * 8);
    auto entry = [&](uint16_t selector) { return *memory_.read_obj<uint64_t>(st.gdt.base + selector); };

    EXPECT_EQ(entry(0x00), 0u);
    EXPECT_EQ(entry(0x08), 0u);
    expect_same_segment(decode(entry(st.cs.selector)), st.cs);
    expect_same_segment(decode(entry(st.ds.selector)), st.ds);
    expect_same_segment(decode(entry(st.tr.selector)), st.tr);
    EXPECT_EQ(entry(st.tr.selector + 8), 0u);  // TSS base[63:32]
    // The well-known encodings of a flat 64-bit code and data segment.
    EXPECT_EQ(entry(0x10), 0x00af9b000000ffffull);
    EXPECT_EQ(entry(0x18), 0x00cf93000000ffffull);
}

TEST_F(CpuSetup, RegistersFollowTheLinux64BitBootProtocol) {
    LongModeEntryState st = setup_long_mode(memory_, 0x1000200);
    EXPECT_EQ(st.rip, 0x1000200u);
    EXPECT_EQ(st.rsi, layout::kZeroPageAddr);
    EXPECT_EQ(st.rflags, 0x2u);  // IF clear: interrupts disabled
    EXPECT_EQ(st.cs.selector, 0x10);  // __BOOT_CS
    for (const SegmentState* s : {&st.ds, &st.es, &st.ss, &st.fs, &st.gs}) {
        EXPECT_EQ(s->selector, 0x18);  // __BOOT_DS
        EXPECT_EQ(s->type, 0x3);       // read/write data
        EXPECT_EQ(s->base, 0u);
        EXPECT_EQ(s->limit, 0xffffffffu);
    }
    EXPECT_EQ(st.cs.l, 1);
    EXPECT_EQ(st.cs.db, 0);
    EXPECT_EQ(st.cs.type, 0xb);  // execute/read
    EXPECT_TRUE(st.cr0 & kCr0Pe);
    EXPECT_TRUE(st.cr0 & kCr0Pg);
    EXPECT_TRUE(st.cr4 & kCr4Pae);
    EXPECT_EQ(st.efer & (kEferLme | kEferLma), kEferLme | kEferLma);
    EXPECT_EQ(st.tr.type, 0xb);  // busy 64-bit TSS, as VM entry requires
    EXPECT_EQ(st.tr.s, 0);
    EXPECT_EQ(st.ldt.type, 0x2);
}

TEST_F(CpuSetup, EncodesByteGranularLimitsAndHighBaseBits) {
    SegmentState s;
    s.base = 0x12345678;
    s.limit = 0x67;
    s.type = 0x9;
    s.present = 1;
    s.dpl = 3;
    SegmentState back = decode(encode_segment_descriptor(s));
    expect_same_segment(back, s);
    EXPECT_EQ(back.dpl, 3);
}

TEST_F(CpuSetup, EntryOutsideTheIdentityMapIsRefused) {
    EXPECT_THROW(setup_long_mode(memory_, 4 * GiB), UsageError);
    EXPECT_NO_THROW(setup_long_mode(memory_, 4 * GiB - 16));
}

TEST(CpuSetupMemory, FailsWhenLowMemoryIsMissing) {
    GuestMemory high_only({{4 * GiB, 2 * MiB}});
    EXPECT_THROW(setup_long_mode(high_only, 0x1000000), Error);
}

}  // namespace
}  // namespace tapvm::boot
