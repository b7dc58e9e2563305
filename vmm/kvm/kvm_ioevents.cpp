#include "vmm/kvm/kvm_ioevents.h"

#include <spdlog/spdlog.h>

#include "vmm/error.h"

namespace tapvm::kvm {

namespace {

bool is_access_width(uint32_t length) {
    return length == 0 || length == 1 || length == 2 || length == 4 || length == 8;
}

// The checks KVM itself makes (virt/kvm/eventfd.c kvm_assign_ioeventfd),
// turned into messages that name the device's mistake.
void validate(const IoEventSpec& spec) {
    auto where = [&] {
        return std::string(spec.space == AddressSpace::Pio ? "port " : "MMIO ") + std::to_string(spec.address);
    };
    if (spec.eventfd < 0) throw UsageError("ioeventfd at " + where() + ": no eventfd");
    if (!is_access_width(spec.length))
        throw UsageError("ioeventfd at " + where() + ": width " + std::to_string(spec.length) +
                         " is not 0, 1, 2, 4 or 8");
    if (spec.address + spec.length < spec.address)
        throw UsageError("ioeventfd at " + where() + ": range wraps around");
    if (spec.space == AddressSpace::Pio) {
        if (spec.length == 0) throw UsageError("ioeventfd at " + where() + ": port I/O needs a width");
        if (spec.address + spec.length > 0x10000)
            throw UsageError("ioeventfd at " + where() + ": beyond the 64 KiB port space");
    }
    if (spec.datamatch) {
        if (spec.length == 0) throw UsageError("ioeventfd at " + where() + ": datamatch needs a width");
        // KVM compares the written value, zero-extended from the access
        // width, with datamatch: wider bits could never match.
        if (spec.length < 8 && (*spec.datamatch >> (8 * spec.length)) != 0)
            throw UsageError("ioeventfd at " + where() + ": datamatch wider than the access");
    }
}

kvm_ioeventfd request(const IoEventSpec& spec, uint32_t length) {
    kvm_ioeventfd r{};
    r.addr = spec.address;
    r.len = length;
    r.fd = spec.eventfd;
    if (spec.space == AddressSpace::Pio) r.flags |= KVM_IOEVENTFD_FLAG_PIO;
    if (spec.datamatch) {
        r.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
        r.datamatch = *spec.datamatch;
    }
    return r;
}

}  // namespace

std::vector<kvm_ioeventfd> kvm_ioeventfds_for(const IoEventSpec& spec, bool any_length_supported) {
    validate(spec);
    if (spec.length == 0 && !any_length_supported) return {request(spec, 2), request(spec, 4)};
    return {request(spec, spec.length)};
}

void KvmIoEventRegistry::add(const IoEventSpec& spec) {
    auto requests = kvm_ioeventfds_for(spec, any_length_supported_);
    size_t done = 0;
    try {
        for (; done < requests.size(); ++done) vm_.set_ioeventfd(requests[done]);
    } catch (...) {
        for (size_t i = 0; i < done; ++i) {
            auto undo = requests[i];
            undo.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
            try {
                vm_.set_ioeventfd(undo);
            } catch (const Error& e) {
                spdlog::error("ioeventfd rollback at {:#x}: {}", undo.addr, e.what());
            }
        }
        throw;
    }
}

void KvmIoEventRegistry::remove(const IoEventSpec& spec) {
    // Every registration is attempted, so a partial failure leaves none behind.
    std::string failure;
    for (auto r : kvm_ioeventfds_for(spec, any_length_supported_)) {
        r.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
        try {
            vm_.set_ioeventfd(r);
        } catch (const Error& e) {
            if (failure.empty()) failure = e.what();
        }
    }
    if (!failure.empty()) throw Error(failure);
}

}  // namespace tapvm::kvm
