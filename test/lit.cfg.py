# lit configuration for sattn: every observable stage is tested as text.
import os
import lit.formats

config.name = "sattn"
config.test_format = lit.formats.ShTest(execute_external=True)
config.suffixes = [".sattn", ".mlir", ".test"]
config.excludes = ["Inputs", "lit.cfg.py"]
config.test_source_root = os.path.dirname(__file__)

root = os.path.dirname(config.test_source_root)
build = lit_config.params.get("build", os.path.join(root, "build"))
bindir = os.path.join(build, "bin")
config.test_exec_root = os.path.join(build, "test")

llvm_bin = "/usr/lib/llvm-22/bin"
config.environment["PATH"] = os.pathsep.join([bindir, llvm_bin, os.environ.get("PATH", "")])
for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "HOME"):
    if var in os.environ:
        config.environment[var] = os.environ[var]

config.substitutions.append(("%examples", os.path.join(root, "examples")))
config.substitutions.append(("%data", os.path.join(os.path.dirname(root), "shared", "data")))
config.substitutions.append(("%bin", bindir))
config.substitutions.append(("%build", build))
config.substitutions.append(("%root", root))
# The interpreter running lit is Debian's, the one with python3-numpy.
import sys
config.substitutions.append(("%python", sys.executable))

# C programs built by tests link the project's static libraries; in the
# sanitizer build they need the same instrumentation.
cache = os.path.join(build, "CMakeCache.txt")
sanitize = os.path.exists(cache) and "SATTN_SANITIZE:BOOL=ON" in open(cache).read()
cflags = "-std=c11 -O1 -D_POSIX_C_SOURCE=200809L -I%s -I%s" % (root, os.path.join(root, "include"))
if sanitize:
    cflags += " -fsanitize=address,undefined"
    config.available_features.add("sanitize")
config.substitutions.append(("%cc", "cc " + cflags))
config.substitutions.append(("%libs", "%s %s -lm" % (os.path.join(build, "libsattn_frontend.a"),
                                                    os.path.join(build, "libsattn_runtime.a"))))
config.substitutions.append(("%FileCheck", "FileCheck --enable-var-scope"))

import shutil
if shutil.which("valgrind") and not sanitize:
    config.available_features.add("valgrind")
    config.substitutions.append(("%valgrind", "valgrind -q --error-exitcode=99 --leak-check=full "
                                              "--errors-for-leak-kinds=definite"))

if os.path.exists(os.path.join(bindir, "fuzz-frontend")):
    config.available_features.add("fuzzer")

# The CUDA toolkit's ptxas checks the generated PTX; a driver (libcuda.so.1)
# and a GPU run the kernels. Tests needing either are reported unsupported,
# never passed, on machines without them.
cuda_home = os.environ.get("CUDA_HOME") or "/usr/local/cuda"
ptxas = os.path.join(cuda_home, "bin", "ptxas")
if not os.access(ptxas, os.X_OK):
    ptxas = shutil.which("ptxas")
if ptxas:
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", ptxas))
import ctypes
try:
    ctypes.CDLL("libcuda.so.1")
    config.available_features.add("cuda-gpu")
except OSError:
    pass
