// The tables as ACPICA sees them.  ACPICA is the interpreter inside Linux;
// its tools (Debian's acpica-tools, a required test tool installed by
// scripts/setup.sh) check what byte-level tests cannot:
//   iasl -d      disassembles each table (RSDP excepted: it has no table
//                header and iasl refuses it; acpi_tables_test covers it);
//   iasl         recompiles the disassembled DSDT, validating every
//                predefined name (_HID, _CRS, _PRT, _S5_) against the spec;
//   acpiexec     loads the DSDT/FADT/MADT/MCFG into a namespace and runs the
//                same code Linux runs to evaluate \_S5_, decode _CRS
//                (AcpiGetCurrentResources) and read _PRT
//                (AcpiGetIrqRoutingTable).
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "firmware/acpi/acpi_tables.h"
#include "firmware/acpi/madt.h"
#include "vmm/layout.h"

namespace tapvm::acpi {
namespace {

namespace fs = std::filesystem;

struct RunResult {
    int status = -1;  // exit status, -1 if it did not exit normally
    std::string output;  // stdout and stderr
};

RunResult run(const std::string& command) {
    RunResult r;
    FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
    if (!pipe) return r;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.output.append(buf, n);
    int rc = ::pclose(pipe);
    if (rc != -1 && WIFEXITED(rc)) r.status = WEXITSTATUS(rc);
    return r;
}

std::optional<fs::path> find_on_path(const std::string& tool) {
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path ? path : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        fs::path candidate = fs::path(dir.empty() ? "." : dir) / tool;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return std::nullopt;
}

size_t count(const std::string& hay, const std::string& needle) {
    size_t n = 0;
    for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
    return n;
}

std::string file_name(const PlacedTable& t) { return std::string(t.signature) + ".dat"; }

// One "[NN] Title" block of acpiexec's `resources` output, with its
// "Key : Value" lines, tagged with the object being evaluated (_PRT, _CRS).
struct Block {
    std::string section;
    std::string title;
    std::map<std::string, std::string> fields;
    uint64_t hex(const std::string& key) const { return std::stoull(fields.at(key), nullptr, 16); }
};

std::vector<Block> parse_resources(const std::string& output) {
    static const std::regex kSection(R"(^Evaluating (\w+))");
    static const std::regex kTitle(R"(^\[([0-9A-F]{2})\] (.*\S))");
    static const std::regex kDebug(R"(^\s*\w+-\d{4} \[)");  // ACPICA's trace lines
    static const std::regex kField(R"(^\s+(\S.*?) : (.*\S))");
    std::vector<Block> blocks;
    std::string section;
    std::istringstream in(output);
    std::string line;
    std::smatch m;
    while (std::getline(in, line)) {
        if (std::regex_search(line, m, kSection)) {
            section = m[1];
        } else if (std::regex_search(line, m, kTitle)) {
            blocks.push_back({section, m[2], {}});
        } else if (std::regex_search(line, kDebug)) {
            continue;
        } else if (!blocks.empty() && std::regex_search(line, m, kField)) {
            blocks.back().fields[m[1]] = m[2];
        } else if (line.empty() || line.starts_with("Resource Conversion")) {
            // a block ends; fields after it belong to no block
            if (!blocks.empty() && !blocks.back().fields.empty()) blocks.push_back({"", "", {}});
        }
    }
    std::erase_if(blocks, [](const Block& b) { return b.title.empty(); });
    return blocks;
}

std::vector<Block> blocks_of(const std::vector<Block>& all, const std::string& section) {
    std::vector<Block> out;
    for (const auto& b : all)
        if (b.section == section) out.push_back(b);
    return out;
}

class AcpicaToolsTest : public ::testing::Test {
protected:
    void SetUp() override {
        iasl_ = find_on_path("iasl");
        acpiexec_ = find_on_path("acpiexec");
        if (!iasl_ || !acpiexec_)
            GTEST_FAIL() << "iasl and acpiexec must be on PATH: they are required test tools "
                            "(Debian package acpica-tools, installed by scripts/setup.sh)";
        std::string tmpl = (fs::temp_directory_path() / "tapvm-acpi-XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        dir_ = tmpl;
    }

    void TearDown() override {
        if (!dir_.empty()) fs::remove_all(dir_);
    }

    void write(const PlacedTable& t) {
        std::ofstream(dir_ / file_name(t), std::ios::binary)
            .write(reinterpret_cast<const char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size()));
    }

    RunResult in_dir(const std::string& command) { return run("cd '" + dir_.string() + "' && " + command); }

    static std::string read_text(const fs::path& p) {
        std::ifstream in(p);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }

    // iasl -d on one table: must succeed without errors or warnings.
    std::string disassemble(const PlacedTable& t) {
        write(t);
        RunResult r = in_dir(iasl_->string() + " -d " + file_name(t));
        EXPECT_EQ(r.status, 0) << r.output;
        EXPECT_EQ(r.output.find("Error"), std::string::npos) << r.output;
        EXPECT_EQ(r.output.find("Warning"), std::string::npos) << r.output;
        return read_text(dir_ / (std::string(t.signature) + ".dsl"));
    }

    // acpiexec in batch mode over the DSDT, FADT, MADT and MCFG (it builds
    // its own RSDP and XSDT around them).
    RunResult acpiexec(const AcpiTables& tables, const std::string& commands) {
        std::string files;
        for (const char* sig : {"DSDT", "FACP", "APIC", "MCFG"}) {
            write(*tables.find(sig));
            files += std::string(" ") + sig + ".dat";
        }
        RunResult r = in_dir("timeout 120 " + acpiexec_->string() + " -b '" + commands + "'" + files);
        EXPECT_EQ(r.status, 0) << r.output;
        EXPECT_EQ(r.output.find("ACPI Error"), std::string::npos) << r.output;
        EXPECT_EQ(r.output.find("ACPI Exception"), std::string::npos) << r.output;
        EXPECT_NE(r.output.find("ACPI: 1 ACPI AML tables successfully acquired and loaded"), std::string::npos)
            << r.output;
        return r;
    }

    std::optional<fs::path> iasl_, acpiexec_;
    fs::path dir_;
};

TEST_F(AcpicaToolsTest, EveryTableButTheRsdpDisassemblesCleanly) {
    AcpiTables t = build_tables({.num_cpus = 2});
    for (const auto& p : t.tables) {
        if (p.signature == "RSD PTR ") continue;
        SCOPED_TRACE(std::string(p.signature));
        std::string dsl = disassemble(p);
        if (p.signature == "DSDT")
            EXPECT_NE(dsl.find(R"(DefinitionBlock ("", "DSDT", 2, "TAPVM ", "TAPVMACP", 0x00000001))"), std::string::npos);
        else
            EXPECT_NE(dsl.find("Signature : \"" + std::string(p.signature) + "\""), std::string::npos) << dsl;
        EXPECT_EQ(dsl.find("Invalid"), std::string::npos) << dsl;
    }
}

TEST_F(AcpicaToolsTest, MadtDisassemblyHasOneLocalApicPerCpu) {
    for (unsigned n : {1u, 2u, 8u, 64u, kMaxCpus}) {
        SCOPED_TRACE(n);
        std::string dsl = disassemble(*build_tables({.num_cpus = n}).find("APIC"));
        EXPECT_EQ(count(dsl, "[Processor Local APIC]"), n);
        EXPECT_EQ(count(dsl, "Processor Enabled : 1"), n);
        EXPECT_EQ(count(dsl, "[I/O APIC]"), 1u);
        EXPECT_EQ(count(dsl, "[Interrupt Source Override]"), 2u);
        EXPECT_EQ(count(dsl, "[Local APIC NMI]"), 1u);
        EXPECT_NE(dsl.find(fmt::format("Address : {:08X}", layout::kIoapicAddr)), std::string::npos);
        EXPECT_NE(dsl.find(fmt::format("Local Apic Address : {:08X}", layout::kLapicAddr)), std::string::npos);
        EXPECT_NE(dsl.find(fmt::format("Local Apic ID : {:02X}", n - 1)), std::string::npos) << "the last CPU";
    }
}

TEST_F(AcpicaToolsTest, FadtDisassemblyShowsHardwareReducedRegisters) {
    AcpiTables t = build_tables({.num_cpus = 2});
    std::string dsl = disassemble(*t.find("FACP"));
    EXPECT_NE(dsl.find("Hardware Reduced (V5) : 1"), std::string::npos);
    EXPECT_NE(dsl.find("Reset Register Supported (V2) : 1"), std::string::npos);
    EXPECT_NE(dsl.find("CMOS RTC Not Present (V5) : 1"), std::string::npos);
    EXPECT_NE(dsl.find("VGA Not Present (V4) : 1"), std::string::npos);
    EXPECT_NE(dsl.find("MSI Not Supported (V4) : 0"), std::string::npos);
    EXPECT_NE(dsl.find(fmt::format("SCI Interrupt : {:04X}", layout::kSciIrq)), std::string::npos);
    EXPECT_NE(dsl.find(fmt::format("FADT Minor Revision : 05")), std::string::npos);
    // The 64-bit DSDT address at offset 0x8C.
    EXPECT_NE(dsl.find(fmt::format("[08Ch 0140   8]                 DSDT Address : {:016X}", t.find("DSDT")->address)),
              std::string::npos)
        << dsl;
    auto register_text = [&](const std::string& name) {
        size_t at = dsl.find(name + " : [Generic Address Structure]");
        EXPECT_NE(at, std::string::npos) << name;
        return at == std::string::npos ? std::string() : dsl.substr(at, dsl.find("\n\n", at) - at);
    };
    for (auto [name, port] : {std::pair{"Reset Register", layout::kAcpiResetReg},
                              std::pair{"Sleep Control Register", layout::kAcpiSleepControl},
                              std::pair{"Sleep Status Register", layout::kAcpiSleepStatus}}) {
        std::string reg = register_text(name);
        SCOPED_TRACE(reg);
        EXPECT_NE(reg.find("Space ID : 01 [SystemIO]"), std::string::npos);
        EXPECT_NE(reg.find("Bit Width : 08"), std::string::npos);
        EXPECT_NE(reg.find("Encoded Access Width : 01 [Byte Access:8]"), std::string::npos);
        EXPECT_NE(reg.find(fmt::format("Address : {:016X}", port)), std::string::npos);
    }
    EXPECT_NE(dsl.find(fmt::format("Value to cause reset : {:02X}", layout::kAcpiResetValue)), std::string::npos);
}

TEST_F(AcpicaToolsTest, XsdtAndMcfgDisassembly) {
    AcpiTables t = build_tables({.num_cpus = 2});
    std::string xsdt = disassemble(*t.find("XSDT"));
    for (const char* sig : {"FACP", "APIC", "MCFG"})
        EXPECT_NE(xsdt.find(fmt::format(": {:016X}", t.find(sig)->address)), std::string::npos) << sig;
    std::string mcfg = disassemble(*t.find("MCFG"));
    EXPECT_NE(mcfg.find(fmt::format("Base Address : {:016X}", layout::kEcamStart)), std::string::npos) << mcfg;
    EXPECT_NE(mcfg.find("Start Bus Number : 00"), std::string::npos);
    EXPECT_NE(mcfg.find(fmt::format("End Bus Number : {:02X}", layout::kPciBusCount - 1)), std::string::npos);
}

TEST_F(AcpicaToolsTest, DsdtDisassemblesAndRecompilesWithoutErrors) {
    std::string dsl = disassemble(*build_tables({.num_cpus = 1}).find("DSDT"));
    for (const char* key : {"Device (PCI0)", "EisaId (\"PNP0A08\")", "EisaId (\"PNP0A03\")", "Device (COM1)",
                            "EisaId (\"PNP0501\")", "EisaId (\"PNP0C02\")", "\"QEMU0001\"", "_S5_", "Name (_PRT, Package (0x80)"})
        EXPECT_NE(dsl.find(key), std::string::npos) << key;
    // The compiler checks each predefined name's type and package shape.
    RunResult r = in_dir(iasl_->string() + " DSDT.dsl");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("Compilation successful. 0 Errors, 0 Warnings"), std::string::npos) << r.output;
}

TEST_F(AcpicaToolsTest, AcpiexecEvaluatesSoftOffAndIds) {
    RunResult r = acpiexec(build_tables({.num_cpus = 2}),
                           "evaluate \\_S5_; evaluate \\_SB.PCI0._HID; evaluate \\_SB.PCI0._CID; "
                           "evaluate \\_SB.COM1._HID; evaluate \\_SB.PCI0._BBN; evaluate \\_SB.PCI0._SEG");
    std::regex s5(R"(Evaluation of \\_S5_ returned[^\n]*\n\s*\[Package\] Contains 4 Elements:\n)"
                  R"(\s*\[Integer\] = ([0-9A-F]+)\n\s*\[Integer\] = ([0-9A-F]+)\n)");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.output, m, s5)) << r.output;
    EXPECT_EQ(std::stoull(m[1], nullptr, 16), layout::kAcpiS5SleepType) << "SLP_TYPa";
    EXPECT_EQ(std::stoull(m[2], nullptr, 16), 0u) << "SLP_TYPb";
    auto integer_of = [&](const std::string& path) -> std::optional<uint64_t> {
        std::regex re("Evaluation of " + std::regex_replace(path, std::regex(R"([\\.])"), R"(\$&)") +
                      R"( returned[^\n]*\n\s*\[Integer\] = ([0-9A-F]+))");
        std::smatch im;
        if (!std::regex_search(r.output, im, re)) return std::nullopt;
        return std::stoull(im[1], nullptr, 16);
    };
    EXPECT_EQ(integer_of("\\_SB.PCI0._HID"), 0x080ad041u);  // PNP0A08
    EXPECT_EQ(integer_of("\\_SB.PCI0._CID"), 0x030ad041u);  // PNP0A03
    EXPECT_EQ(integer_of("\\_SB.COM1._HID"), 0x0105d041u);  // PNP0501
    EXPECT_EQ(integer_of("\\_SB.PCI0._BBN"), 0u);
    EXPECT_EQ(integer_of("\\_SB.PCI0._SEG"), 0u);
}

TEST_F(AcpicaToolsTest, PrtRoutesEverySlotAndPinToItsGsi) {
    RunResult r = acpiexec(build_tables({.num_cpus = 1}), "resources \\_SB.PCI0");
    std::vector<Block> prt = blocks_of(parse_resources(r.output), "_PRT");
    ASSERT_EQ(prt.size(), 32u * 4) << r.output;
    std::set<std::pair<uint64_t, uint64_t>> seen;
    for (const auto& e : prt) {
        ASSERT_EQ(e.title, "PCI IRQ Routing Table Package");
        uint64_t address = e.hex("Address"), pin = e.hex("Pin");
        ASSERT_EQ(address & 0xffff, 0xffffu) << "any function";
        uint64_t slot = address >> 16;
        ASSERT_LT(slot, 32u);
        ASSERT_LT(pin, 4u);
        EXPECT_EQ(e.fields.at("Source"), "[NULL NAMESTRING]") << "a GSI, not a link device";
        EXPECT_EQ(e.hex("Source Index"), layout::pci_intx_gsi(static_cast<uint32_t>(slot), static_cast<uint32_t>(pin)))
            << "slot " << slot << " pin " << pin;
        EXPECT_TRUE(seen.insert({slot, pin}).second) << "duplicate slot " << slot << " pin " << pin;
    }
}

TEST_F(AcpicaToolsTest, Pci0WindowsCoverAllPortsButTheConfigPorts) {
    RunResult r = acpiexec(build_tables({.num_cpus = 1}), "resources \\_SB.PCI0");
    std::vector<Block> crs = blocks_of(parse_resources(r.output), "_CRS");
    ASSERT_FALSE(crs.empty()) << r.output;
    EXPECT_EQ(crs.back().title, "EndTag Resource");
    std::vector<int> port_owners(0x10000, 0);
    int bus_ranges = 0, mmio_windows = 0, config_port_claims = 0, bar_window = 0;
    for (const auto& b : crs) {
        SCOPED_TRACE(b.title);
        if (b.title == "EndTag Resource") continue;
        if (b.title == "I/O Resource") {  // consumed by the bridge, not a window
            EXPECT_EQ(b.hex("Address Minimum"), layout::kPciConfigAddress);
            EXPECT_EQ(b.hex("Address Length"), 8u);
            ++config_port_claims;
            continue;
        }
        EXPECT_EQ(b.fields.at("Consumer/Producer"), "ResourceProducer");
        EXPECT_EQ(b.fields.at("Min Relocatability"), "MinFixed");
        EXPECT_EQ(b.fields.at("Max Relocatability"), "MaxFixed");
        uint64_t min = b.hex("Address Minimum"), max = b.hex("Address Maximum");
        EXPECT_EQ(b.hex("Address Length"), max - min + 1);
        const std::string& type = b.fields.at("Resource Type");
        if (type == "Bus Number Range") {
            ++bus_ranges;
            EXPECT_EQ(min, 0u);
            EXPECT_EQ(max, layout::kPciBusCount - 1u);
        } else if (type == "I/O Range") {
            ASSERT_LE(max, 0xffffu);
            for (uint64_t p = min; p <= max; ++p) ++port_owners[p];
            if (min == layout::kPciIoStart && max == layout::kPciIoStart + layout::kPciIoSize - 1u) ++bar_window;
        } else if (type == "Memory Range") {
            ++mmio_windows;
            EXPECT_EQ(min, layout::kPciMmio32Start);
            EXPECT_EQ(max, layout::kPciMmio32Start + layout::kPciMmio32Size - 1);
            EXPECT_EQ(b.fields.at("Caching"), "NonCacheable");
            EXPECT_EQ(b.fields.at("Write Protect"), "ReadWrite");
        } else {
            ADD_FAILURE() << "unexpected resource type " << type;
        }
    }
    EXPECT_EQ(bus_ranges, 1);
    EXPECT_EQ(mmio_windows, 1);
    EXPECT_EQ(config_port_claims, 1);
    EXPECT_EQ(bar_window, 1) << "the BAR I/O window is an entry of its own";
    for (uint32_t p = 0; p < 0x10000; ++p) {
        bool config_port = p >= layout::kPciConfigAddress && p < layout::kPciConfigAddress + 8u;
        ASSERT_EQ(port_owners[p], config_port ? 0 : 1) << fmt::format("port {:#x}", p);
    }
}

TEST_F(AcpicaToolsTest, Com1AndMotherboardResources) {
    RunResult r = acpiexec(build_tables({.num_cpus = 1}), "resources \\_SB.COM1; resources \\_SB.MBRD");
    std::vector<Block> crs = blocks_of(parse_resources(r.output), "_CRS");
    ASSERT_EQ(crs.size(), 6u) << r.output;  // COM1: IO, IRQ, end; MBRD: memory, IO, end
    EXPECT_EQ(crs[0].title, "I/O Resource");
    EXPECT_EQ(crs[0].hex("Address Minimum"), layout::kCom1Base);
    EXPECT_EQ(crs[0].hex("Address Maximum"), layout::kCom1Base);
    EXPECT_EQ(crs[0].hex("Address Length"), 8u);
    EXPECT_EQ(crs[1].title, "IRQ Resource");
    EXPECT_EQ(crs[1].fields.at("Interrupt List"), std::to_string(layout::kCom1Irq));
    EXPECT_EQ(crs[1].fields.at("Triggering"), "Edge");
    EXPECT_EQ(crs[1].fields.at("Polarity"), "ActiveHigh");
    EXPECT_EQ(crs[3].title, "32-Bit Fixed Memory Range Resource");
    EXPECT_EQ(crs[3].hex("Address"), layout::kEcamStart);
    EXPECT_EQ(crs[3].hex("Address Length"), layout::kEcamSize);
    EXPECT_EQ(crs[4].title, "I/O Resource");
    EXPECT_EQ(crs[4].hex("Address Minimum"), layout::kAcpiSleepControl);
    EXPECT_EQ(crs[4].hex("Address Length"), 3u);
}

TEST_F(AcpicaToolsTest, ResourcesSurviveAcpicaRoundTrip) {
    // acpiexec converts each _CRS to ACPICA's internal form and back, then
    // compares bytes.  ACPICA always writes the End Tag checksum as 0 ("treat
    // as valid", ACPI 6.5 §6.4.2.9) where tapvm writes the real checksum, so
    // that byte is the only difference allowed.
    RunResult r =
        acpiexec(build_tables({.num_cpus = 1}), "resources \\_SB.PCI0; resources \\_SB.COM1; resources \\_SB.MBRD");
    std::regex mismatch(R"(Data mismatch in descriptor \[[0-9A-F]+\] type ([0-9A-F]+)[^\n]*\n\s*Mismatch at byte offset ([0-9A-F]+))");
    int end_tag_mismatches = 0;
    for (std::sregex_iterator it(r.output.begin(), r.output.end(), mismatch), end; it != end; ++it) {
        EXPECT_EQ((*it)[1], "78") << "only the End Tag may differ: " << it->str();
        EXPECT_EQ((*it)[2], "01") << "only its checksum byte may differ: " << it->str();
        ++end_tag_mismatches;
    }
    EXPECT_LE(end_tag_mismatches, 3);
    EXPECT_EQ(count(r.output, "Resource Conversion Comparison"), 3u) << r.output;
}

}  // namespace
}  // namespace tapvm::acpi
