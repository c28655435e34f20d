#include "support/TrainingRun.h"

#include "comm/Communicator.h"
#include "models/core/ConfigNode.h"
#include "trainer/tasks/SelfTrainingTask.h"

namespace dptrain::test {

std::string synth_file(const TempDir& dir, const std::string& name, SynthOptions options) {
  std::string path = dir.file(name + ".h5");
  write_dataset_file(path, synthesize(options));
  return path;
}

TrainResult train_toml(const TempDir& dir, const std::string& toml) {
  ConfigNode root = ConfigNode::parse_string(toml, "test.toml");
  root.apply_override("out_dir=\"" + dir.file("run") + "\"");
  root.apply_override("train.progress=false");
  TrainConfig config = read_train_config(root, "test.toml");
  auto comm = make_communicator("local");
  return make_trainer(config, root, *comm)->run();
}

}  // namespace dptrain::test
