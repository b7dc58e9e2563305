#include "net/pcap_capture.h"

#include <pcap/pcap.h>
#include <sys/time.h>

#include <algorithm>
#include <cstring>

#include "net/virtio_net_hdr.h"
#include "vmm/error.h"

namespace tapvm::net {

namespace {

// Large enough for a whole 64 KiB GSO frame: nothing is cut off.
constexpr int kSnapLen = 262144;

}  // namespace

std::unique_ptr<PcapCapture> PcapCapture::open(const std::string& path, Mode mode) {
    pcap_t* handle = pcap_open_dead(DLT_EN10MB, kSnapLen);
    if (!handle) throw UsageError("pcap " + path + ": cannot create a capture handle");
    // pcap_dump_open_append checks that an existing file is a capture of
    // the same link type and creates a missing one.
    pcap_dumper_t* dumper = mode == Mode::kAppend ? pcap_dump_open_append(handle, path.c_str())
                                                  : pcap_dump_open(handle, path.c_str());
    if (!dumper) {
        std::string why = pcap_geterr(handle);
        pcap_close(handle);
        throw UsageError("pcap " + path + ": " + why);
    }
    return std::unique_ptr<PcapCapture>(new PcapCapture(handle, dumper));
}

PcapCapture::PcapCapture(pcap* handle, pcap_dumper* dumper)
    : handle_(handle), dumper_(dumper), buffer_(kMaxFrameLen) {}

PcapCapture::~PcapCapture() {
    pcap_dump_close(dumper_);
    pcap_close(handle_);
}

void PcapCapture::on_frame(FrameDirection, std::span<const iovec> iov, size_t skip, size_t length) {
    // Gather the frame: pcap_dump takes one contiguous buffer.
    const size_t captured = std::min(length, buffer_.size());
    size_t copied = 0;
    for (const iovec& v : iov) {
        if (copied == captured) break;
        size_t take_from = std::min(skip, v.iov_len);
        skip -= take_from;
        size_t n = std::min(v.iov_len - take_from, captured - copied);
        std::memcpy(buffer_.data() + copied, static_cast<const uint8_t*>(v.iov_base) + take_from, n);
        copied += n;
    }
    pcap_pkthdr header{};
    gettimeofday(&header.ts, nullptr);
    header.caplen = static_cast<bpf_u_int32>(copied);
    header.len = static_cast<bpf_u_int32>(length);
    pcap_dump(reinterpret_cast<u_char*>(dumper_), &header, buffer_.data());
    pcap_dump_flush(dumper_);
    ++frames_;
}

}  // namespace tapvm::net
