#!/usr/bin/env bash
# `make sanity`: ansible-test sanity on exactly what git would ship, plus the changelog and
# collection-docs lints. `make sanity-next` runs it again with the newer ansible-core venv.
#
# ansible-test only runs inside .../ansible_collections/<ns>/<name>/ and only sees files git
# tracks, so we copy the git-visible tree (tracked + untracked, not ignored) into a temporary
# collection directory with its own throw-away git repository.
# Environment: SANITY_VENV (venv whose ansible-test runs, default .venv), PYTHON_VERSION
# (default 3.11), SANITY_ARGS (extra ansible-test arguments, e.g. "--test pep8"),
# KEEP_SANITY_TMP=1 keeps the copy for debugging. The lints always run from .venv.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${SANITY_VENV:-${ROOT}/.venv}/bin"
TOOLS="${ROOT}/.venv/bin"
export PATH="${TOOLS}:${PATH}"  # antsibull-docs calls ansible-galaxy and ansible-doc
PYTHON_VERSION="${PYTHON_VERSION:-3.11}"
read -r -a EXTRA <<<"${SANITY_ARGS:-}"

# 1. ansible-test bootstraps pip from the network unless a cached get-pip script exists.
pip_version="$("${BIN}/python" - <<'PY'
import re, ansible_test, os
src = os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')
match = re.search(r"default_packages = dict\(\s*pip='([^']+)'", open(src).read())
print(match.group(1) if match else '')
PY
)"
if [[ -z "${pip_version}" ]]; then
  echo "sanity.sh: cannot find the pip version ansible-test bootstraps" >&2
  exit 1
fi
cache="${HOME}/.ansible/test/cache/get_pip_${pip_version//./_}.py"
mkdir -p "$(dirname "${cache}")"
if ! cmp -s "${ROOT}/hack/get_pip_standin.py" "${cache}"; then
  install -m 0644 "${ROOT}/hack/get_pip_standin.py" "${cache}"
fi

# 2. The git-visible tree in a temporary collection root.
tmp="$(mktemp -d /tmp/kbypass-sanity.XXXXXX)"
# shellcheck disable=SC2317  # invoked through trap
cleanup() { if [[ "${KEEP_SANITY_TMP:-0}" != 1 ]]; then rm -rf "${tmp}"; else echo "kept ${tmp}"; fi; }
trap cleanup EXIT
coll="${tmp}/ansible_collections/kbypass/xdp"
mkdir -p "${coll}"
cd "${ROOT}"
git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
  [[ -e "${f}" || -L "${f}" ]] && printf '%s\0' "${f}"
done | rsync -a --from0 --files-from=- ./ "${coll}/"
cd "${coll}"
git init -q
git add -A
git -c user.name=sanity -c user.email=sanity@invalid commit -qm sanity --no-verify

# 3. ansible-test sanity, then the collection-docs lint (on the copy, which sits in an
# ansible_collections tree), then the changelog lint.
status=0
"${BIN}/ansible-test" sanity --local --python "${PYTHON_VERSION}" --color no "${EXTRA[@]}" || status=$?
"${TOOLS}/antsibull-docs" lint-collection-docs --plugin-docs "${coll}" || status=$?
cd "${ROOT}"
"${TOOLS}/antsibull-changelog" lint || status=$?
"${TOOLS}/antsibull-changelog" lint-changelog-yaml changelogs/changelog.yaml || status=$?
exit "${status}"
