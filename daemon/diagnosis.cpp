#include "daemon/diagnosis.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string_view>

namespace oasis {

using nlohmann::json;

namespace {

json finding(const std::string& kind, const std::string& verdict, const std::string& summary, json evidence) {
  json f;
  f["kind"] = kind;
  f["verdict"] = verdict;
  f["summary"] = summary;
  f["evidence"] = std::move(evidence);
  return f;
}

std::string fmt1(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

}  // namespace

json diagnose(Store& store, WallTime since, WallTime until, const DiagnosisOptions& options) {
  json out;
  out["window"] = {{"since", formatIso8601Utc(since)}, {"until", formatIso8601Utc(until)}};
  json findings = json::array();

  auto attempts = store.attemptsBetween(since, until);
  std::vector<double> okLatency;
  std::size_t failed = 0;
  for (auto& a : attempts) {
    if (a.outcome == "ok" && a.latencyMs) okLatency.push_back(*a.latencyMs);
    if (a.outcome != "ok" && a.outcome != "interrupted") ++failed;
  }
  auto p50 = percentile(okLatency, 50);
  double slowMs = options.slowLatencyMs > 0 ? options.slowLatencyMs : (p50 ? *p50 * 2 : 0);

  // The window's events, read once; each finding below takes the kinds it needs, in id order.
  const auto events = store.eventsBetween(since, until);
  auto eventsOfKind = [&events](std::string_view kind) {
    std::vector<const StoredEvent*> ofKind;
    for (auto& e : events)
      if (e.kind == kind) ofKind.push_back(&e);
    return ofKind;
  };

  // --- cold start: were the slow or failed attempts paying for a model load? The window's first
  // load is expected (someone has to load the model); loads after the model had already answered
  // warm are reloads, and only reloads can explain a run that was healthy and then got slow.
  {
    std::vector<const AttemptRow*> byStart;
    for (auto& a : attempts) byStart.push_back(&a);
    std::stable_sort(byStart.begin(), byStart.end(),
                     [](const AttemptRow* x, const AttemptRow* y) { return x->startedAt < y->startedAt; });
    // The first load after oasisd (or anyone) unloaded the model is the recovery's price, not a
    // cold-start problem.
    std::vector<WallTime> unloads;
    for (auto& e : events)
      if (e.kind == "runner_killed" || e.kind == "evict_requested" || e.kind == "server_restarted" ||
          e.kind == "server_exited")
        unloads.push_back(e.at);
    std::sort(unloads.begin(), unloads.end());
    std::size_t nextUnload = 0;
    bool unloadPending = false;
    constexpr double kColdMs = 1000;
    std::vector<double> slowLoads;
    std::size_t slow = 0, reloads = 0, initialLoads = 0, recoveryLoads = 0;
    bool sawWarm = false;
    for (auto* a : byStart) {
      while (nextUnload < unloads.size() && unloads[nextUnload] <= a->startedAt) {
        unloadPending = true;
        ++nextUnload;
      }
      bool cold = a->loadDurationMs && *a->loadDurationMs >= kColdMs;
      if (cold) {
        if (!sawWarm) ++initialLoads;
        else if (unloadPending) ++recoveryLoads;
        else ++reloads;
        unloadPending = false;
      }
      if (a->outcome == "ok" && a->loadDurationMs && !cold) sawWarm = true;
      bool isSlow = a->outcome != "ok" || (a->latencyMs && slowMs > 0 && *a->latencyMs > slowMs);
      if (!isSlow) continue;
      ++slow;
      if (a->loadDurationMs) slowLoads.push_back(*a->loadDurationMs);
    }
    json ev = {{"slow_or_failed_attempts", slow},
               {"with_load_duration", slowLoads.size()},
               {"initial_loads", initialLoads},
               {"loads_after_unload", recoveryLoads},
               {"reloads", reloads}};
    if (slowLoads.empty()) {
      findings.push_back(finding("cold_start", slow ? "not_cause" : "no_data",
                                 slow ? "slow attempts never reached a final chunk; no load was measured on them"
                                      : "no slow or failed attempts in the window",
                                 ev));
    } else {
      auto med = *percentile(slowLoads, 50);
      ev["median_load_duration_ms"] = med;
      ev["max_load_duration_ms"] = *std::max_element(slowLoads.begin(), slowLoads.end());
      bool cause = med >= kColdMs && reloads > 0;
      std::string summary;
      if (cause)
        summary = "the model was reloaded " + std::to_string(reloads) + " time(s) after it had been warm; slow attempts paid a load (median " +
                  fmt1(med / 1000) + " s)";
      else if (med >= kColdMs)
        summary = "cold loads were the window's first or followed an unload (" + fmt1(med / 1000) +
                  " s median); the model stayed warm otherwise";
      else
        summary = "the model was warm: median load_duration " + fmt1(med) + " ms";
      findings.push_back(finding("cold_start", cause ? "cause" : "not_cause", summary, ev));
    }
  }

  // --- memory pressure: the gradient (free drop factor, swap-out growth) and pauses.
  {
    auto samples = store.memorySamplesBetween(since, until);
    auto pressureEvents = eventsOfKind("memory_pressure");
    if (samples.empty()) {
      findings.push_back(finding("memory_pressure", "no_data", "no memory samples in the window", json::object()));
    } else {
      std::uint64_t maxFree = 0, minFree = UINT64_MAX;
      std::uint64_t swapStart = samples.front().swapoutsBytes, swapEnd = samples.back().swapoutsBytes;
      std::size_t critical = 0;
      for (auto& s : samples) {
        maxFree = std::max(maxFree, s.freeBytes);
        minFree = std::min(minFree, s.freeBytes);
        if (s.pressure == "critical") ++critical;
      }
      double drop = minFree > 0 ? static_cast<double>(maxFree) / static_cast<double>(minFree) : static_cast<double>(maxFree);
      json ev = {{"free_bytes_max", maxFree},
                 {"free_bytes_min", minFree},
                 {"free_drop_factor", drop},
                 {"swapouts_bytes_delta", swapEnd >= swapStart ? swapEnd - swapStart : 0},
                 {"critical_samples", critical},
                 {"pauses", pressureEvents.size()}};
      bool cause = !pressureEvents.empty() || critical > 0 || drop >= options.freeDropFactor;
      findings.push_back(finding("memory_pressure", cause ? "cause" : "not_cause",
                                 cause ? "free memory fell " + fmt1(drop) + "x and oasisd saw critical pressure " +
                                             std::to_string(critical) + " times"
                                       : "memory stayed healthy (free fell at most " + fmt1(drop) + "x)",
                                 ev));
    }
  }

  // --- CPU spill: eval rate against the model's own baseline, runner CPU and flash attention.
  {
    auto spill = eventsOfKind("cpu_spill_suspected");
    // Eval rate of each completed attempt, tokens/s; generations shorter than 50 ms are left out,
    // their rate is mostly scheduling noise.
    std::vector<double> all;
    for (auto& a : attempts) {
      if (a.outcome == "ok" && a.evalCount && a.evalDurationMs && *a.evalDurationMs >= 50)
        all.push_back(static_cast<double>(*a.evalCount) / (*a.evalDurationMs / 1000.0));
    }
    auto runners = store.runnerSamplesBetween(since, until);
    double maxCpu = 0;
    std::string fa = "unknown";
    for (auto& r : runners) {
      maxCpu = std::max(maxCpu, r.cpuPct);
      if (!r.flashAttention.empty()) fa = r.flashAttention;
    }
    json ev = {{"suspected_events", spill.size()}, {"runner_cpu_pct_max", maxCpu}, {"flash_attention", fa}};
    if (all.size() >= 2) {
      ev["eval_rate_max_tps"] = *std::max_element(all.begin(), all.end());
      ev["eval_rate_min_tps"] = *std::min_element(all.begin(), all.end());
      ev["eval_rate_p50_tps"] = *percentile(all, 50);
    }
    // From the rows alone: a share of completed attempts generating spillFactor times slower than
    // the window's fast attempts (its p90 rate stands for the model's baseline).
    bool slowByRate = false;
    if (all.size() >= 4) {
      double baseline = *percentile(all, 90);
      std::size_t slowCount = 0;
      for (double r : all)
        if (r * options.spillFactor <= baseline) ++slowCount;
      double share = static_cast<double>(slowCount) / static_cast<double>(all.size());
      ev["baseline_rate_tps"] = baseline;
      ev["attempts_below_baseline_over_factor"] = slowCount;
      slowByRate = slowCount >= 2 && share >= 0.1;
    }
    if (!spill.empty() || slowByRate) {
      if (!spill.empty()) ev["detail"] = spill.back()->detail;
      findings.push_back(finding("cpu_spill", "cause",
                                 "generation ran " + fmt1(options.spillFactor) +
                                     "x or more slower than the model's own baseline while the model was warm"
                                     " (flash attention " + fa + ", runner CPU up to " + fmt1(maxCpu) +
                                     "%): set OLLAMA_FLASH_ATTENTION=0 and restart serve",
                                 ev));
    } else {
      findings.push_back(finding("cpu_spill", all.empty() ? "no_data" : "not_cause",
                                 all.empty() ? "no completed attempts to measure eval rate"
                                             : "eval rate stayed within " + fmt1(options.spillFactor) + "x of its baseline",
                                 ev));
    }
  }

  // --- Stopping deadlock: stuck "Stopping..." models, evictions, kills.
  {
    auto stopping = eventsOfKind("stopping_detected");
    auto kills = eventsOfKind("runner_killed");
    auto evicts = eventsOfKind("evict_requested");
    auto stalls = eventsOfKind("stall_detected");
    std::size_t stalledAttempts = 0;
    for (auto& a : attempts)
      if (a.outcome == "stalled" || a.outcome == "timeout") ++stalledAttempts;
    json ev = {{"stalled_or_timed_out_attempts", stalledAttempts},
               {"stall_streaks", stalls.size()},
               {"evictions", evicts.size()},
               {"stopping_detected", stopping.size()},
               {"runners_killed", kills.size()}};
    if (!stopping.empty()) ev["last_stopping"] = stopping.back()->detail;
    bool cause = !stopping.empty() || !kills.empty();
    findings.push_back(finding("stopping_deadlock", cause ? "cause" : (stalledAttempts ? "not_cause" : "no_data"),
                               cause ? "a model sat in \"Stopping...\" without progress after an eviction; oasisd killed " +
                                           std::to_string(kills.size()) + " runner(s)"
                                     : "no model was stuck in \"Stopping...\"",
                               ev));
  }

  out["attempts"] = {{"total", attempts.size()}, {"failed", failed}, {"p50_ms", p50 ? json(*p50) : json()}};
  out["findings"] = findings;
  return out;
}

}  // namespace oasis
