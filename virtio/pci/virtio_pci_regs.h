// Register layout of the virtio-pci transport (virtio 1.2 §4.1) and where
// tapvm places each structure in its BARs.
#pragma once

#include <cstdint>

namespace tapvm::virtio::pci_regs {

// --- Identity (§4.1.2) --------------------------------------------------------
inline constexpr uint16_t kVendorId = 0x1af4;
inline constexpr uint16_t kModernDeviceIdBase = 0x1040;  // + virtio device type
// §4.1.2.3: transitional IDs exist for the legacy device types only.
inline constexpr uint16_t kTransitionalDeviceIdBase = 0x1000;  // + type - 1 (net 0x1000, blk 0x1001, ...)

// --- Vendor capability types (§4.1.4) -----------------------------------------
inline constexpr uint8_t kCapCommonCfg = 1;
inline constexpr uint8_t kCapNotifyCfg = 2;
inline constexpr uint8_t kCapIsrCfg = 3;
inline constexpr uint8_t kCapDeviceCfg = 4;
inline constexpr uint8_t kCapPciCfg = 5;

// struct virtio_pci_cap, offsets from the capability's first byte.
inline constexpr uint16_t kCapLen = 2;
inline constexpr uint16_t kCapCfgType = 3;
inline constexpr uint16_t kCapBar = 4;
inline constexpr uint16_t kCapId = 5;
inline constexpr uint16_t kCapOffset = 8;
inline constexpr uint16_t kCapLength = 12;
inline constexpr uint16_t kCapSize = 16;                // struct virtio_pci_cap
inline constexpr uint16_t kNotifyCapMultiplier = 16;    // virtio_pci_notify_cap
inline constexpr uint16_t kNotifyCapSize = 20;
inline constexpr uint16_t kPciCfgCapData = 16;          // virtio_pci_cfg_cap.pci_cfg_data
inline constexpr uint16_t kPciCfgCapSize = 20;

// --- Common configuration (§4.1.4.3), byte offsets ---------------------------
inline constexpr uint16_t kDeviceFeatureSelect = 0x00;
inline constexpr uint16_t kDeviceFeature = 0x04;
inline constexpr uint16_t kDriverFeatureSelect = 0x08;
inline constexpr uint16_t kDriverFeature = 0x0c;
inline constexpr uint16_t kConfigMsixVector = 0x10;
inline constexpr uint16_t kNumQueues = 0x12;
inline constexpr uint16_t kDeviceStatus = 0x14;
inline constexpr uint16_t kConfigGeneration = 0x15;
inline constexpr uint16_t kQueueSelect = 0x16;
inline constexpr uint16_t kQueueSize = 0x18;
inline constexpr uint16_t kQueueMsixVector = 0x1a;
inline constexpr uint16_t kQueueEnable = 0x1c;
inline constexpr uint16_t kQueueNotifyOff = 0x1e;
inline constexpr uint16_t kQueueDescLo = 0x20;
inline constexpr uint16_t kQueueDescHi = 0x24;
inline constexpr uint16_t kQueueDriverLo = 0x28;
inline constexpr uint16_t kQueueDriverHi = 0x2c;
inline constexpr uint16_t kQueueDeviceLo = 0x30;
inline constexpr uint16_t kQueueDeviceHi = 0x34;
inline constexpr uint16_t kCommonCfgSize = 0x38;  // queue_notify_data/queue_reset are not offered

// §4.1.5.1.2: "no MSI-X vector" for config_msix_vector / queue_msix_vector.
inline constexpr uint16_t kNoVector = 0xffff;

// ISR status bits (§4.1.4.5).
inline constexpr uint8_t kIsrQueue = 0x1;
inline constexpr uint8_t kIsrConfig = 0x2;

// The notify structure: queue_notify_off = queue index, times this
// multiplier (§4.1.4.4; an even power of two, 4 keeps each doorbell in
// its own dword).
inline constexpr uint32_t kNotifyOffMultiplier = 4;

// --- Legacy interface (§4.1.4.8), offsets in the I/O BAR -----------------------
inline constexpr uint16_t kLegacyHostFeatures = 0;   // 32 R
inline constexpr uint16_t kLegacyGuestFeatures = 4;  // 32 RW
inline constexpr uint16_t kLegacyQueuePfn = 8;       // 32 RW
inline constexpr uint16_t kLegacyQueueNum = 12;      // 16 R
inline constexpr uint16_t kLegacyQueueSelect = 14;   // 16 RW
inline constexpr uint16_t kLegacyQueueNotify = 16;   // 16 RW
inline constexpr uint16_t kLegacyStatus = 18;        // 8 RW
inline constexpr uint16_t kLegacyIsr = 19;           // 8 R, read clears
inline constexpr uint16_t kLegacyConfigVector = 20;  // 16 RW, only with MSI-X enabled
inline constexpr uint16_t kLegacyQueueVector = 22;   // 16 RW, only with MSI-X enabled
inline constexpr uint16_t kLegacyConfigNoMsix = 20;  // device config without MSI-X
inline constexpr uint16_t kLegacyConfigMsix = 24;    // device config with MSI-X enabled
// §2.7.2 legacy queue layout: PFN in 4096-byte pages, used ring 4096-aligned.
inline constexpr uint64_t kLegacyPfnShift = 12;
inline constexpr uint64_t kLegacyVringAlign = 4096;

// --- tapvm's BAR layout --------------------------------------------------------
// BAR0: the legacy I/O BAR (transitional devices only, §4.1.4.8: it MUST be
// BAR0).  256 bytes: the 24-byte header and up to 232 bytes of device config.
inline constexpr unsigned kLegacyBar = 0;
inline constexpr uint64_t kLegacyBarSize = 0x100;
// BAR1: one 32-bit memory BAR for every modern structure and MSI-X.
inline constexpr unsigned kModernBar = 1;
inline constexpr uint64_t kCommonCfgOffset = 0x0000;
inline constexpr uint64_t kIsrOffset = 0x1000;
inline constexpr uint64_t kDeviceCfgOffset = 0x2000;
inline constexpr uint64_t kDeviceCfgSize = 0x1000;
inline constexpr uint64_t kNotifyOffset = 0x3000;
inline constexpr uint64_t kMsixTableOffset = 0x4000;  // PBA follows on its own page

}  // namespace tapvm::virtio::pci_regs
