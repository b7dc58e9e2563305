// A small AML encoder: just enough of ACPI Machine Language (ACPI 6.5 §20)
// to write tapvm's DSDT as nested calls that read like the ASL they stand
// for, instead of hand-assembled byte blobs:
//
//   scope("\\_SB", {device("COM1", {name("_HID", eisa_id("PNP0501"))})})
//
// Every function returns the complete encoding of one AML term.  Invalid
// arguments (a malformed name, a package too long) are programming errors
// in tapvm's own table code: they throw tapvm::Error.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "firmware/acpi/bytes.h"

namespace tapvm::acpi::aml {

// --- Package length (§20.2.4) -------------------------------------------------
// The PkgLength that precedes a body of `body_size` bytes.  The encoded value
// counts the PkgLength bytes themselves, so the form grows from 1 byte
// (total <= 0x3F) to 2 (<= 0xFFF), 3 (<= 0xFFFFF) or 4 (<= 0xFFFFFFF) bytes.
Bytes pkg_length(size_t body_size);

// --- Names (§20.2.2) ------------------------------------------------------------
// A NameSeg: 1-4 characters [A-Z_][A-Z0-9_]*, padded with '_' to 4.
Bytes name_seg(std::string_view seg);
// A NameString: optional root '\' or parent '^' prefixes, then dot-separated
// segments ("\\_SB.PCI0", "^^FOO", "_S5").  Two segments use the
// DualNamePrefix, three or more the MultiNamePrefix; a bare "\\" or "^"
// ends with the NullName.
Bytes name_string(std::string_view path);

// --- Data objects (§20.2.3) ---------------------------------------------------------
Bytes zero();  // ZeroOp
Bytes one();   // OneOp
Bytes ones();  // OnesOp: all bits set (64 bits in a revision-2 DSDT)
// The shortest encoding of `value`: ZeroOp, OneOp, or a Byte/Word/DWord/
// QWord prefix with the value.
Bytes integer(uint64_t value);
// Fixed-width constants with their prefix, whatever the value.
Bytes byte_const(uint8_t value);
Bytes word_const(uint16_t value);
Bytes dword_const(uint32_t value);
Bytes qword_const(uint64_t value);
// A String: ASCII characters 0x01-0x7F, NUL-terminated.
Bytes string(std::string_view text);
// EISAID("PNP0A08"): three upper-case letters and four hex digits compressed
// into a 32-bit integer (ACPI 6.5 §19.6.35 EISAID).
Bytes eisa_id(std::string_view id);
uint32_t eisa_id_value(std::string_view id);

// Package(){...}: at most 255 elements (a PackageOp's NumElements is a byte).
Bytes package(const std::vector<Bytes>& elements);
// Buffer(){...} with the size given as an integer.
Bytes buffer(std::span<const uint8_t> data);

// --- Named objects and control (§20.2.5) --------------------------------------------
Bytes name(std::string_view path, const Bytes& object);
Bytes scope(std::string_view path, const std::vector<Bytes>& terms);
Bytes device(std::string_view path, const std::vector<Bytes>& terms);
// Method(path, arg_count (0-7), Serialized/NotSerialized){terms}
Bytes method(std::string_view path, uint8_t arg_count, bool serialized, const std::vector<Bytes>& terms);
Bytes return_value(const Bytes& value);

// Concatenates terms into one TermList.
Bytes terms(const std::vector<Bytes>& list);

}  // namespace tapvm::acpi::aml
