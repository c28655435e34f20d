// A small command-line parser for the dptrain subcommands: named options with values, flags,
// repeatable options and positionals, an automatic --help, and bad usage reported as bad input
// (exit code 2) naming the option and pointing at --help.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dptrain {

class ArgParser {
 public:
  ArgParser(std::string command, std::string summary);
  // --name VALUE (or --name=VALUE). An empty fallback with required=false means "not given".
  ArgParser& option(const std::string& name, const std::string& value_name, const std::string& help,
                    std::optional<std::string> fallback = std::nullopt);
  // --name VALUE that may be given several times.
  ArgParser& repeated(const std::string& name, const std::string& value_name, const std::string& help);
  // --name with no value.
  ArgParser& flag(const std::string& name, const std::string& help);
  // --name with an optional value (--resume, --resume FILE): `implicit` when given bare.
  ArgParser& optional_value(const std::string& name, const std::string& value_name, const std::string& help,
                            const std::string& implicit);
  ArgParser& positional(const std::string& name, const std::string& help, bool required = true);
  // Text shown after the options in --help.
  ArgParser& epilog(const std::string& text);

  // Parses; returns false when --help was printed (the caller returns 0).
  bool parse(const std::vector<std::string>& args);

  bool has(const std::string& name) const;
  std::string get(const std::string& name) const;  // option value, or fallback, or "" if absent
  std::vector<std::string> all(const std::string& name) const;
  int64_t get_int(const std::string& name) const;
  double get_float(const std::string& name) const;
  std::string help() const;

 private:
  struct Spec {
    std::string name, value_name, help;
    enum Kind { value, flag, repeated, optional_value, positional } kind;
    std::optional<std::string> fallback;
    bool required = false;
  };
  [[noreturn]] void usage_error(const std::string& message) const;
  const Spec* find(const std::string& name) const;

  std::string command_, summary_, epilog_;
  std::vector<Spec> specs_;
  std::map<std::string, std::vector<std::string>> values_;
};

}  // namespace dptrain
