/* fuzz_template: any bytes as a Jinja chat template: parsed, then rendered with
   a conversation (system, user, assistant with a tool call, tool), tools and the
   usual variables, under small step and output limits */
#include "fuzz.h"

static const char fz_vars[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi \\u00e9 2+2?\"},"
    " {\"role\": \"assistant\", \"content\": \"4\", \"tool_calls\": [{\"type\": \"function\", \"function\": {\"name\": \"add\","
    " \"arguments\": {\"a\": 2, \"b\": 2}}}]}, {\"role\": \"tool\", \"content\": \"4\"}, {\"role\": \"user\", \"content\": [{\"type\":"
    " \"text\", \"text\": \"thanks\"}]}], \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"add\", \"parameters\":"
    " {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}}}}}], \"add_generation_prompt\": true,"
    " \"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"enable_thinking\": false, \"n\": 3, \"x\": null}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static sft_json *vars;
    sft_template *t = NULL;
    sft_template_desc d;
    char *text = NULL;
    size_t len = 0, *spans = NULL, n_spans = 0;
    if (!vars && sft_json_parse(fz_ctx(), fz_vars, sizeof fz_vars - 1, "vars", NULL, &vars) != SFT_OK) {
        fprintf(stderr, "fuzz_template: %s\n", sft_last_error());
        abort();
    }
    if (sft_template_parse(fz_ctx(), (const char *)data, size, "fuzz.jinja", &t) != SFT_OK) return 0;
    memset(&d, 0, sizeof d);
    d.now = 1700000000; d.max_output = 1 << 20; d.max_steps = 20000;
    if (sft_template_render(t, vars, &d, &text, &len, &spans, &n_spans) == SFT_OK) {
        sft_free(fz_ctx(), text);
        sft_free(fz_ctx(), spans);
    }
    sft_template_destroy(t);
    return 0;
}
