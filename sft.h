/* sft.h - QLoRA supervised fine-tuning in a single C header.

   sft.h trains Llama-family language models the way Hugging Face's SFTTrainer,
   PEFT and bitsandbytes do: a frozen 4-bit NF4 base, trainable LoRA adapters, the
   same loss, schedules and files. CPU in this header, CUDA in sft_cuda.cuh.

   This release holds the core engine: contexts with a thread pool and allocator
   accounting, JSON and safetensors I/O, tensors, reverse-mode autograd with
   checkpointed segments, and the operators a Llama decoder is made of, with CPU
   kernels in portable C, AVX2/FMA and AVX-512 chosen at run time.

   QUICK START - train a linear classifier (examples/mlp.c does more)

       #define SFT_IMPLEMENTATION
       #include "sft.h"

       sft_context *ctx;  sft_context_create(NULL, &ctx);
       int64_t xs[2] = {8, 3}, ws[2] = {4, 3}, ls[1] = {8};
       sft_tensor *x, *w, *labels;                  // 8 points, 4 classes
       sft_tensor_create(ctx, SFT_F32, 2, xs, &x);       // fill x->data
       sft_tensor_create(ctx, SFT_I32, 1, ls, &labels);  // fill labels->data
       sft_tensor_create(ctx, SFT_F32, 2, ws, &w);
       sft_tensor_set_requires_grad(w, 1);
       for (int step = 0; step < 100; step++) {
           sft_tensor *logits, *loss;
           sft_step_begin(ctx);                     // recycles last step's tensors
           sft_matmul(ctx, x, w, 0, 1, &logits);    // x . w^T -> [8, 4]
           sft_cross_entropy(ctx, logits, labels, NULL, &loss);
           sft_backward(ctx, loss);                 // w->grad = d loss / d w
           for (int i = 0; i < 12; i++) ((float *)w->data)[i] -= 0.5f * ((float *)w->grad->data)[i];
           sft_tensor_zero_grad(w);
       }
       sft_tensor_destroy(x); sft_tensor_destroy(w); sft_tensor_destroy(labels);
       sft_context_destroy(ctx);

   Every call returns an sft_status (SFT_OK = 0); check it, and read
   sft_last_error() for what went wrong and where.

   BUILD
       Exactly one translation unit defines SFT_IMPLEMENTATION before including
       this file; every other one includes it plainly. Link with -lm -lpthread.
       The implementation uses POSIX (pthreads, mmap, fsync): in strict -std=c99
       include sft.h there before any system header (it defines _POSIX_C_SOURCE).
       Needs stb_ds.h (Debian: libstb-dev, included as <stb/stb_ds.h>).

   COMPILE-TIME OPTIONS (define before including the implementation)
       SFT_STATIC                    make every public function static
       SFT_MALLOC(sz) SFT_REALLOC(p,sz) SFT_FREE(p)
                                     the process-wide allocator (define all three or
                                     none); contexts may also carry their own
       SFT_ASSERT(x)                 programmer-error checks (default: assert)
       SFT_STB_DS_PATH               where to include stb_ds.h from
                                     (default <stb/stb_ds.h>)
       SFT_NO_STB_DS_IMPLEMENTATION  the host compiles stb_ds's implementation itself
       SFT_NO_MMAP                   read files into memory instead of mapping them
       SFT_USE_CBLAS                 dense f32 GEMMs of the automatic CPU path go to
                                     cblas_sgemm (include <cblas.h>, link a BLAS);
                                     its threads and rounding are then the BLAS's,
                                     so bit-identity across thread counts is the
                                     BLAS's to keep
       SFT_CUDA                      compile the CUDA backend (sft_cuda.cuh; nvcc)

   ENVIRONMENT
       SFT_CPU_PATH=portable|avx2|avx512
                                     force a CPU kernel path (see sft_cpu_path_set);
                                     by default the best one the CPU can run

   CONTENTS (search for the banner "=== name")
       public API
         status and errors, context, memory accounting, CPU code path, files,
         JSON, tensors, safetensors, autograd, operators, random numbers, CUDA seam
       implementation
         errors                      the thread-local message, sft__fail
         platform: CPU probe         cpuid, the one process-wide cache
         memory: the context allocator   aligned, counted allocations
         platform: the thread pool   persistent workers, sft__parallel
         platform: files             atomic writes through one hook, reads
         memory: arenas              per-step scratch that stops growing
         context                     create/destroy, statistics, logging
         platform: CPU code path selection
         devices                     CPU or CUDA memory, copies
         tensor                      creation, dtypes, half floats, conversion
         json                        strict parser, shortest-round-trip writer
         safetensors                 checked reader (mmap), writer
         random numbers              Philox-4x32-10, keys
         autograd: nodes and the tape, checkpointed segments
         kernels: GEMM (portable), blocked GEMM (AVX2, AVX-512), vector
                  helpers, the CPU path table, elementwise, embedding, RMSNorm,
                  rotary position embedding, causal attention (flash-style
                  tiles), cross-entropy, cross-entropy fused with the output
                  projection, the CPU backend table
         ops                         the public operators: checks, dispatch
         cuda seam                   sft_cuda.cuh when SFT_CUDA

   LICENSE: MIT (see the end of this file).
*/
#ifndef SFT_H
#define SFT_H

/* The implementation needs POSIX declarations even under strict -std=c99; this
   must come before the first system header. */
#if defined(SFT_IMPLEMENTATION) && !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#  define _POSIX_C_SOURCE 200809L
#endif

#define SFT_VERSION_MAJOR 0
#define SFT_VERSION_MINOR 1
#define SFT_VERSION_PATCH 0
#define SFT_VERSION_STRING "0.1.0"

#include <stddef.h>
#include <stdint.h>

#ifndef SFTDEF
#  ifdef SFT_STATIC
#    if defined(__GNUC__) || defined(__clang__)
#      define SFTDEF static __attribute__((unused))
#    else
#      define SFTDEF static
#    endif
#  else
#    define SFTDEF extern
#  endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================================
   === status and errors
   Every call that can fail returns sft_status (SFT_OK = 0). On failure a message
   naming the file/field/op and the offending value is kept per thread and read
   with sft_last_error(). */

typedef enum sft_status {
    SFT_OK = 0,
    SFT_ERR_ARG,          /* a NULL pointer or an impossible setting            */
    SFT_ERR_SHAPE,        /* tensor shapes that do not fit the op               */
    SFT_ERR_DTYPE,        /* a dtype the op or file does not support            */
    SFT_ERR_DEVICE,       /* tensors on different devices, or no such backend   */
    SFT_ERR_NOMEM,        /* an allocation failed                               */
    SFT_ERR_IO,           /* open/read/write/rename failed                      */
    SFT_ERR_FORMAT,       /* a malformed file (JSON, safetensors, ...)          */
    SFT_ERR_LIMIT,        /* an input beyond a documented limit                 */
    SFT_ERR_STATE,        /* a call out of order (e.g. backward without a tape) */
    SFT_ERR_NOT_FOUND,    /* a named thing (tensor, key) is not there           */
    SFT_ERR_UNSUPPORTED,  /* valid, but not in this build or on this machine    */
    SFT_STATUS_COUNT
} sft_status;

/* sft_status_str: the status's name, e.g. "SFT_ERR_SHAPE". Never NULL. */
SFTDEF const char *sft_status_str(sft_status s);
/* sft_last_error: the message of this thread's most recent failure ("" if none).
   Valid until the next failing call on this thread. */
SFTDEF const char *sft_last_error(void);
/* sft_clear_error: forget this thread's last message. */
SFTDEF void sft_clear_error(void);

/* ============================================================================
   === context
   A context owns a thread pool, the allocator hooks, the autograd tape and the
   per-step arenas. Everything else hangs off one; two contexts in one process are
   independent. A context is used by one host thread at a time. */

typedef struct sft_context sft_context;

typedef enum sft_log_level { SFT_LOG_DEBUG, SFT_LOG_INFO, SFT_LOG_WARN, SFT_LOG_ERROR } sft_log_level;

/* A host allocator. alloc returns memory for size bytes (any alignment) or NULL;
   free releases it. Both receive user. */
typedef struct sft_allocator {
    void *(*alloc)(size_t size, void *user);
    void  (*free)(void *ptr, void *user);
    void   *user;
} sft_allocator;

/* The one function all file writes go through. It writes len bytes to the open
   file descriptor fd and returns how many it wrote; fewer than len means failure
   (a full disk). A host may route or meter writes; a test makes it fail to check
   that nothing is lost. */
typedef size_t (*sft_write_fn)(int fd, const void *data, size_t len, void *user);

typedef struct sft_context_desc {
    int threads;                 /* worker threads incl. the caller; 0 = 1, 1 = inline */
    sft_allocator allocator;     /* zero = SFT_MALLOC/SFT_FREE                          */
    void (*log)(sft_log_level level, const char *msg, void *user); /* zero = silent   */
    void *log_user;
    sft_write_fn write;          /* zero = fwrite                                       */
    void *write_user;
} sft_context_desc;

/* sft_context_create: a context per desc (NULL = all defaults). On failure *out is
   NULL. Free with sft_context_destroy. */
SFTDEF sft_status sft_context_create(const sft_context_desc *desc, sft_context **out);
SFTDEF void       sft_context_destroy(sft_context *ctx);
/* sft_context_threads: the thread count in use (>= 1). */
SFTDEF int        sft_context_threads(const sft_context *ctx);

/* ============================================================================
   === memory accounting
   Every byte a context allocates (tensors, arenas, gradients) is counted, so tests
   and hosts can see the high-water mark. */

typedef struct sft_mem_stats {
    size_t bytes_in_use;     /* now                                      */
    size_t peak_bytes;       /* high-water mark since create / last reset */
    uint64_t allocs;         /* calls to the allocator so far            */
    uint64_t frees;
    size_t arena_capacity;   /* bytes the step arenas hold (host)         */
} sft_mem_stats;

SFTDEF sft_mem_stats sft_context_mem_stats(const sft_context *ctx);
/* sft_context_mem_reset_peak: set peak_bytes to bytes_in_use. */
SFTDEF void          sft_context_mem_reset_peak(sft_context *ctx);

/* ============================================================================
   === CPU code path
   Kernels exist for several CPU instruction sets and are chosen at run time. The
   environment variable SFT_CPU_PATH or sft_cpu_path_set() forces one. */

typedef enum sft_cpu_path { SFT_CPU_AUTO = 0, SFT_CPU_PORTABLE, SFT_CPU_AVX2, SFT_CPU_AVX512, SFT_CPU_PATH_COUNT } sft_cpu_path;

/* sft_cpu_path_supported: whether this machine can run the path. */
SFTDEF int          sft_cpu_path_supported(sft_cpu_path path);
/* sft_cpu_path_set: force a path for this context (SFT_CPU_AUTO = best available).
   SFT_ERR_UNSUPPORTED if the machine lacks it or this build has no kernels for it. */
SFTDEF sft_status   sft_cpu_path_set(sft_context *ctx, sft_cpu_path path);
SFTDEF sft_cpu_path sft_cpu_path_get(const sft_context *ctx);
SFTDEF const char  *sft_cpu_path_name(sft_cpu_path path);

/* ============================================================================
   === files
   sft_file_write_atomic writes a whole file so that a reader sees either the old
   content or the new, never a mix: it writes "<path>.tmp", flushes it to disk and
   renames it over path. On any failure the temporary is removed and path is
   untouched. ctx may be NULL (plain fwrite). */

typedef struct sft_buf { const void *data; size_t len; } sft_buf;

SFTDEF sft_status sft_file_write_atomic(sft_context *ctx, const char *path, const sft_buf *parts, int n_parts);
/* sft_file_read: the whole file into a new buffer (+ a terminating NUL not counted
   in *len); free with sft_free(ctx, ptr). Files over max_bytes (0 = 1 GiB) fail. */
SFTDEF sft_status sft_file_read(sft_context *ctx, const char *path, size_t max_bytes, char **data, size_t *len);
/* sft_free: release memory the library handed out for ctx (ctx may be NULL). */
SFTDEF void       sft_free(sft_context *ctx, void *ptr);

/* ============================================================================
   === JSON
   A strict RFC 8259 parser (UTF-8 validated, surrogates checked) with limits on
   depth, size and numbers, and a writer that emits the shortest round-trip form
   of every number. */

typedef enum sft_json_type {
    SFT_JSON_NULL, SFT_JSON_FALSE, SFT_JSON_TRUE, SFT_JSON_NUMBER,
    SFT_JSON_STRING, SFT_JSON_ARRAY, SFT_JSON_OBJECT
} sft_json_type;

typedef struct sft_json sft_json;
struct sft_json {
    sft_json_type type;
    double        number;  /* NUMBER (NaN/Infinity only with allow_nonfinite)       */
    const char   *string;  /* STRING: NUL-terminated UTF-8; may hold \0 (see length).
                              NUMBER: the number's text as written, e.g. "1e5", so
                              integers beyond 2^53 can be read exactly          */
    size_t        length;  /* STRING: bytes; ARRAY/OBJECT: element count             */
    sft_json     *items;   /* ARRAY/OBJECT: the values, in file order              */
    const char  **keys;    /* OBJECT: the keys, keys[i] names items[i]             */
    size_t       *key_lengths; /* OBJECT: byte length of each key                   */
};

typedef struct sft_json_desc {
    int    max_depth;        /* nesting limit; 0 = 128                            */
    size_t max_bytes;        /* input size limit; 0 = 256 MiB                      */
    int    allow_nonfinite;  /* accept NaN, Infinity, -Infinity as Python writes  */
} sft_json_desc;

/* sft_json_parse: parse text[0..len) (NUL not needed). name labels error messages
   (a file name). The tree is one allocation owned by *out; free it with
   sft_json_free. Duplicate object keys fail. */
SFTDEF sft_status sft_json_parse(sft_context *ctx, const char *text, size_t len, const char *name,
                                 const sft_json_desc *desc, sft_json **out);
/* sft_json_free: free a tree; pass the root sft_json_parse returned (never a node
   inside it). NULL is fine. */
SFTDEF void       sft_json_free(sft_json *root);
/* Lookups; NULL when absent or of another type. sft_json_get scans the keys in
   order (objects in model files are small). */
SFTDEF const sft_json *sft_json_get(const sft_json *object, const char *key);
SFTDEF const sft_json *sft_json_at(const sft_json *array, size_t index);

/* The writer appends to a growing buffer. Calls after a failure do nothing; the
   first failure is reported by sft_json_writer_finish. Zero-initialise, set ctx
   (may be NULL) and indent (0 = compact, n = pretty with n spaces). */
typedef struct sft_json_writer {
    sft_context *ctx;
    int          indent;
    int          allow_nonfinite; /* write NaN/Infinity as Python does instead of failing */
    /* private */
    char        *buf;
    size_t       len, cap;
    int          depth;
    unsigned char first[130];    /* per depth: no element written yet          */
    unsigned char in_object[130];
    int          after_key;
    sft_status   status;
} sft_json_writer;

SFTDEF void sft_json_write_object_begin(sft_json_writer *w);
SFTDEF void sft_json_write_object_end(sft_json_writer *w);
SFTDEF void sft_json_write_array_begin(sft_json_writer *w);
SFTDEF void sft_json_write_array_end(sft_json_writer *w);
SFTDEF void sft_json_write_key(sft_json_writer *w, const char *key);
SFTDEF void sft_json_write_string(sft_json_writer *w, const char *s);
SFTDEF void sft_json_write_string_n(sft_json_writer *w, const char *s, size_t len);
SFTDEF void sft_json_write_number(sft_json_writer *w, double v);
SFTDEF void sft_json_write_int(sft_json_writer *w, int64_t v);
SFTDEF void sft_json_write_bool(sft_json_writer *w, int v);
SFTDEF void sft_json_write_null(sft_json_writer *w);
/* sft_json_writer_finish: on success *text (NUL-terminated, free with sft_free) and
   *len; the writer is reset either way. Fails if the document is incomplete. */
SFTDEF sft_status sft_json_writer_finish(sft_json_writer *w, char **text, size_t *len);
/* sft_json_writer_reset: drop what was written (no output). */
SFTDEF void       sft_json_writer_reset(sft_json_writer *w);

/* ============================================================================
   === tensors
   A tensor is a contiguous row-major array of up to 4 dims on one device. The
   struct is public so hosts can read shapes and data; create and destroy through
   the functions below. Tensors made by operators live in the context's step
   arena and are gone at the next sft_step_begin. */

#define SFT_MAX_DIMS 4

typedef enum sft_dtype {
    SFT_F32, SFT_BF16, SFT_F16, SFT_I32, SFT_U8, SFT_I8, SFT_I64, SFT_BOOL, SFT_DTYPE_COUNT
} sft_dtype;

typedef enum sft_device { SFT_DEVICE_CPU = 0, SFT_DEVICE_CUDA = 1, SFT_DEVICE_COUNT } sft_device;

typedef struct sft_tensor sft_tensor;
struct sft_tensor {
    sft_dtype   dtype;
    sft_device  device;
    int         ndim;                 /* 0 = scalar                                  */
    int64_t     shape[SFT_MAX_DIMS];
    void       *data;                 /* numel elements, contiguous                  */
    sft_tensor *grad;                 /* f32 gradient, same shape; NULL until needed */
    int         requires_grad;
    /* private */
    sft_context *ctx;
    unsigned     flags;
    void        *producer;            /* the tape node that made it, if recorded     */
};

SFTDEF const char *sft_dtype_name(sft_dtype dt);
SFTDEF size_t      sft_dtype_size(sft_dtype dt);   /* bytes per element */
SFTDEF int64_t     sft_tensor_numel(const sft_tensor *t);
SFTDEF size_t      sft_tensor_nbytes(const sft_tensor *t);

/* sft_tensor_create: a persistent, zero-filled CPU tensor (owned by the caller;
   free with sft_tensor_destroy). */
SFTDEF sft_status  sft_tensor_create(sft_context *ctx, sft_dtype dtype, int ndim, const int64_t *shape,
                                     sft_tensor **out);
/* sft_tensor_create_on: the same on a device (SFT_DEVICE_CUDA needs the CUDA build). */
SFTDEF sft_status  sft_tensor_create_on(sft_context *ctx, sft_device device, sft_dtype dtype, int ndim,
                                        const int64_t *shape, sft_tensor **out);
/* sft_tensor_destroy: free a persistent tensor and its gradient (NULL is fine).
   Arena tensors are freed with the step; passing one here does nothing. */
SFTDEF void        sft_tensor_destroy(sft_tensor *t);
SFTDEF void        sft_tensor_set_requires_grad(sft_tensor *t, int on);
/* sft_tensor_zero_grad: set t->grad to zeros (keeps the buffer). */
SFTDEF void        sft_tensor_zero_grad(sft_tensor *t);
/* sft_tensor_copy_from: copy src's data into dst (same shape and dtype, any devices). */
SFTDEF sft_status  sft_tensor_copy_from(sft_tensor *dst, const sft_tensor *src);
/* sft_tensor_convert: a new persistent tensor with src's values in dtype. Between
   f32, bf16 and f16 (round to nearest even); i32 <-> f32 exact where representable. */
SFTDEF sft_status  sft_tensor_convert(sft_context *ctx, const sft_tensor *src, sft_dtype dtype, sft_tensor **out);
/* sft_tensor_to_device: a new persistent copy of src on device. */
SFTDEF sft_status  sft_tensor_to_device(sft_context *ctx, const sft_tensor *src, sft_device device, sft_tensor **out);

/* bf16/f16 <-> f32 scalars (round to nearest even, NaN kept). */
SFTDEF float    sft_bf16_to_f32(uint16_t h);
SFTDEF uint16_t sft_f32_to_bf16(float f);
SFTDEF float    sft_f16_to_f32(uint16_t h);
SFTDEF uint16_t sft_f32_to_f16(float f);

/* ============================================================================
   === safetensors
   The reader maps the file (or reads it with SFT_NO_MMAP), checks the header
   length, every dtype, shape and byte range against the file, and rejects
   overlapping or uncovered ranges. The writer lays tensors out as the reference
   library does (8-byte aligned header, optional __metadata__). */

#define SFT_ST_MAX_DIMS 8

typedef struct sft_st_tensor {
    const char *name;
    sft_dtype   dtype;
    int         ndim;
    int64_t     shape[SFT_ST_MAX_DIMS];
    uint64_t    offset;    /* of the data, from the start of the file */
    uint64_t    nbytes;
    const void *data;      /* nbytes in the mapping; valid until close. Files from other
                              writers may leave it unaligned: read it with memcpy or
                              use sft_st_load, which copies */
} sft_st_tensor;

typedef struct sft_st_file sft_st_file;

SFTDEF sft_status           sft_st_open(sft_context *ctx, const char *path, sft_st_file **out);
SFTDEF void                 sft_st_close(sft_st_file *f);
SFTDEF int                  sft_st_count(const sft_st_file *f);
SFTDEF const sft_st_tensor *sft_st_tensor_at(const sft_st_file *f, int index); /* file order */
SFTDEF const sft_st_tensor *sft_st_find(const sft_st_file *f, const char *name);
/* sft_st_metadata: a __metadata__ value, or NULL. */
SFTDEF const char          *sft_st_metadata(const sft_st_file *f, const char *key);
/* sft_st_load: a new persistent tensor holding the named entry (<= 4 dims; dtype kept). */
SFTDEF sft_status           sft_st_load(sft_context *ctx, const sft_st_file *f, const char *name, sft_tensor **out);

typedef struct sft_st_entry {
    const char *name;
    sft_dtype   dtype;
    int         ndim;
    int64_t     shape[SFT_ST_MAX_DIMS];
    const void *data;      /* product(shape) * sft_dtype_size(dtype) bytes */
} sft_st_entry;

/* sft_st_save: write entries (and metadata: n_meta key/value pairs, may be 0) to
   path through sft_file_write_atomic. Names must be unique. */
SFTDEF sft_status sft_st_save(sft_context *ctx, const char *path, const sft_st_entry *entries, int n_entries,
                              const char *const *meta_keys, const char *const *meta_values, int n_meta);
/* sft_st_entry_from_tensor: an entry describing a CPU tensor (for a tensor on
   another device the entry's data is NULL and sft_st_save refuses it: copy it to
   the CPU first). */
SFTDEF sft_st_entry sft_st_entry_from_tensor(const char *name, const sft_tensor *t);

/* ============================================================================
   === autograd
   Operators record themselves on the context's tape while gradient mode is on and
   an input requires a gradient. sft_backward runs the tape in reverse from a
   scalar loss and adds gradients into every tensor that requires one (like
   PyTorch, gradients accumulate until zeroed). */

/* sft_step_begin: forget the tape and reset the step arenas (all operator outputs
   of the last step are gone). After the first step this allocates nothing. */
SFTDEF void       sft_step_begin(sft_context *ctx);
/* sft_backward: d(loss)/d(x) for every recorded x that requires a gradient. loss
   must have one element. Gradients of persistent tensors are allocated on first
   use and persist; those of step tensors live in the arena. */
SFTDEF sft_status sft_backward(sft_context *ctx, sft_tensor *loss);
/* sft_grad_enabled_set: turn recording on/off; returns the previous setting. */
SFTDEF int        sft_grad_enabled_set(sft_context *ctx, int on);

/* A checkpointed segment: fn computes n_out outputs from n_in inputs with
   operators only. Its forward runs without keeping intermediates (they are freed
   as soon as the outputs are copied); backward runs fn again and back-propagates
   through it. Results and gradients are bit-identical to calling fn directly, as
   long as fn is deterministic (use counter-based dropout seeds). fn, user and the
   inputs must stay valid until backward has run (it calls fn again). Segments do
   not nest. */
typedef sft_status (*sft_segment_fn)(sft_context *ctx, void *user, sft_tensor *const *in, sft_tensor **out);
SFTDEF sft_status sft_checkpoint(sft_context *ctx, sft_segment_fn fn, void *user, int n_in, sft_tensor *const *in,
                                 int n_out, sft_tensor **out);

/* ============================================================================
   === operators
   All take f32 inputs (except ids/labels: i32), write a new step tensor to *out
   and record themselves for backward. Shapes are checked; a mismatch returns
   SFT_ERR_SHAPE with a message naming the op and both shapes. */

/* sft_matmul: C = op(A) . op(B), op = transpose if trans_x. A [.., M, K] (or
   [.., K, M]), B [K, N] (or [N, K]) or with the same leading batch dims as A.
   A linear layer y = x W^T is sft_matmul(ctx, x, W, 0, 1, &y). */
SFTDEF sft_status sft_matmul(sft_context *ctx, sft_tensor *a, sft_tensor *b, int trans_a, int trans_b, sft_tensor **out);
/* sft_add / sft_mul: elementwise; b has a's shape or a suffix of it (broadcast over
   the leading dims, e.g. a bias [N] onto [M, N]). */
SFTDEF sft_status sft_add(sft_context *ctx, sft_tensor *a, sft_tensor *b, sft_tensor **out);
SFTDEF sft_status sft_mul(sft_context *ctx, sft_tensor *a, sft_tensor *b, sft_tensor **out);
/* sft_scale: x * s. */
SFTDEF sft_status sft_scale(sft_context *ctx, sft_tensor *x, float s, sft_tensor **out);
/* sft_reshape: the same data with another shape of equal numel (a view). */
SFTDEF sft_status sft_reshape(sft_context *ctx, sft_tensor *x, int ndim, const int64_t *shape, sft_tensor **out);
/* sft_embedding: rows of weight [V, D] picked by ids (i32, any shape) -> ids.shape + [D].
   An id outside [0, V) fails with SFT_ERR_ARG naming it. */
SFTDEF sft_status sft_embedding(sft_context *ctx, sft_tensor *weight, sft_tensor *ids, sft_tensor **out);
/* sft_rmsnorm: x * rsqrt(mean(x^2, last dim) + eps) * weight [D]. */
SFTDEF sft_status sft_rmsnorm(sft_context *ctx, sft_tensor *x, sft_tensor *weight, float eps, sft_tensor **out);
/* sft_silu: x * sigmoid(x).  sft_swiglu: silu(gate) * up. */
SFTDEF sft_status sft_silu(sft_context *ctx, sft_tensor *x, sft_tensor **out);
SFTDEF sft_status sft_swiglu(sft_context *ctx, sft_tensor *gate, sft_tensor *up, sft_tensor **out);

/* Rotary position embedding as transformers' Llama applies it (rotate_half: the
   first and second halves of each head are the pair). */
typedef enum sft_rope_scaling { SFT_ROPE_DEFAULT = 0, SFT_ROPE_LINEAR, SFT_ROPE_LLAMA3 } sft_rope_scaling;
typedef struct sft_rope_desc {
    float            theta;            /* rope_theta; 0 = 10000               */
    sft_rope_scaling scaling;
    float            factor;           /* LINEAR / LLAMA3                      */
    float            low_freq_factor;  /* LLAMA3                               */
    float            high_freq_factor; /* LLAMA3                               */
    int              original_max_position_embeddings; /* LLAMA3              */
} sft_rope_desc;
/* sft_rope: x [B, T, H, head_dim] (head_dim even) rotated by positions (i32 [B, T]). */
SFTDEF sft_status sft_rope(sft_context *ctx, sft_tensor *x, sft_tensor *positions, const sft_rope_desc *desc,
                           sft_tensor **out);
/* sft_rope_inv_freq: the head_dim/2 inverse frequencies desc gives (for tests/hosts). */
SFTDEF sft_status sft_rope_inv_freq(const sft_rope_desc *desc, int head_dim, float *inv_freq);

/* sft_attention: causal softmax(q k^T * scale) v with grouped-query heads.
   q [B, T, Hq, D], k and v [B, T, Hkv, D] with Hq % Hkv == 0; scale 0 = 1/sqrt(D).
   seq_ids (i32 [B, T], may be NULL): a query attends only to earlier keys with the
   same id (packed sequences). Holds no T x T matrix. Output [B, T, Hq, D]. */
SFTDEF sft_status sft_attention(sft_context *ctx, sft_tensor *q, sft_tensor *k, sft_tensor *v, sft_tensor *seq_ids,
                                float scale, sft_tensor **out);

/* Cross-entropy over the last dim of logits [.., V] against labels (i32, logits'
   leading shape; -100 = ignored). Labels are already aligned with the logits (the
   caller shifts). Reductions: MEAN over counted tokens (default), SUM, or
   SUM / divisor (Hugging Face's num_items_in_batch). */
typedef enum sft_ce_reduction { SFT_CE_MEAN = 0, SFT_CE_SUM, SFT_CE_SUM_DIV } sft_ce_reduction;
typedef struct sft_ce_desc {
    sft_ce_reduction reduction;
    float            divisor;          /* SUM_DIV: e.g. num_items_in_batch     */
    float            label_smoothing;  /* e in [0, 1): (1-e)*nll + e*mean(-log p) */
    int              ignore_index;     /* 0 = -100                             */
} sft_ce_desc;
/* sft_cross_entropy: a scalar loss; desc NULL = mean, no smoothing. With no counted
   token the MEAN is NaN, as in PyTorch. */
SFTDEF sft_status sft_cross_entropy(sft_context *ctx, sft_tensor *logits, sft_tensor *labels, const sft_ce_desc *desc,
                                    sft_tensor **out);
/* sft_linear_cross_entropy: sft_cross_entropy(hidden . weight^T, labels) without
   ever holding the logits: hidden [.., D], weight [V, D] (the output projection),
   labels with hidden's leading shape. The logits exist one vocabulary chunk at a
   time (about 16 MiB for all rows), in forward and again in backward; gradients
   flow to hidden and weight. Same desc and result as sft_cross_entropy up to
   rounding. */
SFTDEF sft_status sft_linear_cross_entropy(sft_context *ctx, sft_tensor *hidden, sft_tensor *weight, sft_tensor *labels,
                                           const sft_ce_desc *desc, sft_tensor **out);
/* sft_dropout: zero each element with probability p, scale the rest by 1/(1-p).
   The mask is a pure function of (seed, element index): the same seed gives the
   same mask on any thread count and on recomputation. p = 0 returns x unchanged. */
SFTDEF sft_status sft_dropout(sft_context *ctx, sft_tensor *x, float p, uint64_t seed, sft_tensor **out);

/* ============================================================================
   === random numbers
   Counter-based (Philox-4x32-10): a value is a pure function of (key, counter). */
SFTDEF void  sft_philox(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]);
/* sft_rng_uniform: a float in [0, 1) from (key, index). */
SFTDEF float sft_rng_uniform(uint64_t key, uint64_t index);
/* sft_rng_key: mix a seed with a purpose and two counters into one key. */
SFTDEF uint64_t sft_rng_key(uint64_t seed, uint64_t purpose, uint64_t a, uint64_t b);

/* ============================================================================
   === CUDA seam
   sft_cuda_available: 1 if this build has the CUDA backend and a device answers. */
SFTDEF int sft_cuda_available(void);

#ifdef __cplusplus
}
#endif
#endif /* SFT_H */

/* ############################################################################
   ##                                                                        ##
   ##                           IMPLEMENTATION                               ##
   ##                                                                        ##
   ############################################################################ */
#ifdef SFT_IMPLEMENTATION
#ifndef SFT__IMPLEMENTED
#define SFT__IMPLEMENTED

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <math.h>
#include <float.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>
#ifndef SFT_NO_MMAP
#  include <sys/mman.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#  include <cpuid.h>
#  define SFT__X86 1
#endif
/* SIMD kernels are compiled into every x86 build with per-function target
   attributes (no -march flags needed) and chosen at run time. */
#if defined(SFT__X86) && (defined(__GNUC__) || defined(__clang__))
#  include <immintrin.h>
#  define SFT__SIMD_X86 1
#  define SFT__TARGET_AVX2 __attribute__((target("avx2,fma")))
#  define SFT__TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
/* g++ 12 warns that AVX-512 intrinsics read an uninitialised "undefined" vector
   (GCC bug 105593); the warning is about the compiler's own headers. */
#  if defined(__GNUC__) && !defined(__clang__)
#    define SFT__AVX512_WARNINGS_OFF _Pragma("GCC diagnostic push") \
         _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"") _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")
#    define SFT__AVX512_WARNINGS_ON _Pragma("GCC diagnostic pop")
#  else
#    define SFT__AVX512_WARNINGS_OFF
#    define SFT__AVX512_WARNINGS_ON
#  endif
#endif

#if defined(SFT_MALLOC) && defined(SFT_REALLOC) && defined(SFT_FREE)
#elif !defined(SFT_MALLOC) && !defined(SFT_REALLOC) && !defined(SFT_FREE)
#  define SFT_MALLOC(sz)     malloc(sz)
#  define SFT_REALLOC(p, sz) realloc(p, sz)
#  define SFT_FREE(p)        free(p)
#else
#  error "sft.h: define all of SFT_MALLOC, SFT_REALLOC and SFT_FREE, or none"
#endif

#ifndef SFT_ASSERT
#  include <assert.h>
#  define SFT_ASSERT(x) assert(x)
#endif

/* stb_ds: dynamic arrays and string hash maps, on the library's allocator. */
#ifndef SFT_STB_DS_PATH
#  define SFT_STB_DS_PATH <stb/stb_ds.h>
#endif
#ifndef SFT_NO_STB_DS_IMPLEMENTATION
#  define STBDS_REALLOC(c, p, s) SFT_REALLOC(p, s)
#  define STBDS_FREE(c, p)       SFT_FREE(p)
#  define STB_DS_IMPLEMENTATION
#endif
#include SFT_STB_DS_PATH
#ifdef SFT_USE_CBLAS
#  include <cblas.h>
#endif

#if defined(__cplusplus)
#  define SFT__TLS thread_local
#elif defined(_MSC_VER)
#  define SFT__TLS __declspec(thread)
#else
#  define SFT__TLS __thread
#endif

#if defined(__GNUC__) || defined(__clang__)
#  define SFT__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define SFT__PRINTF(a, b)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================================
   === errors */

static SFT__TLS char sft__err_msg[1024];

SFTDEF const char *sft_status_str(sft_status s) {
    static const char *const names[SFT_STATUS_COUNT] = {
        "SFT_OK", "SFT_ERR_ARG", "SFT_ERR_SHAPE", "SFT_ERR_DTYPE", "SFT_ERR_DEVICE", "SFT_ERR_NOMEM",
        "SFT_ERR_IO", "SFT_ERR_FORMAT", "SFT_ERR_LIMIT", "SFT_ERR_STATE", "SFT_ERR_NOT_FOUND",
        "SFT_ERR_UNSUPPORTED"};
    if ((int)s < 0 || s >= SFT_STATUS_COUNT) return "SFT_ERR_UNKNOWN";
    return names[s];
}

SFTDEF const char *sft_last_error(void) { return sft__err_msg; }
SFTDEF void sft_clear_error(void) { sft__err_msg[0] = 0; }

/* sft__fail: set this thread's message and return the status (the one way every
   error leaves the library). */
static sft_status sft__fail(sft_status s, const char *fmt, ...) SFT__PRINTF(2, 3);
static sft_status sft__fail(sft_status s, const char *fmt, ...) {
    char msg[sizeof sft__err_msg];   /* the arguments may include sft_last_error() itself */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(sft__err_msg, msg, sizeof msg);
    return s;
}

/* sft__log: a message to the host's log callback, if it set one (the library
   never prints by itself). */
static void sft__log(const sft_context *ctx, sft_log_level level, const char *fmt, ...) SFT__PRINTF(3, 4);

#define SFT__TRY(expr) do { sft_status sft__s_ = (expr); if (sft__s_ != SFT_OK) return sft__s_; } while (0)

/* ============================================================================
   === platform: CPU probe */

typedef struct sft__cpu_features { int probed, avx2_fma, avx512; } sft__cpu_features;
static sft__cpu_features sft__cpu; /* the one process-wide cache: facts about the machine */

static void sft__cpu_probe(void) {
    if (sft__cpu.probed) return;
#ifdef SFT__X86
    {
        unsigned a, b, c, d, xcr0_lo = 0, xcr0_hi = 0;
        uint64_t xcr0 = 0;
        int osxsave = 0, avx = 0, fma = 0, avx2 = 0, avx512f = 0, avx512bw = 0, avx512vl = 0;
        if (__get_cpuid(1, &a, &b, &c, &d)) {
            osxsave = (c >> 27) & 1; avx = (c >> 28) & 1; fma = (c >> 12) & 1;
        }
        if (osxsave) {
            __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
            xcr0 = ((uint64_t)xcr0_hi << 32) | xcr0_lo;
        }
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
            avx2 = (b >> 5) & 1; avx512f = (b >> 16) & 1; avx512bw = (b >> 30) & 1; avx512vl = (b >> 31) & 1;
        }
        {
            int ymm_os = (xcr0 & 0x6) == 0x6, zmm_os = (xcr0 & 0xe6) == 0xe6;
            sft__cpu.avx2_fma = ymm_os && avx && fma && avx2;
            sft__cpu.avx512 = sft__cpu.avx2_fma && zmm_os && avx512f && avx512bw && avx512vl;
        }
    }
#endif
    sft__cpu.probed = 1;
}

/* ============================================================================
   === memory: the context allocator
   Every context allocation is 64-byte aligned and carries a small header (the raw
   pointer and the size) so frees can be counted. */

#define SFT__ALIGN 64
#define SFT__ALLOC_EXTRA (SFT__ALIGN + 2 * sizeof(size_t))

/* Blocks double in size, so a few dozen cover any machine's memory. */
#define SFT__ARENA_MAX_BLOCKS 40
typedef struct sft__arena_block { unsigned char *base; size_t cap, used; } sft__arena_block;
typedef struct sft__arena {
    sft_context      *ctx;
    sft_device        device;
    sft__arena_block  blocks[SFT__ARENA_MAX_BLOCKS];
    int               n_blocks;
    int               cur;      /* the block allocations come from                   */
    size_t            offset;   /* bytes before blocks[cur] (their capacities summed) */
    size_t            high_water; /* most bytes in use at once since the last reset  */
} sft__arena;
typedef struct sft__arena_mark { int cur; size_t used, offset; } sft__arena_mark;

typedef struct sft__pool sft__pool;
typedef struct sft__node sft__node;

struct sft_context {
    sft_context_desc desc;
    int              threads;
    sft__pool       *pool;
    sft_cpu_path     cpu_path;
    /* accounting */
    size_t   bytes_in_use, peak_bytes;
    uint64_t allocs, frees;
    /* autograd: the step arena holds operator outputs and tape nodes; the scratch
       arena holds a checkpointed segment's insides while it runs. */
    sft__arena  arena[SFT_DEVICE_COUNT];
    sft__arena  scratch[SFT_DEVICE_COUNT];
    int         in_scratch;      /* operators allocate from scratch (inside a segment) */
    sft__node  *tape;            /* the newest recorded node; each links to the one before */
    int         grad_enabled;
    int         in_segment;
    /* GEMM packing buffers, one slice per thread, made on first use */
    float      *gemm_pack;
    /* attention tiles and their packing buffers, one slice per thread, made on first use */
    float      *attn_scratch;
};

static void *sft__raw_alloc(sft_context *ctx, size_t size) {
    if (ctx && ctx->desc.allocator.alloc) return ctx->desc.allocator.alloc(size, ctx->desc.allocator.user);
    return SFT_MALLOC(size);
}

static void sft__raw_free(sft_context *ctx, void *p) {
    if (ctx && ctx->desc.allocator.free) ctx->desc.allocator.free(p, ctx->desc.allocator.user);
    else SFT_FREE(p);
}

/* sft__alloc: size bytes, 64-byte aligned, counted; NULL on failure (or size 0 ->
   a valid 1-byte block, so callers need no special case). ctx may be NULL. */
static void *sft__alloc(sft_context *ctx, size_t size) {
    unsigned char *raw, *p;
    if (size > SIZE_MAX - SFT__ALLOC_EXTRA) return NULL;
    raw = (unsigned char *)sft__raw_alloc(ctx, size + SFT__ALLOC_EXTRA);
    if (!raw) return NULL;
    p = raw + 2 * sizeof(size_t);
    p += (SFT__ALIGN - ((uintptr_t)p % SFT__ALIGN)) % SFT__ALIGN;
    ((size_t *)(void *)p)[-1] = (size_t)(p - raw);
    ((size_t *)(void *)p)[-2] = size;
    if (ctx) {
        ctx->allocs++;
        ctx->bytes_in_use += size;
        if (ctx->bytes_in_use > ctx->peak_bytes) ctx->peak_bytes = ctx->bytes_in_use;
    }
    return p;
}

static void *sft__calloc(sft_context *ctx, size_t n, size_t size) {
    void *p;
    if (size && n > SIZE_MAX / size) return NULL;
    p = sft__alloc(ctx, n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

static void sft__free(sft_context *ctx, void *ptr) {
    unsigned char *p = (unsigned char *)ptr;
    if (!p) return;
    if (ctx) {
        ctx->frees++;
        ctx->bytes_in_use -= ((size_t *)(void *)p)[-2];
    }
    sft__raw_free(ctx, p - ((size_t *)(void *)p)[-1]);
}

SFTDEF void sft_free(sft_context *ctx, void *ptr) { sft__free(ctx, ptr); }

static char *sft__strdup(sft_context *ctx, const char *s) {
    size_t n = strlen(s) + 1;
    char *d = (char *)sft__alloc(ctx, n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ============================================================================
   === platform: the thread pool
   Persistent workers; sft__parallel hands them task indices 0..n-1 through an
   atomic counter and the caller works too. Tasks write disjoint outputs, so which
   thread runs which task never changes a result.

   Waking a sleeping thread costs tens of microseconds (about 100 on the virtual
   machines we measured), which a 2 ms GEMM run as six parallel steps cannot
   afford. So a worker that finishes a job spins for a while (SFT__POOL_SPIN
   pause instructions, about half a millisecond) watching for the next one before
   it sleeps on a condition variable; the caller likewise spins, then sleeps,
   while waiting for the workers to finish. */

#define SFT__POOL_SPIN 20000

/* A task function gets the task index and the index of the thread running it
   (0 = the caller, 1.. = workers), for per-thread scratch buffers. */
typedef void (*sft__task_fn)(void *arg, int64_t task, int thread);

typedef struct sft__worker { sft__pool *pool; int index; } sft__worker;

struct sft__pool {
    pthread_t      *threads;
    sft__worker    *workers;
    int             n_workers;
    pthread_mutex_t mu;
    pthread_cond_t  wake, done;
    int             sleeping;   /* workers blocked on wake (under mu)          */
    int             waiting;    /* the caller is blocked on done (under mu)    */
    uint64_t        generation; /* atomic: bumped for every job                */
    int             busy;       /* atomic: workers still in the current job    */
    int             quit;       /* atomic                                      */
    sft__task_fn    fn;
    void           *arg;
    int64_t         n_tasks;
    int64_t         next;       /* atomic: the next task index to hand out     */
};

static void sft__cpu_relax(void) {
#if defined(SFT__X86)
    __builtin_ia32_pause();
#endif
}

static void sft__pool_drain(sft__pool *p, int thread) {
    for (;;) {
        int64_t t = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
        if (t >= p->n_tasks) break;
        p->fn(p->arg, t, thread);
    }
}

/* sft__pool_await_job: the next generation after seen (or quit), spinning first. */
static uint64_t sft__pool_await_job(sft__pool *p, uint64_t seen) {
    uint64_t g;
    int spin;
    for (spin = 0; spin < SFT__POOL_SPIN; spin++) {
        g = __atomic_load_n(&p->generation, __ATOMIC_ACQUIRE);
        if (g != seen || __atomic_load_n(&p->quit, __ATOMIC_ACQUIRE)) return g;
        sft__cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    p->sleeping++;
    while ((g = __atomic_load_n(&p->generation, __ATOMIC_ACQUIRE)) == seen && !__atomic_load_n(&p->quit, __ATOMIC_ACQUIRE))
        pthread_cond_wait(&p->wake, &p->mu);
    p->sleeping--;
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *sft__pool_worker(void *arg) {
    const sft__worker *w = (const sft__worker *)arg;
    sft__pool *p = w->pool;
    uint64_t seen = 0;
    for (;;) {
        seen = sft__pool_await_job(p, seen);
        if (__atomic_load_n(&p->quit, __ATOMIC_ACQUIRE)) break;
        sft__pool_drain(p, w->index);
        if (__atomic_sub_fetch(&p->busy, 1, __ATOMIC_ACQ_REL) == 0) {
            pthread_mutex_lock(&p->mu);             /* the caller may be asleep */
            if (p->waiting) pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

static void sft__pool_destroy(sft_context *ctx, sft__pool *p) {
    int i;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    __atomic_store_n(&p->quit, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (i = 0; i < p->n_workers; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    sft__free(ctx, p->threads);
    sft__free(ctx, p->workers);
    sft__free(ctx, p);
}

static sft_status sft__pool_create(sft_context *ctx, int n_workers, sft__pool **out) {
    sft__pool *p = (sft__pool *)sft__calloc(ctx, 1, sizeof *p);
    int i;
    *out = NULL;
    if (!p) return sft__fail(SFT_ERR_NOMEM, "context: cannot allocate the thread pool");
    p->threads = (pthread_t *)sft__calloc(ctx, (size_t)n_workers, sizeof(pthread_t));
    p->workers = (sft__worker *)sft__calloc(ctx, (size_t)n_workers, sizeof(sft__worker));
    if (!p->threads || !p->workers) {
        sft__free(ctx, p->threads); sft__free(ctx, p->workers); sft__free(ctx, p);
        return sft__fail(SFT_ERR_NOMEM, "context: cannot allocate %d threads", n_workers);
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    for (i = 0; i < n_workers; i++) {
        p->workers[i].pool = p;
        p->workers[i].index = i + 1;
        if (pthread_create(&p->threads[i], NULL, sft__pool_worker, &p->workers[i]) != 0) {
            p->n_workers = i;
            sft__pool_destroy(ctx, p);
            return sft__fail(SFT_ERR_NOMEM, "context: pthread_create failed for worker %d of %d", i, n_workers);
        }
        p->n_workers = i + 1;
    }
    *out = p;
    return SFT_OK;
}

/* sft__parallel: run fn(arg, t) for t in [0, n_tasks) on the pool; returns when all
   are done. With one thread (or one task) it runs inline. */
static void sft__parallel(sft_context *ctx, int64_t n_tasks, sft__task_fn fn, void *arg) {
    sft__pool *p = ctx->pool;
    int64_t t;
    int spin;
    if (n_tasks <= 0) return;
    if (!p || n_tasks == 1) {
        for (t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    p->fn = fn; p->arg = arg; p->n_tasks = n_tasks;
    __atomic_store_n(&p->next, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->busy, p->n_workers, __ATOMIC_RELAXED);
    __atomic_add_fetch(&p->generation, 1, __ATOMIC_RELEASE);   /* publishes the job */
    pthread_mutex_lock(&p->mu);
    if (p->sleeping) pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    sft__pool_drain(p, 0);
    for (spin = 0; spin < SFT__POOL_SPIN && __atomic_load_n(&p->busy, __ATOMIC_ACQUIRE) > 0; spin++) sft__cpu_relax();
    if (__atomic_load_n(&p->busy, __ATOMIC_ACQUIRE) > 0) {
        pthread_mutex_lock(&p->mu);
        p->waiting = 1;
        while (__atomic_load_n(&p->busy, __ATOMIC_ACQUIRE) > 0) pthread_cond_wait(&p->done, &p->mu);
        p->waiting = 0;
        pthread_mutex_unlock(&p->mu);
    }
}

/* ============================================================================
   === platform: files */

static size_t sft__default_write(int fd, const void *data, size_t len, void *user) {
    const char *p = (const char *)data;
    size_t done = 0;
    (void)user;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += (size_t)n;
    }
    return done;
}

/* sft__fsync_dir: make a rename durable by syncing the directory that holds path. */
static void sft__fsync_dir(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    int fd;
    if (n == 0) { dir[0] = slash ? '/' : '.'; dir[1] = 0; }
    else if (n < sizeof dir) { memcpy(dir, path, n); dir[n] = 0; }
    else return;
    fd = open(dir, O_RDONLY);
    if (fd >= 0) { (void)fsync(fd); close(fd); }
}

SFTDEF sft_status sft_file_write_atomic(sft_context *ctx, const char *path, const sft_buf *parts, int n_parts) {
    sft_write_fn write_fn = (ctx && ctx->desc.write) ? ctx->desc.write : sft__default_write;
    void *user = ctx ? ctx->desc.write_user : NULL;
    char tmp[4096];
    int fd, i, ok = 1, err = 0;
    if (!path || (n_parts > 0 && !parts) || n_parts < 0) return sft__fail(SFT_ERR_ARG, "file write: NULL path or parts");
    if (strlen(path) + 5 > sizeof tmp) return sft__fail(SFT_ERR_ARG, "file write: path too long: %.200s...", path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return sft__fail(SFT_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    for (i = 0; i < n_parts && ok; i++) {
        errno = 0;
        if (parts[i].len && write_fn(fd, parts[i].data, parts[i].len, user) != parts[i].len) { ok = 0; err = errno; }
    }
    if (ok && fsync(fd) != 0) { ok = 0; err = errno; }
    if (close(fd) != 0 && ok) { ok = 0; err = errno; }
    if (!ok) {
        remove(tmp);
        return sft__fail(SFT_ERR_IO, "%s: write failed (%s); %s left unchanged", tmp, err ? strerror(err) : "short write",
                         path);
    }
    if (rename(tmp, path) != 0) {
        err = errno;
        remove(tmp);
        return sft__fail(SFT_ERR_IO, "%s: cannot rename into place: %s", path, strerror(err));
    }
    sft__fsync_dir(path);
    return SFT_OK;
}

SFTDEF sft_status sft_file_read(sft_context *ctx, const char *path, size_t max_bytes, char **data, size_t *len) {
    struct stat st;
    char *buf;
    size_t n, done = 0;
    int fd;
    if (!path || !data || !len) return sft__fail(SFT_ERR_ARG, "file read: NULL argument");
    *data = NULL; *len = 0;
    if (max_bytes == 0) max_bytes = (size_t)1 << 30;
    fd = open(path, O_RDONLY);
    if (fd < 0) return sft__fail(SFT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return sft__fail(SFT_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > (uint64_t)max_bytes) {
        close(fd);
        return sft__fail(SFT_ERR_LIMIT, "%s: %llu bytes, limit %llu", path, (unsigned long long)st.st_size,
                         (unsigned long long)max_bytes);
    }
    n = (size_t)st.st_size;
    buf = (char *)sft__alloc(ctx, n + 1);
    if (!buf) { close(fd); return sft__fail(SFT_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n + 1); }
    while (done < n) {
        ssize_t r = read(fd, buf + done, n - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        done += (size_t)r;
    }
    close(fd);
    if (done != n) { sft__free(ctx, buf); return sft__fail(SFT_ERR_IO, "%s: short read (%zu of %zu bytes)", path, done, n); }
    buf[n] = 0;
    *data = buf; *len = n;
    return SFT_OK;
}

/* ============================================================================
   === memory: arenas
   A step arena hands out 64-byte aligned pieces of big blocks and is reset, not
   freed, between steps. When a step needed more than one block, the reset merges
   them into one block as large as the step's high-water mark, so from the second
   step on a steady training step allocates nothing. Marks let a checkpointed
   segment give back what it used. */

#define SFT__ARENA_MIN_BLOCK ((size_t)1 << 20)

static sft_status sft__device_alloc(sft_context *ctx, sft_device device, size_t size, void **out);
static void       sft__device_free(sft_context *ctx, sft_device device, void *ptr);

static void sft__arena_init(sft__arena *a, sft_context *ctx, sft_device device) {
    memset(a, 0, sizeof *a);
    a->ctx = ctx;
    a->device = device;
}

static void sft__arena_free_blocks(sft__arena *a) {
    int i;
    for (i = 0; i < a->n_blocks; i++) sft__device_free(a->ctx, a->device, a->blocks[i].base);
    a->n_blocks = 0;
    a->cur = 0; a->offset = 0;
}

static size_t sft__arena_capacity(const sft__arena *a) {
    size_t cap = 0;
    int i;
    for (i = 0; i < a->n_blocks; i++) cap += a->blocks[i].cap;
    return cap;
}

static sft_status sft__arena_add_block(sft__arena *a, size_t cap) {
    sft__arena_block *b;
    void *p = NULL;
    if (a->n_blocks == SFT__ARENA_MAX_BLOCKS)
        return sft__fail(SFT_ERR_NOMEM, "arena: %d blocks in use, cannot add one of %zu bytes", a->n_blocks, cap);
    SFT__TRY(sft__device_alloc(a->ctx, a->device, cap, &p));
    b = &a->blocks[a->n_blocks++];
    b->base = (unsigned char *)p; b->cap = cap; b->used = 0;
    return SFT_OK;
}

/* sft__arena_alloc: size bytes (64-byte aligned) valid until the arena is reset or
   released below this point. */
static sft_status sft__arena_alloc(sft__arena *a, size_t size, void **out) {
    size_t need = (size + SFT__ALIGN - 1) & ~(size_t)(SFT__ALIGN - 1);
    *out = NULL;
    if (size > SIZE_MAX / 2) return sft__fail(SFT_ERR_NOMEM, "arena: request of %zu bytes", size);
    for (;;) {
        sft__arena_block *b;
        if (a->cur < a->n_blocks) {
            b = &a->blocks[a->cur];
            if (b->cap - b->used >= need) {
                *out = b->base + b->used;
                b->used += need;
                if (a->offset + b->used > a->high_water) a->high_water = a->offset + b->used;
                return SFT_OK;
            }
            if (a->cur + 1 < a->n_blocks) {   /* move on to the next block */
                a->offset += b->cap;
                a->cur++;
                a->blocks[a->cur].used = 0;
                continue;
            }
            a->offset += b->cap;
            a->cur++;
        }
        {   /* a new block doubles the arena; a request larger than that gets a block of
               its own size plus room for the small ones that follow */
            size_t grow = sft__arena_capacity(a), cap;
            if (grow < SFT__ARENA_MIN_BLOCK) grow = SFT__ARENA_MIN_BLOCK;
            cap = need <= grow ? grow : need + SFT__ARENA_MIN_BLOCK;
            SFT__TRY(sft__arena_add_block(a, cap));
            a->blocks[a->cur].used = 0;
        }
    }
}

static sft__arena_mark sft__arena_get_mark(const sft__arena *a) {
    sft__arena_mark m;
    m.cur = a->cur; m.offset = a->offset;
    m.used = a->cur < a->n_blocks ? a->blocks[a->cur].used : 0;
    return m;
}

static void sft__arena_release(sft__arena *a, sft__arena_mark m) {
    a->cur = m.cur; a->offset = m.offset;
    if (m.cur < a->n_blocks) a->blocks[m.cur].used = m.used;
}

/* sft__arena_reset: empty the arena; merge several blocks into one of the
   high-water size so the next step of the same shape fits without allocating. */
static void sft__arena_reset(sft__arena *a) {
    if (a->n_blocks > 1) {
        size_t want = (a->high_water + SFT__ALIGN - 1) & ~(size_t)(SFT__ALIGN - 1);
        sft__log(a->ctx, SFT_LOG_DEBUG, "arena: the last step used %d blocks; merged into one of %zu bytes", a->n_blocks,
                 want);
        sft__arena_free_blocks(a);
        if (sft__arena_add_block(a, want) != SFT_OK) sft_clear_error(); /* retried on next alloc */
    }
    a->cur = 0; a->offset = 0; a->high_water = 0;
    if (a->n_blocks) a->blocks[0].used = 0;
}

/* ============================================================================
   === context */

static sft_status sft__cpu_path_check(sft_cpu_path path);

SFTDEF sft_status sft_context_create(const sft_context_desc *desc, sft_context **out) {
    sft_context_desc d;
    sft_context *ctx;
    int dev;
    const char *env;
    if (!out) return sft__fail(SFT_ERR_ARG, "sft_context_create: out is NULL");
    *out = NULL;
    memset(&d, 0, sizeof d);
    if (desc) d = *desc;
    if (d.threads < 0 || d.threads > 1024) return sft__fail(SFT_ERR_ARG, "sft_context_create: threads = %d (want 0..1024)", d.threads);
    if (!d.allocator.alloc != !d.allocator.free)
        return sft__fail(SFT_ERR_ARG, "sft_context_create: allocator needs both alloc and free");
    if (d.threads == 0) d.threads = 1;
    {   /* the context itself comes from the host allocator too */
        sft_context tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.desc = d;
        ctx = (sft_context *)sft__alloc(&tmp, sizeof *ctx);
        if (!ctx) return sft__fail(SFT_ERR_NOMEM, "sft_context_create: out of memory");
        memset(ctx, 0, sizeof *ctx);
        ctx->desc = d;
        ctx->allocs = tmp.allocs; ctx->bytes_in_use = tmp.bytes_in_use; ctx->peak_bytes = tmp.peak_bytes;
    }
    ctx->threads = d.threads;
    ctx->grad_enabled = 1;
    for (dev = 0; dev < SFT_DEVICE_COUNT; dev++) {
        sft__arena_init(&ctx->arena[dev], ctx, (sft_device)dev);
        sft__arena_init(&ctx->scratch[dev], ctx, (sft_device)dev);
    }
    if (d.threads > 1) {
        sft_status s = sft__pool_create(ctx, d.threads - 1, &ctx->pool);
        if (s != SFT_OK) { sft__free(ctx, ctx); return s; }
    }
    env = getenv("SFT_CPU_PATH");
    ctx->cpu_path = SFT_CPU_AUTO;
    if (env && *env) {
        int p;
        for (p = 1; p < SFT_CPU_PATH_COUNT; p++)
            if (strcmp(env, sft_cpu_path_name((sft_cpu_path)p)) == 0) break;
        if (p == SFT_CPU_PATH_COUNT || sft__cpu_path_check((sft_cpu_path)p) != SFT_OK) {
            sft_context_destroy(ctx);
            return sft__fail(SFT_ERR_UNSUPPORTED, "SFT_CPU_PATH=%s: not a path this machine and build can run", env);
        }
        ctx->cpu_path = (sft_cpu_path)p;
        sft__log(ctx, SFT_LOG_INFO, "context: SFT_CPU_PATH=%s forces the %s kernels", env, env);
    }
    sft__log(ctx, SFT_LOG_DEBUG, "context: sft.h %s, %d thread%s, cpu path %s", SFT_VERSION_STRING, ctx->threads,
             ctx->threads == 1 ? "" : "s", sft_cpu_path_name(sft_cpu_path_get(ctx)));
    *out = ctx;
    return SFT_OK;
}

SFTDEF void sft_context_destroy(sft_context *ctx) {
    int dev;
    sft_context tmp;
    if (!ctx) return;
    sft__pool_destroy(ctx, ctx->pool);
    sft__free(ctx, ctx->gemm_pack);
    sft__free(ctx, ctx->attn_scratch);
    for (dev = 0; dev < SFT_DEVICE_COUNT; dev++) {
        sft__arena_free_blocks(&ctx->arena[dev]);
        sft__arena_free_blocks(&ctx->scratch[dev]);
    }
    tmp = *ctx;
    sft__free(&tmp, ctx);
}

SFTDEF int sft_context_threads(const sft_context *ctx) { return ctx ? ctx->threads : 1; }

SFTDEF sft_mem_stats sft_context_mem_stats(const sft_context *ctx) {
    sft_mem_stats s;
    memset(&s, 0, sizeof s);
    if (!ctx) return s;
    s.bytes_in_use = ctx->bytes_in_use; s.peak_bytes = ctx->peak_bytes;
    s.allocs = ctx->allocs; s.frees = ctx->frees;
    s.arena_capacity = sft__arena_capacity(&ctx->arena[SFT_DEVICE_CPU]) + sft__arena_capacity(&ctx->scratch[SFT_DEVICE_CPU]);
    return s;
}

SFTDEF void sft_context_mem_reset_peak(sft_context *ctx) { if (ctx) ctx->peak_bytes = ctx->bytes_in_use; }

static void sft__log(const sft_context *ctx, sft_log_level level, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    if (!ctx || !ctx->desc.log) return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctx->desc.log(level, msg, ctx->desc.log_user);
}

/* ============================================================================
   === platform: CPU code path selection */

SFTDEF const char *sft_cpu_path_name(sft_cpu_path path) {
    switch (path) {
    case SFT_CPU_AUTO: return "auto";
    case SFT_CPU_PORTABLE: return "portable";
    case SFT_CPU_AVX2: return "avx2";
    case SFT_CPU_AVX512: return "avx512";
    default: return "unknown";
    }
}

SFTDEF int sft_cpu_path_supported(sft_cpu_path path) {
    sft__cpu_probe();
    switch (path) {
    case SFT_CPU_AUTO: case SFT_CPU_PORTABLE: return 1;
    case SFT_CPU_AVX2: return sft__cpu.avx2_fma;
    case SFT_CPU_AVX512: return sft__cpu.avx512;
    default: return 0;
    }
}

/* The CPU kernels each path has in this build (kernels section). */
static int sft__cpu_path_has_kernels(sft_cpu_path path);

static sft_status sft__cpu_path_check(sft_cpu_path path) {
    if ((int)path < 0 || path >= SFT_CPU_PATH_COUNT) return sft__fail(SFT_ERR_ARG, "cpu path %d: no such path", (int)path);
    if (!sft_cpu_path_supported(path))
        return sft__fail(SFT_ERR_UNSUPPORTED, "cpu path %s: this CPU lacks the instructions", sft_cpu_path_name(path));
    if (!sft__cpu_path_has_kernels(path))
        return sft__fail(SFT_ERR_UNSUPPORTED, "cpu path %s: this build has no kernels for it", sft_cpu_path_name(path));
    return SFT_OK;
}

SFTDEF sft_status sft_cpu_path_set(sft_context *ctx, sft_cpu_path path) {
    if (!ctx) return sft__fail(SFT_ERR_ARG, "sft_cpu_path_set: ctx is NULL");
    SFT__TRY(sft__cpu_path_check(path));
    ctx->cpu_path = path;
    sft__log(ctx, SFT_LOG_INFO, "cpu path: %s kernels from now on", sft_cpu_path_name(sft_cpu_path_get(ctx)));
    return SFT_OK;
}

/* sft_cpu_path_get: the path in force (AUTO resolved to the best one with kernels). */
SFTDEF sft_cpu_path sft_cpu_path_get(const sft_context *ctx) {
    int p;
    if (ctx && ctx->cpu_path != SFT_CPU_AUTO) return ctx->cpu_path;
    for (p = SFT_CPU_PATH_COUNT - 1; p > SFT_CPU_PORTABLE; p--)
        if (sft_cpu_path_supported((sft_cpu_path)p) && sft__cpu_path_has_kernels((sft_cpu_path)p)) return (sft_cpu_path)p;
    return SFT_CPU_PORTABLE;
}

/* ============================================================================
   === devices
   CPU memory comes from the context allocator; CUDA memory from the backend in
   sft_cuda.cuh, present only when the implementation is compiled with SFT_CUDA. */

#ifdef SFT_CUDA
static sft_status sft__cuda_alloc(sft_context *ctx, size_t size, void **out);
static void       sft__cuda_free(sft_context *ctx, void *ptr);
static sft_status sft__cuda_copy(void *dst, sft_device dst_dev, const void *src, sft_device src_dev, size_t n);
static sft_status sft__cuda_memset0(void *dst, size_t n);
#endif

static sft_status sft__no_cuda(const char *what) {
    return sft__fail(SFT_ERR_UNSUPPORTED, "%s: this build has no CUDA backend (compile the implementation with SFT_CUDA "
                     "through nvcc, see sft_cuda.cuh)", what);
}

static sft_status sft__device_alloc(sft_context *ctx, sft_device device, size_t size, void **out) {
    *out = NULL;
    if (device == SFT_DEVICE_CPU) {
        *out = sft__alloc(ctx, size);
        return *out ? SFT_OK : sft__fail(SFT_ERR_NOMEM, "cannot allocate %zu bytes", size);
    }
#ifdef SFT_CUDA
    if (device == SFT_DEVICE_CUDA) return sft__cuda_alloc(ctx, size, out);
#endif
    return sft__no_cuda("device allocation");
}

static void sft__device_free(sft_context *ctx, sft_device device, void *ptr) {
    if (!ptr) return;
    if (device == SFT_DEVICE_CPU) sft__free(ctx, ptr);
#ifdef SFT_CUDA
    else if (device == SFT_DEVICE_CUDA) sft__cuda_free(ctx, ptr);
#endif
}

static sft_status sft__device_copy(void *dst, sft_device dst_dev, const void *src, sft_device src_dev, size_t n) {
    if (dst_dev == SFT_DEVICE_CPU && src_dev == SFT_DEVICE_CPU) {
        if (n) memmove(dst, src, n);
        return SFT_OK;
    }
#ifdef SFT_CUDA
    return sft__cuda_copy(dst, dst_dev, src, src_dev, n);
#else
    return sft__no_cuda("device copy");
#endif
}

static sft_status sft__device_zero(void *dst, sft_device dev, size_t n) {
    if (dev == SFT_DEVICE_CPU) { if (n) memset(dst, 0, n); return SFT_OK; }
#ifdef SFT_CUDA
    return sft__cuda_memset0(dst, n);
#else
    return sft__no_cuda("device memset");
#endif
}

/* ============================================================================
   === tensor */

#define SFT__T_ARENA 1u  /* struct and data live in a step arena            */
#define SFT__T_VIEW  2u  /* data belongs to another tensor                  */
#define SFT__T_ALIAS_GRAD 4u /* grad belongs to another tensor (segments)   */

SFTDEF const char *sft_dtype_name(sft_dtype dt) {
    static const char *const names[SFT_DTYPE_COUNT] = {"F32", "BF16", "F16", "I32", "U8", "I8", "I64", "BOOL"};
    return ((int)dt >= 0 && dt < SFT_DTYPE_COUNT) ? names[dt] : "?";
}

SFTDEF size_t sft_dtype_size(sft_dtype dt) {
    static const size_t sizes[SFT_DTYPE_COUNT] = {4, 2, 2, 4, 1, 1, 8, 1};
    return ((int)dt >= 0 && dt < SFT_DTYPE_COUNT) ? sizes[dt] : 0;
}

/* sft__numel_checked: the element count of a shape, or -1 when a dim is negative
   or the product (in bytes of elem_size) would overflow. */
static int64_t sft__numel_checked(int ndim, const int64_t *shape, size_t elem_size) {
    int64_t n = 1;
    int i;
    for (i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] && n > (INT64_MAX / 8) / (shape[i] * (int64_t)(elem_size ? elem_size : 1))) return -1;
        n *= shape[i];
    }
    return n;
}

SFTDEF int64_t sft_tensor_numel(const sft_tensor *t) {
    int64_t n = 1;
    int i;
    for (i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

SFTDEF size_t sft_tensor_nbytes(const sft_tensor *t) { return (size_t)sft_tensor_numel(t) * sft_dtype_size(t->dtype); }

/* sft__shape_str: "[2, 3, 4]" into a caller buffer (for messages). */
static const char *sft__shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = 0;
    int i;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (i = 0; i < ndim && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
    return buf;
}
#define SFT__SHAPE(t, buf) sft__shape_str(buf, sizeof buf, (t)->ndim, (t)->shape)

static sft_status sft__check_new_shape(const char *op, sft_dtype dtype, int ndim, const int64_t *shape) {
    char sb[96];
    if ((int)dtype < 0 || dtype >= SFT_DTYPE_COUNT) return sft__fail(SFT_ERR_DTYPE, "%s: dtype %d does not exist", op, (int)dtype);
    if (ndim < 0 || ndim > SFT_MAX_DIMS) return sft__fail(SFT_ERR_SHAPE, "%s: %d dims (at most %d)", op, ndim, SFT_MAX_DIMS);
    if (ndim > 0 && !shape) return sft__fail(SFT_ERR_ARG, "%s: shape is NULL", op);
    if (sft__numel_checked(ndim, shape, sft_dtype_size(dtype)) < 0)
        return sft__fail(SFT_ERR_SHAPE, "%s: shape %s is negative or too large", op, sft__shape_str(sb, sizeof sb, ndim, shape));
    return SFT_OK;
}

static void sft__tensor_init(sft_tensor *t, sft_context *ctx, sft_device device, sft_dtype dtype, int ndim,
                             const int64_t *shape) {
    int i;
    memset(t, 0, sizeof *t);
    t->ctx = ctx; t->device = device; t->dtype = dtype; t->ndim = ndim;
    for (i = 0; i < ndim; i++) t->shape[i] = shape[i];
}

SFTDEF sft_status sft_tensor_create_on(sft_context *ctx, sft_device device, sft_dtype dtype, int ndim,
                                       const int64_t *shape, sft_tensor **out) {
    sft_tensor *t;
    sft_status s;
    size_t nbytes;
    if (!out) return sft__fail(SFT_ERR_ARG, "sft_tensor_create: out is NULL");
    *out = NULL;
    if (!ctx) return sft__fail(SFT_ERR_ARG, "sft_tensor_create: ctx is NULL");
    if ((int)device < 0 || device >= SFT_DEVICE_COUNT) return sft__fail(SFT_ERR_DEVICE, "sft_tensor_create: device %d", (int)device);
    SFT__TRY(sft__check_new_shape("sft_tensor_create", dtype, ndim, shape));
    t = (sft_tensor *)sft__alloc(ctx, sizeof *t);
    if (!t) return sft__fail(SFT_ERR_NOMEM, "sft_tensor_create: out of memory");
    sft__tensor_init(t, ctx, device, dtype, ndim, shape);
    nbytes = sft_tensor_nbytes(t);
    s = sft__device_alloc(ctx, device, nbytes, &t->data);
    if (s == SFT_OK) s = sft__device_zero(t->data, device, nbytes);
    if (s != SFT_OK) {
        char sb[96];
        sft__device_free(ctx, device, t->data);
        sft__free(ctx, t);
        return sft__fail(s, "sft_tensor_create: %s %s on %s: %s", sft_dtype_name(dtype), sft__shape_str(sb, sizeof sb, ndim, shape),
                         device == SFT_DEVICE_CPU ? "cpu" : "cuda", sft_last_error());
    }
    *out = t;
    return SFT_OK;
}

SFTDEF sft_status sft_tensor_create(sft_context *ctx, sft_dtype dtype, int ndim, const int64_t *shape, sft_tensor **out) {
    return sft_tensor_create_on(ctx, SFT_DEVICE_CPU, dtype, ndim, shape, out);
}

SFTDEF void sft_tensor_destroy(sft_tensor *t) {
    if (!t || (t->flags & SFT__T_ARENA)) return;
    if (t->grad && !(t->flags & SFT__T_ALIAS_GRAD)) sft_tensor_destroy(t->grad);
    if (!(t->flags & SFT__T_VIEW)) sft__device_free(t->ctx, t->device, t->data);
    sft__free(t->ctx, t);
}

SFTDEF void sft_tensor_set_requires_grad(sft_tensor *t, int on) { if (t) t->requires_grad = on != 0; }

SFTDEF void sft_tensor_zero_grad(sft_tensor *t) {
    if (t && t->grad) (void)sft__device_zero(t->grad->data, t->grad->device, sft_tensor_nbytes(t->grad));
}

static sft__arena *sft__cur_arena(sft_context *ctx, sft_device device) {
    return ctx->in_scratch ? &ctx->scratch[device] : &ctx->arena[device];
}

/* sft__tensor_step: a tensor in the current step arena (data uninitialised). */
static sft_status sft__tensor_step(sft_context *ctx, sft_device device, sft_dtype dtype, int ndim, const int64_t *shape,
                                   sft_tensor **out) {
    void *mem;
    sft_tensor *t;
    *out = NULL;
    SFT__TRY(sft__check_new_shape("step tensor", dtype, ndim, shape));
    SFT__TRY(sft__arena_alloc(sft__cur_arena(ctx, SFT_DEVICE_CPU), sizeof(sft_tensor), &mem));
    t = (sft_tensor *)mem;
    sft__tensor_init(t, ctx, device, dtype, ndim, shape);
    t->flags = SFT__T_ARENA;
    SFT__TRY(sft__arena_alloc(sft__cur_arena(ctx, device), sft_tensor_nbytes(t), &t->data));
    *out = t;
    return SFT_OK;
}

/* sft__ensure_grad: give t a zeroed f32 gradient if it has none: persistent for a
   persistent tensor, in the current arena for a step tensor. */
static sft_status sft__ensure_grad(sft_context *ctx, sft_tensor *t) {
    if (t->grad) return SFT_OK;
    if (t->flags & SFT__T_ARENA) {
        SFT__TRY(sft__tensor_step(ctx, t->device, SFT_F32, t->ndim, t->shape, &t->grad));
        return sft__device_zero(t->grad->data, t->device, sft_tensor_nbytes(t->grad));
    }
    return sft_tensor_create_on(ctx, t->device, SFT_F32, t->ndim, t->shape, &t->grad);
}

SFTDEF float sft_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

SFTDEF uint16_t sft_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN, sign kept */
    u += 0x7fffu + ((u >> 16) & 1);                                            /* round to nearest even */
    return (uint16_t)(u >> 16);
}

SFTDEF float sft_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    float f;
    if (exp == 0x1f) u = sign | 0x7f800000u | (man << 13);               /* inf / NaN */
    else if (exp) u = sign | ((exp + 112) << 23) | (man << 13);           /* normal    */
    else if (!man) u = sign;                                               /* zero      */
    else {                                                                 /* subnormal */
        int e = -1;
        do { man <<= 1; e++; } while (!(man & 0x400));
        u = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    memcpy(&f, &u, 4);
    return f;
}

SFTDEF uint16_t sft_f32_to_f16(float f) {
    uint32_t u, sign, exp, man;
    memcpy(&u, &f, 4);
    sign = (u >> 16) & 0x8000;
    exp = (u >> 23) & 0xff;
    man = u & 0x7fffff;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 | (man >> 13) : 0));
    if (exp > 142) return (uint16_t)(sign | 0x7c00);                        /* overflow -> inf */
    if (exp < 113) {                                                        /* subnormal or 0  */
        uint32_t shift, m, half, r;
        if (exp < 102) return (uint16_t)sign;
        m = man | 0x800000;
        shift = 126 - exp;                                                  /* 14..24 */
        r = m >> shift;
        half = 1u << (shift - 1);
        if ((m & ((half << 1) - 1)) > half || ((m & ((half << 1) - 1)) == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    {
        uint32_t h = sign | ((exp - 112) << 10) | (man >> 13), rest = man & 0x1fff;
        if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;              /* may carry into exp: correct */
        return (uint16_t)h;
    }
}

/* sft__load_f32: element i of a CPU tensor of any float/int dtype, as f32. */
static float sft__load_f32(const sft_tensor *t, int64_t i) {
    switch (t->dtype) {
    case SFT_F32: return ((const float *)t->data)[i];
    case SFT_BF16: return sft_bf16_to_f32(((const uint16_t *)t->data)[i]);
    case SFT_F16: return sft_f16_to_f32(((const uint16_t *)t->data)[i]);
    case SFT_I32: return (float)((const int32_t *)t->data)[i];
    case SFT_U8: return (float)((const uint8_t *)t->data)[i];
    case SFT_I8: return (float)((const int8_t *)t->data)[i];
    case SFT_I64: return (float)((const int64_t *)t->data)[i];
    case SFT_BOOL: return ((const uint8_t *)t->data)[i] ? 1.0f : 0.0f;
    default: return 0.0f;
    }
}

static void sft__store_f32(sft_tensor *t, int64_t i, float v) {
    switch (t->dtype) {
    case SFT_F32: ((float *)t->data)[i] = v; break;
    case SFT_BF16: ((uint16_t *)t->data)[i] = sft_f32_to_bf16(v); break;
    case SFT_F16: ((uint16_t *)t->data)[i] = sft_f32_to_f16(v); break;
    default: break;
    }
}

SFTDEF sft_status sft_tensor_copy_from(sft_tensor *dst, const sft_tensor *src) {
    char a[96], b[96];
    int i;
    if (!dst || !src) return sft__fail(SFT_ERR_ARG, "sft_tensor_copy_from: NULL tensor");
    if (dst->dtype != src->dtype || dst->ndim != src->ndim)
        return sft__fail(SFT_ERR_SHAPE, "sft_tensor_copy_from: %s %s <- %s %s", sft_dtype_name(dst->dtype), SFT__SHAPE(dst, a),
                         sft_dtype_name(src->dtype), SFT__SHAPE(src, b));
    for (i = 0; i < dst->ndim; i++)
        if (dst->shape[i] != src->shape[i])
            return sft__fail(SFT_ERR_SHAPE, "sft_tensor_copy_from: shape %s <- %s", SFT__SHAPE(dst, a), SFT__SHAPE(src, b));
    return sft__device_copy(dst->data, dst->device, src->data, src->device, sft_tensor_nbytes(src));
}

SFTDEF sft_status sft_tensor_convert(sft_context *ctx, const sft_tensor *src, sft_dtype dtype, sft_tensor **out) {
    sft_tensor *t;
    int64_t i, n;
    int float_out = dtype == SFT_F32 || dtype == SFT_BF16 || dtype == SFT_F16;
    if (!out) return sft__fail(SFT_ERR_ARG, "sft_tensor_convert: out is NULL");
    *out = NULL;
    if (!src || !ctx) return sft__fail(SFT_ERR_ARG, "sft_tensor_convert: NULL argument");
    if (src->device != SFT_DEVICE_CPU) return sft__fail(SFT_ERR_DEVICE, "sft_tensor_convert: source is not on the CPU");
    if (!float_out && !(dtype == SFT_I32 && src->dtype == SFT_F32) && dtype != src->dtype)
        return sft__fail(SFT_ERR_DTYPE, "sft_tensor_convert: %s -> %s is not supported", sft_dtype_name(src->dtype),
                         sft_dtype_name(dtype));
    SFT__TRY(sft_tensor_create(ctx, dtype, src->ndim, src->shape, &t));
    n = sft_tensor_numel(src);
    if (dtype == src->dtype) memcpy(t->data, src->data, sft_tensor_nbytes(src));
    else if (dtype == SFT_I32)
        for (i = 0; i < n; i++) {
            float v = ((const float *)src->data)[i];
            if (!(v >= -2147483648.0f && v < 2147483648.0f)) {
                sft_tensor_destroy(t);
                return sft__fail(SFT_ERR_ARG, "sft_tensor_convert: element %lld = %g does not fit i32", (long long)i, v);
            }
            ((int32_t *)t->data)[i] = (int32_t)v;
        }
    else
        for (i = 0; i < n; i++) sft__store_f32(t, i, sft__load_f32(src, i));
    *out = t;
    return SFT_OK;
}

SFTDEF sft_status sft_tensor_to_device(sft_context *ctx, const sft_tensor *src, sft_device device, sft_tensor **out) {
    sft_tensor *t;
    sft_status s;
    if (!out) return sft__fail(SFT_ERR_ARG, "sft_tensor_to_device: out is NULL");
    *out = NULL;
    if (!src || !ctx) return sft__fail(SFT_ERR_ARG, "sft_tensor_to_device: NULL argument");
    SFT__TRY(sft_tensor_create_on(ctx, device, src->dtype, src->ndim, src->shape, &t));
    s = sft_tensor_copy_from(t, src);
    if (s != SFT_OK) { sft_tensor_destroy(t); return s; }
    *out = t;
    return SFT_OK;
}

/* ============================================================================
   === json
   A strict RFC 8259 parser and a writer.

   The parser makes two passes over the text. The first validates everything
   (grammar, UTF-8, escapes, number limits, depth) and counts what the tree needs:
   nodes, object members, string bytes, and the largest temporary stacks. The
   second pass builds the tree into one allocation of exactly that size, decoding
   strings in place, and rejects duplicate object keys. Nothing is ever sized from
   a number read out of the text; every size is a count of things actually seen.
   The parser is iterative (an explicit stack of open containers), so deep input
   cannot overflow the C stack whatever max_depth is.

   Tree layout (one block):  [header: ctx] [nodes] [keys] [key_lengths] [bytes]
   nodes[0] is the root; each container's children are contiguous.
   A NUMBER node also carries its source text in string/length (e.g. "1e5"), so
   callers can tell 1 from 1.0 and read integers beyond 2^53 exactly.

   Numbers go through strtod, which reads the decimal point of the current C
   locale; the parser and writer substitute that locale's decimal point (found
   with snprintf) so both work under any LC_NUMERIC. */

#define SFT__JSON_DEFAULT_DEPTH 128
#define SFT__JSON_DEFAULT_BYTES ((size_t)256 << 20)
#define SFT__JSON_MAX_NUMBER 1000
#define SFT__JSON_HDR 64               /* bytes before the root: holds the context */
#define SFT__JSON_WRITER_MAX_DEPTH 128

/* sft__utf8_next: the code point of the UTF-8 sequence at s[0..n) (n >= 1);
   returns its length 1..4, or 0 with *why set when it is not valid UTF-8
   (overlong forms, UTF-16 surrogates, > U+10FFFF, truncated sequences). */
static int sft__utf8_next(const unsigned char *s, size_t n, uint32_t *cp, const char **why) {
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    uint32_t v;
    int len, i;
    if (c < 0x80) { *cp = c; return 1; }
    if (c < 0xC0) { *why = "unexpected continuation byte"; return 0; }
    if (c < 0xC2) { *why = "overlong encoding"; return 0; }
    if (c < 0xE0) { len = 2; v = c & 0x1F; }
    else if (c < 0xF0) {
        len = 3; v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        else if (c == 0xED) hi = 0x9F;
    } else if (c < 0xF5) {
        len = 4; v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F;
    } else { *why = "byte that starts a code point beyond U+10FFFF"; return 0; }
    for (i = 1; i < len; i++) {
        unsigned b;
        if ((size_t)i >= n || (b = s[i]) < 0x80 || b > 0xBF) { *why = "truncated sequence"; return 0; }
        if (i == 1 && (b < lo || b > hi)) {
            *why = c == 0xED ? "UTF-16 surrogate encoded in UTF-8"
                 : c == 0xF4 ? "code point beyond U+10FFFF" : "overlong encoding";
            return 0;
        }
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return len;
}

/* sft__utf8_check: 0 when s[0..n) is valid UTF-8, else -1 with the offset and why. */
static int sft__utf8_check(const char *s, size_t n, size_t *bad_at, const char **why) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int k;
        if (u[i] < 0x80) { i++; continue; }
        k = sft__utf8_next(u + i, n - i, &cp, why);
        if (!k) { *bad_at = i; return -1; }
        i += (size_t)k;
    }
    return 0;
}

static size_t sft__utf8_put(uint32_t cp, char *dst) {
    unsigned char b[4];
    size_t n;
    if (cp < 0x80) { b[0] = (unsigned char)cp; n = 1; }
    else if (cp < 0x800) { b[0] = (unsigned char)(0xC0 | (cp >> 6)); b[1] = (unsigned char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12)); b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18)); b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)); b[3] = (unsigned char)(0x80 | (cp & 0x3F)); n = 4;
    }
    if (dst) memcpy(dst, b, n);
    return n;
}

/* sft__locale_point: the decimal point printf/strtod use in the current locale
   ("." in the C locale). */
static void sft__locale_point(char *dp, size_t cap) {
    char b[32];
    size_t n;
    snprintf(b, sizeof b, "%.1f", 1.5);
    n = strlen(b);
    if (n < 3 || n - 2 >= cap || b[0] != '1' || b[n - 1] != '5') { dp[0] = '.'; dp[1] = 0; return; }
    memcpy(dp, b + 1, n - 2);
    dp[n - 2] = 0;
}

typedef struct sft__json_key { const char *s; size_t len, at; } sft__json_key;
typedef struct sft__json_frame { int is_object; size_t count, vbase, kbase, at; } sft__json_frame;

typedef struct sft__json_parser {
    const unsigned char *s;
    size_t len, pos, base;       /* base: added to offsets in messages */
    const char *name;
    int max_depth, allow_nonfinite;
    char dp[8];                  /* the locale's decimal point, for strtod */
    int fill;                    /* 0: validate and count; 1: build the tree */
    sft__json_frame *frames;
    size_t vtop, ktop;           /* heights of the value and key stacks */
    /* pass 1 counts */
    size_t n_nodes, n_members, n_bytes, v_max, k_max, obj_max;
    /* pass 2 */
    sft_json *nodes;
    size_t node_next;
    const char **keys;
    size_t *key_lengths, member_next;
    char *bytes;
    size_t byte_next;
    sft_json *vstack;
    sft__json_key *kstack, *sortbuf;
} sft__json_parser;

static sft_status sft__json_error(const sft__json_parser *p, sft_status s, size_t at, const char *fmt, ...) SFT__PRINTF(4, 5);
static sft_status sft__json_error(const sft__json_parser *p, sft_status s, size_t at, const char *fmt, ...) {
    char what[512];
    size_t i, line = 1, col = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (at > p->len) at = p->len;
    for (i = 0; i < at; i++) {
        if (p->s[i] == '\n') { line++; col = 1; }
        else col++;
    }
    return sft__fail(s, "%s: byte %zu (line %zu, col %zu): %s", p->name, p->base + at, line, col, what);
}

/* sft__json_found: what is at offset at, for messages ("end of input", "'x'"). */
static const char *sft__json_found(const sft__json_parser *p, size_t at, char *buf, size_t cap) {
    unsigned c;
    if (at >= p->len) return "end of input";
    c = p->s[at];
    if (c >= 0x20 && c < 0x7F) snprintf(buf, cap, "'%c'", (char)c);
    else snprintf(buf, cap, "byte 0x%02X", c);
    return buf;
}

static void sft__json_ws(sft__json_parser *p) {
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int sft__json_hex4(const sft__json_parser *p, size_t at, uint32_t *out) {
    uint32_t v = 0;
    size_t i;
    if (at + 4 > p->len) return 0;
    for (i = 0; i < 4; i++) {
        unsigned c = p->s[at + i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return 0;
    }
    *out = v;
    return 1;
}

/* sft__json_string: the string that starts at p->pos (a '"'). Decodes into dst
   when it is non-NULL; *n_out = decoded bytes. Leaves pos after the closing quote. */
static sft_status sft__json_string(sft__json_parser *p, char *dst, size_t *n_out) {
    const unsigned char *s = p->s;
    size_t i = p->pos + 1, n = 0, start = p->pos;
    for (;;) {
        unsigned c;
        if (i >= p->len)
            return sft__json_error(p, SFT_ERR_FORMAT, i, "unterminated string (it opens at byte %zu)", p->base + start);
        c = s[i];
        if (c == '"') break;
        if (c < 0x20) return sft__json_error(p, SFT_ERR_FORMAT, i, "control character 0x%02X in a string (escape it)", c);
        if (c == '\\') {
            uint32_t cp = 0, lo = 0;
            char ch = 0;
            if (i + 1 >= p->len)
                return sft__json_error(p, SFT_ERR_FORMAT, i, "unterminated string (it opens at byte %zu)", p->base + start);
            switch (s[i + 1]) {
            case '"': ch = '"'; break;
            case '\\': ch = '\\'; break;
            case '/': ch = '/'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'u':
                if (!sft__json_hex4(p, i + 2, &cp))
                    return sft__json_error(p, SFT_ERR_FORMAT, i, "expected 4 hex digits after \\u");
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return sft__json_error(p, SFT_ERR_FORMAT, i, "lone low surrogate \\u%04X (no high surrogate before it)",
                                           (unsigned)cp);
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (i + 7 < p->len && s[i + 6] == '\\' && s[i + 7] == 'u' && sft__json_hex4(p, i + 8, &lo) &&
                        lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        i += 6;
                    } else
                        return sft__json_error(p, SFT_ERR_FORMAT, i,
                                               "lone high surrogate \\u%04X (a low surrogate \\uDC00-\\uDFFF must follow)",
                                               (unsigned)cp);
                }
                n += sft__utf8_put(cp, dst ? dst + n : NULL);
                i += 6;
                continue;
            default: {
                char fb[16];
                return sft__json_error(p, SFT_ERR_FORMAT, i, "invalid escape: backslash followed by %s",
                                       sft__json_found(p, i + 1, fb, sizeof fb));
            }
            }
            if (dst) dst[n] = ch;
            n++;
            i += 2;
            continue;
        }
        if (c < 0x80) {
            if (dst) dst[n] = (char)c;
            n++;
            i++;
        } else {
            uint32_t cp;
            const char *why = "";
            int k = sft__utf8_next(s + i, p->len - i, &cp, &why);
            if (!k) return sft__json_error(p, SFT_ERR_FORMAT, i, "invalid UTF-8 in a string: %s (byte 0x%02X)", why, c);
            if (dst) memcpy(dst + n, s + i, (size_t)k);
            n += (size_t)k;
            i += (size_t)k;
        }
    }
    p->pos = i + 1;
    *n_out = n;
    return SFT_OK;
}

/* sft__json_keep_text: in pass 1 count len+1 bytes; in pass 2 copy the text into
   the tree's byte area and return it. */
static const char *sft__json_keep_text(sft__json_parser *p, const char *text, size_t len) {
    char *d;
    if (!p->fill) { p->n_bytes += len + 1; return NULL; }
    d = p->bytes + p->byte_next;
    memcpy(d, text, len);
    d[len] = 0;
    p->byte_next += len + 1;
    return d;
}

/* sft__json_push: a completed value onto the value stack. */
static void sft__json_push(sft__json_parser *p, const sft_json *v) {
    if (!p->fill) {
        p->n_nodes++;
        if (++p->vtop > p->v_max) p->v_max = p->vtop;
        return;
    }
    p->vstack[p->vtop++] = *v;
}

static int sft__json_digit(const sft__json_parser *p, size_t i) { return i < p->len && p->s[i] >= '0' && p->s[i] <= '9'; }

static int sft__json_match(const sft__json_parser *p, size_t at, const char *lit) {
    size_t n = strlen(lit);
    return p->len - at >= n && memcmp(p->s + at, lit, n) == 0;
}

/* sft__json_number: a number (RFC grammar exactly) at p->pos. */
static sft_status sft__json_number(sft__json_parser *p, sft_json *node) {
    size_t start = p->pos, i = start, n, j, k = 0, dpn = strlen(p->dp);
    char buf[SFT__JSON_MAX_NUMBER * 2 + 16], *end;
    double v;
    if (p->s[i] == '-') i++;
    if (p->allow_nonfinite && i > start && sft__json_match(p, i, "Infinity")) {
        p->pos = i + 8;
        node->number = -HUGE_VAL;
        node->string = sft__json_keep_text(p, "-Infinity", 9);
        node->length = 9;
        return SFT_OK;
    }
    if (!sft__json_digit(p, i)) {
        char fb[16];
        return sft__json_error(p, SFT_ERR_FORMAT, i, "expected a digit after '-', found %s", sft__json_found(p, i, fb, sizeof fb));
    }
    if (p->s[i] == '0') {
        i++;
        if (sft__json_digit(p, i)) return sft__json_error(p, SFT_ERR_FORMAT, start, "leading zeros are not allowed in numbers");
    } else
        while (sft__json_digit(p, i)) i++;
    if (i < p->len && p->s[i] == '.') {
        i++;
        if (!sft__json_digit(p, i)) return sft__json_error(p, SFT_ERR_FORMAT, i, "expected a digit after the decimal point");
        while (sft__json_digit(p, i)) i++;
    }
    if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
        i++;
        if (i < p->len && (p->s[i] == '+' || p->s[i] == '-')) i++;
        if (!sft__json_digit(p, i)) return sft__json_error(p, SFT_ERR_FORMAT, i, "expected a digit in the exponent");
        while (sft__json_digit(p, i)) i++;
    }
    n = i - start;
    if (n > SFT__JSON_MAX_NUMBER)
        return sft__json_error(p, SFT_ERR_LIMIT, start, "number of %zu characters (the limit is %d)", n, SFT__JSON_MAX_NUMBER);
    for (j = 0; j < n; j++) {       /* the grammar is checked: only '.' depends on the locale */
        char c = (char)p->s[start + j];
        if (c == '.') { memcpy(buf + k, p->dp, dpn); k += dpn; }
        else buf[k++] = c;
    }
    buf[k] = 0;
    v = strtod(buf, &end);
    if (end != buf + k) return sft__json_error(p, SFT_ERR_FORMAT, start, "number not understood by strtod");
    if (v == HUGE_VAL || v == -HUGE_VAL)
        return sft__json_error(p, SFT_ERR_LIMIT, start, "number %.*s%s is beyond the range of a double", (int)(n < 40 ? n : 40),
                               (const char *)p->s + start, n < 40 ? "" : "...");
    node->number = v;
    node->string = sft__json_keep_text(p, (const char *)p->s + start, n);
    node->length = n;
    p->pos = i;
    return SFT_OK;
}

/* sft__json_scalar: any value but an array or object, pushed on the value stack. */
static sft_status sft__json_scalar(sft__json_parser *p) {
    sft_json node;
    size_t at = p->pos;
    int c = at < p->len ? p->s[at] : -1;
    char fb[16];
    memset(&node, 0, sizeof node);
    if (c == '"') {
        size_t n;
        char *dst = p->fill ? p->bytes + p->byte_next : NULL;
        SFT__TRY(sft__json_string(p, dst, &n));
        node.type = SFT_JSON_STRING;
        node.length = n;
        if (p->fill) { dst[n] = 0; node.string = dst; p->byte_next += n + 1; }
        else p->n_bytes += n + 1;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        node.type = SFT_JSON_NUMBER;
        SFT__TRY(sft__json_number(p, &node));
    } else if (c == 't' && sft__json_match(p, at, "true")) { node.type = SFT_JSON_TRUE; p->pos += 4; }
    else if (c == 'f' && sft__json_match(p, at, "false")) { node.type = SFT_JSON_FALSE; p->pos += 5; }
    else if (c == 'n' && sft__json_match(p, at, "null")) { node.type = SFT_JSON_NULL; p->pos += 4; }
    else if ((c == 'N' && sft__json_match(p, at, "NaN")) || (c == 'I' && sft__json_match(p, at, "Infinity"))) {
        size_t n = c == 'N' ? 3 : 8;
        if (!p->allow_nonfinite)
            return sft__json_error(p, SFT_ERR_FORMAT, at, "%s is not JSON (allow_nonfinite accepts it)", c == 'N' ? "NaN" : "Infinity");
        node.type = SFT_JSON_NUMBER;
        node.number = c == 'N' ? NAN : HUGE_VAL;
        node.string = sft__json_keep_text(p, c == 'N' ? "NaN" : "Infinity", n);
        node.length = n;
        p->pos += n;
    } else if (c == '/')
        return sft__json_error(p, SFT_ERR_FORMAT, at, "comments are not allowed in JSON");
    else if (c == -1)
        return sft__json_error(p, SFT_ERR_FORMAT, at, "unexpected end of input, expected a value");
    else
        return sft__json_error(p, SFT_ERR_FORMAT, at, "expected a value, found %s", sft__json_found(p, at, fb, sizeof fb));
    sft__json_push(p, &node);
    return SFT_OK;
}

/* sft__json_member_key: an object key and its ':' at p->pos. */
static sft_status sft__json_member_key(sft__json_parser *p) {
    size_t at = p->pos, n;
    char fb[16];
    if (at >= p->len || p->s[at] != '"') {
        if (at < p->len && p->s[at] == '}') return sft__json_error(p, SFT_ERR_FORMAT, at, "trailing comma before '}'");
        return sft__json_error(p, SFT_ERR_FORMAT, at, "expected a string key, found %s", sft__json_found(p, at, fb, sizeof fb));
    }
    if (!p->fill) {
        SFT__TRY(sft__json_string(p, NULL, &n));
        p->n_members++;
        p->n_bytes += n + 1;
        if (++p->ktop > p->k_max) p->k_max = p->ktop;
    } else {
        sft__json_key *k = &p->kstack[p->ktop++];
        char *dst = p->bytes + p->byte_next;
        SFT__TRY(sft__json_string(p, dst, &n));
        dst[n] = 0;
        p->byte_next += n + 1;
        k->s = dst; k->len = n; k->at = at;
    }
    sft__json_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != ':')
        return sft__json_error(p, SFT_ERR_FORMAT, p->pos, "expected ':' after object key, found %s",
                               sft__json_found(p, p->pos, fb, sizeof fb));
    p->pos++;
    sft__json_ws(p);
    return SFT_OK;
}

static int sft__json_key_cmp(const void *a, const void *b) {
    const sft__json_key *x = (const sft__json_key *)a, *y = (const sft__json_key *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* sft__json_close: the container of frame f ends; its children leave the stacks
   for their final place and the container becomes a value of its parent. */
static sft_status sft__json_close(sft__json_parser *p, const sft__json_frame *f) {
    sft_json node;
    size_t n = f->count, i;
    memset(&node, 0, sizeof node);
    node.type = f->is_object ? SFT_JSON_OBJECT : SFT_JSON_ARRAY;
    node.length = n;
    if (!p->fill) {
        if (f->is_object && n > p->obj_max) p->obj_max = n;
    } else {
        node.items = p->nodes + p->node_next;
        if (n) memcpy(node.items, p->vstack + f->vbase, n * sizeof(sft_json));
        p->node_next += n;
        if (f->is_object) {
            size_t dup_at = (size_t)-1, dup = 0;
            node.keys = p->keys + p->member_next;
            node.key_lengths = p->key_lengths + p->member_next;
            for (i = 0; i < n; i++) {
                p->keys[p->member_next + i] = p->kstack[f->kbase + i].s;
                p->key_lengths[p->member_next + i] = p->kstack[f->kbase + i].len;
            }
            p->member_next += n;
            if (n > 1) {
                memcpy(p->sortbuf, p->kstack + f->kbase, n * sizeof(sft__json_key));
                qsort(p->sortbuf, n, sizeof(sft__json_key), sft__json_key_cmp);
                for (i = 1; i < n; i++)
                    if (p->sortbuf[i].len == p->sortbuf[i - 1].len &&
                        memcmp(p->sortbuf[i].s, p->sortbuf[i - 1].s, p->sortbuf[i].len) == 0 && p->sortbuf[i].at < dup_at) {
                        dup_at = p->sortbuf[i].at;
                        dup = i;
                    }
                if (dup_at != (size_t)-1)
                    return sft__json_error(p, SFT_ERR_FORMAT, dup_at, "duplicate key \"%.*s\" in the object that opens at byte %zu",
                                           (int)(p->sortbuf[dup].len < 80 ? p->sortbuf[dup].len : 80), p->sortbuf[dup].s,
                                           p->base + f->at);
            }
        }
    }
    p->vtop = f->vbase;
    p->ktop = f->kbase;
    sft__json_push(p, &node);
    return SFT_OK;
}

/* sft__json_run: one pass over the whole text. */
static sft_status sft__json_run(sft__json_parser *p) {
    int depth = 0;
    char fb[16];
    p->pos = 0;
    p->vtop = p->ktop = 0;
    if (p->len >= 3 && p->s[0] == 0xEF && p->s[1] == 0xBB && p->s[2] == 0xBF)
        return sft__json_error(p, SFT_ERR_FORMAT, 0, "a UTF-8 byte order mark is not allowed");
    sft__json_ws(p);
    for (;;) {
        size_t at = p->pos;
        int c = at < p->len ? p->s[at] : -1;
        if (c == '{' || c == '[') {
            sft__json_frame *f;
            if (depth >= p->max_depth)
                return sft__json_error(p, SFT_ERR_LIMIT, at, "nesting deeper than %d levels", p->max_depth);
            f = &p->frames[depth++];
            f->is_object = c == '{';
            f->count = 0; f->vbase = p->vtop; f->kbase = p->ktop; f->at = at;
            p->pos++;
            sft__json_ws(p);
            if (p->pos < p->len && p->s[p->pos] == (f->is_object ? '}' : ']')) {
                p->pos++;
                SFT__TRY(sft__json_close(p, f));
                depth--;
            } else {
                if (f->is_object) SFT__TRY(sft__json_member_key(p));
                continue;
            }
        } else
            SFT__TRY(sft__json_scalar(p));
        for (;;) {             /* a value has just ended */
            sft__json_frame *f;
            sft__json_ws(p);
            if (depth == 0) {
                if (p->pos != p->len)
                    return sft__json_error(p, SFT_ERR_FORMAT, p->pos, "expected end of input after the value, found %s",
                                           sft__json_found(p, p->pos, fb, sizeof fb));
                return SFT_OK;
            }
            f = &p->frames[depth - 1];
            f->count++;
            if (p->pos < p->len && p->s[p->pos] == ',') {
                p->pos++;
                sft__json_ws(p);
                if (f->is_object) SFT__TRY(sft__json_member_key(p));
                else if (p->pos < p->len && p->s[p->pos] == ']')
                    return sft__json_error(p, SFT_ERR_FORMAT, p->pos, "trailing comma before ']'");
                break;
            }
            if (p->pos < p->len && p->s[p->pos] == (f->is_object ? '}' : ']')) {
                p->pos++;
                SFT__TRY(sft__json_close(p, f));
                depth--;
                continue;
            }
            if (p->pos >= p->len)
                return sft__json_error(p, SFT_ERR_FORMAT, p->pos, "unexpected end of input in the %s that opens at byte %zu",
                                       f->is_object ? "object" : "array", p->base + f->at);
            return sft__json_error(p, SFT_ERR_FORMAT, p->pos, "expected ',' or '%c' after %s, found %s",
                                   f->is_object ? '}' : ']', f->is_object ? "an object member" : "an array element",
                                   sft__json_found(p, p->pos, fb, sizeof fb));
        }
    }
}

/* sft__size_mul_add: *acc += n * size, or 0 (and *acc unchanged) on overflow. */
static int sft__size_mul_add(size_t *acc, size_t n, size_t size) {
    if (size && n > (SIZE_MAX - *acc) / size) return 0;
    *acc += n * size;
    return 1;
}

/* sft__json_parse_at: sft_json_parse with message offsets shifted by base (the
   safetensors reader reports offsets in the file, not in the header). */
static sft_status sft__json_parse_at(sft_context *ctx, const char *text, size_t len, const char *name,
                                     const sft_json_desc *desc, size_t base, sft_json **out) {
    sft__json_parser p;
    size_t max_bytes, n_frames, total = SFT__JSON_HDR, scratch_size = 0;
    unsigned char *block = NULL, *scratch = NULL;
    sft_status s;
    if (!out) return sft__fail(SFT_ERR_ARG, "sft_json_parse: out is NULL");
    *out = NULL;
    if (!name) name = "json";
    if (!text && len) return sft__fail(SFT_ERR_ARG, "%s: sft_json_parse: text is NULL", name);
    memset(&p, 0, sizeof p);
    p.s = (const unsigned char *)(text ? text : "");
    p.len = len; p.base = base; p.name = name;
    p.max_depth = desc && desc->max_depth > 0 ? desc->max_depth : SFT__JSON_DEFAULT_DEPTH;
    p.allow_nonfinite = desc ? desc->allow_nonfinite : 0;
    max_bytes = desc && desc->max_bytes ? desc->max_bytes : SFT__JSON_DEFAULT_BYTES;
    if (desc && desc->max_depth < 0) return sft__fail(SFT_ERR_ARG, "%s: sft_json_parse: max_depth %d", name, desc->max_depth);
    if (len > max_bytes) return sft__fail(SFT_ERR_LIMIT, "%s: %zu bytes of JSON, over the limit of %zu", name, len, max_bytes);
    sft__locale_point(p.dp, sizeof p.dp);
    n_frames = (size_t)p.max_depth < len ? (size_t)p.max_depth : len;   /* each level needs a '[' or '{' */
    p.frames = (sft__json_frame *)sft__calloc(ctx, n_frames + 1, sizeof(sft__json_frame));
    if (!p.frames) return sft__fail(SFT_ERR_NOMEM, "%s: cannot allocate the parser stack", name);
    s = sft__json_run(&p);                      /* pass 1: validate and count */
    if (s == SFT_OK) {
        if (!sft__size_mul_add(&total, p.n_nodes, sizeof(sft_json)) ||
            !sft__size_mul_add(&total, p.n_members, sizeof(const char *) + sizeof(size_t)) ||
            !sft__size_mul_add(&total, p.n_bytes, 1) || !sft__size_mul_add(&scratch_size, p.v_max, sizeof(sft_json)) ||
            !sft__size_mul_add(&scratch_size, p.k_max, sizeof(sft__json_key)) ||
            !sft__size_mul_add(&scratch_size, p.obj_max, sizeof(sft__json_key)))
            s = sft__fail(SFT_ERR_NOMEM, "%s: the tree would not fit in memory", name);
    }
    if (s == SFT_OK) {
        block = (unsigned char *)sft__alloc(ctx, total);
        scratch = (unsigned char *)sft__alloc(ctx, scratch_size);
        if (!block || !scratch) s = sft__fail(SFT_ERR_NOMEM, "%s: cannot allocate %zu bytes for the tree", name, total);
    }
    if (s == SFT_OK) {                          /* pass 2: build */
        memcpy(block, &ctx, sizeof ctx);
        p.nodes = (sft_json *)(void *)(block + SFT__JSON_HDR);
        p.keys = (const char **)(void *)(p.nodes + p.n_nodes);
        p.key_lengths = (size_t *)(void *)(p.keys + p.n_members);
        p.bytes = (char *)(p.key_lengths + p.n_members);
        p.vstack = (sft_json *)(void *)scratch;
        p.kstack = (sft__json_key *)(void *)(p.vstack + p.v_max);
        p.sortbuf = p.kstack + p.k_max;
        p.node_next = 1;
        p.fill = 1;
        s = sft__json_run(&p);
        if (s == SFT_OK) p.nodes[0] = p.vstack[0];
    }
    sft__free(ctx, scratch);
    sft__free(ctx, p.frames);
    if (s != SFT_OK) { sft__free(ctx, block); return s; }
    *out = p.nodes;
    return SFT_OK;
}

SFTDEF sft_status sft_json_parse(sft_context *ctx, const char *text, size_t len, const char *name,
                                 const sft_json_desc *desc, sft_json **out) {
    return sft__json_parse_at(ctx, text, len, name, desc, 0, out);
}

SFTDEF void sft_json_free(sft_json *root) {
    unsigned char *block;
    sft_context *ctx;
    if (!root) return;
    block = (unsigned char *)root - SFT__JSON_HDR;
    memcpy(&ctx, block, sizeof ctx);
    sft__free(ctx, block);
}

SFTDEF const sft_json *sft_json_get(const sft_json *object, const char *key) {
    size_t i, n;
    if (!object || !key || object->type != SFT_JSON_OBJECT) return NULL;
    n = strlen(key);
    for (i = 0; i < object->length; i++)
        if (object->key_lengths[i] == n && memcmp(object->keys[i], key, n) == 0) return &object->items[i];
    return NULL;
}

SFTDEF const sft_json *sft_json_at(const sft_json *array, size_t index) {
    if (!array || array->type != SFT_JSON_ARRAY || index >= array->length) return NULL;
    return &array->items[index];
}

/* --- the writer ------------------------------------------------------------ */

static void sft__jw_fail(sft_json_writer *w, sft_status s, const char *what) {
    if (w->status != SFT_OK) return;
    w->status = s;
    sft__fail(s, "json writer: %s", what);
}

/* sft__jw_put: append n bytes (always keeping room for a final NUL). */
static void sft__jw_put(sft_json_writer *w, const char *s, size_t n) {
    if (w->status != SFT_OK) return;
    if (n > SIZE_MAX / 2 - w->len) { sft__jw_fail(w, SFT_ERR_NOMEM, "output too large"); return; }
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        char *nb;
        while (cap < w->len + n + 1) cap *= 2;
        nb = (char *)sft__alloc(w->ctx, cap);
        if (!nb) { sft__jw_fail(w, SFT_ERR_NOMEM, "out of memory"); return; }
        if (w->len) memcpy(nb, w->buf, w->len);
        sft__free(w->ctx, w->buf);
        w->buf = nb;
        w->cap = cap;
    }
    if (n) memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void sft__jw_newline(sft_json_writer *w, int depth) {
    static const char spaces[] = "                                ";
    long k;
    if (w->indent <= 0) return;
    sft__jw_put(w, "\n", 1);
    for (k = (long)w->indent * depth; k > 0; k -= 32) sft__jw_put(w, spaces, (size_t)(k < 32 ? k : 32));
}

/* sft__jw_element: the separator and line break before an array element or an
   object key at the current depth. */
static void sft__jw_element(sft_json_writer *w) {
    if (!w->first[w->depth]) sft__jw_put(w, ",", 1);
    w->first[w->depth] = 0;
    sft__jw_newline(w, w->depth);
}

/* sft__jw_value: may a value be written now? Writes what goes before it. */
static int sft__jw_value(sft_json_writer *w) {
    if (w->status != SFT_OK) return 0;
    if (w->depth == 0) {
        if (w->len > 0) { sft__jw_fail(w, SFT_ERR_STATE, "a second top-level value"); return 0; }
        return 1;
    }
    if (w->in_object[w->depth]) {
        if (!w->after_key) { sft__jw_fail(w, SFT_ERR_STATE, "a value in an object without a key before it"); return 0; }
        w->after_key = 0;
        return 1;
    }
    sft__jw_element(w);
    return w->status == SFT_OK;
}

static void sft__jw_escaped(sft_json_writer *w, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0, bad_at;
    const char *why = "";
    char msg[128];
    if (w->status != SFT_OK) return;
    if (!s && n) { sft__jw_fail(w, SFT_ERR_ARG, "string is NULL"); return; }
    if (sft__utf8_check(s, n, &bad_at, &why) != 0) {
        snprintf(msg, sizeof msg, "string is not valid UTF-8 (%s at byte %zu)", why, bad_at);
        sft__jw_fail(w, SFT_ERR_ARG, msg);
        return;
    }
    sft__jw_put(w, "\"", 1);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[6];
        size_t en = 2;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        sft__jw_put(w, s + run, i - run);
        run = i + 1;
        e[0] = '\\';
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default:
            e[1] = 'u'; e[2] = '0'; e[3] = '0'; e[4] = hex[c >> 4]; e[5] = hex[c & 15];
            en = 6;
        }
        sft__jw_put(w, e, en);
    }
    sft__jw_put(w, s + run, n - run);
    sft__jw_put(w, "\"", 1);
}

/* sft__json_split_e: the digits and decimal exponent of printf's "%.*e" text. */
static void sft__json_split_e(const char *b, const char *dp, char *digits, int *nd, int *e10) {
    const char *q = b + (b[0] == '-');
    size_t dpn = strlen(dp);
    *nd = 0;
    digits[(*nd)++] = *q++;
    if (strncmp(q, dp, dpn) == 0) {
        q += dpn;
        while (*q >= '0' && *q <= '9' && *nd < 20) digits[(*nd)++] = *q++;
    }
    while (*q && *q != 'e') q++;
    *e10 = *q ? (int)strtol(q + 1, NULL, 10) : 0;
}

/* sft__json_digits_value: the double that d.ddd x 10^e10 reads as. */
static double sft__json_digits_value(int neg, const char *digits, int nd, int e10, const char *dp) {
    char b[64];
    size_t n = 0, dpn = strlen(dp);
    if (neg) b[n++] = '-';
    b[n++] = digits[0];
    if (nd > 1) {
        memcpy(b + n, dp, dpn);
        n += dpn;
        memcpy(b + n, digits + 1, (size_t)nd - 1);
        n += (size_t)nd - 1;
    }
    snprintf(b + n, sizeof b - n, "e%d", e10);
    return strtod(b, NULL);
}

/* sft__json_try_digits: does some prec-digit decimal read back as v? Fills
   digits/nd/e10 with it when it does. */
static int sft__json_try_digits(double v, int prec, int pow2, const char *dp, char *digits, int *nd, int *e10) {
    char b[64];
    int i;
    snprintf(b, sizeof b, "%.*e", prec - 1, v);
    sft__json_split_e(b, dp, digits, nd, e10);
    if (strtod(b, NULL) == v) return 1;
    if (!pow2) return 0;
    for (i = *nd - 1; i >= 0 && digits[i] == '9'; i--) digits[i] = '0';   /* one unit up, carrying */
    if (i < 0) { digits[0] = '1'; (*e10)++; }
    else digits[i]++;
    return sft__json_digits_value(signbit(v) != 0, digits, *nd, *e10, dp) == v;
}

/* sft__json_format_double: v (finite) as Python's repr writes it: the shortest
   digits that read back as v, the closest to v among those (found with %.*e and
   strtod; next to a power of two, where the gap below v is half the gap above,
   the candidate one unit up is tried too, as David Gay's dtoa does), in fixed
   notation for 1e-4 <= |v| < 1e16 with at least one digit after the point
   ("2.0"), else d.ddde+XX ("1e-05", "1.5e+300"). Returns the length. */
static size_t sft__json_format_double(double v, char *out, size_t cap) {
    char dp[8], digits[24], trial[24];
    int lo = 1, hi = 17, nd = 0, e10 = 0, tnd, te10, decpt, i, ex, neg = signbit(v) != 0, found = 0;
    int pow2 = v != 0 && frexp(fabs(v), &ex) == 0.5;
    size_t n = 0;
    sft__locale_point(dp, sizeof dp);
    while (lo < hi) {   /* 17 digits always read back; if p digits can, p + 1 can: bisect */
        int mid = (lo + hi) / 2;
        if (sft__json_try_digits(v, mid, pow2, dp, trial, &tnd, &te10)) {
            hi = mid;
            memcpy(digits, trial, sizeof trial);
            nd = tnd; e10 = te10; found = 1;
        } else
            lo = mid + 1;
    }
    if (!found) (void)sft__json_try_digits(v, 17, pow2, dp, digits, &nd, &e10);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    decpt = e10 + 1;
#define SFT__PUTC(ch) do { if (n + 1 < cap) out[n] = (ch); n++; } while (0)
    if (neg) SFT__PUTC('-');
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            SFT__PUTC('0'); SFT__PUTC('.');
            for (i = 0; i < -decpt; i++) SFT__PUTC('0');
            for (i = 0; i < nd; i++) SFT__PUTC(digits[i]);
        } else {
            for (i = 0; i < decpt; i++) SFT__PUTC(i < nd ? digits[i] : '0');
            SFT__PUTC('.');
            if (nd > decpt) for (i = decpt; i < nd; i++) SFT__PUTC(digits[i]);
            else SFT__PUTC('0');
        }
    } else {
        char eb[16];
        SFT__PUTC(digits[0]);
        if (nd > 1) {
            SFT__PUTC('.');
            for (i = 1; i < nd; i++) SFT__PUTC(digits[i]);
        }
        snprintf(eb, sizeof eb, "e%c%02d", decpt - 1 < 0 ? '-' : '+', decpt - 1 < 0 ? 1 - decpt : decpt - 1);
        for (i = 0; eb[i]; i++) SFT__PUTC(eb[i]);
    }
#undef SFT__PUTC
    if (cap) out[n < cap ? n : cap - 1] = 0;
    return n;
}

SFTDEF void sft_json_write_object_begin(sft_json_writer *w) {
    if (!w || !sft__jw_value(w)) return;
    if (w->depth >= SFT__JSON_WRITER_MAX_DEPTH) { sft__jw_fail(w, SFT_ERR_LIMIT, "nesting deeper than 128 levels"); return; }
    sft__jw_put(w, "{", 1);
    w->depth++;
    w->first[w->depth] = 1;
    w->in_object[w->depth] = 1;
}

SFTDEF void sft_json_write_array_begin(sft_json_writer *w) {
    if (!w || !sft__jw_value(w)) return;
    if (w->depth >= SFT__JSON_WRITER_MAX_DEPTH) { sft__jw_fail(w, SFT_ERR_LIMIT, "nesting deeper than 128 levels"); return; }
    sft__jw_put(w, "[", 1);
    w->depth++;
    w->first[w->depth] = 1;
    w->in_object[w->depth] = 0;
}

static void sft__jw_end(sft_json_writer *w, int is_object) {
    if (!w || w->status != SFT_OK) return;
    if (w->depth == 0 || w->in_object[w->depth] != is_object) {
        sft__jw_fail(w, SFT_ERR_STATE, is_object ? "object end without a matching object begin"
                                                 : "array end without a matching array begin");
        return;
    }
    if (w->after_key) { sft__jw_fail(w, SFT_ERR_STATE, "object ends after a key that has no value"); return; }
    if (!w->first[w->depth]) sft__jw_newline(w, w->depth - 1);
    sft__jw_put(w, is_object ? "}" : "]", 1);
    w->depth--;
}

SFTDEF void sft_json_write_object_end(sft_json_writer *w) { sft__jw_end(w, 1); }
SFTDEF void sft_json_write_array_end(sft_json_writer *w) { sft__jw_end(w, 0); }

SFTDEF void sft_json_write_key(sft_json_writer *w, const char *key) {
    if (!w || w->status != SFT_OK) return;
    if (!key) { sft__jw_fail(w, SFT_ERR_ARG, "key is NULL"); return; }
    if (w->depth == 0 || !w->in_object[w->depth]) { sft__jw_fail(w, SFT_ERR_STATE, "a key outside an object"); return; }
    if (w->after_key) { sft__jw_fail(w, SFT_ERR_STATE, "two keys in a row"); return; }
    sft__jw_element(w);
    sft__jw_escaped(w, key, strlen(key));
    sft__jw_put(w, w->indent > 0 ? ": " : ":", w->indent > 0 ? 2 : 1);
    w->after_key = 1;
}

SFTDEF void sft_json_write_string_n(sft_json_writer *w, const char *s, size_t len) {
    if (!w || w->status != SFT_OK) return;
    if (!s && len) { sft__jw_fail(w, SFT_ERR_ARG, "string is NULL"); return; }
    if (!sft__jw_value(w)) return;
    sft__jw_escaped(w, s ? s : "", len);
}

SFTDEF void sft_json_write_string(sft_json_writer *w, const char *s) {
    if (!w || w->status != SFT_OK) return;
    if (!s) { sft__jw_fail(w, SFT_ERR_ARG, "string is NULL"); return; }
    sft_json_write_string_n(w, s, strlen(s));
}

SFTDEF void sft_json_write_number(sft_json_writer *w, double v) {
    char b[64];
    size_t n;
    if (!w || w->status != SFT_OK) return;
    if (isnan(v) || isinf(v)) {
        const char *t = isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity";
        if (!w->allow_nonfinite) {
            snprintf(b, sizeof b, "%s is not JSON (set allow_nonfinite)", t);
            sft__jw_fail(w, SFT_ERR_ARG, b);
            return;
        }
        if (sft__jw_value(w)) sft__jw_put(w, t, strlen(t));
        return;
    }
    if (!sft__jw_value(w)) return;
    n = sft__json_format_double(v, b, sizeof b);
    sft__jw_put(w, b, n);
}

SFTDEF void sft_json_write_int(sft_json_writer *w, int64_t v) {
    char b[32];
    int n;
    if (!w || !sft__jw_value(w)) return;
    n = snprintf(b, sizeof b, "%lld", (long long)v);
    sft__jw_put(w, b, (size_t)n);
}

SFTDEF void sft_json_write_bool(sft_json_writer *w, int v) {
    if (!w || !sft__jw_value(w)) return;
    sft__jw_put(w, v ? "true" : "false", v ? 4 : 5);
}

SFTDEF void sft_json_write_null(sft_json_writer *w) {
    if (!w || !sft__jw_value(w)) return;
    sft__jw_put(w, "null", 4);
}

SFTDEF void sft_json_writer_reset(sft_json_writer *w) {
    if (!w) return;
    sft__free(w->ctx, w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
    w->depth = 0;
    memset(w->first, 0, sizeof w->first);
    memset(w->in_object, 0, sizeof w->in_object);
    w->after_key = 0;
    w->status = SFT_OK;
}

SFTDEF sft_status sft_json_writer_finish(sft_json_writer *w, char **text, size_t *len) {
    sft_status s;
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!w) return sft__fail(SFT_ERR_ARG, "sft_json_writer_finish: writer is NULL");
    s = w->status;
    if (s == SFT_OK && !text) s = sft__fail(SFT_ERR_ARG, "sft_json_writer_finish: text is NULL");
    if (s == SFT_OK && (w->depth != 0 || w->after_key))
        s = sft__fail(SFT_ERR_STATE, "json writer: finish with %d container(s) still open", w->depth);
    if (s == SFT_OK && w->len == 0) s = sft__fail(SFT_ERR_STATE, "json writer: finish before any value was written");
    if (s == SFT_OK) {
        w->buf[w->len] = 0;   /* sft__jw_put always leaves room for it */
        *text = w->buf;
        if (len) *len = w->len;
        w->buf = NULL;
    }
    sft_json_writer_reset(w);
    return s;
}

/* ============================================================================
   === safetensors
   The reader maps the file, parses the header with the strict JSON parser and
   checks every entry against the file before anything is handed out: dtype,
   shape, and that the byte ranges tile the data area exactly (no overlap, no
   hole, nothing after the last tensor), as the reference library requires. Tensor
   names and metadata point into the parsed header, which the file object owns.
   The writer lays the file out as huggingface/safetensors' `prepare` does:
   tensors sorted by dtype (larger alignment first), then by name; compact header
   with "__metadata__" first; header padded with spaces to a multiple of 8. */

#define SFT__ST_MAX_HEADER 100000000ull /* the reference library's MAX_HEADER_SIZE */

struct sft_st_file {
    sft_context          *ctx;
    char                 *path;
    sft_json             *header;
    const sft_json       *meta;       /* __metadata__ object or NULL          */
    sft_st_tensor        *tensors;    /* in data order                        */
    const sft_st_tensor **by_name;    /* sorted by name, for sft_st_find      */
    int                   n;
    unsigned char        *base;       /* the whole file, mapped or read       */
    size_t                size;
    int                   mapped;
};

/* The reference library orders dtypes by alignment (enum Dtype: BOOL < U8 < I8 <
   F16 < BF16 < I32 < F32 < I64 among those sft.h has); the writer puts larger
   ones first. */
static int sft__st_rank(sft_dtype dt) {
    switch (dt) {
    case SFT_I64: return 7;
    case SFT_F32: return 6;
    case SFT_I32: return 5;
    case SFT_BF16: return 4;
    case SFT_F16: return 3;
    case SFT_I8: return 2;
    case SFT_U8: return 1;
    default: return 0;
    }
}

/* sft__st_dtype: the sft_dtype named by a header string; -1 = a safetensors dtype
   this build does not hold, -2 = not a safetensors dtype at all. */
static int sft__st_dtype(const char *s, size_t n) {
    static const char *const unsupported[] = {"F64", "I16", "U16", "U32", "U64", "C64", "F8_E4M3", "F8_E5M2", "F8_E8M0",
                                              "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F4", "F6_E2M3", "F6_E3M2"};
    int i;
    for (i = 0; i < SFT_DTYPE_COUNT; i++)
        if (strlen(sft_dtype_name((sft_dtype)i)) == n && memcmp(s, sft_dtype_name((sft_dtype)i), n) == 0) return i;
    for (i = 0; i < (int)(sizeof unsupported / sizeof unsupported[0]); i++)
        if (strlen(unsupported[i]) == n && memcmp(s, unsupported[i], n) == 0) return -1;
    return -2;
}

/* sft__st_uint: a header integer: a JSON number written as plain digits. */
static sft_status sft__st_uint(const sft_st_file *f, const char *tname, const char *field, const sft_json *v, uint64_t max,
                               uint64_t *out) {
    uint64_t x = 0;
    size_t i;
    if (!v || v->type != SFT_JSON_NUMBER)
        return sft__fail(SFT_ERR_FORMAT, "%s: tensor '%s': %s holds a non-number", f->path, tname, field);
    if (v->string[0] == '-')
        return sft__fail(SFT_ERR_FORMAT, "%s: tensor '%s': %s holds the negative number %s", f->path, tname, field, v->string);
    for (i = 0; i < v->length; i++) {
        unsigned d = (unsigned char)v->string[i] - '0';
        if (d > 9)
            return sft__fail(SFT_ERR_FORMAT, "%s: tensor '%s': %s holds %s, not an integer", f->path, tname, field, v->string);
        if (x > (max - d) / 10)
            return sft__fail(SFT_ERR_LIMIT, "%s: tensor '%s': %s holds %s, too large", f->path, tname, field, v->string);
        x = x * 10 + d;
    }
    *out = x;
    return SFT_OK;
}

/* sft__st_entry: one tensor's header entry, checked against the data size. */
static sft_status sft__st_entry(sft_st_file *f, const char *name, const sft_json *e, uint64_t data_size, sft_st_tensor *t) {
    const sft_json *dtype = NULL, *shape = NULL, *offs = NULL;
    uint64_t begin, end, numel = 1, nbytes;
    int dt, overflow = 0;
    size_t i;
    char sb[256];
    if (e->type != SFT_JSON_OBJECT) return sft__fail(SFT_ERR_FORMAT, "%s: tensor '%s': the entry is not an object", f->path, name);
    for (i = 0; i < e->length; i++) {
        const char *k = e->keys[i];
        if (strcmp(k, "dtype") == 0 && e->key_lengths[i] == 5) dtype = &e->items[i];
        else if (strcmp(k, "shape") == 0 && e->key_lengths[i] == 5) shape = &e->items[i];
        else if (strcmp(k, "data_offsets") == 0 && e->key_lengths[i] == 12) offs = &e->items[i];
        else return sft__fail(SFT_ERR_FORMAT, "%s: tensor '%s': unknown field \"%.80s\"", f->path, name, k);
    }
    if (!dtype || !shape || !offs)
        return sft__fail(SFT_ERR_FORMAT, "%s: tensor '%s': missing \"%s\"", f->path, name,
                         !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    if (dtype->type != SFT_JSON_STRING) return sft__fail(SFT_ERR_FORMAT, "%s: tensor '%s': dtype is not a string", f->path, name);
    dt = sft__st_dtype(dtype->string, dtype->length);
    if (dt == -1)
        return sft__fail(SFT_ERR_DTYPE, "%s: tensor '%s': dtype %s is not supported (sft.h reads F32, F16, BF16, U8, I8, I32, "
                         "I64, BOOL)", f->path, name, dtype->string);
    if (dt < 0) return sft__fail(SFT_ERR_DTYPE, "%s: tensor '%s': unknown dtype \"%.40s\"", f->path, name, dtype->string);
    if (shape->type != SFT_JSON_ARRAY) return sft__fail(SFT_ERR_FORMAT, "%s: tensor '%s': shape is not an array", f->path, name);
    if (shape->length > SFT_ST_MAX_DIMS)
        return sft__fail(SFT_ERR_LIMIT, "%s: tensor '%s': shape has %zu dims (at most %d)", f->path, name, shape->length,
                         SFT_ST_MAX_DIMS);
    memset(t, 0, sizeof *t);
    for (i = 0; i < shape->length; i++) {
        uint64_t d;
        SFT__TRY(sft__st_uint(f, name, "shape", &shape->items[i], (uint64_t)INT64_MAX, &d));
        t->shape[i] = (int64_t)d;
        if (d && numel > UINT64_MAX / d) overflow = 1;   /* checked in order, as the reference does */
        numel *= d;
    }
    t->ndim = (int)shape->length;
    sft__shape_str(sb, sizeof sb, t->ndim, t->shape);
    if (overflow || numel > UINT64_MAX / sft_dtype_size((sft_dtype)dt))
        return sft__fail(SFT_ERR_FORMAT, "%s: tensor '%s': shape %s of %s overflows 64 bits", f->path, name, sb,
                         sft_dtype_name((sft_dtype)dt));
    nbytes = numel * sft_dtype_size((sft_dtype)dt);
    if (offs->type != SFT_JSON_ARRAY || offs->length != 2)
        return sft__fail(SFT_ERR_FORMAT, "%s: tensor '%s': data_offsets is not an array of two integers", f->path, name);
    SFT__TRY(sft__st_uint(f, name, "data_offsets", &offs->items[0], UINT64_MAX, &begin));
    SFT__TRY(sft__st_uint(f, name, "data_offsets", &offs->items[1], UINT64_MAX, &end));
    if (begin > end)
        return sft__fail(SFT_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] begin after their end", f->path, name,
                         (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return sft__fail(SFT_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end beyond data size %llu", f->path, name,
                         (unsigned long long)begin, (unsigned long long)end, (unsigned long long)data_size);
    if (end - begin != nbytes)
        return sft__fail(SFT_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, but shape %s of %s needs %llu",
                         f->path, name, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)(end - begin),
                         sb, sft_dtype_name((sft_dtype)dt), (unsigned long long)nbytes);
    t->name = name;
    t->dtype = (sft_dtype)dt;
    t->offset = begin;          /* relative for now; made absolute after the checks */
    t->nbytes = nbytes;
    return SFT_OK;
}

static int sft__st_offset_cmp(const void *a, const void *b) {
    const sft_st_tensor *x = (const sft_st_tensor *)a, *y = (const sft_st_tensor *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int sft__st_name_cmp(const void *a, const void *b) {
    return strcmp((*(const sft_st_tensor *const *)a)->name, (*(const sft_st_tensor *const *)b)->name);
}

/* sft__st_parse: header and entries of an opened file (f->base, f->size). */
static sft_status sft__st_parse(sft_st_file *f, uint64_t hlen) {
    uint64_t data_size = (uint64_t)f->size - 8 - hlen, cursor = 0;
    const sft_json *root;
    size_t i;
    int k = 0;
    SFT__TRY(sft__json_parse_at(f->ctx, (const char *)f->base + 8, (size_t)hlen, f->path, NULL, 8, &f->header));
    root = f->header;
    if (root->type != SFT_JSON_OBJECT) return sft__fail(SFT_ERR_FORMAT, "%s: the header is not a JSON object", f->path);
    if (root->length > (size_t)INT_MAX - 1) return sft__fail(SFT_ERR_LIMIT, "%s: too many tensors", f->path);
    for (i = 0; i < root->length; i++)
        if (!(root->key_lengths[i] == 12 && memcmp(root->keys[i], "__metadata__", 12) == 0)) f->n++;
    f->tensors = (sft_st_tensor *)sft__calloc(f->ctx, (size_t)f->n + 1, sizeof(sft_st_tensor));
    f->by_name = (const sft_st_tensor **)sft__calloc(f->ctx, (size_t)f->n + 1, sizeof(sft_st_tensor *));
    if (!f->tensors || !f->by_name) return sft__fail(SFT_ERR_NOMEM, "%s: cannot allocate %d tensor entries", f->path, f->n);
    for (i = 0; i < root->length; i++) {
        const char *key = root->keys[i];
        const sft_json *v = &root->items[i];
        if (root->key_lengths[i] == 12 && memcmp(key, "__metadata__", 12) == 0) {
            size_t j;
            if (v->type != SFT_JSON_OBJECT) return sft__fail(SFT_ERR_FORMAT, "%s: __metadata__ is not an object", f->path);
            for (j = 0; j < v->length; j++)
                if (v->items[j].type != SFT_JSON_STRING)
                    return sft__fail(SFT_ERR_FORMAT, "%s: __metadata__ value of \"%.80s\" is not a string", f->path, v->keys[j]);
            f->meta = v;
            continue;
        }
        if (strlen(key) != root->key_lengths[i])
            return sft__fail(SFT_ERR_FORMAT, "%s: tensor name \"%.80s...\" holds a NUL character", f->path, key);
        SFT__TRY(sft__st_entry(f, key, v, data_size, &f->tensors[k]));
        k++;
    }
    qsort(f->tensors, (size_t)f->n, sizeof(sft_st_tensor), sft__st_offset_cmp);
    for (k = 0; k < f->n; k++) {           /* the ranges must tile [0, data_size) */
        sft_st_tensor *t = &f->tensors[k];
        if (t->offset < cursor) {
            const sft_st_tensor *prev = k > 0 ? &f->tensors[k - 1] : t;
            int j;
            for (j = k - 1; j >= 0; j--)
                if (f->tensors[j].offset + f->tensors[j].nbytes > t->offset) { prev = &f->tensors[j]; break; }
            return sft__fail(SFT_ERR_FORMAT, "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap", f->path, prev->name,
                             (unsigned long long)prev->offset, (unsigned long long)(prev->offset + prev->nbytes), t->name,
                             (unsigned long long)t->offset, (unsigned long long)(t->offset + t->nbytes));
        }
        if (t->offset > cursor)
            return sft__fail(SFT_ERR_FORMAT, "%s: data bytes [%llu, %llu) before tensor '%s' belong to no tensor (a hole)",
                             f->path, (unsigned long long)cursor, (unsigned long long)t->offset, t->name);
        cursor = t->offset + t->nbytes;
    }
    if (cursor != data_size)
        return sft__fail(SFT_ERR_FORMAT, "%s: data bytes [%llu, %llu) at the end belong to no tensor", f->path,
                         (unsigned long long)cursor, (unsigned long long)data_size);
    for (k = 0; k < f->n; k++) {
        f->tensors[k].offset += 8 + hlen;
        f->tensors[k].data = f->base + f->tensors[k].offset;
        f->by_name[k] = &f->tensors[k];
    }
    qsort(f->by_name, (size_t)f->n, sizeof(sft_st_tensor *), sft__st_name_cmp);
    return SFT_OK;
}

SFTDEF void sft_st_close(sft_st_file *f) {
    sft_context *ctx;
    if (!f) return;
    ctx = f->ctx;
#ifndef SFT_NO_MMAP
    if (f->mapped) munmap(f->base, f->size);
    else
#endif
        sft__free(ctx, f->base);
    sft_json_free(f->header);
    sft__free(ctx, f->tensors);
    sft__free(ctx, f->by_name);
    sft__free(ctx, f->path);
    sft__free(ctx, f);
}

/* sft__read_full: read n bytes at the current position; 0 on success. */
static int sft__read_full(int fd, void *dst, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = read(fd, (char *)dst + done, n - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        done += (size_t)r;
    }
    return 0;
}

SFTDEF sft_status sft_st_open(sft_context *ctx, const char *path, sft_st_file **out) {
    sft_st_file *f;
    struct stat st;
    unsigned char len8[8];
    uint64_t hlen = 0, size;
    sft_status s;
    int fd, i;
    if (!out) return sft__fail(SFT_ERR_ARG, "sft_st_open: out is NULL");
    *out = NULL;
    if (!path) return sft__fail(SFT_ERR_ARG, "sft_st_open: path is NULL");
    fd = open(path, O_RDONLY);
    if (fd < 0) return sft__fail(SFT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) { close(fd); return sft__fail(SFT_ERR_IO, "%s: not a regular file", path); }
    size = (uint64_t)st.st_size;
    if (size < 8) {
        close(fd);
        return sft__fail(SFT_ERR_FORMAT, "%s: %llu bytes, too short for the 8-byte header length", path, (unsigned long long)size);
    }
    if (sft__read_full(fd, len8, 8) != 0) { close(fd); return sft__fail(SFT_ERR_IO, "%s: cannot read the header length", path); }
    for (i = 7; i >= 0; i--) hlen = (hlen << 8) | len8[i];
    if (hlen > SFT__ST_MAX_HEADER) {
        close(fd);
        return sft__fail(SFT_ERR_LIMIT, "%s: header length %llu is over the limit of %llu bytes", path, (unsigned long long)hlen,
                         (unsigned long long)SFT__ST_MAX_HEADER);
    }
    if (hlen > size - 8) {
        close(fd);
        return sft__fail(SFT_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%llu bytes)", path,
                         (unsigned long long)hlen, (unsigned long long)size);
    }
    if (size > (uint64_t)SIZE_MAX / 2) { close(fd); return sft__fail(SFT_ERR_LIMIT, "%s: file too large to map", path); }
    f = (sft_st_file *)sft__calloc(ctx, 1, sizeof *f);
    if (!f || !(f->path = sft__strdup(ctx, path))) {
        sft__free(ctx, f);
        close(fd);
        return sft__fail(SFT_ERR_NOMEM, "%s: out of memory", path);
    }
    f->ctx = ctx;
    f->size = (size_t)size;
#ifndef SFT_NO_MMAP
    {
        void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int err = errno;
            close(fd);
            sft_st_close(f);
            return sft__fail(SFT_ERR_IO, "%s: cannot map %llu bytes: %s", path, (unsigned long long)size, strerror(err));
        }
        f->base = (unsigned char *)m;
        f->mapped = 1;
    }
#else
    f->base = (unsigned char *)sft__alloc(ctx, f->size);
    if (!f->base) {
        close(fd);
        sft_st_close(f);
        return sft__fail(SFT_ERR_NOMEM, "%s: cannot allocate %llu bytes", path, (unsigned long long)size);
    }
    memcpy(f->base, len8, 8);
    if (sft__read_full(fd, f->base + 8, f->size - 8) != 0) {
        close(fd);
        sft_st_close(f);
        return sft__fail(SFT_ERR_IO, "%s: short read", path);
    }
#endif
    close(fd);
    s = sft__st_parse(f, hlen);
    if (s != SFT_OK) { sft_st_close(f); return s; }
    *out = f;
    return SFT_OK;
}

SFTDEF int sft_st_count(const sft_st_file *f) { return f ? f->n : 0; }

SFTDEF const sft_st_tensor *sft_st_tensor_at(const sft_st_file *f, int index) {
    if (!f || index < 0 || index >= f->n) return NULL;
    return &f->tensors[index];
}

SFTDEF const sft_st_tensor *sft_st_find(const sft_st_file *f, const char *name) {
    sft_st_tensor key;
    const sft_st_tensor *kp = &key;
    const sft_st_tensor *const *hit;
    if (!f || !name || f->n == 0) return NULL;
    key.name = name;
    hit = (const sft_st_tensor *const *)bsearch(&kp, f->by_name, (size_t)f->n, sizeof(sft_st_tensor *), sft__st_name_cmp);
    return hit ? *hit : NULL;
}

SFTDEF const char *sft_st_metadata(const sft_st_file *f, const char *key) {
    const sft_json *v;
    if (!f || !f->meta) return NULL;
    v = sft_json_get(f->meta, key);
    return v ? v->string : NULL;
}

SFTDEF sft_status sft_st_load(sft_context *ctx, const sft_st_file *f, const char *name, sft_tensor **out) {
    const sft_st_tensor *e;
    sft_tensor *t;
    char sb[256];
    if (!out) return sft__fail(SFT_ERR_ARG, "sft_st_load: out is NULL");
    *out = NULL;
    if (!f || !name) return sft__fail(SFT_ERR_ARG, "sft_st_load: NULL file or name");
    e = sft_st_find(f, name);
    if (!e) return sft__fail(SFT_ERR_NOT_FOUND, "%s: no tensor named '%s'", f->path, name);
    if (e->ndim > SFT_MAX_DIMS)
        return sft__fail(SFT_ERR_SHAPE, "%s: tensor '%s' has shape %s: sft.h tensors hold at most %d dims", f->path, name,
                         sft__shape_str(sb, sizeof sb, e->ndim, e->shape), SFT_MAX_DIMS);
    SFT__TRY(sft_tensor_create(ctx, e->dtype, e->ndim, e->shape, &t));
    if (e->nbytes) memcpy(t->data, e->data, (size_t)e->nbytes);
    *out = t;
    return SFT_OK;
}

SFTDEF sft_st_entry sft_st_entry_from_tensor(const char *name, const sft_tensor *t) {
    sft_st_entry e;
    int i;
    memset(&e, 0, sizeof e);
    e.name = name;
    if (!t) return e;
    e.dtype = t->dtype;
    e.ndim = t->ndim;
    for (i = 0; i < t->ndim && i < SFT_MAX_DIMS; i++) e.shape[i] = t->shape[i];
    e.data = t->device == SFT_DEVICE_CPU ? t->data : NULL;   /* device memory cannot be written directly */
    return e;
}

static int sft__st_save_cmp(const void *a, const void *b) {
    const sft_st_entry *x = *(const sft_st_entry *const *)a, *y = *(const sft_st_entry *const *)b;
    int rx = sft__st_rank(x->dtype), ry = sft__st_rank(y->dtype);
    if (rx != ry) return rx > ry ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* sft__st_nbytes: the data size of an entry whose shape was checked. */
static uint64_t sft__st_nbytes(const sft_st_entry *e) {
    uint64_t n = sft_dtype_size(e->dtype);
    int d;
    for (d = 0; d < e->ndim; d++) n *= (uint64_t)e->shape[d];
    return n;
}

/* sft__st_check_entry: one entry of sft_st_save; *nbytes = its data size. */
static sft_status sft__st_check_entry(const char *path, int i, const sft_st_entry *e, uint64_t *nbytes) {
    uint64_t numel = 1;
    size_t bad_at;
    const char *why = "";
    int d;
    if (!e->name) return sft__fail(SFT_ERR_ARG, "%s: entry %d has no name", path, i);
    if (sft__utf8_check(e->name, strlen(e->name), &bad_at, &why) != 0)
        return sft__fail(SFT_ERR_ARG, "%s: entry %d: the name is not valid UTF-8 (%s at byte %zu)", path, i, why, bad_at);
    if (strcmp(e->name, "__metadata__") == 0)
        return sft__fail(SFT_ERR_ARG, "%s: entry %d: \"__metadata__\" is reserved and cannot name a tensor", path, i);
    if ((int)e->dtype < 0 || e->dtype >= SFT_DTYPE_COUNT)
        return sft__fail(SFT_ERR_DTYPE, "%s: tensor '%s': dtype %d does not exist", path, e->name, (int)e->dtype);
    if (e->ndim < 0 || e->ndim > SFT_ST_MAX_DIMS)
        return sft__fail(SFT_ERR_SHAPE, "%s: tensor '%s': %d dims (at most %d)", path, e->name, e->ndim, SFT_ST_MAX_DIMS);
    for (d = 0; d < e->ndim; d++) {
        if (e->shape[d] < 0)
            return sft__fail(SFT_ERR_SHAPE, "%s: tensor '%s': shape[%d] = %lld is negative", path, e->name, d,
                             (long long)e->shape[d]);
        if (e->shape[d] && numel > (uint64_t)(SIZE_MAX / 16) / (uint64_t)e->shape[d])
            return sft__fail(SFT_ERR_SHAPE, "%s: tensor '%s': the shape is too large", path, e->name);
        numel *= (uint64_t)e->shape[d];
    }
    *nbytes = sft__st_nbytes(e);
    if (*nbytes && !e->data) return sft__fail(SFT_ERR_ARG, "%s: tensor '%s': data is NULL", path, e->name);
    return SFT_OK;
}

SFTDEF sft_status sft_st_save(sft_context *ctx, const char *path, const sft_st_entry *entries, int n_entries,
                              const char *const *meta_keys, const char *const *meta_values, int n_meta) {
    const sft_st_entry **order = NULL;
    sft_buf *parts = NULL;
    sft_json_writer w;
    char *json = NULL, *header = NULL;
    size_t json_len = 0, hlen, bad_at;
    unsigned char len8[8];
    uint64_t offset = 0, nbytes;
    const char *why = "";
    sft_status s = SFT_OK;
    int i, j, d;
    if (!path) return sft__fail(SFT_ERR_ARG, "sft_st_save: path is NULL");
    if (n_entries < 0 || (n_entries > 0 && !entries))
        return sft__fail(SFT_ERR_ARG, "%s: sft_st_save: %d entries at %p", path, n_entries, (const void *)entries);
    if (n_meta < 0 || (n_meta > 0 && (!meta_keys || !meta_values)))
        return sft__fail(SFT_ERR_ARG, "%s: sft_st_save: %d metadata pairs without keys or values", path, n_meta);
    for (i = 0; i < n_meta; i++) {
        if (!meta_keys[i] || !meta_values[i]) return sft__fail(SFT_ERR_ARG, "%s: metadata pair %d has a NULL key or value", path, i);
        if (sft__utf8_check(meta_keys[i], strlen(meta_keys[i]), &bad_at, &why) != 0 ||
            sft__utf8_check(meta_values[i], strlen(meta_values[i]), &bad_at, &why) != 0)
            return sft__fail(SFT_ERR_ARG, "%s: metadata pair %d is not valid UTF-8 (%s)", path, i, why);
        for (j = 0; j < i; j++)
            if (strcmp(meta_keys[i], meta_keys[j]) == 0)
                return sft__fail(SFT_ERR_ARG, "%s: duplicate metadata key '%s'", path, meta_keys[i]);
    }
    for (i = 0; i < n_entries; i++) SFT__TRY(sft__st_check_entry(path, i, &entries[i], &nbytes));
    order = (const sft_st_entry **)sft__calloc(ctx, (size_t)n_entries + 1, sizeof *order);
    parts = (sft_buf *)sft__calloc(ctx, (size_t)n_entries + 2, sizeof *parts);
    if (!order || !parts) { s = sft__fail(SFT_ERR_NOMEM, "%s: out of memory", path); goto done; }
    for (i = 0; i < n_entries; i++) order[i] = &entries[i];
    qsort(order, (size_t)n_entries, sizeof *order, sft__st_save_cmp);
    for (i = 1; i < n_entries; i++)
        if (strcmp(order[i]->name, order[i - 1]->name) == 0) {
            s = sft__fail(SFT_ERR_ARG, "%s: duplicate tensor name '%s'", path, order[i]->name);
            goto done;
        }
    memset(&w, 0, sizeof w);
    w.ctx = ctx;
    sft_json_write_object_begin(&w);
    if (n_meta > 0) {
        sft_json_write_key(&w, "__metadata__");
        sft_json_write_object_begin(&w);
        for (i = 0; i < n_meta; i++) {
            sft_json_write_key(&w, meta_keys[i]);
            sft_json_write_string(&w, meta_values[i]);
        }
        sft_json_write_object_end(&w);
    }
    for (i = 0; i < n_entries; i++) {
        const sft_st_entry *e = order[i];
        nbytes = sft__st_nbytes(e);
        sft_json_write_key(&w, e->name);
        sft_json_write_object_begin(&w);
        sft_json_write_key(&w, "dtype");
        sft_json_write_string(&w, sft_dtype_name(e->dtype));
        sft_json_write_key(&w, "shape");
        sft_json_write_array_begin(&w);
        for (d = 0; d < e->ndim; d++) sft_json_write_int(&w, e->shape[d]);
        sft_json_write_array_end(&w);
        sft_json_write_key(&w, "data_offsets");
        sft_json_write_array_begin(&w);
        sft_json_write_int(&w, (int64_t)offset);
        sft_json_write_int(&w, (int64_t)(offset + nbytes));
        sft_json_write_array_end(&w);
        sft_json_write_object_end(&w);
        parts[2 + i].data = e->data;
        parts[2 + i].len = (size_t)nbytes;
        offset += nbytes;
    }
    sft_json_write_object_end(&w);
    s = sft_json_writer_finish(&w, &json, &json_len);
    if (s != SFT_OK) goto done;
    hlen = (json_len + 7) & ~(size_t)7;
    header = (char *)sft__alloc(ctx, hlen);
    if (!header) { s = sft__fail(SFT_ERR_NOMEM, "%s: out of memory", path); goto done; }
    memcpy(header, json, json_len);
    memset(header + json_len, ' ', hlen - json_len);
    for (i = 0; i < 8; i++) len8[i] = (unsigned char)(((uint64_t)hlen >> (8 * i)) & 0xFF);
    parts[0].data = len8; parts[0].len = 8;
    parts[1].data = header; parts[1].len = hlen;
    s = sft_file_write_atomic(ctx, path, parts, n_entries + 2);
done:
    sft__free(ctx, header);
    sft__free(ctx, json);
    sft__free(ctx, parts);
    sft__free(ctx, order);
    return s;
}

/* ============================================================================
   === random numbers
   Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"):
   a keyed bijection of a 128-bit counter, so any element's random number is
   computed directly from (key, index), on any thread, in any order. */

SFTDEF void sft_philox(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]) {
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    uint32_t c0 = (uint32_t)counter_lo, c1 = (uint32_t)(counter_lo >> 32);
    uint32_t c2 = (uint32_t)counter_hi, c3 = (uint32_t)(counter_hi >> 32);
    int r;
    for (r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1; c3 = (uint32_t)p0; c0 = n0; c2 = n2;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

SFTDEF float sft_rng_uniform(uint64_t key, uint64_t index) {
    uint32_t r[4];
    sft_philox(key, 0, index, r);
    return (float)(r[0] >> 8) * (1.0f / 16777216.0f);
}

static uint64_t sft__splitmix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

SFTDEF uint64_t sft_rng_key(uint64_t seed, uint64_t purpose, uint64_t a, uint64_t b) {
    return sft__splitmix(sft__splitmix(sft__splitmix(sft__splitmix(seed) ^ purpose) ^ a) ^ b);
}

/* ============================================================================
   === autograd: nodes and the tape
   An operator is one node: its inputs, its output, what it saved, a few scalar
   parameters. The same node drives the forward kernel and, if recorded, the
   backward kernel, so a backend supplies both for an op id. */

typedef enum sft__op {
    SFT__OP_MATMUL, SFT__OP_ADD, SFT__OP_MUL, SFT__OP_SCALE, SFT__OP_RESHAPE, SFT__OP_EMBEDDING,
    SFT__OP_RMSNORM, SFT__OP_SILU, SFT__OP_SWIGLU, SFT__OP_ROPE, SFT__OP_ATTENTION, SFT__OP_CROSS_ENTROPY,
    SFT__OP_DROPOUT, SFT__OP_LINEAR_CE, SFT__OP_COUNT
} sft__op;

static const char *const sft__op_names[SFT__OP_COUNT] = {
    "matmul", "add", "mul", "scale", "reshape", "embedding", "rmsnorm", "silu", "swiglu", "rope", "attention",
    "cross_entropy", "dropout", "linear_cross_entropy"};

#define SFT__MAX_IN 4

struct sft__node {
    sft__op     op;
    int         n_in;
    sft_tensor *in[SFT__MAX_IN];
    sft_tensor *out;
    sft_tensor *saved;      /* op-specific: softmax statistics, inverse rms, ... */
    float       f[4];       /* op-specific scalars (see each op)                 */
    int64_t     i[4];       /* op-specific integers                              */
    const void *ptr;        /* op-specific (rope frequencies)                    */
    struct sft__segment *segment; /* a checkpointed segment instead of an op     */
    sft__node  *prev;       /* the node recorded before this one             */
};

/* A checkpointed segment as it sits on the tape (see sft_checkpoint). */
typedef struct sft__segment {
    sft_segment_fn fn;
    void          *user;
    int            n_in, n_out;
    sft_tensor   **in, **out;
} sft__segment;

typedef sft_status (*sft__kernel)(sft_context *ctx, sft__node *n);

/* A backend: a forward and a backward kernel per op (NULL = not available). */
typedef struct sft__backend {
    const char *name;
    sft__kernel forward[SFT__OP_COUNT];
    sft__kernel backward[SFT__OP_COUNT];
} sft__backend;

/* The backends' tables are defined with their kernels, further down. */
static const sft__backend *sft__backend_cpu(void);
#ifdef SFT_CUDA
static const sft__backend *sft__backend_cuda(void);
#endif

/* sft__dispatch: the one place an op picks its kernel, by its inputs' device. */
static sft_status sft__dispatch(sft_context *ctx, sft__node *n, int backward) {
    const sft__backend *be = NULL;
    sft__kernel k;
    sft_device dev = n->in[0]->device;
    if (dev == SFT_DEVICE_CPU) be = sft__backend_cpu();
#ifdef SFT_CUDA
    else if (dev == SFT_DEVICE_CUDA) be = sft__backend_cuda();
#endif
    if (!be) return sft__no_cuda(sft__op_names[n->op]);
    k = backward ? be->backward[n->op] : be->forward[n->op];
    if (!k) return sft__fail(SFT_ERR_UNSUPPORTED, "%s: the %s backend has no %s kernel yet", sft__op_names[n->op], be->name,
                             backward ? "backward" : "forward");
    return k(ctx, n);
}

static int sft__needs_grad(const sft_context *ctx, const sft__node *n) {
    int i;
    if (!ctx->grad_enabled) return 0;
    for (i = 0; i < n->n_in; i++)
        if (n->in[i] && n->in[i]->requires_grad) return 1;
    return 0;
}

/* sft__record: put a copy of n on the tape; the output now requires a gradient. */
static sft_status sft__record(sft_context *ctx, const sft__node *n, sft_tensor *const *outs, int n_out) {
    void *mem;
    sft__node *rec;
    int i;
    SFT__TRY(sft__arena_alloc(sft__cur_arena(ctx, SFT_DEVICE_CPU), sizeof *rec, &mem));
    rec = (sft__node *)mem;
    *rec = *n;
    rec->prev = ctx->tape;
    ctx->tape = rec;
    for (i = 0; i < n_out; i++) { outs[i]->requires_grad = 1; outs[i]->producer = rec; }
    return SFT_OK;
}

/* sft__op_run: run n's forward kernel and record it if a gradient will be needed. */
static sft_status sft__op_run(sft_context *ctx, sft__node *n, sft_tensor **out) {
    *out = NULL;
    SFT__TRY(sft__dispatch(ctx, n, 0));
    if (sft__needs_grad(ctx, n)) SFT__TRY(sft__record(ctx, n, &n->out, 1));
    *out = n->out;
    return SFT_OK;
}

SFTDEF int sft_grad_enabled_set(sft_context *ctx, int on) {
    int prev;
    if (!ctx) return 0;
    prev = ctx->grad_enabled;
    ctx->grad_enabled = on != 0;
    return prev;
}

SFTDEF void sft_step_begin(sft_context *ctx) {
    int dev;
    if (!ctx) return;
    ctx->tape = NULL;
    for (dev = 0; dev < SFT_DEVICE_COUNT; dev++) {
        sft__arena_reset(&ctx->arena[dev]);
        sft__arena_reset(&ctx->scratch[dev]);
    }
}

static sft_status sft__segment_backward(sft_context *ctx, sft__node *n);

/* sft__backward_node: give the inputs that need one a gradient buffer, then run
   the node's backward (a kernel, or a segment's recomputation). */
static sft_status sft__backward_node(sft_context *ctx, sft__node *n) {
    int i, any = 0;
    if (n->segment) {
        for (i = 0; i < n->segment->n_out; i++) any |= n->segment->out[i]->grad != NULL;
        if (!any) return SFT_OK;
        for (i = 0; i < n->segment->n_in; i++)
            if (n->segment->in[i]->requires_grad) SFT__TRY(sft__ensure_grad(ctx, n->segment->in[i]));
        return sft__segment_backward(ctx, n);
    }
    if (!n->out->grad) return SFT_OK;           /* nothing flowed back through it */
    for (i = 0; i < n->n_in; i++)
        if (n->in[i] && n->in[i]->requires_grad) SFT__TRY(sft__ensure_grad(ctx, n->in[i]));
    return sft__dispatch(ctx, n, 1);
}

/* sft__run_tape_backward: the nodes recorded after stop (NULL: all), newest first. */
static sft_status sft__run_tape_backward(sft_context *ctx, const sft__node *stop) {
    sft__node *n;
    for (n = ctx->tape; n != stop; n = n->prev) SFT__TRY(sft__backward_node(ctx, n));
    return SFT_OK;
}

SFTDEF sft_status sft_backward(sft_context *ctx, sft_tensor *loss) {
    sft_status s;
    float one = 1.0f;
    if (!ctx || !loss) return sft__fail(SFT_ERR_ARG, "sft_backward: NULL argument");
    if (ctx->in_segment) return sft__fail(SFT_ERR_STATE, "sft_backward: called inside a checkpointed segment");
    if (sft_tensor_numel(loss) != 1 || loss->dtype != SFT_F32) {
        char sb[96];
        return sft__fail(SFT_ERR_SHAPE, "sft_backward: loss must be one f32 element, got %s %s", sft_dtype_name(loss->dtype),
                         SFT__SHAPE(loss, sb));
    }
    if (!loss->requires_grad || !loss->producer || !ctx->tape)
        return sft__fail(SFT_ERR_STATE, "sft_backward: the loss was not recorded (no input requires a gradient, "
                         "recording was off, or backward already ran for this graph)");
    SFT__TRY(sft__ensure_grad(ctx, loss));
    SFT__TRY(sft__device_copy(loss->grad->data, loss->grad->device, &one, SFT_DEVICE_CPU, sizeof one));
    s = sft__run_tape_backward(ctx, NULL);
    ctx->tape = NULL;  /* a graph is back-propagated once, as in PyTorch */
    return s;
}

/* ============================================================================
   === autograd: checkpointed segments
   Forward: fn runs in the scratch arena with its tape entries kept only until
   its outputs are copied into the step arena, then the scratch and those
   entries are dropped; one node stands for the whole segment. Backward: fn runs
   again in the scratch arena on aliases of the inputs whose gradients point at
   the real inputs' gradient buffers, its tape is back-propagated from the
   outputs' gradients, and the scratch is dropped again. Gradients accumulate
   into the same buffers in the same order as without the checkpoint, so they
   are bit-identical. */

static sft_status sft__segment_call(sft_context *ctx, const sft__segment *seg, sft_tensor *const *in, sft_tensor **out) {
    sft_status s;
    int i;
    for (i = 0; i < seg->n_out; i++) out[i] = NULL;
    ctx->in_segment = 1;
    s = seg->fn(ctx, seg->user, in, out);
    ctx->in_segment = 0;
    if (s != SFT_OK) return s;
    for (i = 0; i < seg->n_out; i++)
        if (!out[i]) return sft__fail(SFT_ERR_STATE, "sft_checkpoint: segment left output %d unset", i);
    return SFT_OK;
}

/* sft__segment_aliases: step tensors sharing the inputs' data and gradients. */
static sft_status sft__segment_aliases(sft_context *ctx, const sft__segment *seg, sft_tensor **alias) {
    int i;
    for (i = 0; i < seg->n_in; i++) {
        void *mem;
        sft_tensor *src = seg->in[i];
        SFT__TRY(sft__arena_alloc(sft__cur_arena(ctx, SFT_DEVICE_CPU), sizeof(sft_tensor), &mem));
        alias[i] = (sft_tensor *)mem;
        *alias[i] = *src;
        alias[i]->flags = SFT__T_ARENA | SFT__T_VIEW | SFT__T_ALIAS_GRAD;
        alias[i]->producer = NULL;
    }
    return SFT_OK;
}

SFTDEF sft_status sft_checkpoint(sft_context *ctx, sft_segment_fn fn, void *user, int n_in, sft_tensor *const *in,
                                 int n_out, sft_tensor **out) {
    sft__segment seg, *rec_seg;
    sft__arena_mark marks[SFT_DEVICE_COUNT];
    sft__node *tape_mark;
    sft_tensor **alias = NULL, **inner = NULL;
    int i, dev, needs = 0;
    sft_status s = SFT_OK;
    void *mem;
    if (!ctx || !fn || n_in < 0 || n_out <= 0 || (n_in && !in) || !out)
        return sft__fail(SFT_ERR_ARG, "sft_checkpoint: NULL function/arrays or n_out <= 0");
    if (ctx->in_scratch) return sft__fail(SFT_ERR_STATE, "sft_checkpoint: segments do not nest");
    for (i = 0; i < n_in; i++) if (!in[i]) return sft__fail(SFT_ERR_ARG, "sft_checkpoint: input %d is NULL", i);
    seg.fn = fn; seg.user = user; seg.n_in = n_in; seg.n_out = n_out;
    /* the record of the segment (its input/output lists) lives in the step arena */
    SFT__TRY(sft__arena_alloc(&ctx->arena[SFT_DEVICE_CPU], sizeof(sft__segment) + (size_t)(n_in + n_out) * sizeof(sft_tensor *), &mem));
    rec_seg = (sft__segment *)mem;
    *rec_seg = seg;
    rec_seg->in = (sft_tensor **)(void *)(rec_seg + 1);
    rec_seg->out = rec_seg->in + n_in;
    for (i = 0; i < n_in; i++) rec_seg->in[i] = in[i];
    /* run fn in the scratch arena, on aliases so its recording can be dropped */
    for (dev = 0; dev < SFT_DEVICE_COUNT; dev++) marks[dev] = sft__arena_get_mark(&ctx->scratch[dev]);
    tape_mark = ctx->tape;
    ctx->in_scratch = 1;
    s = sft__arena_alloc(&ctx->scratch[SFT_DEVICE_CPU], (size_t)(n_in + n_out) * sizeof(sft_tensor *), &mem);
    if (s == SFT_OK) {
        alias = (sft_tensor **)mem;
        inner = alias + n_in;
        s = sft__segment_aliases(ctx, rec_seg, alias);
    }
    if (s == SFT_OK) s = sft__segment_call(ctx, rec_seg, alias, inner);
    ctx->in_scratch = 0;
    if (s == SFT_OK)
        for (i = 0; i < n_out && s == SFT_OK; i++) {   /* copy the outputs out of the scratch */
            needs |= inner[i]->requires_grad;
            s = sft__tensor_step(ctx, inner[i]->device, inner[i]->dtype, inner[i]->ndim, inner[i]->shape, &rec_seg->out[i]);
            if (s == SFT_OK) s = sft_tensor_copy_from(rec_seg->out[i], inner[i]);
        }
    ctx->tape = tape_mark;
    for (dev = 0; dev < SFT_DEVICE_COUNT; dev++) sft__arena_release(&ctx->scratch[dev], marks[dev]);
    if (s != SFT_OK) return s;
    if (needs && ctx->grad_enabled) {
        sft__node n;
        memset(&n, 0, sizeof n);
        n.segment = rec_seg;
        SFT__TRY(sft__record(ctx, &n, rec_seg->out, n_out));
    }
    for (i = 0; i < n_out; i++) out[i] = rec_seg->out[i];
    return SFT_OK;
}

static sft_status sft__segment_backward(sft_context *ctx, sft__node *n) {
    const sft__segment *seg = n->segment;
    sft__arena_mark marks[SFT_DEVICE_COUNT];
    sft__node *tape_mark = ctx->tape;
    sft_tensor **alias = NULL, **inner = NULL;
    sft_status s;
    int i, dev, prev_grad = ctx->grad_enabled;
    void *mem;
    for (dev = 0; dev < SFT_DEVICE_COUNT; dev++) marks[dev] = sft__arena_get_mark(&ctx->scratch[dev]);
    ctx->in_scratch = 1;
    ctx->grad_enabled = 1;
    s = sft__arena_alloc(&ctx->scratch[SFT_DEVICE_CPU], (size_t)(seg->n_in + seg->n_out) * sizeof(sft_tensor *), &mem);
    if (s == SFT_OK) {
        alias = (sft_tensor **)mem;
        inner = alias + seg->n_in;
        s = sft__segment_aliases(ctx, seg, alias);
    }
    if (s == SFT_OK) s = sft__segment_call(ctx, seg, alias, inner);
    for (i = 0; s == SFT_OK && i < seg->n_out; i++) {
        sft_tensor *g = seg->out[i]->grad;
        if (!g || !inner[i]->requires_grad) continue;
        if (inner[i]->flags & SFT__T_ALIAS_GRAD) {
            /* fn returned an input unchanged: its gradient passes straight through,
               added by the backend's reshape backward (dx += g) */
            sft__node pass;
            memset(&pass, 0, sizeof pass);
            pass.op = SFT__OP_RESHAPE; pass.n_in = 1; pass.in[0] = inner[i]; pass.out = seg->out[i];
            s = sft__dispatch(ctx, &pass, 1);
            continue;
        }
        inner[i]->grad = g;                     /* borrow: the step arena owns it */
        inner[i]->flags |= SFT__T_ALIAS_GRAD;
    }
    if (s == SFT_OK) s = sft__run_tape_backward(ctx, tape_mark);
    ctx->tape = tape_mark;
    ctx->in_scratch = 0;
    ctx->grad_enabled = prev_grad;
    for (dev = 0; dev < SFT_DEVICE_COUNT; dev++) sft__arena_release(&ctx->scratch[dev], marks[dev]);
    return s;
}

/* ============================================================================
   === kernels: helpers for splitting work
   sft__parallel_rows splits [0, n) into fixed chunks; a chunk's bounds depend
   only on n and chunk, never on the thread count. */

typedef void (*sft__range_fn)(void *arg, int64_t begin, int64_t end);
typedef struct sft__range_job { sft__range_fn fn; void *arg; int64_t n, chunk; } sft__range_job;

static void sft__range_task(void *arg, int64_t t, int thread) {
    const sft__range_job *j = (const sft__range_job *)arg;
    int64_t b = t * j->chunk, e = b + j->chunk < j->n ? b + j->chunk : j->n;
    (void)thread;
    j->fn(j->arg, b, e);
}

static void sft__parallel_rows(sft_context *ctx, int64_t n, int64_t chunk, sft__range_fn fn, void *arg) {
    sft__range_job j;
    if (n <= 0) return;
    if (chunk < 1) chunk = 1;
    j.fn = fn; j.arg = arg; j.n = n; j.chunk = chunk;
    sft__parallel(ctx, (n + chunk - 1) / chunk, sft__range_task, &j);
}

/* sft__each_element: run fn over the node's output elements in fixed chunks. */
#define SFT__ELEM_CHUNK 16384
static sft_status sft__each_element(sft_context *ctx, sft__node *n, sft__range_fn fn) {
    sft__parallel_rows(ctx, sft_tensor_numel(n->out), SFT__ELEM_CHUNK, fn, n);
    return SFT_OK;
}

#define SFT__F(t) ((float *)(t)->data)
#define SFT__CF(t) ((const float *)(t)->data)

/* ============================================================================
   === kernels: GEMM
   C (+)= op(A) . op(B) where each operand is a strided view: element (r, c) of A
   is a[r*ars + c*acs]. Transposing a view swaps its strides, so every
   orientation the ops need is one call. Every element of C is summed over k in
   order 0..K-1 by one task: the result does not depend on the thread count.
   This is the portable reference; the SIMD paths plug in at sft__gemm. */

typedef struct sft__mat { const float *p; int64_t rs, cs; } sft__mat;

static sft__mat sft__mat_of(const float *p, int64_t rows_stride, int64_t cols_stride) {
    sft__mat m;
    m.p = p; m.rs = rows_stride; m.cs = cols_stride;
    return m;
}

static sft__mat sft__mat_t(sft__mat m) {
    sft__mat t;
    t.p = m.p; t.rs = m.cs; t.cs = m.rs;
    return t;
}

typedef struct sft__gemm_job {
    sft__mat a, b;
    float   *c;
    int64_t  ldc, M, N, K, n_tiles_n;
    int      accumulate;
} sft__gemm_job;

/* A task computes a block of MB rows x TN columns of C. For each chunk of KC
   values of k it copies the B panel into a small contiguous buffer (so a
   transposed B is read with unit stride too), then adds the chunk into the
   block's accumulators, k in increasing order. */
#define SFT__GEMM_MB 64
#define SFT__GEMM_TN 16
#define SFT__GEMM_KC 256

static void sft__gemm_tile(void *arg, int64_t task, int thread) {
    const sft__gemm_job *j = (const sft__gemm_job *)arg;
    int64_t m0 = (task / j->n_tiles_n) * SFT__GEMM_MB, n0 = (task % j->n_tiles_n) * SFT__GEMM_TN;
    int64_t mt = j->M - m0 < SFT__GEMM_MB ? j->M - m0 : SFT__GEMM_MB;
    int64_t nt = j->N - n0 < SFT__GEMM_TN ? j->N - n0 : SFT__GEMM_TN;
    float acc[SFT__GEMM_MB][SFT__GEMM_TN], panel[SFT__GEMM_KC][SFT__GEMM_TN];
    int64_t i, jn, k0, kk;
    (void)thread;
    memset(acc, 0, sizeof acc);
    for (k0 = 0; k0 < j->K; k0 += SFT__GEMM_KC) {
        int64_t kc = j->K - k0 < SFT__GEMM_KC ? j->K - k0 : SFT__GEMM_KC;
        for (kk = 0; kk < kc; kk++) {
            const float *bk = j->b.p + (k0 + kk) * j->b.rs + n0 * j->b.cs;
            for (jn = 0; jn < SFT__GEMM_TN; jn++) panel[kk][jn] = jn < nt ? bk[jn * j->b.cs] : 0.0f;
        }
        for (i = 0; i < mt; i++) {
            const float *ap = j->a.p + (m0 + i) * j->a.rs + k0 * j->a.cs;
            float *ac = acc[i];
            for (kk = 0; kk < kc; kk++) {
                float av = ap[kk * j->a.cs];
                for (jn = 0; jn < SFT__GEMM_TN; jn++) ac[jn] += av * panel[kk][jn];
            }
        }
    }
    for (i = 0; i < mt; i++) {
        float *c = j->c + (m0 + i) * j->ldc + n0;
        if (j->accumulate) for (jn = 0; jn < nt; jn++) c[jn] += acc[i][jn];
        else for (jn = 0; jn < nt; jn++) c[jn] = acc[i][jn];
    }
}

static sft_status sft__gemm_portable(sft_context *ctx, int64_t M, int64_t N, int64_t K, sft__mat a, sft__mat b, float *c,
                                     int64_t ldc, int accumulate) {
    sft__gemm_job j;
    int64_t tiles_m = (M + SFT__GEMM_MB - 1) / SFT__GEMM_MB;
    if (M <= 0 || N <= 0) return SFT_OK;
    j.a = a; j.b = b; j.c = c; j.ldc = ldc; j.M = M; j.N = N; j.K = K; j.accumulate = accumulate;
    j.n_tiles_n = (N + SFT__GEMM_TN - 1) / SFT__GEMM_TN;
    sft__parallel(ctx, tiles_m * j.n_tiles_n, sft__gemm_tile, &j);
    return SFT_OK;
}

/* ============================================================================
   === kernels: blocked GEMM (shared by the SIMD paths)
   The classic three-level blocking. C is taken NC columns at a time and k KC
   values at a time; for each such step the B slice is packed once into NR-column
   panels (zero-padded, so the micro-kernel never checks edges) shared by all
   threads, then each task packs MC rows of A into MR-row panels and runs the
   MR x NR micro-kernel over its panel pairs. The AVX2 micro-kernel keeps a
   6 x 16 block of C in 12 ymm registers and adds one rank-1 update per k with
   FMAs.

   Determinism: every element of C gets its k-slices in increasing order, each
   slice summed k by k in registers from zero and then added to C. That depends
   on KC only, never on how C is cut into tasks, so the task grid may follow the
   thread count and results stay bit-identical. Measured 2026-11-28 on a 2-core
   Zen 3 (AVX2): see BENCHMARKS.md. */

#ifndef SFT__BLK_KC
#define SFT__BLK_KC 256
#endif
#define SFT__BLK_MC 96      /* a multiple of every MR */
#define SFT__PACK_ROWS 32   /* rows of a row-major B one packing task copies */
#ifndef SFT__BLK_NC
#define SFT__BLK_NC 2048    /* a multiple of every NR */
#endif

/* sft__pack_b: k [0, kc) x the column panels [q0, q1) of view b (panels of nr
   columns, nc columns in all): dst[(q * kc + k) * nr + j] = b(k, q*nr + j);
   columns past nc are zero. */
static void sft__pack_b(const sft__mat *b, int64_t kc, int64_t nc, int nr, int64_t q0, int64_t q1, float *dst) {
    int64_t q, k, j;
    for (q = q0, dst += q0 * kc * nr; q < q1; q++, dst += kc * nr) {
        int64_t cols = nc - q * nr < nr ? nc - q * nr : nr;
        const float *src = b->p + q * nr * b->cs;
        if (b->cs == 1 && cols == nr)           /* row-major B: the nr values of a k are adjacent */
            for (k = 0; k < kc; k++)
                for (j = 0; j < nr; j++) dst[k * nr + j] = src[k * b->rs + j];
        else {                                  /* nr streams along k, written interleaved */
            if (cols < nr) memset(dst, 0, (size_t)(kc * nr) * sizeof(float));
            for (k = 0; k < kc; k++)
                for (j = 0; j < cols; j++) dst[k * nr + j] = src[k * b->rs + j * b->cs];
        }
    }
}

/* sft__pack_a: rows [0, mc) x k [0, kc) of view a into panels of mr rows:
   dst[(p * kc + k) * mr + r] = a(p*mr + r, k), rows past mc zero. That is the B
   packing of a transposed. */
static void sft__pack_a(const sft__mat *a, int64_t mc, int64_t kc, int mr, float *dst) {
    sft__mat t = sft__mat_t(*a);
    sft__pack_b(&t, kc, mc, mr, 0, (mc + mr - 1) / mr, dst);
}

/* sft__pack_b_rows: the same layout for a row-major B (unit column stride), k in
   [k0, k1): each k's row is read once, left to right, across all panels. */
static void sft__pack_b_rows(const sft__mat *b, int64_t kc, int64_t nc, int nr, int64_t k0, int64_t k1, float *dst) {
    int64_t panels = (nc + nr - 1) / nr, k, q, j;
    for (k = k0; k < k1; k++) {
        const float *src = b->p + k * b->rs;
        for (q = 0; q < panels; q++) {
            float *d = dst + (q * kc + k) * nr;
            int64_t cols = nc - q * nr < nr ? nc - q * nr : nr;
            for (j = 0; j < cols; j++) d[j] = src[q * nr + j];
            for (; j < nr; j++) d[j] = 0.0f;
        }
    }
}

/* A micro-kernel: c[mr x nr] = (add ? c : 0) + A . b_panel over kc, where
   A(r, k) = a[r * a_rs + k * a_ks]: a packed panel (a_rs 1, a_ks mr) or, when A is
   row-major, mr rows read in place (a_rs = the row stride, a_ks 1). */
typedef void (*sft__micro_fn)(int64_t kc, const float *a, int64_t a_rs, int64_t a_ks, const float *b, float *c, int64_t ldc,
                              int add);

/* One (column block, k slice) step of the blocked GEMM: B's slice is packed once
   into the shared buffer (tasks of a few panels each), then tasks of (row block,
   group of column panels) pack their A rows and run the micro-kernel. */
typedef struct sft__blocked_job {
    sft_context  *ctx;
    sft__mat      a, b;         /* already offset to this column block and k slice */
    float        *c, *bpack;    /* c offset to this column block                   */
    int64_t       ldc, M, nc, kc, mc, group, n_groups, panels_per_pack_task;
    int           add, mr, nr;
    sft__micro_fn micro;
} sft__blocked_job;

/* Packing B: a row-major B is split among the tasks by ranges of k (reading
   whole rows), any other layout by ranges of panels (reading along k). */
static void sft__blocked_pack_task(void *arg, int64_t task, int thread) {
    const sft__blocked_job *j = (const sft__blocked_job *)arg;
    int64_t panels = (j->nc + j->nr - 1) / j->nr, q0 = task * j->panels_per_pack_task;
    int64_t q1 = q0 + j->panels_per_pack_task < panels ? q0 + j->panels_per_pack_task : panels;
    (void)thread;
    if (j->b.cs == 1) {
        int64_t k0 = task * SFT__PACK_ROWS, k1 = k0 + SFT__PACK_ROWS < j->kc ? k0 + SFT__PACK_ROWS : j->kc;
        sft__pack_b_rows(&j->b, j->kc, j->nc, j->nr, k0, k1, j->bpack);
    } else
        sft__pack_b(&j->b, j->kc, j->nc, j->nr, q0, q1, j->bpack);
}

static void sft__blocked_compute_task(void *arg, int64_t task, int thread) {
    const sft__blocked_job *j = (const sft__blocked_job *)arg;
    int64_t i0 = (task / j->n_groups) * j->mc, jr0 = (task % j->n_groups) * j->group;
    int64_t mc = j->M - i0 < j->mc ? j->M - i0 : j->mc, jr1 = jr0 + j->group < j->nc ? jr0 + j->group : j->nc, ir, jr;
    int64_t full = mc - mc % j->mr;             /* rows in whole panels */
    float *apack = j->ctx->gemm_pack + (size_t)thread * SFT__BLK_MC * SFT__BLK_KC;
    float edge[16 * 32];                        /* an edge tile: at most MR x NR of any path */
    int direct = j->a.cs == 1;                  /* row-major A: whole panels are read in place */
    sft__mat a = j->a;
    a.p += i0 * a.rs;
    if (!direct) sft__pack_a(&a, mc, j->kc, j->mr, apack);
    else if (full < mc) {                       /* only the last, partial panel is packed */
        sft__mat tail = a;
        tail.p += full * a.rs;
        sft__pack_a(&tail, mc - full, j->kc, j->mr, apack + full * j->kc);
    }
    for (jr = jr0; jr < jr1; jr += j->nr)
        for (ir = 0; ir < mc; ir += j->mr) {
            int in_place = direct && ir < full;
            const float *ap = in_place ? a.p + ir * a.rs : apack + ir * j->kc, *bp = j->bpack + jr * j->kc;
            int64_t a_rs = in_place ? a.rs : 1, a_ks = in_place ? 1 : j->mr;
            float *c = j->c + (i0 + ir) * j->ldc + jr;
            int64_t rows = mc - ir < j->mr ? mc - ir : j->mr, cols = jr1 - jr < j->nr ? jr1 - jr : j->nr, r, q;
            if (rows == j->mr && cols == j->nr) { j->micro(j->kc, ap, a_rs, a_ks, bp, c, j->ldc, j->add); continue; }
            j->micro(j->kc, ap, a_rs, a_ks, bp, edge, j->nr, 0);
            for (r = 0; r < rows; r++)
                for (q = 0; q < cols; q++)
                    c[r * j->ldc + q] = j->add ? c[r * j->ldc + q] + edge[r * j->nr + q] : edge[r * j->nr + q];
        }
}

/* sft__gemm_blocked: the driver every SIMD path shares; only the micro-kernel
   and its MR x NR differ. Rows are cut into blocks of at most MC and, when that
   gives the threads too little to share, the column panels into groups. */
static sft_status sft__gemm_blocked(sft_context *ctx, int64_t M, int64_t N, int64_t K, sft__mat a, sft__mat b, float *c,
                                    int64_t ldc, int accumulate, int mr, int nr, sft__micro_fn micro) {
    sft__blocked_job j;
    int64_t jc, pc, want = 4 * (int64_t)ctx->threads, n_rows;
    if (M <= 0 || N <= 0) return SFT_OK;
    if (!ctx->gemm_pack) {
        size_t floats = (size_t)ctx->threads * SFT__BLK_MC * SFT__BLK_KC + (size_t)SFT__BLK_KC * SFT__BLK_NC;
        ctx->gemm_pack = (float *)sft__alloc(ctx, floats * sizeof(float));
        if (!ctx->gemm_pack) return sft__fail(SFT_ERR_NOMEM, "matmul: cannot allocate the GEMM packing buffers");
    }
    memset(&j, 0, sizeof j);
    j.ctx = ctx; j.ldc = ldc; j.M = M; j.mr = mr; j.nr = nr; j.micro = micro;
    j.bpack = ctx->gemm_pack + (size_t)ctx->threads * SFT__BLK_MC * SFT__BLK_KC;
    j.mc = SFT__BLK_MC;
    n_rows = (M + j.mc - 1) / j.mc;
    for (jc = 0; jc < N; jc += SFT__BLK_NC) {
        int64_t panels;
        j.nc = N - jc < SFT__BLK_NC ? N - jc : SFT__BLK_NC;
        panels = (j.nc + nr - 1) / nr;
        j.n_groups = n_rows >= want ? 1 : (want + n_rows - 1) / n_rows;
        if (j.n_groups > panels) j.n_groups = panels;
        j.group = ((panels + j.n_groups - 1) / j.n_groups) * nr;
        j.n_groups = (j.nc + j.group - 1) / j.group;
        j.panels_per_pack_task = (panels + want - 1) / want;
        for (pc = 0; pc < K || pc == 0; pc += SFT__BLK_KC) {
            j.kc = K - pc < SFT__BLK_KC ? K - pc : SFT__BLK_KC;
            j.add = accumulate || pc > 0;
            j.a = a; j.a.p += pc * a.cs;
            j.b = b; j.b.p += pc * b.rs + jc * b.cs;
            j.c = c + jc;
            sft__parallel(ctx, b.cs == 1 ? (j.kc + SFT__PACK_ROWS - 1) / SFT__PACK_ROWS
                                         : (panels + j.panels_per_pack_task - 1) / j.panels_per_pack_task,
                          sft__blocked_pack_task, &j);
            sft__parallel(ctx, n_rows * j.n_groups, sft__blocked_compute_task, &j);
            if (K == 0) break;
        }
    }
    return SFT_OK;
}

/* The portable micro-kernel (4 x 16, plain C): the portable path's tiles in
   attention use it. */
static void sft__micro_portable_4x16(int64_t kc, const float *a, int64_t a_rs, int64_t a_ks, const float *b, float *c,
                                     int64_t ldc, int add) {
    float acc[4][16];
    int64_t k, r, j;
    memset(acc, 0, sizeof acc);
    for (k = 0; k < kc; k++, b += 16)
        for (r = 0; r < 4; r++) {
            float av = a[r * a_rs + k * a_ks];
            for (j = 0; j < 16; j++) acc[r][j] += av * b[j];
        }
    for (r = 0; r < 4; r++)
        for (j = 0; j < 16; j++) c[r * ldc + j] = add ? c[r * ldc + j] + acc[r][j] : acc[r][j];
}

/* sft__gemm_small: C (+)= op(A) . op(B) on the calling thread alone, with a
   path's micro-kernel and the caller's packing buffers (apack: (M rounded up to
   mr) x KC floats, bpack: KC x (N rounded up to nr)). For the small tiles inside
   other kernels' tasks; the same k-slice order as the blocked GEMM. */
static void sft__gemm_small(sft__micro_fn micro, int mr, int nr, int64_t M, int64_t N, int64_t K, sft__mat a, sft__mat b,
                            float *c, int64_t ldc, int add, float *apack, float *bpack) {
    float edge[16 * 32];
    int64_t k0, ir, jr, r, q;
    for (k0 = 0; k0 < K || k0 == 0; k0 += SFT__BLK_KC) {
        int64_t kc = K - k0 < SFT__BLK_KC ? K - k0 : SFT__BLK_KC;
        int slice_add = add || k0 > 0;
        sft__mat as = a, bs = b;
        as.p += k0 * a.cs; bs.p += k0 * b.rs;
        sft__pack_a(&as, M, kc, mr, apack);
        sft__pack_b(&bs, kc, N, nr, 0, (N + nr - 1) / nr, bpack);
        for (jr = 0; jr < N; jr += nr)
            for (ir = 0; ir < M; ir += mr) {
                int64_t rows = M - ir < mr ? M - ir : mr, cols = N - jr < nr ? N - jr : nr;
                float *cc = c + ir * ldc + jr;
                if (rows == mr && cols == nr) { micro(kc, apack + ir * kc, 1, mr, bpack + jr * kc, cc, ldc, slice_add); continue; }
                micro(kc, apack + ir * kc, 1, mr, bpack + jr * kc, edge, nr, 0);
                for (r = 0; r < rows; r++)
                    for (q = 0; q < cols; q++) cc[r * ldc + q] = slice_add ? cc[r * ldc + q] + edge[r * nr + q] : edge[r * nr + q];
            }
        if (K == 0) break;
    }
}

#ifdef SFT__SIMD_X86
SFT__TARGET_AVX2 static void sft__micro_avx2_6x16(int64_t kc, const float *a, int64_t a_rs, int64_t a_ks, const float *b,
                                                  float *c, int64_t ldc, int add) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const float *a0 = a, *a1 = a + a_rs, *a2 = a + 2 * a_rs, *a3 = a + 3 * a_rs, *a4 = a + 4 * a_rs, *a5 = a + 5 * a_rs;
    int64_t k, o;
    for (k = 0, o = 0; k < kc; k++, o += a_ks, b += 16) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), av;
        av = _mm256_broadcast_ss(a0 + o); c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(a1 + o); c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(a2 + o); c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(a3 + o); c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31);
        av = _mm256_broadcast_ss(a4 + o); c40 = _mm256_fmadd_ps(av, b0, c40); c41 = _mm256_fmadd_ps(av, b1, c41);
        av = _mm256_broadcast_ss(a5 + o); c50 = _mm256_fmadd_ps(av, b0, c50); c51 = _mm256_fmadd_ps(av, b1, c51);
    }
#define SFT__AVX2_ROW(r, lo, hi)                                                                  \
    do {                                                                                          \
        float *cr = c + (r) * ldc;                                                                \
        if (add) { lo = _mm256_add_ps(_mm256_loadu_ps(cr), lo); hi = _mm256_add_ps(_mm256_loadu_ps(cr + 8), hi); } \
        _mm256_storeu_ps(cr, lo); _mm256_storeu_ps(cr + 8, hi);                                   \
    } while (0)
    SFT__AVX2_ROW(0, c00, c01); SFT__AVX2_ROW(1, c10, c11); SFT__AVX2_ROW(2, c20, c21);
    SFT__AVX2_ROW(3, c30, c31); SFT__AVX2_ROW(4, c40, c41); SFT__AVX2_ROW(5, c50, c51);
#undef SFT__AVX2_ROW
}

static sft_status sft__gemm_avx2(sft_context *ctx, int64_t M, int64_t N, int64_t K, sft__mat a, sft__mat b, float *c,
                                 int64_t ldc, int accumulate) {
    return sft__gemm_blocked(ctx, M, N, K, a, b, c, ldc, accumulate, 6, 16, sft__micro_avx2_6x16);
}

SFT__AVX512_WARNINGS_OFF
/* The AVX-512 micro-kernel: a 12 x 32 block of C in 24 zmm registers, the
   same scheme as the AVX2 one with vectors twice as wide and twice the rows.
   (Written on a machine without AVX-512: the per-path tests run it wherever the
   CPU has it.) */
#define SFT__AVX512_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
SFT__TARGET_AVX512 static void sft__micro_avx512_12x32(int64_t kc, const float *a, int64_t a_rs, int64_t a_ks,
                                                     const float *b, float *c, int64_t ldc, int add) {
#define SFT__DECL(r) __m512 lo##r = _mm512_setzero_ps(), hi##r = _mm512_setzero_ps();
#define SFT__FMA(r) av = _mm512_set1_ps(a[(r) * a_rs]); lo##r = _mm512_fmadd_ps(av, b0, lo##r); hi##r = _mm512_fmadd_ps(av, b1, hi##r);
#define SFT__STORE(r)                                                                                         \
    if (add) { lo##r = _mm512_add_ps(_mm512_loadu_ps(c + (r) * ldc), lo##r);                                  \
               hi##r = _mm512_add_ps(_mm512_loadu_ps(c + (r) * ldc + 16), hi##r); }                           \
    _mm512_storeu_ps(c + (r) * ldc, lo##r); _mm512_storeu_ps(c + (r) * ldc + 16, hi##r);
    int64_t k;
    SFT__AVX512_ROWS(SFT__DECL)
    for (k = 0; k < kc; k++, a += a_ks, b += 32) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), av;
        SFT__AVX512_ROWS(SFT__FMA)
    }
    SFT__AVX512_ROWS(SFT__STORE)
#undef SFT__DECL
#undef SFT__FMA
#undef SFT__STORE
}

SFT__AVX512_WARNINGS_ON
static sft_status sft__gemm_avx512(sft_context *ctx, int64_t M, int64_t N, int64_t K, sft__mat a, sft__mat b, float *c,
                                   int64_t ldc, int accumulate) {
    return sft__gemm_blocked(ctx, M, N, K, a, b, c, ldc, accumulate, 12, 32, sft__micro_avx512_12x32);
}
#endif

/* ============================================================================
   === kernels: vector helpers
   dot over a short row (a head's D values), for the per-row statistics of the
   attention backward, and exp_shift, x = exp(x - shift) over a row of scores.
   Each path sums in its own fixed order. The SIMD exp is the Cephes polynomial
   (range reduction by ln 2 in two parts, degree-6 polynomial, exponent built in
   the integer unit): within 2 ulp of expf; below -87.3 it gives 0, as a masked
   score (-inf) must. */

static void sft__exp_shift_portable(float *x, int64_t n, float shift) {
    int64_t i;
    for (i = 0; i < n; i++) x[i] = expf(x[i] - shift);
}

static float sft__dot_portable(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    int64_t i;
    for (i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

#ifdef SFT__SIMD_X86
#define SFT__EXP_LO (-87.33654f)
#define SFT__EXP_HI 88.3762626647949f

SFT__TARGET_AVX2 static __m256 sft__exp_avx2(__m256 x) {
    __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(SFT__EXP_LO), _CMP_LT_OQ), fx, y, z;
    __m256i e;
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(SFT__EXP_LO)), _mm256_set1_ps(SFT__EXP_HI));
    fx = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    z = _mm256_mul_ps(x, x);
    y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, z, _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(under, y);
}

SFT__TARGET_AVX2 static void sft__exp_shift_avx2(float *x, int64_t n, float shift) {
    __m256 sh = _mm256_set1_ps(shift);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, sft__exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh)));
    if (i < n) {                                /* the tail through a full vector */
        float buf[8];
        int64_t k;
        for (k = 0; k < 8; k++) buf[k] = i + k < n ? x[i + k] - shift : -INFINITY;
        _mm256_storeu_ps(buf, sft__exp_avx2(_mm256_loadu_ps(buf)));
        for (k = 0; i + k < n; k++) x[i + k] = buf[k];
    }
}

SFT__TARGET_AVX2 static float sft__dot_avx2(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m128 h;
    float s;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s0 = _mm256_add_ps(s0, s1);
    h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    s = _mm_cvtss_f32(h);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

SFT__AVX512_WARNINGS_OFF
SFT__TARGET_AVX512 static __m512 sft__exp_avx512(__m512 x) {
    __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(SFT__EXP_LO), _CMP_GE_OQ);
    __m512 fx, y, z;
    __m512i e;
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(SFT__EXP_LO)), _mm512_set1_ps(SFT__EXP_HI));
    fx = _mm512_roundscale_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f)),
                              _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
    z = _mm512_mul_ps(x, x);
    y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, z, _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
    e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(fx), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps(keep, y, _mm512_castsi512_ps(e));
}

SFT__TARGET_AVX512 static void sft__exp_shift_avx512(float *x, int64_t n, float shift) {
    __m512 sh = _mm512_set1_ps(shift);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, sft__exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + i), sh)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(x + i, m, sft__exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), sh)));
    }
}

SFT__TARGET_AVX512 static float sft__dot_avx512(const float *a, const float *b, int64_t n) {
    __m512 s0 = _mm512_setzero_ps();
    float s, lanes[16];
    int64_t i = 0;
    int l;
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    _mm512_storeu_ps(lanes, s0);   /* (_mm512_reduce_add_ps trips g++ 12's -Wuninitialized) */
    for (l = 1, s = lanes[0]; l < 16; l++) s += lanes[l];
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

SFT__AVX512_WARNINGS_ON
#endif

/* ============================================================================
   === kernels: the CPU path table
   Each CPU path (sft_cpu_path) has its own set of hot kernels; a path whose
   entries are NULL has none in this build and cannot be chosen. The portable
   path is plain C and is the reference the others are tested against. Every
   operator reaches these kernels through sft__cpu_kernels_of(ctx). */

typedef sft_status (*sft__gemm_fn)(sft_context *ctx, int64_t M, int64_t N, int64_t K, sft__mat a, sft__mat b, float *c,
                                   int64_t ldc, int accumulate);
typedef struct sft__cpu_kernels {
    sft__gemm_fn  gemm;                     /* threaded, any size */
    sft__micro_fn micro;                    /* the mr x nr micro-kernel, for tiles */
    int           mr, nr;
    float (*dot)(const float *a, const float *b, int64_t n);
    void (*exp_shift)(float *x, int64_t n, float shift);   /* x = exp(x - shift) */
} sft__cpu_kernels;

static const sft__cpu_kernels sft__cpu_kernel_table[SFT_CPU_PATH_COUNT] = {
    {NULL, NULL, 0, 0, NULL, NULL},                                                      /* SFT_CPU_AUTO */
    {sft__gemm_portable, sft__micro_portable_4x16, 4, 16, sft__dot_portable, sft__exp_shift_portable},      /* SFT_CPU_PORTABLE */
#ifdef SFT__SIMD_X86
    {sft__gemm_avx2, sft__micro_avx2_6x16, 6, 16, sft__dot_avx2, sft__exp_shift_avx2},                  /* SFT_CPU_AVX2 */
    {sft__gemm_avx512, sft__micro_avx512_12x32, 12, 32, sft__dot_avx512, sft__exp_shift_avx512}};         /* SFT_CPU_AVX512 */
#else
    {NULL, NULL, 0, 0, NULL, NULL},
    {NULL, NULL, 0, 0, NULL, NULL}};
#endif

static int sft__cpu_path_has_kernels(sft_cpu_path path) {
    if (path == SFT_CPU_AUTO) return 1;
    return (int)path > 0 && path < SFT_CPU_PATH_COUNT && sft__cpu_kernel_table[path].gemm != NULL;
}

#ifdef SFT_USE_CBLAS
/* SFT_USE_CBLAS: on the automatic path, dense GEMMs go to the host's BLAS. A view
   with unit column stride is a row-major matrix, one with unit row stride a
   transposed one; anything else (never made by the ops) uses our own kernel. */
static sft_status sft__gemm_cblas(sft_context *ctx, int64_t M, int64_t N, int64_t K, sft__mat a, sft__mat b, float *c,
                                  int64_t ldc, int accumulate) {
    int a_ok = a.cs == 1 || a.rs == 1, b_ok = b.cs == 1 || b.rs == 1;
    if (M <= 0 || N <= 0) return SFT_OK;
    if (!a_ok || !b_ok || M > INT_MAX || N > INT_MAX || K > INT_MAX || ldc > INT_MAX)
        return sft__cpu_kernel_table[sft_cpu_path_get(ctx)].gemm(ctx, M, N, K, a, b, c, ldc, accumulate);
    cblas_sgemm(CblasRowMajor, a.cs == 1 ? CblasNoTrans : CblasTrans, b.cs == 1 ? CblasNoTrans : CblasTrans, (int)M, (int)N,
                (int)K, 1.0f, a.p, (int)(a.cs == 1 ? (a.rs > 1 ? a.rs : 1) : a.cs), b.p,
                (int)(b.cs == 1 ? (b.rs > 1 ? b.rs : 1) : b.cs), accumulate ? 1.0f : 0.0f, c, (int)ldc);
    return SFT_OK;
}

static const sft__cpu_kernels sft__cpu_kernel_table_cblas[SFT_CPU_PATH_COUNT] = {
    {NULL, NULL, 0, 0, NULL, NULL},
    {sft__gemm_cblas, sft__micro_portable_4x16, 4, 16, sft__dot_portable, sft__exp_shift_portable},
#ifdef SFT__SIMD_X86
    {sft__gemm_cblas, sft__micro_avx2_6x16, 6, 16, sft__dot_avx2, sft__exp_shift_avx2},
    {sft__gemm_cblas, sft__micro_avx512_12x32, 12, 32, sft__dot_avx512, sft__exp_shift_avx512}};
#else
    {NULL, NULL, 0, 0, NULL, NULL},
    {NULL, NULL, 0, 0, NULL, NULL}};
#endif
#endif

/* sft__cpu_kernels_of: the kernels of the context's path (SFT_USE_CBLAS: with the
   BLAS's GEMM while the path is automatic). */
static const sft__cpu_kernels *sft__cpu_kernels_of(const sft_context *ctx) {
#ifdef SFT_USE_CBLAS
    if (!ctx || ctx->cpu_path == SFT_CPU_AUTO) return &sft__cpu_kernel_table_cblas[sft_cpu_path_get(ctx)];
#endif
    return &sft__cpu_kernel_table[sft_cpu_path_get(ctx)];
}

/* sft__gemm: C (+)= op(A) . op(B) on the context's CPU path. */
static sft_status sft__gemm(sft_context *ctx, int64_t M, int64_t N, int64_t K, sft__mat a, sft__mat b, float *c, int64_t ldc,
                            int accumulate) {
    return sft__cpu_kernels_of(ctx)->gemm(ctx, M, N, K, a, b, c, ldc, accumulate);
}

/* Matmul node: in[0] = A, in[1] = B; i[0] = trans_a, i[1] = trans_b, i[2] = batch,
   i[3] = 1 when B is shared by every batch. M, N, K follow from the shapes. */
typedef struct sft__mm_dims { int64_t M, N, K, batch; int ta, tb, b_shared; } sft__mm_dims;

static sft__mm_dims sft__mm_dims_of(const sft__node *n) {
    sft__mm_dims d;
    const sft_tensor *a = n->in[0], *b = n->in[1];
    d.ta = (int)n->i[0]; d.tb = (int)n->i[1]; d.batch = n->i[2]; d.b_shared = (int)n->i[3];
    d.M = d.ta ? a->shape[a->ndim - 1] : a->shape[a->ndim - 2];
    d.K = d.ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    d.N = d.tb ? b->shape[b->ndim - 2] : b->shape[b->ndim - 1];
    return d;
}

/* op(X) of a stored [rows, cols] matrix as a view */
static sft__mat sft__mm_op(const float *p, int64_t stored_cols, int trans) {
    sft__mat m = sft__mat_of(p, stored_cols, 1);
    return trans ? sft__mat_t(m) : m;
}

static sft_status sft__cpu_matmul_fwd(sft_context *ctx, sft__node *n) {
    sft__mm_dims d = sft__mm_dims_of(n);
    int64_t bi;
    const float *A = SFT__CF(n->in[0]), *B = SFT__CF(n->in[1]);
    float *C = SFT__F(n->out);
    if (d.b_shared && !d.ta) {   /* the batch is just more rows of A */
        SFT__TRY(sft__gemm(ctx, d.batch * d.M, d.N, d.K, sft__mm_op(A, d.K, 0), sft__mm_op(B, d.tb ? d.K : d.N, d.tb), C, d.N, 0));
        return SFT_OK;
    }
    for (bi = 0; bi < d.batch; bi++)
        SFT__TRY(sft__gemm(ctx, d.M, d.N, d.K, sft__mm_op(A + bi * d.M * d.K, d.ta ? d.M : d.K, d.ta),
                  sft__mm_op(B + (d.b_shared ? 0 : bi * d.K * d.N), d.tb ? d.K : d.N, d.tb), C + bi * d.M * d.N, d.N, 0));
    return SFT_OK;
}

/* dA = dC . op(B)^T (transposed back if A was), dB = op(A)^T . dC (likewise). */
static sft_status sft__cpu_matmul_bwd(sft_context *ctx, sft__node *n) {
    sft__mm_dims d = sft__mm_dims_of(n);
    sft_tensor *a = n->in[0], *b = n->in[1];
    const float *G = SFT__CF(n->out->grad), *A = SFT__CF(a), *B = SFT__CF(b);
    int64_t bi;
    if (d.b_shared && !d.ta) {
        sft__mat g = sft__mat_of(G, d.N, 1), opa = sft__mm_op(A, d.K, 0), opb = sft__mm_op(B, d.tb ? d.K : d.N, d.tb);
        int64_t rows = d.batch * d.M;
        if (a->requires_grad) SFT__TRY(sft__gemm(ctx, rows, d.K, d.N, g, sft__mat_t(opb), SFT__F(a->grad), d.K, 1));
        if (b->requires_grad) {
            if (d.tb) SFT__TRY(sft__gemm(ctx, d.N, d.K, rows, sft__mat_t(g), opa, SFT__F(b->grad), d.K, 1));
            else SFT__TRY(sft__gemm(ctx, d.K, d.N, rows, sft__mat_t(opa), g, SFT__F(b->grad), d.N, 1));
        }
        return SFT_OK;
    }
    for (bi = 0; bi < d.batch; bi++) {
        sft__mat g = sft__mat_of(G + bi * d.M * d.N, d.N, 1);
        sft__mat opa = sft__mm_op(A + bi * d.M * d.K, d.ta ? d.M : d.K, d.ta);
        int64_t boff = d.b_shared ? 0 : bi * d.K * d.N;
        sft__mat opb = sft__mm_op(B + boff, d.tb ? d.K : d.N, d.tb);
        if (a->requires_grad) {
            float *ga = SFT__F(a->grad) + bi * d.M * d.K;
            if (d.ta) SFT__TRY(sft__gemm(ctx, d.K, d.M, d.N, opb, sft__mat_t(g), ga, d.M, 1));
            else SFT__TRY(sft__gemm(ctx, d.M, d.K, d.N, g, sft__mat_t(opb), ga, d.K, 1));
        }
        if (b->requires_grad) {
            float *gb = SFT__F(b->grad) + boff;
            if (d.tb) SFT__TRY(sft__gemm(ctx, d.N, d.K, d.M, sft__mat_t(g), opa, gb, d.K, 1));
            else SFT__TRY(sft__gemm(ctx, d.K, d.N, d.M, sft__mat_t(opa), g, gb, d.N, 1));
        }
    }
    return SFT_OK;
}

/* ============================================================================
   === kernels: elementwise
   add/mul node: in[0] = a, in[1] = b with b's numel dividing a's (suffix
   broadcast); scale node: f[0] = s. Broadcast gradients are summed over the
   leading rows in order by whoever owns each column chunk. */

typedef struct sft__ew_job { sft__node *n; int64_t nb; } sft__ew_job;

static void sft__add_fwd_range(void *arg, int64_t b, int64_t e) {
    const sft__ew_job *j = (const sft__ew_job *)arg;
    const float *x = SFT__CF(j->n->in[0]), *y = SFT__CF(j->n->in[1]);
    float *o = SFT__F(j->n->out);
    int64_t i;
    for (i = b; i < e; i++) o[i] = x[i] + y[i % j->nb];
}

static void sft__mul_fwd_range(void *arg, int64_t b, int64_t e) {
    const sft__ew_job *j = (const sft__ew_job *)arg;
    const float *x = SFT__CF(j->n->in[0]), *y = SFT__CF(j->n->in[1]);
    float *o = SFT__F(j->n->out);
    int64_t i;
    for (i = b; i < e; i++) o[i] = x[i] * y[i % j->nb];
}

static sft_status sft__cpu_add_fwd(sft_context *ctx, sft__node *n) {
    sft__ew_job j;
    j.n = n; j.nb = sft_tensor_numel(n->in[1]);
    sft__parallel_rows(ctx, sft_tensor_numel(n->out), SFT__ELEM_CHUNK, sft__add_fwd_range, &j);
    return SFT_OK;
}

static sft_status sft__cpu_mul_fwd(sft_context *ctx, sft__node *n) {
    sft__ew_job j;
    j.n = n; j.nb = sft_tensor_numel(n->in[1]);
    sft__parallel_rows(ctx, sft_tensor_numel(n->out), SFT__ELEM_CHUNK, sft__mul_fwd_range, &j);
    return SFT_OK;
}

/* The gradient of the full-size operand: da += g (add) or g * b (mul). */
static void sft__ew_grad_a_range(void *arg, int64_t b, int64_t e) {
    const sft__ew_job *j = (const sft__ew_job *)arg;
    const float *g = SFT__CF(j->n->out->grad), *y = SFT__CF(j->n->in[1]);
    float *da = SFT__F(j->n->in[0]->grad);
    int64_t i;
    if (j->n->op == SFT__OP_ADD) for (i = b; i < e; i++) da[i] += g[i];
    else for (i = b; i < e; i++) da[i] += g[i] * y[i % j->nb];
}

/* The gradient of the broadcast operand: db[c] += sum over rows of g (or g * a). */
static void sft__ew_grad_b_range(void *arg, int64_t b, int64_t e) {
    const sft__ew_job *j = (const sft__ew_job *)arg;
    const float *g = SFT__CF(j->n->out->grad), *x = SFT__CF(j->n->in[0]);
    float *db = SFT__F(j->n->in[1]->grad);
    int64_t rows = sft_tensor_numel(j->n->out) / j->nb, r, c;
    int is_add = j->n->op == SFT__OP_ADD;
    for (c = b; c < e; c++) {
        float acc = 0.0f;
        for (r = 0; r < rows; r++) acc += is_add ? g[r * j->nb + c] : g[r * j->nb + c] * x[r * j->nb + c];
        db[c] += acc;
    }
}

static sft_status sft__cpu_ew_bwd(sft_context *ctx, sft__node *n) {
    sft__ew_job j;
    j.n = n; j.nb = sft_tensor_numel(n->in[1]);
    if (n->in[0]->requires_grad) sft__parallel_rows(ctx, sft_tensor_numel(n->out), SFT__ELEM_CHUNK, sft__ew_grad_a_range, &j);
    if (n->in[1]->requires_grad) sft__parallel_rows(ctx, j.nb, 256, sft__ew_grad_b_range, &j);
    return SFT_OK;
}

static void sft__scale_fwd_range(void *arg, int64_t b, int64_t e) {
    const sft__node *n = (const sft__node *)arg;
    const float *x = SFT__CF(n->in[0]);
    float *o = SFT__F(n->out), s = n->f[0];
    int64_t i;
    for (i = b; i < e; i++) o[i] = x[i] * s;
}

static void sft__scale_bwd_range(void *arg, int64_t b, int64_t e) {
    const sft__node *n = (const sft__node *)arg;
    const float *g = SFT__CF(n->out->grad);
    float *dx = SFT__F(n->in[0]->grad), s = n->f[0];
    int64_t i;
    for (i = b; i < e; i++) dx[i] += g[i] * s;
}

static sft_status sft__cpu_scale_fwd(sft_context *ctx, sft__node *n) { return sft__each_element(ctx, n, sft__scale_fwd_range); }

static sft_status sft__cpu_scale_bwd(sft_context *ctx, sft__node *n) { return sft__each_element(ctx, n, sft__scale_bwd_range); }

/* reshape: the output is a view, forward has nothing to do; backward adds the
   gradient through unchanged (same element order). */
static sft_status sft__cpu_reshape_fwd(sft_context *ctx, sft__node *n) { (void)ctx; (void)n; return SFT_OK; }

static void sft__reshape_bwd_range(void *arg, int64_t b, int64_t e) {
    const sft__node *n = (const sft__node *)arg;
    const float *g = SFT__CF(n->out->grad);
    float *dx = SFT__F(n->in[0]->grad);
    int64_t i;
    for (i = b; i < e; i++) dx[i] += g[i];
}

static sft_status sft__cpu_reshape_bwd(sft_context *ctx, sft__node *n) { return sft__each_element(ctx, n, sft__reshape_bwd_range); }

/* silu node: in[0] = x.  swiglu node: in[0] = gate, in[1] = up. */
static float sft__sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

static void sft__silu_fwd_range(void *arg, int64_t b, int64_t e) {
    const sft__node *n = (const sft__node *)arg;
    const float *x = SFT__CF(n->in[0]), *up = n->op == SFT__OP_SWIGLU ? SFT__CF(n->in[1]) : NULL;
    float *o = SFT__F(n->out);
    int64_t i;
    for (i = b; i < e; i++) {
        float s = x[i] * sft__sigmoid(x[i]);
        o[i] = up ? s * up[i] : s;
    }
}

static void sft__silu_bwd_range(void *arg, int64_t b, int64_t e) {
    const sft__node *n = (const sft__node *)arg;
    const float *x = SFT__CF(n->in[0]), *g = SFT__CF(n->out->grad);
    const float *up = n->op == SFT__OP_SWIGLU ? SFT__CF(n->in[1]) : NULL;
    float *dx = n->in[0]->requires_grad ? SFT__F(n->in[0]->grad) : NULL;
    float *dup = up && n->in[1]->requires_grad ? SFT__F(n->in[1]->grad) : NULL;
    int64_t i;
    for (i = b; i < e; i++) {
        float sg = sft__sigmoid(x[i]), dsilu = sg * (1.0f + x[i] * (1.0f - sg));
        if (dx) dx[i] += g[i] * (up ? up[i] : 1.0f) * dsilu;
        if (dup) dup[i] += g[i] * x[i] * sg;
    }
}

static sft_status sft__cpu_silu_fwd(sft_context *ctx, sft__node *n) { return sft__each_element(ctx, n, sft__silu_fwd_range); }

static sft_status sft__cpu_silu_bwd(sft_context *ctx, sft__node *n) { return sft__each_element(ctx, n, sft__silu_bwd_range); }

/* dropout node: in[0] = x; f[0] = p; i[0] = seed. The keep mask is recomputed
   from (seed, index) in backward, never stored. */
static float sft__dropout_factor(const sft__node *n, int64_t i) {
    float p = n->f[0];
    if (p >= 1.0f) return 0.0f;
    return sft_rng_uniform((uint64_t)n->i[0], (uint64_t)i) >= p ? 1.0f / (1.0f - p) : 0.0f;
}

static void sft__dropout_fwd_range(void *arg, int64_t b, int64_t e) {
    const sft__node *n = (const sft__node *)arg;
    const float *x = SFT__CF(n->in[0]);
    float *o = SFT__F(n->out);
    int64_t i;
    for (i = b; i < e; i++) o[i] = x[i] * sft__dropout_factor(n, i);
}

static void sft__dropout_bwd_range(void *arg, int64_t b, int64_t e) {
    const sft__node *n = (const sft__node *)arg;
    const float *g = SFT__CF(n->out->grad);
    float *dx = SFT__F(n->in[0]->grad);
    int64_t i;
    for (i = b; i < e; i++) dx[i] += g[i] * sft__dropout_factor(n, i);
}

static sft_status sft__cpu_dropout_fwd(sft_context *ctx, sft__node *n) { return sft__each_element(ctx, n, sft__dropout_fwd_range); }

static sft_status sft__cpu_dropout_bwd(sft_context *ctx, sft__node *n) { return sft__each_element(ctx, n, sft__dropout_bwd_range); }

/* ============================================================================
   === kernels: embedding
   node: in[0] = weight [V, D], in[1] = ids (i32). Backward scatters rows into the
   weight gradient; each task owns a chunk of columns and walks the ids in order. */

static int64_t sft__last_dim(const sft_tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }

static void sft__embedding_fwd_range(void *arg, int64_t b, int64_t e) {
    const sft__node *n = (const sft__node *)arg;
    int64_t D = n->in[0]->shape[1], t;
    const int32_t *ids = (const int32_t *)n->in[1]->data;
    for (t = b; t < e; t++) memcpy(SFT__F(n->out) + t * D, SFT__CF(n->in[0]) + (int64_t)ids[t] * D, (size_t)D * sizeof(float));
}

static void sft__embedding_bwd_range(void *arg, int64_t b, int64_t e) {
    const sft__node *n = (const sft__node *)arg;
    int64_t D = n->in[0]->shape[1], T = sft_tensor_numel(n->in[1]), t, c;
    const int32_t *ids = (const int32_t *)n->in[1]->data;
    const float *g = SFT__CF(n->out->grad);
    float *dw = SFT__F(n->in[0]->grad);
    for (t = 0; t < T; t++)
        for (c = b; c < e; c++) dw[(int64_t)ids[t] * D + c] += g[t * D + c];
}

static sft_status sft__cpu_embedding_fwd(sft_context *ctx, sft__node *n) {
    sft__parallel_rows(ctx, sft_tensor_numel(n->in[1]), 64, sft__embedding_fwd_range, n);
    return SFT_OK;
}

static sft_status sft__cpu_embedding_bwd(sft_context *ctx, sft__node *n) {
    sft__parallel_rows(ctx, n->in[0]->shape[1], 64, sft__embedding_bwd_range, n);
    return SFT_OK;
}

/* ============================================================================
   === kernels: RMSNorm
   node: in[0] = x [.., D], in[1] = weight [D]; f[0] = eps; saved = 1/rms per row.
   y = (x * r) * w as transformers' LlamaRMSNorm computes it in f32. */

static void sft__rmsnorm_fwd_range(void *arg, int64_t b, int64_t e) {
    const sft__node *n = (const sft__node *)arg;
    int64_t D = sft__last_dim(n->in[0]), r, c;
    const float *w = SFT__CF(n->in[1]);
    for (r = b; r < e; r++) {
        const float *x = SFT__CF(n->in[0]) + r * D;
        float *y = SFT__F(n->out) + r * D, ss = 0.0f, inv;
        for (c = 0; c < D; c++) ss += x[c] * x[c];
        inv = 1.0f / sqrtf(ss / (float)D + n->f[0]);
        SFT__F(n->saved)[r] = inv;
        for (c = 0; c < D; c++) y[c] = w[c] * (x[c] * inv);
    }
}

/* dx = r * (dxh - xh * mean(dxh * xh)), with xh = x*r and dxh = g*w */
static void sft__rmsnorm_bwd_x_range(void *arg, int64_t b, int64_t e) {
    const sft__node *n = (const sft__node *)arg;
    int64_t D = sft__last_dim(n->in[0]), r, c;
    const float *w = SFT__CF(n->in[1]);
    for (r = b; r < e; r++) {
        const float *x = SFT__CF(n->in[0]) + r * D, *g = SFT__CF(n->out->grad) + r * D;
        float *dx = SFT__F(n->in[0]->grad) + r * D, inv = SFT__CF(n->saved)[r], dot = 0.0f, m;
        for (c = 0; c < D; c++) dot += g[c] * w[c] * (x[c] * inv);
        m = dot / (float)D;
        for (c = 0; c < D; c++) dx[c] += inv * (g[c] * w[c] - (x[c] * inv) * m);
    }
}

static void sft__rmsnorm_bwd_w_range(void *arg, int64_t b, int64_t e) {
    const sft__node *n = (const sft__node *)arg;
    int64_t D = sft__last_dim(n->in[0]), rows = sft_tensor_numel(n->in[0]) / D, r, c;
    float *dw = SFT__F(n->in[1]->grad);
    for (c = b; c < e; c++) {
        float acc = 0.0f;
        for (r = 0; r < rows; r++) acc += SFT__CF(n->out->grad)[r * D + c] * (SFT__CF(n->in[0])[r * D + c] * SFT__CF(n->saved)[r]);
        dw[c] += acc;
    }
}

static sft_status sft__cpu_rmsnorm_fwd(sft_context *ctx, sft__node *n) {
    sft__parallel_rows(ctx, sft_tensor_numel(n->saved), 16, sft__rmsnorm_fwd_range, n);
    return SFT_OK;
}

static sft_status sft__cpu_rmsnorm_bwd(sft_context *ctx, sft__node *n) {
    if (n->in[0]->requires_grad) sft__parallel_rows(ctx, sft_tensor_numel(n->saved), 16, sft__rmsnorm_bwd_x_range, n);
    if (n->in[1]->requires_grad) sft__parallel_rows(ctx, sft__last_dim(n->in[0]), 64, sft__rmsnorm_bwd_w_range, n);
    return SFT_OK;
}

/* ============================================================================
   === kernels: rotary position embedding
   node: in[0] = x [B, T, H, D], in[1] = positions [B, T]; saved = inv_freq [D/2].
   For i < D/2 the pair (x_i, x_{i+D/2}) turns by angle pos * inv_freq[i]; the
   backward turns the gradient back by the same angle. */

typedef struct sft__rope_job { sft__node *n; int backward; } sft__rope_job;

static void sft__rope_range(void *arg, int64_t b, int64_t e) {
    const sft__rope_job *j = (const sft__rope_job *)arg;
    const sft__node *n = j->n;
    const sft_tensor *x = n->in[0];
    int64_t H = x->shape[2], D = x->shape[3], half = D / 2, bt, h, i;
    const int32_t *pos = (const int32_t *)n->in[1]->data;
    const float *inv = SFT__CF(n->saved);
    const float *src = j->backward ? SFT__CF(n->out->grad) : SFT__CF(x);
    float *dst = j->backward ? SFT__F(x->grad) : SFT__F(n->out), sgn = j->backward ? -1.0f : 1.0f;
    for (bt = b; bt < e; bt++)
        for (i = 0; i < half; i++) {
            float ang = (float)pos[bt] * inv[i], cs = cosf(ang), sn = sgn * sinf(ang);
            for (h = 0; h < H; h++) {
                const float *s = src + (bt * H + h) * D;
                float *d = dst + (bt * H + h) * D, x1 = s[i], x2 = s[i + half];
                if (j->backward) { d[i] += x1 * cs - x2 * sn; d[i + half] += x2 * cs + x1 * sn; }
                else { d[i] = x1 * cs - x2 * sn; d[i + half] = x2 * cs + x1 * sn; }
            }
        }
}

static sft_status sft__rope_run(sft_context *ctx, sft__node *n, int backward) {
    sft__rope_job j;
    j.n = n; j.backward = backward;
    sft__parallel_rows(ctx, n->in[0]->shape[0] * n->in[0]->shape[1], 8, sft__rope_range, &j);
    return SFT_OK;
}

static sft_status sft__cpu_rope_fwd(sft_context *ctx, sft__node *n) { return sft__rope_run(ctx, n, 0); }
static sft_status sft__cpu_rope_bwd(sft_context *ctx, sft__node *n) { return sft__rope_run(ctx, n, 1); }

/* ============================================================================
   === kernels: causal attention
   node: in[0..2] = q [B,T,Hq,D], k, v [B,T,Hkv,D], in[3] = seq_ids [B,T] or NULL;
   f[0] = scale; saved = [2, B, Hq, T]: the log-sum-exp of each score row (made by
   forward) and dO . O of each row (made at the start of backward).

   Flash-style, in tiles of ATTN_B query rows x ATTN_B keys. A forward task takes
   one block of query rows of one head and walks the key blocks up to the
   diagonal: S = Q K^T is one small GEMM, the tile is masked (causal, sequence
   ids), each row keeps a running maximum and sum of exponentials (the online
   softmax) and rescales its running output before O += P V, a second small GEMM.
   Scores exist one tile at a time per thread; no T x T matrix is ever made. A
   key/value head serves its group of query heads in place, never copied.

   Backward recomputes P from the saved log-sum-exp and runs in two passes so
   that every gradient element has one owner that sums in a fixed order: tasks
   of (key/value head, key block) accumulate dV += P^T dO and dK += dS^T Q over
   every query row that sees the block; tasks of (query head, query block)
   accumulate dQ += dS K; here dP = dO V^T and dS = P (dP - delta) scale. The
   small GEMMs use the path's micro-kernel, so results depend on the path but
   never on the thread count. */

#define SFT__ATTN_MAX_D 512
#define SFT__ATTN_B 64
/* per-thread scratch: S and dP tiles, the running output, packing buffers */
#define SFT__ATTN_APACK ((size_t)(SFT__ATTN_B + 16) * SFT__BLK_KC)
#define SFT__ATTN_BPACK ((size_t)SFT__ATTN_B * (SFT__ATTN_MAX_D + 32) > (size_t)SFT__BLK_KC * (SFT__ATTN_B + 32) \
                             ? (size_t)SFT__ATTN_B * (SFT__ATTN_MAX_D + 32) : (size_t)SFT__BLK_KC * (SFT__ATTN_B + 32))
#define SFT__ATTN_SCRATCH (2 * (size_t)SFT__ATTN_B * SFT__ATTN_B + (size_t)SFT__ATTN_B * SFT__ATTN_MAX_D + \
                           SFT__ATTN_APACK + SFT__ATTN_BPACK)

typedef struct sft__attn_dims { int64_t B, T, Hq, Hkv, D, group, nb; } sft__attn_dims;

static sft__attn_dims sft__attn_dims_of(const sft__node *n) {
    sft__attn_dims d;
    d.B = n->in[0]->shape[0]; d.T = n->in[0]->shape[1]; d.Hq = n->in[0]->shape[2]; d.D = n->in[0]->shape[3];
    d.Hkv = n->in[1]->shape[2]; d.group = d.Hq / d.Hkv;
    d.nb = (d.T + SFT__ATTN_B - 1) / SFT__ATTN_B;
    return d;
}

typedef struct sft__attn_job {
    sft_context *ctx;
    const sft__node *n;
    const sft__cpu_kernels *k;
    sft__attn_dims d;
} sft__attn_job;

/* One thread's tiles and buffers. */
typedef struct sft__attn_tiles { float *s, *dp, *acc, *apack, *bpack; } sft__attn_tiles;

static sft__attn_tiles sft__attn_tiles_of(const sft__attn_job *job, int thread) {
    sft__attn_tiles t;
    t.s = job->ctx->attn_scratch + (size_t)thread * SFT__ATTN_SCRATCH;
    t.dp = t.s + SFT__ATTN_B * SFT__ATTN_B;
    t.acc = t.dp + SFT__ATTN_B * SFT__ATTN_B;
    t.apack = t.acc + SFT__ATTN_B * SFT__ATTN_MAX_D;
    t.bpack = t.apack + SFT__ATTN_APACK;
    return t;
}

/* The rows of a head as a matrix view: row t of head h of a [B, T, H, D] tensor. */
static sft__mat sft__attn_rows(const float *base, int64_t b, int64_t t0, int64_t h, int64_t T, int64_t H, int64_t D) {
    return sft__mat_of(base + ((b * T + t0) * H + h) * D, H * D, 1);
}

/* sft__attn_gemm: C[M x N] (+)= A . B on this thread with the path's micro-kernel. */
static void sft__attn_gemm(const sft__attn_job *job, const sft__attn_tiles *t, int64_t M, int64_t N, int64_t K, sft__mat a,
                           sft__mat b, float *c, int64_t ldc, int add) {
    sft__gemm_small(job->k->micro, job->k->mr, job->k->nr, M, N, K, a, b, c, ldc, add, t->apack, t->bpack);
}

/* sft__attn_scores: s[rows x cols] = Q[t0..] K[j0..]^T * scale, invisible pairs
   (later keys, other sequences) set to -inf. */
static void sft__attn_scores(const sft__attn_job *job, const sft__attn_tiles *tl, int64_t b, int64_t h, int64_t t0,
                             int64_t rows, int64_t j0, int64_t cols) {
    const sft__node *n = job->n;
    sft__attn_dims d = job->d;
    int64_t hk = h / d.group, i, j;
    const int32_t *ids = n->in[3] ? (const int32_t *)n->in[3]->data + b * d.T : NULL;
    sft__mat q = sft__attn_rows(SFT__CF(n->in[0]), b, t0, h, d.T, d.Hq, d.D);
    sft__mat k = sft__attn_rows(SFT__CF(n->in[1]), b, j0, hk, d.T, d.Hkv, d.D);
    sft__attn_gemm(job, tl, rows, cols, d.D, q, sft__mat_t(k), tl->s, SFT__ATTN_B, 0);
    for (i = 0; i < rows; i++)
        for (j = 0; j < cols; j++) {
            float *sv = &tl->s[i * SFT__ATTN_B + j];
            int visible = j0 + j <= t0 + i && (!ids || ids[t0 + i] == ids[j0 + j]);
            *sv = visible ? *sv * n->f[0] : -INFINITY;
        }
}

static void sft__attn_fwd_task(void *arg, int64_t task, int thread) {
    const sft__attn_job *job = (const sft__attn_job *)arg;
    const sft__node *n = job->n;
    sft__attn_dims d = job->d;
    sft__attn_tiles tl = sft__attn_tiles_of(job, thread);
    int64_t b = task / (d.Hq * d.nb), h = (task / d.nb) % d.Hq, hk = h / d.group;
    int64_t t0 = (task % d.nb) * SFT__ATTN_B, rows = d.T - t0 < SFT__ATTN_B ? d.T - t0 : SFT__ATTN_B, j0, i, j, c;
    float m[SFT__ATTN_B], l[SFT__ATTN_B];
    for (i = 0; i < rows; i++) { m[i] = -INFINITY; l[i] = 0.0f; }
    memset(tl.acc, 0, (size_t)(rows * d.D) * sizeof(float));
    for (j0 = 0; j0 < t0 + rows; j0 += SFT__ATTN_B) {
        int64_t cols = t0 + rows - j0 < SFT__ATTN_B ? t0 + rows - j0 : SFT__ATTN_B;
        sft__attn_scores(job, &tl, b, h, t0, rows, j0, cols);
        for (i = 0; i < rows; i++) {            /* online softmax, row by row */
            float *sr = tl.s + i * SFT__ATTN_B, mx = m[i], corr;
            for (j = 0; j < cols; j++) if (sr[j] > mx) mx = sr[j];
            if (mx == -INFINITY) { for (j = 0; j < cols; j++) sr[j] = 0.0f; continue; }
            corr = expf(m[i] - mx);             /* 0 on the first visible tile */
            m[i] = mx;
            l[i] *= corr;
            for (c = 0; c < d.D; c++) tl.acc[i * d.D + c] *= corr;
            job->k->exp_shift(sr, cols, mx);
            for (j = 0; j < cols; j++) l[i] += sr[j];
        }
        sft__attn_gemm(job, &tl, rows, d.D, cols, sft__mat_of(tl.s, SFT__ATTN_B, 1),
                       sft__attn_rows(SFT__CF(n->in[2]), b, j0, hk, d.T, d.Hkv, d.D), tl.acc, d.D, 1);
    }
    for (i = 0; i < rows; i++) {
        float *o = SFT__F(n->out) + ((b * d.T + t0 + i) * d.Hq + h) * d.D, inv = 1.0f / l[i];
        for (c = 0; c < d.D; c++) o[c] = tl.acc[i * d.D + c] * inv;
        SFT__F(n->saved)[(b * d.Hq + h) * d.T + t0 + i] = m[i] + logf(l[i]);
    }
}

/* Backward pass 0: delta = dO . O for every row (saved row 1). */
static void sft__attn_delta_rows(void *arg, int64_t r0, int64_t r1) {
    const sft__attn_job *job = (const sft__attn_job *)arg;
    const sft__node *n = job->n;
    sft__attn_dims d = job->d;
    int64_t r;
    for (r = r0; r < r1; r++) {               /* r = (b * Hq + h) * T + t */
        int64_t b = r / (d.Hq * d.T), h = (r / d.T) % d.Hq, t = r % d.T, row = ((b * d.T + t) * d.Hq + h) * d.D;
        SFT__F(n->saved)[d.B * d.Hq * d.T + r] = job->k->dot(SFT__CF(n->out->grad) + row, SFT__CF(n->out) + row, d.D);
    }
}

/* sft__attn_p_ds: for the tile (query rows t0.., keys j0..) leave P in s and
   dS = P (dO V^T - delta) scale in dp. */
static void sft__attn_p_ds(const sft__attn_job *job, const sft__attn_tiles *tl, int64_t b, int64_t h, int64_t t0,
                           int64_t rows, int64_t j0, int64_t cols) {
    const sft__node *n = job->n;
    sft__attn_dims d = job->d;
    const float *lse = SFT__CF(n->saved) + (b * d.Hq + h) * d.T, *delta = lse + d.B * d.Hq * d.T;
    int64_t i, j;
    sft__attn_scores(job, tl, b, h, t0, rows, j0, cols);
    sft__attn_gemm(job, tl, rows, cols, d.D, sft__attn_rows(SFT__CF(n->out->grad), b, t0, h, d.T, d.Hq, d.D),
                   sft__mat_t(sft__attn_rows(SFT__CF(n->in[2]), b, j0, h / d.group, d.T, d.Hkv, d.D)), tl->dp,
                   SFT__ATTN_B, 0);
    for (i = 0; i < rows; i++) {
        float *p = tl->s + i * SFT__ATTN_B, *g = tl->dp + i * SFT__ATTN_B;
        job->k->exp_shift(p, cols, lse[t0 + i]);                         /* 0 where masked */
        for (j = 0; j < cols; j++) g[j] = p[j] * (g[j] - delta[t0 + i]) * n->f[0];
    }
}

/* Backward pass 1: one task per (batch, kv head, key block) adds dV and dK. */
static void sft__attn_dkv_task(void *arg, int64_t task, int thread) {
    const sft__attn_job *job = (const sft__attn_job *)arg;
    const sft__node *n = job->n;
    sft__attn_dims d = job->d;
    sft__attn_tiles tl = sft__attn_tiles_of(job, thread);
    int64_t b = task / (d.Hkv * d.nb), hk = (task / d.nb) % d.Hkv, j0 = (task % d.nb) * SFT__ATTN_B;
    int64_t cols = d.T - j0 < SFT__ATTN_B ? d.T - j0 : SFT__ATTN_B, h, t0;
    int dk = n->in[1]->requires_grad, dv = n->in[2]->requires_grad;
    float *dK = dk ? SFT__F(n->in[1]->grad) + ((b * d.T + j0) * d.Hkv + hk) * d.D : NULL;
    float *dV = dv ? SFT__F(n->in[2]->grad) + ((b * d.T + j0) * d.Hkv + hk) * d.D : NULL;
    for (h = hk * d.group; h < (hk + 1) * d.group; h++)
        for (t0 = j0 - j0 % SFT__ATTN_B; t0 < d.T; t0 += SFT__ATTN_B) {   /* query blocks that see these keys */
            int64_t rows = d.T - t0 < SFT__ATTN_B ? d.T - t0 : SFT__ATTN_B;
            sft__attn_p_ds(job, &tl, b, h, t0, rows, j0, cols);
            if (dv)   /* dV += P^T dO */
                sft__attn_gemm(job, &tl, cols, d.D, rows, sft__mat_t(sft__mat_of(tl.s, SFT__ATTN_B, 1)),
                               sft__attn_rows(SFT__CF(n->out->grad), b, t0, h, d.T, d.Hq, d.D), dV, d.Hkv * d.D, 1);
            if (dk)   /* dK += dS^T Q */
                sft__attn_gemm(job, &tl, cols, d.D, rows, sft__mat_t(sft__mat_of(tl.dp, SFT__ATTN_B, 1)),
                               sft__attn_rows(SFT__CF(n->in[0]), b, t0, h, d.T, d.Hq, d.D), dK, d.Hkv * d.D, 1);
        }
}

/* Backward pass 2: one task per (batch, query head, query block) adds dQ += dS K. */
static void sft__attn_dq_task(void *arg, int64_t task, int thread) {
    const sft__attn_job *job = (const sft__attn_job *)arg;
    const sft__node *n = job->n;
    sft__attn_dims d = job->d;
    sft__attn_tiles tl = sft__attn_tiles_of(job, thread);
    int64_t b = task / (d.Hq * d.nb), h = (task / d.nb) % d.Hq, hk = h / d.group;
    int64_t t0 = (task % d.nb) * SFT__ATTN_B, rows = d.T - t0 < SFT__ATTN_B ? d.T - t0 : SFT__ATTN_B, j0;
    float *dQ = SFT__F(n->in[0]->grad) + ((b * d.T + t0) * d.Hq + h) * d.D;
    for (j0 = 0; j0 < t0 + rows; j0 += SFT__ATTN_B) {
        int64_t cols = t0 + rows - j0 < SFT__ATTN_B ? t0 + rows - j0 : SFT__ATTN_B;
        sft__attn_p_ds(job, &tl, b, h, t0, rows, j0, cols);
        sft__attn_gemm(job, &tl, rows, d.D, cols, sft__mat_of(tl.dp, SFT__ATTN_B, 1),
                       sft__attn_rows(SFT__CF(n->in[1]), b, j0, hk, d.T, d.Hkv, d.D), dQ, d.Hq * d.D, 1);
    }
}

static sft_status sft__attn_job_init(sft_context *ctx, sft__node *n, sft__attn_job *job) {
    job->ctx = ctx; job->n = n; job->k = sft__cpu_kernels_of(ctx); job->d = sft__attn_dims_of(n);
    if (!ctx->attn_scratch) {
        ctx->attn_scratch = (float *)sft__alloc(ctx, (size_t)ctx->threads * SFT__ATTN_SCRATCH * sizeof(float));
        if (!ctx->attn_scratch) return sft__fail(SFT_ERR_NOMEM, "attention: cannot allocate the per-thread tiles");
    }
    return SFT_OK;
}

static sft_status sft__cpu_attention_fwd(sft_context *ctx, sft__node *n) {
    sft__attn_job job;
    SFT__TRY(sft__attn_job_init(ctx, n, &job));
    sft__parallel(ctx, job.d.B * job.d.Hq * job.d.nb, sft__attn_fwd_task, &job);
    return SFT_OK;
}

static sft_status sft__cpu_attention_bwd(sft_context *ctx, sft__node *n) {
    sft__attn_job job;
    SFT__TRY(sft__attn_job_init(ctx, n, &job));
    sft__parallel_rows(ctx, job.d.B * job.d.Hq * job.d.T, 256, sft__attn_delta_rows, &job);
    if (n->in[1]->requires_grad || n->in[2]->requires_grad)
        sft__parallel(ctx, job.d.B * job.d.Hkv * job.d.nb, sft__attn_dkv_task, &job);
    if (n->in[0]->requires_grad) sft__parallel(ctx, job.d.B * job.d.Hq * job.d.nb, sft__attn_dq_task, &job);
    return SFT_OK;
}

/* ============================================================================
   === kernels: cross-entropy
   node: in[0] = logits [N, V], in[1] = labels [N]; f[0] = label smoothing e,
   f[1] = the factor each counted row's loss is multiplied by (1/count, 1/divisor
   or 1); i[0] = ignore_index. saved = [2, N]: per row the log-sum-exp and the
   row's (unreduced) loss. */

static void sft__ce_fwd_range(void *arg, int64_t b, int64_t e) {
    const sft__node *n = (const sft__node *)arg;
    int64_t V = sft__last_dim(n->in[0]), N = sft_tensor_numel(n->in[1]), r, c;
    const int32_t *labels = (const int32_t *)n->in[1]->data;
    float eps = n->f[0];
    for (r = b; r < e; r++) {
        const float *x = SFT__CF(n->in[0]) + r * V;
        float m = -INFINITY, sum = 0.0f, lse, mean = 0.0f;
        for (c = 0; c < V; c++) if (x[c] > m) m = x[c];
        for (c = 0; c < V; c++) sum += expf(x[c] - m);
        lse = m + logf(sum);
        SFT__F(n->saved)[r] = lse;
        if (labels[r] == (int32_t)n->i[0]) { SFT__F(n->saved)[N + r] = 0.0f; continue; }
        if (eps > 0.0f) { for (c = 0; c < V; c++) mean += x[c]; mean /= (float)V; }
        SFT__F(n->saved)[N + r] = (1.0f - eps) * (lse - x[labels[r]]) + eps * (lse - mean);
    }
}

static void sft__ce_bwd_range(void *arg, int64_t b, int64_t e) {
    const sft__node *n = (const sft__node *)arg;
    int64_t V = sft__last_dim(n->in[0]), r, c;
    const int32_t *labels = (const int32_t *)n->in[1]->data;
    float eps = n->f[0], k = SFT__CF(n->out->grad)[0] * n->f[1];
    for (r = b; r < e; r++) {
        const float *x = SFT__CF(n->in[0]) + r * V;
        float *dx = SFT__F(n->in[0]->grad) + r * V, lse = SFT__CF(n->saved)[r];
        if (labels[r] == (int32_t)n->i[0]) continue;
        for (c = 0; c < V; c++) dx[c] += k * (expf(x[c] - lse) - eps / (float)V - (c == labels[r] ? 1.0f - eps : 0.0f));
    }
}

static sft_status sft__cpu_ce_fwd(sft_context *ctx, sft__node *n) {
    int64_t N = sft_tensor_numel(n->in[1]), r;
    double total = 0.0;
    sft__parallel_rows(ctx, N, 8, sft__ce_fwd_range, n);
    for (r = 0; r < N; r++) total += SFT__CF(n->saved)[N + r];   /* fixed order, in double */
    SFT__F(n->out)[0] = (float)(total * n->f[1]);
    return SFT_OK;
}

static sft_status sft__cpu_ce_bwd(sft_context *ctx, sft__node *n) {
    sft__parallel_rows(ctx, sft_tensor_numel(n->in[1]), 8, sft__ce_bwd_range, n);
    return SFT_OK;
}

/* ============================================================================
   === kernels: cross-entropy fused with the output projection
   node: in[0] = hidden [N, D], in[1] = weight [V, D], in[2] = labels [N];
   f[0] = label smoothing, f[1] = the per-row factor (as sft_cross_entropy),
   i[0] = ignore_index, i[1] = the vocabulary chunk Vc; saved = [4, N] per-row
   running max, running sum of exp, label logit, sum of logits (after forward:
   row 0 holds the log-sum-exp and row 1 the row's loss), followed by the chunk
   buffer [N, Vc]. The logits exist one vocabulary chunk at a time: forward keeps
   an online log-sum-exp across chunks; backward recomputes each chunk, turns it
   into d logits in place and feeds it to the two gradient GEMMs. */

typedef struct sft__lce_job { sft__node *n; int64_t v0, vc, N, V; float *buf, *st; } sft__lce_job;

/* sft__lce_chunk_logits: buf[N, vc] = hidden . weight[v0 : v0+vc]^T */
static sft_status sft__lce_chunk_logits(sft_context *ctx, const sft__lce_job *j) {
    int64_t D = j->n->in[0]->shape[j->n->in[0]->ndim - 1];
    sft__mat h = sft__mat_of(SFT__CF(j->n->in[0]), D, 1), w = sft__mat_of(SFT__CF(j->n->in[1]) + j->v0 * D, D, 1);
    return sft__gemm(ctx, j->N, j->vc, D, h, sft__mat_t(w), j->buf, j->vc, 0);
}

static void sft__lce_fwd_rows(void *arg, int64_t b, int64_t e) {
    const sft__lce_job *j = (const sft__lce_job *)arg;
    const int32_t *labels = (const int32_t *)j->n->in[2]->data;
    float *m = j->st, *sum = j->st + j->N, *lab = j->st + 2 * j->N, *tot = j->st + 3 * j->N;
    int64_t r, c;
    for (r = b; r < e; r++) {
        const float *x = j->buf + r * j->vc;
        float cm = m[r], s = sum[r], t = 0.0f;
        for (c = 0; c < j->vc; c++) if (x[c] > cm) cm = x[c];
        s = s == 0.0f ? 0.0f : s * expf(m[r] - cm);             /* rescale what earlier chunks summed */
        for (c = 0; c < j->vc; c++) { s += expf(x[c] - cm); t += x[c]; }
        m[r] = cm; sum[r] = s; tot[r] += t;
        if (labels[r] >= j->v0 && labels[r] < j->v0 + j->vc) lab[r] = x[labels[r] - j->v0];
    }
}

static void sft__lce_finish_rows(void *arg, int64_t b, int64_t e) {
    const sft__lce_job *j = (const sft__lce_job *)arg;
    const sft__node *n = j->n;
    const int32_t *labels = (const int32_t *)n->in[2]->data;
    float *lse = j->st, *loss = j->st + j->N, eps = n->f[0];
    int64_t r;
    for (r = b; r < e; r++) {
        float l = lse[r] + logf(loss[r]), label_logit = j->st[2 * j->N + r], mean = j->st[3 * j->N + r] / (float)j->V;
        lse[r] = l;
        loss[r] = labels[r] == (int32_t)n->i[0] ? 0.0f : (1.0f - eps) * (l - label_logit) + eps * (l - mean);
    }
}

static sft_status sft__cpu_lce_fwd(sft_context *ctx, sft__node *n) {
    sft__lce_job j;
    int64_t r;
    double total = 0.0;
    j.n = n; j.N = sft_tensor_numel(n->in[2]); j.V = n->in[1]->shape[0];
    j.st = SFT__F(n->saved); j.buf = j.st + 4 * j.N;
    for (r = 0; r < j.N; r++) { j.st[r] = -INFINITY; j.st[j.N + r] = 0.0f; j.st[2 * j.N + r] = 0.0f; j.st[3 * j.N + r] = 0.0f; }
    for (j.v0 = 0; j.v0 < j.V; j.v0 += n->i[1]) {
        j.vc = j.V - j.v0 < n->i[1] ? j.V - j.v0 : n->i[1];
        SFT__TRY(sft__lce_chunk_logits(ctx, &j));
        sft__parallel_rows(ctx, j.N, 8, sft__lce_fwd_rows, &j);
    }
    sft__parallel_rows(ctx, j.N, 64, sft__lce_finish_rows, &j);
    for (r = 0; r < j.N; r++) total += j.st[j.N + r];          /* fixed order, in double */
    SFT__F(n->out)[0] = (float)(total * n->f[1]);
    return SFT_OK;
}

/* d logits of a chunk, in place: k * (softmax - e/V - (1-e)[c == label]) on counted rows */
static void sft__lce_dlogits_rows(void *arg, int64_t b, int64_t e) {
    const sft__lce_job *j = (const sft__lce_job *)arg;
    const sft__node *n = j->n;
    const int32_t *labels = (const int32_t *)n->in[2]->data;
    float eps = n->f[0], k = SFT__CF(n->out->grad)[0] * n->f[1];
    int64_t r, c;
    for (r = b; r < e; r++) {
        float *x = j->buf + r * j->vc, lse = j->st[r];
        if (labels[r] == (int32_t)n->i[0]) { memset(x, 0, (size_t)j->vc * sizeof(float)); continue; }
        for (c = 0; c < j->vc; c++) x[c] = k * (expf(x[c] - lse) - eps / (float)j->V);
        if (labels[r] >= j->v0 && labels[r] < j->v0 + j->vc) x[labels[r] - j->v0] -= k * (1.0f - eps);
    }
}

static sft_status sft__cpu_lce_bwd(sft_context *ctx, sft__node *n) {
    sft__lce_job j;
    sft_tensor *h = n->in[0], *w = n->in[1];
    int64_t D = h->shape[h->ndim - 1];
    j.n = n; j.N = sft_tensor_numel(n->in[2]); j.V = w->shape[0];
    j.st = SFT__F(n->saved); j.buf = j.st + 4 * j.N;
    for (j.v0 = 0; j.v0 < j.V; j.v0 += n->i[1]) {
        sft__mat g;
        j.vc = j.V - j.v0 < n->i[1] ? j.V - j.v0 : n->i[1];
        SFT__TRY(sft__lce_chunk_logits(ctx, &j));
        sft__parallel_rows(ctx, j.N, 8, sft__lce_dlogits_rows, &j);
        g = sft__mat_of(j.buf, j.vc, 1);
        if (h->requires_grad)   /* d hidden += g . weight[v0 : v0+vc] */
            SFT__TRY(sft__gemm(ctx, j.N, D, j.vc, g, sft__mat_of(SFT__CF(w) + j.v0 * D, D, 1), SFT__F(h->grad), D, 1));
        if (w->requires_grad)   /* d weight[v0 : v0+vc] += g^T . hidden */
            SFT__TRY(sft__gemm(ctx, j.vc, D, j.N, sft__mat_t(g), sft__mat_of(SFT__CF(h), D, 1), SFT__F(w->grad) + j.v0 * D, D, 1));
    }
    return SFT_OK;
}

/* ============================================================================
   === kernels: the CPU backend table (in sft__op order) */

static const sft__backend sft__cpu_backend = {
    "cpu",
    {sft__cpu_matmul_fwd, sft__cpu_add_fwd, sft__cpu_mul_fwd, sft__cpu_scale_fwd, sft__cpu_reshape_fwd,
     sft__cpu_embedding_fwd, sft__cpu_rmsnorm_fwd, sft__cpu_silu_fwd, sft__cpu_silu_fwd, sft__cpu_rope_fwd,
     sft__cpu_attention_fwd, sft__cpu_ce_fwd, sft__cpu_dropout_fwd, sft__cpu_lce_fwd},
    {sft__cpu_matmul_bwd, sft__cpu_ew_bwd, sft__cpu_ew_bwd, sft__cpu_scale_bwd, sft__cpu_reshape_bwd,
     sft__cpu_embedding_bwd, sft__cpu_rmsnorm_bwd, sft__cpu_silu_bwd, sft__cpu_silu_bwd, sft__cpu_rope_bwd,
     sft__cpu_attention_bwd, sft__cpu_ce_bwd, sft__cpu_dropout_bwd, sft__cpu_lce_bwd}};

static const sft__backend *sft__backend_cpu(void) { return &sft__cpu_backend; }

/* ============================================================================
   === ops: checks shared by every operator */

static sft_status sft__check_in(const char *op, const char *what, const sft_tensor *t, sft_dtype want) {
    char sb[96];
    if (!t) return sft__fail(SFT_ERR_ARG, "%s: %s is NULL", op, what);
    if (t->dtype != want)
        return sft__fail(SFT_ERR_DTYPE, "%s: %s is %s %s, expected %s", op, what, sft_dtype_name(t->dtype), SFT__SHAPE(t, sb),
                         sft_dtype_name(want));
    return SFT_OK;
}

/* sft__node_begin: validate the common arguments and fill the node's inputs
   (NULL inputs are allowed only after the first). */
static sft_status sft__node_begin(sft_context *ctx, sft__node *n, sft__op op, int n_in, sft_tensor *const *in,
                                  sft_tensor **out) {
    int i;
    memset(n, 0, sizeof *n);
    if (out) *out = NULL;
    if (!ctx || !out) return sft__fail(SFT_ERR_ARG, "%s: NULL ctx or out", sft__op_names[op]);
    n->op = op; n->n_in = n_in;
    for (i = 0; i < n_in; i++) {
        n->in[i] = in[i];
        if (in[i] && in[i]->device != in[0]->device)
            return sft__fail(SFT_ERR_DEVICE, "%s: input %d is on %s, input 0 on %s", sft__op_names[op], i,
                             in[i]->device == SFT_DEVICE_CPU ? "cpu" : "cuda", in[0]->device == SFT_DEVICE_CPU ? "cpu" : "cuda");
    }
    return SFT_OK;
}

static sft_status sft__node_out(sft_context *ctx, sft__node *n, int ndim, const int64_t *shape) {
    return sft__tensor_step(ctx, n->in[0]->device, SFT_F32, ndim, shape, &n->out);
}

static int sft__same_shape(const sft_tensor *a, const sft_tensor *b) {
    int i;
    if (a->ndim != b->ndim) return 0;
    for (i = 0; i < a->ndim; i++) if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static sft_status sft__shape_mismatch(const char *op, const char *why, const sft_tensor *a, const sft_tensor *b) {
    char sa[96], sb[96];
    return sft__fail(SFT_ERR_SHAPE, "%s: %s (%s vs %s)", op, why, SFT__SHAPE(a, sa), SFT__SHAPE(b, sb));
}

/* ============================================================================
   === ops: the public operators */

SFTDEF sft_status sft_matmul(sft_context *ctx, sft_tensor *a, sft_tensor *b, int trans_a, int trans_b, sft_tensor **out) {
    sft__node n;
    sft_tensor *in[2];
    int64_t shape[SFT_MAX_DIMS], batch = 1, K_a, K_b;
    int i;
    in[0] = a; in[1] = b;
    SFT__TRY(sft__node_begin(ctx, &n, SFT__OP_MATMUL, 2, in, out));
    SFT__TRY(sft__check_in("matmul", "a", a, SFT_F32));
    SFT__TRY(sft__check_in("matmul", "b", b, SFT_F32));
    if (a->ndim < 2 || b->ndim < 2) return sft__shape_mismatch("matmul", "operands need at least 2 dims", a, b);
    if (b->ndim > 2) {
        if (b->ndim != a->ndim) return sft__shape_mismatch("matmul", "a batched b needs a's batch dims", a, b);
        for (i = 0; i < a->ndim - 2; i++)
            if (a->shape[i] != b->shape[i]) return sft__shape_mismatch("matmul", "batch dims differ", a, b);
    }
    for (i = 0; i < a->ndim - 2; i++) { batch *= a->shape[i]; shape[i] = a->shape[i]; }
    K_a = trans_a ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    K_b = trans_b ? b->shape[b->ndim - 1] : b->shape[b->ndim - 2];
    if (K_a != K_b) {
        char sa[96], sb[96];
        return sft__fail(SFT_ERR_SHAPE, "matmul: inner dims differ: a %s%s has K=%lld, b %s%s has K=%lld", SFT__SHAPE(a, sa),
                         trans_a ? "^T" : "", (long long)K_a, SFT__SHAPE(b, sb), trans_b ? "^T" : "", (long long)K_b);
    }
    shape[a->ndim - 2] = trans_a ? a->shape[a->ndim - 1] : a->shape[a->ndim - 2];
    shape[a->ndim - 1] = trans_b ? b->shape[b->ndim - 2] : b->shape[b->ndim - 1];
    n.i[0] = trans_a != 0; n.i[1] = trans_b != 0; n.i[2] = batch; n.i[3] = b->ndim == 2;
    SFT__TRY(sft__node_out(ctx, &n, a->ndim, shape));
    return sft__op_run(ctx, &n, out);
}

/* add and mul share their checks: b's shape is a suffix of a's */
static sft_status sft__binary(sft_context *ctx, sft__op op, sft_tensor *a, sft_tensor *b, sft_tensor **out) {
    sft__node n;
    sft_tensor *in[2];
    int i;
    in[0] = a; in[1] = b;
    SFT__TRY(sft__node_begin(ctx, &n, op, 2, in, out));
    SFT__TRY(sft__check_in(sft__op_names[op], "a", a, SFT_F32));
    SFT__TRY(sft__check_in(sft__op_names[op], "b", b, SFT_F32));
    if (b->ndim > a->ndim) return sft__shape_mismatch(sft__op_names[op], "b must have a's shape or a suffix of it", a, b);
    for (i = 0; i < b->ndim; i++)
        if (b->shape[b->ndim - 1 - i] != a->shape[a->ndim - 1 - i])
            return sft__shape_mismatch(sft__op_names[op], "b must have a's shape or a suffix of it", a, b);
    SFT__TRY(sft__node_out(ctx, &n, a->ndim, a->shape));
    return sft__op_run(ctx, &n, out);
}

SFTDEF sft_status sft_add(sft_context *ctx, sft_tensor *a, sft_tensor *b, sft_tensor **out) {
    return sft__binary(ctx, SFT__OP_ADD, a, b, out);
}

SFTDEF sft_status sft_mul(sft_context *ctx, sft_tensor *a, sft_tensor *b, sft_tensor **out) {
    return sft__binary(ctx, SFT__OP_MUL, a, b, out);
}

SFTDEF sft_status sft_scale(sft_context *ctx, sft_tensor *x, float s, sft_tensor **out) {
    sft__node n;
    SFT__TRY(sft__node_begin(ctx, &n, SFT__OP_SCALE, 1, &x, out));
    SFT__TRY(sft__check_in("scale", "x", x, SFT_F32));
    n.f[0] = s;
    SFT__TRY(sft__node_out(ctx, &n, x->ndim, x->shape));
    return sft__op_run(ctx, &n, out);
}

SFTDEF sft_status sft_reshape(sft_context *ctx, sft_tensor *x, int ndim, const int64_t *shape, sft_tensor **out) {
    sft__node n;
    int64_t sh[SFT_MAX_DIMS], known = 1, numel;
    int i, infer = -1;
    void *mem;
    char sa[96], sb[96];
    SFT__TRY(sft__node_begin(ctx, &n, SFT__OP_RESHAPE, 1, &x, out));
    SFT__TRY(sft__check_in("reshape", "x", x, SFT_F32));
    if (ndim < 0 || ndim > SFT_MAX_DIMS || (ndim && !shape))
        return sft__fail(SFT_ERR_SHAPE, "reshape: %d dims (at most %d)", ndim, SFT_MAX_DIMS);
    numel = sft_tensor_numel(x);
    for (i = 0; i < ndim; i++) {
        sh[i] = shape[i];
        if (shape[i] == -1 && infer < 0) { infer = i; continue; }
        if (shape[i] < 0) return sft__fail(SFT_ERR_SHAPE, "reshape: dim %d is %lld", i, (long long)shape[i]);
        known *= shape[i];
    }
    if (infer >= 0) sh[infer] = known ? numel / known : 0;
    if (sft__numel_checked(ndim, sh, 4) != numel || (infer >= 0 && known * sh[infer] != numel))
        return sft__fail(SFT_ERR_SHAPE, "reshape: %s has %lld elements, %s does not", SFT__SHAPE(x, sa), (long long)numel,
                         sft__shape_str(sb, sizeof sb, ndim, shape));
    SFT__TRY(sft__arena_alloc(sft__cur_arena(ctx, SFT_DEVICE_CPU), sizeof(sft_tensor), &mem));
    n.out = (sft_tensor *)mem;
    sft__tensor_init(n.out, ctx, x->device, x->dtype, ndim, sh);
    n.out->flags = SFT__T_ARENA | SFT__T_VIEW;
    n.out->data = x->data;
    return sft__op_run(ctx, &n, out);
}

SFTDEF sft_status sft_embedding(sft_context *ctx, sft_tensor *weight, sft_tensor *ids, sft_tensor **out) {
    sft__node n;
    sft_tensor *in[2];
    int64_t shape[SFT_MAX_DIMS], i, count;
    char sb[96];
    in[0] = weight; in[1] = ids;
    SFT__TRY(sft__node_begin(ctx, &n, SFT__OP_EMBEDDING, 2, in, out));
    SFT__TRY(sft__check_in("embedding", "weight", weight, SFT_F32));
    SFT__TRY(sft__check_in("embedding", "ids", ids, SFT_I32));
    if (weight->ndim != 2) return sft__fail(SFT_ERR_SHAPE, "embedding: weight must be [V, D], got %s", SFT__SHAPE(weight, sb));
    if (ids->ndim >= SFT_MAX_DIMS) return sft__fail(SFT_ERR_SHAPE, "embedding: ids %s has too many dims", SFT__SHAPE(ids, sb));
    count = sft_tensor_numel(ids);
    if (ids->device == SFT_DEVICE_CPU)
        for (i = 0; i < count; i++) {
            int32_t id = ((const int32_t *)ids->data)[i];
            if (id < 0 || id >= weight->shape[0])
                return sft__fail(SFT_ERR_ARG, "embedding: ids[%lld] = %d is outside the vocabulary [0, %lld)", (long long)i, id,
                                 (long long)weight->shape[0]);
        }
    for (i = 0; i < ids->ndim; i++) shape[i] = ids->shape[i];
    shape[ids->ndim] = weight->shape[1];
    SFT__TRY(sft__node_out(ctx, &n, ids->ndim + 1, shape));
    return sft__op_run(ctx, &n, out);
}

SFTDEF sft_status sft_rmsnorm(sft_context *ctx, sft_tensor *x, sft_tensor *weight, float eps, sft_tensor **out) {
    sft__node n;
    sft_tensor *in[2];
    int64_t rows;
    in[0] = x; in[1] = weight;
    SFT__TRY(sft__node_begin(ctx, &n, SFT__OP_RMSNORM, 2, in, out));
    SFT__TRY(sft__check_in("rmsnorm", "x", x, SFT_F32));
    SFT__TRY(sft__check_in("rmsnorm", "weight", weight, SFT_F32));
    if (x->ndim < 1 || weight->ndim != 1 || weight->shape[0] != x->shape[x->ndim - 1])
        return sft__shape_mismatch("rmsnorm", "weight must be [D] with D the last dim of x", x, weight);
    if (!(eps >= 0.0f)) return sft__fail(SFT_ERR_ARG, "rmsnorm: eps = %g (want >= 0)", eps);
    n.f[0] = eps;
    rows = x->shape[x->ndim - 1] ? sft_tensor_numel(x) / x->shape[x->ndim - 1] : 0;
    SFT__TRY(sft__tensor_step(ctx, x->device, SFT_F32, 1, &rows, &n.saved));
    SFT__TRY(sft__node_out(ctx, &n, x->ndim, x->shape));
    return sft__op_run(ctx, &n, out);
}

SFTDEF sft_status sft_silu(sft_context *ctx, sft_tensor *x, sft_tensor **out) {
    sft__node n;
    SFT__TRY(sft__node_begin(ctx, &n, SFT__OP_SILU, 1, &x, out));
    SFT__TRY(sft__check_in("silu", "x", x, SFT_F32));
    SFT__TRY(sft__node_out(ctx, &n, x->ndim, x->shape));
    return sft__op_run(ctx, &n, out);
}

SFTDEF sft_status sft_swiglu(sft_context *ctx, sft_tensor *gate, sft_tensor *up, sft_tensor **out) {
    sft__node n;
    sft_tensor *in[2];
    in[0] = gate; in[1] = up;
    SFT__TRY(sft__node_begin(ctx, &n, SFT__OP_SWIGLU, 2, in, out));
    SFT__TRY(sft__check_in("swiglu", "gate", gate, SFT_F32));
    SFT__TRY(sft__check_in("swiglu", "up", up, SFT_F32));
    if (!sft__same_shape(gate, up)) return sft__shape_mismatch("swiglu", "gate and up differ", gate, up);
    SFT__TRY(sft__node_out(ctx, &n, gate->ndim, gate->shape));
    return sft__op_run(ctx, &n, out);
}

/* The inverse frequencies, computed in f32 the way transformers does
   (1 / theta^(2i/D)), then rescaled per the desc. */
SFTDEF sft_status sft_rope_inv_freq(const sft_rope_desc *desc, int head_dim, float *inv_freq) {
    sft_rope_desc d;
    int i;
    memset(&d, 0, sizeof d);
    if (desc) d = *desc;
    if (d.theta == 0.0f) d.theta = 10000.0f;
    if (!inv_freq || head_dim <= 0 || head_dim % 2)
        return sft__fail(SFT_ERR_ARG, "rope: head_dim %d must be even and positive", head_dim);
    if (!(d.theta > 1.0f)) return sft__fail(SFT_ERR_ARG, "rope: rope_theta = %g (want > 1)", d.theta);
    if (d.scaling != SFT_ROPE_DEFAULT && !(d.factor > 0.0f))
        return sft__fail(SFT_ERR_ARG, "rope: rope_scaling factor = %g (want > 0)", d.factor);
    if (d.scaling == SFT_ROPE_LLAMA3 &&
        (d.original_max_position_embeddings <= 0 || !(d.high_freq_factor > d.low_freq_factor) || !(d.low_freq_factor > 0.0f)))
        return sft__fail(SFT_ERR_ARG, "rope: llama3 scaling needs original_max_position_embeddings > 0 and "
                         "high_freq_factor (%g) > low_freq_factor (%g) > 0", d.high_freq_factor, d.low_freq_factor);
    for (i = 0; i < head_dim / 2; i++) {
        float inv = 1.0f / powf(d.theta, (float)(2 * i) / (float)head_dim);
        if (d.scaling == SFT_ROPE_LINEAR) inv /= d.factor;
        if (d.scaling == SFT_ROPE_LLAMA3) {
            float old = (float)d.original_max_position_embeddings, wavelen = 2.0f * 3.14159265358979f / inv;
            float low_wavelen = old / d.low_freq_factor, high_wavelen = old / d.high_freq_factor;
            if (wavelen > low_wavelen) inv = inv / d.factor;              /* long waves: fully scaled */
            else if (!(wavelen < high_wavelen)) {                         /* medium: blend            */
                float smooth = (old / wavelen - d.low_freq_factor) / (d.high_freq_factor - d.low_freq_factor);
                inv = (1.0f - smooth) * inv / d.factor + smooth * inv;
            }
        }
        inv_freq[i] = inv;
    }
    return SFT_OK;
}

SFTDEF sft_status sft_rope(sft_context *ctx, sft_tensor *x, sft_tensor *positions, const sft_rope_desc *desc,
                           sft_tensor **out) {
    sft__node n;
    sft_tensor *in[2];
    float inv[SFT__ATTN_MAX_D / 2];
    int64_t half;
    char sb[96];
    in[0] = x; in[1] = positions;
    SFT__TRY(sft__node_begin(ctx, &n, SFT__OP_ROPE, 2, in, out));
    SFT__TRY(sft__check_in("rope", "x", x, SFT_F32));
    SFT__TRY(sft__check_in("rope", "positions", positions, SFT_I32));
    if (x->ndim != 4 || x->shape[3] % 2 || x->shape[3] > SFT__ATTN_MAX_D)
        return sft__fail(SFT_ERR_SHAPE, "rope: x must be [B, T, H, head_dim] with head_dim even and <= %d, got %s",
                         SFT__ATTN_MAX_D, SFT__SHAPE(x, sb));
    if (sft_tensor_numel(positions) != x->shape[0] * x->shape[1])
        return sft__shape_mismatch("rope", "positions must be [B, T]", x, positions);
    half = x->shape[3] / 2;
    if (half > 0) SFT__TRY(sft_rope_inv_freq(desc, (int)x->shape[3], inv));
    SFT__TRY(sft__tensor_step(ctx, x->device, SFT_F32, 1, &half, &n.saved));
    SFT__TRY(sft__device_copy(n.saved->data, x->device, inv, SFT_DEVICE_CPU, (size_t)half * sizeof(float)));
    SFT__TRY(sft__node_out(ctx, &n, x->ndim, x->shape));
    return sft__op_run(ctx, &n, out);
}

SFTDEF sft_status sft_attention(sft_context *ctx, sft_tensor *q, sft_tensor *k, sft_tensor *v, sft_tensor *seq_ids,
                                float scale, sft_tensor **out) {
    sft__node n;
    sft_tensor *in[4];
    int64_t lse_shape[4];
    in[0] = q; in[1] = k; in[2] = v; in[3] = seq_ids;
    SFT__TRY(sft__node_begin(ctx, &n, SFT__OP_ATTENTION, 4, in, out));
    SFT__TRY(sft__check_in("attention", "q", q, SFT_F32));
    SFT__TRY(sft__check_in("attention", "k", k, SFT_F32));
    SFT__TRY(sft__check_in("attention", "v", v, SFT_F32));
    if (seq_ids) SFT__TRY(sft__check_in("attention", "seq_ids", seq_ids, SFT_I32));
    if (q->ndim != 4 || k->ndim != 4) return sft__shape_mismatch("attention", "q and k must be [B, T, H, D]", q, k);
    if (!sft__same_shape(k, v)) return sft__shape_mismatch("attention", "k and v differ", k, v);
    if (k->shape[0] != q->shape[0] || k->shape[1] != q->shape[1] || k->shape[3] != q->shape[3])
        return sft__shape_mismatch("attention", "q and k differ in B, T or D", q, k);
    if (k->shape[2] == 0 || q->shape[2] % k->shape[2])
        return sft__shape_mismatch("attention", "query heads must be a multiple of key/value heads", q, k);
    if (q->shape[3] > SFT__ATTN_MAX_D || q->shape[3] == 0)
        return sft__fail(SFT_ERR_SHAPE, "attention: head_dim %lld (want 1..%d)", (long long)q->shape[3], SFT__ATTN_MAX_D);
    if (seq_ids && sft_tensor_numel(seq_ids) != q->shape[0] * q->shape[1])
        return sft__shape_mismatch("attention", "seq_ids must be [B, T]", q, seq_ids);
    if (!(scale >= 0.0f)) return sft__fail(SFT_ERR_ARG, "attention: scale = %g", scale);
    n.f[0] = scale > 0.0f ? scale : 1.0f / sqrtf((float)q->shape[3]);
    lse_shape[0] = 2; lse_shape[1] = q->shape[0]; lse_shape[2] = q->shape[2]; lse_shape[3] = q->shape[1];
    SFT__TRY(sft__tensor_step(ctx, q->device, SFT_F32, 4, lse_shape, &n.saved));
    SFT__TRY(sft__node_out(ctx, &n, 4, q->shape));
    return sft__op_run(ctx, &n, out);
}

/* The vocabulary chunk of sft_linear_cross_entropy: as many logit columns as fit
   SFT__LCE_CHUNK_BYTES for all rows, a multiple of 64, at least 64. */
#define SFT__LCE_CHUNK_BYTES ((int64_t)16 << 20)

/* sft__ce_prepare: the checks and node settings cross_entropy and
   linear_cross_entropy share (labels against V, reduction, divisor). */
static sft_status sft__ce_prepare(const char *op, const sft_ce_desc *desc, const sft_tensor *labels, int64_t N, int64_t V,
                                  sft__node *n) {
    sft_ce_desc d;
    int64_t i, counted = 0;
    memset(&d, 0, sizeof d);
    if (desc) d = *desc;
    if (d.ignore_index == 0) d.ignore_index = -100;
    if (!(d.label_smoothing >= 0.0f && d.label_smoothing < 1.0f))
        return sft__fail(SFT_ERR_ARG, "%s: label_smoothing = %g (want [0, 1))", op, d.label_smoothing);
    if ((int)d.reduction < 0 || d.reduction > SFT_CE_SUM_DIV)
        return sft__fail(SFT_ERR_ARG, "%s: reduction %d does not exist", op, (int)d.reduction);
    if (d.reduction == SFT_CE_SUM_DIV && !(d.divisor > 0.0f && d.divisor < INFINITY))
        return sft__fail(SFT_ERR_ARG, "%s: divisor = %g (want > 0, e.g. num_items_in_batch)", op, d.divisor);
    if (labels->device == SFT_DEVICE_CPU)
        for (i = 0; i < N; i++) {
            int32_t y = ((const int32_t *)labels->data)[i];
            if (y == d.ignore_index) continue;
            if (y < 0 || y >= V)
                return sft__fail(SFT_ERR_ARG, "%s: labels[%lld] = %d is outside [0, %lld) and not ignore_index %d", op,
                                 (long long)i, y, (long long)V, d.ignore_index);
            counted++;
        }
    n->f[0] = d.label_smoothing;
    n->f[1] = d.reduction == SFT_CE_SUM ? 1.0f : d.reduction == SFT_CE_SUM_DIV ? 1.0f / d.divisor : 1.0f / (float)counted;
    n->i[0] = d.ignore_index;
    return SFT_OK;
}

SFTDEF sft_status sft_cross_entropy(sft_context *ctx, sft_tensor *logits, sft_tensor *labels, const sft_ce_desc *desc,
                                    sft_tensor **out) {
    sft__node n;
    sft_tensor *in[2];
    int64_t V, N, saved_shape[2];
    in[0] = logits; in[1] = labels;
    SFT__TRY(sft__node_begin(ctx, &n, SFT__OP_CROSS_ENTROPY, 2, in, out));
    SFT__TRY(sft__check_in("cross_entropy", "logits", logits, SFT_F32));
    SFT__TRY(sft__check_in("cross_entropy", "labels", labels, SFT_I32));
    if (logits->ndim < 1 || logits->shape[logits->ndim - 1] < 1)
        return sft__shape_mismatch("cross_entropy", "logits need a vocabulary dim", logits, labels);
    V = logits->shape[logits->ndim - 1];
    N = sft_tensor_numel(logits) / V;
    if (labels->ndim != logits->ndim - 1 || sft_tensor_numel(labels) != N)
        return sft__shape_mismatch("cross_entropy", "labels must have the logits' shape without the last dim", logits, labels);
    SFT__TRY(sft__ce_prepare("cross_entropy", desc, labels, N, V, &n));
    saved_shape[0] = 2; saved_shape[1] = N;
    SFT__TRY(sft__tensor_step(ctx, logits->device, SFT_F32, 2, saved_shape, &n.saved));
    SFT__TRY(sft__node_out(ctx, &n, 0, NULL));
    return sft__op_run(ctx, &n, out);
}

SFTDEF sft_status sft_linear_cross_entropy(sft_context *ctx, sft_tensor *hidden, sft_tensor *weight, sft_tensor *labels,
                                           const sft_ce_desc *desc, sft_tensor **out) {
    sft__node n;
    sft_tensor *in[3];
    int64_t D, N, V, vc, saved;
    in[0] = hidden; in[1] = weight; in[2] = labels;
    SFT__TRY(sft__node_begin(ctx, &n, SFT__OP_LINEAR_CE, 3, in, out));
    SFT__TRY(sft__check_in("linear_cross_entropy", "hidden", hidden, SFT_F32));
    SFT__TRY(sft__check_in("linear_cross_entropy", "weight", weight, SFT_F32));
    SFT__TRY(sft__check_in("linear_cross_entropy", "labels", labels, SFT_I32));
    if (hidden->ndim < 1 || weight->ndim != 2 || weight->shape[1] != hidden->shape[hidden->ndim - 1] || weight->shape[0] < 1)
        return sft__shape_mismatch("linear_cross_entropy", "weight must be [V, D] with D the last dim of hidden", hidden, weight);
    D = weight->shape[1]; V = weight->shape[0];
    N = D ? sft_tensor_numel(hidden) / D : 0;
    if (labels->ndim != hidden->ndim - 1 || sft_tensor_numel(labels) != N)
        return sft__shape_mismatch("linear_cross_entropy", "labels must have hidden's shape without the last dim", hidden, labels);
    SFT__TRY(sft__ce_prepare("linear_cross_entropy", desc, labels, N, V, &n));
    vc = N ? (SFT__LCE_CHUNK_BYTES / 4 / N) & ~(int64_t)63 : V;
    if (vc < 64) vc = 64;
    if (vc > V) vc = V;
    n.i[1] = vc;
    saved = 4 * N + N * vc;
    SFT__TRY(sft__tensor_step(ctx, hidden->device, SFT_F32, 1, &saved, &n.saved));
    SFT__TRY(sft__node_out(ctx, &n, 0, NULL));
    return sft__op_run(ctx, &n, out);
}

SFTDEF sft_status sft_dropout(sft_context *ctx, sft_tensor *x, float p, uint64_t seed, sft_tensor **out) {
    sft__node n;
    SFT__TRY(sft__node_begin(ctx, &n, SFT__OP_DROPOUT, 1, &x, out));
    SFT__TRY(sft__check_in("dropout", "x", x, SFT_F32));
    if (!(p >= 0.0f && p <= 1.0f)) return sft__fail(SFT_ERR_ARG, "dropout: p = %g (want [0, 1])", p);
    if (p == 0.0f) { *out = x; return SFT_OK; }
    n.f[0] = p;
    n.i[0] = (int64_t)seed;
    SFT__TRY(sft__node_out(ctx, &n, x->ndim, x->shape));
    return sft__op_run(ctx, &n, out);
}

/* ============================================================================
   === cuda seam */

#ifdef SFT_CUDA
#  ifdef __cplusplus
}   /* the CUDA headers are C++: include them outside extern "C" */
#  endif
#  include "sft_cuda.cuh"
#  ifdef __cplusplus
extern "C" {
#  endif
#else
SFTDEF int sft_cuda_available(void) { return 0; }
#endif

/* === end of implementation */
#ifdef __cplusplus
}
#endif
#endif /* SFT__IMPLEMENTED */
#endif /* SFT_IMPLEMENTATION */

/*
MIT License

Copyright (c) 2026 the sft.h authors

Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of
the Software, and to permit persons to whom the Software is furnished to do so,
subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS
FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER
IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
*/
