# Sourced by the bench scripts (bash). stop_gracefully PID SECONDS: SIGTERM, a bounded wait
# of SECONDS for the process to exit, then SIGKILL. Returns its exit status (from `wait`: it
# must be a child of the calling shell) and sets stop_killed=1 when it had to be killed.
stop_gracefully() {
  local pid=$1 seconds=$2 _
  stop_killed=0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((seconds * 10))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    stop_killed=1
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null
}
