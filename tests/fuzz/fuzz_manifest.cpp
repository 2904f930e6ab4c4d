// libFuzzer target: the batch manifest parser (parse_manifest; no file-system validation).
#include <cstddef>
#include <cstdint>
#include <string>

#include "aftermath/batch/manifest.hpp"
#include "aftermath/core/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto m = aftermath::batch::parse_manifest(text, "/base", "fuzz.yaml");
    (void)aftermath::batch::to_manifest_yaml(m);
  } catch (const aftermath::Error&) {
  }
  return 0;
}
