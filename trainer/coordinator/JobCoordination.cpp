#include "trainer/coordinator/JobCoordination.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>

#include "models/core/Error.h"
#include "models/core/Hash.h"
#include "trainer/Session.h"
#include "trainer/tasks/PseudoLabelService.h"

namespace dptrain {

JobCoordination::JobCoordination(const TrainConfig& config, Communicator& comm, Printer print)
    : config_(config), comm_(comm), print_(std::move(print)) {
  store_ = std::make_unique<CheckpointStore>(config_.checkpoint.dir, config_.checkpoint.keep);
  CoordinatorEndpoint endpoint;
  if (!CoordinatorEndpoint::from_environment(endpoint)) {
    if (!config_.coordinator.enabled) return;
    // Rank 0 starts the coordinator and hands its address and token to the others over the
    // communicator: never logged, never on a command line.
    struct Shared {
      char host[128];
      char token[80];
      uint16_t port;
      uint64_t host_hash;
    } shared{};
    char hostname[256] = {};
    ::gethostname(hostname, sizeof hostname - 1);
    if (comm_.rank() == 0) {
      CoordinatorOptions o;
      o.job = std::filesystem::path(config_.out_dir).filename().string();
      o.bind_address = config_.coordinator.bind;
      o.port = static_cast<uint16_t>(config_.coordinator.port);
      o.http_port = static_cast<int>(config_.coordinator.http_port);
      o.checkpoint_dir = config_.checkpoint.dir;
      o.checkpoint_keep = config_.checkpoint.keep;
      o.max_bulk_frame_bytes = static_cast<size_t>(config_.coordinator.max_bulk_frame_mb) << 20;
      coordinator_ = std::make_unique<Coordinator>(o, print_);
      service_ = make_schedule_service(config_, *coordinator_);
      if (service_) coordinator_->set_schedule_service(service_.get());
      // Workers on this machine reach a wildcard address through loopback; others need a name.
      std::string reach = o.bind_address == "0.0.0.0" ? (comm_.size() > 1 ? hostname : "127.0.0.1") : o.bind_address;
      std::snprintf(shared.host, sizeof shared.host, "%s", reach.c_str());
      std::snprintf(shared.token, sizeof shared.token, "%s", coordinator_->token().c_str());
      shared.port = coordinator_->port();
      shared.host_hash = stable_hash(hostname);
      if (coordinator_->http_port() >= 0)
        print_("coordinator: status at http://" + reach + ":" + std::to_string(coordinator_->http_port()) + "/status");
    }
    comm_.set_operation("coordinator address broadcast", -1);
    comm_.broadcast(&shared, sizeof shared, 0);
    const bool loopback = std::strncmp(shared.host, "127.", 4) == 0 || std::strcmp(shared.host, "localhost") == 0;
    double elsewhere = loopback && stable_hash(hostname) != shared.host_hash ? 1.0 : 0.0;
    comm_.allreduce_max(&elsewhere, 1);
    if (elsewhere > 0)
      fail_input("ranks run on several machines but the coordinator listens on " + std::string(shared.host) +
                 "; set coordinator.bind to this network's address of rank 0 (or \"0.0.0.0\")");
    endpoint.host = shared.host;
    endpoint.port = shared.port;
    endpoint.token = shared.token;
  }
  client_ = std::make_unique<CoordinatorClient>(endpoint, comm_.rank(), comm_.size(), config_.coordinator.heartbeat_s);
  if (comm_.rank() == 0) {
    // Tells the coordinator where this run logs, so that one that has just started (a restarted
    // supervisor, a requeued job) shows what was logged before it (docs/observability.md).
    std::string metrics = in_dir(config_.out_dir, config_.train.metrics_file);
    if (!metrics.empty()) metrics = std::filesystem::absolute(metrics).string();
    client_->report_record(JsonRecord()
                               .add("event", std::string("start"))
                               .add("world", static_cast<int64_t>(comm_.size()))
                               .add("metrics_file", metrics)
                               .str());
  }
}

// The client goes first: it sends out a staged checkpoint; a hosted coordinator then writes it
// before it stops, also when the run ends on an error (the last good state of a diverged run).
// Leaving without an exception in flight is a clean end: the client says goodbye. The step of the
// last share is read once the client has closed (its sender may be sending one still).
JobCoordination::~JobCoordination() {
  int64_t sent = -1;
  if (client_) {
    client_->close(std::uncaught_exceptions() == 0);
    sent = client_->last_sent_step();
    client_.reset();
  }
  if (coordinator_ && sent >= 0) coordinator_->finish_checkpoint(sent, 2.0);
  coordinator_.reset();
}

std::string JobCoordination::checkpoint(const std::function<CheckpointState(bool)>& state,
                                        const std::vector<const float*>& flats, Device device, bool wait,
                                        const std::vector<bool>& until_update) {
  if (client_) {
    CheckpointState meta = state(false);
    client_->stage_checkpoint(meta, flats, device, until_update);
    return wait ? client_->wait_checkpoint(meta.step, config_.coordinator.checkpoint_timeout_s) : "";
  }
  if (comm_.rank() != 0) return "";
  try {
    return store_->save(state(true));
  } catch (const Error& e) {
    if (wait) throw;  // the run's last checkpoint (or a stop's): it must not end as if saved
    print_("warning: " + std::string(e.what()) + "; training goes on");  // a periodic one, as the coordinator does
    return "";
  }
}

std::string JobCoordination::wait_checkpoint(int64_t step) {
  // Without a coordinator rank 0 wrote it before checkpoint() returned.
  return client_ ? client_->wait_checkpoint(step, config_.coordinator.checkpoint_timeout_s) : "";
}

std::string JobCoordination::choose_checkpoint(const std::string& spec) {
  char path[4096] = {};
  if (comm_.rank() == 0) {
    CheckpointStore::Resolved r = store_->resolve(spec);
    for (const auto& why : r.skipped) print_("warning: skipping a damaged checkpoint: " + why);
    std::snprintf(path, sizeof path, "%s", r.path.c_str());
  }
  comm_.set_operation("checkpoint choice broadcast", -1);
  comm_.broadcast(path, sizeof path, 0);
  if (!path[0] && !spec.empty() && spec != "latest") fail_input(spec + ": no usable checkpoint");
  return path;
}

}  // namespace dptrain
