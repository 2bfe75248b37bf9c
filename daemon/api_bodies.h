#pragma once
// The JSON bodies of the control API's POST routes, parsed and validated without any I/O, so
// that the handlers (daemon.cpp, trials.cpp) and the fuzz targets (tests/fuzz) run the same
// code. Every parser returns the 400 message that names the offending field; none throws.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "daemon/policy/types.h"

namespace oasis {

// A validated trial spec (control-api.md "Trials"): model, kind "generate"|"chat", the Ollama
// request body without model/stream, run, idempotency key, attempts budget; hash identifies the
// content for idempotency-key conflicts (409).
struct TrialSpec {
  std::string model, kind, run;
  std::optional<std::string> key;
  nlohmann::json request;
  int maxAttempts = 3;
  std::string hash;
};
// The spec or the reason it is invalid (naming the field).
Result<TrialSpec> parseTrialSpec(const nlohmann::json& j, int defaultMaxAttempts, const std::string& defaultRun);

// Strict UTF-8 structure check (lead byte, length, continuation bytes).
bool validUtf8(std::string_view s);

// An optional JSON object body: empty = {}; otherwise it must parse and be an object.
Result<nlohmann::json> parseObjectBody(std::string_view body);

// POST /v1/pause: {"reason"?: str = "manual", "drain"?: bool = true}.
struct PauseBody {
  policy::PauseReason reason = policy::PauseReason::Manual;
  bool drain = true;
};
Result<PauseBody> parsePauseBody(const nlohmann::json& body);

// GET /v1/timeline: one row per bucket from `since` to now. A long window at a small bucket
// (since=1970 at bucket_s=1 is 1.7 billion rows) would hold the event loop and memory for as
// long as it takes to build, so the window is refused past this many buckets; the message says
// how many it would be and what to change.
constexpr double kMaxTimelineBuckets = 10000;
Status checkTimelineWindow(double windowSeconds, int bucketSeconds);

// POST /v1/evict and /v1/kill-runner: {"model"?: non-empty str}; nullopt = every loaded model.
Result<std::optional<std::string>> parseModelBody(const nlohmann::json& body);

// POST /v1/trials (batch = false: one trial spec) and /v1/trials/batch ({"trials": [spec, ...]},
// all or nothing): the raw body -> validated specs, in order. The error message is the 400's.
Result<std::vector<TrialSpec>> parseTrialsBody(std::string_view body, bool batch, int defaultMaxAttempts);

}  // namespace oasis
