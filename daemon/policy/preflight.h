#pragma once
// Preflight: does the machine have the memory a model needs before a run starts on it?
// (incident: "gemma4:e4b should not start with less than ~8 GB free"). Compared against
// *available* memory, not free pages, to avoid the report's "false positives on machines
// with effective swap".
#include "daemon/policy/types.h"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace oasis::policy {

enum class PreflightMode { Block, Warn };  // preflight.mode
std::string_view toString(PreflightMode mode);
std::optional<PreflightMode> parsePreflightMode(std::string_view text);

struct PreflightConfig {
  // preflight.min_free_gb, converted to bytes by the config layer (1 GB = 2^30 here).
  std::uint64_t defaultMinFreeBytes = 4ull << 30;
  std::map<std::string, std::uint64_t, std::less<>> perModel = {{"gemma4:e4b", 8ull << 30}};
  PreflightMode mode = PreflightMode::Block;
};

struct PreflightResult {
  bool ok = true;          // may the run start? (sufficient, or mode warn)
  bool sufficient = true;  // available >= need
  std::string model;
  std::uint64_t needBytes = 0;
  std::uint64_t availableBytes = 0;
  std::string message;

  // GET /v1/preflight: {"ok", "model", "need_bytes", "available_bytes", "message"} (+ "sufficient").
  nlohmann::json toJson() const;
};

// The model's row, else "name:latest" for an untagged name (and the reverse), else default.
std::uint64_t requiredBytes(const PreflightConfig& config, std::string_view model);

PreflightResult preflight(const PreflightConfig& config, std::string_view model,
                          std::uint64_t availableBytes);

// preflight_failed when memory is insufficient (in both modes; detail says which mode), and
// nothing otherwise. Pausing with reason `preflight` is the run layer's call.
Decision preflightDecision(const PreflightResult& result, PreflightMode mode);

}  // namespace oasis::policy
