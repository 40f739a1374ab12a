/* test_cli.c - the sft command's flags (examples/sft.c, compiled in without its
   main): every flag reaches the library's configuration, --config equals the
   same flags, bad values and unknown flags are refused naming the flag, and
   sft merge writes a model whose logits are base + adapter's. */
#include "test.h"
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#define SFT_CLI_NO_MAIN
#include "../examples/sft.c"

/* the flags a flag needs beside it to be valid (or to matter) for a command */
static int t_needs(const char *flag, int command, const char **extra) {
    int n = 0, peft = command & (C_TRAIN | C_MEMORY);
    if (!strncmp(flag, "lora_", 5) || !strncmp(flag, "bnb_", 4) || !strcmp(flag, "load_in_4bit") || !strcmp(flag, "use_dora") ||
        !strcmp(flag, "use_rslora"))
        if (peft) extra[n++] = "--use_peft";
    if (!strncmp(flag, "bnb_", 4)) extra[n++] = "--load_in_4bit";
    if (!strcmp(flag, "eval_steps")) { extra[n++] = "--eval_strategy"; extra[n++] = "steps"; }
    return n;
}

/* t_cli_keep: parse and build; *cfg holds a --config file's strings (free it
   after using b) */
static int t_cli_keep(int command, const char **args, int n, cli_built *b, cli_error *e, sft_json **cfg) {
    cli_opts o;
    memset(b, 0, sizeof *b);
    return cli_parse(n, (char **)(uintptr_t)args, command, &o, cfg, e) == 1 && cli_build(&o, command, b, e);
}

static int t_cli(int command, const char **args, int n, cli_built *b, cli_error *e) {
    sft_json *cfg = NULL;
    int ok = t_cli_keep(command, args, n, b, e, &cfg);
    sft_json_free(cfg);
    return ok;
}

/* every flag of every command, set to a value other than its default, changes
   what the command hands the library (train config, data, LoRA, load or
   generation settings), compared with the same command line without it */
static void every_flag_reaches_the_configuration(void) {
    static const int commands[] = {C_TRAIN, C_GENERATE, C_MERGE, C_STATS, C_MEMORY, C_RENDER};
    int i, c, covered = 0;
    for (i = 0; i < CLI_N_FLAGS; i++) {
        const cli_flag *f = &cli_flags[i];
        for (c = 0; c < CLI_N_COMMANDS; c++) {
            const char *base[16], *with[18];
            char flag[80];
            int n = 0, k, data = commands[c] & C_DATA;
            cli_built b0, b1;
            cli_error e;
            if (!(f->commands & commands[c])) continue;
            /* the command line without the flag: what the command requires */
            if (strcmp(f->name, "model_name_or_path")) { base[n++] = "--model_name_or_path"; base[n++] = "m"; }
            if (data && strcmp(f->name, "dataset_name")) { base[n++] = "--dataset_name"; base[n++] = "d.jsonl"; }
            if (data && commands[c] != C_RENDER && strcmp(f->name, "eval_fraction")) { base[n++] = "--eval_fraction"; base[n++] = "0.2"; }
            n += t_needs(f->name, commands[c], base + n);
            for (k = 0; k < n; k++) with[k] = base[k];
            snprintf(flag, sizeof flag, "--%s", f->name);
            with[n] = flag; with[n + 1] = f->test_value;
            if (!strcmp(f->name, "model_name_or_path") || (!strcmp(f->name, "dataset_name") && data)) {
                /* required: the baseline gives it another value */
                base[n] = flag; base[n + 1] = f->name[0] == 'm' ? "m" : "d.jsonl";
                CHECK_MSG(t_cli(commands[c], base, n + 2, &b0, &e), "sft %s %s: %s", cli_commands[c], flag, e.msg);
            } else if (!t_cli(commands[c], base, n, &b0, &e)) { CHECK_MSG(0, "sft %s without %s: %s", cli_commands[c], flag, e.msg); continue; }
            if (!t_cli(commands[c], with, n + 2, &b1, &e)) { CHECK_MSG(0, "sft %s %s %s: %s", cli_commands[c], flag, f->test_value, e.msg); continue; }
            CHECK_MSG(memcmp(&b0, &b1, sizeof b0) != 0, "sft %s %s %s changes nothing in the configuration", cli_commands[c], flag, f->test_value);
            covered++;
        }
    }
    CHECK_MSG(covered >= CLI_N_FLAGS, "%d flag/command pairs checked for %d flags", covered, CLI_N_FLAGS);
}

/* --config FILE.json with keys equal to flags gives what the flags give; the
   command line wins over the file */
static void a_config_file_equals_the_flags(void) {
    char path[600];
    const char *flags[] = {"--model_name_or_path", "m", "--dataset_name", "d.jsonl", "--learning_rate", "0.001", "--packing", "true",
                           "--lr_scheduler_kwargs", "{\"num_cycles\": 2}", "--lr_scheduler_type", "cosine_with_restarts", "--use_peft", "true",
                           "--lora_r", "4", "--greater_is_better", "false", "--save_strategy", "epoch"};
    const char *with_cfg[] = {"--config", path, "--lora_r", "4"};
    cli_built a, b;
    cli_error e;
    sft_json *cfg = NULL;
    FILE *f;
    snprintf(path, sizeof path, "%s/cli.json", t_tmpdir());
    f = fopen(path, "w");
    if (!f) { CHECK(0); return; }
    fprintf(f, "{\"model_name_or_path\": \"m\", \"dataset_name\": \"d.jsonl\", \"learning_rate\": 1e-3, \"packing\": true, "
               "\"lr_scheduler_kwargs\": \"{\\\"num_cycles\\\": 2}\", \"lr_scheduler_type\": \"cosine_with_restarts\", \"use_peft\": true, "
               "\"lora_r\": 64, \"greater_is_better\": false, \"save_strategy\": \"epoch\"}\n");
    fclose(f);
    CHECK_MSG(t_cli(C_TRAIN, flags, 20, &a, &e), "flags: %s", e.msg);
    CHECK_MSG(t_cli_keep(C_TRAIN, with_cfg, 4, &b, &e, &cfg), "config: %s", e.msg);
    CHECK(b.lora.r == 4 && b.train.learning_rate == 1e-3 && b.data.packing == 1 && b.train.lr_scheduler_kwargs.num_cycles == 2);
    CHECK(a.train.save_each_epoch == b.train.save_each_epoch && a.train.greater_is_better == b.train.greater_is_better && b.train.greater_is_better == SFT_OFF);
    CHECK(a.train.lr_scheduler_type == b.train.lr_scheduler_type && strcmp(a.model, b.model) == 0 && strcmp(a.dataset, b.dataset) == 0);
    CHECK(memcmp(&a.lora, &b.lora, sizeof a.lora) == 0 && memcmp(&a.data, &b.data, sizeof a.data) == 0);
    sft_json_free(cfg);
}

/* wrong types, out-of-range values, unknown names (with the nearest one) and
   conflicting flags: refused with the flag named */
static void bad_flags_are_refused_naming_the_flag(void) {
    static const struct { const char *args[6]; int n; const char *mention; } cases[] = {
        {{"--learning_rat", "1"}, 2, "did you mean --learning_rate"},
        {{"--lora_r", "x"}, 2, "--lora_r: expected an integer"},
        {{"--learning_rate", "-1"}, 2, "--learning_rate"},
        {{"--packing", "maybe"}, 2, "--packing"},
        {{"--lr_scheduler_type", "cosine_decay"}, 2, "cosine_decay"},
        {{"--optim", "adagrad"}, 2, "optim \"adagrad\""},
        {{"--load_in_4bit"}, 1, "--use_peft"},
        {{"--eval_strategy", "steps"}, 2, "--eval_dataset_name or --eval_fraction"},
        {{"--lr_scheduler_kwargs", "{\"cycles\": 2}"}, 2, "\"cycles\""},
        {{"--warmup_ratio", "2"}, 2, "--warmup_ratio"},
        {{"--max_length", "0"}, 2, "--max_length"},
        {{"--bnb_4bit_quant_type", "int8", "--use_peft"}, 3, "--bnb_4bit_quant_type"},
        {{"--prompt", "hi"}, 2, "--prompt is not a flag of this command"},   /* a generate flag given to train */
        {{"--save_strategy", "often"}, 2, "--save_strategy"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *args[10] = {"--model_name_or_path", "m", "--dataset_name", "d.jsonl"};
        cli_built b;
        cli_error e;
        int k;
        for (k = 0; k < cases[i].n; k++) args[4 + k] = cases[i].args[k];
        memset(&e, 0, sizeof e);
        CHECK_MSG(!t_cli(C_TRAIN, args, 4 + cases[i].n, &b, &e), "%s was accepted", cases[i].args[0]);
        CHECK_MSG(strstr(e.msg, cases[i].mention) != NULL, "%s: \"%s\" does not mention \"%s\"", cases[i].args[0], e.msg, cases[i].mention);
    }
}

/* sft merge: base + the adapter PEFT saved, written as a model folder in f32:
   its logits equal the base with the adapter applied, within 1e-5 */
static void merge_writes_base_plus_adapter(void) {
    sft_context *ctx = t_context(1);
    cli_opts o;
    char out[600];
    sft_model *a = NULL, *merged = NULL;
    sft_tensor *ids = NULL;
    int64_t shape[2] = {1, 7}, i;
    cli_defaults(&o);
    snprintf(out, sizeof out, "%s/merged", t_tmpdir());
    o.model_name_or_path = "tests/fixtures/models/llama"; o.adapter = "tests/fixtures/models/llama/adapter"; o.output_dir = out;
    CHECK_OK(cli_merge(ctx, &o));
    CHECK_OK(sft_model_load(ctx, "tests/fixtures/models/llama", NULL, &a));
    if (a) CHECK_OK(sft_model_load_adapter(a, "tests/fixtures/models/llama/adapter", "default"));
    CHECK_OK(sft_model_load(ctx, out, NULL, &merged));
    CHECK_OK(sft_tensor_create(ctx, SFT_I32, 2, shape, &ids));
    for (i = 0; ids && i < 7; i++) ((int32_t *)ids->data)[i] = (int32_t)(3 + 31 * i);
    if (a && merged && ids) {
        sft_model_batch b;
        sft_model_output oa, om;
        float *la;
        memset(&b, 0, sizeof b);
        b.input_ids = ids;
        CHECK_OK(sft_model_forward(a, &b, NULL, &oa));
        la = (float *)malloc(sft_tensor_nbytes(oa.logits));
        memcpy(la, oa.logits->data, sft_tensor_nbytes(oa.logits));
        CHECK_OK(sft_model_forward(merged, &b, NULL, &om));
        CHECK_REL("merged logits", (const float *)om.logits->data, la, 7 * 256, 1e-5);
        CHECK(sft_model_get_config(merged)->dtype == SFT_F32);
        free(la);
        sft_step_begin(ctx);
    }
    sft_tensor_destroy(ids);
    sft_model_destroy(a); sft_model_destroy(merged);
    sft_context_destroy(ctx);
}

static void t_put(const char *dir, const char *name, const char *text, size_t len) {
    char path[1400];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f) { fwrite(text, 1, len, f); fclose(f); }
}

static void t_puts(const char *dir, const char *name, const char *text) { t_put(dir, name, text, strlen(text)); }
static int t_exists(const char *dir, const char *name) {
    char path[1200];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

static void t_copy(const char *from, const char *dir, const char *name) {
    char *text = NULL;
    size_t len = 0;
    if (sft_file_read(NULL, from, 0, &text, &len) == SFT_OK) t_put(dir, name, text, len);
    sft_free(NULL, text);
}

/* A model folder as transformers 4.57 saves it: the template only in
   chat_template.jinja (the tiny llama fixture with a byte-level tokenizer of
   its 256 ids: printable ASCII, space and newline, and ChatML's three special
   tokens). sft render shows the masks, sft train trains it on assistant turns
   and sft generate --chat answers; generation_config.json's eos list stops
   generation. */
static void a_folder_with_only_chat_template_jinja_trains_and_generates(void) {
    char dir[600], out[700], stream_out[700], data[700], vocab[8192], tok[12000];
    memset(vocab, 0, sizeof vocab);
    size_t n = 0;
    int c, id = 0, rc;
    static const char tmpl[] = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' }}{% if m.role == 'assistant' %}{% generation %}"
                               "{{ m.content + '<|im_end|>\\n' }}{% endgeneration %}{% else %}{{ m.content + '<|im_end|>\\n' }}{% endif %}"
                               "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}\n";
    static const char records[] = "{\"messages\": [{\"role\": \"user\", \"content\": \"Sort: 3 1 2\"}, {\"role\": \"assistant\", \"content\": \"1 2 3\"}]}\n"
                                  "{\"messages\": [{\"role\": \"user\", \"content\": \"Sort: 9 8\"}, {\"role\": \"assistant\", \"content\": \"8 9\"}]}\n";
    snprintf(dir, sizeof dir, "%s/jinja_only", t_tmpdir());
    mkdir(dir, 0777);
    t_copy("tests/fixtures/models/llama/config.json", dir, "config.json");
    t_copy("tests/fixtures/models/llama/model.safetensors", dir, "model.safetensors");
    for (c = 0; c < 253; c++) {          /* bytes 0..252 as GPT-2's byte-level alphabet writes them; ids 253-255 are specials */
        int printable = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174;
        int cp = printable ? c : 256 + id;
        if (!printable) id++;
        n += (size_t)snprintf(vocab + n, sizeof vocab - n, "%s\"\\u%04x\": %d", c ? ", " : "", cp, c);
    }
    snprintf(tok, sizeof tok, "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 253, \"content\": \"<|endoftext|>\", \"special\": true, "
             "\"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false}, {\"id\": 254, \"content\": \"<|im_start|>\", "
             "\"special\": true, \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false}, {\"id\": 255, \"content\": "
             "\"<|im_end|>\", \"special\": true, \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false}], "
             "\"normalizer\": null, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, "
             "\"use_regex\": true}, \"post_processor\": null, \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, "
             "\"trim_offsets\": true, \"use_regex\": true}, \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, "
             "\"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, \"fuse_unk\": false, \"byte_fallback\": false, "
             "\"ignore_merges\": false, \"vocab\": {%s}, \"merges\": []}}", vocab);
    CHECK(id == 68);    /* the non-printable bytes below 253 */
    t_put(dir, "tokenizer.json", tok, strlen(tok));
    t_puts(dir, "tokenizer_config.json", "{\"eos_token\": \"<|im_end|>\", \"pad_token\": \"<|endoftext|>\"}");
    t_put(dir, "chat_template.jinja", tmpl, strlen(tmpl));
    t_puts(dir, "generation_config.json", "{\"eos_token_id\": [255, 253], \"do_sample\": false}");
    snprintf(data, sizeof data, "%s/data.jsonl", dir);
    t_put(dir, "data.jsonl", records, strlen(records));
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(stream_out, sizeof stream_out, "%s/stream", dir);
    {
        const char *render[] = {"sft", "render", "--model_name_or_path", dir, "--dataset_name", data, "--assistant_only_loss", "--threads", "1"};
        const char *train[] = {"sft", "train", "--model_name_or_path", dir, "--dataset_name", data, "--output_dir", out, "--use_peft",
                               "--lora_target_modules", "all-linear", "--assistant_only_loss", "--max_steps", "2", "--per_device_train_batch_size",
                               "2", "--threads", "1", "--logging_steps", "1"};
        const char *stream[] = {"sft", "train", "--model_name_or_path", dir, "--dataset_name", data, "--output_dir", stream_out, "--use_peft",
                                "--max_steps", "3", "--dataset_streaming", "--per_device_train_batch_size", "1", "--threads", "1"};
        const char *gen[] = {"sft", "generate", "--model_name_or_path", dir, "--adapter", out, "--chat", "--prompt", "Sort: 2 1",
                             "--max_new_tokens", "4", "--threads", "1"};
        int saved = dup(1), null = open("/dev/null", O_WRONLY);     /* the commands' own output is not the test's */
        fflush(stdout);
        if (saved >= 0 && null >= 0) dup2(null, 1);
        rc = sft_cli_main(9, (char **)(uintptr_t)render);
        if (rc != 0) t_failf(__FILE__, __LINE__, "sft render: exit %d", rc);
        rc = sft_cli_main(20, (char **)(uintptr_t)train);
        if (rc != 0) t_failf(__FILE__, __LINE__, "sft train: exit %d", rc);
        rc = sft_cli_main(16, (char **)(uintptr_t)stream);     /* 3 steps over 2 records: passes again */
        if (rc != 0 || !t_exists(stream_out, "adapter_model.safetensors")) t_failf(__FILE__, __LINE__, "sft train --dataset_streaming: exit %d", rc);
        stream[10] = "-1";
        {   /* a stream has no length: max_steps is required (the message goes to stderr) */
            int saved_err = dup(2);
            if (saved_err >= 0 && null >= 0) dup2(null, 2);
            rc = sft_cli_main(16, (char **)(uintptr_t)stream);
            if (saved_err >= 0) { dup2(saved_err, 2); close(saved_err); }
        }
        if (rc == 0) t_failf(__FILE__, __LINE__, "sft train --dataset_streaming without --max_steps was accepted");
        rc = sft_cli_main(13, (char **)(uintptr_t)gen);
        fflush(stdout);
        if (saved >= 0 && null >= 0) dup2(saved, 1);
        if (saved >= 0) close(saved);
        if (null >= 0) close(null);
        CHECK_MSG(rc == 0, "sft generate --chat: exit %d", rc);
    }
    {   /* the generation_config.json eos list stops generation at its first id */
        sft_context *ctx = t_context(1);
        sft_model *m = NULL;
        sft_generation_config gc;
        sft_generate_desc g;
        int32_t prompt[3] = {254, 40, 41}, *ids = NULL, *ids2 = NULL;
        int n1 = 0, n2 = 0;
        CHECK_OK(sft_generation_config_load(dir, &gc));
        CHECK(gc.found && gc.n_eos == 2 && gc.eos_token_ids[0] == 255 && gc.eos_token_ids[1] == 253 && gc.top_k == 50 && !gc.do_sample);
        CHECK_OK(sft_model_load(ctx, dir, NULL, &m));
        memset(&g, 0, sizeof g);
        g.max_new_tokens = 12; g.no_eos_stop = 1;
        if (m) CHECK_OK(sft_model_generate(m, prompt, 3, &g, &ids, &n1));
        if (ids && n1 == 12) {       /* stop at the third token the unstopped run gave */
            g.no_eos_stop = 0; g.eos_token_ids = &ids[2]; g.n_eos_token_ids = 1;
            CHECK_OK(sft_model_generate(m, prompt, 3, &g, &ids2, &n2));
            CHECK_MSG(n2 <= 3 && ids2 && ids2[n2 - 1] == ids[2], "stopped after %d tokens", n2);
        }
        sft_free(ctx, ids); sft_free(ctx, ids2);
        t_puts(dir, "generation_config.json", "{\"eos_token_id\": \"x\"}");
        CHECK_STATUS(sft_generation_config_load(dir, &gc), SFT_ERR_FORMAT);
        CHECK_ERROR_MENTIONS("generation_config.json: eos_token_id");
        sft_model_destroy(m);
        sft_context_destroy(ctx);
    }
}

void suite_cli(void) {
    RUN(every_flag_reaches_the_configuration);
    RUN(a_config_file_equals_the_flags);
    RUN(bad_flags_are_refused_naming_the_flag);
    RUN(merge_writes_base_plus_adapter);
    RUN(a_folder_with_only_chat_template_jinja_trains_and_generates);
}
