"""PyTorch's CPU attention on the benchmark's shapes, as a baseline.

scaled_dot_product_attention (a fused flash-style CPU kernel in PyTorch 2.x)
for dense, is_causal for causal, and an explicit boolean mask for the
sliding window (SDPA has no native form of it, so it computes every score);
FlexAttention (torch.compile on the CPU) with a block mask for causal and
the window, which skips masked blocks. fp32, batch 1, 16 heads, head_dim 64
(BATCH and HEADS in the environment change the first two).
Writes JSON lines: impl, pattern, seq, threads, median/min/max ms.
usage: torch_sdpa.py OUT.json SEQ,SEQ,... THREADS,THREADS,... [REPS [IMPL:PATTERN,...]]
(the last argument keeps only those cases, e.g. torch-sdpa:dense)"""
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

out_path, seqs, threads = sys.argv[1], [int(x) for x in sys.argv[2].split(",")], [int(x) for x in sys.argv[3].split(",")]
reps = int(sys.argv[4]) if len(sys.argv) > 4 else 5
only = set(sys.argv[5].split(",")) if len(sys.argv) > 5 else None
import os

B, H, D, W = int(os.environ.get("BATCH", 1)), int(os.environ.get("HEADS", 16)), 64, 512

try:
    import torch._dynamo
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    # one compiled kernel per shape and mask: without room for all of them
    # dynamo falls back to the unfused eager path, which is not FlexAttention
    torch._dynamo.config.cache_size_limit = 256
    torch._dynamo.config.accumulated_cache_size_limit = 1024
    have_flex = True
except Exception as e:  # an old torch: no FlexAttention
    print("FlexAttention unavailable:", e, file=sys.stderr)
    have_flex = False


def timed(fn):
    fn()
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return statistics.median(t) * 1e3, min(t) * 1e3, max(t) * 1e3


rows = []
for S in seqs:
    g = torch.Generator().manual_seed(7)
    q, k, v = (torch.rand(B, H, S, D, generator=g) * 2 - 1 for _ in range(3))
    i = torch.arange(S)
    window = (i[:, None] - i[None, :]).abs() <= W // 2
    cases = [("torch-sdpa", "dense", lambda: F.scaled_dot_product_attention(q, k, v)),
             ("torch-sdpa", "causal", lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
             ("torch-sdpa", "window 512", lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=window))]
    if have_flex and (only is None or any(c.startswith("torch-flex:") for c in only)):
        flex = torch.compile(flex_attention, dynamic=False)
        causal_bm = create_block_mask(lambda b, h, qi, ki: qi >= ki, None, None, S, S, device="cpu")
        window_bm = create_block_mask(lambda b, h, qi, ki: (qi - ki).abs() <= W // 2, None, None, S, S, device="cpu")
        cases += [("torch-flex", "dense", lambda: flex(q, k, v)),
                  ("torch-flex", "causal", lambda: flex(q, k, v, block_mask=causal_bm)),
                  ("torch-flex", "window 512", lambda: flex(q, k, v, block_mask=window_bm))]
    for thr in threads:
        torch.set_num_threads(thr)
        for impl, pattern, fn in cases:
            if only is not None and f"{impl}:{pattern}" not in only:
                continue
            with torch.no_grad():
                try:
                    med, lo, hi = timed(fn)
                except Exception as e:
                    print(f"{impl} {pattern} seq {S}: failed: {e}", file=sys.stderr)
                    continue
            r = {"impl": impl, "pattern": pattern, "seq": S, "threads": thr, "median_ms": med, "min_ms": lo,
                 "max_ms": hi, "torch": torch.__version__}
            rows.append(r)
            print(json.dumps(r), flush=True)
json.dump(rows, open(out_path, "w"), indent=1)
