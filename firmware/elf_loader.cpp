#include "firmware/elf_loader.h"

#include <elf.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include "vmm/error.h"
#include "vmm/layout.h"

namespace tapvm::boot {

namespace {

// A vmlinux has about five program headers; far more means a broken file.
constexpr size_t kMaxProgramHeaders = 128;

[[noreturn]] void bad_elf(const std::string& why) { throw UsageError("bad ELF kernel: " + why); }

template <class T>
T read_struct(std::span<const uint8_t> bytes, size_t offset) {
    T value;
    std::memcpy(&value, bytes.data() + offset, sizeof(T));
    return value;
}

void check_header(const Elf64_Ehdr& eh, size_t file_size) {
    if (eh.e_ident[EI_CLASS] != ELFCLASS64) bad_elf("not a 64-bit ELF (EI_CLASS)");
    if (eh.e_ident[EI_DATA] != ELFDATA2LSB) bad_elf("not little-endian (EI_DATA)");
    if (eh.e_ident[EI_VERSION] != EV_CURRENT) bad_elf("unknown ELF version");
    if (eh.e_machine != EM_X86_64) bad_elf(fmt::format("machine {} is not x86-64", eh.e_machine));
    if (eh.e_type != ET_EXEC) bad_elf(fmt::format("type {} is not an executable (ET_EXEC)", eh.e_type));
    if (eh.e_phentsize != sizeof(Elf64_Phdr))
        bad_elf(fmt::format("program header size {} (expected {})", eh.e_phentsize, sizeof(Elf64_Phdr)));
    if (eh.e_phnum == 0 || eh.e_phnum > kMaxProgramHeaders)
        bad_elf(fmt::format("{} program headers", eh.e_phnum));
    uint64_t table = uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr);
    if (eh.e_phoff > file_size || table > file_size - eh.e_phoff)
        bad_elf("program header table lies outside the file");
}

std::vector<Elf64_Phdr> loadable_segments(std::span<const uint8_t> elf, const Elf64_Ehdr& eh) {
    std::vector<Elf64_Phdr> segments;
    for (size_t i = 0; i < eh.e_phnum; ++i) {
        auto ph = read_struct<Elf64_Phdr>(elf, eh.e_phoff + i * sizeof(Elf64_Phdr));
        if (ph.p_type == PT_LOAD && ph.p_memsz != 0) segments.push_back(ph);
    }
    if (segments.empty()) bad_elf("no loadable (PT_LOAD) segment");
    return segments;
}

void check_segment(const GuestMemory& memory, const Elf64_Phdr& ph, size_t file_size) {
    auto where = [&] { return fmt::format("segment at physical {:#x} (+{:#x})", ph.p_paddr, ph.p_memsz); };
    if (ph.p_filesz > ph.p_memsz) bad_elf(where() + ": p_filesz is larger than p_memsz");
    if (ph.p_offset > file_size || ph.p_filesz > file_size - ph.p_offset)
        bad_elf(where() + ": its file bytes lie outside the file");
    // Below 1 MiB live the zero page, boot GDT, page tables and ACPI tables.
    if (ph.p_paddr < layout::kHighMemStart)
        bad_elf(where() + fmt::format(": below {:#x}, where tapvm keeps its boot structures",
                                      layout::kHighMemStart));
    if (!memory.contains(ph.p_paddr, ph.p_memsz)) bad_elf(where() + ": not inside guest RAM");
}

void check_no_overlap(std::vector<Elf64_Phdr> segments) {
    std::sort(segments.begin(), segments.end(), [](auto& a, auto& b) { return a.p_paddr < b.p_paddr; });
    for (size_t i = 1; i < segments.size(); ++i) {
        const auto& prev = segments[i - 1];
        // Ends cannot overflow: check_segment() found both inside guest RAM.
        if (prev.p_paddr + prev.p_memsz > segments[i].p_paddr)
            bad_elf(fmt::format("segments at physical {:#x} and {:#x} overlap", prev.p_paddr,
                                segments[i].p_paddr));
    }
}

// Linux links vmlinux with ENTRY(phys_startup_64): e_entry is already the
// physical address (0x1000000 for Debian's kernel).  A generic ELF gives a
// virtual entry; translate it through the segment that maps it.
std::optional<Gpa> physical_entry(uint64_t e_entry, const std::vector<Elf64_Phdr>& segments) {
    for (const auto& ph : segments)
        if (e_entry >= ph.p_paddr && e_entry - ph.p_paddr < ph.p_memsz) return e_entry;
    for (const auto& ph : segments)
        if (e_entry >= ph.p_vaddr && e_entry - ph.p_vaddr < ph.p_memsz) return ph.p_paddr + (e_entry - ph.p_vaddr);
    return std::nullopt;
}

void copy_segment(const GuestMemory& memory, std::span<const uint8_t> elf, const Elf64_Phdr& ph) {
    std::span<uint8_t> dest = *memory.slice(ph.p_paddr, ph.p_memsz);  // checked in check_segment()
    std::memcpy(dest.data(), elf.data() + ph.p_offset, ph.p_filesz);
    // The tail (.bss and friends) must be zero even if guest RAM was reused.
    std::memset(dest.data() + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
}

}  // namespace

bool has_elf_magic(std::span<const uint8_t> bytes) {
    return bytes.size() >= SELFMAG && std::memcmp(bytes.data(), ELFMAG, SELFMAG) == 0;
}

ElfImage load_elf(const GuestMemory& memory, std::span<const uint8_t> elf) {
    if (elf.size() < sizeof(Elf64_Ehdr) || !has_elf_magic(elf)) bad_elf("missing ELF header");
    auto eh = read_struct<Elf64_Ehdr>(elf, 0);
    check_header(eh, elf.size());

    std::vector<Elf64_Phdr> segments = loadable_segments(elf, eh);
    for (const auto& ph : segments) check_segment(memory, ph, elf.size());
    check_no_overlap(segments);
    std::optional<Gpa> entry = physical_entry(eh.e_entry, segments);
    if (!entry) bad_elf(fmt::format("entry point {:#x} is in no loadable segment", eh.e_entry));

    ElfImage image{*entry, ~Gpa{0}, 0};
    for (const auto& ph : segments) {
        copy_segment(memory, elf, ph);
        image.lowest = std::min(image.lowest, ph.p_paddr);
        image.end = std::max(image.end, ph.p_paddr + ph.p_memsz);
    }
    return image;
}

}  // namespace tapvm::boot
