// RUN: not sattn-opt %s --split-input-file --pass sattn-lower-cpu 2>/dev/null | %FileCheck %s
// RUN: not sattn-opt %s --split-input-file --pass sattn-lower-cpu 2>&1 >/dev/null | %FileCheck %s --check-prefix=ERR

// Any and/or tree of masks lowers; the kernel keeps the name, takes the C
// ABI and holds no sattn op. The window bounds the key loop in closed form.
// CHECK-LABEL: func.func @mask_tree(%arg0: !llvm.ptr, %arg1: !llvm.ptr, %arg2: !llvm.ptr, %arg3: !llvm.ptr, %arg4: i64, %arg5: i64
// CHECK-SAME: -> i32
// CHECK-NOT: sattn.
// CHECK: arith.remsi
// CHECK: return %{{.*}} : i32
func.func @mask_tree(%q: tensor<1x2x?x16xf32>, %k: tensor<1x2x?x16xf32>, %v: tensor<1x2x?x16xf32>) -> tensor<1x2x?x16xf32> {
  %s = "sattn.qk"(%q, %k) {scale = 0.25 : f64, precision = f32} : (tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>) -> tensor<1x2x?x?xf32>
  %w = "sattn.mask_window"() {size = 5 : i64, dilation = 2 : i64} : () -> tensor<?x?xi1>
  %c = "sattn.mask_causal"() : () -> tensor<?x?xi1>
  %g = "sattn.mask_global"() {tokens = array<i64: 0>} : () -> tensor<?x?xi1>
  %a = "sattn.mask_and"(%w, %c) : (tensor<?x?xi1>, tensor<?x?xi1>) -> tensor<?x?xi1>
  %m = "sattn.mask_or"(%a, %g) : (tensor<?x?xi1>, tensor<?x?xi1>) -> tensor<?x?xi1>
  %s1 = "sattn.apply_mask"(%s, %m) : (tensor<1x2x?x?xf32>, tensor<?x?xi1>) -> tensor<1x2x?x?xf32>
  %p = "sattn.softmax"(%s1) {precision = f32} : (tensor<1x2x?x?xf32>) -> tensor<1x2x?x?xf32>
  %o = "sattn.av"(%p, %v) {accumulate = f32} : (tensor<1x2x?x?xf32>, tensor<1x2x?x16xf32>) -> tensor<1x2x?x16xf32>
  return %o : tensor<1x2x?x16xf32>
}

// -----

// The fused kernel runs N:M before softmax; IR that asks for another order
// is rejected, not silently reordered.
// ERR: sattn-lower-cpu.mlir:[[@LINE+4]]:9: error: sattn-lower-cpu: stages out of the order the fused kernel runs them
func.func @out_of_order(%q: tensor<1x2x8x16xf32>, %k: tensor<1x2x8x16xf32>, %v: tensor<1x2x8x16xf32>) -> tensor<1x2x8x16xf32> {
  %s = "sattn.qk"(%q, %k) {scale = 0.25 : f64, precision = f32} : (tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>) -> tensor<1x2x8x8xf32>
  %p = "sattn.softmax"(%s) {precision = f32} : (tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %p2 = "sattn.select_nm"(%p) {n = 2 : i64, m = 4 : i64} : (tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %o = "sattn.av"(%p2, %v) {accumulate = f32} : (tensor<1x2x8x8xf32>, tensor<1x2x8x16xf32>) -> tensor<1x2x8x16xf32>
  return %o : tensor<1x2x8x16xf32>
}

// -----

// fp8 inputs lower; an fp8 output (which the spec language does not allow
// either) is rejected.
// ERR: sattn-lower-cpu.mlir:[[@LINE+1]]:1: error: sattn-lower-cpu: the CPU target writes fp32, fp16 or bf16 outputs
func.func @fp8(%q: tensor<1x2x8x16xf8E4M3FN>, %k: tensor<1x2x8x16xf8E4M3FN>, %v: tensor<1x2x8x16xf8E4M3FN>) -> tensor<1x2x8x16xf8E4M3FN> {
  %s = "sattn.qk"(%q, %k) {scale = 0.25 : f64, precision = f32} : (tensor<1x2x8x16xf8E4M3FN>, tensor<1x2x8x16xf8E4M3FN>) -> tensor<1x2x8x8xf32>
  %p = "sattn.softmax"(%s) {precision = f32} : (tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %o = "sattn.av"(%p, %v) {accumulate = f32} : (tensor<1x2x8x8xf32>, tensor<1x2x8x16xf8E4M3FN>) -> tensor<1x2x8x16xf8E4M3FN>
  return %o : tensor<1x2x8x16xf8E4M3FN>
}

// -----

// The func's q is not what the ops read (a fuzzer found this): its head_dim
// of 624 would overrun the kernel generator's register blocking.
// ERR: sattn-lower-cpu.mlir:[[@LINE+1]]:1: error: sattn-lower-cpu: q, k and v must share head_dim (at most 256), k and v their heads (at most 65536)
func.func @odd_args(%q: tensor<1x2x8x624xf32>, %k: tensor<1x2x8x16xf32>, %v: tensor<1x2x8x16xf32>) -> tensor<1x2x8x16xf32> {
  %s = "sattn.qk"(%k, %k) {scale = 0.25 : f64, precision = f32} : (tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>) -> tensor<1x2x8x8xf32>
  %p = "sattn.softmax"(%s) {precision = f32} : (tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %o = "sattn.av"(%p, %v) {accumulate = f32} : (tensor<1x2x8x8xf32>, tensor<1x2x8x16xf32>) -> tensor<1x2x8x16xf32>
  return %o : tensor<1x2x8x16xf32>
}
