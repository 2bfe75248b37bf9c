#include "daemon/ollama_wire.h"

#include <cmath>

#include "common/clock.h"

namespace oasis {

using nlohmann::json;

namespace {

// A string member, or "" when absent or of another type.
std::string stringField(const json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A byte count: a non-negative integer, or a non-negative finite float below 2^64 (a proxy
// may re-encode numbers). Anything else is 0 — converting an out-of-range double to an
// integer is undefined behaviour, and a negative size has no meaning.
std::uint64_t sizeField(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end()) return 0;
  if (it->is_number_unsigned()) return it->get<std::uint64_t>();
  if (it->is_number_float()) {
    double d = it->get<double>();
    if (std::isfinite(d) && d >= 0 && d < 18446744073709551616.0) return static_cast<std::uint64_t>(d);
  }
  return 0;
}

// A finite number, as double.
std::optional<double> numberField(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || !it->is_number()) return std::nullopt;
  double d = it->get<double>();
  if (!std::isfinite(d)) return std::nullopt;
  return d;
}

// A non-negative integer that fits int64.
std::optional<std::int64_t> countField(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || !it->is_number_integer()) return std::nullopt;
  if (it->is_number_unsigned()) {
    auto u = it->get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<std::int64_t>(u);
  }
  auto v = it->get<std::int64_t>();
  if (v < 0) return std::nullopt;
  return v;
}

}  // namespace

std::vector<policy::PsModel> parsePsModels(const json& j) {
  std::vector<policy::PsModel> out;
  if (!j.is_object()) return out;
  auto models = j.find("models");
  if (models == j.end() || !models->is_array()) return out;
  for (auto& m : *models) {
    if (!m.is_object()) continue;
    policy::PsModel p;
    p.name = stringField(m, "name");
    if (p.name.empty()) p.name = stringField(m, "model");
    WallTime t;
    if (auto e = stringField(m, "expires_at"); !e.empty() && parseIso8601(e, t)) p.expiresAt = t;
    p.sizeVram = sizeField(m, "size_vram");
    p.size = sizeField(m, "size");
    if (!p.name.empty()) out.push_back(std::move(p));
  }
  return out;
}

std::string parseVersionBody(const json& j) { return j.is_object() ? stringField(j, "version") : std::string(); }

StreamAssembler::Step StreamAssembler::feed(std::string_view line) {
  if (line.empty()) return Step::Skip;
  auto chunk = json::parse(line, nullptr, false);
  if (!chunk.is_object()) {
    error_ = "Ollama sent a line that is not a JSON object";
    return Step::Failed;
  }
  if (auto e = chunk.find("error"); e != chunk.end()) {
    // A mid-stream failure: Ollama keeps the 200 and ends with {"error": ...}.
    error_ = e->is_string() ? e->get<std::string>() : e->dump(-1, ' ', false, json::error_handler_t::replace);
    // {"error": ""} must still leave a reason on the attempt (found by tests/fuzz/fuzz_ollama_wire).
    if (error_.empty()) error_ = "Ollama reported an error without a message";
    return Step::Failed;
  }
  if (chat_) {
    if (auto mi = chunk.find("message"); mi != chunk.end() && mi->is_object()) {
      const auto& m = *mi;
      text_ += stringField(m, "content");
      thinking_ += stringField(m, "thinking");
      if (auto r = m.find("role"); r != m.end() && r->is_string()) role_ = r->get<std::string>();
      if (auto tc = m.find("tool_calls"); tc != m.end() && tc->is_array())
        for (auto& call : *tc) toolCalls_.push_back(call);
    }
  } else {
    text_ += stringField(chunk, "response");
    thinking_ += stringField(chunk, "thinking");
  }
  // Only a JSON true ends the stream: Ollama always sends a boolean, and a "done" of another
  // type from something else must not throw out of the executor (that would strand the slot).
  auto d = chunk.find("done");
  if (d != chunk.end() && d->is_boolean() && d->get<bool>()) {
    final_ = std::move(chunk);
    return Step::Done;
  }
  return Step::Chunk;
}

json StreamAssembler::response() const {
  json response = final_.is_object() ? final_ : json::object();
  if (chat_) {
    json msg;
    msg["role"] = role_;
    msg["content"] = text_;
    if (!thinking_.empty()) msg["thinking"] = thinking_;
    if (!toolCalls_.empty()) msg["tool_calls"] = toolCalls_;
    response["message"] = msg;
  } else {
    response["response"] = text_;
    if (!thinking_.empty()) response["thinking"] = thinking_;
  }
  return response;
}

std::optional<double> StreamAssembler::loadDurationMs() const {
  if (!final_.is_object()) return std::nullopt;
  auto v = numberField(final_, "load_duration");
  if (!v) return std::nullopt;
  return *v / 1e6;
}

std::optional<std::int64_t> StreamAssembler::evalCount() const {
  if (!final_.is_object()) return std::nullopt;
  return countField(final_, "eval_count");
}

std::optional<double> StreamAssembler::evalDurationMs() const {
  if (!final_.is_object()) return std::nullopt;
  auto v = numberField(final_, "eval_duration");
  if (!v) return std::nullopt;
  return *v / 1e6;
}

std::optional<std::chrono::nanoseconds> StreamAssembler::evalDuration() const {
  if (!final_.is_object()) return std::nullopt;
  auto v = countField(final_, "eval_duration");
  if (!v) return std::nullopt;
  return std::chrono::nanoseconds(*v);
}

}  // namespace oasis
