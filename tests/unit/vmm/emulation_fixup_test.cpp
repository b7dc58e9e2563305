// The emulation-failure decision table, byte fetching across pages, and
// the register/event edits that apply a decision.
#include <gtest/gtest.h>
#include "vmm/uapi/kvm.h"

#include <map>
#include <ostream>
#include <vector>

#include "vmm/kvm/emulation_fixup.h"

namespace tapvm::kvm {

// Readable failures for EXPECT_EQ on actions (found by ADL).
void PrintTo(const FixupAction& a, std::ostream* os) {
    if (auto* r = std::get_if<AdvanceRip>(&a)) *os << "AdvanceRip{" << int(r->length) << "}";
    if (auto* e = std::get_if<InjectException>(&a)) *os << "InjectException{" << int(e->vector) << ", " << int(e->advance) << "}";
    if (auto* s = std::get_if<StopGuest>(&a)) *os << "StopGuest{" << s->message << "}";
    if (auto* m = std::get_if<MxcsrAccess>(&a))
        *os << "MxcsrAccess{" << (m->load ? "load" : "store") << ", 0x" << std::hex << m->linear << std::dec << ", "
            << int(m->length) << "}";
}

namespace {

using Bytes = std::vector<uint8_t>;

FixupAction inject(uint8_t vector, uint8_t advance_by) { return InjectException{vector, advance_by}; }
FixupAction advance(uint8_t length) { return AdvanceRip{length}; }
FixupAction mxcsr(bool load, uint64_t linear, uint8_t length) { return MxcsrAccess{load, linear, length}; }

FixupContext kernel_at(uint64_t rip) {
    FixupContext c;
    c.rip = rip;
    c.cpl = 0;
    c.code64 = true;
    c.cr0 = 0x80050033;  // PG WP AM NE ET MP PE: what Linux runs with
    c.cr4 = 0x3606f0;    // ... OSFXSR OSXMMEXCPT ...: what Linux runs with
    return c;
}

constexpr int kRsp = 4, kR12 = 12, kRbp = 5, kRax = 0, kR9 = 9;

std::string stop_message(const FixupAction& a) {
    auto* s = std::get_if<StopGuest>(&a);
    return s ? s->message : std::string("<not a stop>");
}

TEST(DecideFixup, Int3AdvancesOneAndInjectsBreakpoint) {
    auto a = decide_fixup(Bytes{0xcc, 0x90, 0x90}, kernel_at(0xffffffff81000000));
    EXPECT_EQ(a, inject(kVectorBp, 1));
}

TEST(DecideFixup, FwaitWithNothingPendingIsAdvancedOver) {
    EXPECT_EQ(decide_fixup(Bytes{0x9b, 0xdb, 0xe2}, kernel_at(0x1000)), advance(1));
}

TEST(DecideFixup, PrefixesCountTowardsTheLength) {
    EXPECT_EQ(decide_fixup(Bytes{0x66, 0x9b}, kernel_at(0)), advance(2));
    EXPECT_EQ(decide_fixup(Bytes{0x2e, 0x3e, 0xcc}, kernel_at(0)), inject(kVectorBp, 3));
}

TEST(DecideFixup, FwaitRaisesNmWhenTsAndMpAreSet) {
    auto c = kernel_at(0x1000);
    c.cr0 |= 1u << 3;  // TS
    EXPECT_EQ(decide_fixup(Bytes{0x9b}, c), inject(kVectorNm, 0));
    c.cr0 &= ~uint64_t{1u << 1};  // TS without MP: WAIT ignores TS
    EXPECT_EQ(decide_fixup(Bytes{0x9b}, c), advance(1));
}

TEST(DecideFixup, FwaitWithAPendingX87ErrorRaisesMf) {
    auto c = kernel_at(0x1000);
    c.fpu_status = 0x0081;  // ES + IE
    EXPECT_EQ(decide_fixup(Bytes{0x9b}, c), inject(kVectorMf, 0));
    c.cr0 &= ~uint64_t{1u << 5};  // NE clear: legacy FERR# reporting
    EXPECT_NE(stop_message(decide_fixup(Bytes{0x9b}, c)).find("FERR#"), std::string::npos);
}

TEST(DecideFixup, KnownFailuresNameInstructionAndRemedy) {
    struct Case {
        Bytes bytes;
        const char* name;
        const char* remedy;
    };
    const Case cases[] = {
        {{0x0f, 0x01, 0xca}, "(clac)", "clearcpuid=smap"},
        {{0x0f, 0x01, 0xcb}, "(stac)", "clearcpuid=smap"},
        {{0x48, 0x0f, 0xae, 0x27}, "(xsave)", "noxsave"},       // xsave64 [rdi]
        {{0x48, 0x0f, 0xae, 0x2f}, "(xrstor)", "noxsave"},      // xrstor64 [rdi]
        {{0x0f, 0xae, 0x37}, "(xsaveopt)", "noxsave"},
        {{0x48, 0x0f, 0xc7, 0x1f}, "(xrstors)", "noxsave"},
        {{0x0f, 0x01, 0xd1}, "(xsetbv)", "noxsave"},
        {{0x66, 0x44, 0x0f, 0x6e, 0xf9}, "(movd/movq to xmm)", "clearcpuid=ssse3"},  // the stock kernel, PVM
        {{0xf0, 0x48, 0x0f, 0xc7, 0x0f}, "(cmpxchg16b)", "clearcpuid=cx16"},  // lock cmpxchg16b [rdi]
        {{0xf3, 0x48, 0x0f, 0xb8, 0xc7}, "(popcnt)", "clearcpuid=popcnt"},     // popcnt rax, rdi
        {{0x0f, 0x05}, "(syscall)", "entry_SYSCALL_64"},
    };
    for (const auto& c : cases) {
        auto msg = stop_message(decide_fixup(c.bytes, kernel_at(0xffffffff81234567)));
        EXPECT_NE(msg.find(c.name), std::string::npos) << msg;
        EXPECT_NE(msg.find(c.remedy), std::string::npos) << msg;
        EXPECT_NE(msg.find("RIP 0xffffffff81234567 (CPL 0)"), std::string::npos) << msg;
        EXPECT_NE(msg.find("PLATFORM.md"), std::string::npos) << msg;
    }
}

TEST(DecideFixup, TheMessageListsTheBytes) {
    auto msg = stop_message(decide_fixup(Bytes{0x0f, 0x01, 0xca, 0x90}, kernel_at(0x10)));
    EXPECT_NE(msg.find("bytes 0f 01 ca 90 (clac)"), std::string::npos) << msg;
}

TEST(DecideFixup, MandatoryPrefixesAndModrmDistinguishLookalikes) {
    // 66 0f ae /6 is clwb, not xsaveopt; 0f ae /5 with mod=3 is lfence.
    EXPECT_EQ(stop_message(decide_fixup(Bytes{0x66, 0x0f, 0xae, 0x37}, kernel_at(0))).find("xsaveopt"),
              std::string::npos);
    EXPECT_EQ(stop_message(decide_fixup(Bytes{0x0f, 0xae, 0xe8}, kernel_at(0))).find("xrstor"), std::string::npos);
    // 0f b8 without F3 is not popcnt.
    EXPECT_EQ(stop_message(decide_fixup(Bytes{0x0f, 0xb8, 0xc0}, kernel_at(0))).find("popcnt"), std::string::npos);
    // The last of F2/F3 is the one that counts.
    EXPECT_EQ(stop_message(decide_fixup(Bytes{0xf3, 0xf2, 0x0f, 0xb8, 0xc0}, kernel_at(0))).find("popcnt"),
              std::string::npos);
    EXPECT_NE(stop_message(decide_fixup(Bytes{0xf2, 0xf3, 0x0f, 0xb8, 0xc0}, kernel_at(0))).find("popcnt"),
              std::string::npos);
    // Without REX.W, 0f c7 /1 is cmpxchg8b, which no parameter avoids.
    auto msg8 = stop_message(decide_fixup(Bytes{0xf0, 0x0f, 0xc7, 0x0f}, kernel_at(0)));
    EXPECT_NE(msg8.find("(cmpxchg8b)"), std::string::npos) << msg8;
    EXPECT_EQ(msg8.find("clearcpuid"), std::string::npos) << msg8;
}

TEST(DecideFixup, RexMustImmediatelyPrecedeTheOpcode) {
    // 48 66 0f c7 0f: the REX is followed by a prefix, so it is ignored and
    // this is cmpxchg8b, not cmpxchg16b.
    auto msg = stop_message(decide_fixup(Bytes{0x48, 0x66, 0x0f, 0xc7, 0x0f}, kernel_at(0)));
    EXPECT_NE(msg.find("(cmpxchg8b)"), std::string::npos) << msg;
}

TEST(DecideFixup, OutsideLongModeRexBytesAreInstructions) {
    auto c = kernel_at(0x7c00);
    c.code64 = false;
    // 0x48 is `dec eax` in 32-bit code: it is the instruction, not a prefix to int3.
    auto msg = stop_message(decide_fixup(Bytes{0x48, 0xcc}, c));
    EXPECT_NE(msg.find("cannot complete"), std::string::npos) << msg;
    EXPECT_EQ(decide_fixup(Bytes{0xcc}, c), inject(kVectorBp, 1));
}

TEST(DecideFixup, UnknownAndMissingBytesStopWithContext) {
    auto c = kernel_at(0xffffffff81000010);
    c.cpl = 3;
    auto unknown = stop_message(decide_fixup(Bytes{0x0f, 0x0b}, c));  // ud2
    EXPECT_NE(unknown.find("bytes 0f 0b (an instruction tapvm cannot complete)"), std::string::npos) << unknown;
    EXPECT_NE(unknown.find("(CPL 3)"), std::string::npos) << unknown;
    auto none = stop_message(decide_fixup(Bytes{}, c));
    EXPECT_NE(none.find("unavailable"), std::string::npos) << none;
}

TEST(DecideFixup, OnlyPrefixesOrATruncatedModrmDoNotMatch) {
    EXPECT_TRUE(std::holds_alternative<StopGuest>(decide_fixup(Bytes(15, 0x66), kernel_at(0))));
    EXPECT_TRUE(std::holds_alternative<StopGuest>(decide_fixup(Bytes{0x48, 0x0f, 0xae}, kernel_at(0))));
    // More than 15 bytes are never looked at: 15 prefixes then int3 is not int3.
    Bytes long_one(15, 0x2e);
    long_one.push_back(0xcc);
    EXPECT_TRUE(std::holds_alternative<StopGuest>(decide_fixup(long_one, kernel_at(0))));
}

// --- vCPU-side pieces -----------------------------------------------------------

kvm_sregs long_mode_sregs() {
    kvm_sregs s{};
    s.cr0 = 0x80050033;
    s.efer = 0xd01;  // SCE LME LMA NXE
    s.cs.l = 1;
    s.cs.base = 0x12340000;  // ignored in 64-bit code
    s.ss.dpl = 0;
    return s;
}

TEST(VcpuState, CplAndCodeSize) {
    auto s = long_mode_sregs();
    EXPECT_TRUE(is_code64(s));
    EXPECT_EQ(current_privilege_level(s, 0x2), 0);
    s.ss.dpl = 3;
    EXPECT_EQ(current_privilege_level(s, 0x2), 3);

    kvm_sregs real{};
    real.ss.dpl = 3;  // meaningless in real mode
    EXPECT_EQ(current_privilege_level(real, 0x2), 0);
    EXPECT_FALSE(is_code64(real));

    auto vm86 = long_mode_sregs();
    vm86.efer = 0;
    vm86.cs.l = 0;
    EXPECT_EQ(current_privilege_level(vm86, 0x20002), 3);

    auto compat = long_mode_sregs();
    compat.cs.l = 0;  // 32-bit code under a 64-bit kernel
    EXPECT_FALSE(is_code64(compat));
}

TEST(VcpuState, LinearAddressOfRip) {
    auto s = long_mode_sregs();
    EXPECT_EQ(instruction_linear_address(s, 0xffffffff81000000), 0xffffffff81000000u) << "no CS base in 64-bit code";
    kvm_sregs real{};
    real.cs.base = 0xf0000;
    EXPECT_EQ(instruction_linear_address(real, 0xfff0), 0xffff0u);
    kvm_sregs wrap{};
    wrap.cr0 = 1;
    wrap.cs.base = 0xfffff000;
    EXPECT_EQ(instruction_linear_address(wrap, 0x2000), 0x1000u) << "wraps at 4 GiB outside 64-bit code";
}

TEST(VcpuState, ContextCarriesWhatTheDecisionNeeds) {
    kvm_regs r{};
    r.rip = 0x1234;
    r.rflags = 2;
    auto s = long_mode_sregs();
    s.ss.dpl = 3;
    kvm_fpu f{};
    f.fsw = 0x80;
    auto c = fixup_context(r, s, f);
    EXPECT_EQ(c.rip, 0x1234u);
    EXPECT_EQ(c.cpl, 3);
    EXPECT_TRUE(c.code64);
    EXPECT_EQ(c.cr0, s.cr0);
    EXPECT_EQ(c.fpu_status, 0x80);
}

TEST(AdvanceRip, WrapsToTheCodeSizeAndClearsResumeFlag) {
    auto s = long_mode_sregs();
    kvm_regs r{};
    r.rip = 0xffffffffffffffff;
    r.rflags = 0x10202;  // RF IF
    advance_rip(r, s, 1);
    EXPECT_EQ(r.rip, 0u);
    EXPECT_EQ(r.rflags, 0x202u);

    kvm_sregs real{};
    r.rip = 0xffff;
    advance_rip(r, real, 2);
    EXPECT_EQ(r.rip, 1u) << "IP wraps at 64 KiB in 16-bit code";

    kvm_sregs prot32{};
    prot32.cr0 = 1;
    prot32.cs.db = 1;
    r.rip = 0xffffffff;
    advance_rip(r, prot32, 1);
    EXPECT_EQ(r.rip, 0u);
}

TEST(InjectException, MarksTheVectorInjected) {
    kvm_vcpu_events e{};
    e.flags = KVM_VCPUEVENT_VALID_SHADOW;
    e.exception.error_code = 0x55;
    EXPECT_EQ(inject_exception(e, kVectorBp), std::nullopt);
    EXPECT_EQ(e.exception.injected, 1);
    EXPECT_EQ(e.exception.nr, kVectorBp);
    EXPECT_EQ(e.exception.has_error_code, 0);
    EXPECT_EQ(e.exception.error_code, 0u);
    EXPECT_EQ(e.flags, uint32_t{KVM_VCPUEVENT_VALID_SHADOW}) << "flags from KVM_GET_VCPU_EVENTS are kept";
}

TEST(InjectException, RefusesToStackOnAPendingOne) {
    kvm_vcpu_events e{};
    e.exception.injected = 1;
    e.exception.nr = 14;
    auto problem = inject_exception(e, kVectorBp);
    ASSERT_TRUE(problem);
    EXPECT_NE(problem->find("14"), std::string::npos);
    EXPECT_EQ(e.exception.nr, 14) << "left as it was";
}


// --- LDMXCSR / STMXCSR m32 (what the 6.1 kernel's kernel_fpu_begin runs) ---------

TEST(DecideFixup, LdmxcsrFromTheStackAsPlatformMdSawIt) {
    auto c = kernel_at(0xffffffff8103dede);
    c.gpr[kRsp] = 0xffffc90000013e40;
    // 0f ae 54 24 04: ldmxcsr [rsp+4] (ModRM 54: mod 01 reg 2 rm 100 -> SIB 24, disp8)
    EXPECT_EQ(decide_fixup(Bytes{0x0f, 0xae, 0x54, 0x24, 0x04, 0x90}, c),
              mxcsr(true, 0xffffc90000013e44, 5));
}

TEST(DecideFixup, StmxcsrWithANegativeDisplacement) {
    auto c = kernel_at(0x1000);
    c.gpr[kRbp] = 0x8000;
    // 0f ae 5d fc: stmxcsr [rbp-4]
    EXPECT_EQ(decide_fixup(Bytes{0x0f, 0xae, 0x5d, 0xfc}, c), mxcsr(false, 0x7ffc, 4));
}

TEST(DecideFixup, MxcsrOperandAddressingForms) {
    auto c = kernel_at(0xffffffff81000000);
    c.gpr[kRax] = 0x100;
    c.gpr[kR12] = 0x2000;
    c.gpr[kR9] = 0x30;
    c.gs_base = 0xffff888000000000;
    // [rip + 0x10]: counted from the end of the 7-byte instruction
    EXPECT_EQ(decide_fixup(Bytes{0x0f, 0xae, 0x15, 0x10, 0x00, 0x00, 0x00}, c),
              mxcsr(true, 0xffffffff81000017, 7));
    // REX.B: [r12] needs a SIB (rm 100), base 100 + REX.B = r12
    EXPECT_EQ(decide_fixup(Bytes{0x41, 0x0f, 0xae, 0x14, 0x24}, c), mxcsr(true, 0x2000, 5));
    // [rax + r9*8 + 0x20]: REX.X extends the index
    EXPECT_EQ(decide_fixup(Bytes{0x42, 0x0f, 0xae, 0x54, 0xc8, 0x20}, c), mxcsr(true, 0x100 + 0x30 * 8 + 0x20, 6));
    // gs:[disp32] with no base and no index (SIB 25)
    EXPECT_EQ(decide_fixup(Bytes{0x65, 0x0f, 0xae, 0x1c, 0x25, 0x40, 0x00, 0x00, 0x00}, c),
              mxcsr(false, 0xffff888000000040, 9));
    // [rax] with mod 10 disp32
    EXPECT_EQ(decide_fixup(Bytes{0x0f, 0xae, 0x90, 0x00, 0x01, 0x00, 0x00}, c), mxcsr(true, 0x200, 7));
    // a 0x67 prefix truncates the address to 32 bits
    c.gpr[kRax] = 0x1'0000'0100;
    EXPECT_EQ(decide_fixup(Bytes{0x67, 0x0f, 0xae, 0x10}, c), mxcsr(true, 0x100, 4));
}

TEST(DecideFixup, MxcsrFaultsAsTheInstructionWould) {
    auto c = kernel_at(0);
    c.gpr[kRsp] = 0x1000;
    const Bytes ld{0x0f, 0xae, 0x14, 0x24};
    auto ts = c;
    ts.cr0 |= 1u << 3;
    EXPECT_EQ(decide_fixup(ld, ts), inject(kVectorNm, 0));
    auto no_osfxsr = c;
    no_osfxsr.cr4 &= ~uint64_t{1u << 9};
    EXPECT_EQ(decide_fixup(ld, no_osfxsr), inject(kVectorUd, 0));
    auto em = c;
    em.cr0 |= 1u << 2;
    EXPECT_EQ(decide_fixup(ld, em), inject(kVectorUd, 0));
}

TEST(DecideFixup, MxcsrLookalikesAndTruncatedOperandsAreNotCompleted) {
    auto c = kernel_at(0);
    // 0f ae /2 with mod 11 is no memory operand (F3: wrfsbase); without the
    // F3 it is nothing tapvm completes.
    EXPECT_TRUE(std::holds_alternative<StopGuest>(decide_fixup(Bytes{0x0f, 0xae, 0xd0}, c)));
    EXPECT_TRUE(std::holds_alternative<StopGuest>(decide_fixup(Bytes{0xf3, 0x0f, 0xae, 0xd0}, c)));
    // 66 0f ae /2 is not ldmxcsr (mandatory prefix: none)
    EXPECT_FALSE(std::holds_alternative<MxcsrAccess>(decide_fixup(Bytes{0x66, 0x0f, 0xae, 0x14, 0x24}, c)));
    // disp32 cut short by an unmapped page
    EXPECT_TRUE(std::holds_alternative<StopGuest>(decide_fixup(Bytes{0x0f, 0xae, 0x15, 0x10, 0x00}, c)));
    // outside 64-bit code it is reported, not guessed at
    auto c32 = c;
    c32.code64 = false;
    EXPECT_TRUE(std::holds_alternative<StopGuest>(decide_fixup(Bytes{0x0f, 0xae, 0x14, 0x24}, c32)));
}

TEST(DecideFixup, ExistingMatchesAreUnchangedByTheMxcsrRows) {
    // xsave [rax] and xrstor [rax] still name their remedy
    EXPECT_NE(stop_message(decide_fixup(Bytes{0x0f, 0xae, 0x20}, kernel_at(0))).find("noxsave"), std::string::npos);
    EXPECT_NE(stop_message(decide_fixup(Bytes{0x0f, 0xae, 0x28}, kernel_at(0))).find("noxsave"), std::string::npos);
}

TEST(InjectException, GeneralProtectionCarriesErrorCodeZero) {
    kvm_vcpu_events e{};
    ASSERT_FALSE(inject_exception(e, kVectorGp));
    EXPECT_EQ(e.exception.nr, kVectorGp);
    EXPECT_EQ(e.exception.has_error_code, 1);
    EXPECT_EQ(e.exception.error_code, 0u);
    kvm_vcpu_events bp{};
    ASSERT_FALSE(inject_exception(bp, kVectorBp));
    EXPECT_EQ(bp.exception.has_error_code, 0);
}

// --- Fetching across pages --------------------------------------------------------

class FetchBytes : public ::testing::Test {
protected:
    FetchBytes() : memory({{0, 0x10000}}) {
        for (uint64_t gpa = 0; gpa < 0x10000; ++gpa) memory.write_obj<uint8_t>(gpa, static_cast<uint8_t>(gpa * 7));
    }
    static uint8_t at(uint64_t gpa) { return static_cast<uint8_t>(gpa * 7); }
    GuestMemory memory;
    std::map<uint64_t, uint64_t> page_table;  // linear page -> guest-physical page
    TranslateFn translate = [this](uint64_t linear) -> std::optional<uint64_t> {
        auto it = page_table.find(linear & ~0xfffull);
        if (it == page_table.end()) return std::nullopt;
        return it->second + (linear & 0xfff);
    };
};

TEST_F(FetchBytes, FifteenBytesFromOnePage) {
    page_table[0xffffffff81000000] = 0x3000;
    auto bytes = fetch_instruction_bytes(0xffffffff81000010, translate, memory);
    ASSERT_EQ(bytes.size(), 15u);
    for (size_t i = 0; i < 15; ++i) EXPECT_EQ(bytes[i], at(0x3010 + i));
}

TEST_F(FetchBytes, CrossesIntoADifferentlyMappedPage) {
    page_table[0x400000] = 0x5000;
    page_table[0x401000] = 0x2000;  // the next linear page is elsewhere physically
    auto bytes = fetch_instruction_bytes(0x400ffd, translate, memory);
    ASSERT_EQ(bytes.size(), 15u);
    EXPECT_EQ(bytes[0], at(0x5ffd));
    EXPECT_EQ(bytes[2], at(0x5fff));
    EXPECT_EQ(bytes[3], at(0x2000));
    EXPECT_EQ(bytes[14], at(0x200b));
}

TEST_F(FetchBytes, StopsAtAnUnmappedPage) {
    page_table[0x400000] = 0x5000;
    auto bytes = fetch_instruction_bytes(0x400ffe, translate, memory);
    EXPECT_EQ(bytes.size(), 2u);
}

TEST_F(FetchBytes, StopsWhereGuestRamEnds) {
    page_table[0x400000] = 0xf000;
    page_table[0x401000] = 0x10000;  // translates, but past the end of RAM
    auto bytes = fetch_instruction_bytes(0x400ff8, translate, memory);
    EXPECT_EQ(bytes.size(), 8u);
}

TEST_F(FetchBytes, NothingWhenRipDoesNotTranslate) {
    EXPECT_TRUE(fetch_instruction_bytes(0x123456, translate, memory).empty());
}

TEST_F(FetchBytes, OperandReadAndWrittenAcrossAPageBoundary) {
    page_table[0x400000] = 0x5000;
    page_table[0x401000] = 0x2000;
    std::array<uint8_t, 4> word{};
    ASSERT_TRUE(read_linear(0x400ffe, word, translate, memory));
    EXPECT_EQ(word[1], at(0x5fff));
    EXPECT_EQ(word[2], at(0x2000));
    const std::array<uint8_t, 4> value{0x80, 0x1f, 0x00, 0x00};  // MXCSR 0x1f80
    ASSERT_TRUE(write_linear(0x400ffe, value, translate, memory));
    EXPECT_EQ(memory.read_obj<uint8_t>(0x5ffe), 0x80);
    EXPECT_EQ(memory.read_obj<uint8_t>(0x2000), 0x00);
    EXPECT_EQ(memory.read_obj<uint8_t>(0x2001), 0x00);
    EXPECT_FALSE(read_linear(0x401ffe, word, translate, memory)) << "second page unmapped";
}

}  // namespace
}  // namespace tapvm::kvm
