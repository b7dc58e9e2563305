// The console wired to the UART the way the machine wires them (see
// vmm/console/console_input.h): host input larger than the FIFO reaches the
// guest whole and in order, paced by the guest's reads; guest output reaches
// the host descriptor.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "devices/serial/uart16550.h"
#include "devices/serial/uart_registers.h"
#include "support/fake_irq.h"
#include "vmm/console/console_input.h"
#include "vmm/console/console_output.h"
#include "vmm/unique_fd.h"

namespace tapvm {
namespace {

using namespace uart;
using namespace std::chrono_literals;

uint8_t in(Uart16550& uart, uint8_t reg) {
    uint8_t v = 0;
    uart.read(reg, std::span<uint8_t>(&v, 1));
    return v;
}
void out(Uart16550& uart, uint8_t reg, uint8_t v) { uart.write(reg, std::span<const uint8_t>(&v, 1)); }

TEST(SerialConsoleWiringTest, HostInputFlowsThroughTheFifoWithoutLoss) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    UniqueFd host_read(fds[0]), host_write(fds[1]);

    testing::FakeIrqLine irq;
    Uart16550 uart(&irq, nullptr);
    console::ConsoleInput input(
        host_read.get(), [&](auto bytes) { return uart.enqueue_input(bytes); }, nullptr,
        console::ConsoleInput::default_options(host_read.get()));
    uart.set_input_space_callback([&] { input.notify_space_available(); });

    out(uart, kFcr, kFcrEnable);
    out(uart, kMcr, kMcrOut2);
    out(uart, kIer, kIerRdi);

    std::string message;
    for (int i = 0; i < 3000; ++i) message.push_back(static_cast<char>(' ' + i % 90));
    std::thread typist([&] { ASSERT_EQ(::write(host_write.get(), message.data(), message.size()),
                                       static_cast<ssize_t>(message.size())); });

    // The "guest": waits for its interrupt, then drains the FIFO.
    std::string received;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (received.size() < message.size() && std::chrono::steady_clock::now() < deadline) {
        if (!irq.level()) {
            std::this_thread::sleep_for(100us);
            continue;
        }
        while (in(uart, kLsr) & kLsrDr) received.push_back(static_cast<char>(in(uart, kRbr)));
    }
    typist.join();
    EXPECT_EQ(received, message);
    EXPECT_FALSE(irq.level());
}

TEST(SerialConsoleWiringTest, GuestOutputReachesTheHostDescriptor) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    UniqueFd host_read(fds[0]), host_write(fds[1]);
    console::ConsoleOutput output(host_write.get());
    Uart16550 uart(nullptr, [&](auto bytes) { output.write(bytes); });
    for (char c : std::string("login: ")) out(uart, kThr, static_cast<uint8_t>(c));
    char buf[16] = {};
    ASSERT_EQ(::read(host_read.get(), buf, 7), 7);
    EXPECT_EQ(std::string(buf), "login: ");
}

}  // namespace
}  // namespace tapvm
