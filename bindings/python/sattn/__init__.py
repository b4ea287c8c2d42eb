"""sattn for Python: compile attention specs and run the CPU kernels on numpy
arrays, through libsattn.so's C API (include/sattn/sattn.h) with ctypes.

    import numpy as np, sattn
    m = sattn.compile('''
    attention local {
      shape   batch=? heads=8 seq=? head_dim=64
      pattern causal and window 256
    }''')
    kernel = m.jit()["local"]
    q, k, v = (np.random.randn(1, 8, 1000, 64).astype(np.float32) for _ in range(3))
    o = kernel(q, k, v)                      # [1, 8, 1000, 64] float32
    ref = m.reference("local", q, k, v)      # the plain C reference, float32

The library is found through $SATTN_LIBRARY, else next to an installed
package (<prefix>/lib/libsattn.so.0), else by the system's loader.
Errors in specs raise sattn.Error whose .diagnostics hold every message with
its file, line and column.
"""
import ctypes
import ctypes.util
import os
from collections import namedtuple

import numpy as np

__all__ = ["Error", "Diagnostic", "Module", "Jit", "Kernel", "AccelProgram", "compile", "compile_file",
           "set_threads", "threads", "version", "ARTIFACTS"]

# ---- the library ----------------------------------------------------------


def _find_library():
    env = os.environ.get("SATTN_LIBRARY")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    installed = os.path.normpath(os.path.join(here, "..", "..", "..", "libsattn.so.0"))
    if os.path.exists(installed):
        return installed
    found = ctypes.util.find_library("sattn")
    if found:
        return found
    raise OSError("cannot find libsattn.so: set SATTN_LIBRARY to its path")


_lib = ctypes.CDLL(_find_library())

c_int64_p = ctypes.POINTER(ctypes.c_int64)
c_float_p = ctypes.POINTER(ctypes.c_float)


class _Diagnostic(ctypes.Structure):
    _fields_ = [("severity", ctypes.c_int), ("file", ctypes.c_char_p), ("line", ctypes.c_int), ("col", ctypes.c_int),
                ("message", ctypes.c_char_p), ("source_line", ctypes.c_char_p)]


_DiagnosticFn = ctypes.CFUNCTYPE(None, ctypes.POINTER(_Diagnostic), ctypes.c_void_p)


class _Options(ctypes.Structure):
    _fields_ = [("target", ctypes.c_int), ("cpu", ctypes.c_char_p), ("kernel", ctypes.c_char_p),
                ("seq", ctypes.c_int64), ("picture_seed", ctypes.c_uint64), ("accel_config", ctypes.c_char_p),
                ("arch", ctypes.c_char_p), ("cuda_path", ctypes.c_char_p)]


class _Shape(ctypes.Structure):
    _fields_ = [(f, ctypes.c_int64) for f in ("batch", "seq", "heads", "kv_heads", "head_dim")]


class _KernelInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("spec", ctypes.c_void_p), ("prototype", ctypes.c_char_p),
                ("batch", ctypes.c_int64), ("seq", ctypes.c_int64), ("heads", ctypes.c_int64),
                ("kv_heads", ctypes.c_int64), ("head_dim", ctypes.c_int64), ("layout", ctypes.c_int),
                ("storage", ctypes.c_int), ("output", ctypes.c_int), ("storage_bytes", ctypes.c_size_t),
                ("output_bytes", ctypes.c_size_t), ("prunes_tokens", ctypes.c_bool), ("prunes_heads", ctypes.c_bool),
                ("split", ctypes.c_int), ("query_tile", ctypes.c_int64)]


class _Problem(ctypes.Structure):
    _fields_ = [("batch", ctypes.c_int64), ("seq", ctypes.c_int64), ("q", c_float_p), ("k", c_float_p),
                ("v", c_float_p), ("out", c_float_p), ("token_importance_in", c_float_p),
                ("token_importance_out", c_float_p), ("head_importance_in", c_float_p),
                ("head_importance_out", c_float_p), ("survivors_out", ctypes.POINTER(ctypes.c_uint8)),
                ("probs_out", c_float_p)]


_KernelFn = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                             ctypes.c_int64, ctypes.c_int64, c_float_p, c_float_p, c_float_p, c_float_p)


class _AccelConfig(ctypes.Structure):
    _fields_ = [("pe_rows", ctypes.c_int64), ("pe_cols", ctypes.c_int64), ("global_pes", ctypes.c_int64),
                ("clock_ghz", ctypes.c_double), ("sram_q_bytes", ctypes.c_int64), ("sram_kv_bytes", ctypes.c_int64),
                ("sram_out_bytes", ctypes.c_int64), ("dram_bytes_per_cycle", ctypes.c_double),
                ("dram_channels", ctypes.c_int64), ("dram_latency_cycles", ctypes.c_int64),
                ("e_mac_fp32_pj", ctypes.c_double), ("e_mac_fp16_pj", ctypes.c_double),
                ("e_mac_int8_pj", ctypes.c_double), ("e_exp_pj", ctypes.c_double), ("e_sram_byte_pj", ctypes.c_double),
                ("e_dram_byte_pj", ctypes.c_double)]


class _AccelClass(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p)] + [(f, ctypes.c_int64) for f in (
        "instructions", "cycles", "dram_read_bytes", "dram_write_bytes", "dram_requests", "sram_bytes", "macs",
        "low_macs", "exps")] + [
        ("energy_pj", ctypes.c_double)]


class _AccelStats(ctypes.Structure):
    _fields_ = [("cls", _AccelClass * 7), ("compute_cycles", ctypes.c_int64), ("dram_cycles", ctypes.c_int64),
                ("cycles", ctypes.c_int64), ("seconds", ctypes.c_double)] + [(f, ctypes.c_int64) for f in (
        "dram_read_bytes", "dram_write_bytes", "dram_requests", "sram_bytes", "macs", "low_macs")] + [
        ("energy_pj", ctypes.c_double), ("pairs", ctypes.c_int64), ("rows", ctypes.c_int64),
        ("requantized_rows", ctypes.c_int64)]


class _AccelImportance(ctypes.Structure):
    _fields_ = [("token_in", c_float_p), ("token_out", c_float_p), ("head_in", c_float_p), ("head_out", c_float_p)]


def _sig(name, res, *args):
    f = getattr(_lib, name)
    f.restype = res
    f.argtypes = list(args)
    return f


P = ctypes.c_void_p
_sig("sattn_version", ctypes.c_char_p)
_sig("sa_status_name", ctypes.c_char_p, ctypes.c_int)
_sig("sa_dtype_name", ctypes.c_char_p, ctypes.c_int)
_sig("sattn_context_create", P)
_sig("sattn_context_destroy", None, P)
_sig("sattn_context_set_diagnostic_handler", None, P, _DiagnosticFn, P)
_sig("sattn_module_parse", ctypes.c_int, P, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(P))
_sig("sattn_module_parse_file", ctypes.c_int, P, ctypes.c_char_p, ctypes.POINTER(P))
_sig("sattn_module_destroy", None, P)
_sig("sattn_module_kernel_count", ctypes.c_int, P)
_sig("sattn_module_kernel", P, P, ctypes.c_int)
_sig("sattn_module_find", ctypes.c_int, P, ctypes.c_char_p)
_sig("sattn_module_set_shape", ctypes.c_int, P, ctypes.c_int, ctypes.POINTER(_Shape))
_sig("sattn_artifact_kind_parse", ctypes.c_int, ctypes.c_char_p)
_sig("sattn_artifact_kind_name", ctypes.c_char_p, ctypes.c_int)
_sig("sattn_artifact_kind_is_binary", ctypes.c_bool, ctypes.c_int)
_sig("sattn_emit", ctypes.c_int, P, ctypes.c_int, ctypes.POINTER(_Options), ctypes.POINTER(P))
_sig("sattn_artifact_data", P, P, ctypes.POINTER(ctypes.c_size_t))
_sig("sattn_artifact_kernel_count", ctypes.c_int, P)
_sig("sattn_artifact_kernel", ctypes.POINTER(_KernelInfo), P, ctypes.c_int)
_sig("sattn_artifact_destroy", None, P)
_sig("sattn_jit_create", ctypes.c_int, P, ctypes.POINTER(_Options), ctypes.POINTER(P))
_sig("sattn_jit_lookup", P, P, ctypes.c_char_p)
_sig("sattn_jit_kernel_count", ctypes.c_int, P)
_sig("sattn_jit_kernel", ctypes.POINTER(_KernelInfo), P, ctypes.c_int)
_sig("sattn_jit_destroy", None, P)
_sig("sattn_cpu_set_threads", None, ctypes.c_int)
_sig("sattn_cpu_threads", ctypes.c_int)
_sig("sa_reference", ctypes.c_int, P, ctypes.POINTER(_Problem), ctypes.POINTER(ctypes.c_double))
_sig("sa_accel_config_default", None, ctypes.POINTER(_AccelConfig))
_sig("sa_accel_config_parse", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(_AccelConfig),
     ctypes.c_char_p, ctypes.c_size_t)
_sig("sa_accel_load", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(P), ctypes.c_char_p,
     ctypes.c_size_t)
_sig("sa_accel_free", None, P)
_sig("sa_accel_disassemble", P, P)
_sig("sa_accel_run", ctypes.c_int, P, ctypes.POINTER(_AccelConfig), c_float_p, c_float_p, c_float_p, c_float_p,
     ctypes.c_int64, ctypes.POINTER(_AccelImportance), ctypes.POINTER(_AccelStats), ctypes.c_char_p, ctypes.c_size_t)
_libc = ctypes.CDLL(None)
_libc.free.argtypes = [P]

ARTIFACTS = []
while True:
    _name = _lib.sattn_artifact_kind_name(len(ARTIFACTS)).decode()
    if _name == "unknown":
        break
    ARTIFACTS.append(_name)

_DTYPES = {0: "fp32", 1: "fp16", 2: "bf16", 3: "fp8e4m3", 4: "fp8e5m2"}
_SEVERITIES = ("error", "warning", "note", "remark")


def version():
    """The version of the loaded libsattn."""
    return _lib.sattn_version().decode()


def set_threads(n):
    """Threads the CPU kernels use (0: $SATTN_NUM_THREADS or every CPU)."""
    _lib.sattn_cpu_set_threads(int(n))


def threads():
    return _lib.sattn_cpu_threads()


# ---- errors ----------------------------------------------------------------

Diagnostic = namedtuple("Diagnostic", "severity file line col message")


class Error(Exception):
    """A status other than ok from the library, with the diagnostics that
    came with it (a list of Diagnostic)."""

    def __init__(self, status, diagnostics, what=""):
        self.status = _lib.sa_status_name(status).decode()
        self.diagnostics = list(diagnostics)
        lines = ["%s:%d:%d: %s: %s" % (d.file, d.line, d.col, d.severity, d.message) if d.line else
                 "%s: %s: %s" % (d.file, d.severity, d.message) for d in self.diagnostics]
        head = "%s%s" % (what + ": " if what else "", self.status)
        super().__init__("\n".join([head] + lines))


class _Context:
    """A library context whose diagnostics collect in a list."""

    def __init__(self):
        self.handle = _lib.sattn_context_create()
        if not self.handle:
            raise MemoryError("sattn_context_create")
        self.diagnostics = []

        def on_diag(d, _user):
            d = d.contents
            self.diagnostics.append(Diagnostic(_SEVERITIES[d.severity] if 0 <= d.severity < 4 else "error",
                                               d.file.decode(errors="replace"), d.line, d.col,
                                               d.message.decode(errors="replace")))

        self._callback = _DiagnosticFn(on_diag)  # kept alive as long as the context
        _lib.sattn_context_set_diagnostic_handler(self.handle, self._callback, None)

    def check(self, status, what):
        if status != 0:
            diags, self.diagnostics = self.diagnostics, []
            raise Error(status, diags, what)

    def __del__(self):
        if getattr(self, "handle", None):
            _lib.sattn_context_destroy(self.handle)
            self.handle = None


# ---- modules ----------------------------------------------------------------

def _info(ki):
    k = ki.contents
    return {"name": k.name.decode(), "batch": k.batch if k.batch >= 0 else None,
            "seq": k.seq if k.seq >= 0 else None, "heads": k.heads, "kv_heads": k.kv_heads, "head_dim": k.head_dim,
            "layout": "bhsd" if k.layout == 0 else "bshd", "storage": _DTYPES.get(k.storage, str(k.storage)),
            "output": _DTYPES.get(k.output, str(k.output)), "prunes_tokens": k.prunes_tokens,
            "prunes_heads": k.prunes_heads, "prototype": k.prototype.decode()}


_TARGETS = {"cpu": 0, "accel": 1, "cuda": 2}


def _options(kernel=None, cpu=None, seq=0, seed=1, target="cpu", accel_config=None, arch=None):
    return _Options(_TARGETS[target], cpu.encode() if cpu else None, kernel.encode() if kernel else None, seq, seed,
                    accel_config.encode() if accel_config else None, arch.encode() if arch else None, None)


class Module:
    """A checked file of attention specs."""

    def __init__(self, ctx, handle):
        self._ctx = ctx
        self._handle = handle

    def __del__(self):
        if getattr(self, "_handle", None):
            _lib.sattn_module_destroy(self._handle)
            self._handle = None

    @property
    def kernels(self):
        """The spec names, in source order."""
        return [self.info(i)["name"] for i in range(_lib.sattn_module_kernel_count(self._handle))]

    def _index(self, name):
        if isinstance(name, int):
            return name
        i = _lib.sattn_module_find(self._handle, name.encode())
        if i < 0:
            raise KeyError("no attention spec named %r" % name)
        return i

    def info(self, name):
        """Shapes and types of one spec, as a dict."""
        i = self._index(name)
        art = P()
        self._ctx.check(_lib.sattn_emit(self._handle, ARTIFACTS.index("header"),
                                        ctypes.byref(_options(self._name(i))), ctypes.byref(art)), "info")
        try:
            return _info(_lib.sattn_artifact_kernel(art, 0))
        finally:
            _lib.sattn_artifact_destroy(art)

    def _name(self, i):
        spec = _lib.sattn_module_kernel(self._handle, i)
        # SaSpec starts with `const char *name`
        return ctypes.cast(spec, ctypes.POINTER(ctypes.c_char_p))[0].decode()

    def set_shape(self, name, batch=0, seq=0, heads=0, kv_heads=0, head_dim=0):
        """Compiles later kernels of spec `name` for another shape (0 keeps a size)."""
        shape = _Shape(batch, seq, heads, kv_heads, head_dim)
        self._ctx.check(_lib.sattn_module_set_shape(self._handle, self._index(name), ctypes.byref(shape)),
                        "set_shape")

    def emit(self, kind, kernel=None, cpu=None, seq=0, seed=1, target=None, accel_config=None, arch=None):
        """One artifact (sattn.ARTIFACTS: 'mlir', 'llvm', 'asm', 'obj', 'header', 'accel', 'ptx', ...): str, or
        bytes for binary kinds. cpu: an LLVM CPU name for llvm/asm/obj (default: this machine). target: 'cpu',
        'accel' or 'cuda' (default: accel for the accel kinds, cuda for mlir-cuda, ptx, cubin and ptx-c).
        accel_config: a hardware configuration's text. arch: the CUDA chip (default sm_80)."""
        k = _lib.sattn_artifact_kind_parse(kind.encode())
        if k < 0:
            raise ValueError("unknown artifact kind %r (one of %s)" % (kind, ", ".join(ARTIFACTS)))
        target = target or ("accel" if kind.startswith("accel") or kind == "mlir-accel"
                            else "cuda" if kind in ("mlir-cuda", "ptx", "cubin", "ptx-c") else "cpu")
        art = P()
        opt = _options(kernel, cpu, seq, seed, target, accel_config, arch)
        self._ctx.check(_lib.sattn_emit(self._handle, k, ctypes.byref(opt), ctypes.byref(art)), "emit " + kind)
        try:
            size = ctypes.c_size_t()
            data = _lib.sattn_artifact_data(art, ctypes.byref(size))
            raw = ctypes.string_at(data, size.value) if size.value else b""
        finally:
            _lib.sattn_artifact_destroy(art)
        return raw if _lib.sattn_artifact_kind_is_binary(k) else raw.decode()

    def accel(self, kernel=None, seq=0, config=None):
        """The accelerator stream of one spec (docs/accel-isa.md), scheduled for `seq` (0: the spec's) on the
        hardware configuration `config` (its text; None: the defaults), ready to run."""
        name = kernel or self.kernels[0]
        stream = self.emit("accel", kernel=name, seq=seq, accel_config=config)
        return AccelProgram(stream, config)

    def jit(self, kernel=None):
        """Compiles every spec (or `kernel` alone) for this CPU and loads it."""
        handle = P()
        self._ctx.check(_lib.sattn_jit_create(self._handle, ctypes.byref(_options(kernel)), ctypes.byref(handle)),
                        "jit")
        return Jit(self._ctx, handle)

    def reference(self, name, q, k, v, token_importance=None, head_importance=None):
        """The plain C reference of the semantics on float32 arrays in the spec's layout; returns the output
        (float32), or (output, token_importance_out, head_importance_out) when the spec prunes."""
        i = self._index(name)
        info = self.info(i)
        q, k, v = (np.ascontiguousarray(x, dtype=np.float32) for x in (q, k, v))
        batch, seq = _batch_seq(info, q, k, v)
        out = np.empty(q.shape, np.float32)
        tin, hin = _importance_in(info, batch, seq, token_importance, head_importance)
        tout = np.zeros((batch, seq), np.float32) if info["prunes_tokens"] else None
        hout = np.zeros((batch, info["heads"]), np.float32) if info["prunes_heads"] else None
        p = _Problem(batch, seq, _fp(q), _fp(k), _fp(v), _fp(out), _fp(tin), _fp(tout), _fp(hin), _fp(hout), None,
                     None)
        st = _lib.sa_reference(_lib.sattn_module_kernel(self._handle, i), ctypes.byref(p), None)
        if st != 0:
            raise Error(st, [], "reference")
        return out if tout is None and hout is None else (out, tout, hout)


class AccelProgram:
    """A validated accelerator stream and the machine it runs on:
    program.run(q, k, v) -> (output, statistics). `stream` holds the .sacc
    bytes and `listing` its readable form."""

    def __init__(self, stream, config=None):
        self.stream = bytes(stream)
        err = ctypes.create_string_buffer(256)
        self._cfg = _AccelConfig()
        _lib.sa_accel_config_default(ctypes.byref(self._cfg))
        if config is not None:
            text = config.encode()
            st = _lib.sa_accel_config_parse(text, len(text), ctypes.byref(self._cfg), err, 256)
            if st != 0:
                raise Error(st, [], "accelerator configuration: " + err.value.decode())
        h = P()
        st = _lib.sa_accel_load(self.stream, len(self.stream), ctypes.byref(h), err, 256)
        if st != 0:
            raise Error(st, [], "stream: " + err.value.decode())
        self._handle = h
        text = _lib.sa_accel_disassemble(h)
        self.listing = ctypes.string_at(text).decode() if text else ""
        _libc.free(text)
        head = self.listing.splitlines()[1]  # "; heads=H kv_heads=K seq=S head_dim=D batch=B layout=L ..."
        f = dict(x.split("=", 1) for x in head[2:].split() if "=" in x)
        self.heads, self.kv_heads, self.seq, self.head_dim = (int(f[x]) for x in ("heads", "kv_heads", "seq",
                                                                                    "head_dim"))
        self.layout = f["layout"]

    def __del__(self):
        if getattr(self, "_handle", None):
            _lib.sa_accel_free(self._handle)
            self._handle = None

    def run(self, q, k, v, token_importance=None, head_importance=None):
        """Runs on float32 arrays in the program's layout; returns (output float32 array, statistics dict:
        cycles, seconds, DRAM and SRAM bytes, MACs, energy, and the same per instruction class)."""
        q, k, v = (np.ascontiguousarray(x, dtype=np.float32) for x in (q, k, v))
        batch = q.shape[0]
        bhsd = self.layout == "bhsd"
        want = lambda h: (batch, h, self.seq, self.head_dim) if bhsd else (batch, self.seq, h, self.head_dim)
        if q.shape != want(self.heads) or k.shape != want(self.kv_heads) or v.shape != want(self.kv_heads):
            raise ValueError("the stream takes q %s and k, v %s" % (want(self.heads), want(self.kv_heads)))
        out = np.empty(q.shape, np.float32)
        tin = None if token_importance is None else np.ascontiguousarray(token_importance, np.float32)
        hin = None if head_importance is None else np.ascontiguousarray(head_importance, np.float32)
        tout = np.zeros((batch, self.seq), np.float32)
        hout = np.zeros((batch, self.heads), np.float32)
        io = _AccelImportance(_fp(tin), _fp(tout), _fp(hin), _fp(hout))
        stats = _AccelStats()
        err = ctypes.create_string_buffer(256)
        st = _lib.sa_accel_run(self._handle, ctypes.byref(self._cfg), _fp(q), _fp(k), _fp(v), _fp(out), batch,
                               ctypes.byref(io), ctypes.byref(stats), err, 256)
        if st != 0:
            raise Error(st, [], "accelerator: " + err.value.decode())
        names = [f[0] for f in _AccelStats._fields_ if f[0] != "cls"]
        result = {n: getattr(stats, n) for n in names}
        result["classes"] = {c.name.decode(): {f[0]: getattr(c, f[0]) for f in _AccelClass._fields_ if f[0] != "name"}
                             for c in stats.cls}
        result["token_importance"], result["head_importance"] = tout, hout
        return out, result


def compile(text, name="<input>"):
    """Parses and checks spec text; raises Error with located diagnostics."""
    ctx = _Context()
    handle = P()
    data = text.encode()
    ctx.check(_lib.sattn_module_parse(ctx.handle, name.encode(), data, len(data), ctypes.byref(handle)), "compile")
    return Module(ctx, handle)


def compile_file(path):
    ctx = _Context()
    handle = P()
    ctx.check(_lib.sattn_module_parse_file(ctx.handle, os.fsencode(path), ctypes.byref(handle)), "compile")
    return Module(ctx, handle)


# ---- running kernels ----------------------------------------------------------

def _fp(a):
    return None if a is None else a.ctypes.data_as(c_float_p)


def _batch_seq(info, q, k, v):
    bhsd = info["layout"] == "bhsd"
    if q.ndim != 4:
        raise ValueError("q must have 4 dimensions ([batch, heads, seq, head_dim] or [batch, seq, heads, head_dim])")
    batch, seq = q.shape[0], q.shape[2] if bhsd else q.shape[1]
    want_q = (batch, info["heads"], seq, info["head_dim"]) if bhsd else (batch, seq, info["heads"], info["head_dim"])
    want_kv = (batch, info["kv_heads"], seq, info["head_dim"]) if bhsd else (batch, seq, info["kv_heads"],
                                                                            info["head_dim"])
    if q.shape != want_q:
        raise ValueError("q has shape %s; %s needs %s" % (q.shape, info["name"], want_q))
    for n, x in (("k", k), ("v", v)):
        if x.shape != want_kv:
            raise ValueError("%s has shape %s; %s needs %s" % (n, x.shape, info["name"], want_kv))
    for n, fixed, got in (("batch", info["batch"], batch), ("seq", info["seq"], seq)):
        if fixed is not None and fixed != got:
            raise ValueError("%s fixes %s=%d, the arrays have %d" % (info["name"], n, fixed, got))
    return batch, seq


def _importance_in(info, batch, seq, token_importance, head_importance):
    tin = hin = None
    if token_importance is not None:
        tin = np.ascontiguousarray(token_importance, dtype=np.float32).reshape(batch, seq)
    if head_importance is not None:
        hin = np.ascontiguousarray(head_importance, dtype=np.float32).reshape(batch, info["heads"])
    return tin, hin


def _bf16_bits(x):
    """bfloat16 bits of float32 values, rounded to nearest even (NaN kept)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), np.uint16(0x7FC0), rounded)


def _encode(x, dtype):
    if dtype == "fp32":
        return np.ascontiguousarray(x, dtype=np.float32)
    if dtype == "fp16":
        return np.ascontiguousarray(x, dtype=np.float16)
    if dtype == "bf16":
        return x if x.dtype == np.uint16 else _bf16_bits(x)
    if x.dtype != np.uint8:
        raise TypeError("%s storage takes uint8 arrays of fp8 bits" % dtype)
    return np.ascontiguousarray(x)


class Kernel:
    """One compiled kernel: kernel(q, k, v[, token_importance, head_importance]).

    q, k and v are in the spec's layout; float arrays are converted to the
    storage type (fp8 storage takes uint8 bit patterns, bf16 also uint16 bits).
    Returns the output (float32 for fp32 and bf16, float16 for fp16), or
    (output, token_importance_out, head_importance_out) for pruning specs or
    when importance=True."""

    def __init__(self, jit, info, fn):
        self._jit = jit  # keeps the code alive
        self.info = info
        self.name = info["name"]
        self._fn = fn

    def __call__(self, q, k, v, token_importance=None, head_importance=None, importance=False):
        info = self.info
        q, k, v = (np.asarray(x) for x in (q, k, v))
        batch, seq = _batch_seq(info, q, k, v)
        sq, sk, sv = (_encode(x, info["storage"]) for x in (q, k, v))
        out_type = {"fp32": np.float32, "fp16": np.float16, "bf16": np.uint16}[info["output"]]
        out = np.empty(q.shape, out_type)
        tin, hin = _importance_in(info, batch, seq, token_importance, head_importance)
        want = importance or info["prunes_tokens"] or info["prunes_heads"]
        tout = np.zeros((batch, seq), np.float32) if want else None
        hout = np.zeros((batch, info["heads"]), np.float32) if want else None
        st = self._fn(sq.ctypes.data, sk.ctypes.data, sv.ctypes.data, out.ctypes.data, batch, seq, _fp(tin),
                      _fp(tout), _fp(hin), _fp(hout))
        if st != 0:
            raise Error(st, [], "kernel " + self.name)
        if info["output"] == "bf16":
            out = (out.astype(np.uint32) << 16).view(np.float32)
        return (out, tout, hout) if want else out


class Jit:
    """Kernels compiled for this CPU; index by name."""

    def __init__(self, ctx, handle):
        self._ctx = ctx
        self._handle = handle

    def __del__(self):
        if getattr(self, "_handle", None):
            _lib.sattn_jit_destroy(self._handle)
            self._handle = None

    def names(self):
        return [_lib.sattn_jit_kernel(self._handle, i).contents.name.decode()
                for i in range(_lib.sattn_jit_kernel_count(self._handle))]

    def __getitem__(self, name):
        for i in range(_lib.sattn_jit_kernel_count(self._handle)):
            ki = _lib.sattn_jit_kernel(self._handle, i)
            if ki.contents.name.decode() == name:
                addr = _lib.sattn_jit_lookup(self._handle, name.encode())
                return Kernel(self, _info(ki), _KernelFn(addr))
        raise KeyError("no kernel named %r" % name)
