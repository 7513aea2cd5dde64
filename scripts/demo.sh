#!/usr/bin/env bash
# The main job on the shipped example: confined sandboxes under policies/strict.toml,
# then the example app's test suite against real PostgreSQL and Redis under
# policies/ci.toml, with its summary, a verified audit trail and its HTML run report. Run via `make demo`.
set -uo pipefail
IMG=localhost/cleanroom/busybox:latest
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "cleanroom doctor"
cleanroom doctor || true

step "a confined sandbox (strict policy): both streams, exit code passed through"
cleanroom run --policy policies/strict.toml "$IMG" -- /bin/sh -c 'echo hi; echo err >&2; exit 3'
echo "exit code: $?"

step "limits hold: a 400 MB allocation under the strict policy's 256 MiB is OOM-killed and reported"
cleanroom run --policy policies/strict.toml localhost/cleanroom/services:bookworm -- \
  python3 -c 'x = bytearray(400 << 20); print("allocated 400 MB")'
echo "exit code: $?"

step "secrets never leave unmasked"
DEMO_TOKEN="s3cr3t-$(date +%s)-value" cleanroom run --policy policies/strict.toml --secret DEMO_TOKEN "$IMG" -- \
  /bin/sh -c 'echo "token is $DEMO_TOKEN"; echo "password=hunter2-very-secret"; echo AKIAQX7RT4NB2LW9KD3E; echo "(AWS docs use AKIAIOSFODNN7EXAMPLE: a placeholder, left readable)"'

step "a timeout kills the sandbox"
cleanroom run --policy policies/strict.toml --timeout 1 "$IMG" -- /bin/sleep 30
echo "exit code: $?"

step "your own code: the example app's unit tests in a sandbox, repository mounted read-only"
make --no-print-directory -C examples/app test-sandboxed
echo "exit code: $?"

step "the example app's tests against real PostgreSQL and Redis (policies/ci.toml)"
report=$(mktemp /tmp/cleanroom-report.XXXXXX.json)
cleanroom test --policy policies/ci.toml --report "$report" examples/app/tests -q -p no:cacheprovider
rc=$?
python3 - "$report" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["totals"]
mib = (t.get("peak_memory_bytes") or 0) / 1048576
print(f"tests: {t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped in {t['duration_seconds']} s")
print(f"containers: {t.get('containers_created', 0)} created, {t.get('containers_reused', 0)} reused")
print(f"sandboxes: {t['sandboxes']}, peak memory {mib:.1f} MiB")
print("redactions: " + (", ".join(f"{k}x{v}" for k, v in sorted(t['redactions'].items())) or "none"))
print(f"audit: {t.get('audit_log')}")
PY
audit=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["totals"].get("audit_log") or "")' "$report")
[ -n "$audit" ] && cleanroom audit verify "$audit"

step "the run report: summary, timeline, memory and CPU plots, alerts, redactions (one self-contained HTML file)"
html="${report%.json}.html"
cleanroom report render "$report" -o "$html" >/dev/null && echo "HTML report: $html"
exit $rc
