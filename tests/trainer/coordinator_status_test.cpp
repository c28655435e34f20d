// GET /status is JSON a client can parse whatever the job's strings and numbers hold: a
// 2,000-character checkpoint path with quotes, a backslash and non-ASCII letters, a host name with
// a newline, a NaN loss and an infinite accuracy (written as null) — and it keeps every key of
// docs/design.md "Coordinator" and the README. The worker is a real ControlClient sending the
// frames a rank sends.
#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <limits>
#include <thread>

#include "comm/control/ControlClient.h"
#include "models/core/Hash.h"
#include "support/CheckpointFrames.h"
#include "support/JsonSupport.h"
#include "support/TestSupport.h"
#include "trainer/coordinator/CheckpointWire.h"
#include "trainer/coordinator/Coordinator.h"
#include "trainer/coordinator/CoordinatorClient.h"

using namespace dptrain;
using namespace dptrain::test;

TEST_CASE("/status is valid JSON with a 2,000-character checkpoint path and a NaN loss", "[coordinator][status]") {
  TempDir dir;
  std::string ckpt_dir = dir.path();
  for (int i = 0; ckpt_dir.size() < 2000; ++i)  // directory names stay under the 255-byte limit
    ckpt_dir += "/" + std::to_string(i) + "-\"quoted\" back\\slash caf\u00e9 " + std::string(200, 'x');
  CoordinatorOptions o;
  o.job = "status \"test\"";
  o.checkpoint_dir = ckpt_dir;
  o.http_port = -1;
  Coordinator c(o, [](const std::string&) {});

  HelloInfo me;
  me.rank = 0;
  me.world = 1;
  me.pid = 4242;
  me.host = "node\n\"7\"";
  ControlClient worker("127.0.0.1", c.port(), c.token(), me, 10, [](FrameType, ByteReader&) {});
  ByteWriter metrics;
  metrics.i64(7).i64(1).f64(std::numeric_limits<double>::quiet_NaN()).f64(std::numeric_limits<double>::infinity());
  metrics.f64(1234.5).f64(0.01).str("2 products: openblas 2");
  worker.send(FrameType::metrics, metrics.bytes());
  // A checkpoint of step 7, so that last_checkpoint holds the long path (frames of one session
  // are handled in order: the metrics above are in before it is written).
  send_small_checkpoint(worker, 7);
  REQUIRE(c.wait_checkpoint(7, 30));
  const std::string path = c.last_checkpoint().path;
  REQUIRE(path.size() > 2000);
  REQUIRE(path.rfind(ckpt_dir, 0) == 0);

  const std::string text = c.status_json();
  INFO(text);
  CHECK(text.back() == '\n');
  nlohmann::ordered_json status = nlohmann::ordered_json::parse(text);  // throws on invalid JSON
  std::vector<std::string> keys;
  for (const auto& [key, value] : status.items()) keys.push_back(key);
  CHECK(keys == std::vector<std::string>{"job", "control_port", "phase", "step", "epoch", "loss", "accuracy",
                                         "samples_per_s", "lr", "ranks_alive", "restarts", "uptime_s",
                                         "last_checkpoint", "cpu_engines", "stragglers", "skipped_steps", "ranks"});
  CHECK(status["job"] == "status \"test\"");
  CHECK(status["control_port"] == c.port());
  CHECK(status["phase"] == "training");
  CHECK(status["step"] == 7);
  CHECK(status["epoch"] == 1);
  CHECK(status["loss"].is_null());
  CHECK(status["accuracy"].is_null());
  CHECK(status["samples_per_s"] == 1234.5);
  CHECK(status["lr"] == 0.01);
  CHECK(status["ranks_alive"] == 1);
  CHECK(status["restarts"] == 0);
  CHECK(status["uptime_s"].get<double>() >= 0.0);
  CHECK(status["last_checkpoint"]["step"] == 7);
  CHECK(status["last_checkpoint"]["path"] == path);  // intact: quotes, backslashes, UTF-8 and all
  CHECK(status["cpu_engines"] == "2 products: openblas 2");
  CHECK(status["stragglers"] == nlohmann::ordered_json::array());  // no timing reported yet
  REQUIRE(status["ranks"].size() == 1);
  const auto& rank = status["ranks"][0];
  CHECK(rank["rank"] == 0);
  CHECK(rank["pid"] == 4242);
  CHECK(rank["host"] == "node\n\"7\"");
  CHECK(rank["step"] == -1);  // no heartbeat sent
  CHECK(rank["straggler"] == false);
  CHECK(rank["heartbeat_age_s"].get<double>() >= 0.0);
  CHECK(rank["heartbeat_age_s"].get<double>() < 30.0);

  // Bytes that are not UTF-8 (a Linux path or a host name may hold any) are replaced by U+FFFD
  // rather than breaking the document or the request.
  ByteWriter odd;
  odd.i64(8).i64(1).f64(0.5).f64(0.25).f64(1.0).f64(0.01).str("caf\xff");
  worker.send(FrameType::metrics, odd.bytes());
  nlohmann::json later = nlohmann::json::object();
  for (int i = 0; i < 1000 && later.value("step", 0) != 8; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    later = nlohmann::json::parse(c.status_json());
  }
  REQUIRE(later["step"] == 8);
  CHECK(later["cpu_engines"] == "caf\xef\xbf\xbd");
  CHECK(later["loss"] == 0.5);

  c.request_stop("test");
  CHECK(nlohmann::json::parse(c.status_json())["phase"] == "stopping");
}

TEST_CASE("a rank that closes with a goodbye is not lost, one that closes without is", "[coordinator]") {
  TempDir dir;
  CoordinatorOptions o;
  o.checkpoint_dir = dir.file("checkpoints");
  Coordinator c(o, [](const std::string&) {});
  auto wait_for = [](const std::function<bool()>& done) {
    for (int i = 0; i < 500 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return done();
  };
  {
    CoordinatorClient client({"127.0.0.1", c.port(), c.token()}, 0, 2, 0.05);
    REQUIRE(wait_for([&] { return c.workers().size() == 1; }));
    client.close(true);
  }
  REQUIRE(wait_for([&] { return c.workers().empty(); }));
  CHECK(c.lost_worker().empty());
  CHECK(c.seconds_since_lost() < 0);
  {
    CoordinatorClient client({"127.0.0.1", c.port(), c.token()}, 1, 2, 0.05);
    REQUIRE(wait_for([&] { return c.workers().size() == 1; }));
  }  // closed without a goodbye, as on an error
  REQUIRE(wait_for([&] { return !c.lost_worker().empty(); }));
  CHECK_THAT(c.lost_worker(), Catch::Contains("rank 1 (pid "));
  CHECK(c.seconds_since_lost() >= 0);
  // A restart forgets it; a rank that reconnects and leaves cleanly is not lost.
  c.reset_workers();
  CHECK(c.lost_worker().empty());
  {
    CoordinatorClient client({"127.0.0.1", c.port(), c.token()}, 1, 2, 0.05);
    REQUIRE(wait_for([&] { return c.workers().size() == 1; }));
    client.close(true);
  }
  REQUIRE(wait_for([&] { return c.workers().empty(); }));
  CHECK(c.lost_worker().empty());
}

TEST_CASE("a rank whose shares lag completes its checkpoints, one that skipped a step drops it", "[coordinator]") {
  TempDir dir;
  CoordinatorOptions o;
  o.checkpoint_dir = dir.file("checkpoints");
  Coordinator c(o, [](const std::string&) {});
  HelloInfo h0, h1;
  h0.world = h1.world = 2;
  h1.rank = 1;
  ControlClient rank0("127.0.0.1", c.port(), c.token(), h0, 10, [](FrameType, ByteReader&) {});
  ControlClient rank1("127.0.0.1", c.port(), c.token(), h1, 10, [](FrameType, ByteReader&) {});
  // Rank 0 is a checkpoint ahead: step 20 begins while rank 1 is still sending step 10's share.
  begin_checkpoint_share(rank0, 10, 2);
  end_checkpoint_share(rank0, 10, 0, 2);
  begin_checkpoint_share(rank1, 10, 2);
  begin_checkpoint_share(rank0, 20, 2);
  end_checkpoint_share(rank0, 20, 0, 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // rank 0's frames are in first
  end_checkpoint_share(rank1, 10, 1, 2);
  CHECK(c.wait_checkpoint(10, 30));
  begin_checkpoint_share(rank1, 20, 2);
  end_checkpoint_share(rank1, 20, 1, 2);
  CHECK(c.wait_checkpoint(20, 30));
  // Rank 1 goes from step 20 to 40 (as after a failed send): step 30 can no longer complete.
  begin_checkpoint_share(rank0, 30, 2);
  end_checkpoint_share(rank0, 30, 0, 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  begin_checkpoint_share(rank1, 40, 2);
  end_checkpoint_share(rank1, 40, 1, 2);
  begin_checkpoint_share(rank0, 40, 2);
  end_checkpoint_share(rank0, 40, 0, 2);
  CHECK(c.wait_checkpoint(40, 30));
  CHECK_FALSE(c.wait_checkpoint(30, 0.2));
  CHECK(c.last_checkpoint().step == 40);
}
