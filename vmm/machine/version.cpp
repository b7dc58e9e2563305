#include "vmm/machine/version.h"

namespace tapvm {
const char* version() { return TAPVM_VERSION; }
}  // namespace tapvm
