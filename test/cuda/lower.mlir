// sattn-lower-cuda turns each sattn func into a gpu.func of the module's
// gpu.module @sattn_kernels, next to the dynamic shared block.
// RUN: sattnc %S/Inputs/patterns.sattn --kernel window_h64 --emit=mlir | sattn-opt --pass sattn-canonicalize --pass sattn-lower-cuda | %FileCheck %s
// RUN: sattnc %S/Inputs/patterns.sattn --target=cuda --kernel dense_h64 --emit=mlir-cuda | %FileCheck %s --check-prefix=TWO

// CHECK: module attributes {gpu.container_module}
// CHECK: gpu.module @sattn_kernels
// CHECK: llvm.mlir.global external @sattn_smem() {addr_space = 3 : i32, alignment = 16 : i64} : !llvm.array<0 x i8>
// CHECK: gpu.func @window_h64(%{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: i64) kernel
// CHECK-SAME: sattn.key_tile = 64 : i32, sattn.query_tile = 64 : i32, sattn.shared_bytes = 46080 : i32
// The key loop and the tile search are scf.while; masks only on tiles not proven full.
// CHECK: scf.while
// CHECK: nvvm.cp.async.shared.global
// CHECK: nvvm.mma.sync
// CHECK: scf.if
// CHECK: nvvm.shfl.sync bfly
// CHECK: gpu.return
// CHECK-NOT: sattn.

// TWO: gpu.func @dense_h64
