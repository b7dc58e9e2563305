// The tapvm command line.  Every mistake is a UsageError with one line that
// names the problem, before any guest state exists.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "vmm/machine/machine_config.h"

namespace tapvm {

// --help / --version: text to print on stdout, exit status 0.
struct CliInfo {
    std::string text;
};

// Parses argv.  Throws UsageError on any error.
std::variant<MachineConfig, CliInfo> parse_command_line(const std::vector<std::string>& args);

// "512M", "1G", "1536" (MiB), "8G", "2048K": binary units, MiB granularity.
// Throws UsageError for anything else or outside [kMinMemory, kMaxMemory].
uint64_t parse_memory_size(const std::string& text);

inline constexpr uint64_t kMinMemory = 64ull << 20;
inline constexpr uint64_t kMaxMemory = 1ull << 40;  // 1 TiB
inline constexpr unsigned kMaxCpus = 64;              // xAPIC ids and the MADT builder

}  // namespace tapvm
