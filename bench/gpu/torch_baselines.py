"""PyTorch baselines on the GPU for bench/gpu/specs.sattn: scaled_dot_product_attention (flash backend for fp16;
for fp32, whichever backend SDPA picks, with TF32 matmuls allowed as our kernels use them) for dense and causal,
FlexAttention with an equivalent BlockMask for every pattern it can express. Batch 1 x 32 heads, timed with CUDA
events (median of 20 after warm-up)."""
import argparse
import json

import torch
import torch.nn.functional as F

PATTERNS = {  # kernel name: (head_dim, kind, window radius, input type)
    "dense_d64": (64, "dense", 0, "fp16"), "dense_d128": (128, "dense", 0, "fp16"),
    "causal_d64": (64, "causal", 0, "fp16"), "causal_d128": (128, "causal", 0, "fp16"),
    "window1024_d64": (64, "window", 512, "fp16"), "window1024_d128": (128, "window", 512, "fp16"),
    "dense_d64_f32": (64, "dense", 0, "fp32"), "causal_d64_f32": (64, "causal", 0, "fp32"),
}


def timed(fn, reps=20):
    for _ in range(3):
        fn()
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seqs", default="4096,8192,16384")
    args = ap.parse_args()
    runs = []
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        flex = torch.compile(flex_attention)
    except Exception as e:  # an older torch: no FlexAttention
        flex, why = None, str(e)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    for name, (d, kind, radius, ty) in PATTERNS.items():
        dtype = torch.float16 if ty == "fp16" else torch.float32
        for s in map(int, args.seqs.split(",")):
            q, k, v = (torch.randn(1, 32, s, d, device="cuda", dtype=dtype) for _ in range(3))
            if kind in ("dense", "causal"):
                from torch.nn.attention import SDPBackend, sdpa_kernel
                if ty == "fp16":
                    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                        ms = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=kind == "causal"))
                    runs.append({"kernel": name, "seq": s, "impl": "sdpa_flash", "ms": ms})
                else:  # flash has no fp32: the backend SDPA picks
                    ms = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=kind == "causal"))
                    runs.append({"kernel": name, "seq": s, "impl": "sdpa", "ms": ms})
            if flex is not None:
                def mod(b, h, qi, ki, kind=kind, radius=radius):
                    if kind == "causal":
                        return qi >= ki
                    if kind == "window":
                        return (qi - ki <= radius) & (ki - qi <= radius)
                    return qi >= 0
                bm = create_block_mask(mod, 1, 1, s, s, device="cuda")
                ms = timed(lambda: flex(q, k, v, block_mask=bm))
                runs.append({"kernel": name, "seq": s, "impl": "flex", "ms": ms})
    json.dump({"torch": torch.__version__, "device": torch.cuda.get_device_name(),
               "flex": flex is not None, "runs": runs}, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
