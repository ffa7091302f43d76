#!/bin/sh
# Runs the TUN device suite where it cannot run (as an unprivileged user, so
# unshare(CLONE_NEWNET) is refused) and checks that the runner reports the
# skips instead of passing.
set -u
runner=$1
fail=0
# TK_EMULATOR: the cross build's qemu-user (the runner is a target binary)
if [ "$(id -u)" = 0 ]; then
	as() { setpriv --reuid=65534 --regid=65534 --clear-groups ${TK_EMULATOR:-} "$@"; }
else
	as() { ${TK_EMULATOR:-} "$@"; }
fi
out=$(as "$runner" tun_dev 2>&1); rc=$?
if [ "$rc" -ne 77 ]; then
	echo "FAIL: all-skipped runner exited $rc, want 77"; fail=1
fi
n=$(printf '%s\n' "$out" | grep -c '^SKIPPED: test_dev_[a-z]* (')
if [ "$n" -ne 2 ]; then
	echo "FAIL: $n SKIPPED lines for the device suite, want 2"; fail=1
fi
# Partly skipped: exit 0 (the rest passed), skips listed and counted.
out=$(as "$runner" 2>&1); rc=$?
if [ "$rc" -ne 0 ]; then
	echo "FAIL: partly skipped runner exited $rc, want 0"; fail=1
fi
if ! printf '%s\n' "$out" | grep -q '^2 of [0-9]* tests SKIPPED$'; then
	echo "FAIL: no '2 of N tests SKIPPED' count"; fail=1
fi
[ "$fail" -eq 0 ] && echo "ok: skips reported"
exit $fail
