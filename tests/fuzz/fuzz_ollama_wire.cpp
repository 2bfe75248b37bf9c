// What oasisd reads from Ollama, as parsed values (daemon/ollama_wire.cpp): the /api/ps and
// /api/version bodies, and the NDJSON lines of a streamed /api/generate or /api/chat, which
// the executor assembles into the stored response. A misbehaving server is input too: no
// parser may throw (an exception in the executor would strand a dispatch slot), a size is
// never negative, and the assembled response always has Ollama's non-stream shape.
// The bytes-level path (HTTP response head, chunked encoding, line splitting) is
// fuzz_ollama_stream.
#include <cmath>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "daemon/ollama_wire.h"
#include "fuzz_check.h"

using namespace oasis;
using nlohmann::json;

namespace {

void assemble(std::string_view text, bool chat) {
  StreamAssembler a(chat);
  bool ended = false;
  std::size_t start = 0;
  while (start <= text.size() && !ended) {
    auto nl = text.find('\n', start);
    auto line = text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    switch (a.feed(line)) {
      case StreamAssembler::Step::Skip: FUZZ_CHECK(line.empty()); break;
      case StreamAssembler::Step::Chunk: FUZZ_CHECK(!a.done()); break;
      case StreamAssembler::Step::Done: FUZZ_CHECK(a.done()); ended = true; break;
      case StreamAssembler::Step::Failed: FUZZ_CHECK(!a.error().empty()); ended = true; break;
    }
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  if (!a.done()) return;
  auto r = a.response();
  FUZZ_CHECK(r.is_object());
  if (chat) FUZZ_CHECK(r["message"].is_object() && r["message"]["content"].is_string());
  else FUZZ_CHECK(r["response"].is_string());
  // The store writes the response as text.
  (void)r.dump(-1, ' ', false, json::error_handler_t::replace);
  if (auto c = a.evalCount()) FUZZ_CHECK(*c >= 0);
  if (auto d = a.evalDuration()) FUZZ_CHECK(d->count() >= 0);
  if (auto l = a.loadDurationMs()) FUZZ_CHECK(std::isfinite(*l));
  if (auto e = a.evalDurationMs()) FUZZ_CHECK(std::isfinite(*e));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  auto body = json::parse(text, nullptr, false);
  for (auto& m : parsePsModels(body)) FUZZ_CHECK(!m.name.empty());
  (void)parseVersionBody(body);

  assemble(text, /*chat=*/false);
  assemble(text, /*chat=*/true);
  return 0;
}
