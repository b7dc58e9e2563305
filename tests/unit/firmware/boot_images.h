// Builders for synthetic kernel images used by the firmware tests: a small
// ELF64 executable, kernel payloads compressed the way the kernel build
// compresses vmlinux, and a bzImage wrapped around a payload.
#pragma once

#include <bzlib.h>
#include <elf.h>
#include <lz4.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "firmware/boot_params.h"
#include "firmware/kernel_decompressor.h"

namespace tapvm::boot::testing {

using Bytes = std::vector<uint8_t>;

// Deterministic, compressible, but not trivially repetitive bytes.
inline Bytes pattern_bytes(size_t size, uint32_t seed = 1) {
    Bytes out(size);
    uint32_t x = seed;
    for (size_t i = 0; i < size; ++i) {
        if (i % 64 == 0) x = x * 1103515245u + 12345u;
        out[i] = static_cast<uint8_t>((x >> 16) + (i % 7));
    }
    return out;
}

// --- ELF -------------------------------------------------------------------------

struct ElfSegment {
    uint64_t vaddr = 0;
    uint64_t paddr = 0;
    Bytes data;
    uint64_t memsz = 0;  // 0: same as data.size()
    uint32_t type = PT_LOAD;
};

inline constexpr size_t kElfPhoff = sizeof(Elf64_Ehdr);

// Header, program headers, then each segment's bytes in order.
inline Bytes build_elf(uint64_t entry, const std::vector<ElfSegment>& segments) {
    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_entry = entry;
    eh.e_phoff = kElfPhoff;
    eh.e_ehsize = sizeof(Elf64_Ehdr);
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = static_cast<uint16_t>(segments.size());

    size_t offset = kElfPhoff + segments.size() * sizeof(Elf64_Phdr);
    Bytes out(offset);
    std::memcpy(out.data(), &eh, sizeof(eh));
    for (size_t i = 0; i < segments.size(); ++i) {
        const auto& s = segments[i];
        Elf64_Phdr ph{};
        ph.p_type = s.type;
        ph.p_flags = PF_R | PF_X;
        ph.p_offset = offset;
        ph.p_vaddr = s.vaddr;
        ph.p_paddr = s.paddr;
        ph.p_filesz = s.data.size();
        ph.p_memsz = s.memsz ? s.memsz : s.data.size();
        ph.p_align = 0x1000;
        std::memcpy(out.data() + kElfPhoff + i * sizeof(Elf64_Phdr), &ph, sizeof(ph));
        out.insert(out.end(), s.data.begin(), s.data.end());
        offset += s.data.size();
    }
    return out;
}

inline Elf64_Ehdr elf_header(const Bytes& elf) {
    Elf64_Ehdr eh;
    std::memcpy(&eh, elf.data(), sizeof(eh));
    return eh;
}
inline void set_elf_header(Bytes& elf, const Elf64_Ehdr& eh) { std::memcpy(elf.data(), &eh, sizeof(eh)); }
inline Elf64_Phdr program_header(const Bytes& elf, size_t i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, elf.data() + kElfPhoff + i * sizeof(ph), sizeof(ph));
    return ph;
}
inline void set_program_header(Bytes& elf, size_t i, const Elf64_Phdr& ph) {
    std::memcpy(elf.data() + kElfPhoff + i * sizeof(ph), &ph, sizeof(ph));
}

// --- Compressed payloads, as arch/x86/boot/compressed/Makefile makes them -----------

inline void append_le32(Bytes& out, uint32_t value) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

inline Bytes gzip_compress(const Bytes& in) {
    z_stream zs{};
    if (deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::runtime_error("deflateInit2");
    Bytes out(deflateBound(&zs, in.size()));
    zs.next_in = const_cast<Bytef*>(in.data());
    zs.avail_in = static_cast<uInt>(in.size());
    zs.next_out = out.data();
    zs.avail_out = static_cast<uInt>(out.size());
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) throw std::runtime_error("deflate");
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;  // ends with ISIZE: no size_append for gzip
}

// xz as scripts/xz_wrap.sh makes it for x86: CRC32 check, BCJ x86 + LZMA2.
inline Bytes xz_compress(const Bytes& in) {
    lzma_options_lzma opts;
    lzma_lzma_preset(&opts, 6);
    lzma_filter filters[] = {{LZMA_FILTER_X86, nullptr}, {LZMA_FILTER_LZMA2, &opts}, {LZMA_VLI_UNKNOWN, nullptr}};
    Bytes out(lzma_stream_buffer_bound(in.size()));
    size_t pos = 0;
    if (lzma_stream_buffer_encode(filters, LZMA_CHECK_CRC32, nullptr, in.data(), in.size(), out.data(), &pos,
                                  out.size()) != LZMA_OK)
        throw std::runtime_error("lzma_stream_buffer_encode");
    out.resize(pos);
    append_le32(out, static_cast<uint32_t>(in.size()));
    return out;
}

// The .lzma "alone" format, as `lzma -9` writes it from a pipe.
inline Bytes lzma_alone_compress(const Bytes& in) {
    lzma_options_lzma opts;
    lzma_lzma_preset(&opts, 6);
    lzma_stream strm = LZMA_STREAM_INIT;
    if (lzma_alone_encoder(&strm, &opts) != LZMA_OK) throw std::runtime_error("lzma_alone_encoder");
    Bytes out(in.size() + in.size() / 2 + 4096);
    strm.next_in = in.data();
    strm.avail_in = in.size();
    strm.next_out = out.data();
    strm.avail_out = out.size();
    lzma_ret ret;
    do ret = lzma_code(&strm, LZMA_FINISH);
    while (ret == LZMA_OK);
    if (ret != LZMA_STREAM_END) throw std::runtime_error("lzma_code");
    out.resize(strm.total_out);
    lzma_end(&strm);
    append_le32(out, static_cast<uint32_t>(in.size()));
    return out;
}

inline Bytes bzip2_compress(const Bytes& in) {
    unsigned int size = static_cast<unsigned int>(in.size() + in.size() / 100 + 600);
    Bytes out(size);
    if (BZ2_bzBuffToBuffCompress(reinterpret_cast<char*>(out.data()), &size,
                                 const_cast<char*>(reinterpret_cast<const char*>(in.data())),
                                 static_cast<unsigned int>(in.size()), 9, 0, 0) != BZ_OK)
        throw std::runtime_error("BZ2_bzBuffToBuffCompress");
    out.resize(size);
    append_le32(out, static_cast<uint32_t>(in.size()));
    return out;
}

inline constexpr uint32_t kLz4LegacyMagic = 0x184c2102;
inline constexpr size_t kLz4LegacyBlock = 8u << 20;

// lz4 legacy frames (`lz4 -l`).  `repeat_magic_every` > 0 inserts the magic
// again before every n-th block, as concatenated lz4 files have it.
inline Bytes lz4_legacy_compress(const Bytes& in, size_t repeat_magic_every = 0) {
    Bytes out;
    append_le32(out, kLz4LegacyMagic);
    size_t block_index = 0;
    for (size_t pos = 0; pos < in.size(); pos += kLz4LegacyBlock, ++block_index) {
        if (repeat_magic_every && block_index > 0 && block_index % repeat_magic_every == 0)
            append_le32(out, kLz4LegacyMagic);
        int n = static_cast<int>(std::min(kLz4LegacyBlock, in.size() - pos));
        Bytes block(LZ4_compressBound(n));
        int c = LZ4_compress_default(reinterpret_cast<const char*>(in.data() + pos),
                                     reinterpret_cast<char*>(block.data()), n, static_cast<int>(block.size()));
        if (c <= 0) throw std::runtime_error("LZ4_compress_default");
        append_le32(out, static_cast<uint32_t>(c));
        out.insert(out.end(), block.begin(), block.begin() + c);
    }
    append_le32(out, static_cast<uint32_t>(in.size()));
    return out;
}

inline Bytes zstd_compress(const Bytes& in) {
    Bytes out(ZSTD_compressBound(in.size()));
    size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 19);
    if (ZSTD_isError(n)) throw std::runtime_error("ZSTD_compress");
    out.resize(n);
    append_le32(out, static_cast<uint32_t>(in.size()));
    return out;
}

inline Bytes compress_payload(PayloadFormat format, const Bytes& in) {
    switch (format) {
    case PayloadFormat::kGzip: return gzip_compress(in);
    case PayloadFormat::kXz: return xz_compress(in);
    case PayloadFormat::kLzma: return lzma_alone_compress(in);
    case PayloadFormat::kBzip2: return bzip2_compress(in);
    case PayloadFormat::kLz4: return lz4_legacy_compress(in);
    case PayloadFormat::kZstd: return zstd_compress(in);
    default: throw std::runtime_error("no compressor for this format");
    }
}

// --- bzImage -------------------------------------------------------------------------

struct BzImageSpec {
    uint16_t version = 0x020f;
    uint8_t setup_sects = 3;
    uint8_t loadflags = kLoadedHigh;
    uint16_t xloadflags = kXlfKernel64 | kXlfCanBeLoadedAbove4G;
    uint8_t relocatable = 1;
    uint32_t kernel_alignment = 0x200000;
    uint64_t pref_address = 0x1000000;
    uint32_t init_size = 0x800000;
    uint32_t cmdline_size = 2047;
    uint32_t initrd_addr_max = 0x7fffffff;
    size_t decompressor_size = 0x600;  // protected-mode bytes before the payload
    Bytes payload;
    size_t trailer_size = 0x100;       // protected-mode bytes after the payload
};

// Real-mode setup sectors, then the protected-mode part: a fake
// decompressor (0xd0 bytes), the payload, a fake tail (0xe0 bytes).
inline Bytes build_bzimage(const BzImageSpec& spec) {
    size_t sects = spec.setup_sects ? spec.setup_sects : 4;
    size_t setup_size = (sects + 1) * 512;
    Bytes image(setup_size, 0);
    SetupHeader hdr{};
    hdr.setup_sects = spec.setup_sects;
    hdr.boot_flag = kBootFlagMagic;
    // A short jump over the header: EB, then the offset from 0x202 to its end.
    hdr.jump = static_cast<uint16_t>(0xeb | ((0x26c - 0x202) << 8));
    hdr.header = kHdrSMagic;
    hdr.version = spec.version;
    hdr.loadflags = spec.loadflags;
    hdr.xloadflags = spec.xloadflags;
    hdr.relocatable_kernel = spec.relocatable;
    hdr.kernel_alignment = spec.kernel_alignment;
    hdr.pref_address = spec.pref_address;
    hdr.init_size = spec.init_size;
    hdr.cmdline_size = spec.cmdline_size;
    hdr.initrd_addr_max = spec.initrd_addr_max;
    hdr.vid_mode = 0xfffd;  // what the image asks for; the zero page overrides it
    hdr.payload_offset = static_cast<uint32_t>(spec.decompressor_size);
    hdr.payload_length = static_cast<uint32_t>(spec.payload.size());
    std::memcpy(image.data() + kSetupHeaderOffset, &hdr, sizeof(hdr));
    image.insert(image.end(), spec.decompressor_size, 0xd0);
    image.insert(image.end(), spec.payload.begin(), spec.payload.end());
    image.insert(image.end(), spec.trailer_size, 0xe0);
    return image;
}

}  // namespace tapvm::boot::testing
