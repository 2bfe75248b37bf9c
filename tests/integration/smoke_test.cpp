#include "catch.h"
#include <unistd.h>
TEST_CASE("fake-ollama binary is built", "[smoke]") { CHECK(access(OASIS_FAKE_OLLAMA_BIN, X_OK) == 0); }
