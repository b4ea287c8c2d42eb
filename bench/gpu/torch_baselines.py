"""PyTorch baselines on the GPU for bench/gpu/specs.sattn, on the same shapes (batch 1 x 32 heads):

- scaled_dot_product_attention for dense and causal: the flash and cuDNN backends for fp16, and the backend SDPA
  picks by itself; for fp32, the backend SDPA picks, with TF32 matmuls allowed as our kernels use them;
- FlexAttention (torch.compile'd) for every pattern, with the equivalent BlockMask (none for dense);
- the machine's measured ceilings: fp16 and tf32 matrix products of 8192^3 through cuBLAS.

Each time is the median of 20 calls, each timed with CUDA events, after 3 warm-up calls. The results file is
rewritten after every measurement, so a run cut short by --deadline keeps what it measured. Each FlexAttention
pattern is also checked once against SDPA's math backend with the same mask as a boolean tensor (relative
Frobenius error in the results), so a baseline that computed something else would show.
--device cpu --seqs 256 runs the whole script on the CPU, to check the script itself off the GPU."""
import argparse
import json
import time

import torch
import torch.nn.functional as F

PATTERNS = {  # kernel name: (head_dim, kind, input type)
    "dense_d64": (64, "dense", "fp16"), "dense_d128": (128, "dense", "fp16"),
    "causal_d64": (64, "causal", "fp16"), "causal_d128": (128, "causal", "fp16"),
    "window1024_d64": (64, "window", "fp16"), "window1024_d128": (128, "window", "fp16"),
    "dense_d64_f32": (64, "dense", "fp32"), "causal_d64_f32": (64, "causal", "fp32"),
}


DEVICE = "cuda"
WINDOW_RADIUS = 512  # window 1025 in specs.sattn


# One function per pattern (not one closure with arguments): torch.compile guards on the mask function, and
# two closures of one function could share a compiled kernel.
def causal_mask(b, h, qi, ki):
    return qi >= ki


def window_mask(b, h, qi, ki):
    return (qi - ki <= WINDOW_RADIUS) & (ki - qi <= WINDOW_RADIUS)


MASKS = {"causal": causal_mask, "window": window_mask}


def timed(fn, reps=20):
    for _ in range(3):
        fn()
    if DEVICE != "cuda":
        t = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            t.append((time.perf_counter() - t0) * 1e3)
        return sorted(t)[len(t) // 2]
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return sorted(times)[len(times) // 2]


def ceilings():
    out = {}
    n = 8192 if DEVICE == "cuda" else 512
    for name, dtype in (("matmul_fp16_tflops", torch.float16), ("matmul_tf32_tflops", torch.float32)):
        a, b = (torch.randn(n, n, device=DEVICE, dtype=dtype) for _ in range(2))
        ms = timed(lambda: a @ b)
        out[name] = 2 * n**3 / (ms * 1e9)
    x = torch.randn(1 << (28 if DEVICE == "cuda" else 20), device=DEVICE)  # 1 GiB on the GPU
    y = torch.empty_like(x)
    ms = timed(lambda: y.copy_(x))
    out["copy_tbps"] = 2 * x.numel() * 4 / (ms * 1e9)  # bytes read plus written
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seqs", default="4096,8192,16384")
    ap.add_argument("--deadline", type=float, default=1e9, help="seconds after which no new FlexAttention starts")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    start = time.time()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else DEVICE
    result = {"torch": torch.__version__, "device": name, "runs": []}

    def save():
        json.dump(result, open(args.out, "w"), indent=1)

    result["ceilings"] = ceilings()
    save()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    seqs = [int(s) for s in args.seqs.split(",")]

    def inputs(d, ty, s):
        dtype = torch.float16 if ty == "fp16" else torch.float32
        return [torch.randn(1, 32, s, d, device=DEVICE, dtype=dtype) for _ in range(3)]

    # SDPA first: it needs no compilation.
    for name, (d, kind, ty) in PATTERNS.items():
        if kind not in ("dense", "causal"):
            continue
        for s in seqs:
            q, k, v = inputs(d, ty, s)
            backends = {"sdpa": None}
            if ty == "fp16" and DEVICE == "cuda":
                backends.update(sdpa_flash=SDPBackend.FLASH_ATTENTION, sdpa_cudnn=SDPBackend.CUDNN_ATTENTION)
            for impl, be in backends.items():
                call = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=kind == "causal")
                try:
                    if be is None:
                        ms = timed(call)
                    else:
                        with sdpa_kernel(be):
                            ms = timed(call)
                except Exception as e:  # a backend that does not take this shape
                    result.setdefault("skipped", []).append(f"{impl} {name} {s}: {str(e)[:200]}")
                    continue
                result["runs"].append({"kernel": name, "seq": s, "impl": impl, "ms": ms})
                save()
            del q, k, v
    try:
        from torch import _dynamo
        for knob in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit",
                     "accumulated_recompile_limit"):
            if hasattr(_dynamo.config, knob):
                setattr(_dynamo.config, knob, 256)
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        flex = torch.compile(flex_attention, dynamic=False)
    except Exception as e:  # an older torch: no FlexAttention
        result["flex_missing"] = str(e)
        save()
        return
    for name, (d, kind, ty) in PATTERNS.items():
        checked = False
        for s in seqs:
            if time.time() - start > args.deadline:
                result.setdefault("skipped", []).append(f"flex {name} {s}: past the deadline")
                save()
                continue
            q, k, v = inputs(d, ty, s)
            mod = MASKS.get(kind)
            bm = None if mod is None else create_block_mask(mod, 1, 1, s, s, device=DEVICE)
            t0 = time.time()
            try:
                ms = timed(lambda: flex(q, k, v, block_mask=bm))
            except Exception as e:
                result.setdefault("skipped", []).append(f"flex {name} {s}: {str(e)[:200]}")
                save()
                continue
            run = {"kernel": name, "seq": s, "impl": "flex", "ms": ms,
                   "compile_and_time_s": round(time.time() - t0, 1)}
            if not checked:  # the same function as ours? checked once per pattern, on 4 heads
                checked = True
                qs, ks, vs = (x[:, :4].float() for x in (q, k, v))
                idx = torch.arange(s, device=DEVICE)
                allowed = None if mod is None else mod(0, 0, idx[:, None], idx[None, :])
                with sdpa_kernel(SDPBackend.MATH):
                    want = F.scaled_dot_product_attention(qs.double(), ks.double(), vs.double(), attn_mask=allowed)
                got = flex(q, k, v, block_mask=bm)[:, :4].double()
                run["rel_error_vs_math"] = ((got - want).norm() / want.norm()).item()
            result["runs"].append(run)
            save()
            del q, k, v


if __name__ == "__main__":
    main()
