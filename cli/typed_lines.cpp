// The command-line side of typed lines (typed_lines.hpp), shared by wsl pipe and wsl serve.
#include "typed_lines.hpp"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

namespace wsl::cli {

line_type_options::line_type_options(CLI::App& app, line_types& target, CLI::Option* binary, std::string_view input)
    : types_(target) {
  const auto add_prefix = [&](const char* name, std::string& prefix, std::string_view type) {
    return app
        .add_option(name, prefix,
                    fmt::format("Write each {0} message received after this prefix; {1} that starts with it is a "
                                "{0} message of the rest",
                                type, input))
        ->type_name("PREFIX")
        ->excludes(binary);
  };
  text_prefix_ = add_prefix("--text-prefix", target.text_prefix, "text");
  binary_prefix_ = add_prefix("--binary-prefix", target.binary_prefix, "binary");
  app.add_flag("--base64", target.base64,
               fmt::format("Write binary messages received as one line of base64; {} after --binary-prefix is "
                           "base64 too",
                           input))
      ->excludes(binary);
}

std::string line_type_options::problem(bool null_delimited) const {
  const auto& t = types_;
  const bool empty_given =
      (text_prefix_->count() > 0 && t.text_prefix.empty()) || (binary_prefix_->count() > 0 && t.binary_prefix.empty());
  const char delimiter = null_delimited ? '\0' : '\n';
  std::string_view problem;
  if (empty_given || (!t.text_prefix.empty() && t.text_prefix == t.binary_prefix))
    problem = "a prefix cannot be empty, nor the two the same";
  else if (t.text_prefix.find(delimiter) != std::string::npos || t.binary_prefix.find(delimiter) != std::string::npos)
    problem = null_delimited ? "a prefix cannot hold a NUL (-0)" : "a prefix cannot hold a newline";
  if (problem.empty()) return {};
  return fmt::format("--text-prefix, --binary-prefix, --base64: {}", problem);
}

}  // namespace wsl::cli
