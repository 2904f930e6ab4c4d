// libFuzzer target: the YAML config parser and validator (parse_config).
#include <cstddef>
#include <cstdint>
#include <string>

#include "aftermath/config/config.hpp"
#include "aftermath/core/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const aftermath::JobConfig c = aftermath::parse_config(text, "fuzz.yaml");
    // What parses must round-trip.
    if (!(aftermath::parse_config(aftermath::to_yaml(c), "roundtrip.yaml") == c)) __builtin_trap();
  } catch (const aftermath::Error&) {
  }
  return 0;
}
