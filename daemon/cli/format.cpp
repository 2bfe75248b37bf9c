#include "daemon/cli/format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace oasis::cli {

using nlohmann::json;

namespace {

std::string str(const json& j, const char* key, std::string fallback = "-") {
  if (!j.is_object() || !j.contains(key)) return fallback;
  const json& v = j.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return fallback;
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  return v.dump();
}

std::optional<double> num(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j.at(key).is_number()) return std::nullopt;
  return j.at(key).get<double>();
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string joinStrings(const json& arr, const char* sep) {
  std::string out;
  if (!arr.is_array()) return out;
  for (auto& e : arr) {
    if (!out.empty()) out += sep;
    out += e.is_string() ? e.get<std::string>() : e.dump();
  }
  return out;
}

// A compact one-line rendering of an event's detail object: key=value ...
std::string detailText(const json& detail) {
  if (detail.is_null()) return "";
  if (!detail.is_object()) return detail.is_string() ? detail.get<std::string>() : detail.dump();
  std::string out;
  for (auto it = detail.begin(); it != detail.end(); ++it) {
    if (!out.empty()) out += ' ';
    out += it.key() + "=" + (it.value().is_string() ? it.value().get<std::string>() : it.value().dump());
  }
  return out;
}

}  // namespace

std::string Style::wrap(std::string_view code, std::string_view s) const {
  if (!color) return std::string(s);
  return "\x1b[" + std::string(code) + "m" + std::string(s) + "\x1b[0m";
}

std::string formatBytes(double bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 0) return "-" + formatBytes(-bytes);
  int u = 0;
  while (bytes >= 1024 && u < 5) {
    bytes /= 1024;
    ++u;
  }
  if (u == 0) return fixed(bytes, 0) + " B";
  return fixed(bytes, bytes < 10 ? 1 : (bytes < 100 ? 1 : 0)) + " " + units[u];
}

std::string formatDuration(double seconds) {
  if (!std::isfinite(seconds)) return "-";
  if (seconds < 0) return "-" + formatDuration(-seconds);
  if (seconds < 1) return fixed(std::round(seconds * 1000), 0) + "ms";
  if (seconds < 10 && std::fabs(seconds - std::round(seconds)) >= 0.05) return fixed(seconds, 1) + "s";
  auto total = static_cast<long long>(std::llround(seconds));
  long long d = total / 86400, h = (total % 86400) / 3600, m = (total % 3600) / 60, s = total % 60;
  auto two = [](long long big, const char* bu, long long small, const char* su) {
    std::string out = std::to_string(big) + bu;
    if (small) out += std::to_string(small) + su;
    return out;
  };
  if (d) return two(d, "d", h, "h");
  if (h) return two(h, "h", m, "m");
  if (m) return two(m, "m", s, "s");
  return std::to_string(s) + "s";
}

std::string formatLatencyMs(double ms) {
  if (ms < 1000) return fixed(std::round(ms), 0) + "ms";
  if (ms < 60000) return fixed(ms / 1000, ms < 10000 ? 2 : 1) + "s";
  return formatDuration(ms / 1000);
}

std::optional<double> parseDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  double total = 0;
  std::size_t i = 0;
  bool any = false;
  while (i < text.size()) {
    std::size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
    if (i == start) return std::nullopt;
    std::string number(text.substr(start, i - start));
    if (std::count(number.begin(), number.end(), '.') > 1 || number == ".") return std::nullopt;
    double v = std::stod(number);
    std::size_t ustart = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string_view unit = text.substr(ustart, i - ustart);
    double mult;
    if (unit.empty()) {
      if (any || i != text.size()) return std::nullopt;  // a bare number only on its own
      mult = 1;
    } else if (unit == "ms") {
      mult = 0.001;
    } else if (unit == "s") {
      mult = 1;
    } else if (unit == "m") {
      mult = 60;
    } else if (unit == "h") {
      mult = 3600;
    } else if (unit == "d") {
      mult = 86400;
    } else {
      return std::nullopt;
    }
    total += v * mult;
    any = true;
  }
  return total;
}

std::string progressBar(std::size_t done, std::size_t failed, std::size_t total, std::size_t width,
                        std::optional<double> etaSeconds) {
  if (width == 0) width = 1;
  std::size_t filled = total ? std::min(width, done * width / total) : width;
  std::string bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "]";
  std::string pct = total ? std::to_string(done * 100 / total) : "100";
  std::string out = bar + " " + std::to_string(done) + "/" + std::to_string(total) + " done (" + pct + "%)";
  out += "  " + std::to_string(failed) + " failed";
  if (done < total) out += "  ETA " + (etaSeconds ? formatDuration(*etaSeconds) : std::string("?"));
  return out;
}

std::size_t displayWidth(std::string_view s) {
  std::size_t w = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\x1b') {
      while (i < s.size() && s[i] != 'm') ++i;
      continue;
    }
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) ++w;
  }
  return w;
}

std::string renderTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths(header.size(), 0);
  for (std::size_t c = 0; c < header.size(); ++c) widths[c] = displayWidth(header[c]);
  for (auto& r : rows)
    for (std::size_t c = 0; c < r.size() && c < widths.size(); ++c) widths[c] = std::max(widths[c], displayWidth(r[c]));
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t c = 0; c < cells.size() && c < widths.size(); ++c) {
      out += cells[c];
      if (c + 1 < cells.size()) out += std::string(widths[c] - displayWidth(cells[c]) + 2, ' ');
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out = line(header);
  for (auto& r : rows) out += line(r);
  return out;
}

std::string clockTime(const std::string& iso) {
  auto t = iso.find('T');
  if (t == std::string::npos || iso.size() < t + 9) return iso;
  return iso.substr(t + 1, 8);
}

bool statusHealthy(const json& status) {
  if (!status.is_object()) return false;
  bool running = status.contains("run") && str(status["run"], "state") == "running";
  bool up = false;
  if (status.contains("server")) {
    const json& s = status["server"];
    if (s.contains("state") && s["state"].is_string())
      up = s["state"] == "up";
    else
      up = s.value("up", false);
  }
  return running && up;
}

std::string formatStatus(const json& st, const Style& style) {
  std::ostringstream o;
  const json run = st.value("run", json::object());
  std::string state = str(run, "state");
  std::string reasons = joinStrings(run.value("pause_reasons", json::array()), ", ");
  o << style.bold("Run:     ") << (state == "running" ? style.green(state) : style.yellow(state));
  if (!reasons.empty()) o << " (" << reasons << ")";
  if (run.contains("model_pauses") && run["model_pauses"].is_object())
    for (auto it = run["model_pauses"].begin(); it != run["model_pauses"].end(); ++it)
      o << "; " << it.key() << " paused (" << joinStrings(it.value(), ", ") << ")";
  o << "\n";
  o << style.bold("Daemon:  ") << "oasisd " << str(st, "version") << " pid " << str(st, "pid");
  if (auto up = num(st, "uptime_s")) o << ", up " << formatDuration(*up);
  o << "\n";

  const json server = st.value("server", json::object());
  std::string sstate = server.contains("state") ? str(server, "state") : (server.value("up", false) ? "up" : "down");
  std::string stateText = sstate == "up" ? style.green(sstate) : style.red(sstate);
  o << style.bold("Server:  ") << stateText << ", " << str(server, "mode") << " " << str(server, "url") << ", pid "
    << str(server, "pid") << ", version " << str(server, "version") << ", restarts " << str(server, "restarts", "0")
    << ", flash attention " << str(server, "flash_attention") << "\n";

  const json models = st.value("models", json::array());
  o << style.bold("Models:") << (models.empty() ? "  none loaded\n" : "\n");
  if (!models.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (auto& m : models) {
      std::string until;
      if (m.value("stopping", false)) {
        until = style.red("STOPPING " + formatDuration(num(m, "stopping_for_s").value_or(0)));
      } else {
        until = clockTime(str(m, "expires_at"));
      }
      std::string pid = "-", cpu = "-", rss = "-";
      if (m.contains("runner") && m["runner"].is_object()) {
        const json& r = m["runner"];
        pid = str(r, "pid");
        if (auto c = num(r, "cpu_pct")) cpu = fixed(*c, 1);
        if (auto b = num(r, "rss_bytes")) rss = formatBytes(*b);
      }
      rows.push_back({"  " + str(m, "name"), str(m, "processor"), until, pid, cpu, rss});
    }
    o << renderTable({"  NAME", "PROCESSOR", "UNTIL/STOPPING", "RUNNER-PID", "CPU%", "RSS"}, rows);
  }

  const json mem = st.value("memory", json::object());
  std::string pressure = str(mem, "pressure");
  std::string pressureText = pressure == "ok" ? style.green(pressure)
                             : pressure == "warn" ? style.yellow(pressure)
                                                  : style.red(pressure);
  o << style.bold("Memory:  ") << pressureText;
  if (auto a = num(mem, "available_bytes")) {
    o << ", " << formatBytes(*a) << " available";
    if (auto t = num(mem, "total_bytes"); t && *t > 0) o << " of " << formatBytes(*t);
  }
  o << ", trend " << str(mem, "trend", "unknown");
  if (auto s = num(mem, "swapouts_per_s"); s && *s > 0) o << ", " << fixed(*s, 1) << " swapouts/s";
  std::string mreasons = joinStrings(mem.value("reasons", json::array()), "; ");
  if (!mreasons.empty()) o << " (" << mreasons << ")";
  if (mem.contains("error")) o << " " << style.red("error: " + str(mem, "error"));
  o << "\n";

  const json t = st.value("trials", json::object());
  o << style.bold("Trials:  ") << str(t, "queued", "0") << " queued, " << str(t, "running", "0") << " running, "
    << str(t, "succeeded", "0") << " succeeded, " << str(t, "failed", "0") << " failed, " << str(t, "cancelled", "0")
    << " cancelled\n";

  const json events = st.value("last_events", json::array());
  if (!events.empty()) {
    o << style.bold("Recent events:") << "\n";
    for (auto& e : events) o << "  " << formatEventLine(e, style) << "\n";
  }
  return o.str();
}

std::string formatEventLine(const json& e, const Style& style) {
  std::string kind = str(e, "kind");
  static const std::vector<std::string> bad = {"server_exited", "memory_pressure", "preflight_failed",
                                               "stall_detected", "stopping_detected", "runner_killed",
                                               "cpu_spill_suspected"};
  std::string kindText = std::find(bad.begin(), bad.end(), kind) != bad.end() ? style.yellow(kind) : kind;
  std::string out = str(e, "at") + "  " + kindText;
  if (e.contains("model") && e["model"].is_string()) out += "  " + e["model"].get<std::string>();
  std::string d = detailText(e.value("detail", json()));
  if (!d.empty()) out += "  " + style.dim(d);
  return out;
}

std::string formatTimeline(const json& timeline, int bucketSeconds) {
  std::vector<std::vector<std::string>> rows;
  const json list = timeline.value("rows", json::array());
  bool started = false;  // leading buckets with neither trials nor actions are left out
  for (auto& r : list) {
    bool empty = num(r, "trials").value_or(0) == 0 && r.value("actions", json::array()).empty();
    if (!started && empty) continue;
    started = true;
    std::string time = clockTime(str(r, "start"));
    if (bucketSeconds % 60 == 0 && time.size() == 8) time = time.substr(0, 5);
    auto ms = [&](const char* k) {
      auto v = num(r, k);
      return v ? formatLatencyMs(*v) : std::string("-");
    };
    std::string rate = "-";
    if (auto f = num(r, "failure_rate"); f && num(r, "trials").value_or(0) > 0) rate = fixed(*f * 100, 1) + "%";
    rows.push_back({time, str(r, "trials", "0"), ms("p50_ms"), ms("p95_ms"), rate,
                    joinStrings(r.value("actions", json::array()), ", ")});
  }
  if (rows.empty()) return "No trials or actions in this window.\n";
  return renderTable({"Time (UTC)", "Trials", "p50", "p95", "Failure rate", "Actions"}, rows);
}

namespace {
std::string stateText(const std::string& s, const Style& style) {
  if (s == "succeeded") return style.green(s);
  if (s == "failed") return style.red(s);
  if (s == "cancelled") return style.yellow(s);
  return s;
}
}  // namespace

std::string formatTrials(const json& list, const Style& style) {
  std::vector<std::vector<std::string>> rows;
  for (auto& t : list.value("trials", json::array())) {
    std::string attempts = t.contains("attempts") && t["attempts"].is_array() && !t["attempts"].empty()
                               ? std::to_string(t["attempts"].size())
                               : "-";
    std::string err = t.contains("error") && t["error"].is_string() ? t["error"].get<std::string>() : "";
    if (err.size() > 60) err = err.substr(0, 57) + "...";
    rows.push_back({str(t, "id"), str(t, "run"), str(t, "model"), stateText(str(t, "state"), style), attempts,
                    str(t, "submitted_at"), err});
  }
  if (rows.empty()) return "No trials.\n";
  std::string out = renderTable({"ID", "RUN", "MODEL", "STATE", "ATTEMPTS", "SUBMITTED", "ERROR"}, rows);
  if (list.contains("next") && !list["next"].is_null()) out += "(more: --limit, or after id " + str(list, "next") + ")\n";
  return out;
}

std::string formatTrial(const json& t, const Style& style) {
  std::ostringstream o;
  o << "Trial " << str(t, "id") << "  " << stateText(str(t, "state"), style) << "\n";
  o << "  run       " << str(t, "run") << "\n";
  o << "  key       " << str(t, "key") << "\n";
  o << "  model     " << str(t, "model") << " (" << str(t, "kind") << ")\n";
  o << "  submitted " << str(t, "submitted_at") << "\n";
  o << "  finished  " << str(t, "finished_at") << "\n";
  if (t.contains("error") && t["error"].is_string()) o << "  error     " << style.red(t["error"].get<std::string>()) << "\n";
  if (t.contains("response") && t["response"].is_object()) {
    const json& r = t["response"];
    std::string text = r.contains("response") && r["response"].is_string() ? r["response"].get<std::string>()
                       : r.contains("message") && r["message"].is_object() ? str(r["message"], "content", "")
                                                                             : "";
    if (text.size() > 200) text = text.substr(0, 197) + "...";
    o << "  response  " << text << "\n";
  }
  const json attempts = t.value("attempts", json::array());
  if (!attempts.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (auto& a : attempts) {
      auto lat = num(a, "latency_ms");
      rows.push_back({"  " + str(a, "n"), str(a, "outcome"), lat ? formatLatencyMs(*lat) : "-", str(a, "started_at"),
                      str(a, "error", "")});
    }
    o << renderTable({"  #", "OUTCOME", "LATENCY", "STARTED", "ERROR"}, rows);
  }
  return o.str();
}

std::string formatPreflight(const json& p, const Style& style) {
  bool ok = p.value("ok", false);
  std::string out = (ok ? style.green("ok") : style.red("would not fit")) + ": " + str(p, "model");
  if (auto n = num(p, "need_bytes")) out += ", needs " + formatBytes(*n);
  if (auto a = num(p, "available_bytes")) out += ", " + formatBytes(*a) + " available";
  out += "\n";
  if (p.contains("message") && p["message"].is_string() && !p["message"].get<std::string>().empty())
    out += "  " + p["message"].get<std::string>() + "\n";
  return out;
}

std::string formatActions(const json& answer) {
  const json actions = answer.value("actions", json::array());
  if (actions.empty()) return "Nothing to do.\n";
  std::string out;
  for (auto& a : actions) out += "  " + (a.is_string() ? a.get<std::string>() : detailText(a)) + "\n";
  return out;
}

}  // namespace oasis::cli
