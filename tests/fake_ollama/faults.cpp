#include "tests/fake_ollama/faults.h"

#include <spdlog/spdlog.h>

namespace fake_ollama {

using nlohmann::json;

json GenerationFaults::toJson() const {
  return json{{"hang_after_tokens", hangAfterTokens},
              {"hang_spin", hangSpin},
              {"crash_after_tokens", crashAfterTokens},
              {"slow_factor", slowFactor},
              {"slow_only_with_flash_attention", slowOnlyWithFlashAttention}};
}

GenerationFaults GenerationFaults::fromJson(const json& j) {
  GenerationFaults g;
  if (!j.is_object()) return g;
  g.hangAfterTokens = j.value("hang_after_tokens", -1);
  g.hangSpin = j.value("hang_spin", false);
  g.crashAfterTokens = j.value("crash_after_tokens", -1);
  g.slowFactor = j.value("slow_factor", 1.0);
  g.slowOnlyWithFlashAttention = j.value("slow_only_with_flash_attention", true);
  return g;
}

namespace {

oasis::Status wantInt(const json& v, const char* key, int min, int max) {
  if (!v.is_number_integer()) return oasis::Error(std::string(key) + " must be an integer");
  auto n = v.get<long long>();
  if (n < min || n > max)
    return oasis::Error(std::string(key) + " must be between " + std::to_string(min) + " and " + std::to_string(max));
  return {};
}

oasis::Status wantBool(const json& v, const char* key) {
  if (!v.is_boolean()) return oasis::Error(std::string(key) + " must be a boolean");
  return {};
}

}  // namespace

oasis::Result<std::optional<int>> Faults::merge(const json& patch) {
  if (!patch.is_object()) return oasis::Error("faults must be a JSON object");
  Faults next = *this;
  std::optional<int> exitCode;
  bool hangCountGiven = patch.contains("hang_count") && !patch["hang_count"].is_null();
  bool crashCountGiven = patch.contains("runner_crash_count") && !patch["runner_crash_count"].is_null();
  for (const auto& [key, v] : patch.items()) {
    bool clear = v.is_null();
    oasis::Status st;
    if (key == "hang_after_tokens") {
      if (clear) { next.hangAfterTokens_.reset(); continue; }
      if (!(st = wantInt(v, "hang_after_tokens", 0, 1 << 30))) return st.error();
      next.hangAfterTokens_ = v.get<int>();
      if (!hangCountGiven) next.hangCount_ = 1;  // arming a new hang re-arms its default count
    } else if (key == "hang_count") {
      if (clear) { next.hangCount_ = 1; continue; }
      if (!(st = wantInt(v, "hang_count", -1, 1 << 30))) return st.error();
      next.hangCount_ = v.get<int>();
    } else if (key == "hang_spin") {
      if (clear) { next.hangSpin_ = false; continue; }
      if (!(st = wantBool(v, "hang_spin"))) return st.error();
      next.hangSpin_ = v.get<bool>();
    } else if (key == "slow_factor") {
      if (clear) { next.slowFactor_.reset(); continue; }
      if (!v.is_number() || v.get<double>() <= 0) return oasis::Error("slow_factor must be a number > 0");
      next.slowFactor_ = v.get<double>();
    } else if (key == "slow_only_with_flash_attention") {
      if (clear) { next.slowOnlyWithFlashAttention_ = true; continue; }
      if (!(st = wantBool(v, "slow_only_with_flash_attention"))) return st.error();
      next.slowOnlyWithFlashAttention_ = v.get<bool>();
    } else if (key == "runner_crash_after_tokens") {
      if (clear) { next.crashAfterTokens_.reset(); continue; }
      if (!(st = wantInt(v, "runner_crash_after_tokens", 0, 1 << 30))) return st.error();
      next.crashAfterTokens_ = v.get<int>();
      if (!crashCountGiven) next.crashCount_ = 1;
    } else if (key == "runner_crash_count") {
      if (clear) { next.crashCount_ = 1; continue; }
      if (!(st = wantInt(v, "runner_crash_count", -1, 1 << 30))) return st.error();
      next.crashCount_ = v.get<int>();
    } else if (key == "load_ms") {
      if (clear) { next.loadMs_.reset(); continue; }
      if (!(st = wantInt(v, "load_ms", 0, 24 * 3600 * 1000))) return st.error();
      next.loadMs_ = v.get<int>();
    } else if (key == "load_fail") {
      if (clear) { next.loadFail_ = false; continue; }
      if (!(st = wantBool(v, "load_fail"))) return st.error();
      next.loadFail_ = v.get<bool>();
    } else if (key == "ps_hang") {
      if (clear) { next.psHang_ = false; continue; }
      if (!(st = wantBool(v, "ps_hang"))) return st.error();
      next.psHang_ = v.get<bool>();
    } else if (key == "serve_exit") {
      if (clear) continue;
      if (!(st = wantInt(v, "serve_exit", 0, 255))) return st.error();
      exitCode = v.get<int>();
    } else {
      return oasis::Error("unknown fault key \"" + key + "\"");
    }
  }
  *this = next;
  return exitCode;
}

json Faults::toJson() const {
  json j = json::object();
  if (hangAfterTokens_) {
    j["hang_after_tokens"] = *hangAfterTokens_;
    j["hang_count"] = hangCount_;
    j["hang_spin"] = hangSpin_;
  } else if (hangSpin_) {
    j["hang_spin"] = true;
  }
  if (slowFactor_) {
    j["slow_factor"] = *slowFactor_;
    j["slow_only_with_flash_attention"] = slowOnlyWithFlashAttention_;
  } else if (!slowOnlyWithFlashAttention_) {
    j["slow_only_with_flash_attention"] = false;
  }
  if (crashAfterTokens_) {
    j["runner_crash_after_tokens"] = *crashAfterTokens_;
    j["runner_crash_count"] = crashCount_;
  }
  if (loadMs_) j["load_ms"] = *loadMs_;
  if (loadFail_) j["load_fail"] = true;
  if (psHang_) j["ps_hang"] = true;
  return j;
}

GenerationFaults Faults::takeForGeneration() {
  GenerationFaults g;
  if (hangAfterTokens_ && hangCount_ != 0) {
    g.hangAfterTokens = *hangAfterTokens_;
    g.hangSpin = hangSpin_;
    if (hangCount_ > 0 && --hangCount_ == 0) hangAfterTokens_.reset();  // used up
  }
  if (crashAfterTokens_ && crashCount_ != 0) {
    g.crashAfterTokens = *crashAfterTokens_;
    if (crashCount_ > 0 && --crashCount_ == 0) crashAfterTokens_.reset();
  }
  if (slowFactor_) g.slowFactor = *slowFactor_;
  g.slowOnlyWithFlashAttention = slowOnlyWithFlashAttention_;
  return g;
}

}  // namespace fake_ollama
