// Our side of bench/11-checkpoint: CheckpointStore::save of what the trainer checkpoints for the
// reference MLP with Adam (parameters and both moment buffers, ~40 MB, plus the scalars), and the
// train step of the same model, so that the stall a synchronous save imposes can be put in steps.
//
//   dptrain_checkpoint_bench --dir D [--saves 3] [--steps 30] [--steps-between 10] [--threads 1]
//   prints save_s= (mean of the timed saves, each after --steps-between train steps) file_bytes=
//          MB_per_s= step_ms= (mean of --steps train steps) stall_steps= (save_s / step time)
//          floor_s= floor_MB_per_s= (the same bytes, raw, through the same atomic-write protocol)
//          stream_stall_s= (the coordinator's streamed save: how much longer a window of
//          --window steps takes when a checkpoint is staged at its start and confirmed written by
//          its end, than the window before it without one) stream_window_steps=
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "bench/BenchSupport.h"
#include "comm/backend/local/LocalCommunicator.h"
#include "models/core/Philox.h"
#include "models/kernels/cpu/CpuKernels.h"
#include "models/losses/Loss.h"
#include "storage/AtomicFile.h"
#include "storage/checkpoint/CheckpointStore.h"
#include "trainer/coordinator/JobCoordination.h"

using namespace dptrain;
using namespace dptrain::bench;

namespace {

std::vector<float> to_vector(const Tensor& t) { return std::vector<float>(t.data(), t.data() + t.numel()); }

}  // namespace

int main(int argc, char** argv) {
  Options o(argc, argv,
            {{"dir", ""}, {"saves", "3"}, {"steps", "30"}, {"steps-between", "10"}, {"threads", "1"}, {"window", "40"}},
            "dptrain_checkpoint_bench --dir D [--saves N] [--steps N] [--steps-between N] [--threads N] [--window N]");
  if (o.str("dir").empty()) {
    std::fprintf(stderr, "dptrain_checkpoint_bench: --dir is required\n");
    return 2;
  }
  try {
    set_cpu_threads(static_cast<int>(o.num("threads")));
    auto model = make_reference_mlp();
    OptimConfig oc;
    oc.kind = OptimizerKind::adam;
    oc.lr = 1e-3;
    Optimizer optimizer(oc, model->flat_size(), Device::cpu);
    Loss loss(LossKind::softmax_cross_entropy);

    // Random inputs as the peers use; a few steps make the Adam moments real numbers.
    const int64_t batch = 128;
    Tensor x = Tensor::zeros(Shape{batch, 784});
    Philox rng(0, RandomPurpose::synth, 0);
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = rng.normal();
    std::vector<int32_t> labels(static_cast<size_t>(batch));
    for (auto& l : labels) l = static_cast<int32_t>(rng.below(10));
    Tensor dout;
    float stats[num_loss_stats] = {};
    uint64_t t = 0;
    JobCoordination* coordinating = nullptr;  // set for the streamed saves below
    auto step = [&] {
      StepContext ctx{Mode::train, 0, t++, 0, nullptr, true};
      model->zero_grad();
      const Tensor& out = model->forward(x, ctx);
      loss.evaluate(out, {labels.data(), nullptr}, 1.0f, &dout, stats);
      model->backward(dout, ctx);
      if (coordinating) coordinating->before_update();  // as Trainer::step_compute
      optimizer.step(model->params(), model->grads(), 1e-3f, mean_gradient_scale(model->grads(), batch, 0.0));
    };
    for (int i = 0; i < 5; ++i) step();
    const int64_t steps = o.num("steps");
    auto t0 = Clock::now();
    for (int64_t i = 0; i < steps; ++i) step();
    const double step_s = seconds_since(t0) / static_cast<double>(steps);

    // What Trainer::checkpoint_state() holds for this model (trainer/TrainerCheckpoint.cpp):
    // the flat buffers under their groups, and the scalars of the cursor, schedule and metrics.
    CheckpointState s;
    s.config_text = "# reference MLP 784-1024-1024-10, Adam\n";
    s.layout_hash = model->layout_hash();
    s.world_size = 1;
    const auto& layout = model->param_infos();
    s.flats.push_back({"params", layout, to_vector(model->params())});
    for (const auto& [name, tensor] : optimizer.states())
      s.flats.push_back({"optimizer/" + name, layout, to_vector(*tensor)});
    for (const char* name : {"cursor_epoch", "cursor_step", "generator_seed", "optimizer_steps", "schedule_bad_epochs",
                             "schedule_has_best", "early_best_epoch", "early_bad_epochs", "stopped_early"})
      s.ints.emplace_back(name, std::vector<int64_t>{0});
    for (const char* name : {"schedule_plateau_scale", "schedule_best", "early_best"})
      s.scalars.emplace_back(name, 0.0);
    s.floats.emplace_back("metrics_interval", std::vector<float>(num_loss_stats, 0.0f));

    // Saves between training steps, as in a run (the trainer's default keeps 3; 2 here so that
    // every timed save also has an old checkpoint to retire).
    CheckpointStore store(o.str("dir"), 2);
    s.step = 1;
    std::string path = store.save(s);  // warm-up: creates the directory, first HDF5 use
    const int64_t saves = o.num("saves"), between = o.num("steps-between");
    double total = 0.0;
    for (int64_t i = 0; i < saves; ++i) {
      for (int64_t k = 0; k < between; ++k) step();
      s.step = 2 + i;
      t0 = Clock::now();
      path = store.save(s);
      total += seconds_since(t0);
    }
    struct stat st {};
    ::stat(path.c_str(), &st);
    const double save_s = total / static_cast<double>(saves);

    // The floor of that protocol: the same bytes written raw (no HDF5, no seal) to a temporary
    // name, fsynced, renamed, then the pointer, then one directory fsync, as save() does.
    const std::vector<char> raw(static_cast<size_t>(st.st_size), 1);
    double floor_total = 0.0;
    for (int64_t i = 0; i < saves; ++i) {
      for (int64_t k = 0; k < between; ++k) step();
      const std::string target = o.str("dir") + "/raw-" + std::to_string(i) + ".bin";
      t0 = Clock::now();
      write_atomically(
          target,
          [&](const std::string& tmp) {
            std::FILE* f = std::fopen(tmp.c_str(), "wb");
            if (!f || std::fwrite(raw.data(), 1, raw.size(), f) != raw.size() || std::fclose(f) != 0)
              throw std::runtime_error(tmp + ": write failed");
          },
          /*sync_directory=*/false);
      write_atomically(o.str("dir") + "/raw-latest", [&](const std::string& tmp) {
        std::FILE* f = std::fopen(tmp.c_str(), "wb");
        if (!f || std::fputs("raw\n", f) < 0 || std::fclose(f) != 0) throw std::runtime_error(tmp + ": write failed");
      });
      floor_total += seconds_since(t0);
      std::remove(target.c_str());  // outside the timing, as save() retires old files in the background
    }
    const double floor_s = floor_total / static_cast<double>(saves);

    // The coordinator's streamed save (JobCoordination, as the trainer calls it): the rank stages
    // a host copy of its share and trains on while a thread streams it over loopback and the
    // coordinator's writer thread assembles, seals and fsyncs the file. Its stall is what the
    // training loses meanwhile: a window of steps with a checkpoint staged at its start and
    // confirmed written at its end, against the window just before it without one.
    TrainConfig tc;
    tc.out_dir = o.str("dir") + "/streamed";
    tc.checkpoint.dir = tc.out_dir;
    tc.checkpoint.keep = 2;
    tc.coordinator.http_port = -1;
    LocalCommunicator comm;
    JobCoordination coordination(tc, comm, [](const std::string&) {});
    coordinating = &coordination;
    // As the trainer marks them: parameters and optimizer states change only in the next update.
    const std::vector<bool> until_update(1 + optimizer.states().size(), true);
    // As Trainer::checkpoint_state(false): the flats' sizes without their data (the client
    // copies the data from the flat buffers themselves).
    CheckpointState meta = s;
    for (auto& f : meta.flats) {
      f.size = static_cast<int64_t>(f.data.size());
      f.data = {};
    }
    auto state = [&](bool with_data) {
      DPT_ASSERT(!with_data, "the streamed save asks for metadata only");
      CheckpointState m = meta;
      m.step = s.step;
      return m;
    };
    std::vector<const float*> flats{model->params().data()};
    for (const auto& [name, tensor] : optimizer.states()) flats.push_back(tensor->data());
    const int64_t window = o.num("window");
    s.step = 100;
    coordination.checkpoint(state, flats, Device::cpu, /*wait=*/true, until_update);  // warm-up: connection, directory
    double stall_total = 0.0, stage_total = 0.0, noise_total = 0.0;
    for (int64_t i = 0; i < saves; ++i) {
      t0 = Clock::now();
      for (int64_t k = 0; k < window; ++k) step();
      const double plain = seconds_since(t0);
      s.step = 101 + i;
      // The step's delay: the checkpoint call and the step after it (whose update waits for the
      // copy of the parameters and optimizer states), against a plain step of the window before.
      t0 = Clock::now();
      coordination.checkpoint(state, flats, Device::cpu, /*wait=*/false, until_update);
      step();
      stage_total += seconds_since(t0) - plain / static_cast<double>(window);
      for (int64_t k = 1; k < window; ++k) step();
      coordination.client()->wait_checkpoint(s.step, 600.0);
      stall_total += seconds_since(t0) - plain;
      // The same two windows with no checkpoint: what the comparison reads when nothing happens.
      t0 = Clock::now();
      for (int64_t k = 0; k < window; ++k) step();
      const double first = seconds_since(t0);
      t0 = Clock::now();
      for (int64_t k = 0; k < window; ++k) step();
      noise_total += seconds_since(t0) - first;
    }
    const double stream_stall_s = stall_total / static_cast<double>(saves);
    std::printf(
        "save_s=%.4f file_bytes=%lld MB_per_s=%.1f step_ms=%.3f stall_steps=%.2f floor_s=%.4f floor_MB_per_s=%.1f "
        "stream_stall_s=%.4f stream_stage_s=%.4f stream_noise_s=%.4f stream_window_steps=%lld loss=%.4f\n",
        save_s, static_cast<long long>(st.st_size), static_cast<double>(st.st_size) / save_s / 1e6, step_s * 1e3,
        save_s / step_s, floor_s, static_cast<double>(st.st_size) / floor_s / 1e6, stream_stall_s,
        stage_total / static_cast<double>(saves), noise_total / static_cast<double>(saves),
        static_cast<long long>(window), stats[stat_loss] / std::max(1.0f, stats[stat_count]));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dptrain_checkpoint_bench: %s\n", e.what());
    return 1;
  }
}
