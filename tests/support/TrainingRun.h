// Runs a training job in-process from TOML text (world size 1), for tests that assert results.
#pragma once

#include <string>

#include "storage/dataset/Synthesize.h"
#include "support/TestSupport.h"
#include "trainer/Trainer.h"

namespace dptrain::test {

// Synthesizes `kind` into dir/name.h5 and returns the path.
std::string synth_file(const TempDir& dir, const std::string& name, SynthOptions options);

// Parses `toml` (with out_dir and progress set to the temp dir / off) and trains.
TrainResult train_toml(const TempDir& dir, const std::string& toml);

}  // namespace dptrain::test
