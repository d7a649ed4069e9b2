# gpu-runtime (included by the Makefile): gpu-agent, its CUDA kernels and the
# reference workloads gpu-train and gpu-serve.
#
#   gpu-runtime/common/*.c         shared by the agent and the workloads (CUDA/NVML loader)
#   gpu-runtime/agent/*.c          gpu-agent (main.c is the program, the rest libgpuagent.a)
#   gpu-runtime/agent/*.cu         the health kernels, embedded in gpu-agent
#   gpu-runtime/workloads/model/   the model both workloads share (libgpumodel.a)
#   gpu-runtime/workloads/train/   gpu-train (main.c the program); train/*.cu embedded in it
#   gpu-runtime/workloads/serve/   gpu-serve (main.c the program)
#
# Every .cu is compiled by nvcc into one fatbin (sm_80, sm_90 and PTX for later
# GPUs) and embedded with .incbin (gpu-runtime/common/embed.S). Without nvcc
# the build goes on and the blobs are empty: the programs then say their
# kernels are not built in. NVCC= (empty) forces that.

NVCC ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
NVCC_FLAGS ?= -O3 -std=c++17 \
    -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
    -gencode arch=compute_90,code=compute_90

GR_CPPFLAGS := -iquote gpu-runtime/common -iquote gpu-runtime/agent \
    -iquote gpu-runtime/workloads/model -iquote orchestrator

GR_COMMON_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard gpu-runtime/common/*.c))
GR_AGENT_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(filter-out gpu-runtime/agent/main.c,\
                     $(wildcard gpu-runtime/agent/*.c)))
GR_MODEL_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(wildcard gpu-runtime/workloads/model/*.c))
GR_TRAIN_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(filter-out gpu-runtime/workloads/train/main.c,\
                     $(wildcard gpu-runtime/workloads/train/*.c)))
GR_SERVE_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(filter-out gpu-runtime/workloads/serve/main.c,\
                     $(wildcard gpu-runtime/workloads/serve/*.c)))
# one embedded blob per .cu file: NAME.cu -> symbols gr_fatbin_NAME, gr_fatbin_NAME_end
GR_AGENT_BLOBS := $(patsubst %.cu,$(BUILD)/%.blob.o,$(wildcard gpu-runtime/agent/*.cu))
GR_TRAIN_BLOBS := $(patsubst %.cu,$(BUILD)/%.blob.o,$(wildcard gpu-runtime/workloads/train/*.cu))

LIBGRCOMMON := $(BUILD)/libgrcommon.a
LIBGPUAGENT := $(BUILD)/libgpuagent.a
LIBGPUMODEL := $(BUILD)/libgpumodel.a
LIBGPUTRAIN := $(BUILD)/libgputrain.a
LIBGPUSERVE := $(BUILD)/libgpuserve.a
GR_LIBS     := $(LIBGPUAGENT) $(LIBGPUTRAIN) $(LIBGPUSERVE) $(LIBGPUMODEL) $(LIBGRCOMMON)
GPU_AGENT   := $(BUILD)/bin/gpu-agent
GPU_TRAIN   := $(BUILD)/bin/gpu-train
GPU_SERVE   := $(BUILD)/bin/gpu-serve
GR_BINS     := $(GPU_AGENT) $(GPU_TRAIN) $(GPU_SERVE)

# gpu-agent is shipped to nodes that may lack libuv and jansson: both are linked
# statically when their archives are installed (Debian: libuv_a.a, libjansson.a)
GR_STATIC := $(if $(filter /%,$(shell $(CC) -print-file-name=libuv_a.a)),-luv_a,-luv) \
             $(if $(filter /%,$(shell $(CC) -print-file-name=libjansson.a)),-ljansson,)
GR_LIBS_LD := -Wl,--as-needed -Wl,-Bstatic $(GR_STATIC) -Wl,-Bdynamic $(shell pkg-config --libs jansson libcurl 2>/dev/null) \
              -ldl -lpthread -lm
# the daemon's allocator, logging and HTTP client, which the agent shares
GR_ORC_OBJ := $(BUILD)/orchestrator/base.o $(BUILD)/orchestrator/engine/http_client.o

$(BUILD)/gpu-runtime/%.o: CPPFLAGS += $(GR_CPPFLAGS)

$(BUILD)/gpu-runtime/%.fatbin: gpu-runtime/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -fatbin -o $@ $<

$(BUILD)/gpu-runtime/%.blob.o: gpu-runtime/common/embed.S $(if $(NVCC),$(BUILD)/gpu-runtime/%.fatbin)
	@mkdir -p $(dir $@)
	$(CC) -c -DGR_BLOB_NAME=$(notdir $*) $(if $(NVCC),-DGR_BLOB_FILE='"$(BUILD)/gpu-runtime/$*.fatbin"') \
	    -o $@ $<

$(LIBGRCOMMON): $(GR_COMMON_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(LIBGPUAGENT): $(GR_AGENT_OBJ) $(GR_AGENT_BLOBS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(LIBGPUMODEL): $(GR_MODEL_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(LIBGPUTRAIN): $(GR_TRAIN_OBJ) $(GR_TRAIN_BLOBS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(LIBGPUSERVE): $(GR_SERVE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(GPU_AGENT): $(BUILD)/gpu-runtime/agent/main.o $(LIBGPUAGENT) $(LIBGRCOMMON) $(GR_ORC_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBGPUAGENT) $(LIBGRCOMMON) $(GR_ORC_OBJ) $(GR_LIBS_LD)
$(GPU_TRAIN): $(BUILD)/gpu-runtime/workloads/train/main.o $(LIBGPUTRAIN) $(LIBGPUMODEL) $(LIBGRCOMMON) $(GR_ORC_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBGPUTRAIN) $(LIBGPUMODEL) $(LIBGRCOMMON) $(GR_ORC_OBJ) $(GR_LIBS_LD)
$(GPU_SERVE): $(BUILD)/gpu-runtime/workloads/serve/main.o $(LIBGPUSERVE) $(LIBGPUMODEL) $(LIBGRCOMMON) $(GR_ORC_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBGPUSERVE) $(LIBGPUMODEL) $(LIBGRCOMMON) $(GR_ORC_OBJ) $(GR_LIBS_LD)

-include $(GR_COMMON_OBJ:.o=.d) $(GR_AGENT_OBJ:.o=.d) $(GR_MODEL_OBJ:.o=.d) $(GR_TRAIN_OBJ:.o=.d) \
    $(GR_SERVE_OBJ:.o=.d) $(patsubst %,$(BUILD)/gpu-runtime/%/main.d,agent workloads/train workloads/serve)
