#!/usr/bin/env bash
# Run the whole test suite, slow tests included; "no tests ran" (pytest exit 5) is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pytest -ra --durations=15 "$@"
status=$?
if [[ $status -eq 5 ]]; then
    echo "pytest collected no tests: treating that as a failure" >&2
    exit 1
fi
exit $status
