#pragma once
// One log format for serve and its runners, close to Ollama's slog text lines so that the
// Listening line and every fault line can be read by tests and by a human:
//   time=2026-08-21T18:48:22.123+02:00 level=info source=serve msg="Listening on ..."
#include <string>

namespace fake_ollama {
void setupLogging(const std::string& source);
}
