// pcap=PATH: every frame the device moves, both directions, written to a
// classic pcap file (libpcap's pcap_dump API, DLT_EN10MB) without the
// virtio-net header — readable by tcpdump and Wireshark, even while tapvm
// runs (each frame is flushed).
//
// A debugging aid, off by default: it copies each frame once into its own
// buffer, which the data path otherwise never does.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "net/frame_observer.h"

struct pcap;
struct pcap_dumper;

namespace tapvm::net {

class PcapCapture final : public FrameObserver {
public:
    // kTruncate starts `path` afresh; kAppend adds to the capture already
    // there (a machine started again after a guest reboot), or starts one.
    enum class Mode { kTruncate, kAppend };
    // Throws UsageError ("pcap /x: ...").
    static std::unique_ptr<PcapCapture> open(const std::string& path, Mode mode = Mode::kTruncate);
    ~PcapCapture() override;
    PcapCapture(const PcapCapture&) = delete;
    PcapCapture& operator=(const PcapCapture&) = delete;

    void on_frame(FrameDirection direction, std::span<const iovec> iov, size_t skip, size_t length) override;

    uint64_t frames_written() const { return frames_; }

private:
    PcapCapture(pcap* handle, pcap_dumper* dumper);

    pcap* handle_;
    pcap_dumper* dumper_;
    std::vector<uint8_t> buffer_;
    uint64_t frames_ = 0;
};

}  // namespace tapvm::net
