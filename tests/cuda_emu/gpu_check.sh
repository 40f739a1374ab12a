#!/bin/sh
# gpu_check.sh - `make test-cuda`: the whole device check for a machine with a
# GPU, in one bounded run (at most 7 minutes: every step has its own timeout,
# so one hang cannot eat the rest; steps that need no GPU, or can share it, run
# side by side). Run from the project root.
#
#   1. build: build/test_cuda and build/sft_cuda for this GPU's architecture only,
#      and the emulator's build/test_cuda_emu, side by side
#   2. the CUDA tests on the GPU with cuBLASLt and the tensor cores (the bounds
#      hold), then again with SFT_CUDA_GEMM=reference (CUDA cores only), whose
#      per-test checksums must equal the emulator's (run the same way) for every
#      test marked "exact" (no libm function and no tensor core involved:
#      expf/logf/cosf on a GPU differ from the host's by a few ulp, so tests
#      marked "libm" are reported, not required)
#   3. compute-sanitizer memcheck, racecheck and synccheck over the operator and
#      layer tests, if the toolkit has it
#
# Logs and a summary go to ${OUT:-build/gpu-check}; the exit status is 0 when
# every required step passed.
set -u
OUT=${OUT:-build/gpu-check}
mkdir -p "$OUT"
: > "$OUT/summary.txt"
status=0
say() { echo "$*" | tee -a "$OUT/summary.txt"; }
step() {   # step NAME SECONDS COMMAND...: run with a timeout, log, record the status
    name=$1; secs=$2; shift 2
    t0=$(date +%s)
    timeout "$secs" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    say "$name: rc=$rc ($(( $(date +%s) - t0 )) s)"
    return $rc
}

if ! command -v nvidia-smi > /dev/null || ! nvidia-smi > /dev/null 2>&1; then
    say "no GPU answers (nvidia-smi): nothing to check here; make cuda-emu runs the same tests on the CPU"
    exit 1
fi
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader | tee -a "$OUT/summary.txt"
cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d '. ')
case "$cc" in 90) arch=sm_90a ;; *) arch=sm_$cc ;; esac
jobs=$(nproc)

# 1. build (only this GPU's architecture: a third of the compile time)
step build_gpu 300 make -j"$jobs" build/test_cuda build/sft_cuda CUDA_ARCH="-arch=$arch" &
gpu_pid=$!
step build_emu 300 make -j"$jobs" build/test_cuda_emu &
emu_pid=$!
wait $gpu_pid || status=1
wait $emu_pid || status=1
[ "$status" = 0 ] || { say "build failed: see $OUT/build_*.log"; exit 1; }

# 2. run (the emulator on the CPU meanwhile: it needs no GPU)
step run_emu 240 env SFT_CUDA_GEMM=reference ./build/test_cuda_emu &
emu_pid=$!
step run_gpu 120 ./build/test_cuda || status=1
tail -n 1 "$OUT/run_gpu.log" | tee -a "$OUT/summary.txt"
step run_gpu_reference 180 env SFT_CUDA_GEMM=reference ./build/test_cuda || status=1
wait $emu_pid || status=1
grep '^checksum exact ' "$OUT/run_gpu_reference.log" > "$OUT/gpu.exact"
grep '^checksum exact ' "$OUT/run_emu.log" > "$OUT/emu.exact"
if [ -s "$OUT/emu.exact" ] && cmp -s "$OUT/gpu.exact" "$OUT/emu.exact"; then
    say "bitwise: GPU == emulator for all $(wc -l < "$OUT/emu.exact") exact tests"
else
    say "bitwise: GPU and emulator differ:"
    diff "$OUT/emu.exact" "$OUT/gpu.exact" | tee -a "$OUT/summary.txt"
    status=1
fi
grep '^checksum libm ' "$OUT/run_gpu_reference.log" > "$OUT/gpu.libm"
grep '^checksum libm ' "$OUT/run_emu.log" > "$OUT/emu.libm"
say "libm tests equal to the emulator's bits: $(comm -12 "$OUT/gpu.libm" "$OUT/emu.libm" | wc -l) of $(wc -l < "$OUT/emu.libm") (not required)"

# 3. compute-sanitizer over the tests that compare results ("match" in their names)
# (the three side by side: the GPU has room for all of them)
if command -v compute-sanitizer > /dev/null; then
    pids=
    for tool in memcheck racecheck synccheck; do
        secs=150; [ "$tool" = racecheck ] && secs=330   # racecheck: about 3 minutes on an H200
        step "sanitize_$tool" "$secs" compute-sanitizer --tool "$tool" --error-exitcode 9 ./build/test_cuda match &
        pids="$pids $!"
    done
    for pid in $pids; do wait "$pid" || status=1; done
else
    say "compute-sanitizer: not in this toolkit (skipped)"
fi
say "gpu check: $([ "$status" = 0 ] && echo passed || echo FAILED) (logs in $OUT)"
exit $status
