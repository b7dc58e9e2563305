#include "devices/pci/pci_function.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>

#include "devices/pci/msix.h"
#include "vmm/error.h"
#include "vmm/log_limiter.h"

namespace tapvm::pci {

namespace {

constexpr uint64_t k4GiB = 1ull << 32;
constexpr uint64_t kIoSpaceSize = 0x10000;  // x86 port space
// x86-64's architectural MAXPHYADDR limit: no 64-bit BAR can decode above it.
constexpr uint64_t kMaxPhysAddress = 1ull << 52;
constexpr uint64_t kMinMemBarSize = 16;     // PCI 3.0 §6.2.5.1: 4 type/flag bits
constexpr uint64_t kMinIoBarSize = 4;       // 2 flag bits
constexpr uint64_t kMaxMmio32BarSize = 1ull << 31;

uint16_t bar_offset(unsigned slot) { return static_cast<uint16_t>(kBar0 + 4 * slot); }

// True when [address, address + size) is a range the BAR can decode: inside
// its address space, and not touching the top of the 32-bit space, where an
// all-ones sizing write leaves a BAR while the guest probes it.
bool range_is_sane(BarKind kind, uint64_t address, uint64_t size) {
    uint64_t end = address + size;
    if (address == 0 || end < address) return false;
    switch (kind) {
        case BarKind::Io: return end <= kIoSpaceSize;
        case BarKind::Mmio32: return end < k4GiB;
        case BarKind::Mmio64: return end < k4GiB || (address >= k4GiB && end <= kMaxPhysAddress);
    }
    return false;
}

}  // namespace

PciFunction::PciFunction(const PciIdentity& identity, std::string name) : name_(std::move(name)) {
    init_header(identity);
}

PciFunction::~PciFunction() {
    for (auto& bar : bars_) {
        if (!bar || !bar->mapped) continue;
        if (Bus* bus = bus_for(*bar)) bus->remove(*bar->mapped);
    }
}

void PciFunction::init_header(const PciIdentity& id) {
    set_config_word(kVendorId, id.vendor_id);
    set_config_word(kDeviceId, id.device_id);
    config_[kRevisionId] = id.revision;
    config_[kProgIf] = id.prog_if;
    config_[kSubclass] = id.subclass;
    config_[kClassCode] = id.class_code;
    config_[kHeaderType] = kHeaderTypeNormal;
    set_config_word(kSubsystemVendorId, id.subsystem_vendor_id);
    set_config_word(kSubsystemId, id.subsystem_id);

    // PCI 3.0 §6.2.2: the command bits this model implements.
    constexpr uint16_t command_writable =
        kCommandIoSpace | kCommandMemorySpace | kCommandBusMaster | kCommandIntxDisable;
    writable_[kCommand] = command_writable & 0xff;
    writable_[kCommand + 1] = command_writable >> 8;
    // §6.2.3: error bits are cleared by writing one.
    write_one_to_clear_[kStatus] = kStatusErrorBitsW1c & 0xff;
    write_one_to_clear_[kStatus + 1] = kStatusErrorBitsW1c >> 8;
    // §6.2.4: Cache Line Size and Interrupt Line are plain read/write storage.
    writable_[kCacheLineSize] = 0xff;
    writable_[kInterruptLine] = 0xff;
}

// --- Small accessors (mutex_ held, or during construction) ---------------------

uint16_t PciFunction::config_word(uint16_t offset) const {
    return static_cast<uint16_t>(config_[offset] | config_[offset + 1] << 8);
}

void PciFunction::set_config_word(uint16_t offset, uint16_t value) {
    config_[offset] = value & 0xff;
    config_[offset + 1] = value >> 8;
}

uint32_t PciFunction::config_dword(uint16_t offset) const {
    return uint32_t(config_word(offset)) | uint32_t(config_word(offset + 2)) << 16;
}

void PciFunction::set_config_dword(uint16_t offset, uint32_t value) {
    set_config_word(offset, value & 0xffff);
    set_config_word(offset + 2, value >> 16);
}

PciFunction::Bar* PciFunction::bar_slot(unsigned bar) {
    return bar < kNumBars && bars_[bar] ? &*bars_[bar] : nullptr;
}

const PciFunction::Bar* PciFunction::bar_slot(unsigned bar) const {
    return bar < kNumBars && bars_[bar] ? &*bars_[bar] : nullptr;
}

// --- Assembly -----------------------------------------------------------------

void PciFunction::add_bar(unsigned index, BarKind kind, uint64_t size, bool prefetchable) {
    std::lock_guard lock(mutex_);
    unsigned slots = kind == BarKind::Mmio64 ? 2 : 1;
    if (index + slots > kNumBars)
        throw Error(name_ + ": BAR " + std::to_string(index) + " does not fit the header");
    for (unsigned s = index; s < index + slots; ++s) {
        bool high_half_of_previous =
            s > 0 && bars_[s - 1] && bars_[s - 1]->kind == BarKind::Mmio64;
        if (bars_[s] || high_half_of_previous)
            throw Error(name_ + ": BAR slot " + std::to_string(s) + " is already in use");
    }
    uint64_t min_size = kind == BarKind::Io ? kMinIoBarSize : kMinMemBarSize;
    uint64_t max_size = kind == BarKind::Io       ? kIoSpaceSize
                        : kind == BarKind::Mmio32 ? kMaxMmio32BarSize
                                                  : kMaxPhysAddress / 2;
    if (!std::has_single_bit(size) || size < min_size || size > max_size)
        throw Error(name_ + ": BAR " + std::to_string(index) + " size " + std::to_string(size) +
                    " is not a power of two in [" + std::to_string(min_size) + ", " +
                    std::to_string(max_size) + "]");
    if (kind == BarKind::Io && prefetchable)
        throw Error(name_ + ": an I/O BAR cannot be prefetchable");

    Bar bar;
    bar.kind = kind;
    bar.size = size;
    bar.prefetchable = prefetchable;
    bar.dispatcher = std::make_shared<BarDispatcher>(name_ + " BAR" + std::to_string(index), size);
    // The BAR registers take any write; reload_bar_addresses() then forces
    // the hard-wired bits back.
    std::fill_n(writable_.begin() + bar_offset(index), 4 * slots, 0xff);
    write_bar_registers(index, bar);
    bars_[index] = std::move(bar);
}

void PciFunction::add_bar_region(unsigned bar, uint64_t offset, uint64_t size,
                                 std::shared_ptr<BusDevice> handler) {
    std::lock_guard lock(mutex_);
    Bar* b = bar_slot(bar);
    if (!b) throw Error(name_ + ": no BAR " + std::to_string(bar) + " to place a region in");
    b->dispatcher->add_region(offset, size, std::move(handler));
}

uint8_t PciFunction::add_capability(uint8_t cap_id, std::span<const uint8_t> body,
                                    std::span<const uint8_t> writable_mask, CapabilityHooks hooks) {
    std::lock_guard lock(mutex_);
    size_t length = 2 + body.size();
    size_t offset = next_capability_offset_;
    if (offset + length > kConfigSpaceSize)
        throw Error(name_ + ": capability " + std::to_string(cap_id) +
                    " does not fit in configuration space");
    if (writable_mask.size() > body.size())
        throw Error(name_ + ": capability writable mask is longer than its body");

    config_[offset] = cap_id;
    config_[offset + 1] = 0;  // end of list until another capability follows
    std::copy(body.begin(), body.end(), config_.begin() + offset + 2);
    std::copy(writable_mask.begin(), writable_mask.end(), writable_.begin() + offset + 2);
    // PCI 3.0 §6.7: the list starts at the Capabilities Pointer; each Next
    // pointer is dword aligned, 0 ends the list.
    if (capabilities_.empty())
        config_[kCapabilitiesPointer] = static_cast<uint8_t>(offset);
    else
        config_[capabilities_.back().offset + 1] = static_cast<uint8_t>(offset);
    set_config_word(kStatus, config_word(kStatus) | kStatusCapabilityList);

    capabilities_.push_back(Capability{static_cast<uint8_t>(offset),
                                       static_cast<uint8_t>(length), std::move(hooks)});
    next_capability_offset_ = static_cast<uint16_t>((offset + length + 3) & ~size_t{3});
    return static_cast<uint8_t>(offset);
}

MsixTable& PciFunction::add_msix(unsigned num_vectors, unsigned table_bar, uint64_t table_offset,
                                 unsigned pba_bar, uint64_t pba_offset, MsiAllocator& allocator) {
    if (msix_) throw Error(name_ + ": MSI-X added twice");
    for (auto [bar, offset] : {std::pair{table_bar, table_offset}, std::pair{pba_bar, pba_offset}}) {
        auto kind = bar_kind(bar);
        if (!kind || *kind == BarKind::Io)
            throw Error(name_ + ": MSI-X structures need a memory BAR, BAR " + std::to_string(bar) +
                        " is not one");
        // §6.8.2: the low 3 bits of the offset registers hold the BIR.
        if (offset % 8 != 0 || offset > 0xfffffff8)
            throw Error(name_ + ": MSI-X structure offset must be 8-byte aligned and 32-bit");
    }
    auto table = MsixTable::create(num_vectors, allocator);
    add_bar_region(table_bar, table_offset, table->table_bytes(), table->table_region());
    add_bar_region(pba_bar, pba_offset, table->pba_bytes(), table->pba_region());

    uint16_t control = static_cast<uint16_t>(num_vectors - 1) & kMsixControlTableSizeMask;
    uint32_t table_reg = static_cast<uint32_t>(table_offset) | table_bar;
    uint32_t pba_reg = static_cast<uint32_t>(pba_offset) | pba_bar;
    const uint8_t body[kMsixCapabilitySize - 2] = {
        uint8_t(control), uint8_t(control >> 8),
        uint8_t(table_reg), uint8_t(table_reg >> 8), uint8_t(table_reg >> 16), uint8_t(table_reg >> 24),
        uint8_t(pba_reg), uint8_t(pba_reg >> 8), uint8_t(pba_reg >> 16), uint8_t(pba_reg >> 24)};
    // Only Enable and Function Mask (Message Control bits 15, 14) are writable.
    const uint8_t writable[] = {0x00, (kMsixControlEnable | kMsixControlFunctionMask) >> 8};
    CapabilityHooks hooks;
    hooks.on_write = [this](uint16_t, std::span<const uint8_t>) { msix_control_written(); };
    uint8_t cap = add_capability(kCapIdMsix, body, writable, std::move(hooks));

    std::lock_guard lock(mutex_);
    msix_ = std::move(table);
    msix_capability_ = cap;
    return *msix_;
}

void PciFunction::set_intx(unsigned pin, IrqLine* line) {
    if (pin < 1 || pin > 4) throw Error(name_ + ": INTx pin must be 1..4 (INTA#..INTD#)");
    std::lock_guard lock(mutex_);
    config_[kInterruptPin] = static_cast<uint8_t>(pin);
    intx_line_ = line;
    intx_driven_ = false;
    drive_intx();
}

void PciFunction::connect_intx(IrqLine* line) {
    std::lock_guard lock(mutex_);
    intx_line_ = line;
    intx_driven_ = false;
    drive_intx();
}

void PciFunction::set_interrupt_line(uint8_t gsi) {
    std::lock_guard lock(mutex_);
    config_[kInterruptLine] = gsi;
}

void PciFunction::on_bar_change(BarChangeObserver observer) {
    std::lock_guard serial(write_serializer_);
    bar_observers_.push_back(std::move(observer));
}

void PciFunction::on_config_write(ConfigWriteObserver observer) {
    std::lock_guard serial(write_serializer_);
    write_observers_.push_back(std::move(observer));
}

// --- BAR placement and mapping ---------------------------------------------------

void PciFunction::attach(PciBuses buses) {
    std::lock_guard serial(write_serializer_);
    std::vector<BarChange> changes;
    {
        std::lock_guard lock(mutex_);
        buses_ = buses;
        update_mappings(changes);
    }
    for (const auto& c : changes)
        for (auto& observer : bar_observers_) observer(c.bar, c.old_base, c.new_base);
}

void PciFunction::set_bar_address(unsigned bar, uint64_t address) {
    std::lock_guard serial(write_serializer_);
    std::vector<BarChange> changes;
    {
        std::lock_guard lock(mutex_);
        Bar* b = bar_slot(bar);
        if (!b) throw Error(name_ + ": no BAR " + std::to_string(bar));
        if (address % b->size != 0 || !range_is_sane(b->kind, address, b->size))
            throw Error(name_ + ": BAR " + std::to_string(bar) + " cannot be placed at " +
                        std::to_string(address));
        b->address = address;
        write_bar_registers(bar, *b);
        update_mappings(changes);
    }
    for (const auto& c : changes)
        for (auto& observer : bar_observers_) observer(c.bar, c.old_base, c.new_base);
}

void PciFunction::set_command(uint16_t command) {
    const uint8_t bytes[2] = {uint8_t(command), uint8_t(command >> 8)};
    write_config(kCommand, bytes);
}

void PciFunction::write_bar_registers(unsigned index, const Bar& bar) {
    uint32_t low = static_cast<uint32_t>(bar.address);
    switch (bar.kind) {
        case BarKind::Io: low = (low & kBarIoAddressMask) | kBarIoSpace; break;
        case BarKind::Mmio32:
        case BarKind::Mmio64:
            low &= kBarMemAddressMask;
            if (bar.kind == BarKind::Mmio64) low |= kBarMemType64;
            if (bar.prefetchable) low |= kBarMemPrefetchable;
            break;
    }
    set_config_dword(bar_offset(index), low);
    if (bar.kind == BarKind::Mmio64)
        set_config_dword(bar_offset(index + 1), static_cast<uint32_t>(bar.address >> 32));
}

// After a guest write into the BAR registers: the address bits below the
// BAR's size are hard-wired to zero (that is what makes sizing work, PCI 3.0
// §6.2.5.1), and the type bits are read-only.
void PciFunction::reload_bar_addresses() {
    for (unsigned i = 0; i < kNumBars; ++i) {
        Bar* b = bar_slot(i);
        if (!b) continue;
        uint64_t raw = config_dword(bar_offset(i));
        if (b->kind == BarKind::Mmio64) raw |= uint64_t(config_dword(bar_offset(i + 1))) << 32;
        uint64_t address = raw & ~(b->size - 1);
        address &= b->kind == BarKind::Io ? kBarIoAddressMask : ~uint64_t{0xf};
        b->address = address;
        write_bar_registers(i, *b);
    }
}

Bus* PciFunction::bus_for(const Bar& bar) const {
    return bar.kind == BarKind::Io ? buses_.pio : buses_.mmio;
}

bool PciFunction::bar_decodable(const Bar& bar) const {
    uint16_t decode = bar.kind == BarKind::Io ? kCommandIoSpace : kCommandMemorySpace;
    return bus_for(bar) && (config_word(kCommand) & decode) &&
           range_is_sane(bar.kind, bar.address, bar.size);
}

void PciFunction::update_mappings(std::vector<BarChange>& changes) {
    for (unsigned i = 0; i < kNumBars; ++i) {
        Bar* b = bar_slot(i);
        if (!b) continue;
        std::optional<uint64_t> wanted;
        if (bar_decodable(*b)) wanted = b->address;
        if (wanted == b->mapped) continue;

        std::optional<uint64_t> old = b->mapped;
        Bus* bus = bus_for(*b);
        if (old && bus) bus->remove(*old);
        b->mapped.reset();
        if (wanted) {
            try {
                bus->insert(*wanted, b->size, b->dispatcher);
                b->mapped = wanted;
            } catch (const Error& e) {
                // The guest placed the BAR on top of something else; leave it
                // unmapped until it moves it somewhere sensible.
                log_limited(guest_log_, spdlog::level::warn, "{}: BAR {} at {:#x} not mapped: {}", name_, i, *wanted,
                            e.what());
            }
        }
        if (b->mapped != old) changes.push_back(BarChange{i, old, b->mapped});
    }
}

// --- INTx ----------------------------------------------------------------------

void PciFunction::drive_intx() {
    bool msix_enabled = msix_capability_ != 0 &&
                        (config_word(msix_capability_ + kMsixMessageControl) & kMsixControlEnable);
    bool level = intx_level_ && !(config_word(kCommand) & kCommandIntxDisable) && !msix_enabled;
    if (!intx_line_ || level == intx_driven_) return;
    intx_line_->set_level(level);
    intx_driven_ = level;
}

void PciFunction::set_intx_level(bool asserted) {
    std::lock_guard lock(mutex_);
    intx_level_ = asserted;
    // PCI 2.3 Interrupt Status reflects the device's condition whatever
    // Interrupt Disable says.
    uint16_t status = config_word(kStatus);
    set_config_word(kStatus, asserted ? (status | kStatusInterrupt) : (status & ~kStatusInterrupt));
    drive_intx();
}

bool PciFunction::intx_level() const {
    std::lock_guard lock(mutex_);
    return intx_level_;
}

void PciFunction::msix_control_written() {
    std::shared_ptr<MsixTable> table;
    uint16_t control = 0;
    {
        std::lock_guard lock(mutex_);
        table = msix_;
        if (!table) return;
        control = config_word(msix_capability_ + kMsixMessageControl);
        drive_intx();  // MSI-X Enable gates INTx
    }
    table->set_control(control & kMsixControlEnable, control & kMsixControlFunctionMask);
}

// --- Configuration accesses ------------------------------------------------------

void PciFunction::store_guest_bytes(uint16_t offset, std::span<const uint8_t> data) {
    for (size_t i = 0; i < data.size(); ++i) {
        size_t at = offset + i;
        uint8_t value = data[i];
        uint8_t stored = static_cast<uint8_t>((config_[at] & ~writable_[at]) | (value & writable_[at]));
        stored &= static_cast<uint8_t>(~(value & write_one_to_clear_[at]));
        config_[at] = stored;
    }
}

void PciFunction::read_config(uint16_t offset, std::span<uint8_t> data) {
    if (offset >= kExtConfigSpaceSize || data.size() > size_t(kExtConfigSpaceSize - offset)) {
        std::fill(data.begin(), data.end(), 0xff);
        return;
    }
    peek_config(offset, data);
    // Let capabilities with live contents fill in their part.
    for (const Capability& cap : capabilities_) {
        if (!cap.hooks.on_read) continue;
        size_t lo = std::max<size_t>(offset, cap.offset);
        size_t hi = std::min<size_t>(offset + data.size(), cap.offset + cap.length);
        if (lo >= hi) continue;
        cap.hooks.on_read(static_cast<uint16_t>(lo - cap.offset), data.subspan(lo - offset, hi - lo));
    }
}

void PciFunction::write_config(uint16_t offset, std::span<const uint8_t> data) {
    if (offset >= kExtConfigSpaceSize || data.size() > size_t(kExtConfigSpaceSize - offset)) return;
    std::lock_guard serial(write_serializer_);
    std::vector<BarChange> changes;
    size_t end = std::min<size_t>(offset + data.size(), kConfigSpaceSize);
    if (offset < kConfigSpaceSize) {
        std::lock_guard lock(mutex_);
        store_guest_bytes(offset, data.first(end - offset));
        if (offset < bar_offset(kNumBars) && end > kBar0) reload_bar_addresses();
        drive_intx();  // Interrupt Disable may have changed
        update_mappings(changes);
    }
    for (const Capability& cap : capabilities_) {
        if (!cap.hooks.on_write) continue;
        size_t lo = std::max<size_t>(offset, cap.offset);
        size_t hi = std::min<size_t>(end, cap.offset + cap.length);
        if (lo >= hi) continue;
        cap.hooks.on_write(static_cast<uint16_t>(lo - cap.offset), data.subspan(lo - offset, hi - lo));
    }
    for (const auto& c : changes)
        for (auto& observer : bar_observers_) observer(c.bar, c.old_base, c.new_base);
    for (auto& observer : write_observers_) observer(offset, data);
}

void PciFunction::peek_config(uint16_t offset, std::span<uint8_t> data) const {
    std::fill(data.begin(), data.end(), 0);  // extended space reads as zero
    if (offset >= kConfigSpaceSize) return;
    size_t n = std::min<size_t>(data.size(), kConfigSpaceSize - offset);
    std::lock_guard lock(mutex_);
    std::copy_n(config_.begin() + offset, n, data.begin());
}

void PciFunction::poke_config(uint16_t offset, std::span<const uint8_t> data) {
    if (offset >= kConfigSpaceSize) return;
    size_t n = std::min<size_t>(data.size(), kConfigSpaceSize - offset);
    std::lock_guard lock(mutex_);
    std::copy_n(data.begin(), n, config_.begin() + offset);
}

// --- State -----------------------------------------------------------------------

std::optional<uint64_t> PciFunction::bar_address(unsigned bar) const {
    std::lock_guard lock(mutex_);
    const Bar* b = bar_slot(bar);
    return b ? b->mapped : std::nullopt;
}

std::optional<uint64_t> PciFunction::bar_register_address(unsigned bar) const {
    std::lock_guard lock(mutex_);
    const Bar* b = bar_slot(bar);
    return b ? std::optional(b->address) : std::nullopt;
}

std::optional<BarKind> PciFunction::bar_kind(unsigned bar) const {
    std::lock_guard lock(mutex_);
    const Bar* b = bar_slot(bar);
    return b ? std::optional(b->kind) : std::nullopt;
}

uint64_t PciFunction::bar_size(unsigned bar) const {
    std::lock_guard lock(mutex_);
    const Bar* b = bar_slot(bar);
    return b ? b->size : 0;
}

std::shared_ptr<BarDispatcher> PciFunction::bar_device(unsigned bar) const {
    std::lock_guard lock(mutex_);
    const Bar* b = bar_slot(bar);
    return b ? b->dispatcher : nullptr;
}

uint16_t PciFunction::command() const {
    std::lock_guard lock(mutex_);
    return config_word(kCommand);
}

uint8_t PciFunction::interrupt_pin() const {
    std::lock_guard lock(mutex_);
    return config_[kInterruptPin];
}

uint8_t PciFunction::interrupt_line() const {
    std::lock_guard lock(mutex_);
    return config_[kInterruptLine];
}

}  // namespace tapvm::pci
