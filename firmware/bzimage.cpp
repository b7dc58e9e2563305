#include "firmware/bzimage.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "vmm/error.h"

namespace tapvm::boot {

namespace {

constexpr size_t kSectorSize = 512;
constexpr size_t kHeaderMagicOffset = 0x202;
constexpr size_t kJumpOffsetByte = 0x201;
// boot.rst: "If setup_sects is 0, the real value is 4."
constexpr uint8_t kDefaultSetupSects = 4;
// The header fields tapvm relies on (through payload_length) end here.
constexpr size_t kMinHeaderEnd = 0x250;

std::string protocol_name(uint16_t version) {
    return fmt::format("{}.{:02d}", version >> 8, version & 0xff);
}

uint32_t read_le32(std::span<const uint8_t> bytes, size_t offset) {
    uint32_t value;
    std::memcpy(&value, bytes.data() + offset, sizeof(value));
    return value;  // x86-64 host: little-endian like the image
}

// boot.rst: "the end of the setup header can be calculated as follows:
// 0x0202 + byte value at offset 0x0201" (the short jump over the header).
size_t setup_header_end(std::span<const uint8_t> image) {
    return kHeaderMagicOffset + image[kJumpOffsetByte];
}

SetupHeader copy_setup_header(std::span<const uint8_t> image) {
    SetupHeader header{};
    size_t end = std::min({setup_header_end(image), image.size(),
                           kSetupHeaderOffset + sizeof(SetupHeader)});
    std::memcpy(&header, image.data() + kSetupHeaderOffset, end - kSetupHeaderOffset);
    return header;
}

}  // namespace

uint64_t BzImage::preferred_load_address() const {
    if (version >= kBootProtocolPrefAddress && header.pref_address != 0) return header.pref_address;
    return kDefaultKernelLoadAddress;
}

uint32_t BzImage::init_size() const {
    return version >= kBootProtocolPrefAddress ? header.init_size : 0;
}

bool has_bzimage_magic(std::span<const uint8_t> image) {
    return image.size() >= kSetupHeaderOffset + sizeof(SetupHeader) &&
           read_le32(image, kHeaderMagicOffset) == kHdrSMagic;
}

BzImage parse_bzimage(std::span<const uint8_t> image) {
    if (!has_bzimage_magic(image)) throw UsageError("not a bzImage: missing HdrS magic at 0x202");

    BzImage bz;
    bz.header = copy_setup_header(image);
    bz.version = bz.header.version;
    if (bz.version < kMinBootProtocol)
        throw UsageError(fmt::format(
            "bzImage boot protocol {} is too old: tapvm needs {} or later (payload_offset/payload_length)",
            protocol_name(bz.version), protocol_name(kMinBootProtocol)));
    if (setup_header_end(image) < kMinHeaderEnd)
        throw UsageError(fmt::format("bzImage setup header ends at {:#x}, before the payload fields at {:#x}",
                                     setup_header_end(image), kMinHeaderEnd));
    // boot.rst: without LOADED_HIGH this is a zImage, loaded at 0x10000.
    if (!(bz.header.loadflags & kLoadedHigh))
        throw UsageError("zImage kernels (LOADED_HIGH clear in loadflags) are not supported; use a bzImage");

    uint64_t setup_sects = bz.header.setup_sects ? bz.header.setup_sects : kDefaultSetupSects;
    bz.setup_size = (setup_sects + 1) * kSectorSize;
    if (bz.setup_size >= image.size())
        throw UsageError(fmt::format("bzImage is truncated: {} bytes, but its setup code alone is {} bytes",
                                     image.size(), bz.setup_size));
    bz.protected_mode = image.subspan(bz.setup_size);

    // payload_offset is measured from the start of the protected-mode code.
    uint64_t offset = bz.header.payload_offset;
    uint64_t length = bz.header.payload_length;
    if (length == 0 || offset > bz.protected_mode.size() || length > bz.protected_mode.size() - offset)
        throw UsageError(fmt::format(
            "bzImage payload [{:#x}, +{:#x}) lies outside the {:#x}-byte protected-mode kernel",
            offset, length, bz.protected_mode.size()));
    bz.payload = bz.protected_mode.subspan(offset, length);
    return bz;
}

}  // namespace tapvm::boot
