#pragma once
namespace fake_ollama {
int serveMain(int argc, char** argv);   // fake-ollama serve
int runnerMain(int argc, char** argv);  // fake-ollama runner --model ... (spawned by serve)
}
