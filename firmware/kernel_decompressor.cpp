#include "firmware/kernel_decompressor.h"

#include <bzlib.h>
#include <fmt/format.h>
#include <lz4.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <string>

#include "vmm/error.h"

namespace tapvm::boot {

namespace {

// Each decoder fills `out` exactly (its size is the declared uncompressed
// size) or throws UsageError.  `in` is the compressed stream alone, without
// an appended size trailer.
using Decoder = void (*)(std::span<const uint8_t> in, std::span<uint8_t> out);

[[noreturn]] void corrupt(const char* format, const std::string& why) {
    throw UsageError(fmt::format("corrupt {} kernel payload: {}", format, why));
}

[[noreturn]] void larger_than_declared(const char* format, size_t declared) {
    corrupt(format, fmt::format("it decompresses to more than the {} bytes its size trailer declares", declared));
}

void check_complete(const char* format, size_t produced, size_t declared) {
    if (produced != declared)
        corrupt(format, fmt::format("it decompresses to {} bytes, but its size trailer declares {}", produced,
                                    declared));
}

// --- gzip (zlib) ---------------------------------------------------------------

void decode_gzip(std::span<const uint8_t> in, std::span<uint8_t> out) {
    z_stream zs{};
    // 16 + MAX_WBITS: expect a gzip wrapper (RFC 1952) and check its CRC32/ISIZE.
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw Error("zlib: inflateInit2 failed");
    zs.next_in = const_cast<Bytef*>(in.data());
    zs.avail_in = static_cast<uInt>(in.size());
    zs.next_out = out.data();
    zs.avail_out = static_cast<uInt>(out.size());
    int ret = inflate(&zs, Z_FINISH);
    size_t produced = zs.total_out;
    bool output_full = zs.avail_out == 0;
    std::string message = zs.msg ? zs.msg : "";
    inflateEnd(&zs);
    if (ret == Z_STREAM_END) return check_complete("gzip", produced, out.size());
    if (ret == Z_BUF_ERROR && output_full) larger_than_declared("gzip", out.size());
    corrupt("gzip", ret == Z_BUF_ERROR ? "truncated stream" : fmt::format("zlib error {} {}", ret, message));
}

// --- xz and lzma (liblzma) --------------------------------------------------------

// Dictionary memory liblzma may allocate; the kernel's xz uses 32 MiB
// (scripts/xz_wrap.sh) and `lzma -9` 64 MiB.  A hostile header cannot make
// tapvm allocate more than this.
constexpr uint64_t kLzmaMemoryLimit = 256ull << 20;

void run_lzma(lzma_stream& strm, const char* format, std::span<const uint8_t> in, std::span<uint8_t> out) {
    strm.next_in = in.data();
    strm.avail_in = in.size();
    strm.next_out = out.data();
    strm.avail_out = out.size();
    lzma_ret ret = LZMA_OK;
    while (ret == LZMA_OK) ret = lzma_code(&strm, LZMA_FINISH);
    size_t produced = strm.total_out;
    bool output_full = strm.avail_out == 0;
    lzma_end(&strm);
    switch (ret) {
    case LZMA_STREAM_END: return check_complete(format, produced, out.size());
    case LZMA_BUF_ERROR:
        if (output_full) larger_than_declared(format, out.size());
        corrupt(format, "truncated stream");
    case LZMA_MEMLIMIT_ERROR:
        corrupt(format, fmt::format("it needs more than {} MiB of decoder memory", kLzmaMemoryLimit >> 20));
    case LZMA_FORMAT_ERROR: corrupt(format, "bad header");
    case LZMA_OPTIONS_ERROR: corrupt(format, "unsupported options in header");
    case LZMA_DATA_ERROR: corrupt(format, "data error");
    default: corrupt(format, fmt::format("liblzma error {}", static_cast<int>(ret)));
    }
}

void decode_xz(std::span<const uint8_t> in, std::span<uint8_t> out) {
    lzma_stream strm = LZMA_STREAM_INIT;
    // CONCATENATED also accepts the stream padding xz(1) may leave after a stream.
    if (lzma_stream_decoder(&strm, kLzmaMemoryLimit, LZMA_CONCATENATED) != LZMA_OK)
        throw Error("liblzma: lzma_stream_decoder failed");
    run_lzma(strm, "xz", in, out);
}

void decode_lzma(std::span<const uint8_t> in, std::span<uint8_t> out) {
    lzma_stream strm = LZMA_STREAM_INIT;
    if (lzma_alone_decoder(&strm, kLzmaMemoryLimit) != LZMA_OK)
        throw Error("liblzma: lzma_alone_decoder failed");
    run_lzma(strm, "lzma", in, out);
}

// --- bzip2 (libbz2) ---------------------------------------------------------------

void decode_bzip2(std::span<const uint8_t> in, std::span<uint8_t> out) {
    if (in.size() > UINT_MAX) corrupt("bzip2", "stream larger than 4 GiB");
    unsigned int produced = static_cast<unsigned int>(out.size());
    int ret = BZ2_bzBuffToBuffDecompress(reinterpret_cast<char*>(out.data()), &produced,
                                         const_cast<char*>(reinterpret_cast<const char*>(in.data())),
                                         static_cast<unsigned int>(in.size()), /*small=*/0, /*verbosity=*/0);
    switch (ret) {
    case BZ_OK: return check_complete("bzip2", produced, out.size());
    case BZ_OUTBUFF_FULL: larger_than_declared("bzip2", out.size());
    case BZ_UNEXPECTED_EOF: corrupt("bzip2", "truncated stream");
    case BZ_DATA_ERROR_MAGIC: corrupt("bzip2", "bad header");
    case BZ_MEM_ERROR: throw Error("libbz2: out of memory");
    default: corrupt("bzip2", fmt::format("libbz2 error {}", ret));
    }
}

// --- lz4 legacy frames (liblz4) ------------------------------------------------------

// The lz4 "legacy" format that `lz4 -l` writes and lib/decompress_unlz4.c
// reads: a 4-byte magic, then blocks, each a 4-byte little-endian compressed
// size and that many bytes of raw LZ4 data decoding to at most 8 MiB.  The
// magic may appear again between blocks (concatenated files); a zero block
// size, or fewer than 4 bytes left, ends the stream.
constexpr uint32_t kLz4LegacyMagic = 0x184c2102;
constexpr size_t kLz4LegacyBlockSize = 8u << 20;

uint32_t le32_at(std::span<const uint8_t> bytes, size_t offset) {
    uint32_t value;
    std::memcpy(&value, bytes.data() + offset, sizeof(value));
    return value;
}

void decode_lz4(std::span<const uint8_t> in, std::span<uint8_t> out) {
    const size_t max_block = static_cast<size_t>(LZ4_compressBound(kLz4LegacyBlockSize));
    size_t pos = 4;  // past the magic, which identify_payload() checked
    size_t produced = 0;
    while (in.size() - pos >= 4) {
        uint32_t block = le32_at(in, pos);
        pos += 4;
        if (block == kLz4LegacyMagic) continue;
        if (block == 0) break;
        if (block > max_block || block > in.size() - pos)
            corrupt("lz4", fmt::format("block of {} bytes at offset {:#x} runs past the payload", block, pos - 4));
        size_t room = std::min(kLz4LegacyBlockSize, out.size() - produced);
        int n = LZ4_decompress_safe(reinterpret_cast<const char*>(in.data() + pos),
                                    reinterpret_cast<char*>(out.data() + produced), static_cast<int>(block),
                                    static_cast<int>(room));
        if (n < 0) {
            if (room < kLz4LegacyBlockSize) larger_than_declared("lz4", out.size());
            corrupt("lz4", fmt::format("bad block at offset {:#x}", pos - 4));
        }
        produced += static_cast<size_t>(n);
        pos += block;
    }
    check_complete("lz4", produced, out.size());
}

// --- zstd (libzstd) ----------------------------------------------------------------

void decode_zstd(std::span<const uint8_t> in, std::span<uint8_t> out) {
    // One-shot decompression into a buffer of the final size needs no window
    // allocation, whatever window size (up to 128 MiB for -22 --ultra) the
    // frame header asks for.
    size_t ret = ZSTD_decompress(out.data(), out.size(), in.data(), in.size());
    if (ZSTD_isError(ret)) {
        if (ZSTD_getErrorCode(ret) == ZSTD_error_dstSize_tooSmall) larger_than_declared("zstd", out.size());
        corrupt("zstd", ZSTD_getErrorName(ret));
    }
    check_complete("zstd", ret, out.size());
}

// --- The table ----------------------------------------------------------------------

struct FormatInfo {
    PayloadFormat format;
    const char* name;
    std::array<uint8_t, 6> magic;
    size_t magic_len;
    // scripts/Makefile.lib `size_append`: a 4-byte size after the stream.
    // gzip has none: its stream already ends with ISIZE.
    bool size_appended;
    Decoder decode;  // null: tapvm cannot decompress it
};

constexpr std::array<FormatInfo, 7> kFormats{{
    {PayloadFormat::kGzip, "gzip", {0x1f, 0x8b}, 2, false, decode_gzip},
    {PayloadFormat::kXz, "xz", {0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00}, 6, true, decode_xz},
    {PayloadFormat::kLzma, "lzma", {0x5d, 0x00, 0x00}, 3, true, decode_lzma},
    {PayloadFormat::kBzip2, "bzip2", {'B', 'Z', 'h'}, 3, true, decode_bzip2},
    {PayloadFormat::kLz4, "lz4", {0x02, 0x21, 0x4c, 0x18}, 4, true, decode_lz4},
    {PayloadFormat::kZstd, "zstd", {0x28, 0xb5, 0x2f, 0xfd}, 4, true, decode_zstd},
    {PayloadFormat::kLzo, "lzo", {0x89, 0x4c, 0x5a, 0x4f}, 4, true, nullptr},
}};

const FormatInfo* find_format(PayloadFormat format) {
    for (const auto& info : kFormats)
        if (info.format == format) return &info;
    return nullptr;
}

}  // namespace

const char* to_string(PayloadFormat format) {
    const FormatInfo* info = find_format(format);
    return info ? info->name : "unknown";
}

PayloadFormat identify_payload(std::span<const uint8_t> payload) {
    for (const auto& info : kFormats) {
        if (payload.size() >= info.magic_len &&
            std::equal(info.magic.begin(), info.magic.begin() + info.magic_len, payload.begin()))
            return info.format;
    }
    return PayloadFormat::kUnknown;
}

bool can_decompress(PayloadFormat format) {
    const FormatInfo* info = find_format(format);
    return info && info->decode;
}

std::optional<HugePageBuffer> decompress_kernel_payload(std::span<const uint8_t> payload, uint64_t max_output) {
    const FormatInfo* info = find_format(identify_payload(payload));
    if (!info || !info->decode) return std::nullopt;

    if (payload.size() < info->magic_len + 4) corrupt(info->name, "too short to hold a size trailer");
    // The last 4 bytes are the uncompressed size in every format (see header).
    uint32_t declared = le32_at(payload, payload.size() - 4);
    if (declared == 0) corrupt(info->name, "its size trailer declares 0 bytes");
    if (declared > max_output)
        throw UsageError(fmt::format("{} kernel payload declares {} MiB uncompressed, above tapvm's {} MiB limit",
                                     info->name, declared >> 20, max_output >> 20));

    std::span<const uint8_t> stream = info->size_appended ? payload.first(payload.size() - 4) : payload;
    HugePageBuffer out(declared);
    info->decode(stream, out.bytes());
    return out;
}

}  // namespace tapvm::boot
