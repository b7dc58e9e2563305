// One rate limit for the log lines a guest or a peer (a vhost-user
// frontend) can trigger: otherwise every queue-size write, status write or
// refused message is a line, and a guest can fill the host's disk or hide
// the one line that matters.
//
// A token bucket per LogLimiter: `burst` lines at once, then one per
// `interval`.  Lines over the limit are counted, and the next line that is
// let through says how many were left out.  Each object that logs for a
// guest owns its limiter (one per device, per connection), so one noisy
// guest cannot silence another's lines.  Thread-safe.
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <utility>

namespace tapvm {

class LogLimiter {
public:
    using Clock = std::chrono::steady_clock;
    struct Policy {
        unsigned burst = 10;
        Clock::duration interval = std::chrono::seconds(1);
    };

    LogLimiter() : LogLimiter(Policy{}) {}
    explicit LogLimiter(Policy policy) : policy_(policy), tokens_(policy.burst) {}
    LogLimiter(const LogLimiter&) = delete;
    LogLimiter& operator=(const LogLimiter&) = delete;

    // True when a line may be logged now; `suppressed` is then the number
    // of lines left out since the last one logged.
    bool admit(uint64_t& suppressed, Clock::time_point now = Clock::now());
    // Lines left out so far in all.
    uint64_t total_suppressed() const;

private:
    const Policy policy_;
    mutable std::mutex mutex_;
    unsigned tokens_;
    Clock::time_point refilled_{};
    uint64_t pending_suppressed_ = 0;
    uint64_t total_suppressed_ = 0;
};

// spdlog::log through `limiter`.
template <class... Args>
void log_limited(LogLimiter& limiter, spdlog::level::level_enum level, fmt::format_string<Args...> format,
                 Args&&... args) {
    if (!spdlog::should_log(level)) return;
    uint64_t suppressed = 0;
    if (!limiter.admit(suppressed)) return;
    if (suppressed == 0) {
        spdlog::log(level, format, std::forward<Args>(args)...);
        return;
    }
    spdlog::log(level, "{} ({} similar line(s) suppressed)", fmt::format(format, std::forward<Args>(args)...),
                suppressed);
}

}  // namespace tapvm
