// metrics.jsonl: every line is a JSON object that parses, keys in the order the trainer adds
// them, integers as integers, NaN and infinite numbers (a diverged loss) as null, and strings
// escaped — the records docs/config.md describes.
#include <catch2/catch.hpp>

#include <algorithm>
#include <limits>

#include "support/JsonSupport.h"
#include "support/TestSupport.h"
#include "trainer/Metrics.h"

using namespace dptrain;
using namespace dptrain::test;

TEST_CASE("metrics.jsonl lines with a NaN loss parse, NaN and infinities as null", "[metrics]") {
  TempDir dir;
  const std::string path = dir.file("metrics.jsonl");
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  {
    MetricsLog log({path, "", ""});
    log.start_at(0, "");
    log.write(JsonRecord()
                  .add("event", std::string("step"))
                  .add("step", int64_t{20})
                  .add("epoch", int64_t{1})
                  .add("loss", nan)
                  .add("accuracy", 0.1)
                  .add("lr", inf)
                  .add("samples_per_s", -inf));
    log.write(JsonRecord().add("event", std::string("note \"quoted\"\n\ttab \\ \x01 caf\u00e9 \xff")).add("x", 1e300));
  }
  {
    MetricsLog resumed({path, "", ""});  // a resumed run appends after a "resume" record
    resumed.start_at(20, "ck.h5");
    resumed.write(JsonRecord().add("event", std::string("epoch")).add("epoch", int64_t{1}).add("train_loss", 0.25));
  }
  const std::string text = read_text(path);
  INFO(text);
  CHECK(std::count(text.begin(), text.end(), '\n') == 4);  // one record per line
  auto records = read_json_lines(path);
  REQUIRE(records.size() == 4);
  CHECK(records[2]["event"] == "resume");
  CHECK(records[2]["step"] == 20);

  const auto& step = records[0];
  CHECK(step["event"] == "step");
  CHECK(step["step"].is_number_integer());
  CHECK(step["step"] == 20);
  CHECK(step["loss"].is_null());
  CHECK(step["accuracy"].get<double>() == 0.1);  // round-trips exactly
  CHECK(step["lr"].is_null());
  CHECK(step["samples_per_s"].is_null());
  const auto first = nlohmann::ordered_json::parse(text.substr(0, text.find('\n')));
  std::vector<std::string> keys;
  for (const auto& [key, value] : first.items()) keys.push_back(key);
  CHECK(keys == std::vector<std::string>{"event", "step", "epoch", "loss", "accuracy", "lr", "samples_per_s"});

  // Escaped control characters, quotes and backslashes come back as written; a byte that is not
  // UTF-8 becomes U+FFFD.
  CHECK(records[1]["event"] == "note \"quoted\"\n\ttab \\ \x01 caf\u00e9 \xef\xbf\xbd");
  CHECK(records[1]["x"].get<double>() == 1e300);
  CHECK(metrics_events(path, "epoch").size() == 1);
  CHECK(metrics_events(path, "epoch")[0]["train_loss"] == 0.25);
}
