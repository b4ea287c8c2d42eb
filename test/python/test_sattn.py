"""The Python package (bindings/python/sattn) against libsattn.so: kernels on
numpy arrays checked against the reference, every storage type, layouts,
pruning outputs, artifacts, and errors with their locations."""
import unittest

import numpy as np

import sattn

SPECS = """
attention local {
  shape   batch=? heads=4 kv_heads=2 seq=? head_dim=32
  pattern causal and window 64
}
attention nm {
  shape   batch=1 heads=2 seq=128 head_dim=16
  pattern nm 2:4
  layout  bshd
}
attention half {
  shape     batch=? heads=2 seq=? head_dim=64
  pattern   dense
  precision input=fp16 output=fp16
}
attention brain {
  shape     batch=? heads=2 seq=? head_dim=24
  pattern   causal
  precision input=bf16 output=bf16
}
attention pruning {
  shape batch=1 heads=4 seq=96 head_dim=32
  pattern dense
  prune tokens=0.5 heads=0.5
}
"""


def rel_err(a, b):
    """Relative error over the finite entries; infinite when the non-finite
    entries (pruned tokens and heads are -inf) differ."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    fin = np.isfinite(b)
    if not np.array_equal(np.isfinite(a), fin) or not np.array_equal(a[~fin], b[~fin]):
        return np.inf
    return np.linalg.norm(a[fin] - b[fin]) / max(np.linalg.norm(b[fin]), 1e-30)


class SattnTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rng = np.random.default_rng(7)
        cls.m = sattn.compile(SPECS, "specs.sattn")
        cls.jit = cls.m.jit()

    def randn(self, *shape):
        return self.rng.standard_normal(shape).astype(np.float32)

    def test_version_and_kernels(self):
        self.assertRegex(sattn.version(), r"^\d+\.\d+\.\d+$")
        self.assertEqual(self.m.kernels, ["local", "nm", "half", "brain", "pruning"])
        self.assertEqual(sorted(self.jit.names()), sorted(self.m.kernels))
        info = self.m.info("local")
        self.assertEqual((info["heads"], info["kv_heads"], info["head_dim"], info["seq"]), (4, 2, 32, None))

    def test_fp32_against_reference(self):
        for batch, seq in ((1, 1), (2, 77), (1, 300)):
            q, k, v = self.randn(batch, 4, seq, 32), self.randn(batch, 2, seq, 32), self.randn(batch, 2, seq, 32)
            out = self.jit["local"](q, k, v)
            self.assertEqual(out.dtype, np.float32)
            self.assertLess(rel_err(out, self.m.reference("local", q, k, v)), 1e-5)

    def test_bshd_nm(self):
        q, k, v = self.randn(1, 128, 2, 16), self.randn(1, 128, 2, 16), self.randn(1, 128, 2, 16)
        self.assertLess(rel_err(self.jit["nm"](q, k, v), self.m.reference("nm", q, k, v)), 1e-5)

    def test_half_and_bfloat(self):
        q, k, v = self.randn(1, 2, 50, 64), self.randn(1, 2, 50, 64), self.randn(1, 2, 50, 64)
        out = self.jit["half"](q, k, v)
        self.assertEqual(out.dtype, np.float16)
        r = self.m.reference("half", *(x.astype(np.float16).astype(np.float32) for x in (q, k, v)))
        self.assertLess(rel_err(out, r), 1e-3)
        q, k, v = self.randn(2, 2, 33, 24), self.randn(2, 2, 33, 24), self.randn(2, 2, 33, 24)
        out = self.jit["brain"](q, k, v)
        self.assertEqual(out.dtype, np.float32)
        self.assertLess(rel_err(out, self.m.reference("brain", q, k, v)), 8e-3)

    def test_pruning_outputs(self):
        q, k, v = self.randn(1, 4, 96, 32), self.randn(1, 4, 96, 32), self.randn(1, 4, 96, 32)
        tin, hin = np.abs(self.randn(1, 96)), np.abs(self.randn(1, 4))
        out, tout, hout = self.jit["pruning"](q, k, v, tin, hin)
        rout, rt, rh = self.m.reference("pruning", q, k, v, tin, hin)
        self.assertLess(rel_err(out, rout), 1e-5)
        self.assertLess(rel_err(tout, rt), 1e-5)
        self.assertLess(rel_err(hout, rh), 1e-5)

    def test_set_shape_and_artifacts(self):
        m = sattn.compile(SPECS)
        m.set_shape("local", head_dim=15)
        self.assertEqual(m.info("local")["head_dim"], 15)
        q, k, v = self.randn(1, 4, 20, 15), self.randn(1, 2, 20, 15), self.randn(1, 2, 20, 15)
        self.assertLess(rel_err(m.jit("local")["local"](q, k, v), m.reference("local", q, k, v)), 1e-5)
        self.assertIn("sattn.mask_causal", m.emit("mlir", kernel="local"))
        obj = m.emit("obj", kernel="local", cpu="x86-64-v3")
        self.assertEqual(obj[:4], b"\x7fELF")
        self.assertIn("int32_t local(const float *q", m.emit("header"))
        self.assertTrue(m.emit("mask-svg", kernel="local", seq=64).startswith("<svg"))

    def test_cuda_artifacts(self):
        # fp32 inputs go through tf32 tensor cores; the kinds imply target="cuda"
        m = sattn.compile(SPECS)
        ptx = m.emit("ptx", kernel="local", arch="sm_90a")
        self.assertIn(".target sm_90a", ptx)
        self.assertIn("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32", ptx)
        embedded = m.emit("ptx-c", kernel="local")
        self.assertIn("const size_t local_ptx_size = ", embedded)
        self.assertIn("extern const unsigned char local_ptx[];", m.emit("header", kernel="local", target="cuda"))

    def test_errors_have_locations(self):
        with self.assertRaises(sattn.Error) as e:
            sattn.compile("attention a {\n  shape heads=3 kv_heads=2 seq=8 head_dim=16\n  pattern dense\n}\n", "a.sattn")
        self.assertEqual(e.exception.status, "invalid spec or IR")
        d = e.exception.diagnostics[0]
        self.assertEqual((d.file, d.line, d.severity), ("a.sattn", 2, "error"))
        self.assertIn("must divide heads", d.message)
        with self.assertRaises(sattn.Error) as e:
            self.m.emit("obj", cpu="pentium9")
        self.assertIn("unknown CPU 'pentium9'", str(e.exception))
        with self.assertRaises(sattn.Error):
            self.m.set_shape("nm", heads=3, kv_heads=2)
        with self.assertRaises(KeyError):
            self.jit["nope"]
        with self.assertRaises(ValueError):
            self.jit["nm"](*(self.randn(1, 2, 100, 16) for _ in range(3)))  # seq is fixed at 128
        with self.assertRaises(ValueError):
            self.m.emit("elf")

    def test_accelerator(self):
        prog = self.m.accel("local", seq=90)
        self.assertTrue(prog.stream.startswith(b"SACC"))
        self.assertIn("heads    4,", prog.listing)
        q, k, v = self.randn(1, 4, 90, 32), self.randn(1, 2, 90, 32), self.randn(1, 2, 90, 32)
        out, stats = prog.run(q, k, v)
        self.assertLess(rel_err(out, self.m.reference("local", q, k, v)), 1e-4)
        self.assertGreater(stats["cycles"], 0)
        self.assertGreater(stats["classes"]["qk"]["macs"], 0)
        self.assertGreater(stats["energy_pj"], 0)
        # a dynamic stage runs on the row engine; another array shape is refused
        q, k, v = self.randn(1, 128, 2, 16), self.randn(1, 128, 2, 16), self.randn(1, 128, 2, 16)
        out, stats = self.m.accel("nm").run(q, k, v)
        self.assertLess(rel_err(out, self.m.reference("nm", q, k, v)), 1e-4)
        self.assertEqual(stats["rows"], 2 * 128)
        small = self.m.accel("nm", config="pe_rows = 16\npe_cols = 8\n")
        self.assertEqual(small.run(q, k, v)[0].shape, q.shape)
        with self.assertRaises(sattn.Error):
            self.m.accel("nm", config="bogus = 1\n")
        # the scheduled program in the saccel dialect, with the DRAM requests the model counts
        ir = self.m.emit("mlir-accel", kernel="local", seq=90)
        self.assertIn('"saccel.heads"() {count = 4 : i64}', ir)
        self.assertGreater(stats["dram_requests"], 0)

    def test_threads(self):
        before = sattn.threads()
        sattn.set_threads(1)
        self.assertEqual(sattn.threads(), 1)
        sattn.set_threads(before)


if __name__ == "__main__":
    unittest.main()
