#include "trainer/tasks/PseudoLabelService.h"

#include <cstring>

namespace dptrain {

PseudoLabelService::PseudoLabelService(const SelfTrainingConfig& config, Coordinator& coordinator)
    : config_(config), coordinator_(coordinator) {}

void PseudoLabelService::on_schedule(int rank, ByteReader& r) {
  if (r.u8() != static_cast<uint8_t>(ScheduleMessage::predictions))
    throw ProtocolError("expected predictions from a worker");
  int64_t round = r.i64();
  int world = r.i32();
  Predictions p;
  p.k = r.i64();
  uint64_t n = r.u64();
  if (world < 1 || world > (1 << 20) || rank >= world || p.k < 1 || p.k > (1 << 20) ||
      n > r.left() / (sizeof(int64_t) + sizeof(float) * static_cast<uint64_t>(p.k)))
    throw ProtocolError("malformed predictions");
  p.rows.resize(n);
  p.probs.resize(n * static_cast<uint64_t>(p.k));
  std::memcpy(p.rows.data(), r.take(n * sizeof(int64_t)), n * sizeof(int64_t));
  std::memcpy(p.probs.data(), r.take(p.probs.size() * sizeof(float)), p.probs.size() * sizeof(float));
  r.expect_end();

  Predictions all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (round != round_) {  // a new round (or a restarted job redoing one): start over
      round_ = round;
      world_ = world;
      received_.clear();
    }
    if (world != world_) throw ProtocolError("predictions from a job of another size");
    received_[rank] = std::move(p);
    if (static_cast<int>(received_.size()) < world_) return;
    all.k = received_.begin()->second.k;
    for (auto& [from, part] : received_) {
      if (part.k != all.k) throw ProtocolError("ranks disagree on the number of classes");
      all.rows.insert(all.rows.end(), part.rows.begin(), part.rows.end());
      all.probs.insert(all.probs.end(), part.probs.begin(), part.probs.end());
    }
    received_.clear();
  }
  Selection s = select_pseudo_labels(all, config_, round);
  ByteWriter w;
  encode_selection(round, s, all.k, w);
  coordinator_.broadcast_schedule(w.bytes());
}

std::unique_ptr<ScheduleService> make_schedule_service(const TrainConfig& config, Coordinator& coordinator) {
  if (config.task == "self_training") return std::make_unique<PseudoLabelService>(config.self_training, coordinator);
  return nullptr;
}

}  // namespace dptrain
