// Catch2 v2 needs exactly one translation unit that defines CATCH_CONFIG_MAIN;
// with v3 this file compiles to nothing and Catch2WithMain provides main().
#ifndef OASIS_CATCH_V3
#define CATCH_CONFIG_MAIN
#include "catch.h"
#endif
