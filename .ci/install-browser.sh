#!/usr/bin/env bash
# Install a headless browser for the report's rendering test (CI, run as root; idempotent).
#
# The browser is Debian's chromium package (/usr/bin/chromium), driven through the Playwright
# Python package. `playwright install` is never run: it downloads a browser build from the
# internet, which this machine kind cannot reach; tests pass executable_path=/usr/bin/chromium.
#
# Launch arguments that work here as root, without a display:
#   --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
#   --disable-background-networking --disable-component-update --disable-sync
# plus a fresh profile folder (Playwright: launch_persistent_context(user_data_dir=...)).
# The last four keep Chromium from calling home (updates, sync, field trials), so that the
# only traffic is to the file:// or loopback page under test.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

log() { printf '[install-browser] %s\n' "$*" >&2; }

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
PYTHON="${PYTHON:-python3}"

if [[ -x "$CHROMIUM" ]]; then
    log "chromium already installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
else
    if [[ "$(id -u)" != 0 ]]; then
        log "chromium is missing and installing it needs root"
        exit 1
    fi
    log "installing chromium"
    if ! apt-get install -y -qq chromium >/dev/null; then
        apt-get update -qq
        apt-get install -y -qq chromium >/dev/null
    fi
fi

if "$PYTHON" -c "import playwright.sync_api" 2>/dev/null; then
    log "playwright (Python package) already installed"
else
    log "installing playwright (Python package only; no browser download)"
    "$PYTHON" -m pip install --quiet playwright
fi

# Smoke test: render a page from a string, with the same arguments the tests use.
"$PYTHON" - "$CHROMIUM" <<'EOF'
import sys
import tempfile

from playwright.sync_api import sync_playwright

ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
    context = pw.chromium.launch_persistent_context(
        profile, executable_path=sys.argv[1], headless=True, args=ARGS
    )
    page = context.new_page()
    page.set_content("<p id='ok'>ok</p>")
    assert page.inner_text("#ok") == "ok"
    version = context.browser.version if context.browser else "?"
    context.close()
print(f"[install-browser] headless chromium {version} works through playwright", file=sys.stderr)
EOF
