#!/usr/bin/env bash
# Install everything TakeBack needs on Debian: the system packages it builds
# with, then a virtual environment in .venv with TakeBack and its test tools.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v g++ >/dev/null 2>&1 || need+=(g++)          # pdqhash compiles its C++ core
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need+=(python3-venv)
# WeasyPrint (evidence reports) renders with Pango; reports use only local fonts
ldconfig -p 2>/dev/null | grep -q libpangoft2-1.0 || need+=(libpango-1.0-0 libpangoft2-1.0-0)
ldconfig -p 2>/dev/null | grep -q libharfbuzz-subset || need+=(libharfbuzz-subset0)  # fast font subsetting
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
# the tests start a private PostgreSQL server on 127.0.0.1 (bank store contract)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
# the local app's browser tests (tests/test_app_browser.py) drive Debian's Chromium
[ -x /usr/bin/chromium ] || need+=(chromium)
if ((${#need[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
pip_quiet=(--quiet --disable-pip-version-check --no-input)
.venv/bin/python -m pip install "${pip_quiet[@]}" --upgrade pip
.venv/bin/python -m pip install "${pip_quiet[@]}" -e ".[dev]"
# The reference invisible-watermark encoder, for test fixtures only: its package
# declares torch and a GUI OpenCV, which the DWT-DCT code it is used for needs not.
.venv/bin/python -m pip install "${pip_quiet[@]}" --no-deps invisible-watermark==0.2.0
