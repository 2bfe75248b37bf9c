#include "common/runner_classify.h"
#include "daemon/policy/flash_attention_policy.h"

#include <algorithm>
#include <cctype>

namespace oasis::policy {

namespace {

std::string_view trim(std::string_view s, std::string_view chars) {
  while (!s.empty() && chars.find(s.front()) != std::string_view::npos) s.remove_prefix(1);
  while (!s.empty() && chars.find(s.back()) != std::string_view::npos) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// Natural comparison of two identifiers: digit runs as numbers, the rest as text.
int compareNatural(std::string_view a, std::string_view b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (isDigit(a[i]) && isDigit(b[j])) {
      std::size_t i2 = i, j2 = j;
      while (i2 < a.size() && isDigit(a[i2])) ++i2;
      while (j2 < b.size() && isDigit(b[j2])) ++j2;
      std::string_view na = a.substr(i, i2 - i);
      std::string_view nb = b.substr(j, j2 - j);
      while (na.size() > 1 && na.front() == '0') na.remove_prefix(1);
      while (nb.size() > 1 && nb.front() == '0') nb.remove_prefix(1);
      if (na.size() != nb.size()) return na.size() < nb.size() ? -1 : 1;
      if (int c = na.compare(nb); c != 0) return c < 0 ? -1 : 1;
      i = i2;
      j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j] ? -1 : 1;
      ++i;
      ++j;
    }
  }
  if (i < a.size()) return 1;
  if (j < b.size()) return -1;
  return 0;
}

FlashAttentionSetting settingFromRunnerArg(std::string_view arg) {
  std::string v = lower(trim(arg, " \t"));
  if (v.empty() || v == "on" || v == "true" || v == "1" || v == "enabled" || v == "auto") {
    // "auto" lets llama.cpp enable it wherever the backend supports it, Metal included.
    return FlashAttentionSetting::On;
  }
  if (v == "off" || v == "false" || v == "0" || v == "disabled") return FlashAttentionSetting::Off;
  return FlashAttentionSetting::Unknown;
}

}  // namespace

std::string_view toString(FlashAttentionMode mode) {
  switch (mode) {
    case FlashAttentionMode::Auto: return "auto";
    case FlashAttentionMode::Off: return "off";
    case FlashAttentionMode::On: return "on";
    case FlashAttentionMode::Leave: return "leave";
  }
  return "auto";
}

std::optional<FlashAttentionMode> parseFlashAttentionMode(std::string_view text) {
  if (text == "auto") return FlashAttentionMode::Auto;
  if (text == "off") return FlashAttentionMode::Off;
  if (text == "on") return FlashAttentionMode::On;
  if (text == "leave") return FlashAttentionMode::Leave;
  return std::nullopt;
}

std::string_view toString(FlashAttentionSetting setting) {
  switch (setting) {
    case FlashAttentionSetting::On: return "on";
    case FlashAttentionSetting::Off: return "off";
    case FlashAttentionSetting::Unset: return "unset";
    case FlashAttentionSetting::Unknown: return "unknown";
  }
  return "unknown";
}

std::string_view toString(Verdict verdict) {
  switch (verdict) {
    case Verdict::Ok: return "ok";
    case Verdict::Warn: return "warn";
    case Verdict::Refuse: return "refuse";
  }
  return "ok";
}

std::optional<bool> parseOllamaBool(std::optional<std::string_view> raw) {
  if (!raw) return std::nullopt;
  // envconfig.Var: strings.Trim(strings.TrimSpace(v), "\"'")
  std::string_view v = trim(trim(*raw, " \t\r\n\v\f"), "\"'");
  if (v.empty()) return std::nullopt;
  auto parsed = goParseBool(v);
  return parsed ? *parsed : true;  // not a boolean -> true
}

FlashAttentionSetting settingFromEnv(std::optional<std::string_view> raw) {
  auto b = parseOllamaBool(raw);
  if (!b) return FlashAttentionSetting::Unset;
  return *b ? FlashAttentionSetting::On : FlashAttentionSetting::Off;
}

Result<Version> parseVersion(std::string_view text) {
  Version v;
  v.text = std::string(text);
  std::string_view s = trim(text, " \t\r\n");
  if (!s.empty() && (s.front() == 'v' || s.front() == 'V')) s.remove_prefix(1);
  if (auto plus = s.find('+'); plus != std::string_view::npos) s = s.substr(0, plus);
  std::string_view core = s;
  if (auto dash = s.find('-'); dash != std::string_view::npos) {
    core = s.substr(0, dash);
    v.prerelease = std::string(s.substr(dash + 1));
    if (v.prerelease.empty()) return Error("version '" + std::string(text) + "': empty pre-release");
  }
  if (core.empty()) return Error("version '" + std::string(text) + "': no numbers");
  std::size_t pos = 0;
  while (pos <= core.size()) {
    std::size_t dot = core.find('.', pos);
    std::string_view part = core.substr(pos, dot == std::string_view::npos ? std::string_view::npos
                                                                           : dot - pos);
    if (part.empty() || part.size() > 18 || !std::all_of(part.begin(), part.end(), isDigit)) {
      return Error("version '" + std::string(text) + "': '" + std::string(part) +
                   "' is not a number");
    }
    v.numbers.push_back(std::stoull(std::string(part)));
    if (dot == std::string_view::npos) break;
    pos = dot + 1;
  }
  return v;
}

int compareVersions(const Version& a, const Version& b) {
  std::size_t n = std::max(a.numbers.size(), b.numbers.size());
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t x = i < a.numbers.size() ? a.numbers[i] : 0;
    std::uint64_t y = i < b.numbers.size() ? b.numbers[i] : 0;
    if (x != y) return x < y ? -1 : 1;
  }
  if (a.prerelease.empty() != b.prerelease.empty()) return a.prerelease.empty() ? 1 : -1;
  return compareNatural(a.prerelease, b.prerelease);
}

Result<int> compareVersions(std::string_view a, std::string_view b) {
  auto va = parseVersion(a);
  if (!va) return va.error();
  auto vb = parseVersion(b);
  if (!vb) return vb.error();
  return compareVersions(*va, *vb);
}

bool wantFlashAttentionOff(const FlashAttentionInputs& in, std::string& why) {
  switch (in.mode) {
    case FlashAttentionMode::Off:
      why = "ollama.flash_attention=off";
      return true;
    case FlashAttentionMode::On:
      why = "ollama.flash_attention=on";
      return false;
    case FlashAttentionMode::Leave:
      why = "ollama.flash_attention=leave";
      return false;
    case FlashAttentionMode::Auto:
      break;
  }
  if (!in.isAppleSilicon) {
    why = "auto: not Apple Silicon, Ollama's own default applies";
    return false;
  }
  const std::string bug =
      "Apple Silicon: flash attention can silently run the compute graph on the CPU while "
      "ps says 100% GPU (ollama#15368, #15634)";
  if (!in.fixedIn) {
    why = "auto: " + bug + "; no fixed-in version configured";
    return true;
  }
  if (!in.serverVersion) {
    why = "auto: " + bug + "; server version unknown, assuming it is affected (fixed in " +
          *in.fixedIn + ")";
    return true;
  }
  auto cmp = compareVersions(*in.serverVersion, *in.fixedIn);
  if (!cmp) {
    why = "auto: " + bug + "; cannot compare versions (" + cmp.error().message +
          "), assuming affected";
    return true;
  }
  if (*cmp < 0) {
    why = "auto: " + bug + "; server " + *in.serverVersion + " is older than the fix in " +
          *in.fixedIn;
    return true;
  }
  why = "auto: server " + *in.serverVersion + " has the fix (fixed in " + *in.fixedIn + ")";
  return false;
}

LaunchEnvDecision decideLaunchEnv(const FlashAttentionInputs& in) {
  LaunchEnvDecision d;
  std::string why;
  bool off = wantFlashAttentionOff(in, why);
  const std::string parsingNote =
      "; note: Ollama treats any non-boolean value (e.g. \"off\", \"no\") as TRUE, so oasisd "
      "writes only \"0\" or \"1\"";
  if (off) {
    d.value = "0";
    d.effective = FlashAttentionSetting::Off;
    d.reason = "set OLLAMA_FLASH_ATTENTION=0: " + why;
  } else if (in.mode == FlashAttentionMode::On) {
    d.value = "1";
    d.effective = FlashAttentionSetting::On;
    d.reason = "set OLLAMA_FLASH_ATTENTION=1: " + why;
  } else {
    std::optional<std::string_view> inherited;
    if (in.inheritedEnv) inherited = *in.inheritedEnv;
    d.effective = settingFromEnv(inherited);
    d.reason = "OLLAMA_FLASH_ATTENTION left as inherited (" +
               (in.inheritedEnv ? "\"" + *in.inheritedEnv + "\"" : std::string("unset")) +
               "): " + why;
    if (in.inheritedEnv) {
      std::string_view v = trim(trim(*in.inheritedEnv, " \t\r\n\v\f"), "\"'");
      if (!v.empty() && !goParseBool(v)) {
        d.reason += "; WARNING: \"" + *in.inheritedEnv +
                    "\" is not a boolean, so Ollama reads it as TRUE (enabled)";
      }
    }
    return d;
  }
  if (in.inheritedEnv && *in.inheritedEnv != *d.value) {
    d.reason += " (overrides inherited \"" + *in.inheritedEnv + "\")";
  }
  d.reason += parsingNote;
  return d;
}

AttachCheck evaluateAttached(const FlashAttentionInputs& in,
                             const ObservedFlashAttention& observed) {
  AttachCheck c;
  std::string source;
  if (observed.runnerArg) {
    c.observed = settingFromRunnerArg(*observed.runnerArg);
    source = "runner --flash-attn " + (observed.runnerArg->empty() ? std::string("(flag)")
                                                                   : *observed.runnerArg);
  } else if (observed.serveEnvKnown) {
    std::optional<std::string_view> env;
    if (observed.serveEnv) env = *observed.serveEnv;
    c.observed = settingFromEnv(env);
    source = "serve environment OLLAMA_FLASH_ATTENTION=" +
             (observed.serveEnv ? "\"" + *observed.serveEnv + "\"" : std::string("(unset)"));
  } else {
    c.observed = FlashAttentionSetting::Unknown;
    source = "neither serve's environment nor a runner's arguments could be read";
  }

  std::string why;
  bool off = wantFlashAttentionOff(in, why);
  const std::string fix =
      "set OLLAMA_FLASH_ATTENTION=0 in the attached server's environment (e.g. launchctl "
      "setenv OLLAMA_FLASH_ATTENTION 0, or the systemd unit's Environment=) and restart it";

  if (in.mode == FlashAttentionMode::Leave) {
    c.verdict = Verdict::Ok;
    c.message = "flash attention " + std::string(toString(c.observed)) + " (" + source +
                "); ollama.flash_attention=leave";
    return c;
  }
  if (off) {
    switch (c.observed) {
      case FlashAttentionSetting::Off:
        c.verdict = Verdict::Ok;
        c.message = "flash attention off (" + source + ") as wanted: " + why;
        return c;
      case FlashAttentionSetting::On:
      case FlashAttentionSetting::Unset: {
        std::string state = c.observed == FlashAttentionSetting::On
                                ? "on"
                                : "unset (Ollama's default enables it)";
        c.verdict = in.mode == FlashAttentionMode::Off ? Verdict::Refuse : Verdict::Warn;
        c.message = "flash attention is " + state + " (" + source + ") but should be off: " +
                    why + ". Fix: " + fix;
        return c;
      }
      case FlashAttentionSetting::Unknown:
        c.verdict = Verdict::Warn;
        c.message = "cannot verify flash attention (" + source + "); it should be off: " + why +
                    ". Fix: " + fix;
        return c;
    }
  }
  if (in.mode == FlashAttentionMode::On && c.observed == FlashAttentionSetting::Off) {
    c.verdict = Verdict::Warn;
    c.message = "flash attention is off (" + source + ") but ollama.flash_attention=on";
    return c;
  }
  c.verdict = Verdict::Ok;
  c.message = "flash attention " + std::string(toString(c.observed)) + " (" + source + "): " + why;
  return c;
}

}  // namespace oasis::policy
