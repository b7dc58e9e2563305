#include "vmm/machine/machine.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <optional>

#include "devices/acpi_pm/acpi_sleep.h"
#include "devices/i8042/i8042.h"
#include "devices/pci/pci_host_bridge.h"
#include "devices/pvpanic/pvpanic.h"
#include "devices/serial/uart16550.h"
#include "firmware/acpi/acpi_tables.h"
#include "firmware/cpu_setup.h"
#include "firmware/e820.h"
#include "firmware/kernel_loader.h"
#include "firmware/zero_page.h"
#include "net/net_options.h"
#include "net/virtio_net_device.h"
#include "net/virtio_net_factory.h"
#include "virtio/pci/virtio_pci_transport.h"
#include "vmm/bus.h"
#include "vmm/console/console_input.h"
#include "vmm/console/console_output.h"
#include "vmm/console/terminal_mode.h"
#include "vmm/error.h"
#include "vmm/guest_memory.h"
#include "vmm/kvm/kvm_ioevents.h"
#include "vmm/kvm/kvm_irq.h"
#include "vmm/kvm/kvm_kind.h"
#include "vmm/kvm/kvm_system.h"
#include "vmm/kvm/kvm_vcpu.h"
#include "vmm/kvm/kvm_vm.h"
#include "vmm/kvm/vcpu_thread.h"
#include "vmm/kvm/vcpu_setup.h"
#include "vmm/layout.h"

namespace tapvm {

namespace {

std::vector<uint8_t> read_file(const std::string& option, const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw UsageError(option + " '" + path + "': cannot be read");
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw UsageError(option + " '" + path + "': read error");
    return bytes;
}

// The first stop wins; whoever asks later (another vCPU, the console) is
// ignored.  run() sleeps here until then.
class StopLatch {
public:
    void stop(MachineExit::Kind kind, std::string reason) {
        std::lock_guard lock(mutex_);
        if (exit_) return;
        exit_ = MachineExit{kind, std::move(reason)};
        cv_.notify_all();
    }
    MachineExit wait() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return exit_.has_value(); });
        return *exit_;
    }
    bool stopped() const {
        std::lock_guard lock(mutex_);
        return exit_.has_value();
    }

private:
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::optional<MachineExit> exit_;
};

}  // namespace

// Everything a machine owns.  Member order is construction order, and so
// (reversed) the order of teardown: vCPUs and the console stop first, the
// devices next, guest memory and the VM last.
struct Machine::Parts {
    MachineConfig config;
    StopLatch latch;

    // --- guest images and memory (no KVM yet: usage errors come first) ---
    boot::MemoryMap memory_map;
    std::optional<GuestMemory> memory;
    boot::LoadedKernel kernel;
    std::vector<uint8_t> initrd;

    // --- KVM ---
    std::optional<kvm::KvmSystem> kvm;
    kvm::KvmKind kvm_kind = kvm::KvmKind::Hardware;
    std::optional<kvm::KvmVm> vm;
    std::optional<kvm::GsiRouter> gsi_router;
    std::optional<kvm::KvmIoEventRegistry> ioevents;
    std::vector<std::unique_ptr<IrqLine>> irq_lines;  // index = GSI (0..23)

    // --- buses and devices ---
    Bus pio{"pio"};
    Bus mmio{"mmio"};
    std::optional<console::ConsoleOutput> console_out;
    std::shared_ptr<Uart16550> serial;
    std::shared_ptr<I8042> i8042;
    std::optional<pci::PciHostBridge> pci;
    std::vector<std::shared_ptr<net::VirtioNetDevice>> nics;
    std::vector<std::unique_ptr<virtio::VirtioPciTransport>> transports;

    // --- vCPUs and console ---
    std::vector<std::unique_ptr<kvm::KvmVcpu>> vcpus;
    std::optional<kvm::Buses> buses;
    std::vector<std::unique_ptr<kvm::KvmVcpuRunner>> runners;
    std::optional<kvm::VcpuThreads> threads;
    std::atomic<bool> threads_started{false};  // `threads` may be used from other threads
    std::optional<console::TerminalMode> terminal;
    std::optional<console::ConsoleInput> console_in;

    std::string final_cmdline;

    void load_images();
    void open_network_cards();
    void create_vm();
    void write_firmware();
    void create_platform_devices();
    void create_pci_devices();
    void create_vcpus();
    void start_console();
};

void Machine::Parts::load_images() {
    memory_map = boot::build_memory_map(config.memory_bytes);
    memory.emplace(memory_map.ram);
    auto kernel_bytes = read_file("--kernel", config.kernel_path);
    kernel = boot::load_kernel(*memory, kernel_bytes);
    if (config.initramfs_path) {
        initrd = read_file("--initramfs", *config.initramfs_path);
        boot::place_initrd(memory_map, kernel, initrd.size());  // throws if it cannot fit
    }
    spdlog::debug("kernel {}: {} path, entry {:#x}, end {:#x}", config.kernel_path,
                  boot::to_string(kernel.path), kernel.entry, kernel.end);
}

void Machine::Parts::open_network_cards() {
    // Taps are opened (and probed) now: a tap that cannot be used is a
    // usage error, reported before KVM exists.
    for (const auto& spec : config.net_specs) {
        auto options = net::parse_net_options(spec);
        options.pcap_append = config.restarted;
        nics.push_back(net::create_virtio_net(options));
    }
}

void Machine::Parts::create_vm() {
    kvm.emplace();
    auto report = kvm::probe_kvm_report(kvm->supported_cpuid());
    auto decision = kvm::classify_kvm(report);
    kvm_kind = decision.kind;
    spdlog::info("KVM: {} ({})", kvm::to_string(kvm_kind), decision.reason);
    if (config.cpus > kvm->max_vcpus())
        throw UsageError("--cpus " + std::to_string(config.cpus) + ": this KVM allows at most " +
                         std::to_string(kvm->max_vcpus()));
    vm.emplace(*kvm);
    vm->map_memory(*memory);
    gsi_router.emplace(*vm, kvm->max_gsis());
    for (uint32_t gsi = 0; gsi < layout::kIoapicPins; ++gsi) irq_lines.push_back(gsi_router->irq_line(gsi));
    ioevents.emplace(*vm, vm->check_extension(KVM_CAP_IOEVENTFD_ANY_LENGTH) > 0);
}

// The kernel command line: the user's, plus on a nested PVM KVM the
// parameters its emulator needs (PLATFORM.md), unless switched off.
static std::string effective_cmdline(const MachineConfig& config, kvm::KvmKind kind) {
    std::string cmdline = config.cmdline;
    bool add = config.quirks == PlatformQuirks::kOn ||
               (config.quirks == PlatformQuirks::kAuto && kind == kvm::KvmKind::Pvm);
    if (!add) return cmdline;
    auto params = kvm::guest_kernel_params(config.quirks == PlatformQuirks::kOn ? kvm::KvmKind::Pvm : kind);
    std::string added;
    for (const auto& p : params) added += (added.empty() ? "" : " ") + p;
    spdlog::info("nested PVM KVM: appending to the guest command line: {} (--platform-quirks off to disable)",
                 added);
    return cmdline.empty() ? added : cmdline + " " + added;
}

void Machine::Parts::write_firmware() {
    acpi::AcpiConfig acpi_config;
    acpi_config.num_cpus = config.cpus;
    Gpa rsdp = acpi::write_tables(*memory, acpi_config);
    final_cmdline = effective_cmdline(config, kvm_kind);
    auto data = boot::write_boot_data(*memory, kernel, memory_map, final_cmdline, initrd, rsdp);
    initrd = {};  // the guest has its copy
    if (data.initrd)
        spdlog::debug("initramfs: {} bytes at {:#x}", data.initrd->size, data.initrd->address);
}

void Machine::Parts::create_platform_devices() {
    console_out.emplace(STDOUT_FILENO);
    serial = std::make_shared<Uart16550>(
        irq_lines[layout::kCom1Irq].get(),
        [this](std::span<const uint8_t> bytes) { console_out->write(bytes); });
    pio.insert(layout::kCom1Base, 8, serial);

    auto reboot = [this] { latch.stop(MachineExit::Kind::kReboot, "guest reset the machine"); };
    i8042 = std::make_shared<I8042>(irq_lines[layout::kI8042Irq].get(), irq_lines[layout::kI8042AuxIrq].get(), reboot);
    pio.insert(layout::kI8042Data, 1, i8042->data_port());
    pio.insert(layout::kI8042Command, 1, i8042->command_port());

    auto poweroff = [this] { latch.stop(MachineExit::Kind::kPowerOff, "guest powered off"); };
    pio.insert(layout::kAcpiSleepControl, 3, std::make_shared<AcpiSleep>(poweroff, reboot));

    pio.insert(layout::kPvpanicPort, 1, std::make_shared<PvPanic>([this](uint8_t events) {
        // The kernel reports here before panic=-1 reboots it, so the panic
        // is what ends tapvm, not the reboot that follows.
        spdlog::debug("pvpanic events {:#x}", events);
        latch.stop(MachineExit::Kind::kCrash, "guest kernel panic");
    }));
}

void Machine::Parts::create_pci_devices() {
    pci.emplace(pci::PciBuses{&mmio, &pio}, [this](uint32_t gsi) -> IrqLine* {
        return gsi < irq_lines.size() ? irq_lines[gsi].get() : nullptr;
    });
    pio.insert(layout::kPciConfigAddress, pci::PciConfigPorts::kSize, pci->config_ports());
    mmio.insert(layout::kEcamStart, layout::kEcamSize, pci->ecam());

    for (const auto& nic : nics) {
        virtio::VirtioPciOptions transport_options;
        transport_options.legacy = nic->offers_legacy_interface();
        transport_options.name = "virtio-net " + nic->tap().name();
        auto transport = std::make_unique<virtio::VirtioPciTransport>(nic, *memory, *gsi_router, *ioevents,
                                                                      transport_options);
        nic->on_needs_reset = [t = transport.get()] { t->device_needs_reset(); };
        unsigned slot = pci->add_device(transport->function());
        spdlog::info("virtio-net {} on PCI 00:{:02x}.0, tap {}", nic->mac().to_string(), slot, nic->tap().name());
        transports.push_back(std::move(transport));
    }
}

void Machine::Parts::create_vcpus() {
    auto entry = boot::setup_long_mode(*memory, kernel.entry);
    kvm::CpuidOptions cpuid_options;
    cpuid_options.tsc_deadline = kvm->check_extension(KVM_CAP_TSC_DEADLINE_TIMER) > 0;
    for (unsigned id = 0; id < config.cpus; ++id) {
        // APIC ID = vCPU index, as the MADT says.
        auto vcpu = vm->create_vcpu(id);
        kvm::configure_vcpu(*vcpu, kvm->supported_cpuid(), kvm::CpuTopology{id, config.cpus}, cpuid_options);
        if (id == 0) kvm::enter_long_mode(*vcpu, entry);  // APs wait for INIT/SIPI
        vcpus.push_back(std::move(vcpu));
    }
}

void Machine::Parts::start_console() {
    if (::isatty(STDIN_FILENO)) terminal.emplace(STDIN_FILENO);
    auto options = console::ConsoleInput::default_options(STDIN_FILENO);
    options.escapes = options.escapes && config.console_escape;
    console_in.emplace(
        STDIN_FILENO, [this](std::span<const uint8_t> bytes) { return serial->enqueue_input(bytes); },
        [this] { latch.stop(MachineExit::Kind::kQuit, "quit from the console (Ctrl-A x)"); }, options);
    serial->set_input_space_callback([this] { console_in->notify_space_available(); });
}

Machine::Machine(const MachineConfig& config) : parts_(std::make_unique<Parts>()) {
    auto& p = *parts_;
    p.config = config;
    // Everything the user can get wrong is checked before /dev/kvm is opened.
    p.load_images();
    p.open_network_cards();
    p.create_vm();
    p.write_firmware();
    p.create_platform_devices();
    p.create_pci_devices();
    p.create_vcpus();
}

Machine::~Machine() = default;

MachineExit Machine::run() {
    auto& p = *parts_;
    p.start_console();
    spdlog::info("booting {} with {} vCPU(s), {} MiB, command line: {}", p.config.kernel_path, p.config.cpus,
                 p.config.memory_bytes >> 20, p.final_cmdline);
    p.buses.emplace(p.pio, p.mmio);
    std::vector<kvm::VcpuRunner*> runners;
    for (auto& vcpu : p.vcpus) {
        p.runners.push_back(std::make_unique<kvm::KvmVcpuRunner>(*vcpu, *p.buses, *p.memory));
        runners.push_back(p.runners.back().get());
    }
    p.threads.emplace(runners, [&p](const kvm::TerminalEvent& event) {
        std::visit(
            [&p](const auto& a) {
                using T = std::decay_t<decltype(a)>;
                if constexpr (std::is_same_v<T, kvm::GuestPowerOff>)
                    p.latch.stop(MachineExit::Kind::kPowerOff, "guest powered off");
                else if constexpr (std::is_same_v<T, kvm::GuestReboot>)
                    p.latch.stop(MachineExit::Kind::kReboot, "guest rebooted");
                else if constexpr (std::is_same_v<T, kvm::GuestCrash>)
                    p.latch.stop(MachineExit::Kind::kCrash, a.reason);
                else if constexpr (std::is_same_v<T, kvm::Fatal>)
                    p.latch.stop(MachineExit::Kind::kFailure, a.message);
            },
            event.action);
    });
    p.threads->start();
    p.threads_started.store(true, std::memory_order_release);
    MachineExit exit = p.latch.wait();
    // Devices stopping the machine (power-off register, i8042 reset, pvpanic,
    // console quit) land here too: stop every vCPU and wait for them.
    p.threads->stop(kvm::Continue{});
    p.threads->join();
    if (p.console_in) p.console_in->stop();
    p.serial->flush_output();
    for (const auto& nic : p.nics) spdlog::debug("virtio-net {} stats: {}", nic->mac().to_string(), nic->stats_json().dump());
    return exit;
}

int exit_status(const MachineExit& exit) {
    switch (exit.kind) {
        case MachineExit::Kind::kPowerOff:
        case MachineExit::Kind::kReboot:
        case MachineExit::Kind::kQuit:
            return 0;
        case MachineExit::Kind::kCrash:
        case MachineExit::Kind::kFailure:
            return 1;
    }
    return 1;
}

void Machine::request_stop(std::string reason) { parts_->latch.stop(MachineExit::Kind::kQuit, std::move(reason)); }

void Machine::request_state_report() {
    auto& p = *parts_;
    if (!p.threads_started.load(std::memory_order_acquire)) {
        spdlog::info("state report: the guest is not running yet");
        return;
    }
    spdlog::info("state report: {} vCPU(s), {} NIC(s)", p.config.cpus, p.nics.size());
    for (const auto& nic : p.nics) spdlog::info("virtio-net {} stats: {}", nic->mac().to_string(), nic->stats_json().dump());
    p.threads->request_state_report();  // each vCPU logs its own line from its thread
}

int run_machine(const MachineConfig& config, const std::function<void()>& on_assembled, ProcessSignals* signals) {
    for (bool first = true;; first = false) {
        MachineExit exit;
        {
            MachineConfig this_boot = config;
            this_boot.restarted = !first;
            Machine machine(this_boot);
            if (first && on_assembled) on_assembled();
            if (signals)
            if (signals) {
                signals->on_stop([&machine](int sig) {
                    machine.request_stop(std::string("stopped by ") + ::strsignal(sig));
                });
                signals->on_report([&machine] { machine.request_state_report(); });
            }
            exit = machine.run();
            if (signals) {
                signals->on_stop({});
                signals->on_report({});
            }
        }
        if (exit.kind == MachineExit::Kind::kReboot && config.on_reboot == RebootAction::kRestart &&
            !(signals && signals->received())) {
            spdlog::info("guest rebooted: starting it again (--on-reboot restart)");
            continue;
        }
        if (exit_status(exit) == 0) spdlog::info("{}", exit.reason);
        else spdlog::error("{}", exit.reason);
        return exit_status(exit);
    }
}

}  // namespace tapvm
