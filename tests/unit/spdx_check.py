#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""spdx_check.py [SOURCE_DIR]: every source file (C, C++, headers, CMake, shell, Python, YAML, the
systemd unit, any script with a #! line) names its licence on an SPDX-License-Identifier line in its
first three lines, and the licence is the project's for its place (LICENSE, packaging/debian/copyright):
  bpf/, include/ctbpf/, *.bpf.c, *.bpf.h   (GPL-2.0-only OR BSD-2-Clause)
  vmlinux/vmlinux_*.h                      GPL-2.0-only (the kernel's types, generated)
  everything else                          Apache-2.0
and each BPF program's license section is "Dual BSD/GPL", which the kernel takes as GPL-compatible.
Files are the ones git tracks, or, outside a git checkout, every file but build trees. Then it proves
it can fail: a file without its line and a BPF header under the wrong licence are each refused."""
import fnmatch
import os
import re
import subprocess
import sys
import tempfile

DUAL = "(GPL-2.0-only OR BSD-2-Clause)"
SOURCE = ("*.c", "*.h", "*.cpp", "*.sh", "*.py", "*.cmake", "CMakeLists.txt", "*.yml", "*.yaml", "*.service")


def list_files(root):
    git = subprocess.run(["git", "-C", root, "ls-files", "-z"], capture_output=True)
    if git.returncode == 0:
        return [p for p in git.stdout.decode().split("\0") if p]
    out = []
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if not (x.startswith("build") or x == ".git")]
        out += [os.path.relpath(os.path.join(d, f), root) for f in files]
    return out


def expected(path):
    if path.startswith(("bpf/", "include/ctbpf/")) or path.endswith((".bpf.c", ".bpf.h")):
        return DUAL
    if fnmatch.fnmatch(path, "vmlinux/vmlinux_*.h"):
        return "GPL-2.0-only"
    return "Apache-2.0"


def check(root):
    """Returns (number of source files, one line per bad file)."""
    count, bad = 0, []
    for path in list_files(root):
        full = os.path.join(root, path)
        if os.path.islink(full) or not os.path.isfile(full):
            continue
        with open(full, "rb") as f:
            head = f.read(4096).decode("utf-8", "replace")
        if not (any(fnmatch.fnmatch(os.path.basename(path), g) for g in SOURCE) or head.startswith("#!")):
            continue
        count += 1
        want = expected(path)
        m = next((re.search(r"SPDX-License-Identifier: (.*?)(?: \*/)?\s*$", l) for l in head.split("\n")[:3]
                  if "SPDX-License-Identifier:" in l), None)
        if not m:
            bad.append(f"{path}: no SPDX-License-Identifier line in its first 3 lines (want: {want})")
        elif m.group(1) != want:
            bad.append(f"{path}: SPDX-License-Identifier: {m.group(1)}, expected {want}")
        if path.endswith(".bpf.c"):
            with open(full, encoding="utf-8") as f:
                text = f.read()
            if 'SEC("license")' in text and 'SEC("license") = "Dual BSD/GPL";' not in text:
                bad.append(f'{path}: its license section is not "Dual BSD/GPL"')
    return count, bad


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "../..")
    failed = False
    count, bad = check(root)
    for line in bad:
        print(line)
    if bad or count == 0:
        print(f"FAIL {len(bad)} of {count} source files without their licence line (above)")
        failed = True
    else:
        print(f"ok   {count} source files carry their SPDX-License-Identifier")

    # The check bites: a header without its line, a BPF header under Apache-2.0.
    with tempfile.TemporaryDirectory() as work:
        os.makedirs(os.path.join(work, "agent"))
        os.makedirs(os.path.join(work, "bpf"))
        with open(os.path.join(work, "agent/x.h"), "w") as f:
            f.write("#pragma once\nint f();\n")
        with open(os.path.join(work, "bpf/y.bpf.h"), "w") as f:
            f.write("/* SPDX-License-Identifier: Apache-2.0 */\n#pragma once\n")
        _, bad = check(work)
        if sorted(l.split(":")[0] for l in bad) == ["agent/x.h", "bpf/y.bpf.h"] and "no SPDX" in bad[0] + bad[1]:
            print("ok   refused: a header without its line, a BPF header under Apache-2.0")
        else:
            print(f"FAIL the check did not refuse the two bad files as expected: {bad}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
