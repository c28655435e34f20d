// Catch2's main for the single-process test binary (compiled once, it is the slow part).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
