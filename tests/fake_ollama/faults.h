#pragma once
// The fault switchboard (contract "Fault switchboard"): GET/POST /_fake/faults, POST /_fake/reset,
// FAKE_OLLAMA_FAULTS at startup. Faults live in serve; the per-generation ones are handed to the
// runner with each completion request, so the runner process really hangs, spins, slows or dies.
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace fake_ollama {

// What one generation must do, decided (and counted) by serve when it dispatches to a runner.
struct GenerationFaults {
  int hangAfterTokens = -1;  // -1: no hang
  bool hangSpin = false;
  int crashAfterTokens = -1;  // -1: no crash
  double slowFactor = 1.0;
  bool slowOnlyWithFlashAttention = true;

  nlohmann::json toJson() const;
  static GenerationFaults fromJson(const nlohmann::json& j);
  bool any() const { return hangAfterTokens >= 0 || crashAfterTokens >= 0 || slowFactor != 1.0; }
};

class Faults {
 public:
  // Merges a JSON object. A null value clears that key. Unknown keys and wrong types are
  // rejected as a whole (nothing changes). serve_exit is returned, not stored.
  oasis::Result<std::optional<int>> merge(const nlohmann::json& patch);
  void reset() { *this = Faults{}; }
  nlohmann::json toJson() const;  // only keys that are set

  // Consumes hang_count / runner_crash_count for one generation.
  GenerationFaults takeForGeneration();

  std::optional<int> loadMs() const { return loadMs_; }
  bool loadFail() const { return loadFail_; }
  bool psHang() const { return psHang_; }

 private:
  std::optional<int> hangAfterTokens_;
  int hangCount_ = 1;  // remaining; -1 = every generation until cleared
  bool hangSpin_ = false;
  std::optional<double> slowFactor_;
  bool slowOnlyWithFlashAttention_ = true;
  std::optional<int> crashAfterTokens_;
  int crashCount_ = 1;  // extension: remaining crashes; -1 = every generation until cleared
  std::optional<int> loadMs_;
  bool loadFail_ = false;
  bool psHang_ = false;
};

}  // namespace fake_ollama
