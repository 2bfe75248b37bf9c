// Flash-attention launch policy, Ollama's boolean parsing, version comparison.
#include "catch.h"
#include "daemon/policy/flash_attention_policy.h"

using namespace oasis;
using namespace oasis::policy;

TEST_CASE("Ollama's boolean parsing: anything that is not a Go boolean is TRUE",
          "[policy][flash]") {
  CHECK_FALSE(parseOllamaBool(std::nullopt));
  CHECK_FALSE(parseOllamaBool(""));
  CHECK_FALSE(parseOllamaBool("  \"\" "));
  CHECK(parseOllamaBool("0") == false);
  CHECK(parseOllamaBool("1") == true);
  CHECK(parseOllamaBool("false") == false);
  CHECK(parseOllamaBool("FALSE") == false);
  CHECK(parseOllamaBool("F") == false);
  CHECK(parseOllamaBool(" '0' ") == false);  // envconfig.Var trims spaces and quotes
  CHECK(parseOllamaBool("off") == true);
  CHECK(parseOllamaBool("no") == true);
  CHECK(parseOllamaBool("disabled") == true);
  CHECK(parseOllamaBool("fAlse") == true);
  CHECK(settingFromEnv("off") == FlashAttentionSetting::On);
  CHECK(settingFromEnv(std::nullopt) == FlashAttentionSetting::Unset);
  CHECK(settingFromEnv("0") == FlashAttentionSetting::Off);
}

TEST_CASE("version comparison", "[policy][flash]") {
  auto cmp = [](std::string_view a, std::string_view b) {
    auto r = compareVersions(a, b);
    REQUIRE(r.ok());
    return *r;
  };
  CHECK(cmp("0.20.4", "0.20.4") == 0);
  CHECK(cmp("0.20.4", "0.20.10") < 0);
  CHECK(cmp("0.33.0-rc2", "0.33.0") < 0);
  CHECK(cmp("0.33.0", "0.33.0-rc2") > 0);
  CHECK(cmp("0.33.0-rc2", "0.33.0-rc10") < 0);
  CHECK(cmp("0.33.0-rc2", "0.32.15") > 0);
  CHECK(cmp("v0.12.0", "0.12") == 0);
  CHECK(cmp("0.12.0+build.5", "0.12.0") == 0);
  CHECK(cmp("1.0.0", "0.99.99") > 0);
  CHECK(cmp("0.5.1-rc0-4-gabc123", "0.5.1") < 0);
  CHECK(cmp("0.5.1-rc0-4-gabc123", "0.5.1-rc0") > 0);
  CHECK(cmp("0.0.0", "0.20.4") < 0);

  for (auto bad : {"", "abc", "1..2", "1.x", "0.20.", "-rc1", "1.2-"}) {
    CAPTURE(bad);
    CHECK_FALSE(parseVersion(bad).ok());
  }
  auto v = parseVersion("0.33.0-rc2");
  REQUIRE(v.ok());
  CHECK(v->numbers == std::vector<std::uint64_t>{0, 33, 0});
  CHECK(v->prerelease == "rc2");
}

TEST_CASE("launch env decision", "[policy][flash]") {
  FlashAttentionInputs in;
  in.isAppleSilicon = true;

  SECTION("auto on Apple Silicon with no fixed-in version: always 0") {
    in.serverVersion = "0.33.0-rc2";
    auto d = decideLaunchEnv(in);
    CHECK(d.value == "0");
    CHECK(d.effective == FlashAttentionSetting::Off);
    CHECK(d.reason.find("15368") != std::string::npos);
    CHECK(d.reason.find("TRUE") != std::string::npos);  // the parsing note
  }
  SECTION("auto, version-gated") {
    in.fixedIn = "0.34.0";
    in.serverVersion = "0.33.0-rc2";
    CHECK(decideLaunchEnv(in).value == "0");
    in.serverVersion = "0.34.0-rc1";
    CHECK(decideLaunchEnv(in).value == "0");
    in.serverVersion = "0.34.0";
    CHECK_FALSE(decideLaunchEnv(in).value);
    in.serverVersion = "0.35.1";
    auto fixed = decideLaunchEnv(in);
    CHECK_FALSE(fixed.value);
    CHECK(fixed.effective == FlashAttentionSetting::Unset);
    in.serverVersion.reset();  // unknown: assume affected
    CHECK(decideLaunchEnv(in).value == "0");
    in.serverVersion = "garbage";
    CHECK(decideLaunchEnv(in).value == "0");
  }
  SECTION("auto elsewhere leaves the environment alone") {
    in.isAppleSilicon = false;
    in.inheritedEnv = "1";
    auto d = decideLaunchEnv(in);
    CHECK_FALSE(d.value);
    CHECK(d.effective == FlashAttentionSetting::On);
  }
  SECTION("explicit off/on always write 0/1, overriding inherited values") {
    in.mode = FlashAttentionMode::Off;
    in.isAppleSilicon = false;
    in.inheritedEnv = "off";  // would mean TRUE to Ollama
    auto off = decideLaunchEnv(in);
    CHECK(off.value == "0");
    CHECK(off.reason.find("overrides inherited") != std::string::npos);
    in.mode = FlashAttentionMode::On;
    in.isAppleSilicon = true;
    CHECK(decideLaunchEnv(in).value == "1");
  }
  SECTION("leave keeps the inherited value and warns about non-booleans") {
    in.mode = FlashAttentionMode::Leave;
    in.inheritedEnv = "off";
    auto d = decideLaunchEnv(in);
    CHECK_FALSE(d.value);
    CHECK(d.effective == FlashAttentionSetting::On);
    CHECK(d.reason.find("WARNING") != std::string::npos);
  }
  CHECK(parseFlashAttentionMode("auto") == FlashAttentionMode::Auto);
  CHECK(parseFlashAttentionMode("leave") == FlashAttentionMode::Leave);
  CHECK_FALSE(parseFlashAttentionMode("0"));
}

TEST_CASE("attach mode: judge the running server's setting", "[policy][flash]") {
  FlashAttentionInputs in;
  in.isAppleSilicon = true;
  ObservedFlashAttention seen;

  SECTION("runner argument wins over the environment") {
    seen.serveEnvKnown = true;
    seen.serveEnv = "0";
    seen.runnerArg = "on";
    auto c = evaluateAttached(in, seen);
    CHECK(c.observed == FlashAttentionSetting::On);
    CHECK(c.verdict == Verdict::Warn);  // auto cannot relaunch someone else's server
    CHECK(c.message.find("OLLAMA_FLASH_ATTENTION=0") != std::string::npos);
    in.mode = FlashAttentionMode::Off;
    CHECK(evaluateAttached(in, seen).verdict == Verdict::Refuse);
    in.mode = FlashAttentionMode::Leave;
    CHECK(evaluateAttached(in, seen).verdict == Verdict::Ok);
  }
  SECTION("environment only") {
    seen.serveEnvKnown = true;
    seen.serveEnv = "0";
    auto c = evaluateAttached(in, seen);
    CHECK(c.observed == FlashAttentionSetting::Off);
    CHECK(c.verdict == Verdict::Ok);
    seen.serveEnv = "off";  // Ollama reads this as TRUE
    CHECK(evaluateAttached(in, seen).observed == FlashAttentionSetting::On);
    CHECK(evaluateAttached(in, seen).verdict == Verdict::Warn);
    seen.serveEnv.reset();
    auto unset = evaluateAttached(in, seen);
    CHECK(unset.observed == FlashAttentionSetting::Unset);
    CHECK(unset.verdict == Verdict::Warn);
  }
  SECTION("nothing readable") {
    auto c = evaluateAttached(in, seen);
    CHECK(c.observed == FlashAttentionSetting::Unknown);
    CHECK(c.verdict == Verdict::Warn);
  }
  SECTION("era-C runner off, era-B bare flag on") {
    seen.runnerArg = "off";
    CHECK(evaluateAttached(in, seen).verdict == Verdict::Ok);
    seen.runnerArg = "";
    CHECK(evaluateAttached(in, seen).observed == FlashAttentionSetting::On);
  }
  SECTION("not Apple Silicon: auto accepts anything") {
    in.isAppleSilicon = false;
    seen.runnerArg = "on";
    CHECK(evaluateAttached(in, seen).verdict == Verdict::Ok);
    in.mode = FlashAttentionMode::On;
    seen.runnerArg = "off";
    CHECK(evaluateAttached(in, seen).verdict == Verdict::Warn);
  }
}
