// Register offsets and bits of a PCI type 0 configuration header (PCI Local
// Bus Specification 3.0 §6.1-§6.2) and of the MSI-X capability (§6.8.2).
// Shared by the function model, the host bridge, the virtio-pci transport
// and the tests, so that nobody writes a bare 0x34 again.
#pragma once

#include <cstdint>

namespace tapvm::pci {

// --- Sizes ------------------------------------------------------------------
inline constexpr uint16_t kConfigSpaceSize = 256;      // conventional space
inline constexpr uint16_t kExtConfigSpaceSize = 4096;  // what ECAM decodes per function
inline constexpr unsigned kNumBars = 6;                // type 0 header
inline constexpr uint8_t kCapabilityStart = 0x40;      // first byte after the header

// --- Type 0 header offsets (PCI 3.0 §6.1, figure 6-1) -----------------------
inline constexpr uint16_t kVendorId = 0x00;
inline constexpr uint16_t kDeviceId = 0x02;
inline constexpr uint16_t kCommand = 0x04;
inline constexpr uint16_t kStatus = 0x06;
inline constexpr uint16_t kRevisionId = 0x08;
inline constexpr uint16_t kProgIf = 0x09;
inline constexpr uint16_t kSubclass = 0x0a;
inline constexpr uint16_t kClassCode = 0x0b;
inline constexpr uint16_t kCacheLineSize = 0x0c;
inline constexpr uint16_t kLatencyTimer = 0x0d;
inline constexpr uint16_t kHeaderType = 0x0e;
inline constexpr uint16_t kBist = 0x0f;
inline constexpr uint16_t kBar0 = 0x10;                // BAR n at kBar0 + 4 * n
inline constexpr uint16_t kCardbusCis = 0x28;
inline constexpr uint16_t kSubsystemVendorId = 0x2c;
inline constexpr uint16_t kSubsystemId = 0x2e;
inline constexpr uint16_t kExpansionRom = 0x30;
inline constexpr uint16_t kCapabilitiesPointer = 0x34;
inline constexpr uint16_t kInterruptLine = 0x3c;
inline constexpr uint16_t kInterruptPin = 0x3d;
inline constexpr uint16_t kMinGnt = 0x3e;
inline constexpr uint16_t kMaxLat = 0x3f;

// --- Command register bits (PCI 3.0 §6.2.2) ---------------------------------
inline constexpr uint16_t kCommandIoSpace = 1u << 0;
inline constexpr uint16_t kCommandMemorySpace = 1u << 1;
inline constexpr uint16_t kCommandBusMaster = 1u << 2;
inline constexpr uint16_t kCommandIntxDisable = 1u << 10;

// --- Status register bits (PCI 3.0 §6.2.3) ----------------------------------
inline constexpr uint16_t kStatusInterrupt = 1u << 3;         // INTx asserted (PCI 2.3)
inline constexpr uint16_t kStatusCapabilityList = 1u << 4;
// Error bits are write-1-to-clear: master data parity error (8), signalled
// target abort (11), received target/master abort (12, 13), signalled system
// error (14), detected parity error (15).
inline constexpr uint16_t kStatusErrorBitsW1c = 0xf900;

// --- Header type -----------------------------------------------------------
inline constexpr uint8_t kHeaderTypeNormal = 0x00;
inline constexpr uint8_t kHeaderTypeMultiFunction = 0x80;

// --- BAR low bits (PCI 3.0 §6.2.5.1) ----------------------------------------
inline constexpr uint32_t kBarIoSpace = 0x1;           // bit 0: I/O BAR
inline constexpr uint32_t kBarMemType64 = 0x4;         // bits 2:1 = 10b: 64-bit
inline constexpr uint32_t kBarMemPrefetchable = 0x8;   // bit 3
inline constexpr uint32_t kBarIoAddressMask = ~0x3u;
inline constexpr uint32_t kBarMemAddressMask = ~0xfu;

// --- Capability IDs (PCI Code and ID Assignment Specification) --------------
inline constexpr uint8_t kCapIdMsi = 0x05;
inline constexpr uint8_t kCapIdVendorSpecific = 0x09;  // what virtio-pci uses
inline constexpr uint8_t kCapIdPciExpress = 0x10;
inline constexpr uint8_t kCapIdMsix = 0x11;

// --- MSI-X capability layout, offsets from the capability start (§6.8.2) ----
inline constexpr uint16_t kMsixMessageControl = 0x02;
inline constexpr uint16_t kMsixTableOffsetBir = 0x04;
inline constexpr uint16_t kMsixPbaOffsetBir = 0x08;
inline constexpr uint16_t kMsixCapabilitySize = 0x0c;
inline constexpr uint16_t kMsixControlTableSizeMask = 0x07ff;  // N - 1
inline constexpr uint16_t kMsixControlFunctionMask = 1u << 14;
inline constexpr uint16_t kMsixControlEnable = 1u << 15;
inline constexpr uint32_t kMsixBirMask = 0x7;
inline constexpr unsigned kMsixMaxVectors = 2048;
// MSI-X table entry (16 bytes): address low, address high, data, vector control.
inline constexpr uint64_t kMsixEntrySize = 16;
inline constexpr uint64_t kMsixEntryAddressLow = 0x0;
inline constexpr uint64_t kMsixEntryAddressHigh = 0x4;
inline constexpr uint64_t kMsixEntryData = 0x8;
inline constexpr uint64_t kMsixEntryVectorControl = 0xc;
inline constexpr uint32_t kMsixEntryMasked = 0x1;     // vector control bit 0

// --- Class codes used by tapvm ----------------------------------------------
inline constexpr uint8_t kClassBridge = 0x06;
inline constexpr uint8_t kSubclassHostBridge = 0x00;
inline constexpr uint8_t kClassNetwork = 0x02;

}  // namespace tapvm::pci
