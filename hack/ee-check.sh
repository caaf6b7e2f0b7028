# shellcheck shell=bash
# `make ee`: the execution-environment metadata works, without a container runtime.
#  - execution-environment.yml: `ansible-builder create` writes a build context that
#    carries the collection's Python and system requirements.
#  - meta/execution-environment.yml: ansible-builder's introspection (what runs when an EE
#    installs this collection) finds the same requirements in the collection.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${ROOT}/.venv/bin"
tmp="$(mktemp -d /tmp/kbypass-ee.XXXXXX)"
trap 'rm -rf "${tmp}"' EXIT
fail() { echo "ee-check: FAIL: $*" >&2; exit 1; }

cd "${ROOT}"
"${BIN}/ansible-builder" create -f execution-environment.yml --context "${tmp}/context" >/dev/null
grep -qx 'pyroute2>=0.9.7' "${tmp}/context/_build/requirements.txt" || fail "context lacks pyroute2"
grep -q '^bpftool' "${tmp}/context/_build/bindep.txt" || fail "context lacks bpftool"
grep -q 'ansible.posix' "${tmp}/context/_build/requirements.yml" || fail "context lacks ansible.posix"

mkdir -p "${tmp}/collections/ansible_collections/kbypass"
ln -s "${ROOT}" "${tmp}/collections/ansible_collections/kbypass/xdp"
"${BIN}/ansible-builder" introspect "${tmp}/collections" \
  --write-pip "${tmp}/pip.txt" --write-bindep "${tmp}/bindep.txt" >/dev/null
grep -q 'pyroute2>=0.9.7' "${tmp}/pip.txt" || fail "introspection misses pyroute2: $(cat "${tmp}/pip.txt")"
grep -q '^bpftool' "${tmp}/bindep.txt" || fail "introspection misses bpftool: $(cat "${tmp}/bindep.txt")"
echo "ee-check: build context and introspection carry pyroute2, bpftool, ansible.posix"
