# SPDX-License-Identifier: Apache-2.0
# bpf_object(NAME SOURCE [DEPENDS header...])
#
# Compiles bpf/<SOURCE> with clang -target bpf into <NAME>.bpf.o, generates <NAME>.skel.h with
# `bpftool gen skeleton` (struct <NAME>_bpf), and exposes an INTERFACE target <NAME>_skel that carries the include path.
# Headers listed in DEPENDS (the shared ABI header, *.bpf.h) are real dependencies: editing them rebuilds
# the object and the skeleton. A function, not a macro, so nothing leaks into the caller's scope.

find_program(BPF_CLANG NAMES clang clang-16 clang-15 clang-14)
find_program(BPF_TOOL NAMES bpftool PATHS /usr/sbin /sbin)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBBPF IMPORTED_TARGET libbpf>=1.0)

if(NOT BPF_CLANG)
  message(FATAL_ERROR "clang not found: BPF programs need clang -target bpf (apt-get install clang llvm)")
endif()
if(NOT BPF_TOOL)
  message(FATAL_ERROR "bpftool not found: skeletons need `bpftool gen skeleton` (apt-get install bpftool)")
endif()
if(NOT LIBBPF_FOUND)
  message(FATAL_ERROR "libbpf >= 1.0 not found by pkg-config (apt-get install libbpf-dev)")
endif()

# clang -target bpf does not search the host's system include dirs, where asm/types.h lives; ask clang
# for them and append them with -idirafter so they never shadow vmlinux.h.
execute_process(
  COMMAND ${BPF_CLANG} -v -E - INPUT_FILE /dev/null
  OUTPUT_VARIABLE _clang_out ERROR_VARIABLE _clang_err)
string(REGEX MATCH "#include <...> search starts here:(.*)End of search list." _ "${_clang_err}")
string(REGEX MATCHALL "/[^\n ]+" _clang_dirs "${CMAKE_MATCH_1}")
set(BPF_SYSTEM_INCLUDES "")
foreach(_dir IN LISTS _clang_dirs)
  list(APPEND BPF_SYSTEM_INCLUDES -idirafter ${_dir})
endforeach()
set(BPF_SYSTEM_INCLUDES "${BPF_SYSTEM_INCLUDES}" CACHE INTERNAL "")

function(bpf_object name source)
  cmake_parse_arguments(PARSE_ARGV 2 ARG "" "" "DEPENDS")
  set(src ${CMAKE_CURRENT_SOURCE_DIR}/${source})
  set(obj ${CMAKE_CURRENT_BINARY_DIR}/${name}.bpf.o)
  set(skel_dir ${CMAKE_CURRENT_BINARY_DIR}/skel)
  set(skel ${skel_dir}/${name}.skel.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -Werror
            -I${PROJECT_SOURCE_DIR}/vmlinux -I${PROJECT_SOURCE_DIR}/include -I${PROJECT_SOURCE_DIR}/bpf
            ${BPF_SYSTEM_INCLUDES}
            -c ${src} -o ${obj}
    DEPENDS ${src} ${ARG_DEPENDS}
    COMMENT "BPF ${source}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${skel_dir}
    COMMAND ${BPF_TOOL} gen skeleton ${obj} name ${name}_bpf > ${skel}
    DEPENDS ${obj}
    COMMENT "skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(${name}_skel_gen DEPENDS ${skel})
  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skel_gen)
  target_include_directories(${name}_skel INTERFACE ${skel_dir})
  target_link_libraries(${name}_skel INTERFACE PkgConfig::LIBBPF)
endfunction()
