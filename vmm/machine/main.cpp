// tapvm's entry point: parse the command line, assemble a machine, run it.
//
// Exit status: 0 guest powered off or rebooted; 1 guest crash or VMM
// failure; 2 usage error (one line on stderr, before any guest starts).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>
#include <variant>

#include "vmm/error.h"
#include "vmm/machine/cli.h"
#include "vmm/machine/machine.h"

namespace {

void init_logging(const std::string& level) {
    auto logger = spdlog::stderr_color_mt("tapvm");
    logger->set_pattern("tapvm: %^%l%$: %v");
    logger->set_level(spdlog::level::from_str(level));
    spdlog::set_default_logger(logger);
}

}  // namespace

int main(int argc, char** argv) {
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
    init_logging(config.log_level);

    try {
        return tapvm::run_machine(config);
    } catch (const tapvm::UsageError& e) {
        std::fprintf(stderr, "tapvm: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tapvm: %s\n", e.what());
        return 1;
    }
}
