#pragma once
// Memory pressure assessor (incident Bug 2). A timer feeds MemoryObservations; the policy
// keeps a bounded window and judges level *and* gradient:
//
//   critical  if any of
//     - the OS says critical (macOS kern.memorystatus_vm_pressure_level == 4);
//     - available bytes below pauseBelowAvailableBytes;
//     - PSI memory "some" avg10 at or above psiCriticalPct;
//     - the incident's signature: free bytes fell by freeDropFactor within `window` AND the
//       swap-out rate is at or above swapoutPauseBytesPerSec;
//     - swap-out rate at or above the threshold while corroborated (available inside the
//       hysteresis band, OS level warn, or PSI at warn).
//   warn      any single gradient signal alone (free drop, swap-out rate, OS warn, PSI warn,
//             available inside the band). A warn never pauses.
//
// Why not pause on "free is low": macOS keeps free pages low on purpose (file cache,
// compressor) and a machine with effective swap reclaims without stalling - the incident
// report's "false positives on machines with effective swap". Free pages only count when
// they *fall fast* and swapping corroborates it (incident: free fell 100x and swap-outs went
// 0 -> 500k in 15 minutes).
//
// Transitions: `criticalConfirmations` critical assessments among the last twice as many
// -> Pause(memory_pressure)
// (+ EvictAll with OnCritical::PauseAndEvict) + event memory_pressure with the evidence.
// While paused, the stricter "clear" condition (not critical, available at or above
// resumeAboveAvailableBytes, swap-out rate below resumeRateFraction x threshold, OS level below
// critical, PSI below warn) must hold continuously for `resumeHold` -> Resume(memory_pressure)
// + event memory_recovered. Any non-clear sample restarts the hold, so a series oscillating
// around a threshold does not flap.
#include "common/clock.h"
#include "daemon/policy/types.h"

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace oasis::policy {

struct MemoryObservation {
  SteadyTime at{};
  std::uint64_t totalBytes = 0;
  std::uint64_t availableBytes = 0;  // what can be had without swapping (MemAvailable; macOS estimate)
  std::uint64_t freeBytes = 0;       // truly free pages x page size
  // Cumulative bytes swapped out since boot (vm_stat "Swapouts" or /proc/vmstat pswpout, times
  // the page size). A decrease means the counter reset (reboot, source switch).
  std::uint64_t swapoutsCumulative = 0;
  std::optional<int> osLevel;         // 1 normal, 2 warn, 4 critical (macOS); none elsewhere
  std::optional<double> psiSomeAvg10; // percent of wall time, Linux /proc/pressure/memory
};

enum class OnCritical { Pause, PauseAndEvict };
enum class PressureLevel { Ok, Warn, Critical };
enum class MemoryTrend { Unknown, Falling, Stable, Rising };  // available bytes, over rateWindow

std::string_view toString(PressureLevel level);  // "ok", "warn", "critical" (status "pressure")
std::string_view toString(MemoryTrend trend);    // "unknown", "falling", "stable", "rising"

struct MemoryPolicyConfig {
  std::uint64_t pauseBelowAvailableBytes = 2ull << 30;   // memory.pause_below_available_gb
  std::uint64_t resumeAboveAvailableBytes = 4ull << 30;  // memory.resume_above_available_gb
  double freeDropFactor = 10.0;                          // memory.free_drop_factor
  Seconds window{900.0};                                 // memory.window_s
  // memory.swapout_rate_pause, in BYTES per second of swap-out (pages x page size);
  // nullopt disables the swap-out triggers.
  std::optional<double> swapoutPauseBytesPerSec = 4.0 * 1024 * 1024;
  Seconds resumeHold{30.0};
  OnCritical onCritical = OnCritical::Pause;             // memory.on_critical

  // Finer knobs (defaults are fine).
  Seconds rateWindow{60.0};      // swap-out rate and trend are measured over this much history
  Seconds minRateSpan{10.0};     // a rate over less history than this is reported, not acted on
  double resumeRateFraction = 0.5;  // resume needs the swap-out rate below this x threshold
  double psiWarnPct = 10.0;
  double psiCriticalPct = 40.0;
  // Critical in this many of the last 2 x criticalConfirmations samples before pausing
  // (1 = at once): one glitched sample does not pause, an oscillation across the floor does.
  int criticalConfirmations = 2;
  std::size_t maxSamples = 4096;  // hard bound on the window, whatever the sampling rate
};

struct MemoryAssessment {
  PressureLevel level = PressureLevel::Ok;
  // Human, with numbers: "free memory fell 112x in 900 s (22.8 GiB -> 204 MiB) while swapping
  // out 9.1 MiB/s". While paused and not yet clear, says what resume is waiting for.
  std::vector<std::string> reasons;
  double swapoutsPerSec = 0.0;  // bytes/s over rateWindow (0 until two samples exist)
  bool swapRateReliable = false;  // measured over at least minRateSpan
  double freeDropRatio = 1.0;   // max free in window / free now
  double freeDropOverSec = 0.0; // seconds since that maximum
  double availableBytesPerSec = 0.0;
  MemoryTrend trend = MemoryTrend::Unknown;
  bool clear = true;  // meets the stricter resume condition
  std::uint64_t totalBytes = 0, availableBytes = 0, freeBytes = 0;
  std::optional<int> osLevel;
  std::optional<double> psiSomeAvg10;

  nlohmann::json toJson() const;  // the evidence carried by memory_pressure events
};

// Pure assessment of a window of samples (oldest first; the last one is "now").
// `paused` selects the wording of reasons while waiting for recovery.
MemoryAssessment assessMemory(const std::deque<MemoryObservation>& window,
                              const MemoryPolicyConfig& config, bool paused);

class MemoryPolicy {
 public:
  explicit MemoryPolicy(MemoryPolicyConfig config = {});

  // Feed one sample. Samples not newer than the previous one are ignored (empty Decision).
  Decision observe(const MemoryObservation& observation);

  const MemoryAssessment& assessment() const { return assessment_; }
  bool paused() const { return paused_; }
  std::size_t windowSize() const { return window_.size(); }

  // The memory source changed (or was re-opened): forget the window so counters from two
  // sources are never subtracted. Pause state is kept; the resume hold restarts.
  void resetWindow();
  // SIGHUP reload: new thresholds apply from the next sample; state is kept.
  void setConfig(MemoryPolicyConfig config) { config_ = std::move(config); }
  const MemoryPolicyConfig& config() const { return config_; }

 private:
  MemoryPolicyConfig config_;
  std::deque<MemoryObservation> window_;
  MemoryAssessment assessment_;
  bool paused_ = false;
  std::deque<bool> recentCritical_;
  SteadyTime pausedAt_{};
  std::optional<SteadyTime> clearSince_;
};

// "228 MiB", "22.8 GiB" - binary units, 3 significant digits.
std::string humanBytes(double bytes);

}  // namespace oasis::policy
