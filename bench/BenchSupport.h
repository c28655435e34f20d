// Shared pieces of the I/O and communication benchmark programs (reader_bench, checkpoint_bench,
// allreduce_bench): the reference MLP of peers/torch_train.py, a clock, and a small option parser,
// so that every program trains exactly the same model the same way.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/BenchTiming.h"
#include "models/Model.h"
#include "models/layers/Dense.h"
#include "models/layers/Sequential.h"
#include "trainer/optim/Optimizer.h"

namespace dptrain::bench {

// 784-1024-1024-10 with ReLU (peers/torch_train.py --model mlp), initialized from seed 0.
inline std::unique_ptr<Model> make_reference_mlp() {
  auto net = std::make_unique<Sequential>();
  net->add(std::make_unique<Dense>(1024, true, Activation::relu));
  net->add(std::make_unique<Dense>(1024, true, Activation::relu));
  net->add(std::make_unique<Dense>(10));
  auto model = std::make_unique<Model>(std::move(net), Shape{784}, Device::cpu);
  model->initialize(0);
  return model;
}

// SGD lr 0.01 with momentum 0.9, the peer's optimizer.
inline OptimConfig reference_sgd() {
  OptimConfig oc;
  oc.kind = OptimizerKind::momentum;
  oc.lr = 0.01;
  oc.momentum = 0.9;
  return oc;
}

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// --key value options with defaults; unknown keys end the program with exit code 2.
class Options {
 public:
  Options(int argc, char** argv, std::map<std::string, std::string> defaults, const char* usage)
      : values_(std::move(defaults)) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0 || !values_.count(a.substr(2)) || i + 1 >= argc) {
        std::fprintf(stderr, "%s: bad option '%s'\nusage: %s\n", argv[0], a.c_str(), usage);
        std::exit(2);
      }
      values_[a.substr(2)] = argv[++i];
    }
  }
  std::string str(const std::string& key) const { return values_.at(key); }
  int64_t num(const std::string& key) const { return std::atoll(values_.at(key).c_str()); }
  double real(const std::string& key) const { return std::atof(values_.at(key).c_str()); }

 private:
  std::map<std::string, std::string> values_;
};

}  // namespace dptrain::bench
