#!/bin/sh
# schedules.sh PROGRAM [ARGS...] - run a CUDA test program built on the emulator
# under three thread schedules (forward, reverse, random) and require that each
# passes and that all three print the same checksum lines (the three run at
# the same time). A missing
# __syncthreads or __syncwarp shows as a difference here. Used by `make cuda-emu`
# and `make cuda-emu-san`; the logs stay in build/emu-<schedule>.log.
set -u
prog=$1; shift
mkdir -p build
schedules="forward reverse random:7"
for s in $schedules; do    # at once: the runs share nothing but the CPUs
    log=build/emu-$(echo "$s" | tr ':' '-').log
    ( CUDA_EMU_SCHEDULE=$s "$prog" "$@" > "$log" 2>&1; echo $? > "$log.rc" ) &
done
wait
status=0
for s in $schedules; do
    log=build/emu-$(echo "$s" | tr ':' '-').log
    if [ "$(cat "$log.rc")" != 0 ]; then
        echo "schedule $s: the tests failed ($prog):"
        grep -B1 -A4 "FAIL\|cuda_emu:\|ERROR" "$log" | head -40
        tail -n 1 "$log"
        status=1
    fi
    grep '^checksum ' "$log" > "$log.sums"
done
[ "$status" = 0 ] || exit 1
if ! cmp -s build/emu-forward.log.sums build/emu-reverse.log.sums || ! cmp -s build/emu-forward.log.sums build/emu-random-7.log.sums; then
    echo "the schedules disagree (a race between threads of a block):"
    diff build/emu-forward.log.sums build/emu-reverse.log.sums
    diff build/emu-forward.log.sums build/emu-random-7.log.sums
    exit 1
fi
tail -n 1 build/emu-forward.log
echo "one checksum under 3 schedules: $(grep '^checksum all' build/emu-forward.log.sums | cut -d' ' -f3)"
