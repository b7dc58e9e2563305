#include "firmware/cpu_setup.h"

#include <fmt/format.h>

#include <array>
#include <vector>

#include "vmm/error.h"

namespace tapvm::boot {

namespace {

constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kLargePageSize = 2ull << 20;
constexpr uint64_t kEntriesPerTable = 512;
constexpr uint64_t kPdCount = kIdentityMappedBytes / (kEntriesPerTable * kLargePageSize);

// Everything tapvm keeps in conventional memory must stay clear of each
// other and of the EBDA; check the layout at compile time.
static_assert(layout::kGdtAddr + kBootGdtEntries * 8 <= layout::kZeroPageAddr);
static_assert(layout::kZeroPageAddr + 4096 <= layout::kPageTablesAddr);
static_assert(layout::kPageTablesAddr + kPageTablesBytes <= layout::kCmdlineAddr);
static_assert(layout::kCmdlineAddr + layout::kCmdlineMax <= layout::kEbdaStart);
static_assert(layout::kPageTablesAddr % kPageSize == 0);
static_assert(kPageTablesBytes == (2 + kPdCount) * kPageSize);

// Segment types (SDM Vol. 3A §3.4.5.1, Table 3-1; §3.5 Table 3-2).
constexpr uint8_t kCodeExecuteReadAccessed = 0xb;
constexpr uint8_t kDataReadWriteAccessed = 0x3;
constexpr uint8_t kSystemTss64Busy = 0xb;
constexpr uint8_t kSystemLdt = 0x2;
constexpr uint32_t kTssLimit = 0x67;  // a minimal 104-byte TSS; the kernel loads its own

SegmentState flat_segment(uint16_t selector, uint8_t type, bool code64) {
    SegmentState seg;
    seg.base = 0;
    seg.limit = 0xffffffff;
    seg.selector = selector;
    seg.type = type;
    seg.present = 1;
    seg.dpl = 0;
    seg.s = 1;
    seg.l = code64 ? 1 : 0;
    seg.db = code64 ? 0 : 1;  // L=1 requires D=0 (SDM §3.4.5)
    seg.g = 1;
    return seg;
}

SegmentState task_segment() {
    SegmentState tr;
    tr.selector = kBootTssSelector;
    tr.limit = kTssLimit;
    tr.type = kSystemTss64Busy;  // VM entry requires a busy TSS in TR
    tr.present = 1;
    return tr;
}

SegmentState null_ldt() {
    // An LDT descriptor that is valid but never used; VM entry accepts a
    // usable LDTR only with type 2 (SDM Vol. 3C §26.3.1.2).
    SegmentState ldt;
    ldt.limit = 0xffff;
    ldt.type = kSystemLdt;
    ldt.present = 1;
    return ldt;
}

// A 16-byte long-mode system descriptor (TSS): the low half is laid out like
// a segment descriptor, the high half holds base[63:32] (SDM §7.2.3).
std::array<uint64_t, 2> encode_system_descriptor(const SegmentState& segment) {
    return {encode_segment_descriptor(segment), segment.base >> 32};
}

void write_or_throw(const GuestMemory& memory, Gpa gpa, std::span<const uint8_t> bytes, const char* what) {
    if (!memory.write(gpa, bytes)) throw Error(fmt::format("{} at {:#x} is not guest RAM", what, gpa));
}

template <class T>
std::span<const uint8_t> as_bytes(const std::vector<T>& v) {
    return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(T)};
}

}  // namespace

uint64_t encode_segment_descriptor(const SegmentState& seg) {
    // With G set the descriptor holds the limit in 4 KiB units.
    uint64_t limit = seg.g ? (uint64_t{seg.limit} >> 12) : seg.limit;
    uint64_t d = 0;
    d |= limit & 0xffff;
    d |= (seg.base & 0xffffff) << 16;
    d |= uint64_t{seg.type & 0xfu} << 40;
    d |= uint64_t{seg.s & 1u} << 44;
    d |= uint64_t{seg.dpl & 3u} << 45;
    d |= uint64_t{seg.present & 1u} << 47;
    d |= ((limit >> 16) & 0xf) << 48;
    d |= uint64_t{seg.avl & 1u} << 52;
    d |= uint64_t{seg.l & 1u} << 53;
    d |= uint64_t{seg.db & 1u} << 54;
    d |= uint64_t{seg.g & 1u} << 55;
    d |= ((seg.base >> 24) & 0xff) << 56;
    return d;
}

LongModeEntryState long_mode_entry_state(Gpa entry, Gpa zero_page) {
    LongModeEntryState st;
    st.cr0 = kCr0Pe | kCr0Et | kCr0Pg;
    st.cr3 = layout::kPageTablesAddr;
    st.cr4 = kCr4Pae;
    st.efer = kEferLme | kEferLma;
    st.cs = flat_segment(kBootCsSelector, kCodeExecuteReadAccessed, /*code64=*/true);
    st.ds = st.es = st.fs = st.gs = st.ss = flat_segment(kBootDsSelector, kDataReadWriteAccessed, false);
    st.tr = task_segment();
    st.ldt = null_ldt();
    st.gdt = {layout::kGdtAddr, static_cast<uint16_t>(kBootGdtEntries * 8 - 1)};
    st.idt = {0, 0};  // interrupts stay disabled until the kernel loads its IDT
    st.rip = entry;
    st.rsi = zero_page;
    st.rsp = zero_page;
    st.rflags = kRflagsReserved1;
    return st;
}

void write_boot_gdt(const GuestMemory& memory, const LongModeEntryState& state) {
    std::vector<uint64_t> gdt(kBootGdtEntries, 0);  // entries 0 and 1 stay null
    gdt[state.cs.selector / 8] = encode_segment_descriptor(state.cs);
    gdt[state.ds.selector / 8] = encode_segment_descriptor(state.ds);
    auto tss = encode_system_descriptor(state.tr);
    gdt[state.tr.selector / 8] = tss[0];
    gdt[state.tr.selector / 8 + 1] = tss[1];
    write_or_throw(memory, state.gdt.base, as_bytes(gdt), "boot GDT");
}

Gpa write_identity_page_tables(const GuestMemory& memory) {
    const Gpa pml4 = layout::kPageTablesAddr;
    const Gpa pdpt = pml4 + kPageSize;
    const Gpa first_pd = pdpt + kPageSize;
    std::vector<uint64_t> tables(kPageTablesBytes / 8, 0);
    uint64_t* pml4_entries = tables.data();
    uint64_t* pdpt_entries = pml4_entries + kEntriesPerTable;
    uint64_t* pd_entries = pdpt_entries + kEntriesPerTable;

    pml4_entries[0] = pdpt | kPtePresent | kPteWritable;
    for (uint64_t i = 0; i < kPdCount; ++i) pdpt_entries[i] = (first_pd + i * kPageSize) | kPtePresent | kPteWritable;
    // The PDs are contiguous, so entry n of the flattened array maps n * 2 MiB.
    for (uint64_t n = 0; n < kPdCount * kEntriesPerTable; ++n)
        pd_entries[n] = (n * kLargePageSize) | kPtePresent | kPteWritable | kPteLargePage;

    write_or_throw(memory, pml4, as_bytes(tables), "boot page tables");
    return pml4;
}

LongModeEntryState setup_long_mode(const GuestMemory& memory, Gpa entry) {
    if (entry >= kIdentityMappedBytes)
        throw UsageError(fmt::format("kernel entry point {:#x} lies above the {} GiB the boot page tables map",
                                     entry, kIdentityMappedBytes >> 30));
    LongModeEntryState state = long_mode_entry_state(entry);
    state.cr3 = write_identity_page_tables(memory);
    write_boot_gdt(memory, state);
    return state;
}

}  // namespace tapvm::boot
