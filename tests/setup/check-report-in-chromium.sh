#!/usr/bin/env bash
# Opens a pagefusion.core report.html in headless Chromium (Debian's `chromium` package), offline:
# checks that the browser parses the inline SVG chart with the expected number of bars and takes a screenshot.
#   check-report-in-chromium.sh REPORT_HTML OUT_PNG [EXPECTED_BARS]
set -euo pipefail

html=$(realpath "$1")
png=$2
bars=${3:-}
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --user-data-dir="$profile")

dom=$(chromium "${flags[@]}" --dump-dom "file://$html" 2>/dev/null)
rendered=$(grep -o '<rect class="bar"' <<<"$dom" | wc -l)
grep -q '<svg id="saved-chart"' <<<"$dom" || { echo "check-report-in-chromium: no chart in the rendered page" >&2; exit 1; }
if [ -n "$bars" ] && [ "$rendered" -ne "$bars" ]; then
  echo "check-report-in-chromium: $rendered bars rendered, expected $bars" >&2
  exit 1
fi

chromium "${flags[@]}" --screenshot="$png" --window-size=1200,900 "file://$html" >/dev/null 2>&1
size=$(stat -c %s "$png")
[ "$size" -gt 10000 ] || { echo "check-report-in-chromium: screenshot $png is only $size bytes" >&2; exit 1; }
echo "check-report-in-chromium: $rendered bars rendered; screenshot $png ($size bytes)"
