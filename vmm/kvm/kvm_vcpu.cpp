#include "vmm/kvm/kvm_vcpu.h"

#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <memory>

#include "vmm/error.h"
#include "vmm/kvm/kvm_ioctl.h"

namespace tapvm::kvm {

namespace {

// kvm_msrs ends in a flexible array: a zeroed, 8-aligned buffer of the
// right size holds the header and n entries.
class MsrBuffer {
public:
    explicit MsrBuffer(size_t n)
        : words_((sizeof(kvm_msrs) + n * sizeof(kvm_msr_entry) + 7) / 8),
          storage_(std::make_unique<uint64_t[]>(words_)) {
        get()->nmsrs = static_cast<uint32_t>(n);
    }
    kvm_msrs* get() { return reinterpret_cast<kvm_msrs*>(storage_.get()); }

private:
    size_t words_;
    std::unique_ptr<uint64_t[]> storage_;
};

}  // namespace

KvmRunMapping::KvmRunMapping(int vcpu_fd, size_t size) : size_(size) {
    base_ = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
    if (base_ == MAP_FAILED) {
        base_ = nullptr;
        throw_errno("mmap kvm_run");
    }
}

KvmRunMapping::~KvmRunMapping() {
    if (base_) ::munmap(base_, size_);
}

KvmVcpu::KvmVcpu(UniqueFd fd, uint32_t id, size_t mmap_size)
    : fd_(std::move(fd)), id_(id), run_(fd_.get(), mmap_size) {}

KvmVcpu::RunResult KvmVcpu::run() {
    if (::ioctl(fd(), KVM_RUN, 0) == 0) return RunResult::Exited;
    // EINTR: a signal (the stop kick) or immediate_exit; EAGAIN: KVM wants
    // to be re-entered (e.g. an AP still waiting for its SIPI on some kernels).
    if (errno == EINTR || errno == EAGAIN) return RunResult::Interrupted;
    throw_errno("KVM_RUN on vCPU " + std::to_string(id_));
}

void KvmVcpu::set_immediate_exit(bool on) {
    // Written by a stopping thread while the vCPU thread may be entering
    // KVM_RUN; the kernel reads it with READ_ONCE on entry.
    std::atomic_ref<uint8_t>(run_.run().immediate_exit).store(on ? 1 : 0, std::memory_order_seq_cst);
}

kvm_regs KvmVcpu::regs() const {
    kvm_regs r{};
    checked_ioctl(fd(), KVM_GET_REGS, &r, "KVM_GET_REGS");
    return r;
}
void KvmVcpu::set_regs(const kvm_regs& r) { checked_ioctl(fd(), KVM_SET_REGS, &r, "KVM_SET_REGS"); }

kvm_sregs KvmVcpu::sregs() const {
    kvm_sregs s{};
    checked_ioctl(fd(), KVM_GET_SREGS, &s, "KVM_GET_SREGS");
    return s;
}
void KvmVcpu::set_sregs(const kvm_sregs& s) { checked_ioctl(fd(), KVM_SET_SREGS, &s, "KVM_SET_SREGS"); }

kvm_fpu KvmVcpu::fpu() const {
    kvm_fpu f{};
    checked_ioctl(fd(), KVM_GET_FPU, &f, "KVM_GET_FPU");
    return f;
}
void KvmVcpu::set_fpu(const kvm_fpu& f) { checked_ioctl(fd(), KVM_SET_FPU, &f, "KVM_SET_FPU"); }

kvm_lapic_state KvmVcpu::lapic() const {
    kvm_lapic_state l{};
    checked_ioctl(fd(), KVM_GET_LAPIC, &l, "KVM_GET_LAPIC");
    return l;
}
void KvmVcpu::set_lapic(const kvm_lapic_state& l) { checked_ioctl(fd(), KVM_SET_LAPIC, &l, "KVM_SET_LAPIC"); }

kvm_vcpu_events KvmVcpu::events() const {
    kvm_vcpu_events e{};
    checked_ioctl(fd(), KVM_GET_VCPU_EVENTS, &e, "KVM_GET_VCPU_EVENTS");
    return e;
}
void KvmVcpu::set_events(const kvm_vcpu_events& e) {
    checked_ioctl(fd(), KVM_SET_VCPU_EVENTS, &e, "KVM_SET_VCPU_EVENTS");
}

kvm_mp_state KvmVcpu::mp_state() const {
    kvm_mp_state m{};
    checked_ioctl(fd(), KVM_GET_MP_STATE, &m, "KVM_GET_MP_STATE");
    return m;
}

void KvmVcpu::set_cpuid(std::span<const kvm_cpuid_entry2> entries) {
    size_t bytes = sizeof(kvm_cpuid2) + entries.size() * sizeof(kvm_cpuid_entry2);
    auto storage = std::make_unique<uint64_t[]>((bytes + 7) / 8);
    auto* cpuid = reinterpret_cast<kvm_cpuid2*>(storage.get());
    cpuid->nent = static_cast<uint32_t>(entries.size());
    std::copy(entries.begin(), entries.end(), cpuid->entries);
    checked_ioctl(fd(), KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2");
}

size_t KvmVcpu::set_msrs(std::span<const kvm_msr_entry> entries) {
    if (entries.empty()) return 0;
    MsrBuffer buffer(entries.size());
    std::copy(entries.begin(), entries.end(), buffer.get()->entries);
    return static_cast<size_t>(checked_ioctl(fd(), KVM_SET_MSRS, buffer.get(), "KVM_SET_MSRS"));
}

std::vector<std::optional<uint64_t>> KvmVcpu::msrs(std::span<const uint32_t> indices) const {
    std::vector<std::optional<uint64_t>> values(indices.size());
    // KVM_GET_MSRS stops at the first MSR it does not know: read the rest
    // after skipping it.
    size_t next = 0;
    while (next < indices.size()) {
        size_t n = indices.size() - next;
        MsrBuffer buffer(n);
        for (size_t i = 0; i < n; ++i) buffer.get()->entries[i].index = indices[next + i];
        size_t got = static_cast<size_t>(checked_ioctl(fd(), KVM_GET_MSRS, buffer.get(), "KVM_GET_MSRS"));
        for (size_t i = 0; i < got && i < n; ++i) values[next + i] = buffer.get()->entries[i].data;
        next += got + 1;  // skips the refused one (if any)
    }
    return values;
}

std::optional<uint64_t> KvmVcpu::translate(uint64_t linear) const {
    kvm_translation t{};
    t.linear_address = linear;
    if (::ioctl(fd(), KVM_TRANSLATE, &t) < 0 || !t.valid) return std::nullopt;
    return t.physical_address;
}

}  // namespace tapvm::kvm
