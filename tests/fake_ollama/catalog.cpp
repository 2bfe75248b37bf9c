#include "tests/fake_ollama/catalog.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace fake_ollama {

int64_t ModelSpec::sizeVram() const {
  return static_cast<int64_t>(std::llround(static_cast<double>(size) * std::clamp(vramFraction, 0.0, 1.0)));
}

std::string normaliseModelName(std::string_view in) {
  std::string s(in);
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (std::string_view prefix : {"registry.ollama.ai/library/", "library/"})
    if (s.rfind(prefix, 0) == 0) s = s.substr(prefix.size());
  if (s.empty()) return {};
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == ':' || c == '.' || c == '-' || c == '_' || c == '/'))
      return {};
  auto colon = s.rfind(':');
  auto slash = s.rfind('/');
  if (colon == std::string::npos || (slash != std::string::npos && slash > colon)) s += ":latest";
  if (s.front() == ':' || s.back() == ':') return {};
  return s;
}

std::string digestFor(std::string_view name) {
  std::string out;
  for (uint64_t seed : {0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL, 0x9e3779b97f4a7c15ULL, 0x7f4a7c159e3779b9ULL}) {
    uint64_t h = seed;
    for (unsigned char c : name) {
      h ^= c;
      h *= 0x100000001b3ULL;
    }
    h ^= h >> 29;
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    out += buf;
  }
  return out;
}

namespace {

ModelSpec make(std::string name, int64_t size, std::string family, std::string params, std::string quant,
               int hoursAgo) {
  ModelSpec m;
  m.name = std::move(name);
  m.size = size;
  m.digest = digestFor(m.name);
  m.family = std::move(family);
  m.parameterSize = std::move(params);
  m.quantizationLevel = std::move(quant);
  m.modifiedAt = std::chrono::time_point_cast<oasis::WallTime::duration>(
      std::chrono::system_clock::now() - std::chrono::hours(hoursAgo));
  return m;
}

}  // namespace

Catalog Catalog::defaults() {
  Catalog c;
  c.models_.push_back(make("gemma4:e4b", 9'600'000'000, "gemma4", "8.0B", "Q4_K_M", 24));
  c.models_.push_back(make("tiny:latest", 50'000'000, "llama", "60M", "Q4_K_M", 48));
  return c;
}

oasis::Result<Catalog> Catalog::fromJsonFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return oasis::Error("cannot read model catalog " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto c = fromJsonText(ss.str());
  if (!c) return oasis::Error("model catalog " + path + ": " + c.error().message);
  return c;
}

oasis::Result<Catalog> Catalog::fromJsonText(std::string_view text) {
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded()) return oasis::Error("invalid JSON");
  const nlohmann::json* list = &doc;
  if (doc.is_object()) {
    if (!doc.contains("models")) return oasis::Error("expected {\"models\":[...]}");
    list = &doc["models"];
  }
  if (!list->is_array()) return oasis::Error("\"models\" must be an array");
  Catalog c;
  int index = 0;
  for (const auto& item : *list) {
    if (!item.is_object() || !item.contains("name") || !item["name"].is_string())
      return oasis::Error("model #" + std::to_string(index) + " needs a string \"name\"");
    std::string name = normaliseModelName(item["name"].get<std::string>());
    if (name.empty()) return oasis::Error("model #" + std::to_string(index) + ": bad name");
    ModelSpec m = make(name, 1'000'000'000, "llama", "1B", "Q4_K_M", 24 * (index + 1));
    try {
      m.size = item.value("size", m.size);
      m.digest = item.value("digest", m.digest);
      m.family = item.value("family", m.family);
      m.parameterSize = item.value("parameter_size", m.parameterSize);
      m.quantizationLevel = item.value("quantization_level", m.quantizationLevel);
      m.contextLength = item.value("context_length", m.contextLength);
      m.loadMs = item.value("load_ms", m.loadMs);
      m.tokensPerSecond = item.value("tokens_per_s", m.tokensPerSecond);
      m.numPredict = item.value("num_predict", m.numPredict);
      m.vramFraction = item.value("vram_fraction", m.vramFraction);
      if (item.contains("modified_at")) {
        oasis::WallTime t;
        if (!oasis::parseIso8601(item["modified_at"].get<std::string>(), t))
          return oasis::Error("model " + name + ": bad modified_at");
        m.modifiedAt = t;
      }
    } catch (const nlohmann::json::exception& e) {
      return oasis::Error("model " + name + ": " + e.what());
    }
    if (m.digest.size() != 64 || m.digest.find_first_not_of("0123456789abcdef") != std::string::npos)
      return oasis::Error("model " + name + ": digest must be 64 lower-case hex characters");
    if (m.tokensPerSecond <= 0) return oasis::Error("model " + name + ": tokens_per_s must be > 0");
    if (m.loadMs < 0 || m.numPredict < 0) return oasis::Error("model " + name + ": negative load_ms or num_predict");
    c.models_.push_back(std::move(m));
    ++index;
  }
  return c;
}

const ModelSpec* Catalog::find(std::string_view name) const {
  auto n = normaliseModelName(name);
  if (n.empty()) return nullptr;
  for (const auto& m : models_)
    if (m.name == n) return &m;
  return nullptr;
}

}  // namespace fake_ollama
