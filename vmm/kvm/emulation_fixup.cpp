#include "vmm/kvm/emulation_fixup.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <string_view>

#include "vmm/kvm/kvm_vcpu.h"

namespace tapvm::kvm {

namespace {

// --- Decoding just enough of an instruction to match the table -------------

struct Prefixes {
    size_t length = 0;  // legacy prefixes plus REX
    uint8_t rep = 0;    // the last of F2/F3, or 0 (a later one wins, SDM vol. 2A §2.1.1)
    bool operand_size = false;  // 66
    bool address_size = false;  // 67
    uint8_t segment = 0;        // the last segment override (2E 36 3E 26 64 65), or 0
    uint8_t rex = 0;    // 0x40-0x4f when it immediately precedes the opcode
};

bool is_legacy_prefix(uint8_t b) {
    switch (b) {
        case 0xf0: case 0xf2: case 0xf3:                         // lock, repne, rep
        case 0x2e: case 0x36: case 0x3e: case 0x26: case 0x64: case 0x65:  // segments
        case 0x66: case 0x67:                                    // operand and address size
            return true;
        default:
            return false;
    }
}

Prefixes decode_prefixes(std::span<const uint8_t> bytes, bool code64) {
    Prefixes p;
    for (; p.length < bytes.size(); ++p.length) {
        uint8_t b = bytes[p.length];
        if (is_legacy_prefix(b)) {
            if (b == 0xf2 || b == 0xf3) p.rep = b;
            if (b == 0x66) p.operand_size = true;
            if (b == 0x67) p.address_size = true;
            if (b == 0x2e || b == 0x36 || b == 0x3e || b == 0x26 || b == 0x64 || b == 0x65) p.segment = b;
            p.rex = 0;  // a REX followed by another prefix is ignored (§2.2.1)
        } else if (code64 && (b & 0xf0) == 0x40) {
            p.rex = b;
        } else {
            break;
        }
    }
    return p;
}

// --- The table ----------------------------------------------------------------

enum class Handling { Breakpoint, Wait, LoadMxcsr, StoreMxcsr, Unsupported };
// The mandatory-prefix column of the SDM's opcode tables: NP = none of
// 66/F2/F3 (with one, the same opcode is another instruction).
enum class Mandatory { Any, NP, F3 };
enum class RexW { Any, Set, Clear };
enum class Mod { Any, Memory };  // Memory: ModRM.mod != 3

struct KnownInstruction {
    std::string_view name;
    std::array<uint8_t, 3> opcode;
    uint8_t opcode_length;
    Mandatory mandatory = Mandatory::Any;
    RexW rex_w = RexW::Any;
    int8_t modrm_reg = -1;  // required ModRM.reg (the /digit), or -1: no ModRM checked
    Mod mod = Mod::Any;
    Handling handling = Handling::Unsupported;
    std::string_view remedy;  // what keeps a Linux guest away from it
};

constexpr std::string_view kNoXsave = "boot the guest kernel with `noxsave`";
constexpr std::string_view kNoCx16 = "boot the guest kernel with `clearcpuid=cx16`";
constexpr std::string_view kNoPopcnt = "boot the guest kernel with `clearcpuid=popcnt`";
constexpr std::string_view kNoSmap = "boot the guest kernel with `clearcpuid=smap`";
constexpr std::string_view kNoSsse3 =
    "SIMD code in the guest kernel (the stock kernel's blake2s) — boot it with `clearcpuid=ssse3`";
constexpr std::string_view kSyscall =
    "this KVM cannot run `syscall`; the guest kernel needs the entry_SYSCALL_64 page-fault patch";

// First match wins.  Opcodes from the SDM vol. 2 instruction pages.
constexpr KnownInstruction kInstructions[] = {
    {"int3", {0xcc}, 1, Mandatory::Any, RexW::Any, -1, Mod::Any, Handling::Breakpoint, {}},
    {"fwait", {0x9b}, 1, Mandatory::Any, RexW::Any, -1, Mod::Any, Handling::Wait, {}},
    // LDMXCSR/STMXCSR m32: 0F AE /2 and /3 (SDM vol. 2A).
    {"ldmxcsr", {0x0f, 0xae}, 2, Mandatory::NP, RexW::Any, 2, Mod::Memory, Handling::LoadMxcsr, {}},
    {"stmxcsr", {0x0f, 0xae}, 2, Mandatory::NP, RexW::Any, 3, Mod::Memory, Handling::StoreMxcsr, {}},
    {"xsave", {0x0f, 0xae}, 2, Mandatory::NP, RexW::Any, 4, Mod::Memory, Handling::Unsupported, kNoXsave},
    {"xrstor", {0x0f, 0xae}, 2, Mandatory::NP, RexW::Any, 5, Mod::Memory, Handling::Unsupported, kNoXsave},
    {"xsaveopt", {0x0f, 0xae}, 2, Mandatory::NP, RexW::Any, 6, Mod::Memory, Handling::Unsupported, kNoXsave},
    {"xrstors", {0x0f, 0xc7}, 2, Mandatory::NP, RexW::Any, 3, Mod::Memory, Handling::Unsupported, kNoXsave},
    {"xsavec", {0x0f, 0xc7}, 2, Mandatory::NP, RexW::Any, 4, Mod::Memory, Handling::Unsupported, kNoXsave},
    {"xsaves", {0x0f, 0xc7}, 2, Mandatory::NP, RexW::Any, 5, Mod::Memory, Handling::Unsupported, kNoXsave},
    {"xgetbv", {0x0f, 0x01, 0xd0}, 3, Mandatory::NP, RexW::Any, -1, Mod::Any, Handling::Unsupported, kNoXsave},
    {"xsetbv", {0x0f, 0x01, 0xd1}, 3, Mandatory::NP, RexW::Any, -1, Mod::Any, Handling::Unsupported, kNoXsave},
    {"cmpxchg16b", {0x0f, 0xc7}, 2, Mandatory::Any, RexW::Set, 1, Mod::Memory, Handling::Unsupported, kNoCx16},
    {"cmpxchg8b", {0x0f, 0xc7}, 2, Mandatory::Any, RexW::Clear, 1, Mod::Memory, Handling::Unsupported, {}},
    {"popcnt", {0x0f, 0xb8}, 2, Mandatory::F3, RexW::Any, -1, Mod::Any, Handling::Unsupported, kNoPopcnt},
    {"clac", {0x0f, 0x01, 0xca}, 3, Mandatory::NP, RexW::Any, -1, Mod::Any, Handling::Unsupported, kNoSmap},
    {"stac", {0x0f, 0x01, 0xcb}, 3, Mandatory::NP, RexW::Any, -1, Mod::Any, Handling::Unsupported, kNoSmap},
    // MOVD/MOVQ xmm, r/m32/64 (66 0F 6E /r): what blake2s_compress_ssse3
    // runs first that KVM's emulator has no case for.
    {"movd/movq to xmm", {0x0f, 0x6e}, 2, Mandatory::Any, RexW::Any, -1, Mod::Any, Handling::Unsupported, kNoSsse3},
    {"syscall", {0x0f, 0x05}, 2, Mandatory::Any, RexW::Any, -1, Mod::Any, Handling::Unsupported, kSyscall},
};

bool matches(const KnownInstruction& k, const Prefixes& p, std::span<const uint8_t> rest) {
    if (rest.size() < k.opcode_length || !std::equal(k.opcode.begin(), k.opcode.begin() + k.opcode_length, rest.begin()))
        return false;
    switch (k.mandatory) {
        case Mandatory::Any: break;
        case Mandatory::NP:
            if (p.rep || p.operand_size) return false;
            break;
        case Mandatory::F3:
            if (p.rep != 0xf3) return false;
            break;
    }
    bool w = p.rex & 0x08;
    if ((k.rex_w == RexW::Set && !w) || (k.rex_w == RexW::Clear && w)) return false;
    if (k.modrm_reg >= 0) {
        if (rest.size() <= k.opcode_length) return false;  // ModRM not fetched
        uint8_t modrm = rest[k.opcode_length];
        if (((modrm >> 3) & 7) != k.modrm_reg) return false;
        if (k.mod == Mod::Memory && (modrm >> 6) == 3) return false;
    }
    return true;
}

const KnownInstruction* identify(const Prefixes& p, std::span<const uint8_t> rest) {
    for (const auto& k : kInstructions)
        if (matches(k, p, rest)) return &k;
    return nullptr;
}

std::string hex_bytes(std::span<const uint8_t> bytes) {
    std::string s;
    for (auto b : bytes) s += fmt::format("{}{:02x}", s.empty() ? "" : " ", b);
    return s;
}

std::string stop_message(std::span<const uint8_t> bytes, const FixupContext& c, const KnownInstruction* known,
                         std::string_view detail = {}) {
    std::string what = fmt::format("emulation failure at RIP {:#x} (CPL {}): ", c.rip, c.cpl);
    if (bytes.empty()) return what + "instruction bytes unavailable (RIP is not mapped to guest RAM) — see PLATFORM.md";
    what += "bytes " + hex_bytes(bytes);
    if (!known) return what + " (an instruction tapvm cannot complete) — see PLATFORM.md";
    what += fmt::format(" ({})", known->name);
    if (!detail.empty()) what += fmt::format(": {}", detail);
    if (!known->remedy.empty()) what += fmt::format(" — {}", known->remedy);
    return what + "; see PLATFORM.md";
}

constexpr uint64_t kCr0Mp = 1u << 1;
constexpr uint64_t kCr0Ts = 1u << 3;
constexpr uint64_t kCr0Ne = 1u << 5;
constexpr uint16_t kFswEs = 1u << 7;

// WAIT/FWAIT (SDM vol. 2B): #NM if CR0.MP and CR0.TS; #MF if an unmasked
// x87 exception is pending (FSW.ES) and CR0.NE; otherwise nothing at all.
FixupAction complete_wait(std::span<const uint8_t> bytes, const FixupContext& c, const KnownInstruction& k,
                          uint8_t length) {
    if ((c.cr0 & kCr0Mp) && (c.cr0 & kCr0Ts)) return InjectException{kVectorNm, 0};
    if (c.fpu_status & kFswEs) {
        if (c.cr0 & kCr0Ne) return InjectException{kVectorMf, 0};
        return StopGuest{stop_message(bytes, c, &k, "x87 error pending with CR0.NE clear (FERR# reporting is not modelled)")};
    }
    return AdvanceRip{length};
}

constexpr uint64_t kCr0Em = 1u << 2;
constexpr uint64_t kCr4Osfxsr = 1u << 9;

// LDMXCSR/STMXCSR (SDM vol. 2A): #UD if CR0.EM or not CR4.OSFXSR; #NM if
// CR0.TS; then the m32 operand.  Only 64-bit code, where the segment bases
// are flat but FS/GS.
FixupAction complete_mxcsr(std::span<const uint8_t> bytes, const FixupContext& c, const KnownInstruction& k,
                           const Prefixes& p, bool load) {
    if (!c.code64) return StopGuest{stop_message(bytes, c, &k, "only completed in 64-bit code")};
    if ((c.cr0 & kCr0Em) || !(c.cr4 & kCr4Osfxsr)) return InjectException{kVectorUd, 0};
    if (c.cr0 & kCr0Ts) return InjectException{kVectorNm, 0};
    size_t before = p.length + k.opcode_length;
    auto operand = decode_memory_operand(bytes.subspan(before), p.rex, p.address_size, p.segment, before, c);
    if (!operand) return StopGuest{stop_message(bytes, c, &k, "operand bytes missing")};
    return MxcsrAccess{load, operand->linear, static_cast<uint8_t>(before + operand->length)};
}

}  // namespace

std::optional<MemoryOperand> decode_memory_operand(std::span<const uint8_t> m, uint8_t rex, bool address32,
                                                   uint8_t segment, size_t bytes_before_modrm,
                                                   const FixupContext& c) {
    // SDM vol. 2A §2.1.5 (tables 2-2, 2-3) with REX.B/X extending base and
    // index (§2.2.1.2); 64-bit mode only.
    if (m.empty()) return std::nullopt;
    const uint8_t modrm = m[0], mod = modrm >> 6;
    uint8_t rm = modrm & 7;
    if (mod == 3) return std::nullopt;
    size_t at = 1;
    uint64_t address = 0;
    // mod 00 with rm 101 (RIP-relative) or SIB base 101 (no base): disp32.
    bool rip_relative = false, disp32_alone = false;
    if (rm == 4) {  // SIB follows
        if (m.size() < 2) return std::nullopt;
        const uint8_t sib = m[1];
        at = 2;
        const uint8_t scale = sib >> 6, index = ((sib >> 3) & 7) | ((rex & 0x02) ? 8 : 0);
        if (index != 4) address += c.gpr[index] << scale;  // index 100 (without REX.X) = none
        disp32_alone = mod == 0 && (sib & 7) == 5;
        if (!disp32_alone) address += c.gpr[(sib & 7) | ((rex & 0x01) ? 8 : 0)];
    } else if (rm == 5 && mod == 0) {
        rip_relative = true;
    } else {
        address += c.gpr[rm | ((rex & 0x01) ? 8 : 0)];
    }
    size_t disp_bytes = mod == 1 ? 1 : (mod == 2 || rip_relative || disp32_alone ? 4 : 0);
    if (m.size() < at + disp_bytes) return std::nullopt;
    int64_t disp = 0;
    if (disp_bytes == 1) disp = static_cast<int8_t>(m[at]);
    if (disp_bytes == 4) {
        int32_t d32;
        std::memcpy(&d32, m.data() + at, 4);  // little-endian, as x86 is
        disp = d32;
    }
    at += disp_bytes;
    if (rip_relative) address = c.rip + bytes_before_modrm + at;
    address += static_cast<uint64_t>(disp);
    if (address32) address &= 0xffffffffu;
    if (segment == 0x64) address += c.fs_base;
    if (segment == 0x65) address += c.gs_base;
    return MemoryOperand{address, static_cast<uint8_t>(at)};
}

FixupAction decide_fixup(std::span<const uint8_t> bytes, const FixupContext& c) {
    bytes = bytes.first(std::min(bytes.size(), kMaxInstructionLength));
    auto prefixes = decode_prefixes(bytes, c.code64);
    auto rest = bytes.subspan(prefixes.length);
    const KnownInstruction* known = identify(prefixes, rest);
    if (!known) return StopGuest{stop_message(bytes, c, nullptr)};
    auto length = static_cast<uint8_t>(prefixes.length + known->opcode_length);
    switch (known->handling) {
        case Handling::Breakpoint: return InjectException{kVectorBp, length};  // a trap: RIP moves past it
        case Handling::Wait: return complete_wait(bytes, c, *known, length);
        case Handling::LoadMxcsr: return complete_mxcsr(bytes, c, *known, prefixes, true);
        case Handling::StoreMxcsr: return complete_mxcsr(bytes, c, *known, prefixes, false);
        case Handling::Unsupported: break;
    }
    return StopGuest{stop_message(bytes, c, known)};
}

// --- The vCPU side ----------------------------------------------------------

namespace {
constexpr uint64_t kCr0Pe = 1u << 0;
constexpr uint64_t kEferLma = 1u << 10;
constexpr uint64_t kRflagsRf = 1u << 16;
constexpr uint64_t kRflagsVm = 1u << 17;
constexpr uint64_t kPageSize = 4096;
}  // namespace

bool is_code64(const kvm_sregs& s) { return (s.efer & kEferLma) && s.cs.l; }

int current_privilege_level(const kvm_sregs& s, uint64_t rflags) {
    if (!(s.cr0 & kCr0Pe)) return 0;
    if (rflags & kRflagsVm) return 3;
    return s.ss.dpl & 3;
}

uint64_t instruction_linear_address(const kvm_sregs& s, uint64_t rip) {
    if (is_code64(s)) return rip;
    return (s.cs.base + rip) & 0xffffffffu;
}

FixupContext fixup_context(const kvm_regs& regs, const kvm_sregs& sregs, const kvm_fpu& fpu) {
    FixupContext c{regs.rip, current_privilege_level(sregs, regs.rflags), is_code64(sregs), sregs.cr0, fpu.fsw};
    c.cr4 = sregs.cr4;
    c.gpr = {regs.rax, regs.rcx, regs.rdx, regs.rbx, regs.rsp, regs.rbp, regs.rsi, regs.rdi,
             regs.r8,  regs.r9,  regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15};
    c.fs_base = sregs.fs.base;
    c.gs_base = sregs.gs.base;
    return c;
}

namespace {
// Walks [linear, linear + size) page by page: each page translates on its own.
template <class Fn>
bool for_each_page(uint64_t linear, size_t size, const TranslateFn& translate, Fn&& fn) {
    size_t done = 0;
    while (done < size) {
        uint64_t address = linear + done;
        auto gpa = translate(address);
        if (!gpa) return false;
        size_t n = std::min<uint64_t>(size - done, kPageSize - (address % kPageSize));
        if (!fn(*gpa, done, n)) return false;
        done += n;
    }
    return true;
}
}  // namespace

bool read_linear(uint64_t linear, std::span<uint8_t> out, const TranslateFn& translate, const GuestMemory& memory) {
    return for_each_page(linear, out.size(), translate,
                         [&](uint64_t gpa, size_t at, size_t n) { return memory.read(gpa, out.subspan(at, n)); });
}

bool write_linear(uint64_t linear, std::span<const uint8_t> in, const TranslateFn& translate,
                  const GuestMemory& memory) {
    return for_each_page(linear, in.size(), translate,
                         [&](uint64_t gpa, size_t at, size_t n) { return memory.write(gpa, in.subspan(at, n)); });
}

std::vector<uint8_t> fetch_instruction_bytes(uint64_t linear, const TranslateFn& translate,
                                             const GuestMemory& memory) {
    // As many of the 15 bytes as translate to RAM: the walk stops at the
    // first page that does not, keeping what came before it.  (RAM regions
    // are page-aligned, so the rest of a translated page is all RAM or none.)
    std::vector<uint8_t> bytes;
    std::array<uint8_t, kMaxInstructionLength> chunk{};
    for_each_page(linear, kMaxInstructionLength, translate, [&](uint64_t gpa, size_t, size_t n) {
        if (!memory.read(gpa, std::span(chunk).first(n))) return false;
        bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + n);
        return true;
    });
    return bytes;
}

void advance_rip(kvm_regs& regs, const kvm_sregs& sregs, uint8_t length) {
    uint64_t rip = regs.rip + length;
    if (!is_code64(sregs)) rip &= sregs.cs.db ? 0xffffffffu : 0xffffu;
    regs.rip = rip;
    regs.rflags &= ~kRflagsRf;
}

std::optional<std::string> inject_exception(kvm_vcpu_events& events, uint8_t vector) {
    if (events.exception.injected || events.exception.pending)
        return fmt::format("cannot inject vector {}: exception {} is already pending", vector, events.exception.nr);
    // injected = 1 as PLATFORM.md verified on PVM; without
    // KVM_CAP_EXCEPTION_PAYLOAD KVM treats injected and pending alike.
    events.exception.injected = 1;
    events.exception.nr = vector;
    events.exception.has_error_code = vector == kVectorGp;  // #GP(0)
    events.exception.error_code = 0;
    return std::nullopt;
}

namespace {

void log_first_completion(std::string_view what, const FixupContext& c) {
    static std::atomic<bool> int3_logged{false}, fwait_logged{false}, mxcsr_logged{false};
    auto& logged = what == "int3" ? int3_logged : (what == "fwait" ? fwait_logged : mxcsr_logged);
    if (!logged.exchange(true))
        spdlog::info("KVM could not emulate `{}` at RIP {:#x}; tapvm completes it (PLATFORM.md), "
                     "further ones are not logged",
                     what, c.rip);
    else
        spdlog::debug("completed `{}` at RIP {:#x}", what, c.rip);
}

}  // namespace

namespace {
// Moves MXCSR for `access`; returns what is left to do: advance RIP, inject
// #GP(0) for reserved bits, or stop when the operand is not in guest RAM.
FixupAction complete_mxcsr_access(KvmVcpu& vcpu, const MxcsrAccess& access, const GuestMemory& memory,
                                                 const FixupContext& context) {
    TranslateFn translate = [&](uint64_t linear) { return vcpu.translate(linear); };
    auto fpu = vcpu.fpu();
    std::array<uint8_t, 4> word{};
    const char* name = access.load ? "ldmxcsr" : "stmxcsr";
    if (access.load) {
        if (!read_linear(access.linear, word, translate, memory))
            return StopGuest{fmt::format("emulation failure at RIP {:#x}: {} operand {:#x} is not mapped to guest RAM "
                                         "(a page fault tapvm does not inject)",
                                         context.rip, name, access.linear)};
        uint32_t value;
        std::memcpy(&value, word.data(), 4);
        if (value & ~kMxcsrWritable) return InjectException{kVectorGp, 0};  // SDM: reserved bits -> #GP(0)
        fpu.mxcsr = value;
        vcpu.set_fpu(fpu);
    } else {
        uint32_t value = fpu.mxcsr;
        std::memcpy(word.data(), &value, 4);
        if (!write_linear(access.linear, word, translate, memory))
            return StopGuest{fmt::format("emulation failure at RIP {:#x}: {} operand {:#x} is not mapped to guest RAM "
                                         "(a page fault tapvm does not inject)",
                                         context.rip, name, access.linear)};
    }
    return AdvanceRip{access.length};
}
}  // namespace

ExitAction complete_emulation_failure(KvmVcpu& vcpu, const InternalErrorExit& exit, const GuestMemory& memory) {
    auto regs = vcpu.regs();
    auto sregs = vcpu.sregs();
    auto context = fixup_context(regs, sregs, vcpu.fpu());
    auto bytes = fetch_instruction_bytes(instruction_linear_address(sregs, regs.rip),
                                         [&](uint64_t linear) { return vcpu.translate(linear); }, memory);
    if (bytes.empty()) bytes = exit.instruction_bytes;  // what KVM's emulator saw, if it said

    auto action = decide_fixup(bytes, context);
    std::string_view what = "fwait";
    if (auto* mx = std::get_if<MxcsrAccess>(&action)) {
        what = mx->load ? "ldmxcsr" : "stmxcsr";
        action = complete_mxcsr_access(vcpu, *mx, memory, context);
    }
    if (auto* stop = std::get_if<StopGuest>(&action)) return Fatal{stop->message};

    uint8_t advance = 0, vector = 0;
    bool inject = false;
    if (auto* a = std::get_if<AdvanceRip>(&action)) advance = a->length;
    if (auto* e = std::get_if<InjectException>(&action)) {
        advance = e->advance;
        vector = e->vector;
        inject = true;
    }
    // Registers first: KVM_SET_REGS discards a pending exception, so the
    // events must be set after it.
    if (advance) {
        advance_rip(regs, sregs, advance);
        vcpu.set_regs(regs);
    }
    auto events = vcpu.events();
    if (inject)
        if (auto problem = inject_exception(events, vector))
            return Fatal{fmt::format("emulation failure at RIP {:#x}: {}", context.rip, *problem)};
    // A completed instruction ends any STI / MOV SS interrupt shadow.
    if (advance) events.interrupt.shadow = 0;
    vcpu.set_events(events);
    log_first_completion(vector == kVectorBp ? "int3" : what, context);
    return Continue{};
}

}  // namespace tapvm::kvm
