#include "daemon/policy/pause_set.h"

namespace oasis::policy {

bool PauseSet::add(PauseReason reason) { return global_.insert(reason).second; }

bool PauseSet::remove(PauseReason reason) { return global_.erase(reason) != 0; }

bool PauseSet::addModel(const std::string& model, PauseReason reason) {
  return perModel_[model].insert(reason).second;
}

bool PauseSet::removeModel(const std::string& model, PauseReason reason) {
  auto it = perModel_.find(model);
  if (it == perModel_.end()) return false;
  bool removed = it->second.erase(reason) != 0;
  if (it->second.empty()) perModel_.erase(it);
  return removed;
}

bool PauseSet::modelContains(const std::string& model, PauseReason reason) const {
  auto it = perModel_.find(model);
  return it != perModel_.end() && it->second.count(reason) != 0;
}

bool PauseSet::dispatchAllowed(const std::string& model) const {
  if (!global_.empty()) return false;
  auto it = perModel_.find(model);
  return it == perModel_.end() || it->second.empty();
}

bool PauseSet::resumeManual() {
  bool changed = remove(PauseReason::Manual);
  for (auto it = perModel_.begin(); it != perModel_.end();) {
    changed = it->second.erase(PauseReason::Manual) != 0 || changed;
    it = it->second.empty() ? perModel_.erase(it) : std::next(it);
  }
  return changed;
}

std::vector<PauseReason> PauseSet::reasons() const { return {global_.begin(), global_.end()}; }

std::vector<std::string> PauseSet::reasonNames() const {
  std::vector<std::string> out;
  for (auto r : global_) out.emplace_back(toString(r));
  return out;
}

std::map<std::string, std::vector<PauseReason>> PauseSet::modelPauses() const {
  std::map<std::string, std::vector<PauseReason>> out;
  for (const auto& [model, set] : perModel_) out[model] = {set.begin(), set.end()};
  return out;
}

std::vector<PolicyEvent> PauseSet::apply(const Action& action) {
  auto event = [&](EventKind kind, PauseReason reason, std::optional<std::string> model) {
    nlohmann::json detail = {{"reason", std::string(toString(reason))},
                             {"reasons", reasonNames()},
                             {"dispatch", model ? dispatchAllowed(*model) : dispatchAllowed()}};
    return std::vector<PolicyEvent>{PolicyEvent{kind, std::move(model), std::move(detail)}};
  };
  if (const auto* p = std::get_if<Pause>(&action)) {
    if (add(p->reason)) return event(EventKind::Paused, p->reason, std::nullopt);
  } else if (const auto* r = std::get_if<Resume>(&action)) {
    if (remove(r->reason)) return event(EventKind::Resumed, r->reason, std::nullopt);
  } else if (const auto* pm = std::get_if<PauseModel>(&action)) {
    if (addModel(pm->model, pm->reason)) return event(EventKind::Paused, pm->reason, pm->model);
  } else if (const auto* rm = std::get_if<ResumeModel>(&action)) {
    if (removeModel(rm->model, rm->reason)) {
      return event(EventKind::Resumed, rm->reason, rm->model);
    }
  }
  return {};
}

}  // namespace oasis::policy
