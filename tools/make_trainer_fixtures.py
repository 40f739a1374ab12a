#!/usr/bin/env python3
"""make_trainer_fixtures.py - optimizer, schedule and SFTTrainer-loop fixtures for sft.h.

Writes tests/fixtures/trainer/ (the whole folder is replaced):

    schedules.json          every transformers learning-rate schedule, 30 steps
    adamw.safetensors/json  torch AdamW (single-tensor and fused) on 37 floats, five
                            fixed gradients; bitsandbytes AdamW8bit (8-bit blockwise
                            state, CPU) on 4100 floats and its 32-bit fallback on 37
    trl_loop.json           one real TRL SFTTrainer run (12 optimizer steps, LoRA on
                            tests/fixtures/models/llama), what it logged at each step
    trl_loop_init.safetensors   the LoRA adapter before training (PEFT save keys)
    trl_loop.safetensors        the LoRA adapter after training (PEFT save keys)
    trl_loop_steps.safetensors  the adapter after every optimizer step ("step<N>/<key>")
    trl_loop_clip.json/.safetensors  the same run with max_grad_norm 0.6, so that the
                            short windows (steps 3, 6, 9, 12) are clipped
    trl_smooth.json/.safetensors   trl_loop with label_smoothing_factor 0.1, 6 steps
    trl_full.json/.safetensors     full fine-tuning (no PEFT), weight decay 0.01, 4 steps;
                            the final full state dict
    trl_plateau.json/.safetensors  trl_loop with an eval set and reduce_lr_on_plateau, 8 steps
    trl_8bit.json/.safetensors     trl_loop with optim adamw_bnb_8bit, 6 steps
    neftune.json/.safetensors      one LoRA forward+backward with transformers' NEFTune hook

Tests read these files; they never run Python.

    tools/.venv/bin/python tools/make_trainer_fixtures.py
    tools/.venv/bin/python tools/make_trainer_fixtures.py --only trl_smooth,neftune

--only NAME[,NAME...] runs just the named functions of section 4 (trl_smooth, trl_full,
trl_plateau, trl_8bit, neftune) and (re)writes only their files, deleting nothing; a
full run (no option) replaces the folder and writes everything, the same bytes.

CPU only, one thread, f32; about half a minute.  The output is deterministic (same
bytes on every run; safetensors metadata keys sorted by fixture_io.save_safetensors;
nothing time-dependent is stored).  Floats in the JSON files are Python's repr of
the double (lrs: the exact double the scheduler computed; f32 quantities: the
double equal to the f32 value, so parsing and casting to float is exact).

----------------------------------------------------------------------------------
schedules.json
----------------------------------------------------------------------------------
For each entry: optimizer torch.optim.AdamW on one parameter with lr 1e-3, then
transformers.get_scheduler(name, optimizer, num_warmup_steps=5,
num_training_steps=30, scheduler_specific_kwargs=kwargs).  lrs[i] is
optimizer.param_groups[0]["lr"] read BEFORE the i-th scheduler.step(), i.e. the lr
optimizer step i+1 used (the value Trainer logs as learning_rate for global_step
i+1); i = 0..29.  For reduce_lr_on_plateau the scheduler is stepped with
metrics[i] (lrs[i] is the lr before that call, lrs_after[i] the lr after it).
warmup_steps_from_ratio: TrainingArguments(warmup_ratio=r).get_warmup_steps(n) =
math.ceil(n * r) evaluated in double (only when warmup_steps is 0): 30 * 0.1 = 3.0
-> 3, 12 * 0.1 -> 2, but 100 * 0.07 = 7.000000000000001 -> 8 and 300 * 0.07 ->
22 (the double product, not the decimal one; all 25 pairs recorded).

Facts worth knowing (all visible in the recorded numbers):
- linear / cosine / cosine_with_restarts / polynomial / constant_with_warmup /
  cosine_with_min_lr warm up as step / max(1, warmup): the FIRST step has lr 0.
- constant ignores warmup (get_scheduler passes only the optimizer).
- inverse_sqrt: step < warmup -> step/warmup, else 1/sqrt((step + shift)/timescale)
  with shift = timescale - warmup (timescale default = warmup or 10_000).
- polynomial: lr_end is absolute (1e-7), not a ratio; after the end, lr_end.
- cosine_with_min_lr: min_lr (absolute) becomes min_lr_rate = min_lr / 1e-3.
- cosine_warmup_with_min_lr (also in 4.57): warmup is (step + 1) / warmup, so the
  first step is NOT zero, and decay progress is (step - warmup + 1)/(total - warmup).
- warmup_stable_decay: warmup goes from min_lr_ratio to 1 (factor*(1-r)+r), so the
  first lr is min_lr_ratio * lr, not 0; num_stable_steps given explicitly wins over
  num_training_steps (transformers warns); after warmup+stable+decay (27 steps
  here) the factor is min_lr_ratio.
- reduce_lr_on_plateau: torch ReduceLROnPlateau (mode min, factor 0.1, patience 10,
  threshold 1e-4 rel: better means metric < best * (1 - 1e-4), cooldown 0, min_lr 0,
  eps 1e-8: a reduction smaller than eps is skipped); new lr = max(lr * factor,
  min_lr); get_scheduler ignores warmup/total.  The metric sequence reduces the
  default twice (after metrics 14 and 27) and the patience-2 one eight times; it has
  improvements smaller than the threshold (0.84996 after 0.85, 0.69994 after 0.7).  Inside
  Trainer it is stepped only after an evaluation, with the eval metric.

----------------------------------------------------------------------------------
adamw.safetensors / adamw.json
----------------------------------------------------------------------------------
One 37-float parameter (seeded randn) and five gradients (seeded randn, then:
element 5 is 0 in every gradient, element 11 is 0 in gradient 2 only, element 7 is
+-1e4 (large), element 8 is 1e-7 and element 9 is -3e-12 (tiny; g*g still a normal
f32), element 20 is 0.5 in every gradient (constant sign)).  Per case the tensors
are <case>/param0, <case>/grad<k> (k = 0..4) and after step k+1:
<case>/param<k+1>, <case>/exp_avg<k+1>, <case>/exp_avg_sq<k+1> (f32).
torch cases: torch.optim.AdamW(foreach=False) = the single-tensor loop, and
fused=True (the CPU fused kernel, which Trainer's default optim
"adamw_torch_fused" selects).  Single-tensor arithmetic, per element, f32:
    p *= 1 - lr*wd
    m.lerp_(g, 1-b1)                  (m + (1-b1)*(g-m))
    v = v*b2 + (1-b2)*g*g
    bc1 = 1 - b1**t; bc2 = 1 - b2**t  (double)
    denom = sqrt(v) / sqrt(bc2) + eps
    p += -(lr/bc1) * m / denom
The json records, per case, how many param elements differ between foreach=False and
fused after each step (and the max abs difference).

bitsandbytes AdamW8bit (bnb 0.50.2, runs on CPU tensors: the CPU backend kernel
_optimizer_update_8bit_blockwise_cpu, pure PyTorch + the native CPU quantizer):
- only for tensors with numel >= min_8bit_size (4096): 4100 elements here (16 full
  blocks of 256 + one block of 4).  Smaller tensors keep f32 state and use
  _optimizer_update_32bit_cpu ("bnb8_small", 37 elements).
- state1 (m) is quantized with the signed dynamic map (qmap1 =
  create_dynamic_map(signed=True)), state2 (v) with the unsigned one (qmap2 =
  create_dynamic_map(signed=False)); blocksize 256; absmax1/absmax2 one f32 per block.
- each step: m = dequant(state1) (code[idx] * absmax[block], f32), v likewise; g f32;
  m = m*b1 + (1-b1)*g and v = v*b2 + (1-b2)*g*g (torch add/addcmul with alpha,
  vectorised: may be fused multiply-adds, so the script mirrors the same torch ops);
  c1 = 1 - b1**t, c2 = sqrt(1 - b2**t) (double); denom = sqrt(v)/c2 + eps; if wd > 0:
  p *= 1 - lr*wd; p += (-lr/c1) * m / denom (addcdiv); then m and v are re-quantized.
- the CPU quantizer (0.50.2's native cquantize_blockwise_cpu_fp32) is NOT exact
  nearest-code: absmax = max |x| over the block (0 -> all codes 0); inv = 1/absmax
  (f32); normed = clamp(x * inv, -1, 1); bin = (uint16)((normed + 1) * 0.5 * 65535 +
  0.5) (f32 arithmetic, truncation); code index = lut[bin], where lut[i] = number of
  midpoints 0.5*(code[j] + code[j+1]) (f32) that are < -1 + 2*i/65535 (f32).  Near a
  midpoint this picks the farther code, and codes closer together than a bin (the
  unsigned map is dense near 0) cannot all be reached: against an exact nearest search
  16..65 of the 4100 state1 codes and 7..382 of the state2 codes differ per step
  (adamw.json "codes_where_exact_nearest_differs"), so the C side needs the table.  The maps are not modified (older
  bitsandbytes wrote code[0] = -1.0 into them; 0.50.2 does not: checked).
- stored: bnb8/qmap1, bnb8/qmap2 (the maps); the script re-implements the update (same
  torch ops) and the quantizer (numpy) and checks every recorded code, absmax and
  param (adamw.json "numpy_reimplementation_vs_bnb": all zero).
- bnb8 32-bit fallback (numel < 4096): c1 = 1 - b1**t, c2 = sqrt(1 - b2**t),
  step_size = -lr*c2/c1, update = m / (sqrt(v) + eps*c2), p += step_size*update
  (mathematically torch's AdamW, rounded differently).
Tensors: bnb8/param0, bnb8/grad<k>, bnb8/param<k+1>, bnb8/state1_<k+1>,
bnb8/state2_<k+1> (uint8), bnb8/absmax1_<k+1>, bnb8/absmax2_<k+1> (f32); and
bnb8_small/param<k+1>, exp_avg<k+1>, exp_avg_sq<k+1>.

----------------------------------------------------------------------------------
trl_loop.*: one TRL SFTTrainer run
----------------------------------------------------------------------------------
Model: tests/fixtures/models/llama (f32, attn_implementation "eager"), PEFT LoRA r 4,
alpha 8, target_modules "all-linear" (q/k/v/o/gate/up/down of both layers, not
lm_head), lora_dropout 0, passed to SFTTrainer as peft_config; after the trainer is
built (before train(), i.e. before the optimizer exists) every lora_A / lora_B is
overwritten in place with randn * 0.05 from torch.Generator seed 4242, in sorted
PEFT save-key order (B non-zero).  trl_loop_init.safetensors holds those values.

Dataset: 18 pre-tokenized rows {"input_ids": [...]}, ids in [3, 255], lengths
5, 12, 20, 7, 16, 9, 18, 6, 14, 11, 19, 8, 15, 10, 17, 13, 20, 6 (so every micro-batch
is padded).  TRL sees the input_ids
column, skips tokenization and EOS handling, builds labels = input_ids (no masks),
truncates to max_length 64 (no-op) and drops nothing.  The processing class is an
in-memory 256-token WordLevel tokenizer (<pad> 0, <s> 1, </s> 2) so the collator's
pad id is inside the model's vocabulary (the qwen2 fixture tokenizer's ids exceed
256); the pad id affects no number (pad keys are masked, pad labels are -100).

SFTConfig: per_device_train_batch_size 4, gradient_accumulation_steps 2,
learning_rate 1e-3, lr_scheduler_type linear, warmup_steps 2, max_steps 12,
logging_steps 1, seed 42, packing False, max_length 64, bf16/fp16 False,
gradient_checkpointing False, weight_decay 0, max_grad_norm 1.0, use_cpu True,
report_to none, save_strategy no, optim default (= adamw_torch_fused: torch AdamW
fused=True, betas 0.9/0.999, eps 1e-8).

Sequential order: transformers 4.57.6 has no "don't shuffle" argument;
Trainer._get_train_sampler returns RandomSampler (or LengthGroupedSampler).  The
script subclasses SFTTrainer and overrides _get_train_sampler to return
SequentialSampler(train_dataset); every epoch then sees rows 0..17 in order.

Windows: 18 rows / batch 4 = 5 micro-batches per epoch (rows 0-3, 4-7, 8-11,
12-15, 16-17); updates per epoch = ceil(5 / 2) = 3: windows [mb0, mb1], [mb2, mb3],
[mb4] (the last window is the single remaining micro-batch); 12 steps = 4 epochs.
epoch (state.epoch, logged unrounded) = e + (micro-batch index in epoch + 1) / 5:
0.4, 0.8, 1.0, 1.4, ...

What each step records (steps[i], global_step i+1):
- micro_batches: per micro-batch, rows (dataset indices, matched by content), the
  padded batch length, n_labels (labels != -100, unshifted), n_targets (after the
  causal shift = n_labels - rows), nll_sum (the script's own check: plain forward,
  f32 log_softmax, sum of the targets' NLL, summed in double), loss (the f32 value
  compute_loss returned, as a double; asserted = nll_sum / num_items_in_batch within
  2e-6 relative), mean_token_accuracy and entropy (TRL's per-micro-batch values).
- num_items_in_batch: what Trainer passed to compute_loss = sum over the window's
  micro-batches of (labels != -100) BEFORE the causal shift (transformers 4.57.6
  _get_num_items_in_batch counts the collated labels; the collator sets -100 only
  on padding), so it counts every real token, including each row's first token,
  which is never a target.  It is NOT the number of targets.
- loss per micro-batch (TRL 1.16 compute_loss, fused LM head): sum over the
  micro-batch's targets of -log p(label) (f32 logits, labels shifted left by one) /
  num_items_in_batch of the whole window; Trainer does not divide by GA again
  (model_accepts_loss_kwargs is True and num_items_in_batch is set).  The window's
  gradient is therefore the gradient of (target NLL summed over the window) / num_items.
- loss_unrounded: tr_loss.item() captured inside _maybe_log_save_evaluate just before
  it is reset: the f32 sum of the window's micro-batch losses (tr_loss = tr_loss +
  loss.detach(), f32 adds in micro-batch order), divided by the optimizer steps since
  the last log (1 here).  loss_logged: Trainer's logged value = round(that, 4).
- grad_norm: the logged value = accelerator.clip_grad_norm_(model.parameters(), 1.0)
  return = total 2-norm of all LoRA grads BEFORE clipping (f32); clipped:
  grad_norm > max_grad_norm (then every grad is scaled by max_grad_norm / (grad_norm +
  1e-6), clamped to 1).  With max_grad_norm 1.0 no step clips (norms 0.41..0.91), hence
  the trl_loop_clip run (max_grad_norm 0.6: steps 3, 6, 9, 12 clip, the others are at
  most 0.501, well below).
- learning_rate: the lr the step used (read after optimizer.step, before
  scheduler.step).  Linear warmup 2: 0.0, 5e-4, 1e-3, then linear decay to 0 at 12.
  The first step runs with lr 0: parameters unchanged, Adam moments updated.
- epoch, and TRL's metrics as logged: mean_token_accuracy and entropy = the plain
  mean of the per-micro-batch values since the last log (NOT token-weighted);
  per micro-batch: accuracy = (#targets whose label is the argmax, ties going to
  the lowest index: label logit >= max and > every logit before it) / #targets, entropy = mean over targets
  of -sum p log p; num_tokens = cumulative sum of attention_mask over all
  micro-batches seen so far (real tokens incl. the first of each row).
At the end: train_loss (train() metrics: sum of the unrounded f32 window losses /
global_step) and the final adapter.

----------------------------------------------------------------------------------
trl_smooth / trl_full / trl_plateau / trl_8bit: more SFTTrainer runs (section 4)
----------------------------------------------------------------------------------
Common to all four (sft_run): the trl_loop model, tokenizer, 18 rows, SequentialSampler
override, batch 4, GA 2, logging_steps 1, seed 42, max_grad_norm 1.0, weight_decay 0
unless said, optim adamw_torch_fused unless said; with PEFT the same fixed initial
adapter as trl_loop (asserted equal to trl_loop_init.safetensors).  Per step (steps[i]):
micro_batches (rows, batch_shape, input_ids_numel, n_labels, n_targets, nll_sum, loss =
the f32 value compute_loss returned), num_items_in_batch, loss_unrounded (tr_loss in
_maybe_log_save_evaluate, asserted == f32 sum of the window's micro-batch losses, so
nothing divides by GA), loss_logged, grad_norm (pre-clip), clipped, learning_rate (the lr
the step used), flos (this step's share of total_flos).  The final adapter (PEFT save
keys) or model is in <name>.safetensors.

total_flos (every run; "flos" in the json): Trainer adds, for every TRAINING micro-batch
(after its training_step), float(6 * input_ids.numel() * N) to current_flos and moves it
to state.total_flos at each log (store_flos); evaluation batches are not counted.
input_ids.numel() is the PADDED size (rows x padded length; e.g. trl_loop's first window
4x20 + 4x18 = 80 + 72).  N = model.num_parameters(exclude_embeddings=True); with PEFT
the call reaches (PeftModel -> LoraModel __getattr__) the base LlamaForCausalLM, whose
parameters include the injected lora_A/lora_B, so N counts the LoRA weights; only
weights of nn.Embedding modules (model.embed_tokens.weight, 16384) are excluded; lm_head
(16384) is counted.  Here N = 90432 without LoRA (2 x 36992 layers + 64 final norm +
16384 lm_head) and 98624 with it (+ 8192 LoRA).  All values are integers < 2^53 (exact
in double).  trl_loop's 795303936 = 6 * 98624 * 1344 (1344 padded tokens in its 20
micro-batches).  The json lists N, its parts and every micro-batch's numel.

trl_smooth (label_smoothing_factor 0.1, max_steps 6, lr 1e-3, linear warmup 2):
- TRL 1.16 compute_loss with label_smoother set (loss_type nll) computes
  LabelSmoother(0.1)(model(**inputs without labels), labels, shift_labels=True)
  (transformers 4.57.6: LabelSmoother has no num_items_in_batch parameter; TRL passes
  it only for transformers >= 5.15).  Per micro-batch, f32:
      logits = logits[:, :-1]; labels = labels[:, 1:]; lp = -log_softmax(logits)
      mask = labels == -100; n = mask.numel() - mask.sum()  (THIS micro-batch's targets)
      nll = sum over targets of lp[label]           / n
      smooth = sum over targets of sum_v lp[v] (f32 sum) / (n * V)      V = 256
      loss = (1 - 0.1) * nll + 0.1 * smooth
  num_items_in_batch is ignored (asserted: the same formula divided by it is far off).
- Trainer.training_step divides by GA only if model_accepts_loss_kwargs is False or
  num_items_in_batch is None; here model_accepts_loss_kwargs is True and
  num_items_in_batch is set (it is still computed), so NO division: the window's
  gradient is that of the SUM of its micro-batch means, and loss_unrounded is that
  sum (about 11.2 for two-micro-batch windows, 5.5 for single ones).
- each micro-batch records nll_sum and smooth_sum (double, from the f32 logits) and
  loss_float64_check; the f32 loss matches it within 2e-6 relative (asserted).
- lrs 0, 5e-4, 1e-3, 7.5e-4, 5e-4, 2.5e-4; no step clips.

trl_full (peft_config None, lr 1e-4, weight_decay 0.01, linear warmup 2, max_steps 4):
- the loaded model equals tests/fixtures/models/llama/model.safetensors (asserted, all
  keys).  config.tie_word_embeddings is False: lm_head.weight and embed_tokens.weight
  are separate tensors, both trained and saved (trl_full.safetensors = the whole
  state dict after step 4, transformers names, f32).
- param groups (Trainer.create_optimizer): [names in get_decay_parameter_names and
  requires_grad] with weight_decay 0.01, [the rest] with 0.0.  get_decay_parameter_names
  drops parameters of nn.LayerNorm modules (LlamaRMSNorm is not one) and names matching
  (re.search) bias | layernorm | rmsnorm | (^|.)norm($|.) | _norm($|.).  Decay (16):
  embed_tokens, every q/k/v/o/gate/up/down weight, lm_head.  No decay (5):
  layers.{0,1}.input_layernorm, layers.{0,1}.post_attention_layernorm, model.norm.
- torch AdamW fused, decoupled: p *= 1 - lr*0.01 for the decay group (nothing at lr 0).
- loss as trl_loop (NLL sum / num_items_in_batch, no GA division); grad_norm over ALL
  parameters; every step clips (norms 2.15, 2.07, 4.29, 2.16 > 1.0).
- lrs 0, 5e-5, 1e-4, 5e-5.

trl_plateau (lr 1e-3, lr_scheduler_type reduce_lr_on_plateau, lr_scheduler_kwargs
{factor 0.5, patience 0}, warmup_steps 0, max_steps 8, eval_strategy steps, eval_steps
2, per_device_eval_batch_size 4):
- eval set: 6 rows, torch.Generator seed 778, randint(3, 256), lengths 9, 14, 6, 17,
  11, 8 (json eval_rows); SequentialSampler, batches rows 0-3 and 4-5.
- metric: TrainingArguments sets metric_for_best_model = "loss" (greater_is_better
  False) for this scheduler; Trainer steps the scheduler ONLY in _evaluate, right after
  the evaluation that follows optimizer step N (N = 2, 4, 6, 8; after step N's log),
  with metrics["eval_loss"].  Never after optimizer steps.  The new lr applies from step
  N+1; the evaluation after the last step still steps it.
- the first lr is the configured 1e-3 (no warmup).  Logged learning_rate =
  optimizer.param_groups[0]["lr"] read after the optimizer step, before any evaluation.
- eval loss per batch: model.eval(), TRL compute_loss with num_items_in_batch None =
  target NLL sum / #targets of that batch; eval_loss = numpy f32 mean of each batch
  loss repeated batch-size times (4 and 2) (asserted bit-exact).
- ReduceLROnPlateau (mode min, rel threshold 1e-4, cooldown 0, min_lr 0, eps 1e-8):
  better iff metric < best * (1 - 1e-4) (best starts at inf); else num_bad += 1; if
  num_bad > patience (0): lr = max(lr * 0.5, 0) (skipped if the change < 1e-8), num_bad
  = 0.  Eval losses here rise slightly (5.6205888, 5.6207099, 5.6207390, 5.6207738):
  evals at 4, 6, 8 each halve the lr.  lrs used: 1e-3 x4, 5e-4 x2, 2.5e-4 x2 (final
  scheduler lr 1.25e-4).  evals[] records lr before/after each scheduler step, best,
  num_bad_epochs and the batch losses.

trl_8bit (optim adamw_bnb_8bit, max_steps 6, lr 1e-3, linear warmup 2):
- Trainer maps it to bitsandbytes.optim.AdamW(groups, lr, betas (0.9, 0.999), eps 1e-8,
  optim_bits=8, is_paged=False); each group's weight_decay (0.0 here) overrides the
  class default 0.01.  Trainer also registers nn.Embedding weights for 32-bit state
  (irrelevant: frozen).  Every LoRA tensor has < min_8bit_size (4096) elements
  (largest 512), so every state1/state2 is f32 and the step is the CPU 32-bit kernel
  (_optimizer_update_32bit_cpu), per element, f32, t = the tensor's 1-based step:
      m = m*b1 + (1-b1)*g            (mul_, add_ with alpha)
      v = v*b2 + (1-b2)*g*g          (mul_, addcmul_)
      c1 = 1 - b1**t; c2 = sqrt(1 - b2**t); step_size = -lr*c2/c1   (double)
      if wd > 0: p *= 1 - lr*wd       (not here)
      p += step_size * (m / (sqrt(v) + eps*c2))   (add_ with alpha; gnorm_scale 1,
                                                   max_unorm 0 -> update scale 1)
  Re-implemented with those torch ops before every optimizer step (grads after
  clipping) and compared after it: 0 elements differ in p, m, v at every step.  Step 1
  has lr 0 (p unchanged, m, v and t advance).  Loss and grad_norm as trl_loop.

----------------------------------------------------------------------------------
neftune.json / neftune.safetensors (model level, no trainer)
----------------------------------------------------------------------------------
The llama fixture (f32, eager) + PEFT LoRA r 4, alpha 8, all-linear, dropout 0, via
get_peft_model; every lora_A/lora_B = randn * 0.05 from torch.Generator seed 4242 in
sorted PEFT save-key order (identical to trl_loop_init; stored as init/<key>).  Batch:
2 rows (Generator seed 999, randint(3, 256), lengths 9 and 6), right-padded with 0 to
T = 9, attention_mask, labels = ids with -100 on padding.
NEFTune attached as Trainer._activate_neftune does: on
peft_model.base_model.model.get_input_embeddings() (embed_tokens) set
neftune_noise_alpha = 5.0 and register transformers.trainer_utils.
neftune_post_forward_hook.  The hook, only when module.training:
    dims = torch.tensor(T * D)       (int64; T = padded length of the batch, D = 64)
    mag_norm = alpha / torch.sqrt(dims)          (f32: 5/sqrt(576) = 0.2083333432674408)
    out = emb + zeros_like(emb).uniform_(-mag_norm, mag_norm)
on every position of every row, padding included.  model.train(), torch.manual_seed(4343),
forward with labels, loss.backward().  Capture hooks before/after the NEFTune hook give
embeddings_before / embeddings_after; noise is the exact draw (regenerated from the same
seed; before + noise == after bit for bit); u = noise / mag_norm (f32, |u| <= 1) and
u * mag_norm == noise for every element here.  loss = model(..., labels).loss = mean
over the 13 shifted targets (train 5.760344505310059); logits_train; grad/<key> for
every lora_A/lora_B.  Then model.eval() (hook still attached): no noise (checked:
after == before), logits_eval, eval loss 5.545002460479736 (NEFTune is training-only).
"""
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import save_safetensors  # noqa: E402

import bitsandbytes  # noqa: E402
import datasets  # noqa: E402
import peft  # noqa: E402
import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "trainer")
MODEL_DIR = os.path.join(ROOT, "tests", "fixtures", "models", "llama")
WRITER = "tools/make_trainer_fixtures.py"

warnings.filterwarnings("ignore")
transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()
datasets.disable_progress_bars()


def versions():
    return {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
            "peft": peft.__version__, "bitsandbytes": bitsandbytes.__version__, "datasets": datasets.__version__,
            "safetensors": safetensors.__version__, "tokenizers": tokenizers.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def dumps(obj, level=0):
    """JSON, dicts one key a line, lists of scalars on one line; no NaN."""
    pad = " " * (level + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [pad + json.dumps(k) + ": " + dumps(v, level + 1) for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * level + "}"
    if isinstance(obj, (list, tuple)):
        if all(not isinstance(x, (dict, list, tuple)) for x in obj):
            return json.dumps(list(obj), allow_nan=False, ensure_ascii=False)
        items = [pad + dumps(v, level + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + " " * level + "]"
    return json.dumps(obj, allow_nan=False, ensure_ascii=False)


def write_json(name, doc):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        f.write(dumps(doc) + "\n")


def write_st(name, tensors, extra_meta=None):
    meta = {"versions": json.dumps(versions(), sort_keys=True), "writer": WRITER}
    meta.update(extra_meta or {})
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    path = os.path.join(OUT, name)
    save_safetensors(tensors, path, meta)
    back = load_file(path)
    assert set(back) == set(tensors)
    for k, v in tensors.items():
        assert torch.equal(back[k], v), k


def f32list(t):
    return [float(x) for x in t.detach().to(torch.float32).reshape(-1).tolist()]


# ---------------------------------------------------------------------------
# 1. schedules
# ---------------------------------------------------------------------------

LR = 1e-3
WARMUP, TOTAL = 5, 30
PLATEAU_METRICS = [1.0, 0.9, 0.85, 0.85, 0.851, 0.84996, 0.86, 0.85, 0.852, 0.853, 0.85, 0.851, 0.8502, 0.86,
                   0.85, 0.7, 0.7, 0.69994, 0.71, 0.72, 0.70, 0.70, 0.70, 0.71, 0.70, 0.70, 0.70, 0.70, 0.70, 0.5]

SCHEDULES = [
    ("linear", None),
    ("cosine", None),
    ("cosine_with_restarts", {"num_cycles": 2}),
    ("polynomial", {"power": 2.0, "lr_end": 1e-7}),
    ("constant", None),
    ("constant_with_warmup", None),
    ("inverse_sqrt", {"timescale": 7}),
    ("inverse_sqrt", None),
    ("cosine_with_min_lr", {"min_lr_rate": 0.1}),
    ("cosine_with_min_lr", {"min_lr": 1e-6}),
    ("cosine_warmup_with_min_lr", {"min_lr_rate": 0.1}),
    ("warmup_stable_decay", {"num_stable_steps": 10, "num_decay_steps": 12, "decay_type": "cosine",
                             "min_lr_ratio": 0.05}),
    ("warmup_stable_decay", {"num_stable_steps": 10, "num_decay_steps": 12, "decay_type": "linear",
                             "min_lr_ratio": 0.05}),
    ("warmup_stable_decay", {"num_stable_steps": 10, "num_decay_steps": 12, "warmup_type": "1-sqrt",
                             "decay_type": "1-sqrt", "min_lr_ratio": 0.05}),
    ("reduce_lr_on_plateau", None),
    ("reduce_lr_on_plateau", {"patience": 2, "factor": 0.5}),
]


def one_schedule(name, kwargs):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=LR)
    sch = transformers.get_scheduler(name, opt, num_warmup_steps=WARMUP, num_training_steps=TOTAL,
                                     scheduler_specific_kwargs=dict(kwargs) if kwargs else None)
    entry = {"name": name, "kwargs": kwargs or {}, "warmup": WARMUP, "total": TOTAL, "lr": LR}
    lrs, after = [], []
    for i in range(TOTAL):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if name == "reduce_lr_on_plateau":
            sch.step(PLATEAU_METRICS[i])
            after.append(opt.param_groups[0]["lr"])
        else:
            sch.step()
    assert all(isinstance(x, float) for x in lrs)
    entry["lrs"] = lrs
    if name == "reduce_lr_on_plateau":
        d = {k: getattr(sch, k) for k in ("mode", "factor", "patience", "threshold", "threshold_mode",
                                          "cooldown", "eps")}
        d["min_lrs"] = list(sch.min_lrs)
        entry["effective"] = d
        entry["metrics"] = PLATEAU_METRICS
        entry["lrs_after"] = after
    return entry


def schedules():
    entries = [one_schedule(n, k) for n, k in SCHEDULES]
    ratio = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in (0.1, 0.03, 0.05, 0.07, 0.3):
            for n in (30, 12, 100, 7, 300):
                a = transformers.TrainingArguments(output_dir=tmp, warmup_ratio=r, use_cpu=True, report_to="none")
                ratio.append({"warmup_ratio": r, "num_training_steps": n, "warmup_steps": a.get_warmup_steps(n),
                              "product": n * r})
        a = transformers.TrainingArguments(output_dir=tmp, warmup_ratio=0.1, warmup_steps=2, use_cpu=True,
                                           report_to="none")
        both = {"warmup_ratio": 0.1, "warmup_steps": 2, "num_training_steps": 30,
                "result": a.get_warmup_steps(30), "rule": "warmup_steps > 0 wins over warmup_ratio"}
    doc = {
        "writer": WRITER, "versions": versions(),
        "notes": ("lrs[i] = optimizer.param_groups[0]['lr'] before the i-th scheduler.step(): the lr optimizer "
                  "step i+1 used. get_scheduler(name, AdamW(lr=1e-3), num_warmup_steps=5, num_training_steps=30, "
                  "scheduler_specific_kwargs=kwargs). reduce_lr_on_plateau: step(metrics[i]); lrs_after[i] = lr "
                  "after it. See tools/make_trainer_fixtures.py."),
        "warmup_steps_from_ratio": {"rule": "math.ceil(num_training_steps * warmup_ratio) in double, "
                                            "when warmup_steps == 0", "cases": ratio, "both_given": both},
        "schedules": entries,
    }
    write_json("schedules.json", doc)
    return doc


# ---------------------------------------------------------------------------
# 2. AdamW
# ---------------------------------------------------------------------------

N_SMALL, N_BIG, N_STEPS = 37, 4100, 5


def grads_for(n, seed):
    g = torch.Generator().manual_seed(seed)
    gs = [torch.randn(n, generator=g) for _ in range(N_STEPS)]
    for k, t in enumerate(gs):
        t[5] = 0.0
        t[7] = 1e4 * (1 if k % 2 == 0 else -1)
        t[8] = 1e-7
        t[9] = -3e-12
        t[20] = 0.5
        if k == 2:
            t[11] = 0.0
    return gs


def run_torch_adamw(p0, gs, fused, **kw):
    p = torch.nn.Parameter(p0.clone())
    opt = torch.optim.AdamW([p], fused=fused, foreach=None if fused else False, **kw)
    out = []
    for g in gs:
        p.grad = g.clone()
        opt.step()
        st = opt.state[p]
        out.append((p.detach().clone(), st["exp_avg"].clone(), st["exp_avg_sq"].clone()))
    return out


def adamw_reference(p0, gs, lr, betas, eps, wd):
    """The single-tensor AdamW arithmetic in torch f32 ops, step by step."""
    p, m, v = p0.clone(), torch.zeros_like(p0), torch.zeros_like(p0)
    b1, b2 = betas
    out = []
    for t, g in enumerate(gs, 1):
        p.mul_(1 - lr * wd)
        m.lerp_(g, 1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        denom = (v.sqrt() / math.sqrt(bc2)).add_(eps)
        p.addcdiv_(m, denom, value=-(lr / bc1))
        out.append((p.clone(), m.clone(), v.clone()))
    return out


def build_lut(code):
    """bitsandbytes' CPU quantizer table: 65536 bins over [-1, 1] -> nearest code by midpoints (f32)."""
    code = code.astype(np.float32)
    mid = (np.float32(0.5) * (code[:-1] + code[1:])).astype(np.float32)
    i = np.arange(65536).astype(np.float32)
    val = (np.float32(-1.0) + (np.float32(2.0) * i) / np.float32(65535)).astype(np.float32)
    return np.searchsorted(mid, val, side="left").astype(np.uint8)  # number of midpoints < val


def quantize_np(x, code):
    """bitsandbytes 0.50.2 CPU 8-bit blockwise quantization, blocksize 256 (LUT, not exact nearest)."""
    lut = build_lut(code)
    x = x.astype(np.float32)
    n = x.size
    nb = -(-n // 256)
    absmax = np.zeros(nb, np.float32)
    idx = np.zeros(n, np.uint8)
    for b in range(nb):
        blk = x[b * 256:(b + 1) * 256]
        am = np.float32(np.max(np.abs(blk)))
        absmax[b] = am
        if am == 0:
            continue
        inv = np.float32(1.0) / am
        v = np.clip((blk * inv).astype(np.float32), np.float32(-1), np.float32(1))
        t = (((v + np.float32(1)) * np.float32(0.5)).astype(np.float32) * np.float32(65535)
             + np.float32(0.5)).astype(np.float32)
        idx[b * 256:(b + 1) * 256] = lut[t.astype(np.uint16)]
    return idx, absmax


def nearest_np(x, code):
    """Exact nearest code (ties to the lower index), for comparison only."""
    x = x.astype(np.float32)
    idx = np.zeros(x.size, np.int64)
    for b in range(-(-x.size // 256)):
        blk = x[b * 256:(b + 1) * 256]
        am = np.float32(np.max(np.abs(blk)))
        if am == 0:
            continue
        v = (blk * (np.float32(1.0) / am)).astype(np.float32)
        idx[b * 256:(b + 1) * 256] = np.argmin(np.abs(v[:, None] - code[None, :].astype(np.float32)), axis=1)
    return idx.astype(np.uint8)


def bnb8_reference(p0, gs, lr, betas, eps, wd, q1, q2):
    """The CPU 8-bit step: the f32 update with the same torch ops as bitsandbytes (so the same
    roundings, including the vectorised add-with-alpha), the quantizer re-implemented in numpy."""
    p = p0.clone()
    n = p.numel()
    nb = -(-n // 256)
    s1, s2 = np.zeros(n, np.uint8), np.zeros(n, np.uint8)
    a1, a2 = np.zeros(nb, np.float32), np.zeros(nb, np.float32)
    rep = np.repeat(np.arange(nb), 256)[:n]
    b1, b2 = betas
    out = []
    for t, g in enumerate(gs, 1):
        m = torch.from_numpy((q1[s1] * a1[rep]).astype(np.float32))
        v = torch.from_numpy((q2[s2] * a2[rep]).astype(np.float32))
        g = g.float()
        m.mul_(b1).add_(g, alpha=1.0 - b1)
        v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
        c1 = 1.0 - b1 ** t
        c2 = math.sqrt(1.0 - b2 ** t)
        denom = (v.sqrt() / c2).add_(eps)
        if wd > 0.0:
            p.mul_(1.0 - lr * wd)
        p.addcdiv_(m, denom, value=-lr / c1)
        s1, a1 = quantize_np(m.numpy(), q1)
        s2, a2 = quantize_np(v.numpy(), q2)
        out.append((p.numpy().copy(), s1.copy(), s2.copy(), a1.copy(), a2.copy(),
                    int((nearest_np(m.numpy(), q1) != s1).sum()), int((nearest_np(v.numpy(), q2) != s2).sum())))
    return out


def adamw():
    tensors, cases = {}, []
    g0 = torch.Generator().manual_seed(3030)
    p_small = torch.randn(N_SMALL, generator=g0)
    gs_small = grads_for(N_SMALL, 3031)
    configs = [
        ("wd0.01", dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)),
        ("wd0", dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)),
        ("b0.8_0.95_eps1e-6", dict(lr=1e-3, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.01)),
    ]
    for cname, kw in configs:
        ref = adamw_reference(p_small, gs_small, kw["lr"], kw["betas"], kw["eps"], kw["weight_decay"])
        results = {}
        for fused in (False, True):
            name = ("fused/" if fused else "torch/") + cname
            res = run_torch_adamw(p_small, gs_small, fused, **kw)
            results[fused] = res
            tensors[f"{name}/param0"] = p_small.clone()
            for k, g in enumerate(gs_small):
                tensors[f"{name}/grad{k}"] = g.clone()
            for k, (p, m, v) in enumerate(res, 1):
                tensors[f"{name}/param{k}"] = p
                tensors[f"{name}/exp_avg{k}"] = m
                tensors[f"{name}/exp_avg_sq{k}"] = v
        ref_diff = [int((a[0] != b[0]).sum()) for a, b in zip(ref, results[False])]
        diffs = [{"step": k, "param_elements_differing": int((a[0] != b[0]).sum()),
                  "max_abs_diff": float((a[0] - b[0]).abs().max())}
                 for k, (a, b) in enumerate(zip(results[False], results[True]), 1)]
        cases.append({"case": cname, "kwargs": {**kw, "betas": list(kw["betas"])}, "numel": N_SMALL,
                      "prefixes": ["torch/" + cname, "fused/" + cname],
                      "torch": "torch.optim.AdamW(foreach=False): single-tensor loop",
                      "fused": "torch.optim.AdamW(fused=True): CPU fused kernel (Trainer's adamw_torch_fused)",
                      "single_tensor_vs_written_formula_elements_differing": ref_diff,
                      "fused_vs_single_tensor": diffs})

    # bitsandbytes AdamW8bit
    bnb_doc = {}
    kw8 = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    g1 = torch.Generator().manual_seed(3032)
    p_big = torch.randn(N_BIG, generator=g1)
    gs_big = grads_for(N_BIG, 3033)
    try:
        import bitsandbytes.functional as bnbF
        q1_init = bnbF.create_dynamic_map(signed=True).clone()
        q2_init = bnbF.create_dynamic_map(signed=False).clone()
        p = torch.nn.Parameter(p_big.clone())
        opt = bitsandbytes.optim.AdamW8bit([p], **kw8)
        tensors["bnb8/param0"] = p_big.clone()
        for k, g in enumerate(gs_big):
            tensors[f"bnb8/grad{k}"] = g.clone()
            p.grad = g.clone()
            opt.step()
            st = opt.state[p]
            assert st["state1"].dtype == torch.uint8 and st["state2"].dtype == torch.uint8
            tensors[f"bnb8/param{k + 1}"] = p.detach().clone()
            tensors[f"bnb8/state1_{k + 1}"] = st["state1"].clone()
            tensors[f"bnb8/state2_{k + 1}"] = st["state2"].clone()
            tensors[f"bnb8/absmax1_{k + 1}"] = st["absmax1"].clone()
            tensors[f"bnb8/absmax2_{k + 1}"] = st["absmax2"].clone()
            assert torch.equal(st["qmap1"], q1_init) and torch.equal(st["qmap2"], q2_init)
        tensors["bnb8/qmap1"] = q1_init
        tensors["bnb8/qmap2"] = q2_init
        q1m, q2m = q1_init, q2_init
        # re-implementation check
        ref = bnb8_reference(p_big, gs_big, kw8["lr"], kw8["betas"], kw8["eps"], kw8["weight_decay"],
                             q1m.numpy(), q2m.numpy())
        check, nearest_diff = [], []
        for k, (rp, r1, r2, ra1, ra2, n1, n2) in enumerate(ref, 1):
            c = {"step": k,
                 "param_differing": int((rp != tensors[f"bnb8/param{k}"].numpy()).sum()),
                 "state1_differing": int((r1 != tensors[f"bnb8/state1_{k}"].numpy()).sum()),
                 "state2_differing": int((r2 != tensors[f"bnb8/state2_{k}"].numpy()).sum()),
                 "absmax1_differing": int((ra1 != tensors[f"bnb8/absmax1_{k}"].numpy()).sum()),
                 "absmax2_differing": int((ra2 != tensors[f"bnb8/absmax2_{k}"].numpy()).sum())}
            check.append(c)
            nearest_diff.append({"step": k, "state1": n1, "state2": n2})
        # the 32-bit fallback of the same optimizer for a small tensor
        ps = torch.nn.Parameter(p_small.clone())
        opt_s = bitsandbytes.optim.AdamW8bit([ps], **kw8)
        for k, g in enumerate(gs_small):
            ps.grad = g.clone()
            opt_s.step()
            st = opt_s.state[ps]
            assert st["state1"].dtype == torch.float32
            tensors[f"bnb8_small/param{k + 1}"] = ps.detach().clone()
            tensors[f"bnb8_small/exp_avg{k + 1}"] = st["state1"].clone()
            tensors[f"bnb8_small/exp_avg_sq{k + 1}"] = st["state2"].clone()
        tensors["bnb8_small/param0"] = p_small.clone()
        small_vs_torch = [int((tensors[f"bnb8_small/param{k}"] != tensors[f"torch/wd0.01/param{k}"]).sum())
                          for k in range(1, N_STEPS + 1)]
        bnb_doc = {
            "works_on_cpu": True,
            "optimizer": "bitsandbytes.optim.AdamW8bit(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)",
            "kernel": "bitsandbytes/backends/cpu/ops.py _optimizer_update_8bit_blockwise_cpu (dequantize, f32 "
                      "Adam update, requantize with the native cquantize_blockwise_cpu_fp32)",
            "numel": N_BIG, "blocksize": 256, "blocks": -(-N_BIG // 256), "min_8bit_size": 4096,
            "qmap1": "create_dynamic_map(signed=True)", "qmap2": "create_dynamic_map(signed=False)",
            "qmaps_modified_by_optimizer": False,
            "quantizer": "LUT: absmax = max|x| per block (0 -> codes 0); normed = clamp(x * (1/absmax), -1, 1); "
                         "bin = (uint16)((normed + 1) * 0.5 * 65535 + 0.5); code = lut[bin], lut[i] = #midpoints "
                         "0.5*(c[j]+c[j+1]) < -1 + 2*i/65535 (all f32). Not exact nearest near midpoints.",
            "numpy_reimplementation_vs_bnb": check,
            "codes_where_exact_nearest_differs": nearest_diff,
            "small": {"prefix": "bnb8_small", "numel": N_SMALL, "state": "float32 (numel < min_8bit_size)",
                      "kernel": "_optimizer_update_32bit_cpu",
                      "param_elements_differing_from_torch_wd0.01_per_step": small_vs_torch},
            "initial_values": "bnb8/param0 randn from torch.Generator seed 3032; grads seed 3033 (same special "
                              "elements as the small cases)",
        }
        for c in check:
            assert not any(v for k, v in c.items() if k != "step"), c  # exact reproduction
    except (RuntimeError, NotImplementedError) as e:  # pragma: no cover - reported, not fatal
        bnb_doc = {"works_on_cpu": False, "error": repr(e)}

    write_st("adamw.safetensors", tensors)
    doc = {
        "writer": WRITER, "versions": versions(),
        "notes": ("Tensors <prefix>/param0, <prefix>/grad<k> (k=0..4), after step k+1: <prefix>/param<k+1>, "
                  "<prefix>/exp_avg<k+1>, <prefix>/exp_avg_sq<k+1>; all f32. See the header of "
                  "tools/make_trainer_fixtures.py."),
        "initial_values": "param0 randn from torch.Generator seed 3030; grads randn seed 3031, then element 5 = 0 "
                          "(every step), element 11 = 0 (grad2), element 7 = +1e4/-1e4 alternating, element 8 = "
                          "1e-7, element 9 = -3e-12, element 20 = 0.5",
        "cases": cases,
        "bnb8": bnb_doc,
        "tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                    for k, v in sorted(tensors.items())},
    }
    write_json("adamw.json", doc)
    return doc


# ---------------------------------------------------------------------------
# 3. TRL SFTTrainer loop
# ---------------------------------------------------------------------------

N_ROWS = 18
LENGTHS = [5, 12, 20, 7, 16, 9, 18, 6, 14, 11, 19, 8, 15, 10, 17, 13, 20, 6]
LORA_SEED = 4242


def make_rows():
    g = torch.Generator().manual_seed(777)
    return [torch.randint(3, 256, (n,), generator=g).tolist() for n in LENGTHS]


def make_tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"t{i}": i for i in range(3, 256)})
    tk = Tokenizer(WordLevel(vocab, unk_token="<pad>"))
    tk.pre_tokenizer = WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>",
                                                eos_token="</s>", unk_token="<pad>")


def lora_state(model):
    return {k: v.detach().clone() for k, v in peft.get_peft_model_state_dict(model).items()}


def trl_loop(max_grad_norm=1.0, out_name="trl_loop", all_steps=True):
    from torch.utils.data import SequentialSampler
    from trl import SFTConfig, SFTTrainer

    rows = make_rows()
    ds = datasets.Dataset.from_dict({"input_ids": rows})
    tok = make_tokenizer()
    model = transformers.AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32,
                                                              attn_implementation="eager")
    lcfg = peft.LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules="all-linear",
                           lora_dropout=0.0)
    micro, windows, step_logs, snaps = [], [], [], {}
    row_of = {tuple(r): i for i, r in enumerate(rows)}
    assert len(row_of) == N_ROWS

    class Trainer(SFTTrainer):
        def _get_train_sampler(self, train_dataset=None):
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            batch_keys = sorted(inputs.keys())  # before TRL adds use_cache
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            ids, mask, labels = inputs["input_ids"], inputs["attention_mask"], inputs["labels"]
            rws = [row_of[tuple(ids[b][mask[b].bool()].tolist())] for b in range(ids.shape[0])]
            nl = int((labels != -100).sum())
            nt = int((labels[:, 1:] != -100).sum())
            m = self._metrics["train"]
            with torch.no_grad():  # independent check: plain forward, f32 logits, shifted CE sum
                logits = model(input_ids=ids, attention_mask=mask).logits.float()
                tgt = labels[:, 1:]
                lp = torch.log_softmax(logits[:, :-1], dim=-1)
                sel = tgt != -100
                nll = -lp[sel].gather(-1, tgt[sel].unsqueeze(-1)).squeeze(-1)
                nll_sum = float(nll.double().sum())
            ref = nll_sum / int(num_items_in_batch)
            assert abs(float(loss.detach()) - ref) <= 2e-6 * abs(ref), (float(loss.detach()), ref)
            micro.append({"nll_sum": nll_sum, "rows": rws, "batch_shape": list(ids.shape), "keys": batch_keys,
                          "n_labels": nl, "n_targets": nt,
                          "num_items_in_batch": None if num_items_in_batch is None else int(num_items_in_batch),
                          "loss": float(loss.detach()), "loss_dtype": str(loss.dtype).replace("torch.", ""),
                          "mean_token_accuracy": m["mean_token_accuracy"][-1], "entropy": m["entropy"][-1],
                          "num_tokens_cumulative": m["num_tokens"][-1]})
            return loss

        def _maybe_log_save_evaluate(self, tr_loss, grad_norm, *args, **kwargs):
            if self.control.should_log and self.state.global_step > self._globalstep_last_logged:
                windows.append({"tr_loss": float(tr_loss.item()), "tr_loss_dtype": str(tr_loss.dtype),
                                "steps_since_last_log": self.state.global_step - self._globalstep_last_logged,
                                "grad_norm_tensor": float(grad_norm) if grad_norm is not None else None})
            return super()._maybe_log_save_evaluate(tr_loss, grad_norm, *args, **kwargs)

    class Rec(transformers.TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if "loss" in logs:
                step_logs.append({"global_step": state.global_step, "state_epoch": state.epoch, "logs": dict(logs)})

        def on_step_end(self, args, state, control, model=None, **kw):
            snaps[state.global_step] = lora_state(model)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = SFTConfig(output_dir=tmp, per_device_train_batch_size=4, gradient_accumulation_steps=2,
                        learning_rate=1e-3, lr_scheduler_type="linear", warmup_steps=2, max_steps=12,
                        logging_steps=1, seed=42, packing=False, max_length=64, bf16=False, fp16=False,
                        gradient_checkpointing=False, report_to="none", weight_decay=0.0,
                        max_grad_norm=max_grad_norm,
                        use_cpu=True, save_strategy="no", disable_tqdm=True, dataloader_num_workers=0)
        tr = Trainer(model=model, args=cfg, train_dataset=ds, processing_class=tok, peft_config=lcfg,
                     callbacks=[Rec()])
        tr.remove_callback(transformers.trainer_callback.PrinterCallback)
        pm = tr.model
        # fixed initial adapter
        params = dict(pm.named_parameters())
        keymap = {}
        for name in params:
            if ".lora_A." in name or ".lora_B." in name:
                key = name.replace(".default.weight", ".weight")
                keymap[key] = name
        saved_keys = sorted(lora_state(pm))
        assert sorted(keymap) == saved_keys, (sorted(keymap)[:3], saved_keys[:3])
        g = torch.Generator().manual_seed(LORA_SEED)
        with torch.no_grad():
            for key in saved_keys:
                p = params[keymap[key]]
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        init = lora_state(pm)
        prepared = [list(r) for r in tr.train_dataset["input_ids"]]
        prepared_labels = [list(r) for r in tr.train_dataset["labels"]]
        assert prepared == rows and prepared_labels == rows
        trainable = sorted(n for n, p in pm.named_parameters() if p.requires_grad)
        assert [n.replace(".default.weight", ".weight") for n in trainable] == saved_keys
        out = tr.train()
        final = lora_state(pm)
        opt = tr.optimizer
        optim_info = {"class": type(opt.optimizer if hasattr(opt, "optimizer") else opt).__name__,
                      "defaults": {k: (list(v) if isinstance(v, tuple) else v)
                                   for k, v in (opt.optimizer if hasattr(opt, "optimizer") else opt).defaults.items()
                                   if isinstance(v, (int, float, bool, tuple, str)) or v is None},
                      "param_groups": [{"n_params": len(pg["params"]), "weight_decay": pg["weight_decay"]}
                                       for pg in opt.param_groups]}
        log_history = [dict(h) for h in tr.state.log_history]
        model_accepts = tr.model_accepts_loss_kwargs
        args_used = {k: getattr(tr.args, k) for k in (
            "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate", "lr_scheduler_type",
            "warmup_steps", "warmup_ratio", "max_steps", "num_train_epochs", "logging_steps", "seed", "packing",
            "max_length", "bf16", "fp16", "gradient_checkpointing", "weight_decay", "max_grad_norm", "use_cpu",
            "optim", "adam_beta1", "adam_beta2", "adam_epsilon", "logging_nan_inf_filter",
            "average_tokens_across_devices", "padding_free", "completion_only_loss", "assistant_only_loss",
            "loss_type", "truncation_mode", "dataloader_drop_last")}
        args_used = {k: (v.value if hasattr(v, "value") else v) for k, v in args_used.items()}

    # assemble per-step records
    assert len(step_logs) == 12 and len(windows) == 12
    steps, i_mb = [], 0
    sizes = []
    for s, (lg, w) in enumerate(zip(step_logs, windows), 1):
        assert lg["global_step"] == s
        n_in_window = 2 if (s % 3) != 0 else 1
        mbs = micro[i_mb:i_mb + n_in_window]
        i_mb += n_in_window
        nib = {m["num_items_in_batch"] for m in mbs}
        assert len(nib) == 1
        nib = nib.pop()
        assert nib == sum(m["n_labels"] for m in mbs)
        L = lg["logs"]
        f32sum = torch.tensor(0.0)
        for m in mbs:
            f32sum = f32sum + torch.tensor(m["loss"], dtype=torch.float32)
        assert float(f32sum) == w["tr_loss"], (float(f32sum), w["tr_loss"])
        assert round(w["tr_loss"] / w["steps_since_last_log"], 4) == L["loss"]
        acc = sum(m["mean_token_accuracy"] for m in mbs) / len(mbs)
        ent = sum(m["entropy"] for m in mbs) / len(mbs)
        assert abs(acc - L["mean_token_accuracy"]) < 1e-12 and abs(ent - L["entropy"]) < 1e-12
        sizes.append(len(mbs))
        steps.append({
            "global_step": s,
            "epoch": lg["state_epoch"],
            "micro_batches": [{k: m[k] for k in ("rows", "batch_shape", "n_labels", "n_targets", "nll_sum", "loss",
                                                 "mean_token_accuracy", "entropy")} for m in mbs],
            "num_items_in_batch": nib,
            "n_targets": sum(m["n_targets"] for m in mbs),
            "loss_unrounded": w["tr_loss"] / w["steps_since_last_log"],
            "loss_logged": L["loss"],
            "grad_norm": L["grad_norm"],
            "clipped": L["grad_norm"] > max_grad_norm,
            "learning_rate": L["learning_rate"],
            "mean_token_accuracy": L["mean_token_accuracy"],
            "entropy": L["entropy"],
            "num_tokens": L["num_tokens"],
        })
    assert i_mb == len(micro) == 20
    train_loss = out.metrics["train_loss"]
    tot = 0.0
    for st in steps:
        tot += st["loss_unrounded"]
    assert abs(tot / 12 - train_loss) < 1e-12, (tot / 12, train_loss)

    # adapters
    if all_steps:
        write_st("trl_loop_init.safetensors", init, {"stage": "initial adapter (before training)"})
        st_all = {f"step{s}/{k}": v for s, d in sorted(snaps.items()) for k, v in d.items()}
        write_st(out_name + "_steps.safetensors", st_all, {"stage": "adapter after each optimizer step"})
    else:
        ref = load_file(os.path.join(OUT, "trl_loop_init.safetensors"))
        assert set(ref) == set(init) and all(torch.equal(ref[k], init[k]) for k in init)
    write_st(out_name + ".safetensors", final, {"stage": "final adapter (after 12 optimizer steps)",
                                            "max_grad_norm": repr(max_grad_norm)})
    assert all(torch.equal(snaps[1][k], init[k]) for k in init), "step 1 runs with lr 0"
    assert all(torch.equal(snaps[12][k], final[k]) for k in final)

    keys = {k: list(v.shape) for k, v in sorted(final.items())}
    doc = {
        "writer": WRITER, "versions": versions(),
        "notes": "One trl.SFTTrainer run; see the header comment of tools/make_trainer_fixtures.py for every rule.",
        "model": {"dir": "tests/fixtures/models/llama", "dtype": "float32", "attn_implementation": "eager"},
        "lora": {"r": 4, "lora_alpha": 8, "scaling": 2.0, "lora_dropout": 0.0, "target_modules": "all-linear",
                 "init": "after SFTTrainer construction, every lora_A/lora_B = randn*0.05 from torch.Generator "
                         "seed %d in sorted PEFT save-key order; trl_loop_init.safetensors" % LORA_SEED,
                 "keys": keys},
        "dataset": {"rows": rows, "lengths": LENGTHS, "format": "pre-tokenized {input_ids}; TRL skips tokenization, "
                    "adds no EOS, labels = input_ids", "ids_from": "torch.Generator seed 777, randint(3, 256)"},
        "tokenizer": "in-memory WordLevel, 256 tokens: <pad> 0, <s> 1, </s> 2, t3..t255; pad id 0",
        "collator": {"class": "trl DataCollatorForLanguageModeling", "pad_token_id": 0, "padding_side": "right",
                     "batch_keys": micro[0]["keys"],
                     "labels": "input_ids, -100 on padding; attention_mask 1 on real tokens"},
        "sampler": "SequentialSampler via an override of Trainer._get_train_sampler (transformers 4.57.6 has no "
                   "shuffle switch)",
        "config": args_used,
        "optimizer": optim_info,
        "model_accepts_loss_kwargs": model_accepts,
        "epoch_structure": {"micro_batches_per_epoch": 5, "updates_per_epoch": 3,
                            "window_sizes_per_epoch": [2, 2, 1], "epochs": 4, "window_sizes": sizes,
                            "rows_per_micro_batch": [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11],
                                                     [12, 13, 14, 15], [16, 17]]},
        "semantics": {
            "num_items_in_batch": "sum over the window's micro-batches of count(labels != -100) BEFORE the causal "
                                  "shift (includes each row's first token; = real tokens of the window here)",
            "micro_batch_loss": "sum over targets (shifted labels != -100) of -log_softmax(logits)[label], f32, "
                                "divided by num_items_in_batch of the window; not divided by GA again",
            "loss_unrounded": "f32 running sum (in micro-batch order) of the window's micro-batch losses / optimizer "
                              "steps since the last log (1); captured in _maybe_log_save_evaluate",
            "loss_logged": "round(loss_unrounded, 4)",
            "grad_norm": "pre-clip total L2 norm over all trainable (LoRA) grads, f32; when larger than "
                         "max_grad_norm every grad is scaled by max_grad_norm/(norm+1e-6) (torch clip_grad_norm_)",
            "learning_rate": "lr used by this step (linear, warmup 2: step 1 has lr 0)",
            "epoch": "e + (micro-batch index in epoch + 1) / 5",
            "mean_token_accuracy": "mean over the step's micro-batches of (#targets whose label is the unique argmax "
                                   "/ #targets)",
            "entropy": "mean over the step's micro-batches of (mean over targets of the next-token entropy)",
            "num_tokens": "cumulative attention_mask sum over all micro-batches so far",
            "train_loss": "sum of loss_unrounded / global_step",
        },
        "steps": steps,
        "train_loss": train_loss,
        "log_history_last": {k: v for k, v in log_history[-1].items()
                             if k not in ("train_runtime", "train_samples_per_second", "train_steps_per_second")},
        "files": {"trl_loop_init.safetensors": "adapter before training (PEFT save keys)",
                  "trl_loop.safetensors": "adapter after step 12 (PEFT save keys)",
                  "trl_loop_steps.safetensors": "step<N>/<PEFT key>: adapter after optimizer step N (N = 1..12; "
                                                "step1 equals the initial adapter since lr is 0)"},
    }
    if not all_steps:
        doc["files"] = {"trl_loop_init.safetensors": "adapter before training (same as trl_loop)",
                        out_name + ".safetensors": "adapter after step 12 (PEFT save keys)"}
    write_json(out_name + ".json", doc)
    return doc


# ---------------------------------------------------------------------------
# 4. More SFTTrainer runs (trl_smooth, trl_full, trl_plateau, trl_8bit) and NEFTune
# ---------------------------------------------------------------------------

EVAL_LENGTHS = [9, 14, 6, 17, 11, 8]
EVAL_SEED = 778


def make_eval_rows():
    g = torch.Generator().manual_seed(EVAL_SEED)
    return [torch.randint(3, 256, (n,), generator=g).tolist() for n in EVAL_LENGTHS]


def nll_parts(logits, labels):
    """Float64 recomputation from f32 logits: (target NLL sum, target sum over the vocabulary of -log p,
    number of targets, vocabulary size), causal shift, labels -100 ignored."""
    lg = logits.detach().double()[:, :-1]
    tgt = labels[:, 1:]
    sel = tgt != -100
    lp = torch.log_softmax(lg, dim=-1)[sel]
    nll = -lp.gather(-1, tgt[sel].unsqueeze(-1)).squeeze(-1)
    return float(nll.sum()), float((-lp).sum()), int(sel.sum()), int(lg.shape[-1])


def flos_params(base):
    """What PreTrainedModel.num_parameters(exclude_embeddings=True) counts, itemised."""
    emb = {f"{n}.weight" for n, m in base.named_modules() if isinstance(m, torch.nn.Embedding)}
    parts = {"embedding_excluded": 0, "lora": 0, "lm_head": 0, "other_non_embedding": 0}
    for n, p in base.named_parameters():
        if n in emb:
            parts["embedding_excluded"] += p.numel()
        elif ".lora_" in n:
            parts["lora"] += p.numel()
        elif n.startswith("lm_head."):
            parts["lm_head"] += p.numel()
        else:
            parts["other_non_embedding"] += p.numel()
    return parts, sorted(emb)


def sft_run(name, *, use_peft=True, max_steps, lr=1e-3, scheduler="linear", warmup=2, weight_decay=0.0,
            optim=None, label_smoothing=0.0, eval_rows=None, eval_steps=None, sched_kwargs=None,
            max_grad_norm=1.0, bnb_check=False):
    """One SFTTrainer run on the trl_loop data/sampler/adapter, recorded step by step."""
    from torch.utils.data import SequentialSampler
    from trl import SFTConfig, SFTTrainer

    rows = make_rows()
    ds = datasets.Dataset.from_dict({"input_ids": rows})
    eds = datasets.Dataset.from_dict({"input_ids": eval_rows}) if eval_rows is not None else None
    tok = make_tokenizer()
    model = transformers.AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32,
                                                              attn_implementation="eager")
    lcfg = peft.LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules="all-linear",
                           lora_dropout=0.0) if use_peft else None
    row_of = {tuple(r): ("train", i) for i, r in enumerate(rows)}
    for i, r in enumerate(eval_rows or []):
        row_of[tuple(r)] = ("eval", i)
    micro, windows, step_logs, eval_logs, evals, opt_checks = [], [], [], [], [], []

    class Trainer(SFTTrainer):
        def _get_train_sampler(self, train_dataset=None):
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            mode = "train" if model.training else "eval"
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            ids, mask, labels = inputs["input_ids"], inputs["attention_mask"], inputs["labels"]
            rws = [row_of[tuple(ids[b][mask[b].bool()].tolist())][1] for b in range(ids.shape[0])]
            with torch.no_grad():
                logits = model(input_ids=ids, attention_mask=mask).logits.float()
            nll_sum, smooth_sum, n_t, V = nll_parts(logits, labels)
            n_l = int((labels != -100).sum())
            lv = float(loss.detach())
            rec = {"mode": mode, "global_step": self.state.global_step + (1 if mode == "train" else 0),
                   "rows": rws, "batch_shape": list(ids.shape), "input_ids_numel": int(ids.numel()),
                   "n_labels": n_l, "n_targets": n_t,
                   "num_items_in_batch": None if num_items_in_batch is None else int(num_items_in_batch),
                   "nll_sum": nll_sum, "loss": lv}
            if mode == "train" and label_smoothing:
                # transformers 4.57.6 LabelSmoother(shift_labels=True): per micro-batch mean over its own targets
                ref = (1 - label_smoothing) * nll_sum / n_t + label_smoothing * smooth_sum / (n_t * V)
                alt = (1 - label_smoothing) * nll_sum / int(num_items_in_batch) + \
                    label_smoothing * smooth_sum / (int(num_items_in_batch) * V)
                assert abs(lv - ref) <= 2e-6 * abs(ref), (lv, ref)
                assert abs(lv - alt) > 1e-3 * abs(ref), "num_items_in_batch must not be the normaliser"
                rec["smooth_sum"] = smooth_sum
                rec["loss_float64_check"] = ref
            elif mode == "train":
                ref = nll_sum / int(num_items_in_batch)
                assert abs(lv - ref) <= 2e-6 * abs(ref), (lv, ref)
            else:  # evaluation: TRL divides by this batch's targets (num_items_in_batch is None)
                assert num_items_in_batch is None
                ref = nll_sum / n_t
                assert abs(lv - ref) <= 2e-6 * abs(ref), (lv, ref)
            micro.append(rec)
            return loss

        def _maybe_log_save_evaluate(self, tr_loss, grad_norm, *args, **kwargs):
            if self.control.should_log and self.state.global_step > self._globalstep_last_logged:
                windows.append({"global_step": self.state.global_step, "tr_loss": float(tr_loss.item()),
                                "steps_since_last_log": self.state.global_step - self._globalstep_last_logged,
                                "flos_before_store": float(self.current_flos)})
            return super()._maybe_log_save_evaluate(tr_loss, grad_norm, *args, **kwargs)

        def _evaluate(self, trial, ignore_keys_for_eval, skip_scheduler=False):
            sch = self.lr_scheduler
            lr_before = self.optimizer.param_groups[0]["lr"]
            metrics = super()._evaluate(trial, ignore_keys_for_eval, skip_scheduler)
            e = {"global_step": self.state.global_step, "eval_loss": metrics["eval_loss"],
                 "lr_before_scheduler_step": lr_before, "lr_after_scheduler_step": self.optimizer.param_groups[0]["lr"]}
            if isinstance(sch, torch.optim.lr_scheduler.ReduceLROnPlateau):
                e.update({"plateau_best": sch.best, "plateau_num_bad_epochs": sch.num_bad_epochs,
                          "plateau_last_epoch": sch.last_epoch})
            evals.append(e)
            return metrics

    class Rec(transformers.TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if "loss" in logs:
                step_logs.append({"global_step": state.global_step, "state_epoch": state.epoch, "logs": dict(logs)})
            if "eval_loss" in logs:
                eval_logs.append({"global_step": state.global_step, "logs": dict(logs)})

    class BnbCheck(transformers.TrainerCallback):
        """Before each optimizer step: the documented bnb 32-bit update in the same torch ops; after: compare."""
        def __init__(self):
            self.pending = None

        def on_pre_optimizer_step(self, args, state, control, **kw):
            opt = tr.optimizer.optimizer
            exp = []
            for grp in opt.param_groups:
                b1, b2 = grp["betas"]
                for p in grp["params"]:
                    st = opt.state.get(p, {})
                    t = int(st.get("step", 0)) + 1
                    m = st["state1"].clone() if "state1" in st else torch.zeros_like(p)
                    v = st["state2"].clone() if "state2" in st else torch.zeros_like(p)
                    q = p.detach().clone()
                    g = p.grad.float()
                    m.mul_(b1).add_(g, alpha=1.0 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
                    c1 = 1.0 - b1 ** t
                    c2 = math.sqrt(1.0 - b2 ** t)
                    if grp["weight_decay"] > 0.0:
                        q.mul_(1.0 - grp["lr"] * grp["weight_decay"])
                    q.add_(m / (v.sqrt() + grp["eps"] * c2), alpha=(-grp["lr"] * c2 / c1) * 1.0)
                    exp.append((p, q, m, v))
            self.pending = exp

        def on_optimizer_step(self, args, state, control, **kw):
            opt = tr.optimizer.optimizer
            bad = 0
            for p, q, m, v in self.pending:
                st = opt.state[p]
                assert st["state1"].dtype == torch.float32 and st["state1"].shape == p.shape
                bad += int((p.detach() != q).sum()) + int((st["state1"] != m).sum()) + int((st["state2"] != v).sum())
            opt_checks.append({"global_step": state.global_step + 1, "elements_differing": bad})

    cbs = [Rec()] + ([BnbCheck()] if bnb_check else [])
    extra = {}
    if optim is not None:
        extra["optim"] = optim
    if eval_rows is not None:
        extra.update(eval_strategy="steps", eval_steps=eval_steps, per_device_eval_batch_size=4)
    if sched_kwargs:
        extra["lr_scheduler_kwargs"] = dict(sched_kwargs)
    if label_smoothing:
        extra["label_smoothing_factor"] = label_smoothing
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SFTConfig(output_dir=tmp, per_device_train_batch_size=4, gradient_accumulation_steps=2,
                        learning_rate=lr, lr_scheduler_type=scheduler, warmup_steps=warmup, max_steps=max_steps,
                        logging_steps=1, seed=42, packing=False, max_length=64, bf16=False, fp16=False,
                        gradient_checkpointing=False, report_to="none", weight_decay=weight_decay,
                        max_grad_norm=max_grad_norm, use_cpu=True, save_strategy="no", disable_tqdm=True,
                        dataloader_num_workers=0, **extra)
        tr = Trainer(model=model, args=cfg, train_dataset=ds, eval_dataset=eds, processing_class=tok,
                     peft_config=lcfg, callbacks=cbs)
        tr.remove_callback(transformers.trainer_callback.PrinterCallback)
        pm = tr.model
        base = pm.get_base_model() if use_peft else pm
        init = None
        if use_peft:
            params = dict(pm.named_parameters())
            keymap = {n.replace(".default.weight", ".weight"): n for n in params
                      if ".lora_A." in n or ".lora_B." in n}
            saved_keys = sorted(lora_state(pm))
            assert sorted(keymap) == saved_keys
            g = torch.Generator().manual_seed(LORA_SEED)
            with torch.no_grad():
                for key in saved_keys:
                    p = params[keymap[key]]
                    p.copy_(torch.randn(p.shape, generator=g) * 0.05)
            init = lora_state(pm)
            ref_path = os.path.join(OUT, "trl_loop_init.safetensors")
            if os.path.exists(ref_path):
                ref = load_file(ref_path)
                assert set(ref) == set(init) and all(torch.equal(ref[k], init[k]) for k in init)
        else:
            ref = load_file(os.path.join(MODEL_DIR, "model.safetensors"))
            sd = pm.state_dict()
            assert set(ref) == set(sd), (sorted(set(ref) ^ set(sd)))
            assert all(torch.equal(ref[k], sd[k]) for k in ref), "loaded model != model.safetensors"
        assert [list(r) for r in tr.train_dataset["input_ids"]] == rows
        decay_names = tr.get_decay_parameter_names(pm)
        n_flos_params = pm.num_parameters(exclude_embeddings=True)
        parts, emb_names = flos_params(base)
        assert n_flos_params == base.num_parameters(exclude_embeddings=True) == \
            parts["lora"] + parts["lm_head"] + parts["other_non_embedding"]
        probe = {"input_ids": torch.zeros(3, 7, dtype=torch.long)}
        assert tr.floating_point_ops(probe) == 6 * 21 * n_flos_params
        tie = {"config_tie_word_embeddings": bool(base.config.tie_word_embeddings),
               "lm_head_is_embed_tokens": base.lm_head.weight is base.model.embed_tokens.weight,
               "same_storage": base.lm_head.weight.data_ptr() == base.model.embed_tokens.weight.data_ptr()}
        out = tr.train()
        opt = tr.optimizer.optimizer if hasattr(tr.optimizer, "optimizer") else tr.optimizer
        name_of = {id(p): n for n, p in pm.named_parameters()}
        groups = []
        for pg in opt.param_groups:
            names = [name_of[id(p)] for p in pg["params"]]
            groups.append({"weight_decay": pg["weight_decay"], "n_params": len(names),
                           "numel": sum(p.numel() for p in pg["params"]),
                           "names": names if not use_peft else None})
        defaults = {k: (list(v) if isinstance(v, tuple) else v) for k, v in opt.defaults.items()
                    if isinstance(v, (int, float, bool, tuple, str)) or v is None}
        optim_info = {"class": type(opt).__module__ + "." + type(opt).__name__, "defaults": defaults,
                      "param_groups": groups}
        if bnb_check:
            sts = [opt.state[p] for pg in opt.param_groups for p in pg["params"]]
            optim_info["state_dtypes"] = sorted({str(s["state1"].dtype) for s in sts} |
                                                {str(s["state2"].dtype) for s in sts})
            optim_info["max_param_numel"] = max(p.numel() for pg in opt.param_groups for p in pg["params"])
            optim_info["state_steps"] = sorted({int(s["step"]) for s in sts})
            optim_info["per_step_reimplementation_elements_differing"] = [c["elements_differing"]
                                                                          for c in opt_checks]
            assert all(c["elements_differing"] == 0 for c in opt_checks), opt_checks
            optim_info["bnb_config"] = {k: v for k, v in opt.args.__dict__.items()
                                        if isinstance(v, (int, float, bool, str)) or v is None}
        final = lora_state(pm) if use_peft else {k: v.detach().clone() for k, v in pm.state_dict().items()}
        total_flos = tr.state.total_flos
        log_last = {k: v for k, v in tr.state.log_history[-1].items()
                    if k not in ("train_runtime", "train_samples_per_second", "train_steps_per_second")}
        args_used = {k: getattr(tr.args, k) for k in (
            "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate", "lr_scheduler_type",
            "lr_scheduler_kwargs", "warmup_steps", "max_steps", "logging_steps", "seed", "weight_decay",
            "max_grad_norm", "optim", "adam_beta1", "adam_beta2", "adam_epsilon", "label_smoothing_factor",
            "eval_strategy", "eval_steps", "per_device_eval_batch_size", "metric_for_best_model",
            "greater_is_better", "neftune_noise_alpha", "average_tokens_across_devices", "loss_type")}
        args_used = {k: (v.value if hasattr(v, "value") else v) for k, v in args_used.items()}
        accepts = tr.model_accepts_loss_kwargs

    train_mb = [m for m in micro if m["mode"] == "train"]
    assert len(step_logs) == max_steps and len(windows) == max_steps
    steps, flos_sum = [], 0.0
    for s, (lg, w) in enumerate(zip(step_logs, windows), 1):
        assert lg["global_step"] == s == w["global_step"]
        mbs = [m for m in train_mb if m["global_step"] == s]
        nib = {m["num_items_in_batch"] for m in mbs}
        assert len(nib) == 1
        nib = nib.pop()
        assert nib == sum(m["n_labels"] for m in mbs)
        f32sum = torch.tensor(0.0)
        for m in mbs:
            f32sum = f32sum + torch.tensor(m["loss"], dtype=torch.float32)
        assert float(f32sum) == w["tr_loss"], (float(f32sum), w["tr_loss"])  # no division by GA anywhere
        assert w["steps_since_last_log"] == 1 and round(w["tr_loss"], 4) == lg["logs"]["loss"]
        step_flos = sum(float(6 * m["input_ids_numel"] * n_flos_params) for m in mbs)
        assert w["flos_before_store"] == step_flos
        flos_sum += step_flos
        keep = ("rows", "batch_shape", "input_ids_numel", "n_labels", "n_targets", "nll_sum", "smooth_sum",
                "loss_float64_check", "loss")
        L = lg["logs"]
        steps.append({"global_step": s, "epoch": lg["state_epoch"],
                      "micro_batches": [{k: m[k] for k in keep if k in m} for m in mbs],
                      "num_items_in_batch": nib, "loss_unrounded": w["tr_loss"], "loss_logged": L["loss"],
                      "grad_norm": L["grad_norm"], "clipped": L["grad_norm"] > max_grad_norm,
                      "learning_rate": L["learning_rate"], "flos": step_flos})
    assert total_flos == flos_sum, (total_flos, flos_sum)
    assert abs(sum(s["loss_unrounded"] for s in steps) / max_steps - out.metrics["train_loss"]) < 1e-12
    ev = []
    if eval_rows is not None:
        eval_mb = [m for m in micro if m["mode"] == "eval"]
        assert len(evals) == len(eval_logs) == max_steps // eval_steps
        per = len(eval_mb) // len(evals)
        for i, (e, lgs) in enumerate(zip(evals, eval_logs)):
            assert e["global_step"] == lgs["global_step"] and e["eval_loss"] == lgs["logs"]["eval_loss"]
            bs = eval_mb[i * per:(i + 1) * per]
            arr = np.concatenate([np.full(b["batch_shape"][0], b["loss"], np.float32) for b in bs])
            assert float(arr.mean()) == e["eval_loss"], (float(arr.mean()), e["eval_loss"])
            ev.append({**e, "batches": [{k: b[k] for k in ("rows", "batch_shape", "n_targets", "nll_sum", "loss")}
                                        for b in bs]})
    info = {"total_flos": total_flos,
            "flos_formula": "total_flos = sum over every TRAINING micro-batch of float(6 * input_ids.numel() * "
                            "N), input_ids padded (batch x padded length); N = num_parameters(exclude_embeddings="
                            "True) of the transformers model (with PEFT: the base LlamaForCausalLM WITH the "
                            "injected LoRA A/B, i.e. LoRA counted); only nn.Embedding weights are excluded, "
                            "lm_head counted; evaluation batches are not counted",
            "num_parameters_exclude_embeddings": n_flos_params, "num_parameters_parts": parts,
            "embedding_names_excluded": emb_names,
            "input_ids_numel_per_micro_batch": [m["input_ids_numel"] for m in train_mb]}
    return {"steps": steps, "evals": ev, "init": init, "final": final, "optimizer": optim_info,
            "decay_names": decay_names, "tie": tie, "flos": info, "config": args_used,
            "model_accepts_loss_kwargs": accepts, "train_loss": out.metrics["train_loss"],
            "log_history_last": log_last, "rows": rows}


def run_doc(r, notes, semantics, files, use_peft=True):
    doc = {"writer": WRITER, "versions": versions(), "notes": notes,
           "model": {"dir": "tests/fixtures/models/llama", "dtype": "float32", "attn_implementation": "eager"}}
    if use_peft:
        doc["lora"] = {"r": 4, "lora_alpha": 8, "scaling": 2.0, "lora_dropout": 0.0, "target_modules": "all-linear",
                       "init": "trl_loop_init.safetensors (same fixed initial adapter as trl_loop)"}
    doc.update({"dataset": "the 18 trl_loop rows (trl_loop.json dataset.rows), SequentialSampler, batch 4, GA 2",
                "config": r["config"], "optimizer": r["optimizer"],
                "model_accepts_loss_kwargs": r["model_accepts_loss_kwargs"], "semantics": semantics,
                "flos": r["flos"], "steps": r["steps"], "train_loss": r["train_loss"],
                "log_history_last": r["log_history_last"], "files": files})
    return doc


def trl_smooth():
    eps = 0.1
    r = sft_run("trl_smooth", max_steps=6, label_smoothing=eps)
    sem = {
        "micro_batch_loss": "TRL 1.16 with label_smoothing_factor > 0 (loss_type nll) calls "
                            "transformers.trainer_pt_utils.LabelSmoother(epsilon=0.1)(model(**inputs w/o labels), "
                            "labels, shift_labels=True) (transformers < 5.15: no num_items_in_batch argument). "
                            "Per micro-batch, f32: lp = -log_softmax(logits[:, :-1]); n = #shifted labels != -100 "
                            "(THIS micro-batch's targets); nll = sum_targets lp[label] / n; smooth = "
                            "sum_targets sum_v lp[v] / (n * V), V = 256; loss = (1 - 0.1) * nll + 0.1 * smooth. "
                            "num_items_in_batch is ignored",
        "gradient_accumulation": "NOT divided by GA: Trainer.training_step divides by GA only when "
                                 "model_accepts_loss_kwargs is False or num_items_in_batch is None; here it is True "
                                 "and set. The window gradient is the gradient of the SUM of its micro-batch means "
                                 "(2 terms for full windows, 1 for the single-micro-batch window)",
        "loss_unrounded": "f32 sum of the window's micro-batch losses (tr_loss), / 1 (logging_steps 1)",
        "grad_norm": "pre-clip total L2 norm of the LoRA grads, clip at 1.0",
        "learning_rate": "lr used by the step: linear warmup 2, total 6: 0, 5e-4, 1e-3, 7.5e-4, 5e-4, 2.5e-4",
        "checks": "each micro-batch loss equals the float64 recomputation (loss_float64_check, from the f32 logits) "
                  "within 2e-6 relative and differs from the same formula normalised by num_items_in_batch; "
                  "loss_unrounded == f32 sum of the micro-batch losses (exact)",
    }
    doc = run_doc(r, "trl_loop with label_smoothing_factor 0.1, max_steps 6. See the header of "
                     "tools/make_trainer_fixtures.py.", sem,
                  {"trl_smooth.safetensors": "adapter after step 6 (PEFT save keys); initial = trl_loop_init"})
    doc["label_smoothing_factor"] = eps
    write_st("trl_smooth.safetensors", r["final"], {"stage": "final adapter (after 6 optimizer steps)"})
    write_json("trl_smooth.json", doc)
    return doc


def trl_full():
    r = sft_run("trl_full", use_peft=False, max_steps=4, lr=1e-4, weight_decay=0.01)
    no_decay = [g["names"] for g in r["optimizer"]["param_groups"] if g["weight_decay"] == 0.0][0]
    decay = [g["names"] for g in r["optimizer"]["param_groups"] if g["weight_decay"] == 0.01][0]
    assert sorted(decay) == sorted(r["decay_names"])
    sem = {
        "weight_decay_groups": "Trainer.create_optimizer: group 0 = trainable params whose name is in "
                               "get_decay_parameter_names (weight_decay 0.01), group 1 = the rest (0.0). "
                               "get_decay_parameter_names excludes parameters of nn.LayerNorm modules (none here: "
                               "LlamaRMSNorm is not one) and every name matching (regex search) bias | layernorm | "
                               "rmsnorm | (^|.)norm($|.) | _norm($|.): input_layernorm, post_attention_layernorm "
                               "and model.norm get 0; embed_tokens, every Linear weight and lm_head get 0.01",
        "micro_batch_loss": "as trl_loop: target NLL sum / num_items_in_batch of the window, no GA division",
        "grad_norm": "pre-clip total L2 norm over ALL parameters' grads (clip 1.0)",
        "learning_rate": "linear warmup 2, total 4, lr 1e-4: 0, 5e-5, 1e-4, 5e-5",
        "optimizer": "adamw_torch_fused (torch AdamW fused=True, betas 0.9/0.999, eps 1e-8), decoupled decay "
                     "p *= 1 - lr*wd; with lr 0 at step 1 nothing moves",
        "tie_word_embeddings": "config False; lm_head.weight and embed_tokens.weight are separate tensors, both "
                               "trained, both saved",
    }
    doc = run_doc(r, "Full fine-tuning (no PEFT) of tests/fixtures/models/llama with SFTTrainer, 4 steps. The "
                     "initial weights are tests/fixtures/models/llama/model.safetensors (asserted). See the header "
                     "of tools/make_trainer_fixtures.py.", sem,
                  {"trl_full.safetensors": "full state dict after step 4 (transformers names, f32)"},
                  use_peft=False)
    doc["weight_decay"] = {"decay_0.01": sorted(decay), "no_decay": sorted(no_decay)}
    doc["tie_word_embeddings"] = r["tie"]
    write_st("trl_full.safetensors", r["final"], {"stage": "full model after 4 optimizer steps"})
    write_json("trl_full.json", doc)
    return doc


def trl_plateau():
    erows = make_eval_rows()
    r = sft_run("trl_plateau", max_steps=8, scheduler="reduce_lr_on_plateau", warmup=0, eval_rows=erows,
                eval_steps=2, sched_kwargs={"factor": 0.5, "patience": 0})
    sem = {
        "scheduler": "get_scheduler('reduce_lr_on_plateau') = torch ReduceLROnPlateau(optimizer, factor=0.5, "
                     "patience=0) (mode min, threshold 1e-4 rel, cooldown 0, min_lr 0, eps 1e-8); warmup ignored",
        "stepping": "never stepped after an optimizer step; only in Trainer._evaluate, right after the evaluation "
                    "that follows optimizer step N (N % eval_steps == 0, after that step's log), with "
                    "metrics['eval_' + metric_for_best_model] = eval_loss (metric_for_best_model defaults to "
                    "'loss' for this scheduler). The new lr applies from step N+1; the evaluation after the last "
                    "step still steps it (no effect on training)",
        "first_lr": "steps 1..eval_steps use the configured lr 1e-3 (no warmup)",
        "learning_rate": "the lr the step used (Trainer reads optimizer.param_groups[0]['lr'] for plateau)",
        "eval": "rows eval_rows (6, batch 4: rows 0-3 then 4-5, SequentialSampler, model.eval()); per batch loss = "
                "target NLL sum / #targets of THAT batch (num_items_in_batch None in evaluation); eval_loss = "
                "numpy f32 mean of each batch loss repeated batch-size times (weights 4 and 2)",
        "plateau_rule": "better if metric < best * (1 - 1e-4); else num_bad += 1; num_bad > patience (0) -> "
                        "lr = max(lr * 0.5, 0) (skipped if the change < 1e-8), num_bad = 0",
    }
    doc = run_doc(r, "trl_loop setup with an eval set and reduce_lr_on_plateau, 8 steps, evaluation every 2. See "
                     "the header of tools/make_trainer_fixtures.py.", sem,
                  {"trl_plateau.safetensors": "adapter after step 8 (PEFT save keys); initial = trl_loop_init"})
    doc["eval_rows"] = erows
    doc["eval_rows_from"] = "torch.Generator seed %d, randint(3, 256), lengths %s" % (EVAL_SEED, EVAL_LENGTHS)
    doc["evals"] = r["evals"]
    write_st("trl_plateau.safetensors", r["final"], {"stage": "final adapter (after 8 optimizer steps)"})
    write_json("trl_plateau.json", doc)
    return doc


def trl_8bit():
    r = sft_run("trl_8bit", max_steps=6, optim="adamw_bnb_8bit", bnb_check=True)
    sem = {
        "optimizer": "optim 'adamw_bnb_8bit' -> bitsandbytes.optim.AdamW(params, lr, betas=(0.9, 0.999), eps=1e-8, "
                     "optim_bits=8, is_paged=False) (min_8bit_size 4096, max_unorm 0, skip_zeros False, "
                     "gnorm_scale 1.0); the weight decay of each param group (0.0 here) overrides the optimizer "
                     "default 0.01. Every LoRA tensor has < 4096 elements (largest 512), so every state is f32 "
                     "and the step is bitsandbytes.backends.cpu.ops._optimizer_update_32bit_cpu",
        "update": "per element, f32, t = the parameter's step count (1-based): m = m*b1 + (1-b1)*g (mul_, add_ "
                  "alpha); v = v*b2 + (1-b2)*g*g (mul_, addcmul_); c1 = 1 - b1**t, c2 = sqrt(1 - b2**t) (double); "
                  "step_size = -lr*c2/c1 (double); (wd 0 here: no decay); p += step_size * (m / (sqrt(v) + eps*c2)) "
                  "(add_ with alpha). Re-implemented with the same torch ops before every optimizer step and "
                  "compared after it: 0 elements differ (optimizer.per_step_reimplementation_elements_differing)",
        "first_step": "lr 0 (linear warmup 2): p unchanged, m and v updated, t = 1",
        "loss_and_grad_norm": "as trl_loop (num_items_in_batch normalisation, no GA division, pre-clip norm)",
    }
    doc = run_doc(r, "trl_loop with optim adamw_bnb_8bit, 6 steps. See the header of "
                     "tools/make_trainer_fixtures.py.", sem,
                  {"trl_8bit.safetensors": "adapter after step 6 (PEFT save keys); initial = trl_loop_init"})
    write_st("trl_8bit.safetensors", r["final"], {"stage": "final adapter (after 6 optimizer steps)"})
    write_json("trl_8bit.json", doc)
    return doc


NEFT_LENGTHS = [9, 6]
NEFT_SEED = 4343     # torch.manual_seed before the training forward (the hook draws from the global CPU RNG)
NEFT_ALPHA = 5.0


def neftune():
    from transformers.trainer_utils import neftune_post_forward_hook
    g = torch.Generator().manual_seed(999)
    rows = [torch.randint(3, 256, (n,), generator=g).tolist() for n in NEFT_LENGTHS]
    T = max(NEFT_LENGTHS)
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, :len(r)] = torch.tensor(r)
        mask[b, :len(r)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    model = transformers.AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32,
                                                              attn_implementation="eager")
    lcfg = peft.LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0)
    pm = peft.get_peft_model(model, lcfg)
    params = dict(pm.named_parameters())
    keymap = {n.replace(".default.weight", ".weight"): n for n in params if ".lora_A." in n or ".lora_B." in n}
    keys = sorted(lora_state(pm))
    assert sorted(keymap) == keys
    gen = torch.Generator().manual_seed(LORA_SEED)
    with torch.no_grad():
        for k in keys:
            params[keymap[k]].copy_(torch.randn(params[keymap[k]].shape, generator=gen) * 0.05)
    init = lora_state(pm)
    ref_path = os.path.join(OUT, "trl_loop_init.safetensors")
    same_as_trl_loop_init = None
    if os.path.exists(ref_path):
        ref = load_file(ref_path)
        same_as_trl_loop_init = set(ref) == set(init) and all(torch.equal(ref[k], init[k]) for k in init)
        assert same_as_trl_loop_init

    # attach as Trainer._activate_neftune does; capture hooks around it
    emb = pm.base_model.model.get_input_embeddings()
    cap = {}
    h0 = emb.register_forward_hook(lambda m, i, o: cap.__setitem__("before", o.detach().clone()))
    emb.neftune_noise_alpha = NEFT_ALPHA
    h1 = emb.register_forward_hook(neftune_post_forward_hook)
    h2 = emb.register_forward_hook(lambda m, i, o: cap.__setitem__("after", o.detach().clone()))

    pm.train()
    assert emb.training
    torch.manual_seed(NEFT_SEED)
    out = pm(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    before, after = cap["before"], cap["after"]
    D = before.shape[-1]
    dims = torch.tensor(before.size(1) * before.size(2))
    mag = NEFT_ALPHA / torch.sqrt(dims)  # exactly the hook's expression: an f32 0-d tensor
    assert mag.dtype == torch.float32
    torch.manual_seed(NEFT_SEED)
    noise = torch.zeros_like(before).uniform_(-mag, mag)  # the same draw the hook made
    assert torch.equal(before + noise, after), "noise reconstruction"
    u = noise / mag
    assert float(u.abs().max()) <= 1.0
    diff = after - before
    un = u * mag  # what a consumer that reads u gets back (f32)
    u_back = {"u_times_mag_norm_elements_differing_from_noise": int((un != noise).sum()),
              "before_plus_u_times_mag_norm_elements_differing_from_after": int((before + un != after).sum()),
              "elements": int(noise.numel())}
    lv = float(out.loss.detach())
    nll_sum, _, n_t, _ = nll_parts(out.logits.float(), labels)
    assert abs(lv - nll_sum / n_t) <= 2e-6 * abs(lv)
    grads = {}
    for k in keys:
        gr = params[keymap[k]].grad
        assert gr is not None
        grads["grad/" + k] = gr.detach().clone()
    train_logits = out.logits.detach().clone()

    pm.eval()
    cap.clear()
    with torch.no_grad():
        out_e = pm(input_ids=ids, attention_mask=mask, labels=labels)
    assert torch.equal(cap["before"], cap["after"]), "no noise in eval mode"
    assert torch.equal(cap["before"], before)
    ev_nll, _, _, _ = nll_parts(out_e.logits.float(), labels)
    assert abs(float(out_e.loss) - ev_nll / n_t) <= 2e-6 * abs(float(out_e.loss))
    for h in (h0, h1, h2):
        h.remove()

    tensors = {"input_ids": ids, "attention_mask": mask, "labels": labels,
               "noise": noise, "u": u, "embeddings_before": before, "embeddings_after": after,
               "logits_train": train_logits, "logits_eval": out_e.logits.detach().clone()}
    tensors.update({"init/" + k: v for k, v in init.items()})
    tensors.update(grads)
    write_st("neftune.safetensors", tensors, {"neftune_noise_alpha": repr(NEFT_ALPHA)})
    doc = {
        "writer": WRITER, "versions": versions(),
        "notes": "One forward+backward of the LoRA model with transformers' NEFTune hook; see the header of "
                 "tools/make_trainer_fixtures.py.",
        "model": {"dir": "tests/fixtures/models/llama", "dtype": "float32", "attn_implementation": "eager"},
        "lora": {"r": 4, "lora_alpha": 8, "scaling": 2.0, "lora_dropout": 0.0, "target_modules": "all-linear",
                 "init": "every lora_A/lora_B = randn*0.05, torch.Generator seed %d, sorted PEFT save-key order "
                         "(identical to trl_loop_init.safetensors: %s); tensors init/<key>" %
                         (LORA_SEED, same_as_trl_loop_init)},
        "batch": {"rows": rows, "lengths": NEFT_LENGTHS, "ids_from": "torch.Generator seed 999, randint(3, 256)",
                  "padded_length": T, "pad_id": 0, "padding_side": "right",
                  "labels": "input_ids, -100 on padding"},
        "neftune": {"alpha": NEFT_ALPHA, "T": T, "D": D, "T_times_D": T * D,
                    "mag_norm": float(mag), "mag_norm_double": NEFT_ALPHA / math.sqrt(T * D),
                    "rule": "hook on get_input_embeddings() (the base model's embed_tokens, via "
                            "base_model.model), only when module.training: dims = torch.tensor(T*D) (int64; T = "
                            "padded length, D = hidden size, whole batch, padding included); mag_norm = alpha / "
                            "torch.sqrt(dims) (f32); out = emb + zeros_like(emb).uniform_(-mag_norm, mag_norm); "
                            "the noise is added to every position including padding",
                    "noise": "tensor noise: the exact f32 draw (before + noise == after bit for bit); u = noise / "
                             "mag_norm (f32, in [-1, 1]); u * mag_norm reproduces noise to within rounding",
                    "max_abs_u": float(u.abs().max()), "u_round_trip": u_back,
                    "max_abs_diff_after_minus_before_vs_noise": float((diff - noise).abs().max())},
        "train": {"mode": "model.train() (lora_dropout 0: no other randomness)", "loss": lv,
                  "loss_rule": "model(..., labels=labels).loss: mean over shifted targets (sum NLL / n_targets), "
                               "n_targets = %d" % n_t, "nll_sum_float64": nll_sum,
                  "grad_keys": "grad/<PEFT save key> for every lora_A/lora_B"},
        "eval": {"mode": "model.eval(): hook present, no noise (module.training False)", "loss": float(out_e.loss),
                 "nll_sum_float64": ev_nll},
        "tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                    for k, v in sorted(tensors.items())},
    }
    write_json("neftune.json", doc)
    return doc


NEW_FIXTURES = {"trl_smooth": trl_smooth, "trl_full": trl_full, "trl_plateau": trl_plateau,
                "trl_8bit": trl_8bit, "neftune": neftune}


def report_run(name, d):
    if name == "neftune":
        print(f"neftune: train loss {d['train']['loss']!r} eval loss {d['eval']['loss']!r} "
              f"mag_norm {d['neftune']['mag_norm']!r}")
        return
    print(f"{name}: total_flos {d['flos']['total_flos']} N {d['flos']['num_parameters_exclude_embeddings']}")
    for st in d["steps"]:
        print(f"  step {st['global_step']} loss {st['loss_unrounded']!r} grad_norm {st['grad_norm']!r} "
              f"lr {st['learning_rate']!r} mb {[m['loss'] for m in st['micro_batches']]}")
    for e in d.get("evals", []):
        print(f"  eval@{e['global_step']} eval_loss {e['eval_loss']!r} lr {e['lr_before_scheduler_step']} -> "
              f"{e['lr_after_scheduler_step']}")


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description="Write tests/fixtures/trainer/.")
    ap.add_argument("--only", metavar="NAME[,NAME...]",
                    help="run only these fixture functions (%s) and write their files into the existing folder, "
                         "deleting nothing" % ", ".join(NEW_FIXTURES))
    opts = ap.parse_args(argv)
    torch.set_num_threads(1)
    if opts.only:
        names = [n for n in opts.only.split(",") if n]
        unknown = [n for n in names if n not in NEW_FIXTURES]
        if unknown:
            ap.error("unknown fixture(s) %s; choose from %s" % (", ".join(unknown), ", ".join(NEW_FIXTURES)))
        os.makedirs(OUT, exist_ok=True)
        for n in names:
            report_run(n, NEW_FIXTURES[n]())
        print("versions:", json.dumps(versions()))
        return 0
    others = {"callbacks.json", "metrics.json", "optimizers.json", "stream.json"}   # written by the other make_*_fixtures.py scripts
    if os.path.isdir(OUT):
        for name in os.listdir(OUT):
            if name not in others:
                path = os.path.join(OUT, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    os.makedirs(OUT, exist_ok=True)
    s = schedules()
    print(f"schedules: {len(s['schedules'])} entries")
    a = adamw()
    print(f"adamw: {len(a['cases'])} torch cases, bnb8 works on cpu: {a['bnb8'].get('works_on_cpu')}")
    if a["bnb8"].get("works_on_cpu"):
        print("  bnb8 numpy re-implementation mismatches:", a["bnb8"]["numpy_reimplementation_vs_bnb"])
    for c in a["cases"]:
        print(f"  {c['case']}: fused vs single-tensor differing elements per step "
              f"{[d['param_elements_differing'] for d in c['fused_vs_single_tensor']]}, "
              f"formula vs single-tensor {c['single_tensor_vs_written_formula_elements_differing']}")
    t = trl_loop()
    tc = trl_loop(max_grad_norm=0.6, out_name="trl_loop_clip", all_steps=False)
    for st in t["steps"] + tc["steps"]:
        print(f"  step {st['global_step']:2d} epoch {st['epoch']:.1f} rows "
              f"{[m['rows'] for m in st['micro_batches']]} n_items {st['num_items_in_batch']} "
              f"loss {st['loss_unrounded']:.6f} ({st['loss_logged']}) grad_norm {st['grad_norm']:.5f} "
              f"lr {st['learning_rate']:.6g} acc {st['mean_token_accuracy']:.4f} clipped {st['clipped']}")
    print(f"  train_loss {t['train_loss']} (clip run {tc['train_loss']})")
    for n, fn in NEW_FIXTURES.items():
        report_run(n, fn())
    total = 0
    for fn in sorted(os.listdir(OUT)):
        n = os.path.getsize(os.path.join(OUT, fn))
        total += n
        print(f"  {fn}: {n} bytes")
    print(f"total {total} bytes")
    print("versions:", json.dumps(versions()))


if __name__ == "__main__":
    sys.exit(main())
