#pragma once
// Where the socket and the database live, resolved the same way by oasisd and oasisctl:
// --socket flag > OASISD_SOCKET > config socket_path > platform default.
#include <optional>
#include <string>

namespace oasis {

// Platform default directory for runtime state (socket):
//   macOS: ~/Library/Application Support/oasisd
//   Linux: $XDG_RUNTIME_DIR, else ~/.local/state/oasisd
std::string defaultStateDir();
std::string defaultSocketPath();
std::string defaultDatabasePath();
std::string defaultConfigPath();

std::string resolveSocketPath(const std::optional<std::string>& flag, const std::optional<std::string>& fromConfig);

}  // namespace oasis
