# sattn_add_kernels(<name> SPECS <file.sattn>... [TARGETS cpu accel cuda]
#                   [CPU <llvm-cpu>] [ACCEL_SEQ <n>] [ACCEL_CONFIG <file>]
#                   [CUDA_ARCH <sm_XX>])
#
# Compiles attention specs at build time into a static library <name>, with
# a header <name>.h that declares everything in it (one header per spec file
# and target, as `sattnc --emit=header` writes them).
#
#   SPECS    .sattn files, relative to the current source directory or absolute
#   TARGETS  back ends: cpu (CPU kernels, the default), accel (accelerator
#            streams embedded as `const unsigned char NAME_sacc[]` and
#            `NAME_sacc_size`, for sa_accel_load) and cuda (each kernel's PTX
#            embedded as `const unsigned char NAME_ptx[]` and `NAME_ptx_size`, for
#            sa_cuda_module_load, with its launch contract `NAME_cuda`; no
#            CUDA toolkit is needed to build). Naming another is an error at
#            configure time.
#   CPU      the LLVM CPU the objects are tuned for: x86-64, x86-64-v3,
#            haswell, skylake-avx512, znver4, ... (default: x86-64-v3, which
#            runs on any AVX2 machine; native tunes for the build machine)
#   ACCEL_SEQ     the sequence length streams are scheduled for when a spec
#                 leaves it open (seq=?)
#   ACCEL_CONFIG  the accelerator's hardware configuration (default: sattn's)
#   CUDA_ARCH     the GPU the PTX is for: sm_80 (default), sm_86, sm_89, sm_90,
#                 sm_90a (the driver compiles PTX for newer GPUs too)
#
# Each spec is one build step with its spec file and sattnc as inputs and
# its object and header as outputs, so make and ninja rebuild only the specs
# that changed and compile them in parallel. Link <name> like any library;
# it brings sattn::runtime (the worker pool) with it.
include_guard(GLOBAL)

function(sattn_add_kernels name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "CPU;ACCEL_SEQ;ACCEL_CONFIG;CUDA_ARCH" "SPECS;TARGETS")
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "sattn_add_kernels(${name}): unknown arguments: ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT ARG_SPECS)
    message(FATAL_ERROR "sattn_add_kernels(${name}): SPECS needs at least one .sattn file")
  endif()
  if(NOT ARG_TARGETS)
    set(ARG_TARGETS cpu)
  endif()
  foreach(t IN LISTS ARG_TARGETS)
    if(NOT t STREQUAL "cpu" AND NOT t STREQUAL "accel" AND NOT t STREQUAL "cuda")
      message(FATAL_ERROR "sattn_add_kernels(${name}): target '${t}' is not supported by this sattn "
                          "(it compiles for: cpu, accel, cuda)")
    endif()
  endforeach()
  set(accel_args "")
  set(accel_deps "")
  if(ARG_ACCEL_SEQ)
    list(APPEND accel_args --seq ${ARG_ACCEL_SEQ})
  endif()
  if(ARG_ACCEL_CONFIG)
    get_filename_component(cfg ${ARG_ACCEL_CONFIG} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    list(APPEND accel_args --accel-config ${cfg})
    list(APPEND accel_deps ${cfg})
  endif()
  if(NOT ARG_CPU)
    set(ARG_CPU x86-64-v3)
  endif()
  if(NOT ARG_CUDA_ARCH)
    set(ARG_CUDA_ARCH sm_80)
  endif()
  # per embedding target: sattnc's arguments, the C artifact, extra inputs, what it is
  set(accel_args --target=accel ${accel_args})
  set(accel_c accel-c)
  set(accel_what "accelerator streams")
  set(cuda_args --target=cuda --arch=${ARG_CUDA_ARCH})
  set(cuda_c ptx-c)
  set(cuda_deps "")
  set(cuda_what "PTX for ${ARG_CUDA_ARCH}")

  set(out ${CMAKE_CURRENT_BINARY_DIR}/sattn_kernels/${name})
  file(MAKE_DIRECTORY ${out})
  set(objects "")
  set(headers "")
  set(includes "")
  foreach(spec IN LISTS ARG_SPECS)
    get_filename_component(abs ${spec} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    get_filename_component(stem ${spec} NAME_WE)
    if(stem IN_LIST stems)
      message(FATAL_ERROR "sattn_add_kernels(${name}): two spec files named '${stem}'")
    endif()
    list(APPEND stems ${stem})
    if("cpu" IN_LIST ARG_TARGETS)
      set(obj ${out}/${stem}.o)
      set(hdr ${out}/${stem}.h)
      add_custom_command(OUTPUT ${obj}
        COMMAND sattn::sattnc ${abs} --target=cpu --emit=obj --cpu=${ARG_CPU} -o ${obj}
        DEPENDS ${abs} sattn::sattnc
        COMMENT "sattnc: compiling ${spec} for ${ARG_CPU}"
        VERBATIM)
      add_custom_command(OUTPUT ${hdr}
        COMMAND sattn::sattnc ${abs} --target=cpu --emit=header -o ${hdr}
        DEPENDS ${abs} sattn::sattnc
        COMMENT "sattnc: header of ${spec}"
        VERBATIM)
      set_source_files_properties(${obj} PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
      list(APPEND objects ${obj})
      list(APPEND headers ${hdr})
      string(APPEND includes "#include \"${stem}.h\"\n")
    endif()
    # accel and cuda embed their artifacts as data in a generated C source
    foreach(t accel cuda)
      if(NOT t IN_LIST ARG_TARGETS)
        continue()
      endif()
      set(src ${out}/${stem}_${t}.c)
      set(hdr ${out}/${stem}_${t}.h)
      add_custom_command(OUTPUT ${src}
        COMMAND sattn::sattnc ${abs} ${${t}_args} --emit=${${t}_c} -o ${src}
        DEPENDS ${abs} sattn::sattnc ${${t}_deps}
        COMMENT "sattnc: ${${t}_what} of ${spec}"
        VERBATIM)
      add_custom_command(OUTPUT ${hdr}
        COMMAND sattn::sattnc ${abs} ${${t}_args} --emit=header -o ${hdr}
        DEPENDS ${abs} sattn::sattnc ${${t}_deps}
        COMMENT "sattnc: header of ${spec}'s ${${t}_what}"
        VERBATIM)
      list(APPEND objects ${src})
      list(APPEND headers ${hdr})
      string(APPEND includes "#include \"${stem}_${t}.h\"\n")
    endforeach()
  endforeach()

  # The umbrella header changes only when the list of specs does.
  string(MAKE_C_IDENTIFIER ${name} guard)
  string(TOUPPER ${guard} guard)
  file(CONFIGURE OUTPUT ${out}/${name}.h CONTENT
       "/* Generated by sattn_add_kernels(${name}): every kernel of the library. */\n#ifndef ${guard}_KERNELS_H\n#define ${guard}_KERNELS_H\n${includes}#endif\n")

  add_library(${name} STATIC ${objects} ${headers} ${out}/${name}.h)
  set_target_properties(${name} PROPERTIES LINKER_LANGUAGE C)
  target_include_directories(${name} PUBLIC ${out})
  target_link_libraries(${name} PUBLIC sattn::runtime)
endfunction()
