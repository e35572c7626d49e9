# bash completion for unetmap's tools: pkt-gen, vale-ctl, nm-regions, bridge,
# kipfw, ipfw, lb, nmreplay, tlem and unetmap-run.
#
# Installed once per tool name in bash-completion's completions directory
# (bash-completion loads the file named after the command); sourcing it
# registers all of them. It needs nothing from bash-completion itself.
#
# Options come from each tool's --help. Arguments are completed where that
# is cheap: port names (netmap:IF for the interfaces in /sys/class/net, the
# VALE ports `vale-ctl -l` lists, pcap:NAME for the capture files here),
# memory regions (mem.N), worker names, and kipfw and tlem sessions, read
# from the runtime directory ($UNETMAP_DIR, default /dev/shm/unetmap). A
# runtime directory that does not exist is never made: nothing is run then.

# The runtime directory.
_unetmap_rundir() {
  printf '%s\n' "${UNETMAP_DIR:-/dev/shm/unetmap}"
}

# Sets cur and prev, and the array _unetmap_words (the words of the line up
# to the cursor, the last one being cur), splitting on blanks only: port
# names hold ':' and '=', which bash splits words at.
_unetmap_words() {
  local line=${COMP_LINE:0:COMP_POINT}
  COMPREPLY=()
  read -ra _unetmap_words <<<"$line"
  if [[ -z $line || $line =~ [[:space:]]$ ]]; then
    _unetmap_words+=("")
  fi
  cur=${_unetmap_words[${#_unetmap_words[@]}-1]}
  prev=
  if ((${#_unetmap_words[@]} > 1)); then
    prev=${_unetmap_words[${#_unetmap_words[@]}-2]}
  fi
  # An open quote: bash completes what follows it.
  _unetmap_quoted=
  case $cur in
    \'* | \"*) _unetmap_quoted=1 cur=${cur:1} ;;
  esac
}

# COMPREPLY from the candidates that start with cur, without the part of cur
# that bash already split off at a ':' or '=' of COMP_WORDBREAKS.
_unetmap_reply() {
  local c brk='' i ch
  if [[ -z $_unetmap_quoted ]]; then
    for ((i = ${#cur} - 1; i >= 0; i--)); do
      ch=${cur:i:1}
      if [[ ($ch == : || $ch == =) && $COMP_WORDBREAKS == *"$ch"* ]]; then
        brk=${cur:0:i+1}
        break
      fi
    done
  fi
  COMPREPLY=()
  local -A seen=()
  for c in "$@"; do
    [[ $c == "$cur"* ]] || continue
    c=${c#"$brk"}
    [[ -n $c && -z ${seen[$c]:-} ]] || continue
    seen[$c]=1
    COMPREPLY+=("$c")
  done
  # A prefix to go on typing after: no space behind it.
  for c in "${COMPREPLY[@]}"; do
    case $c in
      *: | *= | *, | *\( | *\{ | *\}) compopt -o nospace 2>/dev/null; break ;;
    esac
  done
}

# The directory of the program being completed, where its siblings are.
_unetmap_bindir() {
  local p=$1
  [[ $p == */* ]] || p=$(type -P -- "$p" 2>/dev/null) || return 1
  [[ -n $p ]] && printf '%s\n' "${p%/*}"
}

# vale-ctl beside the program being completed, or in PATH.
_unetmap_valectl() {
  local d
  d=$(_unetmap_bindir "$1") && [[ -x $d/vale-ctl ]] && { printf '%s\n' "$d/vale-ctl"; return; }
  type -P vale-ctl 2>/dev/null
}

# The VALE ports, as `vale-ctl -l` lists them; nothing if there is no
# registry yet (vale-ctl would make one).
_unetmap_vale_ports() {
  local vc dir
  dir=$(_unetmap_rundir)
  [[ -f $dir/registry && -r $dir/registry ]] || return
  vc=$(_unetmap_valectl "$1") || return
  [[ -n $vc ]] || return
  UNETMAP_QUIET=1 timeout 2 "$vc" -l 2>/dev/null | while read -r name _; do
    [[ $name == vale*:* ]] && printf '%s\n' "$name"
  done
}

_unetmap_ifaces() {
  local i
  for i in /sys/class/net/*; do
    [[ -e $i ]] && printf '%s\n' "${i##*/}"
  done
}

# Port names for -i and the like.
_unetmap_ports() {
  local cands=() i f dir
  case $cur in
    pcap:*)
      dir=${UNETMAP_PCAP_DIR:-.}
      for f in "$dir"/*.pcap "$dir"/*.pcapng; do
        [[ -e $f ]] || continue
        f=${f##*/}
        f=${f%.pcap*}
        cands+=("pcap:$f" "pcap:$f/R" "pcap:$f/T")
      done
      ;;
    *[{}]* | *@*) ;;  # a pipe or options: nothing to offer
    *)
      cands=(netmap: null: pcap: vale)
      for i in $(_unetmap_ifaces); do
        cands+=("netmap:$i")
        [[ $cur == "netmap:$i"* ]] && cands+=("netmap:$i^" "netmap:$i*")
      done
      while read -r i; do
        [[ -n $i ]] && cands+=("$i")
      done < <(_unetmap_vale_ports "$1")
      ;;
  esac
  _unetmap_reply "${cands[@]}"
}

# The switches (valeX) that have ports now.
_unetmap_switches() {
  _unetmap_vale_ports "$1" | while read -r p; do printf '%s\n' "${p%%:*}"; done | sort -u
}

_unetmap_regions() {
  local f dir
  dir=$(_unetmap_rundir)
  for f in "$dir"/mem.*; do
    [[ -e $f ]] && printf '%s\n' "${f##*/mem.}"
  done
}

_unetmap_workers() {
  local f dir
  dir=$(_unetmap_rundir)
  for f in "$dir"/workers/*.lock; do
    [[ -e $f ]] && { f=${f##*/}; printf '%s\n' "${f%.lock}"; }
  done
}

# Names of the sockets TOOL.NAME.sock (kipfw, tlem).
_unetmap_sessions() {
  local f dir
  dir=$(_unetmap_rundir)
  for f in "$dir/$1".*.sock; do
    [[ -e $f ]] && { f=${f##*/"$1".}; printf '%s\n' "${f%.sock}"; }
  done
}

_unetmap_cpus() {
  local n
  n=$(nproc 2>/dev/null) || n=1
  seq 0 $((n - 1))
}

# Files (with one of the suffixes given, if any) and directories.
_unetmap_files() {
  local f s
  compopt -o filenames 2>/dev/null
  COMPREPLY=()
  while IFS= read -r f; do
    if [[ -d $f || $# -eq 0 ]]; then
      COMPREPLY+=("$f")
    else
      for s in "$@"; do
        [[ $f == *."$s" ]] && { COMPREPLY+=("$f"); break; }
      done
    fi
  done < <(compgen -f -- "$cur")
}

# Options: the word starts with '-'.
_unetmap_options() {
  [[ $cur == -* ]] || return 1
  _unetmap_reply "$@"
}

_unetmap_pkt_gen() {
  local cur prev
  _unetmap_words
  case $prev in
    -i) _unetmap_ports "$1"; return ;;
    -f) _unetmap_reply tx rx ping pong; return ;;
    -H) _unetmap_reply 0 10 12; return ;;
    -a) _unetmap_reply $(_unetmap_cpus); return ;;
    -l | -n | -b | -R | -p | -w | -T | -S | -D | -s | -d) COMPREPLY=(); return ;;
  esac
  _unetmap_options -i -f -l -H -n -b -R -p -a -w -T -W -S -D -s -d -z -Z -h
}

_unetmap_vale_ctl() {
  local cur prev sw p
  _unetmap_words
  case $prev in
    -a | -h)  # valeX:NAME: a switch, then an interface or a persistent port
      if [[ $cur == vale*:* ]]; then
        sw=${cur%%:*}
        local c=()
        for p in $(_unetmap_ifaces); do c+=("$sw:$p"); done
        _unetmap_reply "${c[@]}"
      else
        local c=(vale0:)
        for sw in $(_unetmap_switches "$1"); do c+=("$sw:"); done
        _unetmap_reply "${c[@]}"
      fi
      return ;;
    -d | -l | -p | -P | -g)
      _unetmap_reply $(_unetmap_vale_ports "$1"); return ;;
    -r) _unetmap_reply $(_unetmap_vale_ports "$1" | sed 's/^[^:]*://'); return ;;
    -s) _unetmap_reply $(_unetmap_switches "$1"); return ;;
    -L)
      local c=()
      for sw in $(_unetmap_switches "$1"); do c+=("$sw:learning" "$sw:hub"); done
      _unetmap_reply "${c[@]}"
      return ;;
    -W) _unetmap_reply $(_unetmap_workers); return ;;
    -m) _unetmap_reply $(_unetmap_regions); return ;;
    -n | -C) COMPREPLY=(); return ;;
  esac
  _unetmap_options -n -r -a -d -l -g -h -p -P -C -m -s -L -W -j --help
}

_unetmap_nm_regions() {
  local cur prev
  _unetmap_words
  case $prev in
    -m | -d) _unetmap_reply $(_unetmap_regions); return ;;
    -c) COMPREPLY=(); return ;;
  esac
  if [[ $cur != -* ]] && [[ " ${_unetmap_words[*]} " == *" -c "* ]]; then
    # SIZES: key=value,... (complete the key after the last comma)
    local head=${cur%"${cur##*,}"} k c=()
    for k in buf-num= buf-size= ring-num= ring-size= if-num= if-size=; do c+=("$head$k"); done
    _unetmap_reply "${c[@]}"
    return
  fi
  _unetmap_options -m -j -c -d -h --help
}

_unetmap_bridge() {
  local cur prev d
  # Only unetmap's bridge (vale-ctl beside it), not iproute2's.
  d=$(_unetmap_bindir "$1")
  if [[ -z $d || ! -x $d/vale-ctl ]]; then
    compopt -o default 2>/dev/null
    COMPREPLY=()
    return
  fi
  _unetmap_words
  case $prev in
    -i) _unetmap_ports "$1"; return ;;
    -a) _unetmap_reply $(_unetmap_cpus); return ;;
    -b | -w) COMPREPLY=(); return ;;
  esac
  _unetmap_options -i -b -w -c -L -a -v -h --help && return
  _unetmap_ports "$1"
}

_unetmap_kipfw() {
  local cur prev
  _unetmap_words
  case $prev in
    -f) _unetmap_files; return ;;
    -n) _unetmap_reply $(_unetmap_sessions kipfw); return ;;
    -b | -B) COMPREPLY=(); return ;;
  esac
  _unetmap_options -d -P -q -f -n -b -B -h --help && return
  _unetmap_ports "$1"
}

_unetmap_ipfw() {
  local cur prev w k=1 cmd='' nargs=0
  _unetmap_words
  [[ $prev == -n ]] && { _unetmap_reply $(_unetmap_sessions kipfw); return; }
  # The command: the first word after the options.
  while ((k < ${#_unetmap_words[@]} - 1)); do
    w=${_unetmap_words[k]}
    if [[ -z $cmd ]]; then
      case $w in
        -n) ((k++)) ;;
        -*) ;;
        *) cmd=$w ;;
      esac
    else
      ((nargs++))
    fi
    ((k++))
  done
  if [[ -z $cmd ]]; then
    _unetmap_options -n -q -S -f -h --help && return
    _unetmap_reply add delete list show zero resetlog flush set table pipe queue sched stats
    return
  fi
  local actions=(allow accept pass permit deny drop reject reset unreach count skipto pipe queue check-state)
  local protos=(ip all ip4 ip6 tcp udp icmp icmp6)
  local opts=(in out recv xmit via established setup frag keep-state log tcpflags icmptypes
    icmp6types iplen ipttl dscp ipversion src-port dst-port proto src-ip dst-ip mac not)
  case $cmd in
    add)
      # Where in "[N] [set S] [prob P] ACTION [log] PROTO from SRC [PORTS] to DST [PORTS] [OPTIONS]"
      local rest=("${_unetmap_words[@]:k-nargs:nargs}") seen_action='' seen_proto='' seen_from='' seen_to='' x
      for x in "${rest[@]}"; do
        if [[ -n $seen_to ]]; then :
        elif [[ $x == to && -n $seen_from ]]; then seen_to=1
        elif [[ $x == from && -n $seen_proto ]]; then seen_from=1
        elif [[ -n $seen_action && -z $seen_proto && $x != log && $x != logamount && ! $x =~ ^[0-9]+$ ]]; then seen_proto=1
        elif [[ -z $seen_action && " ${actions[*]} " == *" $x "* ]]; then seen_action=1
        fi
      done
      case $prev in
        from | to | not) _unetmap_reply any me me6 'table(' not; return ;;
        set | prob | skipto | pipe | queue | logamount | unreach) COMPREPLY=(); return ;;
        recv | xmit | via) _unetmap_ports "$1"; return ;;
        tcpflags) _unetmap_reply fin syn rst psh ack urg ece cwr; return ;;
        ipversion) _unetmap_reply 4 6; return ;;
      esac
      if [[ -n $seen_to ]]; then
        _unetmap_reply "${opts[@]}"
      elif [[ -n $seen_from ]]; then _unetmap_reply to
      elif [[ -n $seen_proto ]]; then _unetmap_reply from
      elif [[ -n $seen_action ]]; then _unetmap_reply "${protos[@]}" log
      else _unetmap_reply "${actions[@]}" set prob
      fi
      ;;
    set) ((nargs == 0)) && _unetmap_reply enable disable show ;;
    table)
      ((nargs == 1)) && _unetmap_reply add delete flush list ;;
    pipe | queue | sched)
      if ((nargs == 0)); then _unetmap_reply show delete
      elif ((nargs == 1)) && [[ $prev =~ ^[0-9]+$ ]]; then _unetmap_reply config delete show
      else
        case $cmd in
          pipe) _unetmap_reply bw delay plr queue mask ;;
          queue) _unetmap_reply pipe sched weight plr queue mask ;;
          sched) _unetmap_reply type mask ;;
        esac
        [[ $prev == type ]] && _unetmap_reply fifo wf2q+ rr qfq
      fi
      ;;
    delete) ((nargs == 0)) && _unetmap_reply set ;;
    *) COMPREPLY=() ;;
  esac
}

_unetmap_lb() {
  local cur prev
  _unetmap_words
  case $prev in
    -i) _unetmap_ports "$1"; return ;;
    -p | -B | -b | -w | -s | -o) COMPREPLY=(); return ;;
  esac
  _unetmap_options -i -p -B -b -w -W -s -o -h --help
}

_unetmap_nmreplay() {
  local cur prev
  _unetmap_words
  case $prev in
    -f) _unetmap_files pcap pcapng cap; return ;;
    -i) _unetmap_ports "$1"; return ;;
    -B) _unetmap_reply constant, ether, real real,; return ;;
    -D) _unetmap_reply constant, uniform, exp,; return ;;
    -L) _unetmap_reply plr, ber,; return ;;
    -C) _unetmap_reply $(_unetmap_cpus); return ;;
    -b | -w | -l) COMPREPLY=(); return ;;
  esac
  _unetmap_options -f -i -B -D -L -b -w -C -l -v -h --help
}

_unetmap_tlem() {
  local cur prev
  _unetmap_words
  case $prev in
    -i) _unetmap_ports "$1"; return ;;
    -B) _unetmap_reply constant, ether,; return ;;
    -D) _unetmap_reply constant, uniform, exp,; return ;;
    -L) _unetmap_reply plr, ber,; return ;;
    -R) _unetmap_reply const,; return ;;
    -C) _unetmap_reply $(_unetmap_cpus); return ;;
    -s) _unetmap_reply $(_unetmap_sessions tlem); return ;;
    -Q | -b | -w | -M | -G) COMPREPLY=(); return ;;
  esac
  _unetmap_options -i -B -D -L -R -Q -b -w -C -s -a -M -r -G -v -q -h --help
}

_unetmap_unetmap_run() {
  local cur prev
  _unetmap_words
  if ((${#_unetmap_words[@]} == 2)); then
    if [[ $cur == -* ]]; then
      _unetmap_reply --env --help -h
    else
      _unetmap_reply $(compgen -c -- "$cur")
    fi
    return
  fi
  [[ ${_unetmap_words[1]} == -* ]] && { COMPREPLY=(); return; }
  # The program's own completion, where bash-completion provides it.
  if declare -F _command_offset >/dev/null; then
    _command_offset 1
  else
    compopt -o default 2>/dev/null
    COMPREPLY=()
  fi
}

complete -F _unetmap_pkt_gen pkt-gen
complete -F _unetmap_vale_ctl vale-ctl
complete -F _unetmap_nm_regions nm-regions
complete -F _unetmap_bridge bridge
complete -F _unetmap_kipfw kipfw
complete -F _unetmap_ipfw ipfw
complete -F _unetmap_lb lb
complete -F _unetmap_nmreplay nmreplay
complete -F _unetmap_tlem tlem
complete -F _unetmap_unetmap_run unetmap-run
