#!/usr/bin/env bash
# Installs what csp-asr needs and is missing, and reuses what is already there:
#   1. Debian packages: the TTS engines, sox and the text sources of the default corpus,
#      the real-speech test set (Asterisk prompts, LibriVox clips: `csp data real`),
#      chromium (headless: the report and dashboard tests open pages in it) and the
#      PostgreSQL server (the sweep tests start their own on 127.0.0.1);
#   2. the Python dependencies of requirements.lock, in a virtual environment cached under
#      ${CSP_CACHE_DIR:-~/.cache/csp-asr}, keyed on the lock's hash (built once per lock);
#   3. ./.venv: a light environment for this checkout that sees the cached one and holds
#      the project itself (editable) and the `csp` command.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
  sox fortunes fortunes-min bible-kjv
  asterisk-core-sounds-en-g722 asterisk-core-sounds-en pocketsphinx-testdata
  chromium postgresql
)

missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "bootstrap: csp-asr needs Python 3.11 (found $("$python" --version)); set PYTHON=..." >&2
  exit 1
fi

lock_hash=$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)
cache_dir=${CSP_CACHE_DIR:-$HOME/.cache/csp-asr}
deps="$cache_dir/deps-$lock_hash"
if [ ! -x "$deps/bin/python" ]; then
  echo "bootstrap: building the dependency environment $deps (a few minutes, once per lock)"
  mkdir -p "$cache_dir"
  building=$(mktemp -d "$cache_dir/building.XXXXXX")
  "$python" -m venv "$building"
  # torch first and alone: otherwise a dependency may pull a different torch build.
  "$building/bin/pip" install -q --disable-pip-version-check \
    "$(grep -E '^torch==' requirements.lock)" "$(grep -E '^torchaudio==' requirements.lock)"
  "$building/bin/pip" install -q --disable-pip-version-check -r requirements.lock
  # Move into place only when complete, so an interrupted build is never reused.
  mv "$building" "$deps" 2>/dev/null || rm -rf "$building"
fi

if [ ! -f .venv/deps-path ] || [ "$(cat .venv/deps-path)" != "$deps" ]; then
  rm -rf .venv
  "$python" -m venv .venv
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  deps_site=$("$deps/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "import site; site.addsitedir('$deps_site')" > "$site/csp_deps.pth"
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  echo "$deps" > .venv/deps-path
fi
echo "bootstrap: ready (.venv -> $deps)"
