#!/usr/bin/env bash
# Long fuzzing campaigns (not part of the test command).
#   tools/fuzz.sh                 every target, 10 minutes each
#   tools/fuzz.sh fuzz_enc 3600   one target, one hour
# Corpora grow in build-fuzz/fuzz-long/<target>/ (seeds copied in first);
# crashes land in the same directory as crash-* files.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
[ -f build-fuzz/build.ninja ] || tools/setup.sh --no-interop
ninja -C build-fuzz >/dev/null
secs=${2:-600}
targets=${1:-$(ls build-fuzz/tests/fuzz/ | grep '^fuzz_' | grep -v '\.' || true)}
for t in $targets; do
	bin=build-fuzz/tests/fuzz/$t
	[ -x "$bin" ] || { echo "fuzz.sh: no target '$t' (see build-fuzz/tests/fuzz/)"; exit 2; }
	work=build-fuzz/fuzz-long/$t
	mkdir -p "$work/corpus"
	cp -rn tests/fuzz/corpus/"$t"/. "$work/corpus/" 2>/dev/null || true
	echo "fuzz.sh: $t for ${secs}s"
	(cd "$work" && "$ROOT/$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-jobs=1 -print_final_stats=1 corpus)
done
