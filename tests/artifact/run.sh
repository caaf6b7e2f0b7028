# shellcheck shell=bash
# `make artifact`: use the collection the way a user does, from its built tarball.
#
#  1. ansible-galaxy collection build; the tarball must hold only git-tracked content.
#  2. A project outside the repository (tests/artifact/project: ansible.cfg, inventory,
#     a playbook) gets the tarball and the declared dependency collections installed into
#     its own collections path. Galaxy is unreachable, so each dependency is built from the
#     copy the `ansible` package ships in .venv.
#  3. With ansible-core alone (.venv-core: ansible-core + requirements.txt, no bundle) and
#     only that collections path: kbypass.xdp.site, the project's playbook (roles and a
#     module by FQCN), kbypass.xdp.teardown, on the kbart* bed. Reports must land in the
#     project, nothing in the installed collection.
# Needs root and the host (namespaces, XDP). Environment: CORE_VENV (default .venv-core),
# KEEP_ARTIFACT_TMP=1 keeps the project for debugging.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${ROOT}/.venv/bin"
CORE_VENV="${CORE_VENV:-${ROOT}/.venv-core}"
CORE="${CORE_VENV}/bin"
NAMESPACES=(kbart1 kbart2)
MAX_ARTIFACT_KIB=1024

work="$(mktemp -d /tmp/kbart.XXXXXX)"
proj="${work}/project"
coll_path="${proj}/collections"
say() { printf '\n=== artifact: %s\n' "$*"; }
fail() { printf 'artifact: FAIL: %s\n' "$*" >&2; exit 1; }

# Everything the run may have left, also after a failure half-way.
# shellcheck disable=SC2317  # invoked through trap
cleanup() {
  local rc=$?
  if [[ ${rc} -ne 0 && -x "${CORE}/ansible-playbook" && -d "${coll_path}" ]]; then
    echo "artifact: failed (rc ${rc}), tearing the kbart bed down" >&2
    (cd "${proj}" && run_ansible ansible-playbook kbypass.xdp.teardown >/dev/null 2>&1) || true
  fi
  local pidfile pid
  for pidfile in "${proj}"/target/run/forwarder/*.pid; do
    [[ -f "${pidfile}" ]] || continue
    pid="$(cat "${pidfile}")"
    if [[ "${pid}" =~ ^[0-9]+$ ]]; then kill "${pid}" 2>/dev/null || true; fi
  done
  local ns
  for ns in "${NAMESPACES[@]}"; do
    ip netns del "${ns}" 2>/dev/null || true
    rm -rf "/sys/fs/bpf/kbypass/${ns}"
  done
  rmdir /sys/fs/bpf/kbypass 2>/dev/null || true
  if [[ "${KEEP_ARTIFACT_TMP:-0}" == 1 ]]; then echo "kept ${work}"; else rm -rf "${work}"; fi
  return "${rc}"
}
trap cleanup EXIT

# ansible-core alone: no ANSIBLE_* from the caller (make exports the repository's config),
# only the project's collections, no scan of sys.path for bundled collections.
run_ansible() {
  local var
  for var in $(compgen -e | grep '^ANSIBLE_' || true); do unset "${var}"; done
  ANSIBLE_CONFIG="${proj}/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="${coll_path}" \
    ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false ANSIBLE_HOME="${work}/ansible-home" \
    PATH="${CORE}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    "${CORE}/$1" "${@:2}"
}

for ns in "${NAMESPACES[@]}"; do
  if ip netns list | grep -qw "${ns}"; then fail "namespace ${ns} exists already (another run?)"; fi
done
[[ -x "${CORE}/ansible-playbook" ]] || fail "${CORE_VENV} missing: run 'make artifact'"
if [[ -d "${CORE_VENV}/lib" ]] && find "${CORE_VENV}/lib" -maxdepth 3 -name ansible_collections | grep -q .; then
  fail "${CORE_VENV} has bundled collections; it must hold ansible-core only"
fi

say "build"
"${TOOLS}/ansible-galaxy" collection build "${ROOT}" --output-path "${work}/dist" >/dev/null
tarball="$(ls "${work}"/dist/kbypass-xdp-*.tar.gz)"
size_kib=$(( $(stat -c %s "${tarball}") / 1024 ))
members="$(tar -tzf "${tarball}" | grep -v '/$' | grep -vxE 'MANIFEST.json|FILES.json' | sort)"
echo "$(basename "${tarball}"): ${size_kib} KiB, $(wc -l <<<"${members}") files"
(( size_kib <= MAX_ARTIFACT_KIB )) || fail "artifact is ${size_kib} KiB (> ${MAX_ARTIFACT_KIB} KiB)"
stray="$(comm -23 <(echo "${members}") <(git -C "${ROOT}" ls-files -co --exclude-standard | sort))"
[[ -z "${stray}" ]] || fail "artifact holds files git does not track: ${stray}"
for f in galaxy.yml tests/ molecule/ hack/ .ci/ Makefile; do
  if grep -q "^${f}" <<<"${members}"; then fail "artifact ships ${f}"; fi
done

say "dependency tarballs from the ansible package's copies"
site="$("${TOOLS}/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
mapfile -t deps < <("${TOOLS}/python" - "${ROOT}/galaxy.yml" <<'PY'
import sys, yaml
for name in (yaml.safe_load(open(sys.argv[1])).get('dependencies') or {}):
    print(name)
PY
)
mkdir -p "${work}/deps"
for dep in "${deps[@]}"; do
  src="${site}/ansible_collections/${dep//.//}"
  [[ -f "${src}/MANIFEST.json" ]] || fail "declared dependency ${dep} is not in the ansible package"
  # The ansible package ships the collection without some files its FILES.json lists, so
  # rebuild it: a galaxy.yml from its MANIFEST.json, then ansible-galaxy collection build.
  copy="${work}/deps-src/${dep}"
  mkdir -p "${copy}"
  cp -a "${src}/." "${copy}/"
  "${TOOLS}/python" - "${copy}" <<'PY'
import json, os, sys, yaml
copy = sys.argv[1]
info = json.load(open(os.path.join(copy, 'MANIFEST.json')))['collection_info']
meta = {k: v for k, v in info.items() if v not in (None, [], '')}
meta['build_ignore'] = ['__pycache__', '*.pyc']
for name in ('MANIFEST.json', 'FILES.json'):
    os.remove(os.path.join(copy, name))
with open(os.path.join(copy, 'galaxy.yml'), 'w') as f:
    yaml.safe_dump(meta, f)
PY
  "${TOOLS}/ansible-galaxy" collection build "${copy}" --output-path "${work}/deps" >/dev/null
done
ls "${work}/deps"

say "user project ${proj}"
cp -a "${ROOT}/tests/artifact/project" "${proj}"
# The project keeps the bench binaries in its own target/bin (forwarder_bin_dir).
mkdir -p "${proj}/target/bin"
run_ansible ansible-galaxy collection install --offline -p "${coll_path}" \
  "${tarball}" "${work}"/deps/*.tar.gz
echo
listed="$(run_ansible ansible-galaxy collection list --format json | "${TOOLS}/python" -c '
import json, sys
# ansible-core lists its own internal collections (ansible._protomatter) too
print(" ".join(sorted(n for path in json.load(sys.stdin).values() for n in path
                      if not n.startswith("ansible._"))))')"
want="$(printf '%s\n' kbypass.xdp "${deps[@]}" | sort | xargs)"
[[ "${listed}" == "${want}" ]] || fail "collections visible: '${listed}', want exactly '${want}'"
echo "collections visible: ${listed}"
installed="${coll_path}/ansible_collections/kbypass/xdp"

cd "${proj}"
say "ansible-playbook kbypass.xdp.site"
run_ansible ansible-playbook kbypass.xdp.site
for ext in md json; do
  [[ -s "reports/verify-localhost.${ext}" ]] || fail "reports/verify-localhost.${ext} not in the project"
done
"${TOOLS}/python" -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(0 if d.get("ok") else 1)' \
  reports/verify-localhost.json || fail "verify report says not ok"

say "ansible-playbook check.yml (the project's own playbook)"
run_ansible ansible-playbook check.yml
[[ -s reports/facts-localhost.json ]] || fail "facts report not in the project"

say "ansible-playbook kbypass.xdp.teardown"
run_ansible ansible-playbook kbypass.xdp.teardown
for ns in "${NAMESPACES[@]}"; do
  if ip netns list | grep -qw "${ns}"; then fail "teardown left namespace ${ns}"; fi
done
[[ ! -e /sys/fs/bpf/kbypass/kbart1 ]] || fail "teardown left pins in /sys/fs/bpf/kbypass/kbart1"
if find "${installed}" -path '*reports*' | grep -q .; then fail "reports written into the installed collection"; fi
say "passed: ${size_kib} KiB artifact installed and run from ${proj}"
