#include "daemon/policy/memory_policy.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace oasis::policy {

namespace {

double secondsBetween(SteadyTime from, SteadyTime to) {
  return std::chrono::duration_cast<Seconds>(to - from).count();
}

std::string fmt(const char* format, double a) {
  char buf[128];
  std::snprintf(buf, sizeof buf, format, a);
  return buf;
}

std::string ratioText(double ratio) {
  return ratio >= 10.0 ? fmt("%.0fx", ratio) : fmt("%.1fx", ratio);
}

std::string rateText(double bytesPerSec) { return humanBytes(bytesPerSec) + "/s"; }

// Smallest free value the drop ratio divides by: one 16 KiB page, so that "0 bytes free"
// gives a large finite ratio instead of infinity.
constexpr double kMinFreeForRatio = 16.0 * 1024;

}  // namespace

std::string humanBytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  double v = bytes;
  while (std::fabs(v) >= 1024.0 && unit < 4) {
    v /= 1024.0;
    ++unit;
  }
  char buf[64];
  if (unit == 0 || std::fabs(v) >= 100.0) {
    std::snprintf(buf, sizeof buf, "%.0f %s", v, kUnits[unit]);
  } else if (std::fabs(v) >= 10.0) {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[unit]);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f %s", v, kUnits[unit]);
  }
  return buf;
}

std::string_view toString(PressureLevel level) {
  switch (level) {
    case PressureLevel::Ok: return "ok";
    case PressureLevel::Warn: return "warn";
    case PressureLevel::Critical: return "critical";
  }
  return "ok";
}

std::string_view toString(MemoryTrend trend) {
  switch (trend) {
    case MemoryTrend::Unknown: return "unknown";
    case MemoryTrend::Falling: return "falling";
    case MemoryTrend::Stable: return "stable";
    case MemoryTrend::Rising: return "rising";
  }
  return "unknown";
}

nlohmann::json MemoryAssessment::toJson() const {
  nlohmann::json j = {{"level", std::string(toString(level))},
                      {"reasons", reasons},
                      {"total_bytes", totalBytes},
                      {"available_bytes", availableBytes},
                      {"free_bytes", freeBytes},
                      {"swapouts_per_s", swapoutsPerSec},
                      {"free_drop_ratio", freeDropRatio},
                      {"free_drop_over_s", freeDropOverSec},
                      {"available_bytes_per_s", availableBytesPerSec},
                      {"trend", std::string(toString(trend))}};
  j["os_level"] = osLevel ? nlohmann::json(*osLevel) : nlohmann::json(nullptr);
  j["psi_some_avg10"] = psiSomeAvg10 ? nlohmann::json(*psiSomeAvg10) : nlohmann::json(nullptr);
  return j;
}

MemoryAssessment assessMemory(const std::deque<MemoryObservation>& window,
                              const MemoryPolicyConfig& config, bool paused) {
  MemoryAssessment a;
  if (window.empty()) return a;
  const MemoryObservation& now = window.back();
  a.totalBytes = now.totalBytes;
  a.availableBytes = now.availableBytes;
  a.freeBytes = now.freeBytes;
  a.osLevel = now.osLevel;
  a.psiSomeAvg10 = now.psiSomeAvg10;

  // --- swap-out rate and available trend over rateWindow -------------------------------
  // Sum only positive steps: a counter that goes down was reset (reboot, source switch) and
  // its drop says nothing about swapping, so it must not produce a negative rate.
  std::size_t first = window.size() - 1;
  while (first > 0 && secondsBetween(window[first - 1].at, now.at) <= config.rateWindow.count()) {
    --first;
  }
  double rateSpan = secondsBetween(window[first].at, now.at);
  if (rateSpan > 0.0) {
    double swapped = 0.0;
    for (std::size_t i = first + 1; i < window.size(); ++i) {
      if (window[i].swapoutsCumulative >= window[i - 1].swapoutsCumulative) {
        swapped += static_cast<double>(window[i].swapoutsCumulative -
                                       window[i - 1].swapoutsCumulative);
      }
    }
    a.swapoutsPerSec = swapped / rateSpan;
    a.swapRateReliable = rateSpan >= config.minRateSpan.count();
    a.availableBytesPerSec = (static_cast<double>(now.availableBytes) -
                              static_cast<double>(window[first].availableBytes)) /
                             rateSpan;
    // Stable = moved less than 1% of RAM over the span.
    double change = a.availableBytesPerSec * rateSpan;
    double stableBand = 0.01 * static_cast<double>(std::max<std::uint64_t>(now.totalBytes, 1));
    a.trend = change < -stableBand  ? MemoryTrend::Falling
              : change > stableBand ? MemoryTrend::Rising
                                    : MemoryTrend::Stable;
  }

  // --- free drop over the whole window -------------------------------------------------
  std::size_t maxIdx = window.size() - 1;
  for (std::size_t i = 0; i < window.size(); ++i) {
    if (window[i].freeBytes > window[maxIdx].freeBytes) maxIdx = i;
  }
  a.freeDropRatio = static_cast<double>(window[maxIdx].freeBytes) /
                    std::max(static_cast<double>(now.freeBytes), kMinFreeForRatio);
  a.freeDropRatio = std::max(a.freeDropRatio, 1.0);
  a.freeDropOverSec = secondsBetween(window[maxIdx].at, now.at);

  // --- signals -------------------------------------------------------------------------
  const double threshold =
      config.swapoutPauseBytesPerSec.value_or(std::numeric_limits<double>::infinity());
  const bool swapHigh = a.swapRateReliable && a.swapoutsPerSec >= threshold;
  const bool freeFell = a.freeDropRatio >= config.freeDropFactor;
  const bool osCritical = now.osLevel && *now.osLevel >= 4;
  const bool osWarn = now.osLevel && *now.osLevel >= 2;
  const bool belowFloor = now.availableBytes < config.pauseBelowAvailableBytes;
  const bool inBand = now.availableBytes < config.resumeAboveAvailableBytes;
  const bool psiCritical = now.psiSomeAvg10 && *now.psiSomeAvg10 >= config.psiCriticalPct;
  const bool psiWarn = now.psiSomeAvg10 && *now.psiSomeAvg10 >= config.psiWarnPct;

  const std::string freeDropText =
      "free memory fell " + ratioText(a.freeDropRatio) + " in " + fmt("%.0f s", a.freeDropOverSec) +
      " (" + humanBytes(static_cast<double>(window[maxIdx].freeBytes)) + " -> " +
      humanBytes(static_cast<double>(now.freeBytes)) + ")";
  const std::string swapText = "swapping out " + rateText(a.swapoutsPerSec) + " (pause at " +
                               rateText(threshold) + ")";

  std::vector<std::string> critical;
  if (osCritical) critical.push_back(fmt("OS memory pressure level is critical (%.0f)", *now.osLevel));
  if (belowFloor) {
    critical.push_back("available " + humanBytes(static_cast<double>(now.availableBytes)) +
                       " is below the pause floor " +
                       humanBytes(static_cast<double>(config.pauseBelowAvailableBytes)));
  }
  if (psiCritical) {
    critical.push_back(fmt("PSI memory some avg10 %.1f%%", *now.psiSomeAvg10) +
                       fmt(" >= %.1f%%", config.psiCriticalPct));
  }
  if (freeFell && swapHigh) {
    critical.push_back(freeDropText + " while " + swapText);
  } else if (swapHigh && (inBand || osWarn || psiWarn)) {
    std::string why = inBand ? "available only " + humanBytes(static_cast<double>(now.availableBytes))
                      : osWarn ? std::string("OS pressure level warn")
                               : fmt("PSI memory some avg10 %.1f%%", *now.psiSomeAvg10);
    critical.push_back(swapText + " with " + why);
  }

  std::vector<std::string> warn;
  if (freeFell && !swapHigh) warn.push_back(freeDropText + " (no heavy swapping)");
  if (swapHigh && critical.empty()) warn.push_back(swapText);
  if (osWarn && !osCritical) warn.push_back(fmt("OS memory pressure level is warn (%.0f)", *now.osLevel));
  if (inBand && !belowFloor) {
    warn.push_back("available " + humanBytes(static_cast<double>(now.availableBytes)) +
                   " is below the resume level " +
                   humanBytes(static_cast<double>(config.resumeAboveAvailableBytes)));
  }
  if (psiWarn && !psiCritical) warn.push_back(fmt("PSI memory some avg10 %.1f%%", *now.psiSomeAvg10));

  if (!critical.empty()) {
    a.level = PressureLevel::Critical;
    a.reasons = std::move(critical);
  } else if (!warn.empty()) {
    a.level = PressureLevel::Warn;
    a.reasons = std::move(warn);
  }

  // --- the stricter condition to resume (hysteresis) ----------------------------------
  const bool swapCalm = a.swapoutsPerSec < config.resumeRateFraction * threshold;
  a.clear = a.level != PressureLevel::Critical && !inBand && swapCalm && !osCritical && !psiWarn;
  if (paused && !a.clear && a.level != PressureLevel::Critical) {
    if (inBand) {
      a.reasons.push_back("resume waits for available >= " +
                          humanBytes(static_cast<double>(config.resumeAboveAvailableBytes)));
    }
    if (!swapCalm) {
      a.reasons.push_back("resume waits for swap-out below " +
                          rateText(config.resumeRateFraction * threshold));
    }
  }
  return a;
}

MemoryPolicy::MemoryPolicy(MemoryPolicyConfig config) : config_(std::move(config)) {}

void MemoryPolicy::resetWindow() {
  window_.clear();
  clearSince_.reset();
  recentCritical_.clear();
}

Decision MemoryPolicy::observe(const MemoryObservation& observation) {
  if (!window_.empty() && observation.at <= window_.back().at) return {};
  window_.push_back(observation);
  // Keep exactly the samples within `window` of now, and never more than maxSamples.
  while (window_.size() > 1 &&
         secondsBetween(window_.front().at, observation.at) > config_.window.count()) {
    window_.pop_front();
  }
  while (window_.size() > std::max<std::size_t>(config_.maxSamples, 2)) window_.pop_front();

  assessment_ = assessMemory(window_, config_, paused_);
  const SteadyTime now = observation.at;
  Decision d;

  const int confirmations = std::max(config_.criticalConfirmations, 1);
  recentCritical_.push_back(assessment_.level == PressureLevel::Critical);
  while (recentCritical_.size() > static_cast<std::size_t>(2 * confirmations)) {
    recentCritical_.pop_front();
  }
  const auto criticalCount = std::count(recentCritical_.begin(), recentCritical_.end(), true);

  if (!paused_) {
    if (assessment_.level == PressureLevel::Critical && criticalCount >= confirmations) {
      paused_ = true;
      pausedAt_ = now;
      clearSince_.reset();
      d.actions.emplace_back(Pause{PauseReason::MemoryPressure});
      if (config_.onCritical == OnCritical::PauseAndEvict) d.actions.emplace_back(EvictAll{});
      nlohmann::json detail = assessment_.toJson();
      detail["action"] =
          config_.onCritical == OnCritical::PauseAndEvict ? "pause_and_evict" : "pause";
      d.events.push_back({EventKind::MemoryPressure, std::nullopt, std::move(detail)});
    }
    return d;
  }

  // Paused: resume only after `resumeHold` of continuously clear samples.
  if (!assessment_.clear) {
    clearSince_.reset();
    return d;
  }
  if (!clearSince_) clearSince_ = now;
  double clearFor = secondsBetween(*clearSince_, now);
  if (clearFor >= config_.resumeHold.count()) {
    paused_ = false;
    d.actions.emplace_back(Resume{PauseReason::MemoryPressure});
    nlohmann::json detail = assessment_.toJson();
    detail["paused_for_s"] = secondsBetween(pausedAt_, now);
    detail["clear_for_s"] = clearFor;
    d.events.push_back({EventKind::MemoryRecovered, std::nullopt, std::move(detail)});
    clearSince_.reset();
  }
  return d;
}

}  // namespace oasis::policy
