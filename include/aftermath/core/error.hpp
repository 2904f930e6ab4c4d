#pragma once
/// @file error.hpp
/// The one exception type of aftermath. It carries where it happened (stage, scene, tile) and
/// what kind of failure it is, which decides the exit code at the job boundary.
#include <stdexcept>
#include <string>

namespace aftermath {

/// Kinds of failure, mapped to exit codes by the CLI (README "Exit codes").
enum class ErrorKind {
  usage,     ///< bad command line or configuration -> exit 2
  input,     ///< an input cannot be used (missing, corrupt, no overlap...) -> the job fails, exit 1
  output,    ///< the output cannot be written -> exit 3
  internal,  ///< a bug or an unexpected state -> the job fails, exit 1
};

/// Exit code for an error kind: usage 2, output 3, input/internal 1.
int exit_code_for(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string message, std::string stage = {}, std::string scene = {},
        int tile = -1);
  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  const std::string& stage() const { return stage_; }
  const std::string& scene() const { return scene_; }
  int tile() const { return tile_; }
  /// A copy with context added where it was missing (inner context wins).
  Error with_context(const std::string& stage, const std::string& scene = {}, int tile = -1) const;

 private:
  static std::string compose(const std::string& msg, const std::string& stage,
                             const std::string& scene, int tile);
  ErrorKind kind_;
  std::string message_, stage_, scene_;
  int tile_;
};

[[noreturn]] void throw_input(const std::string& message, const std::string& scene = {});
[[noreturn]] void throw_usage(const std::string& message);
[[noreturn]] void throw_output(const std::string& message, const std::string& path = {});

}  // namespace aftermath
