// fake-ollama API fidelity (ollama-behaviour.md §1, §5, §6): schemas, streaming, stats units,
// done_reason values and error shapes. Real processes on a temporary port.
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "catch.h"
#include "support/fake_ollama.h"

using nlohmann::json;
using oasis::test::FakeOllama;

namespace {

const std::regex kIsoUtc(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z)");
const std::regex kIsoLocal(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d))");
const std::regex kHex64("[0-9a-f]{64}");

void checkDetails(const json& d) {
  REQUIRE(d.is_object());
  CHECK(d.at("parent_model") == "");
  CHECK(d.at("format") == "gguf");
  CHECK(d.at("family").is_string());
  CHECK(d.at("families").is_array());
  CHECK(d.at("parameter_size").is_string());
  CHECK(d.at("quantization_level").is_string());
  CHECK_FALSE(d.contains("context_length"));
}

std::vector<json> ndjson(const std::string& body) {
  std::vector<json> out;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

void checkFinalStats(const json& j) {
  for (const char* k : {"total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count",
                        "eval_duration"}) {
    INFO(k);
    REQUIRE(j.contains(k));
    CHECK(j[k].is_number_integer());
  }
  // Nanoseconds: 16 tokens at 200 tokens/s take ~80 ms = 8e7 ns (milliseconds would be ~80).
  CHECK(j["eval_count"] == 16);
  CHECK(j["eval_duration"].get<int64_t>() > 40'000'000);
  CHECK(j["eval_duration"].get<int64_t>() < 5'000'000'000);
  CHECK(j["total_duration"].get<int64_t>() >= j["load_duration"].get<int64_t>() + j["eval_duration"].get<int64_t>());
}

}  // namespace

TEST_CASE("fake-ollama: root, version, tags and show have Ollama's shapes", "[fake_ollama]") {
  FakeOllama fo;
  auto root = fo.get("/");
  CHECK(root.status == 200);
  CHECK(root.body == "Ollama is running");
  CHECK(root.header("content-type") == "text/plain; charset=utf-8");
  auto head = fo.request("HEAD", "/");
  CHECK(head.status == 200);
  CHECK(head.body.empty());

  auto version = fo.get("/api/version");
  CHECK(version.status == 200);
  CHECK(json::parse(version.body) == json{{"version", "0.33.0-fake"}});

  auto tags = json::parse(fo.get("/api/tags").body);
  REQUIRE(tags["models"].size() == 2);
  std::string prevModified = "9999";
  for (auto& m : tags["models"]) {
    CHECK(m["name"] == m["model"]);
    CHECK(std::regex_match(m["digest"].get<std::string>(), kHex64));
    CHECK(m["size"].is_number_integer());
    CHECK(std::regex_match(m["modified_at"].get<std::string>(), kIsoLocal));
    checkDetails(m["details"]);
  }
  auto gemma = tags["models"][0];  // newest first
  CHECK(gemma["name"] == "gemma4:e4b");
  CHECK(gemma["size"] == 9'600'000'000LL);
  CHECK(gemma["details"]["family"] == "gemma4");
  CHECK(gemma["details"]["quantization_level"] == "Q4_K_M");
  CHECK(tags["models"][1]["name"] == "tiny:latest");
  CHECK(tags["models"][1]["size"] == 50'000'000);

  auto show = fo.post("/api/show", R"({"model":"gemma4:e4b"})");
  REQUIRE(show.status == 200);
  auto s = json::parse(show.body);
  CHECK(s["modelfile"].is_string());
  CHECK(s["parameters"].is_string());
  CHECK(s["template"].is_string());
  checkDetails(s["details"]);
  CHECK(s["model_info"]["general.architecture"] == "gemma4");
  CHECK(s["model_info"].contains("gemma4.context_length"));
  CHECK(s["capabilities"] == json::array({"completion"}));
  // the legacy "name" field and a name without tag
  CHECK(fo.post("/api/show", R"({"name":"tiny"})").status == 200);

  auto ps = fo.get("/api/ps");
  CHECK(ps.status == 200);
  CHECK(json::parse(ps.body) == json{{"models", json::array()}});  // never null
}

TEST_CASE("fake-ollama: generate and chat stream NDJSON with nanosecond stats", "[fake_ollama]") {
  FakeOllama fo;
  SECTION("generate, streaming") {
    auto r = fo.post("/api/generate", R"({"model":"tiny","prompt":"Why is the sky blue?"})");
    REQUIRE(r.status == 200);
    CHECK(r.header("content-type") == "application/x-ndjson");
    auto lines = ndjson(r.body);
    REQUIRE(lines.size() == 17);
    std::string text;
    for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
      auto& l = lines[i];
      CHECK(l["model"] == "tiny");
      CHECK(std::regex_match(l["created_at"].get<std::string>(), kIsoUtc));
      CHECK(l["done"] == false);
      CHECK_FALSE(l.contains("total_duration"));  // metrics are omitempty on intermediate chunks
      CHECK_FALSE(l.contains("done_reason"));
      text += l["response"].get<std::string>();
    }
    CHECK(text.rfind("The quick brown fox", 0) == 0);
    auto fin = lines.back();
    CHECK(fin["done"] == true);
    CHECK(fin["response"] == "");
    CHECK(fin["done_reason"] == "stop");
    CHECK(fin["context"].is_array());
    CHECK(fin["prompt_eval_count"] == 5);
    checkFinalStats(fin);
  }
  SECTION("generate, non-streaming") {
    auto r = fo.post("/api/generate", R"({"model":"tiny","prompt":"hi","stream":false})");
    REQUIRE(r.status == 200);
    CHECK(r.header("content-type") == "application/json; charset=utf-8");
    auto j = json::parse(r.body);
    CHECK(j["done"] == true);
    CHECK(j["response"].get<std::string>().rfind("The quick brown fox", 0) == 0);
    checkFinalStats(j);
  }
  SECTION("chat, streaming and non-streaming") {
    auto r = fo.post("/api/chat", R"({"model":"tiny","messages":[{"role":"User","content":"hello"}]})");
    REQUIRE(r.status == 200);
    auto lines = ndjson(r.body);
    REQUIRE(lines.size() == 17);
    CHECK(lines[0]["message"] == json{{"role", "assistant"}, {"content", "The"}});
    CHECK_FALSE(lines[0].contains("response"));
    auto fin = lines.back();
    CHECK(fin["message"] == json{{"role", "assistant"}, {"content", ""}});
    CHECK(fin["done_reason"] == "stop");
    CHECK_FALSE(fin.contains("context"));
    checkFinalStats(fin);

    auto single = json::parse(
        fo.post("/api/chat", R"({"model":"tiny","stream":false,"messages":[{"role":"user","content":"x"}]})").body);
    CHECK(single["message"]["role"] == "assistant");
    CHECK(single["message"]["content"].get<std::string>().rfind("The quick", 0) == 0);
    checkFinalStats(single);
  }
  SECTION("num_predict below the natural length ends with done_reason length") {
    auto j = json::parse(
        fo.post("/api/generate", R"({"model":"tiny","prompt":"x","stream":false,"options":{"num_predict":3}})").body);
    CHECK(j["done_reason"] == "length");
    CHECK(j["eval_count"] == 3);
    CHECK(j["response"] == "The quick brown");
  }
}

TEST_CASE("fake-ollama: load_duration is the load time when cold and milliseconds when warm", "[fake_ollama]") {
  oasis::test::TempDir dir;
  std::ofstream(dir.file("models.json")) << R"({"models":[{"name":"slowload:1b","size":1000,"load_ms":800}]})";
  FakeOllama fo({{"FAKE_OLLAMA_MODELS", dir.file("models.json")}});
  auto cold = json::parse(fo.post("/api/generate", R"({"model":"slowload:1b","prompt":"a","stream":false})").body);
  CHECK(cold["load_duration"].get<int64_t>() >= 800'000'000);
  auto warm = json::parse(fo.post("/api/generate", R"({"model":"slowload:1b","prompt":"a","stream":false})").body);
  CHECK(warm["load_duration"].get<int64_t>() < 200'000'000);
  CHECK(warm["load_duration"].get<int64_t>() > 0);
  // The catalog replaced the defaults.
  CHECK(fo.post("/api/show", R"({"model":"tiny"})").status == 404);
}

TEST_CASE("fake-ollama: done_reason load and unload", "[fake_ollama]") {
  FakeOllama fo;
  auto load = json::parse(fo.post("/api/generate", R"({"model":"tiny"})").body);
  CHECK(load["done"] == true);
  CHECK(load["done_reason"] == "load");
  CHECK(load["response"] == "");
  CHECK_FALSE(load.contains("total_duration"));  // no metrics on a preload
  auto ps = json::parse(fo.get("/api/ps").body);
  REQUIRE(ps["models"].size() == 1);
  auto runners = fo.runnerPids();
  REQUIRE(runners.size() == 1);

  auto chatLoad = json::parse(fo.post("/api/chat", R"({"model":"gemma4:e4b","messages":[]})").body);
  CHECK(chatLoad["done_reason"] == "load");
  CHECK(chatLoad["message"] == json{{"role", "assistant"}, {"content", ""}});

  auto unload = fo.post("/api/generate", R"({"model":"tiny","keep_alive":0})");
  CHECK(unload.status == 200);
  auto u = json::parse(unload.body);
  CHECK(u["done_reason"] == "unload");
  CHECK(u["done"] == true);
  auto chatUnload = json::parse(fo.post("/api/chat", R"({"model":"gemma4:e4b","keep_alive":"0s"})").body);
  CHECK(chatUnload["done_reason"] == "unload");
  CHECK(chatUnload["message"] == json{{"role", "assistant"}, {"content", ""}});
  CHECK(oasis::test::waitFor([&] { return json::parse(fo.get("/api/ps").body)["models"].empty(); },
                             std::chrono::seconds(10)));
  CHECK_FALSE(oasis::test::processAlive(runners[0]));
  // Unloading something that is not loaded is still a 200 "unload".
  CHECK(json::parse(fo.post("/api/generate", R"({"model":"tiny","keep_alive":0})").body)["done_reason"] == "unload");
}

TEST_CASE("fake-ollama: bad input gets Ollama's error bodies and never crashes it", "[fake_ollama]") {
  FakeOllama fo;
  auto expectError = [&](const std::string& target, const std::string& body, int status, const std::string& msg) {
    INFO(target << " " << body);
    auto r = fo.post(target, body);
    CHECK(r.status == status);
    auto j = json::parse(r.body, nullptr, false);
    REQUIRE(j.is_object());
    REQUIRE(j.contains("error"));
    CHECK(j["error"].get<std::string>().find(msg) != std::string::npos);
  };
  expectError("/api/generate", R"({"model":"nope:1b","prompt":"x"})", 404, "model 'nope:1b' not found");
  expectError("/api/generate", R"({"model":"nope:1b","keep_alive":0})", 404, "not found");  // lookup before unload
  expectError("/api/chat", R"({"model":"nope","messages":[{"role":"user","content":"x"}]})", 404, "model 'nope' not found");
  expectError("/api/show", R"({"model":"nope"})", 404, "model 'nope' not found");
  expectError("/api/generate", R"({"prompt":"x"})", 404, "model '' not found");
  expectError("/api/chat", R"({"messages":[]})", 400, "model is required");
  expectError("/api/show", R"({})", 400, "model is required");
  expectError("/api/generate", "", 400, "missing request body");
  expectError("/api/generate", "{not json", 400, "invalid character");
  expectError("/api/generate", R"({"model":"tiny","prompt":)", 400, "unexpected EOF");
  expectError("/api/generate", R"([1,2])", 400, "cannot unmarshal array");
  expectError("/api/generate", R"({"model":42})", 400, "cannot unmarshal number into Go struct field GenerateRequest.model of type string");
  expectError("/api/generate", R"({"model":"tiny","stream":"yes"})", 400, "of type bool");
  expectError("/api/chat", R"({"model":"tiny","messages":"hi"})", 400, "cannot unmarshal string");
  expectError("/api/generate", R"({"model":"tiny","prompt":"x","keep_alive":"300"})", 400,
              R"(time: missing unit in duration "300")");
  expectError("/api/generate", R"({"model":"tiny","prompt":"x","keep_alive":"5 minutes"})", 400, "time: ");
  expectError("/api/generate", R"({"model":"tiny","prompt":"x","keep_alive":true})", 400, "Unsupported type");
  expectError("/api/generate", R"({"model":"tiny","prompt":"x","top_logprobs":21})", 400,
              "top_logprobs must be between 0 and 20");
  expectError("/api/generate", R"({"model":"tiny","prompt":"x","raw":true,"system":"s"})", 400,
              "raw mode does not support template, system, or context");

  auto unknown = fo.get("/api/nothing");
  CHECK(unknown.status == 404);
  CHECK(unknown.body == "404 page not found");
  auto wrongMethod = fo.get("/api/generate");
  CHECK(wrongMethod.status == 405);
  CHECK(wrongMethod.body == "405 method not allowed");
  CHECK(fo.request("DELETE", "/").status == 405);

  // Still alive and serving, nothing loaded by the failures.
  CHECK(fo.get("/").status == 200);
  CHECK_FALSE(fo.exited());
  CHECK(json::parse(fo.get("/api/ps").body)["models"].empty());
}
