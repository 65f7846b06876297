//! Runtime detection: which [`KernelSet`]s this CPU can run.

use super::{rows_with, scalar, x4_rows_with, KernelSet};

/// Every path this CPU supports, fastest first; the scalar fallback is always last.
pub fn available() -> Vec<KernelSet> {
    let mut sets = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if cfg!(not(miri)) {
            sets.extend(x86::avx512());
            sets.extend(x86::avx2());
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if cfg!(not(miri)) {
            sets.push(KernelSet {
                name: "neon",
                l2: super::neon::l2_squared,
                dot: super::neon::dot,
                l2_rows: |q, rows, out| rows_with(super::neon::l2_squared, q, rows, out),
                l2_x4_rows: |q, rows, out| x4_rows_with(super::neon::l2_squared, q, rows, out),
                dot_rows: |q, rows, out| rows_with(super::neon::dot, q, rows, out),
                dot_x4_rows: |q, rows, out| x4_rows_with(super::neon::dot, q, rows, out),
                sq8_l2: scalar::sq8_l2,
                sq8_dot: scalar::sq8_dot,
            });
        }
    }
    sets.push(KernelSet {
        name: "scalar",
        l2: scalar::l2_squared,
        dot: scalar::dot,
        l2_rows: |q, rows, out| rows_with(scalar::l2_squared, q, rows, out),
        l2_x4_rows: |q, rows, out| x4_rows_with(scalar::l2_squared, q, rows, out),
        dot_rows: |q, rows, out| rows_with(scalar::dot, q, rows, out),
        dot_x4_rows: |q, rows, out| x4_rows_with(scalar::dot, q, rows, out),
        sq8_l2: scalar::sq8_l2,
        sq8_dot: scalar::sq8_dot,
    });
    sets
}

/// The fastest available path.
pub(super) fn best() -> KernelSet {
    available()[0]
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::{avx2, avx512, x4_rows_with, KernelSet};

    pub(super) fn avx2() -> Option<KernelSet> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(KernelSet {
            name: "avx2+fma",
            l2: l2_avx2,
            dot: dot_avx2,
            l2_rows: l2_rows_avx2,
            l2_x4_rows: |q, rows, out| x4_rows_with(l2_avx2, q, rows, out),
            dot_rows: dot_rows_avx2,
            dot_x4_rows: |q, rows, out| x4_rows_with(dot_avx2, q, rows, out),
            sq8_l2: sq8_l2_avx2,
            sq8_dot: sq8_dot_avx2,
        })
    }

    pub(super) fn avx512() -> Option<KernelSet> {
        is_x86_feature_detected!("avx512f").then_some(KernelSet {
            name: "avx512f",
            l2: l2_avx512,
            dot: dot_avx512,
            l2_rows: l2_rows_avx512,
            dot_rows: dot_rows_avx512,
            l2_x4_rows: l2_x4_rows_avx512,
            dot_x4_rows: dot_x4_rows_avx512,
            sq8_l2: sq8_l2_avx512,
            sq8_dot: sq8_dot_avx512,
        })
    }

    // These wrappers are private and only stored in a `KernelSet` built after the feature
    // check above succeeded.
    fn l2_avx2(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only reachable through a KernelSet built after detecting AVX2 and FMA.
        unsafe { avx2::l2_squared(a, b) }
    }
    fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: as above.
        unsafe { avx2::dot(a, b) }
    }
    fn l2_rows_avx2(q: &[f32], rows: &[f32], out: &mut [f32]) {
        // SAFETY: only reachable through a KernelSet built after detecting AVX2 and FMA.
        unsafe { avx2::l2_squared_rows(q, rows, out) }
    }
    fn dot_rows_avx2(q: &[f32], rows: &[f32], out: &mut [f32]) {
        // SAFETY: as above.
        unsafe { avx2::dot_rows(q, rows, out) }
    }
    fn l2_avx512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only reachable through a KernelSet built after detecting AVX-512F.
        unsafe { avx512::l2_squared(a, b) }
    }
    fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: as above.
        unsafe { avx512::dot(a, b) }
    }
    fn l2_rows_avx512(q: &[f32], rows: &[f32], out: &mut [f32]) {
        // SAFETY: only reachable through a KernelSet built after detecting AVX-512F.
        unsafe { avx512::l2_squared_rows(q, rows, out) }
    }
    fn dot_rows_avx512(q: &[f32], rows: &[f32], out: &mut [f32]) {
        // SAFETY: as above.
        unsafe { avx512::dot_rows(q, rows, out) }
    }
    fn l2_x4_rows_avx512(q: &[&[f32]; 4], rows: &[f32], out: &mut [[f32; 4]]) {
        // SAFETY: as above.
        unsafe { avx512::x4_rows::<true>(q, rows, out) }
    }
    fn dot_x4_rows_avx512(q: &[&[f32]; 4], rows: &[f32], out: &mut [[f32; 4]]) {
        // SAFETY: as above.
        unsafe { avx512::x4_rows::<false>(q, rows, out) }
    }
    fn sq8_l2_avx2(a: &[f32], step: &[f32], code: &[u8]) -> f32 {
        // SAFETY: only reachable through a KernelSet built after detecting AVX2 and FMA.
        unsafe { avx2::sq8_l2(a, step, code) }
    }
    fn sq8_dot_avx2(w: &[f32], code: &[u8]) -> f32 {
        // SAFETY: as above.
        unsafe { avx2::sq8_dot(w, code) }
    }
    fn sq8_l2_avx512(a: &[f32], step: &[f32], code: &[u8]) -> f32 {
        // SAFETY: only reachable through a KernelSet built after detecting AVX-512F.
        unsafe { avx512::sq8_l2(a, step, code) }
    }
    fn sq8_dot_avx512(w: &[f32], code: &[u8]) -> f32 {
        // SAFETY: as above.
        unsafe { avx512::sq8_dot(w, code) }
    }
}
