// The dptrain command line: dispatches to a subcommand and turns any error into one line on
// stderr and an exit code (2 bad input or config, 3 a peer failed or timed out, 1 anything else).
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "launch/commands/Commands.h"
#include "models/core/Error.h"
#include "models/kernels/cpu/CpuEngine.h"

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const dptrain::Args&);
};

const Command commands[] = {
    {"train", "train a model from a TOML config (run under mpirun/srun for N ranks)", dptrain::train_command},
    {"cv", "k-fold cross-validation of a config: each fold's and the mean validation metrics", dptrain::cv_command},
    {"eval", "evaluate a trained model on a dataset", dptrain::eval_command},
    {"predict", "write a trained model's predictions for a dataset", dptrain::predict_command},
    {"export", "write a trained model as safetensors (PyTorch names) or ONNX", dptrain::export_command},
    {"data", "synthesize, import or inspect dataset files", dptrain::data_command},
    {"checkpoint", "inspect and verify a checkpoint file", dptrain::checkpoint_command},
    {"sample", "draw samples from a trained GAN generator or generate text from a language model",
     dptrain::sample_command},
    {"launch", "run a supervised job: coordinator, N workers, restarts from checkpoints", dptrain::launch_command},
};

void usage(std::FILE* to) {
  std::fprintf(to, "usage: dptrain COMMAND [args] (dptrain COMMAND --help for more)\n\ncommands:\n");
  for (const auto& c : commands) std::fprintf(to, "  %-10s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    usage(stderr);
    return 2;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    usage(stdout);
    return 0;
  }
  if (args[0] == "--version") {
    std::printf("dptrain 0.1.0\n");
    return 0;
  }
  for (const auto& c : commands) {
    if (args[0] != c.name) continue;
    try {
      dptrain::cpu_engine();  // a bad DPTRAIN_CPU_ENGINE fails here, clearly, not inside a product's thread
      return c.run(dptrain::Args(args.begin() + 1, args.end()));
    } catch (const dptrain::Error& e) {
      if (int rank = dptrain::error_rank(); rank >= 0)
        std::fprintf(stderr, "dptrain %s: error (rank %d): %s\n", c.name, rank, e.what());
      else
        std::fprintf(stderr, "dptrain %s: error: %s\n", c.name, e.what());
      return e.exit_code();
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "dptrain %s: error: out of memory\n", c.name);
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "dptrain %s: error: %s\n", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "dptrain: unknown command '%s'\n", args[0].c_str());
  usage(stderr);
  return 2;
}
