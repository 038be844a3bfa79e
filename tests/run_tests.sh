#!/usr/bin/env bash
# Run the test suite with the project's virtual environment; `make test` calls this.
# pytest's exit code 5 (no tests collected) is a failure here, never a silent pass.
set -uo pipefail
BIN=${1:?usage: tests/run_tests.sh VENV_BIN}
cd "$(dirname "$0")/.."
export PATH="$BIN:$PATH"
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
# Selenium must use the installed chromedriver, never download one
export SE_OFFLINE=true
export RLREPRO_DATA_MIRROR=${RLREPRO_DATA_MIRROR:-$(cd .. && pwd)/shared/data}
"$BIN/python" -m pytest "${@:2}"
rc=$?
if [ $rc -eq 5 ]; then
  echo "run_tests: pytest collected no tests — failing" >&2
  exit 1
fi
exit $rc
