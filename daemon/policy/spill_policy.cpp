#include "daemon/policy/spill_policy.h"

#include <algorithm>

namespace oasis::policy {

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

}  // namespace

std::optional<double> evalRate(const EvalSample& sample) {
  if (sample.evalCount == 0 || sample.evalDuration.count() <= 0) return std::nullopt;
  double seconds = std::chrono::duration_cast<Seconds>(sample.evalDuration).count();
  return static_cast<double>(sample.evalCount) / seconds;
}

SpillPolicy::SpillPolicy(SpillConfig config) : config_(std::move(config)) {}

void SpillPolicy::onPs(const PsObservation& observation) {
  if (!observation.ok) return;
  for (const auto& pm : observation.models) {
    auto& m = models_[pm.name];
    m.size = pm.size;
    m.sizeVram = pm.sizeVram;
    m.fullyOnGpu = pm.size > 0 && pm.sizeVram == pm.size;
  }
}

void SpillPolicy::onRunnerCpu(const std::string& model, double cpuPct) {
  models_[model].cpuPct = cpuPct;
}

void SpillPolicy::resetModel(const std::string& model) {
  auto it = models_.find(model);
  if (it == models_.end()) return;
  it->second.armed = true;
  it->second.slowRates.clear();
  it->second.goodStreak = 0;
  it->second.cpuPct.reset();
  it->second.fullyOnGpu.reset();
}

void SpillPolicy::forgetBaseline(const std::string& model) { models_.erase(model); }

std::optional<double> SpillPolicy::baseline(const std::string& model) const {
  auto it = models_.find(model);
  return it == models_.end() ? std::nullopt : it->second.baseline;
}

bool SpillPolicy::suspected(const std::string& model) const {
  auto it = models_.find(model);
  return it != models_.end() && !it->second.armed;
}

Decision SpillPolicy::onEval(const EvalSample& sample) {
  Decision d;
  if (sample.evalCount < config_.minEvalCount) return d;
  auto rate = evalRate(sample);
  if (!rate) return d;
  auto& m = models_[sample.model];
  const int k = std::max(config_.baselineSamples, 1);
  const int need = std::max(config_.consecutive, 1);

  if (!m.baseline) {
    // Learn only from attempts that ran fully on the GPU (or before ps said otherwise).
    if (m.fullyOnGpu.value_or(true)) m.learning.push_back(*rate);
    if (static_cast<int>(m.learning.size()) >= k) {
      m.baseline = median(m.learning);
      m.learning.clear();
    }
    return d;
  }

  const double slowBelow = *m.baseline / config_.slowFactor;
  const bool gpuSays100 = m.fullyOnGpu.value_or(false);
  const bool cpuCorroborates = !m.cpuPct || *m.cpuPct >= config_.cpuHighPct;
  const bool suspicious = *rate < slowBelow && gpuSays100 && cpuCorroborates;

  if (!m.armed) {
    // Re-arm only after a clear recovery, so a rate hovering at the threshold fires once.
    if (*rate >= *m.baseline * config_.rearmFraction) {
      if (++m.goodStreak >= need) {
        m.armed = true;
        m.goodStreak = 0;
        m.slowRates.clear();
      }
    } else {
      m.goodStreak = 0;
    }
    return d;
  }

  if (!suspicious) {
    m.slowRates.clear();
    return d;
  }
  m.slowRates.push_back(*rate);
  if (static_cast<int>(m.slowRates.size()) < need) return d;

  double current = median({m.slowRates.begin(), m.slowRates.end()});
  m.armed = false;
  m.goodStreak = 0;
  m.slowRates.clear();
  const bool faOff = flashAttention_ == FlashAttentionSetting::Off;
  nlohmann::json detail = {
      {"baseline_tokens_per_s", *m.baseline},
      {"current_tokens_per_s", current},
      {"slowdown", current > 0 ? *m.baseline / current : 0.0},
      {"slow_factor", config_.slowFactor},
      {"consecutive", need},
      {"processor", "100% GPU"},
      {"size", m.size},
      {"size_vram", m.sizeVram},
      {"flash_attention", std::string(toString(flashAttention_))},
      {"fix", faOff ? "flash attention is already off: look for memory pressure (swap-outs) or "
                      "thermal throttling instead"
                    : "set OLLAMA_FLASH_ATTENTION=0 and restart serve; oasisd does this in "
                      "managed mode with ollama.flash_attention=auto"}};
  detail["runner_cpu_pct"] = m.cpuPct ? nlohmann::json(*m.cpuPct) : nlohmann::json(nullptr);
  d.events.push_back({EventKind::CpuSpillSuspected, sample.model, std::move(detail)});
  return d;
}

}  // namespace oasis::policy
