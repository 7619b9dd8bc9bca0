#!/usr/bin/env bash
# Places a pyflakes wheel (3.x or newer) in .cache/wheels/, where `amore-proto check` loads it
# into Pyodide. pyflakes is pure Python, so one wheel serves every platform.
#
# Uses pip as configured on this machine: its index, extra indexes and find-links (a local
# mirror) all apply. Nothing is installed; the wheel is only downloaded.
#   scripts/fetch-pyflakes.sh            # into .cache/wheels/ of this checkout
#   WHEELS_DIR=/some/dir scripts/fetch-pyflakes.sh
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
wheels_dir="${WHEELS_DIR:-$repo_root/.cache/wheels}"
requirement="pyflakes>=3"

shopt -s nullglob
for wheel in "$wheels_dir"/pyflakes-*.whl; do
  major="$(basename "$wheel" | sed -E 's/^pyflakes-([0-9]+)\..*/\1/')"
  if [[ "$major" =~ ^[0-9]+$ ]] && (( major >= 3 )); then
    echo "pyflakes wheel already in place: $wheel"
    exit 0
  fi
done

# Any Python with pip will do: the wheel does not depend on the interpreter that downloads it.
pip_cmd=()
for python in "${PYTHON:-}" python3 /usr/bin/python3 python; do
  [[ -n "$python" ]] || continue
  if command -v "$python" >/dev/null 2>&1 && "$python" -m pip --version >/dev/null 2>&1; then
    pip_cmd=("$python" -m pip)
    break
  fi
done
if [[ ${#pip_cmd[@]} -eq 0 ]] && command -v pip >/dev/null 2>&1; then
  pip_cmd=(pip)
fi
if [[ ${#pip_cmd[@]} -eq 0 ]]; then
  echo "fetch-pyflakes: no pip found; without the wheel, 'amore-proto check' skips pyflakes warnings" >&2
  exit 1
fi

mkdir -p "$wheels_dir"
download=("${pip_cmd[@]}" download --no-deps --only-binary=:all: --disable-pip-version-check
  --dest "$wheels_dir" "$requirement")
# First without retries, so that an unreachable index costs one attempt rather than five while a
# local mirror answers; then once more with pip's own retries, for a flaky network.
if ! "${download[@]}" --retries 0 --quiet 2>/dev/null; then
  "${download[@]}"
fi
echo "pyflakes wheel placed in $wheels_dir"
