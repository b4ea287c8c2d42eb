// What IRDL cannot check, sattn-verify does; each case fails alone.
// RUN: not sattn-opt %s --split-input-file 2>&1 | %FileCheck %s

func.func @rank(%q: tensor<2x8x4xf32>, %k: tensor<1x2x8x4xf32>) {
  // CHECK: sattn-verify.mlir:[[@LINE+1]]:{{[0-9]+}}: error: 'sattn.qk': Q must be a ranked tensor of rank 4
  %s = "sattn.qk"(%q, %k) {scale = 0.5 : f64, precision = f32} : (tensor<2x8x4xf32>, tensor<1x2x8x4xf32>) -> tensor<1x2x8x8xf32>
  return
}

// -----

func.func @heads(%q: tensor<1x3x8x4xf32>, %k: tensor<1x2x8x4xf32>) {
  // CHECK: [[@LINE+1]]:{{[0-9]+}}: error: 'sattn.qk': K's heads (2) must divide Q's heads (3)
  %s = "sattn.qk"(%q, %k) {scale = 0.5 : f64, precision = f32} : (tensor<1x3x8x4xf32>, tensor<1x2x8x4xf32>) -> tensor<1x3x8x8xf32>
  return
}

// -----

func.func @head_dim(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x5xf32>) {
  // CHECK: [[@LINE+1]]:{{[0-9]+}}: error: 'sattn.qk': Q and K must agree in batch, sequence length and head_dim
  %s = "sattn.qk"(%q, %k) {scale = 0.5 : f64, precision = f32} : (tensor<1x2x8x4xf32>, tensor<1x2x8x5xf32>) -> tensor<1x2x8x8xf32>
  return
}

// -----

func.func @scale(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>) {
  // CHECK: [[@LINE+1]]:{{[0-9]+}}: error: 'sattn.qk': 'scale' must be a positive finite float
  %s = "sattn.qk"(%q, %k) {scale = -0.5 : f64, precision = f32} : (tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>) -> tensor<1x2x8x8xf32>
  return
}

// -----

func.func @precision(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>) {
  // CHECK: [[@LINE+1]]:{{[0-9]+}}: error: 'sattn.qk': 'precision' must be f32, f16 or bf16
  %s = "sattn.qk"(%q, %k) {scale = 0.5 : f64, precision = i8} : (tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>) -> tensor<1x2x8x8xf32>
  return
}

// -----

func.func @nm(%s: tensor<1x2x8x8xf32>) {
  // CHECK: [[@LINE+1]]:{{[0-9]+}}: error: 'sattn.select_nm': needs n <= m, got 5:4
  %r = "sattn.select_nm"(%s) {n = 5 : i64, m = 4 : i64} : (tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  return
}

// -----

func.func @square(%s: tensor<1x2x8x7xf32>) {
  // CHECK: [[@LINE+1]]:{{[0-9]+}}: error: 'sattn.select_nm': scores must be square in its last two dims (queries x keys)
  %r = "sattn.select_nm"(%s) {n = 2 : i64, m = 4 : i64} : (tensor<1x2x8x7xf32>) -> tensor<1x2x8x7xf32>
  return
}

// -----

func.func @window() {
  // CHECK: [[@LINE+1]]:{{[0-9]+}}: error: 'sattn.mask_window': 'size' must be in [1, 16777216], got 0
  %m = "sattn.mask_window"() {size = 0 : i64, dilation = 1 : i64} : () -> tensor<8x8xi1>
  return
}

// -----

func.func @mask_type() {
  // CHECK: [[@LINE+1]]:{{[0-9]+}}: error: 'sattn.mask_causal': a mask must have element type i1
  %m = "sattn.mask_causal"() : () -> tensor<8x8xf32>
  return
}

// -----

func.func @global() {
  // CHECK: [[@LINE+1]]:{{[0-9]+}}: error: 'sattn.mask_global': 'tokens' must be non-negative, sorted and unique
  %m = "sattn.mask_global"() {tokens = array<i64: 3, 1>} : () -> tensor<8x8xi1>
  return
}

// -----

func.func @window2d() {
  // CHECK: [[@LINE+1]]:{{[0-9]+}}: error: 'sattn.mask_window2d': window sizes must be odd
  %m = "sattn.mask_window2d"() {image_h = 4 : i64, image_w = 4 : i64, win_h = 2 : i64, win_w = 3 : i64, offset = 0 : i64} : () -> tensor<16x16xi1>
  return
}

// -----

func.func @blocks() {
  // CHECK: [[@LINE+1]]:{{[0-9]+}}: error: 'sattn.mask_blocks': 'pairs' must hold a non-empty list of (query block, key block) pairs
  %m = "sattn.mask_blocks"() {block = 4 : i64, pairs = array<i64: 0, 1, 2>} : () -> tensor<16x16xi1>
  return
}

// -----

func.func @bigbird() {
  // CHECK: [[@LINE+1]]:{{[0-9]+}}: error: 'sattn.mask_bigbird': 'window' must be odd
  %m = "sattn.mask_bigbird"() {block = 4 : i64, window = 2 : i64, random = 1 : i64, global = 0 : i64, seed = 0 : i64} : () -> tensor<16x16xi1>
  return
}

// -----

func.func @apply(%s: tensor<1x1x8x8xf32>, %m: tensor<4x4xi1>) {
  // CHECK: [[@LINE+1]]:{{[0-9]+}}: error: 'sattn.apply_mask': the mask's shape must match the scores' last two dims
  %r = "sattn.apply_mask"(%s, %m) : (tensor<1x1x8x8xf32>, tensor<4x4xi1>) -> tensor<1x1x8x8xf32>
  return
}

// -----

func.func @filter(%s: tensor<1x1x8x8xf32>, %q: tensor<1x1x8x4xf32>, %k: tensor<1x1x8x4xf32>) {
  // CHECK: [[@LINE+2]]:{{[0-9]+}}: error: 'sattn.filter_round': 'k_bits' must be in [2, 8], got 1
  // CHECK: [[@LINE+1]]:{{[0-9]+}}: error: 'sattn.filter_round': keep top_ratio must be in (0, 1], got 2
  %r = "sattn.filter_round"(%s, %q, %k) {q_bits = 4 : i64, k_bits = 1 : i64, keep = "top_ratio", keep_value = 2.0 : f64} : (tensor<1x1x8x8xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>) -> tensor<1x1x8x8xf32>
  return
}

// -----

func.func @predict(%s: tensor<1x1x8x8xf32>, %q: tensor<1x1x8x4xf32>, %k: tensor<1x1x8x4xf32>) {
  // CHECK: [[@LINE+1]]:{{[0-9]+}}: error: 'sattn.predict': 'dim' must be in [1, 4], got 16
  %r = "sattn.predict"(%s, %q, %k) {dim = 16 : i64, bits = 4 : i64, seed = 0 : i64, keep = "top_count", keep_value = 2.0 : f64} : (tensor<1x1x8x8xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>) -> tensor<1x1x8x8xf32>
  return
}

// -----

func.func @prune(%s: tensor<1x1x8x8xf32>, %imp: tensor<1x7xf32>) {
  // CHECK: [[@LINE+2]]:{{[0-9]+}}: error: 'sattn.prune_tokens': importance must be [batch, seq]
  // CHECK: [[@LINE+1]]:{{[0-9]+}}: error: 'sattn.prune_tokens': 'keep' must be in (0, 1], got 0
  %r = "sattn.prune_tokens"(%s, %imp) {keep = 0.0 : f64} : (tensor<1x1x8x8xf32>, tensor<1x7xf32>) -> tensor<1x1x8x8xf32>
  return
}

// -----

func.func @requant(%p: tensor<1x1x8x8xf32>, %q: tensor<1x1x8x4xf32>, %k: tensor<1x1x8x4xf32>) {
  // CHECK: [[@LINE+2]]:{{[0-9]+}}: error: 'sattn.requantize': msb + lsb must be at most 16
  // CHECK: [[@LINE+1]]:{{[0-9]+}}: error: 'sattn.requantize': 'threshold' must be a probability in (0, 1)
  %r = "sattn.requantize"(%p, %q, %k) {msb = 8 : i64, lsb = 9 : i64, threshold = 1.5 : f64} : (tensor<1x1x8x8xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>) -> tensor<1x1x8x8xf32>
  return
}

// -----

func.func @av(%p: tensor<1x1x8x8xf32>, %v: tensor<1x1x9x4xf32>) {
  // CHECK: [[@LINE+1]]:{{[0-9]+}}: error: 'sattn.av': V must have one row per key of the probabilities
  %o = "sattn.av"(%p, %v) {accumulate = f32} : (tensor<1x1x8x8xf32>, tensor<1x1x9x4xf32>) -> tensor<1x1x8x4xf32>
  return
}

// -----

// IRDL's own checks come first: a missing attribute, an unknown keep rule.
func.func @irdl(%s: tensor<1x1x8x8xf32>) {
  // CHECK: [[@LINE+1]]:{{[0-9]+}}: error: 'sattn.select_nm' op attribute "m" is expected but not provided
  %r = "sattn.select_nm"(%s) {n = 2 : i64} : (tensor<1x1x8x8xf32>) -> tensor<1x1x8x8xf32>
  return
}
