# Helpers shared by the bench scripts (sourced, not run). The script sets bench_name first
# ("bench/tcp"): log and die put it before their messages.
# shellcheck shell=bash

log() { echo "$bench_name: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# json_field NAME JSON: the value of the first "NAME": in a one-line JSON object (a number, true,
# false, or a string with its quotes).
json_field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" <<< "$2" | head -1; }

# median: the median of the numbers on stdin, one per line; "-" when there are none.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }

# ratio A B: A / B with two decimals, or "-" when either is missing or B is 0.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'
}

# wait_for_url LOG NAME: the URL of the first "listening on URL" line in LOG, waiting up to 10 s
# for it; dies naming NAME and showing LOG otherwise.
wait_for_url() {
  local log_file=$1 name=$2 url i
  for i in $(seq 100); do
    url=$(sed -n 's|.*listening on \(ws://[^ ]*\).*|\1|p' "$log_file" | head -1)
    if [ -n "$url" ]; then
      echo "$url"
      return 0
    fi
    sleep 0.1
  done
  die "$name did not start: $(cat "$log_file")"
}

# cpu_seconds PID: the CPU time of PID and of its children that it has waited for (user and system),
# in seconds, from /proc: a server that forks a process per connection is counted whole once they
# have ended.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13 + $14 + $15) / hz }' "/proc/$1/stat"
}
