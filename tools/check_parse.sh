# Sourced by tools/check.sh (and its test, tests/unit/skip/check_parse_test.sh):
# reads a step's log and prints "PASS FAIL SKIP".
#
# ctest: "N% tests passed, F tests failed out of T"; skipped tests (a runner
# exiting 77, SKIP_RETURN_CODE) are inside T and listed as "(Skipped)" under
# "The following tests did not run:" -- they are not passes.
# pytest: the last "=== ... passed, ... skipped ... ===" line.
check_parse() {
	local kind=$1 log=$2 line pass=0 fail=0 skip=0
	if [ "$kind" = ctest ]; then
		line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
		if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
			fail=${BASH_REMATCH[1]}
			skip=$(grep -cE '^[[:space:]]+[0-9]+ - .* \(Skipped\)$' "$log")
			pass=$((BASH_REMATCH[2] - fail - skip))
		fi
	else
		line=$(grep -E '^=+ .*(passed|failed|error|skipped)' "$log" | tail -1)
		[[ $line =~ ([0-9]+)\ passed ]] && pass=${BASH_REMATCH[1]}
		[[ $line =~ ([0-9]+)\ failed ]] && fail=${BASH_REMATCH[1]}
		[[ $line =~ ([0-9]+)\ errors? ]] && fail=$((fail + BASH_REMATCH[1]))
		[[ $line =~ ([0-9]+)\ skipped ]] && skip=${BASH_REMATCH[1]}
	fi
	echo "$pass $fail $skip"
}
