//! Runtime detection: which [`KernelSet`]s this CPU can run.

use super::{scalar, KernelSet};

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
                l2_x4: |q, x| q.map(|q| super::neon::l2_squared(q, x)),
                dot_x4: |q, x| q.map(|q| super::neon::dot(q, x)),
                sq8_l2: scalar::sq8_l2,
                sq8_dot: scalar::sq8_dot,
            });
        }
    }
    sets.push(KernelSet {
        name: "scalar",
        l2: scalar::l2_squared,
        dot: scalar::dot,
        l2_x4: |q, x| q.map(|q| scalar::l2_squared(q, x)),
        dot_x4: |q, x| q.map(|q| scalar::dot(q, x)),
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
    use super::super::{avx2, avx512, KernelSet};

    pub(super) fn avx2() -> Option<KernelSet> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(KernelSet {
            name: "avx2+fma",
            l2: l2_avx2,
            dot: dot_avx2,
            l2_x4: |q, x| q.map(|q| l2_avx2(q, x)),
            dot_x4: |q, x| q.map(|q| dot_avx2(q, x)),
            sq8_l2: sq8_l2_avx2,
            sq8_dot: sq8_dot_avx2,
        })
    }

    pub(super) fn avx512() -> Option<KernelSet> {
        is_x86_feature_detected!("avx512f").then_some(KernelSet {
            name: "avx512f",
            l2: l2_avx512,
            dot: dot_avx512,
            l2_x4: l2_x4_avx512,
            dot_x4: dot_x4_avx512,
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
    fn l2_avx512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only reachable through a KernelSet built after detecting AVX-512F.
        unsafe { avx512::l2_squared(a, b) }
    }
    fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: as above.
        unsafe { avx512::dot(a, b) }
    }
    fn l2_x4_avx512(q: &[&[f32]; 4], x: &[f32]) -> [f32; 4] {
        // SAFETY: only reachable through a KernelSet built after detecting AVX-512F.
        unsafe { avx512::l2_squared_x4(q, x) }
    }
    fn dot_x4_avx512(q: &[&[f32]; 4], x: &[f32]) -> [f32; 4] {
        // SAFETY: as above.
        unsafe { avx512::dot_x4(q, x) }
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
