#!/usr/bin/env bash
# Render a run report in headless Chromium and save a full-page screenshot, to check by eye that the
# page shows (no broken images). Usage: scripts/screenshot_report.sh runs/NAME [OUT.png]
# Needs Debian's chromium (apt-get install chromium); CI does not run this script.
set -euo pipefail
report="$(cd "$1" && pwd)/report.html"
out="${2:-$1/report_screenshot.png}"
[ -f "$report" ] || { echo "no report at $report (run: codeloop report $1)" >&2; exit 2; }
browser="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$browser" ] || { echo "chromium is not installed: apt-get install chromium" >&2; exit 2; }
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size=1200,4000 --hide-scrollbars \
  --screenshot="$out" "file://$report" 2>/dev/null
echo "screenshot: $out"
