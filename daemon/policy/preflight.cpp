#include "daemon/policy/preflight.h"

#include "daemon/policy/memory_policy.h"

namespace oasis::policy {

std::string_view toString(PreflightMode mode) {
  return mode == PreflightMode::Block ? "block" : "warn";
}

std::optional<PreflightMode> parsePreflightMode(std::string_view text) {
  if (text == "block") return PreflightMode::Block;
  if (text == "warn") return PreflightMode::Warn;
  return std::nullopt;
}

nlohmann::json PreflightResult::toJson() const {
  return {{"ok", ok},
          {"sufficient", sufficient},
          {"model", model},
          {"need_bytes", needBytes},
          {"available_bytes", availableBytes},
          {"message", message}};
}

std::uint64_t requiredBytes(const PreflightConfig& config, std::string_view model) {
  if (auto it = config.perModel.find(model); it != config.perModel.end()) return it->second;
  constexpr std::string_view kLatest = ":latest";
  if (model.find(':') == std::string_view::npos) {
    std::string tagged = std::string(model) + std::string(kLatest);
    if (auto it = config.perModel.find(tagged); it != config.perModel.end()) return it->second;
  } else if (model.size() > kLatest.size() &&
             model.substr(model.size() - kLatest.size()) == kLatest) {
    auto bare = model.substr(0, model.size() - kLatest.size());
    if (auto it = config.perModel.find(bare); it != config.perModel.end()) return it->second;
  }
  return config.defaultMinFreeBytes;
}

PreflightResult preflight(const PreflightConfig& config, std::string_view model,
                          std::uint64_t availableBytes) {
  PreflightResult r;
  r.model = std::string(model);
  r.needBytes = requiredBytes(config, model);
  r.availableBytes = availableBytes;
  r.sufficient = availableBytes >= r.needBytes;
  r.ok = r.sufficient || config.mode == PreflightMode::Warn;
  const std::string need = humanBytes(static_cast<double>(r.needBytes));
  const std::string have = humanBytes(static_cast<double>(availableBytes));
  if (r.sufficient) {
    r.message = r.model + " needs " + need + " available; " + have + " is available";
  } else {
    r.message = r.model + " needs " + need + " available but only " + have + " is (short by " +
                humanBytes(static_cast<double>(r.needBytes - availableBytes)) +
                "): close other applications or unload other models";
    r.message += config.mode == PreflightMode::Block
                     ? "; the run is blocked (set preflight.mode to \"warn\" to start anyway)"
                     : "; starting anyway because preflight.mode is \"warn\"";
  }
  return r;
}

Decision preflightDecision(const PreflightResult& result, PreflightMode mode) {
  Decision d;
  if (result.sufficient) return d;
  nlohmann::json detail = result.toJson();
  detail["mode"] = std::string(toString(mode));
  d.events.push_back({EventKind::PreflightFailed, result.model, std::move(detail)});
  return d;
}

}  // namespace oasis::policy
