// The config parser (common/config.cpp): oasisd --config, --check-config and SIGHUP reloads
// read this text. Arbitrary bytes in; parseConfig must return (never throw), and a config it
// accepts must survive the round trip the README promises for `--check-config --print`:
// parseConfig(configToJson(c).dump()) accepts it again and yields the same Config. And an
// accepted config is one the daemon can use: every duration fits the nanosecond counts of its
// clocks (SteadyTime, WallTime, Asio timers) and every GiB threshold converts to bytes (the
// conversions below are the daemon's own; UBSan checks them).
#include <cmath>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/config.h"
#include "fuzz_check.h"

namespace {

// A duration in seconds that the daemon turns into std::chrono nanoseconds (int64).
bool fitsNanoseconds(double seconds) { return std::isfinite(seconds) && std::fabs(seconds) < 9.2e9; }

void checkUsable(const oasis::Config& c) {
  for (double s : {c.requestTimeoutS, c.firstTokenTimeoutS, c.stallTimeoutS, c.stoppingGraceS, c.psIntervalS,
                   c.shutdownTimeoutS, c.ollama.psTimeoutS, c.ollama.healthTimeoutS, c.ollama.stopTimeoutS,
                   c.ollama.startTimeoutS, c.ollama.restart.initialBackoffS, c.ollama.restart.maxBackoffS,
                   c.ollama.restart.healthyResetS, c.memory.source.timeoutS, c.memory.intervalS, c.memory.windowS,
                   c.memory.resumeHoldS, c.retry.initialBackoffS, c.retry.maxBackoffS, c.store.sampleRetentionS}) {
    if (!fitsNanoseconds(s)) std::fprintf(stderr, "accepted a duration of %g s\n", s);
    FUZZ_CHECK(fitsNanoseconds(s));
  }
  // The trial-level bound the compat surface waits for (trials.cpp handleCompat), in ms.
  double bound = (c.requestTimeoutS * c.maxAttempts + c.retry.maxBackoffS * c.maxAttempts + 60) * 1000;
  FUZZ_CHECK(bound < 9.2e18);
  (void)c.memory.pauseBelowAvailableBytes();
  (void)c.memory.resumeAboveAvailableBytes();
  for (auto& [model, gb] : c.preflight.minFreeGb) {
    double bytes = gb * oasis::MemoryConfig::kBytesPerGb;
    FUZZ_CHECK(std::isfinite(bytes) && bytes >= 0 && bytes < 1.8e19);
  }
}

}  // namespace

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
  checkUsable(load.config);
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
