# shellcheck shell=bash
# Converge wall time for 1 host and for 4 hosts in one run (make fleet-scale).
# Boots 5 fresh fleet hosts (hack/fleet.py), converges kbfleet1 alone, then kbfleet2..5
# together with forks, each with ansible.posix.profile_tasks; writes reports/fleet/scale.md
# and destroys the fleet, also on failure. Both converges see the same warm apt proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/.venv/bin
OUT=$(mktemp -d /tmp/kbfleet-scale.XXXXXX)
REPORT=$ROOT/reports/fleet/scale.md
cleanup() { "$BIN/python" hack/fleet.py destroy || true; rm -rf "$OUT"; }
trap cleanup EXIT

"$BIN/python" hack/fleet.py create --hosts 5 --out "$OUT"
mkdir -p "$OUT/inv" "$(dirname "$REPORT")"
cp "$OUT/inventory.yml" "$OUT/inv/fleet.yml"
ln -s "$ROOT/inventory/examples/fleet/group_vars" "$OUT/inv/group_vars"
ln -s "$ROOT/inventory/examples/fleet/host_vars" "$OUT/inv/host_vars"

export ANSIBLE_CONFIG=$ROOT/ansible.cfg ANSIBLE_PIPELINING=true \
  ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks PROFILE_TASKS_TASK_OUTPUT_LIMIT=8 \
  ANSIBLE_NOCOLOR=1 ANSIBLE_COLLECTIONS_PATH=$ROOT/.collections

converge() {  # $1: label, $2: --limit pattern; prints seconds
  local start end
  start=$(date +%s.%N)
  "$BIN/ansible-playbook" -i "$OUT/inv" --limit "$2" playbooks/site.yml >"$OUT/$1.log" 2>&1 \
    || { tail -40 "$OUT/$1.log" >&2; exit 1; }
  end=$(date +%s.%N)
  python3 -c "print(round($end - $start, 1))"
}

one=$(converge one kbfleet1)
four=$(converge four 'kbfleet2,kbfleet3,kbfleet4,kbfleet5')
{
  echo "# Fleet converge: 1 host vs 4 hosts ($(nproc) cores, $(date -u +%F))"
  echo
  echo "| hosts | converge wall time s | ratio |"
  echo "|---|---|---|"
  echo "| 1 | $one | 1.00 |"
  echo "| 4 | $four | $(python3 -c "print(round($four / $one, 2))") |"
  for label in one four; do
    echo
    echo "## Slowest tasks ($label)"
    echo
    echo '```'
    sed -n '/TASKS RECAP/,$p' "$OUT/$label.log" | grep -E -- '-{3,}|^[a-z]' | head -10
    echo '```'
  done
} >"$REPORT"
cat "$REPORT"
