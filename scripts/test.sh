#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need, builds, runs every test project, and
# prints one closing line "Tests: N passed, N failed, N skipped" counted from the TRX results.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# PostgreSQL and Redis servers are started by the test fixtures of the idempotency stores (later issues); install them
# here so that a fresh machine can run everything.
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing ${need_apt[*]} ..."
    apt-get update -qq >/dev/null || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null || echo "warning: could not install ${need_apt[*]}"
  else
    echo "warning: ${need_apt[*]} missing and cannot be installed here (needs root and apt-get)"
  fi
fi

results="${TEST_RESULTS_DIR:-artifacts/test-results}"
rm -rf "$results"
mkdir -p "$results"

dotnet build Kafka.Reliable.sln -c Release -warnaserror -nologo -clp:ErrorsOnly

status=0
run_tests() {
  local project=$1 name
  name=$(basename "$project" .csproj)
  dotnet test "$project" -c Release --no-build --nologo \
    --logger "trx;LogFileName=$name.trx" --results-directory "$results" \
    --logger "console;verbosity=minimal" -- xUnit.ShowLiveOutput=false
}

# The torture matrix spends most of its time waiting (injected faults, timeouts, members joining and leaving), not
# computing: it runs beside the other projects, which run one after the other. Its output is printed when it ends.
torture=tests/Kafka.Reliable.Torture.Tests/Kafka.Reliable.Torture.Tests.csproj
torture_log="$results/torture.log"
( run_tests "$torture" >"$torture_log" 2>&1; echo $? >"$results/torture.status" ) &
torture_pid=$!

for project in tests/*/*.Tests.csproj; do
  [ "$project" = "$torture" ] && continue
  echo "== $(basename "$project" .csproj)"
  run_tests "$project" || status=1
done

wait "$torture_pid" || true
echo "== $(basename "$torture" .csproj) (ran beside the others)"
cat "$torture_log"
[ "$(cat "$results/torture.status" 2>/dev/null || echo 1)" = "0" ] || status=1

python3 - "$results" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for f in glob.glob(sys.argv[1] + "/*.trx"):
    counters = ET.parse(f).getroot().find("{*}ResultSummary/{*}Counters")
    if counters is None:
        continue
    passed += int(counters.get("passed", 0))
    failed += int(counters.get("failed", 0)) + int(counters.get("error", 0)) + int(counters.get("timeout", 0)) + int(counters.get("aborted", 0))
    # xunit's TRX leaves skipped tests out of "executed" rather than counting them as notExecuted.
    total, executed = int(counters.get("total", 0)), int(counters.get("executed", 0))
    skipped += max(int(counters.get("notExecuted", 0)), total - executed)
    for result in ET.parse(f).getroot().iterfind(".//{*}UnitTestResult"):
        if result.get("outcome") == "NotExecuted":
            reason = result.find("{*}Output/{*}ErrorInfo/{*}Message")
            print(f"skipped: {result.get('testName')}: {reason.text if reason is not None else 'no reason given'}")
print(f"Tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
