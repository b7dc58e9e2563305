#pragma once
namespace tapvm {
// The project version from CMakeLists.txt.
const char* version();
}  // namespace tapvm
