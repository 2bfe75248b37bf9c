// Every JSON body parser of the control API (daemon/api_bodies.cpp): a trial spec
// (POST /v1/trials), a batch (POST /v1/trials/batch), pause (POST /v1/pause) and the model
// body of evict / kill-runner. Each input is tried as every one of them. Parsers return a
// value or the 400 message; they never throw. An accepted trial spec is checked against the
// contract (control-api.md "Trials"): what is stored is exactly what Ollama may be sent.
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "daemon/api_bodies.h"
#include "fuzz_check.h"

using namespace oasis;
using nlohmann::json;

namespace {

void checkSpec(const TrialSpec& s, int defaultMaxAttempts) {
  FUZZ_CHECK(!s.model.empty());
  FUZZ_CHECK(s.kind == "generate" || s.kind == "chat");
  FUZZ_CHECK(!s.run.empty());
  FUZZ_CHECK(s.request.is_object());
  // oasisd sets these itself on every attempt (stream:true is the liveness mechanism).
  FUZZ_CHECK(!s.request.contains("model") && !s.request.contains("stream"));
  if (s.kind == "chat") FUZZ_CHECK(s.request.contains("messages") && s.request["messages"].is_array());
  FUZZ_CHECK(s.maxAttempts >= 1 && (s.maxAttempts <= 100 || s.maxAttempts == defaultMaxAttempts));
  if (s.key) FUZZ_CHECK(!s.key->empty() && s.key->size() <= 512);
  FUZZ_CHECK(s.hash.size() == 16);
  // The stored request must serialise (the store writes it as text; invalid UTF-8 in a
  // string would make dump() throw with the default handler).
  (void)s.request.dump(-1, ' ', false, json::error_handler_t::strict);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  constexpr int kDefaultMaxAttempts = 3;

  auto one = parseTrialsBody(body, /*batch=*/false, kDefaultMaxAttempts);
  if (one) {
    FUZZ_CHECK(one->size() == 1);
    checkSpec(one->front(), kDefaultMaxAttempts);
    // The idempotency hash depends on the content only: the same body hashes the same.
    auto again = parseTrialsBody(body, false, kDefaultMaxAttempts);
    FUZZ_CHECK(again && again->front().hash == one->front().hash);
  } else {
    FUZZ_CHECK(!one.error().message.empty());
  }

  auto batch = parseTrialsBody(body, /*batch=*/true, kDefaultMaxAttempts);
  if (batch) {
    FUZZ_CHECK(!batch->empty());
    for (auto& s : *batch) checkSpec(s, kDefaultMaxAttempts);
  }

  auto object = parseObjectBody(body);
  if (!object) {
    FUZZ_CHECK(!body.empty());
    return 0;
  }
  FUZZ_CHECK(object->is_object());
  if (auto pause = parsePauseBody(*object)) {
    // Only the five reasons of the contract exist.
    auto name = policy::toString(pause->reason);
    FUZZ_CHECK(name == "manual" || name == "memory_pressure" || name == "recovering" || name == "server_down" ||
               name == "preflight");
  } else {
    FUZZ_CHECK(!pause.error().message.empty());
  }
  if (auto model = parseModelBody(*object)) {
    if (*model) FUZZ_CHECK(!(*model)->empty());
  }
  return 0;
}
