#include "firmware/kernel_loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "boot_images.h"
#include "firmware/bzimage.h"
#include "vmm/error.h"

namespace tapvm::boot {
namespace {

// Copies a (possibly packed, misaligned) field so gtest can bind a reference to it.
template <class T>
T val(T value) {
    return value;
}

using testing::BzImageSpec;
using testing::Bytes;
using ::testing::HasSubstr;

constexpr uint64_t MiB = 1ull << 20;

Bytes small_vmlinux() {
    return testing::build_elf(0x1000000, {
        {0xffffffff81000000ull, 0x1000000, testing::pattern_bytes(0x4000, 21), 0},
        {0xffffffff81400000ull, 0x1400000, testing::pattern_bytes(0x1000, 22), 0x3000},
    });
}

// Bytes the "unsupported" payload starts with: the lzo magic.
Bytes lzo_payload() {
    Bytes p{0x89, 'L', 'Z', 'O', 0x00, 0x0d, 0x0a, 0x1a, 0x0a};
    Bytes rest = testing::pattern_bytes(0x3000, 23);
    p.insert(p.end(), rest.begin(), rest.end());
    return p;
}

class KernelLoader : public ::testing::Test {
protected:
    GuestMemory memory_{{{0, 128 * MiB}}};

    Bytes guest_bytes(Gpa gpa, size_t len) {
        Bytes out(len);
        EXPECT_TRUE(memory_.read(gpa, out));
        return out;
    }
    std::string load_error(const Bytes& image, const KernelLoadOptions& options = {}) {
        try {
            load_kernel(memory_, image, options);
        } catch (const UsageError& e) {
            return e.what();
        }
        return "";
    }
};

TEST_F(KernelLoader, ElfVmlinuxDirectly) {
    LoadedKernel k = load_kernel(memory_, small_vmlinux());
    EXPECT_EQ(k.path, KernelBootPath::kElf);
    EXPECT_EQ(k.entry, 0x1000000u);
    EXPECT_EQ(k.load_address, 0x1000000u);
    EXPECT_EQ(k.end, 0x1403000u);
    EXPECT_EQ(guest_bytes(0x1000000, 0x4000), testing::pattern_bytes(0x4000, 21));
    // The made-up header is what the kernel needs from boot_params.hdr.
    EXPECT_EQ(val(k.header.header), kHdrSMagic);
    EXPECT_EQ(val(k.header.boot_flag), kBootFlagMagic);
    EXPECT_GE(val(k.header.version), 0x0209);  // non-zero, and setup_data-aware
    EXPECT_EQ(val(k.header.type_of_loader), kLoaderTypeUndefined);
    EXPECT_EQ(val(k.header.cmdline_size), 2047u);
    EXPECT_EQ(val(k.header.initrd_addr_max), 0x7fffffffu);
    EXPECT_TRUE(val(k.header.loadflags) & kLoadedHigh);
}

class DecompressedBzImage : public KernelLoader, public ::testing::WithParamInterface<PayloadFormat> {};

TEST_P(DecompressedBzImage, LoadsThePayloadElf) {
    Bytes vmlinux = small_vmlinux();
    BzImageSpec spec;
    spec.payload = testing::compress_payload(GetParam(), vmlinux);
    spec.cmdline_size = 4095;
    Bytes image = testing::build_bzimage(spec);

    LoadedKernel k = load_kernel(memory_, image);
    EXPECT_EQ(k.path, KernelBootPath::kDecompressedBzImage);
    EXPECT_EQ(k.payload_format, GetParam());
    EXPECT_EQ(k.entry, 0x1000000u);
    EXPECT_EQ(k.end, 0x1403000u);
    EXPECT_EQ(k.init_size, spec.init_size);
    EXPECT_EQ(guest_bytes(0x1400000, 0x1000), testing::pattern_bytes(0x1000, 22));
    // The zero page starts from the bzImage's own header.
    EXPECT_EQ(val(k.header.cmdline_size), 4095u);
    EXPECT_EQ(val(k.header.vid_mode), 0xfffd);
    EXPECT_EQ(val(k.header.payload_length), spec.payload.size());
}

INSTANTIATE_TEST_SUITE_P(Formats, DecompressedBzImage,
                         ::testing::Values(PayloadFormat::kGzip, PayloadFormat::kXz, PayloadFormat::kLzma,
                                           PayloadFormat::kBzip2, PayloadFormat::kLz4, PayloadFormat::kZstd),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST_F(KernelLoader, UnsupportedPayloadUsesThe64BitBootProtocol) {
    BzImageSpec spec;
    spec.payload = lzo_payload();
    Bytes image = testing::build_bzimage(spec);
    BzImage bz = parse_bzimage(image);

    LoadedKernel k = load_kernel(memory_, image);
    EXPECT_EQ(k.path, KernelBootPath::kBzImage64);
    EXPECT_EQ(k.payload_format, PayloadFormat::kLzo);
    EXPECT_EQ(k.load_address, spec.pref_address);
    EXPECT_EQ(k.entry, spec.pref_address + 0x200);
    // The decompressor needs init_size bytes (more than the image here).
    ASSERT_GT(spec.init_size, bz.protected_mode.size());
    EXPECT_EQ(k.end, spec.pref_address + spec.init_size);
    Bytes expected(bz.protected_mode.begin(), bz.protected_mode.end());
    EXPECT_EQ(guest_bytes(k.load_address, expected.size()), expected);
}

TEST_F(KernelLoader, ImageLargerThanInitSizeSetsTheEnd) {
    BzImageSpec spec;
    spec.payload = lzo_payload();
    spec.init_size = 0x100;
    Bytes image = testing::build_bzimage(spec);
    LoadedKernel k = load_kernel(memory_, image);
    EXPECT_EQ(k.end, spec.pref_address + parse_bzimage(image).protected_mode.size());
}

TEST_F(KernelLoader, DecompressionCanBeTurnedOff) {
    BzImageSpec spec;
    spec.payload = testing::gzip_compress(small_vmlinux());
    Bytes image = testing::build_bzimage(spec);
    LoadedKernel k = load_kernel(memory_, image, {.decompress_bzimage = false});
    EXPECT_EQ(k.path, KernelBootPath::kBzImage64);
    EXPECT_EQ(k.payload_format, PayloadFormat::kGzip);
    EXPECT_EQ(k.entry, spec.pref_address + 0x200);
}

TEST_F(KernelLoader, UnalignedPreferredAddressIsAlignedForARelocatableKernel) {
    BzImageSpec spec;
    spec.payload = lzo_payload();
    spec.pref_address = 0x1100000;
    spec.kernel_alignment = 0x200000;
    LoadedKernel k = load_kernel(memory_, testing::build_bzimage(spec));
    EXPECT_EQ(k.load_address, 0x1200000u);
    EXPECT_EQ(k.entry, 0x1200200u);
}

TEST_F(KernelLoader, RelocatableKernelMovesDownWhenThePreferredPlaceDoesNotFit) {
    memory_ = GuestMemory({{0, 20 * MiB}});
    BzImageSpec spec;
    spec.payload = lzo_payload();
    spec.init_size = 12 * MiB;  // 16 MiB + 12 MiB > 20 MiB
    LoadedKernel k = load_kernel(memory_, testing::build_bzimage(spec));
    EXPECT_EQ(k.load_address, 2 * MiB);  // 1 MiB rounded up to kernel_alignment
    EXPECT_EQ(k.end, 14 * MiB);
}

TEST_F(KernelLoader, FixedKernelThatDoesNotFitIsAnError) {
    memory_ = GuestMemory({{0, 20 * MiB}});
    BzImageSpec spec;
    spec.payload = lzo_payload();
    spec.relocatable = 0;
    spec.init_size = 12 * MiB;
    EXPECT_THAT(load_error(testing::build_bzimage(spec)), HasSubstr("does not have"));
}

TEST_F(KernelLoader, PreferredAddressBelowOneMiBIsRefused) {
    BzImageSpec spec;
    spec.payload = lzo_payload();
    spec.relocatable = 0;
    spec.pref_address = 0x7000;  // over the zero page
    EXPECT_THAT(load_error(testing::build_bzimage(spec)), HasSubstr("does not have above 1 MiB"));
}

TEST_F(KernelLoader, HugePreferredAddressDoesNotWrapWhenAligned) {
    BzImageSpec spec;
    spec.payload = lzo_payload();
    spec.pref_address = ~0ull - 0x100;  // rounding up to 2 MiB would wrap to 0
    LoadedKernel k = load_kernel(memory_, testing::build_bzimage(spec));
    EXPECT_EQ(k.load_address, 2 * MiB);  // the fallback, not a wrapped address
}

TEST_F(KernelLoader, UnsupportedPayloadWithout64BitEntryIsAnError) {
    BzImageSpec spec;
    spec.payload = lzo_payload();
    spec.xloadflags = 0;
    std::string error = load_error(testing::build_bzimage(spec));
    EXPECT_THAT(error, HasSubstr("no 64-bit entry point"));
    EXPECT_THAT(error, HasSubstr("lzo"));
}

TEST_F(KernelLoader, DecompressiblePayloadNeedsNo64BitEntryFlag) {
    // The ELF path enters vmlinux's startup_64, not the bzImage's.
    BzImageSpec spec;
    spec.payload = testing::gzip_compress(small_vmlinux());
    spec.xloadflags = 0;
    EXPECT_EQ(load_error(testing::build_bzimage(spec)), "");
}

TEST_F(KernelLoader, PayloadThatIsNotAnElfIsAnError) {
    BzImageSpec spec;
    spec.payload = testing::zstd_compress(testing::pattern_bytes(0x2000));
    EXPECT_THAT(load_error(testing::build_bzimage(spec)), HasSubstr("does not decompress to an ELF"));
}

TEST_F(KernelLoader, CorruptPayloadIsAnError) {
    BzImageSpec spec;
    spec.payload = testing::xz_compress(small_vmlinux());
    spec.payload[spec.payload.size() / 2] ^= 0xff;
    EXPECT_THAT(load_error(testing::build_bzimage(spec)), HasSubstr("corrupt xz"));
}

TEST_F(KernelLoader, NeitherElfNorBzImage) {
    EXPECT_THAT(load_error(testing::pattern_bytes(0x2000)), HasSubstr("neither an ELF vmlinux nor a bzImage"));
    EXPECT_THAT(load_error(Bytes{}), HasSubstr("neither"));
}

}  // namespace
}  // namespace tapvm::boot
