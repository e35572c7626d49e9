# Run by CTest (cmake -P): compile unetmap's public headers with the system
# compilers, the way an application would, and fail on any diagnostic.
#
#   MODE=gnu             each header alone, C (gnu99/gnu11/gnu17) and C++
#                        (c++11..c++20), with and without NETMAP_WITH_LIBS;
#                        unetmap/netmap.hpp alone in C++20
#   MODE=iso             each header alone in strict ISO C (c99/c11/c17)
#   MODE=program         c/header_user.c built as C and as C++, linked with
#                        -lnetmap, and run
#   MODE=upstream_names  c/upstream_names.c: every public name of netmap's
#                        headers (API 14) must exist
#
# Inputs: CC, CXX, INCLUDE_DIR, SRC_DIR, LIB (libnetmap.so), RUNTIME, WORK,
# EXTRA (flags the library was built with that a program must share, such
# as the sanitizers).
cmake_minimum_required(VERSION 3.20)

file(MAKE_DIRECTORY ${WORK})
set(WARN -Wall -Wextra -Werror)
set(HEADERS net/netmap.h net/netmap_user.h net/netmap_legacy.h libnetmap.h unetmap/unetmap.h)
set(failures 0)

function(try_compile_cmd what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0)
    message(STATUS "ok: ${what}")
  else()
    message(STATUS "FAILED: ${what}\n  command: ${ARGN}\n${out}${err}")
    math(EXPR n "${failures} + 1")
    set(failures ${n} PARENT_SCOPE)
  endif()
endfunction()

function(header_tu header lang out)
  string(MAKE_C_IDENTIFIER "${header}" id)
  set(f ${WORK}/alone_${id}.${lang})
  file(WRITE ${f} "#include <${header}>\n#include <${header}> /* include guard */\nint unetmap_header_test_${id}(void);\n")
  set(${out} ${f} PARENT_SCOPE)
endfunction()

if(MODE STREQUAL "gnu" OR MODE STREQUAL "iso")
  if(MODE STREQUAL "gnu")
    set(CSTDS gnu99 gnu11 gnu17)
    set(CXXSTDS c++11 c++14 c++17 c++20)
  else()
    set(CSTDS c99 c11 c17)
    set(CXXSTDS)
  endif()
  foreach(h IN LISTS HEADERS)
    header_tu(${h} c csrc)
    header_tu(${h} cc cxxsrc)
    foreach(libs "" "-DNETMAP_WITH_LIBS")
      foreach(std IN LISTS CSTDS)
        try_compile_cmd("C -std=${std} ${libs} ${h}"
          ${CC} -std=${std} ${WARN} ${libs} -I${INCLUDE_DIR} -fsyntax-only ${csrc})
      endforeach()
      foreach(std IN LISTS CXXSTDS)
        try_compile_cmd("C++ -std=${std} ${libs} ${h}"
          ${CXX} -std=${std} ${WARN} ${libs} -I${INCLUDE_DIR} -fsyntax-only ${cxxsrc})
      endforeach()
    endforeach()
  endforeach()
  if(MODE STREQUAL "gnu")
    header_tu(unetmap/netmap.hpp cc hpp)
    try_compile_cmd("C++ -std=c++20 unetmap/netmap.hpp"
      ${CXX} -std=c++20 ${WARN} -I${INCLUDE_DIR} -fsyntax-only ${hpp})
  endif()
elseif(MODE STREQUAL "program")
  get_filename_component(libdir ${LIB} DIRECTORY)
  separate_arguments(extra UNIX_COMMAND "${EXTRA}")
  set(LINK ${extra} -L${libdir} -lnetmap -Wl,-rpath,${libdir})
  try_compile_cmd("build header_user.c as C"
    ${CC} -std=gnu11 ${WARN} -I${INCLUDE_DIR} ${SRC_DIR}/header_user.c -o ${WORK}/header_user_c ${LINK})
  try_compile_cmd("build header_user.c as C++"
    ${CXX} -std=c++17 ${WARN} -x c++ -I${INCLUDE_DIR} ${SRC_DIR}/header_user.c -x none
    -o ${WORK}/header_user_cxx ${LINK})
  foreach(p header_user_c header_user_cxx)
    if(EXISTS ${WORK}/${p})
      file(REMOVE_RECURSE ${RUNTIME}/${p})
      try_compile_cmd("run ${p}"
        ${CMAKE_COMMAND} -E env UNETMAP_DIR=${RUNTIME}/${p} UNETMAP_QUIET=1 ${WORK}/${p})
    endif()
  endforeach()
elseif(MODE STREQUAL "upstream_names")
  try_compile_cmd("C upstream_names.c"
    ${CC} -std=gnu11 ${WARN} -I${INCLUDE_DIR} -fsyntax-only ${SRC_DIR}/upstream_names.c)
  try_compile_cmd("C++ upstream_names.c"
    ${CXX} -std=c++17 ${WARN} -x c++ -I${INCLUDE_DIR} -fsyntax-only ${SRC_DIR}/upstream_names.c)
else()
  message(FATAL_ERROR "unknown MODE '${MODE}'")
endif()

if(failures GREATER 0)
  message(FATAL_ERROR "${failures} header check(s) failed")
endif()
