// World-size independence of the GAN schedule (docs/design.md rule 3): with the same seed and global
// batch, N ranks follow the one-rank trajectory of both networks up to float summation order.
// Each case runs 50 steps of a d_steps = 2, g_steps = 1 alternation on N ranks, then rank 0 runs
// the same job alone and compares the generator's and the discriminator's parameters. The global
// batch of 30 splits unevenly over 4 ranks; the networks carry synchronized batch norm (generator)
// and dropout (discriminator), whose draws are keyed by global sample index.
#include <catch2/catch.hpp>

#include <cmath>

#include "comm/Communicator.h"
#include "comm/backend/local/LocalCommunicator.h"
#include "models/core/ConfigNode.h"
#include "storage/dataset/Synthesize.h"
#include "support/MpiTestSupport.h"
#include "trainer/tasks/GanTrainer.h"

using namespace dptrain;
using namespace dptrain::test;

namespace {

struct Params {
  std::vector<float> g, d;
  std::vector<ParamInfo> g_info, d_info;
};

// The largest difference and the parameter it falls in ("00_dense/bias").
double largest_difference(const std::vector<float>& a, const std::vector<float>& b, const std::vector<ParamInfo>& info,
                          std::string& where) {
  REQUIRE(a.size() == b.size());
  double worst = 0.0;
  for (const auto& p : info)
    for (int64_t i = p.offset; i < p.offset + p.shape.numel(); ++i) {
      const double diff = std::fabs(double(a[static_cast<size_t>(i)]) - b[static_cast<size_t>(i)]);
      if (diff > worst) worst = diff, where = p.path;
    }
  return worst;
}

Params train_gan(Communicator& comm, const std::string& toml, const std::string& out_dir) {
  ConfigNode root = ConfigNode::parse_string(toml, "gan_equivalence.toml");
  root.apply_override("out_dir=\"" + out_dir + "\"");
  TrainConfig config = read_train_config(root, "gan_equivalence.toml");
  GanTrainer trainer(config, root, comm);
  GanResult r = trainer.run();
  REQUIRE(r.steps == 50);
  const Tensor& g = trainer.generator().params();
  const Tensor& d = trainer.discriminator().params();
  return {std::vector<float>(g.data(), g.data() + g.numel()), std::vector<float>(d.data(), d.data() + d.numel()),
          trainer.generator().param_infos(), trainer.discriminator().param_infos()};
}

void check_equivalent(const std::string& kind, const std::string& networks, const std::string& loss,
                      const std::string& gan_extra = "", int64_t batch = 30) {
  Communicator& comm = mpi_comm();
  SharedTempDir dir(comm);
  const std::string data = dir.file("data.h5");
  if (comm.rank() == 0) {
    SynthOptions s;
    s.kind = kind;
    s.n = kind == "ring" ? 900 : 600;
    s.seed = 4;
    write_dataset_file(data, synthesize(s));
  }
  comm.barrier();
  const std::string toml = "seed = 7\ntask = \"gan\"\nthreads = 1\n[data]\ntrain = \"" + data +
                           "\"\n[gan]\nd_steps = 2\ng_steps = 1\nsamples = 0\neval_every_epoch = false\nloss = \"" +
                           loss + "\"\n" + gan_extra + networks + "\n[train]\nbatch_size = " + std::to_string(batch) +
                           "\nepochs = 10\nmax_steps = 50\nprogress = false\n"
                           "log_every = 10\n[checkpoint]\nat_end = false\n";
  Params parallel = train_gan(comm, toml, dir.file("run_n"));
  double max_diff = 0.0;
  if (comm.rank() == 0) {
    LocalCommunicator local;  // world size 1 inside an mpirun job
    Params single = train_gan(local, toml, dir.file("run_1"));
    std::string g_where = "-", d_where = "-";
    const double g_diff = largest_difference(single.g, parallel.g, single.g_info, g_where);
    const double d_diff = largest_difference(single.d, parallel.d, single.d_info, d_where);
    max_diff = std::max(g_diff, d_diff);
    std::printf(
        "gan equivalence %s, %s: %d ranks vs 1 after 50 steps, max abs diff = %.3g (generator %.3g in %s, "
        "discriminator %.3g in %s)\n",
        kind.c_str(), loss.c_str(), comm.size(), max_diff, g_diff, g_where.c_str(), d_diff, d_where.c_str());
  }
  comm.broadcast(&max_diff, sizeof max_diff, 0);
  CHECK(max_diff <= 1e-5);
}

const char* mlp_pair =
    "[gan.generator]\nkind = \"layers\"\nlayers = [{ type = \"dense\", units = 32 }, { type = \"batchnorm\" }, "
    "{ type = \"relu\" }, { type = \"dense\", units = 32, activation = \"relu\" }, { type = \"dense\", units = 2 }]\n"
    "[gan.discriminator]\nkind = \"mlp\"\nhidden = [32, 32]\nactivation = \"leaky_relu\"\nslope = 0.2\n"
    "dropout = 0.2\n";

const char* conv_pair =
    "latent = 8\n[gan.generator]\nkind = \"layers\"\noutput_activation = \"sigmoid\"\n"
    "layers = [{ type = \"dense\", units = 196 }, { type = \"reshape\", shape = [4, 7, 7] }, "
    "{ type = \"batchnorm\" }, { type = \"relu\" }, "
    "{ type = \"conv_transpose2d\", filters = 4, kernel = 4, stride = 2, padding = 1, activation = \"relu\" }, "
    "{ type = \"conv_transpose2d\", filters = 1, kernel = 4, stride = 2, padding = 1 }]\n"
    "[gan.discriminator]\nkind = \"cnn\"\nblocks = [{ type = \"conv2d\", filters = 4, kernel = 4, stride = 2, "
    "padding = 1, activation = \"leaky_relu\", slope = 0.2 }, { type = \"conv2d\", filters = 8, kernel = 4, "
    "stride = 2, padding = 1, activation = \"leaky_relu\", slope = 0.2 }]\n";

}  // namespace

TEST_CASE("N ranks match one rank: GAN alternation, MLP pair with batch norm and dropout", "[mpi][equivalence][gan]") {
  check_equivalent("ring", mlp_pair, "non_saturating");
}

TEST_CASE("N ranks match one rank: GAN alternation, DCGAN-style conv pair, hinge", "[mpi][equivalence][gan]") {
  // The [gan] keys of conv_pair follow loss; the networks' tables after them.
  check_equivalent("shapes", conv_pair, "hinge");
}

TEST_CASE("N ranks match one rank: GAN alternation, Wasserstein with clipping and the skip rule off",
          "[mpi][equivalence][gan]") {
  check_equivalent("ring", mlp_pair, "wasserstein");
}

TEST_CASE("N ranks match one rank: PacGAN packing (pack = 2), conv pair, non-saturating", "[mpi][equivalence][gan]") {
  // Packs are consecutive global rows: a global batch of 24 (12 packs) gives 1, 2, 3 or 4 ranks
  // whole packs; 600 rows = 25 batches, so no shorter last batch. D's dropout and batch norm see
  // packed rows.
  check_equivalent("shapes", conv_pair, "non_saturating", "pack = 2\n", 24);
}

TEST_CASE("N ranks match one rank: PacGAN packing (pack = 3), MLP pair with dropout", "[mpi][equivalence][gan]") {
  // The ring's 2-D samples packed as 6 features; 900 rows = 25 batches of 36.
  check_equivalent("ring", mlp_pair, "non_saturating", "pack = 3\n", 36);
}

TEST_CASE("N ranks match one rank: minibatch_stddev in D (conv pair, group 2, and MLP pair, group 3)",
          "[mpi][equivalence][gan]") {
  // Groups are consecutive rows of one rank: global batches of 24 (groups of 2) and 36 (groups of
  // 3) give 1, 2, 3 or 4 ranks whole groups, so the groups are the single process's.
  std::string conv = conv_pair;
  const std::string second_conv = "{ type = \"conv2d\", filters = 8";
  conv.insert(conv.find(second_conv), "{ type = \"minibatch_stddev\", group = 2 }, ");
  check_equivalent("shapes", conv, "non_saturating", "", 24);
  const std::string mlp =
      "[gan.generator]\nkind = \"layers\"\nlayers = [{ type = \"dense\", units = 32, activation = \"relu\" }, "
      "{ type = \"dense\", units = 2 }]\n[gan.discriminator]\nkind = \"layers\"\nlayers = [{ type = \"dense\", "
      "units = 32, activation = \"leaky_relu\", slope = 0.2 }, { type = \"minibatch_stddev\", group = 3 }, "
      "{ type = \"dense\", units = 32, activation = \"leaky_relu\", slope = 0.2 }, { type = \"dense\", units = 1 }]\n";
  check_equivalent("ring", mlp, "non_saturating", "", 36);
}
