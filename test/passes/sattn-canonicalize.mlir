// RUN: sattn-opt %s --split-input-file --pass sattn-canonicalize | %FileCheck %s

// N:M with N = M keeps everything and disappears; a window covering the
// whole sequence becomes mask_all, which then folds away with the
// apply_mask and the mask_or it fed.
// CHECK-LABEL: func.func @nm_equal_and_wide_window
// CHECK-NOT: sattn.select_nm
// CHECK-NOT: sattn.mask
// CHECK-NOT: sattn.apply_mask
// CHECK: %[[S:.*]] = "sattn.qk"
// CHECK: %[[P:.*]] = "sattn.softmax"(%[[S]])
func.func @nm_equal_and_wide_window(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32> {
  %s = "sattn.qk"(%q, %k) {scale = 0.5 : f64, precision = f32} : (tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>) -> tensor<1x2x8x8xf32>
  %w = "sattn.mask_window"() {size = 15 : i64, dilation = 1 : i64} : () -> tensor<8x8xi1>
  %g = "sattn.mask_global"() {tokens = array<i64: 0>} : () -> tensor<8x8xi1>
  %m = "sattn.mask_or"(%w, %g) : (tensor<8x8xi1>, tensor<8x8xi1>) -> tensor<8x8xi1>
  %s1 = "sattn.apply_mask"(%s, %m) : (tensor<1x2x8x8xf32>, tensor<8x8xi1>) -> tensor<1x2x8x8xf32>
  %s2 = "sattn.select_nm"(%s1) {n = 4 : i64, m = 4 : i64} : (tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %p = "sattn.softmax"(%s2) {precision = f32} : (tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %o = "sattn.av"(%p, %v) {accumulate = f32} : (tensor<1x2x8x8xf32>, tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
  return %o : tensor<1x2x8x4xf32>
}

// -----

// A window shorter than the sequence stays; so does a dilated one, even
// when it spans the sequence (it skips keys). A causal mask anded with
// mask_all is the causal mask.
// CHECK-LABEL: func.func @windows_that_stay
// CHECK-DAG: "sattn.mask_window"() {dilation = 1 : i64, size = 7 : i64}
// CHECK-DAG: "sattn.mask_window"() {dilation = 2 : i64, size = 64 : i64}
// CHECK-DAG: %[[C:.*]] = "sattn.mask_causal"
// CHECK-NOT: sattn.mask_all
// CHECK: "sattn.apply_mask"(%{{.*}}, %[[C]])
func.func @windows_that_stay(%q: tensor<1x1x8x4xf32>, %k: tensor<1x1x8x4xf32>, %v: tensor<1x1x8x4xf32>) -> tensor<1x1x8x4xf32> {
  %s = "sattn.qk"(%q, %k) {scale = 0.5 : f64, precision = f32} : (tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>) -> tensor<1x1x8x8xf32>
  %w = "sattn.mask_window"() {size = 7 : i64, dilation = 1 : i64} : () -> tensor<8x8xi1>
  %d = "sattn.mask_window"() {size = 64 : i64, dilation = 2 : i64} : () -> tensor<8x8xi1>
  %a = "sattn.mask_all"() : () -> tensor<8x8xi1>
  %c = "sattn.mask_causal"() : () -> tensor<8x8xi1>
  %ca = "sattn.mask_and"(%a, %c) : (tensor<8x8xi1>, tensor<8x8xi1>) -> tensor<8x8xi1>
  %wd = "sattn.mask_or"(%w, %d) : (tensor<8x8xi1>, tensor<8x8xi1>) -> tensor<8x8xi1>
  %s1 = "sattn.apply_mask"(%s, %ca) : (tensor<1x1x8x8xf32>, tensor<8x8xi1>) -> tensor<1x1x8x8xf32>
  %s2 = "sattn.apply_mask"(%s1, %wd) : (tensor<1x1x8x8xf32>, tensor<8x8xi1>) -> tensor<1x1x8x8xf32>
  %p = "sattn.softmax"(%s2) {precision = f32} : (tensor<1x1x8x8xf32>) -> tensor<1x1x8x8xf32>
  %o = "sattn.av"(%p, %v) {accumulate = f32} : (tensor<1x1x8x8xf32>, tensor<1x1x8x4xf32>) -> tensor<1x1x8x4xf32>
  return %o : tensor<1x1x8x4xf32>
}

// -----

// Filter rounds and predictions that keep 100%, or at least every key,
// disappear; those that select stay. Value pruning at 1 disappears.
// CHECK-LABEL: func.func @selections
// CHECK-COUNT-1: "sattn.filter_round"
// CHECK-SAME: keep = "mean"
// CHECK-NOT: "sattn.filter_round"
// CHECK-NOT: "sattn.predict"
// CHECK-NOT: "sattn.prune_values"
func.func @selections(%q: tensor<1x1x8x4xf32>, %k: tensor<1x1x8x4xf32>, %v: tensor<1x1x8x4xf32>) -> tensor<1x1x8x4xf32> {
  %s = "sattn.qk"(%q, %k) {scale = 0.5 : f64, precision = f32} : (tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>) -> tensor<1x1x8x8xf32>
  %s1 = "sattn.filter_round"(%s, %q, %k) {q_bits = 4 : i64, k_bits = 2 : i64, keep = "top_ratio", keep_value = 1.0 : f64} : (tensor<1x1x8x8xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>) -> tensor<1x1x8x8xf32>
  %s2 = "sattn.filter_round"(%s1, %q, %k) {q_bits = 4 : i64, k_bits = 4 : i64, keep = "mean", keep_value = 0.0 : f64} : (tensor<1x1x8x8xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>) -> tensor<1x1x8x8xf32>
  %s3 = "sattn.predict"(%s2, %q, %k) {dim = 2 : i64, bits = 4 : i64, seed = 1 : i64, keep = "top_count", keep_value = 8.0 : f64} : (tensor<1x1x8x8xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>) -> tensor<1x1x8x8xf32>
  %p = "sattn.softmax"(%s3) {precision = f32} : (tensor<1x1x8x8xf32>) -> tensor<1x1x8x8xf32>
  %p1 = "sattn.prune_values"(%p) {keep = 1.0 : f64} : (tensor<1x1x8x8xf32>) -> tensor<1x1x8x8xf32>
  %o = "sattn.av"(%p1, %v) {accumulate = f32} : (tensor<1x1x8x8xf32>, tensor<1x1x8x4xf32>) -> tensor<1x1x8x4xf32>
  return %o : tensor<1x1x8x4xf32>
}

// -----

// With a run-time sequence length nothing about the length is assumed:
// the window stays, and so does a top-count selection.
// CHECK-LABEL: func.func @dynamic_length
// CHECK: "sattn.mask_window"
// CHECK: "sattn.predict"
func.func @dynamic_length(%q: tensor<1x1x?x4xf32>, %k: tensor<1x1x?x4xf32>, %v: tensor<1x1x?x4xf32>) -> tensor<1x1x?x4xf32> {
  %s = "sattn.qk"(%q, %k) {scale = 0.5 : f64, precision = f32} : (tensor<1x1x?x4xf32>, tensor<1x1x?x4xf32>) -> tensor<1x1x?x?xf32>
  %w = "sattn.mask_window"() {size = 1000000 : i64, dilation = 1 : i64} : () -> tensor<?x?xi1>
  %s1 = "sattn.apply_mask"(%s, %w) : (tensor<1x1x?x?xf32>, tensor<?x?xi1>) -> tensor<1x1x?x?xf32>
  %s2 = "sattn.predict"(%s1, %q, %k) {dim = 2 : i64, bits = 4 : i64, seed = 1 : i64, keep = "top_count", keep_value = 8.0 : f64} : (tensor<1x1x?x?xf32>, tensor<1x1x?x4xf32>, tensor<1x1x?x4xf32>) -> tensor<1x1x?x?xf32>
  %p = "sattn.softmax"(%s2) {precision = f32} : (tensor<1x1x?x?xf32>) -> tensor<1x1x?x?xf32>
  %o = "sattn.av"(%p, %v) {accumulate = f32} : (tensor<1x1x?x?xf32>, tensor<1x1x?x4xf32>) -> tensor<1x1x?x4xf32>
  return %o : tensor<1x1x?x4xf32>
}
