#!/usr/bin/env bash
# The main job on the shipped example: confined sandboxes under policies/strict.toml,
# then the audit trail of the run verified. Run through `make demo`.
set -uo pipefail
IMG=localhost/cleanroom/busybox:latest
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "cleanroom doctor"
cleanroom doctor || true

step "a confined sandbox (strict policy): both streams, exit code passed through"
cleanroom run --policy policies/strict.toml "$IMG" -- /bin/sh -c 'echo hi; echo err >&2; exit 3'
echo "exit code: $?"

step "secrets never leave unmasked"
DEMO_TOKEN="s3cr3t-$(date +%s)-value" cleanroom run --policy policies/strict.toml --secret DEMO_TOKEN "$IMG" -- \
  /bin/sh -c 'echo "token is $DEMO_TOKEN"; echo "password=hunter2-very-secret"; echo AKIAABCDEFGHIJKLMNOP'

step "a timeout kills the sandbox"
cleanroom run --policy policies/strict.toml --timeout 1 "$IMG" -- /bin/sleep 30
echo "exit code: $?"

step "the audit trail verifies"
last=$(ls -t "${XDG_STATE_HOME:-$HOME/.local/state}/cleanroom/audit/"*.jsonl | head -n1)
cleanroom audit verify "$last"
