#!/bin/sh
# cli_check.sh SFT MODEL DATA - `sft train --device cuda` end to end: the sft
# command built on the CUDA emulator (build/sft_emu) fine-tunes MODEL on DATA
# for 3 steps (NF4 + LoRA on every linear layer, dropout) on the CPU and on the
# emulated device; every logged loss must agree within 1e-4 relative (the
# device's reductions add in other orders; the CPU path here is the machine's
# fastest, so more than rounding order would show; f32 compute on both, as
# auto would pick bf16 where the CPU has AVX512-BF16). Then `sft generate` and
# `sft memory` run with --device cuda. Used by `make cuda-emu-cli` after
# `make demo` (whose model and data it takes). Also --bf16 and --fp16 on the
# device against the same f32 CPU run, and --fp16 on the CPU refused.
set -eu
sft=$1; model=$2; data=$3
out=build/cli-check
rm -rf "$out"
for dev in cpu cuda; do
    "$sft" train --model_name_or_path "$model" --dataset_name "$data" --output_dir "$out/$dev" --device "$dev" \
        --bnb_4bit_compute_dtype float32 --load_in_4bit --bnb_4bit_quant_type nf4 --use_peft --lora_r 8 --lora_alpha 16 --lora_dropout 0.1 \
        --lora_target_modules all-linear --per_device_train_batch_size 4 --gradient_accumulation_steps 2 --max_length 64 \
        --max_steps 3 --logging_steps 1 --learning_rate 1e-3 --save_strategy no --token_metrics true --seed 7 \
        > "$out-$dev.log" 2>&1 || { cat "$out-$dev.log"; exit 1; }
    grep -o '"loss":[-0-9.e+]*' "$out/$dev/metrics.jsonl" | cut -d: -f2 > "$out-$dev.losses"
done
paste "$out-cpu.losses" "$out-cuda.losses" | awk '
    { n++; d = $1 - $2; if (d < 0) d = -d; r = d / ($1 < 0 ? -$1 : $1); if (r > worst) worst = r;
      printf "  step %d: loss %s (cpu) %s (cuda)\n", n, $1, $2 }
    END { if (n != 3 || worst > 1e-4) { print "sft train --device cuda: the losses differ (worst relative " worst ")"; exit 1 }
          print "sft train --device cuda: 3 losses within " worst " of the CPU run" }'
# --bf16 and --fp16 on the device (the frozen base on tensor cores): the same 3
# steps, losses within 2e-3 relative of the f32 CPU run (test_cuda_model's bound);
# --fp16 on the CPU is refused, naming the way out
for prec in bf16 fp16; do
    "$sft" train --model_name_or_path "$model" --dataset_name "$data" --output_dir "$out/$prec" --device cuda --$prec \
        --load_in_4bit --bnb_4bit_quant_type nf4 --use_peft --lora_r 8 --lora_alpha 16 --lora_dropout 0.1 \
        --lora_target_modules all-linear --per_device_train_batch_size 4 --gradient_accumulation_steps 2 --max_length 64 \
        --max_steps 3 --logging_steps 1 --learning_rate 1e-3 --save_strategy no --token_metrics true --seed 7 \
        > "$out-$prec.log" 2>&1 || { cat "$out-$prec.log"; exit 1; }
    grep -o '"loss":[-0-9.e+]*' "$out/$prec/metrics.jsonl" | cut -d: -f2 > "$out-$prec.losses"
    paste "$out-cpu.losses" "$out-$prec.losses" | awk -v prec="$prec" '
        { n++; d = $1 - $2; if (d < 0) d = -d; r = d / ($1 < 0 ? -$1 : $1); if (r > worst) worst = r }
        END { if (n != 3 || !(worst <= 2e-3)) { print "sft train --device cuda --" prec ": the losses differ (worst relative " worst ")"; exit 1 }
              print "sft train --device cuda --" prec ": 3 losses within " worst " of the f32 CPU run" }'
done
if "$sft" train --model_name_or_path "$model" --dataset_name "$data" --output_dir "$out/fp16-cpu" --fp16 --max_steps 1 \
    --save_strategy no > "$out-fp16-cpu.log" 2>&1; then echo "sft train --fp16 on the CPU did not refuse"; exit 1; fi
grep -q "needs the CUDA device" "$out-fp16-cpu.log" || { echo "sft train --fp16 on the CPU: no message naming the device:"; cat "$out-fp16-cpu.log"; exit 1; }
echo "sft train --fp16 on the CPU: refused, naming the CUDA device"
"$sft" generate --model_name_or_path "$model" --device cuda --prompt "hi" --max_new_tokens 4 > "$out-generate.log"
"$sft" memory --model_name_or_path "$model" --device cuda --use_peft --load_in_4bit --max_length 64 | grep -q '"device": "cuda"'
echo "sft generate and sft memory --device cuda: ok"
