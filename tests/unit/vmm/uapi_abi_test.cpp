// tapvm's C++ view of the KVM uapi against the C compiler's (uapi_abi_c.c):
// the ioctl numbers encode struct sizes, so a C++-only layout difference in
// the headers (Debian bookworm's __DECLARE_FLEX_ARRAY) changes them.  Runs
// without /dev/kvm: this is what would have caught KVM_GET_SUPPORTED_CPUID
// failing with EINVAL on every machine.
#include <gtest/gtest.h>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>

#include "uapi_abi_c.h"
#include "vmm/uapi/kvm.h"

extern "C" {
extern const struct uapi_ioctl uapi_raw_cxx_ioctls[];
extern const unsigned uapi_raw_cxx_ioctl_count;
extern const size_t uapi_raw_cxx_sizeof_kvm_cpuid2;
}

namespace {

#define UAPI_IOCTL(name) {#name, static_cast<unsigned long>(name)},
#define UAPI_LAYOUT(type, member)
const std::map<std::string, unsigned long> kCxxIoctls = {
#include "uapi_abi_list.h"
};
#undef UAPI_IOCTL
#undef UAPI_LAYOUT

#define UAPI_IOCTL(name)
#define UAPI_LAYOUT(type, member) {#type, {sizeof(type), offsetof(type, member)}},
const std::map<std::string, std::pair<size_t, size_t>> kCxxLayouts = {
#include "uapi_abi_list.h"
};
#undef UAPI_IOCTL
#undef UAPI_LAYOUT

unsigned long c_ioctl(const std::string& name) {
    for (unsigned i = 0; i < uapi_c_ioctl_count; ++i)
        if (name == uapi_c_ioctls[i].name) return uapi_c_ioctls[i].number;
    ADD_FAILURE() << name << " missing from the C side";
    return 0;
}

TEST(UapiAbi, EveryIoctlNumberMatchesTheCCompiler) {
    ASSERT_EQ(uapi_c_ioctl_count, kCxxIoctls.size());
    for (unsigned i = 0; i < uapi_c_ioctl_count; ++i) {
        auto it = kCxxIoctls.find(uapi_c_ioctls[i].name);
        ASSERT_NE(it, kCxxIoctls.end()) << uapi_c_ioctls[i].name;
        EXPECT_EQ(it->second, uapi_c_ioctls[i].number)
            << it->first << ": C++ encodes 0x" << std::hex << it->second << ", C 0x" << uapi_c_ioctls[i].number;
    }
}

TEST(UapiAbi, EveryFlexibleArrayStructHasTheCLayout) {
    ASSERT_EQ(uapi_c_layout_count, kCxxLayouts.size());
    for (unsigned i = 0; i < uapi_c_layout_count; ++i) {
        const auto& c = uapi_c_layouts[i];
        auto it = kCxxLayouts.find(c.type);
        ASSERT_NE(it, kCxxLayouts.end()) << c.type;
        EXPECT_EQ(it->second.first, c.size) << c.type << " sizeof";
        EXPECT_EQ(it->second.second, c.array_offset) << c.type << " array offset";
    }
}

// The comparison above is sensitive to the bug it guards against: the same
// header included straight into C++ either agrees with C (a header with the
// upstream fix) or disagrees exactly on the ioctls of flexible-array structs.
TEST(UapiAbi, TheComparisonCatchesTheUncorrectedHeader) {
    const bool header_broken = uapi_raw_cxx_sizeof_kvm_cpuid2 != uapi_c_layouts[0].size;
    unsigned mismatches = 0;
    for (unsigned i = 0; i < uapi_raw_cxx_ioctl_count; ++i) {
        const auto& raw = uapi_raw_cxx_ioctls[i];
        if (raw.number != c_ioctl(raw.name)) ++mismatches;
    }
    // Each of these ioctls takes a flexible-array struct: all differ from C
    // when the raw header mislays them in C++ (Debian bookworm), none when
    // the header carries the upstream fix.
    EXPECT_EQ(mismatches, header_broken ? uapi_raw_cxx_ioctl_count : 0u)
        << "raw C++ sizeof(kvm_cpuid2) = " << uapi_raw_cxx_sizeof_kvm_cpuid2;
    RecordProperty("uncorrected_header_mismatches", static_cast<int>(mismatches));
}

// Every other C++ file goes through vmm/uapi/kvm.h; a direct include would
// bring the uncorrected layout back without any static_assert noticing.
TEST(UapiAbi, NoSourceIncludesTheKvmHeadersDirectly) {
    namespace fs = std::filesystem;
    const std::regex direct(R"(#\s*include\s*<(linux|asm)/kvm\.h>)");
    const fs::path root = TAPVM_SOURCE_DIR;
    unsigned scanned = 0;
    for (const char* layer : {"vmm", "firmware", "devices", "virtio", "net", "tests"}) {
        for (const auto& entry : fs::recursive_directory_iterator(root / layer)) {
            const auto& p = entry.path();
            if (!entry.is_regular_file() || (p.extension() != ".h" && p.extension() != ".cpp")) continue;
            const auto rel = fs::relative(p, root).string();
            if (rel == "vmm/uapi/kvm.h" || rel == "tests/unit/vmm/uapi_abi_raw.cpp") continue;
            std::ifstream in(p);
            std::string line;
            while (std::getline(in, line))
                EXPECT_FALSE(std::regex_search(line, direct)) << rel << ": " << line;
            ++scanned;
        }
    }
    EXPECT_GT(scanned, 100u);
}

}  // namespace
