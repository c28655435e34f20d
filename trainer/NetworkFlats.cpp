#include "trainer/NetworkFlats.h"

#include "models/core/Error.h"

namespace dptrain {

void add_flat(CheckpointState& s, const std::string& group, const std::vector<ParamInfo>& layout, const Tensor& t,
              bool with_data) {
  s.flats.push_back({group, layout, with_data ? to_host(t) : std::vector<float>{}, t.numel()});
}

void NetworkFlats::add_specs(std::vector<FlatSpec>& specs) const {
  specs.push_back({prefix + "params", model.param_infos(), model.flat_size(), true});
  if (!model.buffer_infos().empty())
    specs.push_back({prefix + "buffers", model.buffer_infos(), model.buffers().numel(), true});
  // Optional here so that a checkpoint of another optimizer gets restore()'s clearer message.
  for (const auto& [name, tensor] : optimizer.states())
    specs.push_back({prefix + "optimizer/" + name, model.trainable_layout(), model.trainable_size(), false});
}

void NetworkFlats::save(CheckpointState& s, bool with_data) const {
  add_flat(s, prefix + "params", model.param_infos(), model.params(), with_data);
  if (!model.buffer_infos().empty()) add_flat(s, prefix + "buffers", model.buffer_infos(), model.buffers(), with_data);
  for (const auto& [name, tensor] : optimizer.states())
    add_flat(s, prefix + "optimizer/" + name, model.trainable_layout(), *tensor, with_data);
}

void NetworkFlats::add_pointers(std::vector<const float*>& p, std::vector<bool>& until_update, bool deferrable) const {
  p.push_back(model.params().data()), until_update.push_back(deferrable);
  if (!model.buffer_infos().empty()) p.push_back(model.buffers().data()), until_update.push_back(false);
  for (const auto& [name, tensor] : optimizer.states()) p.push_back(tensor->data()), until_update.push_back(deferrable);
}

void NetworkFlats::restore(const CheckpointState& s) const {
  from_host(model.params(), s.flat(prefix + "params").data);
  if (!model.buffer_infos().empty()) from_host(model.buffers(), s.flat(prefix + "buffers").data);
  for (auto& [name, tensor] : optimizer.states()) {
    const std::string group = prefix + "optimizer/" + name;
    if (!s.has_flat(group))
      fail_input(s.source + ": has no " + group + " state: it was saved with another " +
                 (prefix.empty() ? std::string() : prefix.substr(0, prefix.size() - 1) + " ") + "optimizer");
    from_host(*tensor, s.flat(group).data);
  }
}

}  // namespace dptrain
