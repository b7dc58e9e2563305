// The rate limit for guest-triggered log lines: a burst, then one line per
// interval, and the next line let through says how many were left out.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

#include "vmm/log_limiter.h"

namespace tapvm {
namespace {

using namespace std::chrono_literals;

TEST(LogLimiter, ABurstThenOneLinePerInterval) {
    LogLimiter limiter({.burst = 3, .interval = 1s});
    const auto t0 = LogLimiter::Clock::time_point{} + 100s;
    uint64_t suppressed = 99;
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(limiter.admit(suppressed, t0)) << i;
        EXPECT_EQ(suppressed, 0u);
    }
    for (int i = 0; i < 1000; ++i) EXPECT_FALSE(limiter.admit(suppressed, t0 + 500ms));
    EXPECT_EQ(limiter.total_suppressed(), 1000u);
    ASSERT_TRUE(limiter.admit(suppressed, t0 + 1s));  // one token earned
    EXPECT_EQ(suppressed, 1000u) << "the line says what was left out";
    EXPECT_FALSE(limiter.admit(suppressed, t0 + 1500ms));
    // A long quiet spell refills the burst, not more.
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.admit(suppressed, t0 + 1h)) << i;
    EXPECT_FALSE(limiter.admit(suppressed, t0 + 1h));
}

TEST(LogLimiter, LogLimitedWritesTheSuppressedCount) {
    std::ostringstream out;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    auto previous = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink));
    spdlog::set_pattern("%v");
    LogLimiter limiter({.burst = 1, .interval = 1h});
    for (int i = 0; i < 5; ++i) log_limited(limiter, spdlog::level::warn, "queue size {} refused", i);
    spdlog::set_default_logger(previous);
    EXPECT_EQ(out.str(), "queue size 0 refused\n");
    EXPECT_EQ(limiter.total_suppressed(), 4u);
}

}  // namespace
}  // namespace tapvm
