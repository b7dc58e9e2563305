#include "firmware/kernel_decompressor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "boot_images.h"
#include "vmm/error.h"

namespace tapvm::boot {
namespace {

using testing::Bytes;
using ::testing::HasSubstr;

std::string decompress_error(const Bytes& payload, uint64_t max_output = kMaxDecompressedKernel) {
    try {
        decompress_kernel_payload(payload, max_output);
    } catch (const UsageError& e) {
        return e.what();
    }
    return "";
}

bool same_bytes(const HugePageBuffer& out, const Bytes& expected) {
    return std::ranges::equal(out.bytes(), expected);
}

void set_trailer(Bytes& payload, uint32_t size) {
    std::memcpy(payload.data() + payload.size() - 4, &size, 4);
}

class EachFormat : public ::testing::TestWithParam<PayloadFormat> {};

TEST_P(EachFormat, IdentifiesItsOwnOutput) {
    Bytes payload = testing::compress_payload(GetParam(), testing::pattern_bytes(4096));
    EXPECT_EQ(identify_payload(payload), GetParam());
    EXPECT_TRUE(can_decompress(GetParam()));
}

TEST_P(EachFormat, RoundTrip) {
    Bytes original = testing::pattern_bytes(3 << 20, 7);
    Bytes payload = testing::compress_payload(GetParam(), original);
    ASSERT_LT(payload.size(), original.size());  // the test data really was compressed
    auto out = decompress_kernel_payload(payload);
    ASSERT_TRUE(out.has_value());
    EXPECT_EQ(out->size(), original.size());
    EXPECT_TRUE(same_bytes(*out, original));
}

TEST_P(EachFormat, TruncatedStreamIsAnError) {
    Bytes payload = testing::compress_payload(GetParam(), testing::pattern_bytes(256 << 10, 3));
    Bytes truncated(payload.begin(), payload.begin() + payload.size() / 2);
    // Keep a trailer that declares the real size, so only the stream is short.
    testing::append_le32(truncated, 256 << 10);
    EXPECT_THAT(decompress_error(truncated), HasSubstr(std::string("corrupt ") + to_string(GetParam())));
}

TEST_P(EachFormat, TrailerLargerThanTheDataIsAnError) {
    Bytes payload = testing::compress_payload(GetParam(), testing::pattern_bytes(100000, 5));
    if (GetParam() == PayloadFormat::kGzip) {
        // gzip's trailer is its own ISIZE; zlib checks it against the data.
        set_trailer(payload, 100001);
        EXPECT_THAT(decompress_error(payload), HasSubstr("corrupt gzip"));
        return;
    }
    set_trailer(payload, 100001);
    EXPECT_THAT(decompress_error(payload), HasSubstr("but its size trailer declares 100001"));
}

TEST_P(EachFormat, TrailerSmallerThanTheDataIsAnError) {
    Bytes payload = testing::compress_payload(GetParam(), testing::pattern_bytes(100000, 5));
    set_trailer(payload, 99999);
    EXPECT_THAT(decompress_error(payload), HasSubstr("corrupt"));
}

TEST_P(EachFormat, OutputAboveTheLimitIsRefusedBeforeDecompressing) {
    Bytes payload = testing::compress_payload(GetParam(), testing::pattern_bytes(64 << 10, 9));
    EXPECT_THAT(decompress_error(payload, 32 << 10), HasSubstr("limit"));
    EXPECT_EQ(decompress_error(payload, 64 << 10), "");
}

TEST_P(EachFormat, CorruptedBytesAreAnErrorNotACrash) {
    Bytes original = testing::pattern_bytes(200000, 11);
    Bytes payload = testing::compress_payload(GetParam(), original);
    // Flip bytes in the middle of the stream (past every header).
    for (size_t i = payload.size() / 3; i < payload.size() / 3 + 64; ++i) payload[i] ^= 0x5a;
    std::optional<HugePageBuffer> out;
    try {
        out = decompress_kernel_payload(payload);
    } catch (const UsageError&) {
        return;  // detected
    }
    // Formats without a checksum (lz4 legacy, lzma alone) may decode garbage of
    // the right length; they must still not crash or overrun.
    ASSERT_TRUE(out.has_value());
    EXPECT_EQ(out->size(), original.size());
    EXPECT_FALSE(same_bytes(*out, original));
}

INSTANTIATE_TEST_SUITE_P(Formats, EachFormat,
                         ::testing::Values(PayloadFormat::kGzip, PayloadFormat::kXz, PayloadFormat::kLzma,
                                           PayloadFormat::kBzip2, PayloadFormat::kLz4, PayloadFormat::kZstd),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(KernelDecompressor, IdentifiesFormatsByMagic) {
    EXPECT_EQ(identify_payload(Bytes{0x1f, 0x8b, 0x08}), PayloadFormat::kGzip);
    EXPECT_EQ(identify_payload(Bytes{0xfd, '7', 'z', 'X', 'Z', 0x00, 0x00}), PayloadFormat::kXz);
    EXPECT_EQ(identify_payload(Bytes{0x5d, 0x00, 0x00, 0x80}), PayloadFormat::kLzma);
    EXPECT_EQ(identify_payload(Bytes{'B', 'Z', 'h', '9'}), PayloadFormat::kBzip2);
    EXPECT_EQ(identify_payload(Bytes{0x02, 0x21, 0x4c, 0x18}), PayloadFormat::kLz4);
    EXPECT_EQ(identify_payload(Bytes{0x28, 0xb5, 0x2f, 0xfd}), PayloadFormat::kZstd);
    EXPECT_EQ(identify_payload(Bytes{0x89, 'L', 'Z', 'O', 0x00}), PayloadFormat::kLzo);
    EXPECT_EQ(identify_payload(Bytes{0x7f, 'E', 'L', 'F'}), PayloadFormat::kUnknown);
    EXPECT_EQ(identify_payload(Bytes{0x1f}), PayloadFormat::kUnknown);
    EXPECT_EQ(identify_payload(Bytes{}), PayloadFormat::kUnknown);
}

TEST(KernelDecompressor, LzoAndUnknownAreReportedUnsupported) {
    EXPECT_FALSE(can_decompress(PayloadFormat::kLzo));
    EXPECT_FALSE(can_decompress(PayloadFormat::kUnknown));
    Bytes lzo{0x89, 'L', 'Z', 'O', 0x00, 0x0d, 0x0a, 0x1a, 0x0a, 0x10, 0x00, 0x00, 0x00};
    EXPECT_FALSE(decompress_kernel_payload(lzo).has_value());
    EXPECT_FALSE(decompress_kernel_payload(testing::pattern_bytes(100)).has_value());
}

TEST(KernelDecompressor, Lz4SpanningSeveralBlocksWithRepeatedMagic) {
    // 8 MiB legacy blocks: 19 MiB makes three, and the magic repeats
    // between them as in concatenated lz4 output.
    Bytes original = testing::pattern_bytes(19 << 20, 13);
    Bytes payload = testing::lz4_legacy_compress(original, /*repeat_magic_every=*/1);
    auto out = decompress_kernel_payload(payload);
    ASSERT_TRUE(out.has_value());
    EXPECT_TRUE(same_bytes(*out, original));
}

TEST(KernelDecompressor, Lz4ZeroBlockSizeEndsTheStream) {
    Bytes original = testing::pattern_bytes(5000, 17);
    Bytes payload = testing::lz4_legacy_compress(original);
    // Insert a zero block size (end marker) and garbage before the trailer.
    Bytes tail{0, 0, 0, 0, 0xde, 0xad};
    payload.insert(payload.end() - 4, tail.begin(), tail.end());
    auto out = decompress_kernel_payload(payload);
    ASSERT_TRUE(out.has_value());
    EXPECT_TRUE(same_bytes(*out, original));
}

TEST(KernelDecompressor, Lz4BlockSizePastTheEndIsAnError) {
    Bytes payload{0x02, 0x21, 0x4c, 0x18};
    testing::append_le32(payload, 1000);  // a block that claims 1000 bytes
    payload.insert(payload.end(), 10, 0x11);
    testing::append_le32(payload, 4096);
    EXPECT_THAT(decompress_error(payload), HasSubstr("runs past the payload"));
}

TEST(KernelDecompressor, Lz4BlockDecodingToMoreThanDeclaredIsAnError) {
    Bytes original = testing::pattern_bytes(20000, 19);
    Bytes payload = testing::lz4_legacy_compress(original);
    set_trailer(payload, 10000);
    EXPECT_THAT(decompress_error(payload), HasSubstr("more than the 10000 bytes"));
}

TEST(KernelDecompressor, PayloadTooShortForATrailer) {
    EXPECT_THAT(decompress_error(Bytes{0x28, 0xb5, 0x2f, 0xfd, 0x00}), HasSubstr("too short"));
}

TEST(KernelDecompressor, ZeroDeclaredSizeIsAnError) {
    Bytes payload = testing::zstd_compress(testing::pattern_bytes(1000));
    set_trailer(payload, 0);
    EXPECT_THAT(decompress_error(payload), HasSubstr("declares 0 bytes"));
}

TEST(KernelDecompressor, HostileTrailerCannotRequestHugeAllocation) {
    Bytes payload = testing::zstd_compress(testing::pattern_bytes(1000));
    set_trailer(payload, 0xffffffff);
    EXPECT_THAT(decompress_error(payload), HasSubstr("above tapvm's 512 MiB limit"));
}

}  // namespace
}  // namespace tapvm::boot
