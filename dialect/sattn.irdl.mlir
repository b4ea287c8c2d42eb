// The sattn dialect: attention as the spec states it, before fusion.
//
// Values: Q [B,H,S,D], K and V [B,KVH,S,D] (builtin tensors of the input
// element type); scores and probabilities [B,H,S,S] of the score/softmax type;
// static masks [S,S] of i1 (never materialized: the lowering derives loop
// bounds from the mask ops' attributes); token importance [B,S] and head
// importance [B,H] of f32. IRDL checks the structure below; element types,
// ranks, shapes and integer ranges are checked by the sattn-verify pass.
//
// Every attribute gets its own constraint variable: IRDL unifies variables,
// so sharing one would force two attributes to be equal.
irdl.dialect @sattn {
  // Scores: scale * Q K^T, computed at the `precision` type.
  irdl.operation @qk {
    %q = irdl.base "!builtin.tensor"
    %k = irdl.base "!builtin.tensor"
    %s = irdl.base "!builtin.tensor"
    %scale = irdl.base "#builtin.float"
    %prec = irdl.base "#builtin.type"
    irdl.operands(q: %q, k: %k)
    irdl.results(scores: %s)
    irdl.attributes {"scale" = %scale, "precision" = %prec}
  }

  // ---- static masks: [S,S] i1 values combined by and/or ----
  irdl.operation @mask_all {
    %m = irdl.base "!builtin.tensor"
    irdl.results(mask: %m)
  }
  irdl.operation @mask_causal {
    %m = irdl.base "!builtin.tensor"
    irdl.results(mask: %m)
  }
  irdl.operation @mask_window {
    %m = irdl.base "!builtin.tensor"
    %size = irdl.base "#builtin.integer"
    %dil = irdl.base "#builtin.integer"
    irdl.results(mask: %m)
    irdl.attributes {"size" = %size, "dilation" = %dil}
  }
  irdl.operation @mask_window2d {
    %m = irdl.base "!builtin.tensor"
    %ih = irdl.base "#builtin.integer"
    %iw = irdl.base "#builtin.integer"
    %wh = irdl.base "#builtin.integer"
    %ww = irdl.base "#builtin.integer"
    %off = irdl.base "#builtin.integer"
    irdl.results(mask: %m)
    irdl.attributes {"image_h" = %ih, "image_w" = %iw, "win_h" = %wh, "win_w" = %ww, "offset" = %off}
  }
  irdl.operation @mask_global {
    %m = irdl.base "!builtin.tensor"
    %tokens = irdl.base "#builtin.dense_array"
    irdl.results(mask: %m)
    irdl.attributes {"tokens" = %tokens}
  }
  irdl.operation @mask_blocks {
    %m = irdl.base "!builtin.tensor"
    %block = irdl.base "#builtin.integer"
    %pairs = irdl.base "#builtin.dense_array"
    irdl.results(mask: %m)
    irdl.attributes {"block" = %block, "pairs" = %pairs}
  }
  irdl.operation @mask_bigbird {
    %m = irdl.base "!builtin.tensor"
    %block = irdl.base "#builtin.integer"
    %win = irdl.base "#builtin.integer"
    %rnd = irdl.base "#builtin.integer"
    %glb = irdl.base "#builtin.integer"
    %seed = irdl.base "#builtin.integer"
    irdl.results(mask: %m)
    irdl.attributes {"block" = %block, "window" = %win, "random" = %rnd, "global" = %glb, "seed" = %seed}
  }
  irdl.operation @mask_and {
    %m = irdl.base "!builtin.tensor"
    irdl.operands(lhs: %m, rhs: %m)
    irdl.results(mask: %m)
  }
  irdl.operation @mask_or {
    %m = irdl.base "!builtin.tensor"
    irdl.operands(lhs: %m, rhs: %m)
    irdl.results(mask: %m)
  }
  // Scores outside the mask become -inf (never selected, zero probability).
  irdl.operation @apply_mask {
    %s = irdl.base "!builtin.tensor"
    %m = irdl.base "!builtin.tensor"
    irdl.operands(scores: %s, mask: %m)
    irdl.results(result: %s)
  }

  // ---- dynamic selection, in the order docs/semantics.md gives ----
  // SpAtten cascade token pruning by cumulative importance.
  irdl.operation @prune_tokens {
    %s = irdl.base "!builtin.tensor"
    %imp = irdl.base "!builtin.tensor"
    %keep = irdl.base "#builtin.float"
    irdl.operands(scores: %s, importance: %imp)
    irdl.results(result: %s)
    irdl.attributes {"keep" = %keep}
  }
  // SpAtten cascade head pruning by cumulative head importance.
  irdl.operation @prune_heads {
    %s = irdl.base "!builtin.tensor"
    %imp = irdl.base "!builtin.tensor"
    %keep = irdl.base "#builtin.float"
    irdl.operands(scores: %s, importance: %imp)
    irdl.results(result: %s)
    irdl.attributes {"keep" = %keep}
  }
  // DSA: approximate scores from a seeded random projection, then select.
  irdl.operation @predict {
    %s = irdl.base "!builtin.tensor"
    %q = irdl.base "!builtin.tensor"
    %k = irdl.base "!builtin.tensor"
    %dim = irdl.base "#builtin.integer"
    %bits = irdl.base "#builtin.integer"
    %seed = irdl.base "#builtin.integer"
    %k_ratio = irdl.is "top_ratio"
    %k_count = irdl.is "top_count"
    %k_mean = irdl.is "mean"
    %kind = irdl.any_of(%k_ratio, %k_count, %k_mean)
    %val = irdl.base "#builtin.float"
    irdl.operands(scores: %s, q: %q, k: %k)
    irdl.results(result: %s)
    irdl.attributes {"dim" = %dim, "bits" = %bits, "seed" = %seed, "keep" = %kind, "keep_value" = %val}
  }
  // Energon: one low-bit filtering round over the surviving candidates.
  irdl.operation @filter_round {
    %s = irdl.base "!builtin.tensor"
    %q = irdl.base "!builtin.tensor"
    %k = irdl.base "!builtin.tensor"
    %qb = irdl.base "#builtin.integer"
    %kb = irdl.base "#builtin.integer"
    %k_ratio = irdl.is "top_ratio"
    %k_count = irdl.is "top_count"
    %k_mean = irdl.is "mean"
    %kind = irdl.any_of(%k_ratio, %k_count, %k_mean)
    %val = irdl.base "#builtin.float"
    irdl.operands(scores: %s, q: %q, k: %k)
    irdl.results(result: %s)
    irdl.attributes {"q_bits" = %qb, "k_bits" = %kb, "keep" = %kind, "keep_value" = %val}
  }
  // DFSS: keep the n largest scores of every m consecutive keys.
  irdl.operation @select_nm {
    %s = irdl.base "!builtin.tensor"
    %n = irdl.base "#builtin.integer"
    %m = irdl.base "#builtin.integer"
    irdl.operands(scores: %s)
    irdl.results(result: %s)
    irdl.attributes {"n" = %n, "m" = %m}
  }

  // ---- normalization and aggregation ----
  irdl.operation @softmax {
    %s = irdl.base "!builtin.tensor"
    %p = irdl.base "!builtin.tensor"
    %prec = irdl.base "#builtin.type"
    irdl.operands(scores: %s)
    irdl.results(probs: %p)
    irdl.attributes {"precision" = %prec}
  }
  // SpAtten progressive quantization: rows whose largest probability is
  // below the threshold are recomputed with K at msb + lsb bits.
  irdl.operation @requantize {
    %p = irdl.base "!builtin.tensor"
    %q = irdl.base "!builtin.tensor"
    %k = irdl.base "!builtin.tensor"
    %msb = irdl.base "#builtin.integer"
    %lsb = irdl.base "#builtin.integer"
    %thr = irdl.base "#builtin.float"
    irdl.operands(probs: %p, q: %q, k: %k)
    irdl.results(result: %p)
    irdl.attributes {"msb" = %msb, "lsb" = %lsb, "threshold" = %thr}
  }
  // SpAtten local value pruning: per row, only the largest probabilities.
  irdl.operation @prune_values {
    %p = irdl.base "!builtin.tensor"
    %keep = irdl.base "#builtin.float"
    irdl.operands(probs: %p)
    irdl.results(result: %p)
    irdl.attributes {"keep" = %keep}
  }
  // Output: probabilities times V, accumulated at `accumulate`.
  irdl.operation @av {
    %p = irdl.base "!builtin.tensor"
    %v = irdl.base "!builtin.tensor"
    %o = irdl.base "!builtin.tensor"
    %acc = irdl.base "#builtin.type"
    irdl.operands(probs: %p, v: %v)
    irdl.results(out: %o)
    irdl.attributes {"accumulate" = %acc}
  }
  // Cumulative importance outputs for the next layer's pruning.
  irdl.operation @token_importance {
    %p = irdl.base "!builtin.tensor"
    %imp = irdl.base "!builtin.tensor"
    irdl.operands(probs: %p, importance: %imp)
    irdl.results(result: %imp)
  }
  irdl.operation @head_importance {
    %o = irdl.base "!builtin.tensor"
    %imp = irdl.base "!builtin.tensor"
    irdl.operands(out: %o, importance: %imp)
    irdl.results(result: %imp)
  }
}
