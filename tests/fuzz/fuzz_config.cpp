// The config parser (common/config.cpp): oasisd --config, --check-config and SIGHUP reloads
// read this text. Arbitrary bytes in; parseConfig must return (never throw), and a config it
// accepts must survive the round trip the README promises for `--check-config --print`:
// parseConfig(configToJson(c).dump()) accepts it again and yields the same Config.
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/config.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto load = oasis::parseConfig(text);
  if (!load.ok()) {
    // Every problem has a message, and formatting them is total.
    for (auto& p : load.problems) FUZZ_CHECK(!p.message.empty());
    auto listed = oasis::formatConfigProblems(load.problems);
    FUZZ_CHECK(!listed.empty());
    return 0;
  }
  FUZZ_CHECK(oasis::validateConfig(load.config).empty());
  auto printed = oasis::configToJson(load.config).dump(2, ' ', false, nlohmann::json::error_handler_t::strict);
  auto again = oasis::parseConfig(printed);
  if (!again.ok()) {
    std::fprintf(stderr, "re-parse of the printed config failed:\n%s\n%s\n", printed.c_str(),
                 oasis::formatConfigProblems(again.problems).c_str());
  }
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again.config == load.config);
  return 0;
}
