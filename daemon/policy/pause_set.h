#pragma once
// Pause is a set of reasons, not a flag (DESIGN.md): memory pressure clearing must not resume
// a run the operator paused, and `oasisctl resume` must not resume a run that memory
// pressure paused. Dispatch runs only when the global set is empty (and, for one model, when
// that model's own set is empty too).
#include "daemon/policy/types.h"

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace oasis::policy {

class PauseSet {
 public:
  // Global reasons. Return true when the set changed.
  bool add(PauseReason reason);
  bool remove(PauseReason reason);
  bool contains(PauseReason reason) const { return global_.count(reason) != 0; }

  // Per-model reasons (e.g. `recovering` while a model's runner is evicted or killed).
  bool addModel(const std::string& model, PauseReason reason);
  bool removeModel(const std::string& model, PauseReason reason);
  bool modelContains(const std::string& model, PauseReason reason) const;

  // Global dispatch gate: true iff no global reason is set.
  bool dispatchAllowed() const { return global_.empty(); }
  // Gate for one model: the global set and the model's own set are both empty.
  bool dispatchAllowed(const std::string& model) const;

  // What POST /v1/resume does: clears `manual` (globally and on every model) and nothing
  // else. Returns true when something was cleared.
  bool resumeManual();

  // Global reasons in a stable order (enum order), and as API names.
  std::vector<PauseReason> reasons() const;
  std::vector<std::string> reasonNames() const;
  // Models with at least one reason.
  std::map<std::string, std::vector<PauseReason>> modelPauses() const;

  // Executes a Pause / Resume / PauseModel / ResumeModel action and returns the `paused` /
  // `resumed` events it caused (none when the action changed nothing, or for other action
  // kinds). detail: {"reason", "reasons": [global reasons after], "dispatch": bool}.
  std::vector<PolicyEvent> apply(const Action& action);

 private:
  std::set<PauseReason> global_;
  std::map<std::string, std::set<PauseReason>, std::less<>> perModel_;
};

}  // namespace oasis::policy
