#include "trainer/coordinator/CheckpointWire.h"

namespace dptrain {

std::pair<int64_t, int64_t> checkpoint_slice(int64_t size, int rank, int world) {
  return {size * rank / world, size * (rank + 1) / world};
}

void encode_checkpoint_meta(const CheckpointState& s, ByteWriter& w) {
  w.str(s.config_text).u64(s.config_hash).u64(s.layout_hash).i64(s.step).i64(s.world_size);
  w.u32(static_cast<uint32_t>(s.flats.size()));
  for (const FlatEntry& f : s.flats) {
    w.str(f.group).i64(f.length()).u32(static_cast<uint32_t>(f.layout.size()));
    for (const ParamInfo& p : f.layout) {
      w.str(p.path).i64(p.offset).u32(static_cast<uint32_t>(p.shape.rank()));
      for (int i = 0; i < p.shape.rank(); ++i) w.i64(p.shape[i]);
    }
  }
  w.u32(static_cast<uint32_t>(s.scalars.size()));
  for (const auto& [name, v] : s.scalars) w.str(name).f64(v);
  w.u32(static_cast<uint32_t>(s.floats.size()));
  for (const auto& [name, v] : s.floats) {
    w.str(name).u64(v.size());
    w.raw(v.data(), v.size() * sizeof(float));
  }
  w.u32(static_cast<uint32_t>(s.ints.size()));
  for (const auto& [name, v] : s.ints) {
    w.str(name).u64(v.size());
    w.raw(v.data(), v.size() * sizeof(int64_t));
  }
  w.u32(static_cast<uint32_t>(s.strings.size()));
  for (const auto& [name, v] : s.strings) w.str(name).str(v);
}

namespace {
uint32_t count(ByteReader& r, uint32_t max, const char* what) {
  uint32_t n = r.u32();
  if (n > max) throw ProtocolError(std::string("too many ") + what);
  return n;
}
}  // namespace

CheckpointState decode_checkpoint_meta(ByteReader& r, int64_t max_floats) {
  CheckpointState s;
  s.config_text = r.str(size_t{16} << 20);
  s.config_hash = r.u64();
  s.layout_hash = r.u64();
  s.step = r.i64();
  s.world_size = r.i64();
  if (s.step < 0 || s.world_size < 1 || s.world_size > (1 << 20)) throw ProtocolError("impossible step or world size");
  int64_t total = 0;
  for (uint32_t g = 0, ng = count(r, 64, "flat buffers"); g < ng; ++g) {
    FlatEntry f;
    f.group = r.str(256);
    int64_t size = r.i64();
    total += size;
    if (size < 0 || total > max_floats) throw ProtocolError("flat buffers larger than the checkpoint bound");
    for (uint32_t i = 0, n = count(r, 1 << 20, "parameters"); i < n; ++i) {
      ParamInfo p;
      p.path = r.str(1024);
      p.offset = r.i64();
      std::vector<int64_t> dims(count(r, Shape::max_rank, "dimensions"));
      for (auto& d : dims) {
        d = r.i64();
        if (d < 0 || d > max_floats) throw ProtocolError("absurd parameter dimension");
      }
      p.shape = Shape(dims);
      if (p.offset < 0 || p.offset + p.shape.numel() > size) throw ProtocolError("parameter outside its flat buffer");
      f.layout.push_back(std::move(p));
    }
    f.data.assign(static_cast<size_t>(size), 0.0f);
    s.flats.push_back(std::move(f));
  }
  for (uint32_t i = 0, n = count(r, 1 << 16, "scalars"); i < n; ++i) {
    std::string name = r.str(256);
    s.scalars.emplace_back(name, r.f64());
  }
  for (uint32_t i = 0, n = count(r, 1 << 16, "float arrays"); i < n; ++i) {
    std::string name = r.str(256);
    uint64_t len = r.u64();
    if (len > r.left() / sizeof(float)) throw ProtocolError("float array longer than the frame");
    std::vector<float> v(len);
    std::memcpy(v.data(), r.take(len * sizeof(float)), len * sizeof(float));
    s.floats.emplace_back(name, std::move(v));
  }
  for (uint32_t i = 0, n = count(r, 1 << 16, "integer arrays"); i < n; ++i) {
    std::string name = r.str(256);
    uint64_t len = r.u64();
    if (len > r.left() / sizeof(int64_t)) throw ProtocolError("integer array longer than the frame");
    std::vector<int64_t> v(len);
    std::memcpy(v.data(), r.take(len * sizeof(int64_t)), len * sizeof(int64_t));
    s.ints.emplace_back(name, std::move(v));
  }
  for (uint32_t i = 0, n = count(r, 1 << 16, "strings"); i < n; ++i) {
    std::string name = r.str(256);
    s.strings.emplace_back(name, r.str(size_t{16} << 20));
  }
  r.expect_end();
  return s;
}

}  // namespace dptrain
