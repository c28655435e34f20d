#include "launch/ArgParser.h"

#include <cstdio>
#include <cstdlib>

#include "models/core/Error.h"

namespace dptrain {

ArgParser::ArgParser(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)) {}

ArgParser& ArgParser::option(const std::string& name, const std::string& value_name, const std::string& help,
                             std::optional<std::string> fallback) {
  specs_.push_back({name, value_name, help, Spec::value, std::move(fallback)});
  return *this;
}

ArgParser& ArgParser::repeated(const std::string& name, const std::string& value_name, const std::string& help) {
  specs_.push_back({name, value_name, help, Spec::repeated, std::nullopt});
  return *this;
}

ArgParser& ArgParser::flag(const std::string& name, const std::string& help) {
  specs_.push_back({name, "", help, Spec::flag, std::nullopt});
  return *this;
}

ArgParser& ArgParser::optional_value(const std::string& name, const std::string& value_name, const std::string& help,
                                     const std::string& implicit) {
  specs_.push_back({name, value_name, help, Spec::optional_value, implicit});
  return *this;
}

ArgParser& ArgParser::positional(const std::string& name, const std::string& help, bool required) {
  Spec s{name, name, help, Spec::positional, std::nullopt};
  s.required = required;
  specs_.push_back(s);
  return *this;
}

ArgParser& ArgParser::epilog(const std::string& text) {
  epilog_ = text;
  return *this;
}

const ArgParser::Spec* ArgParser::find(const std::string& name) const {
  for (const auto& s : specs_)
    if (s.kind != Spec::positional && s.name == name) return &s;
  return nullptr;
}

void ArgParser::usage_error(const std::string& message) const {
  fail_input(command_ + ": " + message + " (see " + command_ + " --help)");
}

bool ArgParser::parse(const std::vector<std::string>& args) {
  std::vector<const Spec*> positionals;
  for (const auto& s : specs_)
    if (s.kind == Spec::positional) positionals.push_back(&s);
  size_t next_positional = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::printf("%s", help().c_str());
      return false;
    }
    if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
      std::string name = a.substr(2), value;
      bool inline_value = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        inline_value = true;
      }
      const Spec* s = find(name);
      if (!s) usage_error("unknown option --" + name);
      if (s->kind == Spec::flag) {
        if (inline_value) usage_error("--" + name + " takes no value");
        values_[name].push_back("1");
        continue;
      }
      if (!inline_value) {
        bool next_is_value = i + 1 < args.size() && args[i + 1].compare(0, 2, "--") != 0;
        if (s->kind == Spec::optional_value) {
          // "--resume FILE" once the positionals are filled; a bare "--resume" takes the implicit value.
          bool positionals_done = next_positional >= positionals.size();
          value = next_is_value && positionals_done ? args[++i] : *s->fallback;
        } else {
          if (!next_is_value) usage_error("--" + name + " needs a value (" + s->value_name + ")");
          value = args[++i];
        }
      }
      if (s->kind == Spec::value && values_.count(name)) usage_error("--" + name + " given twice");
      values_[name].push_back(value);
      continue;
    }
    if (next_positional >= positionals.size()) usage_error("unexpected argument '" + a + "'");
    values_[positionals[next_positional++]->name].push_back(a);
  }
  for (; next_positional < positionals.size(); ++next_positional)
    if (positionals[next_positional]->required) usage_error("missing " + positionals[next_positional]->name);
  return true;
}

bool ArgParser::has(const std::string& name) const { return values_.count(name) > 0; }

std::string ArgParser::get(const std::string& name) const {
  auto it = values_.find(name);
  if (it != values_.end()) return it->second.back();
  for (const auto& s : specs_)
    if (s.name == name && s.kind == Spec::value && s.fallback) return *s.fallback;
  return "";
}

std::vector<std::string> ArgParser::all(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

int64_t ArgParser::get_int(const std::string& name) const {
  std::string v = get(name);
  char* end = nullptr;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end) usage_error("--" + name + " must be an integer, got '" + v + "'");
  return n;
}

double ArgParser::get_float(const std::string& name) const {
  std::string v = get(name);
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end) usage_error("--" + name + " must be a number, got '" + v + "'");
  return d;
}

std::string ArgParser::help() const {
  std::string h = "usage: " + command_;
  for (const auto& s : specs_)
    if (s.kind == Spec::positional) h += s.required ? " " + s.name : " [" + s.name + "]";
  h += " [options]\n\n" + summary_ + "\n";
  bool any = false;
  for (const auto& s : specs_) {
    std::string left = s.kind == Spec::positional ? "  " + s.name : "  --" + s.name;
    if (s.kind == Spec::value || s.kind == Spec::repeated) left += " " + s.value_name;
    if (s.kind == Spec::optional_value) left += " [" + s.value_name + "]";
    if (!any) h += "\n";
    any = true;
    std::string line = left;
    if (line.size() < 28)
      line.resize(28, ' ');
    else
      line += "  ";
    line += s.help;
    if (s.kind == Spec::value && s.fallback && !s.fallback->empty()) line += " (default " + *s.fallback + ")";
    if (s.kind == Spec::repeated) line += " (repeatable)";
    h += line + "\n";
  }
  h += "  --help                    show this help\n";
  if (!epilog_.empty()) h += "\n" + epilog_ + "\n";
  return h;
}

}  // namespace dptrain
