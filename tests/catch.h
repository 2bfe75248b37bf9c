#pragma once
// One include for both Catch2 v2 (Debian 12) and v3 (Homebrew).
#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif
