// The KVM subsystem (/dev/kvm): API version and capability checks, the size
// of each vCPU's shared kvm_run area, and the CPUID features KVM can offer.
// Everything machine-specific starts from one KvmSystem.
#pragma once

#include "vmm/uapi/kvm.h"

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/unique_fd.h"

namespace tapvm::kvm {

inline constexpr int kKvmApiVersion = 12;  // the only stable KVM API (api.rst §4.1)

// A capability tapvm cannot run without.
struct RequiredCapability {
    int cap;
    std::string_view name;
    std::string_view why;
};

// The fixed list of required capabilities, in the order they are checked.
const std::vector<RequiredCapability>& required_capabilities();

// Names of the required capabilities for which `check` (KVM_CHECK_EXTENSION)
// returns 0 or less.  Pure, so the policy is testable without /dev/kvm.
std::vector<std::string_view> missing_capabilities(const std::function<int(int cap)>& check);

// The one-line message for a failed open of `path` with `err` (errno),
// naming the usual cause and what to do about it.
std::string describe_open_error(const std::string& path, int err);

class KvmSystem {
public:
    // Opens `path`, checks the API version and every required capability.
    // Throws Error with a message meant for the user when any is missing.
    explicit KvmSystem(const std::string& path = "/dev/kvm");

    int fd() const { return fd_.get(); }
    // KVM_CHECK_EXTENSION on /dev/kvm: 0 when absent, else a cap-specific value.
    int check_extension(int cap) const;
    // Size of the kvm_run mapping of every vCPU (KVM_GET_VCPU_MMAP_SIZE).
    size_t vcpu_mmap_size() const { return vcpu_mmap_size_; }
    // The largest number of vCPUs a VM may have (KVM_CAP_MAX_VCPUS, falling
    // back to KVM_CAP_NR_VCPUS as api.rst §4.4 recommends).
    uint32_t max_vcpus() const { return max_vcpus_; }
    // Number of GSIs a routing table may use (KVM_CAP_IRQ_ROUTING).
    uint32_t max_gsis() const { return max_gsis_; }
    // KVM_GET_SUPPORTED_CPUID, fetched once.
    const std::vector<kvm_cpuid_entry2>& supported_cpuid() const { return supported_cpuid_; }

private:
    std::vector<kvm_cpuid_entry2> fetch_supported_cpuid() const;

    UniqueFd fd_;
    size_t vcpu_mmap_size_ = 0;
    uint32_t max_vcpus_ = 0;
    uint32_t max_gsis_ = 0;
    std::vector<kvm_cpuid_entry2> supported_cpuid_;
};

}  // namespace tapvm::kvm
