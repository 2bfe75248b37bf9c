#pragma once
// CPU spill detector (incident Bug 3). `ollama ps` says "100% GPU" as soon as every layer is
// offloaded, even when CPU-scheduled ops (unsupported flash-attention kernels) do the work
// (ollama-behaviour.md §1, "size and size_vram"). So ps alone cannot see a spill; the eval
// rate can: each model's tokens/s (eval_count / eval_duration) is compared with its own
// baseline. `consecutive` attempts slower than baseline / slowFactor while ps says 100% GPU
// (and, when known, the runner burns CPU) -> one cpu_spill_suspected event per episode. The
// detector re-arms after `consecutive` attempts back at or above baseline x rearmFraction,
// or when the model's runner is relaunched (resetModel).
#include "common/clock.h"
#include "daemon/policy/flash_attention_policy.h"
#include "daemon/policy/recovery_policy.h"
#include "daemon/policy/types.h"

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace oasis::policy {

// From a successful attempt's final stats.
struct EvalSample {
  std::string model;
  SteadyTime at{};
  std::uint64_t evalCount = 0;
  std::chrono::nanoseconds evalDuration{0};  // Ollama reports nanoseconds
};

struct SpillConfig {
  int baselineSamples = 5;        // K: baseline = median rate of the first K usable attempts
  double slowFactor = 3.0;        // suspicious when rate < baseline / slowFactor
  int consecutive = 3;            // M suspicious attempts in a row
  // Runner CPU% (100 = one core) that corroborates, when known: a GPU-bound runner idles
  // its CPU, a spilled graph keeps several cores busy.
  double cpuHighPct = 150.0;
  std::uint64_t minEvalCount = 8; // shorter generations time too noisily to judge
  double rearmFraction = 0.5;     // back to >= baseline x this for M attempts -> re-armed
};

class SpillPolicy {
 public:
  explicit SpillPolicy(SpillConfig config = {});

  // The setting the server runs with, named in the event ("on|off|unset|unknown").
  void setFlashAttention(FlashAttentionSetting setting) { flashAttention_ = setting; }
  // Latest ps: records per model whether it is fully offloaded (size_vram == size > 0).
  void onPs(const PsObservation& observation);
  void onRunnerCpu(const std::string& model, double cpuPct);
  // Feed a successful attempt. Returns cpu_spill_suspected once per episode.
  Decision onEval(const EvalSample& sample);
  // The model's runner was relaunched (server restart, reload): re-arm, keep the baseline.
  void resetModel(const std::string& model);
  // Forget the baseline too (e.g. the operator changed the model's options).
  void forgetBaseline(const std::string& model);

  std::optional<double> baseline(const std::string& model) const;
  bool suspected(const std::string& model) const;  // fired and not yet re-armed
  const SpillConfig& config() const { return config_; }
  void setConfig(SpillConfig config) { config_ = std::move(config); }

 private:
  struct ModelSpill {
    std::vector<double> learning;        // rates toward the baseline
    std::optional<double> baseline;
    std::deque<double> slowRates;        // current suspicious run
    int goodStreak = 0;
    bool armed = true;
    std::optional<bool> fullyOnGpu;      // from the last ps that listed the model
    std::uint64_t size = 0, sizeVram = 0;
    std::optional<double> cpuPct;
  };

  SpillConfig config_;
  FlashAttentionSetting flashAttention_ = FlashAttentionSetting::Unknown;
  std::map<std::string, ModelSpill, std::less<>> models_;
};

// tokens per second, or nullopt when the sample cannot be timed.
std::optional<double> evalRate(const EvalSample& sample);

}  // namespace oasis::policy
