#pragma once
// GET /v1/diagnosis: the incident report's reasoning, rebuilt from stored rows for a window.
// Four candidate causes of slow or failing trials, each with a verdict and its numbers:
//   cold_start        load_duration of the slow attempts (milliseconds = warm, so not a reload)
//   memory_pressure   free-memory drop factor and swap-out growth in the window
//   cpu_spill         eval rate against the model's own baseline, runner CPU%, flash attention
//   stopping_deadlock models stuck "Stopping..." without progress, evictions and kills
// Pure over the store: no clock reads, the window is given.
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "daemon/store.h"

namespace oasis {

struct DiagnosisOptions {
  double freeDropFactor = 10;   // memory.free_drop_factor
  double spillFactor = 3;       // cpu_spill.factor
  double slowLatencyMs = 0;     // attempts slower than this count as slow (0 = 2x the window's p50)
};

// {"window": {...}, "findings": [{"kind", "verdict": "cause"|"not_cause"|"no_data", "summary", "evidence"}]}
nlohmann::json diagnose(Store& store, WallTime since, WallTime until, const DiagnosisOptions& options);

}  // namespace oasis
