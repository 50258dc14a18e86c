// SPDX-License-Identifier: Apache-2.0
#include "kernel/snapshot_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "kernel/error.h"

namespace ctbpf::kernel {

namespace {

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

void write_file_atomically(const std::string& path, std::string_view bytes) {
  const std::string dir = dir_of(path);
  // Hidden and in the same directory: rename() is atomic only within one file system, and a
  // leftover from a crash never looks like a snapshot.
  std::string tmp = dir + "/." + base_of(path) + ".tmp.XXXXXX";
  int fd = mkstemp(tmp.data());
  auto fail = [&](const char* step) {
    int err = errno;
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw Error(kExitFailure, fmt::format("cannot write {}: {}: {}", path, step, std::strerror(err)));
  };
  if (fd < 0) {
    int err = errno;
    throw Error(kExitFailure, fmt::format("cannot write {}: {}", path, std::strerror(err)));
  }
  // mkstemp makes 0600; a snapshot gets the mode any other new file would.
  mode_t mask = ::umask(0);
  ::umask(mask);
  if (::fchmod(fd, 0666 & ~mask) != 0) fail("chmod");
  if (!write_all(fd, bytes)) fail("write");
  if (::fsync(fd) != 0) fail("fsync");
  if (::close(fd) != 0) {
    fd = -1;
    fail("close");
  }
  fd = -1;
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename");
  // The rename itself is durable only once the directory is synced.
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0 || ::fsync(dir_fd) != 0) {
    int err = errno;
    if (dir_fd >= 0) ::close(dir_fd);
    throw Error(kExitFailure, fmt::format("cannot sync directory {}: {}", dir, std::strerror(err)));
  }
  ::close(dir_fd);
}

std::string read_file_capped(const std::string& path, std::size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    throw Error(kExitUsage, fmt::format("{}: {}", path, std::strerror(err)));
  }
  auto fail = [&](const std::string& why) {
    ::close(fd);
    throw Error(kExitUsage, fmt::format("{}: {}", path, why));
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail(std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail("is a directory");
  if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) > max_bytes)
    fail(fmt::format("{} bytes, more than the {} allowed", st.st_size, max_bytes));
  // Pipes and devices have no size: read at most one byte past the limit to tell.
  std::string out;
  char buf[65536];
  while (out.size() <= max_bytes) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(std::strerror(errno));
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  if (out.size() > max_bytes) fail(fmt::format("more than the {} bytes allowed", max_bytes));
  ::close(fd);
  return out;
}

void ensure_writable_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST) {
    int err = errno;
    throw Error(kExitUsage, fmt::format("cannot create directory {}: {}", dir, std::strerror(err)));
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw Error(kExitUsage, fmt::format("{} is not a directory", dir));
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw Error(kExitUsage, fmt::format("directory {} is not writable", dir));
}

std::vector<core::RecordedFile> list_files(const std::string& dir) {
  std::vector<core::RecordedFile> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    struct stat st {};
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    out.push_back({e->d_name, static_cast<double>(st.st_mtim.tv_sec) + static_cast<double>(st.st_mtim.tv_nsec) / 1e9});
  }
  ::closedir(d);
  return out;
}

bool remove_file(const std::string& dir, const std::string& name) {
  return ::unlink((dir + "/" + name).c_str()) == 0;
}

std::string host_name() {
  utsname u{};
  return ::uname(&u) == 0 ? u.nodename : "unknown";
}

double wall_clock_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace ctbpf::kernel
