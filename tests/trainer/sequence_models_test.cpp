// The Transformers of issue #17 learn over several seeds (support/SeedStats.h; margins measured in
// docs/testing.md; the GRU's parity test is in modern_models_test.cpp): a small language model
// learns the words of a text, well below the text's byte entropy, and a classifier with a padding
// id finds a token in sequences of varying length.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>

#include "models/core/Philox.h"
#include "storage/dataset/Import.h"
#include "support/SeedStats.h"
#include "support/TestSupport.h"
#include "support/TrainingRun.h"

using namespace dptrain;
using namespace dptrain::test;

namespace {

// Bits per byte of the bytes' frequencies: what a model that ignores context can reach.
double unigram_bits(const std::string& text) {
  std::map<unsigned char, double> counts;
  for (unsigned char c : text) counts[c] += 1.0;
  double h = 0.0;
  for (const auto& [c, n] : counts)
    h -= n / static_cast<double>(text.size()) * std::log2(n / static_cast<double>(text.size()));
  return h;
}

}  // namespace

TEST_CASE("a Transformer language model learns the words of a text", "[quality][trainer][sequence]") {
  SeedStats bits("transformer_lm on a 24-word text: validation bits per byte / unigram bits per byte");
  for (uint64_t seed : quality_seeds()) {
    TempDir dir;
    const std::string text = test_text(40000, 10 + seed);
    write_text(dir.file("text.txt"), text);
    TextImport data = import_text({dir.file("text.txt"), 32, 0.1});
    write_train_validation_files(dir.file("train.h5"), data.train, dir.file("val.h5"), data.validation);
    TrainResult r =
        train_toml(dir, "seed = " + std::to_string(seed) + "\nthreads = 1\n[data]\ntrain = \"" + dir.file("train.h5") +
                            "\"\nvalidation = \"" + dir.file("val.h5") +
                            "\"\n[model]\nkind = \"transformer_lm\"\nlayers = 2\nwidth = 32\nheads = 2\ndropout = 0.0\n"
                            "[optim]\nkind = \"adamw\"\nlr = 0.01\nclip_norm = 1.0\n[schedule]\nkind = \"cosine\"\n"
                            "warmup_steps = 20\n[train]\nbatch_size = 32\nepochs = 12\nlog_every = 1000\n");
    bits.add(seed, r.validation.loss / std::log(2.0) / unigram_bits(text));
  }
  bits.report();
  CHECK(bits.mean() <= 0.45);
  CHECK(bits.max() <= 0.55);
}

// Sequences of 3 to 12 tokens from 1..5, padded with id 0 to 12 steps; the class says whether a 5
// occurs. The classifier leaves the padding out of attention and of its mean (pad_id = 0).
TEST_CASE("a Transformer classifier finds a token in padded sequences", "[quality][trainer][sequence]") {
  SeedStats acc("transformer_classifier, padded sequences: test accuracy");
  for (uint64_t seed : quality_seeds()) {
    TempDir dir;
    auto make = [&](int64_t rows, uint64_t stream) {
      Philox rng(seed, RandomPurpose::synth, 31, stream);
      DatasetContents c;
      const int64_t steps = 12;
      c.sample_shape = Shape{steps};
      c.label_kind = LabelKind::classes;
      c.num_classes = 2;
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t length = 3 + static_cast<int64_t>(rng.below(steps - 2));
        // Half the rows get a 5 somewhere, so the classes stay balanced.
        const bool has = rng.below(2) == 1;
        const int64_t at = static_cast<int64_t>(rng.below(static_cast<uint64_t>(length)));
        for (int64_t t = 0; t < steps; ++t) {
          float id = t < length ? static_cast<float>(1 + rng.below(4)) : 0.0f;
          if (has && t == at) id = 5.0f;
          c.x.push_back(id);
        }
        c.labels.push_back(has ? 1 : 0);
      }
      return c;
    };
    write_dataset_file(dir.file("train.h5"), make(3000, 1));
    write_dataset_file(dir.file("test.h5"), make(500, 2));
    acc.add(seed, train_toml(dir, "seed = " + std::to_string(seed) + "\nthreads = 1\n[data]\ntrain = \"" +
                                      dir.file("train.h5") + "\"\ntest = \"" + dir.file("test.h5") +
                                      "\"\n[model]\nkind = \"transformer_classifier\"\nlayers = 1\nwidth = 16\n"
                                      "heads = 2\ndropout = 0.0\nvocab = 6\npad_id = 0\n[optim]\nkind = \"adamw\"\n"
                                      "lr = 0.01\n[train]\nbatch_size = 32\nepochs = 4\nlog_every = 1000\n")
                      .test.accuracy);
  }
  acc.report();
  CHECK(acc.min() >= 0.95);
}
