#include "common/config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <functional>
#include <sstream>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

namespace oasis {
namespace {

using json = nlohmann::json;
using Problems = std::vector<ConfigProblem>;

std::string joinKey(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string describe(const json& j) {
  std::string text = j.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

std::string formatNumber(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

// Levenshtein distance, for "did you mean" on unknown keys.
std::size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// Reads one JSON object: every known key is asked for (present or not), so finish() can
// report the rest as unknown, with the closest known key as a suggestion.
class ObjectReader {
 public:
  ObjectReader(const json* j, std::string path, Problems& problems)
      : path_(std::move(path)), problems_(problems) {
    if (j == nullptr) return;
    if (!j->is_object()) {
      problems_.push_back({path_, "expected an object (got " + std::string(j->type_name()) + ")"});
      return;
    }
    object_ = j;
  }

  const std::string& path() const { return path_; }
  std::string key(std::string_view name) const { return joinKey(path_, name); }
  Problems& problems() { return problems_; }

  const json* get(std::string_view name) {
    known_.insert(std::string(name));
    if (object_ == nullptr) return nullptr;
    auto it = object_->find(name);
    return it == object_->end() ? nullptr : &*it;
  }

  void problem(std::string_view name, std::string message) { problems_.push_back({key(name), std::move(message)}); }

  void typeProblem(std::string_view name, std::string_view expected, const json& got) {
    problem(name, "expected " + std::string(expected) + " (got " + std::string(got.type_name()) + " " + describe(got) + ")");
  }

  void readNumber(std::string_view name, double& out) {
    const json* j = get(name);
    if (j == nullptr) return;
    if (!j->is_number()) return typeProblem(name, "a number", *j);
    double v = j->get<double>();
    if (!std::isfinite(v)) return problem(name, "must be finite");
    out = v;
  }

  void readOptionalNumber(std::string_view name, std::optional<double>& out) {
    const json* j = get(name);
    if (j == nullptr) return;
    if (j->is_null()) {
      out.reset();
      return;
    }
    if (!j->is_number()) return typeProblem(name, "a number or null", *j);
    out = j->get<double>();
  }

  template <typename Int>
  void readInt(std::string_view name, Int& out) {
    const json* j = get(name);
    if (j == nullptr) return;
    if (auto v = asInt<Int>(*j)) {
      out = *v;
    } else if (j->is_number()) {
      problem(name, "expected an integer in range (got " + describe(*j) + ")");
    } else {
      typeProblem(name, "an integer", *j);
    }
  }

  void readBool(std::string_view name, bool& out) {
    const json* j = get(name);
    if (j == nullptr) return;
    if (!j->is_boolean()) return typeProblem(name, "true or false", *j);
    out = j->get<bool>();
  }

  void readString(std::string_view name, std::string& out) {
    const json* j = get(name);
    if (j == nullptr) return;
    if (!j->is_string()) return typeProblem(name, "a string", *j);
    out = j->get<std::string>();
  }

  void readOptionalString(std::string_view name, std::optional<std::string>& out) {
    const json* j = get(name);
    if (j == nullptr) return;
    if (j->is_null()) {
      out.reset();
      return;
    }
    if (!j->is_string()) return typeProblem(name, "a string or null", *j);
    out = j->get<std::string>();
  }

  void readStringArray(std::string_view name, std::vector<std::string>& out) {
    const json* j = get(name);
    if (j == nullptr) return;
    if (!j->is_array()) return typeProblem(name, "an array of strings", *j);
    std::vector<std::string> values;
    bool good = true;
    for (std::size_t i = 0; i < j->size(); ++i) {
      const json& e = (*j)[i];
      if (!e.is_string()) {
        problems_.push_back({key(name) + "[" + std::to_string(i) + "]",
                             "expected a string (got " + std::string(e.type_name()) + " " + describe(e) + ")"});
        good = false;
        continue;
      }
      values.push_back(e.get<std::string>());
    }
    if (good) out = std::move(values);
  }

  template <typename Enum>
  void readEnum(std::string_view name, Enum& out, std::initializer_list<std::pair<std::string_view, Enum>> choices) {
    const json* j = get(name);
    if (j == nullptr) return;
    std::string allowed;
    for (const auto& [text, value] : choices) allowed += (allowed.empty() ? "\"" : ", \"") + std::string(text) + "\"";
    if (j->is_string()) {
      const auto& s = j->get_ref<const std::string&>();
      for (const auto& [text, value] : choices) {
        if (s == text) {
          out = value;
          return;
        }
      }
    }
    problem(name, "must be one of " + allowed + " (got " + describe(*j) + ")");
  }

  // Reports present keys that nobody asked for. `context` explains why, when known.
  void finish(std::string_view context = {}) {
    if (object_ == nullptr) return;
    for (const auto& [name, value] : object_->items()) {
      if (known_.count(name) != 0) continue;
      std::string message = "unknown key '" + key(name) + "'";
      if (!context.empty()) message += " " + std::string(context);
      std::string best;
      std::size_t bestDistance = std::numeric_limits<std::size_t>::max();
      for (const auto& candidate : known_) {
        auto d = editDistance(name, candidate);
        if (d < bestDistance) {
          bestDistance = d;
          best = candidate;
        }
      }
      if (!best.empty() && bestDistance <= std::max<std::size_t>(2, name.size() / 4)) {
        message += " (did you mean '" + key(best) + "'?)";
      }
      problems_.push_back({key(name), std::move(message)});
    }
  }

  template <typename Int>
  static std::optional<Int> asInt(const json& j) {
    if (j.is_number_unsigned()) {
      auto v = j.get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<Int>::max())) return std::nullopt;
      return static_cast<Int>(v);
    }
    if (j.is_number_integer()) {
      auto v = j.get<int64_t>();
      if constexpr (std::is_unsigned_v<Int>) {
        if (v < 0) return std::nullopt;
        return static_cast<Int>(v);
      } else {
        if (v < static_cast<int64_t>(std::numeric_limits<Int>::min()) ||
            v > static_cast<int64_t>(std::numeric_limits<Int>::max())) {
          return std::nullopt;
        }
        return static_cast<Int>(v);
      }
    }
    if (j.is_number_float()) {  // 3.0 is accepted as 3; 3.5 is not an integer
      double d = j.get<double>();
      if (!std::isfinite(d) || std::floor(d) != d) return std::nullopt;
      if (d < static_cast<double>(std::numeric_limits<Int>::min()) ||
          d > static_cast<double>(std::numeric_limits<Int>::max())) {
        return std::nullopt;
      }
      return static_cast<Int>(d);
    }
    return std::nullopt;
  }

 private:
  const json* object_ = nullptr;
  std::string path_;
  Problems& problems_;
  std::set<std::string> known_;
};

void readMemorySource(ObjectReader& parent, MemorySourceConfig& out) {
  const json* j = parent.get("source");
  if (j == nullptr) return;
  ObjectReader r(j, parent.key("source"), parent.problems());
  if (!j->is_object()) return;
  const json* kind = r.get("kind");
  if (kind == nullptr) {
    r.problem("kind", "required: \"auto\", \"vm_stat_command\" or \"file\"");
    r.finish();
    return;
  }
  const std::size_t problemsBefore = r.problems().size();
  r.readEnum("kind", out.kind,
             {{"auto", MemorySourceConfig::Kind::Auto},
              {"vm_stat_command", MemorySourceConfig::Kind::VmStatCommand},
              {"file", MemorySourceConfig::Kind::File}});
  if (r.problems().size() != problemsBefore) return;  // the other keys depend on a valid kind
  switch (out.kind) {
    case MemorySourceConfig::Kind::Auto:
      break;
    case MemorySourceConfig::Kind::VmStatCommand:
      r.readStringArray("argv", out.argv);
      r.readNumber("timeout_s", out.timeoutS);
      break;
    case MemorySourceConfig::Kind::File:
      if (r.get("path") == nullptr) r.problem("path", "required for kind \"file\"");
      r.readString("path", out.path);
      r.readString("format", out.format);
      break;
  }
  r.finish("(not valid for kind \"" + std::string(toString(out.kind)) + "\")");
}

void readMemory(ObjectReader& root, MemoryConfig& out) {
  ObjectReader r(root.get("memory"), "memory", root.problems());
  readMemorySource(r, out.source);
  r.readNumber("interval_s", out.intervalS);
  r.readNumber("pause_below_available_gb", out.pauseBelowAvailableGb);
  r.readNumber("resume_above_available_gb", out.resumeAboveAvailableGb);
  r.readNumber("free_drop_factor", out.freeDropFactor);
  r.readNumber("window_s", out.windowS);
  r.readOptionalNumber("swapout_rate_pause", out.swapoutRatePause);
  r.readEnum("on_critical", out.onCritical,
             {{"pause", MemoryConfig::OnCritical::Pause}, {"pause_and_evict", MemoryConfig::OnCritical::PauseAndEvict}});
  r.readNumber("resume_hold_s", out.resumeHoldS);
  r.finish();
}

void readOllama(ObjectReader& root, OllamaConfig& out) {
  ObjectReader r(root.get("ollama"), "ollama", root.problems());
  r.readEnum("mode", out.mode, {{"managed", OllamaConfig::Mode::Managed}, {"attach", OllamaConfig::Mode::Attach}});
  r.readString("url", out.url);
  r.readStringArray("command", out.command);
  if (const json* env = r.get("env")) {
    if (!env->is_object()) {
      r.typeProblem("env", "an object of string values", *env);
    } else {
      std::map<std::string, std::string> values;
      for (const auto& [name, value] : env->items()) {
        if (!value.is_string()) {
          r.problems().push_back({r.key("env") + "." + name, "expected a string (got " + std::string(value.type_name()) +
                                                                  " " + describe(value) + ")"});
          continue;
        }
        values[name] = value.get<std::string>();
      }
      out.env = std::move(values);
    }
  }
  r.readEnum("flash_attention", out.flashAttention,
             {{"auto", OllamaConfig::FlashAttention::Auto},
              {"off", OllamaConfig::FlashAttention::Off},
              {"on", OllamaConfig::FlashAttention::On},
              {"leave", OllamaConfig::FlashAttention::Leave}});
  r.readOptionalString("flash_attention_fixed_in", out.flashAttentionFixedIn);
  r.readNumber("ps_timeout_s", out.psTimeoutS);
  r.readNumber("health_timeout_s", out.healthTimeoutS);
  r.readInt("wedge_after_ps_failures", out.wedgeAfterPsFailures);
  r.readNumber("stop_timeout_s", out.stopTimeoutS);
  r.readNumber("start_timeout_s", out.startTimeoutS);
  {
    ObjectReader rr(r.get("restart"), r.key("restart"), r.problems());
    rr.readNumber("initial_backoff_s", out.restart.initialBackoffS);
    rr.readNumber("max_backoff_s", out.restart.maxBackoffS);
    rr.readNumber("healthy_reset_s", out.restart.healthyResetS);
    rr.readInt("max_fast_failures", out.restart.maxFastFailures);
    rr.finish();
  }
  r.finish();
}

void readPreflight(ObjectReader& root, PreflightConfig& out) {
  ObjectReader r(root.get("preflight"), "preflight", root.problems());
  if (const json* table = r.get("min_free_gb")) {
    if (!table->is_object()) {
      r.typeProblem("min_free_gb", "an object of model name -> GB", *table);
    } else {
      // Overlays the built-in table: naming one model keeps "default" and the others.
      for (const auto& [model, value] : table->items()) {
        if (!value.is_number()) {
          r.problems().push_back({r.key("min_free_gb") + "." + model,
                                  "expected a number (got " + std::string(value.type_name()) + " " + describe(value) + ")"});
          continue;
        }
        out.minFreeGb[model] = value.get<double>();
      }
    }
  }
  r.readEnum("mode", out.mode, {{"block", PreflightConfig::Mode::Block}, {"warn", PreflightConfig::Mode::Warn}});
  r.finish();
}

void readRoot(const json& doc, Config& c, Problems& problems) {
  ObjectReader r(&doc, "", problems);
  r.readOptionalString("socket_path", c.socketPath);
  r.readOptionalString("database_path", c.databasePath);
  if (const json* mc = r.get("max_concurrency")) {
    if (mc->is_string() && mc->get<std::string>() == "auto") {
      c.maxConcurrency = MaxConcurrency{true, MaxConcurrency::kDefault};
    } else if (auto v = ObjectReader::asInt<int>(*mc)) {
      c.maxConcurrency = MaxConcurrency{false, *v};
    } else {
      r.problem("max_concurrency", "expected a positive integer or \"auto\" (got " + describe(*mc) + ")");
    }
  }
  r.readNumber("request_timeout_s", c.requestTimeoutS);
  r.readNumber("first_token_timeout_s", c.firstTokenTimeoutS);
  r.readNumber("stall_timeout_s", c.stallTimeoutS);
  r.readInt("max_attempts", c.maxAttempts);
  r.readInt("ollama_evict_threshold", c.ollamaEvictThreshold);
  r.readNumber("stopping_grace_s", c.stoppingGraceS);
  r.readNumber("ps_interval_s", c.psIntervalS);
  r.readNumber("shutdown_timeout_s", c.shutdownTimeoutS);
  r.readInt("queue_limit", c.queueLimit);
  r.readInt("max_body_bytes", c.maxBodyBytes);

  readOllama(r, c.ollama);
  readMemory(r, c.memory);
  {
    ObjectReader s(r.get("cpu_spill"), "cpu_spill", problems);
    s.readNumber("factor", c.cpuSpill.factor);
    s.readInt("min_samples", c.cpuSpill.minSamples);
    s.readNumber("runner_cpu_pct", c.cpuSpill.runnerCpuPct);
    s.finish();
  }
  readPreflight(r, c.preflight);
  {
    ObjectReader s(r.get("retry"), "retry", problems);
    s.readNumber("initial_backoff_s", c.retry.initialBackoffS);
    s.readNumber("max_backoff_s", c.retry.maxBackoffS);
    s.finish();
  }
  {
    ObjectReader s(r.get("log"), "log", problems);
    s.readString("level", c.log.level);
    s.readOptionalString("file", c.log.file);
    s.readInt("max_file_bytes", c.log.maxFileBytes);
    s.readInt("max_files", c.log.maxFiles);
    s.finish();
  }
  {
    ObjectReader s(r.get("security"), "security", problems);
    s.readOptionalString("allow_group", c.security.allowGroup);
    s.readNumber("read_timeout_s", c.security.readTimeoutS);
    s.readNumber("idle_timeout_s", c.security.idleTimeoutS);
    s.finish();
  }
  {
    ObjectReader s(r.get("tcp_listener"), "tcp_listener", problems);
    s.readBool("enabled", c.tcpListener.enabled);
    s.readString("address", c.tcpListener.address);
    s.readInt("port", c.tcpListener.port);
    s.readBool("control", c.tcpListener.control);
    s.finish();
  }
  {
    ObjectReader s(r.get("store"), "store", problems);
    s.readNumber("sample_retention_s", c.store.sampleRetentionS);
    s.finish();
  }
  r.finish();
}

// nlohmann silently keeps the last of duplicate keys; a duplicated threshold is as much a
// typo as an unknown one, so the parser callback reports it by path.
class DuplicateKeyDetector {
 public:
  explicit DuplicateKeyDetector(Problems& problems) : problems_(problems) {}

  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        frames_.push_back(Frame{event == json::parse_event_t::array_start, childPath(), {}, {}, 0});
        break;
      case json::parse_event_t::key:
        if (!frames_.empty() && parsed.is_string()) {
          Frame& top = frames_.back();
          top.lastKey = parsed.get<std::string>();
          if (!top.keys.insert(top.lastKey).second) {
            problems_.push_back({joinKey(top.path, top.lastKey), "duplicate key '" + joinKey(top.path, top.lastKey) + "'"});
          }
        }
        break;
      case json::parse_event_t::value:
        if (!frames_.empty() && frames_.back().isArray) ++frames_.back().index;
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!frames_.empty()) frames_.pop_back();
        break;
    }
    return true;
  }

 private:
  struct Frame {
    bool isArray;
    std::string path;
    std::set<std::string> keys;
    std::string lastKey;
    std::size_t index;
  };

  std::string childPath() {
    if (frames_.empty()) return "";
    Frame& parent = frames_.back();
    if (parent.isArray) return parent.path + "[" + std::to_string(parent.index++) + "]";
    return joinKey(parent.path, parent.lastKey);
  }

  Problems& problems_;
  std::vector<Frame> frames_;
};

bool isLoopbackAddress(std::string_view a) {
  if (a == "localhost" || a == "::1" || a == "[::1]") return true;
  // 127.0.0.0/8, dotted quad.
  if (a.substr(0, 4) != "127.") return false;
  int parts = 0;
  std::size_t i = 0;
  while (i <= a.size()) {
    std::size_t end = a.find('.', i);
    if (end == std::string_view::npos) end = a.size();
    std::string_view part = a.substr(i, end - i);
    if (part.empty() || part.size() > 3 || !std::all_of(part.begin(), part.end(), [](char ch) { return ch >= '0' && ch <= '9'; }) ||
        std::stoi(std::string(part)) > 255) {
      return false;
    }
    ++parts;
    i = end + 1;
  }
  return parts == 4;
}

bool isVersionText(std::string_view v) {
  if (!v.empty() && v.front() == 'v') v.remove_prefix(1);
  if (v.empty()) return false;
  int parts = 0;
  std::size_t i = 0;
  while (i <= v.size()) {
    std::size_t end = v.find('.', i);
    if (end == std::string_view::npos) end = v.size();
    std::string_view part = v.substr(i, end - i);
    // A pre-release suffix on the last part ("0.13.0-rc1") is allowed.
    std::size_t digits = 0;
    while (digits < part.size() && part[digits] >= '0' && part[digits] <= '9') ++digits;
    if (digits == 0) return false;
    if (digits != part.size() && (end != v.size() || part[digits] != '-')) return false;
    ++parts;
    i = end + 1;
  }
  return parts >= 1 && parts <= 4;
}

}  // namespace

double PreflightConfig::minFreeGbFor(const std::string& model) const {
  if (auto it = minFreeGb.find(model); it != minFreeGb.end()) return it->second;
  if (auto it = minFreeGb.find("default"); it != minFreeGb.end()) return it->second;
  return 0;
}

std::vector<ConfigProblem> validateConfig(const Config& c) {
  Problems p;
  // Every number the daemon turns into a clock duration (int64 nanoseconds: 292 years) or a
  // byte count (GiB x 2^30 in a uint64) must fit; 1e9 (31 years, 1 EiB) keeps every product
  // the daemon forms in range. Without it, "request_timeout_s": 1e300 validated and then
  // overflowed the conversions (undefined behaviour), found by tests/fuzz/fuzz_config.
  constexpr double kMaxNumber = 1e9;
  auto bounded = [&](const std::string& key, double v) {
    if (v > kMaxNumber) p.push_back({key, "must be <= 1e9 (got " + formatNumber(v) + ")"});
  };
  auto positive = [&](const std::string& key, double v) {
    if (!(v > 0)) p.push_back({key, "must be > 0 (got " + formatNumber(v) + ")"});
    bounded(key, v);
  };
  auto nonNegative = [&](const std::string& key, double v) {
    if (!(v >= 0)) p.push_back({key, "must be >= 0 (got " + formatNumber(v) + ")"});
    bounded(key, v);
  };
  // Sampling periods: reject values that look like milliseconds.
  auto interval = [&](const std::string& key, double v) {
    positive(key, v);
    if (v > 3600) p.push_back({key, "must be <= 3600 seconds (got " + formatNumber(v) + "; milliseconds?)"});
  };
  auto atLeast = [&](const std::string& key, long long v, long long min) {
    if (v < min) p.push_back({key, "must be >= " + std::to_string(min) + " (got " + std::to_string(v) + ")"});
  };
  auto atMost = [&](const std::string& key, long long v, long long max) {
    if (v > max) p.push_back({key, "must be <= " + std::to_string(max) + " (got " + std::to_string(v) + ")"});
  };
  auto path = [&](const std::string& key, const std::optional<std::string>& v, std::size_t maxLen) {
    if (!v) return;
    if (v->empty()) p.push_back({key, "must not be empty (use null for the default)"});
    if (v->find('\0') != std::string::npos) p.push_back({key, "must not contain NUL"});
    if (v->size() > maxLen) {
      p.push_back({key, "is " + std::to_string(v->size()) + " bytes; at most " + std::to_string(maxLen) +
                            " fit in a Unix socket address (macOS sun_path is 104 bytes)"});
    }
  };

  path("socket_path", c.socketPath, 103);
  path("database_path", c.databasePath, 4096);
  if (!c.maxConcurrency.isAuto) {
    atLeast("max_concurrency", c.maxConcurrency.value, 1);
    atMost("max_concurrency", c.maxConcurrency.value, 1024);
  }
  positive("request_timeout_s", c.requestTimeoutS);
  positive("first_token_timeout_s", c.firstTokenTimeoutS);
  positive("stall_timeout_s", c.stallTimeoutS);
  atLeast("max_attempts", c.maxAttempts, 1);
  atMost("max_attempts", c.maxAttempts, 100);
  atLeast("ollama_evict_threshold", c.ollamaEvictThreshold, 1);
  positive("stopping_grace_s", c.stoppingGraceS);
  interval("ps_interval_s", c.psIntervalS);
  positive("shutdown_timeout_s", c.shutdownTimeoutS);
  atLeast("queue_limit", c.queueLimit, 1);
  if (c.maxBodyBytes < 1024 || c.maxBodyBytes > (1ull << 30)) {
    p.push_back({"max_body_bytes", "must be between 1024 and 1073741824 (got " + std::to_string(c.maxBodyBytes) + ")"});
  }

  // ollama
  const OllamaConfig& o = c.ollama;
  if (auto url = parseHttpUrl(o.url); !url) p.push_back({"ollama.url", url.error().message});
  if (o.command.empty() || o.command.front().empty()) {
    p.push_back({"ollama.command", "must be a non-empty array whose first element names the program"});
  }
  for (const auto& [name, value] : o.env) {
    if (name.empty() || name.find('=') != std::string::npos || name.find('\0') != std::string::npos) {
      p.push_back({"ollama.env." + name, "is not a valid environment variable name"});
    }
    if (value.find('\0') != std::string::npos) p.push_back({"ollama.env." + name, "must not contain NUL"});
  }
  if (o.flashAttentionFixedIn && !isVersionText(*o.flashAttentionFixedIn)) {
    p.push_back({"ollama.flash_attention_fixed_in",
                 "must be a version like \"0.33.0\" or null (got \"" + *o.flashAttentionFixedIn + "\")"});
  }
  positive("ollama.ps_timeout_s", o.psTimeoutS);
  positive("ollama.health_timeout_s", o.healthTimeoutS);
  atLeast("ollama.wedge_after_ps_failures", o.wedgeAfterPsFailures, 1);
  positive("ollama.stop_timeout_s", o.stopTimeoutS);
  positive("ollama.start_timeout_s", o.startTimeoutS);
  nonNegative("ollama.restart.initial_backoff_s", o.restart.initialBackoffS);
  bounded("ollama.restart.max_backoff_s", o.restart.maxBackoffS);
  if (o.restart.maxBackoffS < o.restart.initialBackoffS) {
    p.push_back({"ollama.restart.max_backoff_s", "must be >= ollama.restart.initial_backoff_s (" +
                                                     formatNumber(o.restart.initialBackoffS) + ")"});
  }
  positive("ollama.restart.healthy_reset_s", o.restart.healthyResetS);
  atLeast("ollama.restart.max_fast_failures", o.restart.maxFastFailures, 1);

  // memory
  const MemoryConfig& m = c.memory;
  switch (m.source.kind) {
    case MemorySourceConfig::Kind::Auto:
      break;
    case MemorySourceConfig::Kind::VmStatCommand:
      if (m.source.argv.empty() || m.source.argv.front().empty()) {
        p.push_back({"memory.source.argv", "must be a non-empty array whose first element names the program"});
      }
      positive("memory.source.timeout_s", m.source.timeoutS);
      break;
    case MemorySourceConfig::Kind::File:
      if (m.source.path.empty()) p.push_back({"memory.source.path", "must not be empty"});
      if (m.source.format != "vm_stat") {
        p.push_back({"memory.source.format", "must be \"vm_stat\" (got \"" + m.source.format + "\")"});
      }
      break;
  }
  interval("memory.interval_s", m.intervalS);
  nonNegative("memory.pause_below_available_gb", m.pauseBelowAvailableGb);
  bounded("memory.resume_above_available_gb", m.resumeAboveAvailableGb);
  if (m.resumeAboveAvailableGb < m.pauseBelowAvailableGb) {
    p.push_back({"memory.resume_above_available_gb", "must be >= memory.pause_below_available_gb (" +
                                                         formatNumber(m.pauseBelowAvailableGb) +
                                                         "): the band is what prevents flapping"});
  }
  if (!(m.freeDropFactor > 1)) {
    p.push_back({"memory.free_drop_factor", "must be > 1 (got " + formatNumber(m.freeDropFactor) + ")"});
  }
  positive("memory.window_s", m.windowS);
  if (m.windowS > 0 && m.intervalS > 0 && m.windowS < m.intervalS) {
    p.push_back({"memory.window_s", "must be >= memory.interval_s (" + formatNumber(m.intervalS) + ")"});
  }
  if (m.swapoutRatePause) positive("memory.swapout_rate_pause", *m.swapoutRatePause);
  nonNegative("memory.resume_hold_s", m.resumeHoldS);

  // cpu_spill, preflight, retry
  if (!(c.cpuSpill.factor > 1)) {
    p.push_back({"cpu_spill.factor", "must be > 1 (got " + formatNumber(c.cpuSpill.factor) + ")"});
  }
  atLeast("cpu_spill.min_samples", c.cpuSpill.minSamples, 1);
  nonNegative("cpu_spill.runner_cpu_pct", c.cpuSpill.runnerCpuPct);
  for (const auto& [model, gb] : c.preflight.minFreeGb) {
    if (model.empty()) p.push_back({"preflight.min_free_gb", "model names must not be empty"});
    if (!(gb >= 0) || !std::isfinite(gb)) {
      p.push_back({"preflight.min_free_gb." + model, "must be >= 0 (got " + formatNumber(gb) + ")"});
    }
    bounded("preflight.min_free_gb." + model, gb);
  }
  nonNegative("retry.initial_backoff_s", c.retry.initialBackoffS);
  bounded("retry.max_backoff_s", c.retry.maxBackoffS);
  if (c.retry.maxBackoffS < c.retry.initialBackoffS) {
    p.push_back({"retry.max_backoff_s",
                 "must be >= retry.initial_backoff_s (" + formatNumber(c.retry.initialBackoffS) + ")"});
  }

  // log, security, tcp_listener, store
  static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  if (kLevels.count(c.log.level) == 0) {
    p.push_back({"log.level",
                 "must be one of \"trace\", \"debug\", \"info\", \"warn\", \"error\", \"critical\", \"off\" (got \"" +
                     c.log.level + "\")"});
  }
  path("log.file", c.log.file, 4096);
  if (c.log.maxFileBytes < 4096) {
    p.push_back({"log.max_file_bytes", "must be >= 4096 (got " + std::to_string(c.log.maxFileBytes) + ")"});
  }
  atLeast("log.max_files", c.log.maxFiles, 1);
  if (c.security.allowGroup && c.security.allowGroup->empty()) {
    p.push_back({"security.allow_group", "must name a group (or be null)"});
  }
  positive("security.read_timeout_s", c.security.readTimeoutS);
  positive("security.idle_timeout_s", c.security.idleTimeoutS);
  if (!isLoopbackAddress(c.tcpListener.address)) {
    p.push_back({"tcp_listener.address",
                 "must be a loopback address (127.0.0.0/8, ::1 or localhost): the TCP listener has no "
                 "authentication (got \"" + c.tcpListener.address + "\")"});
  }
  atLeast("tcp_listener.port", c.tcpListener.port, 0);
  atMost("tcp_listener.port", c.tcpListener.port, 65535);
  positive("store.sample_retention_s", c.store.sampleRetentionS);
  return p;
}

ConfigLoad parseConfig(std::string_view text) {
  ConfigLoad load;
  bool blank = std::all_of(text.begin(), text.end(), [](char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; });
  if (!blank) {
    json doc;
    Problems duplicates;
    try {
      DuplicateKeyDetector detector(duplicates);
      doc = json::parse(text, json::parser_callback_t(std::ref(detector)), /*allow_exceptions=*/true,
                        /*ignore_comments=*/true);
    } catch (const json::exception& e) {
      std::string what = e.what();
      // "[json.exception.parse_error.101] parse error at line 3, column 5: ..." -> from "parse error".
      if (auto bracket = what.find("] "); bracket != std::string::npos) what = what.substr(bracket + 2);
      load.problems.push_back({"", "invalid JSON: " + what});
      return load;
    }
    load.problems = std::move(duplicates);
    if (!doc.is_object()) {
      load.problems.push_back({"", std::string("the config must be a JSON object (got ") + doc.type_name() + ")"});
      return load;
    }
    readRoot(doc, load.config, load.problems);
  }
  auto invalid = validateConfig(load.config);
  load.problems.insert(load.problems.end(), invalid.begin(), invalid.end());
  return load;
}

ConfigLoad loadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ConfigLoad load;
    load.problems.push_back({"", "cannot open config file '" + path + "'"});
    return load;
  }
  // Bound the read: a config is a few KB; a huge file is a mistake (or /dev/zero).
  constexpr std::size_t kMaxConfigBytes = 1 << 20;
  std::string text;
  text.resize(kMaxConfigBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (in.bad()) {
    ConfigLoad load;
    load.problems.push_back({"", "cannot read config file '" + path + "'"});
    return load;
  }
  if (text.size() > kMaxConfigBytes) {
    ConfigLoad load;
    load.problems.push_back({"", "config file '" + path + "' is larger than 1 MiB"});
    return load;
  }
  return parseConfig(text);
}

nlohmann::json configToJson(const Config& c) {
  auto optionalString = [](const std::optional<std::string>& v) -> json { return v ? json(*v) : json(nullptr); };
  json source = {{"kind", std::string(toString(c.memory.source.kind))}};
  switch (c.memory.source.kind) {
    case MemorySourceConfig::Kind::Auto:
      break;
    case MemorySourceConfig::Kind::VmStatCommand:
      source["argv"] = c.memory.source.argv;
      source["timeout_s"] = c.memory.source.timeoutS;
      break;
    case MemorySourceConfig::Kind::File:
      source["path"] = c.memory.source.path;
      source["format"] = c.memory.source.format;
      break;
  }
  json minFree = json::object();
  for (const auto& [model, gb] : c.preflight.minFreeGb) minFree[model] = gb;

  return json{
      {"socket_path", optionalString(c.socketPath)},
      {"database_path", optionalString(c.databasePath)},
      {"max_concurrency", c.maxConcurrency.isAuto ? json("auto") : json(c.maxConcurrency.value)},
      {"request_timeout_s", c.requestTimeoutS},
      {"first_token_timeout_s", c.firstTokenTimeoutS},
      {"stall_timeout_s", c.stallTimeoutS},
      {"max_attempts", c.maxAttempts},
      {"ollama_evict_threshold", c.ollamaEvictThreshold},
      {"stopping_grace_s", c.stoppingGraceS},
      {"ps_interval_s", c.psIntervalS},
      {"shutdown_timeout_s", c.shutdownTimeoutS},
      {"queue_limit", c.queueLimit},
      {"max_body_bytes", c.maxBodyBytes},
      {"ollama",
       {{"mode", std::string(toString(c.ollama.mode))},
        {"url", c.ollama.url},
        {"command", c.ollama.command},
        {"env", c.ollama.env},
        {"flash_attention", std::string(toString(c.ollama.flashAttention))},
        {"flash_attention_fixed_in", optionalString(c.ollama.flashAttentionFixedIn)},
        {"ps_timeout_s", c.ollama.psTimeoutS},
        {"health_timeout_s", c.ollama.healthTimeoutS},
        {"wedge_after_ps_failures", c.ollama.wedgeAfterPsFailures},
        {"stop_timeout_s", c.ollama.stopTimeoutS},
        {"start_timeout_s", c.ollama.startTimeoutS},
        {"restart",
         {{"initial_backoff_s", c.ollama.restart.initialBackoffS},
          {"max_backoff_s", c.ollama.restart.maxBackoffS},
          {"healthy_reset_s", c.ollama.restart.healthyResetS},
          {"max_fast_failures", c.ollama.restart.maxFastFailures}}}}},
      {"memory",
       {{"source", source},
        {"interval_s", c.memory.intervalS},
        {"pause_below_available_gb", c.memory.pauseBelowAvailableGb},
        {"resume_above_available_gb", c.memory.resumeAboveAvailableGb},
        {"free_drop_factor", c.memory.freeDropFactor},
        {"window_s", c.memory.windowS},
        {"swapout_rate_pause", c.memory.swapoutRatePause ? json(*c.memory.swapoutRatePause) : json(nullptr)},
        {"on_critical", std::string(toString(c.memory.onCritical))},
        {"resume_hold_s", c.memory.resumeHoldS}}},
      {"cpu_spill",
       {{"factor", c.cpuSpill.factor}, {"min_samples", c.cpuSpill.minSamples}, {"runner_cpu_pct", c.cpuSpill.runnerCpuPct}}},
      {"preflight", {{"min_free_gb", minFree}, {"mode", std::string(toString(c.preflight.mode))}}},
      {"retry", {{"initial_backoff_s", c.retry.initialBackoffS}, {"max_backoff_s", c.retry.maxBackoffS}}},
      {"log",
       {{"level", c.log.level},
        {"file", optionalString(c.log.file)},
        {"max_file_bytes", c.log.maxFileBytes},
        {"max_files", c.log.maxFiles}}},
      {"security",
       {{"allow_group", optionalString(c.security.allowGroup)},
        {"read_timeout_s", c.security.readTimeoutS},
        {"idle_timeout_s", c.security.idleTimeoutS}}},
      {"tcp_listener",
       {{"enabled", c.tcpListener.enabled},
        {"address", c.tcpListener.address},
        {"port", c.tcpListener.port},
        {"control", c.tcpListener.control}}},
      {"store", {{"sample_retention_s", c.store.sampleRetentionS}}},
  };
}

std::string formatConfigProblems(const std::vector<ConfigProblem>& problems) {
  std::string out;
  for (const auto& problem : problems) {
    if (problem.key.empty()) {
      out += problem.message;
    } else if (problem.message.rfind("unknown key", 0) == 0 || problem.message.rfind("duplicate key", 0) == 0) {
      out += problem.message;  // already names the key
    } else {
      out += problem.key + ": " + problem.message;
    }
    out += '\n';
  }
  return out;
}

Result<HttpHostPort> parseHttpUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return Error("must start with http:// (got \"" + std::string(url) + "\")");
  }
  std::string_view rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos || rest.find('?') != std::string_view::npos ||
      rest.find('@') != std::string_view::npos) {
    return Error("must be http://host[:port] without a path, query or credentials (got \"" + std::string(url) + "\")");
  }
  HttpHostPort out;
  std::string_view portText;
  if (!rest.empty() && rest.front() == '[') {  // [::1]:11434
    auto close = rest.find(']');
    if (close == std::string_view::npos) return Error("unterminated IPv6 address in \"" + std::string(url) + "\"");
    out.host = std::string(rest.substr(1, close - 1));
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return Error("malformed host:port in \"" + std::string(url) + "\"");
      portText = after.substr(1);
    }
  } else {
    auto colon = rest.find(':');
    out.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) portText = rest.substr(colon + 1);
  }
  if (out.host.empty()) return Error("missing host in \"" + std::string(url) + "\"");
  if (portText.empty()) {
    out.port = 80;
  } else {
    unsigned port = 0;
    for (char ch : portText) {
      if (ch < '0' || ch > '9' || port > 65535) return Error("invalid port in \"" + std::string(url) + "\"");
      port = port * 10 + static_cast<unsigned>(ch - '0');
    }
    if (port == 0 || port > 65535) return Error("port out of range in \"" + std::string(url) + "\"");
    out.port = static_cast<uint16_t>(port);
  }
  return out;
}

std::string_view toString(MemorySourceConfig::Kind kind) {
  switch (kind) {
    case MemorySourceConfig::Kind::Auto: return "auto";
    case MemorySourceConfig::Kind::VmStatCommand: return "vm_stat_command";
    case MemorySourceConfig::Kind::File: return "file";
  }
  return "auto";
}

std::string_view toString(MemoryConfig::OnCritical v) {
  return v == MemoryConfig::OnCritical::PauseAndEvict ? "pause_and_evict" : "pause";
}

std::string_view toString(OllamaConfig::Mode v) { return v == OllamaConfig::Mode::Attach ? "attach" : "managed"; }

std::string_view toString(OllamaConfig::FlashAttention v) {
  switch (v) {
    case OllamaConfig::FlashAttention::Auto: return "auto";
    case OllamaConfig::FlashAttention::Off: return "off";
    case OllamaConfig::FlashAttention::On: return "on";
    case OllamaConfig::FlashAttention::Leave: return "leave";
  }
  return "auto";
}

std::string_view toString(PreflightConfig::Mode v) { return v == PreflightConfig::Mode::Warn ? "warn" : "block"; }

}  // namespace oasis
