#pragma once
// The subcommands. Each returns an exit code (kernel/error.h); errors are thrown as ctbpf::Error.
#include <optional>
#include <string>

namespace ctbpf::cli {

struct TraceOptions {
  double interval_s = 1.0;
  std::optional<double> duration_s;
  bool json = false;
  std::string mode = "auto";
  std::string ready_file;
};

int run_trace(const TraceOptions& options);

struct FeaturesOptions {
  bool json = false;
};

int run_features(const FeaturesOptions& options);

}  // namespace ctbpf::cli
