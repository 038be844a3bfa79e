#!/usr/bin/env bash
# Run the test suite with the project's virtual environment; `make test` calls this.
# pytest's exit code 5 (no tests collected) is a failure here, never a silent pass.
#
#   tests/run_tests.sh VENV_BIN [--split-slurm] [pytest args...]
#
# --split-slurm (what `make test` uses): the SLURM tests, which mostly wait on SLURM's timers
# (a 1-minute time limit, job start-up), run in a second pytest process alongside the rest; the
# local cluster is started once for both and stopped at the end if it was started here. (A third
# process for the smoke-DAG tests was tried on 2026-12-07: on two cores the three starved each
# other and CI took 25 min instead of 23.)
set -uo pipefail
BIN=${1:?usage: tests/run_tests.sh VENV_BIN [--split-slurm] [pytest args...]}
shift
cd "$(dirname "$0")/.."
export PATH="$BIN:$PATH"
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
# Selenium must use the installed chromedriver, never download one
export SE_OFFLINE=true
export RLREPRO_DATA_MIRROR=${RLREPRO_DATA_MIRROR:-$(cd .. && pwd)/shared/data}

checked() {  # pytest's exit code, with 5 (nothing collected) turned into a failure
  local rc=$1 what=$2
  if [ "$rc" -eq 5 ]; then
    echo "run_tests: pytest collected no tests ($what) — failing" >&2
    return 1
  fi
  return "$rc"
}

if [ "${1:-}" != "--split-slurm" ]; then
  "$BIN/python" -m pytest "$@"
  checked $? "pytest $*"
  exit $?
fi
shift

SLURM_DIR=$(cd .. && pwd)/shared/slurm
started_cluster=0
if [ "$(id -u)" -eq 0 ] && [ -f "$SLURM_DIR/start-local-slurm.sh" ] \
   && ! sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mix|alloc'; then
  bash "$SLURM_DIR/start-local-slurm.sh" >/dev/null && started_cluster=1
fi
slurm_tmp=$(mktemp -d)
"$BIN/python" -m pytest tests/test_slurm.py --basetemp="$slurm_tmp/basetemp" "$@" >"$slurm_tmp/out.log" 2>&1 &
slurm_pid=$!
# each process has a basetemp of its own: pytest's default one prunes older numbered dirs,
# which may be another live session's
"$BIN/python" -m pytest --ignore=tests/test_slurm.py --basetemp="$slurm_tmp/main-basetemp" "$@"
checked $? "main process"; rc_main=$?
wait "$slurm_pid"
checked $? "tests/test_slurm.py"; rc_slurm=$?
echo "=================== tests/test_slurm.py (ran alongside) ==================="
cat "$slurm_tmp/out.log"
rm -rf "$slurm_tmp"
if [ "$started_cluster" -eq 1 ]; then
  bash "$SLURM_DIR/stop-local-slurm.sh" >/dev/null 2>&1 || true
fi
[ "$rc_main" -eq 0 ] && [ "$rc_slurm" -eq 0 ]
