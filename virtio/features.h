// Feature bits shared by all virtio devices (virtio 1.2 §6).
#pragma once

#include <cstdint>

namespace tapvm::virtio {

inline constexpr uint64_t bit(unsigned n) { return uint64_t{1} << n; }

inline constexpr unsigned kFRingIndirectDesc = 28;
inline constexpr unsigned kFRingEventIdx = 29;
inline constexpr unsigned kFVersion1 = 32;
inline constexpr unsigned kFAccessPlatform = 33;
inline constexpr unsigned kFRingPacked = 34;

inline constexpr bool has(uint64_t features, unsigned n) { return features & bit(n); }

// Device status bits (virtio 1.2 §2.1).
inline constexpr uint8_t kStatusAcknowledge = 1;
inline constexpr uint8_t kStatusDriver = 2;
inline constexpr uint8_t kStatusDriverOk = 4;
inline constexpr uint8_t kStatusFeaturesOk = 8;
inline constexpr uint8_t kStatusDeviceNeedsReset = 64;
inline constexpr uint8_t kStatusFailed = 128;

}  // namespace tapvm::virtio
