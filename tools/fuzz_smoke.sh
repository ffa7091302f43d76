#!/bin/sh
# Short libFuzzer smoke run: replay the seed corpus, then fuzz briefly.
# usage: fuzz_smoke.sh <fuzzer> <seed corpus dir> <work dir> [seconds]
set -eu
fuzzer=$1 seeds=$2 work=$3 secs=${4:-${TK_FUZZ_SECONDS:-10}}
rm -rf "$work"
mkdir -p "$work/corpus"
[ -d "$seeds" ] && cp -r "$seeds"/. "$work/corpus/" 2>/dev/null || true
cd "$work"
exec "$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 corpus
