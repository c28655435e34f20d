// One network's flat buffers in a checkpoint (docs/design.md "Checkpoints"), for every task: the
// parameters, the buffers (batch-norm statistics) when it has any, and its optimizer's states, as
// groups "<prefix>params", "<prefix>buffers", "<prefix>optimizer/<state>" (prefix "" for the
// supervised model, "generator/" and "discriminator/" for a GAN's networks). Optimizer states
// hold the trainable parameters only (Model::trainable_layout).
#pragma once

#include <string>
#include <vector>

#include "models/Model.h"
#include "storage/checkpoint/CheckpointStore.h"
#include "trainer/optim/Optimizer.h"

namespace dptrain {

// Adds flat `t` as `group` with `layout`: a host copy, or (without data) its size only, for the
// coordinator client copies each rank's share straight from the device pointers.
void add_flat(CheckpointState& s, const std::string& group, const std::vector<ParamInfo>& layout, const Tensor& t,
              bool with_data);

struct NetworkFlats {
  std::string prefix;
  Model& model;
  Optimizer& optimizer;

  void add_specs(std::vector<FlatSpec>& specs) const;
  void save(CheckpointState& s, bool with_data) const;
  // The device pointers in the same order. `deferrable`: parameters and optimizer states change
  // only in updates that call JobCoordination::before_update() first; buffers change in forward.
  void add_pointers(std::vector<const float*>& p, std::vector<bool>& until_update, bool deferrable) const;
  // Fails naming the group when the checkpoint has no state of this network's optimizer.
  void restore(const CheckpointState& s) const;
};

}  // namespace dptrain
