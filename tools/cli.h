// What the tools' command lines share.
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

namespace unetmap::cli {

// The number in lo..hi that option -c's argument is, or false after one
// line on stderr: "TOOL: -c ARG: WHAT LO..HI" (what: "a batch is").
inline bool number(const char* tool, char c, const char* arg, long lo, long hi, const char* what, long* out) {
  char* end;
  errno = 0;
  *out = strtol(arg, &end, 10);
  if (*end || end == arg || errno || *out < lo || *out > hi) {
    fprintf(stderr, "%s: -%c %s: %s %ld..%ld\n", tool, c, arg, what, lo, hi);
    return false;
  }
  return true;
}

}  // namespace unetmap::cli
