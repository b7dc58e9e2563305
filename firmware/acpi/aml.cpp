#include "firmware/acpi/aml.h"

#include <string>

#include "vmm/error.h"

namespace tapvm::acpi::aml {

namespace {

// Opcodes, ACPI 6.5 §20.3 (AML Byte Stream Byte Values).
constexpr uint8_t kZeroOp = 0x00;
constexpr uint8_t kOneOp = 0x01;
constexpr uint8_t kNameOp = 0x08;
constexpr uint8_t kBytePrefix = 0x0a;
constexpr uint8_t kWordPrefix = 0x0b;
constexpr uint8_t kDWordPrefix = 0x0c;
constexpr uint8_t kStringPrefix = 0x0d;
constexpr uint8_t kQWordPrefix = 0x0e;
constexpr uint8_t kScopeOp = 0x10;
constexpr uint8_t kBufferOp = 0x11;
constexpr uint8_t kPackageOp = 0x12;
constexpr uint8_t kMethodOp = 0x14;
constexpr uint8_t kDualNamePrefix = 0x2e;
constexpr uint8_t kMultiNamePrefix = 0x2f;
constexpr uint8_t kExtOpPrefix = 0x5b;
constexpr uint8_t kDeviceOp = 0x82;  // after kExtOpPrefix
constexpr uint8_t kRootChar = 0x5c;  // '\'
constexpr uint8_t kParentPrefixChar = 0x5e;  // '^'
constexpr uint8_t kReturnOp = 0xa4;
constexpr uint8_t kOnesOp = 0xff;

// Largest value each PkgLength form can hold (§20.2.4): 6 bits in one byte;
// 4 + 8*n bits with n follow-on bytes.
constexpr size_t kMaxPkgLength[] = {0x3f, 0xfff, 0xfffff, 0xfffffff};

bool is_lead_name_char(char c) { return (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_lead_name_char(c) || (c >= '0' && c <= '9'); }

// opcode bytes, then PkgLength, then body: the shape of every
// variable-length AML term.
Bytes with_pkg_length(std::initializer_list<uint8_t> opcode, const Bytes& body) {
    Bytes out(opcode);
    append(out, pkg_length(body.size()));
    append(out, body);
    return out;
}

}  // namespace

Bytes pkg_length(size_t body_size) {
    for (size_t extra = 0; extra < 4; ++extra) {
        size_t total = body_size + 1 + extra;  // the PkgLength counts itself
        if (total > kMaxPkgLength[extra]) continue;
        if (extra == 0) return {static_cast<uint8_t>(total)};
        // Lead byte: bits 7-6 = number of follow-on bytes, bits 3-0 = the
        // low nibble; the follow-on bytes carry the rest, least significant
        // first.
        Bytes out{static_cast<uint8_t>((extra << 6) | (total & 0x0f))};
        put_le(out, total >> 4, extra);
        return out;
    }
    throw Error("aml: body of " + std::to_string(body_size) + " bytes is too long for a PkgLength");
}

Bytes name_seg(std::string_view seg) {
    if (seg.empty() || seg.size() > 4 || !is_lead_name_char(seg[0]))
        throw Error("aml: bad name segment '" + std::string(seg) + "'");
    for (char c : seg)
        if (!is_name_char(c)) throw Error("aml: bad name segment '" + std::string(seg) + "'");
    Bytes out;
    put_chars(out, seg, 4, '_');
    return out;
}

Bytes name_string(std::string_view path) {
    const std::string whole(path);
    Bytes out;
    if (!path.empty() && path.front() == '\\') {
        out.push_back(kRootChar);
        path.remove_prefix(1);
    } else {
        while (!path.empty() && path.front() == '^') {
            out.push_back(kParentPrefixChar);
            path.remove_prefix(1);
        }
    }
    std::vector<Bytes> segs;
    while (!path.empty()) {
        size_t dot = path.find('.');
        segs.push_back(name_seg(path.substr(0, dot)));
        if (dot == std::string_view::npos) break;
        path.remove_prefix(dot + 1);
        if (path.empty()) throw Error("aml: name '" + whole + "' ends with a dot");
    }
    if (segs.empty()) {
        if (out.empty()) throw Error("aml: empty name");
        out.push_back(kZeroOp);  // NullName after a prefix
    } else if (segs.size() == 2) {
        out.push_back(kDualNamePrefix);
    } else if (segs.size() > 2) {
        if (segs.size() > 255) throw Error("aml: name '" + whole + "' has too many segments");
        out.push_back(kMultiNamePrefix);
        out.push_back(static_cast<uint8_t>(segs.size()));
    }
    for (const auto& s : segs) append(out, s);
    return out;
}

Bytes zero() { return {kZeroOp}; }
Bytes one() { return {kOneOp}; }
Bytes ones() { return {kOnesOp}; }

Bytes byte_const(uint8_t value) { return {kBytePrefix, value}; }

Bytes word_const(uint16_t value) {
    Bytes out{kWordPrefix};
    put_u16(out, value);
    return out;
}

Bytes dword_const(uint32_t value) {
    Bytes out{kDWordPrefix};
    put_u32(out, value);
    return out;
}

Bytes qword_const(uint64_t value) {
    Bytes out{kQWordPrefix};
    put_u64(out, value);
    return out;
}

Bytes integer(uint64_t value) {
    if (value == 0) return zero();
    if (value == 1) return one();
    if (value <= 0xff) return byte_const(static_cast<uint8_t>(value));
    if (value <= 0xffff) return word_const(static_cast<uint16_t>(value));
    if (value <= 0xffffffff) return dword_const(static_cast<uint32_t>(value));
    return qword_const(value);
}

Bytes string(std::string_view text) {
    Bytes out{kStringPrefix};
    for (char c : text) {
        auto b = static_cast<uint8_t>(c);
        if (b == 0 || b > 0x7f) throw Error("aml: string holds a non-ASCII or NUL character");
        out.push_back(b);
    }
    out.push_back(0);
    return out;
}

uint32_t eisa_id_value(std::string_view id) {
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    bool ok = id.size() == 7;
    for (size_t i = 0; ok && i < 3; ++i) ok = id[i] >= 'A' && id[i] <= 'Z';
    for (size_t i = 3; ok && i < 7; ++i) ok = hex(id[i]) >= 0;
    if (!ok) throw Error("aml: bad EISA id '" + std::string(id) + "' (want e.g. PNP0A08)");
    // Each letter becomes 5 bits (A = 1), the product number 16 bits; the
    // resulting 32-bit number is stored most significant byte first.
    uint32_t big_endian = 0;
    for (size_t i = 0; i < 3; ++i) big_endian = (big_endian << 5) | static_cast<uint32_t>(id[i] - 'A' + 1);
    for (size_t i = 3; i < 7; ++i) big_endian = (big_endian << 4) | static_cast<uint32_t>(hex(id[i]));
    return __builtin_bswap32(big_endian);
}

Bytes eisa_id(std::string_view id) { return dword_const(eisa_id_value(id)); }

Bytes package(const std::vector<Bytes>& elements) {
    if (elements.size() > 255) throw Error("aml: package of more than 255 elements");
    Bytes body{static_cast<uint8_t>(elements.size())};
    for (const auto& e : elements) append(body, e);
    return with_pkg_length({kPackageOp}, body);
}

Bytes buffer(std::span<const uint8_t> data) {
    Bytes body = integer(data.size());
    append(body, data);
    return with_pkg_length({kBufferOp}, body);
}

Bytes name(std::string_view path, const Bytes& object) {
    Bytes out{kNameOp};
    append(out, name_string(path));
    append(out, object);
    return out;
}

Bytes scope(std::string_view path, const std::vector<Bytes>& list) {
    Bytes body = name_string(path);
    append(body, terms(list));
    return with_pkg_length({kScopeOp}, body);
}

Bytes device(std::string_view path, const std::vector<Bytes>& list) {
    Bytes body = name_string(path);
    append(body, terms(list));
    return with_pkg_length({kExtOpPrefix, kDeviceOp}, body);
}

Bytes method(std::string_view path, uint8_t arg_count, bool serialized, const std::vector<Bytes>& list) {
    if (arg_count > 7) throw Error("aml: a method takes at most 7 arguments");
    Bytes body = name_string(path);
    // MethodFlags: bits 0-2 ArgCount, bit 3 SerializeFlag, bits 4-7 SyncLevel (0).
    body.push_back(static_cast<uint8_t>(arg_count | (serialized ? 0x08 : 0)));
    append(body, terms(list));
    return with_pkg_length({kMethodOp}, body);
}

Bytes return_value(const Bytes& value) {
    Bytes out{kReturnOp};
    append(out, value);
    return out;
}

Bytes terms(const std::vector<Bytes>& list) {
    Bytes out;
    for (const auto& t : list) append(out, t);
    return out;
}

}  // namespace tapvm::acpi::aml
