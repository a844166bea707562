#!/usr/bin/env bash
# The soak of docs/performance.md: `flowline bench soak` on ao-basic for 10 minutes (a worker killed with
# SIGKILL every 30 s and restarted, readers attaching and leaving, GET /status called back to back). The
# JSON goes to bench/soak/results/soak-<delivery>.json (tables on the terminal with --tables); the exit
# code is flowline's (4: a figure that must be zero was not).
# Usage: bench/soak/run.sh [--tables] [--quick] [-- more options of flowline bench soak]
#   --quick  40 s instead of 600 (one kill): a smoke run, not a measurement
#   e.g.     bench/soak/run.sh -- --delivery document   (the document's latest streams, source unthrottled)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bench/soak/results
mkdir -p "$out"
duration=600
tables=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tables) tables=1 ;;
    --quick) duration=40 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown option $1 (options: --tables, --quick, -- FLOWLINE_OPTIONS...)" >&2; exit 1 ;;
  esac
  shift
done

dotnet build -c Release src/Flowline.Cli >/dev/null
flowline() { dotnet src/Flowline.Cli/bin/Release/net10.0/Flowline.Cli.dll "$@"; }

delivery=lossless
for ((i = 0; i < ${#extra[@]}; i++)); do
  if [ "${extra[$i]}" = "--delivery" ] && [ $((i + 1)) -lt ${#extra[@]} ]; then delivery=${extra[$((i + 1))]}; fi
done

args=(bench soak --document examples/ao-basic/pipeline.yaml --duration "$duration" "${extra[@]}")
echo "== flowline ${args[*]}" >&2
if [ "$tables" = 1 ]; then
  flowline "${args[@]}"
else
  status=0
  flowline "${args[@]}" --json > "$out/soak-$delivery.json" || status=$?
  echo "result in $out/soak-$delivery.json (exit code $status)" >&2
  exit "$status"
fi
