#!/usr/bin/env bash
# Python SDK tests. Installs `pip install ./sdk/python[test]` into a venv under
# ${CARGO_TARGET_DIR:-target}/sdk-python-venv (again only when the package changed),
# then runs pytest against a real node: NEXUS_BIN, default
# ${CARGO_TARGET_DIR:-<repo>/target}/debug/nexus (built by `cargo build -p nexus`).
# Extra arguments go to pytest, e.g. `sdk/python/test.sh -k tool`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
venv="$target/sdk-python-venv"
py="${PYTHON:-python3}"

"$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || { echo "test.sh: Python >= 3.10 needed ($py is $("$py" --version 2>&1))" >&2; exit 1; }

# The installed package must be what is in the tree: reinstall when any of it changed.
want="$(cd "$here" && find pyproject.toml README.md src -type f ! -path '*/__pycache__/*' \
  ! -path '*.egg-info/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
stamp="$venv/.nexus-agent-installed"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$here[test]"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall "$here"
  rm -rf "$here/build" "$here"/src/*.egg-info
  echo "$want" > "$stamp"
fi

export NEXUS_BIN="${NEXUS_BIN:-$target/debug/nexus}"
[ -x "$NEXUS_BIN" ] || { echo "test.sh: no nexus binary at $NEXUS_BIN (run: cargo build -p nexus)" >&2; exit 1; }
cd "$here"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
