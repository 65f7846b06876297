//! Portable kernels: 16 independent accumulators over `chunks_exact(16)`, which the
//! compiler turns into packed SIMD for whatever the build target allows (SSE2 on the
//! default x86_64 target, NEON on aarch64), plus a plain remainder loop.

const LANES: usize = 16;

/// Squared Euclidean distance over the common prefix of `a` and `b`.
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        tail += d * d;
    }
    reduce(&acc) + tail
}

/// Inner product over the common prefix of `a` and `b`.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    reduce(&acc) + tail
}

/// Pairwise sum of the accumulators (keeps rounding error low).
fn reduce(acc: &[f32; LANES]) -> f32 {
    let mut v = *acc;
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            v[i] += v[i + w];
        }
    }
    v[0]
}

/// `sum (a[i] - step[i] * code[i])^2` over the common prefix: the squared L2 distance
/// between a query and an 8-bit code, the query given as `a = q - lo` (see `quant`).
pub fn sq8_l2(a: &[f32], step: &[f32], code: &[u8]) -> f32 {
    let n = a.len().min(step.len()).min(code.len());
    let (a, step, code) = (&a[..n], &step[..n], &code[..n]);
    let mut acc = [0.0f32; LANES];
    let (ca, cs, cc) = (
        a.chunks_exact(LANES),
        step.chunks_exact(LANES),
        code.chunks_exact(LANES),
    );
    let (ra, rs, rc) = (ca.remainder(), cs.remainder(), cc.remainder());
    for ((x, s), c) in ca.zip(cs).zip(cc) {
        for i in 0..LANES {
            let d = x[i] - s[i] * f32::from(c[i]);
            acc[i] += d * d;
        }
    }
    let mut tail = 0.0f32;
    for ((x, s), &c) in ra.iter().zip(rs).zip(rc) {
        let d = x - s * f32::from(c);
        tail += d * d;
    }
    reduce(&acc) + tail
}

/// `sum w[i] * code[i]` over the common prefix (the code-dependent part of an inner
/// product with an 8-bit code, see `quant`).
pub fn sq8_dot(w: &[f32], code: &[u8]) -> f32 {
    let n = w.len().min(code.len());
    let (w, code) = (&w[..n], &code[..n]);
    let mut acc = [0.0f32; LANES];
    let (cw, cc) = (w.chunks_exact(LANES), code.chunks_exact(LANES));
    let (rw, rc) = (cw.remainder(), cc.remainder());
    for (x, c) in cw.zip(cc) {
        for i in 0..LANES {
            acc[i] += x[i] * f32::from(c[i]);
        }
    }
    let mut tail = 0.0f32;
    for (x, &c) in rw.iter().zip(rc) {
        tail += x * f32::from(c);
    }
    reduce(&acc) + tail
}
