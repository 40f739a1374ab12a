#!/usr/bin/env bash
# soak.sh - kill -9 a training run again and again, resuming after each kill.
#
#   tests/soak.sh ./build/sft        (make soak; SOAK_KILLS=50, SOAK_STEPS=2000)
#
# A LoRA run of the tiny Llama fixture (pre-tokenized rows, packing) saves a
# checkpoint every step and keeps 2 (save_total_limit), so most kills land in a
# save or a rotation. After every kill each checkpoint-N folder must be whole
# (its five files, no temporary); the run is then resumed from the newest. When
# SOAK_KILLS kills have been made the run finishes, and its adapter and
# metrics.jsonl must be byte-identical to those of the same run never killed.
set -euo pipefail
sft=${1:-./build/sft}
kills=${SOAK_KILLS:-50}
steps=${SOAK_STEPS:-2000}
root=$(pwd)
work=build/soak
rm -rf "$work"
mkdir -p "$work/model"
ln -s "$root/tests/fixtures/models/llama/config.json" "$work/model/config.json"
ln -s "$root/tests/fixtures/models/llama/model.safetensors" "$work/model/model.safetensors"
cp tests/fixtures/templates/tokenizer/tokenizer.json tests/fixtures/templates/tokenizer/tokenizer_config.json "$work/model/"
awk 'BEGIN { for (i = 0; i < 48; i++) { n = 5 + (i * 7) % 11; s = "{\"input_ids\": [";
             for (k = 0; k < n; k++) s = s (k ? ", " : "") (3 + (i * 37 + k * 11) % 250); print s "]}" } }' > "$work/data.jsonl"
args=(train --model_name_or_path "$work/model" --dataset_name "$work/data.jsonl" --use_peft --lora_r 4 --lora_alpha 8
      --lora_dropout 0.1 --lora_target_modules all-linear --packing --max_length 24 --per_device_train_batch_size 2
      --gradient_accumulation_steps 2 --max_steps "$steps" --learning_rate 1e-3 --logging_steps 1 --save_steps 1
      --save_total_limit 2 --threads 1 --seed 5)

echo "soak: the uninterrupted run ($steps steps)"
"$sft" "${args[@]}" --output_dir "$work/ref" > "$work/ref.log" 2>&1 || { cat "$work/ref.log"; exit 1; }

# whole: every checkpoint-N folder holds its five files and no temporary
whole() {
    local d f bad=0
    for d in "$work/run"/checkpoint-*; do
        [ -e "$d" ] || continue
        for f in adapter_model.safetensors adapter_config.json optimizer.safetensors trainer_state.json sft_state.json; do
            [ -s "$d/$f" ] || { echo "soak: $d is incomplete: no $f"; bad=1; }
        done
        if ls "$d" | grep -q '\.tmp$'; then echo "soak: $d holds a temporary file"; bad=1; fi
    done
    return $bad
}

made=0 finished=0 runs=0
while [ $made -lt "$kills" ]; do
    resume=()
    if ls -d "$work/run"/checkpoint-* > /dev/null 2>&1; then resume=(--resume_from_checkpoint true); fi
    "$sft" "${args[@]}" --output_dir "$work/run" "${resume[@]}" > "$work/run.log" 2>&1 &
    pid=$!
    runs=$((runs + 1))
    sleep "0.$((RANDOM % 9 + 1))$((RANDOM % 10))"
    if kill -9 $pid 2> /dev/null; then made=$((made + 1)); fi
    wait $pid 2> /dev/null && { finished=1; echo "soak: the run finished before kill $((made + 1)); raise SOAK_STEPS"; break; } || true
    whole || exit 1
done
echo "soak: $made kills (kill -9) in $runs runs; every checkpoint folder whole after each; resuming to the end"
"$sft" "${args[@]}" --output_dir "$work/run" --resume_from_checkpoint true > "$work/run.log" 2>&1 || { cat "$work/run.log"; exit 1; }
whole
cmp "$work/ref/adapter_model.safetensors" "$work/run/adapter_model.safetensors"
cmp "$work/ref/metrics.jsonl" "$work/run/metrics.jsonl"
[ $finished = 0 ]
echo "soak: passed: $made kills, the final adapter and metrics.jsonl byte-identical to the uninterrupted run's"
