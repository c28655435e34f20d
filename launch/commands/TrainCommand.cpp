// `dptrain train CONFIG`: one rank of a (possibly single-rank) data-parallel run.
#include <cstdio>

#include "comm/Communicator.h"
#include "launch/ArgParser.h"
#include "launch/commands/Commands.h"
#include "models/core/Error.h"
#include "models/kernels/cuda/CudaBackend.h"
#include "models/zoo/ModelZoo.h"
#include "trainer/StopRequest.h"
#include "trainer/Trainer.h"
#include "trainer/tasks/GanTrainer.h"
#include "trainer/tasks/SelfTrainingTask.h"

namespace dptrain {

std::unique_ptr<Communicator> make_run_communicator(const TrainConfig& config) {
  const bool on_gpu = config.device == "cuda" || (config.device == "auto" && cuda_devices() > 0);
  return make_communicator(config.comm.backend, config.comm.timeout_s, on_gpu ? Device::cuda : Device::cpu);
}

int train_command(const Args& args) {
  ArgParser p("dptrain train",
              "Trains the model a TOML config describes. Start N ranks with mpirun/srun for data "
              "parallelism; every rank runs this same command.");
  p.positional("CONFIG", "the run's TOML config")
      .repeated("set", "KEY=VALUE", "override a config key, e.g. --set optim.lr=0.1")
      .optional_value("resume", "FILE", "continue from a checkpoint: the latest good one in checkpoint.dir, or FILE",
                      "latest")
      .option("trace", "FILE", "write every rank's step phases as a Chrome trace (Perfetto) at the end")
      .epilog(
          "Config reference: docs/config.md. SIGUSR1 or SIGTERM: stop at the next step, checkpoint, exit 75 "
          "(requeue).\nExit codes: 0 done, 2 bad input or config, 3 a peer failed or timed out, 4 the summed gradient "
          "stopped being finite (train.nonfinite), 75 stopped on "
          "request (requeue), 1 anything else.\n\nModel kinds ([model] kind = ...):\n" +
          model_kinds_help() + "\nLayer types ({ type = ... } in [model] blocks or layers):\n" + layer_types_help());
  if (!p.parse(args)) return 0;
  ConfigNode root = ConfigNode::parse_file(p.get("CONFIG"));
  for (const auto& s : p.all("set")) root.apply_override(s);
  if (p.has("trace")) root.apply_override("train.trace=\"" + p.get("trace") + "\"");
  TrainConfig config = read_train_config(root, p.get("CONFIG"));
  auto comm = make_run_communicator(config);
  install_stop_signal_handlers();  // SIGUSR1/SIGTERM: checkpoint at the next step and exit 75
  try {
    if (config.task == "gan") {  // generator/discriminator alternation (trainer/tasks/GanTrainer.h)
      GanTrainer gan(config, root, *comm);
      if (p.has("resume")) gan.resume(p.get("resume"));
      if (gan.run().requeue) return requeue_exit_code;
      return 0;
    }
    std::unique_ptr<Trainer> trainer = make_trainer(config, root, *comm);  // supervised or self-training
    if (p.has("resume")) trainer->resume(p.get("resume"));
    if (trainer->run().requeue) return requeue_exit_code;
  } catch (const Error& e) {
    // The other ranks may be waiting in a collective for this one: end the whole job. A diverged
    // step is seen by every rank alike (the summed gradient), and they all end by themselves.
    if (comm->size() > 1 && e.kind() == ErrorKind::diverged) {
      if (comm->rank() != 0) return e.exit_code();
    } else if (comm->size() > 1) {
      std::fprintf(stderr, "dptrain train: error (rank %d): %s\n", comm->rank(), e.what());
      comm->abort(e.exit_code());
    }
    throw;
  }
  return 0;
}

}  // namespace dptrain
