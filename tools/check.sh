#!/usr/bin/env bash
# tailkit test command: set up (if needed), build, run every CI test label on
# the Release and ASan+UBSan builds, the fuzz smoke runs, and the interop
# harness; print one summary line, "check: N passed, M failed, K skipped"
# (a skipped test is never counted as passed), and for the interop steps
# "interop: X passed (tailkit), Y passed (Go-only self-tests)"; exit
# non-zero on any failure.
#
# Environment: TK_SKIP_SETUP=1 skips tools/setup.sh (trees must be built).
#              TK_FUZZ_SECONDS (default 5) per fuzz target (tools/fuzz.sh
#              runs the long campaigns).
#              TK_CHECK_ONLY="release asan fuzz cross interop interop-asan"
#              picks steps ("cross": the aarch64 and armv7 builds' unit and
#              known-answer tests under qemu-user).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
START=$(date +%s)
STEPS=${TK_CHECK_ONLY:-"release asan fuzz cross interop interop-asan"}
LABELS='^(unit|kat|integration|netns|interop|e2e)$'

if [ "${TK_SKIP_SETUP:-0}" != 1 ]; then
	if ! tools/setup.sh; then
		echo "check: setup failed"
		echo "check: 0 passed, 1 failed, 0 skipped"
		exit 1
	fi
fi

# shellcheck source=tools/check_parse.sh
. "$ROOT/tools/check_parse.sh"

TOTAL_PASS=0 TOTAL_FAIL=0 TOTAL_SKIP=0
declare -a SUMMARY=() INTEROP=()
LOGDIR=$ROOT/build/check-logs
mkdir -p "$LOGDIR"

# run_step <name> <kind: ctest|pytest> <command...>
run_step() {
	local name=$1 kind=$2
	shift 2
	local log=$LOGDIR/$name.log t0=$(date +%s) rc pass=0 fail=0 skip=0
	echo "=== check: $name"
	"$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	read -r pass fail skip < <(check_parse "$kind" "$log")
	if [ "$kind" = ctest ] && grep -q 'No tests were found' "$log"; then
		echo "check: $name ran no tests"
		rc=1
	fi
	if [ "$kind" = pytest ]; then
		local go
		go=$(grep -E '^interop: [0-9]+ passed \(tailkit\), [0-9]+ passed \(Go-only self-tests\)$' "$log" | tail -1)
		[ -n "$go" ] && INTEROP+=("$name: ${go#interop: }")
	fi
	if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
		fail=1 # failed without a count: still a failure
	fi
	TOTAL_PASS=$((TOTAL_PASS + pass))
	TOTAL_FAIL=$((TOTAL_FAIL + fail))
	TOTAL_SKIP=$((TOTAL_SKIP + skip))
	SUMMARY+=("$(printf '%-12s %4d passed %3d failed %3d skipped  rc=%d  %4ds' "$name" "$pass" "$fail" "$skip" "$rc" $(($(date +%s) - t0)))")
}

for step in $STEPS; do
	case $step in
	release)
		run_step release ctest ctest --test-dir build -L "$LABELS" -j2 --output-on-failure ;;
	asan)
		run_step asan ctest env ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
			UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
			LSAN_OPTIONS=suppressions=$ROOT/tests/lsan.supp:print_suppressions=0 \
			ctest --test-dir build-asan -L "$LABELS" -j2 --output-on-failure ;;
	fuzz)
		run_step fuzz ctest env TK_FUZZ_SECONDS="${TK_FUZZ_SECONDS:-5}" \
			ctest --test-dir build-fuzz -L fuzz -j2 --output-on-failure ;;
	cross)
		# tailkit built for aarch64 and armv7 (tools/setup_cross.sh), its
		# unit and known-answer tests under qemu-user
		run_step aarch64 ctest ctest --test-dir build-aarch64 -L '^(unit|kat)$' -j2 --output-on-failure
		run_step armv7 ctest ctest --test-dir build-armv7 -L '^(unit|kat)$' -j2 --output-on-failure
		# the aarch64 wgd (qemu-user, TUN in a network namespace) against
		# wireguard-go on the host: handshakes, IPv4/IPv6 outer, TCP both ways
		run_step aarch64-wg pytest env TK_WGD=$ROOT/build-aarch64/wgd-emulated \
			tests/interop/run.sh -k "test_wgd_with_wireguard_go or test_wgd_tcp_both_ways"
		run_step armv7-wg pytest env TK_WGD=$ROOT/build-armv7/wgd-emulated \
			tests/interop/run.sh -k "test_wgd_with_wireguard_go" ;;
	interop)
		# tests/interop/run.sh fails with a clear message when Go or the
		# harness binaries are missing; it never skips.
		# the issue's 1 GiB netstackd transfer (100 MiB under ASan)
		run_step interop pytest env TK_NS_BIG_MIB=1024 tests/interop/run.sh ;;
	interop-asan)
		# the daemons built with ASan+UBSan against the real counterparts:
		# a clean stop must exit 0 (leaks and UB abort).  "netstackd" selects
		# test_netstackd.py and test_netstackd_services.py (MagicDNS, proxies).
		# Left to the release step for time: the e2e filter and headscale
		# policy tests and prefs' shields-up test (the same code paths run
		# under ASan in the filter, prefs and restart tests kept here).
		run_step interop-asan pytest env TK_WGD=$ROOT/build-asan/wgd/src/wgd \
			TK_CTRLD=$ROOT/build-asan/ctrld/ctrld \
			TK_DERPD=$ROOT/build-asan/derpd/src/derpd \
			TK_NETSTACKD=$ROOT/build-asan/netstackd/netstackd \
			TK_TAILKITD=$ROOT/build-asan/tools/node/tailkitd \
			TK_NS_TESTSRV=$ROOT/build-asan/tools/nsproto/tk-ns-testsrv \
			TK_EMBED_BUILD=$ROOT/build-asan \
			ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
			UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
			LSAN_OPTIONS=suppressions=$ROOT/tests/lsan.supp:print_suppressions=0 \
			tests/interop/run.sh -k "(ctrld_ or test_bus_ or test_derpd or tailkit_node or derpd_client or two_regions or derper_killed or wgd_restart or ctrld_down or netstackd or ns_proto or test_node_derp or test_tailkitd or tailkit_up or split_mode or test_node_prefs or test_node_diag or test_embed or test_e2e_restart or test_e2e_udp or test_node_disco or (test_direct_path and not tailkit_pair and not survives_loss and not public and not roams[tailkit]) or test_netcheck_reports_wgd_stun) and not test_prefs_shields_up" ;;
	*) echo "check: unknown step '$step' (accepted: release asan fuzz cross interop interop-asan)"; exit 2 ;;
	esac
done

echo
echo "=== check summary ($(($(date +%s) - START)) s)"
for s in "${SUMMARY[@]}"; do echo "  $s"; done
for s in "${INTEROP[@]}"; do echo "$s"; done
echo "check: $TOTAL_PASS passed, $TOTAL_FAIL failed, $TOTAL_SKIP skipped"
[ "$TOTAL_FAIL" -eq 0 ]
