#include "daemon/api_bodies.h"

#include <cmath>
#include <cstdio>
#include <set>

namespace oasis {

using nlohmann::json;

namespace {

std::string fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

Result<TrialSpec> parseTrialSpec(const json& j, int defaultMaxAttempts, const std::string& defaultRun) {
  if (!j.is_object()) return Error("trial spec must be a JSON object");
  static const std::set<std::string> known = {"model", "kind", "request", "run", "key", "max_attempts"};
  for (auto& [k, v] : j.items())
    if (!known.count(k)) return Error("unknown field '" + k + "'");
  TrialSpec s;
  if (!j.contains("model") || !j["model"].is_string() || j["model"].get<std::string>().empty())
    return Error("field 'model' is required and must be a non-empty string");
  s.model = j["model"];
  if (j.contains("kind") && !j["kind"].is_string()) return Error("field 'kind' must be \"generate\" or \"chat\"");
  s.kind = j.value("kind", std::string("generate"));
  if (s.kind != "generate" && s.kind != "chat") return Error("field 'kind' must be \"generate\" or \"chat\"");
  if (!j.contains("request") || !j["request"].is_object()) return Error("field 'request' is required and must be an object");
  s.request = j["request"];
  s.request.erase("model");
  s.request.erase("stream");
  if (s.kind == "chat" && (!s.request.contains("messages") || !s.request["messages"].is_array()))
    return Error("field 'request.messages' must be an array for a chat trial");
  if (s.kind == "generate" && s.request.contains("prompt") && !s.request["prompt"].is_string())
    return Error("field 'request.prompt' must be a string");
  if (j.contains("run") && (!j["run"].is_string() || j["run"].get<std::string>().empty()))
    return Error("field 'run' must be a non-empty string");
  s.run = j.value("run", defaultRun);
  if (j.contains("key")) {
    if (!j["key"].is_string() || j["key"].get<std::string>().empty() || j["key"].get<std::string>().size() > 512)
      return Error("field 'key' must be a non-empty string of at most 512 bytes");
    s.key = j["key"].get<std::string>();
  }
  s.maxAttempts = defaultMaxAttempts;
  if (j.contains("max_attempts")) {
    if (!j["max_attempts"].is_number_integer()) return Error("field 'max_attempts' must be an integer");
    auto m = j["max_attempts"].get<long long>();
    if (m < 1 || m > 100) return Error("field 'max_attempts' must be between 1 and 100");
    s.maxAttempts = static_cast<int>(m);
  }
  json canonical = {{"model", s.model}, {"kind", s.kind}, {"request", s.request}, {"run", s.run}, {"max_attempts", s.maxAttempts}};
  s.hash = fnv1a(canonical.dump(-1, ' ', false, json::error_handler_t::replace));
  return s;
}

bool validUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xe ? 2 : (c >> 3) == 0x1e ? 3 : -1;
    if (n < 0) return false;
    for (int k = 1; k <= n; ++k) {
      std::size_t at = i + static_cast<std::size_t>(k);
      if (at >= s.size() || (static_cast<unsigned char>(s[at]) >> 6) != 0x2) return false;
    }
    i += static_cast<std::size_t>(n) + 1;
  }
  return true;
}

Result<json> parseObjectBody(std::string_view body) {
  if (body.empty()) return json::object();
  auto j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return Error("body is not valid JSON");
  if (!j.is_object()) return Error("body must be a JSON object");
  return j;
}

Status checkTimelineWindow(double windowSeconds, int bucketSeconds) {
  if (bucketSeconds <= 0) return Error("bucket_s must be an integer in 1..86400");
  double buckets = std::ceil(std::max(0.0, windowSeconds) / bucketSeconds);
  if (buckets <= kMaxTimelineBuckets) return Status::success();
  char text[200];
  std::snprintf(text, sizeof text,
                "the window from since to now at bucket_s=%d is %.0f buckets, more than %.0f: "
                "raise bucket_s or move since later",
                bucketSeconds, buckets, kMaxTimelineBuckets);
  return Error(text);
}

Result<PauseBody> parsePauseBody(const json& body) {
  PauseBody out;
  if (!body.is_object()) return Error("body must be a JSON object");
  std::string reasonName = "manual";
  if (auto r = body.find("reason"); r != body.end()) {
    if (!r->is_string()) return Error("field 'reason' must be a string");
    reasonName = r->get<std::string>();
  }
  if (auto d = body.find("drain"); d != body.end()) {
    if (!d->is_boolean()) return Error("field 'drain' must be a boolean");
    out.drain = d->get<bool>();
  }
  auto reason = policy::parsePauseReason(reasonName);
  if (!reason) return Error("field 'reason' must be one of manual, memory_pressure, recovering, server_down, preflight");
  out.reason = *reason;
  return out;
}

Result<std::optional<std::string>> parseModelBody(const json& body) {
  if (!body.is_object()) return Error("body must be a JSON object");
  for (auto it = body.begin(); it != body.end(); ++it)
    if (it.key() != "model")
      return Error("unknown field '" + it.key() +
                   "': the body takes only a model; oasisd finds and verifies the runner process itself");
  auto m = body.find("model");
  if (m == body.end()) return std::optional<std::string>();
  if (!m->is_string() || m->get<std::string>().empty()) return Error("field 'model' must be a non-empty string");
  return std::optional<std::string>(m->get<std::string>());
}

Result<std::vector<TrialSpec>> parseTrialsBody(std::string_view body, bool batch, int defaultMaxAttempts) {
  if (!validUtf8(body)) return Error("body is not valid UTF-8");
  auto j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return Error("body is not valid JSON");
  std::vector<TrialSpec> out;
  if (!batch) {
    auto spec = parseTrialSpec(j, defaultMaxAttempts, "default");
    if (!spec) return spec.error();
    out.push_back(std::move(*spec));
    return out;
  }
  auto trials = j.is_object() ? j.find("trials") : j.end();
  if (!j.is_object() || trials == j.end() || !trials->is_array() || trials->empty())
    return Error("field 'trials' must be a non-empty array of trial specs");
  std::size_t i = 0;
  for (auto& t : *trials) {
    auto spec = parseTrialSpec(t, defaultMaxAttempts, "default");
    if (!spec) return Error("trials[" + std::to_string(i) + "]: " + spec.error().message);
    out.push_back(std::move(*spec));
    ++i;
  }
  return out;
}

}  // namespace oasis
