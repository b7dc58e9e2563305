#include "vmm/log_limiter.h"

namespace tapvm {

bool LogLimiter::admit(uint64_t& suppressed, Clock::time_point now) {
    std::lock_guard lock(mutex_);
    if (refilled_ == Clock::time_point{}) refilled_ = now;
    if (policy_.interval.count() > 0 && now > refilled_) {
        const auto earned = static_cast<uint64_t>((now - refilled_) / policy_.interval);
        if (earned > 0) {
            tokens_ = static_cast<unsigned>(std::min<uint64_t>(policy_.burst, tokens_ + earned));
            refilled_ += earned * policy_.interval;
        }
    }
    if (tokens_ == 0) {
        ++pending_suppressed_;
        ++total_suppressed_;
        return false;
    }
    --tokens_;
    suppressed = std::exchange(pending_suppressed_, 0);
    return true;
}

uint64_t LogLimiter::total_suppressed() const {
    std::lock_guard lock(mutex_);
    return total_suppressed_;
}

}  // namespace tapvm
