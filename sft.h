/* sft.h - QLoRA supervised fine-tuning in a single C header.

   sft.h trains Llama-family language models the way Hugging Face's SFTTrainer,
   PEFT and bitsandbytes do: a frozen 4-bit NF4 base, trainable LoRA adapters, the
   same loss, schedules and files. CPU in this header, CUDA in sft_cuda.cuh.

   This release holds the core engine: contexts with a thread pool and allocator
   accounting, JSON and safetensors I/O, tensors, reverse-mode autograd with
   checkpointed segments, the operators a Llama decoder is made of (CPU kernels
   in portable C, AVX2/FMA and AVX-512 chosen at run time), the tokenizer of
   Hugging Face tokenizer.json files, QLoRA's layers (bitsandbytes' NF4/FP4
   quantization, Linear4bit, LoRA/rsLoRA/DoRA adapters and prompt tuning with
   PEFT's semantics), Llama/Mistral/Qwen2 models from Hugging Face
   directories (forward and backward as transformers computes them, PEFT adapter
   files, a memory plan, generation with a KV cache), SFT datasets prepared token
   for token as TRL's SFTTrainer prepares them, and its training loop (AdamW,
   schedules, accumulation, evaluation, metrics), step by step or to the end.

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
       SFT_CUDA                      compile the CUDA backend (sft_cuda.cuh): the
                                     implementation unit is built by nvcc, e.g.
                                     nvcc -x cu -DSFT_IMPLEMENTATION -DSFT_CUDA
                                     -c sft.h; C programs link its object with
                                     -lcublasLt -lcudart -lstdc++. Models then
                                     load onto the GPU (sft_load_desc.device)

   ENVIRONMENT
       SFT_CPU_PATH=portable|avx2|avx512
                                     force a CPU kernel path (see sft_cpu_path_set);
                                     by default the best one the CPU can run

   CONTENTS (search for the banner "=== name")
       public API
         status and errors, context, memory accounting, CPU code path, files,
         JSON, tensors, safetensors, autograd, operators, quantization, LoRA
         layers, prompt tuning, tokenizer, models, data, optimizer and
         schedules, trainer, random numbers, CUDA seam
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
                  projection
         peft: 4-bit quantization    NF4/FP4 codes, double quantization, decoding
         kernels: weights decoded into GEMM panels, a linear layer with its
                  adapters, prompt tuning, the CPU backend table
         ops                         the public operators: checks, dispatch
         peft: Linear4bit, LoRA layers, prompt tuning (the public calls)
         tokenizer: Unicode tables, hash maps, split patterns, the byte-level
                  alphabet, loading tokenizer.json, NFC, encode, decode
         model: config.json, weights (shards, bitsandbytes 4-bit), forward,
                  PEFT adapter files, prompt tuning
         generate                    KV-cache decoding, sampling
         data: chat templates, records, splits, packing, batches, loading
         optim: AdamW, clipping, schedules
         trainer: the loop
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
    SFT_ERR_NUMERIC,      /* a value turned NaN or infinite (e.g. a training loss) */
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
    size_t arena_capacity;   /* bytes the step arenas and step heap hold (host) */
    size_t device_bytes_in_use, device_peak_bytes;  /* CUDA memory, likewise */
    size_t device_arena_capacity;                    /* of which step arenas  */
} sft_mem_stats;

SFTDEF sft_mem_stats sft_context_mem_stats(const sft_context *ctx);
/* sft_context_mem_reset_peak: set peak_bytes to bytes_in_use (both kinds). */
SFTDEF void          sft_context_mem_reset_peak(sft_context *ctx);

/* ============================================================================
   === profiling
   With profiling on, every operator's forward and backward kernel is timed
   (wall clock) and its floating-point work counted, per operator: where a
   training step's time goes. The linear layer is two rows: "linear" (the base
   weight's GEMMs, 4-bit decoding included) and "adapters" (the LoRA/DoRA
   terms). The trainer adds "optimizer" (clipping and the update). Costs a
   clock read per kernel. */

typedef struct sft_profile_entry {
    const char *name;              /* the operator ("linear", "attention", ...)           */
    int64_t     calls;             /* forward calls                                       */
    double      forward_s, backward_s;
    double      forward_flop, backward_flop;   /* the work done (0 where not counted)     */
} sft_profile_entry;

/* sft_profile_enable: turn profiling on (counters reset) or off. */
SFTDEF void sft_profile_enable(sft_context *ctx, int on);
/* sft_profile_read: the rows with any time, up to cap of them, into out;
   returns how many there are. */
SFTDEF int  sft_profile_read(const sft_context *ctx, sft_profile_entry *out, int cap);
/* sft_profile_report: the rows as a table for people, per step over `steps`
   steps that took `seconds` in all (forward and backward milliseconds per step,
   GFLOP/s, share of the step; "other" is the time no row holds: data, metrics,
   logging). Writes at most cap bytes (NUL-terminated) into buf; returns the
   length the whole table needs. */
SFTDEF size_t sft_profile_report(const sft_context *ctx, int64_t steps, double seconds, char *buf, size_t cap);

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
   === quantization
   bitsandbytes' 4-bit formats, bit for bit as its CUDA kernels write the files
   users have. A weight [rows, cols] is flattened row-major and cut into blocks
   of blocksize values; each block keeps its absolute maximum (f32) and each
   value the 4-bit code nearest to value/absmax: NF4 (normal-quantile levels) or
   FP4 (a sign bit and 3 bits of a tiny float). Element 2i sits in the high
   nibble of byte i, element 2i+1 in the low one. With double quantization the
   block maxima are stored as 8-bit codes too: absmax - mean(absmax), in blocks
   of 256, on bitsandbytes' signed dynamic 8-bit map, with an f32 scale each. */

typedef enum sft_quant_type { SFT_QUANT_NONE = 0, SFT_QUANT_NF4, SFT_QUANT_FP4 } sft_quant_type;

typedef struct sft_quant_desc {
    sft_quant_type type;          /* NF4 or FP4; NONE = NF4                          */
    int            blocksize;     /* 32, 64, 128, ..., 4096; 0 = 64                  */
    int            double_quant;  /* also quantize the absmax (compress_statistics)  */
} sft_quant_desc;

#define SFT_QUANT_NESTED_BLOCKSIZE 256

/* A 4-bit matrix. Read-only for users; made by sft_quantize or
   sft_qweight_from_data, freed with sft_qweight_destroy. */
typedef struct sft_qweight {
    sft_quant_type type;
    int64_t  rows, cols;          /* [out_features, in_features]                     */
    int      blocksize;
    int64_t  n_blocks;            /* ceil(rows * cols / blocksize)                   */
    uint8_t *data;                /* (rows * cols + 1) / 2 bytes                     */
    float    code[16];            /* the 4-bit code (the checkpoint's quant_map)     */
    int      double_quant;
    float   *absmax;              /* n_blocks block maxima (double_quant 0)          */
    uint8_t *absmax_q;            /* n_blocks 8-bit codes (double_quant 1) ...       */
    float   *nested_absmax;       /* ... ceil(n_blocks / 256) scales of those codes  */
    float    nested_offset;       /* ... and the mean that was subtracted            */
    float    nested_code[256];    /* ... on this map (the checkpoint's nested_quant_map) */
    sft_device device;            /* where data, absmax, absmax_q and nested_absmax are
                                     (code and nested_code stay here in the struct)  */
    /* private */
    sft_context *ctx;
    float   *device_code;         /* on a device: code (16) then nested_code (256) there */
} sft_qweight;

/* The arrays of a 4-bit matrix as a checkpoint stores them, each with its length
   so a short or long one is caught. code / nested_code NULL = the standard
   tables. Either absmax (double_quant 0) or absmax_q + nested_absmax. */
typedef struct sft_qweight_data {
    sft_quant_type type;
    int64_t        rows, cols;
    int            blocksize;
    const uint8_t *data;          size_t  data_bytes;
    const float   *code;          int     code_len;          /* 16 */
    const float   *absmax;        int64_t n_absmax;
    const uint8_t *absmax_q;      int64_t n_absmax_q;
    const float   *nested_absmax; int64_t n_nested_absmax;
    float          nested_offset;
    const float   *nested_code;   int     nested_code_len;   /* 256 */
    int            nested_blocksize;                         /* 0 = 256; only 256 exists */
} sft_qweight_data;

/* sft_quantize: quantize w (CPU, f32/bf16/f16, [rows, cols] or [n]) as
   bitsandbytes does on CUDA: values widened to f32, scaled by 1/absmax, coded by
   the midpoints between code values (a value exactly on a midpoint takes the
   lower code; an all-zero block gets code 0). */
SFTDEF sft_status sft_quantize(sft_context *ctx, const sft_tensor *w, const sft_quant_desc *desc, sft_qweight **out);
/* sft_qweight_from_data: copy a checkpoint's arrays into a new sft_qweight after
   checking every length and value (blocksize, buffer sizes, NaN/Inf/negative
   stored block maxima and nested scales, non-finite offset and code values). */
SFTDEF sft_status sft_qweight_from_data(sft_context *ctx, const sft_qweight_data *d, sft_qweight **out);
/* sft_qweight_block_scale: the f32 absmax of block i (0 <= i < n_blocks; decoded
   if double-quantized: nested_code[q] * nested_absmax[i / 256] + nested_offset,
   as bitsandbytes). */
SFTDEF float      sft_qweight_block_scale(const sft_qweight *q, int64_t block);
/* sft_dequantize: a new persistent f32 [rows, cols] tensor on q's device,
   element = code[q] * block scale, the same bits on every device. (The layers
   below never make one; this is for export and tests.) */
SFTDEF sft_status sft_dequantize(sft_context *ctx, const sft_qweight *q, sft_tensor **out);
/* sft_qweight_to_device: a new copy of q on device (SFT_DEVICE_CUDA needs the
   CUDA build). The block scales of a device copy are read with sft_dequantize
   or after copying back; sft_qweight_block_scale needs a CPU qweight. */
SFTDEF sft_status sft_qweight_to_device(sft_context *ctx, const sft_qweight *q, sft_device device, sft_qweight **out);
SFTDEF void       sft_qweight_destroy(sft_qweight *q);
/* The code tables: 16 values for NF4/FP4 (index = the 4-bit pattern), and the 256
   sorted values of bitsandbytes' signed dynamic 8-bit map. */
SFTDEF const float *sft_quant_code(sft_quant_type type);
SFTDEF const float *sft_quant_dynamic_map(void);

/* sft_linear4bit: y = x . dequant(w)^T (+ bias [rows]) for x [.., cols]; the
   weight is decoded a tile at a time into the GEMM's packed panels, never whole.
   Backward gives x (and bias) their gradients; the weight gets none. */
SFTDEF sft_status sft_linear4bit(sft_context *ctx, sft_tensor *x, const sft_qweight *w, sft_tensor *bias, sft_tensor **out);

/* ============================================================================
   === LoRA layers
   A linear layer with a frozen base (4-bit, or dense f32/bf16) and any number of
   named low-rank adapters, with PEFT's semantics (LoraLayer): A [r, in],
   B [out, r], y = base(x) + scaling * B(A(dropout(x))), scaling = alpha / r or
   alpha / sqrt(r) (use_rslora). DoRA adds a magnitude vector m [out]:
   y = base(x) + (m / |W + s B A| - 1) * (x W^T) + (m / |W + s B A|) * s B(A(x)),
   the row norm held constant in backward, as PEFT does. The base product and
   every active adapter run as one autograd node. */

typedef enum sft_lora_init {
    SFT_LORA_INIT_KAIMING = 0,    /* PEFT's default: A kaiming-uniform(a = sqrt 5), B zeros */
    SFT_LORA_INIT_GAUSSIAN        /* "gaussian": A normal with std 1/r, B zeros             */
} sft_lora_init;

typedef struct sft_lora_desc {
    int           r;              /* rank; 0 = 8                                     */
    float         alpha;          /* lora_alpha; 0 = 8                               */
    float         dropout;        /* lora_dropout, on the adapter's input only       */
    int           use_rslora;     /* scaling alpha / sqrt(r)                         */
    int           use_dora;
    sft_lora_init init;
    uint64_t      seed;           /* for A's initial values: give each layer its own
                                     (sft_model_add_lora derives one per projection) */
} sft_lora_desc;

/* The layer's base: exactly one of weight (f32 or bf16 [out, in]) and qweight.
   sft_linear_create takes ownership of weight, qweight and bias on success (they
   are freed with the layer; merging rewrites them). */
typedef struct sft_linear_desc {
    sft_tensor  *weight;
    sft_qweight *qweight;
    sft_tensor  *bias;            /* f32 [out] or NULL; frozen                       */
    sft_dtype    compute_dtype;   /* bnb_4bit_compute_dtype for the frozen base's GEMMs:
                                     SFT_F32 (0) or SFT_BF16 (inputs and weight rounded
                                     to bf16, products summed in f32: vdpbf16ps where
                                     the CPU has AVX512-BF16). The adapters, x, y and
                                     every gradient stay f32. */
} sft_linear_desc;

typedef struct sft_linear sft_linear;

/* An adapter's trainable tensors (owned by the layer; requires_grad set). */
typedef struct sft_lora_weights {
    sft_tensor *A, *B;            /* [r, in], [out, r]                                */
    sft_tensor *magnitude;        /* [out] for DoRA, else NULL                       */
    float       scaling;
    int         r;
} sft_lora_weights;

/* Per-call settings of sft_linear_forward (NULL = eval mode, no routing). */
typedef struct sft_linear_call {
    int                training;       /* dropout is active only in training      */
    uint64_t           dropout_seed;   /* keys this call's masks (each adapter its own;
                                          give each layer and step its own seed)  */
    const char *const *adapter_names;  /* mixed batch: one adapter name (or "__base__")
                                          per sample (x's first dim), or NULL     */
    int                n_adapter_names;   /* their count: x's first dim            */
    int                skip_missing;      /* a name this layer lacks runs the base (as
                                             PEFT does for layers without the adapter) */
    const sft_tensor  *dropout_mask;   /* replay: x's shape, 0 or 1/(1-p) per element,
                                          used instead of drawing (every adapter) */
} sft_linear_call;

SFTDEF sft_status sft_linear_create(sft_context *ctx, const sft_linear_desc *desc, sft_linear **out);
SFTDEF void       sft_linear_destroy(sft_linear *lin);
SFTDEF int64_t    sft_linear_in_features(const sft_linear *lin);
SFTDEF int64_t    sft_linear_out_features(const sft_linear *lin);
/* sft_linear_add_adapter: a new adapter initialised per desc. As in PEFT the
   first adapter of a layer becomes active and later ones wait for
   sft_linear_set_active. DoRA's magnitude starts at the row norms of the base
   weight (B is zero). Names are unique; "__base__" is reserved. */
SFTDEF sft_status sft_linear_add_adapter(sft_linear *lin, const char *name, const sft_lora_desc *desc);
/* sft_linear_set_active: the adapters whose outputs are summed (n = 0: none). */
SFTDEF sft_status sft_linear_set_active(sft_linear *lin, const char *const *names, int n);
/* sft_linear_set_adapters_enabled: 0 = PEFT's disable_adapters (base only, merged
   adapters are unmerged first); 1 = the active set again. */
SFTDEF sft_status sft_linear_set_adapters_enabled(sft_linear *lin, int enabled);
SFTDEF sft_status sft_linear_adapter_weights(sft_linear *lin, const char *name, sft_lora_weights *out);
/* sft_linear_forward: y [.., out] for x [.., in] (f32); gradients flow to x and
   to the active adapters' A, B (and magnitude). A merged layer runs its base only. */
SFTDEF sft_status sft_linear_forward(sft_context *ctx, sft_linear *lin, sft_tensor *x, const sft_linear_call *call,
                                     sft_tensor **out);
/* sft_linear_merge: add the named adapters (NULL/0 = the active ones) into the base
   weight: W += s B A (DoRA: W = m / |W + s B A| * (W + s B A)). A 4-bit base is
   dequantized, added to and quantized again with its own settings, as PEFT does,
   so its values move by the rounding. sft_linear_unmerge undoes every merge, newest
   first. Both replace a 4-bit base with a new sft_qweight: a pointer taken from
   sft_linear_base_qweight before is gone. Do not merge between a forward and
   its backward. */
SFTDEF sft_status sft_linear_merge(sft_linear *lin, const char *const *names, int n);
SFTDEF sft_status sft_linear_unmerge(sft_linear *lin);
/* sft_linear_base: the base weight as it is now (one of the two is NULL). */
SFTDEF const sft_tensor  *sft_linear_base_weight(const sft_linear *lin);
SFTDEF const sft_qweight *sft_linear_base_qweight(const sft_linear *lin);
/* sft_linear_set_compute_dtype: as desc->compute_dtype, from now on. */
SFTDEF sft_status         sft_linear_set_compute_dtype(sft_linear *lin, sft_dtype compute_dtype);

/* ============================================================================
   === prompt tuning
   PEFT's prompt tuning: num_virtual_tokens trainable embeddings [P, D] put in
   front of each sample's input embeddings. */

/* sft_prompt_embeddings_create: a persistent [P, D] tensor drawn from N(0, 1) (as
   a fresh nn.Embedding), requires_grad set. */
SFTDEF sft_status sft_prompt_embeddings_create(sft_context *ctx, int num_virtual_tokens, int64_t hidden, uint64_t seed,
                                               sft_tensor **out);
typedef struct sft_prompt_batch {
    sft_tensor *embeds;           /* [B, P + T, D]; gradients flow to prompts and the input */
    sft_tensor *attention_mask;   /* i32 [B, P + T]: P ones, then the given mask (or ones) */
    sft_tensor *labels;           /* i32 [B, P + T]: P times -100, then the labels (NULL if none given) */
    sft_tensor *positions;        /* i32 [B, P + T]: 0, 1, ... as the model counts them */
} sft_prompt_batch;
/* sft_prompt_prepend: prompts [P, D] before embeds [B, T, D]; attention_mask and
   labels (i32 [B, T]) may be NULL. Outputs are step tensors. */
SFTDEF sft_status sft_prompt_prepend(sft_context *ctx, sft_tensor *prompts, sft_tensor *embeds, sft_tensor *attention_mask,
                                     sft_tensor *labels, sft_prompt_batch *out);

/* ============================================================================
   === tokenizer
   Hugging Face tokenizer.json files (BPE models), with the ids the Python
   tokenizers library gives: byte-level BPE with the pre-tokenizer split
   patterns of GPT-2, Llama-3, Qwen2 and SmolLM2 (Unicode letters and numbers
   from Unicode 16.0 tables, as its Oniguruma matches them), SentencePiece-style BPE
   (the U+2581 marker, <0xNN> byte fallback, prepend/replace normalizers,
   Metaspace), added and special tokens with their flags, and the matching
   decoders. Text to encode must be valid UTF-8 (else SFT_ERR_ARG naming the
   byte offset); decoding turns invalid byte sequences into U+FFFD as the Python
   library does. */

typedef struct sft_tokenizer sft_tokenizer;

/* sft_tokenizer_load: path is a directory holding tokenizer.json (and, if
   present, tokenizer_config.json for bos/eos/pad/unk, add_bos_token/
   add_eos_token and chat_template) or the tokenizer.json file itself. A model
   type, normalizer, pre-tokenizer, decoder or post-processor this engine does
   not know fails with SFT_ERR_UNSUPPORTED naming it. */
SFTDEF sft_status sft_tokenizer_load(sft_context *ctx, const char *path, sft_tokenizer **out);
SFTDEF void       sft_tokenizer_destroy(sft_tokenizer *tok);
/* sft_tokenizer_encode: ids of text[0..len); with add_special_tokens the
   post-processor's template (e.g. a BOS id) is applied. *ids is allocated for
   the caller (free with sft_free(ctx, *ids)). A tokenizer keeps a cache of the
   words it has seen: use it from one thread at a time. */
SFTDEF sft_status sft_tokenizer_encode(sft_tokenizer *tok, const char *text, size_t len, int add_special_tokens,
                                       int32_t **ids, size_t *n_ids);
/* sft_tokenizer_decode: the text of ids (NUL-terminated, free with sft_free);
   skip_special_tokens drops added tokens marked special. An id outside the
   vocabulary fails with SFT_ERR_ARG. */
SFTDEF sft_status sft_tokenizer_decode(sft_tokenizer *tok, const int32_t *ids, size_t n_ids, int skip_special_tokens,
                                       char **text, size_t *len);
/* The vocabulary (model tokens and added tokens): size (max id + 1), a token's
   text (NULL when the id is unused), an id by text (-1 when absent). */
SFTDEF int32_t     sft_tokenizer_vocab_size(const sft_tokenizer *tok);
SFTDEF const char *sft_tokenizer_id_to_token(const sft_tokenizer *tok, int32_t id);
SFTDEF int32_t     sft_tokenizer_token_to_id(const sft_tokenizer *tok, const char *token);

/* What tokenizer_config.json (or the tokenizer itself) says about special
   tokens and templates; ids are -1 when absent. */
typedef struct sft_tokenizer_info {
    int32_t     bos_id, eos_id, pad_id, unk_id;
    int         add_bos_token, add_eos_token;
    const char *chat_template;   /* NULL when absent; owned by the tokenizer */
} sft_tokenizer_info;
SFTDEF sft_tokenizer_info sft_tokenizer_get_info(const sft_tokenizer *tok);

/* ============================================================================
   === models
   Llama-family decoders (LlamaForCausalLM, MistralForCausalLM,
   Qwen2ForCausalLM; SmolLM2 and TinyLlama are Llamas) read from a Hugging Face
   model directory: config.json and model.safetensors, or the shards named by
   model.safetensors.index.json. The forward pass computes what transformers'
   eager implementation computes, in f32. */

typedef struct sft_model_config {
    char          architecture[48];   /* e.g. "LlamaForCausalLM"               */
    int           vocab_size, hidden_size, intermediate_size, num_hidden_layers;
    int           num_attention_heads, num_key_value_heads, head_dim;
    int           max_position_embeddings;
    int           sliding_window;      /* 0 = none                              */
    float         rms_norm_eps;
    sft_rope_desc rope;                /* rope_theta and rope_scaling           */
    int           tie_word_embeddings, attention_bias, mlp_bias;
    sft_dtype     dtype;               /* torch_dtype / dtype of the checkpoint */
    int           bos_token_id, eos_token_id, pad_token_id;   /* -1 if absent  */
    int           eos_token_ids[8], n_eos;   /* every id of a list-valued eos_token_id  */
    /* a pre-quantized bitsandbytes checkpoint (quantization_config) */
    sft_quant_type prequantized;
} sft_model_config;

typedef struct sft_load_desc {
    sft_quant_type quant;         /* NONE: decoder linears stay dense (bf16 stays bf16,
                                     f32/f16 become f32); NF4/FP4: quantized on load.
                                     Embeddings, norms and lm_head always stay dense
                                     (f32), as transformers + bitsandbytes leave them.
                                     A pre-quantized checkpoint loads as stored.   */
    int            blocksize;     /* 0 = 64                                         */
    int            double_quant;  /* bnb_4bit_use_double_quant                      */
    sft_device     device;        /* where the model lives: SFT_DEVICE_CPU (0), or
                                     SFT_DEVICE_CUDA (the CUDA build and a device):
                                     weights, adapters, their gradients, optimizer
                                     state and activations all stay there; batches
                                     are given on the CPU and copied over        */
    sft_dtype      compute_dtype; /* bnb_4bit_compute_dtype: SFT_F32 (0) or SFT_BF16:
                                     the frozen base's GEMMs (the decoder's linears
                                     and the output projection) multiply in bf16 and
                                     sum in f32 (see sft_linear_desc); activations,
                                     adapters, gradients and optimizer state stay f32 */
} sft_load_desc;

typedef struct sft_model sft_model;

/* sft_model_load: read a model directory (see above). On failure *out is NULL
   and the message names the file and the field or tensor. */
SFTDEF sft_status sft_model_load(sft_context *ctx, const char *dir, const sft_load_desc *desc, sft_model **out);
SFTDEF void       sft_model_destroy(sft_model *m);
SFTDEF const sft_model_config *sft_model_get_config(const sft_model *m);
/* sft_model_set_compute_dtype: as sft_load_desc.compute_dtype, from now on. */
SFTDEF sft_status sft_model_set_compute_dtype(sft_model *m, sft_dtype compute_dtype);
/* sft_model_linear: the layer's projection named as in transformers ("q_proj",
   "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"), or NULL. */
SFTDEF sft_linear *sft_model_linear(sft_model *m, int layer, const char *module);
/* sft_model_add_lora: an adapter on every projection target_modules names:
   "all-linear" (every projection of every block, never lm_head) or a comma-
   separated list of module names ("q_proj,v_proj"). Each layer's A gets its own
   seed from desc->seed. */
SFTDEF sft_status sft_model_add_lora(sft_model *m, const char *name, const sft_lora_desc *desc, const char *target_modules);
/* sft_model_set_active: the active adapters of every projection that has them. */
SFTDEF sft_status sft_model_set_active(sft_model *m, const char *const *names, int n);

/* A batch: input_ids i32 [B, T]. attention_mask (i32 [B, T], 1 = token, 0 =
   padding) may be NULL. labels (i32 [B, T], -100 = ignored) are the inputs as
   transformers takes them: the model shifts them (position t predicts label
   t + 1). Packed rows give seq_ids (i32 [B, T]: tokens attend only to earlier
   tokens with the same id) and positions (i32 [B, T], restarting at each
   sequence); without them positions are 0..T-1 and padding is masked out. */
typedef struct sft_model_batch {
    sft_tensor *input_ids, *attention_mask, *labels, *seq_ids, *positions;
    sft_tensor *inputs_embeds;         /* [B, T, D] instead of input_ids (prompt tuning) */
} sft_model_batch;

typedef struct sft_model_run {
    int              training;         /* adapter dropout on                    */
    uint64_t         dropout_seed;
    int              gradient_checkpointing;   /* recompute each block in backward */
    int              want_logits;      /* also return logits [B, T, V] (otherwise the
                                          loss is fused and no logits exist)     */
    int              token_metrics;    /* with labels: count the trained tokens whose
                                          argmax is the label and sum their
                                          next-token entropy (in the fused loss, a
                                          vocabulary chunk at a time; from the
                                          logits when want_logits)               */
    sft_ce_desc      loss;             /* reduction, num_items_in_batch divisor... */
    const char *const *adapter_names;  /* mixed batch, one per row (see sft_linear_call);
                                          with gradient checkpointing the array must
                                          stay valid until backward                */
    int              n_adapter_names;
    float            neftune_noise_alpha;  /* training: add U(-1, 1) * alpha / sqrt(T * D) to
                                              the input embeddings (transformers' NEFTune) */
    uint64_t         neftune_seed;         /* keys the noise                        */
    const float     *neftune_uniform;      /* or these U(-1, 1) draws, B * T * D of them
                                              (to replay another run's noise)      */
} sft_model_run;

typedef struct sft_model_output {
    sft_tensor *logits;                /* step tensor or NULL                   */
    sft_tensor *loss;                  /* step tensor (scalar) when labels were given */
    sft_tensor *hidden;                /* the final norm's output [B, T, D]     */
    /* run->token_metrics: over the trained tokens (shifted labels != -100) */
    int64_t     metric_tokens;         /* how many                              */
    double      metric_correct;        /* argmax == label                       */
    double      metric_entropy;        /* the sum of their entropies (nats)     */
} sft_model_output;

/* sft_model_forward: the decoder on a batch; gradients flow to whatever requires
   them (adapters, prompt embeddings). run NULL = eval, logits only. */
SFTDEF sft_status sft_model_forward(sft_model *m, const sft_model_batch *batch, const sft_model_run *run,
                                    sft_model_output *out);

/* sft_shift_labels: transformers' causal-LM shift: out[b, t] = labels[b, t + 1],
   -100 at the end of each row (a step tensor on labels' device): position t
   predicts token t + 1. For a compute_loss of one's own on the logits. */
SFTDEF sft_status sft_shift_labels(sft_context *ctx, const sft_tensor *labels, sft_tensor **out);

/* PEFT adapter directories: adapter_config.json (peft_type LORA) and
   adapter_model.safetensors with PEFT's keys
   (base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight, ...,
   lora_magnitude_vector for DoRA). sft_model_load_adapter adds the file's
   adapter under name on exactly the projections it has weights for; the
   message names the file and the key of anything that does not fit the model.
   sft_model_save_adapter writes the adapter so PEFT's PeftModel.from_pretrained
   loads it (through sft_file_write_atomic; dir is created if missing). */
SFTDEF sft_status sft_model_load_adapter(sft_model *m, const char *dir, const char *name);
SFTDEF sft_status sft_model_save_adapter(sft_model *m, const char *name, const char *dir);

/* Generation: one sequence, a KV cache per layer, greedy or sampled. */
typedef struct sft_generate_desc {
    int            max_new_tokens;  /* 0 = 32                                          */
    float          temperature;     /* 0 = greedy (argmax, the first on ties)          */
    int            top_k;           /* 0 = off                                         */
    float          top_p;           /* 0 or 1 = off                                    */
    uint64_t       seed;            /* sampling: the same seed gives the same text     */
    int            no_eos_stop;     /* 1 = do not stop at the config's eos_token_id    */
    sft_tokenizer *tokenizer;       /* with stop_string: stop once the decoded new     */
    const char    *stop_string;     /*   text contains it                              */
} sft_generate_desc;
/* sft_model_generate: the prompt's continuation (the new ids only, eos included
   when reached; free *ids with sft_free). Runs without recording gradients; it
   calls sft_step_begin (the step's tensors are gone afterwards). The active
   adapters apply. */
SFTDEF sft_status sft_model_generate(sft_model *m, const int32_t *prompt, int n_prompt, const sft_generate_desc *desc,
                                     int32_t **ids, int *n_ids);

/* The memory a training step needs, in bytes, known before it runs. weights,
   adapters and their gradients are counted from the model as it is;
   activations is the step arena's high-water mark (forward, backward, and the
   recomputation space of checkpointed blocks) found by a dry run of the step's
   graph with the arithmetic switched off; workspace is the GEMM packing buffers
   and attention tiles. optimizer is AdamW's two f32 moments per trainable value
   (allocated by the optimizer, not by a step). total is their sum; a steady
   step's allocator high-water mark (sft_context_mem_stats) is total -
   optimizer, plus whatever else the host allocated. Weights are copied on load,
   so mmapped is 0. For a model on a device every figure is device memory
   (sft_mem_stats' device_ fields; the tape's small records stay on the host),
   and workspace is cuBLASLt's. */
typedef struct sft_memory_plan {
    size_t weights, adapters, gradients, optimizer, activations, workspace, total, mmapped;
} sft_memory_plan;
/* sft_model_memory_plan: the plan for a batch of [batch, seq_len] tokens with
   labels, run per run (training, gradient_checkpointing, ...; NULL = training
   without checkpointing). Calls sft_step_begin. */
SFTDEF sft_status sft_model_memory_plan(sft_model *m, int64_t batch, int64_t seq_len, const sft_model_run *run,
                                        sft_memory_plan *out);

/* sft_model_embed: the input embeddings of ids (i32 [B, T]) -> [B, T, D] (a step
   tensor), e.g. to put prompt-tuning embeddings in front (sft_prompt_prepend) and
   run the model on inputs_embeds. */
SFTDEF sft_status sft_model_embed(sft_model *m, sft_tensor *ids, sft_tensor **out);

/* The base model's dense weights by their transformers names
   ("model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", ...,
   "lm_head.weight" unless tied): sft_model_weight_at enumerates them (i from 0
   until it returns 0; name gets the name, *weight the tensor or NULL where the
   layer has no bias or a 4-bit weight), sft_model_weight finds one (NULL if
   absent or 4-bit). */
#define SFT_WEIGHT_NAME_MAX 96
SFTDEF int         sft_model_weight_at(sft_model *m, int i, char name[SFT_WEIGHT_NAME_MAX], sft_tensor **weight);
SFTDEF sft_tensor *sft_model_weight(sft_model *m, const char *name);
/* sft_model_prompt_init_text: prompt-tuning embeddings [P, D] initialised as PEFT's
   TEXT init: the embeddings of the ids (the tokenized init text), repeated to
   fill P rows or cut to P. A persistent tensor on the model's device with
   requires_grad set. */
SFTDEF sft_status sft_model_prompt_init_text(sft_model *m, const int32_t *ids, int n_ids, int num_virtual_tokens,
                                             sft_tensor **out);

/* ============================================================================
   === data
   SFT datasets as TRL's SFTTrainer prepares them: JSONL records in the
   formats {"text"}, {"prompt", "completion"} (strings or message lists),
   {"messages": [{"role", "content"}]} and ShareGPT {"conversations":
   [{"from", "value"}]}; chat templates rendered by built-in renderers of the
   common families; EOS appended to plain text; tokenized, truncated to
   max_length (keeping the start), labels -100 where not trained; packed into
   bins of max_length (best fit decreasing) or padded on the right. */

typedef enum sft_data_format {
    SFT_FORMAT_AUTO = 0, SFT_FORMAT_TEXT, SFT_FORMAT_PROMPT_COMPLETION, SFT_FORMAT_MESSAGES, SFT_FORMAT_SHAREGPT,
    SFT_FORMAT_TOKENS       /* already tokenized: {"input_ids": [...]} with optional
                               "completion_mask" / "assistant_masks" (TRL skips its
                               preparation for such rows, and so do we)            */
} sft_data_format;

typedef enum sft_chat_template {
    SFT_TEMPLATE_AUTO = 0,  /* recognised from tokenizer_config.json's chat_template */
    SFT_TEMPLATE_CHATML,    /* <|im_start|>role\ncontent<|im_end|>\n (Qwen2, SmolLM2)   */
    SFT_TEMPLATE_LLAMA3,    /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    SFT_TEMPLATE_LLAMA2,    /* <s>[INST] <<SYS>>...<</SYS>> user [/INST] answer </s>     */
    SFT_TEMPLATE_MISTRAL,   /* <s>[INST] user[/INST] answer</s>                          */
    SFT_TEMPLATE_ZEPHYR,    /* <|role|>\ncontent</s>\n                                   */
    SFT_TEMPLATE_GEMMA      /* <bos><start_of_turn>user\n...<end_of_turn>\n (model)      */
} sft_chat_template;

typedef struct sft_data_desc {
    int               max_length;          /* 0 = 1024 (TRL's default); -1 = no limit   */
    int               packing;             /* best-fit-decreasing bins of max_length    */
    const char       *dataset_text_field;  /* NULL = "text"                             */
    sft_data_format   format;              /* AUTO: from the first record's keys        */
    int               completion_only_loss;/* 0 = on for prompt-completion, -1 = off    */
    int               assistant_only_loss; /* conversations: train on assistant turns   */
    sft_chat_template chat_template;
    const char       *chat_template_text;  /* a Jinja template to use instead of the
                                              tokenizer's (recognised the same way)    */
    int               padding_free;        /* flatten unpacked batches too (TRL's padding_free) */
    int               sharegpt_map_roles;  /* ShareGPT human/gpt -> user/assistant (TRL
                                              keeps the role names as they are)         */
    const char       *pad_token;           /* TRL's pad_token: NULL = the tokenizer's pad,
                                              else its eos                              */
    int               skip_bad_records;    /* 1: skip (counted, logged); 0: stop        */
    float             eval_fraction;       /* a seeded fraction of rows set aside       */
    uint64_t          seed;
} sft_data_desc;

typedef struct sft_data_stats {
    int64_t rows_read, rows_kept;
    int64_t dropped_malformed;     /* not JSON, missing fields, unknown role, bad UTF-8   */
    int64_t dropped_empty;         /* nothing to tokenize                                */
    int64_t dropped_untrained;     /* no token left to train on (e.g. max_length < prompt) */
    int64_t truncated;             /* rows cut to max_length                             */
    int64_t tokens, trained_tokens;
    int64_t bins;                  /* packed rows (packing)                              */
    double  packing_efficiency;    /* tokens / (bins * max_length)                       */
    int64_t eval_rows;
} sft_data_stats;

typedef struct sft_dataset sft_dataset;

/* sft_dataset_load: path is a .jsonl file or a directory of them (read in name
   order). tok must stay alive while the dataset is used. A bad line fails with
   the file and line number (or, with skip_bad_records, is counted and logged). */
SFTDEF sft_status sft_dataset_load(sft_context *ctx, sft_tokenizer *tok, const char *path, const sft_data_desc *desc,
                                   sft_dataset **out);
/* sft_dataset_from_records: the same from n JSON texts (one record each). */
SFTDEF sft_status sft_dataset_from_records(sft_context *ctx, sft_tokenizer *tok, const char *const *records, int n,
                                           const sft_data_desc *desc, sft_dataset **out);
SFTDEF void       sft_dataset_destroy(sft_dataset *ds);
SFTDEF sft_data_stats sft_dataset_stats(const sft_dataset *ds);
/* sft_dataset_rows: examples in a split (0 train, 1 eval): rows, or bins when packing. */
SFTDEF int64_t    sft_dataset_rows(const sft_dataset *ds, int split);
/* sft_dataset_row: the tokens and labels (labels already -100 where not trained,
   not yet shifted) of example i; pointers into the dataset. Rows of a packed
   dataset are bins of several sequences: read them with sft_dataset_batch
   (this returns SFT_ERR_ARG). seq_starts / n_seqs (may be NULL) give 0 / 1. */
SFTDEF sft_status sft_dataset_row(const sft_dataset *ds, int split, int64_t i, const int32_t **ids, const int32_t **labels,
                                  int64_t *n, const int32_t **seq_starts, int *n_seqs);
/* sft_dataset_render: the text a chat template gives for a conversation record
   (JSON text), as transformers' apply_chat_template(add_generation_prompt) would
   render it. Free with sft_free. */
SFTDEF sft_status sft_dataset_render(sft_dataset *ds, const char *record, int add_generation_prompt, char **text);

/* A batch as the model takes it (step tensors). Unpacked: [B, T] right-padded
   (pad = the tokenizer's pad, else eos) with attention_mask and labels -100 on
   padding. Packed (padding-free, as TRL's collator): the batch's bins flattened
   into one row [1, total] with positions restarting at each sequence, seq_ids,
   and the first label of every sequence -100 (also with padding_free). */
typedef struct sft_batch {
    sft_tensor *input_ids, *labels, *attention_mask, *positions, *seq_ids;
    int64_t     n_examples, tokens, trained_tokens;   /* trained: labels != -100, before the shift */
} sft_batch;
/* sft_dataset_batch: examples [first, first + batch_size) of epoch's order (the
   train split shuffled by (seed, epoch) when shuffle; the same on resume). */
SFTDEF sft_status sft_dataset_batch(sft_dataset *ds, int split, int64_t epoch, int shuffle, int64_t first, int64_t batch_size,
                                    sft_batch *out);

/* ============================================================================
   === optimizer and schedules
   AdamW as torch.optim.AdamW computes it (its single-tensor CPU path: the
   scalars in double, the tensor arithmetic in f32 in the same order), gradient
   clipping by the global norm, and transformers' learning-rate schedules. */

typedef struct sft_adamw_desc {
    double lr;              /* the base learning rate; 0 = 2e-5 (TRL's default)     */
    double beta1, beta2;    /* 0 = 0.9, 0.999                                       */
    double eps;             /* 0 = 1e-8                                             */
    double weight_decay;    /* decoupled; not applied to params marked no_decay     */
    int    eight_bit;       /* bitsandbytes' AdamW8bit (below)                      */
    int64_t min_8bit_size;  /* eight_bit: tensors smaller keep f32 moments; 0 = 4096 */
} sft_adamw_desc;

typedef struct sft_optimizer sft_optimizer;

/* sft_optimizer_create: AdamW over n parameters (their gradients are read at each
   step). no_decay (may be NULL) marks those weight decay skips (biases, norms,
   DoRA magnitudes). The optimizer holds two f32 moments per value.

   eight_bit is bitsandbytes' AdamW8bit as it runs on the CPU: a tensor of at
   least min_8bit_size values keeps its moments as 8-bit codes in blocks of 256
   values, each block scaled by its largest magnitude (exp_avg on the signed
   dynamic map, exp_avg_sq on the unsigned one); a step decodes them, updates in
   f32 and codes them again through bitsandbytes' 65,536-bin table. Smaller
   tensors keep f32 moments with bitsandbytes' 32-bit update (torch's AdamW with
   the bias corrections folded differently). 2 bytes per value instead of 8.

   A parameter's state lives on its device; on CUDA its update runs there,
   giving the CPU's bits (the same per-element functions, see sft_cuda.cuh). */
SFTDEF sft_status sft_optimizer_create(sft_context *ctx, sft_tensor *const *params, int n, const unsigned char *no_decay,
                                       const sft_adamw_desc *desc, sft_optimizer **out);
SFTDEF void       sft_optimizer_destroy(sft_optimizer *opt);
/* sft_optimizer_step: one update with learning rate lr (from a schedule); a
   parameter without a gradient is left alone, as torch does. */
SFTDEF sft_status sft_optimizer_step(sft_optimizer *opt, double lr);
SFTDEF void       sft_optimizer_zero_grad(sft_optimizer *opt);
/* sft_optimizer_clip_grad_norm: the global L2 norm of the gradients (computed in
   double over fixed chunks of 4096 values, added in order: the same on any
   thread count and device); when max_norm > 0 and the norm exceeds it, every
   gradient is scaled by max_norm / (norm + 1e-6), as
   torch.nn.utils.clip_grad_norm_. Returns the norm before clipping (NaN, with
   sft_last_error() set, if a device could not compute it). */
SFTDEF double     sft_optimizer_clip_grad_norm(sft_optimizer *opt, double max_norm);
/* sft_optimizer_state: parameter i's state, writable (a checkpoint restores it
   in place): f32 moments, or for an 8-bit tensor its codes and block scales
   (blocks = ceil(numel / 256)); the others are NULL. On a device (device !=
   SFT_DEVICE_CPU) the arrays are device memory: copy them with the device's
   copies (sft_tensor_copy_from between tensors, or cudaMemcpy). */
typedef struct sft_optimizer_state {
    sft_device device;
    int64_t  step, numel, blocks;
    float   *exp_avg, *exp_avg_sq;
    uint8_t *state1, *state2;          /* 8-bit codes of exp_avg, exp_avg_sq    */
    float   *absmax1, *absmax2;        /* their per-block scales                */
} sft_optimizer_state;
SFTDEF sft_status sft_optimizer_param_state(sft_optimizer *opt, int i, sft_optimizer_state *out);
/* sft_optimizer_count: the number of parameters it updates. */
SFTDEF int        sft_optimizer_count(const sft_optimizer *opt);
/* sft_dynamic_map: bitsandbytes' create_dynamic_map(signed) (8 bits, 7
   exponent bits): the 256 sorted code values the 8-bit moments use. */
SFTDEF void       sft_dynamic_map(int is_signed, float out[256]);

typedef enum sft_schedule {
    SFT_SCHEDULE_LINEAR = 0, SFT_SCHEDULE_COSINE, SFT_SCHEDULE_COSINE_WITH_RESTARTS, SFT_SCHEDULE_POLYNOMIAL,
    SFT_SCHEDULE_CONSTANT, SFT_SCHEDULE_CONSTANT_WITH_WARMUP, SFT_SCHEDULE_INVERSE_SQRT, SFT_SCHEDULE_COSINE_WITH_MIN_LR,
    SFT_SCHEDULE_WARMUP_STABLE_DECAY, SFT_SCHEDULE_REDUCE_ON_PLATEAU, SFT_SCHEDULE_COSINE_WARMUP_WITH_MIN_LR,
    SFT_SCHEDULE_COUNT
} sft_schedule;

/* warmup_stable_decay's warmup and decay shapes (transformers' warmup_type and
   decay_type); DEFAULT is linear for warmup, cosine for decay */
typedef enum sft_curve { SFT_CURVE_DEFAULT = 0, SFT_CURVE_LINEAR, SFT_CURVE_COSINE, SFT_CURVE_1_SQRT } sft_curve;

/* transformers' scheduler settings (lr_scheduler_kwargs); zero = its default */
typedef struct sft_schedule_desc {
    sft_schedule type;
    int64_t      warmup_steps, total_steps;
    double       num_cycles;        /* cosine 0.5, restarts 1                      */
    double       power, lr_end;     /* polynomial: 1, 1e-7                         */
    double       min_lr, min_lr_rate;                 /* cosine_with_min_lr (one)  */
    int64_t      num_stable_steps, num_decay_steps;   /* warmup_stable_decay       */
    sft_curve    warmup_type, decay_type;         /* warmup_stable_decay       */
    double       min_lr_ratio;      /* warmup_stable_decay                          */
    double       warmup_lr_rate;    /* cosine_warmup_with_min_lr; 0 = unset (None)  */
    double       factor;            /* plateau: 0.1                                 */
    int          patience;          /* plateau: 10 (negative: 0)                    */
    double       threshold;         /* plateau: 1e-4 (relative, mode min)           */
} sft_schedule_desc;

/* sft_schedule_from_name: transformers' lr_scheduler_type names ("linear",
   "cosine", ..., "reduce_lr_on_plateau"); sft_curve_from_name: "linear",
   "cosine", "1-sqrt". An unknown name is SFT_ERR_ARG naming the valid ones. */
SFTDEF sft_status  sft_schedule_from_name(const char *name, sft_schedule *out);
SFTDEF const char *sft_schedule_name(sft_schedule type);
SFTDEF sft_status  sft_curve_from_name(const char *name, sft_curve *out);
/* sft_schedule_lr: the learning rate of optimizer step `step` (0-based) for base
   lr, as transformers' LambdaLR gives it. Not for REDUCE_ON_PLATEAU. */
SFTDEF sft_status sft_schedule_lr(const sft_schedule_desc *desc, double base_lr, int64_t step, double *lr);
/* reduce-on-plateau, as torch.optim.lr_scheduler.ReduceLROnPlateau (mode min):
   feed each evaluation's metric; returns the learning rate from then on. */
typedef struct sft_plateau { double lr, best; int bad, started; } sft_plateau;
SFTDEF double sft_plateau_step(sft_plateau *p, const sft_schedule_desc *desc, double metric);

/* ============================================================================
   === trainer
   The SFTTrainer loop: epochs or max_steps, micro-batches of
   per_device_train_batch_size, gradient accumulation windows whose loss is
   the tokens' summed cross-entropy over the window's trained-token count
   (num_items_in_batch), so a window equals one big batch; clipping, the
   optimizer step, then the schedule; a log entry per logging_steps. Driven step
   by step (sft_trainer_step, e.g. a few per frame in a host program) or to the
   end (sft_train).

   Checkpoints: output_dir/checkpoint-N/ holds what a run needs to go on:
     adapter_model.safetensors, adapter_config.json   the adapters as PEFT saves
         them ("default" at the top, others in a folder of their name); prompt
         tuning as PEFT's PROMPT_TUNING adapter; full fine-tuning as a
         transformers model folder (model.safetensors, config.json)
     optimizer.safetensors   AdamW's moments (or 8-bit codes) and step counts
     trainer_state.json      Hugging Face's layout (global_step, epoch,
                             log_history, best_metric, best_model_checkpoint, ...)
     sft_state.json          the data position, running sums and schedule state,
                             and what the run trains (checked on resume)
   A checkpoint is written into output_dir/tmp-checkpoint-N, every file synced,
   then renamed into place: a failure anywhere leaves the earlier checkpoints as
   they were and the run able to go on. save_total_limit deletes the oldest but
   never the best. Resuming restores all of it: the rest of the run is
   bit-identical to one that never stopped (the random streams are keyed by step,
   not drawn in sequence). torch's optimizer.pt/scheduler.pt/rng_state.pth are not
   written (they are pickles); sft_state.json carries their content. */

typedef struct sft_log_entry {
    int     is_eval;            /* an evaluation: loss etc. are eval_loss, eval_... */
    int64_t global_step;
    double  epoch;              /* e + (micro-batch + 1) / micro-batches per epoch */
    double  loss;               /* mean of the steps since the last log; a NaN/Inf micro-batch
                                   loss counts as the mean since the last log (transformers'
                                   logging_nan_inf_filter)                         */
    double  grad_norm;          /* before clipping, of the last step                */
    double  learning_rate;      /* the one the last step used                       */
    int64_t num_tokens;         /* tokens seen so far                               */
    double  mean_token_accuracy;/* when token_metrics: argmax == label over trained tokens,
                                   averaged over micro-batches as TRL does        */
    double  entropy;            /* when token_metrics: mean next-token entropy, likewise */
} sft_log_entry;

typedef struct sft_step_info sft_step_info;   /* one step's figures (below) */

/* the optimizer (TrainingArguments.optim) */
typedef enum sft_optim {
    SFT_OPTIM_ADAMW_TORCH = 0,  /* "adamw_torch", "adamw_torch_fused" (the same numbers)        */
    SFT_OPTIM_ADAMW_8BIT        /* "adamw_bnb_8bit", "adamw_8bit", "paged_adamw_8bit": 8-bit state */
} sft_optim;
SFTDEF sft_status sft_optim_from_name(const char *name, sft_optim *out);

/* A loss of the host's own (transformers' compute_loss_func): logits [B, T, V]
   (a step tensor in the graph), labels [B, T] unshifted as the model takes them
   (-100 = ignored; both on the model's device), num_items_in_batch the accumulation window's label count.
   Build *loss, a scalar, from sft ops on logits so backward reaches the
   weights; it is used as is (not divided by the accumulation steps). */
typedef sft_status (*sft_compute_loss_fn)(sft_context *ctx, sft_tensor *logits, sft_tensor *labels,
                                          int64_t num_items_in_batch, void *user, sft_tensor **loss);

typedef struct sft_train_config {
    double         num_train_epochs;            /* 0 = 3                                 */
    int64_t        max_steps;                   /* > 0: overrides the epochs             */
    int            per_device_train_batch_size; /* 0 = 8                                 */
    int            gradient_accumulation_steps; /* 0 = 1                                 */
    double         learning_rate;               /* 0 = 2e-5 (TRL's default)              */
    sft_schedule   lr_scheduler_type;           /* 0 = linear                            */
    sft_schedule_desc lr_scheduler_kwargs;      /* num_cycles, power, ...                */
    int64_t        warmup_steps;
    double         warmup_ratio;                /* used when warmup_steps is 0           */
    double         weight_decay;
    double         adam_beta1, adam_beta2, adam_epsilon;  /* 0 = 0.9, 0.999, 1e-8       */
    double         max_grad_norm;               /* 0 = 1.0; negative = no clipping       */
    sft_optim      optim;                       /* 0 = AdamW (torch)                     */
    int64_t        optim_min_8bit_size;         /* 8-bit: smaller tensors keep f32 state;
                                                   0 = 4096 (bitsandbytes' min_8bit_size) */
    int            full_finetuning;             /* train every weight of a dense f32 model
                                                   (a model without adapters); decay skips
                                                   biases and norm weights                */
    sft_compute_loss_fn compute_loss;           /* NULL: shifted cross-entropy           */
    int            stop_on_nonfinite_loss;      /* a NaN/Inf micro-batch loss ends the step
                                                   with SFT_ERR_NUMERIC (the window is
                                                   dropped, state stays resumable)        */
    int            logging_steps;               /* 0 = 10 (TRL)                           */
    int            logging_nan_inf_filter;      /* 0 = on; -1 = off                      */
    int            sequential;                  /* 1: rows in order (no epoch shuffle)   */
    uint64_t       seed;                        /* 0 = 42                                */
    int            gradient_checkpointing;
    float          label_smoothing_factor;      /* as transformers' LabelSmoother: each
                                                   micro-batch's mean over its targets    */
    float          neftune_noise_alpha;         /* NEFTune, training only (0 = off)       */
    int            token_metrics;               /* log mean_token_accuracy and entropy (counted in the fused loss) */
    sft_dataset   *eval_dataset;                /* NULL: the train dataset's eval split, if any */
    int            eval_steps;                  /* evaluate every N steps (0 = never)    */
    int            eval_each_epoch;             /* evaluate at the end of every epoch    */
    int            eval_on_start;               /* evaluate before the first step        */
    int            per_device_eval_batch_size;  /* 0 = 8                                 */
    const char    *metrics_path;                /* append every log entry as a JSON line */
    /* checkpoints (see "trainer: checkpoints" below) */
    const char    *output_dir;                  /* checkpoint-N folders go here            */
    int            save_steps;                  /* save every N steps (0 = not by steps)   */
    int            save_each_epoch;             /* save at the end of every epoch          */
    int            save_total_limit;            /* keep the newest N (and the best); 0 = all */
    int            load_best_model_at_end;      /* the best checkpoint's weights at the end */
    const char    *metric_for_best_model;       /* "loss" (default), "mean_token_accuracy",
                                                   "entropy"; "eval_" prefix optional     */
    int            greater_is_better;           /* 0 = transformers' rule (false for loss,
                                                   true otherwise); 1 true; -1 false       */
    const char    *resume_from_checkpoint;      /* a checkpoint folder, or "last": the newest
                                                   checkpoint-N in output_dir             */
    sft_tensor    *prompt_embeddings;           /* prompt tuning: these [P, D] virtual tokens
                                                   go in front of every row and are trained
                                                   (with or without adapters)          */
    void         (*on_log)(const sft_log_entry *entry, void *user);
    int          (*on_step_end)(const sft_step_info *info, void *user);  /* nonzero: stop */
    void         (*on_evaluate)(const sft_log_entry *entry, void *user);
    void         (*on_save)(const char *checkpoint_dir, void *user);
    void          *user;                        /* passed to every callback                */
} sft_train_config;

typedef struct sft_trainer sft_trainer;

struct sft_step_info {
    int64_t global_step, max_steps;
    double  epoch, loss, grad_norm, learning_rate;
    int64_t num_items_in_batch, micro_batches;
    int     done;                /* max_steps reached, or cancelled */
    int     cancelled;           /* sft_trainer_cancel or on_step_end asked to stop */
};

typedef struct sft_train_output {
    int64_t global_step;
    double  train_loss;          /* mean of every step's loss                         */
    double  train_runtime, train_samples_per_second, train_steps_per_second;
    double  total_flos;          /* transformers' estimate: 6 x tokens x parameters   */
    int     cancelled;           /* stopped early (a checkpoint was saved if output_dir) */
} sft_train_output;

/* sft_trainer_create: a trainer for the model's trainable tensors (its adapters'
   A, B and magnitudes; set with sft_model_add_lora or load_adapter). Settings
   are checked here, with messages naming the field. */
SFTDEF sft_status sft_trainer_create(sft_model *model, sft_dataset *train, const sft_train_config *config, sft_trainer **out);
SFTDEF void       sft_trainer_destroy(sft_trainer *tr);
/* sft_trainer_step: one optimizer step (one accumulation window), then the
   log, evaluation and checkpoint the settings ask for at that step. After a
   cancel it does nothing and reports done and cancelled. */
SFTDEF sft_status sft_trainer_step(sft_trainer *tr, sft_step_info *info);
/* sft_trainer_evaluate: an evaluation now (entry may be NULL). */
SFTDEF sft_status sft_trainer_evaluate(sft_trainer *tr, sft_log_entry *entry);
/* sft_trainer_save: a checkpoint of the current step in output_dir now. */
SFTDEF sft_status sft_trainer_save(sft_trainer *tr);
/* sft_trainer_cancel: ask the trainer to stop at the next step boundary; safe
   from another thread or a callback. The trainer stays whole: save, resume. */
SFTDEF void       sft_trainer_cancel(sft_trainer *tr);
/* sft_trainer_progress: where the run stands (global_step, max_steps, epoch, the
   last step's loss, grad_norm and learning rate). */
SFTDEF void       sft_trainer_progress(const sft_trainer *tr, sft_step_info *info);
/* sft_train: steps until max_steps (or a cancel: then a checkpoint is saved when
   output_dir is set); with load_best_model_at_end the best checkpoint's weights
   are loaded at the end. */
SFTDEF sft_status sft_train(sft_model *model, sft_dataset *train, const sft_train_config *config, sft_train_output *out);
/* sft_trainer_optimizer: the trainer's optimizer (its parameters in model order: per
   layer and projection, A then B then magnitude). */
SFTDEF sft_optimizer *sft_trainer_optimizer(sft_trainer *tr);

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
   With SFT_CUDA, tensors, 4-bit weights, layers, models and optimizers can live
   on SFT_DEVICE_CUDA and every operator runs there (sft_cuda.cuh says how each
   compares with the CPU). sft_cuda_available: 1 if this build has the CUDA
   backend and a device answers. */
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
#include <dirent.h>
#include <time.h>
#include <ctype.h>
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
#  define SFT__TARGET_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")))
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

/* Helpers the CUDA kernels share (sft_cuda.cuh calls them on the device, so the
   CPU tests cover the same code) are marked SFT__HD: __host__ __device__ under
   nvcc, nothing otherwise. Inside them SFT__MUL/SFT__ADD round each operation
   on its own on both sides (SFT__DMUL/SFT__DADD in double): nvcc would fuse
   a * b + c into one FMA in device code, which C99 compilers here never do. */
#if defined(__CUDACC__)
#  define SFT__HD __host__ __device__
#else
#  define SFT__HD
#endif
#if defined(__CUDA_ARCH__)
#  define SFT__MUL(a, b) __fmul_rn(a, b)
#  define SFT__ADD(a, b) __fadd_rn(a, b)
#  define SFT__DMUL(a, b) __dmul_rn(a, b)
#  define SFT__DADD(a, b) __dadd_rn(a, b)
#else
#  define SFT__MUL(a, b) ((a) * (b))
#  define SFT__ADD(a, b) ((a) + (b))
#  define SFT__DMUL(a, b) ((a) * (b))
#  define SFT__DADD(a, b) ((a) + (b))
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
        "SFT_ERR_UNSUPPORTED", "SFT_ERR_NUMERIC"};
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

typedef struct sft__cpu_features { int probed, avx2_fma, avx512, avx512_bf16; } sft__cpu_features;
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
        if (sft__cpu.avx512 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) sft__cpu.avx512_bf16 = (a >> 5) & 1;   /* vdpbf16ps */
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
typedef struct sft__hblock sft__hblock;
typedef struct sft__arena {
    sft_context      *ctx;
    sft_device        device;
    sft__arena_block  blocks[SFT__ARENA_MAX_BLOCKS];
    int               n_blocks;
    int               cur;      /* the block allocations come from                   */
    size_t            offset;   /* bytes before blocks[cur] (their capacities summed) */
    size_t            high_water; /* most bytes in use at once since the last reset  */
    sft__hblock      *live_head, *live_tail;  /* its heap blocks, oldest first (CPU)  */
} sft__arena;
typedef struct sft__arena_mark { int cur; size_t used, offset; uint64_t heap_seq; } sft__arena_mark;

/* The step heap's cache: free blocks by size class (see "memory: the step heap"). */
#define SFT__HEAP_CLASSES 512
typedef struct sft__heap {
    sft__hblock *free[SFT__HEAP_CLASSES];
    size_t       live, cached;        /* bytes handed out now; bytes waiting in the cache  */
    uint64_t     seq, step;           /* allocation counter; steps begun                   */
    int32_t      live_n[SFT__HEAP_CLASSES], peak_n[SFT__HEAP_CLASSES];  /* blocks per class:
                                         alive now, most alive at once this step          */
} sft__heap;

typedef struct sft__pool sft__pool;
typedef struct sft__node sft__node;

/* profile rows: one per operator, then these */
#define SFT__PROF_ADAPTERS 16
#define SFT__PROF_OPTIMIZER 17
#define SFT__PROF_ROWS 18

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
    sft__heap   heap;            /* large CPU step tensors, given back as soon as they die */
    int         in_scratch;      /* operators allocate from scratch (inside a segment) */
    int         transient;       /* step tensors made now die with their producer's backward */
    sft__node  *tape;            /* the newest recorded node; each links to the one before */
    int         grad_enabled;
    int         in_segment;
    /* GEMM packing buffers, one slice per thread, made on first use */
    float      *gemm_pack;
    /* attention tiles and their packing buffers, one slice per thread, made on first use */
    float      *attn_scratch;
    /* a memory plan's dry run: every allocation happens, the costly arithmetic
       (GEMMs, attention, cross-entropy) does not */
    int         plan_only;
    /* bf16 GEMMs round to bf16 and multiply in f32 even where the CPU has
       vdpbf16ps (the tests compare the two) */
    int         bf16_emulated;
    /* profiling (see sft_profile_enable): per row, calls, seconds and flops */
    int         profiling;
    double      prof_s[2][SFT__PROF_ROWS], prof_flop[2][SFT__PROF_ROWS];
    int64_t     prof_calls[SFT__PROF_ROWS];
    /* the CUDA backend's state (sft_cuda.cuh: block sizes, cuBLASLt) and its
       accounting of device bytes */
    void       *cuda;
    size_t      device_bytes_in_use, device_peak_bytes;
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
   while waiting for the workers to finish.

   The caller never waits for a worker that has not started: when another
   program holds a core, a worker may not run for milliseconds. A job's state
   word counts the workers that joined and that finished; once the caller has
   run out of tasks it closes the job (a late worker skips it) and waits only for
   those that joined. */

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
    uint64_t        state;      /* atomic: the job's generation, closed bit,
                                   joined and finished counts (SFT__JOB_*)      */
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

/* the job state word: finished (bits 0-15), joined (16-31), closed (32), the
   job's generation (33-63) */
#define SFT__JOB_FINISHED     ((uint64_t)1)
#define SFT__JOB_JOINED       ((uint64_t)1 << 16)
#define SFT__JOB_CLOSED       ((uint64_t)1 << 32)
#define SFT__JOB_GEN(s)       ((uint32_t)((s) >> 33))
#define SFT__JOB_ALL_DONE(s)  ((((s) >> 16) & 0xffff) == ((s) & 0xffff))

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

/* sft__pool_join: take part in job gen unless it is over or closed */
static void sft__pool_join(sft__pool *p, uint64_t gen, int thread) {
    uint64_t st = __atomic_load_n(&p->state, __ATOMIC_ACQUIRE), after;
    for (;;) {
        if (SFT__JOB_GEN(st) != (uint32_t)gen || (st & SFT__JOB_CLOSED)) return;
        if (__atomic_compare_exchange_n(&p->state, &st, st + SFT__JOB_JOINED, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) break;
    }
    sft__pool_drain(p, thread);
    after = __atomic_add_fetch(&p->state, SFT__JOB_FINISHED, __ATOMIC_ACQ_REL);
    if ((after & SFT__JOB_CLOSED) && SFT__JOB_ALL_DONE(after)) {
        pthread_mutex_lock(&p->mu);                 /* the caller may be asleep */
        if (p->waiting) pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

static void *sft__pool_worker(void *arg) {
    const sft__worker *w = (const sft__worker *)arg;
    sft__pool *p = w->pool;
    uint64_t seen = 0;
    for (;;) {
        seen = sft__pool_await_job(p, seen);
        if (__atomic_load_n(&p->quit, __ATOMIC_ACQUIRE)) break;
        sft__pool_join(p, seen, w->index);
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
    uint64_t gen, st;
    int spin;
    if (n_tasks <= 0) return;
    if (!p || n_tasks == 1) {
        for (t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    p->fn = fn; p->arg = arg; p->n_tasks = n_tasks;
    gen = __atomic_load_n(&p->generation, __ATOMIC_RELAXED) + 1;
    __atomic_store_n(&p->next, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->state, (uint64_t)(uint32_t)gen << 33, __ATOMIC_RELEASE);   /* open, nobody joined */
    __atomic_store_n(&p->generation, gen, __ATOMIC_RELEASE);                       /* publishes the job */
    pthread_mutex_lock(&p->mu);
    if (p->sleeping) pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    sft__pool_drain(p, 0);
    st = __atomic_or_fetch(&p->state, SFT__JOB_CLOSED, __ATOMIC_ACQ_REL);   /* no tasks left: late workers skip it */
    for (spin = 0; spin < SFT__POOL_SPIN && !SFT__JOB_ALL_DONE(st); spin++) {
        sft__cpu_relax();
        st = __atomic_load_n(&p->state, __ATOMIC_ACQUIRE);
    }
    if (!SFT__JOB_ALL_DONE(st)) {
        pthread_mutex_lock(&p->mu);
        p->waiting = 1;
        while (!SFT__JOB_ALL_DONE(__atomic_load_n(&p->state, __ATOMIC_ACQUIRE))) pthread_cond_wait(&p->done, &p->mu);
        p->waiting = 0;
        pthread_mutex_unlock(&p->mu);
    }
}

/* sft__seconds: a monotonic clock, for timings */
static double sft__seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
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

#define SFT__ARENA_MIN_BLOCK ((size_t)256 << 10)

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

/* ============================================================================
   === memory: the step heap
   Large step tensors on the CPU (activations, gradients, kernels' temporaries:
   at least SFT__HEAP_MIN bytes) come from a heap of cached blocks instead of
   the bump arena, so they can be given back the moment they die: a kernel's
   temporaries when it returns, an activation and its gradient once the
   backward of the node that made it has run. A block given back goes to a
   cache kept by size class (eight classes per power of two, so a block is at
   most 1/8 larger than asked) and is handed out again by the next request of
   its class. Blocks the cache kept through a whole step unused are returned to
   the allocator when the next step begins. So a steady step allocates nothing,
   and its peak is the most it had alive at once, not all it ever made.

   Each block belongs to the arena that handed it out (step or scratch) while
   alive: resetting an arena, or releasing it to a mark, gives back its blocks
   made since, as it does with its own memory. */

#define SFT__HEAP_MIN ((size_t)64 << 10)

struct sft__hblock {                  /* the header in front of a block's data */
    sft__hblock *prev, *next;         /* the owner's live list, or its class's free list */
    sft__arena  *owner;               /* NULL while cached                             */
    size_t       size;                /* usable bytes: the class's size                */
    uint64_t     seq, step;           /* when it was last handed out                   */
    int          cls;
};
#define SFT__HBLOCK_HEADER (((sizeof(sft__hblock) + SFT__ALIGN - 1) / SFT__ALIGN) * SFT__ALIGN)

/* class c covers sizes up to (8 + c % 8) * 2^(c / 8 + 13): 64 KiB and up */
static int sft__heap_class(size_t size) {
    int c = 0;
    while (c < SFT__HEAP_CLASSES - 1 && ((size_t)(8 + c % 8) << (c / 8 + 13)) < size) c++;
    return c;
}

static size_t sft__heap_class_size(int c) { return (size_t)(8 + c % 8) << (c / 8 + 13); }

/* sft__heap_footprint: what the heap holds after a step from an empty cache,
   the most blocks of each class alive at once: the memory a steady step of
   the same shape keeps (the memory plan's measure). */
static size_t sft__heap_footprint(const sft__heap *h) {
    size_t total = 0;
    int c;
    for (c = 0; c < SFT__HEAP_CLASSES; c++) total += (size_t)h->peak_n[c] * sft__heap_class_size(c);
    return total;
}

static void sft__hblock_unlink(sft__hblock **head, sft__hblock **tail, sft__hblock *b) {
    if (b->prev) b->prev->next = b->next; else *head = b->next;
    if (b->next) b->next->prev = b->prev; else if (tail) *tail = b->prev;
    b->prev = b->next = NULL;
}

/* sft__heap_alloc: a block of at least size bytes owned by arena a */
static sft_status sft__heap_alloc(sft__arena *a, size_t size, void **out) {
    sft_context *ctx = a->ctx;
    sft__heap *h = &ctx->heap;
    int c = sft__heap_class(size);
    sft__hblock *b = h->free[c];
    *out = NULL;
    if (sft__heap_class_size(c) < size)
        return sft__fail(SFT_ERR_NOMEM, "step heap: request of %zu bytes", size);
    if (b) {
        sft__hblock_unlink(&h->free[c], NULL, b);
        h->cached -= b->size;
    } else {
        b = (sft__hblock *)sft__alloc(ctx, SFT__HBLOCK_HEADER + sft__heap_class_size(c));
        if (!b) return sft__fail(SFT_ERR_NOMEM, "step heap: cannot allocate %zu bytes", sft__heap_class_size(c));
        b->size = sft__heap_class_size(c);
        b->cls = c;
    }
    b->owner = a;
    b->seq = h->seq++;
    b->step = h->step;
    b->prev = a->live_tail; b->next = NULL;
    if (a->live_tail) a->live_tail->next = b; else a->live_head = b;
    a->live_tail = b;
    h->live += b->size;
    if (++h->live_n[c] > h->peak_n[c]) h->peak_n[c] = h->live_n[c];
    *out = (unsigned char *)b + SFT__HBLOCK_HEADER;
    return SFT_OK;
}

/* sft__heap_give_back: data (from sft__heap_alloc) goes back to the cache */
static void sft__heap_give_back(sft_context *ctx, void *data) {
    sft__hblock *b = (sft__hblock *)(void *)((unsigned char *)data - SFT__HBLOCK_HEADER);
    sft__heap *h = &ctx->heap;
    sft__hblock_unlink(&b->owner->live_head, &b->owner->live_tail, b);
    b->owner = NULL;
    h->live -= b->size;
    h->live_n[b->cls]--;
    h->cached += b->size;
    b->next = h->free[b->cls];
    if (b->next) b->next->prev = b;
    h->free[b->cls] = b;
}

/* the arena's blocks handed out at or after seq go back to the cache */
static void sft__heap_release_since(sft__arena *a, uint64_t seq) {
    while (a->live_tail && a->live_tail->seq >= seq)
        sft__heap_give_back(a->ctx, (unsigned char *)a->live_tail + SFT__HBLOCK_HEADER);
}

/* sft__heap_trim: free the cached blocks no request took during the last step */
static void sft__heap_trim(sft_context *ctx) {
    sft__heap *h = &ctx->heap;
    int c;
    for (c = 0; c < SFT__HEAP_CLASSES; c++) {
        sft__hblock *b = h->free[c], *next;
        for (; b; b = next) {
            next = b->next;
            if (b->step == h->step) continue;
            sft__hblock_unlink(&h->free[c], NULL, b);
            h->cached -= b->size;
            sft__free(ctx, b);
        }
    }
}

static void sft__heap_free_all(sft_context *ctx) {
    int dev;
    for (dev = 0; dev < SFT_DEVICE_COUNT; dev++) {
        sft__heap_release_since(&ctx->arena[dev], 0);
        sft__heap_release_since(&ctx->scratch[dev], 0);
    }
    ctx->heap.step += 2;               /* nothing counts as used in the last step */
    sft__heap_trim(ctx);
}

/* sft__arena_alloc_big: large CPU requests from the heap, the rest from the arena */
static sft_status sft__arena_alloc_big(sft__arena *a, size_t size, int *from_heap, void **out) {
    *from_heap = a->device == SFT_DEVICE_CPU && size >= SFT__HEAP_MIN;
    if (*from_heap) return sft__heap_alloc(a, size, out);
    return sft__arena_alloc(a, size, out);
}

/* sft__arena_footprint: what the arena keeps for steady steps like the last one:
   one block of its high-water mark, or of the smallest block size */
static size_t sft__arena_footprint(const sft__arena *a) {
    if (!a->high_water) return 0;
    return a->high_water > SFT__ARENA_MIN_BLOCK ? a->high_water : SFT__ARENA_MIN_BLOCK;
}

static sft__arena_mark sft__arena_get_mark(const sft__arena *a) {
    sft__arena_mark m;
    m.cur = a->cur; m.offset = a->offset;
    m.used = a->cur < a->n_blocks ? a->blocks[a->cur].used : 0;
    m.heap_seq = a->ctx->heap.seq;
    return m;
}

static void sft__arena_release(sft__arena *a, sft__arena_mark m) {
    a->cur = m.cur; a->offset = m.offset;
    if (m.cur < a->n_blocks) a->blocks[m.cur].used = m.used;
    sft__heap_release_since(a, m.heap_seq);
}

/* sft__arena_reset: empty the arena; merge several blocks into one of the
   high-water size so the next step of the same shape fits without allocating. */
static void sft__arena_reset(sft__arena *a) {
    sft__heap_release_since(a, 0);
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
#ifdef SFT_CUDA
static void sft__cuda_context_free(sft_context *ctx);   /* sft_cuda.cuh: its state, cuBLASLt */
#endif

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
    sft__heap_free_all(ctx);
    for (dev = 0; dev < SFT_DEVICE_COUNT; dev++) {
        sft__arena_free_blocks(&ctx->arena[dev]);
        sft__arena_free_blocks(&ctx->scratch[dev]);
    }
#ifdef SFT_CUDA
    sft__cuda_context_free(ctx);
#endif
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
    s.arena_capacity = sft__arena_capacity(&ctx->arena[SFT_DEVICE_CPU]) + sft__arena_capacity(&ctx->scratch[SFT_DEVICE_CPU]) +
                       ctx->heap.live + ctx->heap.cached;
    s.device_bytes_in_use = ctx->device_bytes_in_use; s.device_peak_bytes = ctx->device_peak_bytes;
    s.device_arena_capacity = sft__arena_capacity(&ctx->arena[SFT_DEVICE_CUDA]) + sft__arena_capacity(&ctx->scratch[SFT_DEVICE_CUDA]);
    return s;
}

SFTDEF void sft_context_mem_reset_peak(sft_context *ctx) {
    if (!ctx) return;
    ctx->peak_bytes = ctx->bytes_in_use;
    ctx->device_peak_bytes = ctx->device_bytes_in_use;
}

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
   sft_cuda.cuh, present only when the implementation is compiled with SFT_CUDA.
   The host never reads device memory directly: it copies (sft__device_copy),
   and everything else on a device runs as a kernel (the CUDA emulator under
   tests/cuda_emu faults on a host access, as a GPU would). */

#ifdef SFT_CUDA
static sft_status sft__cuda_alloc(sft_context *ctx, size_t size, void **out);
static void       sft__cuda_free(sft_context *ctx, void *ptr);
static sft_status sft__cuda_copy(void *dst, sft_device dst_dev, const void *src, sft_device src_dev, size_t n);
static sft_status sft__cuda_memset0(void *dst, size_t n);
/* the CUDA work sft.h's sections start outside the operators (sft_cuda.cuh) */
struct sft__wref;
struct sft__adam_k;
static sft_status sft__cuda_dequantize(sft_context *ctx, const sft_qweight *q, float *out);
static sft_status sft__cuda_dora_norm(sft_context *ctx, const struct sft__wref *w, const sft_tensor *A, const sft_tensor *B, float s,
                                      float *norm);
static sft_status sft__cuda_adamw(sft_optimizer *o, int i, struct sft__adam_k k, int kind);
static sft_status sft__cuda_grad_sq(sft_context *ctx, const float *g, int64_t n, double *out);
static sft_status sft__cuda_scale_inplace(float *x, int64_t n, float s);
static size_t     sft__cuda_workspace_bytes(void);
static sft_status sft__cuda_attn_cached(sft_context *ctx, const sft_model_config *c, const float *q, const float *kc, const float *vc,
                                        int64_t pos0, int64_t n, float *out);
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
#define SFT__T_HEAP  8u  /* data is a step-heap block                         */
#define SFT__T_TRANSIENT 16u /* data and grad die with the producer's backward  */

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
    int from_heap;
    *out = NULL;
    SFT__TRY(sft__check_new_shape("step tensor", dtype, ndim, shape));
    SFT__TRY(sft__arena_alloc(sft__cur_arena(ctx, SFT_DEVICE_CPU), sizeof(sft_tensor), &mem));
    t = (sft_tensor *)mem;
    sft__tensor_init(t, ctx, device, dtype, ndim, shape);
    t->flags = SFT__T_ARENA | (ctx->transient ? SFT__T_TRANSIENT : 0u);
    SFT__TRY(sft__arena_alloc_big(sft__cur_arena(ctx, device), sft_tensor_nbytes(t), &from_heap, &t->data));
    if (from_heap) t->flags |= SFT__T_HEAP;
    *out = t;
    return SFT_OK;
}

/* sft__tensor_release: a step tensor's data goes back to the step heap now (a
   no-op for data in an arena, which lives until the step ends); t must not be
   read again. */
static void sft__tensor_release(sft_context *ctx, sft_tensor *t) {
    if (!t || !(t->flags & SFT__T_HEAP)) return;
    sft__heap_give_back(ctx, t->data);
    t->data = NULL;
    t->flags &= ~SFT__T_HEAP;
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

/* sft__bf16_bits: f rounded to bf16 (nearest even, NaN kept quiet with its
   sign); shared with the CUDA kernels, which round GEMM operands the same way */
static SFT__HD uint16_t sft__bf16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN, sign kept */
    u += 0x7fffu + ((u >> 16) & 1);                                            /* round to nearest even */
    return (uint16_t)(u >> 16);
}

SFTDEF uint16_t sft_f32_to_bf16(float f) { return sft__bf16_bits(f); }

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

/* sft__st_entry_staged: an entry for a tensor on any device; one on a device is
   copied to the host first, into *copy (free it with sft__free after saving) */
static sft_status sft__st_entry_staged(sft_context *ctx, const char *name, const sft_tensor *t, sft_st_entry *e, void **copy) {
    size_t n = sft_tensor_nbytes(t);
    sft_status s;
    *e = sft_st_entry_from_tensor(name, t);
    *copy = NULL;
    if (t->device == SFT_DEVICE_CPU) return SFT_OK;
    if (!(*copy = sft__alloc(ctx, n ? n : 1))) return sft__fail(SFT_ERR_NOMEM, "save: '%s': %zu bytes to copy off the device", name, n);
    if ((s = sft__device_copy(*copy, SFT_DEVICE_CPU, t->data, t->device, n)) != SFT_OK) { sft__free(ctx, *copy); *copy = NULL; return s; }
    e->data = *copy;
    return SFT_OK;
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

/* sft__philox: the ten rounds (sft_philox's body, shared with the CUDA kernels) */
static SFT__HD void sft__philox(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]) {
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

SFTDEF void sft_philox(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]) {
    sft__philox(key, counter_hi, counter_lo, out);
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

/* Dropout masks: one bit per element (1 = kept), element i in bit i % 64 of
   word i / 64. Element i takes word (i % 64) / 16 of the Philox block at counter
   (i / 64) * 16 + i % 16, so every Philox call serves four elements and the 16
   calls of one mask word sit side by side: a SIMD path computes them in 16
   lanes and its four compare masks are the word's four 16-bit quarters. An
   element is kept when (word >> 8) >= ceil(p * 2^24), which is exactly "its
   uniform (word >> 8) / 2^24 is >= p" (the 24-bit uniform of sft_rng_uniform).
   A mask depends on (key, p, i) alone: any thread, any order, CPU or CUDA. */

static uint32_t sft__dropout_threshold(float p) {
    if (!(p > 0.0f)) return 0;
    if (p >= 1.0f) return (uint32_t)1 << 24;         /* no 24-bit value reaches it: all dropped */
    return (uint32_t)ceil((double)p * 16777216.0);
}

/* sft__dropout_word: mask word w (elements 64w .. 64w + 63). The reference for
   the SIMD versions below; the CUDA kernel calls it too. */
static SFT__HD uint64_t sft__dropout_word(uint64_t key, uint32_t threshold, uint64_t w) {
    uint64_t m = 0;
    int lane, q;
    for (lane = 0; lane < 16; lane++) {
        uint32_t r[4];
        sft__philox(key, 0, w * 16 + (uint64_t)lane, r);
        for (q = 0; q < 4; q++) m |= (uint64_t)((r[q] >> 8) >= threshold) << (16 * q + lane);
    }
    return m;
}

static void sft__dropout_words_portable(uint64_t key, uint32_t threshold, int64_t w0, int64_t w1, uint64_t *bits) {
    int64_t w;
    for (w = w0; w < w1; w++) bits[w] = sft__dropout_word(key, threshold, (uint64_t)w);
}

#ifdef SFT__SIMD_X86
/* The Philox round constants, shared by the vector versions. */
#define SFT__PHILOX_M0 0xD2511F53u
#define SFT__PHILOX_M1 0xCD9E8D57u
#define SFT__PHILOX_W0 0x9E3779B9u
#define SFT__PHILOX_W1 0xBB67AE85u

SFT__AVX512_WARNINGS_OFF
/* lo and hi halves of the 32 x 32-bit products a * m in 16 lanes */
SFT__TARGET_AVX512 static void sft__mul_hilo_avx512(__m512i a, __m512i m, __m512i *lo, __m512i *hi) {
    __m512i even = _mm512_mul_epu32(a, m), odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
    *lo = _mm512_mullo_epi32(a, m);
    *hi = _mm512_mask_blend_epi32((__mmask16)0xAAAA, _mm512_srli_epi64(even, 32), odd);
}

/* 16 Philox blocks at once: the counters of one mask word (w * 16 is a multiple
   of 16, so the low counter words never carry inside a word). */
SFT__TARGET_AVX512 static void sft__dropout_words_avx512(uint64_t key, uint32_t threshold, int64_t w0, int64_t w1,
                                                          uint64_t *bits) {
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i m0 = _mm512_set1_epi32((int)SFT__PHILOX_M0), m1 = _mm512_set1_epi32((int)SFT__PHILOX_M1);
    const __m512i thr = _mm512_set1_epi32((int)threshold);
    int64_t w;
    for (w = w0; w < w1; w++) {
        uint64_t ctr = (uint64_t)w * 16;
        uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
        __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32((int)(uint32_t)ctr), lanes);
        __m512i c1 = _mm512_set1_epi32((int)(uint32_t)(ctr >> 32)), c2 = _mm512_setzero_si512(), c3 = c2;
        uint64_t q0, q1, q2, q3;
        int r;
        for (r = 0; r < 10; r++) {
            __m512i lo0, hi0, lo1, hi1;
            sft__mul_hilo_avx512(c0, m0, &lo0, &hi0);
            sft__mul_hilo_avx512(c2, m1, &lo1, &hi1);
            c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32((int)k0));
            c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32((int)k1));
            c1 = lo1; c3 = lo0;
            k0 += SFT__PHILOX_W0; k1 += SFT__PHILOX_W1;
        }
        q0 = _mm512_cmpge_epu32_mask(_mm512_srli_epi32(c0, 8), thr);
        q1 = _mm512_cmpge_epu32_mask(_mm512_srli_epi32(c1, 8), thr);
        q2 = _mm512_cmpge_epu32_mask(_mm512_srli_epi32(c2, 8), thr);
        q3 = _mm512_cmpge_epu32_mask(_mm512_srli_epi32(c3, 8), thr);
        bits[w] = q0 | q1 << 16 | q2 << 32 | q3 << 48;
    }
}
SFT__AVX512_WARNINGS_ON

/* The AVX2 version: the word's 16 blocks as two halves of 8 lanes. */
SFT__TARGET_AVX2 static void sft__mul_hilo_avx2(__m256i a, __m256i m, __m256i *lo, __m256i *hi) {
    __m256i even = _mm256_mul_epu32(a, m), odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
    *lo = _mm256_mullo_epi32(a, m);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

SFT__TARGET_AVX2 static void sft__dropout_words_avx2(uint64_t key, uint32_t threshold, int64_t w0, int64_t w1,
                                                      uint64_t *bits) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_set1_epi32((int)SFT__PHILOX_M0), m1 = _mm256_set1_epi32((int)SFT__PHILOX_M1);
    const __m256i below = _mm256_set1_epi32((int)threshold - 1);   /* values are < 2^24: signed compare is exact */
    int64_t w;
    int half;
    for (w = w0; w < w1; w++) {
        uint64_t m = 0;
        for (half = 0; half < 2; half++) {
            uint64_t ctr = (uint64_t)w * 16 + (uint64_t)(8 * half);
            uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
            __m256i c[4];
            int r, q;
            c[0] = _mm256_add_epi32(_mm256_set1_epi32((int)(uint32_t)ctr), lanes);
            c[1] = _mm256_set1_epi32((int)(uint32_t)(ctr >> 32)); c[2] = _mm256_setzero_si256(); c[3] = c[2];
            for (r = 0; r < 10; r++) {
                __m256i lo0, hi0, lo1, hi1;
                sft__mul_hilo_avx2(c[0], m0, &lo0, &hi0);
                sft__mul_hilo_avx2(c[2], m1, &lo1, &hi1);
                c[0] = _mm256_xor_si256(_mm256_xor_si256(hi1, c[1]), _mm256_set1_epi32((int)k0));
                c[2] = _mm256_xor_si256(_mm256_xor_si256(hi0, c[3]), _mm256_set1_epi32((int)k1));
                c[1] = lo1; c[3] = lo0;
                k0 += SFT__PHILOX_W0; k1 += SFT__PHILOX_W1;
            }
            for (q = 0; q < 4; q++) {
                __m256i keep = _mm256_cmpgt_epi32(_mm256_srli_epi32(c[q], 8), below);
                m |= (uint64_t)(unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(keep)) << (16 * q + 8 * half);
            }
        }
        bits[w] = m;
    }
}
#endif

/* ============================================================================
   === autograd: nodes and the tape
   An operator is one node: its inputs, its output, what it saved, a few scalar
   parameters. The same node drives the forward kernel and, if recorded, the
   backward kernel, so a backend supplies both for an op id. */

typedef enum sft__op {
    SFT__OP_MATMUL, SFT__OP_ADD, SFT__OP_MUL, SFT__OP_SCALE, SFT__OP_RESHAPE, SFT__OP_EMBEDDING,
    SFT__OP_RMSNORM, SFT__OP_SILU, SFT__OP_SWIGLU, SFT__OP_ROPE, SFT__OP_ATTENTION, SFT__OP_CROSS_ENTROPY,
    SFT__OP_DROPOUT, SFT__OP_LINEAR_CE, SFT__OP_LINEAR, SFT__OP_PROMPT, SFT__OP_COUNT
} sft__op;

static const char *const sft__op_names[SFT__OP_COUNT] = {
    "matmul", "add", "mul", "scale", "reshape", "embedding", "rmsnorm", "silu", "swiglu", "rope", "attention",
    "cross_entropy", "dropout", "linear_cross_entropy", "linear", "prompt_tuning"};

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
    int            transient;     /* made with ctx->transient on: so is its recomputation */
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

/* --- profiling (see sft_profile_enable) ------------------------------------ */

static void sft__prof_add(sft_context *ctx, int row, int backward, double seconds, double flop) {
    ctx->prof_s[backward][row] += seconds;
    ctx->prof_flop[backward][row] += flop;
}

static double sft__linear_flops(const sft__node *n, int backward, double *adapters);   /* with the kernel */

/* sft__node_flops: the arithmetic a kernel does, counted for the GEMM-like ops
   (2 per multiply-add); 0 for the elementwise ones. */
static double sft__node_flops(const sft__node *n, int backward) {
    const sft_tensor *a = n->in[0];
    double adapters;
    switch (n->op) {
    case SFT__OP_MATMUL: {
        const sft_tensor *b = n->in[1];
        double M = (double)(n->i[0] ? a->shape[a->ndim - 1] : a->shape[a->ndim - 2]);
        double K = (double)(n->i[0] ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1]);
        double N = (double)(n->i[1] ? b->shape[b->ndim - 2] : b->shape[b->ndim - 1]);
        double f = 2.0 * (double)n->i[2] * M * N * K;
        return backward ? f * ((a->requires_grad != 0) + (b->requires_grad != 0)) : f;
    }
    case SFT__OP_LINEAR: return sft__linear_flops(n, backward, &adapters);
    case SFT__OP_ATTENTION: {     /* causal pairs; backward: dS, dP, dQ, dK, dV */
        double T = (double)a->shape[1], pairs = (double)a->shape[0] * (double)a->shape[2] * T * (T + 1) / 2;
        return (backward ? 8.0 : 4.0) * pairs * (double)a->shape[3];
    }
    case SFT__OP_LINEAR_CE: {     /* backward recomputes the logits, then d hidden (and d weight) */
        double NV = (double)sft_tensor_numel(n->in[2]) * (double)n->in[1]->shape[0], D = (double)n->in[1]->shape[1];
        return 2.0 * NV * D * (backward ? 1.0 + (n->in[0]->requires_grad != 0) + (n->in[1]->requires_grad != 0) : 1.0);
    }
    default: return 0.0;
    }
}

SFTDEF void sft_profile_enable(sft_context *ctx, int on) {
    if (!ctx) return;
    ctx->profiling = on != 0;
    memset(ctx->prof_s, 0, sizeof ctx->prof_s);
    memset(ctx->prof_flop, 0, sizeof ctx->prof_flop);
    memset(ctx->prof_calls, 0, sizeof ctx->prof_calls);
}

SFTDEF int sft_profile_read(const sft_context *ctx, sft_profile_entry *out, int cap) {
    int row, n = 0;
    if (!ctx) return 0;
    for (row = 0; row < SFT__PROF_ROWS; row++) {
        sft_profile_entry e;
        if (ctx->prof_s[0][row] <= 0.0 && ctx->prof_s[1][row] <= 0.0) continue;
        e.name = row < SFT__OP_COUNT ? sft__op_names[row] : row == SFT__PROF_ADAPTERS ? "adapters" : "optimizer";
        e.calls = ctx->prof_calls[row];
        e.forward_s = ctx->prof_s[0][row]; e.backward_s = ctx->prof_s[1][row];
        e.forward_flop = ctx->prof_flop[0][row]; e.backward_flop = ctx->prof_flop[1][row];
        if (out && n < cap) out[n] = e;
        n++;
    }
    return n;
}

SFTDEF size_t sft_profile_report(const sft_context *ctx, int64_t steps, double seconds, char *buf, size_t cap) {
    sft_profile_entry e[SFT__PROF_ROWS];
    int n = sft_profile_read(ctx, e, SFT__PROF_ROWS), i;
    double per = steps > 0 ? 1.0 / (double)steps : 0.0, held = 0.0;
    size_t len = 0;
    char line[160];
#define SFT__REPORT(...) do { int k_ = snprintf(line, sizeof line, __VA_ARGS__); \
        if (k_ > 0) { if (len + (size_t)k_ < cap) memcpy(buf + len, line, (size_t)k_ + 1); len += (size_t)k_; } } while (0)
    if (buf && cap) buf[0] = 0;
    SFT__REPORT("%-22s %10s %12s %12s %9s %7s\n", "op", "calls/step", "forward ms", "backward ms", "GFLOP/s", "share");
    for (i = 0; i < n; i++) {
        double t = e[i].forward_s + e[i].backward_s, flop = e[i].forward_flop + e[i].backward_flop;
        char gf[16];
        held += t;
        if (flop > 0.0 && t > 0.0) snprintf(gf, sizeof gf, "%.1f", flop / t / 1e9);
        else snprintf(gf, sizeof gf, "-");
        SFT__REPORT("%-22s %10.1f %12.1f %12.1f %9s %6.1f%%\n", e[i].name, (double)e[i].calls * per, 1e3 * e[i].forward_s * per,
                    1e3 * e[i].backward_s * per, gf, seconds > 0.0 ? 100.0 * t / seconds : 0.0);
    }
    SFT__REPORT("%-22s %10s %12.1f %12s %9s %6.1f%%\n", "other", "", 1e3 * (seconds - held) * per, "", "-",
                seconds > 0.0 ? 100.0 * (seconds - held) / seconds : 0.0);
    SFT__REPORT("%-22s %10s %12.1f %12s %9s %7s\n", "step", "", 1e3 * seconds * per, "", "", "");
#undef SFT__REPORT
    return len;
}

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
    if (ctx->plan_only && (n->op == SFT__OP_MATMUL || n->op == SFT__OP_CROSS_ENTROPY || n->op == SFT__OP_LINEAR_CE))
        return SFT_OK;
    k = backward ? be->backward[n->op] : be->forward[n->op];
    if (!k) return sft__fail(SFT_ERR_UNSUPPORTED, "%s: the %s backend has no %s kernel yet", sft__op_names[n->op], be->name,
                             backward ? "backward" : "forward");
    if (ctx->profiling && !ctx->plan_only) {
        double t0 = sft__seconds();
        sft_status s = k(ctx, n);
        sft__prof_add(ctx, (int)n->op, backward, sft__seconds() - t0, sft__node_flops(n, backward));
        if (!backward) ctx->prof_calls[n->op]++;
        return s;
    }
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
    sft__heap_trim(ctx);
    ctx->heap.step++;
    memset(ctx->heap.peak_n, 0, sizeof ctx->heap.peak_n);
}

static sft_status sft__segment_backward(sft_context *ctx, sft__node *n);

/* sft__release_transient: a transient tensor dies with its producer's backward:
   every node that read it was recorded later, so its backward has already run.
   Its gradient goes too (unless borrowed), and its data (unless a view). */
static void sft__release_transient(sft_context *ctx, sft_tensor *t) {
    if (!(t->flags & SFT__T_TRANSIENT)) return;
    if (t->grad && !(t->flags & SFT__T_ALIAS_GRAD) && (t->grad->flags & SFT__T_HEAP)) {
        sft__tensor_release(ctx, t->grad);
        t->grad = NULL;
    }
    if (!(t->flags & SFT__T_VIEW)) sft__tensor_release(ctx, t);
}

/* sft__backward_node: give the inputs that need one a gradient buffer, then run
   the node's backward (a kernel, or a segment's recomputation); then what only
   this backward needed is given back. */
static sft_status sft__backward_node(sft_context *ctx, sft__node *n) {
    int i, any = 0;
    if (n->segment) {
        for (i = 0; i < n->segment->n_out; i++) any |= n->segment->out[i]->grad != NULL;
        if (any) {
            for (i = 0; i < n->segment->n_in; i++)
                if (n->segment->in[i]->requires_grad) SFT__TRY(sft__ensure_grad(ctx, n->segment->in[i]));
            SFT__TRY(sft__segment_backward(ctx, n));
        }
        for (i = 0; i < n->segment->n_out; i++) sft__release_transient(ctx, n->segment->out[i]);
        return SFT_OK;
    }
    if (n->out->grad) {                         /* else nothing flowed back through it */
        for (i = 0; i < n->n_in; i++)
            if (n->in[i] && n->in[i]->requires_grad) SFT__TRY(sft__ensure_grad(ctx, n->in[i]));
        SFT__TRY(sft__dispatch(ctx, n, 1));
    }
    sft__tensor_release(ctx, n->saved);
    sft__release_transient(ctx, n->out);
    return SFT_OK;
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
    seg.fn = fn; seg.user = user; seg.n_in = n_in; seg.n_out = n_out; seg.transient = ctx->transient;
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
    int i, dev, prev_grad = ctx->grad_enabled, prev_transient = ctx->transient;
    void *mem;
    for (dev = 0; dev < SFT_DEVICE_COUNT; dev++) marks[dev] = sft__arena_get_mark(&ctx->scratch[dev]);
    ctx->in_scratch = 1;
    ctx->grad_enabled = 1;
    ctx->transient = seg->transient;
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
    ctx->transient = prev_transient;
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

/* A B operand stored in another form than f32 (a 4-bit or bf16 weight W
   [rows, cols]): the GEMMs decode it straight into their packed panels, so a
   whole f32 copy never exists. op(B) is W^T (y = x W^T) when trans, else W
   (dx = dy W). pack writes the panels [q0, q1) of nr columns starting at column
   n0 (nc columns in all; zeros past them), k in [k0, k0 + kc):
   dst[(q * kc + k) * nr + j] = op(B)(k0 + k, n0 + q * nr + j). */
typedef struct sft__bsrc sft__bsrc;
struct sft__bsrc {
    void (*pack)(const sft__bsrc *s, int64_t k0, int64_t kc, int64_t n0, int64_t nc, int nr, int64_t q0, int64_t q1,
                 float *dst);
    const struct sft_qweight *q;
    const uint16_t *bf16;
    const float *f32;
    int64_t rows, cols;
    int trans, simd;
    int compute_bf16;   /* the GEMM multiplies in bf16 (A and B rounded to bf16), summing in f32 */
};

/* Packed panels in bf16. In bf16 mode the GEMMs pack as usual (f32) and then
   round what they packed: on a CPU with AVX512-BF16, into pairs of bf16 for
   vdpbf16ps (sft__panel_to_bf16_pairs: k rows 2p and 2p + 1 of each column in
   one 32-bit word, low half first, in place: a panel of depth kc keeps its
   place and stride, its first half holding the pairs); elsewhere, into f32
   values that are exact bf16 numbers, multiplied by the f32 kernels (the same
   products; the sums are rounded in another order). */
static void sft__panel_round_bf16(float *panel, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) panel[i] = sft_bf16_to_f32(sft_f32_to_bf16(panel[i]));
}

static void sft__panel_to_bf16_pairs(float *panel, int64_t kc, int64_t width) {
    int64_t kp, j;
    for (kp = 0; kp < (kc + 1) / 2; kp++)
        for (j = 0; j < width; j++) {      /* reads rows 2kp, 2kp + 1 before writing row kp's place */
            uint32_t lo = sft_f32_to_bf16(panel[2 * kp * width + j]);
            uint32_t hi = 2 * kp + 1 < kc ? sft_f32_to_bf16(panel[(2 * kp + 1) * width + j]) : 0;
            uint32_t pair = lo | hi << 16;
            memcpy(&panel[kp * width + j], &pair, sizeof pair);
        }
}

typedef struct sft__gemm_job {
    sft__mat a, b;
    const sft__bsrc *src;
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
    int bf16 = j->src && j->src->compute_bf16;
    (void)thread;
    memset(acc, 0, sizeof acc);
    for (k0 = 0; k0 < j->K; k0 += SFT__GEMM_KC) {
        int64_t kc = j->K - k0 < SFT__GEMM_KC ? j->K - k0 : SFT__GEMM_KC;
        if (j->src) j->src->pack(j->src, k0, kc, n0, nt, SFT__GEMM_TN, 0, 1, &panel[0][0]);
        else
            for (kk = 0; kk < kc; kk++) {
                const float *bk = j->b.p + (k0 + kk) * j->b.rs + n0 * j->b.cs;
                for (jn = 0; jn < SFT__GEMM_TN; jn++) panel[kk][jn] = jn < nt ? bk[jn * j->b.cs] : 0.0f;
            }
        if (bf16) sft__panel_round_bf16(&panel[0][0], kc * SFT__GEMM_TN);
        for (i = 0; i < mt; i++) {
            const float *ap = j->a.p + (m0 + i) * j->a.rs + k0 * j->a.cs;
            float *ac = acc[i];
            for (kk = 0; kk < kc; kk++) {
                float av = bf16 ? sft_bf16_to_f32(sft_f32_to_bf16(ap[kk * j->a.cs])) : ap[kk * j->a.cs];
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
                                     int64_t ldc, int accumulate, const sft__bsrc *src) {
    sft__gemm_job j;
    int64_t tiles_m = (M + SFT__GEMM_MB - 1) / SFT__GEMM_MB;
    if (M <= 0 || N <= 0) return SFT_OK;
    j.a = a; j.b = b; j.src = src; j.c = c; j.ldc = ldc; j.M = M; j.N = N; j.K = K; j.accumulate = accumulate;
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
#ifndef SFT__DEEP_K
#define SFT__DEEP_K 1024    /* up to this k, a task runs all k slices of its C block */
#endif
#define SFT__DEEP_NC 512    /* column block in that mode: C blocks stay in L2 */
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
    sft__mat      a, b;         /* offset to this column block and first k slice   */
    const sft__bsrc *src;       /* or B decoded from here; kb, nb: where the step starts in op(B) */
    int64_t       kb, nb;
    float        *c, *bpack;    /* c offset to this column block                   */
    int64_t       ldc, M, K, nc, mc, group, n_groups, panels_per_pack_task;
    int64_t       k0, n_slices, slice_stride;   /* the k slices this step covers   */
    int           accumulate, mr, nr;
    int           bf16;         /* 0: f32; 1: bf16 pairs (bf16k's kernels); 2: rounded to bf16 */
    const struct sft__bf16_kernels *bf16k;
    sft__micro_fn micro;
} sft__blocked_job;

/* A path's bf16 kernels for the blocked GEMM (AVX512-BF16): the micro-kernel
   on pairs, B's packed panels of width NR made pairs in place, and A's rows
   [0, mc) x k [0, kc) of a view as row-major pairs, (kc + 1) / 2 a row, rows up
   to rows_out zero. */
typedef struct sft__bf16_kernels {
    sft__micro_fn micro;
    void (*panel_pairs)(float *panel, int64_t kc, int64_t width);
    void (*rows_pairs)(const sft__mat *a, int64_t mc, int64_t kc, int64_t rows_out, float *dst);
} sft__bf16_kernels;

/* the packed panels [q0, q1) of depth kc, width w, made bf16 as job j computes */
static void sft__blocked_to_bf16(const sft__blocked_job *j, float *panels, int64_t q0, int64_t q1, int64_t kc, int w) {
    int64_t q;
    for (q = q0; q < q1; q++) {
        float *panel = panels + q * kc * w;
        if (j->bf16 == 1) j->bf16k->panel_pairs(panel, kc, w);
        else sft__panel_round_bf16(panel, kc * w);
    }
}

/* B is packed by k rows (a row-major f32 B) or by panels (anything else). */
static int sft__blocked_by_rows(const sft__blocked_job *j) { return !j->src && j->b.cs == 1; }

static int64_t sft__slice_kc(const sft__blocked_job *j, int64_t s) {
    int64_t k = j->k0 + s * SFT__BLK_KC;
    return j->K - k < SFT__BLK_KC ? j->K - k : SFT__BLK_KC;
}

/* Packing B: a row-major B is split among the tasks by ranges of k (reading
   whole rows), any other layout by ranges of panels (reading along k). */
static void sft__blocked_pack_task(void *arg, int64_t task, int thread) {
    const sft__blocked_job *j = (const sft__blocked_job *)arg;
    int64_t panels = (j->nc + j->nr - 1) / j->nr, per_slice, slice, sub, kc;
    sft__mat b = j->b;
    float *dst;
    (void)thread;
    per_slice = sft__blocked_by_rows(j) ? (SFT__BLK_KC + SFT__PACK_ROWS - 1) / SFT__PACK_ROWS
                                        : (panels + j->panels_per_pack_task - 1) / j->panels_per_pack_task;
    slice = task / per_slice; sub = task % per_slice;
    kc = sft__slice_kc(j, slice);
    b.p += slice * SFT__BLK_KC * b.rs;
    dst = j->bpack + slice * j->slice_stride;
    if (j->src) {
        int64_t q0 = sub * j->panels_per_pack_task, q1 = q0 + j->panels_per_pack_task < panels ? q0 + j->panels_per_pack_task : panels;
        if (q0 < q1) j->src->pack(j->src, j->kb + slice * SFT__BLK_KC, kc, j->nb, j->nc, j->nr, q0, q1, dst);
        if (q0 < q1 && j->bf16) sft__blocked_to_bf16(j, dst, q0, q1, kc, j->nr);
    } else if (j->b.cs == 1) {
        int64_t k0 = sub * SFT__PACK_ROWS, k1 = k0 + SFT__PACK_ROWS < kc ? k0 + SFT__PACK_ROWS : kc;
        if (k0 < kc) sft__pack_b_rows(&b, kc, j->nc, j->nr, k0, k1, dst);
    } else {
        int64_t q0 = sub * j->panels_per_pack_task, q1 = q0 + j->panels_per_pack_task < panels ? q0 + j->panels_per_pack_task : panels;
        sft__pack_b(&b, kc, j->nc, j->nr, q0, q1, dst);
    }
}

static void sft__blocked_compute_task(void *arg, int64_t task, int thread) {
    const sft__blocked_job *j = (const sft__blocked_job *)arg;
    int64_t i0 = (task / j->n_groups) * j->mc, jr0 = (task % j->n_groups) * j->group;
    int64_t mc = j->M - i0 < j->mc ? j->M - i0 : j->mc, jr1 = jr0 + j->group < j->nc ? jr0 + j->group : j->nc, ir, jr, sl;
    int64_t full = mc - mc % j->mr;             /* rows in whole panels */
    float *apack = j->ctx->gemm_pack + (size_t)thread * SFT__BLK_MC * SFT__BLK_KC;
    float edge[16 * 32];                        /* an edge tile: at most MR x NR of any path */
    int direct = j->a.cs == 1 && !j->bf16;      /* row-major A: whole panels are read in place */
    for (sl = 0; sl < j->n_slices; sl++) {      /* k slices in order; this task's C stays in cache */
        int64_t kc = sft__slice_kc(j, sl), depth = j->bf16 == 1 ? (kc + 1) / 2 : kc;
        int add = j->accumulate || j->k0 + sl > 0;
        const float *bslice = j->bpack + sl * j->slice_stride;
        sft__mat a = j->a;
        a.p += i0 * a.rs + sl * SFT__BLK_KC * a.cs;
        if (j->bf16 == 1)                       /* A's rows as pairs, row-major: read with a_rs = depth */
            j->bf16k->rows_pairs(&a, mc, kc, (mc + j->mr - 1) / j->mr * j->mr, apack);
        else if (!direct) {
            sft__pack_a(&a, mc, kc, j->mr, apack);
            if (j->bf16) sft__blocked_to_bf16(j, apack, 0, (mc + j->mr - 1) / j->mr, kc, j->mr);
        } else if (full < mc) {                 /* only the last, partial panel is packed */
            sft__mat tail = a;
            tail.p += full * a.rs;
            sft__pack_a(&tail, mc - full, kc, j->mr, apack + full * kc);
        }
        for (jr = jr0; jr < jr1; jr += j->nr)
            for (ir = 0; ir < mc; ir += j->mr) {
                int in_place = direct && ir < full, pairs = j->bf16 == 1;
                const float *ap = in_place ? a.p + ir * a.rs : pairs ? apack + ir * depth : apack + ir * kc, *bp = bslice + jr * kc;
                int64_t a_rs = in_place ? a.rs : pairs ? depth : 1, a_ks = in_place || pairs ? 1 : j->mr;
                float *c = j->c + (i0 + ir) * j->ldc + jr;
                int64_t rows = mc - ir < j->mr ? mc - ir : j->mr, cols = jr1 - jr < j->nr ? jr1 - jr : j->nr, r, q;
                if (rows == j->mr && cols == j->nr) { j->micro(depth, ap, a_rs, a_ks, bp, c, j->ldc, add); continue; }
                j->micro(depth, ap, a_rs, a_ks, bp, edge, j->nr, 0);
                for (r = 0; r < rows; r++)
                    for (q = 0; q < cols; q++)
                        c[r * j->ldc + q] = add ? c[r * j->ldc + q] + edge[r * j->nr + q] : edge[r * j->nr + q];
            }
    }
}

/* sft__gemm_blocked: the driver every SIMD path shares; only the micro-kernel
   and its MR x NR differ. Rows are cut into blocks of at most MC and, when that
   gives the threads too little to share, the column panels into groups. */
static sft_status sft__gemm_blocked(sft_context *ctx, int64_t M, int64_t N, int64_t K, sft__mat a, sft__mat b, float *c,
                                    int64_t ldc, int accumulate, const sft__bsrc *src, int mr, int nr, sft__micro_fn micro,
                                    const sft__bf16_kernels *bf16k) {
    sft__blocked_job j;
    int64_t jc, pc, want = 4 * (int64_t)ctx->threads, n_rows, nc_max, step;
    /* A wide C with short k (an output projection): all k slices of a column
       block are packed at once and each task runs them in order on its own C
       block, which then stays in cache instead of streaming through memory once
       per slice. Otherwise one slice at a time. Either way every element sums
       its slices in the same order, so the results are identical. */
    int deep = K <= SFT__DEEP_K && N >= 4 * SFT__BLK_NC;
    if (M <= 0 || N <= 0) return SFT_OK;
    if (!ctx->gemm_pack) {
        size_t floats = (size_t)ctx->threads * SFT__BLK_MC * SFT__BLK_KC + (size_t)SFT__BLK_KC * SFT__BLK_NC;
        ctx->gemm_pack = (float *)sft__alloc(ctx, floats * sizeof(float));
        if (!ctx->gemm_pack) return sft__fail(SFT_ERR_NOMEM, "matmul: cannot allocate the GEMM packing buffers");
    }
    memset(&j, 0, sizeof j);
    j.ctx = ctx; j.ldc = ldc; j.M = M; j.K = K; j.mr = mr; j.nr = nr; j.micro = micro; j.accumulate = accumulate; j.src = src;
    if (src && src->compute_bf16) {             /* vdpbf16ps where the CPU has it (same MR x NR) */
        j.bf16 = bf16k ? 1 : 2;
        j.bf16k = bf16k;
        if (bf16k) j.micro = bf16k->micro;
    }
    j.bpack = ctx->gemm_pack + (size_t)ctx->threads * SFT__BLK_MC * SFT__BLK_KC;
    j.mc = SFT__BLK_MC;
    n_rows = (M + j.mc - 1) / j.mc;
    nc_max = deep ? (SFT__BLK_KC * SFT__BLK_NC / (((K + SFT__BLK_KC - 1) / SFT__BLK_KC) * SFT__BLK_KC)) / nr * nr
                  : SFT__BLK_NC;
    if (nc_max > SFT__DEEP_NC && deep) nc_max = SFT__DEEP_NC;
    if (nc_max < nr) nc_max = nr;
    {   /* equal column blocks rather than full ones and a small remainder */
        int64_t blocks = (N + nc_max - 1) / nc_max;
        nc_max = ((N + blocks - 1) / blocks + nr - 1) / nr * nr;
    }
    for (jc = 0; jc < N; jc += nc_max) {
        int64_t panels;
        j.nc = N - jc < nc_max ? N - jc : nc_max;
        panels = (j.nc + nr - 1) / nr;
        j.slice_stride = panels * nr * SFT__BLK_KC;
        j.n_groups = n_rows >= want ? 1 : (want + n_rows - 1) / n_rows;
        if (j.n_groups > panels) j.n_groups = panels;
        j.group = ((panels + j.n_groups - 1) / j.n_groups) * nr;
        j.n_groups = (j.nc + j.group - 1) / j.group;
        j.panels_per_pack_task = (panels + want - 1) / want;
        step = deep ? (K > 0 ? K : 1) : SFT__BLK_KC;
        for (pc = 0; pc < K || pc == 0; pc += step) {
            int64_t per_slice;
            j.k0 = pc; j.kb = pc; j.nb = jc;
            j.n_slices = deep ? (K + SFT__BLK_KC - 1) / SFT__BLK_KC : 1;
            if (j.n_slices == 0) j.n_slices = 1;
            j.a = a; j.a.p += pc * a.cs;
            j.b = b; j.b.p += pc * b.rs + jc * b.cs;
            j.c = c + jc;
            per_slice = sft__blocked_by_rows(&j) ? (SFT__BLK_KC + SFT__PACK_ROWS - 1) / SFT__PACK_ROWS
                                                 : (panels + j.panels_per_pack_task - 1) / j.panels_per_pack_task;
            sft__parallel(ctx, j.n_slices * per_slice, sft__blocked_pack_task, &j);
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
                                 int64_t ldc, int accumulate, const sft__bsrc *src) {
    return sft__gemm_blocked(ctx, M, N, K, a, b, c, ldc, accumulate, src, 6, 16, sft__micro_avx2_6x16, NULL);
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
SFT__AVX512_WARNINGS_OFF
/* The bf16 micro-kernel: the same 12 x 32 block of C, fed by vdpbf16ps: each
   step takes a pair of k (B: 32 columns x 2 bf16 in two zmm; A: one 32-bit
   pair per row, broadcast) and adds both products into the f32 sums. kc counts
   pairs; A and B are packed pairs (see sft__panel_to_bf16_pairs). */
SFT__TARGET_AVX512BF16 static void sft__micro_bf16_12x32(int64_t kc, const float *a, int64_t a_rs, int64_t a_ks,
                                                         const float *b, float *c, int64_t ldc, int add) {
#define SFT__DECL(r) __m512 lo##r = _mm512_setzero_ps(), hi##r = _mm512_setzero_ps();
#define SFT__DOT(r) av = (__m512bh)_mm512_castps_si512(_mm512_set1_ps(a[(r) * a_rs]));                         \
    lo##r = _mm512_dpbf16_ps(lo##r, av, b0); hi##r = _mm512_dpbf16_ps(hi##r, av, b1);
#define SFT__STORE(r)                                                                                         \
    if (add) { lo##r = _mm512_add_ps(_mm512_loadu_ps(c + (r) * ldc), lo##r);                                  \
               hi##r = _mm512_add_ps(_mm512_loadu_ps(c + (r) * ldc + 16), hi##r); }                           \
    _mm512_storeu_ps(c + (r) * ldc, lo##r); _mm512_storeu_ps(c + (r) * ldc + 16, hi##r);
    int64_t k;
    SFT__AVX512_ROWS(SFT__DECL)
    for (k = 0; k < kc; k++, a += a_ks, b += 32) {
        __m512bh b0 = (__m512bh)_mm512_castps_si512(_mm512_loadu_ps(b)), b1 = (__m512bh)_mm512_castps_si512(_mm512_loadu_ps(b + 16)), av;
        SFT__AVX512_ROWS(SFT__DOT)
    }
    SFT__AVX512_ROWS(SFT__STORE)
#undef SFT__DECL
#undef SFT__DOT
#undef SFT__STORE
}

/* bf16 bits of 16 floats in 32-bit lanes, rounded as sft_f32_to_bf16 (nearest
   even; a NaN stays a quiet NaN with its sign) */
SFT__TARGET_AVX512 static __m512i sft__bf16_bits16(__m512 v) {
    __m512i u = _mm512_castps_si512(v), top = _mm512_srli_epi32(u, 16);
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)),
                                                   _mm512_and_si512(top, _mm512_set1_epi32(1))), 16);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    return _mm512_mask_or_epi32(r, nan, top, _mm512_set1_epi32(0x40));
}

/* a B panel of width 32 as pairs, in place (see sft__panel_to_bf16_pairs) */
SFT__TARGET_AVX512 static void sft__panel_pairs_avx512(float *panel, int64_t kc, int64_t width) {
    int64_t kp, j;
    if (width % 16) { sft__panel_to_bf16_pairs(panel, kc, width); return; }
    for (kp = 0; kp < (kc + 1) / 2; kp++)
        for (j = 0; j < width; j += 16) {       /* both rows are read before the pairs are stored over the first */
            __m512i lo = sft__bf16_bits16(_mm512_loadu_ps(panel + 2 * kp * width + j));
            __m512i hi = 2 * kp + 1 < kc ? sft__bf16_bits16(_mm512_loadu_ps(panel + (2 * kp + 1) * width + j)) : _mm512_setzero_si512();
            _mm512_storeu_si512((void *)(panel + kp * width + j), _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
}

/* rows of A as row-major pairs: a row's bf16 values in order are its pairs */
SFT__TARGET_AVX512 static void sft__rows_pairs_avx512(const sft__mat *a, int64_t mc, int64_t kc, int64_t rows_out, float *dst) {
    int64_t kp = (kc + 1) / 2, r, k;
    for (r = 0; r < rows_out; r++) {
        uint16_t *d = (uint16_t *)(void *)(dst + r * kp);
        const float *src = a->p + r * a->rs;
        if (r >= mc) { memset(d, 0, (size_t)kp * 4); continue; }
        k = 0;
        if (a->cs == 1)
            for (; k + 16 <= kc; k += 16)
                _mm256_storeu_si256((__m256i *)(void *)(d + k), _mm512_cvtepi32_epi16(sft__bf16_bits16(_mm512_loadu_ps(src + k))));
        for (; k < kc; k++) d[k] = sft_f32_to_bf16(src[k * a->cs]);
        if (kc % 2) d[kc] = 0;
    }
}

SFT__AVX512_WARNINGS_ON

static const sft__bf16_kernels sft__bf16_avx512 = {sft__micro_bf16_12x32, sft__panel_pairs_avx512, sft__rows_pairs_avx512};

static sft_status sft__gemm_avx512(sft_context *ctx, int64_t M, int64_t N, int64_t K, sft__mat a, sft__mat b, float *c,
                                   int64_t ldc, int accumulate, const sft__bsrc *src) {
    return sft__gemm_blocked(ctx, M, N, K, a, b, c, ldc, accumulate, src, 12, 32, sft__micro_avx512_12x32,
                             sft__cpu.avx512_bf16 && !ctx->bf16_emulated ? &sft__bf16_avx512 : NULL);
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

/* exp_stats: over a row of logits x against its maximum m, S += sum exp(x - m)
   and W += sum exp(x - m) (x - m), summed in double (the softmax's normaliser
   and the numerator of its mean logit, for the entropy log S - W / S). */
static void sft__exp_stats_portable(const float *x, int64_t n, float m, double *S, double *W) {
    double s = 0.0, w = 0.0;
    int64_t i;
    for (i = 0; i < n; i++) {
        double e = (double)expf(x[i] - m);
        s += e; w += e * ((double)x[i] - (double)m);
    }
    *S += s; *W += w;
}

/* SiLU and SwiGLU: out = x sigmoid(x) (* up); backward dx += g (up) dsilu,
   dup += g silu(x) where dsilu = s (1 + x (1 - s)), s = sigmoid(x). One
   element at a time, the reference for the vector versions (which use the
   vector exp). up, dx, dup may be NULL. */
static float sft__sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

static void sft__silu_fwd_portable(const float *x, const float *up, float *out, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) {
        float s = x[i] * sft__sigmoid(x[i]);
        out[i] = up ? s * up[i] : s;
    }
}

static void sft__silu_bwd_portable(const float *x, const float *up, const float *g, float *dx, float *dup, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) {
        float sg = sft__sigmoid(x[i]), dsilu = sg * (1.0f + x[i] * (1.0f - sg));
        if (dx) dx[i] += g[i] * (up ? up[i] : 1.0f) * dsilu;
        if (dup) dup[i] += g[i] * x[i] * sg;
    }
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

/* sigmoid with the vector exp: 1 / (1 + exp(-x)), 0 where exp(-x) overflows */
SFT__TARGET_AVX2 static __m256 sft__sigmoid_avx2(__m256 x) {
    __m256 nx = _mm256_sub_ps(_mm256_setzero_ps(), x), one = _mm256_set1_ps(1.0f);
    __m256 big = _mm256_cmp_ps(nx, _mm256_set1_ps(SFT__EXP_HI), _CMP_GT_OQ);
    return _mm256_andnot_ps(big, _mm256_div_ps(one, _mm256_add_ps(one, sft__exp_avx2(nx))));
}

SFT__TARGET_AVX2 static void sft__silu_fwd_avx2(const float *x, const float *up, float *out, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i), s = _mm256_mul_ps(v, sft__sigmoid_avx2(v));
        if (up) s = _mm256_mul_ps(s, _mm256_loadu_ps(up + i));
        _mm256_storeu_ps(out + i, s);
    }
    sft__silu_fwd_portable(x + i, up ? up + i : NULL, out + i, n - i);
}

SFT__TARGET_AVX2 static void sft__silu_bwd_avx2(const float *x, const float *up, const float *g, float *dx, float *dup, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i), sg = sft__sigmoid_avx2(v), gv = _mm256_loadu_ps(g + i);
        __m256 dsilu = _mm256_mul_ps(sg, _mm256_add_ps(one, _mm256_mul_ps(v, _mm256_sub_ps(one, sg))));
        if (dx) {
            __m256 gu = up ? _mm256_mul_ps(gv, _mm256_loadu_ps(up + i)) : gv;
            _mm256_storeu_ps(dx + i, _mm256_add_ps(_mm256_loadu_ps(dx + i), _mm256_mul_ps(gu, dsilu)));
        }
        if (dup) _mm256_storeu_ps(dup + i, _mm256_add_ps(_mm256_loadu_ps(dup + i), _mm256_mul_ps(_mm256_mul_ps(gv, v), sg)));
    }
    sft__silu_bwd_portable(x + i, up ? up + i : NULL, g + i, dx ? dx + i : NULL, dup ? dup + i : NULL, n - i);
}

SFT__TARGET_AVX2 static void sft__exp_stats_avx2(const float *x, int64_t n, float m, double *S, double *W) {
    __m256 mv = _mm256_set1_ps(m);
    __m256d s0 = _mm256_setzero_pd(), s1 = s0, w0 = s0, w1 = s0;
    double lanes[4], s, w;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), mv), e = sft__exp_avx2(d), ed = _mm256_mul_ps(e, d);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
        w0 = _mm256_add_pd(w0, _mm256_cvtps_pd(_mm256_castps256_ps128(ed)));
        w1 = _mm256_add_pd(w1, _mm256_cvtps_pd(_mm256_extractf128_ps(ed, 1)));
    }
    _mm256_storeu_pd(lanes, _mm256_add_pd(s0, s1));
    s = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    _mm256_storeu_pd(lanes, _mm256_add_pd(w0, w1));
    w = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    *S += s; *W += w;
    sft__exp_stats_portable(x + i, n - i, m, S, W);
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

SFT__TARGET_AVX512 static __m512 sft__sigmoid_avx512(__m512 x) {
    __m512 nx = _mm512_sub_ps(_mm512_setzero_ps(), x), one = _mm512_set1_ps(1.0f);
    __mmask16 ok = _mm512_cmp_ps_mask(nx, _mm512_set1_ps(SFT__EXP_HI), _CMP_LE_OQ);
    return _mm512_maskz_div_ps(ok, one, _mm512_add_ps(one, sft__exp_avx512(nx)));
}

SFT__TARGET_AVX512 static void sft__silu_fwd_avx512(const float *x, const float *up, float *out, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i), s = _mm512_mul_ps(v, sft__sigmoid_avx512(v));
        if (up) s = _mm512_mul_ps(s, _mm512_loadu_ps(up + i));
        _mm512_storeu_ps(out + i, s);
    }
    sft__silu_fwd_portable(x + i, up ? up + i : NULL, out + i, n - i);
}

SFT__TARGET_AVX512 static void sft__silu_bwd_avx512(const float *x, const float *up, const float *g, float *dx, float *dup,
                                                    int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i), sg = sft__sigmoid_avx512(v), gv = _mm512_loadu_ps(g + i);
        __m512 dsilu = _mm512_mul_ps(sg, _mm512_add_ps(one, _mm512_mul_ps(v, _mm512_sub_ps(one, sg))));
        if (dx) {
            __m512 gu = up ? _mm512_mul_ps(gv, _mm512_loadu_ps(up + i)) : gv;
            _mm512_storeu_ps(dx + i, _mm512_add_ps(_mm512_loadu_ps(dx + i), _mm512_mul_ps(gu, dsilu)));
        }
        if (dup) _mm512_storeu_ps(dup + i, _mm512_add_ps(_mm512_loadu_ps(dup + i), _mm512_mul_ps(_mm512_mul_ps(gv, v), sg)));
    }
    sft__silu_bwd_portable(x + i, up ? up + i : NULL, g + i, dx ? dx + i : NULL, dup ? dup + i : NULL, n - i);
}

SFT__TARGET_AVX512 static void sft__exp_stats_avx512(const float *x, int64_t n, float m, double *S, double *W) {
    __m512 mv = _mm512_set1_ps(m);
    __m512d s0 = _mm512_setzero_pd(), s1 = s0, w0 = s0, w1 = s0;
    double lanes[8], s = 0.0, w = 0.0;
    int64_t i = 0;
    int l;
    for (; i + 16 <= n; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + i), mv), e = sft__exp_avx512(d), ed = _mm512_mul_ps(e, d);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
        w0 = _mm512_add_pd(w0, _mm512_cvtps_pd(_mm512_castps512_ps256(ed)));
        w1 = _mm512_add_pd(w1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(ed), 1))));
    }
    _mm512_storeu_pd(lanes, _mm512_add_pd(s0, s1));
    for (l = 0; l < 8; l++) s += lanes[l];
    _mm512_storeu_pd(lanes, _mm512_add_pd(w0, w1));
    for (l = 0; l < 8; l++) w += lanes[l];
    *S += s; *W += w;
    sft__exp_stats_portable(x + i, n - i, m, S, W);
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
                                   int64_t ldc, int accumulate, const sft__bsrc *src);
typedef struct sft__cpu_kernels {
    sft__gemm_fn  gemm;                     /* threaded, any size */
    sft__micro_fn micro;                    /* the mr x nr micro-kernel, for tiles */
    int           mr, nr;
    float (*dot)(const float *a, const float *b, int64_t n);
    void (*exp_shift)(float *x, int64_t n, float shift);   /* x = exp(x - shift) */
    void (*dropout_words)(uint64_t key, uint32_t threshold, int64_t w0, int64_t w1, uint64_t *bits);
    void (*mask_mul)(const float *x, const uint64_t *bits, int64_t e0, int64_t n, float scale, float *out, int accumulate);
    void (*silu_fwd)(const float *x, const float *up, float *out, int64_t n);
    void (*silu_bwd)(const float *x, const float *up, const float *g, float *dx, float *dup, int64_t n);
    void (*exp_stats)(const float *x, int64_t n, float m, double *S, double *W);
} sft__cpu_kernels;

/* kernels defined with the operators below */
static void sft__mask_mul_portable(const float *x, const uint64_t *bits, int64_t e0, int64_t n, float scale, float *out,
                                   int accumulate);
#ifdef SFT__SIMD_X86
static void sft__mask_mul_avx2(const float *x, const uint64_t *bits, int64_t e0, int64_t n, float scale, float *out,
                               int accumulate);
static void sft__mask_mul_avx512(const float *x, const uint64_t *bits, int64_t e0, int64_t n, float scale, float *out,
                                 int accumulate);
#endif
#define SFT__PORTABLE_EXTRA sft__dropout_words_portable, sft__mask_mul_portable, sft__silu_fwd_portable, sft__silu_bwd_portable, \
                            sft__exp_stats_portable
#define SFT__AVX2_EXTRA     sft__dropout_words_avx2, sft__mask_mul_avx2, sft__silu_fwd_avx2, sft__silu_bwd_avx2, sft__exp_stats_avx2
#define SFT__AVX512_EXTRA   sft__dropout_words_avx512, sft__mask_mul_avx512, sft__silu_fwd_avx512, sft__silu_bwd_avx512, \
                            sft__exp_stats_avx512

static const sft__cpu_kernels sft__cpu_kernel_table[SFT_CPU_PATH_COUNT] = {
    {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL},                                          /* SFT_CPU_AUTO */
    {sft__gemm_portable, sft__micro_portable_4x16, 4, 16, sft__dot_portable, sft__exp_shift_portable, SFT__PORTABLE_EXTRA},
#ifdef SFT__SIMD_X86
    {sft__gemm_avx2, sft__micro_avx2_6x16, 6, 16, sft__dot_avx2, sft__exp_shift_avx2, SFT__AVX2_EXTRA},
    {sft__gemm_avx512, sft__micro_avx512_12x32, 12, 32, sft__dot_avx512, sft__exp_shift_avx512, SFT__AVX512_EXTRA}};
#else
    {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL}};
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
                                  int64_t ldc, int accumulate, const sft__bsrc *src) {
    int a_ok = a.cs == 1 || a.rs == 1, b_ok = b.cs == 1 || b.rs == 1;
    if (M <= 0 || N <= 0) return SFT_OK;
    if (src || !a_ok || !b_ok || M > INT_MAX || N > INT_MAX || K > INT_MAX || ldc > INT_MAX)
        return sft__cpu_kernel_table[sft_cpu_path_get(ctx)].gemm(ctx, M, N, K, a, b, c, ldc, accumulate, src);
    cblas_sgemm(CblasRowMajor, a.cs == 1 ? CblasNoTrans : CblasTrans, b.cs == 1 ? CblasNoTrans : CblasTrans, (int)M, (int)N,
                (int)K, 1.0f, a.p, (int)(a.cs == 1 ? (a.rs > 1 ? a.rs : 1) : a.cs), b.p,
                (int)(b.cs == 1 ? (b.rs > 1 ? b.rs : 1) : b.cs), accumulate ? 1.0f : 0.0f, c, (int)ldc);
    return SFT_OK;
}

static const sft__cpu_kernels sft__cpu_kernel_table_cblas[SFT_CPU_PATH_COUNT] = {
    {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {sft__gemm_cblas, sft__micro_portable_4x16, 4, 16, sft__dot_portable, sft__exp_shift_portable, SFT__PORTABLE_EXTRA},
#ifdef SFT__SIMD_X86
    {sft__gemm_cblas, sft__micro_avx2_6x16, 6, 16, sft__dot_avx2, sft__exp_shift_avx2, SFT__AVX2_EXTRA},
    {sft__gemm_cblas, sft__micro_avx512_12x32, 12, 32, sft__dot_avx512, sft__exp_shift_avx512, SFT__AVX512_EXTRA}};
#else
    {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL}};
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
    if (ctx->plan_only) return SFT_OK;
    return sft__cpu_kernels_of(ctx)->gemm(ctx, M, N, K, a, b, c, ldc, accumulate, NULL);
}

/* sft__gemm_src: the same with B decoded from src (a 4-bit or bf16 weight). */
static sft_status sft__gemm_src(sft_context *ctx, int64_t M, int64_t N, int64_t K, sft__mat a, const sft__bsrc *src, float *c,
                                int64_t ldc, int accumulate) {
    static const float unused = 0.0f;   /* a valid pointer for the dense view src replaces */
    if (ctx->plan_only) return SFT_OK;
    return sft__cpu_kernels_of(ctx)->gemm(ctx, M, N, K, a, sft__mat_of(&unused, 0, 0), c, ldc, accumulate, src);
}

/* with the weights' GEMMs ("kernels: weights decoded into GEMM panels") */
static sft_status sft__gemm_f32w(sft_context *ctx, int64_t M, sft__mat a, const float *w, int64_t N, int64_t K, int trans, int bf16,
                                 float *c, int64_t ldc, int accumulate);

/* Matmul node: in[0] = A, in[1] = B; i[0] = trans_a, i[1] = trans_b, i[2] = batch,
   i[3] = 1 when B is shared by every batch; f[0] = 1: B is a frozen weight
   multiplied in bf16. M, N, K follow from the shapes. */
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
    if (n->f[0] != 0.0f && !d.ta)   /* a frozen weight in bf16: B stored [N, K] (tb) or [K, N] */
        return d.tb ? sft__gemm_f32w(ctx, d.batch * d.M, sft__mm_op(A, d.K, 0), B, d.N, d.K, 1, 1, C, d.N, 0)
                    : sft__gemm_f32w(ctx, d.batch * d.M, sft__mm_op(A, d.K, 0), B, d.K, d.N, 0, 1, C, d.N, 0);
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
        if (a->requires_grad && n->f[0] != 0.0f)   /* dA = dC op(B)^T through the bf16 packing */
            SFT__TRY(d.tb ? sft__gemm_f32w(ctx, rows, g, B, d.N, d.K, 0, 1, SFT__F(a->grad), d.K, 1)
                          : sft__gemm_f32w(ctx, rows, g, B, d.K, d.N, 1, 1, SFT__F(a->grad), d.K, 1));
        else if (a->requires_grad) SFT__TRY(sft__gemm(ctx, rows, d.K, d.N, g, sft__mat_t(opb), SFT__F(a->grad), d.K, 1));
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

typedef struct sft__ew_job { sft__node *n; int64_t nb; const struct sft__cpu_kernels *k; } sft__ew_job;

/* sft__ew_span: run body over [b, e) as spans that stay inside one repeat of
   the broadcast operand: within a span, y's index is i - base. */
#define SFT__EW_SPANS(b, e, nb, body)                                                       \
    do {                                                                                    \
        int64_t i_ = (b);                                                                   \
        while (i_ < (e)) {                                                                  \
            int64_t base = i_ - i_ % (nb), end = base + (nb) < (e) ? base + (nb) : (e), i;  \
            for (i = i_; i < end; i++) { body; }                                            \
            i_ = end;                                                                       \
        }                                                                                   \
    } while (0)

static void sft__add_fwd_range(void *arg, int64_t b, int64_t e) {
    const sft__ew_job *j = (const sft__ew_job *)arg;
    const float *x = SFT__CF(j->n->in[0]), *y = SFT__CF(j->n->in[1]);
    float *o = SFT__F(j->n->out);
    SFT__EW_SPANS(b, e, j->nb, o[i] = x[i] + y[i - base]);
}

static void sft__mul_fwd_range(void *arg, int64_t b, int64_t e) {
    const sft__ew_job *j = (const sft__ew_job *)arg;
    const float *x = SFT__CF(j->n->in[0]), *y = SFT__CF(j->n->in[1]);
    float *o = SFT__F(j->n->out);
    SFT__EW_SPANS(b, e, j->nb, o[i] = x[i] * y[i - base]);
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
    else SFT__EW_SPANS(b, e, j->nb, da[i] += g[i] * y[i - base]);
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

/* silu node: in[0] = x.  swiglu node: in[0] = gate, in[1] = up. The path's
   kernels (see "vector helpers") do the arithmetic over chunks. */
static void sft__silu_fwd_range(void *arg, int64_t b, int64_t e) {
    const sft__ew_job *j = (const sft__ew_job *)arg;
    const sft__node *n = j->n;
    const float *up = n->op == SFT__OP_SWIGLU ? SFT__CF(n->in[1]) + b : NULL;
    j->k->silu_fwd(SFT__CF(n->in[0]) + b, up, SFT__F(n->out) + b, e - b);
}

static void sft__silu_bwd_range(void *arg, int64_t b, int64_t e) {
    const sft__ew_job *j = (const sft__ew_job *)arg;
    const sft__node *n = j->n;
    const float *up = n->op == SFT__OP_SWIGLU ? SFT__CF(n->in[1]) + b : NULL;
    float *dx = n->in[0]->requires_grad ? SFT__F(n->in[0]->grad) + b : NULL;
    float *dup = up && n->in[1]->requires_grad ? SFT__F(n->in[1]->grad) + b : NULL;
    j->k->silu_bwd(SFT__CF(n->in[0]) + b, up, SFT__CF(n->out->grad) + b, dx, dup, e - b);
}

static sft_status sft__cpu_silu_run(sft_context *ctx, sft__node *n, sft__range_fn fn) {
    sft__ew_job j;
    j.n = n; j.nb = 0; j.k = sft__cpu_kernels_of(ctx);
    sft__parallel_rows(ctx, sft_tensor_numel(n->out), SFT__ELEM_CHUNK, fn, &j);
    return SFT_OK;
}

static sft_status sft__cpu_silu_fwd(sft_context *ctx, sft__node *n) { return sft__cpu_silu_run(ctx, n, sft__silu_fwd_range); }

static sft_status sft__cpu_silu_bwd(sft_context *ctx, sft__node *n) { return sft__cpu_silu_run(ctx, n, sft__silu_bwd_range); }

/* Dropout masks (see "random numbers" for which bit is which): the mask is
   made once, in forward, on the pool in fixed chunks of words, and kept as bits;
   backward reads it. sft__mask_mul applies one: out[i] = x[i] * factor(e0 + i),
   or out[i] += ..., where factor is 1 / (1 - p) for a kept element and 0 for a
   dropped one (x * 0, as torch's dropout multiplies). */
typedef struct sft__mask_job {
    void (*words)(uint64_t key, uint32_t threshold, int64_t w0, int64_t w1, uint64_t *bits);
    uint64_t  key;
    uint32_t  threshold;
    int64_t   w0;           /* the first word; tasks count from it */
    uint64_t *bits;
} sft__mask_job;

static void sft__mask_range(void *arg, int64_t b, int64_t e) {
    const sft__mask_job *j = (const sft__mask_job *)arg;
    j->words(j->key, j->threshold, j->w0 + b, j->w0 + e, j->bits);
}

/* sft__dropout_mask: the words covering elements [e0, e1) of the mask under (key,
   p); bits is the whole mask (word w = elements 64w ..). */
static void sft__dropout_mask(sft_context *ctx, uint64_t key, float p, int64_t e0, int64_t e1, uint64_t *bits) {
    sft__mask_job j;
    int64_t w0 = e0 / 64, w1 = (e1 + 63) / 64;
    if (ctx->plan_only || e1 <= e0) return;
    j.words = sft__cpu_kernels_of(ctx)->dropout_words;
    j.key = key; j.threshold = sft__dropout_threshold(p); j.w0 = w0; j.bits = bits;
    sft__parallel_rows(ctx, w1 - w0, 256, sft__mask_range, &j);
}

static float sft__dropout_scale(float p) { return p >= 1.0f ? 0.0f : 1.0f / (1.0f - p); }

static void sft__mask_mul_portable(const float *x, const uint64_t *bits, int64_t e0, int64_t n, float scale, float *out,
                                   int accumulate) {
    int64_t i;
    for (i = 0; i < n; i++) {
        int64_t e = e0 + i;
        float f = (bits[e >> 6] >> (e & 63)) & 1 ? scale : 0.0f;
        if (accumulate) out[i] += x[i] * f;
        else out[i] = x[i] * f;
    }
}

#ifdef SFT__SIMD_X86
SFT__AVX512_WARNINGS_OFF
SFT__TARGET_AVX512 static void sft__mask_mul_avx512(const float *x, const uint64_t *bits, int64_t e0, int64_t n, float scale,
                                                    float *out, int accumulate) {
    const __m512 s = _mm512_set1_ps(scale);
    int64_t i = 0, head = (16 - e0 % 16) % 16;
    if (head > n) head = n;
    sft__mask_mul_portable(x, bits, e0, head, scale, out, accumulate);
    for (i = head; i + 16 <= n; i += 16) {
        int64_t e = e0 + i;
        __m512 f = _mm512_maskz_mov_ps((__mmask16)(bits[e >> 6] >> (e & 63)), s);
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + i), f);
        if (accumulate) v = _mm512_add_ps(_mm512_loadu_ps(out + i), v);
        _mm512_storeu_ps(out + i, v);
    }
    sft__mask_mul_portable(x + i, bits, e0 + i, n - i, scale, out + i, accumulate);
}
SFT__AVX512_WARNINGS_ON

SFT__TARGET_AVX2 static void sft__mask_mul_avx2(const float *x, const uint64_t *bits, int64_t e0, int64_t n, float scale,
                                                float *out, int accumulate) {
    const __m256i lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const __m256 s = _mm256_set1_ps(scale);
    int64_t i = 0, head = (8 - e0 % 8) % 8;
    if (head > n) head = n;
    sft__mask_mul_portable(x, bits, e0, head, scale, out, accumulate);
    for (i = head; i + 8 <= n; i += 8) {
        int64_t e = e0 + i;
        __m256i m = _mm256_and_si256(_mm256_set1_epi32((int)((bits[e >> 6] >> (e & 63)) & 0xFF)), lane_bit);
        __m256 f = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(m, lane_bit)), s);
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), f);
        if (accumulate) v = _mm256_add_ps(_mm256_loadu_ps(out + i), v);
        _mm256_storeu_ps(out + i, v);
    }
    sft__mask_mul_portable(x + i, bits, e0 + i, n - i, scale, out + i, accumulate);
}
#endif

/* sft__mask_mul: the path's kernel over [0, n) in fixed chunks on the pool. */
typedef struct sft__mask_mul_job {
    const float *x; const uint64_t *bits; float *out; int64_t e0; float scale; int accumulate;
    void (*fn)(const float *, const uint64_t *, int64_t, int64_t, float, float *, int);
} sft__mask_mul_job;

static void sft__mask_mul_range(void *arg, int64_t b, int64_t e) {
    const sft__mask_mul_job *j = (const sft__mask_mul_job *)arg;
    j->fn(j->x + b, j->bits, j->e0 + b, e - b, j->scale, j->out + b, j->accumulate);
}

static void sft__mask_mul(sft_context *ctx, const float *x, const uint64_t *bits, int64_t e0, int64_t n, float scale, float *out,
                          int accumulate) {
    sft__mask_mul_job j;
    if (ctx->plan_only) return;
    j.x = x; j.bits = bits; j.out = out; j.e0 = e0; j.scale = scale; j.accumulate = accumulate;
    j.fn = sft__cpu_kernels_of(ctx)->mask_mul;
    sft__parallel_rows(ctx, n, SFT__ELEM_CHUNK, sft__mask_mul_range, &j);
}

/* dropout node: in[0] = x; f[0] = p; i[0] = seed (the mask's key); saved = the
   mask's bits. */
static sft_status sft__cpu_dropout_fwd(sft_context *ctx, sft__node *n) {
    int64_t numel = sft_tensor_numel(n->out);
    uint64_t *bits = (uint64_t *)n->saved->data;
    sft__dropout_mask(ctx, (uint64_t)n->i[0], n->f[0], 0, numel, bits);
    sft__mask_mul(ctx, SFT__CF(n->in[0]), bits, 0, numel, sft__dropout_scale(n->f[0]), SFT__F(n->out), 0);
    return SFT_OK;
}

static sft_status sft__cpu_dropout_bwd(sft_context *ctx, sft__node *n) {
    sft__mask_mul(ctx, SFT__CF(n->out->grad), (const uint64_t *)n->saved->data, 0, sft_tensor_numel(n->out),
                  sft__dropout_scale(n->f[0]), SFT__F(n->in[0]->grad), 1);
    return SFT_OK;
}

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

   Flash-style, in tiles of ATTN_QB query rows x ATTN_KB keys. A forward task
   takes one block of query rows of one head and walks the key blocks it can
   see: S = Q K^T is one tile GEMM, the tile is masked (causal, sequence ids),
   each row keeps a running maximum and sum of exponentials (the online softmax)
   and rescales its running output before O += P V, a second tile GEMM. Scores
   exist one tile at a time per thread; no T x T matrix is ever made. A key/value
   head serves its group of query heads in place, never copied.

   Backward recomputes P from the saved log-sum-exp and runs in two passes so
   that every gradient element has one owner that sums in a fixed order: tasks
   of (key/value head, key block) accumulate dV += P^T dO and dK += dS^T Q over
   every query row that sees the block; tasks of (query head, query block)
   accumulate dQ += dS K; here dP = dO V^T and dS = P (dP - delta) scale.

   The tile GEMMs run the path's micro-kernel on operands packed once per call:
   each B operand (K and V as the keys' side of S and dP; V, K, Q and dO as the
   right side of P V, dS K, dS^T Q and P^T dO) is packed into the micro-kernel's
   panels before the tasks start, and the A side (Q and dO rows, the P and dS
   tiles, transposed or not) is read in place. Visibility is a range of keys
   per query row when every sequence id forms one run (as packing makes them):
   a tile nobody in it can see is skipped, and only the tiles a range cuts are
   masked. Other sequence ids are tested key by key. Results depend on the path
   (its micro-kernel) but never on the thread count. */

#define SFT__ATTN_MAX_D 512
#define SFT__ATTN_QB 48        /* query rows per tile: a multiple of every path's MR */
#define SFT__ATTN_KB 64        /* keys per tile: a multiple of every path's NR       */
/* per-thread scratch: S and dP tiles, the running output, two row blocks copied
   out of Q / dO (a partial block at the end of the tensor) */
#define SFT__ATTN_SCRATCH (2 * (size_t)SFT__ATTN_QB * SFT__ATTN_KB + 3 * (size_t)SFT__ATTN_QB * SFT__ATTN_MAX_D)

typedef struct sft__attn_dims { int64_t B, T, Hq, Hkv, D, group, nqb, nkb, Dp; } sft__attn_dims;

static sft__attn_dims sft__attn_dims_of(const sft__node *n, int nr) {
    sft__attn_dims d;
    d.B = n->in[0]->shape[0]; d.T = n->in[0]->shape[1]; d.Hq = n->in[0]->shape[2]; d.D = n->in[0]->shape[3];
    d.Hkv = n->in[1]->shape[2]; d.group = d.Hq / d.Hkv;
    d.nqb = (d.T + SFT__ATTN_QB - 1) / SFT__ATTN_QB;
    d.nkb = (d.T + SFT__ATTN_KB - 1) / SFT__ATTN_KB;
    d.Dp = (d.D + nr - 1) / nr * nr;          /* D rounded up to whole panels */
    return d;
}

/* Packed operands, each [B, H, blocks] of panels:
   keys_t  a block of KB keys as the columns of B (depth D): S = Q K^T, dP = dO V^T
   rows_n  a block of rows as the depth of B (columns = D): P V, dS K, dS^T Q, P^T dO */
static size_t sft__attn_keys_t_size(const sft__attn_dims *d) { return (size_t)SFT__ATTN_KB * (size_t)d->D; }
static size_t sft__attn_rows_n_size(const sft__attn_dims *d, int64_t rows) { return (size_t)rows * (size_t)d->Dp; }

typedef struct sft__attn_job {
    sft_context *ctx;
    const sft__node *n;
    const sft__cpu_kernels *k;
    sft__attn_dims d;
    const int32_t *lo;          /* [B, T] the first key each query sees, or NULL: test key by key */
    float *kt, *vt, *vn, *kn, *qn, *don;   /* packed operands (see above), NULL if unused */
} sft__attn_job;

/* One thread's tiles and buffers. */
typedef struct sft__attn_tiles { float *s, *dp, *acc, *qrows, *grows; } sft__attn_tiles;

static sft__attn_tiles sft__attn_tiles_of(const sft__attn_job *job, int thread) {
    sft__attn_tiles t;
    t.s = job->ctx->attn_scratch + (size_t)thread * SFT__ATTN_SCRATCH;
    t.dp = t.s + SFT__ATTN_QB * SFT__ATTN_KB;
    t.acc = t.dp + SFT__ATTN_QB * SFT__ATTN_KB;
    t.qrows = t.acc + SFT__ATTN_QB * SFT__ATTN_MAX_D;
    t.grows = t.qrows + SFT__ATTN_QB * SFT__ATTN_MAX_D;
    return t;
}

/* row t of head h of a [B, T, H, D] tensor */
static const float *sft__attn_row(const float *base, const sft__attn_dims *d, int64_t b, int64_t t, int64_t h, int64_t H) {
    return base + ((b * d->T + t) * H + h) * d->D;
}

/* --- packing --------------------------------------------------------------- */

/* sft__attn_pack_keys_t: rows [r0, r0 + KB) of head h as B's columns, depth D:
   dst[(p * D + c) * nr + j] = X[r0 + p * nr + j][c]; rows past T are zero. */
static void sft__attn_pack_keys_t(const sft__attn_dims *d, const float *x, int64_t H, int64_t b, int64_t h, int64_t r0, int nr,
                                  float *dst) {
    int64_t p, j, c;
    for (p = 0; p < SFT__ATTN_KB / nr; p++)
        for (j = 0; j < nr; j++) {
            int64_t r = r0 + p * nr + j;
            const float *src = r < d->T ? sft__attn_row(x, d, b, r, h, H) : NULL;
            for (c = 0; c < d->D; c++) dst[(p * d->D + c) * nr + j] = src ? src[c] : 0.0f;
        }
}

/* sft__attn_pack_rows_n: rows [r0, r0 + rows) of head h as B's depth, columns
   D: dst[(p * rows + r) * nr + j] = X[r0 + r][p * nr + j]; rows past T and
   columns past D are zero. */
static void sft__attn_pack_rows_n(const sft__attn_dims *d, const float *x, int64_t H, int64_t b, int64_t h, int64_t r0,
                                  int64_t rows, int nr, float *dst) {
    int64_t p, r, j;
    for (r = 0; r < rows; r++) {
        const float *src = r0 + r < d->T ? sft__attn_row(x, d, b, r0 + r, h, H) : NULL;
        for (p = 0; p < d->Dp / nr; p++)
            for (j = 0; j < nr; j++) {
                int64_t c = p * nr + j;
                dst[(p * rows + r) * nr + j] = src && c < d->D ? src[c] : 0.0f;
            }
    }
}

/* What a packing task packs: one (tensor, batch, head, block). */
typedef struct sft__attn_pack_job {
    const sft__attn_job *job;
    const float *src[6];
    float       *dst[6];
    int64_t      H[6];
    int          keys_t[6];     /* 1: keys_t (KB rows), 0: rows_n (block rows) */
    int64_t      block[6];      /* rows per block */
    int          n;
} sft__attn_pack_job;

static void sft__attn_pack_task(void *arg, int64_t task, int thread) {
    const sft__attn_pack_job *pj = (const sft__attn_pack_job *)arg;
    const sft__attn_dims *d = &pj->job->d;
    int nr = pj->job->k->nr;
    int64_t per = 0, i, t = task;
    (void)thread;
    for (i = 0; i < pj->n; i++) {                /* task = (operand, b, h, block) in order */
        int64_t nb = (d->T + pj->block[i] - 1) / pj->block[i];
        per = d->B * pj->H[i] * nb;
        if (t < per) {
            int64_t b = t / (pj->H[i] * nb), h = (t / nb) % pj->H[i], blk = t % nb;
            size_t size = pj->keys_t[i] ? sft__attn_keys_t_size(d) : sft__attn_rows_n_size(d, pj->block[i]);
            float *dst = pj->dst[i] + (size_t)((b * pj->H[i] + h) * nb + blk) * size;
            if (pj->keys_t[i]) sft__attn_pack_keys_t(d, pj->src[i], pj->H[i], b, h, blk * pj->block[i], nr, dst);
            else sft__attn_pack_rows_n(d, pj->src[i], pj->H[i], b, h, blk * pj->block[i], pj->block[i], nr, dst);
            return;
        }
        t -= per;
    }
}

static void sft__attn_pack_add(sft__attn_pack_job *pj, const float *src, int64_t H, int keys_t, int64_t block, float *dst) {
    int i = pj->n++;
    pj->src[i] = src; pj->H[i] = H; pj->keys_t[i] = keys_t; pj->block[i] = block; pj->dst[i] = dst;
}

static void sft__attn_pack_run(sft_context *ctx, sft__attn_pack_job *pj) {
    const sft__attn_dims *d = &pj->job->d;
    int64_t tasks = 0;
    int i;
    for (i = 0; i < pj->n; i++) tasks += d->B * pj->H[i] * ((d->T + pj->block[i] - 1) / pj->block[i]);
    sft__parallel(ctx, tasks, sft__attn_pack_task, pj);
}

/* the packed block blk of (b, h) of an operand */
static const float *sft__attn_keys_t_at(const sft__attn_job *job, const float *base, int64_t H, int64_t b, int64_t h, int64_t blk) {
    return base + (size_t)((b * H + h) * job->d.nkb + blk) * sft__attn_keys_t_size(&job->d);
}

static const float *sft__attn_rows_n_at(const sft__attn_job *job, const float *base, int64_t H, int64_t b, int64_t h, int64_t blk,
                                        int64_t rows, int64_t nblocks) {
    return base + (size_t)((b * H + h) * nblocks + blk) * sft__attn_rows_n_size(&job->d, rows);
}

/* --- tile GEMMs ---------------------------------------------------------------- */

/* sft__attn_tile_gemm: C[M x N] (+)= A . B over depth K, A read in place
   (element (r, k) at a[r * a_rs + k * a_ks], M rows readable in whole MR
   panels), B packed in panels of nr columns that start depth floats apart
   (the packed depth, K or more). */
static void sft__attn_tile_gemm(const sft__cpu_kernels *k, int64_t M, int64_t N, int64_t K, const float *a, int64_t a_rs,
                                int64_t a_ks, const float *bp, int64_t depth, float *c, int64_t ldc, int add) {
    float edge[16 * 32];
    int64_t ir, jr, r, q;
    for (jr = 0; jr < N; jr += k->nr)
        for (ir = 0; ir < M; ir += k->mr) {
            int64_t rows = M - ir < k->mr ? M - ir : k->mr, cols = N - jr < k->nr ? N - jr : k->nr;
            const float *ap = a + ir * a_rs, *b = bp + (jr / k->nr) * depth * k->nr;
            float *cc = c + ir * ldc + jr;
            if (rows == k->mr && cols == k->nr) { k->micro(K, ap, a_rs, a_ks, b, cc, ldc, add); continue; }
            k->micro(K, ap, a_rs, a_ks, b, edge, k->nr, 0);
            for (r = 0; r < rows; r++)
                for (q = 0; q < cols; q++) cc[r * ldc + q] = add ? cc[r * ldc + q] + edge[r * k->nr + q] : edge[r * k->nr + q];
        }
}

/* sft__attn_a_rows: rows [t0, t0 + rows) of head h as an A operand: in place
   when a whole block of rows exists, else copied into buf, zero-padded to QB
   rows (the micro-kernel reads whole MR panels). *rs gets the row stride. */
static const float *sft__attn_a_rows(const sft__attn_dims *d, const float *x, int64_t H, int64_t b, int64_t h, int64_t t0,
                                     int64_t rows, float *buf, int64_t *rs) {
    int64_t r;
    if (t0 + SFT__ATTN_QB <= d->T) { *rs = H * d->D; return sft__attn_row(x, d, b, t0, h, H); }
    for (r = 0; r < SFT__ATTN_QB; r++) {
        if (r < rows) memcpy(buf + r * d->D, sft__attn_row(x, d, b, t0 + r, h, H), (size_t)d->D * sizeof(float));
        else memset(buf + r * d->D, 0, (size_t)d->D * sizeof(float));
    }
    *rs = d->D;
    return buf;
}

/* --- visibility ----------------------------------------------------------------- */

static int sft__attn_cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* sft__attn_ranges: lo[b, t] = the first key query t sees (keys lo..t), when
   every sequence id of each batch row forms a single run; 0 (test key by key)
   when some id comes back after another. */
static int sft__attn_ranges(const int32_t *ids, int64_t B, int64_t T, int32_t *lo, int32_t *runs) {
    int64_t b, t;
    for (b = 0; b < B; b++) {
        const int32_t *id = ids ? ids + b * T : NULL;
        int64_t n = 0;
        for (t = 0; t < T; t++) {
            int start = t == 0 || (id && id[t] != id[t - 1]);
            lo[b * T + t] = start ? (int32_t)t : lo[b * T + t - 1];
            if (start && id) runs[n++] = id[t];
        }
        if (!id) continue;
        qsort(runs, (size_t)n, sizeof *runs, sft__attn_cmp_i32);
        for (t = 1; t < n; t++) if (runs[t] == runs[t - 1]) return 0;
    }
    return 1;
}

/* sft__attn_tile_visible: does any query of [t0, t0 + rows) see a key of [j0, j0 + cols)? */
static int sft__attn_tile_visible(const sft__attn_job *job, int64_t b, int64_t t0, int64_t rows, int64_t j0, int64_t cols) {
    int64_t i;
    if (j0 > t0 + rows - 1) return 0;
    if (!job->lo) return 1;
    for (i = 0; i < rows; i++)
        if (job->lo[b * job->d.T + t0 + i] < j0 + cols && t0 + i >= j0) return 1;
    return 0;
}

/* sft__attn_scores: s[rows x KB] = Q[t0..] K[j0..]^T * scale for the visible
   pairs, -inf for the others (and for the columns past cols). */
static void sft__attn_scores(const sft__attn_job *job, const sft__attn_tiles *tl, int64_t b, int64_t h, int64_t t0,
                             int64_t rows, int64_t j0, int64_t cols) {
    const sft__node *n = job->n;
    const sft__attn_dims *d = &job->d;
    const int32_t *ids = n->in[3] ? (const int32_t *)n->in[3]->data + b * d->T : NULL;
    float scale = n->f[0];
    int64_t i, j, rs;
    const float *q = sft__attn_a_rows(d, SFT__CF(n->in[0]), d->Hq, b, h, t0, rows, tl->qrows, &rs);
    sft__attn_tile_gemm(job->k, rows, SFT__ATTN_KB, d->D, q, rs, 1,
                        sft__attn_keys_t_at(job, job->kt, d->Hkv, b, h / d->group, j0 / SFT__ATTN_KB), d->D, tl->s, SFT__ATTN_KB, 0);
    for (i = 0; i < rows; i++) {
        float *sr = tl->s + i * SFT__ATTN_KB;
        int64_t from = 0, to = t0 + i - j0 + 1;           /* visible columns [from, to) */
        if (job->lo) { from = job->lo[b * d->T + t0 + i] - j0; if (from < 0) from = 0; }
        if (to > cols) to = cols;
        if (!job->lo && ids)
            for (j = 0; j < to; j++) sr[j] = ids[t0 + i] == ids[j0 + j] ? sr[j] * scale : -INFINITY;
        else {
            for (j = 0; j < from && j < SFT__ATTN_KB; j++) sr[j] = -INFINITY;
            for (j = from; j < to; j++) sr[j] *= scale;
        }
        for (j = to > from ? to : from; j < SFT__ATTN_KB; j++) sr[j] = -INFINITY;
    }
}

/* --- forward ---------------------------------------------------------------- */

static void sft__attn_fwd_task(void *arg, int64_t task, int thread) {
    const sft__attn_job *job = (const sft__attn_job *)arg;
    const sft__node *n = job->n;
    const sft__attn_dims *d = &job->d;
    sft__attn_tiles tl = sft__attn_tiles_of(job, thread);
    int64_t b = task / (d->Hq * d->nqb), h = (task / d->nqb) % d->Hq, hk = h / d->group;
    int64_t t0 = (task % d->nqb) * SFT__ATTN_QB, rows = d->T - t0 < SFT__ATTN_QB ? d->T - t0 : SFT__ATTN_QB, j0, i, j, c;
    float m[SFT__ATTN_QB], l[SFT__ATTN_QB];
    for (i = 0; i < rows; i++) { m[i] = -INFINITY; l[i] = 0.0f; }
    memset(tl.acc, 0, (size_t)(rows * d->Dp) * sizeof(float));
    for (j0 = 0; j0 < t0 + rows; j0 += SFT__ATTN_KB) {
        int64_t cols = d->T - j0 < SFT__ATTN_KB ? d->T - j0 : SFT__ATTN_KB;
        if (!sft__attn_tile_visible(job, b, t0, rows, j0, cols)) continue;
        sft__attn_scores(job, &tl, b, h, t0, rows, j0, cols);
        for (i = 0; i < rows; i++) {            /* online softmax, row by row */
            float *sr = tl.s + i * SFT__ATTN_KB, mx = m[i], corr;
            for (j = 0; j < cols; j++) if (sr[j] > mx) mx = sr[j];
            if (mx == -INFINITY) { for (j = 0; j < SFT__ATTN_KB; j++) sr[j] = 0.0f; continue; }
            corr = expf(m[i] - mx);             /* 0 on the first visible tile */
            m[i] = mx;
            l[i] *= corr;
            for (c = 0; c < d->D; c++) tl.acc[i * d->Dp + c] *= corr;
            job->k->exp_shift(sr, SFT__ATTN_KB, mx);
            for (j = 0; j < cols; j++) l[i] += sr[j];
        }
        sft__attn_tile_gemm(job->k, rows, d->D, cols, tl.s, SFT__ATTN_KB, 1,
                            sft__attn_rows_n_at(job, job->vn, d->Hkv, b, hk, j0 / SFT__ATTN_KB, SFT__ATTN_KB, d->nkb), SFT__ATTN_KB,
                            tl.acc, d->Dp, 1);
    }
    for (i = 0; i < rows; i++) {
        float *o = SFT__F(n->out) + ((b * d->T + t0 + i) * d->Hq + h) * d->D, inv = 1.0f / l[i];
        for (c = 0; c < d->D; c++) o[c] = tl.acc[i * d->Dp + c] * inv;
        SFT__F(n->saved)[(b * d->Hq + h) * d->T + t0 + i] = m[i] + logf(l[i]);
    }
}

/* --- backward --------------------------------------------------------------- */

/* Backward pass 0: delta = dO . O for every row (saved row 1). */
static void sft__attn_delta_rows(void *arg, int64_t r0, int64_t r1) {
    const sft__attn_job *job = (const sft__attn_job *)arg;
    const sft__node *n = job->n;
    const sft__attn_dims *d = &job->d;
    int64_t r;
    for (r = r0; r < r1; r++) {               /* r = (b * Hq + h) * T + t */
        int64_t b = r / (d->Hq * d->T), h = (r / d->T) % d->Hq, t = r % d->T, row = ((b * d->T + t) * d->Hq + h) * d->D;
        SFT__F(n->saved)[d->B * d->Hq * d->T + r] = job->k->dot(SFT__CF(n->out->grad) + row, SFT__CF(n->out) + row, d->D);
    }
}

/* sft__attn_p_ds: for the tile (query rows t0.., keys j0..) leave P in s and
   dS = P (dO V^T - delta) scale in dp (zero outside the tile). */
static void sft__attn_p_ds(const sft__attn_job *job, const sft__attn_tiles *tl, int64_t b, int64_t h, int64_t t0,
                           int64_t rows, int64_t j0, int64_t cols) {
    const sft__node *n = job->n;
    const sft__attn_dims *d = &job->d;
    const float *lse = SFT__CF(n->saved) + (b * d->Hq + h) * d->T, *delta = lse + d->B * d->Hq * d->T, *go;
    int64_t i, j, rs;
    sft__attn_scores(job, tl, b, h, t0, rows, j0, cols);
    go = sft__attn_a_rows(d, SFT__CF(n->out->grad), d->Hq, b, h, t0, rows, tl->grows, &rs);
    sft__attn_tile_gemm(job->k, rows, SFT__ATTN_KB, d->D, go, rs, 1,
                        sft__attn_keys_t_at(job, job->vt, d->Hkv, b, h / d->group, j0 / SFT__ATTN_KB), d->D, tl->dp, SFT__ATTN_KB, 0);
    for (i = 0; i < rows; i++) {
        float *p = tl->s + i * SFT__ATTN_KB, *g = tl->dp + i * SFT__ATTN_KB;
        job->k->exp_shift(p, SFT__ATTN_KB, lse[t0 + i]);               /* 0 where masked */
        for (j = 0; j < SFT__ATTN_KB; j++) g[j] = p[j] * (g[j] - delta[t0 + i]) * n->f[0];
    }
    for (i = rows; i < SFT__ATTN_QB; i++) {       /* the rows a transposed tile reads as padding */
        memset(tl->s + i * SFT__ATTN_KB, 0, SFT__ATTN_KB * sizeof(float));
        memset(tl->dp + i * SFT__ATTN_KB, 0, SFT__ATTN_KB * sizeof(float));
    }
}

/* Backward pass 1: one task per (batch, kv head, key block) adds dV and dK. */
static void sft__attn_dkv_task(void *arg, int64_t task, int thread) {
    const sft__attn_job *job = (const sft__attn_job *)arg;
    const sft__node *n = job->n;
    const sft__attn_dims *d = &job->d;
    sft__attn_tiles tl = sft__attn_tiles_of(job, thread);
    int64_t b = task / (d->Hkv * d->nkb), hk = (task / d->nkb) % d->Hkv, kb = task % d->nkb, j0 = kb * SFT__ATTN_KB;
    int64_t cols = d->T - j0 < SFT__ATTN_KB ? d->T - j0 : SFT__ATTN_KB, h, t0;
    int dk = n->in[1]->requires_grad, dv = n->in[2]->requires_grad;
    float *dK = dk ? SFT__F(n->in[1]->grad) + ((b * d->T + j0) * d->Hkv + hk) * d->D : NULL;
    float *dV = dv ? SFT__F(n->in[2]->grad) + ((b * d->T + j0) * d->Hkv + hk) * d->D : NULL;
    for (h = hk * d->group; h < (hk + 1) * d->group; h++)
        for (t0 = j0 / SFT__ATTN_QB * SFT__ATTN_QB; t0 < d->T; t0 += SFT__ATTN_QB) {   /* query blocks that may see these keys */
            int64_t rows = d->T - t0 < SFT__ATTN_QB ? d->T - t0 : SFT__ATTN_QB, qb = t0 / SFT__ATTN_QB;
            if (!sft__attn_tile_visible(job, b, t0, rows, j0, cols)) continue;
            sft__attn_p_ds(job, &tl, b, h, t0, rows, j0, cols);
            if (dv)   /* dV += P^T dO */
                sft__attn_tile_gemm(job->k, cols, d->D, rows, tl.s, 1, SFT__ATTN_KB,
                                    sft__attn_rows_n_at(job, job->don, d->Hq, b, h, qb, SFT__ATTN_QB, d->nqb), SFT__ATTN_QB, dV,
                                    d->Hkv * d->D, 1);
            if (dk)   /* dK += dS^T Q */
                sft__attn_tile_gemm(job->k, cols, d->D, rows, tl.dp, 1, SFT__ATTN_KB,
                                    sft__attn_rows_n_at(job, job->qn, d->Hq, b, h, qb, SFT__ATTN_QB, d->nqb), SFT__ATTN_QB, dK,
                                    d->Hkv * d->D, 1);
        }
}

/* Backward pass 2: one task per (batch, query head, query block) adds dQ += dS K. */
static void sft__attn_dq_task(void *arg, int64_t task, int thread) {
    const sft__attn_job *job = (const sft__attn_job *)arg;
    const sft__node *n = job->n;
    const sft__attn_dims *d = &job->d;
    sft__attn_tiles tl = sft__attn_tiles_of(job, thread);
    int64_t b = task / (d->Hq * d->nqb), h = (task / d->nqb) % d->Hq, hk = h / d->group;
    int64_t t0 = (task % d->nqb) * SFT__ATTN_QB, rows = d->T - t0 < SFT__ATTN_QB ? d->T - t0 : SFT__ATTN_QB, j0;
    float *dQ = SFT__F(n->in[0]->grad) + ((b * d->T + t0) * d->Hq + h) * d->D;
    for (j0 = 0; j0 < t0 + rows; j0 += SFT__ATTN_KB) {
        int64_t cols = d->T - j0 < SFT__ATTN_KB ? d->T - j0 : SFT__ATTN_KB;
        if (!sft__attn_tile_visible(job, b, t0, rows, j0, cols)) continue;
        sft__attn_p_ds(job, &tl, b, h, t0, rows, j0, cols);
        sft__attn_tile_gemm(job->k, rows, d->D, cols, tl.dp, SFT__ATTN_KB, 1,
                            sft__attn_rows_n_at(job, job->kn, d->Hkv, b, hk, j0 / SFT__ATTN_KB, SFT__ATTN_KB, d->nkb), SFT__ATTN_KB,
                            dQ, d->Hq * d->D, 1);
    }
}

/* --- the op ---------------------------------------------------------------------- */

/* The call's temporaries (step tensors given back when the kernel returns). */
typedef struct sft__attn_temps { sft_tensor *t[7]; int n; } sft__attn_temps;

static sft_status sft__attn_temp(sft_context *ctx, sft__attn_temps *tmp, sft_dtype dtype, int64_t count, void **out) {
    SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, dtype, 1, &count, &tmp->t[tmp->n]));
    *out = tmp->t[tmp->n++]->data;
    return SFT_OK;
}

static void sft__attn_temps_release(sft_context *ctx, sft__attn_temps *tmp) {
    while (tmp->n > 0) sft__tensor_release(ctx, tmp->t[--tmp->n]);
}

/* sft__attn_job_init: the dimensions, visibility ranges and per-thread tiles */
static sft_status sft__attn_job_init(sft_context *ctx, sft__node *n, sft__attn_job *job, sft__attn_temps *tmp) {
    int32_t *lo, *runs;
    memset(job, 0, sizeof *job);
    memset(tmp, 0, sizeof *tmp);
    job->ctx = ctx; job->n = n; job->k = sft__cpu_kernels_of(ctx); job->d = sft__attn_dims_of(n, job->k->nr);
    if (!ctx->attn_scratch) {
        ctx->attn_scratch = (float *)sft__alloc(ctx, (size_t)ctx->threads * SFT__ATTN_SCRATCH * sizeof(float));
        if (!ctx->attn_scratch) return sft__fail(SFT_ERR_NOMEM, "attention: cannot allocate the per-thread tiles");
    }
    SFT__TRY(sft__attn_temp(ctx, tmp, SFT_I32, 2 * job->d.B * job->d.T, (void **)&lo));
    runs = lo + job->d.B * job->d.T;
    if (!ctx->plan_only && sft__attn_ranges(n->in[3] ? (const int32_t *)n->in[3]->data : NULL, job->d.B, job->d.T, lo, runs))
        job->lo = lo;
    return SFT_OK;
}

/* the packed size of an operand over all (b, h, blocks) */
static int64_t sft__attn_packed_floats(const sft__attn_dims *d, int64_t H, int keys_t, int64_t block) {
    int64_t nb = (d->T + block - 1) / block;
    return d->B * H * nb * (int64_t)(keys_t ? sft__attn_keys_t_size(d) : sft__attn_rows_n_size(d, block));
}

static sft_status sft__attn_fwd_run(sft_context *ctx, sft__node *n, sft__attn_temps *tmp) {
    sft__attn_job job;
    sft__attn_pack_job pj;
    SFT__TRY(sft__attn_job_init(ctx, n, &job, tmp));
    SFT__TRY(sft__attn_temp(ctx, tmp, SFT_F32, sft__attn_packed_floats(&job.d, job.d.Hkv, 1, SFT__ATTN_KB), (void **)&job.kt));
    SFT__TRY(sft__attn_temp(ctx, tmp, SFT_F32, sft__attn_packed_floats(&job.d, job.d.Hkv, 0, SFT__ATTN_KB), (void **)&job.vn));
    if (ctx->plan_only) return SFT_OK;
    memset(&pj, 0, sizeof pj);
    pj.job = &job;
    sft__attn_pack_add(&pj, SFT__CF(n->in[1]), job.d.Hkv, 1, SFT__ATTN_KB, job.kt);
    sft__attn_pack_add(&pj, SFT__CF(n->in[2]), job.d.Hkv, 0, SFT__ATTN_KB, job.vn);
    sft__attn_pack_run(ctx, &pj);
    sft__parallel(ctx, job.d.B * job.d.Hq * job.d.nqb, sft__attn_fwd_task, &job);
    return SFT_OK;
}

static sft_status sft__attn_bwd_run(sft_context *ctx, sft__node *n, sft__attn_temps *tmp) {
    sft__attn_job job;
    sft__attn_pack_job pj;
    const sft__attn_dims *d = &job.d;
    int dkv = n->in[1]->requires_grad || n->in[2]->requires_grad, dq = n->in[0]->requires_grad;
    SFT__TRY(sft__attn_job_init(ctx, n, &job, tmp));
    SFT__TRY(sft__attn_temp(ctx, tmp, SFT_F32, sft__attn_packed_floats(d, d->Hkv, 1, SFT__ATTN_KB), (void **)&job.kt));
    SFT__TRY(sft__attn_temp(ctx, tmp, SFT_F32, sft__attn_packed_floats(d, d->Hkv, 1, SFT__ATTN_KB), (void **)&job.vt));
    if (dkv) {
        SFT__TRY(sft__attn_temp(ctx, tmp, SFT_F32, sft__attn_packed_floats(d, d->Hq, 0, SFT__ATTN_QB), (void **)&job.qn));
        SFT__TRY(sft__attn_temp(ctx, tmp, SFT_F32, sft__attn_packed_floats(d, d->Hq, 0, SFT__ATTN_QB), (void **)&job.don));
    }
    if (dq) SFT__TRY(sft__attn_temp(ctx, tmp, SFT_F32, sft__attn_packed_floats(d, d->Hkv, 0, SFT__ATTN_KB), (void **)&job.kn));
    if (ctx->plan_only) return SFT_OK;
    memset(&pj, 0, sizeof pj);
    pj.job = &job;
    sft__attn_pack_add(&pj, SFT__CF(n->in[1]), d->Hkv, 1, SFT__ATTN_KB, job.kt);
    sft__attn_pack_add(&pj, SFT__CF(n->in[2]), d->Hkv, 1, SFT__ATTN_KB, job.vt);
    if (dkv) {
        sft__attn_pack_add(&pj, SFT__CF(n->in[0]), d->Hq, 0, SFT__ATTN_QB, job.qn);
        sft__attn_pack_add(&pj, SFT__CF(n->out->grad), d->Hq, 0, SFT__ATTN_QB, job.don);
    }
    if (dq) sft__attn_pack_add(&pj, SFT__CF(n->in[1]), d->Hkv, 0, SFT__ATTN_KB, job.kn);
    sft__attn_pack_run(ctx, &pj);
    sft__parallel_rows(ctx, d->B * d->Hq * d->T, 256, sft__attn_delta_rows, &job);
    if (dkv) sft__parallel(ctx, d->B * d->Hkv * d->nkb, sft__attn_dkv_task, &job);
    if (dq) sft__parallel(ctx, d->B * d->Hq * d->nqb, sft__attn_dq_task, &job);
    return SFT_OK;
}

static sft_status sft__cpu_attention_fwd(sft_context *ctx, sft__node *n) {
    sft__attn_temps tmp;
    sft_status s = sft__attn_fwd_run(ctx, n, &tmp);
    sft__attn_temps_release(ctx, &tmp);
    return s;
}

static sft_status sft__cpu_attention_bwd(sft_context *ctx, sft__node *n) {
    sft__attn_temps tmp;
    sft_status s = sft__attn_bwd_run(ctx, n, &tmp);
    sft__attn_temps_release(ctx, &tmp);
    return s;
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
   f[2] = 1: the weight is frozen and multiplied in bf16,
   i[0] = ignore_index, i[1] = the vocabulary chunk Vc; saved = [4, N] per-row
   running max, (unused), label logit, sum of logits (after forward: row 0 holds
   the log-sum-exp and row 1 the row's loss), followed by the chunk buffer [N,
   Vc]. The logits exist one vocabulary chunk at a time: forward keeps
   an online log-sum-exp across chunks; backward recomputes each chunk, turns it
   into d logits in place and feeds it to the two gradient GEMMs.

   ptr = an sft__lce_metrics or NULL: then forward also counts, over the rows
   with a label, the argmax (the first largest logit) against the label and the
   entropy log Z - E[logit], kept online as the log-sum-exp is: the running sums
   S = sum exp(l - m) and W = sum exp(l - m) (l - m) are rescaled when the
   running maximum m grows (W' = e^(m - m') (W + (m - m') S)). */

typedef struct sft__lce_metrics {
    int64_t tokens;
    double  correct, entropy;
} sft__lce_metrics;

/* forward's running state per row: the maximum (saved row 0), S and W (see
   above), and with metrics the first largest logit's value and index */
typedef struct sft__lce_rows { double *S, *W; float *best_v; int64_t *best_i; } sft__lce_rows;

typedef struct sft__lce_job {
    sft__node *n;
    int64_t v0, vc, N, V;
    float *buf, *st;
    sft__lce_rows rows;
    sft__lce_metrics *mt;
    const sft__cpu_kernels *k;
} sft__lce_job;

/* f[2] = 1: the weight is frozen and multiplied in bf16 */
static int sft__lce_bf16(const sft__node *n) { return n->f[2] != 0.0f && !n->in[1]->requires_grad; }

/* sft__lce_chunk_logits: buf[N, vc] = hidden . weight[v0 : v0+vc]^T */
static sft_status sft__lce_chunk_logits(sft_context *ctx, const sft__lce_job *j) {
    int64_t D = j->n->in[0]->shape[j->n->in[0]->ndim - 1];
    sft__mat h = sft__mat_of(SFT__CF(j->n->in[0]), D, 1);
    return sft__gemm_f32w(ctx, j->N, h, SFT__CF(j->n->in[1]) + j->v0 * D, j->vc, D, 1, sft__lce_bf16(j->n), j->buf, j->vc, 0);
}

/* One chunk into each row's running state: the new maximum m rescales S and W
   (W' = e^(old - m) (W + (old - m) S), S' = e^(old - m) S), then the chunk's
   exponentials are added; the label's logit, the logits' sum (for label
   smoothing) and the first largest logit (for the metrics) are picked up. */
static void sft__lce_fwd_rows(void *arg, int64_t b, int64_t e) {
    const sft__lce_job *j = (const sft__lce_job *)arg;
    const int32_t *labels = (const int32_t *)j->n->in[2]->data;
    float *m = j->st, *lab = j->st + 2 * j->N, *tot = j->st + 3 * j->N;
    int smoothing = j->n->f[0] > 0.0f;
    int64_t r, c;
    for (r = b; r < e; r++) {
        const float *x = j->buf + r * j->vc;
        float cm = m[r], chunk_max = -INFINITY;
        double *S = &j->rows.S[r], *W = &j->rows.W[r];
        for (c = 0; c < j->vc; c++) if (x[c] > chunk_max) chunk_max = x[c];
        if (chunk_max > cm) cm = chunk_max;
        if (*S > 0.0) {
            double scale = exp((double)m[r] - (double)cm);
            *W = scale * (*W + ((double)m[r] - (double)cm) * *S);
            *S *= scale;
        }
        j->k->exp_stats(x, j->vc, cm, S, W);
        m[r] = cm;
        if (smoothing) { float t = 0.0f; for (c = 0; c < j->vc; c++) t += x[c]; tot[r] += t; }
        if (labels[r] >= j->v0 && labels[r] < j->v0 + j->vc) lab[r] = x[labels[r] - j->v0];
        if (j->mt && chunk_max > j->rows.best_v[r])      /* the first index holding the largest logit */
            for (c = 0; c < j->vc; c++)
                if (x[c] == chunk_max) { j->rows.best_v[r] = chunk_max; j->rows.best_i[r] = j->v0 + c; break; }
    }
}

static void sft__lce_finish_rows(void *arg, int64_t b, int64_t e) {
    const sft__lce_job *j = (const sft__lce_job *)arg;
    const sft__node *n = j->n;
    const int32_t *labels = (const int32_t *)n->in[2]->data;
    float *lse = j->st, *loss = j->st + j->N, eps = n->f[0];
    int64_t r;
    for (r = b; r < e; r++) {
        float l = (float)((double)lse[r] + log(j->rows.S[r])), label_logit = j->st[2 * j->N + r], mean = j->st[3 * j->N + r] / (float)j->V;
        lse[r] = l;
        loss[r] = labels[r] == (int32_t)n->i[0] ? 0.0f : (1.0f - eps) * (l - label_logit) + eps * (l - mean);
    }
}

static sft_status sft__lce_fwd_run(sft_context *ctx, sft__node *n, sft__lce_job *j) {
    int64_t r;
    double total = 0.0;
    for (r = 0; r < j->N; r++) { j->st[r] = -INFINITY; j->st[j->N + r] = 0.0f; j->st[2 * j->N + r] = 0.0f; j->st[3 * j->N + r] = 0.0f; }
    for (j->v0 = 0; j->v0 < j->V; j->v0 += n->i[1]) {
        j->vc = j->V - j->v0 < n->i[1] ? j->V - j->v0 : n->i[1];
        SFT__TRY(sft__lce_chunk_logits(ctx, j));
        sft__parallel_rows(ctx, j->N, 8, sft__lce_fwd_rows, j);
    }
    sft__parallel_rows(ctx, j->N, 64, sft__lce_finish_rows, j);
    for (r = 0; r < j->N; r++) total += j->st[j->N + r];          /* fixed order, in double */
    SFT__F(n->out)[0] = (float)(total * n->f[1]);
    if (j->mt)
        for (r = 0; r < j->N; r++) {                               /* fixed order too */
            int32_t y = ((const int32_t *)n->in[2]->data)[r];
            if (y == (int32_t)n->i[0]) continue;
            j->mt->tokens++;
            j->mt->correct += j->rows.best_i[r] == y;
            j->mt->entropy += log(j->rows.S[r]) - j->rows.W[r] / j->rows.S[r];
        }
    return SFT_OK;
}

static sft_status sft__cpu_lce_fwd(sft_context *ctx, sft__node *n) {
    sft__lce_job j;
    sft_tensor *state = NULL;
    sft_status s;
    int64_t r, bytes;
    memset(&j, 0, sizeof j);
    j.n = n; j.N = sft_tensor_numel(n->in[2]); j.V = n->in[1]->shape[0]; j.k = sft__cpu_kernels_of(ctx);
    j.mt = (sft__lce_metrics *)(uintptr_t)n->ptr;
    j.st = SFT__F(n->saved); j.buf = j.st + 4 * j.N;
    bytes = j.N * (int64_t)(2 * sizeof(double) + sizeof(float) + sizeof(int64_t));
    SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_U8, 1, &bytes, &state));
    j.rows.S = (double *)state->data; j.rows.W = j.rows.S + j.N;
    j.rows.best_i = (int64_t *)(void *)(j.rows.W + j.N); j.rows.best_v = (float *)(void *)(j.rows.best_i + j.N);
    for (r = 0; r < j.N; r++) { j.rows.S[r] = 0.0; j.rows.W[r] = 0.0; j.rows.best_v[r] = -INFINITY; j.rows.best_i[r] = 0; }
    s = ctx->plan_only ? SFT_OK : sft__lce_fwd_run(ctx, n, &j);
    sft__tensor_release(ctx, state);
    return s;
}

/* d logits of a chunk, in place: k * (softmax - e/V - (1-e)[c == label]) on counted rows */
static void sft__lce_dlogits_rows(void *arg, int64_t b, int64_t e) {
    const sft__lce_job *j = (const sft__lce_job *)arg;
    const sft__node *n = j->n;
    const int32_t *labels = (const int32_t *)n->in[2]->data;
    float eps = n->f[0], k = SFT__CF(n->out->grad)[0] * n->f[1];
    int64_t r, c;
    for (r = b; r < e; r++) {
        float *x = j->buf + r * j->vc, lse = j->st[r], off = eps / (float)j->V;
        if (labels[r] == (int32_t)n->i[0]) { memset(x, 0, (size_t)j->vc * sizeof(float)); continue; }
        j->k->exp_shift(x, j->vc, lse);                            /* the softmax */
        for (c = 0; c < j->vc; c++) x[c] = k * (x[c] - off);
        if (labels[r] >= j->v0 && labels[r] < j->v0 + j->vc) x[labels[r] - j->v0] -= k * (1.0f - eps);
    }
}

static sft_status sft__cpu_lce_bwd(sft_context *ctx, sft__node *n) {
    sft__lce_job j;
    sft_tensor *h = n->in[0], *w = n->in[1];
    int64_t D = h->shape[h->ndim - 1];
    memset(&j, 0, sizeof j);
    j.n = n; j.N = sft_tensor_numel(n->in[2]); j.V = w->shape[0]; j.k = sft__cpu_kernels_of(ctx);
    j.st = SFT__F(n->saved); j.buf = j.st + 4 * j.N;
    for (j.v0 = 0; j.v0 < j.V; j.v0 += n->i[1]) {
        sft__mat g;
        j.vc = j.V - j.v0 < n->i[1] ? j.V - j.v0 : n->i[1];
        SFT__TRY(sft__lce_chunk_logits(ctx, &j));
        sft__parallel_rows(ctx, j.N, 8, sft__lce_dlogits_rows, &j);
        g = sft__mat_of(j.buf, j.vc, 1);
        if (h->requires_grad)   /* d hidden += g . weight[v0 : v0+vc] */
            SFT__TRY(sft__gemm_f32w(ctx, j.N, g, SFT__CF(w) + j.v0 * D, j.vc, D, 0, sft__lce_bf16(n), SFT__F(h->grad), D, 1));
        if (w->requires_grad)   /* d weight[v0 : v0+vc] += g^T . hidden */
            SFT__TRY(sft__gemm(ctx, j.vc, D, j.N, sft__mat_t(g), sft__mat_of(SFT__CF(h), D, 1), SFT__F(w->grad) + j.v0 * D, D, 1));
    }
    return SFT_OK;
}

/* ============================================================================
   === peft: 4-bit quantization
   bitsandbytes' rules (csrc kQuantizeBlockwise, dQuantizeNF4/FP4, dQuantize):
   per block absmax = max |x| in f32, every value multiplied by 1/absmax (f32),
   then coded by comparisons against the midpoints between code values with
   ">", so a value exactly on a midpoint takes the lower code and NaN (an
   all-zero block: 0 * inf) takes code 0. Dequantization is code * absmax in
   f32. Tested byte for byte against files bitsandbytes wrote. */

/* The codes as bitsandbytes stores them in quant_map (FP4 index 8 is +0 there). */
static const float sft__nf4_code[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
    -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
    0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};
static const float sft__fp4_code[16] = {
    0.0f, 5.208333333e-03f, 0.66666667f, 1.0f, 0.33333333f, 0.5f, 0.16666667f, 0.25f,
    0.0f, -5.208333333e-03f, -0.66666667f, -1.0f, -0.33333333f, -0.5f, -0.16666667f, -0.25f};

/* The NF4 decision tree's thresholds (f32, as the CUDA kernel compares), sorted:
   the code of x is the number of thresholds x is above. */
static const float sft__nf4_mid[15] = {
    -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f, -0.23460740596055984f,
    -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f, 0.1202552504837513f, 0.2035212516784668f,
    0.2920137718319893f, 0.3893125355243683f, 0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f};
/* FP4: the same on |x| (pivots of the CUDA tree), then the code of the i-th
   magnitude; the sign is bit 3. */
static const float sft__fp4_mid[7] = {0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f};
static const uint8_t sft__fp4_by_magnitude[8] = {0, 1, 6, 7, 4, 5, 2, 3};

/* bitsandbytes' signed dynamic 8-bit map (create_dynamic_map(signed=True)): the
   256 f32 values it generates, each written with the digits that give its bits
   back (the test compares them bit for bit). */
static const float sft__dynamic_map[256] = {
    -0.99296874f, -0.9789063f, -0.96484375f, -0.9507812f, -0.93671876f, -0.92265624f, -0.9085938f, -0.89453125f,
    -0.8804687f, -0.86640626f, -0.85234374f, -0.8382813f, -0.82421875f, -0.8101562f, -0.79609376f, -0.78203124f,
    -0.7679688f, -0.75390625f, -0.7398437f, -0.72578126f, -0.7117188f, -0.6976563f, -0.68359375f, -0.6695312f,
    -0.65546876f, -0.6414063f, -0.6273438f, -0.61328125f, -0.5992187f, -0.58515626f, -0.5710938f, -0.5570313f,
    -0.54296875f, -0.5289062f, -0.5148437f, -0.50078124f, -0.4867187f, -0.47265625f, -0.45859373f, -0.44453126f,
    -0.43046874f, -0.41640624f, -0.40234375f, -0.38828123f, -0.37421876f, -0.36015624f, -0.34609374f, -0.33203125f,
    -0.31796873f, -0.30390626f, -0.28984374f, -0.27578127f, -0.26171875f, -0.24765624f, -0.23359375f, -0.21953125f,
    -0.20546874f, -0.19140625f, -0.17734376f, -0.16328125f, -0.14921875f, -0.13515624f, -0.12109375f, -0.107031256f,
    -0.09859375f, -0.09578126f, -0.092968754f, -0.09015625f, -0.08734375f, -0.08453125f, -0.08171876f, -0.07890625f,
    -0.07609375f, -0.07328125f, -0.070468746f, -0.067656256f, -0.06484375f, -0.06203125f, -0.059218753f,
    -0.05640625f, -0.05359375f, -0.05078125f, -0.04796875f, -0.04515625f, -0.042343747f, -0.03953125f, -0.036718752f,
    -0.03390625f, -0.03109375f, -0.028281251f, -0.02546875f, -0.02265625f, -0.019843752f, -0.01703125f, -0.01421875f,
    -0.01140625f, -0.00971875f, -0.009156249f, -0.00859375f, -0.00803125f, -0.00746875f, -0.00690625f, -0.00634375f,
    -0.00578125f, -0.0052187503f, -0.0046562497f, -0.00409375f, -0.0035312497f, -0.00296875f, -0.00240625f,
    -0.00184375f, -0.0012812499f, -0.0009437501f, -0.00083125f, -0.00071875006f, -0.0006062501f, -0.00049375003f,
    -0.00038125002f, -0.00026875004f, -0.00015625001f, -8.875e-05f, -6.625e-05f, -4.375e-05f, -2.1249998e-05f,
    -7.75e-06f, -3.2500002e-06f, -5.5000004e-07f, 0.0f, 5.5000004e-07f, 3.2500002e-06f, 7.75e-06f, 2.1249998e-05f,
    4.375e-05f, 6.625e-05f, 8.875e-05f, 0.00015625001f, 0.00026875004f, 0.00038125002f, 0.00049375003f,
    0.0006062501f, 0.00071875006f, 0.00083125f, 0.0009437501f, 0.0012812499f, 0.00184375f, 0.00240625f, 0.00296875f,
    0.0035312497f, 0.00409375f, 0.0046562497f, 0.0052187503f, 0.00578125f, 0.00634375f, 0.00690625f, 0.00746875f,
    0.00803125f, 0.00859375f, 0.009156249f, 0.00971875f, 0.01140625f, 0.01421875f, 0.01703125f, 0.019843752f,
    0.02265625f, 0.02546875f, 0.028281251f, 0.03109375f, 0.03390625f, 0.036718752f, 0.03953125f, 0.042343747f,
    0.04515625f, 0.04796875f, 0.05078125f, 0.05359375f, 0.05640625f, 0.059218753f, 0.06203125f, 0.06484375f,
    0.067656256f, 0.070468746f, 0.07328125f, 0.07609375f, 0.07890625f, 0.08171876f, 0.08453125f, 0.08734375f,
    0.09015625f, 0.092968754f, 0.09578126f, 0.09859375f, 0.107031256f, 0.12109375f, 0.13515624f, 0.14921875f,
    0.16328125f, 0.17734376f, 0.19140625f, 0.20546874f, 0.21953125f, 0.23359375f, 0.24765624f, 0.26171875f,
    0.27578127f, 0.28984374f, 0.30390626f, 0.31796873f, 0.33203125f, 0.34609374f, 0.36015624f, 0.37421876f,
    0.38828123f, 0.40234375f, 0.41640624f, 0.43046874f, 0.44453126f, 0.45859373f, 0.47265625f, 0.4867187f,
    0.50078124f, 0.5148437f, 0.5289062f, 0.54296875f, 0.5570313f, 0.5710938f, 0.58515626f, 0.5992187f, 0.61328125f,
    0.6273438f, 0.6414063f, 0.65546876f, 0.6695312f, 0.68359375f, 0.6976563f, 0.7117188f, 0.72578126f, 0.7398437f,
    0.75390625f, 0.7679688f, 0.78203124f, 0.79609376f, 0.8101562f, 0.82421875f, 0.8382813f, 0.85234374f, 0.86640626f,
    0.8804687f, 0.89453125f, 0.9085938f, 0.92265624f, 0.93671876f, 0.9507812f, 0.96484375f, 0.9789063f, 0.99296874f,
    1.0f};

static unsigned sft__nf4_quantize(float x) {
    unsigned i, q = 0;
    for (i = 0; i < 15; i++) q += x > sft__nf4_mid[i];
    return q;
}

static unsigned sft__fp4_quantize(float x) {
    unsigned i, m = 0, sign = x < 0.0f ? 8u : 0u;
    float a = fabsf(x);
    for (i = 0; i < 7; i++) m += a > sft__fp4_mid[i];
    return sft__fp4_by_magnitude[m] + sign;
}

/* The 8-bit code of x on a sorted 256-value map: bitsandbytes' binary search
   and its midpoint rule, step for step (ties do not all go the same way). */
static unsigned sft__dynamic_quantize(const float *code, float x) {
    int pivot = 127, upper_pivot = 255, lower_pivot = 0, i;
    float lower = -1.0f, upper = 1.0f, val = code[pivot];
    for (i = 64; i > 0; i >>= 1) {
        if (x > val) { lower_pivot = pivot; lower = val; pivot += i; }
        else { upper_pivot = pivot; upper = val; pivot -= i; }
        val = code[pivot];
    }
    if (upper_pivot == 255) upper = code[upper_pivot];
    if (lower_pivot == 0) lower = code[lower_pivot];
    if (x > val) return x > (upper + val) * 0.5f ? (unsigned)upper_pivot : (unsigned)pivot;
    return x < (lower + val) * 0.5f ? (unsigned)lower_pivot : (unsigned)pivot;
}

SFTDEF const float *sft_quant_code(sft_quant_type type) {
    return type == SFT_QUANT_FP4 ? sft__fp4_code : type == SFT_QUANT_NF4 ? sft__nf4_code : NULL;
}

SFTDEF const float *sft_quant_dynamic_map(void) { return sft__dynamic_map; }

static int sft__quant_blocksize_ok(int bs) { return bs >= 32 && bs <= 4096 && (bs & (bs - 1)) == 0; }

static int64_t sft__ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* sft__q4_scale: block b's scale from a 4-bit weight's arrays: absmax[b], or its
   8-bit code decoded (shared with the CUDA kernels, which pass device arrays) */
static SFT__HD float sft__q4_scale(const float *absmax, const uint8_t *absmax_q, const float *nested_absmax,
                                   const float *nested_code, float offset, int64_t b) {
    if (absmax) return absmax[b];
    return SFT__ADD(SFT__MUL(nested_code[absmax_q[b]], nested_absmax[b / SFT_QUANT_NESTED_BLOCKSIZE]), offset);
}

SFTDEF float sft_qweight_block_scale(const sft_qweight *q, int64_t block) {
    return sft__q4_scale(q->double_quant ? NULL : q->absmax, q->absmax_q, q->nested_absmax, q->nested_code, q->nested_offset,
                         block);
}

static SFT__HD unsigned sft__q4_nibble(const uint8_t *data, int64_t e) { return (data[e >> 1] >> ((e & 1) ? 0 : 4)) & 15u; }

SFTDEF void sft_qweight_destroy(sft_qweight *q) {
    if (!q) return;
    if (q->device != SFT_DEVICE_CPU) {
        sft__device_free(q->ctx, q->device, q->data);
        sft__device_free(q->ctx, q->device, q->absmax);
        sft__device_free(q->ctx, q->device, q->absmax_q);
        sft__device_free(q->ctx, q->device, q->nested_absmax);
        sft__device_free(q->ctx, q->device, q->device_code);
        sft__free(q->ctx, q);
        return;
    }
    sft__free(q->ctx, q->data);
    sft__free(q->ctx, q->absmax);
    sft__free(q->ctx, q->absmax_q);
    sft__free(q->ctx, q->nested_absmax);
    sft__free(q->ctx, q);
}

/* sft__qweight_upload: a device array of n bytes holding src (src may be NULL:
   then nothing, *dst stays NULL) */
static sft_status sft__qweight_upload(sft_context *ctx, sft_device device, const void *src, size_t n, void **dst) {
    *dst = NULL;
    if (!src) return SFT_OK;
    SFT__TRY(sft__device_alloc(ctx, device, n, dst));
    return sft__device_copy(*dst, device, src, SFT_DEVICE_CPU, n);
}

SFTDEF sft_status sft_qweight_to_device(sft_context *ctx, const sft_qweight *q, sft_device device, sft_qweight **out) {
    sft_qweight *d;
    sft_status s;
    float tables[16 + 256];
    size_t nested;
    if (out) *out = NULL;
    if (!ctx || !q || !out) return sft__fail(SFT_ERR_ARG, "qweight_to_device: NULL argument");
    if (q->device != SFT_DEVICE_CPU || (int)device < 0 || device >= SFT_DEVICE_COUNT)
        return sft__fail(SFT_ERR_DEVICE, "qweight_to_device: copies a CPU 4-bit weight to a device (device %d)", (int)device);
    d = (sft_qweight *)sft__alloc(ctx, sizeof *d);
    if (!d) return sft__fail(SFT_ERR_NOMEM, "qweight_to_device: the struct");
    *d = *q;
    d->ctx = ctx; d->device = device;
    d->data = NULL; d->absmax = NULL; d->absmax_q = NULL; d->nested_absmax = NULL; d->device_code = NULL;
    if (device == SFT_DEVICE_CPU) {   /* a plain copy */
        sft_qweight_data qd;
        sft__free(ctx, d);
        memset(&qd, 0, sizeof qd);
        qd.type = q->type; qd.rows = q->rows; qd.cols = q->cols; qd.blocksize = q->blocksize;
        qd.data = q->data; qd.data_bytes = (size_t)((q->rows * q->cols + 1) / 2);
        qd.code = q->code; qd.code_len = 16;
        qd.absmax = q->absmax; qd.n_absmax = q->n_blocks;
        qd.absmax_q = q->absmax_q; qd.n_absmax_q = q->n_blocks;
        qd.nested_absmax = q->nested_absmax; qd.n_nested_absmax = sft__ceil_div(q->n_blocks, SFT_QUANT_NESTED_BLOCKSIZE);
        qd.nested_offset = q->nested_offset; qd.nested_code = q->nested_code; qd.nested_code_len = 256;
        return sft_qweight_from_data(ctx, &qd, out);
    }
    nested = (size_t)sft__ceil_div(q->n_blocks, SFT_QUANT_NESTED_BLOCKSIZE);
    memcpy(tables, q->code, sizeof q->code);
    memcpy(tables + 16, q->nested_code, sizeof q->nested_code);
    s = sft__qweight_upload(ctx, device, q->data, (size_t)((q->rows * q->cols + 1) / 2), (void **)&d->data);
    if (s == SFT_OK) s = sft__qweight_upload(ctx, device, q->absmax, (size_t)q->n_blocks * sizeof(float), (void **)&d->absmax);
    if (s == SFT_OK) s = sft__qweight_upload(ctx, device, q->absmax_q, (size_t)q->n_blocks, (void **)&d->absmax_q);
    if (s == SFT_OK) s = sft__qweight_upload(ctx, device, q->nested_absmax, nested * sizeof(float), (void **)&d->nested_absmax);
    if (s == SFT_OK) s = sft__qweight_upload(ctx, device, tables, sizeof tables, (void **)&d->device_code);
    if (s != SFT_OK) {
        sft_qweight_destroy(d);
        return sft__fail(s, "qweight_to_device: [%lld, %lld]: %s", (long long)q->rows, (long long)q->cols, sft_last_error());
    }
    *out = d;
    return SFT_OK;
}

/* sft__qweight_alloc: a zeroed qweight with its arrays for the given layout. */
static sft_status sft__qweight_alloc(sft_context *ctx, sft_quant_type type, int64_t rows, int64_t cols, int blocksize,
                                     int double_quant, sft_qweight **out) {
    sft_qweight *q;
    int64_t n = rows * cols;
    *out = NULL;
    q = (sft_qweight *)sft__calloc(ctx, 1, sizeof *q);
    if (!q) return sft__fail(SFT_ERR_NOMEM, "quantize: cannot allocate a [%lld, %lld] 4-bit weight", (long long)rows,
                             (long long)cols);
    q->ctx = ctx; q->type = type; q->rows = rows; q->cols = cols; q->blocksize = blocksize;
    q->n_blocks = sft__ceil_div(n, blocksize);
    q->double_quant = double_quant;
    memcpy(q->code, sft_quant_code(type), sizeof q->code);
    memcpy(q->nested_code, sft_quant_dynamic_map(), sizeof q->nested_code);
    q->data = (uint8_t *)sft__calloc(ctx, (size_t)((n + 1) / 2), 1);
    if (double_quant) {
        q->absmax_q = (uint8_t *)sft__calloc(ctx, (size_t)q->n_blocks, 1);
        q->nested_absmax = (float *)sft__calloc(ctx, (size_t)sft__ceil_div(q->n_blocks, SFT_QUANT_NESTED_BLOCKSIZE), sizeof(float));
    } else
        q->absmax = (float *)sft__calloc(ctx, (size_t)q->n_blocks, sizeof(float));
    if (!q->data || (double_quant ? !q->absmax_q || !q->nested_absmax : !q->absmax)) {
        sft_qweight_destroy(q);
        return sft__fail(SFT_ERR_NOMEM, "quantize: cannot allocate a [%lld, %lld] 4-bit weight", (long long)rows,
                         (long long)cols);
    }
    *out = q;
    return SFT_OK;
}

/* One block of 4-bit codes from f32 values x[0..n) (n <= blocksize), element
   e0 + i of the matrix being x[i]; returns the block's absmax. When the block
   ends on an even element the byte's low nibble is the code of a padding zero,
   as the CUDA kernel pads its last block (0 * (1/0) is NaN: code 0). */
static unsigned sft__q4_code(sft_quant_type type, float v) {
    return type == SFT_QUANT_FP4 ? sft__fp4_quantize(v) : sft__nf4_quantize(v);
}

static float sft__q4_block(sft_quant_type type, const float *x, int64_t e0, int64_t n, uint8_t *data) {
    float absmax = 0.0f, inv;
    int64_t i;
    for (i = 0; i < n; i++) absmax = fmaxf(absmax, fabsf(x[i]));
    inv = 1.0f / absmax;
    for (i = 0; i < n; i++) {
        int64_t e = e0 + i;
        unsigned c = sft__q4_code(type, x[i] * inv);
        if (e & 1) data[e >> 1] = (uint8_t)(data[e >> 1] | c);
        else data[e >> 1] = (uint8_t)(c << 4);
    }
    if ((e0 + n) & 1) data[(e0 + n) >> 1] = (uint8_t)(data[(e0 + n) >> 1] | sft__q4_code(type, 0.0f * inv));
    return absmax;
}

/* Double quantization of absmax[0..n) (bitsandbytes quantize_4bit with
   compress_statistics): offset = the mean, then (absmax - offset) in blocks of
   256 on the dynamic map. offset is given so tests can pin it. */
static void sft__double_quantize(sft_qweight *q, const float *absmax, float offset) {
    int64_t b, i, n = q->n_blocks;
    q->nested_offset = offset;
    for (b = 0; b * SFT_QUANT_NESTED_BLOCKSIZE < n; b++) {
        int64_t i0 = b * SFT_QUANT_NESTED_BLOCKSIZE, i1 = i0 + SFT_QUANT_NESTED_BLOCKSIZE < n ? i0 + SFT_QUANT_NESTED_BLOCKSIZE : n;
        float amax = 0.0f, inv;
        for (i = i0; i < i1; i++) amax = fmaxf(amax, fabsf(absmax[i] - offset));
        inv = 1.0f / amax;
        q->nested_absmax[b] = amax;
        for (i = i0; i < i1; i++) q->absmax_q[i] = (uint8_t)sft__dynamic_quantize(q->nested_code, (absmax[i] - offset) * inv);
    }
}

static float sft__mean_f32(const float *x, int64_t n) {
    double s = 0.0;
    int64_t i;
    for (i = 0; i < n; i++) s += x[i];
    return n ? (float)(s / (double)n) : 0.0f;
}

typedef struct sft__quant_job { sft_qweight *q; const sft_tensor *w; float *absmax; } sft__quant_job;

/* A task quantizes whole blocks, widening bf16/f16 input to f32 on the way. */
static void sft__quant_range(void *arg, int64_t b0, int64_t b1) {
    const sft__quant_job *j = (const sft__quant_job *)arg;
    int64_t n = j->q->rows * j->q->cols, bs = j->q->blocksize, b, i;
    float buf[4096];
    for (b = b0; b < b1; b++) {
        int64_t e0 = b * bs, cnt = e0 + bs < n ? bs : n - e0;
        for (i = 0; i < cnt; i++) {
            int64_t e = e0 + i;
            switch (j->w->dtype) {
            case SFT_BF16: buf[i] = sft_bf16_to_f32(((const uint16_t *)j->w->data)[e]); break;
            case SFT_F16: buf[i] = sft_f16_to_f32(((const uint16_t *)j->w->data)[e]); break;
            default: buf[i] = ((const float *)j->w->data)[e]; break;
            }
        }
        j->absmax[b] = sft__q4_block(j->q->type, buf, e0, cnt, j->q->data);
    }
}

/* sft__quant_fill: quantize f32/bf16/f16 w into q's layout (existing arrays). */
static sft_status sft__quant_fill(sft_context *ctx, sft_qweight *q, const sft_tensor *w) {
    sft__quant_job j;
    float *absmax = q->absmax;
    if (q->double_quant) {
        absmax = (float *)sft__alloc(ctx, (size_t)q->n_blocks * sizeof(float));
        if (!absmax) return sft__fail(SFT_ERR_NOMEM, "quantize: cannot allocate %lld block maxima", (long long)q->n_blocks);
    }
    j.q = q; j.w = w; j.absmax = absmax;
    /* blocks of 64 or more values each own whole bytes, so tasks never share one */
    sft__parallel_rows(ctx, q->n_blocks, 64, sft__quant_range, &j);
    if (q->double_quant) {
        sft__double_quantize(q, absmax, sft__mean_f32(absmax, q->n_blocks));
        sft__free(ctx, absmax);
    }
    return SFT_OK;
}

SFTDEF sft_status sft_quantize(sft_context *ctx, const sft_tensor *w, const sft_quant_desc *desc, sft_qweight **out) {
    sft_quant_desc d;
    sft_qweight *q;
    int64_t rows, cols;
    sft_status s;
    char sb[96];
    if (out) *out = NULL;
    if (!ctx || !w || !out) return sft__fail(SFT_ERR_ARG, "quantize: NULL argument");
    memset(&d, 0, sizeof d);
    if (desc) d = *desc;
    if (d.type == SFT_QUANT_NONE) d.type = SFT_QUANT_NF4;
    if (d.blocksize == 0) d.blocksize = 64;
    if (d.type != SFT_QUANT_NF4 && d.type != SFT_QUANT_FP4) return sft__fail(SFT_ERR_ARG, "quantize: type %d is not NF4 or FP4", (int)d.type);
    if (!sft__quant_blocksize_ok(d.blocksize))
        return sft__fail(SFT_ERR_ARG, "quantize: blocksize %d (bitsandbytes takes 32, 64, ..., 4096)", d.blocksize);
    if (w->device != SFT_DEVICE_CPU) return sft__fail(SFT_ERR_DEVICE, "quantize: the weight must be on the CPU");
    if (w->dtype != SFT_F32 && w->dtype != SFT_BF16 && w->dtype != SFT_F16)
        return sft__fail(SFT_ERR_DTYPE, "quantize: weight is %s (want f32, bf16 or f16)", sft_dtype_name(w->dtype));
    if (w->ndim < 1 || w->ndim > 2 || sft_tensor_numel(w) == 0)
        return sft__fail(SFT_ERR_SHAPE, "quantize: weight %s must be [rows, cols] or [n], not empty", SFT__SHAPE(w, sb));
    rows = w->ndim == 2 ? w->shape[0] : 1;
    cols = w->shape[w->ndim - 1];
    SFT__TRY(sft__qweight_alloc(ctx, d.type, rows, cols, d.blocksize, d.double_quant != 0, &q));
    s = sft__quant_fill(ctx, q, w);
    if (s != SFT_OK) { sft_qweight_destroy(q); return s; }
    *out = q;
    return SFT_OK;
}

/* sft__finite_nonneg: index of the first value of x[0..n) that is NaN, infinite
   or negative, or -1. */
static int64_t sft__first_bad_scale(const float *x, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++)
        if (!(x[i] >= 0.0f && x[i] < INFINITY)) return i;
    return -1;
}

static sft_status sft__qdata_check(const sft_qweight_data *d) {
    int64_t n, blocks, nested, bad;
    int i;
    if (d->type != SFT_QUANT_NF4 && d->type != SFT_QUANT_FP4)
        return sft__fail(SFT_ERR_ARG, "4-bit weight: quant_type %d is not NF4 or FP4", (int)d->type);
    if (!sft__quant_blocksize_ok(d->blocksize))
        return sft__fail(SFT_ERR_FORMAT, "4-bit weight: blocksize %d (bitsandbytes takes 32, 64, ..., 4096)", d->blocksize);
    if (d->rows <= 0 || d->cols <= 0 || d->rows > ((int64_t)1 << 40) / d->cols)
        return sft__fail(SFT_ERR_SHAPE, "4-bit weight: shape [%lld, %lld]", (long long)d->rows, (long long)d->cols);
    n = d->rows * d->cols;
    blocks = sft__ceil_div(n, d->blocksize);
    if (!d->data || d->data_bytes != (size_t)((n + 1) / 2))
        return sft__fail(SFT_ERR_FORMAT, "4-bit weight [%lld, %lld]: packed data has %llu bytes, the shape needs %lld",
                         (long long)d->rows, (long long)d->cols, (unsigned long long)(d->data ? d->data_bytes : 0),
                         (long long)((n + 1) / 2));
    if (d->code && d->code_len != 16) return sft__fail(SFT_ERR_FORMAT, "4-bit weight: quant_map has %d values (want 16)", d->code_len);
    if (d->code)
        for (i = 0; i < 16; i++)
            if (!(fabsf(d->code[i]) <= 1.0f)) return sft__fail(SFT_ERR_FORMAT, "4-bit weight: quant_map[%d] = %g", i, d->code[i]);
    if (!d->absmax_q) {
        if (!d->absmax || d->n_absmax != blocks)
            return sft__fail(SFT_ERR_FORMAT, "4-bit weight: absmax has %lld values, %lld blocks of %d need %lld",
                             (long long)(d->absmax ? d->n_absmax : 0), (long long)blocks, d->blocksize, (long long)blocks);
        if ((bad = sft__first_bad_scale(d->absmax, blocks)) >= 0)
            return sft__fail(SFT_ERR_FORMAT, "4-bit weight: absmax[%lld] = %g (want finite and >= 0)", (long long)bad,
                             d->absmax[bad]);
        return SFT_OK;
    }
    if (d->nested_blocksize != 0 && d->nested_blocksize != SFT_QUANT_NESTED_BLOCKSIZE)
        return sft__fail(SFT_ERR_FORMAT, "4-bit weight: nested_blocksize %d (bitsandbytes uses 256)", d->nested_blocksize);
    nested = sft__ceil_div(blocks, SFT_QUANT_NESTED_BLOCKSIZE);
    if (d->n_absmax_q != blocks)
        return sft__fail(SFT_ERR_FORMAT, "4-bit weight: absmax has %lld codes, %lld blocks need %lld", (long long)d->n_absmax_q,
                         (long long)blocks, (long long)blocks);
    if (!d->nested_absmax || d->n_nested_absmax != nested)
        return sft__fail(SFT_ERR_FORMAT, "4-bit weight: nested_absmax has %lld values, want %lld",
                         (long long)(d->nested_absmax ? d->n_nested_absmax : 0), (long long)nested);
    if ((bad = sft__first_bad_scale(d->nested_absmax, nested)) >= 0)
        return sft__fail(SFT_ERR_FORMAT, "4-bit weight: nested_absmax[%lld] = %g (want finite and >= 0)", (long long)bad,
                         d->nested_absmax[bad]);
    if (!(fabsf(d->nested_offset) < INFINITY))
        return sft__fail(SFT_ERR_FORMAT, "4-bit weight: nested_offset = %g", d->nested_offset);
    if (d->nested_code && d->nested_code_len != 256)
        return sft__fail(SFT_ERR_FORMAT, "4-bit weight: nested_quant_map has %d values (want 256)", d->nested_code_len);
    if (d->nested_code)
        for (i = 0; i < 256; i++)
            if (!(fabsf(d->nested_code[i]) <= 1.0f))
                return sft__fail(SFT_ERR_FORMAT, "4-bit weight: nested_quant_map[%d] = %g", i, d->nested_code[i]);
    return SFT_OK;
}

SFTDEF sft_status sft_qweight_from_data(sft_context *ctx, const sft_qweight_data *d, sft_qweight **out) {
    sft_qweight *q;
    int64_t n;
    if (out) *out = NULL;
    if (!ctx || !d || !out) return sft__fail(SFT_ERR_ARG, "sft_qweight_from_data: NULL argument");
    SFT__TRY(sft__qdata_check(d));
    SFT__TRY(sft__qweight_alloc(ctx, d->type, d->rows, d->cols, d->blocksize, d->absmax_q != NULL, &q));
    n = d->rows * d->cols;
    memcpy(q->data, d->data, (size_t)((n + 1) / 2));
    if (d->code) memcpy(q->code, d->code, sizeof q->code);
    if (q->double_quant) {
        memcpy(q->absmax_q, d->absmax_q, (size_t)q->n_blocks);
        memcpy(q->nested_absmax, d->nested_absmax, (size_t)sft__ceil_div(q->n_blocks, SFT_QUANT_NESTED_BLOCKSIZE) * sizeof(float));
        q->nested_offset = d->nested_offset;
        if (d->nested_code) memcpy(q->nested_code, d->nested_code, sizeof q->nested_code);
    } else
        memcpy(q->absmax, d->absmax, (size_t)q->n_blocks * sizeof(float));
    *out = q;
    return SFT_OK;
}

#ifdef SFT__SIMD_X86
/* 16 values from 8 packed bytes: the nibbles interleaved high-first, widened to
   lane indices, looked up in the 16-entry code with two 8-lane permutes (bit 3
   picks the half) and multiplied by the block's scale. */
SFT__TARGET_AVX2 static void sft__q4_decode16_avx2(const uint8_t *bytes, const float *code, float scale, float *out) {
    long long raw;
    __m128i b, hi, lo, idx;
    __m256 lo_code = _mm256_loadu_ps(code), hi_code = _mm256_loadu_ps(code + 8), s = _mm256_set1_ps(scale);
    int h;
    memcpy(&raw, bytes, 8);
    b = _mm_cvtsi64_si128(raw);
    hi = _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(15));
    lo = _mm_and_si128(b, _mm_set1_epi8(15));
    idx = _mm_unpacklo_epi8(hi, lo);
    for (h = 0; h < 2; h++) {
        __m256i i32 = _mm256_cvtepu8_epi32(h ? _mm_srli_si128(idx, 8) : idx);
        __m256 pick = _mm256_castsi256_ps(_mm256_slli_epi32(i32, 28));     /* bit 3 -> the sign bit */
        __m256 v = _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo_code, i32), _mm256_permutevar8x32_ps(hi_code, i32), pick);
        _mm256_storeu_ps(out + 8 * h, _mm256_mul_ps(v, s));
    }
}
#endif

/* sft__q4_decode: elements [e0, e0 + count) of the flattened weight as f32,
   to out[i * stride]. A block's scale is looked up once per run inside it; with
   simd (the context's path has AVX2) runs of 16 starting on a byte go through
   the vector decoder. Both give the same bits: code * scale. */
static void sft__q4_decode(const sft_qweight *q, int64_t e0, int64_t count, float *out, int64_t stride, int simd) {
    int64_t e = e0, end = e0 + count;
    (void)simd;
    while (e < end) {
        int64_t blk = e / q->blocksize, stop = (blk + 1) * q->blocksize;
        float scale = sft_qweight_block_scale(q, blk);
        if (stop > end) stop = end;
#ifdef SFT__SIMD_X86
        if (simd && !(e & 1))
            for (; e + 16 <= stop; e += 16, out += 16 * stride) {
                float tmp[16];
                int i;
                if (stride == 1) { sft__q4_decode16_avx2(q->data + (e >> 1), q->code, scale, out); continue; }
                sft__q4_decode16_avx2(q->data + (e >> 1), q->code, scale, tmp);
                for (i = 0; i < 16; i++) out[i * stride] = tmp[i];
            }
#endif
        for (; e < stop; e++, out += stride) *out = q->code[sft__q4_nibble(q->data, e)] * scale;
    }
}

typedef struct sft__dequant_job { const sft_qweight *q; float *out; int simd; } sft__dequant_job;

static void sft__dequant_range(void *arg, int64_t r0, int64_t r1) {
    const sft__dequant_job *j = (const sft__dequant_job *)arg;
    sft__q4_decode(j->q, r0 * j->q->cols, (r1 - r0) * j->q->cols, j->out + r0 * j->q->cols, 1, j->simd);
}

SFTDEF sft_status sft_dequantize(sft_context *ctx, const sft_qweight *q, sft_tensor **out) {
    sft__dequant_job j;
    int64_t shape[2];
    if (out) *out = NULL;
    if (!ctx || !q || !out) return sft__fail(SFT_ERR_ARG, "dequantize: NULL argument");
    shape[0] = q->rows; shape[1] = q->cols;
    if (q->device != SFT_DEVICE_CPU) {
#ifdef SFT_CUDA
        sft_status s;
        SFT__TRY(sft_tensor_create_on(ctx, q->device, SFT_F32, 2, shape, out));
        if ((s = sft__cuda_dequantize(ctx, q, SFT__F(*out))) != SFT_OK) { sft_tensor_destroy(*out); *out = NULL; }
        return s;
#else
        return sft__no_cuda("dequantize");
#endif
    }
    SFT__TRY(sft_tensor_create(ctx, SFT_F32, 2, shape, out));
    j.q = q; j.out = SFT__F(*out); j.simd = sft_cpu_path_get(ctx) >= SFT_CPU_AVX2;
    sft__parallel_rows(ctx, q->rows, 16, sft__dequant_range, &j);
    return SFT_OK;
}

/* ============================================================================
   === kernels: weights decoded into GEMM panels
   A linear layer's base weight W [N, K] may be f32 (used in place), bf16 or
   4-bit. The last two reach the GEMMs as an sft__bsrc: each packing task decodes
   the k x nr tile it packs, so no f32 copy of W ever exists (the allocator test
   holds it). Decoding is exact (code * scale, or the bf16 bits widened), so a
   4-bit layer gives the same bits as a dense GEMM on the dequantized weight. */

/* A base weight as a GEMM operand; bf16: its GEMMs multiply in bf16 (a frozen
   weight only: a trainable one keeps f32). */
typedef struct sft__wref { const sft_qweight *q; const sft_tensor *w; int64_t N, K; int bf16; } sft__wref;

static sft_device sft__wref_device(const sft__wref *w) { return w->q ? w->q->device : w->w->device; }

static void sft__wsrc_decode(const sft__bsrc *s, int64_t e0, int64_t count, float *out, int64_t stride) {
    int64_t i;
    if (s->q) { sft__q4_decode(s->q, e0, count, out, stride, s->simd); return; }
    if (s->f32) { for (i = 0; i < count; i++) out[i * stride] = s->f32[e0 + i]; return; }
    for (i = 0; i < count; i++) out[i * stride] = sft_bf16_to_f32(s->bf16[e0 + i]);
}

static void sft__wsrc_pack(const sft__bsrc *s, int64_t k0, int64_t kc, int64_t n0, int64_t nc, int nr, int64_t q0, int64_t q1,
                           float *dst) {
    int64_t q, j, k;
    for (q = q0; q < q1; q++) {
        float *p = dst + q * kc * nr;
        int64_t cols = nc - q * nr < nr ? nc - q * nr : nr;
        if (s->trans) {   /* op(B)(k, n) = W[n][k]: row n of W is column j of the panel */
            for (j = 0; j < cols; j++) sft__wsrc_decode(s, (n0 + q * nr + j) * s->cols + k0, kc, p + j, nr);
            for (; j < nr; j++)
                for (k = 0; k < kc; k++) p[k * nr + j] = 0.0f;
        } else {          /* op(B)(k, n) = W[k][n]: part of row k of W is a row of the panel */
            for (k = 0; k < kc; k++) {
                sft__wsrc_decode(s, (k0 + k) * s->cols + n0 + q * nr, cols, p + k * nr, 1);
                for (j = cols; j < nr; j++) p[k * nr + j] = 0.0f;
            }
        }
    }
}

/* sft__gemm_wsrc: C (+)= A . op(W) with W [N, K] decoded from src's source by
   the GEMM's packing (op = transpose when trans). */
static sft_status sft__gemm_wsrc(sft_context *ctx, int64_t M, sft__mat a, sft__bsrc *src, int64_t N, int64_t K, int trans,
                                 float *c, int64_t ldc, int accumulate) {
    src->pack = sft__wsrc_pack; src->rows = N; src->cols = K; src->trans = trans;
    src->simd = sft_cpu_path_get(ctx) >= SFT_CPU_AVX2;
    return trans ? sft__gemm_src(ctx, M, N, K, a, src, c, ldc, accumulate) : sft__gemm_src(ctx, M, K, N, a, src, c, ldc, accumulate);
}

/* sft__gemm_f32w: the same for an f32 weight at w [N, K]: a plain GEMM, or in
   bf16 through the packing */
static sft_status sft__gemm_f32w(sft_context *ctx, int64_t M, sft__mat a, const float *w, int64_t N, int64_t K, int trans, int bf16,
                                 float *c, int64_t ldc, int accumulate) {
    sft__bsrc src;
    if (!bf16) {
        sft__mat b = sft__mat_of(w, K, 1);
        return trans ? sft__gemm(ctx, M, N, K, a, sft__mat_t(b), c, ldc, accumulate) : sft__gemm(ctx, M, K, N, a, b, c, ldc, accumulate);
    }
    memset(&src, 0, sizeof src);
    src.f32 = w; src.compute_bf16 = 1;
    return sft__gemm_wsrc(ctx, M, a, &src, N, K, trans, c, ldc, accumulate);
}

/* sft__gemm_w: C (+)= A . W^T (trans) or A . W, for A [M, K] (or [M, N]). */
static sft_status sft__gemm_w(sft_context *ctx, int64_t M, sft__mat a, const sft__wref *w, int trans, float *c, int64_t ldc,
                              int accumulate) {
    sft__bsrc src;
    int bf16 = w->bf16 && !(w->w && w->w->requires_grad);
    if (w->w && w->w->dtype == SFT_F32) return sft__gemm_f32w(ctx, M, a, SFT__CF(w->w), w->N, w->K, trans, bf16, c, ldc, accumulate);
    memset(&src, 0, sizeof src);
    src.q = w->q; src.bf16 = w->w ? (const uint16_t *)w->w->data : NULL; src.compute_bf16 = bf16;
    return sft__gemm_wsrc(ctx, M, a, &src, w->N, w->K, trans, c, ldc, accumulate);
}

/* sft__w_rows: rows [r0, r1) of W as f32 into out [r1 - r0, K]. */
static void sft__w_rows(const sft__wref *w, int64_t r0, int64_t r1, float *out) {
    int64_t i, n = (r1 - r0) * w->K;
    if (w->q) sft__q4_decode(w->q, r0 * w->K, n, out, 1, 0);
    else if (w->w->dtype == SFT_F32) memcpy(out, SFT__CF(w->w) + r0 * w->K, (size_t)n * sizeof(float));
    else for (i = 0; i < n; i++) out[i] = sft_bf16_to_f32(((const uint16_t *)w->w->data)[r0 * w->K + i]);
}

/* ============================================================================
   === kernels: a linear layer with its adapters, one node
   node: in[0] = x [M, K] (any leading dims), in[1] = bias [N] or NULL,
   ptr = the call's plan. Forward: y = x W^T + bias, then every adapter term
   over its rows. Backward: dx = dy' W through the same decoding, the adapters'
   small GEMMs, and the DoRA magnitude's reduction. */

#define SFT__LINEAR_MAX_ADAPTERS 32

typedef struct sft__adapter {
    char         *name;
    sft_lora_desc desc;           /* defaults filled in */
    float         scaling;
    sft_tensor   *A, *B, *m;      /* m: DoRA magnitude [N], else NULL */
    float        *merged_norm;    /* DoRA while merged: |W + s B A| at merge, for unmerge */
} sft__adapter;

/* One adapter's part in a call. t keeps s * (xd A^T) for the gradient of B;
   DoRA keeps the base product without bias, its own B(A(x)) * s, and the
   weight norm it used (a constant for backward, as PEFT detaches it). */
typedef struct sft__lin_term {
    const sft__adapter *ad;
    float       p;                /* dropout in effect, 0 = none               */
    uint64_t    key;              /* the dropout mask's RNG key                */
    uint64_t   *bits;             /* its mask over x's elements, made in forward (NULL: p = 0 or replayed) */
    sft_tensor *bits_t;           /* the tensor holding bits                   */
    sft_tensor *t;                /* [M, r]                                    */
    sft_tensor *base_nb, *lora, *norm;   /* DoRA: [M, N], [M, N], [N]          */
} sft__lin_term;

typedef struct sft__lin_plan {
    sft__wref         w;
    int64_t           M, K, N, sample_rows, n_samples;
    const int        *route;      /* per sample: its term, or -1; NULL = all terms on all rows */
    const sft_tensor *mask;       /* a replayed dropout mask (x's shape)       */
    int               n_terms;
    sft__lin_term     term[SFT__LINEAR_MAX_ADAPTERS];
    sft_tensor       *base_out;   /* x W^T before the bias, when a DoRA term without dropout needs it */
} sft__lin_plan;

/* sft__lin_run: the next run [*r0, *r1) of rows term ti covers, starting the
   search at sample *cursor; 0 when there is none. */
static int sft__lin_run(const sft__lin_plan *p, int ti, int64_t *cursor, int64_t *r0, int64_t *r1) {
    int64_t s = *cursor, e;
    if (!p->route) {
        if (s > 0) return 0;
        *cursor = 1; *r0 = 0; *r1 = p->M;
        return p->M > 0;
    }
    while (s < p->n_samples && p->route[s] != ti) s++;
    if (s == p->n_samples) { *cursor = s; return 0; }
    for (e = s; e < p->n_samples && p->route[e] == ti; e++) {}
    *cursor = e; *r0 = s * p->sample_rows; *r1 = e * p->sample_rows;
    return 1;
}

/* sft__lin_drop: out[i] (+)= v[i] * the dropout factor of element e0 + i of x,
   for i in [0, n): from the term's mask, or a replayed mask of factors. */
static void sft__lin_drop(sft_context *ctx, const sft__lin_plan *p, const sft__lin_term *t, const float *v, int64_t e0, int64_t n,
                          float *out, int accumulate) {
    int64_t i;
    if (t->bits) { sft__mask_mul(ctx, v, t->bits, e0, n, sft__dropout_scale(t->p), out, accumulate); return; }
    if (ctx->plan_only) return;
    for (i = 0; i < n; i++) {
        float f = v[i] * SFT__CF(p->mask)[e0 + i];
        out[i] = accumulate ? out[i] + f : f;
    }
}

/* sft__lin_input: the adapter's input rows [r0, r1): x itself, or dropout(x) in
   a new step tensor *xd the caller gives back (NULL when x is used as it is). */
static sft_status sft__lin_input(sft_context *ctx, const sft__node *n, const sft__lin_term *t, int64_t r0, int64_t r1,
                                 const float **xr, sft_tensor **xd) {
    const sft__lin_plan *p = (const sft__lin_plan *)n->ptr;
    const float *x = SFT__CF(n->in[0]);
    int64_t shape[2], base = r0 * p->K, count = (r1 - r0) * p->K;
    *xr = x + base;
    *xd = NULL;
    if (t->p <= 0.0f) return SFT_OK;
    shape[0] = r1 - r0; shape[1] = p->K;
    SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_F32, 2, shape, xd));
    sft__lin_drop(ctx, p, t, x + base, base, count, SFT__F(*xd), 0);
    *xr = SFT__CF(*xd);
    return SFT_OK;
}

/* sft__dora_norm: norm[o] = |W[o] + s (B A)[o]| over rows of W, 64 rows at a
   time (B A computed first, then scaled and added, as PEFT does). */
static sft_status sft__dora_norm(sft_context *ctx, const sft__wref *w, const sft_tensor *A, const sft_tensor *B, float s,
                                 float *norm) {
    int64_t o0, shape[2], r = A->shape[0], i, k;
    sft_tensor *wt, *ba;
    shape[0] = 64; shape[1] = w->K;
    SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_F32, 2, shape, &wt));
    SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_F32, 2, shape, &ba));
    for (o0 = 0; o0 < w->N; o0 += 64) {
        int64_t rows = w->N - o0 < 64 ? w->N - o0 : 64;
        sft__w_rows(w, o0, o0 + rows, SFT__F(wt));
        SFT__TRY(sft__gemm(ctx, rows, w->K, r, sft__mat_of(SFT__CF(B) + o0 * r, r, 1), sft__mat_of(SFT__CF(A), w->K, 1),
                           SFT__F(ba), w->K, 0));
        for (i = 0; i < rows; i++) {
            double ss = 0.0;
            for (k = 0; k < w->K; k++) {
                float v = SFT__CF(wt)[i * w->K + k] + s * SFT__CF(ba)[i * w->K + k];
                ss += (double)v * v;
            }
            norm[o0 + i] = (float)sqrt(ss);
        }
    }
    sft__tensor_release(ctx, ba);
    sft__tensor_release(ctx, wt);
    return SFT_OK;
}

/* One term's forward over rows [r0, r1). */
static sft_status sft__lin_term_fwd(sft_context *ctx, sft__node *n, sft__lin_term *t, int64_t r0, int64_t r1) {
    const sft__lin_plan *p = (const sft__lin_plan *)n->ptr;
    const sft__adapter *ad = t->ad;
    int64_t rows = r1 - r0, r = ad->desc.r, N = p->N, i, o;
    float *tr = SFT__F(t->t) + r0 * r, *y = SFT__F(n->out) + r0 * N, s = ad->scaling;
    const float *xr;
    sft_tensor *xd;
    SFT__TRY(sft__lin_input(ctx, n, t, r0, r1, &xr, &xd));
    SFT__TRY(sft__gemm(ctx, rows, r, p->K, sft__mat_of(xr, p->K, 1), sft__mat_t(sft__mat_of(SFT__CF(ad->A), p->K, 1)), tr, r, 0));
    for (i = 0; i < rows * r && !ctx->plan_only; i++) tr[i] *= s;
    if (!ad->m) {
        sft__tensor_release(ctx, xd);
        return sft__gemm(ctx, rows, N, r, sft__mat_of(tr, r, 1), sft__mat_t(sft__mat_of(SFT__CF(ad->B), r, 1)), y, N, 1);
    }
    {
        float *lora = SFT__F(t->lora) + r0 * N, *base_nb = SFT__F(t->base_nb) + r0 * N;
        const float *m = SFT__CF(ad->m), *norm = SFT__CF(t->norm);
        SFT__TRY(sft__gemm(ctx, rows, N, r, sft__mat_of(tr, r, 1), sft__mat_t(sft__mat_of(SFT__CF(ad->B), r, 1)), lora, N, 0));
        /* without dropout base_nb is the layer's own product (the plan's base_out);
           with it PEFT recomputes the base product on the dropped-out input */
        if (t->p > 0.0f) SFT__TRY(sft__gemm_w(ctx, rows, sft__mat_of(xr, p->K, 1), &p->w, 1, base_nb, N, 0));
        sft__tensor_release(ctx, xd);
        for (i = 0; i < rows && !ctx->plan_only; i++)
            for (o = 0; o < N; o++) {
                float scale = m[o] / norm[o];
                y[i * N + o] += (scale - 1.0f) * base_nb[i * N + o] + scale * lora[i * N + o];
            }
    }
    return SFT_OK;
}

static void sft__lin_bias_rows(void *arg, int64_t b, int64_t e) {
    const sft__node *n = (const sft__node *)arg;
    const sft__lin_plan *p = (const sft__lin_plan *)n->ptr;
    const float *bias = SFT__CF(n->in[1]);
    float *y = SFT__F(n->out);
    int64_t i, o;
    for (i = b; i < e; i++)
        for (o = 0; o < p->N; o++) y[i * p->N + o] += bias[o];
}

/* --- LoRA terms, fused --------------------------------------------------------
   A term without DoRA runs in one pass over its rows, in tasks of
   SFT__LORA_TASK_ROWS rows taken SFT__LORA_RB at a time, so a block's rows stay
   in cache from its first product to its last:
     forward   xd = x (.) mask, t = s xd A^T (kept for backward), y += t B^T
     backward  dt = s g B, dx += (dt A) (.) mask, and the task's share of
               dB = g^T t and dA = dt^T xd
   A, B and their transposes are packed once per call into the micro-kernel's
   panels; the blocks' own operands (x, g, t, dt) are copied into per-thread
   buffers padded to whole panels. The shares of dB and dA are added to the
   gradients task by task in order, so the result does not depend on the thread
   count. */

#define SFT__LORA_RB 32
#define SFT__LORA_TASK_ROWS 256

typedef struct sft__lora_job {
    const sft__cpu_kernels *k;
    const sft__node *n;
    const sft__lin_plan *p;
    const sft__lin_term *t;
    int64_t r0, r1, r, rp, Kp, Np;    /* rows; rank, rank padded; K and N padded to whole MR panels */
    const float *at, *bt, *bn, *an;   /* packed: A^T [K x r], B^T [r x N], B [N x r], A [r x K] */
    float *scratch;                   /* per thread, SFT__LORA_SCRATCH floats each */
    float *dB, *dA;                   /* per task: its share of dB [N x r] and dA [r x K] */
    int want_dx, want_dA, want_dB;
} sft__lora_job;

static int64_t sft__round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* per-thread buffers: xd and dxd [RB x Kp], g [RB x Np], t and dt [RB x rp],
   and the packed block operands (t and xd as the depth side, RB deep) */
static int64_t sft__lora_scratch_floats(const sft__lora_job *j) {
    return 2 * SFT__LORA_RB * j->Kp + SFT__LORA_RB * j->Np + 2 * SFT__LORA_RB * j->rp + SFT__LORA_RB * (j->Kp + j->rp);
}

/* sft__lora_pack: op(B) [depth x cols] of a view into whole panels, zero-padded */
static void sft__lora_pack(const sft__cpu_kernels *k, sft__mat b, int64_t depth, int64_t cols, float *dst) {
    sft__pack_b(&b, depth, cols, k->nr, 0, (cols + k->nr - 1) / k->nr, dst);
}

/* rows [i0, i0 + rows) of a [M, cols] matrix into buf [RB x ld], zero-padded */
static void sft__lora_rows(const float *src, int64_t cols, int64_t i0, int64_t rows, float *buf, int64_t ld) {
    int64_t i;
    for (i = 0; i < SFT__LORA_RB; i++) {
        if (i < rows) {
            memcpy(buf + i * ld, src + (i0 + i) * cols, (size_t)cols * sizeof(float));
            if (ld > cols) memset(buf + i * ld + cols, 0, (size_t)(ld - cols) * sizeof(float));
        } else memset(buf + i * ld, 0, (size_t)ld * sizeof(float));
    }
}

/* the term's dropout on rows [i0, i0 + rows) of x (or of a gradient), serial */
static void sft__lora_drop_rows(const sft__lora_job *j, const float *v, int64_t ldv, int64_t i0, int64_t rows, float *out,
                                int64_t ldo, int accumulate) {
    int64_t i, c, K = j->p->K;
    for (i = 0; i < rows; i++) {
        const float *vi = v + i * ldv;
        float *oi = out + i * ldo;
        int64_t e0 = (i0 + i) * K;
        if (j->t->bits) { j->k->mask_mul(vi, j->t->bits, e0, K, sft__dropout_scale(j->t->p), oi, accumulate); continue; }
        for (c = 0; c < K; c++) {
            float f = vi[c] * SFT__CF(j->p->mask)[e0 + c];
            oi[c] = accumulate ? oi[c] + f : f;
        }
    }
}

/* C[M x N] (+)= A . B through sft__attn_tile_gemm (A in place, B packed) */
#define SFT__LORA_GEMM(j, M, N, K, a, a_rs, a_ks, bp, c, ldc, add) \
    sft__attn_tile_gemm((j)->k, M, N, K, a, a_rs, a_ks, bp, K, c, ldc, add)

static void sft__lora_fwd_task(void *arg, int64_t task, int thread) {
    const sft__lora_job *j = (const sft__lora_job *)arg;
    const sft__lin_plan *p = j->p;
    int64_t K = p->K, N = p->N, r = j->r, b0, i;
    float *xd = j->scratch + (size_t)thread * (size_t)sft__lora_scratch_floats(j), *tl = xd + 2 * SFT__LORA_RB * j->Kp + SFT__LORA_RB * j->Np;
    float *y = SFT__F(j->n->out), s = j->t->ad->scaling;
    int64_t t0 = j->r0 + task * SFT__LORA_TASK_ROWS, t1 = t0 + SFT__LORA_TASK_ROWS < j->r1 ? t0 + SFT__LORA_TASK_ROWS : j->r1;
    for (b0 = t0; b0 < t1; b0 += SFT__LORA_RB) {
        int64_t rows = t1 - b0 < SFT__LORA_RB ? t1 - b0 : SFT__LORA_RB;
        sft__lora_rows(SFT__CF(j->n->in[0]), K, b0, rows, xd, j->Kp);
        if (j->t->p > 0.0f) sft__lora_drop_rows(j, xd, j->Kp, b0, rows, xd, j->Kp, 0);
        SFT__LORA_GEMM(j, SFT__LORA_RB, r, K, xd, j->Kp, 1, j->at, tl, j->rp, 0);       /* xd A^T */
        for (i = 0; i < rows * j->rp; i++) tl[i] *= s;
        for (i = 0; i < rows; i++) memcpy(SFT__F(j->t->t) + (b0 + i) * r, tl + i * j->rp, (size_t)r * sizeof(float));
        SFT__LORA_GEMM(j, rows, N, r, tl, j->rp, 1, j->bt, y + b0 * N, N, 1);             /* y += t B^T */
    }
}

static void sft__lora_bwd_task(void *arg, int64_t task, int thread) {
    const sft__lora_job *j = (const sft__lora_job *)arg;
    const sft__lin_plan *p = j->p;
    int64_t K = p->K, N = p->N, r = j->r, b0, i;
    float *xd = j->scratch + (size_t)thread * (size_t)sft__lora_scratch_floats(j), *dxd = xd + SFT__LORA_RB * j->Kp;
    float *g = dxd + SFT__LORA_RB * j->Kp, *tl = g + SFT__LORA_RB * j->Np, *dt = tl + SFT__LORA_RB * j->rp;
    float *tpack = dt + SFT__LORA_RB * j->rp, *xpack = tpack + SFT__LORA_RB * j->rp, s = j->t->ad->scaling;
    float *dB = j->dB + (size_t)task * (size_t)(N * r), *dA = j->dA + (size_t)task * (size_t)(r * K);
    int64_t t0 = j->r0 + task * SFT__LORA_TASK_ROWS, t1 = t0 + SFT__LORA_TASK_ROWS < j->r1 ? t0 + SFT__LORA_TASK_ROWS : j->r1;
    int first = 1;
    for (b0 = t0; b0 < t1; b0 += SFT__LORA_RB, first = 0) {
        int64_t rows = t1 - b0 < SFT__LORA_RB ? t1 - b0 : SFT__LORA_RB;
        sft__lora_rows(SFT__CF(j->n->out->grad), N, b0, rows, g, j->Np);
        SFT__LORA_GEMM(j, SFT__LORA_RB, r, N, g, j->Np, 1, j->bn, dt, j->rp, 0);        /* dt = s g B */
        for (i = 0; i < SFT__LORA_RB * j->rp; i++) dt[i] *= s;
        if (j->want_dB) {                                                                  /* dB += g^T t */
            sft__lora_rows(SFT__CF(j->t->t), r, b0, rows, tl, j->rp);
            sft__lora_pack(j->k, sft__mat_of(tl, j->rp, 1), rows, r, tpack);
            SFT__LORA_GEMM(j, N, r, rows, g, 1, j->Np, tpack, dB, r, !first);
        }
        if (j->want_dA) {                                                                  /* dA += dt^T xd */
            sft__lora_rows(SFT__CF(j->n->in[0]), K, b0, rows, xd, j->Kp);
            if (j->t->p > 0.0f) sft__lora_drop_rows(j, xd, j->Kp, b0, rows, xd, j->Kp, 0);
            sft__lora_pack(j->k, sft__mat_of(xd, j->Kp, 1), rows, K, xpack);
            SFT__LORA_GEMM(j, r, K, rows, dt, 1, j->rp, xpack, dA, K, !first);
        }
        if (j->want_dx) {                                                                  /* dx += (dt A) (.) mask */
            float *dx = SFT__F(j->n->in[0]->grad) + b0 * K;
            SFT__LORA_GEMM(j, rows, K, r, dt, j->rp, 1, j->an, dxd, j->Kp, 0);
            if (j->t->p > 0.0f) sft__lora_drop_rows(j, dxd, j->Kp, b0, rows, dx, K, 1);
            else for (i = 0; i < rows; i++) {
                int64_t c;
                for (c = 0; c < K; c++) dx[i * K + c] += dxd[i * j->Kp + c];
            }
        }
    }
}

/* sft__lora_sum_shares: gradient += the tasks' shares, in task order */
typedef struct sft__lora_sum { float *grad; const float *shares; int64_t size, tasks; } sft__lora_sum;

static void sft__lora_sum_range(void *arg, int64_t b, int64_t e) {
    const sft__lora_sum *u = (const sft__lora_sum *)arg;
    int64_t i, t;
    for (i = b; i < e; i++) {
        float acc = u->grad[i];
        for (t = 0; t < u->tasks; t++) acc += u->shares[t * u->size + i];
        u->grad[i] = acc;
    }
}

/* The call's temporaries, given back when it returns. */
typedef struct sft__lora_temps { sft_tensor *t[6]; int n; } sft__lora_temps;

static sft_status sft__lora_temp(sft_context *ctx, sft__lora_temps *tmp, int64_t floats, float **out) {
    SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_F32, 1, &floats, &tmp->t[tmp->n]));
    *out = SFT__F(tmp->t[tmp->n++]);
    return SFT_OK;
}

static sft_status sft__lora_prepare(sft_context *ctx, const sft__node *n, const sft__lin_term *t, int64_t r0, int64_t r1,
                                    int backward, sft__lora_job *j, sft__lora_temps *tmp) {
    const sft__lin_plan *p = (const sft__lin_plan *)n->ptr;
    const sft__adapter *ad = t->ad;
    int64_t K = p->K, N = p->N, r = ad->desc.r, tasks = (r1 - r0 + SFT__LORA_TASK_ROWS - 1) / SFT__LORA_TASK_ROWS;
    float *a, *b;
    memset(j, 0, sizeof *j);
    j->k = sft__cpu_kernels_of(ctx); j->n = n; j->p = p; j->t = t; j->r0 = r0; j->r1 = r1; j->r = r;
    j->rp = sft__round_up(sft__round_up(r, j->k->nr), j->k->mr);
    j->Kp = sft__round_up(sft__round_up(K, j->k->nr), j->k->mr);
    j->Np = sft__round_up(sft__round_up(N, j->k->nr), j->k->mr);
    SFT__TRY(sft__lora_temp(ctx, tmp, (int64_t)ctx->threads * sft__lora_scratch_floats(j), &j->scratch));
    /* forward: A^T (depth K) then B^T (depth r, Np columns); backward: B (depth N) then A (depth r, Kp columns) */
    SFT__TRY(sft__lora_temp(ctx, tmp, (K > N ? K : N) * j->rp + j->rp * (j->Kp > j->Np ? j->Kp : j->Np), &a));
    b = a + (K > N ? K : N) * j->rp;
    if (!backward) { j->at = a; j->bt = b; }
    else {
        j->bn = a; j->an = b;
        j->want_dx = n->in[0]->requires_grad; j->want_dA = ad->A->requires_grad; j->want_dB = ad->B->requires_grad;
        if (j->want_dB) SFT__TRY(sft__lora_temp(ctx, tmp, tasks * N * r, &j->dB));
        if (j->want_dA) SFT__TRY(sft__lora_temp(ctx, tmp, tasks * r * K, &j->dA));
    }
    if (ctx->plan_only) return SFT_OK;
    if (!backward) {
        sft__lora_pack(j->k, sft__mat_t(sft__mat_of(SFT__CF(ad->A), K, 1)), K, r, a);   /* A^T: depth K, r columns */
        sft__lora_pack(j->k, sft__mat_t(sft__mat_of(SFT__CF(ad->B), r, 1)), r, N, b);   /* B^T: depth r, N columns */
    } else {
        sft__lora_pack(j->k, sft__mat_of(SFT__CF(ad->B), r, 1), N, r, a);               /* B: depth N, r columns */
        sft__lora_pack(j->k, sft__mat_of(SFT__CF(ad->A), K, 1), r, K, b);               /* A: depth r, K columns */
    }
    return SFT_OK;
}

static sft_status sft__lora_run(sft_context *ctx, const sft__node *n, const sft__lin_term *t, int64_t r0, int64_t r1, int backward) {
    sft__lora_job j;
    sft__lora_temps tmp;
    int64_t tasks = (r1 - r0 + SFT__LORA_TASK_ROWS - 1) / SFT__LORA_TASK_ROWS;
    sft_status s;
    memset(&tmp, 0, sizeof tmp);
    s = sft__lora_prepare(ctx, n, t, r0, r1, backward, &j, &tmp);
    if (s == SFT_OK && !ctx->plan_only) {
        sft__parallel(ctx, tasks, backward ? sft__lora_bwd_task : sft__lora_fwd_task, &j);
        if (backward && j.want_dB) {
            sft__lora_sum u;
            u.grad = SFT__F(t->ad->B->grad); u.shares = j.dB; u.size = j.p->N * j.r; u.tasks = tasks;
            sft__parallel_rows(ctx, u.size, 4096, sft__lora_sum_range, &u);
        }
        if (backward && j.want_dA) {
            sft__lora_sum u;
            u.grad = SFT__F(t->ad->A->grad); u.shares = j.dA; u.size = j.r * j.p->K; u.tasks = tasks;
            sft__parallel_rows(ctx, u.size, 4096, sft__lora_sum_range, &u);
        }
    }
    while (tmp.n > 0) sft__tensor_release(ctx, tmp.t[--tmp.n]);
    return s;
}

/* the rows term ti covers */
static int64_t sft__lin_term_rows(const sft__lin_plan *p, int ti) {
    int64_t cursor = 0, r0, r1, rows = 0;
    while (sft__lin_run(p, ti, &cursor, &r0, &r1)) rows += r1 - r0;
    return rows;
}

static double sft__linear_flops(const sft__node *n, int backward, double *adapters) {
    const sft__lin_plan *p = (const sft__lin_plan *)n->ptr;
    double mnk = 2.0 * (double)p->M * (double)p->N * (double)p->K;
    int ti;
    *adapters = 0.0;
    for (ti = 0; ti < p->n_terms; ti++)   /* forward x A^T, t B^T; backward dB, dt, dA, dx */
        *adapters += (backward ? 4.0 : 2.0) * (double)sft__lin_term_rows(p, ti) * (double)p->term[ti].ad->desc.r *
                     (double)(p->N + p->K);
    if (!backward) return mnk;
    return mnk * ((n->in[0]->requires_grad != 0) + (p->w.w && p->w.w->requires_grad));
}

/* sft__lin_prof_adapters: profiling moves the adapters' share of a linear
   kernel's time (since t0) to their own row */
static void sft__lin_prof_adapters(sft_context *ctx, const sft__node *n, int backward, double t0) {
    double adapters, dt;
    if (!ctx->profiling || ctx->plan_only) return;
    dt = sft__seconds() - t0;
    (void)sft__linear_flops(n, backward, &adapters);
    sft__prof_add(ctx, SFT__PROF_ADAPTERS, backward, dt, adapters);
    ctx->prof_s[backward][SFT__OP_LINEAR] -= dt;
    if (!backward) ctx->prof_calls[SFT__PROF_ADAPTERS]++;
}

static sft_status sft__cpu_linear_fwd(sft_context *ctx, sft__node *n) {
    sft__lin_plan *p = (sft__lin_plan *)(uintptr_t)n->ptr;
    double t0;
    int ti;
    SFT__TRY(sft__gemm_w(ctx, p->M, sft__mat_of(SFT__CF(n->in[0]), p->K, 1), &p->w, 1, SFT__F(n->out), p->N, 0));
    if (p->base_out) memcpy(SFT__F(p->base_out), SFT__CF(n->out), sft_tensor_nbytes(p->base_out));
    if (n->in[1]) sft__parallel_rows(ctx, p->M, 64, sft__lin_bias_rows, n);
    t0 = ctx->profiling ? sft__seconds() : 0.0;
    for (ti = 0; ti < p->n_terms; ti++) {
        sft__lin_term *t = &p->term[ti];
        int64_t cursor = 0, r0, r1;
        if (t->ad->m) SFT__TRY(sft__dora_norm(ctx, &p->w, t->ad->A, t->ad->B, t->ad->scaling, SFT__F(t->norm)));
        while (sft__lin_run(p, ti, &cursor, &r0, &r1)) {
            if (t->bits) sft__dropout_mask(ctx, t->key, t->p, r0 * p->K, r1 * p->K, t->bits);
            if (t->ad->m) SFT__TRY(sft__lin_term_fwd(ctx, n, t, r0, r1));
            else SFT__TRY(sft__lora_run(ctx, n, t, r0, r1, 0));
        }
    }
    if (p->n_terms) sft__lin_prof_adapters(ctx, n, 0, t0);
    return SFT_OK;
}

/* The temporaries of a term's backward, given back when it returns. */
typedef struct sft__lin_temps { sft_tensor *xd, *gt, *dt, *dxd; } sft__lin_temps;

/* One term's backward over rows [r0, r1): gradients of B, A, x (and m). */
static sft_status sft__lin_term_bwd_rows(sft_context *ctx, sft__node *n, sft__lin_term *t, int64_t r0, int64_t r1,
                                         sft__lin_temps *tmp) {
    const sft__lin_plan *p = (const sft__lin_plan *)n->ptr;
    const sft__adapter *ad = t->ad;
    int64_t rows = r1 - r0, r = ad->desc.r, N = p->N, K = p->K, i, o, shape[2];
    const float *g = SFT__CF(n->out->grad) + r0 * N, *gl = g, *xr, *tr = SFT__CF(t->t) + r0 * r;
    float s = ad->scaling;
    sft_tensor *gt = NULL, *dt, *dxd;
    sft_tensor *x = n->in[0];
    SFT__TRY(sft__lin_input(ctx, n, t, r0, r1, &xr, &tmp->xd));
    if (ad->m) {                  /* the adapter's path is scaled by m / norm */
        const float *m = SFT__CF(ad->m), *norm = SFT__CF(t->norm);
        shape[0] = rows; shape[1] = N;
        SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_F32, 2, shape, &tmp->gt));
        gt = tmp->gt;
        for (i = 0; i < rows && !ctx->plan_only; i++)
            for (o = 0; o < N; o++) SFT__F(gt)[i * N + o] = g[i * N + o] * (m[o] / norm[o]);
        gl = SFT__CF(gt);
        if (ad->m->requires_grad) {
            const float *bn = SFT__CF(t->base_nb) + r0 * N, *lo = SFT__CF(t->lora) + r0 * N;
            float *dm = SFT__F(ad->m->grad);
            for (o = 0; o < N; o++) {
                float acc = 0.0f;
                for (i = 0; i < rows; i++) acc += g[i * N + o] * (bn[i * N + o] + lo[i * N + o]);
                dm[o] += acc / norm[o];
            }
        }
    }
    if (ad->B->requires_grad)
        SFT__TRY(sft__gemm(ctx, N, r, rows, sft__mat_t(sft__mat_of(gl, N, 1)), sft__mat_of(tr, r, 1), SFT__F(ad->B->grad), r, 1));
    if (!ad->A->requires_grad && !x->requires_grad) return SFT_OK;
    shape[0] = rows; shape[1] = r;
    SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_F32, 2, shape, &tmp->dt));
    dt = tmp->dt;
    SFT__TRY(sft__gemm(ctx, rows, r, N, sft__mat_of(gl, N, 1), sft__mat_of(SFT__CF(ad->B), r, 1), SFT__F(dt), r, 0));
    for (i = 0; i < rows * r && !ctx->plan_only; i++) SFT__F(dt)[i] *= s;
    if (ad->A->requires_grad)
        SFT__TRY(sft__gemm(ctx, r, K, rows, sft__mat_t(sft__mat_of(SFT__CF(dt), r, 1)), sft__mat_of(xr, K, 1), SFT__F(ad->A->grad),
                           K, 1));
    if (!x->requires_grad) return SFT_OK;
    if (t->p <= 0.0f)
        return sft__gemm(ctx, rows, K, r, sft__mat_of(SFT__CF(dt), r, 1), sft__mat_of(SFT__CF(ad->A), K, 1), SFT__F(x->grad) + r0 * K,
                         K, 1);
    shape[0] = rows; shape[1] = K;
    SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_F32, 2, shape, &tmp->dxd));
    dxd = tmp->dxd;
    SFT__TRY(sft__gemm(ctx, rows, K, r, sft__mat_of(SFT__CF(dt), r, 1), sft__mat_of(SFT__CF(ad->A), K, 1), SFT__F(dxd), K, 0));
    if (ad->m) {                  /* DoRA's base term on the dropped-out input */
        const float *m = SFT__CF(ad->m), *norm = SFT__CF(t->norm);
        for (i = 0; i < rows && !ctx->plan_only; i++)
            for (o = 0; o < N; o++) SFT__F(gt)[i * N + o] = g[i * N + o] * (m[o] / norm[o] - 1.0f);
        SFT__TRY(sft__gemm_w(ctx, rows, sft__mat_of(SFT__CF(gt), N, 1), &p->w, 0, SFT__F(dxd), K, 1));
    }
    sft__lin_drop(ctx, p, t, SFT__CF(dxd), r0 * K, rows * K, SFT__F(x->grad) + r0 * K, 1);
    return SFT_OK;
}

static sft_status sft__lin_term_bwd(sft_context *ctx, sft__node *n, sft__lin_term *t, int64_t r0, int64_t r1) {
    sft__lin_temps tmp;
    sft_status s;
    memset(&tmp, 0, sizeof tmp);
    s = sft__lin_term_bwd_rows(ctx, n, t, r0, r1, &tmp);
    sft__tensor_release(ctx, tmp.dxd); sft__tensor_release(ctx, tmp.dt);
    sft__tensor_release(ctx, tmp.gt); sft__tensor_release(ctx, tmp.xd);
    return s;
}

/* The base path's gradient dy' W, where dy' adds (m / norm - 1) dy on the rows of
   a DoRA term without dropout (its base product is the layer's own). */
static sft_status sft__lin_base_bwd(sft_context *ctx, sft__node *n) {
    const sft__lin_plan *p = (const sft__lin_plan *)n->ptr;
    const float *g = SFT__CF(n->out->grad);
    sft_tensor *gb = NULL;
    int ti;
    for (ti = 0; ti < p->n_terms; ti++) {
        const sft__lin_term *t = &p->term[ti];
        int64_t cursor = 0, r0, r1, i, o;
        if (!t->ad->m || t->p > 0.0f) continue;
        if (!gb) {
            int64_t shape[2];
            shape[0] = p->M; shape[1] = p->N;
            SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_F32, 2, shape, &gb));
            memcpy(SFT__F(gb), g, (size_t)(p->M * p->N) * sizeof(float));
        }
        while (sft__lin_run(p, ti, &cursor, &r0, &r1))
            for (i = r0; i < r1; i++)
                for (o = 0; o < p->N; o++)
                    SFT__F(gb)[i * p->N + o] += g[i * p->N + o] * (SFT__CF(t->ad->m)[o] / SFT__CF(t->norm)[o] - 1.0f);
    }
    {
        sft_status s = sft__gemm_w(ctx, p->M, sft__mat_of(gb ? SFT__CF(gb) : g, p->N, 1), &p->w, 0, SFT__F(n->in[0]->grad), p->K, 1);
        sft__tensor_release(ctx, gb);
        return s;
    }
}

/* sft__lin_plan_release: what the call kept for its backward, given back after it */
static void sft__lin_plan_release(sft_context *ctx, sft__lin_plan *p) {
    int ti;
    for (ti = 0; ti < p->n_terms; ti++) {
        sft__lin_term *t = &p->term[ti];
        sft__tensor_release(ctx, t->t);
        sft__tensor_release(ctx, t->lora);
        if (t->base_nb != p->base_out) sft__tensor_release(ctx, t->base_nb);
        if (t->bits_t) { sft__tensor_release(ctx, t->bits_t); t->bits = NULL; }
    }
    sft__tensor_release(ctx, p->base_out);
}

static sft_status sft__cpu_linear_bwd(sft_context *ctx, sft__node *n) {
    sft__lin_plan *p = (sft__lin_plan *)(uintptr_t)n->ptr;
    double t0;
    int ti;
    if (n->in[0]->requires_grad) SFT__TRY(sft__lin_base_bwd(ctx, n));
    if (p->w.w && p->w.w->requires_grad) {       /* full fine-tuning: dW += dy^T x */
        sft_tensor *w = (sft_tensor *)(uintptr_t)p->w.w;
        SFT__TRY(sft__ensure_grad(ctx, w));
        SFT__TRY(sft__gemm(ctx, p->N, p->K, p->M, sft__mat_t(sft__mat_of(SFT__CF(n->out->grad), p->N, 1)),
                           sft__mat_of(SFT__CF(n->in[0]), p->K, 1), SFT__F(w->grad), p->K, 1));
    }
    if (n->in[1] && n->in[1]->requires_grad) {
        const float *g = SFT__CF(n->out->grad);
        float *db = SFT__F(n->in[1]->grad);
        int64_t i, o;
        for (o = 0; o < p->N; o++) {
            float acc = 0.0f;
            for (i = 0; i < p->M; i++) acc += g[i * p->N + o];
            db[o] += acc;
        }
    }
    t0 = ctx->profiling ? sft__seconds() : 0.0;
    for (ti = 0; ti < p->n_terms; ti++) {
        sft__lin_term *t = &p->term[ti];
        int64_t cursor = 0, r0, r1;
        if (t->ad->A->requires_grad) SFT__TRY(sft__ensure_grad(ctx, (sft_tensor *)t->ad->A));
        if (t->ad->B->requires_grad) SFT__TRY(sft__ensure_grad(ctx, (sft_tensor *)t->ad->B));
        if (t->ad->m && t->ad->m->requires_grad) SFT__TRY(sft__ensure_grad(ctx, (sft_tensor *)t->ad->m));
        while (sft__lin_run(p, ti, &cursor, &r0, &r1)) {
            if (t->ad->m) SFT__TRY(sft__lin_term_bwd(ctx, n, t, r0, r1));
            else SFT__TRY(sft__lora_run(ctx, n, t, r0, r1, 1));
        }
    }
    if (p->n_terms) sft__lin_prof_adapters(ctx, n, 1, t0);
    sft__lin_plan_release(ctx, p);
    return SFT_OK;
}

/* ============================================================================
   === kernels: prompt tuning
   node: in[0] = embeds [B, T, D], in[1] = prompts [P, D]; out [B, P + T, D]. */

static sft_status sft__cpu_prompt_fwd(sft_context *ctx, sft__node *n) {
    int64_t B = n->in[0]->shape[0], T = n->in[0]->shape[1], D = n->in[0]->shape[2], P = n->in[1]->shape[0], b;
    float *o = SFT__F(n->out);
    (void)ctx;
    for (b = 0; b < B; b++) {
        memcpy(o + b * (P + T) * D, SFT__CF(n->in[1]), (size_t)(P * D) * sizeof(float));
        memcpy(o + (b * (P + T) + P) * D, SFT__CF(n->in[0]) + b * T * D, (size_t)(T * D) * sizeof(float));
    }
    return SFT_OK;
}

static sft_status sft__cpu_prompt_bwd(sft_context *ctx, sft__node *n) {
    int64_t B = n->in[0]->shape[0], T = n->in[0]->shape[1], D = n->in[0]->shape[2], P = n->in[1]->shape[0], b, i;
    const float *g = SFT__CF(n->out->grad);
    (void)ctx;
    for (b = 0; b < B; b++) {
        const float *gb = g + b * (P + T) * D;
        if (n->in[1]->requires_grad)
            for (i = 0; i < P * D; i++) SFT__F(n->in[1]->grad)[i] += gb[i];
        if (n->in[0]->requires_grad)
            for (i = 0; i < T * D; i++) SFT__F(n->in[0]->grad)[b * T * D + i] += gb[P * D + i];
    }
    return SFT_OK;
}

/* ============================================================================
   === kernels: the CPU backend table (in sft__op order) */

static const sft__backend sft__cpu_backend = {
    "cpu",
    {sft__cpu_matmul_fwd, sft__cpu_add_fwd, sft__cpu_mul_fwd, sft__cpu_scale_fwd, sft__cpu_reshape_fwd,
     sft__cpu_embedding_fwd, sft__cpu_rmsnorm_fwd, sft__cpu_silu_fwd, sft__cpu_silu_fwd, sft__cpu_rope_fwd,
     sft__cpu_attention_fwd, sft__cpu_ce_fwd, sft__cpu_dropout_fwd, sft__cpu_lce_fwd, sft__cpu_linear_fwd, sft__cpu_prompt_fwd},
    {sft__cpu_matmul_bwd, sft__cpu_ew_bwd, sft__cpu_ew_bwd, sft__cpu_scale_bwd, sft__cpu_reshape_bwd,
     sft__cpu_embedding_bwd, sft__cpu_rmsnorm_bwd, sft__cpu_silu_bwd, sft__cpu_silu_bwd, sft__cpu_rope_bwd,
     sft__cpu_attention_bwd, sft__cpu_ce_bwd, sft__cpu_dropout_bwd, sft__cpu_lce_bwd, sft__cpu_linear_bwd, sft__cpu_prompt_bwd}};

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
        if (in[i] && in[0] && in[i]->device != in[0]->device)
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

/* sft__i32_host: an i32 tensor's values where the host can read them: its own
   data on the CPU, else a copy in the step arena (ids and labels on a device are
   checked and counted on the host before the kernel runs). */
static sft_status sft__i32_host(sft_context *ctx, const sft_tensor *t, const int32_t **out) {
    void *mem;
    *out = (const int32_t *)t->data;
    if (t->device == SFT_DEVICE_CPU) return SFT_OK;
    SFT__TRY(sft__arena_alloc(sft__cur_arena(ctx, SFT_DEVICE_CPU), sft_tensor_nbytes(t), &mem));
    SFT__TRY(sft__device_copy(mem, SFT_DEVICE_CPU, t->data, t->device, sft_tensor_nbytes(t)));
    *out = (const int32_t *)mem;
    return SFT_OK;
}

/* ============================================================================
   === ops: the public operators */

/* sft__matmul_ex: sft_matmul; bf16: a frozen 2-D b (the output projection) is
   multiplied in bf16 (node f[0] = 1) */
static sft_status sft__matmul_ex(sft_context *ctx, sft_tensor *a, sft_tensor *b, int trans_a, int trans_b, int bf16,
                                 sft_tensor **out);

SFTDEF sft_status sft_matmul(sft_context *ctx, sft_tensor *a, sft_tensor *b, int trans_a, int trans_b, sft_tensor **out) {
    return sft__matmul_ex(ctx, a, b, trans_a, trans_b, 0, out);
}

static sft_status sft__matmul_ex(sft_context *ctx, sft_tensor *a, sft_tensor *b, int trans_a, int trans_b, int bf16,
                                 sft_tensor **out) {
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
    n.f[0] = bf16 && b->ndim == 2 && !b->requires_grad ? 1.0f : 0.0f;
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
    const int32_t *id_values;
    char sb[96];
    in[0] = weight; in[1] = ids;
    SFT__TRY(sft__node_begin(ctx, &n, SFT__OP_EMBEDDING, 2, in, out));
    SFT__TRY(sft__check_in("embedding", "weight", weight, SFT_F32));
    SFT__TRY(sft__check_in("embedding", "ids", ids, SFT_I32));
    if (weight->ndim != 2) return sft__fail(SFT_ERR_SHAPE, "embedding: weight must be [V, D], got %s", SFT__SHAPE(weight, sb));
    if (ids->ndim >= SFT_MAX_DIMS) return sft__fail(SFT_ERR_SHAPE, "embedding: ids %s has too many dims", SFT__SHAPE(ids, sb));
    count = sft_tensor_numel(ids);
    SFT__TRY(sft__i32_host(ctx, ids, &id_values));
    for (i = 0; i < count; i++) {
        int32_t id = id_values[i];
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
static sft_status sft__ce_prepare(sft_context *ctx, const char *op, const sft_ce_desc *desc, const sft_tensor *labels, int64_t N,
                                  int64_t V, sft__node *n) {
    sft_ce_desc d;
    int64_t i, counted = 0;
    const int32_t *values;
    memset(&d, 0, sizeof d);
    if (desc) d = *desc;
    if (d.ignore_index == 0) d.ignore_index = -100;
    if (!(d.label_smoothing >= 0.0f && d.label_smoothing < 1.0f))
        return sft__fail(SFT_ERR_ARG, "%s: label_smoothing = %g (want [0, 1))", op, d.label_smoothing);
    if ((int)d.reduction < 0 || d.reduction > SFT_CE_SUM_DIV)
        return sft__fail(SFT_ERR_ARG, "%s: reduction %d does not exist", op, (int)d.reduction);
    if (d.reduction == SFT_CE_SUM_DIV && !(d.divisor > 0.0f && d.divisor < INFINITY))
        return sft__fail(SFT_ERR_ARG, "%s: divisor = %g (want > 0, e.g. num_items_in_batch)", op, d.divisor);
    SFT__TRY(sft__i32_host(ctx, labels, &values));
    for (i = 0; i < N; i++) {
        int32_t y = values[i];
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
    SFT__TRY(sft__ce_prepare(ctx, "cross_entropy", desc, labels, N, V, &n));
    saved_shape[0] = 2; saved_shape[1] = N;
    SFT__TRY(sft__tensor_step(ctx, logits->device, SFT_F32, 2, saved_shape, &n.saved));
    SFT__TRY(sft__node_out(ctx, &n, 0, NULL));
    return sft__op_run(ctx, &n, out);
}

static sft_status sft__linear_cross_entropy_ex(sft_context *ctx, sft_tensor *hidden, sft_tensor *weight, sft_tensor *labels,
                                               const sft_ce_desc *desc, int bf16, sft__lce_metrics *mt, sft_tensor **out);

SFTDEF sft_status sft_linear_cross_entropy(sft_context *ctx, sft_tensor *hidden, sft_tensor *weight, sft_tensor *labels,
                                           const sft_ce_desc *desc, sft_tensor **out) {
    return sft__linear_cross_entropy_ex(ctx, hidden, weight, labels, desc, 0, NULL, out);
}

/* sft__linear_cross_entropy_ex: bf16 = a frozen weight multiplied in bf16; mt
   (may be NULL) gets the token metrics of forward */
static sft_status sft__linear_cross_entropy_ex(sft_context *ctx, sft_tensor *hidden, sft_tensor *weight, sft_tensor *labels,
                                               const sft_ce_desc *desc, int bf16, sft__lce_metrics *mt, sft_tensor **out) {
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
    SFT__TRY(sft__ce_prepare(ctx, "linear_cross_entropy", desc, labels, N, V, &n));
    vc = N ? (SFT__LCE_CHUNK_BYTES / 4 / N) & ~(int64_t)63 : V;
    if (vc < 64) vc = 64;
    if (vc > V) vc = V;
    n.i[1] = vc;
    n.f[2] = bf16 ? 1.0f : 0.0f;
    n.ptr = mt;
    saved = 4 * N + N * vc;
    SFT__TRY(sft__tensor_step(ctx, hidden->device, SFT_F32, 1, &saved, &n.saved));
    SFT__TRY(sft__node_out(ctx, &n, 0, NULL));
    return sft__op_run(ctx, &n, out);
}

SFTDEF sft_status sft_dropout(sft_context *ctx, sft_tensor *x, float p, uint64_t seed, sft_tensor **out) {
    sft__node n;
    int64_t words;
    SFT__TRY(sft__node_begin(ctx, &n, SFT__OP_DROPOUT, 1, &x, out));
    SFT__TRY(sft__check_in("dropout", "x", x, SFT_F32));
    if (!(p >= 0.0f && p <= 1.0f)) return sft__fail(SFT_ERR_ARG, "dropout: p = %g (want [0, 1])", p);
    if (p == 0.0f) { *out = x; return SFT_OK; }
    n.f[0] = p;
    n.i[0] = (int64_t)seed;
    words = (sft_tensor_numel(x) + 63) / 64 * 8;
    SFT__TRY(sft__tensor_step(ctx, x->device, SFT_U8, 1, &words, &n.saved));
    SFT__TRY(sft__node_out(ctx, &n, x->ndim, x->shape));
    return sft__op_run(ctx, &n, out);
}

/* ============================================================================
   === peft: Linear4bit, LoRA layers, prompt tuning (the public calls) */

/* purposes for sft_rng_key */
#define SFT__RNG_LORA_INIT    0x4c6f524141ull
#define SFT__RNG_LORA_DROPOUT 0x4c6f524144ull
#define SFT__RNG_PROMPT_INIT  0x50726f6d70ull

/* sft__rng_normal: a standard normal value from (key, i) (Box-Muller). */
static float sft__rng_normal(uint64_t key, uint64_t i) {
    float u1 = sft_rng_uniform(key, 2 * i), u2 = sft_rng_uniform(key, 2 * i + 1);
    return sqrtf(-2.0f * logf(1.0f - u1)) * cosf(6.28318530718f * u2);
}

static sft_status sft__lin_check_x(const char *op, const sft_tensor *x, int64_t K) {
    char sb[96];
    SFT__TRY(sft__check_in(op, "x", x, SFT_F32));
    if (x->ndim < 1 || x->shape[x->ndim - 1] != K)
        return sft__fail(SFT_ERR_SHAPE, "%s: x %s must end in in_features = %lld", op, SFT__SHAPE(x, sb), (long long)K);
    return SFT_OK;
}

/* x must be where the layer's weight is (a CUDA layer takes CUDA inputs) */
static sft_status sft__lin_check_device(const char *op, const sft_tensor *x, sft__wref w) {
    sft_device wd = sft__wref_device(&w);
    if (x->device != wd)
        return sft__fail(SFT_ERR_DEVICE, "%s: x is on %s, the weight on %s", op, x->device == SFT_DEVICE_CPU ? "cpu" : "cuda",
                         wd == SFT_DEVICE_CPU ? "cpu" : "cuda");
    return SFT_OK;
}

static sft_status sft__lin_check_bias(const char *op, const sft_tensor *bias, int64_t N) {
    char sb[96];
    if (!bias) return SFT_OK;
    SFT__TRY(sft__check_in(op, "bias", bias, SFT_F32));
    if (bias->ndim != 1 || bias->shape[0] != N)
        return sft__fail(SFT_ERR_SHAPE, "%s: bias %s must be [%lld]", op, SFT__SHAPE(bias, sb), (long long)N);
    return SFT_OK;
}

static sft_status sft__lin_plan_new(sft_context *ctx, sft__wref w, const sft_tensor *x, sft__lin_plan **out) {
    void *mem;
    sft__lin_plan *p;
    SFT__TRY(sft__arena_alloc(sft__cur_arena(ctx, SFT_DEVICE_CPU), sizeof *p, &mem));
    p = (sft__lin_plan *)mem;
    memset(p, 0, sizeof *p);
    p->w = w; p->K = w.K; p->N = w.N;
    p->M = w.K ? sft_tensor_numel(x) / w.K : 0;
    *out = p;
    return SFT_OK;
}

/* sft__lin_node_run: plan p on x as one node, recorded when anything it reads
   needs a gradient. */
static sft_status sft__lin_node_run(sft_context *ctx, sft__lin_plan *p, sft_tensor *x, sft_tensor *bias, sft_tensor **out) {
    sft__node n;
    sft_tensor *in[2];
    int64_t shape[SFT_MAX_DIMS];
    int i, grad;
    in[0] = x; in[1] = bias;
    SFT__TRY(sft__node_begin(ctx, &n, SFT__OP_LINEAR, 2, in, out));
    for (i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
    shape[x->ndim - 1] = p->N;
    n.ptr = p;
    SFT__TRY(sft__node_out(ctx, &n, x->ndim, shape));
    SFT__TRY(sft__dispatch(ctx, &n, 0));
    grad = x->requires_grad || (bias && bias->requires_grad) || (p->w.w && p->w.w->requires_grad);
    for (i = 0; i < p->n_terms; i++)
        grad |= p->term[i].ad->A->requires_grad || p->term[i].ad->B->requires_grad || (p->term[i].ad->m && p->term[i].ad->m->requires_grad);
    if (ctx->grad_enabled && grad) SFT__TRY(sft__record(ctx, &n, &n.out, 1));
    *out = n.out;
    return SFT_OK;
}

SFTDEF sft_status sft_linear4bit(sft_context *ctx, sft_tensor *x, const sft_qweight *w, sft_tensor *bias, sft_tensor **out) {
    sft__lin_plan *p;
    sft__wref ref;
    if (out) *out = NULL;
    if (!ctx || !out || !w) return sft__fail(SFT_ERR_ARG, "linear4bit: NULL argument");
    SFT__TRY(sft__lin_check_x("linear4bit", x, w->cols));
    SFT__TRY(sft__lin_check_bias("linear4bit", bias, w->rows));
    ref.q = w; ref.w = NULL; ref.N = w->rows; ref.K = w->cols; ref.bf16 = 0;
    SFT__TRY(sft__lin_check_device("linear4bit", x, ref));
    SFT__TRY(sft__lin_plan_new(ctx, ref, x, &p));
    return sft__lin_node_run(ctx, p, x, bias, out);
}

/* --- the layer object -------------------------------------------------------- */

struct sft_linear {
    sft_context  *ctx;
    sft_tensor   *weight, *bias;
    sft_qweight  *qweight;
    int64_t       in, out;
    sft__adapter  ad[SFT__LINEAR_MAX_ADAPTERS];
    int           n_ad;
    int           active[SFT__LINEAR_MAX_ADAPTERS], n_active;
    int           merged[SFT__LINEAR_MAX_ADAPTERS], n_merged;   /* in merge order */
    int           disabled;
    int           compute_bf16;
};

static sft__wref sft__lin_wref(const sft_linear *l) {
    sft__wref w;
    w.q = l->qweight; w.w = l->weight; w.N = l->out; w.K = l->in; w.bf16 = l->compute_bf16;
    return w;
}

static sft_status sft__compute_dtype_check(const char *op, sft_dtype d) {
    if (d != SFT_F32 && d != SFT_BF16)
        return sft__fail(SFT_ERR_ARG, "%s: compute_dtype %s (want f32 or bf16)", op, sft_dtype_name(d));
    return SFT_OK;
}

SFTDEF sft_status sft_linear_set_compute_dtype(sft_linear *lin, sft_dtype compute_dtype) {
    if (!lin) return sft__fail(SFT_ERR_ARG, "linear: NULL layer");
    SFT__TRY(sft__compute_dtype_check("linear", compute_dtype));
    lin->compute_bf16 = compute_dtype == SFT_BF16;
    return SFT_OK;
}

SFTDEF int64_t sft_linear_in_features(const sft_linear *lin) { return lin ? lin->in : 0; }
SFTDEF int64_t sft_linear_out_features(const sft_linear *lin) { return lin ? lin->out : 0; }
SFTDEF const sft_tensor *sft_linear_base_weight(const sft_linear *lin) { return lin ? lin->weight : NULL; }
SFTDEF const sft_qweight *sft_linear_base_qweight(const sft_linear *lin) { return lin ? lin->qweight : NULL; }

SFTDEF sft_status sft_linear_create(sft_context *ctx, const sft_linear_desc *desc, sft_linear **out) {
    sft_linear *l;
    char sb[96];
    if (out) *out = NULL;
    if (!ctx || !desc || !out) return sft__fail(SFT_ERR_ARG, "linear: NULL argument");
    if (!desc->weight == !desc->qweight) return sft__fail(SFT_ERR_ARG, "linear: give exactly one of weight and qweight");
    if (desc->weight) {
        const sft_tensor *w = desc->weight;
        if (w->dtype != SFT_F32 && w->dtype != SFT_BF16)
            return sft__fail(SFT_ERR_DTYPE, "linear: weight is %s (want f32 or bf16)", sft_dtype_name(w->dtype));
        if (w->ndim != 2 || w->shape[0] < 1 || w->shape[1] < 1)
            return sft__fail(SFT_ERR_SHAPE, "linear: weight %s must be [out, in], neither empty", SFT__SHAPE(w, sb));
    }
    SFT__TRY(sft__lin_check_bias("linear", desc->bias, desc->weight ? desc->weight->shape[0] : desc->qweight->rows));
    SFT__TRY(sft__compute_dtype_check("linear", desc->compute_dtype));
    if (desc->bias && desc->bias->device != (desc->weight ? desc->weight->device : desc->qweight->device))
        return sft__fail(SFT_ERR_DEVICE, "linear: the bias is on another device than the weight");
    l = (sft_linear *)sft__calloc(ctx, 1, sizeof *l);
    if (!l) return sft__fail(SFT_ERR_NOMEM, "linear: cannot allocate the layer");
    l->ctx = ctx; l->weight = desc->weight; l->qweight = desc->qweight; l->bias = desc->bias;
    l->out = desc->weight ? desc->weight->shape[0] : desc->qweight->rows;
    l->in = desc->weight ? desc->weight->shape[1] : desc->qweight->cols;
    l->compute_bf16 = desc->compute_dtype == SFT_BF16;
    *out = l;
    return SFT_OK;
}

static void sft__adapter_free(sft_context *ctx, sft__adapter *a) {
    sft__free(ctx, a->name);
    sft_tensor_destroy(a->A);
    sft_tensor_destroy(a->B);
    sft_tensor_destroy(a->m);
    sft__free(ctx, a->merged_norm);
    memset(a, 0, sizeof *a);
}

SFTDEF void sft_linear_destroy(sft_linear *lin) {
    int i;
    if (!lin) return;
    for (i = 0; i < lin->n_ad; i++) sft__adapter_free(lin->ctx, &lin->ad[i]);
    sft_tensor_destroy(lin->weight);
    sft_tensor_destroy(lin->bias);
    sft_qweight_destroy(lin->qweight);
    sft__free(lin->ctx, lin);
}

static int sft__lin_find(const sft_linear *l, const char *name) {
    int i;
    for (i = 0; name && i < l->n_ad; i++)
        if (strcmp(l->ad[i].name, name) == 0) return i;
    return -1;
}

static sft_status sft__lin_unknown(const char *op, const char *name) {
    return sft__fail(SFT_ERR_NOT_FOUND, "%s: no adapter named '%s'", op, name ? name : "(null)");
}

/* sft__lora_defaults: PEFT's LoraConfig defaults for zero fields, and checks. */
static sft_status sft__lora_defaults(const sft_lora_desc *desc, sft_lora_desc *d) {
    memset(d, 0, sizeof *d);
    if (desc) *d = *desc;
    if (d->r == 0) d->r = 8;
    if (d->alpha == 0.0f) d->alpha = 8.0f;
    if (d->r < 0 || d->r > 65536) return sft__fail(SFT_ERR_ARG, "lora: r = %d (want 1..65536)", d->r);
    if (!(d->alpha > 0.0f && d->alpha < INFINITY)) return sft__fail(SFT_ERR_ARG, "lora: lora_alpha = %g (want > 0)", d->alpha);
    if (!(d->dropout >= 0.0f && d->dropout < 1.0f)) return sft__fail(SFT_ERR_ARG, "lora: lora_dropout = %g (want [0, 1))", d->dropout);
    if (d->init != SFT_LORA_INIT_KAIMING && d->init != SFT_LORA_INIT_GAUSSIAN)
        return sft__fail(SFT_ERR_ARG, "lora: init %d does not exist", (int)d->init);
    return SFT_OK;
}

/* sft__adapter_to_device: an adapter made on the CPU moves to its layer's device */
static sft_status sft__adapter_to_device(sft_context *ctx, sft__adapter *a, sft_device device) {
    sft_tensor **t[3];
    int i;
    t[0] = &a->A; t[1] = &a->B; t[2] = &a->m;
    for (i = 0; i < 3; i++) {
        sft_tensor *moved = NULL;
        if (!*t[i]) continue;
        SFT__TRY(sft_tensor_to_device(ctx, *t[i], device, &moved));
        sft_tensor_destroy(*t[i]);
        *t[i] = moved;
    }
    return SFT_OK;
}

/* sft__lin_dora_norm: |W + s B A| per row (sft__dora_norm) where the layer is */
static sft_status sft__lin_dora_norm(sft_context *ctx, const sft__wref *w, const sft_tensor *A, const sft_tensor *B, float s,
                                     float *norm) {
    if (sft__wref_device(w) == SFT_DEVICE_CPU) return sft__dora_norm(ctx, w, A, B, s, norm);
#ifdef SFT_CUDA
    return sft__cuda_dora_norm(ctx, w, A, B, s, norm);
#else
    return sft__no_cuda("DoRA norm");
#endif
}

/* A's first values: kaiming-uniform with a = sqrt(5) is U(-1/sqrt(in), 1/sqrt(in));
   "gaussian" is N(0, (1/r)^2) (PEFT: std = 1 / r). */
static void sft__lora_init_A(sft_tensor *A, const sft_lora_desc *d) {
    int64_t i, n = sft_tensor_numel(A), in = A->shape[1];
    uint64_t key = sft_rng_key(d->seed, SFT__RNG_LORA_INIT, 0, 0);
    float bound = 1.0f / sqrtf((float)in);
    for (i = 0; i < n; i++)
        SFT__F(A)[i] = d->init == SFT_LORA_INIT_GAUSSIAN ? sft__rng_normal(key, (uint64_t)i) / (float)d->r
                                                         : (2.0f * sft_rng_uniform(key, (uint64_t)i) - 1.0f) * bound;
}

SFTDEF sft_status sft_linear_add_adapter(sft_linear *lin, const char *name, const sft_lora_desc *desc) {
    sft_lora_desc d;
    sft__adapter *a;
    sft__wref w;
    int64_t shape[2];
    sft_status s = SFT_OK;
    if (!lin || !name || !*name) return sft__fail(SFT_ERR_ARG, "lora: NULL layer or empty adapter name");
    if (strcmp(name, "__base__") == 0) return sft__fail(SFT_ERR_ARG, "lora: '__base__' names the base model, not an adapter");
    if (sft__lin_find(lin, name) >= 0) return sft__fail(SFT_ERR_ARG, "lora: an adapter named '%s' exists", name);
    if (lin->n_ad == SFT__LINEAR_MAX_ADAPTERS)
        return sft__fail(SFT_ERR_LIMIT, "lora: a layer holds at most %d adapters", SFT__LINEAR_MAX_ADAPTERS);
    SFT__TRY(sft__lora_defaults(desc, &d));
    a = &lin->ad[lin->n_ad];
    memset(a, 0, sizeof *a);
    a->desc = d;
    a->scaling = d.use_rslora ? (float)((double)d.alpha / sqrt((double)d.r)) : (float)((double)d.alpha / (double)d.r);
    a->name = sft__strdup(lin->ctx, name);
    if (!a->name) s = sft__fail(SFT_ERR_NOMEM, "lora: cannot allocate the adapter '%s'", name);
    shape[0] = d.r; shape[1] = lin->in;
    if (s == SFT_OK) s = sft_tensor_create(lin->ctx, SFT_F32, 2, shape, &a->A);
    shape[0] = lin->out; shape[1] = d.r;
    if (s == SFT_OK) s = sft_tensor_create(lin->ctx, SFT_F32, 2, shape, &a->B);
    if (s == SFT_OK && d.use_dora) s = sft_tensor_create(lin->ctx, SFT_F32, 1, &lin->out, &a->m);
    if (s == SFT_OK) {
        sft__lora_init_A(a->A, &d);
        w = sft__lin_wref(lin);
        if (sft__wref_device(&w) != SFT_DEVICE_CPU) s = sft__adapter_to_device(lin->ctx, a, sft__wref_device(&w));
    }
    if (s == SFT_OK && a->m) s = sft__lin_dora_norm(lin->ctx, &w, a->A, a->B, a->scaling, SFT__F(a->m));   /* B = 0: |W| */
    if (s != SFT_OK) { sft__adapter_free(lin->ctx, a); return s; }
    sft_tensor_set_requires_grad(a->A, 1);
    sft_tensor_set_requires_grad(a->B, 1);
    if (a->m) sft_tensor_set_requires_grad(a->m, 1);
    if (lin->n_ad == 0) { lin->active[0] = 0; lin->n_active = 1; }   /* the first adapter is active, as in PEFT */
    lin->n_ad++;
    return SFT_OK;
}

SFTDEF sft_status sft_linear_set_active(sft_linear *lin, const char *const *names, int n) {
    int i, j, idx[SFT__LINEAR_MAX_ADAPTERS];
    if (!lin || n < 0 || (n > 0 && !names)) return sft__fail(SFT_ERR_ARG, "set_active: NULL layer or names");
    if (n > lin->n_ad) return sft__fail(SFT_ERR_ARG, "set_active: %d names for %d adapters", n, lin->n_ad);
    for (i = 0; i < n; i++) {
        if ((idx[i] = sft__lin_find(lin, names[i])) < 0) return sft__lin_unknown("set_active", names[i]);
        for (j = 0; j < i; j++)
            if (idx[j] == idx[i]) return sft__fail(SFT_ERR_ARG, "set_active: '%s' is named twice", names[i]);
    }
    memcpy(lin->active, idx, (size_t)n * sizeof(int));
    lin->n_active = n;
    return SFT_OK;
}

SFTDEF sft_status sft_linear_set_adapters_enabled(sft_linear *lin, int enabled) {
    if (!lin) return sft__fail(SFT_ERR_ARG, "set_adapters_enabled: NULL layer");
    if (!enabled && lin->n_merged) SFT__TRY(sft_linear_unmerge(lin));
    lin->disabled = !enabled;
    return SFT_OK;
}

SFTDEF sft_status sft_linear_adapter_weights(sft_linear *lin, const char *name, sft_lora_weights *out) {
    int i;
    if (!lin || !out) return sft__fail(SFT_ERR_ARG, "adapter_weights: NULL argument");
    if ((i = sft__lin_find(lin, name)) < 0) return sft__lin_unknown("adapter_weights", name);
    out->A = lin->ad[i].A; out->B = lin->ad[i].B; out->magnitude = lin->ad[i].m;
    out->scaling = lin->ad[i].scaling; out->r = lin->ad[i].desc.r;
    return SFT_OK;
}

/* sft__lin_add_term: adapter ai joins the plan with the call's dropout. */
static sft_status sft__lin_add_term(sft_context *ctx, sft_linear *lin, sft__lin_plan *p, int ai, const sft_linear_call *call) {
    const sft__adapter *ad = &lin->ad[ai];
    sft__lin_term *t = &p->term[p->n_terms++];
    sft_device dev = sft__wref_device(&p->w);   /* the layer's: its intermediates live there */
    int64_t shape[2];
    t->ad = ad;
    t->p = call && call->training ? ad->desc.dropout : 0.0f;
    t->key = sft_rng_key(call ? call->dropout_seed : 0, SFT__RNG_LORA_DROPOUT, (uint64_t)ai, 0);
    shape[0] = p->M; shape[1] = ad->desc.r;
    SFT__TRY(sft__tensor_step(ctx, dev, SFT_F32, 2, shape, &t->t));
    if (t->p > 0.0f && !p->mask) {
        int64_t bytes = (p->M * p->K + 63) / 64 * 8;
        sft_tensor *bits;
        SFT__TRY(sft__tensor_step(ctx, dev, SFT_U8, 1, &bytes, &bits));
        t->bits = (uint64_t *)bits->data;
        t->bits_t = bits;
    }
    if (!ad->m) return SFT_OK;
    shape[1] = p->N;
    SFT__TRY(sft__tensor_step(ctx, dev, SFT_F32, 1, &p->N, &t->norm));
    SFT__TRY(sft__tensor_step(ctx, dev, SFT_F32, 2, shape, &t->lora));
    if (t->p > 0.0f) return sft__tensor_step(ctx, dev, SFT_F32, 2, shape, &t->base_nb);
    if (!p->base_out) SFT__TRY(sft__tensor_step(ctx, dev, SFT_F32, 2, shape, &p->base_out));
    t->base_nb = p->base_out;
    return SFT_OK;
}

/* sft__lin_route: mixed batch. Each sample names an adapter or "__base__"; the
   adapters become terms in order of first appearance. */
static sft_status sft__lin_route(sft_context *ctx, sft_linear *lin, sft__lin_plan *p, const sft_tensor *x,
                                 const sft_linear_call *call) {
    int term_of[SFT__LINEAR_MAX_ADAPTERS], *route, i;
    int64_t s;
    void *mem;
    if (lin->n_merged) return sft__fail(SFT_ERR_STATE, "linear: adapter_names cannot be used while adapters are merged");
    p->n_samples = x->ndim >= 2 ? x->shape[0] : 1;
    if (call->n_adapter_names != p->n_samples)
        return sft__fail(SFT_ERR_SHAPE, "linear: %d adapter_names for %lld samples (x's first dim)", call->n_adapter_names,
                         (long long)p->n_samples);
    p->sample_rows = p->n_samples ? p->M / p->n_samples : 0;
    SFT__TRY(sft__arena_alloc(sft__cur_arena(ctx, SFT_DEVICE_CPU), (size_t)(p->n_samples + 1) * sizeof(int), &mem));
    route = (int *)mem;
    for (i = 0; i < SFT__LINEAR_MAX_ADAPTERS; i++) term_of[i] = -1;
    for (s = 0; s < p->n_samples; s++) {
        const char *name = call->adapter_names[s];
        int ai;
        if (name && strcmp(name, "__base__") == 0) { route[s] = -1; continue; }
        if ((ai = sft__lin_find(lin, name)) < 0) {
            if (!call->skip_missing) return sft__lin_unknown("linear (adapter_names)", name);
            route[s] = -1;
            continue;
        }
        if (lin->ad[ai].m) return sft__fail(SFT_ERR_UNSUPPORTED, "linear: adapter_names with the DoRA adapter '%s' (PEFT refuses it too)", name);
        if (term_of[ai] < 0) { term_of[ai] = p->n_terms; SFT__TRY(sft__lin_add_term(ctx, lin, p, ai, call)); }
        route[s] = term_of[ai];
    }
    p->route = route;
    return SFT_OK;
}

SFTDEF sft_status sft_linear_forward(sft_context *ctx, sft_linear *lin, sft_tensor *x, const sft_linear_call *call,
                                     sft_tensor **out) {
    sft__lin_plan *p;
    int i;
    char sa[96], sb[96];
    if (out) *out = NULL;
    if (!ctx || !lin || !out) return sft__fail(SFT_ERR_ARG, "linear: NULL argument");
    SFT__TRY(sft__lin_check_x("linear", x, lin->in));
    SFT__TRY(sft__lin_check_device("linear", x, sft__lin_wref(lin)));
    SFT__TRY(sft__lin_plan_new(ctx, sft__lin_wref(lin), x, &p));
    if (call && call->dropout_mask) {
        const sft_tensor *mk = call->dropout_mask;
        if (mk->dtype != SFT_F32 || sft_tensor_numel(mk) != sft_tensor_numel(x) || mk->device != x->device)
            return sft__fail(SFT_ERR_SHAPE, "linear: dropout_mask %s %s must be f32 with x's %s elements, on x's device",
                             sft_dtype_name(mk->dtype), SFT__SHAPE(mk, sa), SFT__SHAPE(x, sb));
        p->mask = mk;
    }
    if (lin->disabled && lin->n_merged) SFT__TRY(sft_linear_unmerge(lin));   /* as PEFT: disabled means the base */
    if (!lin->disabled && call && call->adapter_names) SFT__TRY(sft__lin_route(ctx, lin, p, x, call));
    else if (!lin->disabled && !lin->n_merged)
        for (i = 0; i < lin->n_active; i++) {
            if (lin->n_active > 1 && lin->ad[lin->active[i]].m)
                return sft__fail(SFT_ERR_UNSUPPORTED, "linear: the DoRA adapter '%s' must be the only active one",
                                 lin->ad[lin->active[i]].name);
            SFT__TRY(sft__lin_add_term(ctx, lin, p, lin->active[i], call));
        }
    return sft__lin_node_run(ctx, p, x, lin->bias, out);
}

/* --- merging ----------------------------------------------------------------- */

/* sft__lin_weight_f32: the base weight as a new f32 [out, in] tensor. */
static sft_status sft__lin_weight_f32(sft_linear *l, sft_tensor **out) {
    int64_t shape[2];
    sft__wref w = sft__lin_wref(l);
    shape[0] = l->out; shape[1] = l->in;
    SFT__TRY(sft_tensor_create(l->ctx, SFT_F32, 2, shape, out));
    sft__w_rows(&w, 0, l->out, SFT__F(*out));
    return SFT_OK;
}

/* sft__lin_weight_set: store f32 values back into the base in its own format
   (a 4-bit base is quantized again with its type, blocksize and double_quant). */
static sft_status sft__lin_weight_set(sft_linear *l, const sft_tensor *w32) {
    int64_t i, n = sft_tensor_numel(w32);
    if (l->qweight) {
        sft_quant_desc d;
        sft_qweight *q;
        d.type = l->qweight->type; d.blocksize = l->qweight->blocksize; d.double_quant = l->qweight->double_quant;
        SFT__TRY(sft_quantize(l->ctx, w32, &d, &q));
        sft_qweight_destroy(l->qweight);
        l->qweight = q;
    } else if (l->weight->dtype == SFT_F32)
        memcpy(l->weight->data, w32->data, (size_t)n * sizeof(float));
    else
        for (i = 0; i < n; i++) ((uint16_t *)l->weight->data)[i] = sft_f32_to_bf16(SFT__CF(w32)[i]);
    return SFT_OK;
}

/* sft__lin_delta: s * (B A) [out, in], as PEFT's get_delta_weight (rounded to
   the base's dtype first when the base is bf16). */
static sft_status sft__lin_delta(sft_linear *l, const sft__adapter *a, sft_tensor **out) {
    int64_t shape[2], i, n = l->out * l->in;
    shape[0] = l->out; shape[1] = l->in;
    SFT__TRY(sft_tensor_create(l->ctx, SFT_F32, 2, shape, out));
    SFT__TRY(sft__gemm(l->ctx, l->out, l->in, a->desc.r, sft__mat_of(SFT__CF(a->B), a->desc.r, 1), sft__mat_of(SFT__CF(a->A), l->in, 1),
                       SFT__F(*out), l->in, 0));
    for (i = 0; i < n; i++) {
        float v = SFT__CF(*out)[i] * a->scaling;
        SFT__F(*out)[i] = l->weight && l->weight->dtype == SFT_BF16 ? sft_bf16_to_f32(sft_f32_to_bf16(v)) : v;
    }
    return SFT_OK;
}

static void sft__row_norms(const float *w, int64_t rows, int64_t cols, float *out) {
    int64_t i, k;
    for (i = 0; i < rows; i++) {
        double ss = 0.0;
        for (k = 0; k < cols; k++) ss += (double)w[i * cols + k] * w[i * cols + k];
        out[i] = (float)sqrt(ss);
    }
}

/* sft__lin_merge_one: W += delta, or for DoRA W = m / |W + delta| * (W + delta)
   (the norm kept for unmerge); unmerge reverses either. */
static sft_status sft__lin_merge_one(sft_linear *l, sft__adapter *a, int unmerge) {
    sft_tensor *w = NULL, *delta = NULL;
    float *wv;
    int64_t i, k;
    sft_status s;
    s = sft__lin_weight_f32(l, &w);
    if (s == SFT_OK) s = sft__lin_delta(l, a, &delta);
    if (s == SFT_OK && a->m && !unmerge && !(a->merged_norm = (float *)sft__alloc(l->ctx, (size_t)l->out * sizeof(float))))
        s = sft__fail(SFT_ERR_NOMEM, "merge: cannot allocate the DoRA norm of '%s'", a->name);
    if (s == SFT_OK) {
        wv = SFT__F(w);
        if (!a->m)
            for (i = 0; i < l->out * l->in; i++) wv[i] = unmerge ? wv[i] - SFT__CF(delta)[i] : wv[i] + SFT__CF(delta)[i];
        else if (!unmerge) {
            for (i = 0; i < l->out * l->in; i++) SFT__F(delta)[i] += wv[i];
            sft__row_norms(SFT__CF(delta), l->out, l->in, a->merged_norm);
            for (i = 0; i < l->out; i++)
                for (k = 0; k < l->in; k++)
                    wv[i * l->in + k] = (SFT__CF(a->m)[i] / a->merged_norm[i]) * SFT__CF(delta)[i * l->in + k];
        } else
            for (i = 0; i < l->out; i++)
                for (k = 0; k < l->in; k++)
                    wv[i * l->in + k] = wv[i * l->in + k] / (SFT__CF(a->m)[i] / a->merged_norm[i]) - SFT__CF(delta)[i * l->in + k];
        s = sft__lin_weight_set(l, w);
    }
    if ((s != SFT_OK || unmerge) && a->merged_norm) { sft__free(l->ctx, a->merged_norm); a->merged_norm = NULL; }
    sft_tensor_destroy(w);
    sft_tensor_destroy(delta);
    return s;
}

static int sft__lin_is_merged(const sft_linear *l, int ai) {
    int i;
    for (i = 0; i < l->n_merged; i++)
        if (l->merged[i] == ai) return 1;
    return 0;
}

SFTDEF sft_status sft_linear_merge(sft_linear *lin, const char *const *names, int n) {
    int i, idx[SFT__LINEAR_MAX_ADAPTERS], count = 0;
    if (!lin || n < 0 || (n > 0 && !names)) return sft__fail(SFT_ERR_ARG, "merge: NULL layer or names");
    if (n > SFT__LINEAR_MAX_ADAPTERS) return sft__fail(SFT_ERR_ARG, "merge: %d names", n);
    if ((lin->qweight ? lin->qweight->device : lin->weight->device) != SFT_DEVICE_CPU)
        return sft__fail(SFT_ERR_UNSUPPORTED, "merge: the layer is on cuda; merging runs on the CPU (load the model there)");
    for (i = 0; i < (n ? n : lin->n_active); i++) {
        int ai = n ? sft__lin_find(lin, names[i]) : lin->active[i];
        if (ai < 0) return sft__lin_unknown("merge", names[i]);
        idx[count++] = ai;
    }
    for (i = 0; i < count; i++) {
        if (sft__lin_is_merged(lin, idx[i])) continue;      /* PEFT skips an adapter already merged */
        SFT__TRY(sft__lin_merge_one(lin, &lin->ad[idx[i]], 0));
        lin->merged[lin->n_merged++] = idx[i];
    }
    return SFT_OK;
}

SFTDEF sft_status sft_linear_unmerge(sft_linear *lin) {
    if (!lin) return sft__fail(SFT_ERR_ARG, "unmerge: NULL layer");
    while (lin->n_merged) {
        SFT__TRY(sft__lin_merge_one(lin, &lin->ad[lin->merged[lin->n_merged - 1]], 1));
        lin->n_merged--;
    }
    return SFT_OK;
}

/* --- prompt tuning ------------------------------------------------------------ */

SFTDEF sft_status sft_prompt_embeddings_create(sft_context *ctx, int num_virtual_tokens, int64_t hidden, uint64_t seed,
                                               sft_tensor **out) {
    int64_t shape[2], i;
    uint64_t key = sft_rng_key(seed, SFT__RNG_PROMPT_INIT, 0, 0);
    if (out) *out = NULL;
    if (!ctx || !out) return sft__fail(SFT_ERR_ARG, "prompt tuning: NULL argument");
    if (num_virtual_tokens <= 0 || hidden <= 0)
        return sft__fail(SFT_ERR_ARG, "prompt tuning: num_virtual_tokens %d and hidden %lld must be > 0", num_virtual_tokens,
                         (long long)hidden);
    shape[0] = num_virtual_tokens; shape[1] = hidden;
    SFT__TRY(sft_tensor_create(ctx, SFT_F32, 2, shape, out));
    for (i = 0; i < num_virtual_tokens * hidden; i++) SFT__F(*out)[i] = sft__rng_normal(key, (uint64_t)i);
    sft_tensor_set_requires_grad(*out, 1);
    return SFT_OK;
}

/* sft__prompt_side: an i32 [B, P + T] tensor: P copies of prefix, then src's rows
   (or fill when src is NULL). */
static sft_status sft__prompt_side(sft_context *ctx, int64_t B, int64_t P, int64_t T, int32_t prefix, const sft_tensor *src,
                                   int32_t fill, sft_tensor **out) {
    int64_t shape[2], b, i;
    shape[0] = B; shape[1] = P + T;
    SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_I32, 2, shape, out));
    for (b = 0; b < B; b++)
        for (i = 0; i < P + T; i++)
            ((int32_t *)(*out)->data)[b * (P + T) + i] = i < P ? prefix : src ? ((const int32_t *)src->data)[b * T + i - P] : fill;
    return SFT_OK;
}

SFTDEF sft_status sft_prompt_prepend(sft_context *ctx, sft_tensor *prompts, sft_tensor *embeds, sft_tensor *attention_mask,
                                     sft_tensor *labels, sft_prompt_batch *out) {
    sft__node n;
    sft_tensor *in[2];
    int64_t shape[3], B, T, P, b, i;
    if (out) memset(out, 0, sizeof *out);
    if (!ctx || !out) return sft__fail(SFT_ERR_ARG, "prompt tuning: NULL argument");
    in[0] = embeds; in[1] = prompts;
    SFT__TRY(sft__check_in("prompt tuning", "embeds", embeds, SFT_F32));
    SFT__TRY(sft__check_in("prompt tuning", "prompts", prompts, SFT_F32));
    SFT__TRY(sft__node_begin(ctx, &n, SFT__OP_PROMPT, 2, in, &out->embeds));
    if (embeds->ndim != 3 || prompts->ndim != 2 || prompts->shape[1] != embeds->shape[2])
        return sft__shape_mismatch("prompt tuning", "embeds must be [B, T, D] and prompts [P, D]", embeds, prompts);
    B = embeds->shape[0]; T = embeds->shape[1]; P = prompts->shape[0];
    if (attention_mask) {
        SFT__TRY(sft__check_in("prompt tuning", "attention_mask", attention_mask, SFT_I32));
        if (sft_tensor_numel(attention_mask) != B * T) return sft__shape_mismatch("prompt tuning", "attention_mask must be [B, T]", embeds, attention_mask);
    }
    if (labels) {
        SFT__TRY(sft__check_in("prompt tuning", "labels", labels, SFT_I32));
        if (sft_tensor_numel(labels) != B * T) return sft__shape_mismatch("prompt tuning", "labels must be [B, T]", embeds, labels);
    }
    shape[0] = B; shape[1] = P + T; shape[2] = embeds->shape[2];
    SFT__TRY(sft__node_out(ctx, &n, 3, shape));
    SFT__TRY(sft__op_run(ctx, &n, &out->embeds));
    SFT__TRY(sft__prompt_side(ctx, B, P, T, 1, attention_mask, 1, &out->attention_mask));
    if (labels) SFT__TRY(sft__prompt_side(ctx, B, P, T, -100, labels, 0, &out->labels));
    SFT__TRY(sft__prompt_side(ctx, B, P, T, 0, NULL, 0, &out->positions));
    for (b = 0; b < B; b++)
        for (i = 0; i < P + T; i++) ((int32_t *)out->positions->data)[b * (P + T) + i] = (int32_t)i;
    return SFT_OK;
}

/* ============================================================================
   === tokenizer: Unicode tables
   Generated by tools/gen_unicode_tables.py (Unicode 16.0, as the Oniguruma in
   Hugging Face tokenizers 0.22): letters, numbers and white space for the split
   patterns, word characters for single_word added tokens; canonical
   decompositions and combining classes for NFC (Hugging Face's NFC uses older
   data: about a hundred marks added since Unicode 9 get class 0 there). Sorted,
   searched by bisection. */

/* \p{L}: general category L*: 677 entries (Unicode 16.0.0) */
static const uint32_t sft__uni_letter[][2] = {
    {0x41, 0x5A}, {0x61, 0x7A}, {0xAA, 0xAA}, {0xB5, 0xB5}, {0xBA, 0xBA}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x2C1},
    {0x2C6, 0x2D1}, {0x2E0, 0x2E4}, {0x2EC, 0x2EC}, {0x2EE, 0x2EE}, {0x370, 0x374}, {0x376, 0x377}, {0x37A, 0x37D},
    {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C}, {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481},
    {0x48A, 0x52F}, {0x531, 0x556}, {0x559, 0x559}, {0x560, 0x588}, {0x5D0, 0x5EA}, {0x5EF, 0x5F2}, {0x620, 0x64A},
    {0x66E, 0x66F}, {0x671, 0x6D3}, {0x6D5, 0x6D5}, {0x6E5, 0x6E6}, {0x6EE, 0x6EF}, {0x6FA, 0x6FC}, {0x6FF, 0x6FF},
    {0x710, 0x710}, {0x712, 0x72F}, {0x74D, 0x7A5}, {0x7B1, 0x7B1}, {0x7CA, 0x7EA}, {0x7F4, 0x7F5}, {0x7FA, 0x7FA},
    {0x800, 0x815}, {0x81A, 0x81A}, {0x824, 0x824}, {0x828, 0x828}, {0x840, 0x858}, {0x860, 0x86A}, {0x870, 0x887},
    {0x889, 0x88E}, {0x8A0, 0x8C9}, {0x904, 0x939}, {0x93D, 0x93D}, {0x950, 0x950}, {0x958, 0x961}, {0x971, 0x980},
    {0x985, 0x98C}, {0x98F, 0x990}, {0x993, 0x9A8}, {0x9AA, 0x9B0}, {0x9B2, 0x9B2}, {0x9B6, 0x9B9}, {0x9BD, 0x9BD},
    {0x9CE, 0x9CE}, {0x9DC, 0x9DD}, {0x9DF, 0x9E1}, {0x9F0, 0x9F1}, {0x9FC, 0x9FC}, {0xA05, 0xA0A}, {0xA0F, 0xA10},
    {0xA13, 0xA28}, {0xA2A, 0xA30}, {0xA32, 0xA33}, {0xA35, 0xA36}, {0xA38, 0xA39}, {0xA59, 0xA5C}, {0xA5E, 0xA5E},
    {0xA72, 0xA74}, {0xA85, 0xA8D}, {0xA8F, 0xA91}, {0xA93, 0xAA8}, {0xAAA, 0xAB0}, {0xAB2, 0xAB3}, {0xAB5, 0xAB9},
    {0xABD, 0xABD}, {0xAD0, 0xAD0}, {0xAE0, 0xAE1}, {0xAF9, 0xAF9}, {0xB05, 0xB0C}, {0xB0F, 0xB10}, {0xB13, 0xB28},
    {0xB2A, 0xB30}, {0xB32, 0xB33}, {0xB35, 0xB39}, {0xB3D, 0xB3D}, {0xB5C, 0xB5D}, {0xB5F, 0xB61}, {0xB71, 0xB71},
    {0xB83, 0xB83}, {0xB85, 0xB8A}, {0xB8E, 0xB90}, {0xB92, 0xB95}, {0xB99, 0xB9A}, {0xB9C, 0xB9C}, {0xB9E, 0xB9F},
    {0xBA3, 0xBA4}, {0xBA8, 0xBAA}, {0xBAE, 0xBB9}, {0xBD0, 0xBD0}, {0xC05, 0xC0C}, {0xC0E, 0xC10}, {0xC12, 0xC28},
    {0xC2A, 0xC39}, {0xC3D, 0xC3D}, {0xC58, 0xC5A}, {0xC5D, 0xC5D}, {0xC60, 0xC61}, {0xC80, 0xC80}, {0xC85, 0xC8C},
    {0xC8E, 0xC90}, {0xC92, 0xCA8}, {0xCAA, 0xCB3}, {0xCB5, 0xCB9}, {0xCBD, 0xCBD}, {0xCDD, 0xCDE}, {0xCE0, 0xCE1},
    {0xCF1, 0xCF2}, {0xD04, 0xD0C}, {0xD0E, 0xD10}, {0xD12, 0xD3A}, {0xD3D, 0xD3D}, {0xD4E, 0xD4E}, {0xD54, 0xD56},
    {0xD5F, 0xD61}, {0xD7A, 0xD7F}, {0xD85, 0xD96}, {0xD9A, 0xDB1}, {0xDB3, 0xDBB}, {0xDBD, 0xDBD}, {0xDC0, 0xDC6},
    {0xE01, 0xE30}, {0xE32, 0xE33}, {0xE40, 0xE46}, {0xE81, 0xE82}, {0xE84, 0xE84}, {0xE86, 0xE8A}, {0xE8C, 0xEA3},
    {0xEA5, 0xEA5}, {0xEA7, 0xEB0}, {0xEB2, 0xEB3}, {0xEBD, 0xEBD}, {0xEC0, 0xEC4}, {0xEC6, 0xEC6}, {0xEDC, 0xEDF},
    {0xF00, 0xF00}, {0xF40, 0xF47}, {0xF49, 0xF6C}, {0xF88, 0xF8C}, {0x1000, 0x102A}, {0x103F, 0x103F},
    {0x1050, 0x1055}, {0x105A, 0x105D}, {0x1061, 0x1061}, {0x1065, 0x1066}, {0x106E, 0x1070}, {0x1075, 0x1081},
    {0x108E, 0x108E}, {0x10A0, 0x10C5}, {0x10C7, 0x10C7}, {0x10CD, 0x10CD}, {0x10D0, 0x10FA}, {0x10FC, 0x1248},
    {0x124A, 0x124D}, {0x1250, 0x1256}, {0x1258, 0x1258}, {0x125A, 0x125D}, {0x1260, 0x1288}, {0x128A, 0x128D},
    {0x1290, 0x12B0}, {0x12B2, 0x12B5}, {0x12B8, 0x12BE}, {0x12C0, 0x12C0}, {0x12C2, 0x12C5}, {0x12C8, 0x12D6},
    {0x12D8, 0x1310}, {0x1312, 0x1315}, {0x1318, 0x135A}, {0x1380, 0x138F}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD},
    {0x1401, 0x166C}, {0x166F, 0x167F}, {0x1681, 0x169A}, {0x16A0, 0x16EA}, {0x16F1, 0x16F8}, {0x1700, 0x1711},
    {0x171F, 0x1731}, {0x1740, 0x1751}, {0x1760, 0x176C}, {0x176E, 0x1770}, {0x1780, 0x17B3}, {0x17D7, 0x17D7},
    {0x17DC, 0x17DC}, {0x1820, 0x1878}, {0x1880, 0x1884}, {0x1887, 0x18A8}, {0x18AA, 0x18AA}, {0x18B0, 0x18F5},
    {0x1900, 0x191E}, {0x1950, 0x196D}, {0x1970, 0x1974}, {0x1980, 0x19AB}, {0x19B0, 0x19C9}, {0x1A00, 0x1A16},
    {0x1A20, 0x1A54}, {0x1AA7, 0x1AA7}, {0x1B05, 0x1B33}, {0x1B45, 0x1B4C}, {0x1B83, 0x1BA0}, {0x1BAE, 0x1BAF},
    {0x1BBA, 0x1BE5}, {0x1C00, 0x1C23}, {0x1C4D, 0x1C4F}, {0x1C5A, 0x1C7D}, {0x1C80, 0x1C8A}, {0x1C90, 0x1CBA},
    {0x1CBD, 0x1CBF}, {0x1CE9, 0x1CEC}, {0x1CEE, 0x1CF3}, {0x1CF5, 0x1CF6}, {0x1CFA, 0x1CFA}, {0x1D00, 0x1DBF},
    {0x1E00, 0x1F15}, {0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59},
    {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE},
    {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4},
    {0x1FF6, 0x1FFC}, {0x2071, 0x2071}, {0x207F, 0x207F}, {0x2090, 0x209C}, {0x2102, 0x2102}, {0x2107, 0x2107},
    {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128},
    {0x212A, 0x212D}, {0x212F, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2184},
    {0x2C00, 0x2CE4}, {0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF3}, {0x2D00, 0x2D25}, {0x2D27, 0x2D27}, {0x2D2D, 0x2D2D},
    {0x2D30, 0x2D67}, {0x2D6F, 0x2D6F}, {0x2D80, 0x2D96}, {0x2DA0, 0x2DA6}, {0x2DA8, 0x2DAE}, {0x2DB0, 0x2DB6},
    {0x2DB8, 0x2DBE}, {0x2DC0, 0x2DC6}, {0x2DC8, 0x2DCE}, {0x2DD0, 0x2DD6}, {0x2DD8, 0x2DDE}, {0x2E2F, 0x2E2F},
    {0x3005, 0x3006}, {0x3031, 0x3035}, {0x303B, 0x303C}, {0x3041, 0x3096}, {0x309D, 0x309F}, {0x30A1, 0x30FA},
    {0x30FC, 0x30FF}, {0x3105, 0x312F}, {0x3131, 0x318E}, {0x31A0, 0x31BF}, {0x31F0, 0x31FF}, {0x3400, 0x4DBF},
    {0x4E00, 0xA48C}, {0xA4D0, 0xA4FD}, {0xA500, 0xA60C}, {0xA610, 0xA61F}, {0xA62A, 0xA62B}, {0xA640, 0xA66E},
    {0xA67F, 0xA69D}, {0xA6A0, 0xA6E5}, {0xA717, 0xA71F}, {0xA722, 0xA788}, {0xA78B, 0xA7CD}, {0xA7D0, 0xA7D1},
    {0xA7D3, 0xA7D3}, {0xA7D5, 0xA7DC}, {0xA7F2, 0xA801}, {0xA803, 0xA805}, {0xA807, 0xA80A}, {0xA80C, 0xA822},
    {0xA840, 0xA873}, {0xA882, 0xA8B3}, {0xA8F2, 0xA8F7}, {0xA8FB, 0xA8FB}, {0xA8FD, 0xA8FE}, {0xA90A, 0xA925},
    {0xA930, 0xA946}, {0xA960, 0xA97C}, {0xA984, 0xA9B2}, {0xA9CF, 0xA9CF}, {0xA9E0, 0xA9E4}, {0xA9E6, 0xA9EF},
    {0xA9FA, 0xA9FE}, {0xAA00, 0xAA28}, {0xAA40, 0xAA42}, {0xAA44, 0xAA4B}, {0xAA60, 0xAA76}, {0xAA7A, 0xAA7A},
    {0xAA7E, 0xAAAF}, {0xAAB1, 0xAAB1}, {0xAAB5, 0xAAB6}, {0xAAB9, 0xAABD}, {0xAAC0, 0xAAC0}, {0xAAC2, 0xAAC2},
    {0xAADB, 0xAADD}, {0xAAE0, 0xAAEA}, {0xAAF2, 0xAAF4}, {0xAB01, 0xAB06}, {0xAB09, 0xAB0E}, {0xAB11, 0xAB16},
    {0xAB20, 0xAB26}, {0xAB28, 0xAB2E}, {0xAB30, 0xAB5A}, {0xAB5C, 0xAB69}, {0xAB70, 0xABE2}, {0xAC00, 0xD7A3},
    {0xD7B0, 0xD7C6}, {0xD7CB, 0xD7FB}, {0xF900, 0xFA6D}, {0xFA70, 0xFAD9}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17},
    {0xFB1D, 0xFB1D}, {0xFB1F, 0xFB28}, {0xFB2A, 0xFB36}, {0xFB38, 0xFB3C}, {0xFB3E, 0xFB3E}, {0xFB40, 0xFB41},
    {0xFB43, 0xFB44}, {0xFB46, 0xFBB1}, {0xFBD3, 0xFD3D}, {0xFD50, 0xFD8F}, {0xFD92, 0xFDC7}, {0xFDF0, 0xFDFB},
    {0xFE70, 0xFE74}, {0xFE76, 0xFEFC}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0xFF66, 0xFFBE}, {0xFFC2, 0xFFC7},
    {0xFFCA, 0xFFCF}, {0xFFD2, 0xFFD7}, {0xFFDA, 0xFFDC}, {0x10000, 0x1000B}, {0x1000D, 0x10026}, {0x10028, 0x1003A},
    {0x1003C, 0x1003D}, {0x1003F, 0x1004D}, {0x10050, 0x1005D}, {0x10080, 0x100FA}, {0x10280, 0x1029C},
    {0x102A0, 0x102D0}, {0x10300, 0x1031F}, {0x1032D, 0x10340}, {0x10342, 0x10349}, {0x10350, 0x10375},
    {0x10380, 0x1039D}, {0x103A0, 0x103C3}, {0x103C8, 0x103CF}, {0x10400, 0x1049D}, {0x104B0, 0x104D3},
    {0x104D8, 0x104FB}, {0x10500, 0x10527}, {0x10530, 0x10563}, {0x10570, 0x1057A}, {0x1057C, 0x1058A},
    {0x1058C, 0x10592}, {0x10594, 0x10595}, {0x10597, 0x105A1}, {0x105A3, 0x105B1}, {0x105B3, 0x105B9},
    {0x105BB, 0x105BC}, {0x105C0, 0x105F3}, {0x10600, 0x10736}, {0x10740, 0x10755}, {0x10760, 0x10767},
    {0x10780, 0x10785}, {0x10787, 0x107B0}, {0x107B2, 0x107BA}, {0x10800, 0x10805}, {0x10808, 0x10808},
    {0x1080A, 0x10835}, {0x10837, 0x10838}, {0x1083C, 0x1083C}, {0x1083F, 0x10855}, {0x10860, 0x10876},
    {0x10880, 0x1089E}, {0x108E0, 0x108F2}, {0x108F4, 0x108F5}, {0x10900, 0x10915}, {0x10920, 0x10939},
    {0x10980, 0x109B7}, {0x109BE, 0x109BF}, {0x10A00, 0x10A00}, {0x10A10, 0x10A13}, {0x10A15, 0x10A17},
    {0x10A19, 0x10A35}, {0x10A60, 0x10A7C}, {0x10A80, 0x10A9C}, {0x10AC0, 0x10AC7}, {0x10AC9, 0x10AE4},
    {0x10B00, 0x10B35}, {0x10B40, 0x10B55}, {0x10B60, 0x10B72}, {0x10B80, 0x10B91}, {0x10C00, 0x10C48},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x10D00, 0x10D23}, {0x10D4A, 0x10D65}, {0x10D6F, 0x10D85},
    {0x10E80, 0x10EA9}, {0x10EB0, 0x10EB1}, {0x10EC2, 0x10EC4}, {0x10F00, 0x10F1C}, {0x10F27, 0x10F27},
    {0x10F30, 0x10F45}, {0x10F70, 0x10F81}, {0x10FB0, 0x10FC4}, {0x10FE0, 0x10FF6}, {0x11003, 0x11037},
    {0x11071, 0x11072}, {0x11075, 0x11075}, {0x11083, 0x110AF}, {0x110D0, 0x110E8}, {0x11103, 0x11126},
    {0x11144, 0x11144}, {0x11147, 0x11147}, {0x11150, 0x11172}, {0x11176, 0x11176}, {0x11183, 0x111B2},
    {0x111C1, 0x111C4}, {0x111DA, 0x111DA}, {0x111DC, 0x111DC}, {0x11200, 0x11211}, {0x11213, 0x1122B},
    {0x1123F, 0x11240}, {0x11280, 0x11286}, {0x11288, 0x11288}, {0x1128A, 0x1128D}, {0x1128F, 0x1129D},
    {0x1129F, 0x112A8}, {0x112B0, 0x112DE}, {0x11305, 0x1130C}, {0x1130F, 0x11310}, {0x11313, 0x11328},
    {0x1132A, 0x11330}, {0x11332, 0x11333}, {0x11335, 0x11339}, {0x1133D, 0x1133D}, {0x11350, 0x11350},
    {0x1135D, 0x11361}, {0x11380, 0x11389}, {0x1138B, 0x1138B}, {0x1138E, 0x1138E}, {0x11390, 0x113B5},
    {0x113B7, 0x113B7}, {0x113D1, 0x113D1}, {0x113D3, 0x113D3}, {0x11400, 0x11434}, {0x11447, 0x1144A},
    {0x1145F, 0x11461}, {0x11480, 0x114AF}, {0x114C4, 0x114C5}, {0x114C7, 0x114C7}, {0x11580, 0x115AE},
    {0x115D8, 0x115DB}, {0x11600, 0x1162F}, {0x11644, 0x11644}, {0x11680, 0x116AA}, {0x116B8, 0x116B8},
    {0x11700, 0x1171A}, {0x11740, 0x11746}, {0x11800, 0x1182B}, {0x118A0, 0x118DF}, {0x118FF, 0x11906},
    {0x11909, 0x11909}, {0x1190C, 0x11913}, {0x11915, 0x11916}, {0x11918, 0x1192F}, {0x1193F, 0x1193F},
    {0x11941, 0x11941}, {0x119A0, 0x119A7}, {0x119AA, 0x119D0}, {0x119E1, 0x119E1}, {0x119E3, 0x119E3},
    {0x11A00, 0x11A00}, {0x11A0B, 0x11A32}, {0x11A3A, 0x11A3A}, {0x11A50, 0x11A50}, {0x11A5C, 0x11A89},
    {0x11A9D, 0x11A9D}, {0x11AB0, 0x11AF8}, {0x11BC0, 0x11BE0}, {0x11C00, 0x11C08}, {0x11C0A, 0x11C2E},
    {0x11C40, 0x11C40}, {0x11C72, 0x11C8F}, {0x11D00, 0x11D06}, {0x11D08, 0x11D09}, {0x11D0B, 0x11D30},
    {0x11D46, 0x11D46}, {0x11D60, 0x11D65}, {0x11D67, 0x11D68}, {0x11D6A, 0x11D89}, {0x11D98, 0x11D98},
    {0x11EE0, 0x11EF2}, {0x11F02, 0x11F02}, {0x11F04, 0x11F10}, {0x11F12, 0x11F33}, {0x11FB0, 0x11FB0},
    {0x12000, 0x12399}, {0x12480, 0x12543}, {0x12F90, 0x12FF0}, {0x13000, 0x1342F}, {0x13441, 0x13446},
    {0x13460, 0x143FA}, {0x14400, 0x14646}, {0x16100, 0x1611D}, {0x16800, 0x16A38}, {0x16A40, 0x16A5E},
    {0x16A70, 0x16ABE}, {0x16AD0, 0x16AED}, {0x16B00, 0x16B2F}, {0x16B40, 0x16B43}, {0x16B63, 0x16B77},
    {0x16B7D, 0x16B8F}, {0x16D40, 0x16D6C}, {0x16E40, 0x16E7F}, {0x16F00, 0x16F4A}, {0x16F50, 0x16F50},
    {0x16F93, 0x16F9F}, {0x16FE0, 0x16FE1}, {0x16FE3, 0x16FE3}, {0x17000, 0x187F7}, {0x18800, 0x18CD5},
    {0x18CFF, 0x18D08}, {0x1AFF0, 0x1AFF3}, {0x1AFF5, 0x1AFFB}, {0x1AFFD, 0x1AFFE}, {0x1B000, 0x1B122},
    {0x1B132, 0x1B132}, {0x1B150, 0x1B152}, {0x1B155, 0x1B155}, {0x1B164, 0x1B167}, {0x1B170, 0x1B2FB},
    {0x1BC00, 0x1BC6A}, {0x1BC70, 0x1BC7C}, {0x1BC80, 0x1BC88}, {0x1BC90, 0x1BC99}, {0x1D400, 0x1D454},
    {0x1D456, 0x1D49C}, {0x1D49E, 0x1D49F}, {0x1D4A2, 0x1D4A2}, {0x1D4A5, 0x1D4A6}, {0x1D4A9, 0x1D4AC},
    {0x1D4AE, 0x1D4B9}, {0x1D4BB, 0x1D4BB}, {0x1D4BD, 0x1D4C3}, {0x1D4C5, 0x1D505}, {0x1D507, 0x1D50A},
    {0x1D50D, 0x1D514}, {0x1D516, 0x1D51C}, {0x1D51E, 0x1D539}, {0x1D53B, 0x1D53E}, {0x1D540, 0x1D544},
    {0x1D546, 0x1D546}, {0x1D54A, 0x1D550}, {0x1D552, 0x1D6A5}, {0x1D6A8, 0x1D6C0}, {0x1D6C2, 0x1D6DA},
    {0x1D6DC, 0x1D6FA}, {0x1D6FC, 0x1D714}, {0x1D716, 0x1D734}, {0x1D736, 0x1D74E}, {0x1D750, 0x1D76E},
    {0x1D770, 0x1D788}, {0x1D78A, 0x1D7A8}, {0x1D7AA, 0x1D7C2}, {0x1D7C4, 0x1D7CB}, {0x1DF00, 0x1DF1E},
    {0x1DF25, 0x1DF2A}, {0x1E030, 0x1E06D}, {0x1E100, 0x1E12C}, {0x1E137, 0x1E13D}, {0x1E14E, 0x1E14E},
    {0x1E290, 0x1E2AD}, {0x1E2C0, 0x1E2EB}, {0x1E4D0, 0x1E4EB}, {0x1E5D0, 0x1E5ED}, {0x1E5F0, 0x1E5F0},
    {0x1E7E0, 0x1E7E6}, {0x1E7E8, 0x1E7EB}, {0x1E7ED, 0x1E7EE}, {0x1E7F0, 0x1E7FE}, {0x1E800, 0x1E8C4},
    {0x1E900, 0x1E943}, {0x1E94B, 0x1E94B}, {0x1EE00, 0x1EE03}, {0x1EE05, 0x1EE1F}, {0x1EE21, 0x1EE22},
    {0x1EE24, 0x1EE24}, {0x1EE27, 0x1EE27}, {0x1EE29, 0x1EE32}, {0x1EE34, 0x1EE37}, {0x1EE39, 0x1EE39},
    {0x1EE3B, 0x1EE3B}, {0x1EE42, 0x1EE42}, {0x1EE47, 0x1EE47}, {0x1EE49, 0x1EE49}, {0x1EE4B, 0x1EE4B},
    {0x1EE4D, 0x1EE4F}, {0x1EE51, 0x1EE52}, {0x1EE54, 0x1EE54}, {0x1EE57, 0x1EE57}, {0x1EE59, 0x1EE59},
    {0x1EE5B, 0x1EE5B}, {0x1EE5D, 0x1EE5D}, {0x1EE5F, 0x1EE5F}, {0x1EE61, 0x1EE62}, {0x1EE64, 0x1EE64},
    {0x1EE67, 0x1EE6A}, {0x1EE6C, 0x1EE72}, {0x1EE74, 0x1EE77}, {0x1EE79, 0x1EE7C}, {0x1EE7E, 0x1EE7E},
    {0x1EE80, 0x1EE89}, {0x1EE8B, 0x1EE9B}, {0x1EEA1, 0x1EEA3}, {0x1EEA5, 0x1EEA9}, {0x1EEAB, 0x1EEBB},
    {0x20000, 0x2A6DF}, {0x2A700, 0x2B739}, {0x2B740, 0x2B81D}, {0x2B820, 0x2CEA1}, {0x2CEB0, 0x2EBE0},
    {0x2EBF0, 0x2EE5D}, {0x2F800, 0x2FA1D}, {0x30000, 0x3134A}, {0x31350, 0x323AF},
};
/* \p{N}: general category N*: 144 entries (Unicode 16.0.0) */
static const uint32_t sft__uni_number[][2] = {
    {0x30, 0x39}, {0xB2, 0xB3}, {0xB9, 0xB9}, {0xBC, 0xBE}, {0x660, 0x669}, {0x6F0, 0x6F9}, {0x7C0, 0x7C9},
    {0x966, 0x96F}, {0x9E6, 0x9EF}, {0x9F4, 0x9F9}, {0xA66, 0xA6F}, {0xAE6, 0xAEF}, {0xB66, 0xB6F}, {0xB72, 0xB77},
    {0xBE6, 0xBF2}, {0xC66, 0xC6F}, {0xC78, 0xC7E}, {0xCE6, 0xCEF}, {0xD58, 0xD5E}, {0xD66, 0xD78}, {0xDE6, 0xDEF},
    {0xE50, 0xE59}, {0xED0, 0xED9}, {0xF20, 0xF33}, {0x1040, 0x1049}, {0x1090, 0x1099}, {0x1369, 0x137C},
    {0x16EE, 0x16F0}, {0x17E0, 0x17E9}, {0x17F0, 0x17F9}, {0x1810, 0x1819}, {0x1946, 0x194F}, {0x19D0, 0x19DA},
    {0x1A80, 0x1A89}, {0x1A90, 0x1A99}, {0x1B50, 0x1B59}, {0x1BB0, 0x1BB9}, {0x1C40, 0x1C49}, {0x1C50, 0x1C59},
    {0x2070, 0x2070}, {0x2074, 0x2079}, {0x2080, 0x2089}, {0x2150, 0x2182}, {0x2185, 0x2189}, {0x2460, 0x249B},
    {0x24EA, 0x24FF}, {0x2776, 0x2793}, {0x2CFD, 0x2CFD}, {0x3007, 0x3007}, {0x3021, 0x3029}, {0x3038, 0x303A},
    {0x3192, 0x3195}, {0x3220, 0x3229}, {0x3248, 0x324F}, {0x3251, 0x325F}, {0x3280, 0x3289}, {0x32B1, 0x32BF},
    {0xA620, 0xA629}, {0xA6E6, 0xA6EF}, {0xA830, 0xA835}, {0xA8D0, 0xA8D9}, {0xA900, 0xA909}, {0xA9D0, 0xA9D9},
    {0xA9F0, 0xA9F9}, {0xAA50, 0xAA59}, {0xABF0, 0xABF9}, {0xFF10, 0xFF19}, {0x10107, 0x10133}, {0x10140, 0x10178},
    {0x1018A, 0x1018B}, {0x102E1, 0x102FB}, {0x10320, 0x10323}, {0x10341, 0x10341}, {0x1034A, 0x1034A},
    {0x103D1, 0x103D5}, {0x104A0, 0x104A9}, {0x10858, 0x1085F}, {0x10879, 0x1087F}, {0x108A7, 0x108AF},
    {0x108FB, 0x108FF}, {0x10916, 0x1091B}, {0x109BC, 0x109BD}, {0x109C0, 0x109CF}, {0x109D2, 0x109FF},
    {0x10A40, 0x10A48}, {0x10A7D, 0x10A7E}, {0x10A9D, 0x10A9F}, {0x10AEB, 0x10AEF}, {0x10B58, 0x10B5F},
    {0x10B78, 0x10B7F}, {0x10BA9, 0x10BAF}, {0x10CFA, 0x10CFF}, {0x10D30, 0x10D39}, {0x10D40, 0x10D49},
    {0x10E60, 0x10E7E}, {0x10F1D, 0x10F26}, {0x10F51, 0x10F54}, {0x10FC5, 0x10FCB}, {0x11052, 0x1106F},
    {0x110F0, 0x110F9}, {0x11136, 0x1113F}, {0x111D0, 0x111D9}, {0x111E1, 0x111F4}, {0x112F0, 0x112F9},
    {0x11450, 0x11459}, {0x114D0, 0x114D9}, {0x11650, 0x11659}, {0x116C0, 0x116C9}, {0x116D0, 0x116E3},
    {0x11730, 0x1173B}, {0x118E0, 0x118F2}, {0x11950, 0x11959}, {0x11BF0, 0x11BF9}, {0x11C50, 0x11C6C},
    {0x11D50, 0x11D59}, {0x11DA0, 0x11DA9}, {0x11F50, 0x11F59}, {0x11FC0, 0x11FD4}, {0x12400, 0x1246E},
    {0x16130, 0x16139}, {0x16A60, 0x16A69}, {0x16AC0, 0x16AC9}, {0x16B50, 0x16B59}, {0x16B5B, 0x16B61},
    {0x16D70, 0x16D79}, {0x16E80, 0x16E96}, {0x1CCF0, 0x1CCF9}, {0x1D2C0, 0x1D2D3}, {0x1D2E0, 0x1D2F3},
    {0x1D360, 0x1D378}, {0x1D7CE, 0x1D7FF}, {0x1E140, 0x1E149}, {0x1E2F0, 0x1E2F9}, {0x1E4F0, 0x1E4F9},
    {0x1E5F1, 0x1E5FA}, {0x1E8C7, 0x1E8CF}, {0x1E950, 0x1E959}, {0x1EC71, 0x1ECAB}, {0x1ECAD, 0x1ECAF},
    {0x1ECB1, 0x1ECB4}, {0x1ED01, 0x1ED2D}, {0x1ED2F, 0x1ED3D}, {0x1F100, 0x1F10C}, {0x1FBF0, 0x1FBF9},
};
/* \s: the White_Space property: 10 entries (Unicode 16.0.0) */
static const uint32_t sft__uni_space[][2] = {
    {0x9, 0xD}, {0x20, 0x20}, {0x85, 0x85}, {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A}, {0x2028, 0x2029},
    {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
};
/* \w: letters, letter numbers, marks, decimal digits, connector punctuation, joiners: 792 entries (Unicode 16.0.0) */
static const uint32_t sft__uni_word[][2] = {
    {0x30, 0x39}, {0x41, 0x5A}, {0x5F, 0x5F}, {0x61, 0x7A}, {0xAA, 0xAA}, {0xB5, 0xB5}, {0xBA, 0xBA}, {0xC0, 0xD6},
    {0xD8, 0xF6}, {0xF8, 0x2C1}, {0x2C6, 0x2D1}, {0x2E0, 0x2E4}, {0x2EC, 0x2EC}, {0x2EE, 0x2EE}, {0x300, 0x374},
    {0x376, 0x377}, {0x37A, 0x37D}, {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C}, {0x38E, 0x3A1},
    {0x3A3, 0x3F5}, {0x3F7, 0x481}, {0x483, 0x52F}, {0x531, 0x556}, {0x559, 0x559}, {0x560, 0x588}, {0x591, 0x5BD},
    {0x5BF, 0x5BF}, {0x5C1, 0x5C2}, {0x5C4, 0x5C5}, {0x5C7, 0x5C7}, {0x5D0, 0x5EA}, {0x5EF, 0x5F2}, {0x610, 0x61A},
    {0x620, 0x669}, {0x66E, 0x6D3}, {0x6D5, 0x6DC}, {0x6DF, 0x6E8}, {0x6EA, 0x6FC}, {0x6FF, 0x6FF}, {0x710, 0x74A},
    {0x74D, 0x7B1}, {0x7C0, 0x7F5}, {0x7FA, 0x7FA}, {0x7FD, 0x7FD}, {0x800, 0x82D}, {0x840, 0x85B}, {0x860, 0x86A},
    {0x870, 0x887}, {0x889, 0x88E}, {0x897, 0x8E1}, {0x8E3, 0x963}, {0x966, 0x96F}, {0x971, 0x983}, {0x985, 0x98C},
    {0x98F, 0x990}, {0x993, 0x9A8}, {0x9AA, 0x9B0}, {0x9B2, 0x9B2}, {0x9B6, 0x9B9}, {0x9BC, 0x9C4}, {0x9C7, 0x9C8},
    {0x9CB, 0x9CE}, {0x9D7, 0x9D7}, {0x9DC, 0x9DD}, {0x9DF, 0x9E3}, {0x9E6, 0x9F1}, {0x9FC, 0x9FC}, {0x9FE, 0x9FE},
    {0xA01, 0xA03}, {0xA05, 0xA0A}, {0xA0F, 0xA10}, {0xA13, 0xA28}, {0xA2A, 0xA30}, {0xA32, 0xA33}, {0xA35, 0xA36},
    {0xA38, 0xA39}, {0xA3C, 0xA3C}, {0xA3E, 0xA42}, {0xA47, 0xA48}, {0xA4B, 0xA4D}, {0xA51, 0xA51}, {0xA59, 0xA5C},
    {0xA5E, 0xA5E}, {0xA66, 0xA75}, {0xA81, 0xA83}, {0xA85, 0xA8D}, {0xA8F, 0xA91}, {0xA93, 0xAA8}, {0xAAA, 0xAB0},
    {0xAB2, 0xAB3}, {0xAB5, 0xAB9}, {0xABC, 0xAC5}, {0xAC7, 0xAC9}, {0xACB, 0xACD}, {0xAD0, 0xAD0}, {0xAE0, 0xAE3},
    {0xAE6, 0xAEF}, {0xAF9, 0xAFF}, {0xB01, 0xB03}, {0xB05, 0xB0C}, {0xB0F, 0xB10}, {0xB13, 0xB28}, {0xB2A, 0xB30},
    {0xB32, 0xB33}, {0xB35, 0xB39}, {0xB3C, 0xB44}, {0xB47, 0xB48}, {0xB4B, 0xB4D}, {0xB55, 0xB57}, {0xB5C, 0xB5D},
    {0xB5F, 0xB63}, {0xB66, 0xB6F}, {0xB71, 0xB71}, {0xB82, 0xB83}, {0xB85, 0xB8A}, {0xB8E, 0xB90}, {0xB92, 0xB95},
    {0xB99, 0xB9A}, {0xB9C, 0xB9C}, {0xB9E, 0xB9F}, {0xBA3, 0xBA4}, {0xBA8, 0xBAA}, {0xBAE, 0xBB9}, {0xBBE, 0xBC2},
    {0xBC6, 0xBC8}, {0xBCA, 0xBCD}, {0xBD0, 0xBD0}, {0xBD7, 0xBD7}, {0xBE6, 0xBEF}, {0xC00, 0xC0C}, {0xC0E, 0xC10},
    {0xC12, 0xC28}, {0xC2A, 0xC39}, {0xC3C, 0xC44}, {0xC46, 0xC48}, {0xC4A, 0xC4D}, {0xC55, 0xC56}, {0xC58, 0xC5A},
    {0xC5D, 0xC5D}, {0xC60, 0xC63}, {0xC66, 0xC6F}, {0xC80, 0xC83}, {0xC85, 0xC8C}, {0xC8E, 0xC90}, {0xC92, 0xCA8},
    {0xCAA, 0xCB3}, {0xCB5, 0xCB9}, {0xCBC, 0xCC4}, {0xCC6, 0xCC8}, {0xCCA, 0xCCD}, {0xCD5, 0xCD6}, {0xCDD, 0xCDE},
    {0xCE0, 0xCE3}, {0xCE6, 0xCEF}, {0xCF1, 0xCF3}, {0xD00, 0xD0C}, {0xD0E, 0xD10}, {0xD12, 0xD44}, {0xD46, 0xD48},
    {0xD4A, 0xD4E}, {0xD54, 0xD57}, {0xD5F, 0xD63}, {0xD66, 0xD6F}, {0xD7A, 0xD7F}, {0xD81, 0xD83}, {0xD85, 0xD96},
    {0xD9A, 0xDB1}, {0xDB3, 0xDBB}, {0xDBD, 0xDBD}, {0xDC0, 0xDC6}, {0xDCA, 0xDCA}, {0xDCF, 0xDD4}, {0xDD6, 0xDD6},
    {0xDD8, 0xDDF}, {0xDE6, 0xDEF}, {0xDF2, 0xDF3}, {0xE01, 0xE3A}, {0xE40, 0xE4E}, {0xE50, 0xE59}, {0xE81, 0xE82},
    {0xE84, 0xE84}, {0xE86, 0xE8A}, {0xE8C, 0xEA3}, {0xEA5, 0xEA5}, {0xEA7, 0xEBD}, {0xEC0, 0xEC4}, {0xEC6, 0xEC6},
    {0xEC8, 0xECE}, {0xED0, 0xED9}, {0xEDC, 0xEDF}, {0xF00, 0xF00}, {0xF18, 0xF19}, {0xF20, 0xF29}, {0xF35, 0xF35},
    {0xF37, 0xF37}, {0xF39, 0xF39}, {0xF3E, 0xF47}, {0xF49, 0xF6C}, {0xF71, 0xF84}, {0xF86, 0xF97}, {0xF99, 0xFBC},
    {0xFC6, 0xFC6}, {0x1000, 0x1049}, {0x1050, 0x109D}, {0x10A0, 0x10C5}, {0x10C7, 0x10C7}, {0x10CD, 0x10CD},
    {0x10D0, 0x10FA}, {0x10FC, 0x1248}, {0x124A, 0x124D}, {0x1250, 0x1256}, {0x1258, 0x1258}, {0x125A, 0x125D},
    {0x1260, 0x1288}, {0x128A, 0x128D}, {0x1290, 0x12B0}, {0x12B2, 0x12B5}, {0x12B8, 0x12BE}, {0x12C0, 0x12C0},
    {0x12C2, 0x12C5}, {0x12C8, 0x12D6}, {0x12D8, 0x1310}, {0x1312, 0x1315}, {0x1318, 0x135A}, {0x135D, 0x135F},
    {0x1380, 0x138F}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1401, 0x166C}, {0x166F, 0x167F}, {0x1681, 0x169A},
    {0x16A0, 0x16EA}, {0x16EE, 0x16F8}, {0x1700, 0x1715}, {0x171F, 0x1734}, {0x1740, 0x1753}, {0x1760, 0x176C},
    {0x176E, 0x1770}, {0x1772, 0x1773}, {0x1780, 0x17D3}, {0x17D7, 0x17D7}, {0x17DC, 0x17DD}, {0x17E0, 0x17E9},
    {0x180B, 0x180D}, {0x180F, 0x1819}, {0x1820, 0x1878}, {0x1880, 0x18AA}, {0x18B0, 0x18F5}, {0x1900, 0x191E},
    {0x1920, 0x192B}, {0x1930, 0x193B}, {0x1946, 0x196D}, {0x1970, 0x1974}, {0x1980, 0x19AB}, {0x19B0, 0x19C9},
    {0x19D0, 0x19D9}, {0x1A00, 0x1A1B}, {0x1A20, 0x1A5E}, {0x1A60, 0x1A7C}, {0x1A7F, 0x1A89}, {0x1A90, 0x1A99},
    {0x1AA7, 0x1AA7}, {0x1AB0, 0x1ACE}, {0x1B00, 0x1B4C}, {0x1B50, 0x1B59}, {0x1B6B, 0x1B73}, {0x1B80, 0x1BF3},
    {0x1C00, 0x1C37}, {0x1C40, 0x1C49}, {0x1C4D, 0x1C7D}, {0x1C80, 0x1C8A}, {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF},
    {0x1CD0, 0x1CD2}, {0x1CD4, 0x1CFA}, {0x1D00, 0x1F15}, {0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D},
    {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4},
    {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB},
    {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x200C, 0x200D}, {0x203F, 0x2040}, {0x2054, 0x2054},
    {0x2071, 0x2071}, {0x207F, 0x207F}, {0x2090, 0x209C}, {0x20D0, 0x20F0}, {0x2102, 0x2102}, {0x2107, 0x2107},
    {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128},
    {0x212A, 0x212D}, {0x212F, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149}, {0x214E, 0x214E}, {0x2160, 0x2188},
    {0x2C00, 0x2CE4}, {0x2CEB, 0x2CF3}, {0x2D00, 0x2D25}, {0x2D27, 0x2D27}, {0x2D2D, 0x2D2D}, {0x2D30, 0x2D67},
    {0x2D6F, 0x2D6F}, {0x2D7F, 0x2D96}, {0x2DA0, 0x2DA6}, {0x2DA8, 0x2DAE}, {0x2DB0, 0x2DB6}, {0x2DB8, 0x2DBE},
    {0x2DC0, 0x2DC6}, {0x2DC8, 0x2DCE}, {0x2DD0, 0x2DD6}, {0x2DD8, 0x2DDE}, {0x2DE0, 0x2DFF}, {0x2E2F, 0x2E2F},
    {0x3005, 0x3007}, {0x3021, 0x302F}, {0x3031, 0x3035}, {0x3038, 0x303C}, {0x3041, 0x3096}, {0x3099, 0x309A},
    {0x309D, 0x309F}, {0x30A1, 0x30FA}, {0x30FC, 0x30FF}, {0x3105, 0x312F}, {0x3131, 0x318E}, {0x31A0, 0x31BF},
    {0x31F0, 0x31FF}, {0x3400, 0x4DBF}, {0x4E00, 0xA48C}, {0xA4D0, 0xA4FD}, {0xA500, 0xA60C}, {0xA610, 0xA62B},
    {0xA640, 0xA672}, {0xA674, 0xA67D}, {0xA67F, 0xA6F1}, {0xA717, 0xA71F}, {0xA722, 0xA788}, {0xA78B, 0xA7CD},
    {0xA7D0, 0xA7D1}, {0xA7D3, 0xA7D3}, {0xA7D5, 0xA7DC}, {0xA7F2, 0xA827}, {0xA82C, 0xA82C}, {0xA840, 0xA873},
    {0xA880, 0xA8C5}, {0xA8D0, 0xA8D9}, {0xA8E0, 0xA8F7}, {0xA8FB, 0xA8FB}, {0xA8FD, 0xA92D}, {0xA930, 0xA953},
    {0xA960, 0xA97C}, {0xA980, 0xA9C0}, {0xA9CF, 0xA9D9}, {0xA9E0, 0xA9FE}, {0xAA00, 0xAA36}, {0xAA40, 0xAA4D},
    {0xAA50, 0xAA59}, {0xAA60, 0xAA76}, {0xAA7A, 0xAAC2}, {0xAADB, 0xAADD}, {0xAAE0, 0xAAEF}, {0xAAF2, 0xAAF6},
    {0xAB01, 0xAB06}, {0xAB09, 0xAB0E}, {0xAB11, 0xAB16}, {0xAB20, 0xAB26}, {0xAB28, 0xAB2E}, {0xAB30, 0xAB5A},
    {0xAB5C, 0xAB69}, {0xAB70, 0xABEA}, {0xABEC, 0xABED}, {0xABF0, 0xABF9}, {0xAC00, 0xD7A3}, {0xD7B0, 0xD7C6},
    {0xD7CB, 0xD7FB}, {0xF900, 0xFA6D}, {0xFA70, 0xFAD9}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFB1D, 0xFB28},
    {0xFB2A, 0xFB36}, {0xFB38, 0xFB3C}, {0xFB3E, 0xFB3E}, {0xFB40, 0xFB41}, {0xFB43, 0xFB44}, {0xFB46, 0xFBB1},
    {0xFBD3, 0xFD3D}, {0xFD50, 0xFD8F}, {0xFD92, 0xFDC7}, {0xFDF0, 0xFDFB}, {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F},
    {0xFE33, 0xFE34}, {0xFE4D, 0xFE4F}, {0xFE70, 0xFE74}, {0xFE76, 0xFEFC}, {0xFF10, 0xFF19}, {0xFF21, 0xFF3A},
    {0xFF3F, 0xFF3F}, {0xFF41, 0xFF5A}, {0xFF66, 0xFFBE}, {0xFFC2, 0xFFC7}, {0xFFCA, 0xFFCF}, {0xFFD2, 0xFFD7},
    {0xFFDA, 0xFFDC}, {0x10000, 0x1000B}, {0x1000D, 0x10026}, {0x10028, 0x1003A}, {0x1003C, 0x1003D},
    {0x1003F, 0x1004D}, {0x10050, 0x1005D}, {0x10080, 0x100FA}, {0x10140, 0x10174}, {0x101FD, 0x101FD},
    {0x10280, 0x1029C}, {0x102A0, 0x102D0}, {0x102E0, 0x102E0}, {0x10300, 0x1031F}, {0x1032D, 0x1034A},
    {0x10350, 0x1037A}, {0x10380, 0x1039D}, {0x103A0, 0x103C3}, {0x103C8, 0x103CF}, {0x103D1, 0x103D5},
    {0x10400, 0x1049D}, {0x104A0, 0x104A9}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10500, 0x10527},
    {0x10530, 0x10563}, {0x10570, 0x1057A}, {0x1057C, 0x1058A}, {0x1058C, 0x10592}, {0x10594, 0x10595},
    {0x10597, 0x105A1}, {0x105A3, 0x105B1}, {0x105B3, 0x105B9}, {0x105BB, 0x105BC}, {0x105C0, 0x105F3},
    {0x10600, 0x10736}, {0x10740, 0x10755}, {0x10760, 0x10767}, {0x10780, 0x10785}, {0x10787, 0x107B0},
    {0x107B2, 0x107BA}, {0x10800, 0x10805}, {0x10808, 0x10808}, {0x1080A, 0x10835}, {0x10837, 0x10838},
    {0x1083C, 0x1083C}, {0x1083F, 0x10855}, {0x10860, 0x10876}, {0x10880, 0x1089E}, {0x108E0, 0x108F2},
    {0x108F4, 0x108F5}, {0x10900, 0x10915}, {0x10920, 0x10939}, {0x10980, 0x109B7}, {0x109BE, 0x109BF},
    {0x10A00, 0x10A03}, {0x10A05, 0x10A06}, {0x10A0C, 0x10A13}, {0x10A15, 0x10A17}, {0x10A19, 0x10A35},
    {0x10A38, 0x10A3A}, {0x10A3F, 0x10A3F}, {0x10A60, 0x10A7C}, {0x10A80, 0x10A9C}, {0x10AC0, 0x10AC7},
    {0x10AC9, 0x10AE6}, {0x10B00, 0x10B35}, {0x10B40, 0x10B55}, {0x10B60, 0x10B72}, {0x10B80, 0x10B91},
    {0x10C00, 0x10C48}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x10D00, 0x10D27}, {0x10D30, 0x10D39},
    {0x10D40, 0x10D65}, {0x10D69, 0x10D6D}, {0x10D6F, 0x10D85}, {0x10E80, 0x10EA9}, {0x10EAB, 0x10EAC},
    {0x10EB0, 0x10EB1}, {0x10EC2, 0x10EC4}, {0x10EFC, 0x10F1C}, {0x10F27, 0x10F27}, {0x10F30, 0x10F50},
    {0x10F70, 0x10F85}, {0x10FB0, 0x10FC4}, {0x10FE0, 0x10FF6}, {0x11000, 0x11046}, {0x11066, 0x11075},
    {0x1107F, 0x110BA}, {0x110C2, 0x110C2}, {0x110D0, 0x110E8}, {0x110F0, 0x110F9}, {0x11100, 0x11134},
    {0x11136, 0x1113F}, {0x11144, 0x11147}, {0x11150, 0x11173}, {0x11176, 0x11176}, {0x11180, 0x111C4},
    {0x111C9, 0x111CC}, {0x111CE, 0x111DA}, {0x111DC, 0x111DC}, {0x11200, 0x11211}, {0x11213, 0x11237},
    {0x1123E, 0x11241}, {0x11280, 0x11286}, {0x11288, 0x11288}, {0x1128A, 0x1128D}, {0x1128F, 0x1129D},
    {0x1129F, 0x112A8}, {0x112B0, 0x112EA}, {0x112F0, 0x112F9}, {0x11300, 0x11303}, {0x11305, 0x1130C},
    {0x1130F, 0x11310}, {0x11313, 0x11328}, {0x1132A, 0x11330}, {0x11332, 0x11333}, {0x11335, 0x11339},
    {0x1133B, 0x11344}, {0x11347, 0x11348}, {0x1134B, 0x1134D}, {0x11350, 0x11350}, {0x11357, 0x11357},
    {0x1135D, 0x11363}, {0x11366, 0x1136C}, {0x11370, 0x11374}, {0x11380, 0x11389}, {0x1138B, 0x1138B},
    {0x1138E, 0x1138E}, {0x11390, 0x113B5}, {0x113B7, 0x113C0}, {0x113C2, 0x113C2}, {0x113C5, 0x113C5},
    {0x113C7, 0x113CA}, {0x113CC, 0x113D3}, {0x113E1, 0x113E2}, {0x11400, 0x1144A}, {0x11450, 0x11459},
    {0x1145E, 0x11461}, {0x11480, 0x114C5}, {0x114C7, 0x114C7}, {0x114D0, 0x114D9}, {0x11580, 0x115B5},
    {0x115B8, 0x115C0}, {0x115D8, 0x115DD}, {0x11600, 0x11640}, {0x11644, 0x11644}, {0x11650, 0x11659},
    {0x11680, 0x116B8}, {0x116C0, 0x116C9}, {0x116D0, 0x116E3}, {0x11700, 0x1171A}, {0x1171D, 0x1172B},
    {0x11730, 0x11739}, {0x11740, 0x11746}, {0x11800, 0x1183A}, {0x118A0, 0x118E9}, {0x118FF, 0x11906},
    {0x11909, 0x11909}, {0x1190C, 0x11913}, {0x11915, 0x11916}, {0x11918, 0x11935}, {0x11937, 0x11938},
    {0x1193B, 0x11943}, {0x11950, 0x11959}, {0x119A0, 0x119A7}, {0x119AA, 0x119D7}, {0x119DA, 0x119E1},
    {0x119E3, 0x119E4}, {0x11A00, 0x11A3E}, {0x11A47, 0x11A47}, {0x11A50, 0x11A99}, {0x11A9D, 0x11A9D},
    {0x11AB0, 0x11AF8}, {0x11BC0, 0x11BE0}, {0x11BF0, 0x11BF9}, {0x11C00, 0x11C08}, {0x11C0A, 0x11C36},
    {0x11C38, 0x11C40}, {0x11C50, 0x11C59}, {0x11C72, 0x11C8F}, {0x11C92, 0x11CA7}, {0x11CA9, 0x11CB6},
    {0x11D00, 0x11D06}, {0x11D08, 0x11D09}, {0x11D0B, 0x11D36}, {0x11D3A, 0x11D3A}, {0x11D3C, 0x11D3D},
    {0x11D3F, 0x11D47}, {0x11D50, 0x11D59}, {0x11D60, 0x11D65}, {0x11D67, 0x11D68}, {0x11D6A, 0x11D8E},
    {0x11D90, 0x11D91}, {0x11D93, 0x11D98}, {0x11DA0, 0x11DA9}, {0x11EE0, 0x11EF6}, {0x11F00, 0x11F10},
    {0x11F12, 0x11F3A}, {0x11F3E, 0x11F42}, {0x11F50, 0x11F5A}, {0x11FB0, 0x11FB0}, {0x12000, 0x12399},
    {0x12400, 0x1246E}, {0x12480, 0x12543}, {0x12F90, 0x12FF0}, {0x13000, 0x1342F}, {0x13440, 0x13455},
    {0x13460, 0x143FA}, {0x14400, 0x14646}, {0x16100, 0x16139}, {0x16800, 0x16A38}, {0x16A40, 0x16A5E},
    {0x16A60, 0x16A69}, {0x16A70, 0x16ABE}, {0x16AC0, 0x16AC9}, {0x16AD0, 0x16AED}, {0x16AF0, 0x16AF4},
    {0x16B00, 0x16B36}, {0x16B40, 0x16B43}, {0x16B50, 0x16B59}, {0x16B63, 0x16B77}, {0x16B7D, 0x16B8F},
    {0x16D40, 0x16D6C}, {0x16D70, 0x16D79}, {0x16E40, 0x16E7F}, {0x16F00, 0x16F4A}, {0x16F4F, 0x16F87},
    {0x16F8F, 0x16F9F}, {0x16FE0, 0x16FE1}, {0x16FE3, 0x16FE4}, {0x16FF0, 0x16FF1}, {0x17000, 0x187F7},
    {0x18800, 0x18CD5}, {0x18CFF, 0x18D08}, {0x1AFF0, 0x1AFF3}, {0x1AFF5, 0x1AFFB}, {0x1AFFD, 0x1AFFE},
    {0x1B000, 0x1B122}, {0x1B132, 0x1B132}, {0x1B150, 0x1B152}, {0x1B155, 0x1B155}, {0x1B164, 0x1B167},
    {0x1B170, 0x1B2FB}, {0x1BC00, 0x1BC6A}, {0x1BC70, 0x1BC7C}, {0x1BC80, 0x1BC88}, {0x1BC90, 0x1BC99},
    {0x1BC9D, 0x1BC9E}, {0x1CCF0, 0x1CCF9}, {0x1CF00, 0x1CF2D}, {0x1CF30, 0x1CF46}, {0x1D165, 0x1D169},
    {0x1D16D, 0x1D172}, {0x1D17B, 0x1D182}, {0x1D185, 0x1D18B}, {0x1D1AA, 0x1D1AD}, {0x1D242, 0x1D244},
    {0x1D400, 0x1D454}, {0x1D456, 0x1D49C}, {0x1D49E, 0x1D49F}, {0x1D4A2, 0x1D4A2}, {0x1D4A5, 0x1D4A6},
    {0x1D4A9, 0x1D4AC}, {0x1D4AE, 0x1D4B9}, {0x1D4BB, 0x1D4BB}, {0x1D4BD, 0x1D4C3}, {0x1D4C5, 0x1D505},
    {0x1D507, 0x1D50A}, {0x1D50D, 0x1D514}, {0x1D516, 0x1D51C}, {0x1D51E, 0x1D539}, {0x1D53B, 0x1D53E},
    {0x1D540, 0x1D544}, {0x1D546, 0x1D546}, {0x1D54A, 0x1D550}, {0x1D552, 0x1D6A5}, {0x1D6A8, 0x1D6C0},
    {0x1D6C2, 0x1D6DA}, {0x1D6DC, 0x1D6FA}, {0x1D6FC, 0x1D714}, {0x1D716, 0x1D734}, {0x1D736, 0x1D74E},
    {0x1D750, 0x1D76E}, {0x1D770, 0x1D788}, {0x1D78A, 0x1D7A8}, {0x1D7AA, 0x1D7C2}, {0x1D7C4, 0x1D7CB},
    {0x1D7CE, 0x1D7FF}, {0x1DA00, 0x1DA36}, {0x1DA3B, 0x1DA6C}, {0x1DA75, 0x1DA75}, {0x1DA84, 0x1DA84},
    {0x1DA9B, 0x1DA9F}, {0x1DAA1, 0x1DAAF}, {0x1DF00, 0x1DF1E}, {0x1DF25, 0x1DF2A}, {0x1E000, 0x1E006},
    {0x1E008, 0x1E018}, {0x1E01B, 0x1E021}, {0x1E023, 0x1E024}, {0x1E026, 0x1E02A}, {0x1E030, 0x1E06D},
    {0x1E08F, 0x1E08F}, {0x1E100, 0x1E12C}, {0x1E130, 0x1E13D}, {0x1E140, 0x1E149}, {0x1E14E, 0x1E14E},
    {0x1E290, 0x1E2AE}, {0x1E2C0, 0x1E2F9}, {0x1E4D0, 0x1E4F9}, {0x1E5D0, 0x1E5FA}, {0x1E7E0, 0x1E7E6},
    {0x1E7E8, 0x1E7EB}, {0x1E7ED, 0x1E7EE}, {0x1E7F0, 0x1E7FE}, {0x1E800, 0x1E8C4}, {0x1E8D0, 0x1E8D6},
    {0x1E900, 0x1E94B}, {0x1E950, 0x1E959}, {0x1EE00, 0x1EE03}, {0x1EE05, 0x1EE1F}, {0x1EE21, 0x1EE22},
    {0x1EE24, 0x1EE24}, {0x1EE27, 0x1EE27}, {0x1EE29, 0x1EE32}, {0x1EE34, 0x1EE37}, {0x1EE39, 0x1EE39},
    {0x1EE3B, 0x1EE3B}, {0x1EE42, 0x1EE42}, {0x1EE47, 0x1EE47}, {0x1EE49, 0x1EE49}, {0x1EE4B, 0x1EE4B},
    {0x1EE4D, 0x1EE4F}, {0x1EE51, 0x1EE52}, {0x1EE54, 0x1EE54}, {0x1EE57, 0x1EE57}, {0x1EE59, 0x1EE59},
    {0x1EE5B, 0x1EE5B}, {0x1EE5D, 0x1EE5D}, {0x1EE5F, 0x1EE5F}, {0x1EE61, 0x1EE62}, {0x1EE64, 0x1EE64},
    {0x1EE67, 0x1EE6A}, {0x1EE6C, 0x1EE72}, {0x1EE74, 0x1EE77}, {0x1EE79, 0x1EE7C}, {0x1EE7E, 0x1EE7E},
    {0x1EE80, 0x1EE89}, {0x1EE8B, 0x1EE9B}, {0x1EEA1, 0x1EEA3}, {0x1EEA5, 0x1EEA9}, {0x1EEAB, 0x1EEBB},
    {0x1FBF0, 0x1FBF9}, {0x20000, 0x2A6DF}, {0x2A700, 0x2B739}, {0x2B740, 0x2B81D}, {0x2B820, 0x2CEA1},
    {0x2CEB0, 0x2EBE0}, {0x2EBF0, 0x2EE5D}, {0x2F800, 0x2FA1D}, {0x30000, 0x3134A}, {0x31350, 0x323AF},
    {0xE0100, 0xE01EF},
};
/* canonical decompositions {cp, first, second | 1<<31 if they compose}: 2081 entries (Unicode 16.0.0) */
static const uint32_t sft__uni_decomp[][3] = {
    {0xC0, 0x41, 0x80000300}, {0xC1, 0x41, 0x80000301}, {0xC2, 0x41, 0x80000302}, {0xC3, 0x41, 0x80000303},
    {0xC4, 0x41, 0x80000308}, {0xC5, 0x41, 0x8000030A}, {0xC7, 0x43, 0x80000327}, {0xC8, 0x45, 0x80000300},
    {0xC9, 0x45, 0x80000301}, {0xCA, 0x45, 0x80000302}, {0xCB, 0x45, 0x80000308}, {0xCC, 0x49, 0x80000300},
    {0xCD, 0x49, 0x80000301}, {0xCE, 0x49, 0x80000302}, {0xCF, 0x49, 0x80000308}, {0xD1, 0x4E, 0x80000303},
    {0xD2, 0x4F, 0x80000300}, {0xD3, 0x4F, 0x80000301}, {0xD4, 0x4F, 0x80000302}, {0xD5, 0x4F, 0x80000303},
    {0xD6, 0x4F, 0x80000308}, {0xD9, 0x55, 0x80000300}, {0xDA, 0x55, 0x80000301}, {0xDB, 0x55, 0x80000302},
    {0xDC, 0x55, 0x80000308}, {0xDD, 0x59, 0x80000301}, {0xE0, 0x61, 0x80000300}, {0xE1, 0x61, 0x80000301},
    {0xE2, 0x61, 0x80000302}, {0xE3, 0x61, 0x80000303}, {0xE4, 0x61, 0x80000308}, {0xE5, 0x61, 0x8000030A},
    {0xE7, 0x63, 0x80000327}, {0xE8, 0x65, 0x80000300}, {0xE9, 0x65, 0x80000301}, {0xEA, 0x65, 0x80000302},
    {0xEB, 0x65, 0x80000308}, {0xEC, 0x69, 0x80000300}, {0xED, 0x69, 0x80000301}, {0xEE, 0x69, 0x80000302},
    {0xEF, 0x69, 0x80000308}, {0xF1, 0x6E, 0x80000303}, {0xF2, 0x6F, 0x80000300}, {0xF3, 0x6F, 0x80000301},
    {0xF4, 0x6F, 0x80000302}, {0xF5, 0x6F, 0x80000303}, {0xF6, 0x6F, 0x80000308}, {0xF9, 0x75, 0x80000300},
    {0xFA, 0x75, 0x80000301}, {0xFB, 0x75, 0x80000302}, {0xFC, 0x75, 0x80000308}, {0xFD, 0x79, 0x80000301},
    {0xFF, 0x79, 0x80000308}, {0x100, 0x41, 0x80000304}, {0x101, 0x61, 0x80000304}, {0x102, 0x41, 0x80000306},
    {0x103, 0x61, 0x80000306}, {0x104, 0x41, 0x80000328}, {0x105, 0x61, 0x80000328}, {0x106, 0x43, 0x80000301},
    {0x107, 0x63, 0x80000301}, {0x108, 0x43, 0x80000302}, {0x109, 0x63, 0x80000302}, {0x10A, 0x43, 0x80000307},
    {0x10B, 0x63, 0x80000307}, {0x10C, 0x43, 0x8000030C}, {0x10D, 0x63, 0x8000030C}, {0x10E, 0x44, 0x8000030C},
    {0x10F, 0x64, 0x8000030C}, {0x112, 0x45, 0x80000304}, {0x113, 0x65, 0x80000304}, {0x114, 0x45, 0x80000306},
    {0x115, 0x65, 0x80000306}, {0x116, 0x45, 0x80000307}, {0x117, 0x65, 0x80000307}, {0x118, 0x45, 0x80000328},
    {0x119, 0x65, 0x80000328}, {0x11A, 0x45, 0x8000030C}, {0x11B, 0x65, 0x8000030C}, {0x11C, 0x47, 0x80000302},
    {0x11D, 0x67, 0x80000302}, {0x11E, 0x47, 0x80000306}, {0x11F, 0x67, 0x80000306}, {0x120, 0x47, 0x80000307},
    {0x121, 0x67, 0x80000307}, {0x122, 0x47, 0x80000327}, {0x123, 0x67, 0x80000327}, {0x124, 0x48, 0x80000302},
    {0x125, 0x68, 0x80000302}, {0x128, 0x49, 0x80000303}, {0x129, 0x69, 0x80000303}, {0x12A, 0x49, 0x80000304},
    {0x12B, 0x69, 0x80000304}, {0x12C, 0x49, 0x80000306}, {0x12D, 0x69, 0x80000306}, {0x12E, 0x49, 0x80000328},
    {0x12F, 0x69, 0x80000328}, {0x130, 0x49, 0x80000307}, {0x134, 0x4A, 0x80000302}, {0x135, 0x6A, 0x80000302},
    {0x136, 0x4B, 0x80000327}, {0x137, 0x6B, 0x80000327}, {0x139, 0x4C, 0x80000301}, {0x13A, 0x6C, 0x80000301},
    {0x13B, 0x4C, 0x80000327}, {0x13C, 0x6C, 0x80000327}, {0x13D, 0x4C, 0x8000030C}, {0x13E, 0x6C, 0x8000030C},
    {0x143, 0x4E, 0x80000301}, {0x144, 0x6E, 0x80000301}, {0x145, 0x4E, 0x80000327}, {0x146, 0x6E, 0x80000327},
    {0x147, 0x4E, 0x8000030C}, {0x148, 0x6E, 0x8000030C}, {0x14C, 0x4F, 0x80000304}, {0x14D, 0x6F, 0x80000304},
    {0x14E, 0x4F, 0x80000306}, {0x14F, 0x6F, 0x80000306}, {0x150, 0x4F, 0x8000030B}, {0x151, 0x6F, 0x8000030B},
    {0x154, 0x52, 0x80000301}, {0x155, 0x72, 0x80000301}, {0x156, 0x52, 0x80000327}, {0x157, 0x72, 0x80000327},
    {0x158, 0x52, 0x8000030C}, {0x159, 0x72, 0x8000030C}, {0x15A, 0x53, 0x80000301}, {0x15B, 0x73, 0x80000301},
    {0x15C, 0x53, 0x80000302}, {0x15D, 0x73, 0x80000302}, {0x15E, 0x53, 0x80000327}, {0x15F, 0x73, 0x80000327},
    {0x160, 0x53, 0x8000030C}, {0x161, 0x73, 0x8000030C}, {0x162, 0x54, 0x80000327}, {0x163, 0x74, 0x80000327},
    {0x164, 0x54, 0x8000030C}, {0x165, 0x74, 0x8000030C}, {0x168, 0x55, 0x80000303}, {0x169, 0x75, 0x80000303},
    {0x16A, 0x55, 0x80000304}, {0x16B, 0x75, 0x80000304}, {0x16C, 0x55, 0x80000306}, {0x16D, 0x75, 0x80000306},
    {0x16E, 0x55, 0x8000030A}, {0x16F, 0x75, 0x8000030A}, {0x170, 0x55, 0x8000030B}, {0x171, 0x75, 0x8000030B},
    {0x172, 0x55, 0x80000328}, {0x173, 0x75, 0x80000328}, {0x174, 0x57, 0x80000302}, {0x175, 0x77, 0x80000302},
    {0x176, 0x59, 0x80000302}, {0x177, 0x79, 0x80000302}, {0x178, 0x59, 0x80000308}, {0x179, 0x5A, 0x80000301},
    {0x17A, 0x7A, 0x80000301}, {0x17B, 0x5A, 0x80000307}, {0x17C, 0x7A, 0x80000307}, {0x17D, 0x5A, 0x8000030C},
    {0x17E, 0x7A, 0x8000030C}, {0x1A0, 0x4F, 0x8000031B}, {0x1A1, 0x6F, 0x8000031B}, {0x1AF, 0x55, 0x8000031B},
    {0x1B0, 0x75, 0x8000031B}, {0x1CD, 0x41, 0x8000030C}, {0x1CE, 0x61, 0x8000030C}, {0x1CF, 0x49, 0x8000030C},
    {0x1D0, 0x69, 0x8000030C}, {0x1D1, 0x4F, 0x8000030C}, {0x1D2, 0x6F, 0x8000030C}, {0x1D3, 0x55, 0x8000030C},
    {0x1D4, 0x75, 0x8000030C}, {0x1D5, 0xDC, 0x80000304}, {0x1D6, 0xFC, 0x80000304}, {0x1D7, 0xDC, 0x80000301},
    {0x1D8, 0xFC, 0x80000301}, {0x1D9, 0xDC, 0x8000030C}, {0x1DA, 0xFC, 0x8000030C}, {0x1DB, 0xDC, 0x80000300},
    {0x1DC, 0xFC, 0x80000300}, {0x1DE, 0xC4, 0x80000304}, {0x1DF, 0xE4, 0x80000304}, {0x1E0, 0x226, 0x80000304},
    {0x1E1, 0x227, 0x80000304}, {0x1E2, 0xC6, 0x80000304}, {0x1E3, 0xE6, 0x80000304}, {0x1E6, 0x47, 0x8000030C},
    {0x1E7, 0x67, 0x8000030C}, {0x1E8, 0x4B, 0x8000030C}, {0x1E9, 0x6B, 0x8000030C}, {0x1EA, 0x4F, 0x80000328},
    {0x1EB, 0x6F, 0x80000328}, {0x1EC, 0x1EA, 0x80000304}, {0x1ED, 0x1EB, 0x80000304}, {0x1EE, 0x1B7, 0x8000030C},
    {0x1EF, 0x292, 0x8000030C}, {0x1F0, 0x6A, 0x8000030C}, {0x1F4, 0x47, 0x80000301}, {0x1F5, 0x67, 0x80000301},
    {0x1F8, 0x4E, 0x80000300}, {0x1F9, 0x6E, 0x80000300}, {0x1FA, 0xC5, 0x80000301}, {0x1FB, 0xE5, 0x80000301},
    {0x1FC, 0xC6, 0x80000301}, {0x1FD, 0xE6, 0x80000301}, {0x1FE, 0xD8, 0x80000301}, {0x1FF, 0xF8, 0x80000301},
    {0x200, 0x41, 0x8000030F}, {0x201, 0x61, 0x8000030F}, {0x202, 0x41, 0x80000311}, {0x203, 0x61, 0x80000311},
    {0x204, 0x45, 0x8000030F}, {0x205, 0x65, 0x8000030F}, {0x206, 0x45, 0x80000311}, {0x207, 0x65, 0x80000311},
    {0x208, 0x49, 0x8000030F}, {0x209, 0x69, 0x8000030F}, {0x20A, 0x49, 0x80000311}, {0x20B, 0x69, 0x80000311},
    {0x20C, 0x4F, 0x8000030F}, {0x20D, 0x6F, 0x8000030F}, {0x20E, 0x4F, 0x80000311}, {0x20F, 0x6F, 0x80000311},
    {0x210, 0x52, 0x8000030F}, {0x211, 0x72, 0x8000030F}, {0x212, 0x52, 0x80000311}, {0x213, 0x72, 0x80000311},
    {0x214, 0x55, 0x8000030F}, {0x215, 0x75, 0x8000030F}, {0x216, 0x55, 0x80000311}, {0x217, 0x75, 0x80000311},
    {0x218, 0x53, 0x80000326}, {0x219, 0x73, 0x80000326}, {0x21A, 0x54, 0x80000326}, {0x21B, 0x74, 0x80000326},
    {0x21E, 0x48, 0x8000030C}, {0x21F, 0x68, 0x8000030C}, {0x226, 0x41, 0x80000307}, {0x227, 0x61, 0x80000307},
    {0x228, 0x45, 0x80000327}, {0x229, 0x65, 0x80000327}, {0x22A, 0xD6, 0x80000304}, {0x22B, 0xF6, 0x80000304},
    {0x22C, 0xD5, 0x80000304}, {0x22D, 0xF5, 0x80000304}, {0x22E, 0x4F, 0x80000307}, {0x22F, 0x6F, 0x80000307},
    {0x230, 0x22E, 0x80000304}, {0x231, 0x22F, 0x80000304}, {0x232, 0x59, 0x80000304}, {0x233, 0x79, 0x80000304},
    {0x340, 0x300, 0x0}, {0x341, 0x301, 0x0}, {0x343, 0x313, 0x0}, {0x344, 0x308, 0x301}, {0x374, 0x2B9, 0x0},
    {0x37E, 0x3B, 0x0}, {0x385, 0xA8, 0x80000301}, {0x386, 0x391, 0x80000301}, {0x387, 0xB7, 0x0},
    {0x388, 0x395, 0x80000301}, {0x389, 0x397, 0x80000301}, {0x38A, 0x399, 0x80000301}, {0x38C, 0x39F, 0x80000301},
    {0x38E, 0x3A5, 0x80000301}, {0x38F, 0x3A9, 0x80000301}, {0x390, 0x3CA, 0x80000301}, {0x3AA, 0x399, 0x80000308},
    {0x3AB, 0x3A5, 0x80000308}, {0x3AC, 0x3B1, 0x80000301}, {0x3AD, 0x3B5, 0x80000301}, {0x3AE, 0x3B7, 0x80000301},
    {0x3AF, 0x3B9, 0x80000301}, {0x3B0, 0x3CB, 0x80000301}, {0x3CA, 0x3B9, 0x80000308}, {0x3CB, 0x3C5, 0x80000308},
    {0x3CC, 0x3BF, 0x80000301}, {0x3CD, 0x3C5, 0x80000301}, {0x3CE, 0x3C9, 0x80000301}, {0x3D3, 0x3D2, 0x80000301},
    {0x3D4, 0x3D2, 0x80000308}, {0x400, 0x415, 0x80000300}, {0x401, 0x415, 0x80000308}, {0x403, 0x413, 0x80000301},
    {0x407, 0x406, 0x80000308}, {0x40C, 0x41A, 0x80000301}, {0x40D, 0x418, 0x80000300}, {0x40E, 0x423, 0x80000306},
    {0x419, 0x418, 0x80000306}, {0x439, 0x438, 0x80000306}, {0x450, 0x435, 0x80000300}, {0x451, 0x435, 0x80000308},
    {0x453, 0x433, 0x80000301}, {0x457, 0x456, 0x80000308}, {0x45C, 0x43A, 0x80000301}, {0x45D, 0x438, 0x80000300},
    {0x45E, 0x443, 0x80000306}, {0x476, 0x474, 0x8000030F}, {0x477, 0x475, 0x8000030F}, {0x4C1, 0x416, 0x80000306},
    {0x4C2, 0x436, 0x80000306}, {0x4D0, 0x410, 0x80000306}, {0x4D1, 0x430, 0x80000306}, {0x4D2, 0x410, 0x80000308},
    {0x4D3, 0x430, 0x80000308}, {0x4D6, 0x415, 0x80000306}, {0x4D7, 0x435, 0x80000306}, {0x4DA, 0x4D8, 0x80000308},
    {0x4DB, 0x4D9, 0x80000308}, {0x4DC, 0x416, 0x80000308}, {0x4DD, 0x436, 0x80000308}, {0x4DE, 0x417, 0x80000308},
    {0x4DF, 0x437, 0x80000308}, {0x4E2, 0x418, 0x80000304}, {0x4E3, 0x438, 0x80000304}, {0x4E4, 0x418, 0x80000308},
    {0x4E5, 0x438, 0x80000308}, {0x4E6, 0x41E, 0x80000308}, {0x4E7, 0x43E, 0x80000308}, {0x4EA, 0x4E8, 0x80000308},
    {0x4EB, 0x4E9, 0x80000308}, {0x4EC, 0x42D, 0x80000308}, {0x4ED, 0x44D, 0x80000308}, {0x4EE, 0x423, 0x80000304},
    {0x4EF, 0x443, 0x80000304}, {0x4F0, 0x423, 0x80000308}, {0x4F1, 0x443, 0x80000308}, {0x4F2, 0x423, 0x8000030B},
    {0x4F3, 0x443, 0x8000030B}, {0x4F4, 0x427, 0x80000308}, {0x4F5, 0x447, 0x80000308}, {0x4F8, 0x42B, 0x80000308},
    {0x4F9, 0x44B, 0x80000308}, {0x622, 0x627, 0x80000653}, {0x623, 0x627, 0x80000654}, {0x624, 0x648, 0x80000654},
    {0x625, 0x627, 0x80000655}, {0x626, 0x64A, 0x80000654}, {0x6C0, 0x6D5, 0x80000654}, {0x6C2, 0x6C1, 0x80000654},
    {0x6D3, 0x6D2, 0x80000654}, {0x929, 0x928, 0x8000093C}, {0x931, 0x930, 0x8000093C}, {0x934, 0x933, 0x8000093C},
    {0x958, 0x915, 0x93C}, {0x959, 0x916, 0x93C}, {0x95A, 0x917, 0x93C}, {0x95B, 0x91C, 0x93C}, {0x95C, 0x921, 0x93C},
    {0x95D, 0x922, 0x93C}, {0x95E, 0x92B, 0x93C}, {0x95F, 0x92F, 0x93C}, {0x9CB, 0x9C7, 0x800009BE},
    {0x9CC, 0x9C7, 0x800009D7}, {0x9DC, 0x9A1, 0x9BC}, {0x9DD, 0x9A2, 0x9BC}, {0x9DF, 0x9AF, 0x9BC},
    {0xA33, 0xA32, 0xA3C}, {0xA36, 0xA38, 0xA3C}, {0xA59, 0xA16, 0xA3C}, {0xA5A, 0xA17, 0xA3C}, {0xA5B, 0xA1C, 0xA3C},
    {0xA5E, 0xA2B, 0xA3C}, {0xB48, 0xB47, 0x80000B56}, {0xB4B, 0xB47, 0x80000B3E}, {0xB4C, 0xB47, 0x80000B57},
    {0xB5C, 0xB21, 0xB3C}, {0xB5D, 0xB22, 0xB3C}, {0xB94, 0xB92, 0x80000BD7}, {0xBCA, 0xBC6, 0x80000BBE},
    {0xBCB, 0xBC7, 0x80000BBE}, {0xBCC, 0xBC6, 0x80000BD7}, {0xC48, 0xC46, 0x80000C56}, {0xCC0, 0xCBF, 0x80000CD5},
    {0xCC7, 0xCC6, 0x80000CD5}, {0xCC8, 0xCC6, 0x80000CD6}, {0xCCA, 0xCC6, 0x80000CC2}, {0xCCB, 0xCCA, 0x80000CD5},
    {0xD4A, 0xD46, 0x80000D3E}, {0xD4B, 0xD47, 0x80000D3E}, {0xD4C, 0xD46, 0x80000D57}, {0xDDA, 0xDD9, 0x80000DCA},
    {0xDDC, 0xDD9, 0x80000DCF}, {0xDDD, 0xDDC, 0x80000DCA}, {0xDDE, 0xDD9, 0x80000DDF}, {0xF43, 0xF42, 0xFB7},
    {0xF4D, 0xF4C, 0xFB7}, {0xF52, 0xF51, 0xFB7}, {0xF57, 0xF56, 0xFB7}, {0xF5C, 0xF5B, 0xFB7}, {0xF69, 0xF40, 0xFB5},
    {0xF73, 0xF71, 0xF72}, {0xF75, 0xF71, 0xF74}, {0xF76, 0xFB2, 0xF80}, {0xF78, 0xFB3, 0xF80}, {0xF81, 0xF71, 0xF80},
    {0xF93, 0xF92, 0xFB7}, {0xF9D, 0xF9C, 0xFB7}, {0xFA2, 0xFA1, 0xFB7}, {0xFA7, 0xFA6, 0xFB7}, {0xFAC, 0xFAB, 0xFB7},
    {0xFB9, 0xF90, 0xFB5}, {0x1026, 0x1025, 0x8000102E}, {0x1B06, 0x1B05, 0x80001B35}, {0x1B08, 0x1B07, 0x80001B35},
    {0x1B0A, 0x1B09, 0x80001B35}, {0x1B0C, 0x1B0B, 0x80001B35}, {0x1B0E, 0x1B0D, 0x80001B35},
    {0x1B12, 0x1B11, 0x80001B35}, {0x1B3B, 0x1B3A, 0x80001B35}, {0x1B3D, 0x1B3C, 0x80001B35},
    {0x1B40, 0x1B3E, 0x80001B35}, {0x1B41, 0x1B3F, 0x80001B35}, {0x1B43, 0x1B42, 0x80001B35},
    {0x1E00, 0x41, 0x80000325}, {0x1E01, 0x61, 0x80000325}, {0x1E02, 0x42, 0x80000307}, {0x1E03, 0x62, 0x80000307},
    {0x1E04, 0x42, 0x80000323}, {0x1E05, 0x62, 0x80000323}, {0x1E06, 0x42, 0x80000331}, {0x1E07, 0x62, 0x80000331},
    {0x1E08, 0xC7, 0x80000301}, {0x1E09, 0xE7, 0x80000301}, {0x1E0A, 0x44, 0x80000307}, {0x1E0B, 0x64, 0x80000307},
    {0x1E0C, 0x44, 0x80000323}, {0x1E0D, 0x64, 0x80000323}, {0x1E0E, 0x44, 0x80000331}, {0x1E0F, 0x64, 0x80000331},
    {0x1E10, 0x44, 0x80000327}, {0x1E11, 0x64, 0x80000327}, {0x1E12, 0x44, 0x8000032D}, {0x1E13, 0x64, 0x8000032D},
    {0x1E14, 0x112, 0x80000300}, {0x1E15, 0x113, 0x80000300}, {0x1E16, 0x112, 0x80000301},
    {0x1E17, 0x113, 0x80000301}, {0x1E18, 0x45, 0x8000032D}, {0x1E19, 0x65, 0x8000032D}, {0x1E1A, 0x45, 0x80000330},
    {0x1E1B, 0x65, 0x80000330}, {0x1E1C, 0x228, 0x80000306}, {0x1E1D, 0x229, 0x80000306}, {0x1E1E, 0x46, 0x80000307},
    {0x1E1F, 0x66, 0x80000307}, {0x1E20, 0x47, 0x80000304}, {0x1E21, 0x67, 0x80000304}, {0x1E22, 0x48, 0x80000307},
    {0x1E23, 0x68, 0x80000307}, {0x1E24, 0x48, 0x80000323}, {0x1E25, 0x68, 0x80000323}, {0x1E26, 0x48, 0x80000308},
    {0x1E27, 0x68, 0x80000308}, {0x1E28, 0x48, 0x80000327}, {0x1E29, 0x68, 0x80000327}, {0x1E2A, 0x48, 0x8000032E},
    {0x1E2B, 0x68, 0x8000032E}, {0x1E2C, 0x49, 0x80000330}, {0x1E2D, 0x69, 0x80000330}, {0x1E2E, 0xCF, 0x80000301},
    {0x1E2F, 0xEF, 0x80000301}, {0x1E30, 0x4B, 0x80000301}, {0x1E31, 0x6B, 0x80000301}, {0x1E32, 0x4B, 0x80000323},
    {0x1E33, 0x6B, 0x80000323}, {0x1E34, 0x4B, 0x80000331}, {0x1E35, 0x6B, 0x80000331}, {0x1E36, 0x4C, 0x80000323},
    {0x1E37, 0x6C, 0x80000323}, {0x1E38, 0x1E36, 0x80000304}, {0x1E39, 0x1E37, 0x80000304},
    {0x1E3A, 0x4C, 0x80000331}, {0x1E3B, 0x6C, 0x80000331}, {0x1E3C, 0x4C, 0x8000032D}, {0x1E3D, 0x6C, 0x8000032D},
    {0x1E3E, 0x4D, 0x80000301}, {0x1E3F, 0x6D, 0x80000301}, {0x1E40, 0x4D, 0x80000307}, {0x1E41, 0x6D, 0x80000307},
    {0x1E42, 0x4D, 0x80000323}, {0x1E43, 0x6D, 0x80000323}, {0x1E44, 0x4E, 0x80000307}, {0x1E45, 0x6E, 0x80000307},
    {0x1E46, 0x4E, 0x80000323}, {0x1E47, 0x6E, 0x80000323}, {0x1E48, 0x4E, 0x80000331}, {0x1E49, 0x6E, 0x80000331},
    {0x1E4A, 0x4E, 0x8000032D}, {0x1E4B, 0x6E, 0x8000032D}, {0x1E4C, 0xD5, 0x80000301}, {0x1E4D, 0xF5, 0x80000301},
    {0x1E4E, 0xD5, 0x80000308}, {0x1E4F, 0xF5, 0x80000308}, {0x1E50, 0x14C, 0x80000300}, {0x1E51, 0x14D, 0x80000300},
    {0x1E52, 0x14C, 0x80000301}, {0x1E53, 0x14D, 0x80000301}, {0x1E54, 0x50, 0x80000301}, {0x1E55, 0x70, 0x80000301},
    {0x1E56, 0x50, 0x80000307}, {0x1E57, 0x70, 0x80000307}, {0x1E58, 0x52, 0x80000307}, {0x1E59, 0x72, 0x80000307},
    {0x1E5A, 0x52, 0x80000323}, {0x1E5B, 0x72, 0x80000323}, {0x1E5C, 0x1E5A, 0x80000304},
    {0x1E5D, 0x1E5B, 0x80000304}, {0x1E5E, 0x52, 0x80000331}, {0x1E5F, 0x72, 0x80000331}, {0x1E60, 0x53, 0x80000307},
    {0x1E61, 0x73, 0x80000307}, {0x1E62, 0x53, 0x80000323}, {0x1E63, 0x73, 0x80000323}, {0x1E64, 0x15A, 0x80000307},
    {0x1E65, 0x15B, 0x80000307}, {0x1E66, 0x160, 0x80000307}, {0x1E67, 0x161, 0x80000307},
    {0x1E68, 0x1E62, 0x80000307}, {0x1E69, 0x1E63, 0x80000307}, {0x1E6A, 0x54, 0x80000307},
    {0x1E6B, 0x74, 0x80000307}, {0x1E6C, 0x54, 0x80000323}, {0x1E6D, 0x74, 0x80000323}, {0x1E6E, 0x54, 0x80000331},
    {0x1E6F, 0x74, 0x80000331}, {0x1E70, 0x54, 0x8000032D}, {0x1E71, 0x74, 0x8000032D}, {0x1E72, 0x55, 0x80000324},
    {0x1E73, 0x75, 0x80000324}, {0x1E74, 0x55, 0x80000330}, {0x1E75, 0x75, 0x80000330}, {0x1E76, 0x55, 0x8000032D},
    {0x1E77, 0x75, 0x8000032D}, {0x1E78, 0x168, 0x80000301}, {0x1E79, 0x169, 0x80000301}, {0x1E7A, 0x16A, 0x80000308},
    {0x1E7B, 0x16B, 0x80000308}, {0x1E7C, 0x56, 0x80000303}, {0x1E7D, 0x76, 0x80000303}, {0x1E7E, 0x56, 0x80000323},
    {0x1E7F, 0x76, 0x80000323}, {0x1E80, 0x57, 0x80000300}, {0x1E81, 0x77, 0x80000300}, {0x1E82, 0x57, 0x80000301},
    {0x1E83, 0x77, 0x80000301}, {0x1E84, 0x57, 0x80000308}, {0x1E85, 0x77, 0x80000308}, {0x1E86, 0x57, 0x80000307},
    {0x1E87, 0x77, 0x80000307}, {0x1E88, 0x57, 0x80000323}, {0x1E89, 0x77, 0x80000323}, {0x1E8A, 0x58, 0x80000307},
    {0x1E8B, 0x78, 0x80000307}, {0x1E8C, 0x58, 0x80000308}, {0x1E8D, 0x78, 0x80000308}, {0x1E8E, 0x59, 0x80000307},
    {0x1E8F, 0x79, 0x80000307}, {0x1E90, 0x5A, 0x80000302}, {0x1E91, 0x7A, 0x80000302}, {0x1E92, 0x5A, 0x80000323},
    {0x1E93, 0x7A, 0x80000323}, {0x1E94, 0x5A, 0x80000331}, {0x1E95, 0x7A, 0x80000331}, {0x1E96, 0x68, 0x80000331},
    {0x1E97, 0x74, 0x80000308}, {0x1E98, 0x77, 0x8000030A}, {0x1E99, 0x79, 0x8000030A}, {0x1E9B, 0x17F, 0x80000307},
    {0x1EA0, 0x41, 0x80000323}, {0x1EA1, 0x61, 0x80000323}, {0x1EA2, 0x41, 0x80000309}, {0x1EA3, 0x61, 0x80000309},
    {0x1EA4, 0xC2, 0x80000301}, {0x1EA5, 0xE2, 0x80000301}, {0x1EA6, 0xC2, 0x80000300}, {0x1EA7, 0xE2, 0x80000300},
    {0x1EA8, 0xC2, 0x80000309}, {0x1EA9, 0xE2, 0x80000309}, {0x1EAA, 0xC2, 0x80000303}, {0x1EAB, 0xE2, 0x80000303},
    {0x1EAC, 0x1EA0, 0x80000302}, {0x1EAD, 0x1EA1, 0x80000302}, {0x1EAE, 0x102, 0x80000301},
    {0x1EAF, 0x103, 0x80000301}, {0x1EB0, 0x102, 0x80000300}, {0x1EB1, 0x103, 0x80000300},
    {0x1EB2, 0x102, 0x80000309}, {0x1EB3, 0x103, 0x80000309}, {0x1EB4, 0x102, 0x80000303},
    {0x1EB5, 0x103, 0x80000303}, {0x1EB6, 0x1EA0, 0x80000306}, {0x1EB7, 0x1EA1, 0x80000306},
    {0x1EB8, 0x45, 0x80000323}, {0x1EB9, 0x65, 0x80000323}, {0x1EBA, 0x45, 0x80000309}, {0x1EBB, 0x65, 0x80000309},
    {0x1EBC, 0x45, 0x80000303}, {0x1EBD, 0x65, 0x80000303}, {0x1EBE, 0xCA, 0x80000301}, {0x1EBF, 0xEA, 0x80000301},
    {0x1EC0, 0xCA, 0x80000300}, {0x1EC1, 0xEA, 0x80000300}, {0x1EC2, 0xCA, 0x80000309}, {0x1EC3, 0xEA, 0x80000309},
    {0x1EC4, 0xCA, 0x80000303}, {0x1EC5, 0xEA, 0x80000303}, {0x1EC6, 0x1EB8, 0x80000302},
    {0x1EC7, 0x1EB9, 0x80000302}, {0x1EC8, 0x49, 0x80000309}, {0x1EC9, 0x69, 0x80000309}, {0x1ECA, 0x49, 0x80000323},
    {0x1ECB, 0x69, 0x80000323}, {0x1ECC, 0x4F, 0x80000323}, {0x1ECD, 0x6F, 0x80000323}, {0x1ECE, 0x4F, 0x80000309},
    {0x1ECF, 0x6F, 0x80000309}, {0x1ED0, 0xD4, 0x80000301}, {0x1ED1, 0xF4, 0x80000301}, {0x1ED2, 0xD4, 0x80000300},
    {0x1ED3, 0xF4, 0x80000300}, {0x1ED4, 0xD4, 0x80000309}, {0x1ED5, 0xF4, 0x80000309}, {0x1ED6, 0xD4, 0x80000303},
    {0x1ED7, 0xF4, 0x80000303}, {0x1ED8, 0x1ECC, 0x80000302}, {0x1ED9, 0x1ECD, 0x80000302},
    {0x1EDA, 0x1A0, 0x80000301}, {0x1EDB, 0x1A1, 0x80000301}, {0x1EDC, 0x1A0, 0x80000300},
    {0x1EDD, 0x1A1, 0x80000300}, {0x1EDE, 0x1A0, 0x80000309}, {0x1EDF, 0x1A1, 0x80000309},
    {0x1EE0, 0x1A0, 0x80000303}, {0x1EE1, 0x1A1, 0x80000303}, {0x1EE2, 0x1A0, 0x80000323},
    {0x1EE3, 0x1A1, 0x80000323}, {0x1EE4, 0x55, 0x80000323}, {0x1EE5, 0x75, 0x80000323}, {0x1EE6, 0x55, 0x80000309},
    {0x1EE7, 0x75, 0x80000309}, {0x1EE8, 0x1AF, 0x80000301}, {0x1EE9, 0x1B0, 0x80000301}, {0x1EEA, 0x1AF, 0x80000300},
    {0x1EEB, 0x1B0, 0x80000300}, {0x1EEC, 0x1AF, 0x80000309}, {0x1EED, 0x1B0, 0x80000309},
    {0x1EEE, 0x1AF, 0x80000303}, {0x1EEF, 0x1B0, 0x80000303}, {0x1EF0, 0x1AF, 0x80000323},
    {0x1EF1, 0x1B0, 0x80000323}, {0x1EF2, 0x59, 0x80000300}, {0x1EF3, 0x79, 0x80000300}, {0x1EF4, 0x59, 0x80000323},
    {0x1EF5, 0x79, 0x80000323}, {0x1EF6, 0x59, 0x80000309}, {0x1EF7, 0x79, 0x80000309}, {0x1EF8, 0x59, 0x80000303},
    {0x1EF9, 0x79, 0x80000303}, {0x1F00, 0x3B1, 0x80000313}, {0x1F01, 0x3B1, 0x80000314},
    {0x1F02, 0x1F00, 0x80000300}, {0x1F03, 0x1F01, 0x80000300}, {0x1F04, 0x1F00, 0x80000301},
    {0x1F05, 0x1F01, 0x80000301}, {0x1F06, 0x1F00, 0x80000342}, {0x1F07, 0x1F01, 0x80000342},
    {0x1F08, 0x391, 0x80000313}, {0x1F09, 0x391, 0x80000314}, {0x1F0A, 0x1F08, 0x80000300},
    {0x1F0B, 0x1F09, 0x80000300}, {0x1F0C, 0x1F08, 0x80000301}, {0x1F0D, 0x1F09, 0x80000301},
    {0x1F0E, 0x1F08, 0x80000342}, {0x1F0F, 0x1F09, 0x80000342}, {0x1F10, 0x3B5, 0x80000313},
    {0x1F11, 0x3B5, 0x80000314}, {0x1F12, 0x1F10, 0x80000300}, {0x1F13, 0x1F11, 0x80000300},
    {0x1F14, 0x1F10, 0x80000301}, {0x1F15, 0x1F11, 0x80000301}, {0x1F18, 0x395, 0x80000313},
    {0x1F19, 0x395, 0x80000314}, {0x1F1A, 0x1F18, 0x80000300}, {0x1F1B, 0x1F19, 0x80000300},
    {0x1F1C, 0x1F18, 0x80000301}, {0x1F1D, 0x1F19, 0x80000301}, {0x1F20, 0x3B7, 0x80000313},
    {0x1F21, 0x3B7, 0x80000314}, {0x1F22, 0x1F20, 0x80000300}, {0x1F23, 0x1F21, 0x80000300},
    {0x1F24, 0x1F20, 0x80000301}, {0x1F25, 0x1F21, 0x80000301}, {0x1F26, 0x1F20, 0x80000342},
    {0x1F27, 0x1F21, 0x80000342}, {0x1F28, 0x397, 0x80000313}, {0x1F29, 0x397, 0x80000314},
    {0x1F2A, 0x1F28, 0x80000300}, {0x1F2B, 0x1F29, 0x80000300}, {0x1F2C, 0x1F28, 0x80000301},
    {0x1F2D, 0x1F29, 0x80000301}, {0x1F2E, 0x1F28, 0x80000342}, {0x1F2F, 0x1F29, 0x80000342},
    {0x1F30, 0x3B9, 0x80000313}, {0x1F31, 0x3B9, 0x80000314}, {0x1F32, 0x1F30, 0x80000300},
    {0x1F33, 0x1F31, 0x80000300}, {0x1F34, 0x1F30, 0x80000301}, {0x1F35, 0x1F31, 0x80000301},
    {0x1F36, 0x1F30, 0x80000342}, {0x1F37, 0x1F31, 0x80000342}, {0x1F38, 0x399, 0x80000313},
    {0x1F39, 0x399, 0x80000314}, {0x1F3A, 0x1F38, 0x80000300}, {0x1F3B, 0x1F39, 0x80000300},
    {0x1F3C, 0x1F38, 0x80000301}, {0x1F3D, 0x1F39, 0x80000301}, {0x1F3E, 0x1F38, 0x80000342},
    {0x1F3F, 0x1F39, 0x80000342}, {0x1F40, 0x3BF, 0x80000313}, {0x1F41, 0x3BF, 0x80000314},
    {0x1F42, 0x1F40, 0x80000300}, {0x1F43, 0x1F41, 0x80000300}, {0x1F44, 0x1F40, 0x80000301},
    {0x1F45, 0x1F41, 0x80000301}, {0x1F48, 0x39F, 0x80000313}, {0x1F49, 0x39F, 0x80000314},
    {0x1F4A, 0x1F48, 0x80000300}, {0x1F4B, 0x1F49, 0x80000300}, {0x1F4C, 0x1F48, 0x80000301},
    {0x1F4D, 0x1F49, 0x80000301}, {0x1F50, 0x3C5, 0x80000313}, {0x1F51, 0x3C5, 0x80000314},
    {0x1F52, 0x1F50, 0x80000300}, {0x1F53, 0x1F51, 0x80000300}, {0x1F54, 0x1F50, 0x80000301},
    {0x1F55, 0x1F51, 0x80000301}, {0x1F56, 0x1F50, 0x80000342}, {0x1F57, 0x1F51, 0x80000342},
    {0x1F59, 0x3A5, 0x80000314}, {0x1F5B, 0x1F59, 0x80000300}, {0x1F5D, 0x1F59, 0x80000301},
    {0x1F5F, 0x1F59, 0x80000342}, {0x1F60, 0x3C9, 0x80000313}, {0x1F61, 0x3C9, 0x80000314},
    {0x1F62, 0x1F60, 0x80000300}, {0x1F63, 0x1F61, 0x80000300}, {0x1F64, 0x1F60, 0x80000301},
    {0x1F65, 0x1F61, 0x80000301}, {0x1F66, 0x1F60, 0x80000342}, {0x1F67, 0x1F61, 0x80000342},
    {0x1F68, 0x3A9, 0x80000313}, {0x1F69, 0x3A9, 0x80000314}, {0x1F6A, 0x1F68, 0x80000300},
    {0x1F6B, 0x1F69, 0x80000300}, {0x1F6C, 0x1F68, 0x80000301}, {0x1F6D, 0x1F69, 0x80000301},
    {0x1F6E, 0x1F68, 0x80000342}, {0x1F6F, 0x1F69, 0x80000342}, {0x1F70, 0x3B1, 0x80000300}, {0x1F71, 0x3AC, 0x0},
    {0x1F72, 0x3B5, 0x80000300}, {0x1F73, 0x3AD, 0x0}, {0x1F74, 0x3B7, 0x80000300}, {0x1F75, 0x3AE, 0x0},
    {0x1F76, 0x3B9, 0x80000300}, {0x1F77, 0x3AF, 0x0}, {0x1F78, 0x3BF, 0x80000300}, {0x1F79, 0x3CC, 0x0},
    {0x1F7A, 0x3C5, 0x80000300}, {0x1F7B, 0x3CD, 0x0}, {0x1F7C, 0x3C9, 0x80000300}, {0x1F7D, 0x3CE, 0x0},
    {0x1F80, 0x1F00, 0x80000345}, {0x1F81, 0x1F01, 0x80000345}, {0x1F82, 0x1F02, 0x80000345},
    {0x1F83, 0x1F03, 0x80000345}, {0x1F84, 0x1F04, 0x80000345}, {0x1F85, 0x1F05, 0x80000345},
    {0x1F86, 0x1F06, 0x80000345}, {0x1F87, 0x1F07, 0x80000345}, {0x1F88, 0x1F08, 0x80000345},
    {0x1F89, 0x1F09, 0x80000345}, {0x1F8A, 0x1F0A, 0x80000345}, {0x1F8B, 0x1F0B, 0x80000345},
    {0x1F8C, 0x1F0C, 0x80000345}, {0x1F8D, 0x1F0D, 0x80000345}, {0x1F8E, 0x1F0E, 0x80000345},
    {0x1F8F, 0x1F0F, 0x80000345}, {0x1F90, 0x1F20, 0x80000345}, {0x1F91, 0x1F21, 0x80000345},
    {0x1F92, 0x1F22, 0x80000345}, {0x1F93, 0x1F23, 0x80000345}, {0x1F94, 0x1F24, 0x80000345},
    {0x1F95, 0x1F25, 0x80000345}, {0x1F96, 0x1F26, 0x80000345}, {0x1F97, 0x1F27, 0x80000345},
    {0x1F98, 0x1F28, 0x80000345}, {0x1F99, 0x1F29, 0x80000345}, {0x1F9A, 0x1F2A, 0x80000345},
    {0x1F9B, 0x1F2B, 0x80000345}, {0x1F9C, 0x1F2C, 0x80000345}, {0x1F9D, 0x1F2D, 0x80000345},
    {0x1F9E, 0x1F2E, 0x80000345}, {0x1F9F, 0x1F2F, 0x80000345}, {0x1FA0, 0x1F60, 0x80000345},
    {0x1FA1, 0x1F61, 0x80000345}, {0x1FA2, 0x1F62, 0x80000345}, {0x1FA3, 0x1F63, 0x80000345},
    {0x1FA4, 0x1F64, 0x80000345}, {0x1FA5, 0x1F65, 0x80000345}, {0x1FA6, 0x1F66, 0x80000345},
    {0x1FA7, 0x1F67, 0x80000345}, {0x1FA8, 0x1F68, 0x80000345}, {0x1FA9, 0x1F69, 0x80000345},
    {0x1FAA, 0x1F6A, 0x80000345}, {0x1FAB, 0x1F6B, 0x80000345}, {0x1FAC, 0x1F6C, 0x80000345},
    {0x1FAD, 0x1F6D, 0x80000345}, {0x1FAE, 0x1F6E, 0x80000345}, {0x1FAF, 0x1F6F, 0x80000345},
    {0x1FB0, 0x3B1, 0x80000306}, {0x1FB1, 0x3B1, 0x80000304}, {0x1FB2, 0x1F70, 0x80000345},
    {0x1FB3, 0x3B1, 0x80000345}, {0x1FB4, 0x3AC, 0x80000345}, {0x1FB6, 0x3B1, 0x80000342},
    {0x1FB7, 0x1FB6, 0x80000345}, {0x1FB8, 0x391, 0x80000306}, {0x1FB9, 0x391, 0x80000304},
    {0x1FBA, 0x391, 0x80000300}, {0x1FBB, 0x386, 0x0}, {0x1FBC, 0x391, 0x80000345}, {0x1FBE, 0x3B9, 0x0},
    {0x1FC1, 0xA8, 0x80000342}, {0x1FC2, 0x1F74, 0x80000345}, {0x1FC3, 0x3B7, 0x80000345},
    {0x1FC4, 0x3AE, 0x80000345}, {0x1FC6, 0x3B7, 0x80000342}, {0x1FC7, 0x1FC6, 0x80000345},
    {0x1FC8, 0x395, 0x80000300}, {0x1FC9, 0x388, 0x0}, {0x1FCA, 0x397, 0x80000300}, {0x1FCB, 0x389, 0x0},
    {0x1FCC, 0x397, 0x80000345}, {0x1FCD, 0x1FBF, 0x80000300}, {0x1FCE, 0x1FBF, 0x80000301},
    {0x1FCF, 0x1FBF, 0x80000342}, {0x1FD0, 0x3B9, 0x80000306}, {0x1FD1, 0x3B9, 0x80000304},
    {0x1FD2, 0x3CA, 0x80000300}, {0x1FD3, 0x390, 0x0}, {0x1FD6, 0x3B9, 0x80000342}, {0x1FD7, 0x3CA, 0x80000342},
    {0x1FD8, 0x399, 0x80000306}, {0x1FD9, 0x399, 0x80000304}, {0x1FDA, 0x399, 0x80000300}, {0x1FDB, 0x38A, 0x0},
    {0x1FDD, 0x1FFE, 0x80000300}, {0x1FDE, 0x1FFE, 0x80000301}, {0x1FDF, 0x1FFE, 0x80000342},
    {0x1FE0, 0x3C5, 0x80000306}, {0x1FE1, 0x3C5, 0x80000304}, {0x1FE2, 0x3CB, 0x80000300}, {0x1FE3, 0x3B0, 0x0},
    {0x1FE4, 0x3C1, 0x80000313}, {0x1FE5, 0x3C1, 0x80000314}, {0x1FE6, 0x3C5, 0x80000342},
    {0x1FE7, 0x3CB, 0x80000342}, {0x1FE8, 0x3A5, 0x80000306}, {0x1FE9, 0x3A5, 0x80000304},
    {0x1FEA, 0x3A5, 0x80000300}, {0x1FEB, 0x38E, 0x0}, {0x1FEC, 0x3A1, 0x80000314}, {0x1FED, 0xA8, 0x80000300},
    {0x1FEE, 0x385, 0x0}, {0x1FEF, 0x60, 0x0}, {0x1FF2, 0x1F7C, 0x80000345}, {0x1FF3, 0x3C9, 0x80000345},
    {0x1FF4, 0x3CE, 0x80000345}, {0x1FF6, 0x3C9, 0x80000342}, {0x1FF7, 0x1FF6, 0x80000345},
    {0x1FF8, 0x39F, 0x80000300}, {0x1FF9, 0x38C, 0x0}, {0x1FFA, 0x3A9, 0x80000300}, {0x1FFB, 0x38F, 0x0},
    {0x1FFC, 0x3A9, 0x80000345}, {0x1FFD, 0xB4, 0x0}, {0x2000, 0x2002, 0x0}, {0x2001, 0x2003, 0x0},
    {0x2126, 0x3A9, 0x0}, {0x212A, 0x4B, 0x0}, {0x212B, 0xC5, 0x0}, {0x219A, 0x2190, 0x80000338},
    {0x219B, 0x2192, 0x80000338}, {0x21AE, 0x2194, 0x80000338}, {0x21CD, 0x21D0, 0x80000338},
    {0x21CE, 0x21D4, 0x80000338}, {0x21CF, 0x21D2, 0x80000338}, {0x2204, 0x2203, 0x80000338},
    {0x2209, 0x2208, 0x80000338}, {0x220C, 0x220B, 0x80000338}, {0x2224, 0x2223, 0x80000338},
    {0x2226, 0x2225, 0x80000338}, {0x2241, 0x223C, 0x80000338}, {0x2244, 0x2243, 0x80000338},
    {0x2247, 0x2245, 0x80000338}, {0x2249, 0x2248, 0x80000338}, {0x2260, 0x3D, 0x80000338},
    {0x2262, 0x2261, 0x80000338}, {0x226D, 0x224D, 0x80000338}, {0x226E, 0x3C, 0x80000338},
    {0x226F, 0x3E, 0x80000338}, {0x2270, 0x2264, 0x80000338}, {0x2271, 0x2265, 0x80000338},
    {0x2274, 0x2272, 0x80000338}, {0x2275, 0x2273, 0x80000338}, {0x2278, 0x2276, 0x80000338},
    {0x2279, 0x2277, 0x80000338}, {0x2280, 0x227A, 0x80000338}, {0x2281, 0x227B, 0x80000338},
    {0x2284, 0x2282, 0x80000338}, {0x2285, 0x2283, 0x80000338}, {0x2288, 0x2286, 0x80000338},
    {0x2289, 0x2287, 0x80000338}, {0x22AC, 0x22A2, 0x80000338}, {0x22AD, 0x22A8, 0x80000338},
    {0x22AE, 0x22A9, 0x80000338}, {0x22AF, 0x22AB, 0x80000338}, {0x22E0, 0x227C, 0x80000338},
    {0x22E1, 0x227D, 0x80000338}, {0x22E2, 0x2291, 0x80000338}, {0x22E3, 0x2292, 0x80000338},
    {0x22EA, 0x22B2, 0x80000338}, {0x22EB, 0x22B3, 0x80000338}, {0x22EC, 0x22B4, 0x80000338},
    {0x22ED, 0x22B5, 0x80000338}, {0x2329, 0x3008, 0x0}, {0x232A, 0x3009, 0x0}, {0x2ADC, 0x2ADD, 0x338},
    {0x304C, 0x304B, 0x80003099}, {0x304E, 0x304D, 0x80003099}, {0x3050, 0x304F, 0x80003099},
    {0x3052, 0x3051, 0x80003099}, {0x3054, 0x3053, 0x80003099}, {0x3056, 0x3055, 0x80003099},
    {0x3058, 0x3057, 0x80003099}, {0x305A, 0x3059, 0x80003099}, {0x305C, 0x305B, 0x80003099},
    {0x305E, 0x305D, 0x80003099}, {0x3060, 0x305F, 0x80003099}, {0x3062, 0x3061, 0x80003099},
    {0x3065, 0x3064, 0x80003099}, {0x3067, 0x3066, 0x80003099}, {0x3069, 0x3068, 0x80003099},
    {0x3070, 0x306F, 0x80003099}, {0x3071, 0x306F, 0x8000309A}, {0x3073, 0x3072, 0x80003099},
    {0x3074, 0x3072, 0x8000309A}, {0x3076, 0x3075, 0x80003099}, {0x3077, 0x3075, 0x8000309A},
    {0x3079, 0x3078, 0x80003099}, {0x307A, 0x3078, 0x8000309A}, {0x307C, 0x307B, 0x80003099},
    {0x307D, 0x307B, 0x8000309A}, {0x3094, 0x3046, 0x80003099}, {0x309E, 0x309D, 0x80003099},
    {0x30AC, 0x30AB, 0x80003099}, {0x30AE, 0x30AD, 0x80003099}, {0x30B0, 0x30AF, 0x80003099},
    {0x30B2, 0x30B1, 0x80003099}, {0x30B4, 0x30B3, 0x80003099}, {0x30B6, 0x30B5, 0x80003099},
    {0x30B8, 0x30B7, 0x80003099}, {0x30BA, 0x30B9, 0x80003099}, {0x30BC, 0x30BB, 0x80003099},
    {0x30BE, 0x30BD, 0x80003099}, {0x30C0, 0x30BF, 0x80003099}, {0x30C2, 0x30C1, 0x80003099},
    {0x30C5, 0x30C4, 0x80003099}, {0x30C7, 0x30C6, 0x80003099}, {0x30C9, 0x30C8, 0x80003099},
    {0x30D0, 0x30CF, 0x80003099}, {0x30D1, 0x30CF, 0x8000309A}, {0x30D3, 0x30D2, 0x80003099},
    {0x30D4, 0x30D2, 0x8000309A}, {0x30D6, 0x30D5, 0x80003099}, {0x30D7, 0x30D5, 0x8000309A},
    {0x30D9, 0x30D8, 0x80003099}, {0x30DA, 0x30D8, 0x8000309A}, {0x30DC, 0x30DB, 0x80003099},
    {0x30DD, 0x30DB, 0x8000309A}, {0x30F4, 0x30A6, 0x80003099}, {0x30F7, 0x30EF, 0x80003099},
    {0x30F8, 0x30F0, 0x80003099}, {0x30F9, 0x30F1, 0x80003099}, {0x30FA, 0x30F2, 0x80003099},
    {0x30FE, 0x30FD, 0x80003099}, {0xF900, 0x8C48, 0x0}, {0xF901, 0x66F4, 0x0}, {0xF902, 0x8ECA, 0x0},
    {0xF903, 0x8CC8, 0x0}, {0xF904, 0x6ED1, 0x0}, {0xF905, 0x4E32, 0x0}, {0xF906, 0x53E5, 0x0}, {0xF907, 0x9F9C, 0x0},
    {0xF908, 0x9F9C, 0x0}, {0xF909, 0x5951, 0x0}, {0xF90A, 0x91D1, 0x0}, {0xF90B, 0x5587, 0x0}, {0xF90C, 0x5948, 0x0},
    {0xF90D, 0x61F6, 0x0}, {0xF90E, 0x7669, 0x0}, {0xF90F, 0x7F85, 0x0}, {0xF910, 0x863F, 0x0}, {0xF911, 0x87BA, 0x0},
    {0xF912, 0x88F8, 0x0}, {0xF913, 0x908F, 0x0}, {0xF914, 0x6A02, 0x0}, {0xF915, 0x6D1B, 0x0}, {0xF916, 0x70D9, 0x0},
    {0xF917, 0x73DE, 0x0}, {0xF918, 0x843D, 0x0}, {0xF919, 0x916A, 0x0}, {0xF91A, 0x99F1, 0x0}, {0xF91B, 0x4E82, 0x0},
    {0xF91C, 0x5375, 0x0}, {0xF91D, 0x6B04, 0x0}, {0xF91E, 0x721B, 0x0}, {0xF91F, 0x862D, 0x0}, {0xF920, 0x9E1E, 0x0},
    {0xF921, 0x5D50, 0x0}, {0xF922, 0x6FEB, 0x0}, {0xF923, 0x85CD, 0x0}, {0xF924, 0x8964, 0x0}, {0xF925, 0x62C9, 0x0},
    {0xF926, 0x81D8, 0x0}, {0xF927, 0x881F, 0x0}, {0xF928, 0x5ECA, 0x0}, {0xF929, 0x6717, 0x0}, {0xF92A, 0x6D6A, 0x0},
    {0xF92B, 0x72FC, 0x0}, {0xF92C, 0x90CE, 0x0}, {0xF92D, 0x4F86, 0x0}, {0xF92E, 0x51B7, 0x0}, {0xF92F, 0x52DE, 0x0},
    {0xF930, 0x64C4, 0x0}, {0xF931, 0x6AD3, 0x0}, {0xF932, 0x7210, 0x0}, {0xF933, 0x76E7, 0x0}, {0xF934, 0x8001, 0x0},
    {0xF935, 0x8606, 0x0}, {0xF936, 0x865C, 0x0}, {0xF937, 0x8DEF, 0x0}, {0xF938, 0x9732, 0x0}, {0xF939, 0x9B6F, 0x0},
    {0xF93A, 0x9DFA, 0x0}, {0xF93B, 0x788C, 0x0}, {0xF93C, 0x797F, 0x0}, {0xF93D, 0x7DA0, 0x0}, {0xF93E, 0x83C9, 0x0},
    {0xF93F, 0x9304, 0x0}, {0xF940, 0x9E7F, 0x0}, {0xF941, 0x8AD6, 0x0}, {0xF942, 0x58DF, 0x0}, {0xF943, 0x5F04, 0x0},
    {0xF944, 0x7C60, 0x0}, {0xF945, 0x807E, 0x0}, {0xF946, 0x7262, 0x0}, {0xF947, 0x78CA, 0x0}, {0xF948, 0x8CC2, 0x0},
    {0xF949, 0x96F7, 0x0}, {0xF94A, 0x58D8, 0x0}, {0xF94B, 0x5C62, 0x0}, {0xF94C, 0x6A13, 0x0}, {0xF94D, 0x6DDA, 0x0},
    {0xF94E, 0x6F0F, 0x0}, {0xF94F, 0x7D2F, 0x0}, {0xF950, 0x7E37, 0x0}, {0xF951, 0x964B, 0x0}, {0xF952, 0x52D2, 0x0},
    {0xF953, 0x808B, 0x0}, {0xF954, 0x51DC, 0x0}, {0xF955, 0x51CC, 0x0}, {0xF956, 0x7A1C, 0x0}, {0xF957, 0x7DBE, 0x0},
    {0xF958, 0x83F1, 0x0}, {0xF959, 0x9675, 0x0}, {0xF95A, 0x8B80, 0x0}, {0xF95B, 0x62CF, 0x0}, {0xF95C, 0x6A02, 0x0},
    {0xF95D, 0x8AFE, 0x0}, {0xF95E, 0x4E39, 0x0}, {0xF95F, 0x5BE7, 0x0}, {0xF960, 0x6012, 0x0}, {0xF961, 0x7387, 0x0},
    {0xF962, 0x7570, 0x0}, {0xF963, 0x5317, 0x0}, {0xF964, 0x78FB, 0x0}, {0xF965, 0x4FBF, 0x0}, {0xF966, 0x5FA9, 0x0},
    {0xF967, 0x4E0D, 0x0}, {0xF968, 0x6CCC, 0x0}, {0xF969, 0x6578, 0x0}, {0xF96A, 0x7D22, 0x0}, {0xF96B, 0x53C3, 0x0},
    {0xF96C, 0x585E, 0x0}, {0xF96D, 0x7701, 0x0}, {0xF96E, 0x8449, 0x0}, {0xF96F, 0x8AAA, 0x0}, {0xF970, 0x6BBA, 0x0},
    {0xF971, 0x8FB0, 0x0}, {0xF972, 0x6C88, 0x0}, {0xF973, 0x62FE, 0x0}, {0xF974, 0x82E5, 0x0}, {0xF975, 0x63A0, 0x0},
    {0xF976, 0x7565, 0x0}, {0xF977, 0x4EAE, 0x0}, {0xF978, 0x5169, 0x0}, {0xF979, 0x51C9, 0x0}, {0xF97A, 0x6881, 0x0},
    {0xF97B, 0x7CE7, 0x0}, {0xF97C, 0x826F, 0x0}, {0xF97D, 0x8AD2, 0x0}, {0xF97E, 0x91CF, 0x0}, {0xF97F, 0x52F5, 0x0},
    {0xF980, 0x5442, 0x0}, {0xF981, 0x5973, 0x0}, {0xF982, 0x5EEC, 0x0}, {0xF983, 0x65C5, 0x0}, {0xF984, 0x6FFE, 0x0},
    {0xF985, 0x792A, 0x0}, {0xF986, 0x95AD, 0x0}, {0xF987, 0x9A6A, 0x0}, {0xF988, 0x9E97, 0x0}, {0xF989, 0x9ECE, 0x0},
    {0xF98A, 0x529B, 0x0}, {0xF98B, 0x66C6, 0x0}, {0xF98C, 0x6B77, 0x0}, {0xF98D, 0x8F62, 0x0}, {0xF98E, 0x5E74, 0x0},
    {0xF98F, 0x6190, 0x0}, {0xF990, 0x6200, 0x0}, {0xF991, 0x649A, 0x0}, {0xF992, 0x6F23, 0x0}, {0xF993, 0x7149, 0x0},
    {0xF994, 0x7489, 0x0}, {0xF995, 0x79CA, 0x0}, {0xF996, 0x7DF4, 0x0}, {0xF997, 0x806F, 0x0}, {0xF998, 0x8F26, 0x0},
    {0xF999, 0x84EE, 0x0}, {0xF99A, 0x9023, 0x0}, {0xF99B, 0x934A, 0x0}, {0xF99C, 0x5217, 0x0}, {0xF99D, 0x52A3, 0x0},
    {0xF99E, 0x54BD, 0x0}, {0xF99F, 0x70C8, 0x0}, {0xF9A0, 0x88C2, 0x0}, {0xF9A1, 0x8AAA, 0x0}, {0xF9A2, 0x5EC9, 0x0},
    {0xF9A3, 0x5FF5, 0x0}, {0xF9A4, 0x637B, 0x0}, {0xF9A5, 0x6BAE, 0x0}, {0xF9A6, 0x7C3E, 0x0}, {0xF9A7, 0x7375, 0x0},
    {0xF9A8, 0x4EE4, 0x0}, {0xF9A9, 0x56F9, 0x0}, {0xF9AA, 0x5BE7, 0x0}, {0xF9AB, 0x5DBA, 0x0}, {0xF9AC, 0x601C, 0x0},
    {0xF9AD, 0x73B2, 0x0}, {0xF9AE, 0x7469, 0x0}, {0xF9AF, 0x7F9A, 0x0}, {0xF9B0, 0x8046, 0x0}, {0xF9B1, 0x9234, 0x0},
    {0xF9B2, 0x96F6, 0x0}, {0xF9B3, 0x9748, 0x0}, {0xF9B4, 0x9818, 0x0}, {0xF9B5, 0x4F8B, 0x0}, {0xF9B6, 0x79AE, 0x0},
    {0xF9B7, 0x91B4, 0x0}, {0xF9B8, 0x96B8, 0x0}, {0xF9B9, 0x60E1, 0x0}, {0xF9BA, 0x4E86, 0x0}, {0xF9BB, 0x50DA, 0x0},
    {0xF9BC, 0x5BEE, 0x0}, {0xF9BD, 0x5C3F, 0x0}, {0xF9BE, 0x6599, 0x0}, {0xF9BF, 0x6A02, 0x0}, {0xF9C0, 0x71CE, 0x0},
    {0xF9C1, 0x7642, 0x0}, {0xF9C2, 0x84FC, 0x0}, {0xF9C3, 0x907C, 0x0}, {0xF9C4, 0x9F8D, 0x0}, {0xF9C5, 0x6688, 0x0},
    {0xF9C6, 0x962E, 0x0}, {0xF9C7, 0x5289, 0x0}, {0xF9C8, 0x677B, 0x0}, {0xF9C9, 0x67F3, 0x0}, {0xF9CA, 0x6D41, 0x0},
    {0xF9CB, 0x6E9C, 0x0}, {0xF9CC, 0x7409, 0x0}, {0xF9CD, 0x7559, 0x0}, {0xF9CE, 0x786B, 0x0}, {0xF9CF, 0x7D10, 0x0},
    {0xF9D0, 0x985E, 0x0}, {0xF9D1, 0x516D, 0x0}, {0xF9D2, 0x622E, 0x0}, {0xF9D3, 0x9678, 0x0}, {0xF9D4, 0x502B, 0x0},
    {0xF9D5, 0x5D19, 0x0}, {0xF9D6, 0x6DEA, 0x0}, {0xF9D7, 0x8F2A, 0x0}, {0xF9D8, 0x5F8B, 0x0}, {0xF9D9, 0x6144, 0x0},
    {0xF9DA, 0x6817, 0x0}, {0xF9DB, 0x7387, 0x0}, {0xF9DC, 0x9686, 0x0}, {0xF9DD, 0x5229, 0x0}, {0xF9DE, 0x540F, 0x0},
    {0xF9DF, 0x5C65, 0x0}, {0xF9E0, 0x6613, 0x0}, {0xF9E1, 0x674E, 0x0}, {0xF9E2, 0x68A8, 0x0}, {0xF9E3, 0x6CE5, 0x0},
    {0xF9E4, 0x7406, 0x0}, {0xF9E5, 0x75E2, 0x0}, {0xF9E6, 0x7F79, 0x0}, {0xF9E7, 0x88CF, 0x0}, {0xF9E8, 0x88E1, 0x0},
    {0xF9E9, 0x91CC, 0x0}, {0xF9EA, 0x96E2, 0x0}, {0xF9EB, 0x533F, 0x0}, {0xF9EC, 0x6EBA, 0x0}, {0xF9ED, 0x541D, 0x0},
    {0xF9EE, 0x71D0, 0x0}, {0xF9EF, 0x7498, 0x0}, {0xF9F0, 0x85FA, 0x0}, {0xF9F1, 0x96A3, 0x0}, {0xF9F2, 0x9C57, 0x0},
    {0xF9F3, 0x9E9F, 0x0}, {0xF9F4, 0x6797, 0x0}, {0xF9F5, 0x6DCB, 0x0}, {0xF9F6, 0x81E8, 0x0}, {0xF9F7, 0x7ACB, 0x0},
    {0xF9F8, 0x7B20, 0x0}, {0xF9F9, 0x7C92, 0x0}, {0xF9FA, 0x72C0, 0x0}, {0xF9FB, 0x7099, 0x0}, {0xF9FC, 0x8B58, 0x0},
    {0xF9FD, 0x4EC0, 0x0}, {0xF9FE, 0x8336, 0x0}, {0xF9FF, 0x523A, 0x0}, {0xFA00, 0x5207, 0x0}, {0xFA01, 0x5EA6, 0x0},
    {0xFA02, 0x62D3, 0x0}, {0xFA03, 0x7CD6, 0x0}, {0xFA04, 0x5B85, 0x0}, {0xFA05, 0x6D1E, 0x0}, {0xFA06, 0x66B4, 0x0},
    {0xFA07, 0x8F3B, 0x0}, {0xFA08, 0x884C, 0x0}, {0xFA09, 0x964D, 0x0}, {0xFA0A, 0x898B, 0x0}, {0xFA0B, 0x5ED3, 0x0},
    {0xFA0C, 0x5140, 0x0}, {0xFA0D, 0x55C0, 0x0}, {0xFA10, 0x585A, 0x0}, {0xFA12, 0x6674, 0x0}, {0xFA15, 0x51DE, 0x0},
    {0xFA16, 0x732A, 0x0}, {0xFA17, 0x76CA, 0x0}, {0xFA18, 0x793C, 0x0}, {0xFA19, 0x795E, 0x0}, {0xFA1A, 0x7965, 0x0},
    {0xFA1B, 0x798F, 0x0}, {0xFA1C, 0x9756, 0x0}, {0xFA1D, 0x7CBE, 0x0}, {0xFA1E, 0x7FBD, 0x0}, {0xFA20, 0x8612, 0x0},
    {0xFA22, 0x8AF8, 0x0}, {0xFA25, 0x9038, 0x0}, {0xFA26, 0x90FD, 0x0}, {0xFA2A, 0x98EF, 0x0}, {0xFA2B, 0x98FC, 0x0},
    {0xFA2C, 0x9928, 0x0}, {0xFA2D, 0x9DB4, 0x0}, {0xFA2E, 0x90DE, 0x0}, {0xFA2F, 0x96B7, 0x0}, {0xFA30, 0x4FAE, 0x0},
    {0xFA31, 0x50E7, 0x0}, {0xFA32, 0x514D, 0x0}, {0xFA33, 0x52C9, 0x0}, {0xFA34, 0x52E4, 0x0}, {0xFA35, 0x5351, 0x0},
    {0xFA36, 0x559D, 0x0}, {0xFA37, 0x5606, 0x0}, {0xFA38, 0x5668, 0x0}, {0xFA39, 0x5840, 0x0}, {0xFA3A, 0x58A8, 0x0},
    {0xFA3B, 0x5C64, 0x0}, {0xFA3C, 0x5C6E, 0x0}, {0xFA3D, 0x6094, 0x0}, {0xFA3E, 0x6168, 0x0}, {0xFA3F, 0x618E, 0x0},
    {0xFA40, 0x61F2, 0x0}, {0xFA41, 0x654F, 0x0}, {0xFA42, 0x65E2, 0x0}, {0xFA43, 0x6691, 0x0}, {0xFA44, 0x6885, 0x0},
    {0xFA45, 0x6D77, 0x0}, {0xFA46, 0x6E1A, 0x0}, {0xFA47, 0x6F22, 0x0}, {0xFA48, 0x716E, 0x0}, {0xFA49, 0x722B, 0x0},
    {0xFA4A, 0x7422, 0x0}, {0xFA4B, 0x7891, 0x0}, {0xFA4C, 0x793E, 0x0}, {0xFA4D, 0x7949, 0x0}, {0xFA4E, 0x7948, 0x0},
    {0xFA4F, 0x7950, 0x0}, {0xFA50, 0x7956, 0x0}, {0xFA51, 0x795D, 0x0}, {0xFA52, 0x798D, 0x0}, {0xFA53, 0x798E, 0x0},
    {0xFA54, 0x7A40, 0x0}, {0xFA55, 0x7A81, 0x0}, {0xFA56, 0x7BC0, 0x0}, {0xFA57, 0x7DF4, 0x0}, {0xFA58, 0x7E09, 0x0},
    {0xFA59, 0x7E41, 0x0}, {0xFA5A, 0x7F72, 0x0}, {0xFA5B, 0x8005, 0x0}, {0xFA5C, 0x81ED, 0x0}, {0xFA5D, 0x8279, 0x0},
    {0xFA5E, 0x8279, 0x0}, {0xFA5F, 0x8457, 0x0}, {0xFA60, 0x8910, 0x0}, {0xFA61, 0x8996, 0x0}, {0xFA62, 0x8B01, 0x0},
    {0xFA63, 0x8B39, 0x0}, {0xFA64, 0x8CD3, 0x0}, {0xFA65, 0x8D08, 0x0}, {0xFA66, 0x8FB6, 0x0}, {0xFA67, 0x9038, 0x0},
    {0xFA68, 0x96E3, 0x0}, {0xFA69, 0x97FF, 0x0}, {0xFA6A, 0x983B, 0x0}, {0xFA6B, 0x6075, 0x0},
    {0xFA6C, 0x242EE, 0x0}, {0xFA6D, 0x8218, 0x0}, {0xFA70, 0x4E26, 0x0}, {0xFA71, 0x51B5, 0x0},
    {0xFA72, 0x5168, 0x0}, {0xFA73, 0x4F80, 0x0}, {0xFA74, 0x5145, 0x0}, {0xFA75, 0x5180, 0x0}, {0xFA76, 0x52C7, 0x0},
    {0xFA77, 0x52FA, 0x0}, {0xFA78, 0x559D, 0x0}, {0xFA79, 0x5555, 0x0}, {0xFA7A, 0x5599, 0x0}, {0xFA7B, 0x55E2, 0x0},
    {0xFA7C, 0x585A, 0x0}, {0xFA7D, 0x58B3, 0x0}, {0xFA7E, 0x5944, 0x0}, {0xFA7F, 0x5954, 0x0}, {0xFA80, 0x5A62, 0x0},
    {0xFA81, 0x5B28, 0x0}, {0xFA82, 0x5ED2, 0x0}, {0xFA83, 0x5ED9, 0x0}, {0xFA84, 0x5F69, 0x0}, {0xFA85, 0x5FAD, 0x0},
    {0xFA86, 0x60D8, 0x0}, {0xFA87, 0x614E, 0x0}, {0xFA88, 0x6108, 0x0}, {0xFA89, 0x618E, 0x0}, {0xFA8A, 0x6160, 0x0},
    {0xFA8B, 0x61F2, 0x0}, {0xFA8C, 0x6234, 0x0}, {0xFA8D, 0x63C4, 0x0}, {0xFA8E, 0x641C, 0x0}, {0xFA8F, 0x6452, 0x0},
    {0xFA90, 0x6556, 0x0}, {0xFA91, 0x6674, 0x0}, {0xFA92, 0x6717, 0x0}, {0xFA93, 0x671B, 0x0}, {0xFA94, 0x6756, 0x0},
    {0xFA95, 0x6B79, 0x0}, {0xFA96, 0x6BBA, 0x0}, {0xFA97, 0x6D41, 0x0}, {0xFA98, 0x6EDB, 0x0}, {0xFA99, 0x6ECB, 0x0},
    {0xFA9A, 0x6F22, 0x0}, {0xFA9B, 0x701E, 0x0}, {0xFA9C, 0x716E, 0x0}, {0xFA9D, 0x77A7, 0x0}, {0xFA9E, 0x7235, 0x0},
    {0xFA9F, 0x72AF, 0x0}, {0xFAA0, 0x732A, 0x0}, {0xFAA1, 0x7471, 0x0}, {0xFAA2, 0x7506, 0x0}, {0xFAA3, 0x753B, 0x0},
    {0xFAA4, 0x761D, 0x0}, {0xFAA5, 0x761F, 0x0}, {0xFAA6, 0x76CA, 0x0}, {0xFAA7, 0x76DB, 0x0}, {0xFAA8, 0x76F4, 0x0},
    {0xFAA9, 0x774A, 0x0}, {0xFAAA, 0x7740, 0x0}, {0xFAAB, 0x78CC, 0x0}, {0xFAAC, 0x7AB1, 0x0}, {0xFAAD, 0x7BC0, 0x0},
    {0xFAAE, 0x7C7B, 0x0}, {0xFAAF, 0x7D5B, 0x0}, {0xFAB0, 0x7DF4, 0x0}, {0xFAB1, 0x7F3E, 0x0}, {0xFAB2, 0x8005, 0x0},
    {0xFAB3, 0x8352, 0x0}, {0xFAB4, 0x83EF, 0x0}, {0xFAB5, 0x8779, 0x0}, {0xFAB6, 0x8941, 0x0}, {0xFAB7, 0x8986, 0x0},
    {0xFAB8, 0x8996, 0x0}, {0xFAB9, 0x8ABF, 0x0}, {0xFABA, 0x8AF8, 0x0}, {0xFABB, 0x8ACB, 0x0}, {0xFABC, 0x8B01, 0x0},
    {0xFABD, 0x8AFE, 0x0}, {0xFABE, 0x8AED, 0x0}, {0xFABF, 0x8B39, 0x0}, {0xFAC0, 0x8B8A, 0x0}, {0xFAC1, 0x8D08, 0x0},
    {0xFAC2, 0x8F38, 0x0}, {0xFAC3, 0x9072, 0x0}, {0xFAC4, 0x9199, 0x0}, {0xFAC5, 0x9276, 0x0}, {0xFAC6, 0x967C, 0x0},
    {0xFAC7, 0x96E3, 0x0}, {0xFAC8, 0x9756, 0x0}, {0xFAC9, 0x97DB, 0x0}, {0xFACA, 0x97FF, 0x0}, {0xFACB, 0x980B, 0x0},
    {0xFACC, 0x983B, 0x0}, {0xFACD, 0x9B12, 0x0}, {0xFACE, 0x9F9C, 0x0}, {0xFACF, 0x2284A, 0x0},
    {0xFAD0, 0x22844, 0x0}, {0xFAD1, 0x233D5, 0x0}, {0xFAD2, 0x3B9D, 0x0}, {0xFAD3, 0x4018, 0x0},
    {0xFAD4, 0x4039, 0x0}, {0xFAD5, 0x25249, 0x0}, {0xFAD6, 0x25CD0, 0x0}, {0xFAD7, 0x27ED3, 0x0},
    {0xFAD8, 0x9F43, 0x0}, {0xFAD9, 0x9F8E, 0x0}, {0xFB1D, 0x5D9, 0x5B4}, {0xFB1F, 0x5F2, 0x5B7},
    {0xFB2A, 0x5E9, 0x5C1}, {0xFB2B, 0x5E9, 0x5C2}, {0xFB2C, 0xFB49, 0x5C1}, {0xFB2D, 0xFB49, 0x5C2},
    {0xFB2E, 0x5D0, 0x5B7}, {0xFB2F, 0x5D0, 0x5B8}, {0xFB30, 0x5D0, 0x5BC}, {0xFB31, 0x5D1, 0x5BC},
    {0xFB32, 0x5D2, 0x5BC}, {0xFB33, 0x5D3, 0x5BC}, {0xFB34, 0x5D4, 0x5BC}, {0xFB35, 0x5D5, 0x5BC},
    {0xFB36, 0x5D6, 0x5BC}, {0xFB38, 0x5D8, 0x5BC}, {0xFB39, 0x5D9, 0x5BC}, {0xFB3A, 0x5DA, 0x5BC},
    {0xFB3B, 0x5DB, 0x5BC}, {0xFB3C, 0x5DC, 0x5BC}, {0xFB3E, 0x5DE, 0x5BC}, {0xFB40, 0x5E0, 0x5BC},
    {0xFB41, 0x5E1, 0x5BC}, {0xFB43, 0x5E3, 0x5BC}, {0xFB44, 0x5E4, 0x5BC}, {0xFB46, 0x5E6, 0x5BC},
    {0xFB47, 0x5E7, 0x5BC}, {0xFB48, 0x5E8, 0x5BC}, {0xFB49, 0x5E9, 0x5BC}, {0xFB4A, 0x5EA, 0x5BC},
    {0xFB4B, 0x5D5, 0x5B9}, {0xFB4C, 0x5D1, 0x5BF}, {0xFB4D, 0x5DB, 0x5BF}, {0xFB4E, 0x5E4, 0x5BF},
    {0x105C9, 0x105D2, 0x80000307}, {0x105E4, 0x105DA, 0x80000307}, {0x1109A, 0x11099, 0x800110BA},
    {0x1109C, 0x1109B, 0x800110BA}, {0x110AB, 0x110A5, 0x800110BA}, {0x1112E, 0x11131, 0x80011127},
    {0x1112F, 0x11132, 0x80011127}, {0x1134B, 0x11347, 0x8001133E}, {0x1134C, 0x11347, 0x80011357},
    {0x11383, 0x11382, 0x800113C9}, {0x11385, 0x11384, 0x800113BB}, {0x1138E, 0x1138B, 0x800113C2},
    {0x11391, 0x11390, 0x800113C9}, {0x113C5, 0x113C2, 0x800113C2}, {0x113C7, 0x113C2, 0x800113B8},
    {0x113C8, 0x113C2, 0x800113C9}, {0x114BB, 0x114B9, 0x800114BA}, {0x114BC, 0x114B9, 0x800114B0},
    {0x114BE, 0x114B9, 0x800114BD}, {0x115BA, 0x115B8, 0x800115AF}, {0x115BB, 0x115B9, 0x800115AF},
    {0x11938, 0x11935, 0x80011930}, {0x16121, 0x1611E, 0x8001611E}, {0x16122, 0x1611E, 0x80016129},
    {0x16123, 0x1611E, 0x8001611F}, {0x16124, 0x16129, 0x8001611F}, {0x16125, 0x1611E, 0x80016120},
    {0x16126, 0x16121, 0x8001611F}, {0x16127, 0x16122, 0x8001611F}, {0x16128, 0x16121, 0x80016120},
    {0x16D68, 0x16D67, 0x80016D67}, {0x16D69, 0x16D63, 0x80016D67}, {0x16D6A, 0x16D69, 0x80016D67},
    {0x1D15E, 0x1D157, 0x1D165}, {0x1D15F, 0x1D158, 0x1D165}, {0x1D160, 0x1D15F, 0x1D16E},
    {0x1D161, 0x1D15F, 0x1D16F}, {0x1D162, 0x1D15F, 0x1D170}, {0x1D163, 0x1D15F, 0x1D171},
    {0x1D164, 0x1D15F, 0x1D172}, {0x1D1BB, 0x1D1B9, 0x1D165}, {0x1D1BC, 0x1D1BA, 0x1D165},
    {0x1D1BD, 0x1D1BB, 0x1D16E}, {0x1D1BE, 0x1D1BC, 0x1D16E}, {0x1D1BF, 0x1D1BB, 0x1D16F},
    {0x1D1C0, 0x1D1BC, 0x1D16F}, {0x2F800, 0x4E3D, 0x0}, {0x2F801, 0x4E38, 0x0}, {0x2F802, 0x4E41, 0x0},
    {0x2F803, 0x20122, 0x0}, {0x2F804, 0x4F60, 0x0}, {0x2F805, 0x4FAE, 0x0}, {0x2F806, 0x4FBB, 0x0},
    {0x2F807, 0x5002, 0x0}, {0x2F808, 0x507A, 0x0}, {0x2F809, 0x5099, 0x0}, {0x2F80A, 0x50E7, 0x0},
    {0x2F80B, 0x50CF, 0x0}, {0x2F80C, 0x349E, 0x0}, {0x2F80D, 0x2063A, 0x0}, {0x2F80E, 0x514D, 0x0},
    {0x2F80F, 0x5154, 0x0}, {0x2F810, 0x5164, 0x0}, {0x2F811, 0x5177, 0x0}, {0x2F812, 0x2051C, 0x0},
    {0x2F813, 0x34B9, 0x0}, {0x2F814, 0x5167, 0x0}, {0x2F815, 0x518D, 0x0}, {0x2F816, 0x2054B, 0x0},
    {0x2F817, 0x5197, 0x0}, {0x2F818, 0x51A4, 0x0}, {0x2F819, 0x4ECC, 0x0}, {0x2F81A, 0x51AC, 0x0},
    {0x2F81B, 0x51B5, 0x0}, {0x2F81C, 0x291DF, 0x0}, {0x2F81D, 0x51F5, 0x0}, {0x2F81E, 0x5203, 0x0},
    {0x2F81F, 0x34DF, 0x0}, {0x2F820, 0x523B, 0x0}, {0x2F821, 0x5246, 0x0}, {0x2F822, 0x5272, 0x0},
    {0x2F823, 0x5277, 0x0}, {0x2F824, 0x3515, 0x0}, {0x2F825, 0x52C7, 0x0}, {0x2F826, 0x52C9, 0x0},
    {0x2F827, 0x52E4, 0x0}, {0x2F828, 0x52FA, 0x0}, {0x2F829, 0x5305, 0x0}, {0x2F82A, 0x5306, 0x0},
    {0x2F82B, 0x5317, 0x0}, {0x2F82C, 0x5349, 0x0}, {0x2F82D, 0x5351, 0x0}, {0x2F82E, 0x535A, 0x0},
    {0x2F82F, 0x5373, 0x0}, {0x2F830, 0x537D, 0x0}, {0x2F831, 0x537F, 0x0}, {0x2F832, 0x537F, 0x0},
    {0x2F833, 0x537F, 0x0}, {0x2F834, 0x20A2C, 0x0}, {0x2F835, 0x7070, 0x0}, {0x2F836, 0x53CA, 0x0},
    {0x2F837, 0x53DF, 0x0}, {0x2F838, 0x20B63, 0x0}, {0x2F839, 0x53EB, 0x0}, {0x2F83A, 0x53F1, 0x0},
    {0x2F83B, 0x5406, 0x0}, {0x2F83C, 0x549E, 0x0}, {0x2F83D, 0x5438, 0x0}, {0x2F83E, 0x5448, 0x0},
    {0x2F83F, 0x5468, 0x0}, {0x2F840, 0x54A2, 0x0}, {0x2F841, 0x54F6, 0x0}, {0x2F842, 0x5510, 0x0},
    {0x2F843, 0x5553, 0x0}, {0x2F844, 0x5563, 0x0}, {0x2F845, 0x5584, 0x0}, {0x2F846, 0x5584, 0x0},
    {0x2F847, 0x5599, 0x0}, {0x2F848, 0x55AB, 0x0}, {0x2F849, 0x55B3, 0x0}, {0x2F84A, 0x55C2, 0x0},
    {0x2F84B, 0x5716, 0x0}, {0x2F84C, 0x5606, 0x0}, {0x2F84D, 0x5717, 0x0}, {0x2F84E, 0x5651, 0x0},
    {0x2F84F, 0x5674, 0x0}, {0x2F850, 0x5207, 0x0}, {0x2F851, 0x58EE, 0x0}, {0x2F852, 0x57CE, 0x0},
    {0x2F853, 0x57F4, 0x0}, {0x2F854, 0x580D, 0x0}, {0x2F855, 0x578B, 0x0}, {0x2F856, 0x5832, 0x0},
    {0x2F857, 0x5831, 0x0}, {0x2F858, 0x58AC, 0x0}, {0x2F859, 0x214E4, 0x0}, {0x2F85A, 0x58F2, 0x0},
    {0x2F85B, 0x58F7, 0x0}, {0x2F85C, 0x5906, 0x0}, {0x2F85D, 0x591A, 0x0}, {0x2F85E, 0x5922, 0x0},
    {0x2F85F, 0x5962, 0x0}, {0x2F860, 0x216A8, 0x0}, {0x2F861, 0x216EA, 0x0}, {0x2F862, 0x59EC, 0x0},
    {0x2F863, 0x5A1B, 0x0}, {0x2F864, 0x5A27, 0x0}, {0x2F865, 0x59D8, 0x0}, {0x2F866, 0x5A66, 0x0},
    {0x2F867, 0x36EE, 0x0}, {0x2F868, 0x36FC, 0x0}, {0x2F869, 0x5B08, 0x0}, {0x2F86A, 0x5B3E, 0x0},
    {0x2F86B, 0x5B3E, 0x0}, {0x2F86C, 0x219C8, 0x0}, {0x2F86D, 0x5BC3, 0x0}, {0x2F86E, 0x5BD8, 0x0},
    {0x2F86F, 0x5BE7, 0x0}, {0x2F870, 0x5BF3, 0x0}, {0x2F871, 0x21B18, 0x0}, {0x2F872, 0x5BFF, 0x0},
    {0x2F873, 0x5C06, 0x0}, {0x2F874, 0x5F53, 0x0}, {0x2F875, 0x5C22, 0x0}, {0x2F876, 0x3781, 0x0},
    {0x2F877, 0x5C60, 0x0}, {0x2F878, 0x5C6E, 0x0}, {0x2F879, 0x5CC0, 0x0}, {0x2F87A, 0x5C8D, 0x0},
    {0x2F87B, 0x21DE4, 0x0}, {0x2F87C, 0x5D43, 0x0}, {0x2F87D, 0x21DE6, 0x0}, {0x2F87E, 0x5D6E, 0x0},
    {0x2F87F, 0x5D6B, 0x0}, {0x2F880, 0x5D7C, 0x0}, {0x2F881, 0x5DE1, 0x0}, {0x2F882, 0x5DE2, 0x0},
    {0x2F883, 0x382F, 0x0}, {0x2F884, 0x5DFD, 0x0}, {0x2F885, 0x5E28, 0x0}, {0x2F886, 0x5E3D, 0x0},
    {0x2F887, 0x5E69, 0x0}, {0x2F888, 0x3862, 0x0}, {0x2F889, 0x22183, 0x0}, {0x2F88A, 0x387C, 0x0},
    {0x2F88B, 0x5EB0, 0x0}, {0x2F88C, 0x5EB3, 0x0}, {0x2F88D, 0x5EB6, 0x0}, {0x2F88E, 0x5ECA, 0x0},
    {0x2F88F, 0x2A392, 0x0}, {0x2F890, 0x5EFE, 0x0}, {0x2F891, 0x22331, 0x0}, {0x2F892, 0x22331, 0x0},
    {0x2F893, 0x8201, 0x0}, {0x2F894, 0x5F22, 0x0}, {0x2F895, 0x5F22, 0x0}, {0x2F896, 0x38C7, 0x0},
    {0x2F897, 0x232B8, 0x0}, {0x2F898, 0x261DA, 0x0}, {0x2F899, 0x5F62, 0x0}, {0x2F89A, 0x5F6B, 0x0},
    {0x2F89B, 0x38E3, 0x0}, {0x2F89C, 0x5F9A, 0x0}, {0x2F89D, 0x5FCD, 0x0}, {0x2F89E, 0x5FD7, 0x0},
    {0x2F89F, 0x5FF9, 0x0}, {0x2F8A0, 0x6081, 0x0}, {0x2F8A1, 0x393A, 0x0}, {0x2F8A2, 0x391C, 0x0},
    {0x2F8A3, 0x6094, 0x0}, {0x2F8A4, 0x226D4, 0x0}, {0x2F8A5, 0x60C7, 0x0}, {0x2F8A6, 0x6148, 0x0},
    {0x2F8A7, 0x614C, 0x0}, {0x2F8A8, 0x614E, 0x0}, {0x2F8A9, 0x614C, 0x0}, {0x2F8AA, 0x617A, 0x0},
    {0x2F8AB, 0x618E, 0x0}, {0x2F8AC, 0x61B2, 0x0}, {0x2F8AD, 0x61A4, 0x0}, {0x2F8AE, 0x61AF, 0x0},
    {0x2F8AF, 0x61DE, 0x0}, {0x2F8B0, 0x61F2, 0x0}, {0x2F8B1, 0x61F6, 0x0}, {0x2F8B2, 0x6210, 0x0},
    {0x2F8B3, 0x621B, 0x0}, {0x2F8B4, 0x625D, 0x0}, {0x2F8B5, 0x62B1, 0x0}, {0x2F8B6, 0x62D4, 0x0},
    {0x2F8B7, 0x6350, 0x0}, {0x2F8B8, 0x22B0C, 0x0}, {0x2F8B9, 0x633D, 0x0}, {0x2F8BA, 0x62FC, 0x0},
    {0x2F8BB, 0x6368, 0x0}, {0x2F8BC, 0x6383, 0x0}, {0x2F8BD, 0x63E4, 0x0}, {0x2F8BE, 0x22BF1, 0x0},
    {0x2F8BF, 0x6422, 0x0}, {0x2F8C0, 0x63C5, 0x0}, {0x2F8C1, 0x63A9, 0x0}, {0x2F8C2, 0x3A2E, 0x0},
    {0x2F8C3, 0x6469, 0x0}, {0x2F8C4, 0x647E, 0x0}, {0x2F8C5, 0x649D, 0x0}, {0x2F8C6, 0x6477, 0x0},
    {0x2F8C7, 0x3A6C, 0x0}, {0x2F8C8, 0x654F, 0x0}, {0x2F8C9, 0x656C, 0x0}, {0x2F8CA, 0x2300A, 0x0},
    {0x2F8CB, 0x65E3, 0x0}, {0x2F8CC, 0x66F8, 0x0}, {0x2F8CD, 0x6649, 0x0}, {0x2F8CE, 0x3B19, 0x0},
    {0x2F8CF, 0x6691, 0x0}, {0x2F8D0, 0x3B08, 0x0}, {0x2F8D1, 0x3AE4, 0x0}, {0x2F8D2, 0x5192, 0x0},
    {0x2F8D3, 0x5195, 0x0}, {0x2F8D4, 0x6700, 0x0}, {0x2F8D5, 0x669C, 0x0}, {0x2F8D6, 0x80AD, 0x0},
    {0x2F8D7, 0x43D9, 0x0}, {0x2F8D8, 0x6717, 0x0}, {0x2F8D9, 0x671B, 0x0}, {0x2F8DA, 0x6721, 0x0},
    {0x2F8DB, 0x675E, 0x0}, {0x2F8DC, 0x6753, 0x0}, {0x2F8DD, 0x233C3, 0x0}, {0x2F8DE, 0x3B49, 0x0},
    {0x2F8DF, 0x67FA, 0x0}, {0x2F8E0, 0x6785, 0x0}, {0x2F8E1, 0x6852, 0x0}, {0x2F8E2, 0x6885, 0x0},
    {0x2F8E3, 0x2346D, 0x0}, {0x2F8E4, 0x688E, 0x0}, {0x2F8E5, 0x681F, 0x0}, {0x2F8E6, 0x6914, 0x0},
    {0x2F8E7, 0x3B9D, 0x0}, {0x2F8E8, 0x6942, 0x0}, {0x2F8E9, 0x69A3, 0x0}, {0x2F8EA, 0x69EA, 0x0},
    {0x2F8EB, 0x6AA8, 0x0}, {0x2F8EC, 0x236A3, 0x0}, {0x2F8ED, 0x6ADB, 0x0}, {0x2F8EE, 0x3C18, 0x0},
    {0x2F8EF, 0x6B21, 0x0}, {0x2F8F0, 0x238A7, 0x0}, {0x2F8F1, 0x6B54, 0x0}, {0x2F8F2, 0x3C4E, 0x0},
    {0x2F8F3, 0x6B72, 0x0}, {0x2F8F4, 0x6B9F, 0x0}, {0x2F8F5, 0x6BBA, 0x0}, {0x2F8F6, 0x6BBB, 0x0},
    {0x2F8F7, 0x23A8D, 0x0}, {0x2F8F8, 0x21D0B, 0x0}, {0x2F8F9, 0x23AFA, 0x0}, {0x2F8FA, 0x6C4E, 0x0},
    {0x2F8FB, 0x23CBC, 0x0}, {0x2F8FC, 0x6CBF, 0x0}, {0x2F8FD, 0x6CCD, 0x0}, {0x2F8FE, 0x6C67, 0x0},
    {0x2F8FF, 0x6D16, 0x0}, {0x2F900, 0x6D3E, 0x0}, {0x2F901, 0x6D77, 0x0}, {0x2F902, 0x6D41, 0x0},
    {0x2F903, 0x6D69, 0x0}, {0x2F904, 0x6D78, 0x0}, {0x2F905, 0x6D85, 0x0}, {0x2F906, 0x23D1E, 0x0},
    {0x2F907, 0x6D34, 0x0}, {0x2F908, 0x6E2F, 0x0}, {0x2F909, 0x6E6E, 0x0}, {0x2F90A, 0x3D33, 0x0},
    {0x2F90B, 0x6ECB, 0x0}, {0x2F90C, 0x6EC7, 0x0}, {0x2F90D, 0x23ED1, 0x0}, {0x2F90E, 0x6DF9, 0x0},
    {0x2F90F, 0x6F6E, 0x0}, {0x2F910, 0x23F5E, 0x0}, {0x2F911, 0x23F8E, 0x0}, {0x2F912, 0x6FC6, 0x0},
    {0x2F913, 0x7039, 0x0}, {0x2F914, 0x701E, 0x0}, {0x2F915, 0x701B, 0x0}, {0x2F916, 0x3D96, 0x0},
    {0x2F917, 0x704A, 0x0}, {0x2F918, 0x707D, 0x0}, {0x2F919, 0x7077, 0x0}, {0x2F91A, 0x70AD, 0x0},
    {0x2F91B, 0x20525, 0x0}, {0x2F91C, 0x7145, 0x0}, {0x2F91D, 0x24263, 0x0}, {0x2F91E, 0x719C, 0x0},
    {0x2F91F, 0x243AB, 0x0}, {0x2F920, 0x7228, 0x0}, {0x2F921, 0x7235, 0x0}, {0x2F922, 0x7250, 0x0},
    {0x2F923, 0x24608, 0x0}, {0x2F924, 0x7280, 0x0}, {0x2F925, 0x7295, 0x0}, {0x2F926, 0x24735, 0x0},
    {0x2F927, 0x24814, 0x0}, {0x2F928, 0x737A, 0x0}, {0x2F929, 0x738B, 0x0}, {0x2F92A, 0x3EAC, 0x0},
    {0x2F92B, 0x73A5, 0x0}, {0x2F92C, 0x3EB8, 0x0}, {0x2F92D, 0x3EB8, 0x0}, {0x2F92E, 0x7447, 0x0},
    {0x2F92F, 0x745C, 0x0}, {0x2F930, 0x7471, 0x0}, {0x2F931, 0x7485, 0x0}, {0x2F932, 0x74CA, 0x0},
    {0x2F933, 0x3F1B, 0x0}, {0x2F934, 0x7524, 0x0}, {0x2F935, 0x24C36, 0x0}, {0x2F936, 0x753E, 0x0},
    {0x2F937, 0x24C92, 0x0}, {0x2F938, 0x7570, 0x0}, {0x2F939, 0x2219F, 0x0}, {0x2F93A, 0x7610, 0x0},
    {0x2F93B, 0x24FA1, 0x0}, {0x2F93C, 0x24FB8, 0x0}, {0x2F93D, 0x25044, 0x0}, {0x2F93E, 0x3FFC, 0x0},
    {0x2F93F, 0x4008, 0x0}, {0x2F940, 0x76F4, 0x0}, {0x2F941, 0x250F3, 0x0}, {0x2F942, 0x250F2, 0x0},
    {0x2F943, 0x25119, 0x0}, {0x2F944, 0x25133, 0x0}, {0x2F945, 0x771E, 0x0}, {0x2F946, 0x771F, 0x0},
    {0x2F947, 0x771F, 0x0}, {0x2F948, 0x774A, 0x0}, {0x2F949, 0x4039, 0x0}, {0x2F94A, 0x778B, 0x0},
    {0x2F94B, 0x4046, 0x0}, {0x2F94C, 0x4096, 0x0}, {0x2F94D, 0x2541D, 0x0}, {0x2F94E, 0x784E, 0x0},
    {0x2F94F, 0x788C, 0x0}, {0x2F950, 0x78CC, 0x0}, {0x2F951, 0x40E3, 0x0}, {0x2F952, 0x25626, 0x0},
    {0x2F953, 0x7956, 0x0}, {0x2F954, 0x2569A, 0x0}, {0x2F955, 0x256C5, 0x0}, {0x2F956, 0x798F, 0x0},
    {0x2F957, 0x79EB, 0x0}, {0x2F958, 0x412F, 0x0}, {0x2F959, 0x7A40, 0x0}, {0x2F95A, 0x7A4A, 0x0},
    {0x2F95B, 0x7A4F, 0x0}, {0x2F95C, 0x2597C, 0x0}, {0x2F95D, 0x25AA7, 0x0}, {0x2F95E, 0x25AA7, 0x0},
    {0x2F95F, 0x7AEE, 0x0}, {0x2F960, 0x4202, 0x0}, {0x2F961, 0x25BAB, 0x0}, {0x2F962, 0x7BC6, 0x0},
    {0x2F963, 0x7BC9, 0x0}, {0x2F964, 0x4227, 0x0}, {0x2F965, 0x25C80, 0x0}, {0x2F966, 0x7CD2, 0x0},
    {0x2F967, 0x42A0, 0x0}, {0x2F968, 0x7CE8, 0x0}, {0x2F969, 0x7CE3, 0x0}, {0x2F96A, 0x7D00, 0x0},
    {0x2F96B, 0x25F86, 0x0}, {0x2F96C, 0x7D63, 0x0}, {0x2F96D, 0x4301, 0x0}, {0x2F96E, 0x7DC7, 0x0},
    {0x2F96F, 0x7E02, 0x0}, {0x2F970, 0x7E45, 0x0}, {0x2F971, 0x4334, 0x0}, {0x2F972, 0x26228, 0x0},
    {0x2F973, 0x26247, 0x0}, {0x2F974, 0x4359, 0x0}, {0x2F975, 0x262D9, 0x0}, {0x2F976, 0x7F7A, 0x0},
    {0x2F977, 0x2633E, 0x0}, {0x2F978, 0x7F95, 0x0}, {0x2F979, 0x7FFA, 0x0}, {0x2F97A, 0x8005, 0x0},
    {0x2F97B, 0x264DA, 0x0}, {0x2F97C, 0x26523, 0x0}, {0x2F97D, 0x8060, 0x0}, {0x2F97E, 0x265A8, 0x0},
    {0x2F97F, 0x8070, 0x0}, {0x2F980, 0x2335F, 0x0}, {0x2F981, 0x43D5, 0x0}, {0x2F982, 0x80B2, 0x0},
    {0x2F983, 0x8103, 0x0}, {0x2F984, 0x440B, 0x0}, {0x2F985, 0x813E, 0x0}, {0x2F986, 0x5AB5, 0x0},
    {0x2F987, 0x267A7, 0x0}, {0x2F988, 0x267B5, 0x0}, {0x2F989, 0x23393, 0x0}, {0x2F98A, 0x2339C, 0x0},
    {0x2F98B, 0x8201, 0x0}, {0x2F98C, 0x8204, 0x0}, {0x2F98D, 0x8F9E, 0x0}, {0x2F98E, 0x446B, 0x0},
    {0x2F98F, 0x8291, 0x0}, {0x2F990, 0x828B, 0x0}, {0x2F991, 0x829D, 0x0}, {0x2F992, 0x52B3, 0x0},
    {0x2F993, 0x82B1, 0x0}, {0x2F994, 0x82B3, 0x0}, {0x2F995, 0x82BD, 0x0}, {0x2F996, 0x82E6, 0x0},
    {0x2F997, 0x26B3C, 0x0}, {0x2F998, 0x82E5, 0x0}, {0x2F999, 0x831D, 0x0}, {0x2F99A, 0x8363, 0x0},
    {0x2F99B, 0x83AD, 0x0}, {0x2F99C, 0x8323, 0x0}, {0x2F99D, 0x83BD, 0x0}, {0x2F99E, 0x83E7, 0x0},
    {0x2F99F, 0x8457, 0x0}, {0x2F9A0, 0x8353, 0x0}, {0x2F9A1, 0x83CA, 0x0}, {0x2F9A2, 0x83CC, 0x0},
    {0x2F9A3, 0x83DC, 0x0}, {0x2F9A4, 0x26C36, 0x0}, {0x2F9A5, 0x26D6B, 0x0}, {0x2F9A6, 0x26CD5, 0x0},
    {0x2F9A7, 0x452B, 0x0}, {0x2F9A8, 0x84F1, 0x0}, {0x2F9A9, 0x84F3, 0x0}, {0x2F9AA, 0x8516, 0x0},
    {0x2F9AB, 0x273CA, 0x0}, {0x2F9AC, 0x8564, 0x0}, {0x2F9AD, 0x26F2C, 0x0}, {0x2F9AE, 0x455D, 0x0},
    {0x2F9AF, 0x4561, 0x0}, {0x2F9B0, 0x26FB1, 0x0}, {0x2F9B1, 0x270D2, 0x0}, {0x2F9B2, 0x456B, 0x0},
    {0x2F9B3, 0x8650, 0x0}, {0x2F9B4, 0x865C, 0x0}, {0x2F9B5, 0x8667, 0x0}, {0x2F9B6, 0x8669, 0x0},
    {0x2F9B7, 0x86A9, 0x0}, {0x2F9B8, 0x8688, 0x0}, {0x2F9B9, 0x870E, 0x0}, {0x2F9BA, 0x86E2, 0x0},
    {0x2F9BB, 0x8779, 0x0}, {0x2F9BC, 0x8728, 0x0}, {0x2F9BD, 0x876B, 0x0}, {0x2F9BE, 0x8786, 0x0},
    {0x2F9BF, 0x45D7, 0x0}, {0x2F9C0, 0x87E1, 0x0}, {0x2F9C1, 0x8801, 0x0}, {0x2F9C2, 0x45F9, 0x0},
    {0x2F9C3, 0x8860, 0x0}, {0x2F9C4, 0x8863, 0x0}, {0x2F9C5, 0x27667, 0x0}, {0x2F9C6, 0x88D7, 0x0},
    {0x2F9C7, 0x88DE, 0x0}, {0x2F9C8, 0x4635, 0x0}, {0x2F9C9, 0x88FA, 0x0}, {0x2F9CA, 0x34BB, 0x0},
    {0x2F9CB, 0x278AE, 0x0}, {0x2F9CC, 0x27966, 0x0}, {0x2F9CD, 0x46BE, 0x0}, {0x2F9CE, 0x46C7, 0x0},
    {0x2F9CF, 0x8AA0, 0x0}, {0x2F9D0, 0x8AED, 0x0}, {0x2F9D1, 0x8B8A, 0x0}, {0x2F9D2, 0x8C55, 0x0},
    {0x2F9D3, 0x27CA8, 0x0}, {0x2F9D4, 0x8CAB, 0x0}, {0x2F9D5, 0x8CC1, 0x0}, {0x2F9D6, 0x8D1B, 0x0},
    {0x2F9D7, 0x8D77, 0x0}, {0x2F9D8, 0x27F2F, 0x0}, {0x2F9D9, 0x20804, 0x0}, {0x2F9DA, 0x8DCB, 0x0},
    {0x2F9DB, 0x8DBC, 0x0}, {0x2F9DC, 0x8DF0, 0x0}, {0x2F9DD, 0x208DE, 0x0}, {0x2F9DE, 0x8ED4, 0x0},
    {0x2F9DF, 0x8F38, 0x0}, {0x2F9E0, 0x285D2, 0x0}, {0x2F9E1, 0x285ED, 0x0}, {0x2F9E2, 0x9094, 0x0},
    {0x2F9E3, 0x90F1, 0x0}, {0x2F9E4, 0x9111, 0x0}, {0x2F9E5, 0x2872E, 0x0}, {0x2F9E6, 0x911B, 0x0},
    {0x2F9E7, 0x9238, 0x0}, {0x2F9E8, 0x92D7, 0x0}, {0x2F9E9, 0x92D8, 0x0}, {0x2F9EA, 0x927C, 0x0},
    {0x2F9EB, 0x93F9, 0x0}, {0x2F9EC, 0x9415, 0x0}, {0x2F9ED, 0x28BFA, 0x0}, {0x2F9EE, 0x958B, 0x0},
    {0x2F9EF, 0x4995, 0x0}, {0x2F9F0, 0x95B7, 0x0}, {0x2F9F1, 0x28D77, 0x0}, {0x2F9F2, 0x49E6, 0x0},
    {0x2F9F3, 0x96C3, 0x0}, {0x2F9F4, 0x5DB2, 0x0}, {0x2F9F5, 0x9723, 0x0}, {0x2F9F6, 0x29145, 0x0},
    {0x2F9F7, 0x2921A, 0x0}, {0x2F9F8, 0x4A6E, 0x0}, {0x2F9F9, 0x4A76, 0x0}, {0x2F9FA, 0x97E0, 0x0},
    {0x2F9FB, 0x2940A, 0x0}, {0x2F9FC, 0x4AB2, 0x0}, {0x2F9FD, 0x29496, 0x0}, {0x2F9FE, 0x980B, 0x0},
    {0x2F9FF, 0x980B, 0x0}, {0x2FA00, 0x9829, 0x0}, {0x2FA01, 0x295B6, 0x0}, {0x2FA02, 0x98E2, 0x0},
    {0x2FA03, 0x4B33, 0x0}, {0x2FA04, 0x9929, 0x0}, {0x2FA05, 0x99A7, 0x0}, {0x2FA06, 0x99C2, 0x0},
    {0x2FA07, 0x99FE, 0x0}, {0x2FA08, 0x4BCE, 0x0}, {0x2FA09, 0x29B30, 0x0}, {0x2FA0A, 0x9B12, 0x0},
    {0x2FA0B, 0x9C40, 0x0}, {0x2FA0C, 0x9CFD, 0x0}, {0x2FA0D, 0x4CCE, 0x0}, {0x2FA0E, 0x4CED, 0x0},
    {0x2FA0F, 0x9D67, 0x0}, {0x2FA10, 0x2A0CE, 0x0}, {0x2FA11, 0x4CF8, 0x0}, {0x2FA12, 0x2A105, 0x0},
    {0x2FA13, 0x2A20E, 0x0}, {0x2FA14, 0x2A291, 0x0}, {0x2FA15, 0x9EBB, 0x0}, {0x2FA16, 0x4D56, 0x0},
    {0x2FA17, 0x9EF9, 0x0}, {0x2FA18, 0x9EFE, 0x0}, {0x2FA19, 0x9F05, 0x0}, {0x2FA1A, 0x9F0F, 0x0},
    {0x2FA1B, 0x9F16, 0x0}, {0x2FA1C, 0x9F3B, 0x0}, {0x2FA1D, 0x2A600, 0x0},
};
/* canonical combining classes {first, last, class}: 393 entries (Unicode 16.0.0) */
static const uint32_t sft__uni_ccc[][3] = {
    {0x300, 0x314, 0xE6}, {0x315, 0x315, 0xE8}, {0x316, 0x319, 0xDC}, {0x31A, 0x31A, 0xE8}, {0x31B, 0x31B, 0xD8},
    {0x31C, 0x320, 0xDC}, {0x321, 0x322, 0xCA}, {0x323, 0x326, 0xDC}, {0x327, 0x328, 0xCA}, {0x329, 0x333, 0xDC},
    {0x334, 0x338, 0x1}, {0x339, 0x33C, 0xDC}, {0x33D, 0x344, 0xE6}, {0x345, 0x345, 0xF0}, {0x346, 0x346, 0xE6},
    {0x347, 0x349, 0xDC}, {0x34A, 0x34C, 0xE6}, {0x34D, 0x34E, 0xDC}, {0x350, 0x352, 0xE6}, {0x353, 0x356, 0xDC},
    {0x357, 0x357, 0xE6}, {0x358, 0x358, 0xE8}, {0x359, 0x35A, 0xDC}, {0x35B, 0x35B, 0xE6}, {0x35C, 0x35C, 0xE9},
    {0x35D, 0x35E, 0xEA}, {0x35F, 0x35F, 0xE9}, {0x360, 0x361, 0xEA}, {0x362, 0x362, 0xE9}, {0x363, 0x36F, 0xE6},
    {0x483, 0x487, 0xE6}, {0x591, 0x591, 0xDC}, {0x592, 0x595, 0xE6}, {0x596, 0x596, 0xDC}, {0x597, 0x599, 0xE6},
    {0x59A, 0x59A, 0xDE}, {0x59B, 0x59B, 0xDC}, {0x59C, 0x5A1, 0xE6}, {0x5A2, 0x5A7, 0xDC}, {0x5A8, 0x5A9, 0xE6},
    {0x5AA, 0x5AA, 0xDC}, {0x5AB, 0x5AC, 0xE6}, {0x5AD, 0x5AD, 0xDE}, {0x5AE, 0x5AE, 0xE4}, {0x5AF, 0x5AF, 0xE6},
    {0x5B0, 0x5B0, 0xA}, {0x5B1, 0x5B1, 0xB}, {0x5B2, 0x5B2, 0xC}, {0x5B3, 0x5B3, 0xD}, {0x5B4, 0x5B4, 0xE},
    {0x5B5, 0x5B5, 0xF}, {0x5B6, 0x5B6, 0x10}, {0x5B7, 0x5B7, 0x11}, {0x5B8, 0x5B8, 0x12}, {0x5B9, 0x5BA, 0x13},
    {0x5BB, 0x5BB, 0x14}, {0x5BC, 0x5BC, 0x15}, {0x5BD, 0x5BD, 0x16}, {0x5BF, 0x5BF, 0x17}, {0x5C1, 0x5C1, 0x18},
    {0x5C2, 0x5C2, 0x19}, {0x5C4, 0x5C4, 0xE6}, {0x5C5, 0x5C5, 0xDC}, {0x5C7, 0x5C7, 0x12}, {0x610, 0x617, 0xE6},
    {0x618, 0x618, 0x1E}, {0x619, 0x619, 0x1F}, {0x61A, 0x61A, 0x20}, {0x64B, 0x64B, 0x1B}, {0x64C, 0x64C, 0x1C},
    {0x64D, 0x64D, 0x1D}, {0x64E, 0x64E, 0x1E}, {0x64F, 0x64F, 0x1F}, {0x650, 0x650, 0x20}, {0x651, 0x651, 0x21},
    {0x652, 0x652, 0x22}, {0x653, 0x654, 0xE6}, {0x655, 0x656, 0xDC}, {0x657, 0x65B, 0xE6}, {0x65C, 0x65C, 0xDC},
    {0x65D, 0x65E, 0xE6}, {0x65F, 0x65F, 0xDC}, {0x670, 0x670, 0x23}, {0x6D6, 0x6DC, 0xE6}, {0x6DF, 0x6E2, 0xE6},
    {0x6E3, 0x6E3, 0xDC}, {0x6E4, 0x6E4, 0xE6}, {0x6E7, 0x6E8, 0xE6}, {0x6EA, 0x6EA, 0xDC}, {0x6EB, 0x6EC, 0xE6},
    {0x6ED, 0x6ED, 0xDC}, {0x711, 0x711, 0x24}, {0x730, 0x730, 0xE6}, {0x731, 0x731, 0xDC}, {0x732, 0x733, 0xE6},
    {0x734, 0x734, 0xDC}, {0x735, 0x736, 0xE6}, {0x737, 0x739, 0xDC}, {0x73A, 0x73A, 0xE6}, {0x73B, 0x73C, 0xDC},
    {0x73D, 0x73D, 0xE6}, {0x73E, 0x73E, 0xDC}, {0x73F, 0x741, 0xE6}, {0x742, 0x742, 0xDC}, {0x743, 0x743, 0xE6},
    {0x744, 0x744, 0xDC}, {0x745, 0x745, 0xE6}, {0x746, 0x746, 0xDC}, {0x747, 0x747, 0xE6}, {0x748, 0x748, 0xDC},
    {0x749, 0x74A, 0xE6}, {0x7EB, 0x7F1, 0xE6}, {0x7F2, 0x7F2, 0xDC}, {0x7F3, 0x7F3, 0xE6}, {0x7FD, 0x7FD, 0xDC},
    {0x816, 0x819, 0xE6}, {0x81B, 0x823, 0xE6}, {0x825, 0x827, 0xE6}, {0x829, 0x82D, 0xE6}, {0x859, 0x85B, 0xDC},
    {0x897, 0x898, 0xE6}, {0x899, 0x89B, 0xDC}, {0x89C, 0x89F, 0xE6}, {0x8CA, 0x8CE, 0xE6}, {0x8CF, 0x8D3, 0xDC},
    {0x8D4, 0x8E1, 0xE6}, {0x8E3, 0x8E3, 0xDC}, {0x8E4, 0x8E5, 0xE6}, {0x8E6, 0x8E6, 0xDC}, {0x8E7, 0x8E8, 0xE6},
    {0x8E9, 0x8E9, 0xDC}, {0x8EA, 0x8EC, 0xE6}, {0x8ED, 0x8EF, 0xDC}, {0x8F0, 0x8F0, 0x1B}, {0x8F1, 0x8F1, 0x1C},
    {0x8F2, 0x8F2, 0x1D}, {0x8F3, 0x8F5, 0xE6}, {0x8F6, 0x8F6, 0xDC}, {0x8F7, 0x8F8, 0xE6}, {0x8F9, 0x8FA, 0xDC},
    {0x8FB, 0x8FF, 0xE6}, {0x93C, 0x93C, 0x7}, {0x94D, 0x94D, 0x9}, {0x951, 0x951, 0xE6}, {0x952, 0x952, 0xDC},
    {0x953, 0x954, 0xE6}, {0x9BC, 0x9BC, 0x7}, {0x9CD, 0x9CD, 0x9}, {0x9FE, 0x9FE, 0xE6}, {0xA3C, 0xA3C, 0x7},
    {0xA4D, 0xA4D, 0x9}, {0xABC, 0xABC, 0x7}, {0xACD, 0xACD, 0x9}, {0xB3C, 0xB3C, 0x7}, {0xB4D, 0xB4D, 0x9},
    {0xBCD, 0xBCD, 0x9}, {0xC3C, 0xC3C, 0x7}, {0xC4D, 0xC4D, 0x9}, {0xC55, 0xC55, 0x54}, {0xC56, 0xC56, 0x5B},
    {0xCBC, 0xCBC, 0x7}, {0xCCD, 0xCCD, 0x9}, {0xD3B, 0xD3C, 0x9}, {0xD4D, 0xD4D, 0x9}, {0xDCA, 0xDCA, 0x9},
    {0xE38, 0xE39, 0x67}, {0xE3A, 0xE3A, 0x9}, {0xE48, 0xE4B, 0x6B}, {0xEB8, 0xEB9, 0x76}, {0xEBA, 0xEBA, 0x9},
    {0xEC8, 0xECB, 0x7A}, {0xF18, 0xF19, 0xDC}, {0xF35, 0xF35, 0xDC}, {0xF37, 0xF37, 0xDC}, {0xF39, 0xF39, 0xD8},
    {0xF71, 0xF71, 0x81}, {0xF72, 0xF72, 0x82}, {0xF74, 0xF74, 0x84}, {0xF7A, 0xF7D, 0x82}, {0xF80, 0xF80, 0x82},
    {0xF82, 0xF83, 0xE6}, {0xF84, 0xF84, 0x9}, {0xF86, 0xF87, 0xE6}, {0xFC6, 0xFC6, 0xDC}, {0x1037, 0x1037, 0x7},
    {0x1039, 0x103A, 0x9}, {0x108D, 0x108D, 0xDC}, {0x135D, 0x135F, 0xE6}, {0x1714, 0x1715, 0x9},
    {0x1734, 0x1734, 0x9}, {0x17D2, 0x17D2, 0x9}, {0x17DD, 0x17DD, 0xE6}, {0x18A9, 0x18A9, 0xE4},
    {0x1939, 0x1939, 0xDE}, {0x193A, 0x193A, 0xE6}, {0x193B, 0x193B, 0xDC}, {0x1A17, 0x1A17, 0xE6},
    {0x1A18, 0x1A18, 0xDC}, {0x1A60, 0x1A60, 0x9}, {0x1A75, 0x1A7C, 0xE6}, {0x1A7F, 0x1A7F, 0xDC},
    {0x1AB0, 0x1AB4, 0xE6}, {0x1AB5, 0x1ABA, 0xDC}, {0x1ABB, 0x1ABC, 0xE6}, {0x1ABD, 0x1ABD, 0xDC},
    {0x1ABF, 0x1AC0, 0xDC}, {0x1AC1, 0x1AC2, 0xE6}, {0x1AC3, 0x1AC4, 0xDC}, {0x1AC5, 0x1AC9, 0xE6},
    {0x1ACA, 0x1ACA, 0xDC}, {0x1ACB, 0x1ACE, 0xE6}, {0x1B34, 0x1B34, 0x7}, {0x1B44, 0x1B44, 0x9},
    {0x1B6B, 0x1B6B, 0xE6}, {0x1B6C, 0x1B6C, 0xDC}, {0x1B6D, 0x1B73, 0xE6}, {0x1BAA, 0x1BAB, 0x9},
    {0x1BE6, 0x1BE6, 0x7}, {0x1BF2, 0x1BF3, 0x9}, {0x1C37, 0x1C37, 0x7}, {0x1CD0, 0x1CD2, 0xE6},
    {0x1CD4, 0x1CD4, 0x1}, {0x1CD5, 0x1CD9, 0xDC}, {0x1CDA, 0x1CDB, 0xE6}, {0x1CDC, 0x1CDF, 0xDC},
    {0x1CE0, 0x1CE0, 0xE6}, {0x1CE2, 0x1CE8, 0x1}, {0x1CED, 0x1CED, 0xDC}, {0x1CF4, 0x1CF4, 0xE6},
    {0x1CF8, 0x1CF9, 0xE6}, {0x1DC0, 0x1DC1, 0xE6}, {0x1DC2, 0x1DC2, 0xDC}, {0x1DC3, 0x1DC9, 0xE6},
    {0x1DCA, 0x1DCA, 0xDC}, {0x1DCB, 0x1DCC, 0xE6}, {0x1DCD, 0x1DCD, 0xEA}, {0x1DCE, 0x1DCE, 0xD6},
    {0x1DCF, 0x1DCF, 0xDC}, {0x1DD0, 0x1DD0, 0xCA}, {0x1DD1, 0x1DF5, 0xE6}, {0x1DF6, 0x1DF6, 0xE8},
    {0x1DF7, 0x1DF8, 0xE4}, {0x1DF9, 0x1DF9, 0xDC}, {0x1DFA, 0x1DFA, 0xDA}, {0x1DFB, 0x1DFB, 0xE6},
    {0x1DFC, 0x1DFC, 0xE9}, {0x1DFD, 0x1DFD, 0xDC}, {0x1DFE, 0x1DFE, 0xE6}, {0x1DFF, 0x1DFF, 0xDC},
    {0x20D0, 0x20D1, 0xE6}, {0x20D2, 0x20D3, 0x1}, {0x20D4, 0x20D7, 0xE6}, {0x20D8, 0x20DA, 0x1},
    {0x20DB, 0x20DC, 0xE6}, {0x20E1, 0x20E1, 0xE6}, {0x20E5, 0x20E6, 0x1}, {0x20E7, 0x20E7, 0xE6},
    {0x20E8, 0x20E8, 0xDC}, {0x20E9, 0x20E9, 0xE6}, {0x20EA, 0x20EB, 0x1}, {0x20EC, 0x20EF, 0xDC},
    {0x20F0, 0x20F0, 0xE6}, {0x2CEF, 0x2CF1, 0xE6}, {0x2D7F, 0x2D7F, 0x9}, {0x2DE0, 0x2DFF, 0xE6},
    {0x302A, 0x302A, 0xDA}, {0x302B, 0x302B, 0xE4}, {0x302C, 0x302C, 0xE8}, {0x302D, 0x302D, 0xDE},
    {0x302E, 0x302F, 0xE0}, {0x3099, 0x309A, 0x8}, {0xA66F, 0xA66F, 0xE6}, {0xA674, 0xA67D, 0xE6},
    {0xA69E, 0xA69F, 0xE6}, {0xA6F0, 0xA6F1, 0xE6}, {0xA806, 0xA806, 0x9}, {0xA82C, 0xA82C, 0x9},
    {0xA8C4, 0xA8C4, 0x9}, {0xA8E0, 0xA8F1, 0xE6}, {0xA92B, 0xA92D, 0xDC}, {0xA953, 0xA953, 0x9},
    {0xA9B3, 0xA9B3, 0x7}, {0xA9C0, 0xA9C0, 0x9}, {0xAAB0, 0xAAB0, 0xE6}, {0xAAB2, 0xAAB3, 0xE6},
    {0xAAB4, 0xAAB4, 0xDC}, {0xAAB7, 0xAAB8, 0xE6}, {0xAABE, 0xAABF, 0xE6}, {0xAAC1, 0xAAC1, 0xE6},
    {0xAAF6, 0xAAF6, 0x9}, {0xABED, 0xABED, 0x9}, {0xFB1E, 0xFB1E, 0x1A}, {0xFE20, 0xFE26, 0xE6},
    {0xFE27, 0xFE2D, 0xDC}, {0xFE2E, 0xFE2F, 0xE6}, {0x101FD, 0x101FD, 0xDC}, {0x102E0, 0x102E0, 0xDC},
    {0x10376, 0x1037A, 0xE6}, {0x10A0D, 0x10A0D, 0xDC}, {0x10A0F, 0x10A0F, 0xE6}, {0x10A38, 0x10A38, 0xE6},
    {0x10A39, 0x10A39, 0x1}, {0x10A3A, 0x10A3A, 0xDC}, {0x10A3F, 0x10A3F, 0x9}, {0x10AE5, 0x10AE5, 0xE6},
    {0x10AE6, 0x10AE6, 0xDC}, {0x10D24, 0x10D27, 0xE6}, {0x10D69, 0x10D6D, 0xE6}, {0x10EAB, 0x10EAC, 0xE6},
    {0x10EFD, 0x10EFF, 0xDC}, {0x10F46, 0x10F47, 0xDC}, {0x10F48, 0x10F4A, 0xE6}, {0x10F4B, 0x10F4B, 0xDC},
    {0x10F4C, 0x10F4C, 0xE6}, {0x10F4D, 0x10F50, 0xDC}, {0x10F82, 0x10F82, 0xE6}, {0x10F83, 0x10F83, 0xDC},
    {0x10F84, 0x10F84, 0xE6}, {0x10F85, 0x10F85, 0xDC}, {0x11046, 0x11046, 0x9}, {0x11070, 0x11070, 0x9},
    {0x1107F, 0x1107F, 0x9}, {0x110B9, 0x110B9, 0x9}, {0x110BA, 0x110BA, 0x7}, {0x11100, 0x11102, 0xE6},
    {0x11133, 0x11134, 0x9}, {0x11173, 0x11173, 0x7}, {0x111C0, 0x111C0, 0x9}, {0x111CA, 0x111CA, 0x7},
    {0x11235, 0x11235, 0x9}, {0x11236, 0x11236, 0x7}, {0x112E9, 0x112E9, 0x7}, {0x112EA, 0x112EA, 0x9},
    {0x1133B, 0x1133C, 0x7}, {0x1134D, 0x1134D, 0x9}, {0x11366, 0x1136C, 0xE6}, {0x11370, 0x11374, 0xE6},
    {0x113CE, 0x113D0, 0x9}, {0x11442, 0x11442, 0x9}, {0x11446, 0x11446, 0x7}, {0x1145E, 0x1145E, 0xE6},
    {0x114C2, 0x114C2, 0x9}, {0x114C3, 0x114C3, 0x7}, {0x115BF, 0x115BF, 0x9}, {0x115C0, 0x115C0, 0x7},
    {0x1163F, 0x1163F, 0x9}, {0x116B6, 0x116B6, 0x9}, {0x116B7, 0x116B7, 0x7}, {0x1172B, 0x1172B, 0x9},
    {0x11839, 0x11839, 0x9}, {0x1183A, 0x1183A, 0x7}, {0x1193D, 0x1193E, 0x9}, {0x11943, 0x11943, 0x7},
    {0x119E0, 0x119E0, 0x9}, {0x11A34, 0x11A34, 0x9}, {0x11A47, 0x11A47, 0x9}, {0x11A99, 0x11A99, 0x9},
    {0x11C3F, 0x11C3F, 0x9}, {0x11D42, 0x11D42, 0x7}, {0x11D44, 0x11D45, 0x9}, {0x11D97, 0x11D97, 0x9},
    {0x11F41, 0x11F42, 0x9}, {0x1612F, 0x1612F, 0x9}, {0x16AF0, 0x16AF4, 0x1}, {0x16B30, 0x16B36, 0xE6},
    {0x16FF0, 0x16FF1, 0x6}, {0x1BC9E, 0x1BC9E, 0x1}, {0x1D165, 0x1D166, 0xD8}, {0x1D167, 0x1D169, 0x1},
    {0x1D16D, 0x1D16D, 0xE2}, {0x1D16E, 0x1D172, 0xD8}, {0x1D17B, 0x1D182, 0xDC}, {0x1D185, 0x1D189, 0xE6},
    {0x1D18A, 0x1D18B, 0xDC}, {0x1D1AA, 0x1D1AD, 0xE6}, {0x1D242, 0x1D244, 0xE6}, {0x1E000, 0x1E006, 0xE6},
    {0x1E008, 0x1E018, 0xE6}, {0x1E01B, 0x1E021, 0xE6}, {0x1E023, 0x1E024, 0xE6}, {0x1E026, 0x1E02A, 0xE6},
    {0x1E08F, 0x1E08F, 0xE6}, {0x1E130, 0x1E136, 0xE6}, {0x1E2AE, 0x1E2AE, 0xE6}, {0x1E2EC, 0x1E2EF, 0xE6},
    {0x1E4EC, 0x1E4ED, 0xE8}, {0x1E4EE, 0x1E4EE, 0xDC}, {0x1E4EF, 0x1E4EF, 0xE6}, {0x1E5EE, 0x1E5EE, 0xE6},
    {0x1E5EF, 0x1E5EF, 0xDC}, {0x1E8D0, 0x1E8D6, 0xDC}, {0x1E944, 0x1E949, 0xE6}, {0x1E94A, 0x1E94A, 0x7},
};

static int sft__uni_in(const uint32_t (*t)[2], size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < t[mid][0]) hi = mid;
        else if (cp > t[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

#define SFT__COUNT(a) (sizeof(a) / sizeof((a)[0]))
static int sft__is_letter(uint32_t cp) {
    if (cp < 128) return (cp | 32) >= 'a' && (cp | 32) <= 'z';
    return sft__uni_in(sft__uni_letter, SFT__COUNT(sft__uni_letter), cp);
}
static int sft__is_number(uint32_t cp) {
    if (cp < 128) return cp >= '0' && cp <= '9';
    return sft__uni_in(sft__uni_number, SFT__COUNT(sft__uni_number), cp);
}
static int sft__is_space(uint32_t cp) {
    if (cp < 128) return cp == ' ' || (cp >= 9 && cp <= 13);
    return sft__uni_in(sft__uni_space, SFT__COUNT(sft__uni_space), cp);
}

/* sft__cp_at: the code point at s[i] (text already checked to be UTF-8) and its length. */
static uint32_t sft__cp_at(const char *s, size_t n, size_t i, size_t *len) {
    uint32_t cp = 0;
    const char *why = NULL;
    int k;
    if ((unsigned char)s[i] < 0x80) { *len = 1; return (unsigned char)s[i]; }
    k = sft__utf8_next((const unsigned char *)s + i, n - i, &cp, &why);
    *len = k > 0 ? (size_t)k : 1;
    return k > 0 ? cp : 0xFFFD;
}

/* ============================================================================
   === tokenizer: hash maps
   Open addressing with linear probing, every allocation checked. A string map
   keys on bytes the caller keeps alive (the vocabulary's own strings); the pair
   map keys a merge (left id, right id) to its rank and the merged id. */

typedef struct sft__strmap {
    const char **key;
    uint32_t    *klen;
    int32_t     *val;
    size_t       cap, count;
} sft__strmap;

static uint64_t sft__hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    size_t i;
    for (i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 0x100000001b3ull; }
    return h ^ (h >> 29);
}

static void sft__strmap_free(sft_context *ctx, sft__strmap *m) {
    sft__free(ctx, m->key); sft__free(ctx, m->klen); sft__free(ctx, m->val);
    memset(m, 0, sizeof *m);
}

static int32_t sft__strmap_get(const sft__strmap *m, const char *key, size_t len) {
    size_t i;
    if (!m->cap) return -1;
    for (i = sft__hash_bytes(key, len) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->key[i]) return -1;
        if (m->klen[i] == len && memcmp(m->key[i], key, len) == 0) return m->val[i];
    }
}

static sft_status sft__strmap_put(sft_context *ctx, sft__strmap *m, const char *key, size_t len, int32_t val);

static sft_status sft__strmap_grow(sft_context *ctx, sft__strmap *m) {
    sft__strmap bigger;
    size_t i;
    memset(&bigger, 0, sizeof bigger);
    bigger.cap = m->cap ? m->cap * 2 : 1024;
    bigger.key = (const char **)sft__calloc(ctx, bigger.cap, sizeof(char *));
    bigger.klen = (uint32_t *)sft__calloc(ctx, bigger.cap, sizeof(uint32_t));
    bigger.val = (int32_t *)sft__calloc(ctx, bigger.cap, sizeof(int32_t));
    if (!bigger.key || !bigger.klen || !bigger.val) {
        sft__strmap_free(ctx, &bigger);
        return sft__fail(SFT_ERR_NOMEM, "tokenizer: cannot grow a map to %zu entries", bigger.cap);
    }
    for (i = 0; i < m->cap; i++)
        if (m->key[i]) SFT__TRY(sft__strmap_put(ctx, &bigger, m->key[i], m->klen[i], m->val[i]));
    sft__strmap_free(ctx, m);
    *m = bigger;
    return SFT_OK;
}

/* sft__strmap_put: insert or replace. */
static sft_status sft__strmap_put(sft_context *ctx, sft__strmap *m, const char *key, size_t len, int32_t val) {
    size_t i;
    if (len > UINT32_MAX) return sft__fail(SFT_ERR_LIMIT, "tokenizer: a key of %zu bytes", len);
    if ((m->count + 1) * 2 > m->cap) SFT__TRY(sft__strmap_grow(ctx, m));
    for (i = sft__hash_bytes(key, len) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->key[i]) { m->key[i] = key; m->klen[i] = (uint32_t)len; m->val[i] = val; m->count++; return SFT_OK; }
        if (m->klen[i] == len && memcmp(m->key[i], key, len) == 0) { m->val[i] = val; return SFT_OK; }
    }
}

typedef struct sft__pairmap { uint64_t *key; int32_t *rank, *merged; size_t cap, count; } sft__pairmap;

static uint64_t sft__pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }
static size_t sft__pair_slot(uint64_t k, size_t cap) { return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1); }

static void sft__pairmap_free(sft_context *ctx, sft__pairmap *m) {
    sft__free(ctx, m->key); sft__free(ctx, m->rank); sft__free(ctx, m->merged);
    memset(m, 0, sizeof *m);
}

/* sft__pairmap_init: room for n merges (keys ~0 mark empty slots). */
static sft_status sft__pairmap_init(sft_context *ctx, sft__pairmap *m, size_t n) {
    size_t cap = 16;
    memset(m, 0, sizeof *m);
    while (cap < 2 * n + 16) cap *= 2;
    m->key = (uint64_t *)sft__alloc(ctx, cap * sizeof(uint64_t));
    m->rank = (int32_t *)sft__alloc(ctx, cap * sizeof(int32_t));
    m->merged = (int32_t *)sft__alloc(ctx, cap * sizeof(int32_t));
    if (!m->key || !m->rank || !m->merged) { sft__pairmap_free(ctx, m); return sft__fail(SFT_ERR_NOMEM, "tokenizer: merges"); }
    memset(m->key, 0xff, cap * sizeof(uint64_t));
    m->cap = cap;
    return SFT_OK;
}

static void sft__pairmap_put(sft__pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged) {
    uint64_t k = sft__pair_key(a, b);
    size_t i;
    for (i = sft__pair_slot(k, m->cap);; i = (i + 1) & (m->cap - 1))
        if (m->key[i] == ~(uint64_t)0 || m->key[i] == k) {
            if (m->key[i] == k) return;             /* the first (lowest) rank wins */
            m->key[i] = k; m->rank[i] = rank; m->merged[i] = merged; m->count++;
            return;
        }
}

static int32_t sft__pairmap_get(const sft__pairmap *m, int32_t a, int32_t b, int32_t *merged) {
    uint64_t k = sft__pair_key(a, b);
    size_t i;
    if (!m->cap) return -1;
    for (i = sft__pair_slot(k, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->key[i] == ~(uint64_t)0) return -1;
        if (m->key[i] == k) { *merged = m->merged[i]; return m->rank[i]; }
    }
}

/* A growable array with checked allocation. */
typedef struct sft__vec { void *p; size_t len, cap, elem; } sft__vec;

static sft_status sft__vec_reserve(sft_context *ctx, sft__vec *v, size_t need) {
    void *np;
    size_t cap = v->cap ? v->cap : 64;
    if (need <= v->cap) return SFT_OK;
    while (cap < need) cap *= 2;
    if (cap > SIZE_MAX / v->elem) return sft__fail(SFT_ERR_NOMEM, "tokenizer: buffer of %zu elements", cap);
    np = sft__alloc(ctx, cap * v->elem);
    if (!np) return sft__fail(SFT_ERR_NOMEM, "tokenizer: cannot grow a buffer to %zu bytes", cap * v->elem);
    if (v->len) memcpy(np, v->p, v->len * v->elem);
    sft__free(ctx, v->p);
    v->p = np; v->cap = cap;
    return SFT_OK;
}

static sft_status sft__vec_push(sft_context *ctx, sft__vec *v, const void *x, size_t n) {
    SFT__TRY(sft__vec_reserve(ctx, v, v->len + n + 1));
    memcpy((char *)v->p + v->len * v->elem, x, n * v->elem);
    v->len += n;
    return SFT_OK;
}

/* ============================================================================
   === tokenizer: pre-tokenizer split patterns
   The regular expressions of the families we support, matched by hand: each
   matcher gives the length of the match at byte i, trying the alternatives in
   order as a backtracking regex engine does. Every position matches something,
   so a piece is cut into consecutive matches.

   GPT-2 (also ByteLevel's use_regex):
     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
   Llama-3 (Qwen2: the same with \p{N} for \p{N}{1,3}):
     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
     ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */

enum { SFT__PAT_GPT2, SFT__PAT_LLAMA3, SFT__PAT_QWEN2 };

static const char *const sft__pattern_text[] = {
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};

static int sft__is_other(uint32_t cp) { return !sft__is_space(cp) && !sft__is_letter(cp) && !sft__is_number(cp); }

/* 's 't 're 've 'm 'll 'd at s[i] (which is '\''); 0 when none */
static size_t sft__match_contraction(const char *s, size_t n, size_t i, int fold) {
    static const char *const tails[] = {"s", "t", "re", "ve", "m", "ll", "d"};
    size_t k, j;
    for (k = 0; k < 7; k++) {
        size_t tl = strlen(tails[k]);
        if (i + 1 + tl > n) continue;
        for (j = 0; j < tl; j++) {
            char c = s[i + 1 + j];
            if (fold && c >= 'A' && c <= 'Z') c = (char)(c + 32);
            if (c != tails[k][j]) break;
        }
        if (j == tl) return 1 + tl;
    }
    return 0;
}

/* the end of the run of characters with class fn from byte j (at most max chars) */
static size_t sft__run_end(const char *s, size_t n, size_t j, int (*fn)(uint32_t), size_t max) {
    size_t count = 0, len;
    while (j < n && count < max && fn(sft__cp_at(s, n, j, &len))) { j += len; count++; }
    return j;
}

static int sft__is_newline(uint32_t cp) { return cp == '\r' || cp == '\n'; }

/* \s+(?!\S) then \s+ at a whitespace character */
static size_t sft__match_spaces(const char *s, size_t n, size_t i) {
    size_t end = sft__run_end(s, n, i, sft__is_space, SIZE_MAX), last = i, j = i, len;
    if (end == n) return end - i;
    while (j < end) { last = j; sft__cp_at(s, n, j, &len); j += len; }   /* the run's last character */
    return last > i ? last - i : end - i;
}

static size_t sft__pattern_match(int pat, const char *s, size_t n, size_t i) {
    size_t len, len2, j;
    uint32_t c = sft__cp_at(s, n, i, &len), c2 = i + len < n ? sft__cp_at(s, n, i + len, &len2) : 0;
    int has2 = i + len < n;
    if (c == '\'') {
        size_t k = sft__match_contraction(s, n, i, pat != SFT__PAT_GPT2);
        if (k) return k;
    }
    if (pat == SFT__PAT_GPT2) {
        j = (c == ' ' && has2) ? i + len : i;                  /* the optional leading space */
        c2 = j == i ? c : c2;
        if (sft__is_letter(c2)) return sft__run_end(s, n, j, sft__is_letter, SIZE_MAX) - i;
        if (sft__is_number(c2)) return sft__run_end(s, n, j, sft__is_number, SIZE_MAX) - i;
        if (sft__is_other(c2)) return sft__run_end(s, n, j, sft__is_other, SIZE_MAX) - i;
        return sft__match_spaces(s, n, i);
    }
    /* Llama-3 and Qwen2 */
    if (!sft__is_newline(c) && !sft__is_letter(c) && !sft__is_number(c) && has2 && sft__is_letter(c2))
        return sft__run_end(s, n, i + len, sft__is_letter, SIZE_MAX) - i;
    if (sft__is_letter(c)) return sft__run_end(s, n, i, sft__is_letter, SIZE_MAX) - i;
    if (sft__is_number(c)) return sft__run_end(s, n, i, sft__is_number, pat == SFT__PAT_LLAMA3 ? 3 : 1) - i;
    j = (c == ' ' && has2 && sft__is_other(c2)) ? i + len : i;
    if (sft__is_other(j == i ? c : c2)) {
        j = sft__run_end(s, n, j, sft__is_other, SIZE_MAX);
        return sft__run_end(s, n, j, sft__is_newline, SIZE_MAX) - i;
    }
    {   /* \s*[\r\n]+ : whitespace up to and including the run's last newline */
        size_t end = sft__run_end(s, n, i, sft__is_space, SIZE_MAX), nl = 0, found = 0;
        for (j = i; j < end; j += len)
            if (sft__is_newline(sft__cp_at(s, n, j, &len))) { nl = j + len; found = 1; }
        if (found) return nl - i;
    }
    return sft__match_spaces(s, n, i);
}

/* ============================================================================
   === tokenizer: the byte-level alphabet
   GPT-2's reversible map from bytes to printable characters: the printable
   Latin-1 bytes stand for themselves, the rest become U+0100 onwards. */

typedef struct sft__bytemap { char utf8[256][3]; unsigned char len[256]; int16_t back[512]; } sft__bytemap;

static void sft__bytemap_init(sft__bytemap *m) {
    int b, extra = 0;
    for (b = 0; b < 512; b++) m->back[b] = -1;
    for (b = 0; b < 256; b++) {
        int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        uint32_t cp = keep ? (uint32_t)b : 256u + (uint32_t)extra++;
        m->len[b] = (unsigned char)sft__utf8_put(cp, m->utf8[b]);
        m->back[cp] = (int16_t)b;
    }
}

/* ============================================================================
   === tokenizer: the object and loading tokenizer.json
   Each stage of Hugging Face's pipeline becomes a short list of steps:
   normalizer (NFC, Prepend, Replace), pre-tokenizer (Split with a known
   pattern, ByteLevel, Digits, Metaspace), the BPE model, the post-processor's
   single-sequence template, and the decoder (ByteLevel, Replace, ByteFallback,
   Fuse, Strip, Metaspace). */

#define SFT__TOK_MAX_STEPS 8

typedef enum {
    SFT__NORM_NFC, SFT__NORM_PREPEND, SFT__NORM_REPLACE,
    SFT__PRE_SPLIT, SFT__PRE_BYTELEVEL, SFT__PRE_DIGITS, SFT__PRE_METASPACE,
    SFT__DEC_BYTELEVEL, SFT__DEC_REPLACE, SFT__DEC_BYTEFALLBACK, SFT__DEC_FUSE, SFT__DEC_STRIP, SFT__DEC_METASPACE
} sft__tok_step_kind;

typedef struct sft__tok_step {
    sft__tok_step_kind kind;
    int   pattern;            /* SPLIT: SFT__PAT_*                                   */
    int   flag_a, flag_b;     /* BYTELEVEL: add_prefix_space, use_regex; DIGITS:
                                 individual; METASPACE: prepend (0 never, 1 always,
                                 2 first), split; STRIP: start, stop                  */
    char *from, *to;          /* PREPEND: to; REPLACE: from -> to; METASPACE: to    */
} sft__tok_step;

typedef struct sft__tok_added {
    const char *content;      /* the vocabulary's string for the id, or (normalized
                                 tokens) that string through the normalizer       */
    size_t      len;
    char       *norm_content; /* owned, when the normalizer changed it */
    int32_t     id;
    unsigned char special, lstrip, rstrip, single_word, normalized;
} sft__tok_added;

struct sft_tokenizer {
    sft_context   *ctx;
    int32_t        n_vocab;
    char         **token;          /* by id (NULL: unused id); owned    */
    uint32_t      *token_len;
    unsigned char *is_added;       /* by id: 1 added, 2 added + special */
    sft__strmap    vocab;          /* model tokens and added tokens      */
    sft__pairmap   merges;
    sft__pairmap   nfc_pairs;      /* composition pairs, when an NFC step is used */
    sft__tok_added *added;
    int            n_added;
    int           *added_order;     /* added tokens by first byte, longest first */
    int            added_start[257];
    sft__tok_step  norm[SFT__TOK_MAX_STEPS], pre[SFT__TOK_MAX_STEPS], dec[SFT__TOK_MAX_STEPS];
    int            n_norm, n_pre, n_dec;
    int            byte_fallback, ignore_merges, fuse_unk, byte_level;
    int32_t        unk_id;
    int32_t        tmpl_before[4], tmpl_after[4];   /* post-processor ids around a sequence */
    int            n_before, n_after;
    sft_tokenizer_info info;
    char          *chat_template;
    sft__bytemap   bytes;
    /* encode scratch, reused */
    sft__strmap    cache;          /* pre-token -> offset in cache_ids */
    sft__vec       cache_keys, cache_ids, sym, buf;
};

static sft_status sft__tok_fail(const char *file, const char *what, const char *name) {
    return sft__fail(SFT_ERR_UNSUPPORTED, "%s: %s '%s' is not supported", file, what, name ? name : "(missing type)");
}

static const char *sft__json_str(const sft_json *obj, const char *key) {
    const sft_json *v = sft_json_get(obj, key);
    return v && v->type == SFT_JSON_STRING ? v->string : NULL;
}

static int sft__json_bool(const sft_json *obj, const char *key, int dflt) {
    const sft_json *v = sft_json_get(obj, key);
    return v ? v->type == SFT_JSON_TRUE : dflt;
}

static char *sft__tok_strdup(sft_context *ctx, const char *s, size_t n) {
    char *d = (char *)sft__alloc(ctx, n + 1);
    if (d) { memcpy(d, s, n); d[n] = 0; }
    return d;
}

/* sft__tok_set_token: the string of id (model or added token). */
static sft_status sft__tok_set_token(sft_tokenizer *t, const char *file, int32_t id, const char *s, size_t n) {
    if (id < 0 || id >= t->n_vocab) return sft__fail(SFT_ERR_FORMAT, "%s: token id %d outside [0, %d)", file, id, t->n_vocab);
    if (t->token[id]) {
        if (t->token_len[id] == n && memcmp(t->token[id], s, n) == 0) return SFT_OK;
        return sft__fail(SFT_ERR_FORMAT, "%s: id %d names two tokens ('%s' and '%.*s')", file, id, t->token[id], (int)n, s);
    }
    t->token[id] = sft__tok_strdup(t->ctx, s, n);
    if (!t->token[id]) return sft__fail(SFT_ERR_NOMEM, "%s: token %d", file, id);
    t->token_len[id] = (uint32_t)n;
    return sft__strmap_put(t->ctx, &t->vocab, t->token[id], n, id);
}

/* the id space: the largest id in vocab and added_tokens, plus one */
static sft_status sft__tok_count_ids(const char *file, const sft_json *vocab, const sft_json *added, int32_t *n) {
    size_t i;
    double top = -1;
    for (i = 0; i < vocab->length; i++) {
        const sft_json *v = &vocab->items[i];
        if (v->type != SFT_JSON_NUMBER || v->number < 0 || v->number > 16777216 || v->number != floor(v->number))
            return sft__fail(SFT_ERR_FORMAT, "%s: model.vocab['%s'] is not an id", file, vocab->keys[i]);
        if (v->number > top) top = v->number;
    }
    for (i = 0; added && i < added->length; i++) {
        const sft_json *id = sft_json_get(&added->items[i], "id");
        if (!id || id->type != SFT_JSON_NUMBER || id->number < 0 || id->number > 16777216 || id->number != floor(id->number))
            return sft__fail(SFT_ERR_FORMAT, "%s: added_tokens[%zu].id is missing or not an id", file, i);
        if (id->number > top) top = id->number;
    }
    *n = (int32_t)top + 1;
    return SFT_OK;
}

static sft_status sft__tok_load_merges(sft_tokenizer *t, const char *file, const sft_json *merges) {
    size_t i;
    SFT__TRY(sft__pairmap_init(t->ctx, &t->merges, merges ? merges->length : 0));
    for (i = 0; merges && i < merges->length; i++) {
        const sft_json *m = &merges->items[i];
        const char *a, *b;
        size_t la, lb;
        int32_t ia, ib, im;
        char *joined;
        if (m->type == SFT_JSON_STRING) {                     /* "a b" */
            const char *sp = strchr(m->string, ' ');
            if (!sp) return sft__fail(SFT_ERR_FORMAT, "%s: merges[%zu] '%s' has no space", file, i, m->string);
            a = m->string; la = (size_t)(sp - a); b = sp + 1; lb = strlen(b);
        } else if (m->type == SFT_JSON_ARRAY && m->length == 2 && m->items[0].type == SFT_JSON_STRING &&
                   m->items[1].type == SFT_JSON_STRING) {     /* ["a", "b"] */
            a = m->items[0].string; la = m->items[0].length; b = m->items[1].string; lb = m->items[1].length;
        } else return sft__fail(SFT_ERR_FORMAT, "%s: merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", file, i);
        ia = sft__strmap_get(&t->vocab, a, la);
        ib = sft__strmap_get(&t->vocab, b, lb);
        joined = (char *)sft__alloc(t->ctx, la + lb + 1);
        if (!joined) return sft__fail(SFT_ERR_NOMEM, "%s: merges", file);
        memcpy(joined, a, la); memcpy(joined + la, b, lb);
        im = sft__strmap_get(&t->vocab, joined, la + lb);
        sft__free(t->ctx, joined);
        if (ia < 0 || ib < 0 || im < 0)
            return sft__fail(SFT_ERR_FORMAT, "%s: merges[%zu] '%.*s' + '%.*s' names a token not in the vocabulary", file, i,
                             (int)la, a, (int)lb, b);
        sft__pairmap_put(&t->merges, ia, ib, (int32_t)i, im);
    }
    return SFT_OK;
}

static sft_status sft__tok_load_added(sft_tokenizer *t, const char *file, const sft_json *added) {
    size_t i;
    if (!added) return SFT_OK;
    t->added = (sft__tok_added *)sft__calloc(t->ctx, added->length + 1, sizeof(sft__tok_added));
    if (!t->added) return sft__fail(SFT_ERR_NOMEM, "%s: added_tokens", file);
    for (i = 0; i < added->length; i++) {
        const sft_json *a = &added->items[i], *content = sft_json_get(a, "content");
        sft__tok_added *x = &t->added[t->n_added];
        if (!content || content->type != SFT_JSON_STRING || content->length == 0)
            return sft__fail(SFT_ERR_FORMAT, "%s: added_tokens[%zu].content is missing or empty", file, i);
        x->id = (int32_t)sft_json_get(a, "id")->number;
        SFT__TRY(sft__tok_set_token(t, file, x->id, content->string, content->length));
        x->content = t->token[x->id]; x->len = content->length;
        x->special = (unsigned char)sft__json_bool(a, "special", 0);
        x->lstrip = (unsigned char)sft__json_bool(a, "lstrip", 0);
        x->rstrip = (unsigned char)sft__json_bool(a, "rstrip", 0);
        x->single_word = (unsigned char)sft__json_bool(a, "single_word", 0);
        x->normalized = (unsigned char)sft__json_bool(a, "normalized", !x->special);
        t->is_added[x->id] = (unsigned char)(x->special ? 2 : 1);
        t->n_added++;
    }
    return SFT_OK;
}

/* A Sequence or a single step; kinds maps a type name to a step kind. */
typedef sft_status (*sft__tok_step_fn)(sft_tokenizer *t, const char *file, const sft_json *j, sft__tok_step *s);

static sft_status sft__tok_steps(sft_tokenizer *t, const char *file, const sft_json *j, const char *key, sft__tok_step *out,
                                 int *n, sft__tok_step_fn fn) {
    const char *type;
    if (!j || j->type == SFT_JSON_NULL) return SFT_OK;
    type = sft__json_str(j, "type");
    if (type && strcmp(type, "Sequence") == 0) {
        const sft_json *list = sft_json_get(j, key);
        size_t i;
        if (!list || list->type != SFT_JSON_ARRAY) return sft__fail(SFT_ERR_FORMAT, "%s: a Sequence without '%s'", file, key);
        for (i = 0; i < list->length; i++) SFT__TRY(sft__tok_steps(t, file, &list->items[i], key, out, n, fn));
        return SFT_OK;
    }
    if (*n == SFT__TOK_MAX_STEPS) return sft__fail(SFT_ERR_LIMIT, "%s: more than %d steps in one stage", file, SFT__TOK_MAX_STEPS);
    memset(&out[*n], 0, sizeof out[*n]);
    SFT__TRY(fn(t, file, j, &out[*n]));
    (*n)++;
    return SFT_OK;
}

static sft_status sft__tok_str_field(sft_tokenizer *t, const char *file, const sft_json *j, const char *key, char **out) {
    const sft_json *v = sft_json_get(j, key);
    if (!v || v->type != SFT_JSON_STRING) return sft__fail(SFT_ERR_FORMAT, "%s: '%s' missing in a %s step", file, key,
                                                           sft__json_str(j, "type"));
    *out = sft__tok_strdup(t->ctx, v->string, v->length);
    return *out ? SFT_OK : sft__fail(SFT_ERR_NOMEM, "%s", file);
}

/* Replace's pattern: {"String": "x"} (a regex pattern is not supported) */
static sft_status sft__tok_replace(sft_tokenizer *t, const char *file, const sft_json *j, sft__tok_step *s) {
    const sft_json *pat = sft_json_get(j, "pattern");
    const char *str = pat ? sft__json_str(pat, "String") : NULL;
    if (!str) return sft__tok_fail(file, "Replace pattern", pat && sft_json_get(pat, "Regex") ? "Regex" : NULL);
    s->from = sft__tok_strdup(t->ctx, str, strlen(str));
    if (!s->from) return sft__fail(SFT_ERR_NOMEM, "%s", file);
    return sft__tok_str_field(t, file, j, "content", &s->to);
}

static sft_status sft__nfc_tables(sft_tokenizer *t);

static sft_status sft__tok_norm_step(sft_tokenizer *t, const char *file, const sft_json *j, sft__tok_step *s) {
    const char *type = sft__json_str(j, "type");
    if (type && strcmp(type, "NFC") == 0) { s->kind = SFT__NORM_NFC; return t->nfc_pairs.cap ? SFT_OK : sft__nfc_tables(t); }
    if (type && strcmp(type, "Prepend") == 0) { s->kind = SFT__NORM_PREPEND; return sft__tok_str_field(t, file, j, "prepend", &s->to); }
    if (type && strcmp(type, "Replace") == 0) { s->kind = SFT__NORM_REPLACE; return sft__tok_replace(t, file, j, s); }
    return sft__tok_fail(file, "normalizer", type);
}

static sft_status sft__tok_pre_step(sft_tokenizer *t, const char *file, const sft_json *j, sft__tok_step *s) {
    const char *type = sft__json_str(j, "type");
    if (type && strcmp(type, "ByteLevel") == 0) {
        s->kind = SFT__PRE_BYTELEVEL;
        s->flag_a = sft__json_bool(j, "add_prefix_space", 1);
        s->flag_b = sft__json_bool(j, "use_regex", 1);
        t->byte_level = 1;
        return SFT_OK;
    }
    if (type && strcmp(type, "Split") == 0) {
        const sft_json *pat = sft_json_get(j, "pattern");
        const char *re = pat ? sft__json_str(pat, "Regex") : NULL, *behavior = sft__json_str(j, "behavior");
        int k;
        s->kind = SFT__PRE_SPLIT;
        if (!re) return sft__tok_fail(file, "Split pattern", pat ? "String" : NULL);
        for (k = 0; k < 3 && strcmp(re, sft__pattern_text[k]) != 0; k++) {}
        if (k == 3) return sft__tok_fail(file, "Split regex", re);
        if (!behavior || strcmp(behavior, "Isolated") != 0 || sft__json_bool(j, "invert", 0))
            return sft__tok_fail(file, "Split behavior", behavior);
        s->pattern = k;
        return SFT_OK;
    }
    if (type && strcmp(type, "Digits") == 0) { s->kind = SFT__PRE_DIGITS; s->flag_a = sft__json_bool(j, "individual_digits", 0); return SFT_OK; }
    if (type && strcmp(type, "Metaspace") == 0) {
        const char *scheme = sft__json_str(j, "prepend_scheme");
        s->kind = SFT__PRE_METASPACE;
        if (scheme && strcmp(scheme, "never") != 0 && strcmp(scheme, "first") != 0 && strcmp(scheme, "always") != 0)
            return sft__tok_fail(file, "Metaspace prepend_scheme", scheme);
        s->flag_a = !scheme ? (sft__json_bool(j, "add_prefix_space", 1) ? 1 : 0) : strcmp(scheme, "never") == 0 ? 0
                    : strcmp(scheme, "first") == 0 ? 2 : 1;
        s->flag_b = sft__json_bool(j, "split", 1);
        SFT__TRY(sft__tok_str_field(t, file, j, "replacement", &s->to));
        {
            size_t len;
            if (!s->to[0] || (sft__cp_at(s->to, strlen(s->to), 0, &len), len != strlen(s->to)))
                return sft__fail(SFT_ERR_FORMAT, "%s: Metaspace replacement must be one character", file);
        }
        return SFT_OK;
    }
    return sft__tok_fail(file, "pre_tokenizer", type);
}

static sft_status sft__tok_dec_step(sft_tokenizer *t, const char *file, const sft_json *j, sft__tok_step *s) {
    const char *type = sft__json_str(j, "type");
    if (type && strcmp(type, "ByteLevel") == 0) { s->kind = SFT__DEC_BYTELEVEL; return SFT_OK; }
    if (type && strcmp(type, "ByteFallback") == 0) { s->kind = SFT__DEC_BYTEFALLBACK; return SFT_OK; }
    if (type && strcmp(type, "Fuse") == 0) { s->kind = SFT__DEC_FUSE; return SFT_OK; }
    if (type && strcmp(type, "Replace") == 0) { s->kind = SFT__DEC_REPLACE; return sft__tok_replace(t, file, j, s); }
    if (type && strcmp(type, "Strip") == 0) {
        const sft_json *st = sft_json_get(j, "start"), *sp = sft_json_get(j, "stop");
        const char *content = sft__json_str(j, "content");
        if (!content || strcmp(content, " ") != 0) return sft__tok_fail(file, "Strip content", content);
        s->kind = SFT__DEC_STRIP;
        if ((st && (st->type != SFT_JSON_NUMBER || !(st->number >= 0 && st->number <= 65536))) ||
            (sp && (sp->type != SFT_JSON_NUMBER || !(sp->number >= 0 && sp->number <= 65536))))
            return sft__fail(SFT_ERR_FORMAT, "%s: Strip decoder: start/stop must be counts", file);
        s->flag_a = st ? (int)st->number : 0;
        s->flag_b = sp ? (int)sp->number : 0;
        return SFT_OK;
    }
    if (type && strcmp(type, "Metaspace") == 0) {
        const char *scheme = sft__json_str(j, "prepend_scheme");
        s->kind = SFT__DEC_METASPACE;
        s->flag_a = !scheme ? sft__json_bool(j, "add_prefix_space", 1) : strcmp(scheme, "never") != 0;
        return sft__tok_str_field(t, file, j, "replacement", &s->to);
    }
    return sft__tok_fail(file, "decoder", type);
}

/* post_processor: nothing, ByteLevel (offsets only), or a TemplateProcessing
   whose single-sequence template is special tokens around $A. */
static sft_status sft__tok_post(sft_tokenizer *t, const char *file, const sft_json *j) {
    const char *type;
    const sft_json *single, *specials;
    size_t i;
    int after = 0;
    if (!j || j->type == SFT_JSON_NULL) return SFT_OK;
    type = sft__json_str(j, "type");
    if (type && strcmp(type, "Sequence") == 0) {
        const sft_json *list = sft_json_get(j, "processors");
        for (i = 0; list && i < list->length; i++) SFT__TRY(sft__tok_post(t, file, &list->items[i]));
        return SFT_OK;
    }
    if (type && strcmp(type, "ByteLevel") == 0) return SFT_OK;
    if (!type || strcmp(type, "TemplateProcessing") != 0) return sft__tok_fail(file, "post_processor", type);
    single = sft_json_get(j, "single");
    specials = sft_json_get(j, "special_tokens");
    if (!single || single->type != SFT_JSON_ARRAY) return sft__fail(SFT_ERR_FORMAT, "%s: post_processor.single", file);
    for (i = 0; i < single->length; i++) {
        const sft_json *item = &single->items[i], *sp = sft_json_get(item, "SpecialToken");
        const sft_json *def, *ids;
        size_t k;
        if (sft_json_get(item, "Sequence")) { after = 1; continue; }
        if (!sp || !sft__json_str(sp, "id")) return sft__fail(SFT_ERR_FORMAT, "%s: post_processor.single[%zu]", file, i);
        def = specials ? sft_json_get(specials, sft__json_str(sp, "id")) : NULL;
        ids = def ? sft_json_get(def, "ids") : NULL;
        if (!ids || ids->type != SFT_JSON_ARRAY)
            return sft__fail(SFT_ERR_FORMAT, "%s: post_processor: no ids for '%s'", file, sft__json_str(sp, "id"));
        for (k = 0; k < ids->length; k++) {
            int32_t *dst = after ? t->tmpl_after : t->tmpl_before;
            int *cnt = after ? &t->n_after : &t->n_before;
            double v = ids->items[k].number;
            if (*cnt == 4) return sft__fail(SFT_ERR_LIMIT, "%s: post_processor template has more than 4 ids on a side", file);
            if (ids->items[k].type != SFT_JSON_NUMBER || v < 0 || v >= t->n_vocab || v != floor(v))
                return sft__fail(SFT_ERR_FORMAT, "%s: post_processor: '%s' has an id outside the vocabulary", file,
                                 sft__json_str(sp, "id"));
            dst[(*cnt)++] = (int32_t)v;
        }
    }
    return SFT_OK;
}

/* tokenizer_config.json: bos/eos/pad/unk (a string or {"content": ...}),
   add_bos_token, add_eos_token, chat_template. */
static int32_t sft__tok_config_id(const sft_tokenizer *t, const sft_json *cfg, const char *key) {
    const sft_json *v = sft_json_get(cfg, key);
    const char *s = !v ? NULL : v->type == SFT_JSON_STRING ? v->string : sft__json_str(v, "content");
    return s ? sft__strmap_get(&t->vocab, s, strlen(s)) : -1;
}

/* sft__path_join: dir + "/" + name into out, or a failure naming the path. */
static sft_status sft__path_join(char *out, size_t cap, const char *dir, size_t dir_len, const char *name) {
    size_t nl = strlen(name);
    if (dir_len + 1 + nl + 1 > cap) return sft__fail(SFT_ERR_ARG, "path too long: %.*s/%s", (int)(dir_len > 200 ? 200 : dir_len), dir, name);
    memcpy(out, dir, dir_len);
    out[dir_len] = '/';
    memcpy(out + dir_len + 1, name, nl + 1);
    return SFT_OK;
}

static sft_status sft__tok_load_config(sft_tokenizer *t, const char *dir) {
    char path[4096], *text = NULL;
    size_t len;
    sft_json *cfg = NULL;
    const char *tmpl;
    sft_status s;
    SFT__TRY(sft__path_join(path, sizeof path, dir, strlen(dir), "tokenizer_config.json"));
    if (access(path, F_OK) != 0) return SFT_OK;
    SFT__TRY(sft_file_read(t->ctx, path, 0, &text, &len));
    s = sft_json_parse(t->ctx, text, len, path, NULL, &cfg);
    sft__free(t->ctx, text);
    if (s != SFT_OK) return s;
    t->info.bos_id = sft__tok_config_id(t, cfg, "bos_token");
    t->info.eos_id = sft__tok_config_id(t, cfg, "eos_token");
    t->info.pad_id = sft__tok_config_id(t, cfg, "pad_token");
    if (sft_json_get(cfg, "unk_token")) t->info.unk_id = sft__tok_config_id(t, cfg, "unk_token");
    t->info.add_bos_token = sft__json_bool(cfg, "add_bos_token", 0);
    t->info.add_eos_token = sft__json_bool(cfg, "add_eos_token", 0);
    tmpl = sft__json_str(cfg, "chat_template");
    if (tmpl) {
        t->chat_template = sft__tok_strdup(t->ctx, tmpl, strlen(tmpl));
        if (!t->chat_template) { sft_json_free(cfg); return sft__fail(SFT_ERR_NOMEM, "%s: chat_template", path); }
        t->info.chat_template = t->chat_template;
    }
    sft_json_free(cfg);
    return SFT_OK;
}

static sft_status sft__tok_normalize(sft_tokenizer *t, const char *s, size_t n, sft__vec *out);

/* Added tokens matched on normalized text are looked for in their normalized
   form (Hugging Face builds that trie from the normalized contents). */
static sft_status sft__tok_normalize_added(sft_tokenizer *t) {
    int k;
    sft__vec v;
    if (!t->n_norm) return SFT_OK;
    memset(&v, 0, sizeof v);
    v.elem = 1;
    for (k = 0; k < t->n_added; k++) {
        sft__tok_added *a = &t->added[k];
        if (!a->normalized) continue;
        {
            sft_status s2 = sft__tok_normalize(t, a->content, a->len, &v);
            if (s2 != SFT_OK) { sft__free(t->ctx, v.p); return s2; }
        }
        a->norm_content = sft__tok_strdup(t->ctx, (const char *)v.p, v.len);
        if (!a->norm_content) { sft__free(t->ctx, v.p); return sft__fail(SFT_ERR_NOMEM, "tokenizer: added tokens"); }
        a->content = a->norm_content;
        a->len = v.len;
    }
    sft__free(t->ctx, v.p);
    return SFT_OK;
}

/* sft__tok_index_added: the added tokens ordered by first byte, longer first, so
   that the text scan looks only at tokens that can start at a position. */
static sft_status sft__tok_index_added(sft_tokenizer *t) {
    int k, b, n = 0;
    t->added_order = (int *)sft__alloc(t->ctx, (size_t)(t->n_added + 1) * sizeof(int));
    if (!t->added_order) return sft__fail(SFT_ERR_NOMEM, "tokenizer: added token index");
    for (b = 0; b < 256; b++) {
        int first = n;
        t->added_start[b] = n;
        for (k = 0; k < t->n_added; k++)
            if (t->added[k].len && (unsigned char)t->added[k].content[0] == b) {   /* "" never matches */
                int j = n++;
                while (j > first && t->added[t->added_order[j - 1]].len < t->added[k].len) {   /* insertion by length */
                    t->added_order[j] = t->added_order[j - 1];
                    j--;
                }
                t->added_order[j] = k;
            }
    }
    t->added_start[256] = n;
    return SFT_OK;
}

static sft_status sft__tok_build(sft_tokenizer *t, const char *file, const sft_json *root) {
    const sft_json *model = sft_json_get(root, "model"), *vocab, *merges, *added = sft_json_get(root, "added_tokens");
    const char *type = model ? sft__json_str(model, "type") : NULL, *unk;
    size_t i;
    if (!model) return sft__fail(SFT_ERR_FORMAT, "%s: no 'model'", file);
    if (!type || strcmp(type, "BPE") != 0) return sft__tok_fail(file, "model type", type);
    {
        const char *csp = sft__json_str(model, "continuing_subword_prefix"), *eow = sft__json_str(model, "end_of_word_suffix");
        if ((csp && *csp) || (eow && *eow)) return sft__tok_fail(file, "BPE option", "continuing_subword_prefix/end_of_word_suffix");
    }
    vocab = sft_json_get(model, "vocab");
    merges = sft_json_get(model, "merges");
    if (!vocab || vocab->type != SFT_JSON_OBJECT) return sft__fail(SFT_ERR_FORMAT, "%s: model.vocab is missing", file);
    if (merges && merges->type != SFT_JSON_ARRAY) return sft__fail(SFT_ERR_FORMAT, "%s: model.merges is not an array", file);
    if (added && added->type != SFT_JSON_ARRAY) return sft__fail(SFT_ERR_FORMAT, "%s: added_tokens is not an array", file);
    SFT__TRY(sft__tok_count_ids(file, vocab, added, &t->n_vocab));
    t->token = (char **)sft__calloc(t->ctx, (size_t)t->n_vocab, sizeof(char *));
    t->token_len = (uint32_t *)sft__calloc(t->ctx, (size_t)t->n_vocab, sizeof(uint32_t));
    t->is_added = (unsigned char *)sft__calloc(t->ctx, (size_t)t->n_vocab, 1);
    if (!t->token || !t->token_len || !t->is_added) return sft__fail(SFT_ERR_NOMEM, "%s: %d tokens", file, t->n_vocab);
    for (i = 0; i < vocab->length; i++)
        SFT__TRY(sft__tok_set_token(t, file, (int32_t)vocab->items[i].number, vocab->keys[i], vocab->key_lengths[i]));
    SFT__TRY(sft__tok_load_added(t, file, added));
    SFT__TRY(sft__tok_load_merges(t, file, merges));
    t->byte_fallback = sft__json_bool(model, "byte_fallback", 0);
    t->ignore_merges = sft__json_bool(model, "ignore_merges", 0);
    t->fuse_unk = sft__json_bool(model, "fuse_unk", 0);
    unk = sft__json_str(model, "unk_token");
    t->unk_id = unk ? sft__strmap_get(&t->vocab, unk, strlen(unk)) : -1;
    if (sft_json_get(model, "dropout") && sft_json_get(model, "dropout")->type == SFT_JSON_NUMBER &&
        sft_json_get(model, "dropout")->number > 0)
        return sft__tok_fail(file, "BPE option", "dropout");
    SFT__TRY(sft__tok_steps(t, file, sft_json_get(root, "normalizer"), "normalizers", t->norm, &t->n_norm, sft__tok_norm_step));
    SFT__TRY(sft__tok_steps(t, file, sft_json_get(root, "pre_tokenizer"), "pretokenizers", t->pre, &t->n_pre, sft__tok_pre_step));
    SFT__TRY(sft__tok_steps(t, file, sft_json_get(root, "decoder"), "decoders", t->dec, &t->n_dec, sft__tok_dec_step));
    SFT__TRY(sft__tok_post(t, file, sft_json_get(root, "post_processor")));
    t->info.unk_id = t->unk_id;
    SFT__TRY(sft__tok_normalize_added(t));
    return sft__tok_index_added(t);
}

SFTDEF void sft_tokenizer_destroy(sft_tokenizer *t) {
    int32_t i;
    int k;
    sft_context *ctx;
    if (!t) return;
    ctx = t->ctx;
    for (i = 0; t->token && i < t->n_vocab; i++) sft__free(ctx, t->token[i]);
    for (k = 0; t->added && k < t->n_added; k++) sft__free(ctx, t->added[k].norm_content);
    sft__free(ctx, t->added_order);
    sft__free(ctx, t->token); sft__free(ctx, t->token_len); sft__free(ctx, t->is_added); sft__free(ctx, t->added);
    for (k = 0; k < SFT__TOK_MAX_STEPS; k++) {
        sft__free(ctx, t->norm[k].from); sft__free(ctx, t->norm[k].to);
        sft__free(ctx, t->pre[k].from); sft__free(ctx, t->pre[k].to);
        sft__free(ctx, t->dec[k].from); sft__free(ctx, t->dec[k].to);
    }
    sft__strmap_free(ctx, &t->vocab); sft__pairmap_free(ctx, &t->merges); sft__strmap_free(ctx, &t->cache);
    sft__pairmap_free(ctx, &t->nfc_pairs);
    sft__free(ctx, t->cache_keys.p); sft__free(ctx, t->cache_ids.p); sft__free(ctx, t->sym.p); sft__free(ctx, t->buf.p);
    sft__free(ctx, t->chat_template);
    sft__free(ctx, t);
}

SFTDEF sft_status sft_tokenizer_load(sft_context *ctx, const char *path, sft_tokenizer **out) {
    char file[4096], dir[4096], *text = NULL;
    size_t len;
    struct stat st;
    sft_json *root = NULL;
    sft_tokenizer *t;
    sft_status s;
    if (!out) return sft__fail(SFT_ERR_ARG, "sft_tokenizer_load: out is NULL");
    *out = NULL;
    if (!ctx || !path) return sft__fail(SFT_ERR_ARG, "sft_tokenizer_load: NULL argument");
    if (strlen(path) + 1 > sizeof file) return sft__fail(SFT_ERR_ARG, "sft_tokenizer_load: path too long: %.200s", path);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        memcpy(dir, path, strlen(path) + 1);
        SFT__TRY(sft__path_join(file, sizeof file, path, strlen(path), "tokenizer.json"));
    } else {
        const char *slash = strrchr(path, '/');
        memcpy(file, path, strlen(path) + 1);
        if (slash) { memcpy(dir, path, (size_t)(slash - path)); dir[slash - path] = 0; }
        else memcpy(dir, ".", 2);
    }
    SFT__TRY(sft_file_read(ctx, file, 0, &text, &len));
    s = sft_json_parse(ctx, text, len, file, NULL, &root);
    sft__free(ctx, text);
    if (s != SFT_OK) return s;
    t = (sft_tokenizer *)sft__calloc(ctx, 1, sizeof *t);
    if (!t) { sft_json_free(root); return sft__fail(SFT_ERR_NOMEM, "%s: tokenizer", file); }
    t->ctx = ctx;
    t->info.bos_id = t->info.eos_id = t->info.pad_id = t->info.unk_id = -1;
    t->cache_keys.elem = 1; t->cache_ids.elem = sizeof(int32_t); t->sym.elem = sizeof(int32_t); t->buf.elem = 1;
    sft__bytemap_init(&t->bytes);
    s = sft__tok_build(t, file, root);
    sft_json_free(root);
    if (s == SFT_OK) s = sft__tok_load_config(t, dir);
    if (s != SFT_OK) { sft_tokenizer_destroy(t); return s; }
    *out = t;
    return SFT_OK;
}

SFTDEF int32_t sft_tokenizer_vocab_size(const sft_tokenizer *t) { return t ? t->n_vocab : 0; }
SFTDEF const char *sft_tokenizer_id_to_token(const sft_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab ? t->token[id] : NULL;
}
SFTDEF int32_t sft_tokenizer_token_to_id(const sft_tokenizer *t, const char *token) {
    return t && token ? sft__strmap_get(&t->vocab, token, strlen(token)) : -1;
}
SFTDEF sft_tokenizer_info sft_tokenizer_get_info(const sft_tokenizer *t) {
    sft_tokenizer_info none;
    if (t) return t->info;
    memset(&none, 0, sizeof none);
    none.bos_id = none.eos_id = none.pad_id = none.unk_id = -1;
    return none;
}

/* ============================================================================
   === tokenizer: NFC
   Canonical decomposition (tables, Hangul by arithmetic), canonical ordering of
   combining marks, then canonical composition of primary composites, as in
   UAX #15. */

static uint32_t sft__ccc(uint32_t cp) {
    size_t lo = 0, hi = SFT__COUNT(sft__uni_ccc);
    if (cp < 0x300) return 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < sft__uni_ccc[mid][0]) hi = mid;
        else if (cp > sft__uni_ccc[mid][1]) lo = mid + 1;
        else return sft__uni_ccc[mid][2];
    }
    return 0;
}

static const uint32_t *sft__decomp_of(uint32_t cp) {
    size_t lo = 0, hi = SFT__COUNT(sft__uni_decomp);
    if (cp < 0xC0) return NULL;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < sft__uni_decomp[mid][0]) hi = mid;
        else if (cp > sft__uni_decomp[mid][0]) lo = mid + 1;
        else return sft__uni_decomp[mid];
    }
    return NULL;
}

#define SFT__HANGUL_S 0xAC00u
#define SFT__HANGUL_L 0x1100u
#define SFT__HANGUL_V 0x1161u
#define SFT__HANGUL_T 0x11A7u

static sft_status sft__nfd_push(sft_context *ctx, sft__vec *v, uint32_t cp, int depth) {
    const uint32_t *d;
    if (cp >= SFT__HANGUL_S && cp < SFT__HANGUL_S + 11172) {
        uint32_t s = cp - SFT__HANGUL_S, parts[3];
        parts[0] = SFT__HANGUL_L + s / 588; parts[1] = SFT__HANGUL_V + (s % 588) / 28; parts[2] = SFT__HANGUL_T + s % 28;
        return sft__vec_push(ctx, v, parts, parts[2] == SFT__HANGUL_T ? 2 : 3);
    }
    d = depth < 8 ? sft__decomp_of(cp) : NULL;
    if (!d) return sft__vec_push(ctx, v, &cp, 1);
    SFT__TRY(sft__nfd_push(ctx, v, d[1], depth + 1));
    return (d[2] & 0x7FFFFFFFu) ? sft__nfd_push(ctx, v, d[2] & 0x7FFFFFFFu, depth + 1) : SFT_OK;
}

/* the primary composite of a then b, or 0 */
static uint32_t sft__compose(const sft_tokenizer *t, uint32_t a, uint32_t b) {
    int32_t merged;
    if (a >= SFT__HANGUL_L && a < SFT__HANGUL_L + 19 && b >= SFT__HANGUL_V && b < SFT__HANGUL_V + 21)
        return SFT__HANGUL_S + ((a - SFT__HANGUL_L) * 21 + (b - SFT__HANGUL_V)) * 28;
    if (a >= SFT__HANGUL_S && a < SFT__HANGUL_S + 11172 && (a - SFT__HANGUL_S) % 28 == 0 && b > SFT__HANGUL_T &&
        b < SFT__HANGUL_T + 28)
        return a + (b - SFT__HANGUL_T);
    return sft__pairmap_get(&t->nfc_pairs, (int32_t)a, (int32_t)b, &merged) >= 0 ? (uint32_t)merged : 0;
}

static sft_status sft__nfc_tables(sft_tokenizer *t) {
    size_t i;
    SFT__TRY(sft__pairmap_init(t->ctx, &t->nfc_pairs, SFT__COUNT(sft__uni_decomp)));
    for (i = 0; i < SFT__COUNT(sft__uni_decomp); i++)
        if (sft__uni_decomp[i][2] & 0x80000000u)
            sft__pairmap_put(&t->nfc_pairs, (int32_t)sft__uni_decomp[i][1], (int32_t)(sft__uni_decomp[i][2] & 0x7FFFFFFFu), 0,
                             (int32_t)sft__uni_decomp[i][0]);
    return SFT_OK;
}

/* sft__sort_marks: stable sort of n combining marks by class: insertion for a
   few, counting sort (classes are 1..254) for long runs. */
static sft_status sft__sort_marks(sft_context *ctx, uint32_t *c, size_t n) {
    size_t i, start[256], k;
    uint32_t *tmp;
    if (n <= 32) {
        for (i = 1; i < n; i++) {
            size_t j = i;
            while (j > 0 && sft__ccc(c[j - 1]) > sft__ccc(c[j])) { uint32_t x = c[j]; c[j] = c[j - 1]; c[j - 1] = x; j--; }
        }
        return SFT_OK;
    }
    tmp = (uint32_t *)sft__alloc(ctx, n * sizeof(uint32_t));
    if (!tmp) return sft__fail(SFT_ERR_NOMEM, "tokenizer: NFC of %zu marks", n);
    memset(start, 0, sizeof start);
    for (i = 0; i < n; i++) start[sft__ccc(c[i]) & 255]++;
    for (k = 0, i = 0; k < 256; k++) { size_t cnt = start[k]; start[k] = i; i += cnt; }
    for (i = 0; i < n; i++) tmp[start[sft__ccc(c[i]) & 255]++] = c[i];
    memcpy(c, tmp, n * sizeof(uint32_t));
    sft__free(ctx, tmp);
    return SFT_OK;
}

/* sft__nfc: s[0..n) (valid UTF-8) in Normalization Form C, into out */
static sft_status sft__nfc(sft_tokenizer *t, const char *s, size_t n, sft__vec *out) {
    sft__vec cps;
    uint32_t *c, last_class;
    size_t i, len, count, starter = 0, w;
    sft_status res = SFT_OK;
    memset(&cps, 0, sizeof cps);
    cps.elem = sizeof(uint32_t);
    for (i = 0; i < n && res == SFT_OK; i += len) res = sft__nfd_push(t->ctx, &cps, sft__cp_at(s, n, i, &len), 0);
    if (res != SFT_OK) { sft__free(t->ctx, cps.p); return res; }
    c = (uint32_t *)cps.p;
    count = cps.len;
    for (i = 0; i < count && res == SFT_OK;) {   /* canonical order: a stable sort of each run of marks */
        size_t a = i, b;
        while (a < count && sft__ccc(c[a]) == 0) a++;
        for (b = a; b < count && sft__ccc(c[b]) != 0; b++) {}
        if (b - a > 1) res = sft__sort_marks(t->ctx, c + a, b - a);
        i = b > a ? b : a + 1;
    }
    if (res != SFT_OK) { sft__free(t->ctx, cps.p); return res; }
    if (count) {                                  /* canonical composition */
        last_class = sft__ccc(c[0]) ? 256 : 0;
        for (i = 1, w = 1; i < count; i++) {
            uint32_t cls = sft__ccc(c[i]), comp = sft__compose(t, c[starter], c[i]);
            if (comp && (last_class < cls || last_class == 0)) { c[starter] = comp; continue; }
            if (cls == 0) starter = w;
            last_class = cls;
            c[w++] = c[i];
        }
        count = w;
    }
    out->len = 0;
    for (i = 0; i < count && res == SFT_OK; i++) {
        char u[4];
        res = sft__vec_push(t->ctx, out, u, sft__utf8_put(c[i], u));
    }
    sft__free(t->ctx, cps.p);
    return res;
}

/* ============================================================================
   === tokenizer: encode
   Hugging Face's order: cut the text at added tokens that are matched on the
   raw text, normalize each remaining piece, cut again at added tokens matched
   on normalized text, pre-tokenize each piece into words, and run BPE on each
   word (with a cache: words repeat). */

typedef struct sft__tok_piece { size_t a, b; int32_t id; } sft__tok_piece;   /* id >= 0: an added token */

/* a regex \w character, as single_word added tokens test their neighbours */
static int sft__is_word_char(uint32_t cp) {
    if (cp < 128) return cp == '_' || (cp >= '0' && cp <= '9') || ((cp | 32) >= 'a' && (cp | 32) <= 'z');
    return sft__uni_in(sft__uni_word, SFT__COUNT(sft__uni_word), cp);
}

/* the code point that ends at byte i of s (i > 0) */
static uint32_t sft__cp_before(const char *s, size_t i) {
    size_t j = i - 1, len;
    while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
    return sft__cp_at(s, i, j, &len);
}

/* sft__tok_split_added: cut s[0..n) at the added tokens whose normalized flag is
   `normalized` (leftmost-longest, honouring single_word, lstrip and rstrip) and
   append the pieces (text pieces with id -1). */
static sft_status sft__tok_split_added(sft_tokenizer *t, const char *s, size_t n, int normalized, sft__vec *pieces) {
    size_t i = 0, text_start = 0, len;
    while (i < n) {
        const sft__tok_added *best = NULL;
        int k, b = (unsigned char)s[i];
        for (k = t->added_start[b]; k < t->added_start[b + 1] && !best; k++) {   /* longest first */
            const sft__tok_added *a = &t->added[t->added_order[k]];
            if (a->normalized == normalized && a->len <= n - i && memcmp(s + i, a->content, a->len) == 0) best = a;
        }
        if (best) {
            size_t a0 = i, b0 = i + best->len;
            if (best->single_word && ((a0 > 0 && sft__is_word_char(sft__cp_before(s, a0))) ||
                                      (b0 < n && sft__is_word_char(sft__cp_at(s, n, b0, &len))))) {
                i = b0;                              /* not a whole word: it stays text */
                continue;
            }
            if (best->lstrip) while (a0 > text_start && sft__is_space(sft__cp_before(s, a0))) {
                size_t j = a0 - 1;
                while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
                a0 = j;
            }
            if (best->rstrip) while (b0 < n && sft__is_space(sft__cp_at(s, n, b0, &len))) b0 += len;
            if (a0 > text_start) {
                sft__tok_piece p;
                p.a = text_start; p.b = a0; p.id = -1;
                SFT__TRY(sft__vec_push(t->ctx, pieces, &p, 1));
            }
            {
                sft__tok_piece p;
                p.a = a0; p.b = b0; p.id = best->id;
                SFT__TRY(sft__vec_push(t->ctx, pieces, &p, 1));
            }
            i = text_start = b0;
            continue;
        }
        sft__cp_at(s, n, i, &len);
        i += len;
    }
    if (n > text_start) {
        sft__tok_piece p;
        p.a = text_start; p.b = n; p.id = -1;
        SFT__TRY(sft__vec_push(t->ctx, pieces, &p, 1));
    }
    return SFT_OK;
}

/* sft__tok_normalize: the normalizer steps applied to s[0..n), into out (bytes). */
static sft_status sft__tok_normalize(sft_tokenizer *t, const char *s, size_t n, sft__vec *out) {
    int k;
    out->len = 0;
    SFT__TRY(sft__vec_push(t->ctx, out, s, n));
    for (k = 0; k < t->n_norm; k++) {
        const sft__tok_step *st = &t->norm[k];
        if (st->kind == SFT__NORM_NFC) {
            sft__vec tmp;
            sft_status r;
            memset(&tmp, 0, sizeof tmp);
            tmp.elem = 1;
            r = sft__nfc(t, (const char *)out->p, out->len, &tmp);
            sft__free(t->ctx, out->p);
            *out = tmp;
            if (r != SFT_OK) return r;
        } else {
            const char *from = st->kind == SFT__NORM_PREPEND ? NULL : st->from;
            sft__vec tmp;
            size_t i, fl = from ? strlen(from) : 0, tl = strlen(st->to);
            memset(&tmp, 0, sizeof tmp);
            tmp.elem = 1;
            if (!from) {                              /* Prepend, on a non-empty piece */
                sft_status s2 = out->len ? sft__vec_push(t->ctx, &tmp, st->to, tl) : SFT_OK;
                if (s2 == SFT_OK) s2 = sft__vec_push(t->ctx, &tmp, out->p, out->len);
                if (s2 != SFT_OK) { sft__free(t->ctx, tmp.p); return s2; }
            } else
                for (i = 0; i < out->len;) {
                    if (fl && i + fl <= out->len && memcmp((char *)out->p + i, from, fl) == 0) {
                        sft_status s2 = sft__vec_push(t->ctx, &tmp, st->to, tl);
                        if (s2 != SFT_OK) { sft__free(t->ctx, tmp.p); return s2; }
                        i += fl;
                    } else {
                        sft_status s2 = sft__vec_push(t->ctx, &tmp, (char *)out->p + i, 1);
                        if (s2 != SFT_OK) { sft__free(t->ctx, tmp.p); return s2; }
                        i++;
                    }
                }
            sft__free(t->ctx, out->p);
            *out = tmp;
        }
    }
    return SFT_OK;
}

/* BPE merging: the lowest-ranked adjacent pair is merged, leftmost first, until
   none is left. Short words rescan their pairs (fast in practice); long ones
   use a heap of candidate merges over a linked list of symbols, as Hugging
   Face's Word::merge_all does, so a long word costs n log n, not n^2. */
#define SFT__BPE_SCAN_MAX 64

static size_t sft__bpe_merge_scan(const sft_tokenizer *t, int32_t *sym, size_t count) {
    for (;;) {
        int32_t best_rank = INT32_MAX, best_merged = -1, merged, rank;
        size_t best = 0, i;
        for (i = 0; i + 1 < count; i++) {
            rank = sft__pairmap_get(&t->merges, sym[i], sym[i + 1], &merged);
            if (rank >= 0 && rank < best_rank) { best_rank = rank; best = i; best_merged = merged; }
        }
        if (best_merged < 0) return count;
        sym[best] = best_merged;
        memmove(sym + best + 1, sym + best + 2, (count - best - 2) * sizeof(int32_t));
        count--;
    }
}

typedef struct sft__bpe_merge { int32_t rank, pos, merged; } sft__bpe_merge;

static int sft__merge_before(const sft__bpe_merge *a, const sft__bpe_merge *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static sft_status sft__heap_push(sft_context *ctx, sft__vec *h, sft__bpe_merge m) {
    sft__bpe_merge *e;
    size_t i;
    SFT__TRY(sft__vec_push(ctx, h, &m, 1));
    e = (sft__bpe_merge *)h->p;
    for (i = h->len - 1; i > 0 && sft__merge_before(&e[i], &e[(i - 1) / 2]); i = (i - 1) / 2) {
        sft__bpe_merge x = e[i]; e[i] = e[(i - 1) / 2]; e[(i - 1) / 2] = x;
    }
    return SFT_OK;
}

static sft__bpe_merge sft__heap_pop(sft__vec *h) {
    sft__bpe_merge *e = (sft__bpe_merge *)h->p, top = e[0];
    size_t i = 0;
    e[0] = e[--h->len];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->len && sft__merge_before(&e[l], &e[m])) m = l;
        if (r < h->len && sft__merge_before(&e[r], &e[m])) m = r;
        if (m == i) return top;
        { sft__bpe_merge x = e[i]; e[i] = e[m]; e[m] = x; }
        i = m;
    }
}

/* the merge of the pair starting at symbol pos (whose right neighbour is next), if any */
static sft_status sft__bpe_candidate(sft_tokenizer *t, sft__vec *heap, const int32_t *sym, int32_t pos, int32_t next) {
    sft__bpe_merge m;
    if (pos < 0 || next < 0) return SFT_OK;
    m.pos = pos;
    m.rank = sft__pairmap_get(&t->merges, sym[pos], sym[next], &m.merged);
    return m.rank >= 0 ? sft__heap_push(t->ctx, heap, m) : SFT_OK;
}

static sft_status sft__bpe_merge_heap(sft_tokenizer *t, int32_t *sym, size_t *count) {
    sft__vec links, heap;                       /* links: prev/next per symbol; -1 = none */
    int32_t *ln, i, n = (int32_t)*count;
    size_t w;
    sft_status res = SFT_OK;
    memset(&links, 0, sizeof links); links.elem = 2 * sizeof(int32_t);
    memset(&heap, 0, sizeof heap); heap.elem = sizeof(sft__bpe_merge);
    res = sft__vec_reserve(t->ctx, &links, (size_t)n + 1);
    if (res != SFT_OK) return res;
    ln = (int32_t *)links.p;
    for (i = 0; i < n; i++) { ln[2 * i] = i - 1; ln[2 * i + 1] = i + 1 < n ? i + 1 : -1; }
    for (i = 0; i + 1 < n && res == SFT_OK; i++) res = sft__bpe_candidate(t, &heap, sym, i, i + 1);
    while (res == SFT_OK && heap.len) {
        sft__bpe_merge m = sft__heap_pop(&heap);
        int32_t next = ln[2 * m.pos + 1], merged, after;
        if (sym[m.pos] < 0 || next < 0) continue;                  /* merged away, or now last */
        if (sft__pairmap_get(&t->merges, sym[m.pos], sym[next], &merged) != m.rank || merged != m.merged) continue;
        sym[m.pos] = merged;                                          /* merge pos with next */
        sym[next] = -1;
        after = ln[2 * next + 1];
        ln[2 * m.pos + 1] = after;
        if (after >= 0) ln[2 * after] = m.pos;
        res = sft__bpe_candidate(t, &heap, sym, ln[2 * m.pos], m.pos);
        if (res == SFT_OK) res = sft__bpe_candidate(t, &heap, sym, m.pos, after);
    }
    for (i = 0, w = 0; i < n; i++) if (sym[i] >= 0) sym[w++] = sym[i];
    *count = w;
    sft__free(t->ctx, links.p);
    sft__free(t->ctx, heap.p);
    return res;
}

/* The BPE of one word: symbols from its characters (or byte fallback), then the
   merges. */
static sft_status sft__tok_bpe(sft_tokenizer *t, const char *w, size_t n, sft__vec *ids) {
    int32_t *sym, id;
    size_t i, len, count;
    t->sym.len = 0;
    if (n > INT32_MAX / 2) return sft__fail(SFT_ERR_LIMIT, "tokenizer: a word of %zu bytes", n);
    if (t->ignore_merges && (id = sft__strmap_get(&t->vocab, w, n)) >= 0) return sft__vec_push(t->ctx, ids, &id, 1);
    for (i = 0; i < n; i += len) {
        sft__cp_at(w, n, i, &len);
        id = sft__strmap_get(&t->vocab, w + i, len);
        if (id < 0 && t->byte_fallback) {
            size_t b;
            int32_t bid[4];
            int ok = 1;
            for (b = 0; b < len; b++) {
                char name[8];
                snprintf(name, sizeof name, "<0x%02X>", (unsigned char)w[i + b]);
                bid[b] = sft__strmap_get(&t->vocab, name, 6);
                ok &= bid[b] >= 0;
            }
            if (ok) { SFT__TRY(sft__vec_push(t->ctx, &t->sym, bid, len)); continue; }
        }
        if (id < 0) {
            if (t->unk_id < 0) continue;        /* no unk token: the character is dropped, as Hugging Face does */
            if (t->fuse_unk && t->sym.len && ((int32_t *)t->sym.p)[t->sym.len - 1] == t->unk_id) continue;
            id = t->unk_id;
        }
        SFT__TRY(sft__vec_push(t->ctx, &t->sym, &id, 1));
    }
    sym = (int32_t *)t->sym.p;
    count = t->sym.len;
    if (count <= SFT__BPE_SCAN_MAX) count = sft__bpe_merge_scan(t, sym, count);
    else SFT__TRY(sft__bpe_merge_heap(t, sym, &count));
    return sft__vec_push(t->ctx, ids, sym, count);
}

/* sft__tok_word: a pre-tokenized word to ids, through the cache. The cache is
   an open-addressing table over the words seen (emptied when it grows large). */
#define SFT__TOK_CACHE_MAX (1 << 20)
static sft_status sft__tok_word(sft_tokenizer *t, const char *w, size_t n, sft__vec *ids) {
    int32_t at = sft__strmap_get(&t->cache, w, n), start;
    if (at >= 0) {
        const int32_t *c = (const int32_t *)t->cache_ids.p + at;
        return sft__vec_push(t->ctx, ids, c + 1, (size_t)c[0]);
    }
    if (t->cache.count >= SFT__TOK_CACHE_MAX || t->cache_ids.len > ((size_t)1 << 26) || t->cache_keys.len + n > INT32_MAX ||
        n > 256) {
        if (n > 256) return sft__tok_bpe(t, w, n, ids);            /* long words are not cached */
        sft__strmap_free(t->ctx, &t->cache);
        t->cache_keys.len = t->cache_ids.len = 0;
    }
    start = (int32_t)t->cache_ids.len;
    {
        size_t before = ids->len, k;
        int32_t count;
        SFT__TRY(sft__tok_bpe(t, w, n, ids));
        count = (int32_t)(ids->len - before);
        SFT__TRY(sft__vec_push(t->ctx, &t->cache_ids, &count, 1));
        SFT__TRY(sft__vec_push(t->ctx, &t->cache_ids, (int32_t *)ids->p + before, (size_t)count));
        /* the key lives in cache_keys; when that storage moves, the map's keys move with it */
        if (t->cache_keys.len + n + 1 > t->cache_keys.cap) {
            size_t cap = t->cache_keys.cap ? t->cache_keys.cap * 2 : 65536;
            char *old = (char *)t->cache_keys.p, *fresh;
            while (cap < t->cache_keys.len + n + 1) cap *= 2;
            fresh = (char *)sft__alloc(t->ctx, cap);
            if (!fresh) return sft__fail(SFT_ERR_NOMEM, "tokenizer: word cache of %zu bytes", cap);
            if (old) memcpy(fresh, old, t->cache_keys.len);
            for (k = 0; k < t->cache.cap; k++)
                if (t->cache.key[k]) t->cache.key[k] = fresh + (t->cache.key[k] - old);
            sft__free(t->ctx, old);
            t->cache_keys.p = fresh;
            t->cache_keys.cap = cap;
        }
        memcpy((char *)t->cache_keys.p + t->cache_keys.len, w, n);
        SFT__TRY(sft__strmap_put(t->ctx, &t->cache, (char *)t->cache_keys.p + t->cache_keys.len, n, start));
        t->cache_keys.len += n;
    }
    return SFT_OK;
}

/* sft__tok_pretok: pre-tokenizer step k on s[0..n) (first: the piece starts the
   text, for Metaspace's "first"); words reach the model after the last step. */
static sft_status sft__tok_pretok(sft_tokenizer *t, int k, const char *s, size_t n, int first, sft__vec *ids) {
    const sft__tok_step *st;
    size_t i, len;
    if (n == 0) return SFT_OK;
    if (k == t->n_pre) return sft__tok_word(t, s, n, ids);
    st = &t->pre[k];
    switch (st->kind) {
    case SFT__PRE_SPLIT:
        for (i = 0; i < n; i += len) {
            len = sft__pattern_match(st->pattern, s, n, i);
            SFT__TRY(sft__tok_pretok(t, k + 1, s + i, len, first && i == 0, ids));
        }
        return SFT_OK;
    case SFT__PRE_DIGITS:                       /* numbers apart (each alone when individual) */
        for (i = 0; i < n;) {
            size_t j = i, l2;
            int num = sft__is_number(sft__cp_at(s, n, i, &len));
            j += len;
            if (!num || !st->flag_a)
                while (j < n && sft__is_number(sft__cp_at(s, n, j, &l2)) == num) j += l2;
            SFT__TRY(sft__tok_pretok(t, k + 1, s + i, j - i, first && i == 0, ids));
            i = j;
        }
        return SFT_OK;
    case SFT__PRE_BYTELEVEL: {
        /* optional leading space, optional GPT-2 split, then each byte to its character */
        char small[1024], *mapped = small, *prefixed = NULL;   /* short pieces (almost all) stay on the stack */
        size_t m = 0, pn = n + (st->flag_a && s[0] != ' ');
        const char *src = s;
        sft_status res = SFT_OK;
        if (3 * pn > sizeof small) {
            mapped = (char *)sft__alloc(t->ctx, 3 * pn);
            if (!mapped) return sft__fail(SFT_ERR_NOMEM, "tokenizer: pre-tokenizer buffer");
        }
        if (pn != n) {                                          /* the prefix space, in the back of the buffer */
            prefixed = mapped + 2 * pn;
            prefixed[0] = ' ';
            memcpy(prefixed + 1, s, n);
            src = prefixed;
        }
        for (i = 0; i < pn && res == SFT_OK; i += len) {
            size_t j, start = m;
            len = st->flag_b ? sft__pattern_match(SFT__PAT_GPT2, src, pn, i) : pn;
            for (j = i; j < i + len; j++) {
                unsigned char b = (unsigned char)src[j];
                memcpy(mapped + m, t->bytes.utf8[b], t->bytes.len[b]);
                m += t->bytes.len[b];
            }
            res = sft__tok_pretok(t, k + 1, mapped + start, m - start, first && i == 0, ids);
        }
        if (mapped != small) sft__free(t->ctx, mapped);
        return res;
    }
    case SFT__PRE_METASPACE: {
        /* spaces become the replacement; prepend it when the scheme asks; split
           before each replacement (the word keeps it in front) */
        size_t rl = strlen(st->to), m = 0, cap = n * (rl > 1 ? rl : 1) + rl + 1, w0;
        char *r = (char *)sft__alloc(t->ctx, cap);
        int prepend = st->flag_a == 1 || (st->flag_a == 2 && first);
        sft_status res = SFT_OK;
        if (!r) return sft__fail(SFT_ERR_NOMEM, "tokenizer: pre-tokenizer buffer");
        if (prepend && s[0] != ' ' && !(n >= rl && memcmp(s, st->to, rl) == 0)) { memcpy(r, st->to, rl); m = rl; }
        for (i = 0; i < n; i++) {
            if (s[i] == ' ') { memcpy(r + m, st->to, rl); m += rl; }
            else r[m++] = s[i];
        }
        if (!st->flag_b) res = sft__tok_pretok(t, k + 1, r, m, first, ids);
        else
            for (i = 0, w0 = 0; i <= m && res == SFT_OK; i++)
                if (i == m || (i > w0 && i + rl <= m && memcmp(r + i, st->to, rl) == 0)) {
                    res = sft__tok_pretok(t, k + 1, r + w0, i - w0, first && w0 == 0, ids);
                    w0 = i;
                }
        sft__free(t->ctx, r);
        return res;
    }
    default:
        return sft__fail(SFT_ERR_STATE, "tokenizer: pre-tokenizer step %d", (int)st->kind);
    }
}

/* a text piece (between added tokens): normalize, cut at normalized added
   tokens, pre-tokenize, BPE */
static sft_status sft__tok_encode_text(sft_tokenizer *t, const char *s, size_t n, int first, sft__vec *ids) {
    sft__vec norm, pieces;
    sft_status res;
    size_t i;
    memset(&norm, 0, sizeof norm); norm.elem = 1;
    memset(&pieces, 0, sizeof pieces); pieces.elem = sizeof(sft__tok_piece);
    res = sft__tok_normalize(t, s, n, &norm);
    if (res == SFT_OK) res = sft__tok_split_added(t, (const char *)norm.p, norm.len, 1, &pieces);
    for (i = 0; res == SFT_OK && i < pieces.len; i++) {
        const sft__tok_piece *p = (const sft__tok_piece *)pieces.p + i;
        if (p->id >= 0) res = sft__vec_push(t->ctx, ids, &p->id, 1);
        else res = sft__tok_pretok(t, 0, (const char *)norm.p + p->a, p->b - p->a, first && p->a == 0, ids);
    }
    sft__free(t->ctx, norm.p);
    sft__free(t->ctx, pieces.p);
    return res;
}

SFTDEF sft_status sft_tokenizer_encode(sft_tokenizer *t, const char *text, size_t len, int add_special_tokens,
                                       int32_t **ids, size_t *n_ids) {
    sft__vec out, pieces;
    size_t bad = 0, i;
    const char *why = NULL;
    sft_status res = SFT_OK;
    if (!ids || !n_ids) return sft__fail(SFT_ERR_ARG, "sft_tokenizer_encode: NULL output");
    *ids = NULL; *n_ids = 0;
    if (!t || (!text && len)) return sft__fail(SFT_ERR_ARG, "sft_tokenizer_encode: NULL argument");
    if (len && sft__utf8_check(text, len, &bad, &why) != 0)
        return sft__fail(SFT_ERR_ARG, "sft_tokenizer_encode: the text is not UTF-8 at byte %zu (%s)", bad, why);
    memset(&out, 0, sizeof out); out.elem = sizeof(int32_t);
    memset(&pieces, 0, sizeof pieces); pieces.elem = sizeof(sft__tok_piece);
    if (add_special_tokens) res = sft__vec_push(t->ctx, &out, t->tmpl_before, (size_t)t->n_before);
    if (res == SFT_OK) res = sft__tok_split_added(t, text, len, 0, &pieces);
    for (i = 0; res == SFT_OK && i < pieces.len; i++) {
        const sft__tok_piece *p = (const sft__tok_piece *)pieces.p + i;
        if (p->id >= 0) res = sft__vec_push(t->ctx, &out, &p->id, 1);
        else res = sft__tok_encode_text(t, text + p->a, p->b - p->a, p->a == 0, &out);
    }
    if (res == SFT_OK && add_special_tokens) res = sft__vec_push(t->ctx, &out, t->tmpl_after, (size_t)t->n_after);
    if (res == SFT_OK) res = sft__vec_reserve(t->ctx, &out, 1);     /* a valid pointer even for no ids */
    sft__free(t->ctx, pieces.p);
    if (res != SFT_OK) { sft__free(t->ctx, out.p); return res; }
    *ids = (int32_t *)out.p;
    *n_ids = out.len;
    return SFT_OK;
}

/* ============================================================================
   === tokenizer: decode
   The tokens' strings go through the decoder steps as a list of strings, as in
   Hugging Face: ByteLevel turns each token back into bytes, Replace and Strip
   edit each token, ByteFallback turns runs of <0xNN> tokens into their bytes,
   Fuse joins everything, Metaspace turns the marker back into spaces. The
   result is made valid UTF-8 the way Rust's from_utf8_lossy does (one U+FFFD
   per maximal invalid subsequence). */

typedef struct sft__tok_strs { sft__vec bytes, off; } sft__tok_strs;   /* off: pairs (start, len) */

static sft_status sft__strs_add(sft_context *ctx, sft__tok_strs *l, const char *s, size_t n) {
    size_t se[2];
    se[0] = l->bytes.len; se[1] = n;
    SFT__TRY(sft__vec_push(ctx, &l->bytes, s, n));
    return sft__vec_push(ctx, &l->off, se, 2);
}

static void sft__strs_free(sft_context *ctx, sft__tok_strs *l) { sft__free(ctx, l->bytes.p); sft__free(ctx, l->off.p); }

#define SFT__STR_P(l, i) ((const char *)(l)->bytes.p + ((const size_t *)(l)->off.p)[2 * (i)])
#define SFT__STR_N(l, i) (((const size_t *)(l)->off.p)[2 * (i) + 1])

/* the byte of a <0xNN> token, or -1 */
static int sft__byte_token(const char *s, size_t n) {
    unsigned v = 0;
    size_t i;
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    for (i = 3; i < 5; i++) {
        char c = s[i];
        v = v * 16 + (unsigned)(c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 999);
    }
    return v < 256 ? (int)v : -1;
}

/* sft__tok_dec_step_run: one decoder step from list in to list out */
static sft_status sft__tok_dec_run(sft_tokenizer *t, const sft__tok_step *st, const sft__tok_strs *in, sft__tok_strs *out) {
    size_t i, count = in->off.len / 2;
    for (i = 0; i < count; i++) {
        const char *s = SFT__STR_P(in, i);
        size_t n = SFT__STR_N(in, i), j, len;
        switch (st->kind) {
        case SFT__DEC_BYTELEVEL: {                 /* every character back to its byte, else the raw bytes */
            size_t start = out->bytes.len;
            int all = 1;
            for (j = 0; j < n && all; j += len) {
                uint32_t cp = sft__cp_at(s, n, j, &len);
                all = cp < 512 && t->bytes.back[cp] >= 0;
            }
            if (!all) { SFT__TRY(sft__strs_add(t->ctx, out, s, n)); break; }
            SFT__TRY(sft__strs_add(t->ctx, out, "", 0));
            for (j = 0; j < n; j += len) {
                char b = (char)t->bytes.back[sft__cp_at(s, n, j, &len)];
                SFT__TRY(sft__vec_push(t->ctx, &out->bytes, &b, 1));
            }
            ((size_t *)out->off.p)[out->off.len - 1] = out->bytes.len - start;
            break;
        }
        case SFT__DEC_REPLACE: {
            size_t fl = strlen(st->from), tl = strlen(st->to), start = out->bytes.len;
            SFT__TRY(sft__strs_add(t->ctx, out, "", 0));
            for (j = 0; j < n;) {
                if (fl && j + fl <= n && memcmp(s + j, st->from, fl) == 0) { SFT__TRY(sft__vec_push(t->ctx, &out->bytes, st->to, tl)); j += fl; }
                else { SFT__TRY(sft__vec_push(t->ctx, &out->bytes, s + j, 1)); j++; }
            }
            ((size_t *)out->off.p)[out->off.len - 1] = out->bytes.len - start;
            break;
        }
        case SFT__DEC_BYTEFALLBACK: {              /* a run of byte tokens becomes one string */
            size_t run = 0, run_start = out->bytes.len, bad;
            const char *why;
            int byte;
            SFT__TRY(sft__strs_add(t->ctx, out, "", 0));             /* the run's bytes go here */
            while (i + run < count && (byte = sft__byte_token(SFT__STR_P(in, i + run), SFT__STR_N(in, i + run))) >= 0) {
                char c = (char)byte;
                SFT__TRY(sft__vec_push(t->ctx, &out->bytes, &c, 1));
                run++;
            }
            if (!run) {                            /* not a byte token: as it is */
                out->off.len -= 2;
                SFT__TRY(sft__strs_add(t->ctx, out, s, n));
                break;
            }
            if (sft__utf8_check((const char *)out->bytes.p + run_start, run, &bad, &why) == 0)
                ((size_t *)out->off.p)[out->off.len - 1] = run;
            else {                                 /* not UTF-8: one U+FFFD per byte token */
                out->bytes.len = run_start;
                out->off.len -= 2;
                for (j = 0; j < run; j++) SFT__TRY(sft__strs_add(t->ctx, out, "\xEF\xBF\xBD", 3));
            }
            i += run - 1;
            break;
        }
        case SFT__DEC_FUSE:                        /* join all: one string */
            if (i == 0) SFT__TRY(sft__strs_add(t->ctx, out, "", 0));
            SFT__TRY(sft__vec_push(t->ctx, &out->bytes, s, n));
            ((size_t *)out->off.p)[1] += n;
            break;
        case SFT__DEC_STRIP: {
            size_t a = 0, b = n;
            int k;
            for (k = 0; k < st->flag_a && a < b && s[a] == ' '; k++) a++;
            for (k = 0; k < st->flag_b && b > a && s[b - 1] == ' '; k++) b--;
            SFT__TRY(sft__strs_add(t->ctx, out, s + a, b - a));
            break;
        }
        case SFT__DEC_METASPACE: {
            size_t rl = strlen(st->to), start = out->bytes.len;
            SFT__TRY(sft__strs_add(t->ctx, out, "", 0));
            for (j = 0; j < n;) {
                if (rl && j + rl <= n && memcmp(s + j, st->to, rl) == 0) {
                    if (!(i == 0 && st->flag_a)) SFT__TRY(sft__vec_push(t->ctx, &out->bytes, " ", 1));
                    j += rl;
                } else { SFT__TRY(sft__vec_push(t->ctx, &out->bytes, s + j, 1)); j++; }
            }
            ((size_t *)out->off.p)[out->off.len - 1] = out->bytes.len - start;
            break;
        }
        default:
            return sft__fail(SFT_ERR_STATE, "tokenizer: decoder step %d", (int)st->kind);
        }
    }
    return SFT_OK;
}

/* sft__utf8_lossy: s[0..n) with each maximal invalid subsequence as U+FFFD */
static sft_status sft__utf8_lossy(sft_context *ctx, const char *s, size_t n, sft__vec *out) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        const char *why;
        const unsigned char *u = (const unsigned char *)s + i;
        int k = sft__utf8_next(u, n - i, &cp, &why);
        if (k > 0) { SFT__TRY(sft__vec_push(ctx, out, s + i, (size_t)k)); i += (size_t)k; continue; }
        {   /* skip the lead byte and the continuation bytes that were valid so far */
            size_t skip = 1, need = u[0] >= 0xF0 ? 4 : u[0] >= 0xE0 ? 3 : 2;
            unsigned lo = u[0] == 0xE0 ? 0xA0 : u[0] == 0xF0 ? 0x90 : 0x80, hi = u[0] == 0xED ? 0x9F : u[0] == 0xF4 ? 0x8F : 0xBF;
            if (u[0] >= 0xC2 && u[0] <= 0xF4)
                while (skip < need && i + skip < n && u[skip] >= (skip == 1 ? lo : 0x80) && u[skip] <= (skip == 1 ? hi : 0xBF)) skip++;
            SFT__TRY(sft__vec_push(ctx, out, "\xEF\xBF\xBD", 3));
            i += skip;
        }
    }
    return SFT_OK;
}

SFTDEF sft_status sft_tokenizer_decode(sft_tokenizer *t, const int32_t *ids, size_t n_ids, int skip_special_tokens,
                                       char **text, size_t *len) {
    sft__tok_strs a, b;
    sft__vec out;
    size_t i;
    int k;
    sft_status res = SFT_OK;
    if (!text || !len) return sft__fail(SFT_ERR_ARG, "sft_tokenizer_decode: NULL output");
    *text = NULL; *len = 0;
    if (!t || (!ids && n_ids)) return sft__fail(SFT_ERR_ARG, "sft_tokenizer_decode: NULL argument");
    memset(&a, 0, sizeof a); memset(&b, 0, sizeof b); memset(&out, 0, sizeof out);
    a.bytes.elem = b.bytes.elem = out.elem = 1; a.off.elem = b.off.elem = sizeof(size_t);
    for (i = 0; i < n_ids && res == SFT_OK; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_vocab || !t->token[id]) {
            res = sft__fail(SFT_ERR_ARG, "sft_tokenizer_decode: ids[%zu] = %d is not in the vocabulary (size %d)", i, id, t->n_vocab);
            break;
        }
        if (skip_special_tokens && t->is_added[id] == 2) continue;
        res = sft__strs_add(t->ctx, &a, t->token[id], t->token_len[id]);
    }
    if (t->n_dec == 0 && res == SFT_OK && a.off.len > 2) {   /* no decoder: Hugging Face joins with spaces */
        size_t count = a.off.len / 2, total = a.bytes.len + count - 1, k2, at = 0;
        char *joined = (char *)sft__alloc(t->ctx, total + 1);
        if (!joined) res = sft__fail(SFT_ERR_NOMEM, "sft_tokenizer_decode: %zu bytes", total);
        for (k2 = 0; res == SFT_OK && k2 < count; k2++) {
            if (k2) joined[at++] = ' ';
            memcpy(joined + at, SFT__STR_P(&a, k2), SFT__STR_N(&a, k2));
            at += SFT__STR_N(&a, k2);
        }
        if (res == SFT_OK) {
            a.bytes.len = a.off.len = 0;
            res = sft__strs_add(t->ctx, &a, joined, total);
        }
        sft__free(t->ctx, joined);
    }
    for (k = 0; k < t->n_dec && res == SFT_OK; k++) {
        sft__tok_strs tmp;
        b.bytes.len = b.off.len = 0;
        res = sft__tok_dec_run(t, &t->dec[k], &a, &b);
        tmp = a; a = b; b = tmp;
    }
    if (res == SFT_OK) res = sft__utf8_lossy(t->ctx, (const char *)a.bytes.p, a.bytes.len, &out);
    if (res == SFT_OK) res = sft__vec_push(t->ctx, &out, "", 1);       /* the NUL */
    sft__strs_free(t->ctx, &a); sft__strs_free(t->ctx, &b);
    if (res != SFT_OK) { sft__free(t->ctx, out.p); return res; }
    *text = (char *)out.p;
    *len = out.len - 1;
    return SFT_OK;
}

/* ============================================================================
   === model: config.json */

#define SFT__MODEL_MAX_SHARDS 256

static const char *const sft__proj_names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
enum { SFT__Q, SFT__K, SFT__V, SFT__O, SFT__GATE, SFT__UP, SFT__DOWN, SFT__N_PROJ };

typedef struct sft__block {
    sft_tensor *attn_norm, *mlp_norm;
    sft_linear *proj[SFT__N_PROJ];
} sft__block;

struct sft_model {
    sft_context     *ctx;
    char            *dir;               /* where it was loaded from (base_model_name_or_path) */
    sft_device       device;            /* where its tensors live (sft_load_desc.device) */
    sft_model_config cfg;
    sft_tensor      *embed, *norm, *lm_head;   /* lm_head == embed when tied */
    sft__block      *blocks;
    int              compute_bf16;      /* the output projection in bf16 (the linears hold their own) */
};

/* sft__cfg_int: an integer field (dflt when absent or null); *bad set when it is
   there but not a non-negative integer. */
static int sft__cfg_int(const sft_json *cfg, const char *key, int dflt, const char **bad) {
    const sft_json *v = sft_json_get(cfg, key);
    if (!v || v->type == SFT_JSON_NULL) return dflt;
    if (v->type != SFT_JSON_NUMBER || v->number < 0 || v->number > 1e9 || v->number != floor(v->number)) { *bad = key; return dflt; }
    return (int)v->number;
}

static float sft__cfg_float(const sft_json *cfg, const char *key, float dflt, const char **bad) {
    const sft_json *v = sft_json_get(cfg, key);
    if (!v || v->type == SFT_JSON_NULL) return dflt;
    if (v->type != SFT_JSON_NUMBER || !(fabs(v->number) < 1e30)) { *bad = key; return dflt; }
    return (float)v->number;
}

/* an id field that may be a number or a list of numbers (eos_token_id: [1, 2]) */
static int sft__cfg_id(const sft_json *cfg, const char *key) {
    const sft_json *v = sft_json_get(cfg, key);
    if (v && v->type == SFT_JSON_ARRAY && v->length > 0) v = &v->items[0];
    return v && v->type == SFT_JSON_NUMBER && v->number >= 0 && v->number < 2e9 ? (int)v->number : -1;
}

static sft_status sft__cfg_dtype(const char *path, const char *name, sft_dtype *out) {
    if (!name || strcmp(name, "float32") == 0) *out = SFT_F32;
    else if (strcmp(name, "bfloat16") == 0) *out = SFT_BF16;
    else if (strcmp(name, "float16") == 0) *out = SFT_F16;
    else return sft__fail(SFT_ERR_UNSUPPORTED, "%s: torch_dtype '%s' is not supported (float32, bfloat16, float16)", path, name);
    return SFT_OK;
}

static sft_status sft__cfg_rope(const char *path, const sft_json *cfg, sft_model_config *c, const char **bad) {
    const sft_json *rs = sft_json_get(cfg, "rope_scaling");
    const char *type;
    c->rope.theta = sft__cfg_float(cfg, "rope_theta", 10000.0f, bad);
    if (!rs || rs->type == SFT_JSON_NULL) return SFT_OK;
    if (rs->type != SFT_JSON_OBJECT) return sft__fail(SFT_ERR_FORMAT, "%s: rope_scaling is not an object", path);
    type = sft__json_str(rs, "rope_type");
    if (!type) type = sft__json_str(rs, "type");
    if (!type || strcmp(type, "default") == 0) return SFT_OK;
    c->rope.factor = sft__cfg_float(rs, "factor", 0.0f, bad);
    if (strcmp(type, "linear") == 0) { c->rope.scaling = SFT_ROPE_LINEAR; return SFT_OK; }
    if (strcmp(type, "llama3") == 0) {
        c->rope.scaling = SFT_ROPE_LLAMA3;
        c->rope.low_freq_factor = sft__cfg_float(rs, "low_freq_factor", 1.0f, bad);
        c->rope.high_freq_factor = sft__cfg_float(rs, "high_freq_factor", 4.0f, bad);
        c->rope.original_max_position_embeddings = sft__cfg_int(rs, "original_max_position_embeddings", 8192, bad);
        return SFT_OK;
    }
    return sft__fail(SFT_ERR_UNSUPPORTED, "%s: rope_scaling type '%s' is not supported (default, linear, llama3)", path, type);
}

/* sft__cfg_quant: a quantization_config of bitsandbytes 4-bit. */
static sft_status sft__cfg_quant(const char *path, const sft_json *cfg, sft_model_config *c) {
    const sft_json *q = sft_json_get(cfg, "quantization_config");
    const char *method, *type;
    if (!q || q->type == SFT_JSON_NULL) return SFT_OK;
    method = sft__json_str(q, "quant_method");
    if (!method || strcmp(method, "bitsandbytes") != 0 || !sft__json_bool(q, "load_in_4bit", 0))
        return sft__fail(SFT_ERR_UNSUPPORTED, "%s: quantization_config %s is not bitsandbytes 4-bit", path, method ? method : "(no quant_method)");
    type = sft__json_str(q, "bnb_4bit_quant_type");
    c->prequantized = type && strcmp(type, "fp4") == 0 ? SFT_QUANT_FP4 : SFT_QUANT_NF4;
    return SFT_OK;
}

static sft_status sft__model_config_parse(const char *path, const sft_json *cfg, sft_model_config *c) {
    const sft_json *arch = sft_json_get(cfg, "architectures");
    const char *bad = NULL, *act, *dt;
    memset(c, 0, sizeof *c);
    if (!cfg || cfg->type != SFT_JSON_OBJECT) return sft__fail(SFT_ERR_FORMAT, "%s: not a JSON object", path);
    if (!arch || arch->type != SFT_JSON_ARRAY || arch->length != 1 || arch->items[0].type != SFT_JSON_STRING)
        return sft__fail(SFT_ERR_FORMAT, "%s: architectures must name one model class", path);
    if (strcmp(arch->items[0].string, "LlamaForCausalLM") != 0 && strcmp(arch->items[0].string, "MistralForCausalLM") != 0 &&
        strcmp(arch->items[0].string, "Qwen2ForCausalLM") != 0)
        return sft__fail(SFT_ERR_UNSUPPORTED, "%s: architecture '%.40s' is not supported (LlamaForCausalLM, MistralForCausalLM, "
                         "Qwen2ForCausalLM)", path, arch->items[0].string);
    memcpy(c->architecture, arch->items[0].string, strlen(arch->items[0].string) + 1);
    act = sft__json_str(cfg, "hidden_act");
    if (act && strcmp(act, "silu") != 0) return sft__fail(SFT_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported (silu)", path, act);
    c->vocab_size = sft__cfg_int(cfg, "vocab_size", 0, &bad);
    c->hidden_size = sft__cfg_int(cfg, "hidden_size", 0, &bad);
    c->intermediate_size = sft__cfg_int(cfg, "intermediate_size", 0, &bad);
    c->num_hidden_layers = sft__cfg_int(cfg, "num_hidden_layers", 0, &bad);
    c->num_attention_heads = sft__cfg_int(cfg, "num_attention_heads", 0, &bad);
    c->num_key_value_heads = sft__cfg_int(cfg, "num_key_value_heads", c->num_attention_heads, &bad);
    c->head_dim = sft__cfg_int(cfg, "head_dim", c->num_attention_heads ? c->hidden_size / c->num_attention_heads : 0, &bad);
    c->max_position_embeddings = sft__cfg_int(cfg, "max_position_embeddings", 0, &bad);
    c->rms_norm_eps = sft__cfg_float(cfg, "rms_norm_eps", 1e-6f, &bad);
    c->tie_word_embeddings = sft__json_bool(cfg, "tie_word_embeddings", 0);
    c->attention_bias = strcmp(c->architecture, "Qwen2ForCausalLM") == 0 ? 1 : sft__json_bool(cfg, "attention_bias", 0);
    c->mlp_bias = sft__json_bool(cfg, "mlp_bias", 0);
    if (strcmp(c->architecture, "LlamaForCausalLM") != 0 && (strcmp(c->architecture, "Qwen2ForCausalLM") != 0 ||
                                                             sft__json_bool(cfg, "use_sliding_window", 0)))
        c->sliding_window = sft__cfg_int(cfg, "sliding_window", 0, &bad);
    c->bos_token_id = sft__cfg_id(cfg, "bos_token_id");
    c->eos_token_id = sft__cfg_id(cfg, "eos_token_id");
    {
        const sft_json *e = sft_json_get(cfg, "eos_token_id");
        size_t k;
        if (e && e->type == SFT_JSON_ARRAY)
            for (k = 0; k < e->length && c->n_eos < 8; k++) {
                if (e->items[k].type == SFT_JSON_NUMBER && e->items[k].number >= 0 && e->items[k].number < 2e9)
                    c->eos_token_ids[c->n_eos++] = (int)e->items[k].number;
            }
        else if (c->eos_token_id >= 0) c->eos_token_ids[c->n_eos++] = c->eos_token_id;
    }
    c->pad_token_id = sft__cfg_id(cfg, "pad_token_id");
    SFT__TRY(sft__cfg_rope(path, cfg, c, &bad));
    if (bad) return sft__fail(SFT_ERR_FORMAT, "%s: field '%s' has an impossible value", path, bad);
    dt = sft__json_str(cfg, "torch_dtype");
    if (!dt) dt = sft__json_str(cfg, "dtype");
    SFT__TRY(sft__cfg_dtype(path, dt, &c->dtype));
    SFT__TRY(sft__cfg_quant(path, cfg, c));
    if (c->vocab_size < 1 || c->hidden_size < 1 || c->intermediate_size < 1 || c->num_hidden_layers < 1 ||
        c->num_attention_heads < 1 || c->num_key_value_heads < 1 || c->num_attention_heads % c->num_key_value_heads ||
        c->head_dim < 2 || c->head_dim % 2 || c->head_dim > 256)
        return sft__fail(SFT_ERR_FORMAT, "%s: sizes do not make a decoder (vocab %d, hidden %d, intermediate %d, layers %d, heads "
                         "%d, kv heads %d, head_dim %d)", path, c->vocab_size, c->hidden_size, c->intermediate_size,
                         c->num_hidden_layers, c->num_attention_heads, c->num_key_value_heads, c->head_dim);
    if (c->num_hidden_layers > 1024 || (int64_t)c->vocab_size * c->hidden_size > ((int64_t)1 << 36))
        return sft__fail(SFT_ERR_LIMIT, "%s: %d layers, vocabulary %d x hidden %d is beyond the limits", path, c->num_hidden_layers,
                         c->vocab_size, c->hidden_size);
    return SFT_OK;
}

/* ============================================================================
   === model: weights
   The checkpoint's files stay mapped while loading; every tensor is checked
   against the config (name, dtype, shape) and copied into the model's own
   tensors (widened to f32, kept bf16, or quantized), one at a time. */

typedef struct sft__weights {
    sft_context *ctx;
    const char  *dir;
    sft_st_file *file[SFT__MODEL_MAX_SHARDS];
    char        *file_name[SFT__MODEL_MAX_SHARDS];
    int          n_files;
    sft_json    *index;               /* model.safetensors.index.json, or NULL   */
} sft__weights;

static void sft__weights_close(sft__weights *w) {
    int i;
    for (i = 0; i < w->n_files; i++) { sft_st_close(w->file[i]); sft__free(w->ctx, w->file_name[i]); }
    sft_json_free(w->index);
    memset(w, 0, sizeof *w);
}

static sft_status sft__weights_add(sft__weights *w, const char *name) {
    char path[4096];
    int i;
    for (i = 0; i < w->n_files; i++)
        if (strcmp(w->file_name[i], name) == 0) return SFT_OK;
    if (w->n_files == SFT__MODEL_MAX_SHARDS) return sft__fail(SFT_ERR_LIMIT, "%s: more than %d shards", w->dir, SFT__MODEL_MAX_SHARDS);
    if (strchr(name, '/')) return sft__fail(SFT_ERR_FORMAT, "%s: shard name '%s' is not a file of the directory", w->dir, name);
    SFT__TRY(sft__path_join(path, sizeof path, w->dir, strlen(w->dir), name));
    SFT__TRY(sft_st_open(w->ctx, path, &w->file[w->n_files]));
    if (!(w->file_name[w->n_files] = sft__strdup(w->ctx, name))) {
        sft_st_close(w->file[w->n_files]);
        return sft__fail(SFT_ERR_NOMEM, "%s: shard names", w->dir);
    }
    w->n_files++;
    return SFT_OK;
}

/* sft__weights_open: model.safetensors, or every shard the index names. */
static sft_status sft__weights_open(sft_context *ctx, const char *dir, sft__weights *w) {
    char path[4096], *text = NULL;
    size_t len, i;
    const sft_json *map;
    memset(w, 0, sizeof *w);
    w->ctx = ctx; w->dir = dir;
    SFT__TRY(sft__path_join(path, sizeof path, dir, strlen(dir), "model.safetensors"));
    if (access(path, F_OK) == 0) return sft__weights_add(w, "model.safetensors");
    SFT__TRY(sft__path_join(path, sizeof path, dir, strlen(dir), "model.safetensors.index.json"));
    if (access(path, F_OK) != 0)
        return sft__fail(SFT_ERR_NOT_FOUND, "%s: no model.safetensors or model.safetensors.index.json", dir);
    SFT__TRY(sft_file_read(ctx, path, 0, &text, &len));
    {
        sft_status s = sft_json_parse(ctx, text, len, path, NULL, &w->index);
        sft__free(ctx, text);
        SFT__TRY(s);
    }
    map = sft_json_get(w->index, "weight_map");
    if (!map || map->type != SFT_JSON_OBJECT) return sft__fail(SFT_ERR_FORMAT, "%s: no weight_map object", path);
    for (i = 0; i < map->length; i++) {
        if (map->items[i].type != SFT_JSON_STRING) return sft__fail(SFT_ERR_FORMAT, "%s: weight_map['%s'] is not a file name", path, map->keys[i]);
        SFT__TRY(sft__weights_add(w, map->items[i].string));
    }
    return SFT_OK;
}

/* sft__weights_find: the tensor called name (NULL if no file has it). */
static const sft_st_tensor *sft__weights_find(const sft__weights *w, const char *name, const sft_st_file **file) {
    int i;
    for (i = 0; i < w->n_files; i++) {
        const sft_st_tensor *t = sft_st_find(w->file[i], name);
        if (t) { if (file) *file = w->file[i]; return t; }
    }
    return NULL;
}

static sft_status sft__weights_missing(const sft__weights *w, const char *name) {
    return sft__fail(SFT_ERR_NOT_FOUND, "%s: tensor '%s' is missing", w->dir, name);
}

/* sft__weights_load: tensor name with exactly the given shape, as f32 (keep_bf16:
   a bf16 tensor stays bf16). */
static sft_status sft__weights_load(const sft__weights *w, const char *name, int ndim, const int64_t *shape, int keep_bf16,
                                    sft_tensor **out) {
    const sft_st_file *f = NULL;
    const sft_st_tensor *t = sft__weights_find(w, name, &f);
    sft_tensor *raw = NULL;
    int i, ok;
    *out = NULL;
    if (!t) return sft__weights_missing(w, name);
    ok = t->ndim == ndim;
    for (i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char want[96], got[96];
        return sft__fail(SFT_ERR_SHAPE, "%s: tensor '%s' is %s, the config needs %s", w->dir, name,
                         sft__shape_str(got, sizeof got, t->ndim > 4 ? 4 : t->ndim, t->shape), sft__shape_str(want, sizeof want, ndim, shape));
    }
    if (t->dtype != SFT_F32 && t->dtype != SFT_BF16 && t->dtype != SFT_F16)
        return sft__fail(SFT_ERR_DTYPE, "%s: tensor '%s' is %s (want f32, bf16 or f16)", w->dir, name, sft_dtype_name(t->dtype));
    SFT__TRY(sft_st_load(w->ctx, f, name, &raw));
    if (raw->dtype == SFT_F32 || (keep_bf16 && raw->dtype == SFT_BF16)) { *out = raw; return SFT_OK; }
    {
        sft_status s = sft_tensor_convert(w->ctx, raw, SFT_F32, out);
        sft_tensor_destroy(raw);
        return s;
    }
}

/* --- pre-quantized bitsandbytes tensors ----------------------------------------- */

static const sft_st_tensor *sft__weights_part(const sft__weights *w, const char *prefix, const char *suffix) {
    char name[512];
    snprintf(name, sizeof name, "%s.weight%s", prefix, suffix);
    return sft__weights_find(w, name, NULL);
}

/* The quant_state JSON bitsandbytes stores as uint8 bytes next to the weight. */
static sft_status sft__bnb_quant_state(const sft__weights *w, const char *prefix, sft_qweight_data *d, int64_t rows, int64_t cols) {
    const sft_st_tensor *qs = sft__weights_part(w, prefix, ".quant_state.bitsandbytes__nf4");
    const char *type = "nf4";
    sft_json *j = NULL;
    const sft_json *shape;
    const char *bad = NULL;
    if (!qs) { qs = sft__weights_part(w, prefix, ".quant_state.bitsandbytes__fp4"); type = "fp4"; }
    if (!qs) return sft__fail(SFT_ERR_NOT_FOUND, "%s: '%s.weight' is 4-bit but has no quant_state", w->dir, prefix);
    SFT__TRY(sft_json_parse(w->ctx, (const char *)qs->data, (size_t)qs->nbytes, prefix, NULL, &j));
    d->type = strcmp(type, "fp4") == 0 ? SFT_QUANT_FP4 : SFT_QUANT_NF4;
    if (!sft__json_str(j, "quant_type") || strcmp(sft__json_str(j, "quant_type"), type) != 0) bad = "quant_type";
    d->blocksize = sft__cfg_int(j, "blocksize", 0, &bad);
    d->nested_blocksize = sft__cfg_int(j, "nested_blocksize", 0, &bad);
    d->nested_offset = sft__cfg_float(j, "nested_offset", 0.0f, &bad);
    shape = sft_json_get(j, "shape");
    if (!shape || shape->type != SFT_JSON_ARRAY || shape->length != 2 || shape->items[0].number != (double)rows ||
        shape->items[1].number != (double)cols)
        bad = "shape";
    sft_json_free(j);
    if (bad)
        return sft__fail(SFT_ERR_FORMAT, "%s: the quant_state of '%s.weight' has a bad '%s' (the config needs [%lld, %lld])", w->dir,
                         prefix, bad, (long long)rows, (long long)cols);
    return SFT_OK;
}

static const void *sft__bnb_array(const sft__weights *w, const char *prefix, const char *suffix, sft_dtype dt, int64_t *count) {
    const sft_st_tensor *t = sft__weights_part(w, prefix, suffix);
    if (!t || t->dtype != dt) { *count = -1; return NULL; }
    *count = (int64_t)(t->nbytes / sft_dtype_size(dt));
    return t->data;
}

/* sft__bnb_load: a linear stored by transformers in bitsandbytes 4-bit form. The
   arrays are copied (the mapping may leave them unaligned). */
static sft_status sft__bnb_load(const sft__weights *w, const char *prefix, int64_t rows, int64_t cols, sft_qweight **out) {
    sft_qweight_data d;
    const sft_st_tensor *packed = sft__weights_part(w, prefix, "");
    int64_t n, code_len, nested_code_len;
    sft_status s;
    float *code_buf = NULL, *nested_buf = NULL, *absmax_buf = NULL, *nested_absmax_buf = NULL;
    memset(&d, 0, sizeof d);
    d.rows = rows; d.cols = cols;
    SFT__TRY(sft__bnb_quant_state(w, prefix, &d, rows, cols));
    d.data = (const uint8_t *)packed->data; d.data_bytes = (size_t)packed->nbytes;
    d.code = (const float *)sft__bnb_array(w, prefix, ".quant_map", SFT_F32, &code_len);
    d.code_len = (int)code_len;
    if (sft__weights_part(w, prefix, ".nested_absmax")) {
        d.absmax_q = (const uint8_t *)sft__bnb_array(w, prefix, ".absmax", SFT_U8, &d.n_absmax_q);
        d.nested_absmax = (const float *)sft__bnb_array(w, prefix, ".nested_absmax", SFT_F32, &d.n_nested_absmax);
        d.nested_code = (const float *)sft__bnb_array(w, prefix, ".nested_quant_map", SFT_F32, &nested_code_len);
        d.nested_code_len = (int)nested_code_len;
        if (!d.absmax_q || !d.nested_absmax || !d.nested_code)
            return sft__fail(SFT_ERR_FORMAT, "%s: '%s.weight' is double-quantized but its absmax (u8), nested_absmax or "
                             "nested_quant_map (f32) is missing or of another dtype", w->dir, prefix);
    } else {
        d.absmax = (const float *)sft__bnb_array(w, prefix, ".absmax", SFT_F32, &d.n_absmax);
        if (!d.absmax) return sft__fail(SFT_ERR_FORMAT, "%s: '%s.weight.absmax' is missing or not f32", w->dir, prefix);
    }
    if (!d.code) return sft__fail(SFT_ERR_FORMAT, "%s: '%s.weight.quant_map' is missing or not f32", w->dir, prefix);
    /* copy the float arrays to aligned memory */
    n = code_len + (d.nested_code ? nested_code_len : 0) + (d.absmax ? d.n_absmax : 0) + (d.nested_absmax ? d.n_nested_absmax : 0);
    code_buf = (float *)sft__alloc(w->ctx, (size_t)n * sizeof(float));
    if (!code_buf) return sft__fail(SFT_ERR_NOMEM, "%s: '%s'", w->dir, prefix);
    memcpy(code_buf, d.code, (size_t)code_len * 4); d.code = code_buf;
    nested_buf = code_buf + code_len;
    if (d.nested_code) { memcpy(nested_buf, d.nested_code, (size_t)nested_code_len * 4); d.nested_code = nested_buf; nested_buf += nested_code_len; }
    absmax_buf = nested_buf;
    if (d.absmax) { memcpy(absmax_buf, d.absmax, (size_t)d.n_absmax * 4); d.absmax = absmax_buf; absmax_buf += d.n_absmax; }
    nested_absmax_buf = absmax_buf;
    if (d.nested_absmax) { memcpy(nested_absmax_buf, d.nested_absmax, (size_t)d.n_nested_absmax * 4); d.nested_absmax = nested_absmax_buf; }
    s = sft_qweight_from_data(w->ctx, &d, out);
    sft__free(w->ctx, code_buf);
    if (s != SFT_OK) {
        char msg[1024];
        memcpy(msg, sft_last_error(), sizeof msg - 1);
        msg[sizeof msg - 1] = 0;
        return sft__fail(s, "%s: '%s.weight': %.400s", w->dir, prefix, msg);
    }
    return SFT_OK;
}

/* sft__model_linear_load: prefix.weight [rows, cols] (+ prefix.bias) as a layer:
   pre-quantized as stored, quantized per desc, or dense. */
static sft_status sft__model_linear_load(const sft__weights *w, const sft_load_desc *desc, const char *prefix, int64_t rows,
                                         int64_t cols, int bias, sft_linear **out) {
    char name[512];
    int64_t shape[2];
    sft_linear_desc ld;
    const sft_st_tensor *t;
    sft_status s = SFT_OK;
    memset(&ld, 0, sizeof ld);
    ld.compute_dtype = desc->compute_dtype;
    shape[0] = rows; shape[1] = cols;
    snprintf(name, sizeof name, "%s.weight", prefix);
    t = sft__weights_find(w, name, NULL);
    if (!t) return sft__weights_missing(w, name);
    if (t->dtype == SFT_U8) s = sft__bnb_load(w, prefix, rows, cols, &ld.qweight);
    else if (desc->quant != SFT_QUANT_NONE) {
        sft_tensor *dense = NULL;
        sft_quant_desc qd;
        qd.type = desc->quant; qd.blocksize = desc->blocksize; qd.double_quant = desc->double_quant;
        s = sft__weights_load(w, name, 2, shape, 1, &dense);
        if (s == SFT_OK) s = sft_quantize(w->ctx, dense, &qd, &ld.qweight);
        sft_tensor_destroy(dense);
    } else
        s = sft__weights_load(w, name, 2, shape, 1, &ld.weight);
    if (s == SFT_OK && bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        s = sft__weights_load(w, name, 1, shape, 0, &ld.bias);
    }
    if (s == SFT_OK) s = sft_linear_create(w->ctx, &ld, out);
    if (s != SFT_OK) { sft_tensor_destroy(ld.weight); sft_tensor_destroy(ld.bias); sft_qweight_destroy(ld.qweight); }
    return s;
}

static sft_status sft__model_block_load(sft_model *m, const sft__weights *w, const sft_load_desc *desc, int i) {
    const sft_model_config *c = &m->cfg;
    sft__block *b = &m->blocks[i];
    char prefix[256], name[320];
    int64_t D = c->hidden_size, F = c->intermediate_size, q = (int64_t)c->num_attention_heads * c->head_dim,
            kv = (int64_t)c->num_key_value_heads * c->head_dim;
    int64_t rows[SFT__N_PROJ], cols[SFT__N_PROJ];
    int p;
    rows[SFT__Q] = q; rows[SFT__K] = kv; rows[SFT__V] = kv; rows[SFT__O] = D; rows[SFT__GATE] = F; rows[SFT__UP] = F; rows[SFT__DOWN] = D;
    cols[SFT__Q] = D; cols[SFT__K] = D; cols[SFT__V] = D; cols[SFT__O] = q; cols[SFT__GATE] = D; cols[SFT__UP] = D; cols[SFT__DOWN] = F;
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", i);
    SFT__TRY(sft__weights_load(w, name, 1, &D, 0, &b->attn_norm));
    snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", i);
    SFT__TRY(sft__weights_load(w, name, 1, &D, 0, &b->mlp_norm));
    for (p = 0; p < SFT__N_PROJ; p++) {
        int bias = p < SFT__O ? c->attention_bias : p == SFT__O ? (c->attention_bias && strcmp(c->architecture, "Qwen2ForCausalLM") != 0)
                                                                : c->mlp_bias;
        snprintf(prefix, sizeof prefix, "model.layers.%d.%s.%s", i, p < 4 ? "self_attn" : "mlp", sft__proj_names[p]);
        SFT__TRY(sft__model_linear_load(w, desc, prefix, rows[p], cols[p], bias, &b->proj[p]));
    }
    return SFT_OK;
}

SFTDEF void sft_model_destroy(sft_model *m) {
    int i, p;
    if (!m) return;
    for (i = 0; m->blocks && i < m->cfg.num_hidden_layers; i++) {
        sft_tensor_destroy(m->blocks[i].attn_norm);
        sft_tensor_destroy(m->blocks[i].mlp_norm);
        for (p = 0; p < SFT__N_PROJ; p++) sft_linear_destroy(m->blocks[i].proj[p]);
    }
    sft__free(m->ctx, m->blocks);
    if (m->lm_head != m->embed) sft_tensor_destroy(m->lm_head);
    sft_tensor_destroy(m->embed);
    sft_tensor_destroy(m->norm);
    sft__free(m->ctx, m->dir);
    sft__free(m->ctx, m);
}

static sft_status sft__model_read_config(sft_context *ctx, const char *dir, sft_model_config *c) {
    char path[4096], *text = NULL;
    size_t len;
    sft_json *cfg = NULL;
    sft_status s;
    SFT__TRY(sft__path_join(path, sizeof path, dir, strlen(dir), "config.json"));
    SFT__TRY(sft_file_read(ctx, path, 0, &text, &len));
    s = sft_json_parse(ctx, text, len, path, NULL, &cfg);
    sft__free(ctx, text);
    if (s == SFT_OK) s = sft__model_config_parse(path, cfg, c);
    sft_json_free(cfg);
    return s;
}

/* sft__tensor_move: *t replaced by a copy on device (the CPU original freed) */
static sft_status sft__tensor_move(sft_context *ctx, sft_tensor **t, sft_device device) {
    sft_tensor *moved = NULL;
    if (!*t || (*t)->device == device) return SFT_OK;
    SFT__TRY(sft_tensor_to_device(ctx, *t, device, &moved));
    moved->requires_grad = (*t)->requires_grad;
    sft_tensor_destroy(*t);
    *t = moved;
    return SFT_OK;
}

/* sft__linear_move: a layer's base (and bias) to device */
static sft_status sft__linear_move(sft_linear *l, sft_device device) {
    if (l->n_ad) return sft__fail(SFT_ERR_STATE, "linear: moves to a device before its adapters are added");
    if (l->qweight && l->qweight->device != device) {
        sft_qweight *q = NULL;
        SFT__TRY(sft_qweight_to_device(l->ctx, l->qweight, device, &q));
        sft_qweight_destroy(l->qweight);
        l->qweight = q;
    }
    SFT__TRY(sft__tensor_move(l->ctx, &l->weight, device));
    return sft__tensor_move(l->ctx, &l->bias, device);
}

/* sft__block_move: decoder block i to the model's device (as soon as it is
   loaded, so the host never holds more than one block) */
static sft_status sft__block_move(sft_model *m, int i) {
    sft__block *b = &m->blocks[i];
    int p;
    if (m->device == SFT_DEVICE_CPU) return SFT_OK;
    SFT__TRY(sft__tensor_move(m->ctx, &b->attn_norm, m->device));
    SFT__TRY(sft__tensor_move(m->ctx, &b->mlp_norm, m->device));
    for (p = 0; p < SFT__N_PROJ; p++) SFT__TRY(sft__linear_move(b->proj[p], m->device));
    return SFT_OK;
}

static sft_status sft__model_load_weights(sft_model *m, const sft__weights *w, const sft_load_desc *desc) {
    const sft_model_config *c = &m->cfg;
    int64_t ev[2], D = c->hidden_size;
    int i;
    ev[0] = c->vocab_size; ev[1] = D;
    SFT__TRY(sft__weights_load(w, "model.embed_tokens.weight", 2, ev, 0, &m->embed));
    SFT__TRY(sft__tensor_move(m->ctx, &m->embed, m->device));
    SFT__TRY(sft__weights_load(w, "model.norm.weight", 1, &D, 0, &m->norm));
    SFT__TRY(sft__tensor_move(m->ctx, &m->norm, m->device));
    if (c->tie_word_embeddings) m->lm_head = m->embed;
    else {
        SFT__TRY(sft__weights_load(w, "lm_head.weight", 2, ev, 0, &m->lm_head));
        SFT__TRY(sft__tensor_move(m->ctx, &m->lm_head, m->device));
    }
    m->blocks = (sft__block *)sft__calloc(m->ctx, (size_t)c->num_hidden_layers, sizeof(sft__block));
    if (!m->blocks) return sft__fail(SFT_ERR_NOMEM, "%s: %d decoder blocks", w->dir, c->num_hidden_layers);
    for (i = 0; i < c->num_hidden_layers; i++) {
        SFT__TRY(sft__model_block_load(m, w, desc, i));
        SFT__TRY(sft__block_move(m, i));
    }
    return SFT_OK;
}

SFTDEF sft_status sft_model_load(sft_context *ctx, const char *dir, const sft_load_desc *desc, sft_model **out) {
    sft_load_desc d;
    sft__weights w;
    sft_model *m;
    sft_status s;
    if (out) *out = NULL;
    if (!ctx || !dir || !out) return sft__fail(SFT_ERR_ARG, "sft_model_load: NULL argument");
    memset(&d, 0, sizeof d);
    if (desc) d = *desc;
    if (d.blocksize == 0) d.blocksize = 64;
    if ((int)d.quant < 0 || d.quant > SFT_QUANT_FP4) return sft__fail(SFT_ERR_ARG, "sft_model_load: quant %d", (int)d.quant);
    if (!sft__quant_blocksize_ok(d.blocksize)) return sft__fail(SFT_ERR_ARG, "sft_model_load: blocksize %d", d.blocksize);
    SFT__TRY(sft__compute_dtype_check("sft_model_load", d.compute_dtype));
    if ((int)d.device < 0 || d.device >= SFT_DEVICE_COUNT) return sft__fail(SFT_ERR_DEVICE, "sft_model_load: device %d", (int)d.device);
    if (d.device == SFT_DEVICE_CUDA && !sft_cuda_available()) {
#ifdef SFT_CUDA
        return sft__fail(SFT_ERR_DEVICE, "sft_model_load: device cuda: no CUDA device answers (driver, CUDA_VISIBLE_DEVICES?)");
#else
        return sft__no_cuda("sft_model_load: device cuda");
#endif
    }
    m = (sft_model *)sft__calloc(ctx, 1, sizeof *m);
    if (!m) return sft__fail(SFT_ERR_NOMEM, "sft_model_load: the model");
    m->ctx = ctx;
    m->device = d.device;
    m->compute_bf16 = d.compute_dtype == SFT_BF16;
    m->dir = sft__strdup(ctx, dir);
    s = m->dir ? sft__model_read_config(ctx, dir, &m->cfg) : sft__fail(SFT_ERR_NOMEM, "sft_model_load: the model");
    if (s == SFT_OK) s = sft__weights_open(ctx, dir, &w);
    else memset(&w, 0, sizeof w);
    if (s == SFT_OK) s = sft__model_load_weights(m, &w, &d);
    sft__weights_close(&w);
    if (s != SFT_OK) { sft_model_destroy(m); return s; }
    *out = m;
    return SFT_OK;
}

SFTDEF const sft_model_config *sft_model_get_config(const sft_model *m) { return m ? &m->cfg : NULL; }

SFTDEF sft_status sft_model_set_compute_dtype(sft_model *m, sft_dtype compute_dtype) {
    int i, p;
    if (!m) return sft__fail(SFT_ERR_ARG, "sft_model_set_compute_dtype: NULL model");
    SFT__TRY(sft__compute_dtype_check("sft_model_set_compute_dtype", compute_dtype));
    for (i = 0; i < m->cfg.num_hidden_layers; i++)
        for (p = 0; p < SFT__N_PROJ; p++) SFT__TRY(sft_linear_set_compute_dtype(m->blocks[i].proj[p], compute_dtype));
    m->compute_bf16 = compute_dtype == SFT_BF16;
    return SFT_OK;
}

static int sft__proj_index(const char *module, size_t len) {
    int p;
    for (p = 0; p < SFT__N_PROJ; p++)
        if (strlen(sft__proj_names[p]) == len && strncmp(sft__proj_names[p], module, len) == 0) return p;
    return -1;
}

SFTDEF sft_linear *sft_model_linear(sft_model *m, int layer, const char *module) {
    int p = module ? sft__proj_index(module, strlen(module)) : -1;
    if (!m || layer < 0 || layer >= m->cfg.num_hidden_layers || p < 0) return NULL;
    return m->blocks[layer].proj[p];
}

/* sft__parse_targets: which projections target_modules names (a bit each). A
   full module path names its last component. */
static sft_status sft__parse_targets(const char *targets, unsigned *mask) {
    const char *s = targets;
    *mask = 0;
    if (!targets || strcmp(targets, "all-linear") == 0) { *mask = (1u << SFT__N_PROJ) - 1; return SFT_OK; }
    while (*s) {
        const char *e = s, *last;
        int p;
        while (*e && *e != ',') e++;
        for (last = e; last > s && last[-1] != '.'; last--) {}
        while (s < e && *s == ' ') s++;
        if (last < s) last = s;
        p = sft__proj_index(last, (size_t)(e - last));
        if (p < 0) return sft__fail(SFT_ERR_ARG, "lora: target module '%.*s' is not a projection of this model (q_proj, k_proj, "
                                    "v_proj, o_proj, gate_proj, up_proj, down_proj, or all-linear)", (int)(e - s), s);
        *mask |= 1u << p;
        s = *e ? e + 1 : e;
    }
    if (!*mask) return sft__fail(SFT_ERR_ARG, "lora: target_modules names nothing");
    return SFT_OK;
}

SFTDEF sft_status sft_model_add_lora(sft_model *m, const char *name, const sft_lora_desc *desc, const char *target_modules) {
    sft_lora_desc d;
    unsigned mask;
    int i, p;
    if (!m) return sft__fail(SFT_ERR_ARG, "sft_model_add_lora: NULL model");
    SFT__TRY(sft__parse_targets(target_modules, &mask));
    SFT__TRY(sft__lora_defaults(desc, &d));
    for (i = 0; i < m->cfg.num_hidden_layers; i++)
        for (p = 0; p < SFT__N_PROJ; p++) {
            sft_lora_desc dl = d;
            if (!(mask & (1u << p))) continue;
            dl.seed = sft_rng_key(d.seed, SFT__RNG_LORA_INIT, (uint64_t)i, (uint64_t)p);
            SFT__TRY(sft_linear_add_adapter(m->blocks[i].proj[p], name, &dl));
        }
    return SFT_OK;
}

/* sft__model_has_adapter: some projection holds an adapter of that name */
static int sft__model_has_adapter(const sft_model *m, const char *name) {
    int i, p;
    for (i = 0; i < m->cfg.num_hidden_layers; i++)
        for (p = 0; p < SFT__N_PROJ; p++)
            if (sft__lin_find(m->blocks[i].proj[p], name) >= 0) return 1;
    return 0;
}

/* every projection activates the named adapters it has (PEFT: a layer without
   one runs without it) */
SFTDEF sft_status sft_model_set_active(sft_model *m, const char *const *names, int n) {
    int i, p, k;
    if (!m || n < 0 || (n && !names) || n > SFT__LINEAR_MAX_ADAPTERS) return sft__fail(SFT_ERR_ARG, "sft_model_set_active: bad argument");
    for (k = 0; k < n; k++)
        if (!names[k] || !sft__model_has_adapter(m, names[k])) return sft__lin_unknown("sft_model_set_active", names[k]);
    for (i = 0; i < m->cfg.num_hidden_layers; i++)
        for (p = 0; p < SFT__N_PROJ; p++) {
            sft_linear *l = m->blocks[i].proj[p];
            const char *here[SFT__LINEAR_MAX_ADAPTERS];
            int c = 0;
            for (k = 0; k < n; k++) if (sft__lin_find(l, names[k]) >= 0) here[c++] = names[k];
            if (l->n_ad) SFT__TRY(sft_linear_set_active(l, here, c));
        }
    return SFT_OK;
}

/* ============================================================================
   === model: forward
   One decoder block is RMSNorm -> q, k, v projections -> RoPE -> causal GQA
   attention -> o projection -> residual, then RMSNorm -> gate, up -> SwiGLU ->
   down -> residual: about twenty nodes. With gradient checkpointing each block
   is an sft_checkpoint segment. */

typedef struct sft__fwd {
    sft_model     *m;
    sft_tensor    *positions, *seq_ids;
    sft_model_run  run;             /* a copy: checkpointed blocks read it in backward */
    int            layer;
} sft__fwd;

static sft_status sft__proj(sft_context *ctx, const sft__fwd *f, int p, sft_tensor *x, sft_tensor **out) {
    sft_linear_call call;
    memset(&call, 0, sizeof call);
    call.training = f->run.training;
    call.dropout_seed = sft_rng_key(f->run.dropout_seed, SFT__RNG_LORA_DROPOUT, (uint64_t)f->layer, (uint64_t)p);
    call.adapter_names = f->run.adapter_names;
    call.n_adapter_names = f->run.n_adapter_names;
    call.skip_missing = 1;      /* sft_model_forward checked the names exist in the model */
    return sft_linear_forward(ctx, f->m->blocks[f->layer].proj[p], x, &call, out);
}

static sft_status sft__heads(sft_context *ctx, sft_tensor *x, int64_t heads, int64_t hd, sft_tensor **out) {
    int64_t shape[4];
    shape[0] = x->shape[0]; shape[1] = x->shape[1]; shape[2] = heads; shape[3] = hd;
    return sft_reshape(ctx, x, 4, shape, out);
}

static sft_status sft__block_forward(sft_context *ctx, void *user, sft_tensor *const *in, sft_tensor **out) {
    const sft__fwd *f = (const sft__fwd *)user;
    const sft_model_config *c = &f->m->cfg;
    const sft__block *b = &f->m->blocks[f->layer];
    sft_tensor *x = in[0], *h, *q, *k, *v, *a, *o, *g, *u;
    int64_t flat[3];
    SFT__TRY(sft_rmsnorm(ctx, x, b->attn_norm, c->rms_norm_eps, &h));
    SFT__TRY(sft__proj(ctx, f, SFT__Q, h, &q));
    SFT__TRY(sft__proj(ctx, f, SFT__K, h, &k));
    SFT__TRY(sft__proj(ctx, f, SFT__V, h, &v));
    SFT__TRY(sft__heads(ctx, q, c->num_attention_heads, c->head_dim, &q));
    SFT__TRY(sft__heads(ctx, k, c->num_key_value_heads, c->head_dim, &k));
    SFT__TRY(sft__heads(ctx, v, c->num_key_value_heads, c->head_dim, &v));
    SFT__TRY(sft_rope(ctx, q, f->positions, &c->rope, &q));
    SFT__TRY(sft_rope(ctx, k, f->positions, &c->rope, &k));
    SFT__TRY(sft_attention(ctx, q, k, v, f->seq_ids, 0.0f, &a));
    flat[0] = x->shape[0]; flat[1] = x->shape[1]; flat[2] = (int64_t)c->num_attention_heads * c->head_dim;
    SFT__TRY(sft_reshape(ctx, a, 3, flat, &a));
    SFT__TRY(sft__proj(ctx, f, SFT__O, a, &o));
    SFT__TRY(sft_add(ctx, x, o, &x));
    SFT__TRY(sft_rmsnorm(ctx, x, b->mlp_norm, c->rms_norm_eps, &h));
    SFT__TRY(sft__proj(ctx, f, SFT__GATE, h, &g));
    SFT__TRY(sft__proj(ctx, f, SFT__UP, h, &u));
    SFT__TRY(sft_swiglu(ctx, g, u, &g));
    SFT__TRY(sft__proj(ctx, f, SFT__DOWN, g, &o));
    return sft_add(ctx, x, o, &out[0]);
}

/* sft__on_device: src as a step tensor on device (src itself when it is there
   already): a batch given on the CPU goes to the model's device */
static sft_status sft__on_device(sft_context *ctx, sft_tensor *src, sft_device device, sft_tensor **out) {
    *out = src;
    if (!src || src->device == device) return SFT_OK;
    SFT__TRY(sft__tensor_step(ctx, device, src->dtype, src->ndim, src->shape, out));
    return sft_tensor_copy_from(*out, src);
}

/* sft__scalar: the value of a one-element f32 tensor on any device */
static sft_status sft__scalar(const sft_tensor *t, float *v) {
    return sft__device_copy(v, SFT_DEVICE_CPU, t->data, t->device, sizeof *v);
}

static sft_status sft__batch_i32(const char *what, const sft_tensor *t, int64_t B, int64_t T) {
    char sb[96];
    if (!t) return SFT_OK;
    if (t->dtype != SFT_I32 || t->ndim != 2 || t->shape[0] != B || t->shape[1] != T || t->device != SFT_DEVICE_CPU)
        return sft__fail(SFT_ERR_SHAPE, "model: %s %s %s must be i32 [%lld, %lld] on the CPU", what, sft_dtype_name(t->dtype),
                         SFT__SHAPE(t, sb), (long long)B, (long long)T);
    return SFT_OK;
}

/* sft__model_inputs: positions (given or 0..T-1) and sequence ids (given, or from
   the attention mask: padding gets its own id so no token attends to it). */
static sft_status sft__model_inputs(sft_context *ctx, const sft_model_batch *b, int64_t B, int64_t T, sft__fwd *f) {
    int64_t shape[2], i;
    shape[0] = B; shape[1] = T;
    f->positions = b->positions; f->seq_ids = b->seq_ids;
    if (!f->positions) {
        SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_I32, 2, shape, &f->positions));
        for (i = 0; i < B * T; i++) ((int32_t *)f->positions->data)[i] = (int32_t)(i % T);
    }
    if (!f->seq_ids && b->attention_mask) {
        SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_I32, 2, shape, &f->seq_ids));
        for (i = 0; i < B * T; i++) ((int32_t *)f->seq_ids->data)[i] = ((const int32_t *)b->attention_mask->data)[i] ? 0 : -1;
    }
    return SFT_OK;
}

SFTDEF sft_status sft_shift_labels(sft_context *ctx, const sft_tensor *labels, sft_tensor **out) {
    int64_t B, T, b, t;
    const int32_t *values;
    if (!ctx || !labels || !out) return sft__fail(SFT_ERR_ARG, "shift_labels: NULL argument");
    if (labels->dtype != SFT_I32 || labels->ndim != 2)
        return sft__fail(SFT_ERR_SHAPE, "shift_labels: labels must be i32 [B, T]");
    B = labels->shape[0]; T = labels->shape[1];
    SFT__TRY(sft__i32_host(ctx, labels, &values));
    SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_I32, 2, labels->shape, out));
    for (b = 0; b < B; b++)
        for (t = 0; t < T; t++)
            ((int32_t *)(*out)->data)[b * T + t] = t + 1 < T ? values[b * T + t + 1] : -100;
    return sft__on_device(ctx, *out, labels->device, out);   /* where the labels were */
}

/* sft__logit_metrics: from whole logits [B, T, V] and shifted labels, over the
   trained tokens: argmax (the first largest) == label, and the entropy of the
   next-token distribution (what the fused loss counts a chunk at a time). On a
   device both are copied to the host first. */
static sft_status sft__logit_metrics(sft_context *ctx, sft_tensor *logits, sft_tensor *shifted, sft_model_output *out) {
    int64_t rows = sft_tensor_numel(shifted), V = logits->shape[logits->ndim - 1], r, k;
    SFT__TRY(sft__on_device(ctx, logits, SFT_DEVICE_CPU, &logits));
    SFT__TRY(sft__on_device(ctx, shifted, SFT_DEVICE_CPU, &shifted));
    for (r = 0; r < rows; r++) {
        int32_t y = ((const int32_t *)shifted->data)[r];
        const float *l = SFT__CF(logits) + r * V;
        int64_t best = 0;
        double sum = 0.0, wsum = 0.0;
        if (y == -100) continue;
        for (k = 1; k < V; k++) if (l[k] > l[best]) best = k;
        for (k = 0; k < V; k++) { double e = exp((double)l[k] - l[best]); sum += e; wsum += e * ((double)l[k] - l[best]); }
        out->metric_entropy += log(sum) - wsum / sum;          /* H = log Z - E[logit - max] */
        out->metric_correct += best == y;
        out->metric_tokens++;
    }
    return SFT_OK;
}

/* sft__neftune: x + U(-mag, mag), mag = alpha / sqrt(T * D) (the noise is a
   constant for backward: the gradient passes through unchanged) */
static sft_status sft__neftune(sft_context *ctx, sft_tensor *x, const sft_model_run *run, sft_tensor **out) {
    sft_tensor *noise;
    int64_t i, n = sft_tensor_numel(x);
    float mag = run->neftune_noise_alpha / sqrtf((float)(x->shape[1] * x->shape[2]));
    uint64_t key = sft_rng_key(run->neftune_seed, 0x4e4546ull, 0, 0);
    SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_F32, x->ndim, x->shape, &noise));
    for (i = 0; i < n; i++)
        SFT__F(noise)[i] = (run->neftune_uniform ? run->neftune_uniform[i] : 2.0f * sft_rng_uniform(key, (uint64_t)i) - 1.0f) * mag;
    SFT__TRY(sft__on_device(ctx, noise, x->device, &noise));
    return sft_add(ctx, x, noise, out);
}

/* sft__decoder_forward: the embeddings and every block. What they make is
   transient: the caller never sees it, so each tensor is given back as soon as
   the backward of the node that made it has run (see sft__release_transient). */
static sft_status sft__decoder_run(sft_context *ctx, sft__fwd *f, const sft_model_batch *batch, const sft_model_run *run,
                                   sft_tensor **x) {
    const sft_model *m = f[0].m;
    int i;
    if (batch->inputs_embeds) *x = batch->inputs_embeds;
    else {
        sft_tensor *ids;
        SFT__TRY(sft__on_device(ctx, batch->input_ids, m->device, &ids));
        SFT__TRY(sft_embedding(ctx, m->embed, ids, x));
    }
    if (run && run->training && run->neftune_noise_alpha > 0.0f) SFT__TRY(sft__neftune(ctx, *x, run, x));
    for (i = 0; i < m->cfg.num_hidden_layers; i++) {
        f[i] = f[0]; f[i].layer = i;
        if (run && run->gradient_checkpointing) SFT__TRY(sft_checkpoint(ctx, sft__block_forward, &f[i], 1, x, 1, x));
        else SFT__TRY(sft__block_forward(ctx, &f[i], x, x));
    }
    return SFT_OK;
}

static sft_status sft__decoder_forward(sft_context *ctx, sft__fwd *f, const sft_model_batch *batch, const sft_model_run *run,
                                       sft_tensor **x) {
    int prev = ctx->transient;
    sft_status s;
    ctx->transient = 1;
    s = sft__decoder_run(ctx, f, batch, run, x);
    ctx->transient = prev;
    return s;
}

SFTDEF sft_status sft_model_forward(sft_model *m, const sft_model_batch *batch, const sft_model_run *run,
                                    sft_model_output *out) {
    sft_context *ctx;
    sft__fwd *f;
    sft_tensor *x, *shifted;
    int64_t B, T;
    void *mem;
    if (out) memset(out, 0, sizeof *out);
    if (!m || !batch || !out) return sft__fail(SFT_ERR_ARG, "sft_model_forward: NULL argument");
    ctx = m->ctx;
    if (batch->inputs_embeds) {
        const sft_tensor *e = batch->inputs_embeds;
        char sb[96];
        if (e->dtype != SFT_F32 || e->ndim != 3 || e->shape[2] != m->cfg.hidden_size)
            return sft__fail(SFT_ERR_SHAPE, "model: inputs_embeds %s must be f32 [B, T, %d]", SFT__SHAPE(e, sb), m->cfg.hidden_size);
        if (e->device != m->device) return sft__fail(SFT_ERR_DEVICE, "model: inputs_embeds must be on the model's device");
        B = e->shape[0]; T = e->shape[1];
    } else {
        if (!batch->input_ids || batch->input_ids->ndim != 2) return sft__fail(SFT_ERR_SHAPE, "model: input_ids must be i32 [B, T]");
        B = batch->input_ids->shape[0]; T = batch->input_ids->shape[1];
        SFT__TRY(sft__batch_i32("input_ids", batch->input_ids, B, T));
    }
    if (run && run->adapter_names) {
        int k;
        if (run->n_adapter_names != B) return sft__fail(SFT_ERR_SHAPE, "model: %d adapter_names for %lld rows", run->n_adapter_names, (long long)B);
        for (k = 0; k < run->n_adapter_names; k++)
            if (!run->adapter_names[k] || (strcmp(run->adapter_names[k], "__base__") != 0 && !sft__model_has_adapter(m, run->adapter_names[k])))
                return sft__lin_unknown("model (adapter_names)", run->adapter_names[k]);
    }
    SFT__TRY(sft__batch_i32("attention_mask", batch->attention_mask, B, T));
    SFT__TRY(sft__batch_i32("labels", batch->labels, B, T));
    SFT__TRY(sft__batch_i32("seq_ids", batch->seq_ids, B, T));
    SFT__TRY(sft__batch_i32("positions", batch->positions, B, T));
    if (m->cfg.sliding_window > 0 && T > m->cfg.sliding_window)
        return sft__fail(SFT_ERR_UNSUPPORTED, "model: %lld tokens exceed the sliding window of %d", (long long)T, m->cfg.sliding_window);
    /* the call's state lives in the step arena: checkpointed blocks read it again in backward */
    SFT__TRY(sft__arena_alloc(sft__cur_arena(ctx, SFT_DEVICE_CPU), (size_t)m->cfg.num_hidden_layers * sizeof(sft__fwd), &mem));
    f = (sft__fwd *)mem;
    memset(f, 0, sizeof *f);
    f[0].m = m;
    if (run) f[0].run = *run;
    SFT__TRY(sft__model_inputs(ctx, batch, B, T, &f[0]));
    SFT__TRY(sft__on_device(ctx, f[0].positions, m->device, &f[0].positions));
    SFT__TRY(sft__on_device(ctx, f[0].seq_ids, m->device, &f[0].seq_ids));
    SFT__TRY(sft__decoder_forward(ctx, f, batch, run, &x));
    SFT__TRY(sft_rmsnorm(ctx, x, m->norm, m->cfg.rms_norm_eps, &out->hidden));
    if (!run || run->want_logits || !batch->labels)
        SFT__TRY(sft__matmul_ex(ctx, out->hidden, m->lm_head, 0, 1, m->compute_bf16, &out->logits));
    if (!batch->labels) return SFT_OK;
    SFT__TRY(sft_shift_labels(ctx, batch->labels, &shifted));
    SFT__TRY(sft__on_device(ctx, shifted, m->device, &shifted));
    if (out->logits) {
        if (run && run->token_metrics) SFT__TRY(sft__logit_metrics(ctx, out->logits, shifted, out));
        return sft_cross_entropy(ctx, out->logits, shifted, run ? &run->loss : NULL, &out->loss);
    }
    {
        sft__lce_metrics mt;
        memset(&mt, 0, sizeof mt);
        SFT__TRY(sft__linear_cross_entropy_ex(ctx, out->hidden, m->lm_head, shifted, run ? &run->loss : NULL, m->compute_bf16,
                                              run && run->token_metrics ? &mt : NULL, &out->loss));
        out->metric_tokens = mt.tokens; out->metric_correct = mt.correct; out->metric_entropy = mt.entropy;
        return SFT_OK;
    }
}


/* ============================================================================
   === model: PEFT adapter files */

/* sft__peft_key: the PEFT state-dict key of projection (layer, p)'s tensor what
   ("lora_A.weight", "lora_B.weight", "lora_magnitude_vector"). */
static void sft__peft_key(char *buf, size_t cap, int layer, int p, const char *what) {
    snprintf(buf, cap, "base_model.model.model.layers.%d.%s.%s.%s", layer, p < 4 ? "self_attn" : "mlp", sft__proj_names[p], what);
}

/* sft__peft_parse_key: (layer, projection, part: 0 A, 1 B, 2 magnitude) of a key,
   or 0 if it is not a LoRA key of a decoder projection. */
static int sft__peft_parse_key(const char *key, int *layer, int *p, int *part) {
    const char *s = key, *proj, *rest;
    char *end;
    long l;
    int attn;
    if (strncmp(s, "base_model.model.model.layers.", 30) != 0) return 0;
    s += 30;
    l = strtol(s, &end, 10);
    if (end == s || *end != '.' || l < 0 || l > 100000) return 0;
    s = end + 1;
    attn = strncmp(s, "self_attn.", 10) == 0;
    if (attn) s += 10;
    else if (strncmp(s, "mlp.", 4) == 0) s += 4;
    else return 0;
    proj = s;
    rest = strchr(s, '.');
    if (!rest || (*p = sft__proj_index(proj, (size_t)(rest - proj))) < 0 || (*p < SFT__GATE) != attn) return 0;
    rest++;
    if (strcmp(rest, "lora_A.weight") == 0) *part = 0;
    else if (strcmp(rest, "lora_B.weight") == 0) *part = 1;
    else if (strcmp(rest, "lora_magnitude_vector") == 0 || strcmp(rest, "lora_magnitude_vector.weight") == 0) *part = 2;
    else return 0;
    *layer = (int)l;
    return 1;
}

/* sft__adapter_config: the LoraConfig fields sft.h reproduces; anything that
   would change the computation and is not reproduced is refused by name. */
static sft_status sft__adapter_config(sft_context *ctx, const char *path, sft_lora_desc *d) {
    char *text = NULL;
    size_t len;
    sft_json *j = NULL;
    const sft_json *v;
    const char *bad = NULL, *t;
    sft_status s;
    SFT__TRY(sft_file_read(ctx, path, 0, &text, &len));
    s = sft_json_parse(ctx, text, len, path, NULL, &j);
    sft__free(ctx, text);
    SFT__TRY(s);
    memset(d, 0, sizeof *d);
    t = sft__json_str(j, "peft_type");
    if (!t || strcmp(t, "LORA") != 0) s = sft__fail(SFT_ERR_UNSUPPORTED, "%s: peft_type '%s' is not supported (LORA)", path, t ? t : "(none)");
    else if ((t = sft__json_str(j, "bias")) && strcmp(t, "none") != 0) s = sft__fail(SFT_ERR_UNSUPPORTED, "%s: bias '%s' is not supported (none)", path, t);
    else if (sft__json_bool(j, "fan_in_fan_out", 0)) s = sft__fail(SFT_ERR_UNSUPPORTED, "%s: fan_in_fan_out is not supported", path);
    else if ((v = sft_json_get(j, "modules_to_save")) && v->type == SFT_JSON_ARRAY && v->length)
        s = sft__fail(SFT_ERR_UNSUPPORTED, "%s: modules_to_save is not supported", path);
    else if (((v = sft_json_get(j, "rank_pattern")) && v->type == SFT_JSON_OBJECT && v->length) ||
             ((v = sft_json_get(j, "alpha_pattern")) && v->type == SFT_JSON_OBJECT && v->length))
        s = sft__fail(SFT_ERR_UNSUPPORTED, "%s: rank_pattern / alpha_pattern are not supported", path);
    if (s == SFT_OK) {
        d->r = sft__cfg_int(j, "r", 8, &bad);
        d->alpha = sft__cfg_float(j, "lora_alpha", 8.0f, &bad);
        d->dropout = sft__cfg_float(j, "lora_dropout", 0.0f, &bad);
        d->use_rslora = sft__json_bool(j, "use_rslora", 0);
        d->use_dora = sft__json_bool(j, "use_dora", 0);
        if (bad || d->r < 1) s = sft__fail(SFT_ERR_FORMAT, "%s: field '%s' has an impossible value", path, bad ? bad : "r");
    }
    sft_json_free(j);
    return s;
}

/* sft__adapter_copy: the file's tensor into an adapter tensor of the same shape */
static sft_status sft__adapter_copy(sft_context *ctx, const sft_st_file *f, const char *path, const sft_st_tensor *t, sft_tensor *dst) {
    sft_tensor *src = NULL, *f32 = NULL;
    int i, ok = t->ndim == dst->ndim;
    sft_status s;
    char sa[96], sb[96];
    for (i = 0; ok && i < dst->ndim; i++) ok = t->shape[i] == dst->shape[i];
    if (!ok)
        return sft__fail(SFT_ERR_SHAPE, "%s: '%s' is %s, the model needs %s (an adapter for another model?)", path, t->name,
                         sft__shape_str(sa, sizeof sa, t->ndim > 4 ? 4 : t->ndim, t->shape), SFT__SHAPE(dst, sb));
    if (t->dtype != SFT_F32 && t->dtype != SFT_BF16 && t->dtype != SFT_F16)
        return sft__fail(SFT_ERR_DTYPE, "%s: '%s' is %s", path, t->name, sft_dtype_name(t->dtype));
    SFT__TRY(sft_st_load(ctx, f, t->name, &src));
    s = src->dtype == SFT_F32 ? SFT_OK : sft_tensor_convert(ctx, src, SFT_F32, &f32);
    if (s == SFT_OK) s = sft__device_copy(dst->data, dst->device, (f32 ? f32 : src)->data, SFT_DEVICE_CPU, sft_tensor_nbytes(dst));
    sft_tensor_destroy(src); sft_tensor_destroy(f32);
    return s;
}

static sft_status sft__adapter_load_weights(sft_model *m, const sft_st_file *f, const char *path, const char *name,
                                            const sft_lora_desc *d) {
    int n = sft_st_count(f), i, layer, p, part, pass;
    /* pass 0 creates the adapter on every projection the file names; pass 1 fills it */
    for (pass = 0; pass < 2; pass++)
        for (i = 0; i < n; i++) {
            const sft_st_tensor *t = sft_st_tensor_at(f, i);
            sft_lora_weights w;
            sft_linear *lin;
            if (!sft__peft_parse_key(t->name, &layer, &p, &part))
                return sft__fail(SFT_ERR_FORMAT, "%s: '%s' is not a LoRA weight of a decoder projection", path, t->name);
            if (layer >= m->cfg.num_hidden_layers)
                return sft__fail(SFT_ERR_SHAPE, "%s: '%s' names layer %d, the model has %d (an adapter for another model?)", path,
                                 t->name, layer, m->cfg.num_hidden_layers);
            lin = m->blocks[layer].proj[p];
            if (pass == 0) {
                if (sft__lin_find(lin, name) < 0) {
                    sft_lora_desc dl = *d;
                    dl.seed = sft_rng_key(0, SFT__RNG_LORA_INIT, (uint64_t)layer, (uint64_t)p);
                    SFT__TRY(sft_linear_add_adapter(lin, name, &dl));
                }
                continue;
            }
            SFT__TRY(sft_linear_adapter_weights(lin, name, &w));
            if (part == 2 && !w.magnitude) return sft__fail(SFT_ERR_FORMAT, "%s: '%s' is a DoRA magnitude but use_dora is false", path, t->name);
            SFT__TRY(sft__adapter_copy(m->ctx, f, path, t, part == 0 ? w.A : part == 1 ? w.B : w.magnitude));
        }
    /* every projection that got the adapter must have had both A and B */
    for (layer = 0; layer < m->cfg.num_hidden_layers; layer++)
        for (p = 0; p < SFT__N_PROJ; p++) {
            char key[256];
            if (sft__lin_find(m->blocks[layer].proj[p], name) < 0) continue;
            for (part = 0; part < (d->use_dora ? 3 : 2); part++) {
                char alt[270];
                sft__peft_key(key, sizeof key, layer, p, part == 0 ? "lora_A.weight" : part == 1 ? "lora_B.weight" : "lora_magnitude_vector");
                snprintf(alt, sizeof alt, "%s.weight", key);   /* the magnitude's other spelling */
                if (!sft_st_find(f, key) && !(part == 2 && sft_st_find(f, alt)))
                    return sft__fail(SFT_ERR_NOT_FOUND, "%s: '%s' is missing", path, key);
            }
        }
    return SFT_OK;
}

/* sft__model_drop_adapter: remove a half-loaded adapter from every projection */
static void sft__model_drop_adapter(sft_model *m, const char *name) {
    int layer, p;
    for (layer = 0; layer < m->cfg.num_hidden_layers; layer++)
        for (p = 0; p < SFT__N_PROJ; p++) {
            sft_linear *l = m->blocks[layer].proj[p];
            int i = sft__lin_find(l, name), k;
            if (i < 0) continue;
            sft__adapter_free(l->ctx, &l->ad[i]);
            for (k = i; k + 1 < l->n_ad; k++) l->ad[k] = l->ad[k + 1];
            l->n_ad--;
            for (k = 0; k < l->n_active; k++)
                if (l->active[k] == i) { memmove(&l->active[k], &l->active[k + 1], (size_t)(l->n_active - k - 1) * sizeof(int)); l->n_active--; k--; }
                else if (l->active[k] > i) l->active[k]--;
        }
}

SFTDEF sft_status sft_model_load_adapter(sft_model *m, const char *dir, const char *name) {
    char path[4096], wpath[4096];
    sft_lora_desc d;
    sft_st_file *f = NULL;
    sft_status s;
    int layer, p;
    if (!m || !dir || !name) return sft__fail(SFT_ERR_ARG, "sft_model_load_adapter: NULL argument");
    for (layer = 0; layer < m->cfg.num_hidden_layers; layer++)
        for (p = 0; p < SFT__N_PROJ; p++)
            if (sft__lin_find(m->blocks[layer].proj[p], name) >= 0)
                return sft__fail(SFT_ERR_ARG, "sft_model_load_adapter: the model has an adapter named '%s'", name);
    SFT__TRY(sft__path_join(path, sizeof path, dir, strlen(dir), "adapter_config.json"));
    SFT__TRY(sft__adapter_config(m->ctx, path, &d));
    SFT__TRY(sft__path_join(wpath, sizeof wpath, dir, strlen(dir), "adapter_model.safetensors"));
    SFT__TRY(sft_st_open(m->ctx, wpath, &f));
    s = sft_st_count(f) ? sft__adapter_load_weights(m, f, wpath, name, &d) : sft__fail(SFT_ERR_FORMAT, "%s: no tensors", wpath);
    sft_st_close(f);
    if (s != SFT_OK) sft__model_drop_adapter(m, name);
    return s;
}

static sft_status sft__adapter_config_write(sft_model *m, const sft__adapter *a, unsigned targets, const char *path) {
    sft_json_writer w;
    char *text = NULL;
    size_t len = 0;
    sft_buf part;
    int p;
    sft_status s;
    memset(&w, 0, sizeof w);
    w.ctx = m->ctx; w.indent = 2;
    sft_json_write_object_begin(&w);
    sft_json_write_key(&w, "base_model_name_or_path"); sft_json_write_string(&w, m->dir);
    sft_json_write_key(&w, "bias"); sft_json_write_string(&w, "none");
    sft_json_write_key(&w, "fan_in_fan_out"); sft_json_write_bool(&w, 0);
    sft_json_write_key(&w, "inference_mode"); sft_json_write_bool(&w, 1);
    sft_json_write_key(&w, "init_lora_weights");
    if (a->desc.init == SFT_LORA_INIT_GAUSSIAN) sft_json_write_string(&w, "gaussian"); else sft_json_write_bool(&w, 1);
    sft_json_write_key(&w, "lora_alpha"); sft_json_write_number(&w, a->desc.alpha);
    sft_json_write_key(&w, "lora_dropout"); sft_json_write_number(&w, a->desc.dropout);
    sft_json_write_key(&w, "modules_to_save"); sft_json_write_null(&w);
    sft_json_write_key(&w, "peft_type"); sft_json_write_string(&w, "LORA");
    sft_json_write_key(&w, "r"); sft_json_write_int(&w, a->desc.r);
    sft_json_write_key(&w, "target_modules");
    sft_json_write_array_begin(&w);
    for (p = 0; p < SFT__N_PROJ; p++)
        if (targets & (1u << p)) sft_json_write_string(&w, sft__proj_names[p]);
    sft_json_write_array_end(&w);
    sft_json_write_key(&w, "task_type"); sft_json_write_string(&w, "CAUSAL_LM");
    sft_json_write_key(&w, "use_dora"); sft_json_write_bool(&w, a->m != NULL);
    sft_json_write_key(&w, "use_rslora"); sft_json_write_bool(&w, a->desc.use_rslora);
    sft_json_write_object_end(&w);
    SFT__TRY(sft_json_writer_finish(&w, &text, &len));
    part.data = text; part.len = len;
    s = sft_file_write_atomic(m->ctx, path, &part, 1);
    sft__free(m->ctx, text);
    return s;
}

SFTDEF sft_status sft_model_save_adapter(sft_model *m, const char *name, const char *dir) {
    int layer, p, n = 0, max = 0;
    unsigned targets = 0;
    sft_st_entry *e;
    void **copies;
    char *keys, path[4096];
    const sft__adapter *first = NULL;
    const char *mk = "format", *mv = "pt";
    sft_status s;
    if (!m || !name || !dir) return sft__fail(SFT_ERR_ARG, "sft_model_save_adapter: NULL argument");
    for (layer = 0; layer < m->cfg.num_hidden_layers; layer++)
        for (p = 0; p < SFT__N_PROJ; p++) {
            int i = sft__lin_find(m->blocks[layer].proj[p], name);
            if (i < 0) continue;
            if (!first) first = &m->blocks[layer].proj[p]->ad[i];
            targets |= 1u << p;
            max += 3;
        }
    if (!first) return sft__lin_unknown("sft_model_save_adapter", name);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return sft__fail(SFT_ERR_IO, "%s: cannot create the directory (%s)", dir, strerror(errno));
    e = (sft_st_entry *)sft__calloc(m->ctx, (size_t)max, sizeof *e);
    keys = (char *)sft__alloc(m->ctx, (size_t)max * 160);
    copies = (void **)sft__calloc(m->ctx, (size_t)max, sizeof *copies);   /* host copies of device tensors */
    if (!e || !keys || !copies) {
        sft__free(m->ctx, e); sft__free(m->ctx, keys); sft__free(m->ctx, copies);
        return sft__fail(SFT_ERR_NOMEM, "save adapter '%s'", name);
    }
    s = SFT_OK;
    for (layer = 0; s == SFT_OK && layer < m->cfg.num_hidden_layers; layer++)
        for (p = 0; s == SFT_OK && p < SFT__N_PROJ; p++) {
            int i = sft__lin_find(m->blocks[layer].proj[p], name), part;
            const sft__adapter *a;
            if (i < 0) continue;
            a = &m->blocks[layer].proj[p]->ad[i];
            for (part = 0; s == SFT_OK && part < (a->m ? 3 : 2); part++) {
                char *k = keys + (size_t)n * 160;
                sft__peft_key(k, 160, layer, p, part == 0 ? "lora_A.weight" : part == 1 ? "lora_B.weight" : "lora_magnitude_vector");
                s = sft__st_entry_staged(m->ctx, k, part == 0 ? a->A : part == 1 ? a->B : a->m, &e[n], &copies[n]);
                n++;
            }
        }
    if (s == SFT_OK) s = sft__path_join(path, sizeof path, dir, strlen(dir), "adapter_model.safetensors");
    if (s == SFT_OK) s = sft_st_save(m->ctx, path, e, n, &mk, &mv, 1);
    if (s == SFT_OK) s = sft__path_join(path, sizeof path, dir, strlen(dir), "adapter_config.json");
    if (s == SFT_OK) s = sft__adapter_config_write(m, first, targets, path);
    while (n > 0) sft__free(m->ctx, copies[--n]);
    sft__free(m->ctx, e);
    sft__free(m->ctx, keys);
    sft__free(m->ctx, copies);
    return s;
}

/* ============================================================================
   === model: weights by name */

/* weights per layer: the two norms, then each projection's weight and bias */
#define SFT__LAYER_WEIGHTS (2 + 2 * SFT__N_PROJ)

SFTDEF int sft_model_weight_at(sft_model *m, int i, char name[SFT_WEIGHT_NAME_MAX], sft_tensor **weight) {
    char buf[SFT_WEIGHT_NAME_MAX];
    int L = m ? m->cfg.num_hidden_layers : 0, k;
    sft_tensor *t = NULL;
    if (!m || i < 0) return 0;
    if (i == 0) { t = m->embed; snprintf(buf, sizeof buf, "model.embed_tokens.weight"); }
    else if (i - 1 < L * SFT__LAYER_WEIGHTS) {
        int layer = (i - 1) / SFT__LAYER_WEIGHTS, p;
        k = (i - 1) % SFT__LAYER_WEIGHTS;
        if (k < 2) {
            t = k == 0 ? m->blocks[layer].attn_norm : m->blocks[layer].mlp_norm;
            snprintf(buf, sizeof buf, "model.layers.%d.%s.weight", layer, k == 0 ? "input_layernorm" : "post_attention_layernorm");
        } else {
            const sft_linear *l;
            p = (k - 2) / 2;
            l = m->blocks[layer].proj[p];
            t = (k - 2) % 2 == 0 ? l->weight : l->bias;
            snprintf(buf, sizeof buf, "model.layers.%d.%s.%s.%s", layer, p < 4 ? "self_attn" : "mlp", sft__proj_names[p],
                     (k - 2) % 2 == 0 ? "weight" : "bias");
        }
    } else if (i - 1 == L * SFT__LAYER_WEIGHTS) { t = m->norm; snprintf(buf, sizeof buf, "model.norm.weight"); }
    else if (i - 1 == L * SFT__LAYER_WEIGHTS + 1 && m->lm_head != m->embed) { t = m->lm_head; snprintf(buf, sizeof buf, "lm_head.weight"); }
    else return 0;
    if (name) memcpy(name, buf, sizeof buf);
    if (weight) *weight = t;
    return 1;
}

SFTDEF sft_tensor *sft_model_weight(sft_model *m, const char *name) {
    char n[SFT_WEIGHT_NAME_MAX];
    sft_tensor *t;
    int i;
    for (i = 0; name && sft_model_weight_at(m, i, n, &t); i++)
        if (strcmp(n, name) == 0) return t;
    return NULL;
}

/* ============================================================================
   === model: prompt tuning */

SFTDEF sft_status sft_model_embed(sft_model *m, sft_tensor *ids, sft_tensor **out) {
    if (out) *out = NULL;
    if (!m || !ids || !out) return sft__fail(SFT_ERR_ARG, "sft_model_embed: NULL argument");
    SFT__TRY(sft__on_device(m->ctx, ids, m->device, &ids));
    return sft_embedding(m->ctx, m->embed, ids, out);
}

SFTDEF sft_status sft_model_prompt_init_text(sft_model *m, const int32_t *ids, int n_ids, int num_virtual_tokens,
                                             sft_tensor **out) {
    int64_t shape[2], D, i;
    if (out) *out = NULL;
    if (!m || !ids || !out || n_ids <= 0 || num_virtual_tokens <= 0)
        return sft__fail(SFT_ERR_ARG, "prompt tuning: TEXT init needs ids (%d) and num_virtual_tokens (%d) > 0", n_ids, num_virtual_tokens);
    for (i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab_size)
            return sft__fail(SFT_ERR_ARG, "prompt tuning: init id %d is outside the vocabulary", ids[i]);
    D = m->cfg.hidden_size;
    shape[0] = num_virtual_tokens; shape[1] = D;
    SFT__TRY(sft_tensor_create_on(m->ctx, m->device, SFT_F32, 2, shape, out));
    for (i = 0; i < num_virtual_tokens; i++) {   /* PEFT: the ids repeated to length, then cut */
        sft_status s = sft__device_copy(SFT__F(*out) + i * D, m->device, SFT__CF(m->embed) + (int64_t)ids[i % n_ids] * D, m->device,
                                        (size_t)D * sizeof(float));
        if (s != SFT_OK) { sft_tensor_destroy(*out); *out = NULL; return s; }
    }
    sft_tensor_set_requires_grad(*out, 1);
    return SFT_OK;
}



/* ============================================================================
   === model: the memory plan */

static size_t sft__tensor_bytes(const sft_tensor *t) { return t ? sft_tensor_nbytes(t) + sizeof(sft_tensor) : 0; }

static size_t sft__qweight_bytes(const sft_qweight *q) {
    size_t n;
    if (!q) return 0;
    n = sizeof *q + (size_t)((q->rows * q->cols + 1) / 2);
    if (q->double_quant)
        n += (size_t)q->n_blocks + (size_t)sft__ceil_div(q->n_blocks, SFT_QUANT_NESTED_BLOCKSIZE) * sizeof(float);
    else
        n += (size_t)q->n_blocks * sizeof(float);
    return n;
}

/* the model's own memory: weights (with the layer objects) and adapters */
static void sft__model_bytes(const sft_model *m, size_t *weights, size_t *adapters, size_t *trainable) {
    int layer, p, i;
    *weights = sizeof *m + strlen(m->dir) + 1 + (size_t)m->cfg.num_hidden_layers * sizeof(sft__block);
    *weights += sft__tensor_bytes(m->embed) + sft__tensor_bytes(m->norm) + (m->lm_head != m->embed ? sft__tensor_bytes(m->lm_head) : 0);
    *adapters = *trainable = 0;
    for (layer = 0; layer < m->cfg.num_hidden_layers; layer++) {
        const sft__block *b = &m->blocks[layer];
        *weights += sft__tensor_bytes(b->attn_norm) + sft__tensor_bytes(b->mlp_norm);
        for (p = 0; p < SFT__N_PROJ; p++) {
            const sft_linear *l = b->proj[p];
            *weights += sizeof *l + sft__tensor_bytes(l->weight) + sft__tensor_bytes(l->bias) + sft__qweight_bytes(l->qweight);
            for (i = 0; i < l->n_ad; i++) {
                const sft__adapter *a = &l->ad[i];
                *adapters += strlen(a->name) + 1 + sft__tensor_bytes(a->A) + sft__tensor_bytes(a->B) + sft__tensor_bytes(a->m);
                *trainable += sft_tensor_nbytes(a->A) + sft_tensor_nbytes(a->B) + (a->m ? sft_tensor_nbytes(a->m) : 0);
            }
        }
    }
}

/* the buffers kernels keep in the context once used: GEMM packing (not made when
   every GEMM goes to the host's BLAS: SFT_USE_CBLAS, the automatic path and no
   4-bit or bf16 weight to decode), attention tiles */
static size_t sft__workspace_bytes(const sft_model *m) {
    const sft_context *ctx = m->ctx;
    int packs = 1;
#ifdef SFT_USE_CBLAS
    int layer, p;
    packs = ctx->gemm_pack != NULL || ctx->cpu_path != SFT_CPU_AUTO;
    for (layer = 0; !packs && layer < m->cfg.num_hidden_layers; layer++)
        for (p = 0; p < SFT__N_PROJ; p++)
            packs |= m->blocks[layer].proj[p]->qweight != NULL || m->blocks[layer].proj[p]->weight->dtype != SFT_F32;
#endif
    return (packs ? ((size_t)ctx->threads * SFT__BLK_MC * SFT__BLK_KC + (size_t)SFT__BLK_KC * SFT__BLK_NC) * sizeof(float) : 0) +
           (size_t)ctx->threads * SFT__ATTN_SCRATCH * sizeof(float);
}

SFTDEF sft_status sft_model_memory_plan(sft_model *m, int64_t batch, int64_t seq_len, const sft_model_run *run,
                                        sft_memory_plan *out) {
    sft_context *ctx;
    sft_model_run r;
    sft_model_batch b;
    sft_model_output o;
    int64_t shape[2];
    size_t trainable;
    sft_status s;
    if (out) memset(out, 0, sizeof *out);
    if (!m || !out) return sft__fail(SFT_ERR_ARG, "sft_model_memory_plan: NULL argument");
    if (batch < 1 || seq_len < 1 || batch * seq_len > ((int64_t)1 << 32))
        return sft__fail(SFT_ERR_ARG, "sft_model_memory_plan: batch %lld x seq_len %lld", (long long)batch, (long long)seq_len);
    ctx = m->ctx;
    memset(&r, 0, sizeof r);
    if (run) r = *run;
    else r.training = 1;
    r.want_logits = run ? run->want_logits : 0;
    memset(&b, 0, sizeof b);
    shape[0] = batch; shape[1] = seq_len;
    sft_step_begin(ctx);
    ctx->plan_only = 1;
    s = sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_I32, 2, shape, &b.input_ids);
    if (s == SFT_OK) s = sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_I32, 2, shape, &b.labels);
    if (s == SFT_OK) {
        memset(b.input_ids->data, 0, sft_tensor_nbytes(b.input_ids));
        memset(b.labels->data, 0, sft_tensor_nbytes(b.labels));
        s = sft_model_forward(m, &b, &r, &o);
    }
    if (s == SFT_OK && o.loss && o.loss->requires_grad) s = sft_backward(ctx, o.loss);
    ctx->plan_only = 0;
    out->activations = sft__arena_footprint(&ctx->arena[m->device]) + sft__arena_footprint(&ctx->scratch[m->device]) +
                       (m->device == SFT_DEVICE_CPU ? sft__heap_footprint(&ctx->heap) : 0);   /* where the model computes */
    sft_step_begin(ctx);
    SFT__TRY(s);
    sft__model_bytes(m, &out->weights, &out->adapters, &trainable);
    out->gradients = trainable;
    out->optimizer = 2 * trainable;
    out->workspace = sft__workspace_bytes(m);
#ifdef SFT_CUDA
    if (m->device == SFT_DEVICE_CUDA) out->workspace = sft__cuda_workspace_bytes();
#endif
    out->total = out->weights + out->adapters + out->gradients + out->optimizer + out->activations + out->workspace;
    return SFT_OK;
}

/* ============================================================================
   === generate: KV-cache decoding and sampling
   The prompt runs through the decoder once (its keys and values go to the
   cache), then each new token alone: its query attends to every cached key.
   The same projections, norms and RoPE as training; attention over the cache is
   a plain loop (one query row per head). */

typedef struct sft__kv { float *k, *v; } sft__kv;    /* [max_T, Hkv, D] per layer, on the model's device */

/* sft__attn_cached: out[i] for n new queries at positions pos0.. over the cache
   (keys 0 .. pos0 + i). q [n, Hq, D], out [n, Hq, D]. */
static void sft__attn_cached(const sft_model_config *c, const float *q, const sft__kv *kv, int64_t pos0, int64_t n, float *out,
                             float *scores) {
    int64_t Hq = c->num_attention_heads, Hkv = c->num_key_value_heads, D = c->head_dim, i, h, j, d;
    float scale = 1.0f / sqrtf((float)D);
    for (i = 0; i < n; i++)
        for (h = 0; h < Hq; h++) {
            const float *qi = q + (i * Hq + h) * D;
            int64_t g = h / (Hq / Hkv), last = pos0 + i;
            float mx = -INFINITY, sum = 0.0f, *o = out + (i * Hq + h) * D;
            for (j = 0; j <= last; j++) {
                const float *kj = kv->k + (j * Hkv + g) * D;
                float dot = 0.0f;
                for (d = 0; d < D; d++) dot += qi[d] * kj[d];
                scores[j] = dot * scale;
                if (scores[j] > mx) mx = scores[j];
            }
            for (j = 0; j <= last; j++) { scores[j] = expf(scores[j] - mx); sum += scores[j]; }
            for (d = 0; d < D; d++) o[d] = 0.0f;
            for (j = 0; j <= last; j++) {
                const float *vj = kv->v + (j * Hkv + g) * D;
                float w = scores[j] / sum;
                for (d = 0; d < D; d++) o[d] += w * vj[d];
            }
        }
}

/* sft__decode: n tokens at positions pos0.. through the decoder with the cache;
   *logits = the last token's logits [1, V] (a step tensor). */
static sft_status sft__decode(sft_model *m, sft__kv *cache, const int32_t *tokens, int64_t n, int64_t pos0, float *scores,
                              sft_tensor **logits) {
    sft_context *ctx = m->ctx;
    const sft_model_config *c = &m->cfg;
    int64_t shape[3], i, Hq = c->num_attention_heads, Hkv = c->num_key_value_heads, D = c->head_dim;
    sft_tensor *ids, *pos, *x, *h, *q, *k, *v, *a, *o, *g, *u;
    sft__fwd f;
    int layer;
    memset(&f, 0, sizeof f);
    f.m = m;
    shape[0] = 1; shape[1] = n;
    SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_I32, 2, shape, &ids));
    SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_I32, 2, shape, &pos));
    for (i = 0; i < n; i++) { ((int32_t *)ids->data)[i] = tokens[i]; ((int32_t *)pos->data)[i] = (int32_t)(pos0 + i); }
    SFT__TRY(sft__on_device(ctx, ids, m->device, &ids));
    SFT__TRY(sft__on_device(ctx, pos, m->device, &pos));
    SFT__TRY(sft_embedding(ctx, m->embed, ids, &x));
    for (layer = 0; layer < c->num_hidden_layers; layer++) {
        const sft__block *b = &m->blocks[layer];
        f.layer = layer;
        SFT__TRY(sft_rmsnorm(ctx, x, b->attn_norm, c->rms_norm_eps, &h));
        SFT__TRY(sft__proj(ctx, &f, SFT__Q, h, &q));
        SFT__TRY(sft__proj(ctx, &f, SFT__K, h, &k));
        SFT__TRY(sft__proj(ctx, &f, SFT__V, h, &v));
        SFT__TRY(sft__heads(ctx, q, Hq, D, &q));
        SFT__TRY(sft__heads(ctx, k, Hkv, D, &k));
        SFT__TRY(sft__heads(ctx, v, Hkv, D, &v));
        SFT__TRY(sft_rope(ctx, q, pos, &c->rope, &q));
        SFT__TRY(sft_rope(ctx, k, pos, &c->rope, &k));
        SFT__TRY(sft__device_copy(cache[layer].k + pos0 * Hkv * D, m->device, k->data, m->device, (size_t)(n * Hkv * D) * sizeof(float)));
        SFT__TRY(sft__device_copy(cache[layer].v + pos0 * Hkv * D, m->device, v->data, m->device, (size_t)(n * Hkv * D) * sizeof(float)));
        shape[0] = 1; shape[1] = n; shape[2] = Hq * D;
        SFT__TRY(sft__tensor_step(ctx, m->device, SFT_F32, 3, shape, &a));
        if (m->device == SFT_DEVICE_CPU) sft__attn_cached(c, SFT__CF(q), &cache[layer], pos0, n, SFT__F(a), scores);
#ifdef SFT_CUDA
        else SFT__TRY(sft__cuda_attn_cached(ctx, c, SFT__CF(q), cache[layer].k, cache[layer].v, pos0, n, SFT__F(a)));
#endif
        SFT__TRY(sft__proj(ctx, &f, SFT__O, a, &o));
        SFT__TRY(sft_add(ctx, x, o, &x));
        SFT__TRY(sft_rmsnorm(ctx, x, b->mlp_norm, c->rms_norm_eps, &h));
        SFT__TRY(sft__proj(ctx, &f, SFT__GATE, h, &g));
        SFT__TRY(sft__proj(ctx, &f, SFT__UP, h, &u));
        SFT__TRY(sft_swiglu(ctx, g, u, &g));
        SFT__TRY(sft__proj(ctx, &f, SFT__DOWN, g, &o));
        SFT__TRY(sft_add(ctx, x, o, &x));
    }
    SFT__TRY(sft_rmsnorm(ctx, x, m->norm, c->rms_norm_eps, &h));
    {
        sft_tensor *last;
        int64_t ls[2];
        ls[0] = 1; ls[1] = c->hidden_size;
        SFT__TRY(sft__tensor_step(ctx, m->device, SFT_F32, 2, ls, &last));
        SFT__TRY(sft__device_copy(last->data, m->device, SFT__CF(h) + (n - 1) * c->hidden_size, m->device,
                                  (size_t)c->hidden_size * sizeof(float)));
        SFT__TRY(sft__matmul_ex(ctx, last, m->lm_head, 0, 1, m->compute_bf16, logits));
        return sft__on_device(ctx, *logits, SFT_DEVICE_CPU, logits);   /* sampling reads them on the host */
    }
}

typedef struct sft__cand { float p; int32_t id; } sft__cand;

static int sft__cand_desc(const void *a, const void *b) {
    const sft__cand *x = (const sft__cand *)a, *y = (const sft__cand *)b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* sft__sample: the next token from logits: argmax, or temperature -> top-k ->
   top-p (transformers' warper order) and a draw keyed by (seed, step). */
static int32_t sft__sample(const float *logits, int V, const sft_generate_desc *d, int step, sft__cand *c) {
    int i, keep = V;
    float mx = -INFINITY, sum = 0.0f, acc = 0.0f, r;
    if (d->temperature <= 0.0f) {
        int best = 0;
        for (i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }
    for (i = 0; i < V; i++) { c[i].p = logits[i] / d->temperature; c[i].id = i; if (c[i].p > mx) mx = c[i].p; }
    qsort(c, (size_t)V, sizeof *c, sft__cand_desc);
    if (d->top_k > 0 && d->top_k < keep) keep = d->top_k;
    for (i = 0; i < keep; i++) { c[i].p = expf(c[i].p - mx); sum += c[i].p; }
    for (i = 0; i < keep; i++) c[i].p /= sum;
    if (d->top_p > 0.0f && d->top_p < 1.0f) {      /* the smallest prefix whose mass reaches top_p */
        for (i = 0, acc = 0.0f; i < keep; i++) { acc += c[i].p; if (acc >= d->top_p) { keep = i + 1; break; } }
        for (i = 0, sum = 0.0f; i < keep; i++) sum += c[i].p;
        for (i = 0; i < keep; i++) c[i].p /= sum;
    }
    r = sft_rng_uniform(sft_rng_key(d->seed, 0x53616d70ull, (uint64_t)step, 0), 0);
    for (i = 0, acc = 0.0f; i < keep - 1; i++) { acc += c[i].p; if (r < acc) break; }
    return c[i].id;
}

/* sft__stop_string_seen: the decoded new tokens contain d->stop_string */
static int sft__stop_string_seen(const sft_generate_desc *d, const int32_t *ids, int n) {
    char *text = NULL;
    size_t len = 0;
    int seen;
    if (!d->tokenizer || !d->stop_string || !*d->stop_string) return 0;
    if (sft_tokenizer_decode(d->tokenizer, ids, (size_t)n, 0, &text, &len) != SFT_OK) return 0;   /* special tokens count */
    seen = strstr(text, d->stop_string) != NULL;
    sft_free(d->tokenizer->ctx, text);
    return seen;
}

SFTDEF sft_status sft_model_generate(sft_model *m, const int32_t *prompt, int n_prompt, const sft_generate_desc *desc,
                                     int32_t **ids, int *n_ids) {
    sft_generate_desc d;
    sft_context *ctx;
    sft__kv *cache = NULL;
    float *kvmem = NULL, *scores = NULL;
    sft__cand *cand = NULL;
    int32_t *out = NULL;
    int64_t max_t, per_layer;
    int i, n = 0, layer, was_on, eos;
    sft_status s = SFT_OK;
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!m || !prompt || !ids || !n_ids || n_prompt < 1) return sft__fail(SFT_ERR_ARG, "generate: NULL argument or empty prompt");
    memset(&d, 0, sizeof d);
    if (desc) d = *desc;
    if (d.max_new_tokens == 0) d.max_new_tokens = 32;
    if (d.max_new_tokens < 0 || d.max_new_tokens > (1 << 20) || !(d.temperature >= 0.0f) || !(d.top_p >= 0.0f && d.top_p <= 1.0f) || d.top_k < 0)
        return sft__fail(SFT_ERR_ARG, "generate: max_new_tokens %d, temperature %g, top_k %d, top_p %g", d.max_new_tokens,
                         d.temperature, d.top_k, d.top_p);
    for (i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= m->cfg.vocab_size)
            return sft__fail(SFT_ERR_ARG, "generate: prompt[%d] = %d is outside the vocabulary", i, prompt[i]);
    ctx = m->ctx;
    max_t = (int64_t)n_prompt + d.max_new_tokens;
    if (m->cfg.sliding_window > 0 && max_t > m->cfg.sliding_window)
        return sft__fail(SFT_ERR_UNSUPPORTED, "generate: %lld positions exceed the sliding window of %d", (long long)max_t, m->cfg.sliding_window);
    per_layer = max_t * m->cfg.num_key_value_heads * m->cfg.head_dim;
    cache = (sft__kv *)sft__calloc(ctx, (size_t)m->cfg.num_hidden_layers, sizeof *cache);
    if (sft__device_alloc(ctx, m->device, (size_t)(2 * per_layer * m->cfg.num_hidden_layers) * sizeof(float), (void **)&kvmem) != SFT_OK)
        kvmem = NULL;
    scores = (float *)sft__alloc(ctx, (size_t)max_t * sizeof(float));
    cand = (sft__cand *)sft__alloc(ctx, (size_t)m->cfg.vocab_size * sizeof *cand);
    out = (int32_t *)sft__alloc(ctx, (size_t)(d.max_new_tokens + 1) * sizeof(int32_t));
    if (!cache || !kvmem || !scores || !cand || !out) s = sft__fail(SFT_ERR_NOMEM, "generate: a KV cache of %lld positions", (long long)max_t);
    for (layer = 0; s == SFT_OK && layer < m->cfg.num_hidden_layers; layer++) {
        cache[layer].k = kvmem + 2 * per_layer * layer;
        cache[layer].v = cache[layer].k + per_layer;
    }
    was_on = sft_grad_enabled_set(ctx, 0);
    while (s == SFT_OK && n < d.max_new_tokens) {
        sft_tensor *logits = NULL;
        int32_t next;
        sft_step_begin(ctx);
        s = n == 0 ? sft__decode(m, cache, prompt, n_prompt, 0, scores, &logits)
                   : sft__decode(m, cache, &out[n - 1], 1, (int64_t)n_prompt + n - 1, scores, &logits);
        if (s != SFT_OK) break;
        next = sft__sample(SFT__CF(logits), m->cfg.vocab_size, &d, n, cand);
        out[n++] = next;
        for (i = 0, eos = 0; !d.no_eos_stop && i < m->cfg.n_eos; i++) eos |= next == m->cfg.eos_token_ids[i];
        if (eos || sft__stop_string_seen(&d, out, n)) break;
    }
    sft_grad_enabled_set(ctx, was_on);
    sft_step_begin(ctx);
    sft__free(ctx, cache); sft__device_free(ctx, m->device, kvmem); sft__free(ctx, scores); sft__free(ctx, cand);
    if (s != SFT_OK) { sft__free(ctx, out); return s; }
    *ids = out; *n_ids = n;
    return SFT_OK;
}

/* ============================================================================
   === data: chat templates
   A template is recognised by its marker tokens and rendered in C; the parts a
   family's variants differ in (a default system prompt, trimming) are read off
   the template text. While rendering, the spans TRL's generation-marked
   templates mark (an assistant turn's content and its end-of-turn token) are
   recorded for assistant_only_loss. */

typedef struct sft__msg { const char *role, *content; } sft__msg;

typedef struct sft__tmpl {
    sft_chat_template kind;
    int               trim;              /* content | trim / .strip()            */
    char              default_system[512];   /* ChatML: the system turn used when none is given */
    /* [INST] variants, read off the template's literals */
    int               inst_close_space;  /* ' [/INST]' rather than '[/INST]'      */
    int               inst_lead_space;   /* ' ' + the answer                      */
    int               inst_tail_space;   /* the answer + ' ' + eos                */
    int               inst_bos_per_turn; /* bos_token + '[INST] ' on every turn   */
    int               inst_system;       /* 0: <<SYS>> folded into the first turn; 1: any
                                            non-user turn takes the answer branch; 2: refused */
    const char       *bos, *eos;         /* token texts                          */
} sft__tmpl;

typedef struct sft__render { sft_context *ctx; sft__vec text, spans; } sft__render;   /* spans: (start, end) byte pairs */

static sft_status sft__r_put(sft__render *r, const char *s, size_t n) { return sft__vec_push(r->ctx, &r->text, s, n); }
static sft_status sft__r_str(sft__render *r, const char *s) { return s ? sft__r_put(r, s, strlen(s)) : SFT_OK; }

static sft_status sft__r_content(sft__render *r, const sft__tmpl *t, const char *s) {
    size_t n = strlen(s);
    if (t->trim) {
        while (n && isspace((unsigned char)*s)) { s++; n--; }
        while (n && isspace((unsigned char)s[n - 1])) n--;
    }
    return sft__r_put(r, s, n);
}

/* an assistant turn: pre, then inside a generation span lead + content + end */
static sft_status sft__r_assistant(sft__render *r, const sft__tmpl *t, const char *pre, const char *lead, const char *content,
                                   const char *end) {
    size_t se[2];
    SFT__TRY(sft__r_str(r, pre));
    se[0] = r->text.len;
    SFT__TRY(sft__r_str(r, lead));
    SFT__TRY(sft__r_content(r, t, content));
    SFT__TRY(sft__r_str(r, end));
    se[1] = r->text.len;
    return sft__vec_push(r->ctx, &r->spans, se, 2);
}

/* sft__tmpl_detect: the family of a chat_template text and its details */
static sft_status sft__tmpl_detect(const char *src, sft_chat_template kind, sft__tmpl *t) {
    const char *sys;
    memset(t, 0, sizeof *t);
    t->kind = kind;
    if (kind == SFT_TEMPLATE_AUTO) {
        if (!src) return sft__fail(SFT_ERR_ARG, "data: the tokenizer has no chat_template; name one in sft_data_desc.chat_template");
        if (strstr(src, "<|im_start|>")) t->kind = SFT_TEMPLATE_CHATML;
        else if (strstr(src, "<|start_header_id|>")) t->kind = SFT_TEMPLATE_LLAMA3;
        else if (strstr(src, "<start_of_turn>")) t->kind = SFT_TEMPLATE_GEMMA;
        else if (strstr(src, "<|user|>")) t->kind = SFT_TEMPLATE_ZEPHYR;
        else if (strstr(src, "[INST]")) t->kind = strstr(src, "<<SYS>>") || strstr(src, "bos_token + '[INST]") ? SFT_TEMPLATE_LLAMA2 : SFT_TEMPLATE_MISTRAL;
        else return sft__fail(SFT_ERR_UNSUPPORTED, "data: the tokenizer's chat_template is not one sft.h renders (ChatML, Llama-3, "
                              "Llama-2/Mistral [INST], Zephyr, Gemma): %.80s", src);
        if (strstr(src, "Cutting Knowledge Date"))
            return sft__fail(SFT_ERR_UNSUPPORTED, "data: the Llama-3.1 chat_template (its date preamble) is not rendered yet");
    }
    t->trim = t->kind == SFT_TEMPLATE_LLAMA3 || t->kind == SFT_TEMPLATE_GEMMA ||
              (src && (strstr(src, "| trim") || strstr(src, ".strip()")));
    if (t->kind == SFT_TEMPLATE_LLAMA2 || t->kind == SFT_TEMPLATE_MISTRAL) {
        int known = src != NULL;       /* no text: the family's published template */
        t->inst_close_space = known ? strstr(src, "' [/INST]'") != NULL : t->kind == SFT_TEMPLATE_LLAMA2;
        t->inst_lead_space = known ? strstr(src, "' ' + message['content']") != NULL || strstr(src, "' '  + content") != NULL ||
                                         strstr(src, "' ' + content") != NULL
                                   : 1;
        t->inst_tail_space = known ? strstr(src, "' ' + eos_token") != NULL : t->kind == SFT_TEMPLATE_LLAMA2;
        t->inst_bos_per_turn = known ? strstr(src, "bos_token + '[INST]") != NULL : t->kind == SFT_TEMPLATE_LLAMA2;
        t->inst_system = !known ? (t->kind == SFT_TEMPLATE_LLAMA2 ? 0 : 2)
                         : strstr(src, "<<SYS>>") ? 0 : strstr(src, "raise_exception") ? 2 : 1;
    }
    /* ChatML: a literal default system turn ('<|im_start|>system\n...<|im_end|>' with
       no expression inside) is used when the conversation has none */
    for (sys = src; t->kind == SFT_TEMPLATE_CHATML && sys && (sys = strstr(sys, "<|im_start|>system")) != NULL; sys += 18) {
        const char *b = sys + 18, *e = strstr(b, "<|im_end|>");
        size_t n, k, w = 0;
        if (strncmp(b, "\\n", 2) == 0) b += 2;          /* the newline written as \n ... */
        else if (*b == '\n') b += 1;                      /* ... or as itself */
        else continue;
        n = e ? (size_t)(e - b) : 0;
        if (!e || n >= sizeof t->default_system || memchr(b, '\'', n) || memchr(b, '+', n) || memchr(b, '{', n)) continue;
        for (k = 0; k < n; k++) {                         /* Jinja string escapes */
            if (b[k] == '\\' && k + 1 < n) { k++; t->default_system[w++] = b[k] == 'n' ? '\n' : b[k] == 't' ? '\t' : b[k]; }
            else t->default_system[w++] = b[k];
        }
        t->default_system[w] = 0;
        break;
    }
    return SFT_OK;
}

static int sft__role_is(const sft__msg *m, const char *role) { return strcmp(m->role, role) == 0; }

static sft_status sft__render_conv(sft__render *r, const sft__tmpl *t, const sft__msg *msgs, int n, int add_generation_prompt) {
    int i, first = 0;
    const char *system = NULL;
    for (i = 0; i < n; i++)     /* human/gpt: ShareGPT's names, which TRL passes through */
        if (!sft__role_is(&msgs[i], "system") && !sft__role_is(&msgs[i], "user") && !sft__role_is(&msgs[i], "assistant") &&
            !sft__role_is(&msgs[i], "tool") && !sft__role_is(&msgs[i], "human") && !sft__role_is(&msgs[i], "gpt"))
            return sft__fail(SFT_ERR_FORMAT, "data: unknown role '%s'", msgs[i].role);
    switch (t->kind) {
    case SFT_TEMPLATE_CHATML:
        if (t->default_system[0] && (n == 0 || !sft__role_is(&msgs[0], "system"))) {
            SFT__TRY(sft__r_str(r, "<|im_start|>system\n")); SFT__TRY(sft__r_str(r, t->default_system)); SFT__TRY(sft__r_str(r, "<|im_end|>\n"));
        }
        for (i = 0; i < n; i++) {
            SFT__TRY(sft__r_str(r, "<|im_start|>")); SFT__TRY(sft__r_str(r, msgs[i].role));
            /* TRL's generation-marked ChatML templates train "\n" + content + "<|im_end|>\n" */
            if (sft__role_is(&msgs[i], "assistant")) SFT__TRY(sft__r_assistant(r, t, "", "\n", msgs[i].content, "<|im_end|>\n"));
            else { SFT__TRY(sft__r_str(r, "\n")); SFT__TRY(sft__r_content(r, t, msgs[i].content)); SFT__TRY(sft__r_str(r, "<|im_end|>\n")); }
        }
        return add_generation_prompt ? sft__r_str(r, "<|im_start|>assistant\n") : SFT_OK;
    case SFT_TEMPLATE_LLAMA3:
        SFT__TRY(sft__r_str(r, t->bos));
        for (i = 0; i < n; i++) {
            SFT__TRY(sft__r_str(r, "<|start_header_id|>")); SFT__TRY(sft__r_str(r, msgs[i].role)); SFT__TRY(sft__r_str(r, "<|end_header_id|>\n\n"));
            if (sft__role_is(&msgs[i], "assistant")) SFT__TRY(sft__r_assistant(r, t, NULL, NULL, msgs[i].content, "<|eot_id|>"));
            else { SFT__TRY(sft__r_content(r, t, msgs[i].content)); SFT__TRY(sft__r_str(r, "<|eot_id|>")); }
        }
        return add_generation_prompt ? sft__r_str(r, "<|start_header_id|>assistant<|end_header_id|>\n\n") : SFT_OK;
    case SFT_TEMPLATE_ZEPHYR:
        for (i = 0; i < n; i++) {
            SFT__TRY(sft__r_str(r, "<|")); SFT__TRY(sft__r_str(r, msgs[i].role)); SFT__TRY(sft__r_str(r, "|>\n"));
            if (sft__role_is(&msgs[i], "assistant")) SFT__TRY(sft__r_assistant(r, t, NULL, NULL, msgs[i].content, t->eos));
            else { SFT__TRY(sft__r_content(r, t, msgs[i].content)); SFT__TRY(sft__r_str(r, t->eos)); }
            SFT__TRY(sft__r_str(r, "\n"));
        }
        return add_generation_prompt ? sft__r_str(r, "<|assistant|>\n") : SFT_OK;
    case SFT_TEMPLATE_GEMMA:
        if (n && sft__role_is(&msgs[0], "system")) return sft__fail(SFT_ERR_FORMAT, "data: the Gemma template has no system role");
        SFT__TRY(sft__r_str(r, t->bos));
        for (i = 0; i < n; i++) {
            int asst = sft__role_is(&msgs[i], "assistant");
            if (asst != (i % 2 == 1)) return sft__fail(SFT_ERR_FORMAT, "data: Gemma needs user and assistant turns to alternate");
            SFT__TRY(sft__r_str(r, "<start_of_turn>")); SFT__TRY(sft__r_str(r, asst ? "model" : "user")); SFT__TRY(sft__r_str(r, "\n"));
            if (asst) SFT__TRY(sft__r_assistant(r, t, NULL, NULL, msgs[i].content, "<end_of_turn>\n"));
            else { SFT__TRY(sft__r_content(r, t, msgs[i].content)); SFT__TRY(sft__r_str(r, "<end_of_turn>\n")); }
        }
        return add_generation_prompt ? sft__r_str(r, "<start_of_turn>model\n") : SFT_OK;
    case SFT_TEMPLATE_LLAMA2:
    case SFT_TEMPLATE_MISTRAL:
        if (n && sft__role_is(&msgs[0], "system") && t->inst_system != 1) {
            if (t->inst_system == 2) return sft__fail(SFT_ERR_FORMAT, "data: this [INST] template has no system role");
            system = msgs[0].content; first = 1;
        }
        if (!t->inst_bos_per_turn) SFT__TRY(sft__r_str(r, t->bos));
        for (i = first; i < n; i++) {
            if (t->inst_system == 0 && !sft__role_is(&msgs[i], "user") && !sft__role_is(&msgs[i], "assistant")) continue;   /* dropped */
            if (!sft__role_is(&msgs[i], "user")) {   /* the answer branch */
                if (t->inst_system != 1 && (i - first) % 2 != 1)
                    return sft__fail(SFT_ERR_FORMAT, "data: [INST] templates need user and assistant turns to alternate");
                if (t->inst_lead_space) SFT__TRY(sft__r_str(r, " "));
                SFT__TRY(sft__r_assistant(r, t, NULL, NULL, msgs[i].content, t->inst_tail_space ? " " : NULL));
                if (t->eos) SFT__TRY(sft__r_str(r, t->eos));
                ((size_t *)r->spans.p)[r->spans.len - 1] = r->text.len;
                continue;
            }
            if (t->inst_system != 1 && (i - first) % 2 != 0)
                return sft__fail(SFT_ERR_FORMAT, "data: [INST] templates need user and assistant turns to alternate");
            if (t->inst_bos_per_turn) SFT__TRY(sft__r_str(r, t->bos));
            SFT__TRY(sft__r_str(r, "[INST] "));
            if (system && i == first) {     /* the system text folded in, the whole trimmed once (.strip()) */
                sft__render tmp;
                sft_status st;
                sft__tmpl raw = *t;
                memset(&tmp, 0, sizeof tmp);
                tmp.ctx = r->ctx; tmp.text.elem = 1; tmp.spans.elem = sizeof(size_t);
                raw.trim = 0;
                st = sft__r_str(&tmp, "<<SYS>>\n");
                if (st == SFT_OK) st = sft__r_content(&tmp, &raw, system);
                if (st == SFT_OK) st = sft__r_str(&tmp, "\n<</SYS>>\n\n");
                if (st == SFT_OK) st = sft__r_content(&tmp, &raw, msgs[i].content);
                if (st == SFT_OK) st = sft__vec_push(r->ctx, &tmp.text, "", 1);
                if (st == SFT_OK) st = sft__r_content(r, t, (const char *)tmp.text.p);
                sft__free(r->ctx, tmp.text.p); sft__free(r->ctx, tmp.spans.p);
                SFT__TRY(st);
            } else
                SFT__TRY(sft__r_content(r, t, msgs[i].content));
            SFT__TRY(sft__r_str(r, t->inst_close_space ? " [/INST]" : "[/INST]"));
        }
        return SFT_OK;
    default:
        return sft__fail(SFT_ERR_ARG, "data: chat template %d does not exist", (int)t->kind);
    }
}

/* ============================================================================
   === data: records
   Each record becomes an example: its token ids and a mask of the tokens that
   are trained. */

typedef struct sft__example { int64_t off, len; } sft__example;   /* into the dataset's token arrays */

struct sft_dataset {
    sft_context     *ctx;
    sft_tokenizer   *tok;
    sft_data_desc    desc;
    sft__tmpl        tmpl;
    int              have_tmpl;
    sft_data_format  format;       /* fixed by the first record                     */
    sft__vec         ids, labels;  /* all examples' tokens, back to back (int32)    */
    sft__vec         ex;           /* sft__example                                  */
    /* splits: example indices; with packing, bins of examples */
    sft__vec         split_ex[2];  /* int64 example index                           */
    sft__vec         bins[2];      /* per bin: (first, count) into bin_items        */
    sft__vec         bin_items[2]; /* int64 example index                           */
    sft__vec         row_starts;   /* scratch for sft_dataset_row (int32)           */
    sft__vec         order;        /* the shuffled order of (order_split, order_epoch) */
    int64_t          order_epoch;
    int              order_split;
    sft_data_stats   stats;
    int32_t          pad_id, eos_id;
    const char      *eos_text, *bos_text;
};

static sft_data_format sft__record_format(const sft_json *rec, const char *text_field) {
    if (sft_json_get(rec, "input_ids")) return SFT_FORMAT_TOKENS;
    if (sft_json_get(rec, "messages")) return SFT_FORMAT_MESSAGES;
    if (sft_json_get(rec, "conversations")) return SFT_FORMAT_SHAREGPT;
    if (sft_json_get(rec, "prompt") && sft_json_get(rec, "completion")) return SFT_FORMAT_PROMPT_COMPLETION;
    if (sft_json_get(rec, text_field)) return SFT_FORMAT_TEXT;
    return SFT_FORMAT_AUTO;
}

/* sft__messages: a message list (or ShareGPT's) into role/content pairs. */
static sft_status sft__messages(const sft_json *list, int sharegpt, int map_roles, sft__msg *out, int cap, int *n) {
    size_t i;
    *n = 0;
    if (!list || list->type != SFT_JSON_ARRAY || list->length == 0) return sft__fail(SFT_ERR_FORMAT, "an empty or missing message list");
    if (list->length > (size_t)cap) return sft__fail(SFT_ERR_LIMIT, "%zu messages (at most %d)", list->length, cap);
    for (i = 0; i < list->length; i++) {
        const char *role = sft__json_str(&list->items[i], sharegpt ? "from" : "role");
        const char *content = sft__json_str(&list->items[i], sharegpt ? "value" : "content");
        if (!role || !content) return sft__fail(SFT_ERR_FORMAT, "message %zu lacks %s", i, !role ? (sharegpt ? "\"from\"" : "\"role\"") : (sharegpt ? "\"value\"" : "\"content\""));
        if (sharegpt && map_roles) {
            if (strcmp(role, "human") == 0 || strcmp(role, "user") == 0) role = "user";
            else if (strcmp(role, "gpt") == 0 || strcmp(role, "assistant") == 0) role = "assistant";
            else if (strcmp(role, "system") != 0) return sft__fail(SFT_ERR_FORMAT, "message %zu: unknown ShareGPT role '%s'", i, role);
        }
        out[i].role = role; out[i].content = content;
    }
    *n = (int)list->length;
    return SFT_OK;
}

/* sft__tok_piece_len: bytes of text token id stands for (byte-level tokens: one
   byte per character; added tokens: their text) */
static size_t sft__tok_piece_len(const sft_tokenizer *t, int32_t id) {
    const char *s = t->token[id];
    size_t n = t->token_len[id], j, len, count = 0;
    if (!s) return 0;
    if (t->is_added[id]) return n;
    for (j = 0; j < n; j += len, count++) {
        uint32_t cp = sft__cp_at(s, n, j, &len);
        if (!(cp < 512 && t->bytes.back[cp] >= 0)) return n;
    }
    return count;
}

/* sft__assistant_mask: 1 for tokens covering a generation span's bytes (HF's
   char_to_token at the span's first and last byte, everything between). */
static sft_status sft__assistant_mask(sft_dataset *ds, const sft__render *r, const int32_t *ids, size_t n, unsigned char *mask) {
    size_t i, s, pos = 0, nspans = r->spans.len / 2;
    const size_t *sp = (const size_t *)r->spans.p;
    if (!ds->tok->byte_level)
        return sft__fail(SFT_ERR_UNSUPPORTED, "data: assistant_only_loss needs a byte-level tokenizer (token offsets)");
    memset(mask, 0, n);
    for (i = 0; i < n; i++) {
        size_t len = sft__tok_piece_len(ds->tok, ids[i]), end = pos + len;
        for (s = 0; s < nspans; s++)
            if (pos < sp[2 * s + 1] && end > sp[2 * s] && len) mask[i] = 1;
        pos = end;
    }
    return SFT_OK;
}

/* sft__assistant_and: mask &= the assistant tokens (TRL ANDs its masks) */
static sft_status sft__assistant_and(sft_dataset *ds, const sft__render *r, const int32_t *ids, size_t n, unsigned char *mask) {
    unsigned char *a;
    size_t i;
    if (r->spans.len == 0) return sft__fail(SFT_ERR_FORMAT, "assistant_only_loss: the conversation has no assistant turn");
    a = (unsigned char *)sft__alloc(ds->ctx, n + 1);
    if (!a) return sft__fail(SFT_ERR_NOMEM, "data: a mask");
    if (sft__assistant_mask(ds, r, ids, n, a) != SFT_OK) { sft__free(ds->ctx, a); return SFT_ERR_UNSUPPORTED; }
    for (i = 0; i < n; i++) mask[i] &= a[i];
    sft__free(ds->ctx, a);
    return SFT_OK;
}

/* sft__add_example: tokens and their trained flags as one example (truncated to
   max_length; dropped when nothing is trained). */
static sft_status sft__add_example(sft_dataset *ds, const int32_t *ids, size_t n, const unsigned char *trained) {
    sft__example e;
    size_t i, keep = n, count = 0;
    if (ds->desc.max_length > 0 && keep > (size_t)ds->desc.max_length) { keep = (size_t)ds->desc.max_length; ds->stats.truncated++; }
    for (i = 0; i < keep; i++) count += trained[i];
    if (keep == 0) { ds->stats.dropped_empty++; return SFT_OK; }
    /* as TRL: rows with nothing to train are dropped after truncation, not when packing */
    if (count == 0 && !ds->desc.packing && ds->desc.max_length > 0) { ds->stats.dropped_untrained++; return SFT_OK; }
    e.off = (int64_t)ds->ids.len; e.len = (int64_t)keep;
    SFT__TRY(sft__vec_push(ds->ctx, &ds->ids, ids, keep));
    for (i = 0; i < keep; i++) {
        int32_t l = trained[i] ? ids[i] : -100;
        SFT__TRY(sft__vec_push(ds->ctx, &ds->labels, &l, 1));
    }
    SFT__TRY(sft__vec_push(ds->ctx, &ds->ex, &e, 1));
    ds->stats.rows_kept++;
    ds->stats.tokens += (int64_t)keep;
    ds->stats.trained_tokens += (int64_t)count;
    return SFT_OK;
}

/* tokenized pieces of one record, freed together */
typedef struct sft__enc { int32_t *a, *b; unsigned char *mask; } sft__enc;

static void sft__enc_free(sft_context *ctx, sft__enc *e) { sft_free(ctx, e->a); sft_free(ctx, e->b); sft__free(ctx, e->mask); }

static sft_status sft__enc_mask(sft_context *ctx, sft__enc *e, size_t n, int value) {
    e->mask = (unsigned char *)sft__alloc(ctx, n + 1);
    if (!e->mask) return sft__fail(SFT_ERR_NOMEM, "data: a mask of %zu tokens", n);
    memset(e->mask, value, n + 1);
    return SFT_OK;
}

/* text, with the EOS token appended when missing (TRL's add_eos), tokenized with
   the tokenizer's special tokens (BOS) */
static sft_status sft__encode_plain(sft_dataset *ds, const char *text, int append_eos, int32_t **ids, size_t *n) {
    size_t len = strlen(text), el = ds->eos_text ? strlen(ds->eos_text) : 0;
    char *buf;
    sft_status s;
    if (!append_eos || !el || (len >= el && memcmp(text + len - el, ds->eos_text, el) == 0))
        return sft_tokenizer_encode(ds->tok, text, len, 1, ids, n);
    buf = (char *)sft__alloc(ds->ctx, len + el + 1);
    if (!buf) return sft__fail(SFT_ERR_NOMEM, "data: a text of %zu bytes", len);
    memcpy(buf, text, len); memcpy(buf + len, ds->eos_text, el + 1);
    s = sft_tokenizer_encode(ds->tok, buf, len + el, 1, ids, n);
    sft__free(ds->ctx, buf);
    return s;
}

static sft_status sft__need_template(sft_dataset *ds) {
    if (ds->have_tmpl) return SFT_OK;
    SFT__TRY(sft__tmpl_detect(ds->desc.chat_template_text ? ds->desc.chat_template_text : sft_tokenizer_get_info(ds->tok).chat_template,
                              ds->desc.chat_template, &ds->tmpl));
    ds->tmpl.bos = ds->bos_text ? ds->bos_text : "";
    ds->tmpl.eos = ds->eos_text ? ds->eos_text : "";
    ds->have_tmpl = 1;
    return SFT_OK;
}

/* sft__render_tokens: a conversation rendered and tokenized as apply_chat_template
   does (no special tokens added: the template writes them) */
static sft_status sft__render_tokens(sft_dataset *ds, const sft__msg *msgs, int n, int gen, sft__render *r, int32_t **ids, size_t *count) {
    memset(r, 0, sizeof *r);
    r->ctx = ds->ctx; r->text.elem = 1; r->spans.elem = sizeof(size_t);
    SFT__TRY(sft__need_template(ds));
    SFT__TRY(sft__render_conv(r, &ds->tmpl, msgs, n, gen));
    SFT__TRY(sft__vec_push(ds->ctx, &r->text, "", 1));
    r->text.len--;
    return sft_tokenizer_encode(ds->tok, (const char *)r->text.p, r->text.len, 0, ids, count);
}

static void sft__render_free(sft__render *r) { sft__free(r->ctx, r->text.p); sft__free(r->ctx, r->spans.p); }

#define SFT__MAX_MESSAGES 1024

/* prompt + completion: the prompt's tokens alone and the whole, the completion
   being the tokens past the prompt's (TRL's completion_mask) */
static sft_status sft__example_pc(sft_dataset *ds, const sft_json *rec) {
    const sft_json *p = sft_json_get(rec, "prompt"), *c = sft_json_get(rec, "completion");
    sft__enc e;
    sft__render r2;
    size_t np = 0, nf = 0;
    sft_status s;
    int only = ds->desc.completion_only_loss >= 0, conv = 0, aol;
    memset(&e, 0, sizeof e);
    memset(&r2, 0, sizeof r2);
    if (p->type == SFT_JSON_STRING && c->type == SFT_JSON_STRING) {
        size_t lp = p->length, lc = c->length, el = ds->eos_text ? strlen(ds->eos_text) : 0;
        char *full = (char *)sft__alloc(ds->ctx, lp + lc + el + 1);
        if (!full) return sft__fail(SFT_ERR_NOMEM, "data: a record");
        memcpy(full, p->string, lp); memcpy(full + lp, c->string, lc); full[lp + lc] = 0;
        s = sft_tokenizer_encode(ds->tok, p->string, lp, 1, &e.a, &np);
        if (s == SFT_OK) s = sft__encode_plain(ds, full, 1, &e.b, &nf);
        sft__free(ds->ctx, full);
    } else if (p->type == SFT_JSON_ARRAY && c->type == SFT_JSON_ARRAY) {
        sft__msg msgs[SFT__MAX_MESSAGES];
        int n1 = 0, n2 = 0;
        sft__render r1;
        memset(&r1, 0, sizeof r1);
        s = sft__messages(p, 0, 0, msgs, SFT__MAX_MESSAGES, &n1);
        if (s == SFT_OK) s = sft__messages(c, 0, 0, msgs + n1, SFT__MAX_MESSAGES - n1, &n2);
        if (s == SFT_OK) s = sft__render_tokens(ds, msgs, n1, 1, &r1, &e.a, &np);
        sft__render_free(&r1);
        if (s == SFT_OK) s = sft__render_tokens(ds, msgs, n1 + n2, 0, &r2, &e.b, &nf);
        conv = 1;
    } else
        s = sft__fail(SFT_ERR_FORMAT, "prompt and completion must both be strings or both message lists");
    aol = conv && ds->desc.assistant_only_loss;
    if (s == SFT_OK && ds->desc.assistant_only_loss && !conv) s = sft__fail(SFT_ERR_ARG, "assistant_only_loss needs conversations");
    if (s == SFT_OK) s = sft__enc_mask(ds->ctx, &e, nf, 1);
    if (s == SFT_OK && only) {     /* TRL: the prompt is the ids both tokenizations share */
        size_t common = 0;
        while (common < np && common < nf && e.a[common] == e.b[common]) common++;
        memset(e.mask, 0, common);
    }
    if (s == SFT_OK && aol) s = sft__assistant_and(ds, &r2, e.b, nf, e.mask);
    if (s == SFT_OK) s = sft__add_example(ds, e.b, nf, e.mask);
    sft__render_free(&r2);
    sft__enc_free(ds->ctx, &e);
    return s;
}

static sft_status sft__example_conv(sft_dataset *ds, const sft_json *list, int sharegpt) {
    sft__msg msgs[SFT__MAX_MESSAGES];
    sft__render r;
    sft__enc e;
    size_t n = 0;
    int nm = 0;
    sft_status s;
    memset(&e, 0, sizeof e);
    memset(&r, 0, sizeof r);
    s = sft__messages(list, sharegpt, ds->desc.sharegpt_map_roles, msgs, SFT__MAX_MESSAGES, &nm);
    if (s == SFT_OK) s = sft__render_tokens(ds, msgs, nm, 0, &r, &e.a, &n);
    if (s == SFT_OK) s = sft__enc_mask(ds->ctx, &e, n, 1);
    if (s == SFT_OK && ds->desc.assistant_only_loss) s = sft__assistant_and(ds, &r, e.a, n, e.mask);
    if (s == SFT_OK) s = sft__add_example(ds, e.a, n, e.mask);
    sft__render_free(&r);
    sft__enc_free(ds->ctx, &e);
    return s;
}

static sft_status sft__example_text(sft_dataset *ds, const sft_json *rec) {
    const char *field = ds->desc.dataset_text_field;
    const char *text = sft__json_str(rec, field);
    sft__enc e;
    size_t n = 0;
    sft_status s;
    if (!text) return sft__fail(SFT_ERR_FORMAT, "\"%s\" is not a string", field);
    if (!*text) { ds->stats.dropped_empty++; return SFT_OK; }
    memset(&e, 0, sizeof e);
    s = sft__encode_plain(ds, text, 1, &e.a, &n);
    if (s == SFT_OK) s = sft__enc_mask(ds->ctx, &e, n, 1);
    if (s == SFT_OK) s = sft__add_example(ds, e.a, n, e.mask);
    sft__enc_free(ds->ctx, &e);
    return s;
}

/* a pre-tokenized row: ids, and the masks TRL would AND into the labels */
static sft_status sft__example_tokens(sft_dataset *ds, const sft_json *rec) {
    const sft_json *ids = sft_json_get(rec, "input_ids"), *cm = sft_json_get(rec, "completion_mask"), *am = sft_json_get(rec, "assistant_masks");
    int32_t *v;
    unsigned char *mask;
    size_t i, n;
    sft_status s = SFT_OK;
    int32_t V = sft_tokenizer_vocab_size(ds->tok);
    if (!ids || ids->type != SFT_JSON_ARRAY) return sft__fail(SFT_ERR_FORMAT, "\"input_ids\" is not a list");
    n = ids->length;
    if ((cm && (cm->type != SFT_JSON_ARRAY || cm->length != n)) || (am && (am->type != SFT_JSON_ARRAY || am->length != n)))
        return sft__fail(SFT_ERR_FORMAT, "a mask's length differs from input_ids' %zu", n);
    v = (int32_t *)sft__alloc(ds->ctx, (n + 1) * sizeof *v);
    mask = (unsigned char *)sft__alloc(ds->ctx, n + 1);
    if (!v || !mask) s = sft__fail(SFT_ERR_NOMEM, "data: a row of %zu tokens", n);
    for (i = 0; s == SFT_OK && i < n; i++) {
        const sft_json *x = &ids->items[i];
        if (x->type != SFT_JSON_NUMBER || x->number < 0 || x->number >= (double)V || x->number != floor(x->number))
            s = sft__fail(SFT_ERR_FORMAT, "input_ids[%zu] is not a token id of the tokenizer (0..%d)", i, V - 1);
        else {
            v[i] = (int32_t)x->number;
            mask[i] = (unsigned char)((!cm || cm->items[i].number != 0) && (!am || am->items[i].number != 0));
        }
    }
    if (s == SFT_OK) s = sft__add_example(ds, v, n, mask);
    sft__free(ds->ctx, v); sft__free(ds->ctx, mask);
    return s;
}

/* sft__add_record: one JSON record (where names it in messages: file:line) */
static sft_status sft__add_record(sft_dataset *ds, const char *json, size_t len, const char *where) {
    sft_json *rec = NULL;
    sft_data_format f;
    sft_status s;
    char msg[1024];
    ds->stats.rows_read++;
    s = sft_json_parse(ds->ctx, json, len, where, NULL, &rec);
    if (s == SFT_OK && rec->type != SFT_JSON_OBJECT) s = sft__fail(SFT_ERR_FORMAT, "not a JSON object");
    if (s == SFT_OK) {
        f = sft__record_format(rec, ds->desc.dataset_text_field);
        if (f == SFT_FORMAT_AUTO) s = sft__fail(SFT_ERR_FORMAT, "no \"%s\", \"prompt\"/\"completion\", \"messages\" or \"conversations\"",
                                                ds->desc.dataset_text_field);
        else if (ds->format == SFT_FORMAT_AUTO) ds->format = f;
        else if (f != ds->format) s = sft__fail(SFT_ERR_FORMAT, "a record of another format than the first (mixed formats)");
    }
    if (s == SFT_OK) {
        if (ds->desc.assistant_only_loss && (f == SFT_FORMAT_TEXT || f == SFT_FORMAT_TOKENS))
            s = sft__fail(SFT_ERR_ARG, "assistant_only_loss needs conversations (messages, ShareGPT or conversational prompt-completion)");
        else if (f == SFT_FORMAT_TEXT) s = sft__example_text(ds, rec);
        else if (f == SFT_FORMAT_TOKENS) s = sft__example_tokens(ds, rec);
        else if (f == SFT_FORMAT_PROMPT_COMPLETION) s = sft__example_pc(ds, rec);
        else s = sft__example_conv(ds, sft_json_get(rec, f == SFT_FORMAT_MESSAGES ? "messages" : "conversations"), f == SFT_FORMAT_SHAREGPT);
    }
    sft_json_free(rec);
    if (s == SFT_OK || s == SFT_ERR_NOMEM) return s;
    memcpy(msg, sft_last_error(), sizeof msg - 1);
    msg[sizeof msg - 1] = 0;
    ds->stats.dropped_malformed++;
    /* a JSON error already names the place */
    if (!ds->desc.skip_bad_records) return strncmp(msg, where, strlen(where)) == 0 ? sft__fail(s, "%.600s", msg)
                                                                                   : sft__fail(s, "%s: %.600s", where, msg);
    sft__log(ds->ctx, SFT_LOG_WARN, "%s: skipped: %.600s", where, msg);
    return SFT_OK;
}

/* ============================================================================
   === data: splits, packing, batches */

/* sft__split: a seeded eval fraction; the rest is train, in file order. */
static sft_status sft__split(sft_dataset *ds) {
    int64_t n = (int64_t)ds->ex.len, i, n_eval = (int64_t)((double)ds->desc.eval_fraction * (double)n + 0.5);
    uint64_t key = sft_rng_key(ds->desc.seed, 0x53706c6974ull, 0, 0);
    unsigned char *is_eval = (unsigned char *)sft__calloc(ds->ctx, (size_t)(n + 1), 1);
    if (!is_eval) return sft__fail(SFT_ERR_NOMEM, "data: split");
    if (n_eval > 0) {      /* the first n_eval of a seeded permutation go to eval */
        int64_t *perm = (int64_t *)sft__alloc(ds->ctx, (size_t)n * sizeof(int64_t));
        if (!perm) { sft__free(ds->ctx, is_eval); return sft__fail(SFT_ERR_NOMEM, "data: split"); }
        for (i = 0; i < n; i++) perm[i] = i;
        for (i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)(sft_rng_uniform(key, (uint64_t)i) * (float)(i + 1)), t;
            if (j > i) j = i;
            t = perm[i]; perm[i] = perm[j]; perm[j] = t;
        }
        for (i = 0; i < n_eval; i++) is_eval[perm[i]] = 1;
        sft__free(ds->ctx, perm);
    }
    for (i = 0; i < n; i++) {
        sft_status s = sft__vec_push(ds->ctx, &ds->split_ex[is_eval[i]], &i, 1);
        if (s != SFT_OK) { sft__free(ds->ctx, is_eval); return s; }
    }
    ds->stats.eval_rows = n_eval;
    sft__free(ds->ctx, is_eval);
    return SFT_OK;
}

static const sft__example *sft__ex_at(const sft_dataset *ds, int64_t i) { return (const sft__example *)ds->ex.p + i; }

typedef struct sft__len_idx { int64_t len, idx; } sft__len_idx;

static int sft__by_len_desc(const void *a, const void *b) {
    const sft__len_idx *x = (const sft__len_idx *)a, *y = (const sft__len_idx *)b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* sft__pack_block: best fit decreasing over examples idx[0..n). Sequences by
   length, longest first (ties in dataset order); each goes into the bin with the
   least room that still fits it (on a tie, the bin that got to that room
   first), else a new bin. Bins are written in the order they were opened, their
   sequences in insertion order. Adds the block's bins and tokens. */
static sft_status sft__pack_block(sft_dataset *ds, int split, const int64_t *idx, int64_t n, int64_t *n_bins_out, int64_t *tokens) {
    int64_t i, b, n_bins = 0, cap = ds->desc.max_length;
    sft__len_idx *order = (sft__len_idx *)sft__alloc(ds->ctx, (size_t)(n + 1) * sizeof *order);
    int64_t *room = (int64_t *)sft__alloc(ds->ctx, (size_t)(n + 1) * sizeof(int64_t));
    int64_t *bin_of = (int64_t *)sft__alloc(ds->ctx, (size_t)(n + 1) * sizeof(int64_t));
    int64_t *stamp = (int64_t *)sft__alloc(ds->ctx, (size_t)(n + 1) * sizeof(int64_t));
    sft_status s = SFT_OK;
    if (!order || !room || !bin_of || !stamp) s = sft__fail(SFT_ERR_NOMEM, "data: packing %lld rows", (long long)n);
    for (i = 0; s == SFT_OK && i < n; i++) { order[i].idx = idx[i]; order[i].len = sft__ex_at(ds, idx[i])->len; }
    if (s == SFT_OK) qsort(order, (size_t)n, sizeof *order, sft__by_len_desc);
    for (i = 0; s == SFT_OK && i < n; i++) {
        int64_t best = -1;
        for (b = 0; b < n_bins; b++)
            if (room[b] >= order[i].len && (best < 0 || room[b] < room[best] || (room[b] == room[best] && stamp[b] < stamp[best])))
                best = b;
        if (best < 0) { best = n_bins++; room[best] = cap; }
        room[best] -= order[i].len;
        stamp[best] = i;
        bin_of[i] = best;
        *tokens += order[i].len;
    }
    for (b = 0; s == SFT_OK && b < n_bins; b++) {
        int64_t fc[2];
        fc[0] = (int64_t)ds->bin_items[split].len; fc[1] = 0;
        for (i = 0; s == SFT_OK && i < n; i++)
            if (bin_of[i] == b) { s = sft__vec_push(ds->ctx, &ds->bin_items[split], &order[i].idx, 1); fc[1]++; }
        if (s == SFT_OK) s = sft__vec_push(ds->ctx, &ds->bins[split], fc, 2);
    }
    *n_bins_out += n_bins;
    sft__free(ds->ctx, order); sft__free(ds->ctx, room); sft__free(ds->ctx, bin_of); sft__free(ds->ctx, stamp);
    return s;
}

/* sft__pack: a split's examples in blocks of 1000 consecutive rows, each packed
   on its own (TRL packs with a batched map of 1000 rows). */
#define SFT__PACK_BLOCK 1000
static sft_status sft__pack(sft_dataset *ds, int split) {
    int64_t n = (int64_t)ds->split_ex[split].len, i, bins = 0, tokens = 0;
    for (i = 0; i < n; i += SFT__PACK_BLOCK)
        SFT__TRY(sft__pack_block(ds, split, (const int64_t *)ds->split_ex[split].p + i, n - i < SFT__PACK_BLOCK ? n - i : SFT__PACK_BLOCK,
                                 &bins, &tokens));
    if (split == 0) {
        ds->stats.bins = bins;
        ds->stats.packing_efficiency = bins ? (double)tokens / ((double)bins * (double)ds->desc.max_length) : 0.0;
    }
    return SFT_OK;
}

SFTDEF int64_t sft_dataset_rows(const sft_dataset *ds, int split) {
    if (!ds || split < 0 || split > 1) return 0;
    return ds->desc.packing ? (int64_t)ds->bins[split].len / 2 : (int64_t)ds->split_ex[split].len;
}

/* sft__row_items: the examples of row i (one, or a bin's) */
static void sft__row_items(const sft_dataset *ds, int split, int64_t i, const int64_t **items, int64_t *count) {
    if (!ds->desc.packing) { *items = (const int64_t *)ds->split_ex[split].p + i; *count = 1; return; }
    *items = (const int64_t *)ds->bin_items[split].p + ((const int64_t *)ds->bins[split].p)[2 * i];
    *count = ((const int64_t *)ds->bins[split].p)[2 * i + 1];
}

SFTDEF sft_status sft_dataset_row(const sft_dataset *ds, int split, int64_t i, const int32_t **ids, const int32_t **labels,
                                  int64_t *n, const int32_t **seq_starts, int *n_seqs) {
    const int64_t *items;
    int64_t count;
    if (!ds || !ids || !labels || !n) return sft__fail(SFT_ERR_ARG, "sft_dataset_row: NULL argument");
    if (split < 0 || split > 1 || i < 0 || i >= sft_dataset_rows(ds, split))
        return sft__fail(SFT_ERR_ARG, "sft_dataset_row: row %lld of split %d (it has %lld)", (long long)i, split,
                         (long long)sft_dataset_rows(ds, split));
    sft__row_items(ds, split, i, &items, &count);
    if (count == 1 || !ds->desc.packing) {
        const sft__example *e = sft__ex_at(ds, items[0]);
        *ids = (const int32_t *)ds->ids.p + e->off; *labels = (const int32_t *)ds->labels.p + e->off; *n = e->len;
        if (seq_starts) { static const int32_t zero = 0; *seq_starts = &zero; }
        if (n_seqs) *n_seqs = 1;
        return SFT_OK;
    }
    return sft__fail(SFT_ERR_ARG, "sft_dataset_row: row %lld is a bin of %lld sequences: use sft_dataset_batch", (long long)i,
                     (long long)count);
}

/* the row at position k of the order sft__make_order made (or file order) */
static int64_t sft__order_at(const sft_dataset *ds, int shuffle, int64_t k) {
    return shuffle ? ((const int64_t *)ds->order.p)[k] : k;
}

static sft_status sft__make_order(sft_dataset *ds, int split, int64_t epoch) {
    int64_t n = sft_dataset_rows(ds, split), i;
    uint64_t key = sft_rng_key(ds->desc.seed, 0x53687566ull, (uint64_t)epoch, (uint64_t)split);
    if (ds->order.len == (size_t)n && ds->order_epoch == epoch && ds->order_split == split) return SFT_OK;   /* made already */
    ds->order_epoch = epoch; ds->order_split = split;
    ds->order.len = 0;
    for (i = 0; i < n; i++) SFT__TRY(sft__vec_push(ds->ctx, &ds->order, &i, 1));
    for (i = n - 1; i > 0; i--) {      /* Fisher-Yates keyed by (seed, epoch): the same on resume */
        int64_t j = (int64_t)((double)sft_rng_uniform(key, (uint64_t)i) * (double)(i + 1)), t;
        int64_t *o = (int64_t *)ds->order.p;
        if (j > i) j = i;
        t = o[i]; o[i] = o[j]; o[j] = t;
    }
    return SFT_OK;
}

SFTDEF sft_status sft_dataset_batch(sft_dataset *ds, int split, int64_t epoch, int shuffle, int64_t first, int64_t batch_size,
                                    sft_batch *out) {
    int64_t rows, k, count, T = 0, total = 0, b, shape[2];
    sft_context *ctx;
    int flat;
    if (out) memset(out, 0, sizeof *out);
    if (!ds || !out || split < 0 || split > 1 || batch_size < 1) return sft__fail(SFT_ERR_ARG, "sft_dataset_batch: bad argument");
    ctx = ds->ctx;
    flat = ds->desc.packing || ds->desc.padding_free;
    rows = sft_dataset_rows(ds, split);
    if (first < 0 || first >= rows) return sft__fail(SFT_ERR_ARG, "sft_dataset_batch: first %lld of %lld rows", (long long)first, (long long)rows);
    count = first + batch_size <= rows ? batch_size : rows - first;
    if (shuffle) SFT__TRY(sft__make_order(ds, split, epoch));
    for (k = 0; k < count; k++) {
        const int64_t *items;
        int64_t n_items, j, len = 0;
        sft__row_items(ds, split, sft__order_at(ds, shuffle, first + k), &items, &n_items);
        for (j = 0; j < n_items; j++) len += sft__ex_at(ds, items[j])->len;
        if (len > T) T = len;
        total += len;
    }
    shape[0] = flat ? 1 : count; shape[1] = flat ? total : T;
    SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_I32, 2, shape, &out->input_ids));
    SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_I32, 2, shape, &out->labels));
    SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_I32, 2, shape, &out->attention_mask));
    SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_I32, 2, shape, &out->positions));
    SFT__TRY(sft__tensor_step(ctx, SFT_DEVICE_CPU, SFT_I32, 2, shape, &out->seq_ids));
    {
        int32_t *ids = (int32_t *)out->input_ids->data, *lab = (int32_t *)out->labels->data, *am = (int32_t *)out->attention_mask->data;
        int32_t *pos = (int32_t *)out->positions->data, *sid = (int32_t *)out->seq_ids->data;
        int64_t w = 0, seq = 0;
        for (k = 0; k < count; k++) {
            const int64_t *items;
            int64_t n_items, j, t, row0 = flat ? 0 : k * T;
            sft__row_items(ds, split, sft__order_at(ds, shuffle, first + k), &items, &n_items);
            if (!flat) w = row0;
            for (j = 0; j < n_items; j++, seq++) {
                const sft__example *e = sft__ex_at(ds, items[j]);
                for (t = 0; t < e->len; t++, w++) {
                    ids[w] = ((const int32_t *)ds->ids.p)[e->off + t];
                    lab[w] = ((const int32_t *)ds->labels.p)[e->off + t];
                    if (flat && t == 0) lab[w] = -100;   /* padding-free: no label across a boundary */
                    am[w] = 1; pos[w] = (int32_t)t; sid[w] = (int32_t)seq;
                    out->trained_tokens += lab[w] != -100;
                }
                out->n_examples++;
            }
            for (b = w; !flat && b < row0 + T; b++) {     /* right padding */
                ids[b] = ds->pad_id; lab[b] = -100; am[b] = 0; pos[b] = (int32_t)(b - row0); sid[b] = -1;
            }
        }
        out->tokens = total;
    }
    return SFT_OK;
}

/* ============================================================================
   === data: loading */

SFTDEF void sft_dataset_destroy(sft_dataset *ds) {
    int i;
    if (!ds) return;
    sft__free(ds->ctx, ds->ids.p); sft__free(ds->ctx, ds->labels.p); sft__free(ds->ctx, ds->ex.p);
    for (i = 0; i < 2; i++) { sft__free(ds->ctx, ds->split_ex[i].p); sft__free(ds->ctx, ds->bins[i].p); sft__free(ds->ctx, ds->bin_items[i].p); }
    sft__free(ds->ctx, ds->row_starts.p); sft__free(ds->ctx, ds->order.p);
    sft__free(ds->ctx, ds);
}

SFTDEF sft_data_stats sft_dataset_stats(const sft_dataset *ds) {
    sft_data_stats none;
    memset(&none, 0, sizeof none);
    return ds ? ds->stats : none;
}

static sft_status sft__dataset_new(sft_context *ctx, sft_tokenizer *tok, const sft_data_desc *desc, sft_dataset **out) {
    sft_dataset *ds;
    sft_tokenizer_info info;
    int i;
    *out = NULL;
    if (!ctx || !tok) return sft__fail(SFT_ERR_ARG, "dataset: NULL context or tokenizer");
    ds = (sft_dataset *)sft__calloc(ctx, 1, sizeof *ds);
    if (!ds) return sft__fail(SFT_ERR_NOMEM, "dataset");
    ds->ctx = ctx; ds->tok = tok;
    if (desc) ds->desc = *desc;
    if (ds->desc.max_length == 0) ds->desc.max_length = 1024;
    if (!ds->desc.dataset_text_field) ds->desc.dataset_text_field = "text";
    ds->format = ds->desc.format;
    ds->ids.elem = ds->labels.elem = sizeof(int32_t); ds->ex.elem = sizeof(sft__example);
    for (i = 0; i < 2; i++) { ds->split_ex[i].elem = ds->bin_items[i].elem = sizeof(int64_t); ds->bins[i].elem = sizeof(int64_t); }
    ds->row_starts.elem = sizeof(int32_t); ds->order.elem = sizeof(int64_t);
    info = sft_tokenizer_get_info(tok);
    ds->eos_id = info.eos_id;
    ds->pad_id = info.pad_id >= 0 ? info.pad_id : info.eos_id >= 0 ? info.eos_id : 0;   /* TRL: pad = eos when missing */
    if (ds->desc.pad_token && (ds->pad_id = sft_tokenizer_token_to_id(tok, ds->desc.pad_token)) < 0) {
        sft_dataset_destroy(ds);
        return sft__fail(SFT_ERR_ARG, "dataset: pad_token '%s' is not a token of the tokenizer", desc->pad_token);
    }
    ds->eos_text = info.eos_id >= 0 ? sft_tokenizer_id_to_token(tok, info.eos_id) : NULL;
    ds->bos_text = info.bos_id >= 0 ? sft_tokenizer_id_to_token(tok, info.bos_id) : NULL;
    if ((ds->desc.max_length < 1 && ds->desc.max_length != -1) || (ds->desc.packing && ds->desc.max_length < 1) || !(ds->desc.eval_fraction >= 0.0f && ds->desc.eval_fraction < 1.0f) ||
        ds->desc.completion_only_loss < -1 || ds->desc.completion_only_loss > 1) {
        sft_dataset_destroy(ds);
        return sft__fail(SFT_ERR_ARG, "dataset: max_length %d, eval_fraction %g, completion_only_loss %d", desc->max_length,
                         desc->eval_fraction, desc->completion_only_loss);
    }
    *out = ds;
    return SFT_OK;
}

static sft_status sft__dataset_finish(sft_dataset *ds) {
    SFT__TRY(sft__split(ds));
    if (ds->desc.packing) { SFT__TRY(sft__pack(ds, 0)); SFT__TRY(sft__pack(ds, 1)); }
    if (sft_dataset_rows(ds, 0) == 0)
        return sft__fail(SFT_ERR_FORMAT, "dataset: no usable rows (%lld read, %lld malformed, %lld empty, %lld with nothing to train)",
                         (long long)ds->stats.rows_read, (long long)ds->stats.dropped_malformed, (long long)ds->stats.dropped_empty,
                         (long long)ds->stats.dropped_untrained);
    return SFT_OK;
}

SFTDEF sft_status sft_dataset_from_records(sft_context *ctx, sft_tokenizer *tok, const char *const *records, int n,
                                           const sft_data_desc *desc, sft_dataset **out) {
    sft_dataset *ds;
    sft_status s = SFT_OK;
    int i;
    char where[64];
    if (out) *out = NULL;
    if (!out || (n > 0 && !records) || n < 0) return sft__fail(SFT_ERR_ARG, "sft_dataset_from_records: bad argument");
    SFT__TRY(sft__dataset_new(ctx, tok, desc, &ds));
    for (i = 0; s == SFT_OK && i < n; i++) {
        snprintf(where, sizeof where, "record %d", i);
        s = records[i] ? sft__add_record(ds, records[i], strlen(records[i]), where) : sft__fail(SFT_ERR_ARG, "record %d is NULL", i);
    }
    if (s == SFT_OK) s = sft__dataset_finish(ds);
    if (s != SFT_OK) { sft_dataset_destroy(ds); return s; }
    *out = ds;
    return SFT_OK;
}

/* sft__load_jsonl: every non-blank line of one file */
static sft_status sft__load_jsonl(sft_dataset *ds, const char *path) {
    char *text = NULL, where[4200];
    size_t len = 0, i = 0, line = 1;
    sft_status s = SFT_OK;
    SFT__TRY(sft_file_read(ds->ctx, path, 0, &text, &len));
    while (s == SFT_OK && i < len) {
        size_t e = i, j;
        int blank = 1;
        while (e < len && text[e] != '\n') e++;
        for (j = i; j < e; j++) if (!isspace((unsigned char)text[j])) { blank = 0; break; }
        if (!blank) {
            snprintf(where, sizeof where, "%s:%zu", path, line);
            s = sft__add_record(ds, text + i, e - i, where);
        }
        i = e + 1; line++;
    }
    sft__free(ds->ctx, text);
    return s;
}

static int sft__cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

SFTDEF sft_status sft_dataset_load(sft_context *ctx, sft_tokenizer *tok, const char *path, const sft_data_desc *desc,
                                   sft_dataset **out) {
    sft_dataset *ds;
    struct stat st;
    sft_status s = SFT_OK;
    if (out) *out = NULL;
    if (!out || !path) return sft__fail(SFT_ERR_ARG, "sft_dataset_load: NULL argument");
    if (stat(path, &st) != 0) return sft__fail(SFT_ERR_IO, "%s: %s", path, strerror(errno));
    SFT__TRY(sft__dataset_new(ctx, tok, desc, &ds));
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        char *names[4096];
        int n = 0, i;
        if (!d) s = sft__fail(SFT_ERR_IO, "%s: %s", path, strerror(errno));
        while (s == SFT_OK && d && (de = readdir(d)) != NULL) {
            size_t l = strlen(de->d_name);
            if (l < 6 || strcmp(de->d_name + l - 6, ".jsonl") != 0) continue;
            if (n == 4096) { s = sft__fail(SFT_ERR_LIMIT, "%s: more than 4096 .jsonl files", path); break; }
            if (!(names[n] = sft__strdup(ctx, de->d_name))) s = sft__fail(SFT_ERR_NOMEM, "%s", path);
            else n++;
        }
        if (d) closedir(d);
        qsort(names, (size_t)n, sizeof names[0], sft__cmp_str);
        for (i = 0; i < n; i++) {
            char file[4096];
            if (s == SFT_OK) s = sft__path_join(file, sizeof file, path, strlen(path), names[i]);
            if (s == SFT_OK) s = sft__load_jsonl(ds, file);
            sft__free(ctx, names[i]);
        }
        if (s == SFT_OK && n == 0) s = sft__fail(SFT_ERR_NOT_FOUND, "%s: no .jsonl files", path);
    } else
        s = sft__load_jsonl(ds, path);
    if (s == SFT_OK) s = sft__dataset_finish(ds);
    if (s != SFT_OK) { sft_dataset_destroy(ds); return s; }
    *out = ds;
    return SFT_OK;
}

SFTDEF sft_status sft_dataset_render(sft_dataset *ds, const char *record, int add_generation_prompt, char **text) {
    sft_json *rec = NULL;
    sft__msg msgs[SFT__MAX_MESSAGES];
    sft__render r;
    int n = 0, sharegpt;
    sft_status s;
    const sft_json *list;
    if (text) *text = NULL;
    if (!ds || !record || !text) return sft__fail(SFT_ERR_ARG, "sft_dataset_render: NULL argument");
    SFT__TRY(sft_json_parse(ds->ctx, record, strlen(record), "record", NULL, &rec));
    sharegpt = sft_json_get(rec, "conversations") != NULL;
    list = sft_json_get(rec, sharegpt ? "conversations" : "messages");
    memset(&r, 0, sizeof r);
    r.ctx = ds->ctx; r.text.elem = 1; r.spans.elem = sizeof(size_t);
    s = sft__messages(list, sharegpt, ds->desc.sharegpt_map_roles, msgs, SFT__MAX_MESSAGES, &n);
    if (s == SFT_OK) s = sft__need_template(ds);
    if (s == SFT_OK) s = sft__render_conv(&r, &ds->tmpl, msgs, n, add_generation_prompt);
    if (s == SFT_OK) s = sft__vec_push(ds->ctx, &r.text, "", 1);
    sft_json_free(rec);
    sft__free(ds->ctx, r.spans.p);
    if (s != SFT_OK) { sft__free(ds->ctx, r.text.p); return s; }
    *text = (char *)r.text.p;
    return SFT_OK;
}

/* ============================================================================
   === optim: AdamW, clipping, schedules */

struct sft_optimizer {
    sft_context    *ctx;
    sft_adamw_desc  d;
    int             n;
    sft_tensor    **params;
    unsigned char  *no_decay;
    float         **m, **v;        /* exp_avg, exp_avg_sq per parameter (f32 state)    */
    uint8_t       **q1, **q2;      /* 8-bit state: codes of exp_avg, exp_avg_sq        */
    float         **a1, **a2;      /*   and their block scales                         */
    int64_t        *step;
    float           map1[256], map2[256];       /* eight_bit: the dynamic maps         */
    uint8_t        *lut1, *lut2;                /* and their 65,536-bin code tables    */
    void           *device_tables;              /* eight_bit with CUDA parameters: map1,
                                                   map2, lut1, lut2 copied to the device */
};

/* --- bitsandbytes' 8-bit state: the dynamic maps and the blockwise quantizer --- */

#define SFT__Q8_BLOCK 256

/* torch.linspace in f32 as its CPU kernel computes it: the first half counted up
   from start, the second down from end, each a single fused multiply-add */
static float sft__linspace_f32(float start, float end, int steps, int i) {
    float step = (end - start) / (float)(steps - 1);
    return i < steps / 2 ? fmaf(step, (float)i, start) : fmaf(-step, (float)(steps - i - 1), end);
}

static int sft__cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* For each exponent i = 0..6, the midpoints of a linspace(0.1, 1) scaled by
   10^(i - 6) (and negated too when signed), then 0 and 1, sorted. */
SFTDEF void sft_dynamic_map(int is_signed, float out[256]) {
    int n = 0, i, j;
    for (i = 0; i < 7; i++) {
        int items = is_signed ? (1 << i) + 1 : (1 << (i + 1)) + 1;
        float scale = (float)pow(10.0, (double)(i - 6));
        for (j = 0; j + 1 < items; j++) {
            float mean = (sft__linspace_f32(0.1f, 1.0f, items, j) + sft__linspace_f32(0.1f, 1.0f, items, j + 1)) / 2.0f;
            out[n++] = scale * mean;
            if (is_signed) out[n++] = -scale * mean;
        }
    }
    out[n++] = 0.0f;
    out[n++] = 1.0f;
    while (n < 256) out[n++] = 0.0f;
    qsort(out, 256, sizeof(float), sft__cmp_float);
}

/* The CPU quantizer's table: bin i of 65,536 over [-1, 1] takes the code whose
   midpoint interval holds -1 + 2i/65535 (the number of midpoints below it). Near
   a midpoint this is not always the nearest code; bitsandbytes' bytes are. */
static void sft__q8_lut(const float map[256], uint8_t *lut) {
    float mid[255];
    int j, i, c = 0;
    for (j = 0; j < 255; j++) mid[j] = 0.5f * (map[j] + map[j + 1]);
    for (i = 0; i < 65536; i++) {
        float val = -1.0f + (2.0f * (float)i) / 65535.0f;
        while (c < 255 && mid[c] < val) c++;
        lut[i] = (uint8_t)c;
    }
}

/* sft__q8_code: the code of x in a block scaled by inv = 1/absmax (shared with
   the CUDA kernel) */
static SFT__HD uint8_t sft__q8_code(float x, float inv, const uint8_t *lut) {
    float t = SFT__MUL(x, inv);
    if (t != t) return 0;                          /* NaN (or a subnormal scale): bitsandbytes' bytes are undefined too */
    t = t < -1.0f ? -1.0f : t > 1.0f ? 1.0f : t;
    t = SFT__ADD(SFT__MUL(SFT__MUL(SFT__ADD(t, 1.0f), 0.5f), 65535.0f), 0.5f);
    return lut[(uint16_t)t];
}

/* one block of n <= 256 values to codes; returns the block's scale */
static float sft__q8_block(const float *x, int64_t n, const uint8_t *lut, uint8_t *code) {
    float absmax = 0.0f, inv;
    int64_t k;
    for (k = 0; k < n; k++) if (fabsf(x[k]) > absmax) absmax = fabsf(x[k]);
    if (absmax == 0.0f) { memset(code, 0, (size_t)n); return 0.0f; }
    inv = 1.0f / absmax;
    for (k = 0; k < n; k++) code[k] = sft__q8_code(x[k], inv, lut);
    return absmax;
}

/* torch's CPU kernels as bitsandbytes' update calls them: add(a, b, alpha) and
   addcmul(a, b, c, value) are each one fused multiply-add */
static SFT__HD float sft__torch_add_alpha(float a, float b, float alpha) { return fmaf(b, alpha, a); }
static SFT__HD float sft__torch_addcmul(float a, float b, float c, float value) { return fmaf(SFT__MUL(value, b), c, a); }

/* where parameter i's state lives: its device */
static sft_device sft__opt_device(const sft_optimizer *o, int i) {
    return o->params && o->params[i] ? o->params[i]->device : SFT_DEVICE_CPU;
}

SFTDEF void sft_optimizer_destroy(sft_optimizer *o) {
    int i;
    if (!o) return;
    for (i = 0; i < o->n; i++) {
        sft_device dev = sft__opt_device(o, i);
        if (o->m) sft__device_free(o->ctx, dev, o->m[i]);
        if (o->v) sft__device_free(o->ctx, dev, o->v[i]);
        if (o->q1) sft__device_free(o->ctx, dev, o->q1[i]);
        if (o->q2) sft__device_free(o->ctx, dev, o->q2[i]);
        if (o->a1) sft__device_free(o->ctx, dev, o->a1[i]);
        if (o->a2) sft__device_free(o->ctx, dev, o->a2[i]);
    }
    if (o->device_tables) sft__device_free(o->ctx, SFT_DEVICE_CUDA, o->device_tables);
    sft__free(o->ctx, o->m); sft__free(o->ctx, o->v); sft__free(o->ctx, o->q1); sft__free(o->ctx, o->q2);
    sft__free(o->ctx, o->a1); sft__free(o->ctx, o->a2); sft__free(o->ctx, o->params); sft__free(o->ctx, o->no_decay);
    sft__free(o->ctx, o->step); sft__free(o->ctx, o->lut1); sft__free(o->ctx, o->lut2);
    sft__free(o->ctx, o);
}

static int sft__is_8bit(const sft_optimizer *o, int i) {
    return o->d.eight_bit && sft_tensor_numel(o->params[i]) >= o->d.min_8bit_size;
}

/* sft__state_alloc: n zeroed bytes of parameter i's state on its device */
static void *sft__state_alloc(sft_optimizer *o, int i, size_t n) {
    void *p = NULL;
    sft_device dev = sft__opt_device(o, i);
    if (dev == SFT_DEVICE_CPU) return sft__calloc(o->ctx, n ? n : 1, 1);
    if (sft__device_alloc(o->ctx, dev, n, &p) != SFT_OK) return NULL;
    if (sft__device_zero(p, dev, n) != SFT_OK) { sft__device_free(o->ctx, dev, p); return NULL; }
    return p;
}

/* sft__optimizer_alloc: parameter i's state (all zero) */
static sft_status sft__optimizer_alloc(sft_optimizer *o, int i) {
    int64_t n = sft_tensor_numel(o->params[i]), blocks = (n + SFT__Q8_BLOCK - 1) / SFT__Q8_BLOCK;
    if (o->params[i]->device != SFT_DEVICE_CPU) {
        if (sft__is_8bit(o, i)) {
            o->q1[i] = (uint8_t *)sft__state_alloc(o, i, (size_t)n);
            o->q2[i] = (uint8_t *)sft__state_alloc(o, i, (size_t)n);
            o->a1[i] = (float *)sft__state_alloc(o, i, (size_t)blocks * sizeof(float));
            o->a2[i] = (float *)sft__state_alloc(o, i, (size_t)blocks * sizeof(float));
            if (!o->q1[i] || !o->q2[i] || !o->a1[i] || !o->a2[i])
                return sft__fail(SFT_ERR_NOMEM, "optimizer: 8-bit state of %lld values on cuda: %s", (long long)n, sft_last_error());
            return SFT_OK;
        }
        o->m[i] = (float *)sft__state_alloc(o, i, (size_t)n * sizeof(float));
        o->v[i] = (float *)sft__state_alloc(o, i, (size_t)n * sizeof(float));
        if (!o->m[i] || !o->v[i]) return sft__fail(SFT_ERR_NOMEM, "optimizer: moments of %lld values on cuda: %s", (long long)n, sft_last_error());
        return SFT_OK;
    }
    if (sft__is_8bit(o, i)) {
        o->q1[i] = (uint8_t *)sft__calloc(o->ctx, (size_t)n, 1);
        o->q2[i] = (uint8_t *)sft__calloc(o->ctx, (size_t)n, 1);
        o->a1[i] = (float *)sft__calloc(o->ctx, (size_t)blocks, sizeof(float));
        o->a2[i] = (float *)sft__calloc(o->ctx, (size_t)blocks, sizeof(float));
        if (!o->q1[i] || !o->q2[i] || !o->a1[i] || !o->a2[i]) return sft__fail(SFT_ERR_NOMEM, "optimizer: 8-bit state of %lld values", (long long)n);
        return SFT_OK;
    }
    o->m[i] = (float *)sft__calloc(o->ctx, (size_t)(n ? n : 1), sizeof(float));
    o->v[i] = (float *)sft__calloc(o->ctx, (size_t)(n ? n : 1), sizeof(float));
    if (!o->m[i] || !o->v[i]) return sft__fail(SFT_ERR_NOMEM, "optimizer: moments of %lld values", (long long)n);
    return SFT_OK;
}

/* sft__optimizer_tables_to_device: map1, map2, lut1, lut2 in one device block */
static sft_status sft__optimizer_tables_to_device(sft_optimizer *o, sft_device dev) {
    size_t maps = 2 * 256 * sizeof(float);
    SFT__TRY(sft__device_alloc(o->ctx, dev, maps + 2 * 65536, &o->device_tables));
    SFT__TRY(sft__device_copy(o->device_tables, dev, o->map1, SFT_DEVICE_CPU, sizeof o->map1));
    SFT__TRY(sft__device_copy((char *)o->device_tables + sizeof o->map1, dev, o->map2, SFT_DEVICE_CPU, sizeof o->map2));
    SFT__TRY(sft__device_copy((char *)o->device_tables + maps, dev, o->lut1, SFT_DEVICE_CPU, 65536));
    return sft__device_copy((char *)o->device_tables + maps + 65536, dev, o->lut2, SFT_DEVICE_CPU, 65536);
}

SFTDEF sft_status sft_optimizer_create(sft_context *ctx, sft_tensor *const *params, int n, const unsigned char *no_decay,
                                       const sft_adamw_desc *desc, sft_optimizer **out) {
    sft_optimizer *o;
    int i;
    if (out) *out = NULL;
    if (!ctx || !out || n < 0 || (n && !params)) return sft__fail(SFT_ERR_ARG, "optimizer: NULL argument");
    for (i = 0; i < n; i++)
        if (!params[i] || params[i]->dtype != SFT_F32)
            return sft__fail(SFT_ERR_DTYPE, "optimizer: parameter %d is not an f32 tensor", i);
    o = (sft_optimizer *)sft__calloc(ctx, 1, sizeof *o);
    if (!o) return sft__fail(SFT_ERR_NOMEM, "optimizer");
    o->ctx = ctx; o->n = n;
    if (desc) o->d = *desc;
    if (o->d.lr == 0.0) o->d.lr = 2e-5;
    if (o->d.beta1 == 0.0) o->d.beta1 = 0.9;
    if (o->d.beta2 == 0.0) o->d.beta2 = 0.999;
    if (o->d.eps == 0.0) o->d.eps = 1e-8;
    if (o->d.min_8bit_size == 0) o->d.min_8bit_size = 4096;
    if (!(o->d.lr > 0.0) || !(o->d.beta1 > 0.0 && o->d.beta1 < 1.0) || !(o->d.beta2 > 0.0 && o->d.beta2 < 1.0) ||
        !(o->d.eps > 0.0) || !(o->d.weight_decay >= 0.0) || o->d.min_8bit_size < 0) {
        sft_optimizer_destroy(o);
        return sft__fail(SFT_ERR_ARG, "optimizer: learning_rate %g, betas (%g, %g), eps %g, weight_decay %g, min_8bit_size %lld",
                         desc->lr, desc->beta1, desc->beta2, desc->eps, desc->weight_decay, (long long)desc->min_8bit_size);
    }
    o->params = (sft_tensor **)sft__calloc(ctx, (size_t)n + 1, sizeof *o->params);
    o->no_decay = (unsigned char *)sft__calloc(ctx, (size_t)n + 1, 1);
    o->m = (float **)sft__calloc(ctx, (size_t)n + 1, sizeof(float *));
    o->v = (float **)sft__calloc(ctx, (size_t)n + 1, sizeof(float *));
    o->q1 = (uint8_t **)sft__calloc(ctx, (size_t)n + 1, sizeof(uint8_t *));
    o->q2 = (uint8_t **)sft__calloc(ctx, (size_t)n + 1, sizeof(uint8_t *));
    o->a1 = (float **)sft__calloc(ctx, (size_t)n + 1, sizeof(float *));
    o->a2 = (float **)sft__calloc(ctx, (size_t)n + 1, sizeof(float *));
    o->step = (int64_t *)sft__calloc(ctx, (size_t)n + 1, sizeof(int64_t));
    if (o->d.eight_bit) {
        o->lut1 = (uint8_t *)sft__alloc(ctx, 65536);
        o->lut2 = (uint8_t *)sft__alloc(ctx, 65536);
    }
    if (!o->params || !o->no_decay || !o->m || !o->v || !o->q1 || !o->q2 || !o->a1 || !o->a2 || !o->step ||
        (o->d.eight_bit && (!o->lut1 || !o->lut2))) {
        sft_optimizer_destroy(o);
        return sft__fail(SFT_ERR_NOMEM, "optimizer");
    }
    if (o->d.eight_bit) {
        sft_dynamic_map(1, o->map1); sft_dynamic_map(0, o->map2);
        sft__q8_lut(o->map1, o->lut1); sft__q8_lut(o->map2, o->lut2);
        for (i = 0; i < n && params[i]->device == SFT_DEVICE_CPU; i++) {}
        if (i < n) {   /* a device parameter: the tables go there too */
            sft_status s = sft__optimizer_tables_to_device(o, params[i]->device);
            if (s != SFT_OK) { sft_optimizer_destroy(o); return s; }
        }
    }
    for (i = 0; i < n; i++) {
        sft_status s;
        o->params[i] = params[i];
        o->no_decay[i] = no_decay ? no_decay[i] : 0;
        if ((s = sft__optimizer_alloc(o, i)) != SFT_OK) { sft_optimizer_destroy(o); return s; }
    }
    *out = o;
    return SFT_OK;
}

/* torch.lerp for f32: a + w (b - a) below w = 0.5, else b - (b - a)(1 - w) */
static SFT__HD float sft__lerp(float a, float b, float w) {
    return w < 0.5f ? SFT__ADD(a, SFT__MUL(w, b - a)) : b - SFT__MUL(b - a, 1.0f - w);
}

/* The f32 constants of one parameter's update at its step (the scalars in
   double first, as torch and bitsandbytes compute them); kind is the update. */
enum { SFT__ADAM_TORCH, SFT__ADAM_BNB32, SFT__ADAM_BNB8 };
typedef struct sft__adam_k {
    float b1, w1, b2, w2;          /* beta1, 1 - beta1, beta2, 1 - beta2          */
    float decay;                   /* 1 - lr * weight_decay                       */
    float step_size, bc2, eps;     /* torch, bnb8: -lr / bc1, sqrt(bc2), eps;
                                      bnb32: -lr sqrt(bc2) / bc1, -, eps sqrt(bc2) */
    int   decay_on;
} sft__adam_k;

static sft__adam_k sft__adam_consts(const sft_optimizer *o, int i, double lr, int kind) {
    sft__adam_k k;
    double wd = o->no_decay[i] ? 0.0 : o->d.weight_decay;
    double c1 = 1.0 - pow(o->d.beta1, (double)o->step[i]), c2 = sqrt(1.0 - pow(o->d.beta2, (double)o->step[i]));
    k.b1 = (float)o->d.beta1; k.w1 = (float)(1.0 - o->d.beta1); k.b2 = (float)o->d.beta2; k.w2 = (float)(1.0 - o->d.beta2);
    k.decay = (float)(1.0 - lr * wd);
    k.decay_on = kind == SFT__ADAM_TORCH ? wd != 0.0 : wd > 0.0;
    k.bc2 = (float)c2;
    k.step_size = kind == SFT__ADAM_BNB32 ? (float)(-lr * c2 / c1) : (float)(-(lr / c1));
    k.eps = kind == SFT__ADAM_BNB32 ? (float)(o->d.eps * c2) : (float)o->d.eps;
    return k;
}

/* One element of torch.optim.AdamW's single-tensor step (shared with the CUDA kernel). */
static SFT__HD void sft__adamw_torch_elem(float *w, float *m, float *v, float g, const sft__adam_k *k) {
    float denom;
    if (k->decay_on) *w = SFT__MUL(*w, k->decay);
    *m = sft__lerp(*m, g, k->w1);
    *v = SFT__ADD(SFT__MUL(*v, k->b2), SFT__MUL(SFT__MUL(k->w2, g), g));
    denom = SFT__ADD(sqrtf(*v) / k->bc2, k->eps);
    *w = SFT__ADD(*w, SFT__MUL(k->step_size, *m) / denom);
}

/* One element of bitsandbytes' 32-bit CPU update. */
static SFT__HD void sft__adamw_bnb32_elem(float *w, float *m, float *v, float g, const sft__adam_k *k) {
    *m = sft__torch_add_alpha(SFT__MUL(*m, k->b1), g, k->w1);
    *v = sft__torch_addcmul(SFT__MUL(*v, k->b2), g, g, k->w2);
    if (k->decay_on) *w = SFT__MUL(*w, k->decay);
    *w = sft__torch_add_alpha(*w, *m / SFT__ADD(sqrtf(*v), k->eps), k->step_size);
}

/* One element of bitsandbytes' 8-bit update on the decoded moments. */
static SFT__HD void sft__adamw_bnb8_elem(float *w, float *m, float *v, float g, const sft__adam_k *k) {
    float denom;
    *m = sft__torch_add_alpha(SFT__MUL(*m, k->b1), g, k->w1);
    *v = sft__torch_addcmul(SFT__MUL(*v, k->b2), g, g, k->w2);
    denom = SFT__ADD(sqrtf(*v) / k->bc2, k->eps);
    if (k->decay_on) *w = SFT__MUL(*w, k->decay);
    *w = SFT__ADD(*w, SFT__MUL(k->step_size, *m) / denom);
}

/* torch.optim.AdamW's single-tensor step on parameter i */
static void sft__adamw_torch(sft_optimizer *o, int i, double lr) {
    sft_tensor *p = o->params[i];
    float *w = SFT__F(p), *m = o->m[i], *v = o->v[i];
    const float *g = SFT__CF(p->grad);
    int64_t k, n = sft_tensor_numel(p);
    sft__adam_k c = sft__adam_consts(o, i, lr, SFT__ADAM_TORCH);
    for (k = 0; k < n; k++) sft__adamw_torch_elem(&w[k], &m[k], &v[k], g[k], &c);
}

/* bitsandbytes' 32-bit CPU update (a small tensor under eight_bit) */
static void sft__adamw_bnb32(sft_optimizer *o, int i, double lr) {
    sft_tensor *p = o->params[i];
    float *w = SFT__F(p), *m = o->m[i], *v = o->v[i];
    const float *g = SFT__CF(p->grad);
    int64_t k, n = sft_tensor_numel(p);
    sft__adam_k c = sft__adam_consts(o, i, lr, SFT__ADAM_BNB32);
    for (k = 0; k < n; k++) sft__adamw_bnb32_elem(&w[k], &m[k], &v[k], g[k], &c);
}

/* bitsandbytes' 8-bit blockwise CPU update: decode, the f32 update, code again */
static void sft__adamw_bnb8(sft_optimizer *o, int i, double lr) {
    sft_tensor *p = o->params[i];
    float *w = SFT__F(p), m[SFT__Q8_BLOCK], v[SFT__Q8_BLOCK];
    const float *g = SFT__CF(p->grad);
    int64_t n = sft_tensor_numel(p), b, k;
    sft__adam_k c = sft__adam_consts(o, i, lr, SFT__ADAM_BNB8);
    for (b = 0; b * SFT__Q8_BLOCK < n; b++) {
        int64_t first = b * SFT__Q8_BLOCK, len = n - first < SFT__Q8_BLOCK ? n - first : SFT__Q8_BLOCK;
        for (k = 0; k < len; k++) {
            int64_t at = first + k;
            m[k] = o->map1[o->q1[i][at]] * o->a1[i][b];
            v[k] = o->map2[o->q2[i][at]] * o->a2[i][b];
            sft__adamw_bnb8_elem(&w[at], &m[k], &v[k], g[at], &c);
        }
        o->a1[i][b] = sft__q8_block(m, len, o->lut1, o->q1[i] + first);
        o->a2[i][b] = sft__q8_block(v, len, o->lut2, o->q2[i] + first);
    }
}

SFTDEF sft_status sft_optimizer_step(sft_optimizer *o, double lr) {
    int i;
    if (!o) return sft__fail(SFT_ERR_ARG, "optimizer_step: NULL optimizer");
    if (!(lr >= 0.0) || !(lr < INFINITY)) return sft__fail(SFT_ERR_ARG, "optimizer_step: learning rate %g", lr);
    for (i = 0; i < o->n; i++) {
        int kind = sft__is_8bit(o, i) ? SFT__ADAM_BNB8 : o->d.eight_bit ? SFT__ADAM_BNB32 : SFT__ADAM_TORCH;
        if (!o->params[i]->grad) continue;      /* torch leaves a parameter without a gradient alone */
        o->step[i]++;
        if (o->params[i]->device != SFT_DEVICE_CPU) {
#ifdef SFT_CUDA
            SFT__TRY(sft__cuda_adamw(o, i, sft__adam_consts(o, i, lr, kind), kind));
            continue;
#else
            return sft__no_cuda("optimizer_step");
#endif
        }
        if (kind == SFT__ADAM_BNB8) sft__adamw_bnb8(o, i, lr);
        else if (kind == SFT__ADAM_BNB32) sft__adamw_bnb32(o, i, lr);
        else sft__adamw_torch(o, i, lr);
    }
    return SFT_OK;
}

SFTDEF void sft_optimizer_zero_grad(sft_optimizer *o) {
    int i;
    for (i = 0; o && i < o->n; i++) sft_tensor_zero_grad(o->params[i]);
}

/* sft__sq_chunk: the squares of g[0..n) added in double, in order: one chunk
   of the gradient norm (shared with the CUDA kernel) */
#define SFT__NORM_CHUNK 4096
static SFT__HD double sft__sq_chunk(const float *g, int64_t n) {
    double s = 0.0;
    int64_t k;
    for (k = 0; k < n; k++) s = SFT__DADD(s, SFT__DMUL((double)g[k], (double)g[k]));
    return s;
}

/* sft__grad_sq: parameter i's sum of squared gradients: its chunks' sums added
   in order */
static sft_status sft__grad_sq(const sft_optimizer *o, int i, double *out) {
    const sft_tensor *g = o->params[i]->grad;
    int64_t n = sft_tensor_numel(g), c;
    *out = 0.0;
    if (g->device != SFT_DEVICE_CPU) {
#ifdef SFT_CUDA
        return sft__cuda_grad_sq(o->ctx, SFT__CF(g), n, out);
#else
        return sft__no_cuda("clip_grad_norm");
#endif
    }
    for (c = 0; c < n; c += SFT__NORM_CHUNK) *out += sft__sq_chunk(SFT__CF(g) + c, n - c < SFT__NORM_CHUNK ? n - c : SFT__NORM_CHUNK);
    return SFT_OK;
}

SFTDEF double sft_optimizer_clip_grad_norm(sft_optimizer *o, double max_norm) {
    double total = 0.0, norm, coef;
    int i;
    int64_t k;
    if (!o) return 0.0;
    for (i = 0; i < o->n; i++) {
        double s;
        if (!o->params[i]->grad) continue;
        if (sft__grad_sq(o, i, &s) != SFT_OK) return NAN;
        total += s;
    }
    norm = sqrt(total);
    if (max_norm > 0.0) {
        coef = max_norm / (norm + 1e-6);
        if (coef < 1.0)
            for (i = 0; i < o->n; i++) {
                sft_tensor *g = o->params[i]->grad;
                float c = (float)coef;
                if (g && g->device != SFT_DEVICE_CPU) {
#ifdef SFT_CUDA
                    if (sft__cuda_scale_inplace(SFT__F(g), sft_tensor_numel(g), c) != SFT_OK) return NAN;
#endif
                    continue;
                }
                for (k = 0; g && k < sft_tensor_numel(g); k++) SFT__F(g)[k] *= c;
            }
    }
    return norm;
}

SFTDEF int sft_optimizer_count(const sft_optimizer *o) { return o ? o->n : 0; }

SFTDEF sft_status sft_optimizer_param_state(sft_optimizer *o, int i, sft_optimizer_state *out) {
    if (!o || !out || i < 0 || i >= o->n) return sft__fail(SFT_ERR_ARG, "optimizer_state: parameter %d", i);
    memset(out, 0, sizeof *out);
    out->device = o->params[i]->device;
    out->step = o->step[i];
    out->numel = sft_tensor_numel(o->params[i]);
    out->exp_avg = o->m[i]; out->exp_avg_sq = o->v[i];
    if (o->q1[i]) {
        out->blocks = (out->numel + SFT__Q8_BLOCK - 1) / SFT__Q8_BLOCK;
        out->state1 = o->q1[i]; out->state2 = o->q2[i]; out->absmax1 = o->a1[i]; out->absmax2 = o->a2[i];
    }
    return SFT_OK;
}

static const char *const sft__schedule_names[SFT_SCHEDULE_COUNT] = {
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt",
    "cosine_with_min_lr", "warmup_stable_decay", "reduce_lr_on_plateau", "cosine_warmup_with_min_lr"};

SFTDEF const char *sft_schedule_name(sft_schedule type) {
    return (int)type >= 0 && type < SFT_SCHEDULE_COUNT ? sft__schedule_names[type] : "unknown";
}

SFTDEF sft_status sft_schedule_from_name(const char *name, sft_schedule *out) {
    int i;
    if (!out) return sft__fail(SFT_ERR_ARG, "sft_schedule_from_name: NULL out");
    for (i = 0; name && i < SFT_SCHEDULE_COUNT; i++)
        if (strcmp(name, sft__schedule_names[i]) == 0) { *out = (sft_schedule)i; return SFT_OK; }
    return sft__fail(SFT_ERR_ARG, "lr_scheduler_type \"%s\" is not one of linear, cosine, cosine_with_restarts, polynomial, "
                     "constant, constant_with_warmup, inverse_sqrt, cosine_with_min_lr, cosine_warmup_with_min_lr, "
                     "warmup_stable_decay, reduce_lr_on_plateau", name ? name : "(null)");
}

SFTDEF sft_status sft_curve_from_name(const char *name, sft_curve *out) {
    if (!out) return sft__fail(SFT_ERR_ARG, "sft_curve_from_name: NULL out");
    if (name && strcmp(name, "linear") == 0) *out = SFT_CURVE_LINEAR;
    else if (name && strcmp(name, "cosine") == 0) *out = SFT_CURVE_COSINE;
    else if (name && strcmp(name, "1-sqrt") == 0) *out = SFT_CURVE_1_SQRT;
    else return sft__fail(SFT_ERR_ARG, "warmup_type/decay_type \"%s\" is not one of linear, cosine, 1-sqrt", name ? name : "(null)");
    return SFT_OK;
}

/* the warmup part every schedule shares: step / max(1, warmup) */
static double sft__warmup(int64_t step, int64_t warmup) { return (double)step / (double)(warmup > 1 ? warmup : 1); }

SFTDEF sft_status sft_schedule_lr(const sft_schedule_desc *d, double base_lr, int64_t step, double *lr) {
    const double pi = 3.14159265358979323846;
    int64_t W, T;
    double f = 1.0, progress;
    if (!d || !lr) return sft__fail(SFT_ERR_ARG, "schedule: NULL argument");
    W = d->warmup_steps; T = d->total_steps;
    if (W < 0 || T < 0 || step < 0) return sft__fail(SFT_ERR_ARG, "schedule: warmup %lld, total %lld, step %lld", (long long)W, (long long)T, (long long)step);
    progress = (double)(step - W) / (double)(T - W > 1 ? T - W : 1);
    switch (d->type) {
    case SFT_SCHEDULE_LINEAR:
        f = step < W ? sft__warmup(step, W) : fmax(0.0, (double)(T - step) / (double)(T - W > 1 ? T - W : 1));
        break;
    case SFT_SCHEDULE_COSINE:
        f = step < W ? sft__warmup(step, W) : fmax(0.0, 0.5 * (1.0 + cos(pi * (d->num_cycles ? d->num_cycles : 0.5) * 2.0 * progress)));
        break;
    case SFT_SCHEDULE_COSINE_WITH_RESTARTS: {
        double c = d->num_cycles ? d->num_cycles : 1.0;
        if (step < W) f = sft__warmup(step, W);
        else if (progress >= 1.0) f = 0.0;
        else f = fmax(0.0, 0.5 * (1.0 + cos(pi * fmod(c * progress, 1.0))));
        break;
    }
    case SFT_SCHEDULE_POLYNOMIAL: {
        double lr_end = d->lr_end ? d->lr_end : 1e-7, power = d->power ? d->power : 1.0;
        if (!(base_lr > lr_end)) return sft__fail(SFT_ERR_ARG, "schedule: lr_end (%g) must be smaller than the learning rate (%g)", lr_end, base_lr);
        if (step < W) f = sft__warmup(step, W);
        else if (step > T) f = lr_end / base_lr;
        else f = ((base_lr - lr_end) * pow(1.0 - (double)(step - W) / (double)(T - W), power) + lr_end) / base_lr;
        break;
    }
    case SFT_SCHEDULE_CONSTANT: f = 1.0; break;
    case SFT_SCHEDULE_CONSTANT_WITH_WARMUP: f = step < W ? sft__warmup(step, W) : 1.0; break;
    case SFT_SCHEDULE_INVERSE_SQRT: {   /* timescale: warmup_steps, else 10000 (get_scheduler passes no kwargs here) */
        double ts = W ? (double)W : 10000.0;
        f = step < W ? sft__warmup(step, W) : 1.0 / sqrt(((double)step + (ts - (double)W)) / ts);
        break;
    }
    case SFT_SCHEDULE_COSINE_WITH_MIN_LR: {
        double rate = d->min_lr ? d->min_lr / base_lr : d->min_lr_rate;
        if (!d->min_lr && !d->min_lr_rate) return sft__fail(SFT_ERR_ARG, "schedule: cosine_with_min_lr needs min_lr or min_lr_rate");
        if (step < W) f = sft__warmup(step, W);
        else {
            f = 0.5 * (1.0 + cos(pi * (d->num_cycles ? d->num_cycles : 0.5) * 2.0 * progress));
            f = fmax(0.0, f * (1.0 - rate) + rate);
        }
        break;
    }
    case SFT_SCHEDULE_COSINE_WARMUP_WITH_MIN_LR: {   /* counts steps from 1 */
        double rate = d->min_lr ? d->min_lr / base_lr : d->min_lr_rate, r = d->warmup_lr_rate;
        if (!d->min_lr && !d->min_lr_rate) return sft__fail(SFT_ERR_ARG, "schedule: cosine_warmup_with_min_lr needs min_lr or min_lr_rate");
        if (step < W) f = r ? r + (1.0 - r) * (double)step / (double)(W - 1 > 1 ? W - 1 : 1) : ((double)step + 1.0) / (double)(W > 1 ? W : 1);
        else {
            double p = ((double)(step - W) + 1.0) / (double)(T - W > 1 ? T - W : 1);
            f = 0.5 * (1.0 + cos(pi * (d->num_cycles ? d->num_cycles : 0.5) * 2.0 * p));
            f = fmax(0.0, f * (1.0 - rate) + rate);
        }
        break;
    }
    case SFT_SCHEDULE_WARMUP_STABLE_DECAY: {
        int64_t S = d->num_stable_steps, D = d->num_decay_steps;
        if (step < W) {
            double p = sft__warmup(step, W);
            f = d->warmup_type == SFT_CURVE_COSINE ? 0.5 * (1.0 - cos(pi * p)) : d->warmup_type == SFT_CURVE_1_SQRT ? 1.0 - sqrt(1.0 - p) : p;
            f = fmax(0.0, f * (1.0 - d->min_lr_ratio) + d->min_lr_ratio);
        } else if (step < W + S) f = 1.0;
        else if (step < W + S + D) {
            double p = (double)(step - W - S) / (double)(D > 1 ? D : 1);
            f = d->decay_type == SFT_CURVE_LINEAR ? 1.0 - p : d->decay_type == SFT_CURVE_1_SQRT ? 1.0 - sqrt(p)
              : 0.5 * (1.0 + cos(pi * (d->num_cycles ? d->num_cycles : 0.5) * 2.0 * p));
            f = fmax(0.0, f * (1.0 - d->min_lr_ratio) + d->min_lr_ratio);
        } else f = d->min_lr_ratio;
        break;
    }
    default:
        return sft__fail(SFT_ERR_ARG, "schedule: type %d has no per-step formula (reduce_lr_on_plateau follows metrics)", (int)d->type);
    }
    *lr = base_lr * f;
    return SFT_OK;
}

SFTDEF double sft_plateau_step(sft_plateau *p, const sft_schedule_desc *d, double metric) {
    if (!p) return 0.0;
    double factor = d && d->factor ? d->factor : 0.1, threshold = d && d->threshold ? d->threshold : 1e-4;
    int patience = d && d->patience < 0 ? 0 : d && d->patience ? d->patience : 10;
    if (!p->started) { p->best = INFINITY; p->bad = 0; p->started = 1; }
    if (metric < p->best * (1.0 - threshold)) { p->best = metric; p->bad = 0; }
    else p->bad++;
    if (p->bad > patience) {
        double nl = p->lr * factor;
        if (p->lr - nl > 1e-8) p->lr = nl;
        p->bad = 0;
    }
    return p->lr;
}

/* ============================================================================
   === trainer: the loop */

struct sft_trainer {
    sft_context      *ctx;
    sft_model        *model;
    sft_dataset      *train;
    sft_train_config  cfg;
    sft_optimizer    *opt;
    sft_schedule_desc sched;
    int64_t           rows, micro_per_epoch, updates_per_epoch, max_steps;
    int64_t           global_step, epoch, micro;      /* next micro-batch of the epoch */
    int64_t           num_tokens, steps_since_log, last_logged;
    double            loss_since_log, total_loss, acc_sum, ent_sum;
    int64_t           acc_tokens;
    double            last_loss, last_grad_norm, last_lr, start_time;
    sft_dataset      *eval;
    int               eval_split, started;
    sft_plateau       plateau;          /* reduce_lr_on_plateau: fed by each evaluation */
    double            flos_params, total_flos;
    sft__vec          history;          /* every log entry (trainer_state.json's log_history) */
    int64_t           best_step, last_saved;
    double            best_metric;
    char              best_ckpt[4096];  /* best_model_checkpoint, "" if none        */
    int               cancel;           /* atomic: stop at the next step boundary    */
};

/* from "trainer: checkpoints" below */
static sft_status sft__mkdirs(const char *dir);
static void       sft__track_best(sft_trainer *tr, const sft_log_entry *e);
static double     sft__metric_of(const sft_trainer *tr, const sft_log_entry *e);
static void       sft__keep_only_best(sft_trainer *tr);
static sft_status sft__resume(sft_trainer *tr);
static sft_status sft__weights_read(sft_trainer *tr, const char *dir);

SFTDEF sft_optimizer *sft_trainer_optimizer(sft_trainer *tr) { return tr ? tr->opt : NULL; }

SFTDEF void sft_trainer_destroy(sft_trainer *tr) {
    if (!tr) return;
    sft_optimizer_destroy(tr->opt);
    sft__free(tr->ctx, tr->history.p);
    sft__free(tr->ctx, tr);
}

/* sft__save_settings: the checkpoint settings, with transformers' rules */
static sft_status sft__save_settings(const sft_train_config *c) {
    static const char *const metrics[] = {"loss", "eval_loss", "mean_token_accuracy", "eval_mean_token_accuracy", "entropy", "eval_entropy"};
    size_t i;
    if (c->save_steps < 0 || c->save_total_limit < 0)
        return sft__fail(SFT_ERR_ARG, "train: save_steps %d, save_total_limit %d", c->save_steps, c->save_total_limit);
    if ((c->save_steps || c->save_each_epoch || c->load_best_model_at_end) && !c->output_dir)
        return sft__fail(SFT_ERR_ARG, "train: save_steps / save_each_epoch / load_best_model_at_end need output_dir");
    if (c->output_dir && (strlen(c->output_dir) == 0 || strlen(c->output_dir) > 3500))
        return sft__fail(SFT_ERR_ARG, "train: output_dir is empty or longer than 3500 bytes");
    if (c->metric_for_best_model) {
        for (i = 0; i < sizeof metrics / sizeof *metrics && strcmp(c->metric_for_best_model, metrics[i]) != 0; i++) {}
        if (i == sizeof metrics / sizeof *metrics)
            return sft__fail(SFT_ERR_ARG, "train: metric_for_best_model \"%s\" is not one of loss, mean_token_accuracy, entropy "
                             "(eval_ prefix optional)", c->metric_for_best_model);
        if (i >= 2 && !c->token_metrics)
            return sft__fail(SFT_ERR_ARG, "train: metric_for_best_model \"%s\" needs token_metrics", c->metric_for_best_model);
    }
    if (c->load_best_model_at_end) {
        if (!c->eval_steps && !c->eval_each_epoch)
            return sft__fail(SFT_ERR_ARG, "train: load_best_model_at_end needs an evaluation strategy (eval_steps or eval_each_epoch)");
        if (!c->eval_steps != !c->save_steps || !c->eval_each_epoch != !c->save_each_epoch)
            return sft__fail(SFT_ERR_ARG, "train: load_best_model_at_end requires the save and eval strategy to match (save_steps with "
                             "eval_steps, save_each_epoch with eval_each_epoch)");
        if (c->save_steps && c->save_steps % c->eval_steps)
            return sft__fail(SFT_ERR_ARG, "train: load_best_model_at_end requires save_steps (%d) to be a multiple of eval_steps (%d)",
                             c->save_steps, c->eval_steps);
    }
    return SFT_OK;
}

/* sft__train_defaults: transformers/TRL defaults for zero fields, and checks */
static sft_status sft__train_defaults(sft_train_config *c) {
    if (c->num_train_epochs == 0.0) c->num_train_epochs = 3.0;
    if (c->per_device_train_batch_size == 0) c->per_device_train_batch_size = 8;
    if (c->gradient_accumulation_steps == 0) c->gradient_accumulation_steps = 1;
    if (c->learning_rate == 0.0) c->learning_rate = 2e-5;
    if (c->max_grad_norm == 0.0) c->max_grad_norm = 1.0;
    if (c->logging_steps == 0) c->logging_steps = 10;
    if (c->seed == 0) c->seed = 42;
    if (c->per_device_train_batch_size < 0) return sft__fail(SFT_ERR_ARG, "train: per_device_train_batch_size %d", c->per_device_train_batch_size);
    if (c->gradient_accumulation_steps < 0) return sft__fail(SFT_ERR_ARG, "train: gradient_accumulation_steps %d", c->gradient_accumulation_steps);
    if (!(c->learning_rate > 0.0)) return sft__fail(SFT_ERR_ARG, "train: learning_rate %g", c->learning_rate);
    if ((!(c->num_train_epochs > 0.0) && c->max_steps <= 0) || !(c->num_train_epochs < 1e9))
        return sft__fail(SFT_ERR_ARG, "train: num_train_epochs %g (want a positive number below 1e9)", c->num_train_epochs);
    if (c->max_steps < 0) return sft__fail(SFT_ERR_ARG, "train: max_steps %lld", (long long)c->max_steps);
    if (c->warmup_steps < 0 || !(c->warmup_ratio >= 0.0 && c->warmup_ratio <= 1.0))
        return sft__fail(SFT_ERR_ARG, "train: warmup_steps %lld, warmup_ratio %g", (long long)c->warmup_steps, c->warmup_ratio);
    if ((int)c->lr_scheduler_type < 0 || c->lr_scheduler_type >= SFT_SCHEDULE_COUNT)
        return sft__fail(SFT_ERR_ARG, "train: lr_scheduler_type %d does not exist", (int)c->lr_scheduler_type);
    if (c->lr_scheduler_type == SFT_SCHEDULE_REDUCE_ON_PLATEAU && !c->eval_steps && !c->eval_each_epoch)
        return sft__fail(SFT_ERR_ARG, "train: lr_scheduler_type reduce_lr_on_plateau needs an evaluation strategy (eval_steps or eval_each_epoch)");
    if ((int)c->optim < 0 || c->optim > SFT_OPTIM_ADAMW_8BIT) return sft__fail(SFT_ERR_ARG, "train: optim %d does not exist", (int)c->optim);
    if (c->logging_steps < 0) return sft__fail(SFT_ERR_ARG, "train: logging_steps %d", c->logging_steps);
    if (c->per_device_eval_batch_size == 0) c->per_device_eval_batch_size = 8;
    if (c->eval_steps < 0 || c->per_device_eval_batch_size < 0)
        return sft__fail(SFT_ERR_ARG, "train: eval_steps %d, per_device_eval_batch_size %d", c->eval_steps, c->per_device_eval_batch_size);
    if (!(c->neftune_noise_alpha >= 0.0f && c->neftune_noise_alpha < INFINITY))
        return sft__fail(SFT_ERR_ARG, "train: neftune_noise_alpha %g", c->neftune_noise_alpha);
    if (!(c->label_smoothing_factor >= 0.0f && c->label_smoothing_factor < 1.0f))
        return sft__fail(SFT_ERR_ARG, "train: label_smoothing_factor %g", c->label_smoothing_factor);
    return sft__save_settings(c);
}

SFTDEF sft_status sft_optim_from_name(const char *name, sft_optim *out) {
    static const char *const torch_names[] = {"adamw_torch", "adamw_torch_fused"};
    static const char *const bnb_names[] = {"adamw_bnb_8bit", "adamw_8bit", "paged_adamw_8bit"};
    size_t i;
    if (!out) return sft__fail(SFT_ERR_ARG, "sft_optim_from_name: NULL out");
    for (i = 0; name && i < sizeof torch_names / sizeof *torch_names; i++)
        if (strcmp(name, torch_names[i]) == 0) { *out = SFT_OPTIM_ADAMW_TORCH; return SFT_OK; }
    for (i = 0; name && i < sizeof bnb_names / sizeof *bnb_names; i++)
        if (strcmp(name, bnb_names[i]) == 0) { *out = SFT_OPTIM_ADAMW_8BIT; return SFT_OK; }
    return sft__fail(SFT_ERR_ARG, "optim \"%s\" is not one of adamw_torch, adamw_torch_fused, adamw_bnb_8bit, adamw_8bit, "
                     "paged_adamw_8bit", name ? name : "(null)");
}

static sft_status sft__push_param(sft_model *m, sft__vec *params, sft__vec *no_decay, sft_tensor *t, int decay) {
    unsigned char nd = (unsigned char)!decay;
    SFT__TRY(sft__vec_push(m->ctx, params, &t, 1));
    return sft__vec_push(m->ctx, no_decay, &nd, 1);
}

/* sft__full_params: every weight of a dense f32 model, made trainable; weight
   decay skips biases and norm weights (transformers' get_decay_parameter_names) */
static sft_status sft__full_params(sft_model *m, sft__vec *params, sft__vec *no_decay) {
    int layer, p;
    for (layer = 0; layer < m->cfg.num_hidden_layers; layer++)
        for (p = 0; p < SFT__N_PROJ; p++) {
            const sft_linear *l = m->blocks[layer].proj[p];
            if (l->n_ad) return sft__fail(SFT_ERR_STATE, "train: full_finetuning on a model with adapters (layer %d); train one or the other", layer);
            if (!l->weight || l->weight->dtype != SFT_F32)
                return sft__fail(SFT_ERR_DTYPE, "train: full_finetuning needs f32 weights; layer %d has a %s base (load the model "
                                 "unquantized in float32)", layer, l->qweight ? "4-bit" : sft_dtype_name(l->weight->dtype));
        }
    if (m->embed->dtype != SFT_F32 || m->norm->dtype != SFT_F32 || m->lm_head->dtype != SFT_F32)
        return sft__fail(SFT_ERR_DTYPE, "train: full_finetuning needs f32 embeddings, norm and lm_head");
    SFT__TRY(sft__push_param(m, params, no_decay, m->embed, 1));
    for (layer = 0; layer < m->cfg.num_hidden_layers; layer++) {
        sft__block *b = &m->blocks[layer];
        SFT__TRY(sft__push_param(m, params, no_decay, b->attn_norm, 0));
        SFT__TRY(sft__push_param(m, params, no_decay, b->mlp_norm, 0));
        for (p = 0; p < SFT__N_PROJ; p++) {
            SFT__TRY(sft__push_param(m, params, no_decay, b->proj[p]->weight, 1));
            if (b->proj[p]->bias) SFT__TRY(sft__push_param(m, params, no_decay, b->proj[p]->bias, 0));
        }
    }
    SFT__TRY(sft__push_param(m, params, no_decay, m->norm, 0));
    if (m->lm_head != m->embed) SFT__TRY(sft__push_param(m, params, no_decay, m->lm_head, 1));
    for (p = 0; p < (int)params->len; p++) sft_tensor_set_requires_grad(((sft_tensor **)params->p)[p], 1);
    return SFT_OK;
}

/* sft__flos_params: the parameter count transformers' floating_point_ops uses
   (num_parameters(exclude_embeddings=True)): every weight but the input
   embeddings, a 4-bit weight by its values, adapters included */
static int64_t sft__flos_params(const sft_model *m) {
    int64_t n = sft_tensor_numel(m->norm) + (m->lm_head != m->embed ? sft_tensor_numel(m->lm_head) : 0);
    int layer, p, i;
    for (layer = 0; layer < m->cfg.num_hidden_layers; layer++) {
        const sft__block *b = &m->blocks[layer];
        n += sft_tensor_numel(b->attn_norm) + sft_tensor_numel(b->mlp_norm);
        for (p = 0; p < SFT__N_PROJ; p++) {
            const sft_linear *l = b->proj[p];
            n += l->in * l->out + (l->bias ? l->out : 0);
            for (i = 0; i < l->n_ad; i++)
                n += sft_tensor_numel(l->ad[i].A) + sft_tensor_numel(l->ad[i].B) + (l->ad[i].m ? sft_tensor_numel(l->ad[i].m) : 0);
        }
    }
    return n;
}

/* the model's trainable tensors, in layer and projection order */
static sft_status sft__trainable(sft_model *m, sft__vec *params, sft__vec *no_decay) {
    int layer, p, i;
    for (layer = 0; layer < m->cfg.num_hidden_layers; layer++)
        for (p = 0; p < SFT__N_PROJ; p++) {
            const sft_linear *l = m->blocks[layer].proj[p];
            for (i = 0; i < l->n_ad; i++) {
                sft_tensor *t[3];
                unsigned char nd[3] = {0, 0, 1};          /* no weight decay on a DoRA magnitude */
                int k;
                t[0] = l->ad[i].A; t[1] = l->ad[i].B; t[2] = l->ad[i].m;
                for (k = 0; k < 3; k++) {
                    if (!t[k] || !t[k]->requires_grad) continue;
                    SFT__TRY(sft__vec_push(m->ctx, params, &t[k], 1));
                    SFT__TRY(sft__vec_push(m->ctx, no_decay, &nd[k], 1));
                }
            }
        }
    return SFT_OK;
}

SFTDEF sft_status sft_trainer_create(sft_model *model, sft_dataset *train, const sft_train_config *config, sft_trainer **out) {
    sft_trainer *tr;
    sft__vec params, nd;
    sft_adamw_desc ad;
    sft_status s;
    if (out) *out = NULL;
    if (!model || !train || !out) return sft__fail(SFT_ERR_ARG, "sft_trainer_create: NULL argument");
    tr = (sft_trainer *)sft__calloc(model->ctx, 1, sizeof *tr);
    if (!tr) return sft__fail(SFT_ERR_NOMEM, "trainer");
    tr->ctx = model->ctx; tr->model = model; tr->train = train;
    if (config) tr->cfg = *config;
    s = sft__train_defaults(&tr->cfg);
    tr->rows = sft_dataset_rows(train, 0);
    tr->micro_per_epoch = (tr->rows + tr->cfg.per_device_train_batch_size - 1) / tr->cfg.per_device_train_batch_size;
    tr->updates_per_epoch = (tr->micro_per_epoch + tr->cfg.gradient_accumulation_steps - 1) / tr->cfg.gradient_accumulation_steps;
    if (s == SFT_OK && tr->updates_per_epoch < 1) s = sft__fail(SFT_ERR_ARG, "train: the dataset has no rows");
    tr->eval = tr->cfg.eval_dataset ? tr->cfg.eval_dataset : train;
    tr->eval_split = tr->cfg.eval_dataset ? 0 : 1;
    if (s == SFT_OK && (tr->cfg.eval_steps || tr->cfg.eval_each_epoch || tr->cfg.eval_on_start) && sft_dataset_rows(tr->eval, tr->eval_split) == 0)
        s = sft__fail(SFT_ERR_ARG, "train: evaluation is asked for (eval_steps / eval_each_epoch / eval_on_start) but there is no eval set");
    tr->max_steps = tr->cfg.max_steps > 0 ? tr->cfg.max_steps : (int64_t)ceil(tr->cfg.num_train_epochs * (double)tr->updates_per_epoch);
    tr->sched = tr->cfg.lr_scheduler_kwargs;
    tr->sched.type = tr->cfg.lr_scheduler_type;
    tr->sched.total_steps = tr->max_steps;
    tr->sched.warmup_steps = tr->cfg.warmup_steps > 0 ? tr->cfg.warmup_steps : (int64_t)ceil(tr->cfg.warmup_ratio * (double)tr->max_steps);
    memset(&params, 0, sizeof params); memset(&nd, 0, sizeof nd);
    params.elem = sizeof(sft_tensor *); nd.elem = 1;
    if (s == SFT_OK) s = tr->cfg.full_finetuning ? sft__full_params(model, &params, &nd) : sft__trainable(model, &params, &nd);
    if (s == SFT_OK && tr->cfg.prompt_embeddings) {
        unsigned char zero = 0;
        sft_tensor *pe = tr->cfg.prompt_embeddings;
        if (pe->dtype != SFT_F32 || pe->ndim != 2 || pe->shape[1] != model->cfg.hidden_size)
            s = sft__fail(SFT_ERR_SHAPE, "train: prompt_embeddings must be f32 [P, %d]", model->cfg.hidden_size);
        else if (pe->device != model->device)
            s = sft__fail(SFT_ERR_DEVICE, "train: prompt_embeddings must be on the model's device (sft_tensor_to_device)");
        else {
            sft_tensor_set_requires_grad(pe, 1);
            s = sft__vec_push(model->ctx, &params, &pe, 1);
            if (s == SFT_OK) s = sft__vec_push(model->ctx, &nd, &zero, 1);
        }
    }
    if (s == SFT_OK && params.len == 0)
        s = sft__fail(SFT_ERR_STATE, "train: the model has nothing to train (add an adapter or give prompt_embeddings)");
    memset(&ad, 0, sizeof ad);
    ad.lr = tr->cfg.learning_rate; ad.beta1 = tr->cfg.adam_beta1; ad.beta2 = tr->cfg.adam_beta2; ad.eps = tr->cfg.adam_epsilon;
    ad.weight_decay = tr->cfg.weight_decay;
    ad.eight_bit = tr->cfg.optim == SFT_OPTIM_ADAMW_8BIT;
    ad.min_8bit_size = tr->cfg.optim_min_8bit_size;
    tr->plateau.lr = tr->cfg.learning_rate;
    tr->flos_params = (double)sft__flos_params(model);
    tr->history.elem = sizeof(sft_log_entry);
    if (s == SFT_OK && tr->cfg.output_dir) s = sft__mkdirs(tr->cfg.output_dir);
    if (s == SFT_OK) s = sft_optimizer_create(model->ctx, (sft_tensor *const *)params.p, (int)params.len, (const unsigned char *)nd.p, &ad, &tr->opt);
    sft__free(model->ctx, params.p); sft__free(model->ctx, nd.p);
    if (s == SFT_OK && tr->cfg.resume_from_checkpoint) s = sft__resume(tr);
    if (s != SFT_OK) { sft_trainer_destroy(tr); return s; }
    tr->start_time = sft__seconds();
    *out = tr;
    return SFT_OK;
}

/* sft__trainer_inputs: a dataset batch as the model's inputs: packed rows by
   sequence ids, padded ones by their mask; with prompt tuning the virtual tokens
   go in front (PeftModelForCausalLM) and b->labels becomes the extended labels */
static sft_status sft__trainer_inputs(sft_trainer *tr, const sft_dataset *ds, sft_batch *b, sft_model_batch *mb) {
    sft_tensor *emb;
    sft_prompt_batch pb;
    memset(mb, 0, sizeof *mb);
    mb->input_ids = b->input_ids; mb->labels = b->labels; mb->positions = b->positions;
    if (ds->desc.packing || ds->desc.padding_free) mb->seq_ids = b->seq_ids;
    else mb->attention_mask = b->attention_mask;
    if (!tr->cfg.prompt_embeddings) return SFT_OK;
    if (ds->desc.packing || ds->desc.padding_free)
        return sft__fail(SFT_ERR_UNSUPPORTED, "train: prompt tuning with packed or padding-free batches");
    SFT__TRY(sft_model_embed(tr->model, b->input_ids, &emb));
    SFT__TRY(sft_prompt_prepend(tr->ctx, tr->cfg.prompt_embeddings, emb, b->attention_mask, b->labels, &pb));
    memset(mb, 0, sizeof *mb);
    mb->inputs_embeds = pb.embeds; mb->attention_mask = pb.attention_mask; mb->labels = pb.labels; mb->positions = pb.positions;
    b->labels = pb.labels;
    return SFT_OK;
}

/* sft__metrics_line: a log entry as one JSON line in metrics_path (TRL's names) */
static void sft__metrics_line(sft_trainer *tr, const sft_log_entry *e) {
    sft_json_writer w;
    char *text = NULL;
    size_t len = 0;
    FILE *f;
    const char *pre = e->is_eval ? "eval_" : "";
    char key[64];
    if (!tr->cfg.metrics_path) return;
    memset(&w, 0, sizeof w);
    w.ctx = tr->ctx; w.allow_nonfinite = 1;
    sft_json_write_object_begin(&w);
    snprintf(key, sizeof key, "%sloss", pre); sft_json_write_key(&w, key); sft_json_write_number(&w, e->loss);
    if (!e->is_eval) {
        sft_json_write_key(&w, "grad_norm"); sft_json_write_number(&w, e->grad_norm);
        sft_json_write_key(&w, "learning_rate"); sft_json_write_number(&w, e->learning_rate);
        sft_json_write_key(&w, "num_tokens"); sft_json_write_int(&w, e->num_tokens);
    }
    if (e->mean_token_accuracy == e->mean_token_accuracy) {
        snprintf(key, sizeof key, "%smean_token_accuracy", pre); sft_json_write_key(&w, key); sft_json_write_number(&w, e->mean_token_accuracy);
        snprintf(key, sizeof key, "%sentropy", pre); sft_json_write_key(&w, key); sft_json_write_number(&w, e->entropy);
    }
    sft_json_write_key(&w, "epoch"); sft_json_write_number(&w, e->epoch);
    sft_json_write_key(&w, "step"); sft_json_write_int(&w, e->global_step);
    sft_json_write_object_end(&w);
    if (sft_json_writer_finish(&w, &text, &len) != SFT_OK) { sft_clear_error(); return; }
    f = fopen(tr->cfg.metrics_path, "ab");
    if (f) { fwrite(text, 1, len, f); fputc('\n', f); fclose(f); }
    else sft__log(tr->ctx, SFT_LOG_WARN, "train: cannot append to %s: %s", tr->cfg.metrics_path, strerror(errno));
    sft__free(tr->ctx, text);
}

static void sft__emit(sft_trainer *tr, const sft_log_entry *e) {
    if (sft__vec_push(tr->ctx, &tr->history, e, 1) != SFT_OK)
        sft__log(tr->ctx, SFT_LOG_WARN, "train: the log history could not grow (out of memory)");
    if (tr->cfg.on_log) tr->cfg.on_log(e, tr->cfg.user);
    sft__metrics_line(tr, e);
}

/* sft__evaluate: the eval set in order, without gradients: eval_loss is the
   batches' mean losses weighted by their rows (transformers repeats each batch's
   loss batch-size times); accuracy and entropy as in training. */
static sft_status sft__evaluate(sft_trainer *tr, sft_log_entry *entry, int step_scheduler) {
    int64_t rows = sft_dataset_rows(tr->eval, tr->eval_split), first, bs = tr->cfg.per_device_eval_batch_size, n = 0;
    double loss_sum = 0.0, acc = 0.0, ent = 0.0;
    int64_t batches = 0;
    int was = sft_grad_enabled_set(tr->ctx, 0);
    sft_log_entry e;
    sft_status s = SFT_OK;
    for (first = 0; s == SFT_OK && first < rows; first += bs) {
        sft_batch b;
        sft_model_batch mb;
        sft_model_run run;
        sft_model_output out;
        float lv = 0.0f;
        sft_step_begin(tr->ctx);
        s = sft_dataset_batch(tr->eval, tr->eval_split, 0, 0, first, bs, &b);
        if (s != SFT_OK) break;
        memset(&run, 0, sizeof run);
        s = sft__trainer_inputs(tr, tr->eval, &b, &mb);
        if (s != SFT_OK) break;
        run.token_metrics = tr->cfg.token_metrics;
        s = sft_model_forward(tr->model, &mb, &run, &out);
        if (s == SFT_OK) s = sft__scalar(out.loss, &lv);
        if (s == SFT_OK && out.logits) s = sft__on_device(tr->ctx, out.logits, SFT_DEVICE_CPU, &out.logits);
        if (s != SFT_OK) break;
        loss_sum += (double)lv * (double)b.n_examples;
        n += b.n_examples;
        if (tr->cfg.token_metrics) {
            acc += out.metric_tokens ? out.metric_correct / (double)out.metric_tokens : 0.0;
            ent += out.metric_tokens ? out.metric_entropy / (double)out.metric_tokens : 0.0;
            batches++;
        }
    }
    sft_grad_enabled_set(tr->ctx, was);
    sft_step_begin(tr->ctx);
    SFT__TRY(s);
    memset(&e, 0, sizeof e);
    e.is_eval = 1; e.global_step = tr->global_step;
    e.epoch = (double)tr->epoch + (double)tr->micro / (double)tr->micro_per_epoch;
    e.loss = n ? loss_sum / (double)n : NAN;
    e.mean_token_accuracy = batches ? acc / (double)batches : NAN;
    e.entropy = batches ? ent / (double)batches : NAN;
    e.grad_norm = NAN; e.learning_rate = NAN; e.num_tokens = tr->num_tokens;
    sft__emit(tr, &e);
    /* transformers steps ReduceLROnPlateau here, with metric_for_best_model, and
       only here (not on eval_on_start, not on an evaluation asked for outside the loop) */
    if (step_scheduler && tr->sched.type == SFT_SCHEDULE_REDUCE_ON_PLATEAU) sft_plateau_step(&tr->plateau, &tr->sched, sft__metric_of(tr, &e));
    sft__track_best(tr, &e);
    if (tr->cfg.on_evaluate) tr->cfg.on_evaluate(&e, tr->cfg.user);
    if (entry) *entry = e;
    return SFT_OK;
}

/* sft__micro_loss: the micro-batch's loss as transformers forms it: the
   host's compute_loss on the logits; with label smoothing, LabelSmoother's
   mean over this micro-batch's targets (num_items_in_batch unused); otherwise
   the summed cross-entropy over the window's num_items_in_batch. */
static sft_status sft__micro_loss(sft_trainer *tr, sft_model_batch *mb, sft_model_run *run, sft_tensor *labels, int64_t items,
                                  sft_model_output *out) {
    if (tr->cfg.compute_loss) {
        sft_tensor *loss = NULL;
        mb->labels = NULL;
        run->want_logits = 1;
        SFT__TRY(sft_model_forward(tr->model, mb, run, out));
        SFT__TRY(sft__on_device(tr->ctx, labels, tr->model->device, &labels));   /* beside the logits */
        if (run->token_metrics) {       /* the model saw no labels: count from its logits */
            sft_tensor *shifted;
            SFT__TRY(sft_shift_labels(tr->ctx, labels, &shifted));
            SFT__TRY(sft__logit_metrics(tr->ctx, out->logits, shifted, out));
        }
        SFT__TRY(tr->cfg.compute_loss(tr->ctx, out->logits, labels, items, tr->cfg.user, &loss));
        if (!loss || sft_tensor_numel(loss) != 1 || loss->dtype != SFT_F32 || loss->device != tr->model->device)
            return sft__fail(SFT_ERR_ARG, "train: compute_loss must return one f32 value on the model's device as *loss");
        if (!loss->requires_grad)
            return sft__fail(SFT_ERR_ARG, "train: the loss compute_loss returned does not depend on the trained weights");
        out->loss = loss;
        return SFT_OK;
    }
    if (tr->cfg.label_smoothing_factor > 0.0f) run->loss.reduction = SFT_CE_MEAN;
    else if (items > 0) { run->loss.reduction = SFT_CE_SUM_DIV; run->loss.divisor = (float)items; }
    else run->loss.reduction = SFT_CE_SUM;         /* nothing to learn: a zero loss */
    run->loss.label_smoothing = tr->cfg.label_smoothing_factor;
    return sft_model_forward(tr->model, mb, run, out);
}

/* what a window adds to the trainer's running sums: kept apart until the
   window completes, so a dropped window (an error, a NaN stop) leaves no trace */
typedef struct sft__window { double loss, acc, ent, flos; int64_t metric_batches, tokens; } sft__window;

/* sft__train_micro: micro-batch k of the window: forward, the token metrics,
   the logged loss value (transformers' NaN/Inf filter: a NaN/Inf loss counts
   as the mean since the last log), backward, the token and flos counts. */
static sft_status sft__train_micro(sft_trainer *tr, sft_batch *b, int64_t k, int64_t items, sft__window *w) {
    sft_model_batch mb;
    sft_model_run run;
    sft_model_output out;
    int64_t t, am = 0;
    double l;
    float lf = 0.0f;
    memset(&run, 0, sizeof run);
    SFT__TRY(sft__trainer_inputs(tr, tr->train, b, &mb));
    run.training = 1;
    run.dropout_seed = sft_rng_key(tr->cfg.seed, 0x44726f70ull, (uint64_t)tr->global_step, (uint64_t)k);
    run.gradient_checkpointing = tr->cfg.gradient_checkpointing;
    run.token_metrics = tr->cfg.token_metrics;
    run.neftune_noise_alpha = tr->cfg.neftune_noise_alpha;
    run.neftune_seed = sft_rng_key(tr->cfg.seed, 0x4e4546ull, (uint64_t)tr->global_step, (uint64_t)k);
    SFT__TRY(sft__micro_loss(tr, &mb, &run, b->labels, items, &out));
    if (tr->cfg.token_metrics) {                   /* TRL: plain means of the micro-batches' values */
        w->acc += out.metric_tokens ? out.metric_correct / (double)out.metric_tokens : 0.0;
        w->ent += out.metric_tokens ? out.metric_entropy / (double)out.metric_tokens : 0.0;
        w->metric_batches++;
    }
    SFT__TRY(sft__scalar(out.loss, &lf));
    l = lf;
    if (!(fabs(l) < INFINITY)) {
        if (tr->cfg.stop_on_nonfinite_loss)
            return sft__fail(SFT_ERR_NUMERIC, "train: the loss of step %lld (micro-batch %lld) is %g; stopped (stop_on_nonfinite_loss)",
                             (long long)tr->global_step + 1, (long long)k, l);
        if (tr->cfg.logging_nan_inf_filter >= 0) l = (tr->loss_since_log + w->loss) / (double)(1 + tr->global_step - tr->last_logged);
    }
    SFT__TRY(sft_backward(tr->ctx, out.loss));
    for (t = 0; t < sft_tensor_numel(b->attention_mask); t++) am += ((const int32_t *)b->attention_mask->data)[t];
    w->tokens += am;                               /* TRL counts the attention mask */
    w->flos += 6.0 * (double)sft_tensor_numel(b->input_ids) * tr->flos_params;
    w->loss += l;
    return SFT_OK;
}

/* sft__trainer_step: sft_trainer_step with info always there */
static sft_status sft__trainer_step(sft_trainer *tr, sft_step_info *info) {
    int64_t window, first, k, items = 0;
    double loss = 0.0, lr, t_opt;
    sft__window w;
    memset(info, 0, sizeof *info);
    if (tr->global_step >= tr->max_steps || __atomic_load_n(&tr->cancel, __ATOMIC_ACQUIRE)) { sft_trainer_progress(tr, info); return SFT_OK; }
    if (!tr->started) {
        int64_t trainable = 0;
        int i;
        tr->started = 1;
        for (i = 0; i < tr->opt->n; i++) trainable += sft_tensor_numel(tr->opt->params[i]);
        sft__log(tr->ctx, SFT_LOG_INFO, "***** Running training ***** examples %lld, epochs %g, batch %d, accumulation %d, total "
                 "batch %d, optimization steps %lld, trainable parameters %lld", (long long)tr->rows, tr->cfg.num_train_epochs,
                 tr->cfg.per_device_train_batch_size, tr->cfg.gradient_accumulation_steps,
                 tr->cfg.per_device_train_batch_size * tr->cfg.gradient_accumulation_steps, (long long)tr->max_steps, (long long)trainable);
        if (tr->cfg.eval_on_start) SFT__TRY(sft__evaluate(tr, NULL, 0));
    }
    if (tr->micro >= tr->micro_per_epoch) { tr->epoch++; tr->micro = 0; }
    first = tr->micro;
    window = tr->micro_per_epoch - first < tr->cfg.gradient_accumulation_steps ? tr->micro_per_epoch - first : tr->cfg.gradient_accumulation_steps;
    /* num_items_in_batch: the window's trained tokens, counted before any forward */
    for (k = 0; k < window; k++) {
        sft_batch b;
        sft_step_begin(tr->ctx);
        SFT__TRY(sft_dataset_batch(tr->train, 0, tr->epoch, !tr->cfg.sequential, (first + k) * tr->cfg.per_device_train_batch_size,
                                   tr->cfg.per_device_train_batch_size, &b));
        items += b.trained_tokens;      /* transformers counts labels != -100 before the shift */
    }
    memset(&w, 0, sizeof w);
    for (k = 0; k < window; k++) {
        sft_batch b;
        sft_status st;
        sft_step_begin(tr->ctx);
        st = sft_dataset_batch(tr->train, 0, tr->epoch, !tr->cfg.sequential, (first + k) * tr->cfg.per_device_train_batch_size,
                               tr->cfg.per_device_train_batch_size, &b);
        if (st == SFT_OK) st = sft__train_micro(tr, &b, k, items, &w);
        if (st != SFT_OK) { sft_optimizer_zero_grad(tr->opt); return st; }    /* the window is dropped */
    }
    loss = w.loss;
    tr->loss_since_log += w.loss;
    tr->acc_sum += w.acc; tr->ent_sum += w.ent; tr->acc_tokens += w.metric_batches;
    tr->num_tokens += w.tokens; tr->total_flos += w.flos;
    tr->micro += window;
    t_opt = sft__seconds();
    tr->last_grad_norm = sft_optimizer_clip_grad_norm(tr->opt, tr->cfg.max_grad_norm > 0.0 ? tr->cfg.max_grad_norm : 0.0);
    if (tr->sched.type == SFT_SCHEDULE_REDUCE_ON_PLATEAU) lr = tr->plateau.lr;
    else SFT__TRY(sft_schedule_lr(&tr->sched, tr->cfg.learning_rate, tr->global_step, &lr));
    SFT__TRY(sft_optimizer_step(tr->opt, lr));
    sft_optimizer_zero_grad(tr->opt);
    if (tr->ctx->profiling) {
        sft__prof_add(tr->ctx, SFT__PROF_OPTIMIZER, 0, sft__seconds() - t_opt, 0.0);
        tr->ctx->prof_calls[SFT__PROF_OPTIMIZER]++;
    }
    tr->last_lr = lr;
    tr->global_step++;
    tr->steps_since_log++;
    tr->last_loss = loss;
    sft_trainer_progress(tr, info);
    info->num_items_in_batch = items; info->micro_batches = window;
    if (tr->global_step % tr->cfg.logging_steps == 0 || tr->global_step == tr->max_steps) {
        sft_log_entry e;
        e.global_step = tr->global_step;
        e.epoch = (double)tr->epoch + (double)tr->micro / (double)tr->micro_per_epoch;
        e.loss = tr->loss_since_log / (double)tr->steps_since_log;
        tr->total_loss += tr->loss_since_log;
        tr->last_logged = tr->global_step;
        e.grad_norm = tr->last_grad_norm; e.learning_rate = lr; e.num_tokens = tr->num_tokens;
        e.mean_token_accuracy = tr->acc_tokens ? tr->acc_sum / (double)tr->acc_tokens : NAN;
        e.entropy = tr->acc_tokens ? tr->ent_sum / (double)tr->acc_tokens : NAN;
        e.is_eval = 0;
        sft__emit(tr, &e);
        tr->loss_since_log = 0.0; tr->steps_since_log = 0; tr->acc_sum = tr->ent_sum = 0.0; tr->acc_tokens = 0;
    }
    /* per epoch: also when max_steps ends the run mid-epoch (transformers' on_epoch_end runs then too) */
    if ((tr->cfg.eval_steps && tr->global_step % tr->cfg.eval_steps == 0) ||
        (tr->cfg.eval_each_epoch && (tr->micro >= tr->micro_per_epoch || tr->global_step == tr->max_steps)))
        SFT__TRY(sft__evaluate(tr, NULL, 1));
    if (tr->cfg.output_dir && tr->last_saved != tr->global_step &&
        ((tr->cfg.save_steps && (tr->global_step % tr->cfg.save_steps == 0 || tr->global_step == tr->max_steps)) ||
         (tr->cfg.save_each_epoch && (tr->micro >= tr->micro_per_epoch || tr->global_step == tr->max_steps))))
        SFT__TRY(sft_trainer_save(tr));
    if (tr->cfg.on_step_end && tr->cfg.on_step_end(info, tr->cfg.user) && tr->global_step < tr->max_steps) sft_trainer_cancel(tr);
    return SFT_OK;
}

SFTDEF sft_status sft_trainer_step(sft_trainer *tr, sft_step_info *info) {
    sft_step_info own;
    sft_status s;
    if (info) memset(info, 0, sizeof *info);
    if (!tr) return sft__fail(SFT_ERR_ARG, "sft_trainer_step: NULL trainer");
    s = sft__trainer_step(tr, &own);
    if (info) *info = own;
    return s;
}

SFTDEF void sft_trainer_cancel(sft_trainer *tr) {
    if (tr) __atomic_store_n(&tr->cancel, 1, __ATOMIC_RELEASE);
}

SFTDEF void sft_trainer_progress(const sft_trainer *tr, sft_step_info *info) {
    if (!info) return;
    memset(info, 0, sizeof *info);
    if (!tr) return;
    info->global_step = tr->global_step; info->max_steps = tr->max_steps;
    info->epoch = (double)tr->epoch + (double)tr->micro / (double)tr->micro_per_epoch;
    info->loss = tr->last_loss; info->grad_norm = tr->last_grad_norm; info->learning_rate = tr->last_lr;
    info->cancelled = __atomic_load_n(&tr->cancel, __ATOMIC_ACQUIRE);
    info->done = tr->global_step >= tr->max_steps || info->cancelled;
}

SFTDEF sft_status sft_trainer_evaluate(sft_trainer *tr, sft_log_entry *entry) {
    if (!tr) return sft__fail(SFT_ERR_ARG, "sft_trainer_evaluate: NULL trainer");
    if (sft_dataset_rows(tr->eval, tr->eval_split) == 0) return sft__fail(SFT_ERR_STATE, "evaluate: there is no eval set");
    return sft__evaluate(tr, entry, 0);
}

SFTDEF sft_status sft_train(sft_model *model, sft_dataset *train, const sft_train_config *config, sft_train_output *out) {
    sft_trainer *tr = NULL;
    sft_step_info info;
    sft_status s;
    if (out) memset(out, 0, sizeof *out);
    SFT__TRY(sft_trainer_create(model, train, config, &tr));
    do s = sft_trainer_step(tr, &info);
    while (s == SFT_OK && !info.done);
    sft_trainer_progress(tr, &info);
    if (s == SFT_OK && info.cancelled && tr->cfg.output_dir && tr->last_saved != tr->global_step) s = sft_trainer_save(tr);
    if (s == SFT_OK && tr->cfg.load_best_model_at_end && tr->best_ckpt[0] && !info.cancelled) {
        sft__log(tr->ctx, SFT_LOG_INFO, "loading the best model from %s (%s %g)", tr->best_ckpt,
                 tr->cfg.metric_for_best_model ? tr->cfg.metric_for_best_model : "eval_loss", tr->best_metric);
        s = sft__weights_read(tr, tr->best_ckpt);
    }
    if (s == SFT_OK && !info.cancelled && tr->cfg.save_total_limit == 1) sft__keep_only_best(tr);
    if (s == SFT_OK && out) {
        out->cancelled = info.cancelled;
        double t = sft__seconds() - tr->start_time;
        out->global_step = tr->global_step;
        out->train_loss = tr->global_step ? (tr->total_loss + tr->loss_since_log) / (double)tr->global_step : 0.0;
        out->train_runtime = t;
        out->train_steps_per_second = t > 0 ? (double)tr->global_step / t : 0.0;
        out->train_samples_per_second = t > 0 ? (double)(tr->global_step * tr->cfg.per_device_train_batch_size * tr->cfg.gradient_accumulation_steps) / t : 0.0;
        out->total_flos = tr->total_flos;
    }
    sft_trainer_destroy(tr);
    return s;
}

/* ============================================================================
   === trainer: checkpoints, resume, the best model */

/* --- folders ----------------------------------------------------------------- */

/* sft__mkdirs: create dir and its missing parents */
static sft_status sft__mkdirs(const char *dir) {
    char buf[4096];
    size_t n = strlen(dir), i;
    if (n == 0 || n >= sizeof buf) return sft__fail(SFT_ERR_ARG, "output_dir: empty or too long");
    memcpy(buf, dir, n + 1);
    for (i = 1; i <= n; i++)
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return sft__fail(SFT_ERR_IO, "output_dir: cannot create %s: %s", buf, strerror(errno));
            buf[i] = c;
        }
    return SFT_OK;
}

/* sft__rmtree: remove a folder the trainer wrote (files and folders in it) */
static void sft__rmtree(const char *dir) {
    DIR *d;
    struct dirent *e;
    char path[4096];
    struct stat top;
    if (lstat(dir, &top) != 0) return;
    if (!S_ISDIR(top.st_mode)) { remove(dir); return; }   /* a file or a link: never what it points to */
    if (!(d = opendir(dir))) return;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) sft__rmtree(path);
        else remove(path);
    }
    closedir(d);
    rmdir(dir);
}

static int sft__is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* sft__checkpoints: the steps of output_dir's checkpoint-N folders, ascending */
static sft_status sft__checkpoints(sft_context *ctx, const char *dir, sft__vec *steps) {
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t i, j;
    steps->elem = sizeof(int64_t);
    if (!d) return SFT_OK;
    while ((e = readdir(d)) != NULL) {
        const char *p = e->d_name + 11;
        char path[4096];
        int64_t step = 0;
        if (strncmp(e->d_name, "checkpoint-", 11) != 0 || !*p) continue;
        while (*p >= '0' && *p <= '9' && step < ((int64_t)1 << 50)) step = step * 10 + (*p++ - '0');
        if (*p) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!sft__is_dir(path)) continue;
        if (sft__vec_push(ctx, steps, &step, 1) != SFT_OK) { closedir(d); return sft__fail(SFT_ERR_NOMEM, "checkpoints"); }
    }
    closedir(d);
    for (i = 1; i < steps->len; i++)           /* a handful: insertion sort */
        for (j = i; j > 0 && ((int64_t *)steps->p)[j - 1] > ((int64_t *)steps->p)[j]; j--) {
            int64_t t = ((int64_t *)steps->p)[j];
            ((int64_t *)steps->p)[j] = ((int64_t *)steps->p)[j - 1];
            ((int64_t *)steps->p)[j - 1] = t;
        }
    return SFT_OK;
}

static void sft__ckpt_path(const sft_trainer *tr, int64_t step, char *out, size_t cap) {
    snprintf(out, cap, "%s/checkpoint-%lld", tr->cfg.output_dir, (long long)step);
}

/* sft__write_text: a JSON writer's text to path (atomic) */
static sft_status sft__write_json(sft_context *ctx, sft_json_writer *w, const char *path) {
    char *text = NULL;
    size_t len = 0;
    sft_buf part[2];
    sft_status s;
    SFT__TRY(sft_json_writer_finish(w, &text, &len));
    part[0].data = text; part[0].len = len;
    part[1].data = "\n"; part[1].len = 1;
    s = sft_file_write_atomic(ctx, path, part, 2);
    sft__free(ctx, text);
    return s;
}

/* --- what the run trains ----------------------------------------------------- */

/* sft__adapter_names: the distinct adapter names on the model's projections */
static int sft__adapter_names(const sft_model *m, const char **names, int cap) {
    int layer, p, i, k, n = 0;
    for (layer = 0; layer < m->cfg.num_hidden_layers; layer++)
        for (p = 0; p < SFT__N_PROJ; p++) {
            const sft_linear *l = m->blocks[layer].proj[p];
            for (i = 0; i < l->n_ad; i++) {
                for (k = 0; k < n && strcmp(names[k], l->ad[i].name) != 0; k++) {}
                if (k == n && n < cap) names[n++] = l->ad[i].name;
            }
        }
    return n;
}

static const sft__adapter *sft__adapter_first(const sft_model *m, const char *name) {
    int layer, p, i;
    for (layer = 0; layer < m->cfg.num_hidden_layers; layer++)
        for (p = 0; p < SFT__N_PROJ; p++)
            if ((i = sft__lin_find(m->blocks[layer].proj[p], name)) >= 0) return &m->blocks[layer].proj[p]->ad[i];
    return NULL;
}

/* sft__run_fingerprint: the model's shape and what is trained, as one line a
   resume compares (a different model or LoRA config is refused with both lines) */
static void sft__run_fingerprint(const sft_trainer *tr, char *out, size_t cap) {
    const sft_model *m = tr->model;
    const sft_model_config *c = &m->cfg;
    const char *names[SFT__LINEAR_MAX_ADAPTERS];
    int n = sft__adapter_names(m, names, SFT__LINEAR_MAX_ADAPTERS), i;
    size_t len = (size_t)snprintf(out, cap, "model hidden %d layers %d heads %d/%d intermediate %d vocab %d; ", c->hidden_size,
                                  c->num_hidden_layers, c->num_attention_heads, c->num_key_value_heads, c->intermediate_size, c->vocab_size);
    if (tr->cfg.full_finetuning && len < cap) len += (size_t)snprintf(out + len, cap - len, "full fine-tuning; ");
    for (i = 0; i < n && len < cap; i++) {
        const sft__adapter *a = sft__adapter_first(m, names[i]);
        len += (size_t)snprintf(out + len, cap - len, "adapter %s r %d alpha %g dora %d rslora %d; ", names[i], a->desc.r,
                                (double)a->desc.alpha, a->m != NULL, a->desc.use_rslora);
    }
    if (tr->cfg.prompt_embeddings && len < cap)
        len += (size_t)snprintf(out + len, cap - len, "prompt tuning %lld tokens; ", (long long)tr->cfg.prompt_embeddings->shape[0]);
    if (len < cap) snprintf(out + len, cap - len, "%d trained tensors", sft_optimizer_count(tr->opt));
}

/* --- the weights ------------------------------------------------------------- */

static sft_status sft__prompt_save(sft_trainer *tr, const char *dir) {
    char path[4096];
    const char *mk = "format", *mv = "pt";
    sft_st_entry e;
    void *copy = NULL;
    sft_json_writer w;
    const sft_model_config *c = &tr->model->cfg;
    sft_status s;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return sft__fail(SFT_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    SFT__TRY(sft__path_join(path, sizeof path, dir, strlen(dir), "adapter_model.safetensors"));
    SFT__TRY(sft__st_entry_staged(tr->ctx, "prompt_embeddings", tr->cfg.prompt_embeddings, &e, &copy));
    s = sft_st_save(tr->ctx, path, &e, 1, &mk, &mv, 1);
    sft__free(tr->ctx, copy);
    SFT__TRY(s);
    memset(&w, 0, sizeof w);
    w.ctx = tr->ctx; w.indent = 2;
    sft_json_write_object_begin(&w);
    sft_json_write_key(&w, "base_model_name_or_path"); sft_json_write_string(&w, tr->model->dir);
    sft_json_write_key(&w, "inference_mode"); sft_json_write_bool(&w, 1);
    sft_json_write_key(&w, "num_attention_heads"); sft_json_write_int(&w, c->num_attention_heads);
    sft_json_write_key(&w, "num_layers"); sft_json_write_int(&w, c->num_hidden_layers);
    sft_json_write_key(&w, "num_transformer_submodules"); sft_json_write_int(&w, 1);
    sft_json_write_key(&w, "num_virtual_tokens"); sft_json_write_int(&w, tr->cfg.prompt_embeddings->shape[0]);
    sft_json_write_key(&w, "peft_type"); sft_json_write_string(&w, "PROMPT_TUNING");
    sft_json_write_key(&w, "prompt_tuning_init"); sft_json_write_string(&w, "RANDOM");
    sft_json_write_key(&w, "task_type"); sft_json_write_string(&w, "CAUSAL_LM");
    sft_json_write_key(&w, "token_dim"); sft_json_write_int(&w, c->hidden_size);
    sft_json_write_object_end(&w);
    SFT__TRY(sft__path_join(path, sizeof path, dir, strlen(dir), "adapter_config.json"));
    return sft__write_json(tr->ctx, &w, path);
}

/* sft__full_save: a transformers model folder: every weight, config.json copied */
static sft_status sft__full_save(sft_trainer *tr, const char *dir) {
    sft_st_entry *e;
    void **copies;
    char *keys, path[4096], *cfg = NULL;
    const char *mk = "format", *mv = "pt";
    char name[SFT_WEIGHT_NAME_MAX];
    sft_tensor *t;
    size_t len = 0;
    int i, n = 0, count;
    sft_status s = SFT_OK;
    sft_buf part;
    for (count = 0; sft_model_weight_at(tr->model, count, NULL, NULL); count++) {}
    e = (sft_st_entry *)sft__calloc(tr->ctx, (size_t)count + 1, sizeof *e);
    keys = (char *)sft__alloc(tr->ctx, (size_t)(count + 1) * SFT_WEIGHT_NAME_MAX);
    copies = (void **)sft__calloc(tr->ctx, (size_t)count + 1, sizeof *copies);   /* host copies of device weights */
    if (!e || !keys || !copies) {
        sft__free(tr->ctx, e); sft__free(tr->ctx, keys); sft__free(tr->ctx, copies);
        return sft__fail(SFT_ERR_NOMEM, "save: model weights");
    }
    for (i = 0; s == SFT_OK && sft_model_weight_at(tr->model, i, name, &t); i++) {
        if (!t) continue;
        memcpy(keys + (size_t)n * SFT_WEIGHT_NAME_MAX, name, SFT_WEIGHT_NAME_MAX);
        s = sft__st_entry_staged(tr->ctx, keys + (size_t)n * SFT_WEIGHT_NAME_MAX, t, &e[n], &copies[n]);
        n++;
    }
    if (s == SFT_OK) s = sft__path_join(path, sizeof path, dir, strlen(dir), "model.safetensors");
    if (s == SFT_OK) s = sft_st_save(tr->ctx, path, e, n, &mk, &mv, 1);
    while (n > 0) sft__free(tr->ctx, copies[--n]);
    sft__free(tr->ctx, keys);
    sft__free(tr->ctx, e);
    sft__free(tr->ctx, copies);
    SFT__TRY(s);
    SFT__TRY(sft__path_join(path, sizeof path, tr->model->dir, strlen(tr->model->dir), "config.json"));
    SFT__TRY(sft_file_read(tr->ctx, path, 0, &cfg, &len));
    part.data = cfg; part.len = len;
    s = sft__path_join(path, sizeof path, dir, strlen(dir), "config.json");
    if (s == SFT_OK) s = sft_file_write_atomic(tr->ctx, path, &part, 1);
    sft__free(tr->ctx, cfg);
    return s;
}

static sft_status sft__weights_save(sft_trainer *tr, const char *dir) {
    const char *names[SFT__LINEAR_MAX_ADAPTERS];
    char sub[4096];
    int n, i;
    if (tr->cfg.full_finetuning) return sft__full_save(tr, dir);
    n = sft__adapter_names(tr->model, names, SFT__LINEAR_MAX_ADAPTERS);
    for (i = 0; i < n; i++) {     /* PEFT: "default" at the top, others in a folder of their name */
        if (strcmp(names[i], "default") == 0) snprintf(sub, sizeof sub, "%s", dir);
        else SFT__TRY(sft__path_join(sub, sizeof sub, dir, strlen(dir), names[i]));
        SFT__TRY(sft_model_save_adapter(tr->model, names[i], sub));
    }
    if (tr->cfg.prompt_embeddings) {
        if (n) SFT__TRY(sft__path_join(sub, sizeof sub, dir, strlen(dir), "prompt_tuning"));
        else snprintf(sub, sizeof sub, "%s", dir);
        SFT__TRY(sft__prompt_save(tr, sub));
    }
    return SFT_OK;
}

/* sft__read_into: tensor key of a safetensors file into t (same shape, f32);
   with copy 0 it only checks that it would fit */
static sft_status sft__read_into(sft_context *ctx, const sft_st_file *f, const char *path, const char *key, sft_tensor *t, int copy) {
    const sft_st_tensor *e = sft_st_find(f, key);
    sft_tensor *v = NULL;
    sft_status s;
    if (!e) return sft__fail(SFT_ERR_NOT_FOUND, "%s: '%s' is missing", path, key);
    if (!copy) {
        int64_t n = 1;
        int d;
        for (d = 0; d < e->ndim; d++) n *= e->shape[d];
        if (e->dtype != SFT_F32 || n != sft_tensor_numel(t))
            return sft__fail(SFT_ERR_SHAPE, "%s: '%s' has %lld %s values, the run's tensor %lld f32 (a checkpoint of another run?)", path,
                             key, (long long)n, sft_dtype_name(e->dtype), (long long)sft_tensor_numel(t));
        return SFT_OK;
    }
    SFT__TRY(sft_st_load(ctx, f, key, &v));
    if (v->dtype != SFT_F32 || sft_tensor_numel(v) != sft_tensor_numel(t))
        s = sft__fail(SFT_ERR_SHAPE, "%s: '%s' has %lld %s values, the run's tensor %lld f32 (a checkpoint of another run?)", path, key,
                      (long long)sft_tensor_numel(v), sft_dtype_name(v->dtype), (long long)sft_tensor_numel(t));
    else s = sft__device_copy(t->data, t->device, v->data, SFT_DEVICE_CPU, sft_tensor_nbytes(t));
    sft_tensor_destroy(v);
    return s;
}

static sft_status sft__adapter_read(sft_trainer *tr, const char *name, const char *dir, int copy) {
    char path[4096], key[256];
    sft_st_file *f = NULL;
    sft_status s = SFT_OK;
    int layer, p, i, part;
    SFT__TRY(sft__path_join(path, sizeof path, dir, strlen(dir), "adapter_model.safetensors"));
    SFT__TRY(sft_st_open(tr->ctx, path, &f));
    for (layer = 0; s == SFT_OK && layer < tr->model->cfg.num_hidden_layers; layer++)
        for (p = 0; s == SFT_OK && p < SFT__N_PROJ; p++) {
            const sft__adapter *a;
            if ((i = sft__lin_find(tr->model->blocks[layer].proj[p], name)) < 0) continue;
            a = &tr->model->blocks[layer].proj[p]->ad[i];
            for (part = 0; s == SFT_OK && part < (a->m ? 3 : 2); part++) {
                sft__peft_key(key, sizeof key, layer, p, part == 0 ? "lora_A.weight" : part == 1 ? "lora_B.weight" : "lora_magnitude_vector");
                s = sft__read_into(tr->ctx, f, path, key, part == 0 ? a->A : part == 1 ? a->B : a->m, copy);
            }
        }
    sft_st_close(f);
    return s;
}

/* a pass of sft__weights_read: check everything (copy 0) or copy it (1) */
static sft_status sft__weights_pass(sft_trainer *tr, const char *dir, int copy) {
    const char *names[SFT__LINEAR_MAX_ADAPTERS];
    char sub[4096];
    int n, i;
    if (tr->cfg.full_finetuning) {
        sft_st_file *f = NULL;
        char name[SFT_WEIGHT_NAME_MAX];
        sft_tensor *t;
        sft_status s = SFT_OK;
        SFT__TRY(sft__path_join(sub, sizeof sub, dir, strlen(dir), "model.safetensors"));
        SFT__TRY(sft_st_open(tr->ctx, sub, &f));
        for (i = 0; s == SFT_OK && sft_model_weight_at(tr->model, i, name, &t); i++)
            if (t) s = sft__read_into(tr->ctx, f, sub, name, t, copy);
        sft_st_close(f);
        return s;
    }
    n = sft__adapter_names(tr->model, names, SFT__LINEAR_MAX_ADAPTERS);
    for (i = 0; i < n; i++) {
        if (strcmp(names[i], "default") == 0) snprintf(sub, sizeof sub, "%s", dir);
        else SFT__TRY(sft__path_join(sub, sizeof sub, dir, strlen(dir), names[i]));
        SFT__TRY(sft__adapter_read(tr, names[i], sub, copy));
    }
    if (tr->cfg.prompt_embeddings) {
        sft_st_file *f = NULL;
        sft_status s;
        snprintf(sub, sizeof sub, n ? "%s/prompt_tuning/adapter_model.safetensors" : "%s/adapter_model.safetensors", dir);
        SFT__TRY(sft_st_open(tr->ctx, sub, &f));
        s = sft__read_into(tr->ctx, f, sub, "prompt_embeddings", tr->cfg.prompt_embeddings, copy);
        sft_st_close(f);
        SFT__TRY(s);
    }
    return SFT_OK;
}

/* sft__weights_read: a checkpoint's weights into the run's tensors, all checked
   before any is copied (a bad checkpoint leaves the model as it was) */
static sft_status sft__weights_read(sft_trainer *tr, const char *dir) {
    SFT__TRY(sft__weights_pass(tr, dir, 0));
    return sft__weights_pass(tr, dir, 1);
}

/* --- the optimizer ------------------------------------------------------------ */

/* optimizer.safetensors: per parameter i "i.exp_avg", "i.exp_avg_sq" (f32) or
   "i.state1", "i.state2" (u8) and "i.absmax1", "i.absmax2" (f32); "step" (i64 [n]) */
static sft_status sft__optimizer_save(sft_trainer *tr, const char *dir) {
    int n = sft_optimizer_count(tr->opt), i, k = 0;
    sft_st_entry *e = (sft_st_entry *)sft__calloc(tr->ctx, (size_t)(4 * n + 1), sizeof *e);
    void **copies = (void **)sft__calloc(tr->ctx, (size_t)(4 * n + 1), sizeof(void *));   /* state copied off a device */
    char *keys = (char *)sft__alloc(tr->ctx, (size_t)(4 * n + 1) * 32), path[4096];
    int64_t *steps = (int64_t *)sft__calloc(tr->ctx, (size_t)n + 1, sizeof(int64_t));
    const char *mk = "format", *mv = "sft.h AdamW state";
    sft_status s = SFT_OK;
    if (!e || !keys || !steps || !copies) s = sft__fail(SFT_ERR_NOMEM, "save: optimizer state");
    for (i = 0; s == SFT_OK && i < n; i++) {
        sft_optimizer_state st;
        int part;
        sft_optimizer_param_state(tr->opt, i, &st);
        steps[i] = st.step;
        for (part = 0; part < (st.state1 ? 4 : 2); part++) {
            static const char *const f32_names[2] = {"exp_avg", "exp_avg_sq"};
            static const char *const q8_names[4] = {"state1", "state2", "absmax1", "absmax2"};
            char *key = keys + (size_t)k * 32;
            snprintf(key, 32, "%d.%s", i, st.state1 ? q8_names[part] : f32_names[part]);
            memset(&e[k], 0, sizeof e[k]);
            e[k].name = key; e[k].ndim = 1;
            if (!st.state1) { e[k].dtype = SFT_F32; e[k].shape[0] = st.numel; e[k].data = part ? st.exp_avg_sq : st.exp_avg; }
            else if (part < 2) { e[k].dtype = SFT_U8; e[k].shape[0] = st.numel; e[k].data = part ? st.state2 : st.state1; }
            else { e[k].dtype = SFT_F32; e[k].shape[0] = st.blocks; e[k].data = part == 3 ? st.absmax2 : st.absmax1; }
            if (st.device != SFT_DEVICE_CPU) {
                size_t bytes = (size_t)e[k].shape[0] * sft_dtype_size(e[k].dtype);
                if (!(copies[k] = sft__alloc(tr->ctx, bytes ? bytes : 1))) s = sft__fail(SFT_ERR_NOMEM, "save: optimizer state %s", key);
                else s = sft__device_copy(copies[k], SFT_DEVICE_CPU, e[k].data, st.device, bytes);
                e[k].data = copies[k];
            }
            k++;
            if (s != SFT_OK) break;
        }
    }
    if (s == SFT_OK) {
        memset(&e[k], 0, sizeof e[k]);
        e[k].name = "step"; e[k].dtype = SFT_I64; e[k].ndim = 1; e[k].shape[0] = n; e[k].data = steps;
        k++;
        s = sft__path_join(path, sizeof path, dir, strlen(dir), "optimizer.safetensors");
        if (s == SFT_OK) s = sft_st_save(tr->ctx, path, e, k, &mk, &mv, 1);
    }
    for (i = 0; copies && i < 4 * n; i++) sft__free(tr->ctx, copies[i]);
    sft__free(tr->ctx, e); sft__free(tr->ctx, keys); sft__free(tr->ctx, steps); sft__free(tr->ctx, copies);
    return s;
}

/* sft__bytes_into: a tensor of the file, exactly dtype and count, into dst (on dev) */
static sft_status sft__bytes_into(sft_context *ctx, const sft_st_file *f, const char *path, const char *key, sft_dtype dtype,
                                  int64_t count, void *dst, sft_device dev) {
    sft_tensor *v = NULL;
    sft_status s = SFT_OK;
    if (!sft_st_find(f, key)) return sft__fail(SFT_ERR_NOT_FOUND, "%s: '%s' is missing", path, key);
    SFT__TRY(sft_st_load(ctx, f, key, &v));
    if (v->dtype != dtype || sft_tensor_numel(v) != count)
        s = sft__fail(SFT_ERR_SHAPE, "%s: '%s' is %s x %lld, want %s x %lld (a checkpoint of another run?)", path, key,
                      sft_dtype_name(v->dtype), (long long)sft_tensor_numel(v), sft_dtype_name(dtype), (long long)count);
    else s = sft__device_copy(dst, dev, v->data, SFT_DEVICE_CPU, sft_tensor_nbytes(v));
    sft_tensor_destroy(v);
    return s;
}

static sft_status sft__optimizer_read(sft_trainer *tr, const char *dir) {
    char path[4096], key[32];
    int n = sft_optimizer_count(tr->opt), i;
    int64_t *steps = (int64_t *)sft__calloc(tr->ctx, (size_t)n + 1, sizeof(int64_t));
    sft_st_file *f = NULL;
    sft_status s;
    if (!steps) return sft__fail(SFT_ERR_NOMEM, "resume: optimizer state");
    s = sft__path_join(path, sizeof path, dir, strlen(dir), "optimizer.safetensors");
    if (s == SFT_OK) s = sft_st_open(tr->ctx, path, &f);
    if (s == SFT_OK) s = sft__bytes_into(tr->ctx, f, path, "step", SFT_I64, n, steps, SFT_DEVICE_CPU);
    for (i = 0; s == SFT_OK && i < n; i++) {
        sft_optimizer_state st;
        sft_optimizer_param_state(tr->opt, i, &st);
        tr->opt->step[i] = steps[i];
        if (st.state1) {
            snprintf(key, sizeof key, "%d.state1", i);  s = sft__bytes_into(tr->ctx, f, path, key, SFT_U8, st.numel, st.state1, st.device);
            snprintf(key, sizeof key, "%d.state2", i);  if (s == SFT_OK) s = sft__bytes_into(tr->ctx, f, path, key, SFT_U8, st.numel, st.state2, st.device);
            snprintf(key, sizeof key, "%d.absmax1", i); if (s == SFT_OK) s = sft__bytes_into(tr->ctx, f, path, key, SFT_F32, st.blocks, st.absmax1, st.device);
            snprintf(key, sizeof key, "%d.absmax2", i); if (s == SFT_OK) s = sft__bytes_into(tr->ctx, f, path, key, SFT_F32, st.blocks, st.absmax2, st.device);
        } else {
            snprintf(key, sizeof key, "%d.exp_avg", i);    s = sft__bytes_into(tr->ctx, f, path, key, SFT_F32, st.numel, st.exp_avg, st.device);
            snprintf(key, sizeof key, "%d.exp_avg_sq", i); if (s == SFT_OK) s = sft__bytes_into(tr->ctx, f, path, key, SFT_F32, st.numel, st.exp_avg_sq, st.device);
        }
    }
    sft_st_close(f);
    sft__free(tr->ctx, steps);
    return s;
}

/* --- trainer_state.json and sft_state.json ------------------------------------ */

static double sft__round4(double v) { return fabs(v) < 1e15 ? floor(v * 1e4 + 0.5) / 1e4 : v; }

/* a log entry as Hugging Face's log_history holds it (keys sorted, as its
   json.dumps(sort_keys=True); the train loss rounded to 4 decimals) */
static void sft__log_entry_write(sft_json_writer *w, const sft_log_entry *e) {
    int metrics = e->mean_token_accuracy == e->mean_token_accuracy;
    sft_json_write_object_begin(w);
    if (e->is_eval) {
        if (metrics) { sft_json_write_key(w, "eval_entropy"); sft_json_write_number(w, e->entropy); }
        sft_json_write_key(w, "epoch"); sft_json_write_number(w, e->epoch);
        sft_json_write_key(w, "eval_loss"); sft_json_write_number(w, e->loss);
        if (metrics) { sft_json_write_key(w, "eval_mean_token_accuracy"); sft_json_write_number(w, e->mean_token_accuracy); }
        sft_json_write_key(w, "eval_num_tokens"); sft_json_write_int(w, e->num_tokens);
    } else {
        if (metrics) { sft_json_write_key(w, "entropy"); sft_json_write_number(w, e->entropy); }
        sft_json_write_key(w, "epoch"); sft_json_write_number(w, e->epoch);
        sft_json_write_key(w, "grad_norm"); sft_json_write_number(w, e->grad_norm);
        sft_json_write_key(w, "learning_rate"); sft_json_write_number(w, e->learning_rate);
        sft_json_write_key(w, "loss"); sft_json_write_number(w, sft__round4(e->loss));
        if (metrics) { sft_json_write_key(w, "mean_token_accuracy"); sft_json_write_number(w, e->mean_token_accuracy); }
        sft_json_write_key(w, "num_tokens"); sft_json_write_int(w, e->num_tokens);
    }
    sft_json_write_key(w, "step"); sft_json_write_int(w, e->global_step);
    sft_json_write_object_end(w);
}

static double sft__jnum(const sft_json *o, const char *key, double dflt) {
    const sft_json *v = sft_json_get(o, key);
    return v && v->type == SFT_JSON_NUMBER ? v->number : dflt;
}

static void sft__log_entry_read(const sft_json *o, sft_log_entry *e) {
    memset(e, 0, sizeof *e);
    e->is_eval = sft_json_get(o, "eval_loss") != NULL;
    e->global_step = (int64_t)sft__jnum(o, "step", 0);
    e->epoch = sft__jnum(o, "epoch", 0);
    e->loss = sft__jnum(o, e->is_eval ? "eval_loss" : "loss", NAN);
    e->grad_norm = sft__jnum(o, "grad_norm", NAN);
    e->learning_rate = sft__jnum(o, "learning_rate", NAN);
    e->num_tokens = (int64_t)sft__jnum(o, e->is_eval ? "eval_num_tokens" : "num_tokens", 0);
    e->mean_token_accuracy = sft__jnum(o, e->is_eval ? "eval_mean_token_accuracy" : "mean_token_accuracy", NAN);
    e->entropy = sft__jnum(o, e->is_eval ? "eval_entropy" : "entropy", NAN);
}

static sft_status sft__trainer_state_save(sft_trainer *tr, const char *dir) {
    sft_json_writer w;
    char path[4096];
    size_t i;
    double epochs = ceil((double)tr->max_steps / (double)tr->updates_per_epoch);
    memset(&w, 0, sizeof w);
    w.ctx = tr->ctx; w.indent = 2; w.allow_nonfinite = 1;
    sft_json_write_object_begin(&w);
    sft_json_write_key(&w, "best_global_step");
    if (tr->best_step) sft_json_write_int(&w, tr->best_step); else sft_json_write_null(&w);
    sft_json_write_key(&w, "best_metric");
    if (tr->best_step) sft_json_write_number(&w, tr->best_metric); else sft_json_write_null(&w);
    sft_json_write_key(&w, "best_model_checkpoint");
    if (tr->best_ckpt[0]) sft_json_write_string(&w, tr->best_ckpt); else sft_json_write_null(&w);
    sft_json_write_key(&w, "epoch"); sft_json_write_number(&w, (double)tr->epoch + (double)tr->micro / (double)tr->micro_per_epoch);
    sft_json_write_key(&w, "eval_steps"); sft_json_write_int(&w, tr->cfg.eval_steps ? tr->cfg.eval_steps : 500);
    sft_json_write_key(&w, "global_step"); sft_json_write_int(&w, tr->global_step);
    sft_json_write_key(&w, "is_hyper_param_search"); sft_json_write_bool(&w, 0);
    sft_json_write_key(&w, "is_local_process_zero"); sft_json_write_bool(&w, 1);
    sft_json_write_key(&w, "is_world_process_zero"); sft_json_write_bool(&w, 1);
    sft_json_write_key(&w, "log_history");
    sft_json_write_array_begin(&w);
    for (i = 0; i < tr->history.len; i++) sft__log_entry_write(&w, (const sft_log_entry *)tr->history.p + i);
    sft_json_write_array_end(&w);
    sft_json_write_key(&w, "logging_steps"); sft_json_write_int(&w, tr->cfg.logging_steps);
    sft_json_write_key(&w, "max_steps"); sft_json_write_int(&w, tr->max_steps);
    sft_json_write_key(&w, "num_input_tokens_seen"); sft_json_write_int(&w, tr->num_tokens);
    sft_json_write_key(&w, "num_train_epochs"); sft_json_write_int(&w, (int64_t)epochs);
    sft_json_write_key(&w, "save_steps"); sft_json_write_int(&w, tr->cfg.save_steps ? tr->cfg.save_steps : 500);
    sft_json_write_key(&w, "stateful_callbacks");
    sft_json_write_object_begin(&w);
    sft_json_write_key(&w, "TrainerControl");
    sft_json_write_object_begin(&w);
    sft_json_write_key(&w, "args");
    sft_json_write_object_begin(&w);
    sft_json_write_key(&w, "should_epoch_stop"); sft_json_write_bool(&w, 0);
    sft_json_write_key(&w, "should_evaluate"); sft_json_write_bool(&w, 0);
    sft_json_write_key(&w, "should_log"); sft_json_write_bool(&w, 0);
    sft_json_write_key(&w, "should_save"); sft_json_write_bool(&w, 1);
    sft_json_write_key(&w, "should_training_stop"); sft_json_write_bool(&w, tr->global_step >= tr->max_steps);
    sft_json_write_object_end(&w);
    sft_json_write_key(&w, "attributes"); sft_json_write_object_begin(&w); sft_json_write_object_end(&w);
    sft_json_write_object_end(&w);
    sft_json_write_object_end(&w);
    sft_json_write_key(&w, "total_flos"); sft_json_write_number(&w, tr->total_flos);
    sft_json_write_key(&w, "train_batch_size"); sft_json_write_int(&w, tr->cfg.per_device_train_batch_size);
    sft_json_write_key(&w, "trial_name"); sft_json_write_null(&w);
    sft_json_write_key(&w, "trial_params"); sft_json_write_null(&w);
    sft_json_write_object_end(&w);
    SFT__TRY(sft__path_join(path, sizeof path, dir, strlen(dir), "trainer_state.json"));
    return sft__write_json(tr->ctx, &w, path);
}

/* the numbers sft_state.json carries, by name (doubles round-trip exactly) */
#define SFT__STATE_INTS(X) X(global_step) X(epoch) X(micro) X(num_tokens) X(steps_since_log) X(last_logged) \
    X(acc_tokens) X(best_step)
#define SFT__STATE_REALS(X) X(total_flos) X(total_loss) X(loss_since_log) X(acc_sum) X(ent_sum) X(last_grad_norm) \
    X(last_lr) X(best_metric)

static sft_status sft__sft_state_save(sft_trainer *tr, const char *dir) {
    sft_json_writer w;
    char path[4096], fp[1024];
    memset(&w, 0, sizeof w);
    w.ctx = tr->ctx; w.indent = 2; w.allow_nonfinite = 1;
    sft__run_fingerprint(tr, fp, sizeof fp);
    sft_json_write_object_begin(&w);
    sft_json_write_key(&w, "format"); sft_json_write_string(&w, "sft.h trainer state 1");
    sft_json_write_key(&w, "run"); sft_json_write_string(&w, fp);
#define SFT__W_INT(f) sft_json_write_key(&w, #f); sft_json_write_int(&w, tr->f);
#define SFT__W_REAL(f) sft_json_write_key(&w, #f); sft_json_write_number(&w, tr->f);
    SFT__STATE_INTS(SFT__W_INT)
    SFT__STATE_REALS(SFT__W_REAL)
#undef SFT__W_INT
#undef SFT__W_REAL
    sft_json_write_key(&w, "plateau_lr"); sft_json_write_number(&w, tr->plateau.lr);
    sft_json_write_key(&w, "plateau_best"); sft_json_write_number(&w, tr->plateau.best);
    sft_json_write_key(&w, "plateau_bad"); sft_json_write_int(&w, tr->plateau.bad);
    sft_json_write_key(&w, "plateau_started"); sft_json_write_int(&w, tr->plateau.started);
    {
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)tr->cfg.seed);
        sft_json_write_key(&w, "seed"); sft_json_write_string(&w, seed);     /* all 64 bits */
    }
    sft_json_write_key(&w, "sequential"); sft_json_write_int(&w, tr->cfg.sequential);
    sft_json_write_key(&w, "per_device_train_batch_size"); sft_json_write_int(&w, tr->cfg.per_device_train_batch_size);
    sft_json_write_key(&w, "gradient_accumulation_steps"); sft_json_write_int(&w, tr->cfg.gradient_accumulation_steps);
    sft_json_write_key(&w, "train_rows"); sft_json_write_int(&w, tr->rows);
    sft_json_write_object_end(&w);
    SFT__TRY(sft__path_join(path, sizeof path, dir, strlen(dir), "sft_state.json"));
    return sft__write_json(tr->ctx, &w, path);
}

static sft_status sft__json_file(sft_context *ctx, const char *path, sft_json **out) {
    char *text = NULL;
    size_t len = 0;
    sft_json_desc d;
    sft_status s;
    memset(&d, 0, sizeof d);
    d.allow_nonfinite = 1;
    SFT__TRY(sft_file_read(ctx, path, 0, &text, &len));
    s = sft_json_parse(ctx, text, len, path, &d, out);
    sft__free(ctx, text);
    return s;
}

/* sft__sft_state_read: the counters, after checking the checkpoint is of this run */
static sft_status sft__sft_state_read(sft_trainer *tr, const char *dir) {
    char path[4096], fp[1024];
    sft_json *j = NULL;
    const sft_json *v;
    sft_status s = SFT_OK;
    SFT__TRY(sft__path_join(path, sizeof path, dir, strlen(dir), "sft_state.json"));
    SFT__TRY(sft__json_file(tr->ctx, path, &j));
    sft__run_fingerprint(tr, fp, sizeof fp);
    v = sft_json_get(j, "run");
    if (!v || v->type != SFT_JSON_STRING || !sft_json_get(j, "global_step"))
        s = sft__fail(SFT_ERR_FORMAT, "%s: not a trainer state (no \"run\" or \"global_step\")", path);
    else if (strcmp(v->string, fp) != 0)
        s = sft__fail(SFT_ERR_ARG, "resume: %s was saved by another run.\n  checkpoint: %s\n  this run:   %s", path, v->string, fp);
    if (s == SFT_OK) {
#define SFT__R_INT(f) tr->f = (int64_t)sft__jnum(j, #f, 0);
#define SFT__R_REAL(f) tr->f = sft__jnum(j, #f, 0);
        SFT__STATE_INTS(SFT__R_INT)
        SFT__STATE_REALS(SFT__R_REAL)
#undef SFT__R_INT
#undef SFT__R_REAL
        tr->plateau.lr = sft__jnum(j, "plateau_lr", tr->cfg.learning_rate);
        tr->plateau.best = sft__jnum(j, "plateau_best", INFINITY);
        tr->plateau.bad = (int)sft__jnum(j, "plateau_bad", 0);
        tr->plateau.started = (int)sft__jnum(j, "plateau_started", 0);
        if ((int64_t)sft__jnum(j, "per_device_train_batch_size", 0) != tr->cfg.per_device_train_batch_size ||
            (int64_t)sft__jnum(j, "gradient_accumulation_steps", 0) != tr->cfg.gradient_accumulation_steps)
            sft__log(tr->ctx, SFT_LOG_WARN, "resume: the checkpoint was trained with a batch size of %g x %g accumulation, this run "
                     "uses %d x %d: the rest of the run will not match the interrupted one", sft__jnum(j, "per_device_train_batch_size", 0),
                     sft__jnum(j, "gradient_accumulation_steps", 0), tr->cfg.per_device_train_batch_size, tr->cfg.gradient_accumulation_steps);
        v = sft_json_get(j, "seed");
        if (!v || v->type != SFT_JSON_STRING || strtoull(v->string, NULL, 10) != tr->cfg.seed || (int64_t)sft__jnum(j, "train_rows", 0) != tr->rows)
            sft__log(tr->ctx, SFT_LOG_WARN, "resume: the seed or the dataset's size changed since the checkpoint");
        if (tr->epoch < 0 || tr->micro < 0 || tr->micro > tr->micro_per_epoch || tr->global_step < 0)
            s = sft__fail(SFT_ERR_FORMAT, "%s: data position epoch %lld micro-batch %lld does not fit this dataset", path,
                          (long long)tr->epoch, (long long)tr->micro);
    }
    sft_json_free(j);
    return s;
}

static sft_status sft__history_read(sft_trainer *tr, const char *dir) {
    char path[4096];
    sft_json *j = NULL;
    const sft_json *h;
    size_t i;
    sft_status s = SFT_OK;
    SFT__TRY(sft__path_join(path, sizeof path, dir, strlen(dir), "trainer_state.json"));
    SFT__TRY(sft__json_file(tr->ctx, path, &j));
    h = sft_json_get(j, "log_history");
    if (!h || h->type != SFT_JSON_ARRAY) s = sft__fail(SFT_ERR_FORMAT, "%s: no log_history", path);
    tr->history.len = 0;
    for (i = 0; s == SFT_OK && i < h->length; i++) {
        sft_log_entry e;
        sft__log_entry_read(&h->items[i], &e);
        s = sft__vec_push(tr->ctx, &tr->history, &e, 1);
    }
    h = sft_json_get(j, "best_model_checkpoint");
    if (s == SFT_OK && h && h->type == SFT_JSON_STRING) snprintf(tr->best_ckpt, sizeof tr->best_ckpt, "%s", h->string);
    sft_json_free(j);
    return s;
}

/* --- saving ------------------------------------------------------------------- */

/* sft__rotate: transformers' _rotate_checkpoints: the oldest beyond
   save_total_limit go, but the best is treated as the newest but one (kept) */
static void sft__rotate(sft_trainer *tr) {
    sft__vec v;
    int64_t *st, best = -1;
    size_t n, i, del, limit = (size_t)tr->cfg.save_total_limit;
    char path[4096];
    if (tr->cfg.save_total_limit <= 0) return;
    memset(&v, 0, sizeof v);
    if (sft__checkpoints(tr->ctx, tr->cfg.output_dir, &v) != SFT_OK) { sft_clear_error(); return; }
    st = (int64_t *)v.p; n = v.len;
    if (tr->best_ckpt[0]) for (i = 0; i < n; i++) { sft__ckpt_path(tr, st[i], path, sizeof path); if (strcmp(path, tr->best_ckpt) == 0) best = (int64_t)i; }
    if (best >= 0)
        for (i = (size_t)best; i + 2 < n; i++) { int64_t t = st[i]; st[i] = st[i + 1]; st[i + 1] = t; }
    if (best >= 0 && limit == 1 && n > 0) {      /* keep the newest too, to resume from */
        sft__ckpt_path(tr, st[n - 1], path, sizeof path);
        if (strcmp(path, tr->best_ckpt) != 0) limit = 2;
    }
    del = n > limit ? n - limit : 0;
    for (i = 0; i < del; i++) { sft__ckpt_path(tr, st[i], path, sizeof path); sft__rmtree(path); }
    sft__free(tr->ctx, v.p);
}

static sft_status sft__ckpt_write(sft_trainer *tr, const char *dir) {
    SFT__TRY(sft__weights_save(tr, dir));
    SFT__TRY(sft__optimizer_save(tr, dir));
    SFT__TRY(sft__trainer_state_save(tr, dir));
    return sft__sft_state_save(tr, dir);
}

SFTDEF sft_status sft_trainer_save(sft_trainer *tr) {
    char final[4096], tmp[4096], old[4200];
    sft_status s;
    if (!tr) return sft__fail(SFT_ERR_ARG, "sft_trainer_save: NULL trainer");
    if (!tr->cfg.output_dir) return sft__fail(SFT_ERR_ARG, "save: no output_dir");
    if (strlen(tr->cfg.output_dir) > 3500) return sft__fail(SFT_ERR_ARG, "save: output_dir is too long");
    SFT__TRY(sft__mkdirs(tr->cfg.output_dir));
    sft__ckpt_path(tr, tr->global_step, final, sizeof final);
    snprintf(tmp, sizeof tmp, "%s/tmp-checkpoint-%lld", tr->cfg.output_dir, (long long)tr->global_step);
    snprintf(old, sizeof old, "%s.old", final);
    /* transformers: best_model_checkpoint is checkpoint-<best step> when that
       folder exists (this save's included), else it stays what it was */
    if (tr->best_step) {
        char best[4096];
        sft__ckpt_path(tr, tr->best_step, best, sizeof best);
        if (tr->best_step == tr->global_step || sft__is_dir(best)) memcpy(tr->best_ckpt, best, sizeof best);
    }
    sft__rmtree(tmp);                             /* the leftovers of a crash */
    sft__rmtree(old);
    if (mkdir(tmp, 0777) != 0) return sft__fail(SFT_ERR_IO, "save: cannot create %s: %s", tmp, strerror(errno));
    s = sft__ckpt_write(tr, tmp);
    if (s == SFT_OK) {
        sft__fsync_dir(tmp);                      /* the folder's entries, then the rename */
        if (sft__is_dir(final) && rename(final, old) != 0)
            s = sft__fail(SFT_ERR_IO, "save: cannot move the existing %s aside: %s", final, strerror(errno));
        else if (rename(tmp, final) != 0) {
            s = sft__fail(SFT_ERR_IO, "save: cannot rename %s into place: %s", tmp, strerror(errno));
            if (sft__is_dir(old)) rename(old, final);
        }
    }
    if (s != SFT_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sft_last_error());
        sft__rmtree(tmp);
        if (tr->best_ckpt[0] && !sft__is_dir(tr->best_ckpt)) tr->best_ckpt[0] = 0;
        return sft__fail(s, "%s (checkpoint-%lld not written; the earlier checkpoints are untouched)", msg, (long long)tr->global_step);
    }
    sft__fsync_dir(final);
    sft__rmtree(old);
    tr->last_saved = tr->global_step;
    sft__rotate(tr);
    if (tr->cfg.on_save) tr->cfg.on_save(final, tr->cfg.user);
    return SFT_OK;
}

/* sft__keep_only_best: transformers at the end of a run with save_total_limit 1
   and a best checkpoint: every other checkpoint goes */
static void sft__keep_only_best(sft_trainer *tr) {
    sft__vec v;
    size_t i;
    char path[4096];
    if (!tr->best_ckpt[0] || !tr->cfg.output_dir) return;
    memset(&v, 0, sizeof v);
    if (sft__checkpoints(tr->ctx, tr->cfg.output_dir, &v) == SFT_OK)
        for (i = 0; i < v.len; i++) {
            sft__ckpt_path(tr, ((int64_t *)v.p)[i], path, sizeof path);
            if (strcmp(path, tr->best_ckpt) != 0) sft__rmtree(path);
        }
    sft__free(tr->ctx, v.p);
}

/* --- the best metric ---------------------------------------------------------- */

/* sft__metric_of: metric_for_best_model's value in an evaluation */
static double sft__metric_of(const sft_trainer *tr, const sft_log_entry *e) {
    const char *m = tr->cfg.metric_for_best_model ? tr->cfg.metric_for_best_model : "loss";
    if (strncmp(m, "eval_", 5) == 0) m += 5;
    if (strcmp(m, "mean_token_accuracy") == 0) return e->mean_token_accuracy;
    if (strcmp(m, "entropy") == 0) return e->entropy;
    return e->loss;
}

static int sft__greater_is_better(const sft_trainer *tr) {
    const char *m = tr->cfg.metric_for_best_model ? tr->cfg.metric_for_best_model : "loss";
    if (tr->cfg.greater_is_better) return tr->cfg.greater_is_better > 0;
    return !(strcmp(m, "loss") == 0 || strcmp(m, "eval_loss") == 0);
}

/* sft__track_best: transformers' _determine_best_metric after an evaluation */
static void sft__track_best(sft_trainer *tr, const sft_log_entry *e) {
    double v = sft__metric_of(tr, e);
    if (!tr->cfg.metric_for_best_model && !tr->cfg.load_best_model_at_end && tr->sched.type != SFT_SCHEDULE_REDUCE_ON_PLATEAU) return;
    if (v != v) return;
    if (!tr->best_step || (sft__greater_is_better(tr) ? v > tr->best_metric : v < tr->best_metric)) {
        tr->best_metric = v;
        tr->best_step = tr->global_step;
    }
}

/* --- resuming -------------------------------------------------------------------- */

/* sft__resume_dir: resume_from_checkpoint as a folder ("last": the newest) */
static sft_status sft__resume_dir(sft_trainer *tr, char *dir, size_t cap) {
    const char *r = tr->cfg.resume_from_checkpoint;
    if (strcmp(r, "last") == 0) {
        sft__vec v;
        memset(&v, 0, sizeof v);
        if (!tr->cfg.output_dir) return sft__fail(SFT_ERR_ARG, "resume_from_checkpoint \"last\" needs output_dir");
        SFT__TRY(sft__checkpoints(tr->ctx, tr->cfg.output_dir, &v));
        if (!v.len) return sft__fail(SFT_ERR_NOT_FOUND, "resume_from_checkpoint: no checkpoint-N folder in %s", tr->cfg.output_dir);
        sft__ckpt_path(tr, ((int64_t *)v.p)[v.len - 1], dir, cap);
        sft__free(tr->ctx, v.p);
        return SFT_OK;
    }
    if (!sft__is_dir(r)) return sft__fail(SFT_ERR_NOT_FOUND, "resume_from_checkpoint: %s is not a folder", r);
    snprintf(dir, cap, "%s", r);
    return SFT_OK;
}

/* sft__resume: everything a checkpoint holds, into the run (weights last: a
   refused checkpoint leaves the model as it was) */
static sft_status sft__resume(sft_trainer *tr) {
    char dir[4096];
    SFT__TRY(sft__resume_dir(tr, dir, sizeof dir));
    SFT__TRY(sft__sft_state_read(tr, dir));
    SFT__TRY(sft__history_read(tr, dir));
    SFT__TRY(sft__optimizer_read(tr, dir));
    SFT__TRY(sft__weights_read(tr, dir));
    if (tr->cfg.output_dir) {        /* checkpoints of the abandoned continuation */
        sft__vec v;
        memset(&v, 0, sizeof v);
        if (sft__checkpoints(tr->ctx, tr->cfg.output_dir, &v) == SFT_OK && v.len && ((int64_t *)v.p)[v.len - 1] > tr->global_step)
            sft__log(tr->ctx, SFT_LOG_WARN, "resume: %s holds checkpoint-%lld, newer than step %lld; saves from here on may replace or "
                     "outlive it", tr->cfg.output_dir, (long long)((int64_t *)v.p)[v.len - 1], (long long)tr->global_step);
        sft__free(tr->ctx, v.p);
    }
    tr->started = 1;                 /* no eval_on_start, as transformers on resume */
    tr->last_saved = tr->global_step;
    sft__log(tr->ctx, SFT_LOG_INFO, "resumed from %s at step %lld (epoch %lld, micro-batch %lld)", dir, (long long)tr->global_step,
             (long long)tr->epoch, (long long)tr->micro);
    return SFT_OK;
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
