#include "vmm/kvm/kvm_irq.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "vmm/error.h"
#include "vmm/event_fd.h"
#include "vmm/layout.h"

namespace tapvm::kvm {

namespace {

constexpr uint32_t kPicPins = 16;  // two cascaded 8259s

kvm_irq_routing_entry irqchip_route(uint32_t gsi, uint32_t chip, uint32_t pin) {
    kvm_irq_routing_entry e{};
    e.gsi = gsi;
    e.type = KVM_IRQ_ROUTING_IRQCHIP;
    e.u.irqchip.irqchip = chip;
    e.u.irqchip.pin = pin;
    return e;
}

}  // namespace

std::vector<kvm_irq_routing_entry> default_irqchip_routes() {
    std::vector<kvm_irq_routing_entry> routes;
    for (uint32_t gsi = 0; gsi < layout::kIoapicPins; ++gsi) {
        if (gsi == kCascadeGsi) continue;
        routes.push_back(irqchip_route(gsi, KVM_IRQCHIP_IOAPIC, gsi == kPitGsi ? kPitIoapicPin : gsi));
        if (gsi < kPicPins)
            routes.push_back(irqchip_route(gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, gsi % 8));
    }
    return routes;
}

bool is_msi_address(uint64_t address) {
    // Bits 31:20 of the low word are 0xFEE; the high word may carry
    // extended destination bits, which KVM interprets itself.
    return (address & 0xfff00000u) == 0xfee00000u;
}

std::optional<kvm_irq_routing_entry> msi_route(uint32_t gsi, const MsiMessage& message) {
    if (!is_msi_address(message.address)) return std::nullopt;
    kvm_irq_routing_entry e{};
    e.gsi = gsi;
    e.type = KVM_IRQ_ROUTING_MSI;
    e.u.msi.address_lo = static_cast<uint32_t>(message.address);
    e.u.msi.address_hi = static_cast<uint32_t>(message.address >> 32);
    e.u.msi.data = message.data;
    return e;
}

void KvmIrqLine::set_level(bool asserted) {
    try {
        chip_.set_irq_line(gsi_, asserted);
    } catch (const Error& e) {
        // A host failure, not the device's fault: report it once per line
        // instead of on every interrupt.
        if (!reported_failure_) spdlog::error("interrupt line GSI {}: {}", gsi_, e.what());
        reported_failure_ = true;
    }
}

// One MSI vector: a GSI, its route (while the message is valid) and an
// irqfd bound to that GSI.
class KvmMsiVector : public MsiVector {
public:
    KvmMsiVector(GsiRouter& router, uint32_t gsi, EventFd event)
        : router_(router), gsi_(gsi), event_(std::move(event)) {}
    ~KvmMsiVector() override { router_.release(gsi_, event_.fd()); }

    void set_message(const MsiMessage& message) override {
        try {
            router_.set_route(gsi_, message);
        } catch (const Error& e) {
            spdlog::error("MSI GSI {}: cannot route message {:#x}/{:#x}: {}", gsi_, message.address,
                          message.data, e.what());
        }
    }
    // KVM reads the eventfd and injects the MSI; no vCPU exit, no lock.
    void trigger() override { event_.signal(); }

private:
    GsiRouter& router_;
    uint32_t gsi_;
    EventFd event_;
};

GsiRouter::GsiRouter(IrqChipControl& chip, uint32_t gsi_count) : chip_(chip), gsi_count_(gsi_count) {
    if (gsi_count_ <= kFirstMsiGsi)
        throw Error("KVM offers " + std::to_string(gsi_count_) + " GSIs; MSI routing needs more than " +
                    std::to_string(kFirstMsiGsi));
    std::lock_guard lock(mutex_);
    push_locked();
}

GsiRouter::~GsiRouter() {
    if (!msi_.empty())
        spdlog::error("GSI router destroyed while {} MSI vectors still exist (they must be destroyed first)",
                      msi_.size());
}

std::unique_ptr<IrqLine> GsiRouter::irq_line(uint32_t gsi) {
    if (gsi >= layout::kIoapicPins)
        throw UsageError("interrupt line GSI " + std::to_string(gsi) + " is not an IOAPIC pin (0-" +
                         std::to_string(layout::kIoapicPins - 1) + ")");
    // GSI 2 (the cascade) is accepted but has no route: its line is inert.
    return std::make_unique<KvmIrqLine>(chip_, gsi);
}

std::unique_ptr<MsiVector> GsiRouter::allocate() {
    std::lock_guard lock(mutex_);
    uint32_t gsi = free_gsi_locked();
    if (gsi >= gsi_count_)
        throw Error("MSI routing table full: all " + std::to_string(gsi_count_ - kFirstMsiGsi) +
                    " MSI GSIs are in use");
    EventFd event;
    // An irqfd on a GSI without a route is accepted by KVM; its triggers go
    // nowhere until set_message() installs the route.
    chip_.set_irqfd(event.fd(), gsi, true);
    msi_.emplace(gsi, std::nullopt);
    return std::make_unique<KvmMsiVector>(*this, gsi, std::move(event));
}

std::vector<kvm_irq_routing_entry> GsiRouter::table() const {
    std::lock_guard lock(mutex_);
    return build_table_locked();
}

size_t GsiRouter::vector_count() const {
    std::lock_guard lock(mutex_);
    return msi_.size();
}

void GsiRouter::set_route(uint32_t gsi, const MsiMessage& message) {
    std::lock_guard lock(mutex_);
    auto it = msi_.find(gsi);
    if (it == msi_.end()) return;
    std::optional<MsiMessage> wanted;
    if (is_msi_address(message.address)) wanted = message;
    // The transport calls this on every table write (address low, high and
    // data are separate writes); KVM_SET_GSI_ROUTING waits for an SRCU grace
    // period, so skip pushes that change nothing.
    if (it->second == wanted) return;
    it->second = wanted;
    push_locked();
}

void GsiRouter::release(uint32_t gsi, int eventfd) {
    std::lock_guard lock(mutex_);
    auto it = msi_.find(gsi);
    if (it == msi_.end()) return;
    bool routed = it->second.has_value();
    msi_.erase(it);
    try {
        chip_.set_irqfd(eventfd, gsi, false);
        if (routed) push_locked();
    } catch (const Error& e) {
        spdlog::error("releasing MSI GSI {}: {}", gsi, e.what());
    }
}

std::vector<kvm_irq_routing_entry> GsiRouter::build_table_locked() const {
    auto table = default_irqchip_routes();
    for (const auto& [gsi, message] : msi_)
        if (message)
            if (auto route = msi_route(gsi, *message)) table.push_back(*route);
    return table;
}

void GsiRouter::push_locked() {
    // KVM_SET_GSI_ROUTING replaces the whole table, so it is always rebuilt
    // from the defaults plus every routed vector.
    chip_.set_gsi_routing(build_table_locked());
}

uint32_t GsiRouter::free_gsi_locked() const {
    uint32_t gsi = kFirstMsiGsi;
    for (const auto& [used, message] : msi_) {  // ordered: the first gap is free
        if (used != gsi) break;
        ++gsi;
    }
    return gsi;
}

}  // namespace tapvm::kvm
