#!/bin/bash
# check.sh MANDIR [TOOLSDIR]: the manual pages render without a warning, and
# each tool's page describes every option its --help lists.
#
# For every page MANDIR/*.[1-8]:
#   - groff -ww -z -b -man -Tutf8 prints nothing on stderr;
#   - man -l (man-db, all troff warnings on) prints nothing on stderr, in a
#     UTF-8 and in the C locale, at MANWIDTH=80;
#   - lexgrog finds its NAME line (what mandb puts in the whatis database);
#   - it has the sections NAME, SYNOPSIS, DESCRIPTION and SEE ALSO, and a
#     tool's page EXIT STATUS and EXAMPLES too;
#   - the unetmap pages it refers to (.BR page (N)) exist.
# With TOOLSDIR (the build tree's tools directory, or any directory holding
# the programs): every single-letter option that a tool's usage (pkt-gen -h,
# the others --help) lists must be the tag of an item (.TP/.TQ) of its page,
# written \-X in bold.
set -u
mandir=${1:?usage: check.sh MANDIR [TOOLSDIR]}
tooldir=${2:-}
tools=(pkt-gen vale-ctl nm-regions bridge kipfw ipfw lb nmreplay tlem unetmap-run)
failures=0

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

shopt -s nullglob
pages=("$mandir"/*.[1-8])
if [ ${#pages[@]} -eq 0 ]; then
  fail "no manual pages in $mandir"
fi
for t in "${tools[@]}"; do
  set -- "$mandir/$t".[18]
  [ $# -eq 1 ] || fail "$t: no page $t.1 or $t.8 in $mandir"
done
for p in "$mandir"/unetmap.3 "$mandir"/unetmap.7; do
  [ -f "$p" ] || fail "$(basename "$p"): missing"
done

is_tool() {
  local t
  for t in "${tools[@]}"; do [ "$t" = "$1" ] && return 0; done
  return 1
}

export MANWIDTH=80 MANPAGER=cat PAGER=cat
for page in "${pages[@]}"; do
  name=$(basename "$page")
  err=$(groff -ww -z -b -man -Tutf8 "$page" 2>&1 >/dev/null)
  [ -z "$err" ] || fail "$name: groff -ww:"$'\n'"$err"
  for loc in C.UTF-8 C; do
    err=$(LC_ALL=$loc man --warnings=w -l "$page" 2>&1 >/dev/null)
    [ -z "$err" ] || fail "$name: man -l (LC_ALL=$loc):"$'\n'"$err"
  done
  lexgrog "$page" >/dev/null 2>&1 || fail "$name: lexgrog cannot read its NAME section"
  want=(NAME SYNOPSIS DESCRIPTION "SEE ALSO")
  is_tool "${name%.*}" && want+=("EXIT STATUS" EXAMPLES)
  for sec in "${want[@]}"; do
    grep -qE "^\.SH \"?$sec\"?\$" "$page" || fail "$name: no section $sec"
  done
  # References to unetmap's own pages must name pages that exist.
  while read -r ref sect; do
    if is_tool "$ref" || [ "$ref" = unetmap ]; then
      [ -f "$mandir/$ref.$sect" ] || fail "$name: refers to $ref($sect), which is not in $mandir"
    fi
  done < <(sed -nE 's/^\.BR +([A-Za-z0-9_.-]+) +\(([1-8])\).*/\1 \2/p' "$page")
done

# Options: each letter of a tool's usage, as an item tag of its page.
if [ -n "$tooldir" ]; then
  export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$tooldir:$tooldir/.."
  for t in "${tools[@]}"; do
    bin="$tooldir/$t"
    if [ ! -x "$bin" ]; then
      # unetmap-run is built only with UNETMAP_PCAP; the others always.
      if [ "$t" = unetmap-run ]; then
        echo "note: $bin not built, its options not checked"
        continue
      fi
      fail "$t: $bin missing (build the tools first)"
      continue
    fi
    set -- "$mandir/$t".[18]
    [ $# -eq 1 ] || continue
    page=$1
    flag=--help
    [ "$t" = pkt-gen ] && flag=-h
    usage=$(timeout 10 "$bin" "$flag" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] || [ -z "$usage" ]; then
      fail "$t $flag exited $rc:"$'\n'"$usage"
      continue
    fi
    # -X preceded by the start of a line, a blank or one of [ ( ` | , /
    # and followed by something that is not a letter or digit.
    letters=$(printf '%s\n' "$usage" |
      grep -oE '(^|[][[:space:](`|,/])-[A-Za-z]([^A-Za-z0-9_]|$)' |
      sed -E 's/.*-([A-Za-z]).*/\1/' | sort -u)
    # (unetmap-run's usage has no single-letter option: it takes a program.)
    [ -n "$letters" ] || [ "$t" = unetmap-run ] || fail "$t: no option found in its $flag output"
    # The page's item tags: the line after each .TP or .TQ.
    tags=$(awk 'prev ~ /^\.(TP|TQ)/ { print } { prev = $0 }' "$page")
    for l in $letters; do
      printf '%s\n' "$tags" |
        grep -qE "(\\\\fB\\\\-$l|^\\.B[IR]? +\"?\\\\-$l|^\\.[BIR]{2} +[^ ]+ +\"[^\"]*\" +\\\\-$l)([^A-Za-z0-9_]|\$)" ||
        fail "$t: option -$l of '$t $flag' is not an item of $(basename "$page")"
    done
  done
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures problem(s) in the manual pages"
  exit 1
fi
echo "manual pages: ${#pages[@]} checked${tooldir:+, options against $tooldir}"
