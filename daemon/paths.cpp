#include "daemon/paths.h"

#include <cstdlib>

namespace oasis {
namespace {
std::string envOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return (v && *v) ? std::string(v) : fallback;
}
std::string home() { return envOr("HOME", "/tmp"); }
}  // namespace

std::string defaultStateDir() {
#ifdef __APPLE__
  return home() + "/Library/Application Support/oasisd";
#else
  return home() + "/.local/state/oasisd";
#endif
}

std::string defaultSocketPath() {
#ifdef __APPLE__
  return defaultStateDir() + "/oasisd.sock";
#else
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg && *xdg) return std::string(xdg) + "/oasisd.sock";
  return defaultStateDir() + "/oasisd.sock";
#endif
}

std::string defaultDatabasePath() { return defaultStateDir() + "/oasisd.db"; }

std::string defaultConfigPath() {
#ifdef __APPLE__
  return defaultStateDir() + "/oasisd.json";
#else
  return envOr("XDG_CONFIG_HOME", home() + "/.config") + "/oasisd/oasisd.json";
#endif
}

std::string resolveSocketPath(const std::optional<std::string>& flag, const std::optional<std::string>& fromConfig) {
  if (flag && !flag->empty()) return *flag;
  const char* env = std::getenv("OASISD_SOCKET");
  if (env && *env) return env;
  if (fromConfig && !fromConfig->empty()) return *fromConfig;
  return defaultSocketPath();
}

}  // namespace oasis
