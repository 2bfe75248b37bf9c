#include "daemon/diagnosis.h"

#include <algorithm>
#include <cmath>
#include <map>

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

  // --- cold start: were the slow or failed attempts paying for a model load?
  {
    std::vector<double> loads;
    std::size_t slow = 0;
    for (auto& a : attempts) {
      bool isSlow = a.outcome != "ok" || (a.latencyMs && slowMs > 0 && *a.latencyMs > slowMs);
      if (!isSlow) continue;
      ++slow;
      if (a.loadDurationMs) loads.push_back(*a.loadDurationMs);
    }
    json ev = {{"slow_or_failed_attempts", slow}, {"with_load_duration", loads.size()}};
    if (loads.empty()) {
      findings.push_back(finding("cold_start", slow ? "not_cause" : "no_data",
                                 slow ? "slow attempts never reached a final chunk; no load was measured on them"
                                      : "no slow or failed attempts in the window",
                                 ev));
    } else {
      auto med = *percentile(loads, 50);
      ev["median_load_duration_ms"] = med;
      ev["max_load_duration_ms"] = *std::max_element(loads.begin(), loads.end());
      bool cold = med >= 1000;
      findings.push_back(finding("cold_start", cold ? "cause" : "not_cause",
                                 cold ? "slow attempts paid a model load (median load " + fmt1(med / 1000) + " s)"
                                      : "the model was warm: median load_duration " + fmt1(med) + " ms",
                                 ev));
    }
  }

  // --- memory pressure: the gradient (free drop factor, swap-out growth) and pauses.
  {
    auto samples = store.memorySamplesBetween(since, until);
    auto pressureEvents = store.eventsBetween(since, until, "memory_pressure");
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
    auto spill = store.eventsBetween(since, until, "cpu_spill_suspected");
    std::map<std::string, std::vector<double>> rates;
    for (auto& a : attempts) {
      if (a.outcome == "ok" && a.evalCount && a.evalDurationMs && *a.evalDurationMs > 0)
        rates["all"].push_back(static_cast<double>(*a.evalCount) / (*a.evalDurationMs / 1000.0));
    }
    auto runners = store.runnerSamplesBetween(since, until);
    double maxCpu = 0;
    std::string fa = "unknown";
    for (auto& r : runners) {
      maxCpu = std::max(maxCpu, r.cpuPct);
      if (!r.flashAttention.empty()) fa = r.flashAttention;
    }
    json ev = {{"suspected_events", spill.size()}, {"runner_cpu_pct_max", maxCpu}, {"flash_attention", fa}};
    auto& all = rates["all"];
    if (all.size() >= 2) {
      ev["eval_rate_max_tps"] = *std::max_element(all.begin(), all.end());
      ev["eval_rate_min_tps"] = *std::min_element(all.begin(), all.end());
      ev["eval_rate_p50_tps"] = *percentile(all, 50);
    }
    if (!spill.empty()) {
      ev["detail"] = spill.back().detail;
      findings.push_back(finding("cpu_spill", "cause",
                                 "generation ran several times slower than the model's own baseline while ps said 100% GPU"
                                 " (flash attention " + fa + "): set OLLAMA_FLASH_ATTENTION=0 and restart serve",
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
    auto stopping = store.eventsBetween(since, until, "stopping_detected");
    auto kills = store.eventsBetween(since, until, "runner_killed");
    auto evicts = store.eventsBetween(since, until, "evict_requested");
    auto stalls = store.eventsBetween(since, until, "stall_detected");
    std::size_t stalledAttempts = 0;
    for (auto& a : attempts)
      if (a.outcome == "stalled" || a.outcome == "timeout") ++stalledAttempts;
    json ev = {{"stalled_or_timed_out_attempts", stalledAttempts},
               {"stall_streaks", stalls.size()},
               {"evictions", evicts.size()},
               {"stopping_detected", stopping.size()},
               {"runners_killed", kills.size()}};
    if (!stopping.empty()) ev["last_stopping"] = stopping.back().detail;
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
