/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// Files for snapshots and the flight recorder: atomic writes (a crash never leaves half a file),
// bounded reads (a 10 GB file is refused before it is read), the record directory's listing.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/recorder.h"

namespace ctbpf::kernel {

/// Writes `bytes` to a temporary file beside `path`, fsyncs it, renames it over `path` and fsyncs
/// the directory. Throws Error (exit 1) naming the file and the reason; the temporary is removed.
void write_file_atomically(const std::string& path, std::string_view bytes);

/// The whole file, refusing more than max_bytes. Throws Error (exit 2): "PATH: reason".
std::string read_file_capped(const std::string& path, std::size_t max_bytes);

/// Creates `dir` when missing; throws Error (exit 2) unless it is then a writable directory.
void ensure_writable_dir(const std::string& dir);
/// The regular files directly in `dir`, with their modification times.
std::vector<core::RecordedFile> list_files(const std::string& dir);
/// Removes dir/name; false (and errno set) when it could not.
bool remove_file(const std::string& dir, const std::string& name);

/// This machine's host name (uname nodename).
std::string host_name();
/// Seconds since the epoch, wall clock.
double wall_clock_s();

}  // namespace ctbpf::kernel
