#include "vmm/kvm/kvm_system.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "vmm/error.h"
#include "vmm/kvm/kvm_ioctl.h"

namespace tapvm::kvm {

const std::vector<RequiredCapability>& required_capabilities() {
    static const std::vector<RequiredCapability> caps = {
        {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY", "guest RAM is mapped from tapvm's memory"},
        {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR", "Intel VMX needs a TSS for real-mode emulation"},
        {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP", "in-kernel PIC, IOAPIC and local APICs"},
        {KVM_CAP_PIT2, "KVM_CAP_PIT2", "in-kernel i8254 timer"},
        {KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING", "MSI routes for virtio-pci"},
        {KVM_CAP_IRQFD, "KVM_CAP_IRQFD", "devices interrupt the guest without a vCPU exit"},
        {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD", "guest notifications without a vCPU exit"},
        {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID", "KVM_GET_SUPPORTED_CPUID / KVM_SET_CPUID2"},
        {KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS", "completing emulation failures (int3) injects exceptions"},
        {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT", "stopping vCPUs without a race"},
    };
    return caps;
}

std::vector<std::string_view> missing_capabilities(const std::function<int(int cap)>& check) {
    std::vector<std::string_view> missing;
    for (const auto& c : required_capabilities())
        if (check(c.cap) <= 0) missing.push_back(c.name);
    return missing;
}

std::string describe_open_error(const std::string& path, int err) {
    std::string msg = path + ": " + std::strerror(err);
    switch (err) {
        case ENOENT:
            return msg + " — is KVM enabled? (load kvm_intel or kvm_amd, enable virtualization "
                         "in the firmware, or enable nested virtualization on the host)";
        case EACCES:
        case EPERM:
            return msg + " — add your user to the group that owns " + path + " (usually 'kvm')";
        case ENXIO:
        case ENODEV:
            return msg + " — the KVM module is loaded but found no usable virtualization "
                         "support on this CPU";
        default:
            return msg;
    }
}

KvmSystem::KvmSystem(const std::string& path) {
    fd_.reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd_) throw Error(describe_open_error(path, errno));

    int version = checked_ioctl(fd(), KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION");
    if (version != kKvmApiVersion)
        throw Error(path + ": KVM API version " + std::to_string(version) + ", tapvm needs " +
                    std::to_string(kKvmApiVersion));

    auto missing = missing_capabilities([this](int cap) { return check_extension(cap); });
    if (!missing.empty()) {
        std::string names;
        for (auto n : missing) names += (names.empty() ? "" : ", ") + std::string(n);
        throw Error(path + ": this KVM lacks capabilities tapvm needs: " + names);
    }

    int mmap_size = checked_ioctl(fd(), KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");
    if (mmap_size < static_cast<int>(sizeof(kvm_run)))
        throw Error(path + ": KVM_GET_VCPU_MMAP_SIZE returned " + std::to_string(mmap_size));
    vcpu_mmap_size_ = static_cast<size_t>(mmap_size);

    // api.rst §4.4: KVM_CAP_MAX_VCPUS is the hard limit; without it,
    // KVM_CAP_NR_VCPUS is the recommended one, and without that, 4.
    int max = check_extension(KVM_CAP_MAX_VCPUS);
    if (max <= 0) max = check_extension(KVM_CAP_NR_VCPUS);
    max_vcpus_ = max > 0 ? static_cast<uint32_t>(max) : 4;
    max_gsis_ = static_cast<uint32_t>(check_extension(KVM_CAP_IRQ_ROUTING));

    supported_cpuid_ = fetch_supported_cpuid();
    spdlog::debug("{}: KVM API {}, kvm_run {} bytes, up to {} vCPUs, {} GSIs, {} CPUID entries", path,
                  version, vcpu_mmap_size_, max_vcpus_, max_gsis_, supported_cpuid_.size());
}

int KvmSystem::check_extension(int cap) const {
    int r = ::ioctl(fd(), KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
}

std::vector<kvm_cpuid_entry2> KvmSystem::fetch_supported_cpuid() const {
    // KVM fails with E2BIG until the buffer is large enough (api.rst
    // KVM_GET_SUPPORTED_CPUID); current kernels need fewer than 256 entries.
    for (uint32_t capacity = 256; capacity <= 4096; capacity *= 2) {
        size_t bytes = sizeof(kvm_cpuid2) + capacity * sizeof(kvm_cpuid_entry2);
        auto buffer = std::make_unique<uint64_t[]>((bytes + 7) / 8);  // 8-aligned, zeroed
        auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buffer.get());
        cpuid->nent = capacity;
        if (::ioctl(fd(), KVM_GET_SUPPORTED_CPUID, cpuid) == 0)
            return {cpuid->entries, cpuid->entries + cpuid->nent};
        if (errno != E2BIG) throw_errno("KVM_GET_SUPPORTED_CPUID");
    }
    throw Error("KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

}  // namespace tapvm::kvm
