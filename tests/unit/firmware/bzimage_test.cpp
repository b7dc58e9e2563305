#include "firmware/bzimage.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "boot_images.h"
#include "vmm/error.h"

namespace tapvm::boot {
namespace {

// Copies a (possibly packed, misaligned) field so gtest can bind a reference to it.
template <class T>
T val(T value) {
    return value;
}

using testing::BzImageSpec;
using testing::build_bzimage;
using testing::Bytes;
using ::testing::HasSubstr;

// Runs parse_bzimage and returns the UsageError message ("" if none).
std::string parse_error(const Bytes& image) {
    try {
        parse_bzimage(image);
    } catch (const UsageError& e) {
        return e.what();
    }
    return "";
}

BzImageSpec spec_with_payload() {
    BzImageSpec spec;
    spec.payload = testing::pattern_bytes(0x1234);
    return spec;
}

TEST(BzImage, ParsesHeaderFields) {
    BzImageSpec spec = spec_with_payload();
    spec.setup_sects = 7;
    spec.pref_address = 0x2000000;
    spec.init_size = 0x1230000;
    spec.kernel_alignment = 0x400000;
    Bytes image = build_bzimage(spec);

    BzImage bz = parse_bzimage(image);
    EXPECT_EQ(bz.version, 0x020f);
    EXPECT_EQ(bz.setup_size, 8u * 512);
    EXPECT_EQ(bz.protected_mode.data(), image.data() + 8 * 512);
    EXPECT_EQ(bz.protected_mode.size(), image.size() - 8 * 512);
    EXPECT_EQ(bz.preferred_load_address(), 0x2000000u);
    EXPECT_EQ(bz.init_size(), 0x1230000u);
    EXPECT_EQ(val(bz.header.kernel_alignment), 0x400000u);
    EXPECT_EQ(val(bz.header.cmdline_size), 2047u);
    EXPECT_EQ(val(bz.header.initrd_addr_max), 0x7fffffffu);
    EXPECT_TRUE(bz.has_64bit_entry());
    EXPECT_TRUE(bz.relocatable());
}

TEST(BzImage, PayloadSpanPointsAtThePayloadBytes) {
    BzImageSpec spec = spec_with_payload();
    Bytes image = build_bzimage(spec);
    BzImage bz = parse_bzimage(image);
    ASSERT_EQ(bz.payload.size(), spec.payload.size());
    EXPECT_TRUE(std::equal(bz.payload.begin(), bz.payload.end(), spec.payload.begin()));
    EXPECT_EQ(bz.payload.data(), bz.protected_mode.data() + spec.decompressor_size);
}

TEST(BzImage, ZeroSetupSectsMeansFour) {
    BzImageSpec spec = spec_with_payload();
    spec.setup_sects = 0;
    Bytes image = build_bzimage(spec);
    BzImage bz = parse_bzimage(image);
    EXPECT_EQ(bz.setup_size, 5u * 512);
    EXPECT_EQ(bz.payload.data(), image.data() + 5 * 512 + spec.decompressor_size);
}

TEST(BzImage, NoXloadflagsMeansNo64BitEntry) {
    BzImageSpec spec = spec_with_payload();
    spec.xloadflags = 0;
    Bytes image = build_bzimage(spec);
    EXPECT_FALSE(parse_bzimage(image).has_64bit_entry());

    // Before 2.12 the field did not exist: whatever is there does not count.
    spec.xloadflags = kXlfKernel64;
    spec.version = 0x020b;
    image = build_bzimage(spec);
    EXPECT_FALSE(parse_bzimage(image).has_64bit_entry());
}

TEST(BzImage, OldProtocolHasNoPreferredAddressOrInitSize) {
    BzImageSpec spec = spec_with_payload();
    spec.version = 0x0209;
    Bytes image = build_bzimage(spec);
    BzImage bz = parse_bzimage(image);
    EXPECT_EQ(bz.preferred_load_address(), kDefaultKernelLoadAddress);
    EXPECT_EQ(bz.init_size(), 0u);
}

TEST(BzImage, RejectsMissingMagic) {
    Bytes image = build_bzimage(spec_with_payload());
    image[0x202] = 'X';
    EXPECT_THAT(parse_error(image), HasSubstr("not a bzImage: missing HdrS magic"));
    EXPECT_FALSE(has_bzimage_magic(image));
}

TEST(BzImage, RejectsBufferTooSmallForAHeader) {
    Bytes image = build_bzimage(spec_with_payload());
    image.resize(0x210);
    EXPECT_THAT(parse_error(image), HasSubstr("not a bzImage"));
    EXPECT_THAT(parse_error(Bytes{}), HasSubstr("not a bzImage"));
}

TEST(BzImage, RejectsProtocolOlderThan208) {
    BzImageSpec spec = spec_with_payload();
    spec.version = 0x0207;
    std::string error = parse_error(build_bzimage(spec));
    EXPECT_THAT(error, HasSubstr("2.07 is too old"));
    EXPECT_THAT(error, HasSubstr("2.08"));
    spec.version = 0x0208;
    EXPECT_EQ(parse_error(build_bzimage(spec)), "");
}

TEST(BzImage, RejectsZImage) {
    BzImageSpec spec = spec_with_payload();
    spec.loadflags = 0;
    EXPECT_THAT(parse_error(build_bzimage(spec)), HasSubstr("LOADED_HIGH"));
}

TEST(BzImage, RejectsHeaderThatEndsBeforeThePayloadFields) {
    Bytes image = build_bzimage(spec_with_payload());
    image[0x201] = 0x20;  // header ends at 0x222
    EXPECT_THAT(parse_error(image), HasSubstr("setup header ends"));
}

TEST(BzImage, RejectsImageTruncatedInsideTheSetupCode) {
    BzImageSpec spec = spec_with_payload();
    spec.setup_sects = 60;  // 30 KiB of setup code in a ~10 KiB file
    Bytes image = build_bzimage(spec);
    image.resize(0x1000);
    EXPECT_THAT(parse_error(image), HasSubstr("truncated"));
}

TEST(BzImage, RejectsPayloadOutsideTheImage) {
    Bytes image = build_bzimage(spec_with_payload());
    SetupHeader hdr;
    std::memcpy(&hdr, image.data() + kSetupHeaderOffset, sizeof(hdr));

    SetupHeader bad = hdr;
    bad.payload_length += 0x1000;  // runs past the end
    std::memcpy(image.data() + kSetupHeaderOffset, &bad, sizeof(bad));
    EXPECT_THAT(parse_error(image), HasSubstr("payload"));

    bad = hdr;
    bad.payload_offset = 0xfffffff0;  // offset + length would wrap a 32-bit sum
    bad.payload_length = 0x20;
    std::memcpy(image.data() + kSetupHeaderOffset, &bad, sizeof(bad));
    EXPECT_THAT(parse_error(image), HasSubstr("payload"));

    bad = hdr;
    bad.payload_length = 0;
    std::memcpy(image.data() + kSetupHeaderOffset, &bad, sizeof(bad));
    EXPECT_THAT(parse_error(image), HasSubstr("payload"));
}

TEST(BzImage, CopiesOnlyTheHeaderTheImageDeclares) {
    // A protocol 2.08-era header ends at 0x250 (jump byte 0x4e); bytes after
    // it belong to the setup code and must not leak into the zero page.
    BzImageSpec spec = spec_with_payload();
    spec.version = 0x0208;
    spec.pref_address = 0x1111111111;
    Bytes image = build_bzimage(spec);
    image[0x201] = 0x250 - 0x202;
    BzImage bz = parse_bzimage(image);
    EXPECT_EQ(val(bz.header.payload_length), spec.payload.size());
    EXPECT_EQ(val(bz.header.pref_address), 0u);
    EXPECT_EQ(val(bz.header.init_size), 0u);
}

}  // namespace
}  // namespace tapvm::boot
