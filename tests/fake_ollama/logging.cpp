#include "tests/fake_ollama/logging.h"

#include <cstdlib>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace fake_ollama {

void setupLogging(const std::string& source) {
  auto logger = spdlog::stderr_logger_mt("fake-ollama-" + source);
  logger->set_pattern("time=%Y-%m-%dT%H:%M:%S.%e%z level=%l source=" + source + " pid=%P msg=\"%v\"");
  // Tests read the log while the process runs: never buffer.
  logger->flush_on(spdlog::level::trace);
  const char* debug = std::getenv("OLLAMA_DEBUG");
  logger->set_level(debug && *debug && std::string(debug) != "0" && std::string(debug) != "false"
                        ? spdlog::level::debug
                        : spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace fake_ollama
