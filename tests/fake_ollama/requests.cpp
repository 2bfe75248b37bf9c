#include "tests/fake_ollama/requests.h"

#include <algorithm>
#include <cctype>
#include <sstream>

namespace fake_ollama {

using nlohmann::json;

namespace {

std::string goJsonType(const json& v) {
  switch (v.type()) {
    case json::value_t::string: return "string";
    case json::value_t::boolean: return "bool";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return "number";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    default: return "null";
  }
}

oasis::Error typeError(const json& v, const std::string& structName, const std::string& field, const std::string& goType) {
  return oasis::Error("json: cannot unmarshal " + goJsonType(v) + " into Go struct field " + structName + "." + field +
                          " of type " + goType,
                      400);
}

// Parses the body like gin's ShouldBindJSON: empty -> "missing request body" (Ollama checks
// io.EOF), a syntax error -> Go's "invalid character ..." / "unexpected EOF".
oasis::Result<json> parseBody(const std::string& body, const std::string& goStruct) {
  auto blank = std::all_of(body.begin(), body.end(), [](unsigned char c) { return std::isspace(c); });
  if (blank) return oasis::Error("missing request body", 400);
  try {
    auto j = json::parse(body);
    if (!j.is_object() && !j.is_null())
      return oasis::Error("json: cannot unmarshal " + goJsonType(j) + " into Go value of type api." + goStruct, 400);
    if (j.is_null()) j = json::object();
    return j;
  } catch (const json::parse_error& e) {
    std::size_t at = e.byte > 0 ? e.byte - 1 : 0;
    if (at >= body.size()) return oasis::Error("unexpected EOF", 400);
    char c = body[at];
    std::string shown = std::isprint(static_cast<unsigned char>(c)) ? std::string(1, c) : "\\x" + std::to_string(int(c));
    return oasis::Error("invalid character '" + shown + "' looking for beginning of value", 400);
  }
}

// Checks a string field; null is Go's zero value.
oasis::Status stringField(const json& j, const char* name, const std::string& st, std::string* out) {
  if (!j.contains(name) || j[name].is_null()) return {};
  if (!j[name].is_string()) return typeError(j[name], st, name, "string");
  if (out) *out = j[name].get<std::string>();
  return {};
}
oasis::Status boolField(const json& j, const char* name, const std::string& st, bool* out) {
  if (!j.contains(name) || j[name].is_null()) return {};
  if (!j[name].is_boolean()) return typeError(j[name], st, name, "bool");
  if (out) *out = j[name].get<bool>();
  return {};
}
oasis::Status intField(const json& j, const char* name, const std::string& st, long long* out) {
  if (!j.contains(name) || j[name].is_null()) return {};
  const auto& v = j[name];
  if (!v.is_number()) return typeError(v, st, name, "int");
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (d != static_cast<double>(static_cast<long long>(d))) return typeError(v, st, name, "int");
  }
  if (out) *out = v.get<long long>();
  return {};
}

#define RETURN_IF_ERR(expr)            \
  do {                                 \
    auto _st = (expr);                 \
    if (!_st) return _st.error();      \
  } while (0)

}  // namespace

int InferenceRequest::promptTokens() const {
  auto count = [](const std::string& s) {
    std::istringstream in(s);
    std::string w;
    int n = 0;
    while (in >> w) ++n;
    return n;
  };
  int n = 0;
  if (chat) {
    for (const auto& m : messages) n += count(m.content) + 4;  // role markers of the chat template
  } else {
    n = count(system) + count(prompt);
  }
  return std::max(1, n);
}

oasis::Result<InferenceRequest> decodeInference(const std::string& body, bool chat) {
  const std::string st = chat ? "ChatRequest" : "GenerateRequest";
  auto parsed = parseBody(body, st);
  if (!parsed) return parsed.error();
  const json& j = *parsed;
  InferenceRequest r;
  r.chat = chat;
  RETURN_IF_ERR(stringField(j, "model", st, &r.model));
  RETURN_IF_ERR(boolField(j, "stream", st, &r.stream));
  if (chat) {
    if (j.contains("messages") && !j["messages"].is_null()) {
      const auto& ms = j["messages"];
      if (!ms.is_array()) return typeError(ms, st, "messages", "[]api.Message");
      for (const auto& m : ms) {
        if (!m.is_object()) return typeError(m, st, "messages", "api.Message");
        ChatMessage cm;
        RETURN_IF_ERR(stringField(m, "role", "ChatRequest.messages", &cm.role));
        RETURN_IF_ERR(stringField(m, "content", "ChatRequest.messages", &cm.content));
        RETURN_IF_ERR(stringField(m, "thinking", "ChatRequest.messages", nullptr));
        if (m.contains("images") && !m["images"].is_null() && !m["images"].is_array())
          return typeError(m["images"], "ChatRequest.messages", "images", "[]api.ImageData");
        std::transform(cm.role.begin(), cm.role.end(), cm.role.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        r.messages.push_back(std::move(cm));
      }
    }
    if (j.contains("tools") && !j["tools"].is_null() && !j["tools"].is_array())
      return typeError(j["tools"], st, "tools", "api.Tools");
  } else {
    RETURN_IF_ERR(stringField(j, "prompt", st, &r.prompt));
    RETURN_IF_ERR(stringField(j, "system", st, &r.system));
    RETURN_IF_ERR(stringField(j, "suffix", st, nullptr));
    RETURN_IF_ERR(stringField(j, "template", st, nullptr));
    bool raw = false;
    RETURN_IF_ERR(boolField(j, "raw", st, &raw));
    if (j.contains("context") && !j["context"].is_null()) {
      if (!j["context"].is_array()) return typeError(j["context"], st, "context", "[]int");
      for (const auto& c : j["context"])
        if (!c.is_number_integer()) return typeError(c, st, "context", "int");
    }
    if (j.contains("images") && !j["images"].is_null()) {
      if (!j["images"].is_array()) return typeError(j["images"], st, "images", "[]api.ImageData");
      r.hasImages = !j["images"].empty();
    }
    bool hasContext = j.contains("context") && j["context"].is_array() && !j["context"].empty();
    if (raw && (j.value("template", std::string()) != "" || !r.system.empty() || hasContext))
      return oasis::Error("raw mode does not support template, system, or context", 400);
  }
  if (j.contains("options") && !j["options"].is_null()) {
    const auto& o = j["options"];
    if (!o.is_object()) return typeError(o, st, "options", "map[string]interface {}");
    if (o.contains("num_predict") && o["num_predict"].is_number()) r.numPredict = o["num_predict"].get<long long>();
  }
  if (j.contains("think") && !j["think"].is_null() && !j["think"].is_boolean() && !j["think"].is_string())
    return oasis::Error("think must be a boolean or string (\"high\", \"medium\", \"low\", true, or false)", 400);
  long long topLogprobs = 0;
  RETURN_IF_ERR(intField(j, "top_logprobs", st, &topLogprobs));
  RETURN_IF_ERR(boolField(j, "logprobs", st, nullptr));
  if (topLogprobs < 0 || topLogprobs > 20) return oasis::Error("top_logprobs must be between 0 and 20", 400);
  if (j.contains("keep_alive")) {
    auto ka = oasis::ollama::parseKeepAliveJson(j["keep_alive"]);
    if (!ka) return oasis::Error(ka.error().message, 400);
    r.keepAlive = *ka;
  }
  return r;
}

oasis::Result<ShowRequest> decodeShow(const std::string& body) {
  auto parsed = parseBody(body, "ShowRequest");
  if (!parsed) return parsed.error();
  const json& j = *parsed;
  ShowRequest r;
  std::string name;
  RETURN_IF_ERR(stringField(j, "model", "ShowRequest", &r.model));
  RETURN_IF_ERR(stringField(j, "name", "ShowRequest", &name));
  RETURN_IF_ERR(boolField(j, "verbose", "ShowRequest", &r.verbose));
  if (r.model.empty()) r.model = name;  // the legacy "name" field
  if (r.model.empty()) return oasis::Error("model is required", 400);
  return r;
}

}  // namespace fake_ollama
