#pragma once
// `oasisctl install` / `uninstall`: the background service for the current user.
//   launchd (macOS): ~/Library/LaunchAgents/com.oasis.oasisd.plist, then
//                    launchctl bootout (if loaded) + bootstrap gui/UID + kickstart -k
//   systemd (Linux): ~/.config/systemd/user/oasisd.service, then
//                    systemctl --user daemon-reload + enable + restart
// Planning is pure (a list of steps from the user's home, uid and the binaries' directory) so
// both managers are tested on any host; executing a plan touches the file system and runs the
// manager's command line tool, reporting each step as it goes.
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace oasis::cli {

enum class ServiceManager { Launchd, Systemd };
std::string_view toString(ServiceManager m);  // "launchd", "systemd"
std::optional<ServiceManager> parseServiceManager(std::string_view name);
ServiceManager hostServiceManager();  // launchd on macOS, systemd elsewhere

inline constexpr std::string_view kLaunchdLabel = "com.oasis.oasisd";
inline constexpr std::string_view kSystemdUnitName = "oasisd.service";

struct ServiceContext {
  ServiceManager manager = ServiceManager::Systemd;
  std::string home;        // absolute
  unsigned uid = 0;
  std::string binDir;      // holds oasisd
  std::string configPath;  // the config oasisd is started with
};

struct ServiceStep {
  enum class Kind { MakeDir, WriteFile, RemoveFile, Run };
  Kind kind = Kind::Run;
  std::string path;                // MakeDir, WriteFile, RemoveFile
  std::string content;             // WriteFile
  unsigned mode = 0644;            // MakeDir, WriteFile
  bool keepExisting = false;       // WriteFile: leave a file that is already there (the config)
  std::vector<std::string> argv;   // Run
  bool mayFail = false;            // Run: failure is expected when there is nothing to undo
  std::string why;                 // shown to the user
  nlohmann::json toJson() const;
  std::string describe() const;    // "write ~/…/oasisd.service", "run systemctl --user …"
};

// The service file contents, rendered from the templates shipped in launchd/ and etc/.
std::string renderLaunchdPlist(std::string_view templ, const ServiceContext& ctx);
std::string renderSystemdUnit(std::string_view templ, const ServiceContext& ctx);

std::string serviceFilePath(const ServiceContext& ctx);
std::vector<ServiceStep> installPlan(const ServiceContext& ctx);
std::vector<ServiceStep> uninstallPlan(const ServiceContext& ctx);

// Runs one step. Errors name the path or the command and what went wrong; a Run step's
// output goes to `log` (so --json output on stdout stays clean).
Status executeStep(const ServiceStep& step, const std::function<void(const std::string&)>& log);

}  // namespace oasis::cli
