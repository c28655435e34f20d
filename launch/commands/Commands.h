// The dptrain subcommands. Each takes the arguments after its name and returns an exit code;
// errors are thrown (dptrain::Error) and turned into one line and a code by main.
#pragma once

#include <string>
#include <vector>

namespace dptrain {

using Args = std::vector<std::string>;

int train_command(const Args& args);
int eval_command(const Args& args);
int predict_command(const Args& args);
int data_command(const Args& args);
int checkpoint_command(const Args& args);
int launch_command(const Args& args);
int sample_command(const Args& args);
int cv_command(const Args& args);

}  // namespace dptrain
