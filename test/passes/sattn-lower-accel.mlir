// RUN: not sattn-opt %s --split-input-file --pass sattn-lower-accel 2>/dev/null | %FileCheck %s
// RUN: not sattn-opt %s --split-input-file --pass sattn-lower-accel 2>&1 >/dev/null | %FileCheck %s --check-prefix=ERR

// causal AND (window OR global) on the module's 16 x 8 array with 4 global
// PEs: per head and tile of 16 rows, one diagonal pass over the window's
// key offsets (causal drops the positive ones) and one pass of the global
// column; the global query gets the global row before the tiles.
// CHECK-LABEL: func.func @local() attributes {saccel.program}
// CHECK-NEXT: "saccel.header"() {batch = 1 : i64, cols = 8 : i64, config_hash = {{-?[0-9]+}} : i64, global_pes = 4 : i64, head_dim = 16 : i64, heads = 2 : i64, kv_heads = 2 : i64, layout = "bhsd", output = f32, rows = 16 : i64, scale = 2.500000e-01 : f64, seq = 40 : i64, storage = f32}
// CHECK-NEXT: "saccel.mask"() {{{.*}} causal = true, dilation = 1 : i64, {{.*}} has_window = true, {{.*}} window = 5 : i64}
// CHECK-NEXT: "saccel.tables"() {blocks = array<i64>, globals = array<i64: 0>, offsets = array<i64: -2, -1, 0>}
// CHECK-NEXT: "saccel.heads"() {count = 2 : i64}
// CHECK-NEXT: "saccel.grow"() {token = 0 : i64}
// CHECK-NEXT: "saccel.loadq"() {first = 0 : i64, rows = 16 : i64}
// CHECK-NEXT: "saccel.diag"() {columns = 3 : i64, first = 0 : i64}
// CHECK-NEXT: "saccel.qk"
// CHECK-NEXT: "saccel.softmax"
// CHECK-NEXT: "saccel.av"
// CHECK-NEXT: "saccel.sync"
// CHECK-NEXT: "saccel.gcol"() {count = 1 : i64, first = 0 : i64}
// CHECK: "saccel.store"() {first = 0 : i64, rows = 16 : i64}
// CHECK: "saccel.loadq"() {first = 32 : i64, rows = 8 : i64}
// CHECK: "saccel.store"() {first = 32 : i64, rows = 8 : i64}
// CHECK-NEXT: "saccel.end"
// CHECK-NEXT: return
module attributes {saccel.config = {pe_rows = 16 : i64, pe_cols = 8 : i64, global_pes = 4 : i64}} {
func.func @local(%q: tensor<1x2x40x16xf32>, %k: tensor<1x2x40x16xf32>, %v: tensor<1x2x40x16xf32>) -> tensor<1x2x40x16xf32> {
  %s = "sattn.qk"(%q, %k) {scale = 0.25 : f64, precision = f32} : (tensor<1x2x40x16xf32>, tensor<1x2x40x16xf32>) -> tensor<1x2x40x40xf32>
  %w = "sattn.mask_window"() {size = 5 : i64, dilation = 1 : i64} : () -> tensor<40x40xi1>
  %g = "sattn.mask_global"() {tokens = array<i64: 0>} : () -> tensor<40x40xi1>
  %o1 = "sattn.mask_or"(%w, %g) : (tensor<40x40xi1>, tensor<40x40xi1>) -> tensor<40x40xi1>
  %c = "sattn.mask_causal"() : () -> tensor<40x40xi1>
  %m = "sattn.mask_and"(%c, %o1) : (tensor<40x40xi1>, tensor<40x40xi1>) -> tensor<40x40xi1>
  %s1 = "sattn.apply_mask"(%s, %m) : (tensor<1x2x40x40xf32>, tensor<40x40xi1>) -> tensor<1x2x40x40xf32>
  %p = "sattn.softmax"(%s1) {precision = f32} : (tensor<1x2x40x40xf32>) -> tensor<1x2x40x40xf32>
  %o = "sattn.av"(%p, %v) {accumulate = f32} : (tensor<1x2x40x40xf32>, tensor<1x2x40x16xf32>) -> tensor<1x2x40x16xf32>
  return %o : tensor<1x2x40x16xf32>
}
}

// -----

// Dynamic stages go to the row engine: a DYNAMIC section with one op per
// filter round, then per tile of 32 rows (the default array) candidates,
// each round's low-bit scores and selection, exact scores on the
// survivors, the N:M choice, softmax and A.V.
// CHECK-LABEL: func.func @rows() attributes {saccel.program}
// CHECK: "saccel.dynamic"() {{{.*}} nm_m = 4 : i64, nm_n = 2 : i64,
// CHECK-NEXT: "saccel.round"() {k_bits = 2 : i64, keep = "mean", keep_value = 0.000000e+00 : f64, q_bits = 4 : i64}
// CHECK-NEXT: "saccel.round"() {k_bits = 8 : i64, keep = "top_ratio", keep_value = 5.000000e-01 : f64, q_bits = 8 : i64}
// CHECK-NEXT: "saccel.heads"() {count = 2 : i64}
// CHECK-NEXT: "saccel.loadq"() {first = 0 : i64, rows = 32 : i64}
// CHECK-NEXT: "saccel.cand"
// CHECK-NEXT: "saccel.lowqk"() {source = 1 : i64}
// CHECK-NEXT: "saccel.select"() {source = 1 : i64}
// CHECK-NEXT: "saccel.lowqk"() {source = 2 : i64}
// CHECK-NEXT: "saccel.select"() {source = 2 : i64}
// CHECK-NEXT: "saccel.fullqk"
// CHECK-NEXT: "saccel.nm"() {m = 4 : i64, n = 2 : i64}
// CHECK-NEXT: "saccel.rsoftmax"
// CHECK-NEXT: "saccel.rav"
// CHECK-NEXT: "saccel.store"() {first = 0 : i64, rows = 32 : i64}
func.func @rows(%q: tensor<1x2x50x16xf16>, %k: tensor<1x2x50x16xf16>, %v: tensor<1x2x50x16xf16>) -> tensor<1x2x50x16xf32> {
  %s = "sattn.qk"(%q, %k) {scale = 0.25 : f64, precision = f32} : (tensor<1x2x50x16xf16>, tensor<1x2x50x16xf16>) -> tensor<1x2x50x50xf32>
  %f1 = "sattn.filter_round"(%s, %q, %k) {q_bits = 4 : i64, k_bits = 2 : i64, keep = "mean", keep_value = 0.0 : f64} : (tensor<1x2x50x50xf32>, tensor<1x2x50x16xf16>, tensor<1x2x50x16xf16>) -> tensor<1x2x50x50xf32>
  %f2 = "sattn.filter_round"(%f1, %q, %k) {q_bits = 8 : i64, k_bits = 8 : i64, keep = "top_ratio", keep_value = 0.5 : f64} : (tensor<1x2x50x50xf32>, tensor<1x2x50x16xf16>, tensor<1x2x50x16xf16>) -> tensor<1x2x50x50xf32>
  %n = "sattn.select_nm"(%f2) {n = 2 : i64, m = 4 : i64} : (tensor<1x2x50x50xf32>) -> tensor<1x2x50x50xf32>
  %p = "sattn.softmax"(%n) {precision = f32} : (tensor<1x2x50x50xf32>) -> tensor<1x2x50x50xf32>
  %o = "sattn.av"(%p, %v) {accumulate = f32} : (tensor<1x2x50x50xf32>, tensor<1x2x50x16xf16>) -> tensor<1x2x50x16xf32>
  return %o : tensor<1x2x50x16xf32>
}

// -----

// The mask unit has one formula; an intersection of two windows is not of it.
// ERR: sattn-lower-accel.mlir:[[@LINE+1]]:1: error: sattn-lower-accel: the accelerator's mask unit evaluates causal AND (window OR window2d OR blocks OR bigbird OR global), one term of each at most; this mask has an intersection of terms other than causality
func.func @two_windows(%q: tensor<1x2x40x16xf32>, %k: tensor<1x2x40x16xf32>, %v: tensor<1x2x40x16xf32>) -> tensor<1x2x40x16xf32> {
  %s = "sattn.qk"(%q, %k) {scale = 0.25 : f64, precision = f32} : (tensor<1x2x40x16xf32>, tensor<1x2x40x16xf32>) -> tensor<1x2x40x40xf32>
  %w = "sattn.mask_window"() {size = 5 : i64, dilation = 1 : i64} : () -> tensor<40x40xi1>
  %w2 = "sattn.mask_window"() {size = 9 : i64, dilation = 2 : i64} : () -> tensor<40x40xi1>
  %m = "sattn.mask_and"(%w, %w2) : (tensor<40x40xi1>, tensor<40x40xi1>) -> tensor<40x40xi1>
  %s1 = "sattn.apply_mask"(%s, %m) : (tensor<1x2x40x40xf32>, tensor<40x40xi1>) -> tensor<1x2x40x40xf32>
  %p = "sattn.softmax"(%s1) {precision = f32} : (tensor<1x2x40x40xf32>) -> tensor<1x2x40x40xf32>
  %o = "sattn.av"(%p, %v) {accumulate = f32} : (tensor<1x2x40x40xf32>, tensor<1x2x40x16xf32>) -> tensor<1x2x40x16xf32>
  return %o : tensor<1x2x40x16xf32>
}

// -----

// Global tokens alone would mean every pair to the mask unit; in the IR
// they mean only the global rows and columns. Refused.
// ERR: sattn-lower-accel.mlir:[[@LINE+1]]:1: error: sattn-lower-accel: the accelerator's mask unit evaluates causal AND (window OR window2d OR blocks OR bigbird OR global), one term of each at most; this mask has global tokens without a local term to widen
func.func @global_only(%q: tensor<1x2x40x16xf32>, %k: tensor<1x2x40x16xf32>, %v: tensor<1x2x40x16xf32>) -> tensor<1x2x40x16xf32> {
  %s = "sattn.qk"(%q, %k) {scale = 0.25 : f64, precision = f32} : (tensor<1x2x40x16xf32>, tensor<1x2x40x16xf32>) -> tensor<1x2x40x40xf32>
  %g = "sattn.mask_global"() {tokens = array<i64: 3>} : () -> tensor<40x40xi1>
  %s1 = "sattn.apply_mask"(%s, %g) : (tensor<1x2x40x40xf32>, tensor<40x40xi1>) -> tensor<1x2x40x40xf32>
  %p = "sattn.softmax"(%s1) {precision = f32} : (tensor<1x2x40x40xf32>) -> tensor<1x2x40x40xf32>
  %o = "sattn.av"(%p, %v) {accumulate = f32} : (tensor<1x2x40x40xf32>, tensor<1x2x40x16xf32>) -> tensor<1x2x40x16xf32>
  return %o : tensor<1x2x40x16xf32>
}

// -----

// A stream is scheduled for one sequence length.
// ERR: sattn-lower-accel.mlir:[[@LINE+1]]:1: error: sattn-lower-accel: an accelerator stream is scheduled for one sequence length; give seq (sattnc --seq N)
func.func @dynamic_seq(%q: tensor<1x2x?x16xf32>, %k: tensor<1x2x?x16xf32>, %v: tensor<1x2x?x16xf32>) -> tensor<1x2x?x16xf32> {
  %s = "sattn.qk"(%q, %k) {scale = 0.25 : f64, precision = f32} : (tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>) -> tensor<1x2x?x?xf32>
  %p = "sattn.softmax"(%s) {precision = f32} : (tensor<1x2x?x?xf32>) -> tensor<1x2x?x?xf32>
  %o = "sattn.av"(%p, %v) {accumulate = f32} : (tensor<1x2x?x?xf32>, tensor<1x2x?x16xf32>) -> tensor<1x2x?x16xf32>
  return %o : tensor<1x2x?x16xf32>
}

// -----

// ERR: error: sattn-lower-accel: saccel.config is a dictionary of integers pe_rows and pe_cols (1 to 4096), global_pes (0 to 64), sram_q_bytes and sram_out_bytes (at least 0)
module attributes {saccel.config = {pe_rows = 0 : i64}} {
func.func @bad_config(%q: tensor<1x2x8x16xf32>, %k: tensor<1x2x8x16xf32>, %v: tensor<1x2x8x16xf32>) -> tensor<1x2x8x16xf32> {
  %s = "sattn.qk"(%q, %k) {scale = 0.25 : f64, precision = f32} : (tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>) -> tensor<1x2x8x8xf32>
  %p = "sattn.softmax"(%s) {precision = f32} : (tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %o = "sattn.av"(%p, %v) {accumulate = f32} : (tensor<1x2x8x8xf32>, tensor<1x2x8x16xf32>) -> tensor<1x2x8x16xf32>
  return %o : tensor<1x2x8x16xf32>
}
}
