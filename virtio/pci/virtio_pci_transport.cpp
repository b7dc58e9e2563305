#include "virtio/pci/virtio_pci_transport.h"

#include <array>
#include <bit>
#include <optional>
#include <vector>

#include "devices/pci/bar.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_function.h"
#include "devices/pci/pci_regs.h"
#include "virtio/pci/common_config.h"
#include "virtio/pci/legacy_config.h"
#include "virtio/pci/modern_regions.h"
#include "virtio/pci/pci_cfg_window.h"
#include "virtio/pci/transport_core.h"
#include "virtio/pci/virtio_pci_regs.h"
#include "virtio/split_queue.h"
#include "vmm/error.h"

namespace tapvm::virtio {

namespace r = pci_regs;

namespace {

// §4.1.2.3: the transitional device ids, for the device types that had a
// legacy interface.
std::optional<uint16_t> transitional_device_id(uint32_t type) {
    switch (type) {
        case 1: return 0x1000;  // network
        case 2: return 0x1001;  // block
        case 5: return 0x1002;  // traditional memory balloon
        case 3: return 0x1003;  // console
        case 8: return 0x1004;  // SCSI host
        case 4: return 0x1005;  // entropy source
        case 9: return 0x1009;  // 9P transport
        default: return std::nullopt;
    }
}

// The PCI class the guest's generic code sees (lspci); drivers match ids.
std::pair<uint8_t, uint8_t> class_of(uint32_t type) {
    switch (type) {
        case 1: return {pci::kClassNetwork, 0x00};  // Ethernet controller
        case 2: return {0x01, 0x00};                // mass storage, SCSI (as QEMU)
        case 3: return {0x07, 0x80};                // communication, other
        default: return {0xff, 0x00};               // unassigned class
    }
}

pci::PciIdentity identity_for(const VirtioDevice& device, bool legacy) {
    const uint32_t type = device.device_type();
    auto [class_code, subclass] = class_of(type);
    pci::PciIdentity id{.vendor_id = r::kVendorId, .class_code = class_code, .subclass = subclass,
                        .subsystem_vendor_id = r::kVendorId};
    if (legacy) {
        auto transitional = transitional_device_id(type);
        if (!transitional)
            throw Error("virtio-pci: device type " + std::to_string(type) +
                        " has no transitional PCI id; use the modern-only interface");
        // §4.1.2.3: legacy drivers match revision 0 and subsystem id = type.
        id.device_id = *transitional;
        id.revision = 0;
        id.subsystem_id = static_cast<uint16_t>(type);
    } else {
        // §4.1.2.2: revision >= 1 and subsystem id >= 0x40 keep legacy
        // drivers away; 0x1100 is the value QEMU uses.
        id.device_id = static_cast<uint16_t>(r::kModernDeviceIdBase + type);
        id.revision = 1;
        id.subsystem_id = 0x1100;
    }
    return id;
}

void check_device_shape(const VirtioDevice& device) {
    const uint16_t size = device.max_queue_size();
    if (device.num_queues() == 0) throw Error("virtio-pci: a device needs at least one queue");
    if (size == 0 || size > SplitQueue::kMaxSize || !std::has_single_bit(size))
        throw Error("virtio-pci: max queue size " + std::to_string(size) + " is not a power of two up to 32768");
    if (device.num_queues() + 1u > pci::kMsixMaxVectors) throw Error("virtio-pci: too many queues for MSI-X");
}

// struct virtio_pci_cap (§4.1.4) minus the two bytes PciFunction writes
// itself (cap_vndr, cap_next).
std::vector<uint8_t> virtio_cap_body(uint8_t cfg_type, uint8_t bar, uint32_t offset, uint32_t length,
                                     uint8_t cap_len = r::kCapSize) {
    std::vector<uint8_t> body(cap_len - 2, 0);
    body[r::kCapLen - 2] = cap_len;
    body[r::kCapCfgType - 2] = cfg_type;
    body[r::kCapBar - 2] = bar;
    store_le(std::span(body).subspan(r::kCapOffset - 2, 4), offset);
    store_le(std::span(body).subspan(r::kCapLength - 2, 4), length);
    return body;
}

uint64_t align_up(uint64_t value, uint64_t align) { return (value + align - 1) / align * align; }

// Call after every BAR is declared: the window reaches BAR contents through
// the function's own BAR dispatchers, which later regions join.
void add_pci_cfg_capability(pci::PciFunction& function) {
    // §4.1.4.9: cap.bar, cap.offset, cap.length and pci_cfg_data are
    // writable; everything else in the capability is read-only.
    auto body = virtio_cap_body(r::kCapPciCfg, 0, 0, 0, r::kPciCfgCapSize);
    std::vector<uint8_t> writable(body.size(), 0);
    writable[r::kCapBar - 2] = 0xff;
    for (uint16_t i = r::kCapOffset; i < r::kPciCfgCapSize; ++i) writable[i - 2] = 0xff;

    // The hooks own the window; the window only borrows the function, which
    // owns the hooks.
    std::array<std::shared_ptr<BusDevice>, 6> handlers;
    std::array<uint64_t, 6> sizes{};
    for (unsigned bar = 0; bar < 6; ++bar) {
        handlers[bar] = function.bar_device(bar);
        sizes[bar] = function.bar_size(bar);
    }
    auto window = std::make_shared<PciCfgWindow>(function, handlers, sizes);
    pci::CapabilityHooks hooks;
    hooks.on_read = [window](uint16_t offset, std::span<uint8_t> data) { window->on_read(offset, data); };
    hooks.on_write = [window](uint16_t offset, std::span<const uint8_t> data) { window->on_write(offset, data); };
    window->set_capability_offset(
        function.add_capability(pci::kCapIdVendorSpecific, body, writable, std::move(hooks)));
}

}  // namespace

VirtioPciTransport::VirtioPciTransport(std::shared_ptr<VirtioDevice> device, const GuestMemory& memory,
                                       MsiAllocator& msi, IoEventRegistry& io_events, VirtioPciOptions options) {
    if (!device) throw Error("virtio-pci: no device");
    check_device_shape(*device);
    const uint16_t num_queues = device->num_queues();
    function_ = std::make_shared<pci::PciFunction>(identity_for(*device, options.legacy), options.name);

    // --- BARs ---------------------------------------------------------------
    const unsigned vectors = num_queues + 1u;  // one per queue + config changes
    const uint64_t pba_offset = r::kMsixTableOffset + align_up(vectors * pci::kMsixEntrySize, 0x1000);
    const uint64_t modern_size = std::bit_ceil(pba_offset + align_up(vectors, 64) / 8);
    auto place = [&](unsigned bar, uint64_t offset, uint64_t size, std::shared_ptr<BusDevice> handler) {
        function_->add_bar_region(bar, offset, size, std::move(handler));
    };
    if (options.legacy) function_->add_bar(r::kLegacyBar, pci::BarKind::Io, r::kLegacyBarSize);
    function_->add_bar(r::kModernBar, pci::BarKind::Mmio32, modern_size);

    // --- Capabilities: the virtio structures first, so that they lead the
    // list (§4.1.4: order = preference), then MSI-X -------------------------
    const uint32_t notify_length = num_queues * r::kNotifyOffMultiplier;
    function_->add_capability(pci::kCapIdVendorSpecific,
                              virtio_cap_body(r::kCapCommonCfg, r::kModernBar, r::kCommonCfgOffset, r::kCommonCfgSize));
    auto notify = virtio_cap_body(r::kCapNotifyCfg, r::kModernBar, r::kNotifyOffset, notify_length, r::kNotifyCapSize);
    store_le(std::span(notify).subspan(r::kNotifyCapMultiplier - 2, 4), r::kNotifyOffMultiplier);
    function_->add_capability(pci::kCapIdVendorSpecific, notify);
    function_->add_capability(pci::kCapIdVendorSpecific,
                              virtio_cap_body(r::kCapIsrCfg, r::kModernBar, r::kIsrOffset, 1));
    function_->add_capability(pci::kCapIdVendorSpecific,
                              virtio_cap_body(r::kCapDeviceCfg, r::kModernBar, r::kDeviceCfgOffset, r::kDeviceCfgSize));
    add_pci_cfg_capability(*function_);

    function_->add_msix(vectors, r::kModernBar, r::kMsixTableOffset, r::kModernBar, pba_offset, msi);

    // --- The state behind the registers, and the regions in front of it ------
    core_ = std::make_shared<TransportCore>(std::move(device), memory, function_, io_events);
    const std::weak_ptr<TransportCore> weak = core_;
    if (options.legacy) place(r::kLegacyBar, 0, r::kLegacyBarSize, std::make_shared<LegacyConfigRegion>(weak));
    place(r::kModernBar, r::kCommonCfgOffset, 0x1000, std::make_shared<CommonConfigRegion>(weak));
    place(r::kModernBar, r::kIsrOffset, 0x1000, std::make_shared<IsrRegion>(weak));
    place(r::kModernBar, r::kDeviceCfgOffset, r::kDeviceCfgSize, std::make_shared<DeviceConfigRegion>(weak));
    place(r::kModernBar, r::kNotifyOffset, 0x1000, std::make_shared<NotifyRegion>(weak, r::kNotifyOffMultiplier));

    function_->set_intx(1, nullptr);  // INTA#; the host bridge wires the line

    // Doorbells follow their BAR wherever the guest (or firmware) puts it.
    const bool legacy = options.legacy;
    function_->on_bar_change([weak, legacy](unsigned bar, std::optional<uint64_t>, std::optional<uint64_t> base) {
        auto core = weak.lock();
        if (!core) return;
        if (bar == r::kModernBar)
            core->doorbells().modern_bar_moved(base, r::kNotifyOffset, r::kNotifyOffMultiplier);
        else if (bar == r::kLegacyBar && legacy)
            core->doorbells().legacy_bar_moved(base, r::kLegacyQueueNotify);
    });
}

VirtioPciTransport::~VirtioPciTransport() = default;

uint8_t VirtioPciTransport::device_status() const { return core_->status(); }
bool VirtioPciTransport::active() const { return core_->active(); }
VirtioInterrupt& VirtioPciTransport::interrupt() { return core_->interrupt(); }
void VirtioPciTransport::device_needs_reset() { core_->device_needs_reset("the device reported an unrecoverable error"); }

}  // namespace tapvm::virtio
