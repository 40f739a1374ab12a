#!/bin/sh
# bench_mpi.sh MODEL DATA - make bench-mpi: the demo's QLoRA fine-tune (NF4 base,
# LoRA r 16 on every linear, global batch 16) for 300 steps, one process with 2
# threads (build/sft) against 2 MPI ranks of 1 thread with batch 8 each
# (build/mpi/sft under mpirun), twice each, interleaved. One JSON line per run:
# trained tokens per second of training time (num_tokens / train_runtime).
set -eu
MPIRUN=${MPIRUN:-"mpirun --allow-run-as-root --oversubscribe"}
model=$1; data=$2
tmp=build/mpi/bench
rm -rf "$tmp"; mkdir -p "$tmp"
flags="--model_name_or_path $model --dataset_name $data --load_in_4bit --bnb_4bit_quant_type nf4 --use_peft --lora_r 16
       --lora_alpha 32 --lora_dropout 0 --lora_target_modules all-linear --assistant_only_loss --max_steps 300
       --learning_rate 2e-3 --logging_steps 5 --save_strategy no --seed 42"
report() {   # report NAME RANKS THREADS BATCH OUT LOG
    runtime=$(grep -o '"train_runtime": [0-9.]*' "$6" | awk '{print $2}')
    tokens=$(tail -n 1 "$5/metrics.jsonl" | grep -o '"num_tokens":[0-9]*' | cut -d: -f2)
    loss=$(tail -n 1 "$5/metrics.jsonl" | grep -o '"loss":[-0-9.e+]*' | cut -d: -f2)
    echo "{\"bench\": \"mpi\", \"case\": \"$1\", \"ranks\": $2, \"threads_per_rank\": $3, \"per_device_batch\": $4, \"steps\": 300," \
         "\"num_tokens\": $tokens, \"train_runtime\": $runtime, \"tokens_per_s\": $(awk -v t="$tokens" -v s="$runtime" 'BEGIN { printf "%.1f", t / s }')," \
         "\"last_loss\": $loss}"
}
for round in 1 2; do
    ./build/sft train $flags --output_dir "$tmp/one-$round" --per_device_train_batch_size 16 --threads 2 > "$tmp/one-$round.log" 2>&1
    report one_process 1 2 16 "$tmp/one-$round" "$tmp/one-$round.log"
    $MPIRUN -np 2 build/mpi/sft train $flags --output_dir "$tmp/two-$round" --per_device_train_batch_size 8 --threads 1 \
        > "$tmp/two-$round.log" 2>&1
    report two_ranks 2 1 8 "$tmp/two-$round" "$tmp/two-$round.log"
done
