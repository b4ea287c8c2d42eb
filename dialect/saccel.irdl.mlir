// The saccel dialect: a scheduled accelerator program (docs/accel-isa.md),
// one op per instruction of runtime/accel/isa.h and one per section of the
// stream container. sattn-lower-accel writes it; the encoder
// (codegen/accel/encode.c) turns it into a .sacc stream word for word.
//
// A program is a func.func with no arguments and the attribute
// `saccel.program`, whose body is, in order:
//   saccel.header, saccel.mask, saccel.tables   (always)
//   saccel.dynamic, then one saccel.round per filter round
//                                               (dynamic patterns only)
//   the instructions, ending with saccel.end, then func.return.
// `saccel.heads` runs every instruction after it up to saccel.end once per
// head; the encoder computes the loop's body length.
//
// The attribute names are the encoder's field tables (codegen/accel/saccel.c);
// every attribute gets its own constraint variable (IRDL unifies variables).
irdl.dialect @saccel {
  // ---- sections ----

  // Shapes, precisions and the PE array the program was scheduled for.
  irdl.operation @header {
    %batch = irdl.base "#builtin.integer"
    %heads = irdl.base "#builtin.integer"
    %kvh = irdl.base "#builtin.integer"
    %seq = irdl.base "#builtin.integer"
    %dim = irdl.base "#builtin.integer"
    %bhsd = irdl.is "bhsd"
    %bshd = irdl.is "bshd"
    %layout = irdl.any_of(%bhsd, %bshd)
    %storage = irdl.base "#builtin.type"
    %output = irdl.base "#builtin.type"
    %scale = irdl.base "#builtin.float"
    %rows = irdl.base "#builtin.integer"
    %cols = irdl.base "#builtin.integer"
    %gpes = irdl.base "#builtin.integer"
    %hash = irdl.base "#builtin.integer"
    irdl.attributes {"batch" = %batch, "heads" = %heads, "kv_heads" = %kvh, "seq" = %seq, "head_dim" = %dim,
                     "layout" = %layout, "storage" = %storage, "output" = %output, "scale" = %scale,
                     "rows" = %rows, "cols" = %cols, "global_pes" = %gpes, "config_hash" = %hash}
  }

  // The static pattern the mask unit evaluates (docs/semantics.md section 3).
  irdl.operation @mask {
    %causal = irdl.base "#builtin.integer"
    %hw = irdl.base "#builtin.integer"
    %w = irdl.base "#builtin.integer"
    %dil = irdl.base "#builtin.integer"
    %hw2 = irdl.base "#builtin.integer"
    %ih = irdl.base "#builtin.integer"
    %iw = irdl.base "#builtin.integer"
    %wh = irdl.base "#builtin.integer"
    %ww = irdl.base "#builtin.integer"
    %ioff = irdl.base "#builtin.integer"
    %blk = irdl.base "#builtin.integer"
    %hbb = irdl.base "#builtin.integer"
    %bbw = irdl.base "#builtin.integer"
    %bbr = irdl.base "#builtin.integer"
    %bbg = irdl.base "#builtin.integer"
    %bbs = irdl.base "#builtin.integer"
    irdl.attributes {"causal" = %causal, "has_window" = %hw, "window" = %w, "dilation" = %dil,
                     "has_window2d" = %hw2, "image_h" = %ih, "image_w" = %iw, "win_h" = %wh, "win_w" = %ww,
                     "image_offset" = %ioff, "block" = %blk, "has_bigbird" = %hbb, "bb_window" = %bbw,
                     "bb_random" = %bbr, "bb_global" = %bbg, "bb_seed" = %bbs}
  }

  // Global tokens, block pairs (query block, key block, flattened) and the
  // diagonal passes' key offsets.
  irdl.operation @tables {
    %g = irdl.base "#builtin.dense_array"
    %b = irdl.base "#builtin.dense_array"
    %o = irdl.base "#builtin.dense_array"
    irdl.attributes {"globals" = %g, "blocks" = %b, "offsets" = %o}
  }

  // The row engine's parameters (docs/semantics.md section 4-8).
  irdl.operation @dynamic {
    %hp = irdl.base "#builtin.integer"
    %pd = irdl.base "#builtin.integer"
    %pb = irdl.base "#builtin.integer"
    %all = irdl.is "all"
    %ratio = irdl.is "top_ratio"
    %count = irdl.is "top_count"
    %mean = irdl.is "mean"
    %pk = irdl.any_of(%all, %ratio, %count, %mean)
    %pv = irdl.base "#builtin.float"
    %ps = irdl.base "#builtin.integer"
    %n = irdl.base "#builtin.integer"
    %m = irdl.base "#builtin.integer"
    %tk = irdl.base "#builtin.float"
    %hk = irdl.base "#builtin.float"
    %vk = irdl.base "#builtin.float"
    %prog = irdl.base "#builtin.integer"
    %msb = irdl.base "#builtin.integer"
    %lsb = irdl.base "#builtin.integer"
    %thr = irdl.base "#builtin.float"
    irdl.attributes {"has_predict" = %hp, "predict_dim" = %pd, "predict_bits" = %pb, "predict_keep" = %pk,
                     "predict_keep_value" = %pv, "predict_seed" = %ps, "nm_n" = %n, "nm_m" = %m,
                     "token_keep" = %tk, "head_keep" = %hk, "value_keep" = %vk, "has_progressive" = %prog,
                     "msb_bits" = %msb, "lsb_bits" = %lsb, "threshold" = %thr}
  }

  // One filter round: the bits of Q and K and what it keeps.
  irdl.operation @round {
    %qb = irdl.base "#builtin.integer"
    %kb = irdl.base "#builtin.integer"
    %all = irdl.is "all"
    %ratio = irdl.is "top_ratio"
    %count = irdl.is "top_count"
    %mean = irdl.is "mean"
    %k = irdl.any_of(%all, %ratio, %count, %mean)
    %v = irdl.base "#builtin.float"
    irdl.attributes {"q_bits" = %qb, "k_bits" = %kb, "keep" = %k, "keep_value" = %v}
  }

  // ---- instructions (runtime/accel/isa.h has each one's semantics and cost) ----

  irdl.operation @nop {
  }
  // The rest of the program up to saccel.end, once per head.
  irdl.operation @heads {
    %n = irdl.base "#builtin.integer"
    irdl.attributes {"count" = %n}
  }
  irdl.operation @loadq {
    %r = irdl.base "#builtin.integer"
    %f = irdl.base "#builtin.integer"
    irdl.attributes {"rows" = %r, "first" = %f}
  }
  // A diagonal pass: `columns` key offsets from entry `first` of the table.
  irdl.operation @diag {
    %c = irdl.base "#builtin.integer"
    %f = irdl.base "#builtin.integer"
    irdl.attributes {"columns" = %c, "first" = %f}
  }
  // A block pass over keys first .. first + columns - 1.
  irdl.operation @block {
    %c = irdl.base "#builtin.integer"
    %f = irdl.base "#builtin.integer"
    irdl.attributes {"columns" = %c, "first" = %f}
  }
  irdl.operation @gcol {
    %c = irdl.base "#builtin.integer"
    %f = irdl.base "#builtin.integer"
    irdl.attributes {"count" = %c, "first" = %f}
  }
  irdl.operation @grow {
    %t = irdl.base "#builtin.integer"
    irdl.attributes {"token" = %t}
  }
  irdl.operation @qk {
  }
  irdl.operation @softmax {
  }
  irdl.operation @av {
  }
  irdl.operation @sync {
  }
  irdl.operation @store {
    %r = irdl.base "#builtin.integer"
    %f = irdl.base "#builtin.integer"
    irdl.attributes {"rows" = %r, "first" = %f}
  }
  irdl.operation @end {
  }
  irdl.operation @tprune {
  }
  irdl.operation @hprune {
  }
  irdl.operation @cand {
  }
  // Low-bit scores; source 0 is DSA's prediction, r + 1 filter round r.
  irdl.operation @lowqk {
    %s = irdl.base "#builtin.integer"
    irdl.attributes {"source" = %s}
  }
  irdl.operation @select {
    %s = irdl.base "#builtin.integer"
    irdl.attributes {"source" = %s}
  }
  irdl.operation @fullqk {
  }
  irdl.operation @nm {
    %n = irdl.base "#builtin.integer"
    %m = irdl.base "#builtin.integer"
    irdl.attributes {"n" = %n, "m" = %m}
  }
  irdl.operation @msbqk {
  }
  irdl.operation @rsoftmax {
  }
  irdl.operation @requant {
  }
  irdl.operation @vprune {
  }
  irdl.operation @rav {
  }
}
