# Thin wrapper over CMake. `make demo` and `make test` do all set-up.
#   make test SANITIZE=1   the same suite built with ASan + UBSan
#   make test WERROR=1     warnings are errors (CI)
#   make install PREFIX=/opt/sattn   library, headers, tools, CMake package, pkg-config, Python
SANITIZE ?= 0
WERROR ?= 0
LLVM_BIN := /usr/lib/llvm-22/bin
BUILD := $(if $(filter 1,$(SANITIZE)),build-asan,build)
CMAKE_FLAGS := -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSATTN_SANITIZE=$(if $(filter 1,$(SANITIZE)),ON,OFF) \
  -DSATTN_WERROR=$(if $(filter 1,$(WERROR)),ON,OFF)

PREFIX ?= /usr/local

.PHONY: all deps build test demo install clean

all: build

deps:
	@scripts/deps.sh

$(BUILD)/build.ninja: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	ninja -C $(BUILD)

test: build
	$(LLVM_BIN)/lit -sv --param build=$(CURDIR)/$(BUILD) test

demo: build
	scripts/demo.sh $(BUILD)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf build build-asan
