// tapvm's entry point: parse the command line, assemble a machine, run it.
//
// Exit status: 0 guest powered off or rebooted, or tapvm stopped by SIGINT,
// SIGTERM or SIGHUP (in order: taps and terminal restored); 1 guest crash or
// VMM failure; 2 usage error (one line on stderr, before any guest starts).
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <variant>

#include "vmm/error.h"
#include "vmm/machine/cli.h"
#include "vmm/machine/machine.h"

namespace {

constexpr const char* kLogPattern = "tapvm: %^%l%$: %v";

// While the machine is assembled, log lines are held back: a usage error must
// reach the user as exactly one line.  Once assembly succeeded they are
// replayed and logging goes straight to stderr.
std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> init_logging(const std::string& level) {
    auto held = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1024);
    held->set_pattern("tapvm: %l: %v");
    auto logger = std::make_shared<spdlog::logger>("tapvm", held);
    logger->set_level(spdlog::level::from_str(level));
    spdlog::set_default_logger(logger);
    return held;
}

void release_held_logs(const std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt>& held) {
    for (const auto& line : held->last_formatted()) std::fputs(line.c_str(), stderr);
    auto stderr_sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    stderr_sink->set_pattern(kLogPattern);
    spdlog::default_logger()->sinks() = {stderr_sink};
}

}  // namespace

int main(int argc, char** argv) {
    // A closed stdout (the console's reader went away) must cost console
    // output, not the guest: write() then fails with EPIPE instead.
    std::signal(SIGPIPE, SIG_IGN);
    tapvm::MachineConfig config;
    try {
        auto parsed = tapvm::parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
        if (auto* info = std::get_if<tapvm::CliInfo>(&parsed)) {
            std::cout << info->text;
            return 0;
        }
        config = std::get<tapvm::MachineConfig>(parsed);
    } catch (const tapvm::UsageError& e) {
        std::fprintf(stderr, "tapvm: %s\n", e.what());
        return 2;
    }
    auto held = init_logging(config.log_level);
    bool released = false;
    auto release = [&] {
        if (!released) release_held_logs(held);
        released = true;
    };

    try {
        // Before any thread exists, so that every thread blocks them.
        tapvm::ProcessSignals stop_signals;
        return tapvm::run_machine(config, release, &stop_signals);
    } catch (const tapvm::UsageError& e) {
        std::fprintf(stderr, "tapvm: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        release();  // a failure is easier to understand with what led to it
        std::fprintf(stderr, "tapvm: %s\n", e.what());
        return 1;
    }
}
