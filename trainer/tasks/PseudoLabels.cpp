#include "trainer/tasks/PseudoLabels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

namespace dptrain {

Selection select_pseudo_labels(const Predictions& p, const SelfTrainingConfig& c, int64_t round) {
  const int64_t n = static_cast<int64_t>(p.rows.size()), k = p.k;
  std::vector<int32_t> cls(static_cast<size_t>(n));
  std::vector<float> conf(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float* pr = p.probs.data() + i * k;
    cls[static_cast<size_t>(i)] = static_cast<int32_t>(std::max_element(pr, pr + k) - pr);
    conf[static_cast<size_t>(i)] = pr[cls[static_cast<size_t>(i)]];
  }
  std::vector<int64_t> order;
  for (int64_t i = 0; i < n; ++i)
    if (c.selection != "threshold" || conf[static_cast<size_t>(i)] >= c.threshold) order.push_back(i);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    if (conf[static_cast<size_t>(a)] != conf[static_cast<size_t>(b)])
      return conf[static_cast<size_t>(a)] > conf[static_cast<size_t>(b)];
    return p.rows[static_cast<size_t>(a)] < p.rows[static_cast<size_t>(b)];
  });
  const double fraction = std::min(1.0, c.top_fraction * (c.relabel ? static_cast<double>(round + 1) : 1.0));
  const int64_t budget =
      c.selection == "top_fraction" ? static_cast<int64_t>(std::ceil(fraction * static_cast<double>(n))) : n;
  std::vector<int64_t> chosen;
  if (c.class_balanced) {
    std::vector<std::vector<int64_t>> per(static_cast<size_t>(k));
    for (int64_t i : order) per[static_cast<size_t>(cls[static_cast<size_t>(i)])].push_back(i);
    int64_t quota = budget / std::max<int64_t>(1, k);
    if (c.selection == "threshold") {
      quota = n;
      for (const auto& v : per)
        if (!v.empty()) quota = std::min<int64_t>(quota, static_cast<int64_t>(v.size()));
    }
    for (const auto& v : per)
      for (size_t j = 0; j < v.size() && static_cast<int64_t>(j) < quota; ++j) chosen.push_back(v[j]);
  } else {
    for (size_t j = 0; j < order.size() && static_cast<int64_t>(j) < budget; ++j) chosen.push_back(order[j]);
  }
  std::sort(chosen.begin(), chosen.end(),
            [&](int64_t a, int64_t b) { return p.rows[static_cast<size_t>(a)] < p.rows[static_cast<size_t>(b)]; });
  Selection s;
  for (int64_t i : chosen) {
    s.rows.push_back(p.rows[static_cast<size_t>(i)]);
    s.labels.push_back(cls[static_cast<size_t>(i)]);
    s.probs.insert(s.probs.end(), p.probs.begin() + i * k, p.probs.begin() + (i + 1) * k);
  }
  return s;
}

void encode_predictions(int64_t round, int world, const Predictions& p, ByteWriter& w) {
  w.u8(static_cast<uint8_t>(ScheduleMessage::predictions)).i64(round).i32(world).i64(p.k).u64(p.rows.size());
  w.raw(p.rows.data(), p.rows.size() * sizeof(int64_t));
  w.raw(p.probs.data(), p.probs.size() * sizeof(float));
}

void encode_selection(int64_t round, const Selection& s, int64_t k, ByteWriter& w) {
  w.u8(static_cast<uint8_t>(ScheduleMessage::selection)).i64(round).i64(k).u64(s.rows.size());
  w.raw(s.rows.data(), s.rows.size() * sizeof(int64_t));
  w.raw(s.labels.data(), s.labels.size() * sizeof(int32_t));
  w.raw(s.probs.data(), s.probs.size() * sizeof(float));
}

Selection decode_selection(ByteReader& r, int64_t& round, int64_t k) {
  round = r.i64();
  if (r.i64() != k) throw ProtocolError("selection for another number of classes");
  uint64_t n = r.u64();
  if (n > r.left() / (sizeof(int64_t) + sizeof(int32_t) + sizeof(float) * static_cast<uint64_t>(k)))
    throw ProtocolError("selection longer than its frame");
  Selection s;
  s.rows.resize(n);
  s.labels.resize(n);
  s.probs.resize(n * static_cast<uint64_t>(k));
  std::memcpy(s.rows.data(), r.take(n * sizeof(int64_t)), n * sizeof(int64_t));
  std::memcpy(s.labels.data(), r.take(n * sizeof(int32_t)), n * sizeof(int32_t));
  std::memcpy(s.probs.data(), r.take(s.probs.size() * sizeof(float)), s.probs.size() * sizeof(float));
  r.expect_end();
  return s;
}

}  // namespace dptrain
