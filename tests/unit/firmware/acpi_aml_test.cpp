// AML encodings checked against byte sequences derived by hand from the
// ACPI 6.5 specification (§20 AML grammar, §6.4 resource descriptors).
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "firmware/acpi/aml.h"
#include "firmware/acpi/aml_resources.h"
#include "vmm/error.h"

namespace tapvm::acpi::aml {
namespace {

using B = std::vector<uint8_t>;

// Decodes a PkgLength independently of the encoder (§20.2.4): returns the
// encoded value and how many bytes the encoding took.
std::pair<size_t, size_t> decode_pkg_length(const B& b) {
    size_t follow = b.at(0) >> 6;
    if (follow == 0) return {b[0] & 0x3f, 1};
    size_t value = b[0] & 0x0f;
    for (size_t i = 0; i < follow; ++i) value |= size_t{b.at(1 + i)} << (4 + 8 * i);
    return {value, 1 + follow};
}

TEST(AmlPkgLength, OneByteUpTo63TotalBytes) {
    EXPECT_EQ(pkg_length(0), (B{0x01}));
    EXPECT_EQ(pkg_length(62), (B{0x3f}));  // 62 + 1 = 63: the largest one-byte form
}

TEST(AmlPkgLength, TwoBytesFrom64To4095) {
    // 63 + 1 = 64 does not fit 6 bits; with two bytes the total is 65 = 0x41.
    EXPECT_EQ(pkg_length(63), (B{0x41, 0x04}));
    EXPECT_EQ(pkg_length(64), (B{0x42, 0x04}));
    EXPECT_EQ(pkg_length(4093), (B{0x4f, 0xff}));  // total 0xFFF
}

TEST(AmlPkgLength, ThreeAndFourBytes) {
    EXPECT_EQ(pkg_length(4094), (B{0x81, 0x00, 0x01}));  // total 0x1001
    EXPECT_EQ(pkg_length(4096), (B{0x83, 0x00, 0x01}));  // total 0x1003
    EXPECT_EQ(pkg_length(0xffffc), (B{0x8f, 0xff, 0xff}));  // total 0xFFFFF
    EXPECT_EQ(pkg_length(0xffffd), (B{0xc1, 0x00, 0x00, 0x01}));  // total 0x100001
    EXPECT_EQ(pkg_length(0xffffffb), (B{0xcf, 0xff, 0xff, 0xff}));  // total 0xFFFFFFF
}

TEST(AmlPkgLength, TooLongThrows) { EXPECT_THROW(pkg_length(0xffffffc), Error); }

TEST(AmlPkgLength, EveryEncodingCountsItselfAndIsMinimal) {
    for (size_t body = 0; body < 70000; ++body) {
        B enc = pkg_length(body);
        auto [value, size] = decode_pkg_length(enc);
        ASSERT_EQ(size, enc.size()) << body;
        ASSERT_EQ(value, body + size) << body;
        // The shortest form whose capacity holds body + its own size.
        size_t minimal = body + 1 <= 0x3f ? 1 : body + 2 <= 0xfff ? 2 : 3;
        ASSERT_EQ(size, minimal) << body;
    }
}

TEST(AmlPkgLength, BufferSwitchesFormAtTheThreshold) {
    // Buffer body = BufferSize (0x0A n) + n bytes.  60 data bytes: body 62,
    // one-byte PkgLength; 61: body 63, two bytes.
    B b60 = buffer(B(60, 0xaa));
    EXPECT_EQ(b60[0], 0x11);
    EXPECT_EQ(b60[1], 0x3f);
    EXPECT_EQ(b60.size(), 2u + 62);
    B b61 = buffer(B(61, 0xaa));
    EXPECT_EQ(b61[1], 0x41);
    EXPECT_EQ(b61[2], 0x04);
    EXPECT_EQ(b61.size(), 3u + 63);
}

TEST(AmlNames, SegmentsArePaddedWithUnderscore) {
    EXPECT_EQ(name_seg("_SB"), (B{'_', 'S', 'B', '_'}));
    EXPECT_EQ(name_seg("A"), (B{'A', '_', '_', '_'}));
    EXPECT_EQ(name_seg("PCI0"), (B{'P', 'C', 'I', '0'}));
}

TEST(AmlNames, BadSegmentsThrow) {
    for (const char* bad : {"", "pci0", "TOOLONG", "1ABC", "A-B", "AB C"})
        EXPECT_THROW(name_seg(bad), Error) << bad;
}

TEST(AmlNames, PathsWithPrefixes) {
    EXPECT_EQ(name_string("PCI0"), (B{'P', 'C', 'I', '0'}));
    EXPECT_EQ(name_string("\\_SB.PCI0"), (B{0x5c, 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0'}));
    EXPECT_EQ(name_string("\\_SB.PCI0.COM1"),
              (B{0x5c, 0x2f, 0x03, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 'C', 'O', 'M', '1'}));
    EXPECT_EQ(name_string("^^FOO"), (B{0x5e, 0x5e, 'F', 'O', 'O', '_'}));
    EXPECT_EQ(name_string("\\_S5"), (B{0x5c, '_', 'S', '5', '_'}));
    EXPECT_EQ(name_string("\\"), (B{0x5c, 0x00}));
    EXPECT_EQ(name_string("^"), (B{0x5e, 0x00}));
}

TEST(AmlNames, BadPathsThrow) {
    for (const char* bad : {"", "\\_SB.", "A..B", "\\^A", ".A", "A.pci"}) EXPECT_THROW(name_string(bad), Error) << bad;
}

TEST(AmlIntegers, ShortestForm) {
    EXPECT_EQ(integer(0), (B{0x00}));
    EXPECT_EQ(integer(1), (B{0x01}));
    EXPECT_EQ(integer(2), (B{0x0a, 0x02}));
    EXPECT_EQ(integer(0xff), (B{0x0a, 0xff}));
    EXPECT_EQ(integer(0x100), (B{0x0b, 0x00, 0x01}));
    EXPECT_EQ(integer(0xffff), (B{0x0b, 0xff, 0xff}));
    EXPECT_EQ(integer(0x10000), (B{0x0c, 0x00, 0x00, 0x01, 0x00}));
    EXPECT_EQ(integer(0xffffffff), (B{0x0c, 0xff, 0xff, 0xff, 0xff}));
    EXPECT_EQ(integer(0x100000000), (B{0x0e, 0, 0, 0, 0, 1, 0, 0, 0}));
}

TEST(AmlIntegers, ConstantsAndFixedWidths) {
    EXPECT_EQ(zero(), (B{0x00}));
    EXPECT_EQ(one(), (B{0x01}));
    EXPECT_EQ(ones(), (B{0xff}));
    EXPECT_EQ(byte_const(0), (B{0x0a, 0x00}));
    EXPECT_EQ(word_const(1), (B{0x0b, 0x01, 0x00}));
    EXPECT_EQ(dword_const(0x12345678), (B{0x0c, 0x78, 0x56, 0x34, 0x12}));
    EXPECT_EQ(qword_const(0x0102030405060708), (B{0x0e, 8, 7, 6, 5, 4, 3, 2, 1}));
}

TEST(AmlStrings, NulTerminatedAscii) {
    EXPECT_EQ(string("abc"), (B{0x0d, 'a', 'b', 'c', 0x00}));
    EXPECT_EQ(string(""), (B{0x0d, 0x00}));
    EXPECT_THROW(string(std::string("a\0b", 3)), Error);
    EXPECT_THROW(string("\xc3\xa9"), Error);
}

TEST(AmlEisaId, CompressedLikeIasl) {
    // 'P','N','P' -> 10000 01110 10000 = 0x41D0 (with bit 15 clear), then
    // the product number, stored big-endian in a DWord.
    EXPECT_EQ(eisa_id("PNP0A08"), (B{0x0c, 0x41, 0xd0, 0x0a, 0x08}));
    EXPECT_EQ(eisa_id("PNP0A03"), (B{0x0c, 0x41, 0xd0, 0x0a, 0x03}));
    EXPECT_EQ(eisa_id("PNP0501"), (B{0x0c, 0x41, 0xd0, 0x05, 0x01}));
    EXPECT_EQ(eisa_id_value("PNP0C02"), 0x020cd041u);
    for (const char* bad : {"PNP0A0", "pnp0a08", "PNP0A0G", "1NP0A08", "PNP0A088"})
        EXPECT_THROW(eisa_id(bad), Error) << bad;
}

TEST(AmlObjects, PackageAndBuffer) {
    EXPECT_EQ(package({one(), zero()}), (B{0x12, 0x04, 0x02, 0x01, 0x00}));
    EXPECT_EQ(package({}), (B{0x12, 0x02, 0x00}));
    EXPECT_EQ(buffer(B{0xaa, 0xbb}), (B{0x11, 0x05, 0x0a, 0x02, 0xaa, 0xbb}));
    EXPECT_EQ(buffer(B{}), (B{0x11, 0x02, 0x00}));
    EXPECT_THROW(package(std::vector<B>(256, zero())), Error);
    EXPECT_EQ(package(std::vector<B>(255, zero())).at(3), 255);  // 2-byte PkgLength, then NumElements
}

TEST(AmlObjects, NameScopeDeviceMethodReturn) {
    EXPECT_EQ(name("_UID", zero()), (B{0x08, '_', 'U', 'I', 'D', 0x00}));
    EXPECT_EQ(scope("\\_SB", {}), (B{0x10, 0x06, 0x5c, '_', 'S', 'B', '_'}));
    EXPECT_EQ(device("COM1", {name("_UID", one())}),
              (B{0x5b, 0x82, 0x0b, 'C', 'O', 'M', '1', 0x08, '_', 'U', 'I', 'D', 0x01}));
    EXPECT_EQ(method("_STA", 0, false, {return_value(integer(0x0f))}),
              (B{0x14, 0x09, '_', 'S', 'T', 'A', 0x00, 0xa4, 0x0a, 0x0f}));
    // Two arguments, Serialized: flags 0b1010.
    EXPECT_EQ(method("FOO", 2, true, {}), (B{0x14, 0x06, 'F', 'O', 'O', '_', 0x0a}));
    EXPECT_THROW(method("FOO", 8, false, {}), Error);
}

TEST(AmlObjects, LargeScopeUsesTwoBytePkgLength) {
    std::vector<B> names;
    for (int i = 0; i < 20; ++i) names.push_back(name("N" + std::to_string(10 + i), zero()));  // 6 bytes each
    B s = scope("\\_SB", names);
    auto [value, size] = decode_pkg_length(B(s.begin() + 1, s.end()));
    EXPECT_EQ(size, 2u);
    EXPECT_EQ(value, s.size() - 1);  // everything after the opcode
    EXPECT_EQ(s.size(), 1u + 2 + 5 + 20 * 6);
}

TEST(AmlResources, SmallDescriptors) {
    EXPECT_EQ(io(0x3f8, 0x3f8, 1, 8), (B{0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08}));
    EXPECT_EQ(io_port(0xcf8, 8), (B{0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08}));
    EXPECT_EQ(irq_no_flags(4), (B{0x22, 0x10, 0x00}));
    EXPECT_EQ(irq_no_flags(9), (B{0x22, 0x00, 0x02}));
    EXPECT_THROW(irq_no_flags(16), Error);
    EXPECT_THROW(io(0x10, 0x0f, 1, 1), Error);
}

TEST(AmlResources, WordDescriptors) {
    EXPECT_EQ(word_bus_number(0, 0xff),
              (B{0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0, 0, 0x00, 0x00, 0xff, 0x00, 0, 0, 0x00, 0x01}));
    EXPECT_EQ(word_io(0x0d00, 0xffff),
              (B{0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0, 0, 0x00, 0x0d, 0xff, 0xff, 0, 0, 0x00, 0xf3}));
    EXPECT_THROW(word_io(0x2000, 0x1fff), Error);
}

TEST(AmlResources, DWordAndQWordDescriptors) {
    EXPECT_EQ(dword_memory(0xc0000000, 0xdfffffff, Caching::kNonCacheable, true),
              (B{0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xff, 0xdf,
                 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x20}));
    EXPECT_EQ(dword_io(0x1000, 0x1fff),
              (B{0x87, 0x17, 0x00, 0x01, 0x0c, 0x03, 0, 0, 0, 0, 0x00, 0x10, 0, 0, 0xff, 0x1f, 0, 0, 0, 0, 0, 0,
                 0x00, 0x10, 0, 0}));
    EXPECT_EQ(qword_memory(0x100000000, 0x1ffffffff, Caching::kCacheable, true),
              (B{0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x03,
                 0, 0, 0, 0, 0, 0, 0, 0,
                 0, 0, 0, 0, 1, 0, 0, 0,
                 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0,
                 0, 0, 0, 0, 0, 0, 0, 0,
                 0, 0, 0, 0, 1, 0, 0, 0}));
    // Read-only, prefetchable: _RW = 0, _MEM = 3.
    EXPECT_EQ(qword_memory(0, 0xfff, Caching::kPrefetchable, false).at(5), 0x06);
    EXPECT_THROW(qword_memory(0, UINT64_MAX, Caching::kNonCacheable, true), Error);
}

TEST(AmlResources, FixedMemoryAndExtendedInterrupt) {
    EXPECT_EQ(memory32_fixed(0xe0000000, 0x100000, true),
              (B{0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xe0, 0x00, 0x00, 0x10, 0x00}));
    EXPECT_THROW(memory32_fixed(0xfffff000, 0x2000, true), Error);
    // Interrupt(ResourceConsumer, Level, ActiveHigh, Shared) {0x10}
    EXPECT_EQ(extended_interrupt({.shared = true, .gsis = {0x10}}),
              (B{0x89, 0x06, 0x00, 0x09, 0x01, 0x10, 0x00, 0x00, 0x00}));
    // Interrupt(ResourceConsumer, Edge, ActiveLow, Exclusive) {5, 6}
    EXPECT_EQ(extended_interrupt({.edge_triggered = true, .active_low = true, .gsis = {5, 6}}),
              (B{0x89, 0x0a, 0x00, 0x07, 0x02, 5, 0, 0, 0, 6, 0, 0, 0}));
    EXPECT_THROW(extended_interrupt({}), Error);
}

TEST(AmlResources, TemplateEndsWithChecksummedEndTag) {
    // 0x22 + 0x10 + 0x00 + 0x79 = 0xAB, so the checksum is 0x55.
    EXPECT_EQ(resource_template({irq_no_flags(4)}), (B{0x11, 0x08, 0x0a, 0x05, 0x22, 0x10, 0x00, 0x79, 0x55}));
    B t = resource_template({io_port(0x3f8, 8), irq_no_flags(4), memory32_fixed(0xfec00000, 0x1000, true)});
    // Buffer header: opcode, 1-byte PkgLength, BytePrefix + size.
    ASSERT_EQ(t[2], 0x0a);
    size_t n = t[3];
    ASSERT_EQ(t.size(), 4 + n);
    uint8_t sum = 0;
    for (size_t i = 4; i < t.size(); ++i) sum = static_cast<uint8_t>(sum + t[i]);
    EXPECT_EQ(sum, 0);
    EXPECT_EQ(t[t.size() - 2], 0x79);
}

}  // namespace
}  // namespace tapvm::acpi::aml
