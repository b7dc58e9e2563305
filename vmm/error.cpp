#include "vmm/error.h"

#include <cerrno>
#include <cstring>

namespace tapvm {

void throw_errno(const std::string& what, int err) {
    throw Error(what + ": " + std::strerror(err));
}

void throw_errno(const std::string& what) { throw_errno(what, errno); }

}  // namespace tapvm
