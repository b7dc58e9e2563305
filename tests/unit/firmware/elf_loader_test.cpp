#include "firmware/elf_loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "boot_images.h"
#include "vmm/error.h"

namespace tapvm::boot {
namespace {

using testing::build_elf;
using testing::Bytes;
using testing::ElfSegment;
using ::testing::HasSubstr;

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t kKernelVirtualBase = 0xffffffff80000000ull;

class ElfLoader : public ::testing::Test {
protected:
    GuestMemory memory_{{{0, 64 * MiB}}};

    std::string load_error(const Bytes& elf) {
        try {
            load_elf(memory_, elf);
        } catch (const UsageError& e) {
            return e.what();
        }
        return "";
    }

    Bytes guest_bytes(Gpa gpa, size_t len) {
        Bytes out(len);
        EXPECT_TRUE(memory_.read(gpa, out));
        return out;
    }

    // A vmlinux-like image: text at 16 MiB, data with .bss after it.
    Bytes vmlinux_like() {
        return build_elf(0x1000000, {
            {kKernelVirtualBase + 0x1000000, 0x1000000, testing::pattern_bytes(0x3000, 1), 0},
            {kKernelVirtualBase + 0x1400000, 0x1400000, testing::pattern_bytes(0x800, 2), 0x5000},
        });
    }
};

TEST_F(ElfLoader, LoadsSegmentsAtTheirPhysicalAddresses) {
    Bytes elf = vmlinux_like();
    ElfImage image = load_elf(memory_, elf);
    EXPECT_EQ(guest_bytes(0x1000000, 0x3000), testing::pattern_bytes(0x3000, 1));
    EXPECT_EQ(guest_bytes(0x1400000, 0x800), testing::pattern_bytes(0x800, 2));
    EXPECT_EQ(image.lowest, 0x1000000u);
    EXPECT_EQ(image.end, 0x1405000u);
}

TEST_F(ElfLoader, ZeroFillsUpToMemsz) {
    // Dirty the .bss area first: the loader must clear it, not rely on fresh RAM.
    Bytes dirt(0x5000, 0xcc);
    ASSERT_TRUE(memory_.write(0x1400000, dirt));
    load_elf(memory_, vmlinux_like());
    EXPECT_EQ(guest_bytes(0x1400800, 0x4800), Bytes(0x4800, 0));
    // ... and nothing past p_memsz.
    EXPECT_EQ(guest_bytes(0x1405000, 1), Bytes{0});
}

TEST_F(ElfLoader, PhysicalEntryIsUsedAsIs) {
    // Linux's vmlinux: e_entry = phys_startup_64, a physical address.
    EXPECT_EQ(load_elf(memory_, vmlinux_like()).entry, 0x1000000u);
}

TEST_F(ElfLoader, VirtualEntryIsTranslatedThroughItsSegment) {
    Bytes elf = build_elf(kKernelVirtualBase + 0x1000040,
                          {{kKernelVirtualBase + 0x1000000, 0x1000000, testing::pattern_bytes(0x100), 0}});
    EXPECT_EQ(load_elf(memory_, elf).entry, 0x1000040u);
}

TEST_F(ElfLoader, EntryOutsideEverySegmentIsRejected) {
    Bytes elf = build_elf(0x3000000, {{0x1000000, 0x1000000, testing::pattern_bytes(0x100), 0}});
    EXPECT_THAT(load_error(elf), HasSubstr("entry point 0x3000000 is in no loadable segment"));
}

TEST_F(ElfLoader, NonLoadSegmentsAreIgnored) {
    Bytes elf = build_elf(0x1000000, {
        {0, 0x10, testing::pattern_bytes(0x20), 0, PT_NOTE},  // would be below 1 MiB if loaded
        {0x1000000, 0x1000000, testing::pattern_bytes(0x100), 0},
    });
    EXPECT_EQ(load_error(elf), "");
    EXPECT_EQ(guest_bytes(0x10, 0x20), Bytes(0x20, 0));
}

TEST_F(ElfLoader, RejectsFileszLargerThanMemsz) {
    Bytes elf = vmlinux_like();
    auto ph = testing::program_header(elf, 1);
    ph.p_memsz = ph.p_filesz - 1;
    testing::set_program_header(elf, 1, ph);
    EXPECT_THAT(load_error(elf), HasSubstr("p_filesz is larger than p_memsz"));
}

TEST_F(ElfLoader, RejectsFileBytesOutsideTheFile) {
    Bytes elf = vmlinux_like();
    auto ph = testing::program_header(elf, 0);
    ph.p_filesz = elf.size();  // offset + filesz past the end
    ph.p_memsz = ph.p_filesz;
    testing::set_program_header(elf, 0, ph);
    EXPECT_THAT(load_error(elf), HasSubstr("outside the file"));

    elf = vmlinux_like();
    ph = testing::program_header(elf, 0);
    ph.p_offset = ~0ull - 8;  // offset + filesz wraps
    testing::set_program_header(elf, 0, ph);
    EXPECT_THAT(load_error(elf), HasSubstr("outside the file"));
}

TEST_F(ElfLoader, RejectsSegmentsOutsideGuestRam) {
    Bytes elf = vmlinux_like();
    auto ph = testing::program_header(elf, 1);
    ph.p_paddr = 64 * MiB - 0x1000;  // memsz 0x5000 runs past the end of RAM
    testing::set_program_header(elf, 1, ph);
    EXPECT_THAT(load_error(elf), HasSubstr("not inside guest RAM"));

    ph.p_paddr = ~0ull - 0x100;  // paddr + memsz wraps
    testing::set_program_header(elf, 1, ph);
    EXPECT_THAT(load_error(elf), HasSubstr("not inside guest RAM"));
}

TEST_F(ElfLoader, RejectsSegmentsOverTheLowBootArea) {
    Bytes elf = build_elf(0x7000, {{0x7000, 0x7000, testing::pattern_bytes(0x100), 0}});
    EXPECT_THAT(load_error(elf), HasSubstr("boot structures"));
}

TEST_F(ElfLoader, RejectsOverlappingSegments) {
    Bytes elf = build_elf(0x1000000, {
        {0x1000000, 0x1000000, testing::pattern_bytes(0x2000), 0},
        {0x1001000, 0x1001000, testing::pattern_bytes(0x100), 0},
    });
    EXPECT_THAT(load_error(elf), HasSubstr("overlap"));
}

TEST_F(ElfLoader, NothingIsWrittenWhenALaterSegmentIsBad) {
    Bytes elf = vmlinux_like();
    auto ph = testing::program_header(elf, 1);
    ph.p_paddr = 512 * MiB;
    testing::set_program_header(elf, 1, ph);
    EXPECT_NE(load_error(elf), "");
    EXPECT_EQ(guest_bytes(0x1000000, 0x100), Bytes(0x100, 0));
}

TEST_F(ElfLoader, RejectsBadHeaders) {
    auto with_header = [&](auto mutate) {
        Bytes elf = vmlinux_like();
        auto eh = testing::elf_header(elf);
        mutate(eh);
        testing::set_elf_header(elf, eh);
        return load_error(elf);
    };
    EXPECT_THAT(with_header([](Elf64_Ehdr& eh) { eh.e_ident[EI_CLASS] = ELFCLASS32; }), HasSubstr("64-bit"));
    EXPECT_THAT(with_header([](Elf64_Ehdr& eh) { eh.e_ident[EI_DATA] = ELFDATA2MSB; }), HasSubstr("little-endian"));
    EXPECT_THAT(with_header([](Elf64_Ehdr& eh) { eh.e_machine = EM_AARCH64; }), HasSubstr("x86-64"));
    EXPECT_THAT(with_header([](Elf64_Ehdr& eh) { eh.e_type = ET_DYN; }), HasSubstr("ET_EXEC"));
    EXPECT_THAT(with_header([](Elf64_Ehdr& eh) { eh.e_phentsize = 32; }), HasSubstr("program header size"));
    EXPECT_THAT(with_header([](Elf64_Ehdr& eh) { eh.e_phnum = 0; }), HasSubstr("0 program headers"));
    EXPECT_THAT(with_header([](Elf64_Ehdr& eh) { eh.e_phnum = 0xffff; }), HasSubstr("program headers"));
    EXPECT_THAT(with_header([](Elf64_Ehdr& eh) { eh.e_phoff = ~0ull - 10; }), HasSubstr("outside the file"));
    EXPECT_THAT(load_error(Bytes{0x7f, 'E', 'L', 'F'}), HasSubstr("missing ELF header"));
    EXPECT_THAT(load_error(testing::pattern_bytes(200)), HasSubstr("missing ELF header"));
}

TEST_F(ElfLoader, RejectsAnElfWithNoLoadableSegment) {
    Bytes elf = build_elf(0x1000000, {{0, 0, testing::pattern_bytes(0x20), 0, PT_NOTE}});
    EXPECT_THAT(load_error(elf), HasSubstr("no loadable"));
}

TEST_F(ElfLoader, SegmentMayEndExactlyAtTheEndOfRam) {
    Bytes elf = build_elf(64 * MiB - 0x1000, {{64 * MiB - 0x1000, 64 * MiB - 0x1000, testing::pattern_bytes(0x1000), 0}});
    EXPECT_EQ(load_error(elf), "");
}

}  // namespace
}  // namespace tapvm::boot
