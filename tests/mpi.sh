#!/bin/sh
# mpi.sh - make mpi's checks, each under mpirun with 2 ranks (on one machine:
# --oversubscribe, and --allow-run-as-root for CI's root):
#   1. build/mpi/test_mpi: 2 ranks equal 1 process with twice the batch; a
#      2-rank resume equals an uninterrupted 2-rank run bit for bit
#   2. build/mpi/test_mpi --stall: a rank that hangs makes the other give up
#      after its ddp_timeout (3 s) with a clear error, its checkpoints whole
#   3. sft train under mpirun (the demo's model and data, after make demo):
#      rank 1 is killed (kill -9) mid-run; the run ends at once (no hang), every
#      checkpoint-N left is whole, and a 2-rank --resume_from_checkpoint finishes
#      the run with the same adapter as an uninterrupted 2-rank run
set -eu
MPIRUN=${MPIRUN:-"mpirun --allow-run-as-root --oversubscribe"}
model=$1; data=$2
tmp=build/mpi/tmp
mkdir -p "$tmp"

echo "== data-parallel tests, 2 ranks"
$MPIRUN -np 2 build/mpi/test_mpi

echo "== a rank that hangs: the other gives up after its 3 s ddp_timeout"
start=$(date +%s)
$MPIRUN -np 2 build/mpi/test_mpi --stall > "$tmp/stall.log" 2>&1 || true
took=$(( $(date +%s) - start ))
grep '^stall:' "$tmp/stall.log"
grep -q 'stall: rank 0 stopped after .* SFT_ERR_IO: .*not every rank answered within 3 s' "$tmp/stall.log" &&
    grep -q 'stall: checkpoint-1 and checkpoint-2 whole, no checkpoint-3' "$tmp/stall.log" ||
    { echo "mpi: the stalled run did not stop as it should:"; cat "$tmp/stall.log"; exit 1; }
[ "$took" -lt 25 ] || { echo "mpi: the stalled run took $took s to end"; exit 1; }
echo "  ended in $took s"

echo "== sft train under mpirun: rank 1 killed with kill -9, then resumed"
train() {   # train OUT [flags]: 2 ranks, a checkpoint every step, 24 steps
    out=$1; shift
    $MPIRUN -np 2 build/mpi/sft train --model_name_or_path "$model" --dataset_name "$data" --output_dir "$out" \
        --load_in_4bit --bnb_4bit_quant_type nf4 --bnb_4bit_compute_dtype float32 --use_peft --lora_r 8 --lora_alpha 16 \
        --lora_target_modules all-linear --per_device_train_batch_size 4 --max_length 64 --max_steps 24 --logging_steps 1 \
        --learning_rate 1e-3 --save_steps 1 --save_total_limit 3 --threads 1 --ddp_timeout 30 --seed 7 "$@"
}
rm -rf "$tmp/whole" "$tmp/killed"
train "$tmp/whole" > "$tmp/whole.log" 2>&1 || { cat "$tmp/whole.log"; exit 1; }
grep -q 'adapter saved to' "$tmp/whole.log" || { cat "$tmp/whole.log"; exit 1; }
train "$tmp/killed" > "$tmp/killed.log" 2>&1 &
run=$!
victim=""
for i in $(seq 1 600); do           # rank 1's process, found first: on an idle machine a step takes ~25 ms
    victim=$(pgrep -f "build/mpi/sft train .*$tmp/killed" | while read -r p; do
        [ "$(tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -c '^OMPI_COMM_WORLD_RANK=1$')" = 1 ] && echo "$p"; done | head -n 1)
    [ -n "$victim" ] && break
    sleep 0.1
done
[ -n "$victim" ] || { echo "mpi: rank 1 of the run was not found"; kill "$run" 2>/dev/null; exit 1; }
for i in $(seq 1 6000); do          # then killed once a checkpoint or two exist
    [ -d "$tmp/killed/checkpoint-2" ] && break
    sleep 0.01
done
kill -9 "$victim"
start=$(date +%s)
wait "$run" && { echo "mpi: the run went on after rank 1 was killed"; exit 1; } || true
took=$(( $(date +%s) - start ))
[ "$took" -lt 40 ] || { echo "mpi: the run took $took s to end after the kill"; exit 1; }
n=0
for c in "$tmp/killed"/checkpoint-*; do
    for f in adapter_model.safetensors adapter_config.json optimizer.safetensors trainer_state.json sft_state.json; do
        [ -s "$c/$f" ] || { echo "mpi: $c lacks $f after the kill"; exit 1; }
    done
    n=$((n + 1))
done
echo "  rank 1 killed; the run ended in $took s; $n checkpoints left, each whole"
train "$tmp/killed" --resume_from_checkpoint true > "$tmp/resumed.log" 2>&1 || { cat "$tmp/resumed.log"; exit 1; }
cmp "$tmp/whole/adapter_model.safetensors" "$tmp/killed/adapter_model.safetensors" ||
    { echo "mpi: the resumed run's adapter differs from the uninterrupted run's"; exit 1; }
echo "  resumed with 2 ranks: the adapter is byte-identical to the uninterrupted 2-rank run's"
echo "mpi: passed"
