/* test_cuda_model.cu - a whole model on the CUDA device against the same model
   on the CPU: the tiny Llama fixture (tests/fixtures/models/llama: 2 layers,
   hidden 64, GQA 4/2 heads, llama3 RoPE scaling, vocabulary 256) loaded in NF4
   with double quantization, LoRA on all linear layers with dropout.

     forward (logits, fused loss,  every reduction of the decoder (RMSNorm sums,
     token metrics; f32 and the    attention softmax, the vocabulary's log-sum-
     base in bf16)                 exp) adds in another order than the CPU:
                                   within 1e-5 of the largest logit, the loss and
                                   the entropy within 1e-5 relative, the same
                                   token counts and argmax hits; bf16 (attention
                                   on tensor cores, the CPU's in f32): 1e-2 and
                                   1e-3, one argmax hit either way
     Qwen2, Qwen3, SmolLM3         biases, per-head q/k norms, layers without
     (forward, backward, greedy    RoPE: logits, loss and adapter gradients
     decoding)                     within 1e-5 of their largest value, the same
                                   tokens
     QLoRA training, 5 steps of    losses and gradient norms within 1e-5
     2 x 2 accumulated rows        relative at every step, the final adapters
                                   within 2e-5 of their largest value (the
                                   forward's differences, carried through 5
                                   AdamW updates that divide by the gradients'
                                   own size). Under the emulator the run shows
                                   5e-8 (losses), 1e-7 (norms) and 5e-7
                                   (adapters): the bounds leave room for a
                                   GPU's cuBLASLt order and libdevice expf
     resume on the device          bit for bit: the run stopped at step 3 and
                                   resumed from its checkpoint ends with the
                                   uninterrupted run's adapters and losses
                                   (f32 and 8-bit optimizer state)
     adapter files                 saved from the device, loaded on the CPU:
                                   the same bits
     generation                    the same greedy tokens as the CPU
     prompt tuning, NEFTune, label  losses, norms and eval_loss within 1e-5
     smoothing, checkpointing,     relative, adapters and prompts within 2e-5 of
     evaluation                    their largest value (as the run above)
     bf16 QLoRA training (tensor   losses within 2e-3, gradient norms within 1e-2
     cores) vs the f32 CPU run     relative of the f32 CPU run
     fp16 with loss scaling        overflows forced by a large first scale skip
                                   the optimizer and the schedule, are logged,
                                   and the scale follows GradScaler's rule;
                                   resume restores the scale bit for bit
     full fine-tuning (f32)        losses within 1e-5 relative, a trained weight
                                   within 2e-5 of its largest value; the
                                   checkpoint saved from the device holds it
     allocation failures           every cudaMalloc of a load, an adapter, a
                                   trainer and a step failing in turn: a status,
                                   and no device byte left */
#include "../sft.h"
#include "test_cuda.h"

#define CM_MODEL "tests/fixtures/models/llama"

static const char *const cm_proj[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

/* the fixture in NF4 on dev with a LoRA adapter on every projection; B gets
   random values (the same on every device) so the adapters matter from step 0.
   cm_compute_bf16: the frozen base (and the output projection) in bf16 (1) or
   f16 (2, the device only). */
static int cm_compute_bf16;

static sft_model *cm_model(sft_context *ctx, sft_device dev) {
    sft_model *m = NULL;
    sft_load_desc ld;
    sft_lora_desc d;
    int layer, p;
    memset(&ld, 0, sizeof ld);
    ld.quant = SFT_QUANT_NF4; ld.double_quant = 1; ld.device = dev; ld.compute_dtype = cm_compute_bf16 == 2 ? SFT_F16 : cm_compute_bf16 ? SFT_BF16 : SFT_F32;
    CHECK_OK(sft_model_load(ctx, CM_MODEL, &ld, &m));
    if (!m) return NULL;
    memset(&d, 0, sizeof d);
    d.r = 8; d.alpha = 16; d.dropout = 0.1f; d.seed = 1;
    CHECK_OK(sft_model_add_lora(m, "default", &d, "all-linear"));
    for (layer = 0; layer < 2; layer++)
        for (p = 0; p < 7; p++) {
            sft_lora_weights w;
            sft_tensor *r;
            if (sft_linear_adapter_weights(sft_model_linear(m, layer, cm_proj[p]), "default", &w) != SFT_OK) { CHECK(0); continue; }
            r = cu_random(ctx, 2, w.B->shape, (uint64_t)(10 + layer * 7 + p), -0.05f, 0.05f);
            if (r) CHECK_OK(sft_tensor_copy_from(w.B, r));
            sft_tensor_destroy(r);
        }
    return m;
}

/* every adapter value (A then B, layer and projection order) as one CPU array */
static float *cm_adapters(sft_context *ctx, sft_model *m, int64_t *n) {
    float *out = (float *)calloc(200000, sizeof(float));
    int layer, p, ab;
    *n = 0;
    for (layer = 0; out && layer < 2; layer++)
        for (p = 0; p < 7; p++) {
            sft_lora_weights w;
            if (sft_linear_adapter_weights(sft_model_linear(m, layer, cm_proj[p]), "default", &w) != SFT_OK) continue;
            for (ab = 0; ab < 2; ab++) {
                sft_tensor *t = ab ? w.B : w.A, *h = t->device == SFT_DEVICE_CPU ? NULL : cu_fetch(ctx, t);
                memcpy(out + *n, (h ? h : t)->data, sft_tensor_nbytes(t));
                *n += sft_tensor_numel(t);
                sft_tensor_destroy(h);
            }
        }
    return out;
}

/* pre-tokenized rows of unequal length (5..20) inside the vocabulary */
static sft_dataset *cm_rows(sft_context *ctx, sft_tokenizer *tok, int n) {
    char buf[64][400];
    const char *recs[64];
    sft_dataset *ds = NULL;
    sft_data_desc d;
    int i, k;
    for (i = 0; i < n && i < 64; i++) {
        int len = snprintf(buf[i], sizeof buf[i], "{\"input_ids\": [");
        int count = 5 + (i * 7) % 16;
        for (k = 0; k < count; k++) len += snprintf(buf[i] + len, sizeof buf[i] - (size_t)len, "%s%d", k ? ", " : "", 3 + (i * 31 + k * 17) % 250);
        snprintf(buf[i] + len, sizeof buf[i] - (size_t)len, "]}");
        recs[i] = buf[i];
    }
    memset(&d, 0, sizeof d);
    d.max_length = 64;
    d.pad_token = "!";        /* id 0: inside the model's vocabulary */
    CHECK_OK(sft_dataset_from_records(ctx, tok, recs, n, &d, &ds));
    return ds;
}

/* ---------------------------------------------------------------------------
   Forward */

/* the fused loss's token metrics on both devices: the same counts, the entropy
   within the loss's bound tol (and with tol above 1e-5, an argmax may flip
   where two logits are closer than the rounding: one hit either way) */
static void cm_same_metrics(const char *what, const sft_model_output *c, const sft_model_output *d, double tol) {
    CHECK_MSG(d->metric_tokens == c->metric_tokens && d->metric_tokens > 0 &&
                  fabs(d->metric_correct - c->metric_correct) <= (tol > 1e-5 ? 1.0 : 0.0),
              "%s: %lld tokens, %g correct on cuda; %lld, %g on the cpu", what, (long long)d->metric_tokens, d->metric_correct,
              (long long)c->metric_tokens, c->metric_correct);
    CHECK_MSG(fabs(d->metric_entropy - c->metric_entropy) <= tol * fabs(c->metric_entropy), "%s: entropy %.9g on cuda, %.9g on the cpu", what,
              d->metric_entropy, c->metric_entropy);
}

/* one forward pass on both devices: the base in f32, or in bf16 (bf16 = 1).
   In bf16 the device's attention runs on tensor cores too (Q, K, V and P
   rounded to bf16) while the CPU's stays f32: logits within 1e-2 of the
   largest (4e-3 seen), the loss and entropy within 1e-3 relative (4e-5 seen) */
static void cm_forward_case(int bf16) {
    sft_context *cc = cu_context(), *cd = cu_context();
    sft_model *mc = (cm_compute_bf16 = bf16, cm_model(cc, SFT_DEVICE_CPU)), *md = cm_model(cd, CU);
    int64_t shape[2] = {2, 13}, i;
    sft_tensor *ids = cu_ids(cc, 2, shape, 5, 256), *labels = cu_ids(cc, 2, shape, 6, 256);
    sft_model_batch b;
    sft_model_run run;
    sft_model_output oc, od;
    float lc = 0.0f, ld = 1.0f;
    sft_tensor *hl = NULL;
    cm_compute_bf16 = 0;
    if (!mc || !md || !ids || !labels) goto done;
    for (i = 0; i < 4; i++) ((int32_t *)labels->data)[i] = -100;     /* a prompt that is not trained */
    memset(&b, 0, sizeof b);
    b.input_ids = ids; b.labels = labels;
    memset(&run, 0, sizeof run);
    run.training = 1; run.dropout_seed = 77; run.want_logits = 1;
    CHECK_OK(sft_model_forward(mc, &b, &run, &oc));
    CHECK_OK(sft_model_forward(md, &b, &run, &od));
    if (oc.logits && od.logits) {
        CHECK(od.logits->device == CU);
        cu_rel("logits", cd, od.logits, oc.logits, bf16 ? 1e-2 : 1e-5);
    }
    if (oc.loss && od.loss) {
        lc = *(const float *)oc.loss->data;
        hl = cu_fetch(cd, od.loss);
        if (hl) ld = *(const float *)hl->data;
        CHECK_MSG(fabs((double)ld - lc) <= (bf16 ? 1e-3 : 1e-5) * fabs((double)lc), "loss %.9g on cuda, %.9g on the cpu", ld, lc);
    }
    run.want_logits = 0; run.token_metrics = 1;                        /* the fused projection + loss, metrics too */
    sft_step_begin(cc); sft_step_begin(cd);
    CHECK_OK(sft_model_forward(mc, &b, &run, &oc));
    CHECK_OK(sft_model_forward(md, &b, &run, &od));
    if (oc.loss && od.loss && !od.logits) {
        sft_tensor *h = cu_fetch(cd, od.loss);
        if (h) CHECK_MSG(fabs((double)*(const float *)h->data - lc) <= (bf16 ? 1e-3 : 1e-5) * fabs((double)lc), "fused loss %.9g on cuda, %.9g unfused on the cpu",
                         *(const float *)h->data, lc);
        sft_tensor_destroy(h);
        cm_same_metrics(bf16 ? "fused metrics, bf16 base" : "fused metrics", &oc, &od, bf16 ? 1e-3 : 1e-5);
        cu_hash(&od.metric_entropy, sizeof od.metric_entropy);
    }
done:
    sft_tensor_destroy(hl); sft_tensor_destroy(ids); sft_tensor_destroy(labels);
    sft_model_destroy(mc); sft_model_destroy(md);
    sft_context_destroy(cc); sft_context_destroy(cd);
}

static void model_forward_on_cuda_matches_cpu(void) {
    cm_forward_case(0);
    cm_forward_case(1);
}

static void model_lives_on_the_device_and_is_counted_there(void) {
    sft_context *ctx = cu_context();
    sft_mem_stats before = sft_context_mem_stats(ctx), after;
    sft_model *m = cm_model(ctx, CU);
    sft_memory_plan plan;
    after = sft_context_mem_stats(ctx);
    CHECK(m != NULL);
    CHECK_MSG(after.device_bytes_in_use > before.device_bytes_in_use + 100000, "device bytes %zu after loading",
              after.device_bytes_in_use);
    if (m) {
        CHECK_OK(sft_model_memory_plan(m, 2, 16, NULL, &plan));
        CHECK_MSG(plan.activations > 0 && plan.weights > 0 && plan.adapters > 0, "plan: activations %zu weights %zu adapters %zu",
                  plan.activations, plan.weights, plan.adapters);
    }
    sft_model_destroy(m);
    after = sft_context_mem_stats(ctx);
    CHECK_MSG(after.device_bytes_in_use == after.device_arena_capacity, "after destroying the model %zu device bytes remain beyond the arenas",
              after.device_bytes_in_use - after.device_arena_capacity);
    sft_context_destroy(ctx);
}

/* The architectures' own pieces on the device: Qwen2's q/k/v biases, Qwen3's
   per-head q/k RMSNorm, SmolLM3's biases everywhere and its layers without
   RoPE. Each in NF4 with LoRA on every projection: the logits, the loss and
   every adapter's gradients within the forward's bound above, and 6 greedy
   tokens through the KV cache the same as the CPU's. */
static sft_model *cm_arch_model(sft_context *ctx, const char *dir, sft_device dev) {
    sft_model *m = NULL;
    sft_load_desc ld;
    sft_lora_desc d;
    int layer, p;
    memset(&ld, 0, sizeof ld);
    ld.quant = SFT_QUANT_NF4; ld.device = dev;
    CHECK_OK(sft_model_load(ctx, dir, &ld, &m));
    if (!m) return NULL;
    memset(&d, 0, sizeof d);
    d.r = 4; d.alpha = 8; d.seed = 3;
    CHECK_OK(sft_model_add_lora(m, "default", &d, "all-linear"));
    for (layer = 0; sft_model_linear(m, layer, cm_proj[0]); layer++)
        for (p = 0; p < 7; p++) {      /* B != 0: A's gradients are not all zero */
            sft_lora_weights w;
            sft_tensor *r;
            if (sft_linear_adapter_weights(sft_model_linear(m, layer, cm_proj[p]), "default", &w) != SFT_OK) { CHECK(0); continue; }
            r = cu_random(ctx, 2, w.B->shape, (uint64_t)(40 + layer * 7 + p), -0.05f, 0.05f);
            if (r) CHECK_OK(sft_tensor_copy_from(w.B, r));
            sft_tensor_destroy(r);
        }
    return m;
}

static void cm_arch_case(const char *dir) {
    sft_context *ctx[2] = {cu_context(), cu_context()};
    sft_model *m[2] = {NULL, NULL};
    int64_t shape[2] = {2, 11};
    sft_tensor *ids = cu_ids(ctx[0], 2, shape, 21, 256), *labels = cu_ids(ctx[0], 2, shape, 22, 256);
    sft_model_output o[2];
    const int32_t prompt[3] = {17, 99, 203};
    int32_t *gen[2] = {NULL, NULL};
    int ngen[2] = {0, 0}, k, layer, p;
    memset(o, 0, sizeof o);
    for (k = 0; k < 2; k++) {
        sft_model_batch b;
        sft_model_run run;
        m[k] = cm_arch_model(ctx[k], dir, k ? CU : SFT_DEVICE_CPU);
        if (!m[k] || !ids || !labels) goto done;
        memset(&b, 0, sizeof b);
        b.input_ids = ids; b.labels = labels;
        memset(&run, 0, sizeof run);
        run.training = 1; run.want_logits = 1;
        CHECK_OK(sft_model_forward(m[k], &b, &run, &o[k]));
        if (o[k].loss) CHECK_OK(sft_backward(ctx[k], o[k].loss));
    }
    if (!o[0].logits || !o[1].logits || !o[0].loss || !o[1].loss) { CHECK(0); goto done; }
    cu_rel(dir, ctx[1], o[1].logits, o[0].logits, 1e-5);
    cu_rel(dir, ctx[1], o[1].loss, o[0].loss, 1e-5);
    for (layer = 0; sft_model_linear(m[0], layer, cm_proj[0]); layer++)
        for (p = 0; p < 7; p++) {
            sft_lora_weights wc, wd;
            char what[160];
            if (sft_linear_adapter_weights(sft_model_linear(m[0], layer, cm_proj[p]), "default", &wc) != SFT_OK ||
                sft_linear_adapter_weights(sft_model_linear(m[1], layer, cm_proj[p]), "default", &wd) != SFT_OK) { CHECK(0); continue; }
            snprintf(what, sizeof what, "%s layer %d %s dA", dir, layer, cm_proj[p]);
            if (wc.A->grad && wd.A->grad) cu_rel(what, ctx[1], wd.A->grad, wc.A->grad, 1e-5); else CHECK_MSG(0, "%s: no gradient", what);
            snprintf(what, sizeof what, "%s layer %d %s dB", dir, layer, cm_proj[p]);
            if (wc.B->grad && wd.B->grad) cu_rel(what, ctx[1], wd.B->grad, wc.B->grad, 1e-5); else CHECK_MSG(0, "%s: no gradient", what);
        }
    for (k = 0; k < 2; k++) {     /* decoding through the KV cache (a new step: the outputs above are gone) */
        sft_generate_desc gd;
        memset(&gd, 0, sizeof gd);
        gd.max_new_tokens = 6; gd.no_eos_stop = 1;
        CHECK_OK(sft_model_generate(m[k], prompt, 3, &gd, &gen[k], &ngen[k]));
    }
    CHECK_MSG(ngen[0] == 6 && ngen[1] == 6 && gen[0] && gen[1] && memcmp(gen[0], gen[1], 6 * sizeof(int32_t)) == 0,
              "%s: %d tokens generated on cuda, %d on the cpu, the first %d vs %d", dir, ngen[1], ngen[0], gen[1] ? gen[1][0] : -1,
              gen[0] ? gen[0][0] : -1);
    if (gen[1]) cu_hash(gen[1], (size_t)ngen[1] * sizeof(int32_t));
done:
    for (k = 0; k < 2; k++) { sft_free(ctx[k], gen[k]); sft_model_destroy(m[k]); }
    sft_tensor_destroy(ids); sft_tensor_destroy(labels);
    sft_context_destroy(ctx[0]); sft_context_destroy(ctx[1]);
}

static void qwen2_qwen3_and_smollm3_on_cuda_match_the_cpu(void) {
    cm_arch_case("tests/fixtures/models/qwen2");
    cm_arch_case("tests/fixtures/archs/qwen3");
    cm_arch_case("tests/fixtures/archs/smollm3");
}

/* ---------------------------------------------------------------------------
   Training, resume, adapter files */

typedef struct cm_run { double loss[5], norm[5], scale[5]; int skipped[5]; float *adapter; int64_t n; } cm_run;

static int cm_eight_bit;   /* cm_config gives 8-bit AdamW (every adapter keeps 8-bit state) */
static double cm_fp16_scale; /* > 0: cm_config trains with fp16 loss scaling from this scale, growth every 2 steps */

static void cm_config(sft_train_config *c, const char *out_dir) {
    memset(c, 0, sizeof *c);
    c->per_device_train_batch_size = 2; c->gradient_accumulation_steps = 2; c->max_steps = 5;
    c->learning_rate = 2e-3; c->lr_scheduler_type = SFT_SCHEDULE_COSINE; c->warmup_steps = 1; c->seed = 7;
    c->logging_steps = 1;
    if (cm_eight_bit) { c->optim = SFT_OPTIM_ADAMW_8BIT; c->optim_min_8bit_size = 1; }
    if (cm_fp16_scale > 0) { c->fp16 = 1; c->loss_scale_init = cm_fp16_scale; c->loss_scale_growth_interval = 2; }
    if (out_dir) { c->output_dir = out_dir; c->save_steps = 3; }
}

/* steps [from, 5) of a run (from > 0: resumed from checkpoint-from of out_dir) */
static void cm_train(sft_device dev, const char *out_dir, int from, cm_run *r) {
    sft_context *ctx = cu_context();
    sft_tokenizer *tok = NULL;
    sft_model *m = cm_model(ctx, dev);
    sft_dataset *ds = NULL;
    sft_trainer *tr = NULL;
    sft_train_config c;
    char ckpt[512];
    int k;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) ds = cm_rows(ctx, tok, 12);
    cm_config(&c, out_dir);
    if (from) { snprintf(ckpt, sizeof ckpt, "%s/checkpoint-%d", out_dir, from); c.resume_from_checkpoint = ckpt; }
    if (m && ds) CHECK_OK(sft_trainer_create(m, ds, &c, &tr));
    for (k = from; tr && k < 5; k++) {
        sft_step_info info;
        CHECK_OK(sft_trainer_step(tr, &info));
        r->loss[k] = info.loss; r->norm[k] = info.grad_norm;
        r->scale[k] = info.loss_scale; r->skipped[k] = info.optimizer_step_skipped;
        cu_hash(&info.loss, sizeof info.loss);
    }
    if (tr && m) r->adapter = cm_adapters(ctx, m, &r->n);
    sft_trainer_destroy(tr);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

static void qlora_training_on_cuda_matches_the_cpu_run(void) {
    cm_run cpu, dev;
    int k;
    memset(&cpu, 0, sizeof cpu); memset(&dev, 0, sizeof dev);
    cm_train(SFT_DEVICE_CPU, NULL, 0, &cpu);
    cm_train(CU, NULL, 0, &dev);
    for (k = 0; k < 5; k++) {
        CHECK_MSG(fabs(dev.loss[k] - cpu.loss[k]) <= 1e-5 * fabs(cpu.loss[k]) && cpu.loss[k] > 0, "step %d: loss %.9g on cuda, %.9g on the cpu", k + 1,
                  dev.loss[k], cpu.loss[k]);
        CHECK_MSG(fabs(dev.norm[k] - cpu.norm[k]) <= 1e-5 * fabs(cpu.norm[k]), "step %d: grad norm %.9g on cuda, %.9g on the cpu", k + 1,
                  dev.norm[k], cpu.norm[k]);
    }
    if (cpu.adapter && dev.adapter && cpu.n == dev.n && cpu.n > 0) CHECK_REL("adapters after 5 steps", dev.adapter, cpu.adapter, cpu.n, 2e-5);
    else CHECK_MSG(0, "adapters: %lld values on cuda, %lld on the cpu", (long long)dev.n, (long long)cpu.n);
    free(cpu.adapter); free(dev.adapter);
}

/* with f32 and with 8-bit optimizer state (its codes and scales saved from
   and restored onto the device) */
static void resume_on_cuda_is_bit_identical(void) {
    int eight, k;
    for (eight = 0; eight < 2; eight++) {
        char dir[400];
        cm_run whole, rest;
        memset(&whole, 0, sizeof whole); memset(&rest, 0, sizeof rest);
        snprintf(dir, sizeof dir, "%s/cuda_resume_%d", t_tmpdir(), eight);
        cm_eight_bit = eight;
        cm_train(CU, dir, 0, &whole);                 /* saves checkpoint-3 and checkpoint-5 on the way */
        cm_train(CU, dir, 3, &rest);                  /* a new process would start here */
        cm_eight_bit = 0;
        for (k = 3; k < 5; k++)
            CHECK_MSG(rest.loss[k] == whole.loss[k], "eight_bit %d step %d: resumed loss %.9g, uninterrupted %.9g", eight, k + 1, rest.loss[k],
                      whole.loss[k]);
        if (rest.adapter && whole.adapter && rest.n == whole.n) CHECK_SAME("adapters after resuming", rest.adapter, whole.adapter, whole.n);
        else CHECK(0);
        free(whole.adapter); free(rest.adapter);
    }
}

static void adapter_saved_from_cuda_loads_on_the_cpu_bit_for_bit(void) {
    sft_context *cc = cu_context(), *cd = cu_context();
    sft_model *md = cm_model(cd, CU), *mc = NULL;
    sft_load_desc ld;
    char dir[400];
    float *a = NULL, *b = NULL;
    int64_t na = 0, nb = 0;
    snprintf(dir, sizeof dir, "%s/cuda_adapter", t_tmpdir());
    memset(&ld, 0, sizeof ld);
    ld.quant = SFT_QUANT_NF4; ld.double_quant = 1;
    CHECK_OK(sft_model_load(cc, CM_MODEL, &ld, &mc));
    if (md && mc) {
        CHECK_OK(sft_model_save_adapter(md, "default", dir));
        CHECK_OK(sft_model_load_adapter(mc, dir, "default"));
        a = cm_adapters(cd, md, &na);
        b = cm_adapters(cc, mc, &nb);
        if (a && b && na == nb && na > 0) CHECK_SAME("adapter through its files", b, a, na);
        else CHECK(0);
        sft_model_destroy(md);                     /* and back onto a device model */
        md = NULL;
        ld.device = CU;
        CHECK_OK(sft_model_load(cd, CM_MODEL, &ld, &md));
        if (md) CHECK_OK(sft_model_load_adapter(md, dir, "default"));
        free(a);
        a = md ? cm_adapters(cd, md, &na) : NULL;
        if (a && b && na == nb) CHECK_SAME("adapter loaded onto the device", a, b, na);
    }
    free(a); free(b);
    sft_model_destroy(md); sft_model_destroy(mc);
    sft_context_destroy(cc); sft_context_destroy(cd);
}

static void greedy_generation_on_cuda_gives_the_cpu_tokens(void) {
    sft_context *cc = cu_context(), *cd = cu_context();
    sft_model *mc = NULL, *md = NULL;
    sft_load_desc ld;
    sft_generate_desc gd;
    const int32_t prompt[4] = {58, 23, 77, 227};
    int32_t *ic = NULL, *id = NULL;
    int nc = 0, nd = 0;
    memset(&ld, 0, sizeof ld);
    CHECK_OK(sft_model_load(cc, CM_MODEL, &ld, &mc));
    ld.device = CU;
    CHECK_OK(sft_model_load(cd, CM_MODEL, &ld, &md));
    memset(&gd, 0, sizeof gd);
    gd.max_new_tokens = 8; gd.no_eos_stop = 1;
    if (mc && md) {
        CHECK_OK(sft_model_generate(mc, prompt, 4, &gd, &ic, &nc));
        CHECK_OK(sft_model_generate(md, prompt, 4, &gd, &id, &nd));
        CHECK_MSG(nc == nd && nc == 8 && ic && id && memcmp(ic, id, (size_t)nc * sizeof *ic) == 0, "generated %d tokens on cuda, %d on the cpu, "
                  "first %d vs %d", nd, nc, id ? id[0] : -1, ic ? ic[0] : -1);
        if (id) cu_hash(id, (size_t)nd * sizeof *id);
    }
    sft_free(cc, ic); sft_free(cd, id);
    sft_model_destroy(mc); sft_model_destroy(md);
    sft_context_destroy(cc); sft_context_destroy(cd);
}

/* The trainer's other paths on the device: prompt tuning (virtual tokens
   prepended), NEFTune noise, label smoothing, gradient checkpointing,
   evaluation and the token metrics (the logits come back to the host), 3 steps
   against the CPU. (8-bit AdamW is bit for bit in the optimizer's test and in
   the resume test; here a moment one rounding away from an 8-bit code boundary
   would move an adapter value by a whole code step.) */
typedef struct cm_feat { double loss[3], norm[3], eval_loss; float *adapter, *prompt; int64_t n, np; } cm_feat;

static void cm_eval_loss(const sft_log_entry *e, void *user) { if (e->is_eval) ((cm_feat *)user)->eval_loss = e->loss; }

static void cm_train_features(sft_device dev, cm_feat *r) {
    sft_context *ctx = cu_context();
    sft_tokenizer *tok = NULL;
    sft_model *m = cm_model(ctx, dev);
    sft_dataset *ds = NULL;
    sft_trainer *tr = NULL;
    sft_tensor *prompts = NULL, *pd = NULL;
    sft_train_config c;
    sft_data_desc dd;
    int k;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) ds = cm_rows(ctx, tok, 12);
    CHECK_OK(sft_prompt_embeddings_create(ctx, 3, 64, 5, &prompts));
    pd = prompts && dev != SFT_DEVICE_CPU ? cu_on(ctx, prompts, dev) : prompts;
    if (pd) sft_tensor_set_requires_grad(pd, 1);
    (void)dd;
    cm_config(&c, NULL);
    c.max_steps = 3; c.prompt_embeddings = pd; c.neftune_noise_alpha = 5.0f; c.label_smoothing_factor = 0.1f;
    c.gradient_checkpointing = 1; c.token_metrics = 1;
    c.eval_dataset = ds; c.eval_steps = 3; c.on_evaluate = cm_eval_loss; c.user = r;
    if (m && ds && pd) CHECK_OK(sft_trainer_create(m, ds, &c, &tr));
    for (k = 0; tr && k < 3; k++) {
        sft_step_info info;
        CHECK_OK(sft_trainer_step(tr, &info));
        r->loss[k] = info.loss; r->norm[k] = info.grad_norm;
        cu_hash(&info.loss, sizeof info.loss);
    }
    if (tr && m) r->adapter = cm_adapters(ctx, m, &r->n);
    if (tr && pd) {
        sft_tensor *h = pd->device == SFT_DEVICE_CPU ? NULL : cu_fetch(ctx, pd);
        r->np = sft_tensor_numel(pd);
        r->prompt = (float *)malloc((size_t)r->np * sizeof(float));
        if (r->prompt) memcpy(r->prompt, (h ? h : pd)->data, (size_t)r->np * sizeof(float));
        sft_tensor_destroy(h);
    }
    sft_trainer_destroy(tr);
    if (pd != prompts) sft_tensor_destroy(pd);
    sft_tensor_destroy(prompts);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

static void prompt_tuning_neftune_smoothing_and_checkpointing_on_cuda_match_the_cpu(void) {
    cm_feat cpu, dev;
    int k;
    memset(&cpu, 0, sizeof cpu); memset(&dev, 0, sizeof dev);
    cm_train_features(SFT_DEVICE_CPU, &cpu);
    cm_train_features(CU, &dev);
    for (k = 0; k < 3; k++) {
        CHECK_MSG(fabs(dev.loss[k] - cpu.loss[k]) <= 1e-5 * fabs(cpu.loss[k]) && cpu.loss[k] > 0, "step %d: loss %.9g on cuda, %.9g on the cpu", k + 1,
                  dev.loss[k], cpu.loss[k]);
        CHECK_MSG(fabs(dev.norm[k] - cpu.norm[k]) <= 1e-5 * fabs(cpu.norm[k]), "step %d: grad norm %.9g on cuda, %.9g", k + 1, dev.norm[k], cpu.norm[k]);
    }
    CHECK_MSG(fabs(dev.eval_loss - cpu.eval_loss) <= 1e-5 * fabs(cpu.eval_loss) && cpu.eval_loss > 0, "eval_loss %.9g on cuda, %.9g on the cpu",
              dev.eval_loss, cpu.eval_loss);
    if (cpu.adapter && dev.adapter && cpu.n == dev.n && cpu.n > 0) CHECK_REL("adapters", dev.adapter, cpu.adapter, cpu.n, 2e-5);
    else CHECK(0);
    if (cpu.prompt && dev.prompt && cpu.np == dev.np) CHECK_REL("prompt embeddings", dev.prompt, cpu.prompt, cpu.np, 2e-5);
    else CHECK(0);
    free(cpu.adapter); free(dev.adapter); free(cpu.prompt); free(dev.prompt);
}

/* Full fine-tuning of the f32 fixture on the device: every weight trained
   (embedding scatter, RMSNorm weights, dense GEMMs' weight gradients, AdamW
   with weight decay skipping norms), saved as a model folder from the device. */
typedef struct cm_full { double loss[3]; float *w; int64_t n; } cm_full;

static void cm_train_full(sft_device dev, const char *out_dir, cm_full *r) {
    sft_context *ctx = cu_context();
    sft_tokenizer *tok = NULL;
    sft_model *m = NULL;
    sft_dataset *ds = NULL;
    sft_trainer *tr = NULL;
    sft_load_desc ld;
    sft_train_config c;
    sft_tensor *w;
    int k;
    memset(&ld, 0, sizeof ld);
    ld.device = dev;
    CHECK_OK(sft_model_load(ctx, CM_MODEL, &ld, &m));
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) ds = cm_rows(ctx, tok, 8);
    cm_config(&c, NULL);
    c.max_steps = 3; c.full_finetuning = 1; c.weight_decay = 0.01; c.learning_rate = 1e-3;
    if (out_dir) { c.output_dir = out_dir; c.save_steps = 3; }
    if (m && ds) CHECK_OK(sft_trainer_create(m, ds, &c, &tr));
    for (k = 0; tr && k < 3; k++) {
        sft_step_info info;
        CHECK_OK(sft_trainer_step(tr, &info));
        r->loss[k] = info.loss;
        cu_hash(&info.loss, sizeof info.loss);
    }
    w = m ? sft_model_weight(m, "model.layers.1.mlp.down_proj.weight") : NULL;
    if (tr && w) {
        sft_tensor *h = w->device == SFT_DEVICE_CPU ? NULL : cu_fetch(ctx, w);
        r->n = sft_tensor_numel(w);
        r->w = (float *)malloc((size_t)r->n * sizeof(float));
        if (r->w) memcpy(r->w, (h ? h : w)->data, (size_t)r->n * sizeof(float));
        sft_tensor_destroy(h);
    }
    sft_trainer_destroy(tr);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

static void full_finetuning_on_cuda_matches_the_cpu_run_and_saves_from_the_device(void) {
    cm_full cpu, dev;
    char dir[400], path[500];
    sft_st_file *f = NULL;
    int k;
    memset(&cpu, 0, sizeof cpu); memset(&dev, 0, sizeof dev);
    snprintf(dir, sizeof dir, "%s/cuda_full", t_tmpdir());
    cm_train_full(SFT_DEVICE_CPU, NULL, &cpu);
    cm_train_full(CU, dir, &dev);
    for (k = 0; k < 3; k++)
        CHECK_MSG(fabs(dev.loss[k] - cpu.loss[k]) <= 1e-5 * fabs(cpu.loss[k]) && cpu.loss[k] > 0, "step %d: loss %.9g on cuda, %.9g on the cpu", k + 1,
                  dev.loss[k], cpu.loss[k]);
    if (cpu.w && dev.w && cpu.n == dev.n) CHECK_REL("down_proj weight after 3 steps", dev.w, cpu.w, cpu.n, 2e-5);
    else CHECK(0);
    snprintf(path, sizeof path, "%s/checkpoint-3/model.safetensors", dir);
    CHECK_OK(sft_st_open(NULL, path, &f));
    if (f && dev.w) {
        const sft_st_tensor *t = sft_st_find(f, "model.layers.1.mlp.down_proj.weight");
        CHECK_MSG(t && t->nbytes == (uint64_t)dev.n * 4 && memcmp(t->data, dev.w, (size_t)t->nbytes) == 0,
                  "the checkpoint's down_proj is not the device's weight");
    }
    sft_st_close(f);
    free(cpu.w); free(dev.w);
}

/* Every cudaMalloc of loading the model onto the device, adding its adapter,
   creating the trainer and one training step fails in turn: each failure is a
   status (never a crash), and once everything made is destroyed no device byte
   is left. */
static void every_device_allocation_failure_in_a_run_leaks_nothing(void) {
    size_t base = cu_device_bytes();
    long long k;
    int done = 0;
    if (!cu_fail_malloc_after(-1)) return;   /* needs the emulator */
    for (k = 0; !done && k < 400; k++) {
        sft_context *ctx = cu_context();
        sft_tokenizer *tok = NULL;
        sft_dataset *ds = NULL;
        sft_model *m = NULL;
        sft_trainer *tr = NULL;
        sft_load_desc ld;
        sft_lora_desc d;
        sft_train_config c;
        sft_step_info info;
        sft_status s;
        CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
        if (tok) ds = cm_rows(ctx, tok, 4);
        memset(&ld, 0, sizeof ld);
        ld.quant = SFT_QUANT_NF4; ld.double_quant = 1; ld.device = CU;
        memset(&d, 0, sizeof d);
        d.r = 4; d.alpha = 8; d.dropout = 0.1f; d.use_dora = (int)(k & 1);
        cm_config(&c, NULL);
        c.max_steps = 1;
        cu_fail_malloc_after(k);
        s = sft_model_load(ctx, CM_MODEL, &ld, &m);
        if (s == SFT_OK) s = sft_model_add_lora(m, "default", &d, "all-linear");
        if (s == SFT_OK) s = sft_trainer_create(m, ds, &c, &tr);
        if (s == SFT_OK) s = sft_trainer_step(tr, &info);
        cu_fail_malloc_after(-1);
        if (s == SFT_OK) done = 1;
        else CHECK_MSG(s == SFT_ERR_NOMEM, "allocation %lld: %s (%s), want SFT_ERR_NOMEM", k, sft_status_str(s), sft_last_error());
        sft_trainer_destroy(tr);
        sft_model_destroy(m);
        sft_dataset_destroy(ds);
        sft_tokenizer_destroy(tok);
        sft_context_destroy(ctx);
        if (cu_device_bytes() != base) {
            CHECK_MSG(0, "allocation %lld failing: %zu device bytes left after destroying everything", k, cu_device_bytes() - base);
            break;
        }
    }
    CHECK_MSG(done && k > 100, "%s after %lld failed allocations", done ? "success" : "no success", k);   /* 179 today */
}

static void loading_on_cuda_without_a_device_says_so(void) {
#ifdef CUDA_EMU
    sft_context *ctx = cu_context();
    sft_model *m = NULL;
    sft_load_desc ld;
    memset(&ld, 0, sizeof ld);
    ld.device = CU;
    setenv("CUDA_EMU_NO_DEVICE", "1", 1);
    CHECK_STATUS(sft_model_load(ctx, CM_MODEL, &ld, &m), SFT_ERR_DEVICE);
    CHECK_ERROR_MENTIONS("no CUDA device");
    unsetenv("CUDA_EMU_NO_DEVICE");
    CHECK(m == NULL);
    sft_context_destroy(ctx);
#endif
}

/* ---------------------------------------------------------------------------
   bf16 and fp16 training (the frozen base on tensor cores) */

/* bnb_4bit_compute_dtype bfloat16 on the device against the f32 CPU run: the
   bf16 rounding of every base GEMM's inputs (2^-8 relative each) moves the
   logits, and so the losses, by about 2^-8 of their spread; the bound is 2e-3
   relative per loss and 1e-2 per gradient norm (the norms feel the rounding
   through two GEMMs and the softmax's differences). Measured under the
   emulator: 6.5e-5 and 6.8e-4 (printed after the test's name; attention on
   tensor cores too); the bounds leave room for a GPU's summation order. */
static void bf16_qlora_training_on_cuda_follows_the_f32_cpu_run(void) {
    cm_run cpu, dev;
    double worst_loss = 0.0, worst_norm = 0.0;
    int k;
    memset(&cpu, 0, sizeof cpu); memset(&dev, 0, sizeof dev);
    cm_train(SFT_DEVICE_CPU, NULL, 0, &cpu);
    cm_compute_bf16 = 1;
    cm_train(CU, NULL, 0, &dev);
    cm_compute_bf16 = 0;
    for (k = 0; k < 5; k++) {
        double rl = fabs(dev.loss[k] - cpu.loss[k]) / fabs(cpu.loss[k]), rn = fabs(dev.norm[k] - cpu.norm[k]) / fabs(cpu.norm[k]);
        CHECK_MSG(rl <= 2e-3 && cpu.loss[k] > 0, "step %d: loss %.9g bf16 on cuda, %.9g f32 on the cpu", k + 1, dev.loss[k], cpu.loss[k]);
        CHECK_MSG(rn <= 1e-2, "step %d: grad norm %.9g bf16 on cuda, %.9g f32 on the cpu", k + 1, dev.norm[k], cpu.norm[k]);
        if (rl > worst_loss) worst_loss = rl;
        if (rn > worst_norm) worst_norm = rn;
    }
    printf("\n    bf16 vs f32: losses within %.2g relative, gradient norms within %.2g ", worst_loss, worst_norm);
    free(cpu.adapter); free(dev.adapter);
}

static void cm_count_overflow_logs(sft_log_level level, const char *msg, void *user) {
    (void)level;
    if (strstr(msg, "overflowed") && strstr(msg, "skip")) (*(int *)user)++;
}

/* fp16 with dynamic loss scaling, an overflow forced by a first scale of 2^21
   (this model's gradients fit f16 from about 2^19): the scaled loss's gradient
   overflows f16 in the backward GEMMs, so the first steps find inf/NaN, skip
   the optimizer (the adapters keep their bits) and the schedule (the next
   step's learning rate is the one the skipped step would have used), halve
   the scale and log the skip; once the scale fits, steps go through and 2
   clean ones double it (which may overflow again: GradScaler probes upward
   on purpose). Every step's scale follows GradScaler's rule (checked against
   torch in test_trainer's fixture). */
static void fp16_loss_scaling_skips_overflowed_steps_and_their_schedule(void) {
    sft_context_desc cd;
    sft_context *ctx = NULL;
    sft_tokenizer *tok = NULL;
    sft_model *m = NULL;
    sft_dataset *ds = NULL;
    sft_trainer *tr = NULL;
    sft_train_config c;
    int logged = 0, k, skipped = 0, taken = 0;
    double scale = 2097152.0, lr0 = 2e-3;
    int64_t sched = 0, n0 = 0, n1 = 0, tracker = 0;
    float *before = NULL, *after = NULL;
    memset(&cd, 0, sizeof cd);
    cd.threads = 2; cd.log = cm_count_overflow_logs; cd.log_user = &logged;
    CHECK_OK(sft_context_create(&cd, &ctx));
    if (!ctx) return;
    CHECK_OK(sft_cpu_path_set(ctx, SFT_CPU_PORTABLE));
    cm_compute_bf16 = 2;
    m = cm_model(ctx, CU);
    cm_compute_bf16 = 0;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) ds = cm_rows(ctx, tok, 16);
    memset(&c, 0, sizeof c);
    c.per_device_train_batch_size = 2; c.max_steps = 8; c.learning_rate = lr0; c.lr_scheduler_type = SFT_SCHEDULE_LINEAR;
    c.seed = 7; c.logging_steps = 1;
    c.fp16 = 1; c.loss_scale_init = scale; c.loss_scale_growth_interval = 2;
    if (m && ds) CHECK_OK(sft_trainer_create(m, ds, &c, &tr));
    for (k = 0; tr && k < 8; k++) {
        sft_step_info info;
        double want_lr = lr0 * (1.0 - (double)sched / 8.0);
        before = cm_adapters(ctx, m, &n0);
        CHECK_OK(sft_trainer_step(tr, &info));
        after = cm_adapters(ctx, m, &n1);
        /* the learning rate is the schedule's at its own step count, not the global step */
        CHECK_MSG(fabs(info.learning_rate - want_lr) <= 1e-12 * lr0, "step %d: learning rate %.9g, want %.9g (schedule step %lld)", k + 1,
                  info.learning_rate, want_lr, (long long)sched);
        if (info.optimizer_step_skipped) {
            skipped++;
            CHECK_MSG(before && after && n0 == n1 && memcmp(before, after, (size_t)n0 * sizeof(float)) == 0, "step %d: skipped, but the adapters changed",
                      k + 1);
            scale *= 0.5; tracker = 0;
        } else {
            taken++; sched++;
            CHECK_MSG(before && after && n0 == n1 && memcmp(before, after, (size_t)n0 * sizeof(float)) != 0, "step %d: taken, but no adapter changed",
                      k + 1);
            CHECK_MSG(fabs(info.loss) < INFINITY && fabs(info.grad_norm) < INFINITY, "step %d: loss %g, grad norm %g", k + 1, info.loss, info.grad_norm);
            if (++tracker == 2) { scale *= 2.0; tracker = 0; }
        }
        CHECK_MSG(info.loss_scale == scale, "step %d: loss scale %g, want %g", k + 1, info.loss_scale, scale);
        cu_hash(&info.loss, sizeof info.loss);
        free(before); free(after); before = after = NULL;
    }
    CHECK_MSG(skipped >= 2 && taken >= 4, "%d steps skipped, %d taken (want overflows first, then training)", skipped, taken);
    CHECK_MSG(logged == skipped, "%d skips logged for %d skipped steps", logged, skipped);
    printf("\n    first scale 2^21: %d of 8 steps skipped ", skipped);
    sft_trainer_destroy(tr);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* fp16 resumed from a checkpoint goes on bit for bit: the scale and its growth
   tracker come back from sft_state.json (transformers' scaler.pt), and the
   schedule's own step count with them. The first scale, 2^21, makes the run
   skip steps before the checkpoint at step 3. */
static void fp16_resume_restores_the_loss_scale_bit_for_bit(void) {
    char dir[400];
    cm_run whole, rest;
    int k;
    memset(&whole, 0, sizeof whole); memset(&rest, 0, sizeof rest);
    snprintf(dir, sizeof dir, "%s/cuda_resume_fp16", t_tmpdir());
    cm_compute_bf16 = 2; cm_fp16_scale = 2097152.0;
    cm_train(CU, dir, 0, &whole);
    cm_train(CU, dir, 3, &rest);
    cm_compute_bf16 = 0; cm_fp16_scale = 0.0;
    CHECK_MSG(whole.skipped[0] && !(whole.skipped[3] && whole.skipped[4]), "steps skipped: %d %d %d %d %d (want the first, not both of "
              "the last two)", whole.skipped[0], whole.skipped[1], whole.skipped[2], whole.skipped[3], whole.skipped[4]);
    for (k = 3; k < 5; k++) {
        CHECK_MSG(rest.loss[k] == whole.loss[k], "step %d: resumed loss %.9g, uninterrupted %.9g", k + 1, rest.loss[k], whole.loss[k]);
        CHECK_MSG(rest.scale[k] == whole.scale[k] && rest.skipped[k] == whole.skipped[k], "step %d: resumed scale %g (skipped %d), uninterrupted %g (%d)",
                  k + 1, rest.scale[k], rest.skipped[k], whole.scale[k], whole.skipped[k]);
    }
    if (rest.adapter && whole.adapter && rest.n == whole.n) CHECK_SAME("adapters after resuming fp16", rest.adapter, whole.adapter, whole.n);
    else CHECK(0);
    free(whole.adapter); free(rest.adapter);
}

void cuda_model_tests(void) {
    printf("cuda: the tiny Llama against the CPU\n");
    CU_RUN_LIBM(model_forward_on_cuda_matches_cpu);
    CU_RUN_LIBM(model_lives_on_the_device_and_is_counted_there);
    CU_RUN_LIBM(qwen2_qwen3_and_smollm3_on_cuda_match_the_cpu);
    CU_RUN_LIBM(qlora_training_on_cuda_matches_the_cpu_run);
    CU_RUN_LIBM(resume_on_cuda_is_bit_identical);
    CU_RUN_LIBM(bf16_qlora_training_on_cuda_follows_the_f32_cpu_run);
    CU_RUN_LIBM(fp16_loss_scaling_skips_overflowed_steps_and_their_schedule);
    CU_RUN_LIBM(fp16_resume_restores_the_loss_scale_bit_for_bit);
    CU_RUN_LIBM(adapter_saved_from_cuda_loads_on_the_cpu_bit_for_bit);
    CU_RUN_LIBM(greedy_generation_on_cuda_gives_the_cpu_tokens);
    CU_RUN_LIBM(prompt_tuning_neftune_smoothing_and_checkpointing_on_cuda_match_the_cpu);
    CU_RUN_LIBM(full_finetuning_on_cuda_matches_the_cpu_run_and_saves_from_the_device);
    CU_RUN(every_device_allocation_failure_in_a_run_leaks_nothing);
    CU_RUN(loading_on_cuda_without_a_device_says_so);
}
