// oasis-bench: oasisd's overhead and scale benchmarks (issues 4 and 6), against fake-ollama with
// instant generation. Prints a human summary and writes JSON for scripts/bench.sh.
//
//   oasis-bench overhead --oasisd BIN --fake BIN [--seconds S] [--rounds R] [--no-floors] [--no-context]
//                        [--json OUT]
//   oasis-bench scale    --oasisd BIN --fake BIN [--sizes 10000,100000,1000000] [--json OUT]
//
// overhead: the same emulator process is measured directly (TCP, as a client of Ollama would)
// and through oasisd (Ollama-compatible /api/generate and POST /v1/trials?wait on the Unix
// socket), at concurrency 1 and 4. The modes are interleaved in rounds so that noise from other
// work on the machine falls on all of them alike; ratios are therefore side by side. Two floors
// are measured with them (unless --no-floors): a bare relay, which is the hop any proxy adds, and
// a second oasisd with its store in memory attached to the same emulator, which is oasisd without
// its storage I/O. For context (unless --no-context), the direct and compat modes once more with a
// model that takes 20 ms per call, still far shorter than any real model call.
// scale: a fresh oasisd per size, dispatch paused while the trials are submitted in batches,
// then status/timeline latency, RSS and database size with everything queued, then dispatch.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <sstream>

#include "tests/bench/bench_http.h"

using nlohmann::json;
using namespace oasis::bench;
using namespace std::chrono_literals;

namespace {

struct Args {
  std::string mode, oasisd, fake, jsonOut;
  double seconds = 1.0;
  int rounds = 3;
  std::vector<long> sizes = {10000, 100000, 1000000};
  int batch = 5000;
  bool keys = true;
  bool floors = true;
  bool context = true;
  double dispatchWindowS = 8;
};

double msSince(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

std::string vmStatPlentiful() {
  // An Apple Silicon vm_stat with plenty free, so the memory policy never pauses a benchmark
  // because of what else runs on this machine.
  const std::pair<const char*, long> rows[] = {
      {"Pages free:", 400000}, {"Pages active:", 400000}, {"Pages inactive:", 300000},
      {"Pages speculative:", 1000}, {"Pages throttled:", 0}, {"Pages wired down:", 100000},
      {"Pages purgeable:", 1000}, {"\"Translation faults\":", 1000000}, {"Pages copy-on-write:", 1000},
      {"Pages zero filled:", 1000}, {"Pages reactivated:", 0}, {"Pages purged:", 0},
      {"File-backed pages:", 300000}, {"Anonymous pages:", 400000}, {"Pages stored in compressor:", 0},
      {"Pages occupied by compressor:", 0}, {"Decompressions:", 0}, {"Compressions:", 0},
      {"Pageins:", 1000}, {"Pageouts:", 0}, {"Swapins:", 0}, {"Swapouts:", 0}};
  std::string s = "Mach Virtual Memory Statistics: (page size of 16384 bytes)\n";
  for (auto& [label, v] : rows) {
    std::string l = label;
    std::string num = std::to_string(v) + ".";
    while (l.size() + num.size() < 48) l += ' ';
    s += l + num + "\n";
  }
  return s;
}

// oasisd in managed mode over fake-ollama, whose only model generates instantly: no load time,
// one token at a billion tokens/s. Everything lives in a private temporary directory.
// RigOptions can instead attach it to another rig's emulator, or keep its store in memory.
struct RigOptions {
  std::uint16_t attachPort = 0;  // non-zero: attach mode to the emulator on this port
  std::string db;                // empty: a file in the rig's directory
};

class Rig {
 public:
  Rig(const Args& a, const json& overrides, const RigOptions& options = {}) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "oasis-bench-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    port_ = options.attachPort ? options.attachPort : freeTcpPort();
    socket_ = dir_ + "/oasisd.sock";
    db_ = options.db.empty() ? dir_ + "/oasisd.db" : options.db;
    // bench:latest answers at once (the targets' case); bench-20ms:latest takes 20 tokens at
    // 1,000 tokens/s, still far shorter than any real model call, for context.
    json catalog = {{"models",
                     {{{"name", "bench:latest"}, {"size", 50000000}, {"load_ms", 0}, {"tokens_per_s", 1e9}, {"num_predict", 1}},
                      {{"name", "bench-20ms:latest"},
                       {"size", 50000000},
                       {"load_ms", 0},
                       {"tokens_per_s", 1000},
                       {"num_predict", 20}}}}};
    std::ofstream(dir_ + "/models.json") << catalog.dump();
    std::ofstream(dir_ + "/vm_stat.txt") << vmStatPlentiful();
    json cfg = {
        {"ollama",
         {{"command", {a.fake, "serve"}},
          {"url", "http://127.0.0.1:" + std::to_string(port_)},
          {"env", {{"FAKE_OLLAMA_MODELS", dir_ + "/models.json"}, {"OLLAMA_NUM_PARALLEL", "4"},
                   {"OLLAMA_KEEP_ALIVE", "-1"}}}}},
        {"max_concurrency", 4},
        {"ps_interval_s", 2},
        {"memory", {{"interval_s", 1}, {"source", {{"kind", "file"}, {"path", dir_ + "/vm_stat.txt"}, {"format", "vm_stat"}}}}},
        {"log", {{"level", "warn"}}}};
    if (options.attachPort) cfg["ollama"]["mode"] = "attach";
    cfg.merge_patch(overrides);
    std::ofstream(dir_ + "/oasisd.json") << cfg.dump(2);
    child_ = std::make_unique<Child>(
        std::vector<std::string>{a.oasisd, "--config", dir_ + "/oasisd.json", "--socket", socket_, "--db", db_},
        dir_ + "/oasisd.log");
    // Ready when the socket answers, the managed server is up and dispatch is not paused.
    auto deadline = Clock::now() + 60s;
    for (;;) {
      try {
        auto s = status();
        if (s["server"]["up"] == true && s["run"]["state"] == "running") break;
      } catch (const std::exception&) {
      }
      if (Clock::now() > deadline) throw std::runtime_error("oasisd did not become ready; log: " + dir_ + "/oasisd.log");
      std::this_thread::sleep_for(50ms);
    }
  }
  ~Rig() {
    child_.reset();
    if (!std::getenv("OASIS_BENCH_KEEP")) std::filesystem::remove_all(dir_);
  }

  Target oasisd() const { return Target{socket_, "", 0}; }
  Target ollama() const { return Target{"", "127.0.0.1", port_}; }
  std::uint16_t ollamaPort() const { return port_; }
  const std::string& dir() const { return dir_; }
  pid_t pid() const { return child_->pid(); }
  const std::string& db() const { return db_; }

  json status() {
    Conn c(oasisd());
    auto r = c.request("GET", "/v1/status");
    if (r.status != 200) throw std::runtime_error("status " + std::to_string(r.status));
    return json::parse(r.body);
  }
  json call(const std::string& method, const std::string& path, const std::string& body = {}) {
    Conn c(oasisd());
    auto r = c.request(method, path, body);
    if (r.status / 100 != 2) throw std::runtime_error(method + " " + path + ": HTTP " + std::to_string(r.status) + " " + r.body);
    return json::parse(r.body, nullptr, false);
  }

 private:
  std::string dir_, socket_, db_;
  std::uint16_t port_ = 0;
  std::unique_ptr<Child> child_;
};

// ------------------------------------------------------------------------------ overhead

struct ModeSpec {
  std::string name;
  Target target;
  std::string reference;  // the direct mode this one is compared with; "" for a direct mode
  std::string path, body, mustContain;
};

struct Sample {
  std::vector<double> latUs;
  double seconds = 0;
  long errors = 0;
  std::string firstError;
};

// `conc` clients, each on its own kept-alive connection, for `seconds`.
void runClients(const Target& target, const ModeSpec& m, int conc, double seconds, Sample& out) {
  std::mutex mu;
  std::vector<std::thread> threads;
  auto start = Clock::now();
  auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  for (int i = 0; i < conc; ++i) {
    threads.emplace_back([&] {
      Conn c(target);
      std::vector<double> lat;
      lat.reserve(100000);
      long errors = 0;
      std::string firstError;
      while (Clock::now() < end) {
        auto t0 = Clock::now();
        try {
          auto r = c.request("POST", m.path, m.body);
          double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
          if (r.status == 200 && r.body.find(m.mustContain) != std::string::npos) {
            lat.push_back(us);
          } else {
            if (!errors) firstError = "HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 300);
            ++errors;
          }
        } catch (const std::exception& e) {
          if (!errors) firstError = e.what();
          ++errors;
          c.close();
        }
      }
      std::lock_guard lock(mu);
      out.latUs.insert(out.latUs.end(), lat.begin(), lat.end());
      out.errors += errors;
      if (out.firstError.empty()) out.firstError = firstError;
    });
  }
  for (auto& t : threads) t.join();
  out.seconds += std::chrono::duration<double>(Clock::now() - start).count();
}

int overhead(const Args& a) {
  Rig rig(a, json::object());
  const std::string gen = R"({"model":"bench:latest","prompt":"hi","stream":false})";
  // Two floors beside the targets' modes, so that what is left of oasisd's overhead can be
  // attributed: the hop alone (a bare relay) and oasisd without storage I/O (its store in
  // memory, attached to the same emulator).
  std::optional<Relay> relay;
  std::optional<Rig> memstore;
  if (a.floors) {
    relay.emplace(rig.dir() + "/relay.sock", rig.ollama());
    memstore.emplace(a, json::object(), RigOptions{rig.ollamaPort(), ":memory:"});
  }
  const std::string gen20 = R"({"model":"bench-20ms:latest","prompt":"hi","stream":false})";
  std::vector<ModeSpec> modes = {
      {"direct", rig.ollama(), "", "/api/generate", gen, "\"done\":true"},
      {"oasisd_compat", rig.oasisd(), "direct", "/api/generate", gen, "\"done\":true"},
      {"oasisd_wait", rig.oasisd(), "direct", "/v1/trials?wait=30",
       R"({"model":"bench:latest","request":{"prompt":"hi"},"run":"bench"})", "\"state\":\"succeeded\""},
  };
  if (a.floors) {
    modes.push_back({"floor_relay", relay->target(), "direct", "/api/generate", gen, "\"done\":true"});
    modes.push_back({"floor_memstore_compat", memstore->oasisd(), "direct", "/api/generate", gen, "\"done\":true"});
  }
  if (a.context) {
    modes.push_back({"direct_20ms", rig.ollama(), "", "/api/generate", gen20, "\"done\":true"});
    modes.push_back({"oasisd_compat_20ms", rig.oasisd(), "direct_20ms", "/api/generate", gen20, "\"done\":true"});
  }
  // Warm up: the model loads on first use; every path once, then a short burst each.
  for (auto& m : modes) {
    Sample s;
    runClients(m.target, m, 1, 0.3, s);
    if (s.latUs.empty()) throw std::runtime_error("warm-up of " + m.name + " failed: " + s.firstError);
  }
  json out;
  out["machine_note"] = "absolute times are this machine's only; ratios are measured side by side in this run";
  bool ok = true;
  std::printf("overhead: instant generation (fake-ollama, 1 token, load 0 ms), %d rounds x %.1f s per mode, interleaved\n",
              a.rounds, a.seconds);
  std::printf("  %-5s %-22s %9s %9s %9s %11s %9s %8s\n", "conc", "mode", "p50 ms", "p99 ms", "req/s", "added p50", "tput %",
              "errors");
  for (int conc : {1, 4}) {
    std::map<std::string, Sample> samples;
    for (int r = 0; r < a.rounds; ++r)
      for (auto& m : modes) runClients(m.target, m, conc, a.seconds, samples[m.name]);
    json c;
    for (auto& m : modes) {
      auto& s = samples[m.name];
      double p50 = pct(s.latUs, 50) / 1000, p99 = pct(s.latUs, 99) / 1000;
      double tput = static_cast<double>(s.latUs.size()) / s.seconds;
      const bool compared = !m.reference.empty();
      double directP50 = 0, directTput = 1;
      if (compared) {
        auto& d = samples[m.reference];
        directP50 = pct(d.latUs, 50) / 1000;
        directTput = static_cast<double>(d.latUs.size()) / d.seconds;
      }
      json j = {{"p50_ms", p50}, {"p99_ms", p99}, {"throughput_per_s", tput}, {"requests", s.latUs.size()},
                {"errors", s.errors}};
      if (!s.firstError.empty()) j["first_error"] = s.firstError;
      if (s.errors) ok = false;
      if (compared) {
        j["added_p50_ms"] = p50 - directP50;
        j["throughput_ratio"] = tput / directTput;
      }
      c[m.name] = j;
      std::printf("  %-5d %-22s %9.3f %9.3f %9.0f %11s %8s %8ld\n", conc, m.name.c_str(), p50, p99, tput,
                  compared ? (std::to_string(p50 - directP50).substr(0, 6) + " ms").c_str() : "-",
                  compared ? (std::to_string(static_cast<int>(tput / directTput * 100 + 0.5)) + "%").c_str() : "-",
                  s.errors);
      if (s.errors) std::printf("        first error: %s\n", s.firstError.c_str());
    }
    out["concurrency_" + std::to_string(conc)] = c;
  }
  out["oasisd_rss_mb"] = static_cast<double>(procStatusKb(rig.pid(), "VmHWM")) / 1024;
  if (!a.jsonOut.empty()) std::ofstream(a.jsonOut) << out.dump(2) << "\n";
  return ok ? 0 : 1;
}

// ------------------------------------------------------------------------------ scale

std::vector<double> timeGets(Rig& rig, const std::string& path, int count, double maxSeconds) {
  Conn c(rig.oasisd());
  std::vector<double> ms;
  auto stopAt = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(maxSeconds));
  for (int i = 0; i < count && Clock::now() < stopAt; ++i) {
    auto t0 = Clock::now();
    auto r = c.request("GET", path);
    if (r.status != 200) throw std::runtime_error("GET " + path + ": HTTP " + std::to_string(r.status));
    ms.push_back(msSince(t0));
  }
  return ms;
}

json latencyJson(const std::vector<double>& v) {
  return {{"p50_ms", pct(v, 50)}, {"p99_ms", pct(v, 99)}, {"max_ms", v.empty() ? 0 : *std::max_element(v.begin(), v.end())},
          {"samples", v.size()}};
}

json scaleOne(const Args& a, long n) {
  json overrides = {{"queue_limit", std::max<long>(n, 100000) + 1000}};
  Rig rig(a, overrides);
  rig.call("POST", "/v1/pause", R"({"reason":"manual"})");
  // Bodies are built before the clock starts: the figure is oasisd's, not the generator's.
  std::vector<std::string> bodies;
  for (long i = 0; i < n; i += a.batch) {
    std::string b = "{\"trials\":[";
    for (long k = i; k < std::min(n, i + a.batch); ++k) {
      if (k > i) b += ',';
      b += R"({"model":"bench:latest","request":{"prompt":"q)" + std::to_string(k) + R"("},"run":"scale")";
      if (a.keys) b += R"(,"key":"scale-)" + std::to_string(k) + "\"";
      b += '}';
    }
    b += "]}";
    bodies.push_back(std::move(b));
  }
  Conn c(rig.oasisd());
  auto t0 = Clock::now();
  for (auto& b : bodies) {
    auto r = c.request("POST", "/v1/trials/batch", b);
    if (r.status != 202) throw std::runtime_error("batch submit: HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 300));
  }
  double submitS = msSince(t0) / 1000;
  bodies.clear();
  json j;
  j["trials"] = n;
  j["submit_seconds"] = submitS;
  j["submit_per_s"] = static_cast<double>(n) / submitS;
  auto st = rig.status();
  if (st["trials"]["queued"] != n) throw std::runtime_error("after submit, status says queued=" + st["trials"]["queued"].dump());
  long long dbBytes = fileSize(rig.db()) + fileSize(rig.db() + "-wal");
  j["db_bytes"] = dbBytes;
  j["db_bytes_per_trial"] = static_cast<double>(dbBytes) / static_cast<double>(n);
  j["rss_mb_queued"] = static_cast<double>(procStatusKb(rig.pid(), "VmRSS")) / 1024;
  j["status_queued"] = latencyJson(timeGets(rig, "/v1/status", 300, 15));
  j["timeline_queued"] = latencyJson(timeGets(rig, "/v1/timeline?bucket_s=60", 20, 15));

  // Dispatch: resume, and count trials that end within the window (all of them if they fit).
  rig.call("POST", "/v1/resume");
  auto d0 = Clock::now();
  auto windowEnd = d0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(a.dispatchWindowS));
  long done = 0;
  for (;;) {
    auto s = rig.status();
    done = s["trials"]["succeeded"].get<long>() + s["trials"]["failed"].get<long>();
    if (done >= n || Clock::now() >= windowEnd) break;
    std::this_thread::sleep_for(100ms);
  }
  double dispatchS = msSince(d0) / 1000;
  auto s = rig.status();
  j["dispatch_window_s"] = dispatchS;
  j["dispatched_ended"] = done;
  j["dispatch_per_s"] = static_cast<double>(done) / dispatchS;
  j["failed"] = s["trials"]["failed"];
  // With attempts in the store and dispatch still running (unless it all finished).
  j["status_running"] = latencyJson(timeGets(rig, "/v1/status", 200, 10));
  j["timeline_running"] = latencyJson(timeGets(rig, "/v1/timeline?bucket_s=60", 20, 10));
  j["rss_mb_peak"] = static_cast<double>(procStatusKb(rig.pid(), "VmHWM")) / 1024;
  return j;
}

int scale(const Args& a) {
  json out = json::array();
  std::printf("scale: dispatch paused while submitting (batches of %d, idempotency keys %s), instant generation\n", a.batch,
              a.keys ? "on" : "off");
  std::printf("  %9s %10s %9s %10s %9s %10s %10s %11s %11s\n", "trials", "submit/s", "B/trial", "RSS MB", "peak MB",
              "status p99", "timeline", "dispatch/s", "status p99");
  std::printf("  %9s %10s %9s %10s %9s %10s %10s %11s %11s\n", "", "", "", "(queued)", "", "(queued)", "p99 (q)", "",
              "(running)");
  for (long n : a.sizes) {
    auto j = scaleOne(a, n);
    std::printf("  %9ld %10.0f %9.0f %10.1f %9.1f %10.2f %10.2f %11.0f %11.2f\n", n, j["submit_per_s"].get<double>(),
                j["db_bytes_per_trial"].get<double>(), j["rss_mb_queued"].get<double>(), j["rss_mb_peak"].get<double>(),
                j["status_queued"]["p99_ms"].get<double>(), j["timeline_queued"]["p99_ms"].get<double>(),
                j["dispatch_per_s"].get<double>(), j["status_running"]["p99_ms"].get<double>());
    std::fflush(stdout);
    out.push_back(j);
  }
  if (!a.jsonOut.empty()) std::ofstream(a.jsonOut) << out.dump(2) << "\n";
  return 0;
}

[[noreturn]] void usage() {
  std::cerr << "usage: oasis-bench overhead|scale --oasisd BIN --fake BIN [--json OUT] [--seconds S] [--rounds R]\n"
               "                   [--no-floors] [--no-context] [--sizes N,N,...] [--batch N] [--no-keys] [--dispatch-window S]\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  if (argc < 2) usage();
  Args a;
  a.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (k == "--oasisd") a.oasisd = next();
    else if (k == "--fake") a.fake = next();
    else if (k == "--json") a.jsonOut = next();
    else if (k == "--seconds") a.seconds = std::stod(next());
    else if (k == "--rounds") a.rounds = std::stoi(next());
    else if (k == "--batch") a.batch = std::stoi(next());
    else if (k == "--no-keys") a.keys = false;
    else if (k == "--no-floors") a.floors = false;
    else if (k == "--no-context") a.context = false;
    else if (k == "--dispatch-window") a.dispatchWindowS = std::stod(next());
    else if (k == "--sizes") {
      a.sizes.clear();
      std::stringstream ss(next());
      std::string item;
      while (std::getline(ss, item, ',')) a.sizes.push_back(std::stol(item));
    } else usage();
  }
  if (a.oasisd.empty() || a.fake.empty()) usage();
  for (auto* bin : {&a.oasisd, &a.fake})
    if (::access(bin->c_str(), X_OK) != 0) {
      std::cerr << "oasis-bench: " << *bin << " is not an executable\n";
      return 2;
    }
  try {
    if (a.mode == "overhead") return overhead(a);
    if (a.mode == "scale") return scale(a);
  } catch (const std::exception& e) {
    std::cerr << "oasis-bench " << a.mode << ": " << e.what() << "\n";
    return 1;
  }
  usage();
}
