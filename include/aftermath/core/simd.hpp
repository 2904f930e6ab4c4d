#pragma once
/// @file simd.hpp
/// AFTERMATH_AVX2_CLONES: put before a hot kernel to compile it for AVX2 as well as for the base
/// x86-64 ISA, the version chosen at run time (GCC/Clang `target_clones`, an ifunc). The build
/// forbids FMA contraction (-ffp-contract=off), so every version gives the same values, bit for
/// bit. Empty under ThreadSanitizer (an ifunc resolver runs before its runtime is set up and
/// crashes the program) and off x86-64; the kernels are then compiled once, with the same values.

#if defined(__SANITIZE_THREAD__)
#define AFTERMATH_NO_CLONES 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AFTERMATH_NO_CLONES 1
#endif
#endif

#if defined(__x86_64__) && !defined(AFTERMATH_NO_CLONES)
#define AFTERMATH_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define AFTERMATH_AVX2_CLONES
#endif
