/* test_tensor.c - creation, shapes, dtypes, conversion and copies. */
#include "test.h"

static void created_tensor_is_zeroed_with_its_shape(void) {
    sft_context *ctx = t_context(1);
    sft_tensor *t;
    int64_t shape[3] = {2, 3, 5}, i;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 3, shape, &t));
    CHECK(t->ndim == 3 && t->shape[0] == 2 && t->shape[2] == 5 && t->dtype == SFT_F32 && t->device == SFT_DEVICE_CPU);
    CHECK(sft_tensor_numel(t) == 30 && sft_tensor_nbytes(t) == 120);
    for (i = 0; i < 30; i++) CHECK(((float *)t->data)[i] == 0.0f);
    CHECK(((uintptr_t)t->data % 64) == 0);
    CHECK(t->grad == NULL && t->requires_grad == 0);
    sft_tensor_destroy(t);
    sft_tensor_destroy(NULL);
    sft_context_destroy(ctx);
}

static void scalar_and_empty_tensors_are_valid(void) {
    sft_context *ctx = t_context(1);
    sft_tensor *s, *e;
    int64_t shape[2] = {0, 7};
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 0, NULL, &s));
    CHECK(sft_tensor_numel(s) == 1);
    CHECK_OK(sft_tensor_create(ctx, SFT_BF16, 2, shape, &e));
    CHECK(sft_tensor_numel(e) == 0 && sft_tensor_nbytes(e) == 0);
    sft_tensor_destroy(s);
    sft_tensor_destroy(e);
    sft_context_destroy(ctx);
}

static void impossible_shapes_and_dtypes_are_refused(void) {
    sft_context *ctx = t_context(1);
    sft_tensor *t = (sft_tensor *)1;
    int64_t five[5] = {1, 1, 1, 1, 1}, neg[2] = {3, -1}, huge[2] = {(int64_t)1 << 40, (int64_t)1 << 40};
    CHECK_STATUS(sft_tensor_create(ctx, SFT_F32, 5, five, &t), SFT_ERR_SHAPE);
    CHECK(t == NULL);
    CHECK_ERROR_MENTIONS("5 dims");
    CHECK_STATUS(sft_tensor_create(ctx, SFT_F32, 2, neg, &t), SFT_ERR_SHAPE);
    CHECK_ERROR_MENTIONS("[3, -1]");
    CHECK_STATUS(sft_tensor_create(ctx, SFT_F32, 2, huge, &t), SFT_ERR_SHAPE);
    CHECK_STATUS(sft_tensor_create(ctx, (sft_dtype)42, 1, five, &t), SFT_ERR_DTYPE);
    CHECK_STATUS(sft_tensor_create(ctx, SFT_F32, 1, NULL, &t), SFT_ERR_ARG);
    CHECK_STATUS(sft_tensor_create(NULL, SFT_F32, 1, five, &t), SFT_ERR_ARG);
    sft_context_destroy(ctx);
}

static void dtype_sizes_and_names(void) {
    CHECK(sft_dtype_size(SFT_F32) == 4 && sft_dtype_size(SFT_BF16) == 2 && sft_dtype_size(SFT_F16) == 2);
    CHECK(sft_dtype_size(SFT_I32) == 4 && sft_dtype_size(SFT_U8) == 1 && sft_dtype_size(SFT_I64) == 8);
    CHECK(strcmp(sft_dtype_name(SFT_BF16), "BF16") == 0 && strcmp(sft_dtype_name(SFT_BOOL), "BOOL") == 0);
    CHECK(sft_dtype_size((sft_dtype)-1) == 0 && strcmp(sft_dtype_name((sft_dtype)99), "?") == 0);
}

static void convert_f32_to_bf16_f16_and_back(void) {
    sft_context *ctx = t_context(1);
    sft_tensor *f, *b, *h, *back;
    int64_t shape[1] = {4};
    float v[4] = {1.0f, -2.5f, 3.14159f, 65504.0f};
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 1, shape, &f));
    memcpy(f->data, v, sizeof v);
    CHECK_OK(sft_tensor_convert(ctx, f, SFT_BF16, &b));
    CHECK(((uint16_t *)b->data)[0] == 0x3f80);
    CHECK_OK(sft_tensor_convert(ctx, f, SFT_F16, &h));
    CHECK(((uint16_t *)h->data)[3] == 0x7bff);
    CHECK_OK(sft_tensor_convert(ctx, b, SFT_F32, &back));
    CHECK(((float *)back->data)[1] == -2.5f);
    CHECK(fabsf(((float *)back->data)[2] - 3.14159f) < 0.01f);
    sft_tensor_destroy(back);
    CHECK_OK(sft_tensor_convert(ctx, h, SFT_F32, &back));
    CHECK(((float *)back->data)[3] == 65504.0f);
    sft_tensor_destroy(back);
    sft_tensor_destroy(f); sft_tensor_destroy(b); sft_tensor_destroy(h);
    sft_context_destroy(ctx);
}

static void convert_to_i32_checks_the_range(void) {
    sft_context *ctx = t_context(1);
    sft_tensor *f, *i;
    int64_t shape[1] = {2};
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 1, shape, &f));
    ((float *)f->data)[0] = 7.0f;
    ((float *)f->data)[1] = -3.0f;
    CHECK_OK(sft_tensor_convert(ctx, f, SFT_I32, &i));
    CHECK(((int32_t *)i->data)[0] == 7 && ((int32_t *)i->data)[1] == -3);
    sft_tensor_destroy(i);
    ((float *)f->data)[1] = 3e9f;
    CHECK_STATUS(sft_tensor_convert(ctx, f, SFT_I32, &i), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("element 1");
    CHECK_STATUS(sft_tensor_convert(ctx, f, SFT_U8, &i), SFT_ERR_DTYPE);
    sft_tensor_destroy(f);
    sft_context_destroy(ctx);
}

static void copy_checks_shape_and_dtype(void) {
    sft_context *ctx = t_context(1);
    sft_tensor *a, *b, *c;
    int64_t s1[2] = {2, 3}, s2[2] = {3, 2};
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, s1, &a));
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, s2, &b));
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, s1, &c));
    ((float *)a->data)[5] = 9.0f;
    CHECK_STATUS(sft_tensor_copy_from(b, a), SFT_ERR_SHAPE);
    CHECK_ERROR_MENTIONS("[3, 2] <- [2, 3]");
    CHECK_OK(sft_tensor_copy_from(c, a));
    CHECK(((float *)c->data)[5] == 9.0f);
    sft_tensor_destroy(a); sft_tensor_destroy(b); sft_tensor_destroy(c);
    sft_context_destroy(ctx);
}

static void zero_grad_clears_but_keeps_the_buffer(void) {
    sft_context *ctx = t_context(1);
    sft_tensor *w, *x, *y, *loss, *lbl;
    int64_t sw[2] = {3, 2}, sx[2] = {1, 2}, sl[1] = {1};
    float *g;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, sw, &w));
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, sx, &x));
    CHECK_OK(sft_tensor_create(ctx, SFT_I32, 1, sl, &lbl));
    ((float *)x->data)[0] = 1.0f;
    sft_tensor_set_requires_grad(w, 1);
    CHECK_OK(sft_matmul(ctx, x, w, 0, 1, &y));
    CHECK_OK(sft_cross_entropy(ctx, y, lbl, NULL, &loss));
    CHECK_OK(sft_backward(ctx, loss));
    CHECK(w->grad != NULL);
    g = (float *)w->grad->data;
    CHECK(g[0] != 0.0f);
    sft_tensor_zero_grad(w);
    CHECK(w->grad != NULL && (float *)w->grad->data == g && g[0] == 0.0f);
    sft_tensor_destroy(w); sft_tensor_destroy(x); sft_tensor_destroy(lbl);
    sft_context_destroy(ctx);
}

void suite_tensor(void) {
    RUN(created_tensor_is_zeroed_with_its_shape);
    RUN(scalar_and_empty_tensors_are_valid);
    RUN(impossible_shapes_and_dtypes_are_refused);
    RUN(dtype_sizes_and_names);
    RUN(convert_f32_to_bf16_f16_and_back);
    RUN(convert_to_i32_checks_the_range);
    RUN(copy_checks_shape_and_dtype);
    RUN(zero_grad_clears_but_keeps_the_buffer);
}
