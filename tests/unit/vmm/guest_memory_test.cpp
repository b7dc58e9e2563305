// GuestMemory: whole-range checks for every access, including holes,
// region ends and gpa + len overflow.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cstring>

#include "vmm/error.h"
#include "vmm/guest_memory.h"
#include "vmm/unique_fd.h"

namespace tapvm {
namespace {

constexpr uint64_t kMiB = 1 << 20;

// Low RAM below a hole, and high RAM above it (like RAM around the PCI hole).
GuestMemory two_regions() { return GuestMemory({{0x100000, kMiB}, {0, 0x9f000}}); }

TEST(GuestMemory, RegionsAreSortedAndSized) {
    auto m = two_regions();
    ASSERT_EQ(m.regions().size(), 2u);
    EXPECT_EQ(m.regions()[0].start, 0u);
    EXPECT_EQ(m.regions()[1].start, 0x100000u);
    EXPECT_EQ(m.total_size(), 0x9f000u + kMiB);
}

TEST(GuestMemory, BadLayoutsAreRefused) {
    EXPECT_THROW(GuestMemory({{0, 0}}), Error);
    EXPECT_THROW(GuestMemory({{0x800, 0x1000}}), Error);           // unaligned start
    EXPECT_THROW(GuestMemory({{0, 0x1800}}), Error);               // unaligned size
    EXPECT_THROW(GuestMemory({{0, 0x2000}, {0x1000, 0x1000}}), Error);  // overlap
    EXPECT_THROW(GuestMemory({{~0ull - 0xfff, 0x2000}}), Error);   // wraps
}

TEST(GuestMemory, StartsZeroed) {
    auto m = two_regions();
    std::array<uint8_t, 64> data;
    data.fill(0xaa);
    ASSERT_TRUE(m.read(0x100000 + 12345, data));
    for (auto b : data) EXPECT_EQ(b, 0);
}

TEST(GuestMemory, WriteThenReadRoundTrips) {
    auto m = two_regions();
    const std::array<uint8_t, 5> in{1, 2, 3, 4, 5};
    ASSERT_TRUE(m.write(0x9effb, in));  // the last 5 bytes of low RAM
    std::array<uint8_t, 5> out{};
    ASSERT_TRUE(m.read(0x9effb, out));
    EXPECT_EQ(in, out);
    ASSERT_TRUE(m.write_obj<uint32_t>(0x100000, 0xdeadbeef));
    EXPECT_EQ(m.read_obj<uint32_t>(0x100000), 0xdeadbeefu);
}

TEST(GuestMemory, RangesLeavingRamAreRefusedWhole) {
    auto m = two_regions();
    std::array<uint8_t, 8> data{};
    EXPECT_FALSE(m.read(0x9effc, data)) << "runs 4 bytes into the hole";
    EXPECT_FALSE(m.read(0x9f000, data)) << "in the hole";
    EXPECT_FALSE(m.read(0xffffc, data)) << "starts in the hole, ends in RAM";
    EXPECT_FALSE(m.read(0x1ffffc, data)) << "runs past the end of RAM";
    EXPECT_FALSE(m.read_obj<uint64_t>(0x200000));
    EXPECT_FALSE(m.contains(0x9f000 - 4, 8));
    EXPECT_TRUE(m.contains(0x9f000 - 8, 8));
}

TEST(GuestMemory, AFailedWriteChangesNothing) {
    auto m = two_regions();
    const std::array<uint8_t, 8> in{9, 9, 9, 9, 9, 9, 9, 9};
    EXPECT_FALSE(m.write(0x9effc, in));
    EXPECT_EQ(m.read_obj<uint32_t>(0x9effc), 0u) << "no partial copy into the part that is RAM";
}

TEST(GuestMemory, GpaPlusLenOverflowIsRefused) {
    auto m = two_regions();
    EXPECT_FALSE(m.slice(~0ull - 3, 8));
    EXPECT_FALSE(m.slice(0x100000, ~0ull));
    EXPECT_FALSE(m.slice(0x100010, ~0ull - 0x8));  // 0x100010 + len wraps to a small address
    EXPECT_FALSE(m.slice(0x1000, ~0ull - 0xfff));
}

TEST(GuestMemory, ContiguousRegionsStillNeedOneRegionPerAccess) {
    GuestMemory m({{0, kMiB}, {kMiB, kMiB}});
    EXPECT_TRUE(m.slice(kMiB - 8, 8));
    EXPECT_TRUE(m.slice(kMiB, 8));
    EXPECT_FALSE(m.slice(kMiB - 4, 8)) << "a slice is one host mapping; it cannot span two";
}

TEST(GuestMemory, ZeroLengthSlices) {
    auto m = two_regions();
    auto inside = m.slice(0x1000, 0);
    ASSERT_TRUE(inside);
    EXPECT_TRUE(inside->empty());
    EXPECT_FALSE(m.slice(0x9f000, 0)) << "in the hole";
    EXPECT_FALSE(m.slice(0x200000, 0)) << "just past the end";
}

TEST(GuestMemory, SlicesAliasTheSameBytes) {
    auto m = two_regions();
    auto a = m.slice(0x100100, 16);
    ASSERT_TRUE(a);
    (*a)[3] = 0x77;
    EXPECT_EQ(m.read_obj<uint8_t>(0x100103), 0x77);
}

TEST(GuestMemory, MoveTransfersTheMappings) {
    auto m = two_regions();
    ASSERT_TRUE(m.write_obj<uint16_t>(0x2000, 0x1234));
    GuestMemory moved(std::move(m));
    EXPECT_EQ(moved.read_obj<uint16_t>(0x2000), 0x1234);
    EXPECT_TRUE(m.regions().empty());  // NOLINT(bugprone-use-after-move): documented moved-from state
    EXPECT_FALSE(m.contains(0x2000, 2));
    GuestMemory assigned({{0, 0x1000}});
    assigned = std::move(moved);
    EXPECT_EQ(assigned.read_obj<uint16_t>(0x2000), 0x1234);
    EXPECT_EQ(assigned.total_size(), 0x9f000u + kMiB);
}

// --- memory shared by another process (vhost-user) ---------------------------

UniqueFd sized_memfd(uint64_t size, unsigned flags = MFD_CLOEXEC) {
    UniqueFd fd(::memfd_create("guest", flags));
    EXPECT_TRUE(fd);
    EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
    return fd;
}

// Without the check the mapping succeeds and the first access past the
// file's end kills the process with SIGBUS: a 4 KiB memfd announced as 1 MiB.
TEST(SharedGuestMemory, ARegionLongerThanItsFileIsRefused) {
    auto small = sized_memfd(0x1000);
    try {
        GuestMemory::map_shared({{0, kMiB, small.get(), 0}});
        ADD_FAILURE() << "a 1 MiB region over a 4 KiB file was mapped";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("past the end of its 4096-byte file"), std::string::npos) << e.what();
    }
    auto exact = sized_memfd(kMiB);
    EXPECT_THROW(GuestMemory::map_shared({{0, kMiB, exact.get(), 0x1000}}), Error);  // offset pushes it past
    EXPECT_THROW(GuestMemory::map_shared({{0, kMiB, exact.get(), 2 * kMiB}}), Error);  // offset beyond the file
    auto m = GuestMemory::map_shared({{0, kMiB - 0x1000, exact.get(), 0x1000}});      // fits exactly
    EXPECT_TRUE(m.write_obj<uint8_t>(kMiB - 0x1001, 1));
}

TEST(SharedGuestMemory, OnlyRegularFilesAreGuestMemory) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    UniqueFd r(fds[0]), w(fds[1]);
    EXPECT_THROW(GuestMemory::map_shared({{0, 0x1000, r.get(), 0}}), Error);
    UniqueFd null(::open("/dev/zero", O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(null);
    EXPECT_THROW(GuestMemory::map_shared({{0, 0x1000, null.get(), 0}}), Error);
}

// A sealable memfd is sealed against shrinking, so the frontend can no longer
// truncate the memory under the backend (which would be SIGBUS again).
TEST(SharedGuestMemory, ASealableMemfdIsSealedAgainstShrinking) {
    auto fd = sized_memfd(kMiB, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    auto m = GuestMemory::map_shared({{0, kMiB, fd.get(), 0}});
    EXPECT_EQ(m.unsealed_regions(), 0u);
    EXPECT_TRUE(::fcntl(fd.get(), F_GET_SEALS) & F_SEAL_SHRINK);
    EXPECT_NE(::ftruncate(fd.get(), 0x1000), 0) << "the frontend could still shrink it";
    EXPECT_EQ(errno, EPERM);
    EXPECT_EQ(::ftruncate(fd.get(), 2 * kMiB), 0) << "growing stays allowed";

    auto unsealable = sized_memfd(kMiB);  // no MFD_ALLOW_SEALING: F_SEAL_SEAL from the start
    auto u = GuestMemory::map_shared({{0, kMiB, unsealable.get(), 0}});
    EXPECT_EQ(u.unsealed_regions(), 1u);
    GuestMemory moved(std::move(u));
    EXPECT_EQ(moved.unsealed_regions(), 1u);
}

}  // namespace
}  // namespace tapvm
