// `dptrain checkpoint inspect FILE`: what a checkpoint holds, with every checksum verified.
#include <cstdio>

#include "launch/ArgParser.h"
#include "launch/commands/Commands.h"
#include "models/core/Error.h"
#include "storage/checkpoint/CheckpointFile.h"

namespace dptrain {

int checkpoint_command(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::printf(
        "usage: dptrain checkpoint inspect FILE\n\n  inspect FILE   list a checkpoint's contents and verify "
        "every checksum (exit code 2 if damaged)\n");
    return args.empty() ? 2 : 0;
  }
  if (args[0] != "inspect") fail_input("dptrain checkpoint: unknown subcommand '" + args[0] + "'; valid: inspect");
  ArgParser p("dptrain checkpoint inspect", "Lists a checkpoint's contents and verifies every checksum.");
  p.positional("FILE", "a checkpoint file (ckpt-*.h5)");
  if (!p.parse(Args(args.begin() + 1, args.end()))) return 0;
  std::printf("%s", verify_checkpoint_file(p.get("FILE")).c_str());
  return 0;
}

}  // namespace dptrain
