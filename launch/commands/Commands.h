// The dptrain subcommands. Each takes the arguments after its name and returns an exit code;
// errors are thrown (dptrain::Error) and turned into one line and a code by main.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm/Communicator.h"
#include "trainer/TrainConfig.h"

namespace dptrain {

using Args = std::vector<std::string>;

// The communicator of a training run (dptrain train, dptrain cv): comm.backend, where "auto" picks
// NCCL for several ranks of a GPU run, decided before the backend touches a device since the
// communicator chooses each rank's GPU.
std::unique_ptr<Communicator> make_run_communicator(const TrainConfig& config);

int train_command(const Args& args);
int eval_command(const Args& args);
int predict_command(const Args& args);
int data_command(const Args& args);
int checkpoint_command(const Args& args);
int launch_command(const Args& args);
int sample_command(const Args& args);
int cv_command(const Args& args);
int export_command(const Args& args);

}  // namespace dptrain
