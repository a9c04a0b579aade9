# Sourced by the target scripts: stop_by_pidfile FILE ends the process FILE names (TERM,
# then KILL after 5 s) and removes FILE; nothing to do without FILE.
stop_by_pidfile() {
  local pid_file=$1
  [ -f "$pid_file" ] || return 0
  local pid
  pid=$(cat "$pid_file")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pid_file"
}
