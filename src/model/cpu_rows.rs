//! Products with few rows: `y = x W^T` for `x` `[n, k]` with `n <=` [`MAX_ROWS`] and `W`
//! `[m, k]`, the shape of every projection while decoding a batch of sequences.
//!
//! `gemm` packs `W` into its panel layout on every call. With thousands of rows (training,
//! prefill) that copy is amortised; with the 1-32 rows of a decode step it costs about as much
//! as the product itself (most of a batch-16 decode step went to packing). Here each row of `W`
//! is read straight from the weights, once per tile, and dotted with the rows of `x` while it
//! is in L1; threads split the rows of `W`. Every output element is one dot product whose
//! summation order depends only on `k`, so a row's result does not depend on which other rows
//! share the batch.

use std::ops::Range;

use super::cpu_par::{par_ranges, sum8_2, threads, SharedOut};

/// The most rows of `x` this kernel takes; larger products go to `gemm`.
pub(crate) const MAX_ROWS: usize = 32;

/// Rows of `W` (columns of `y`) per parallel task.
const BLOCK: usize = 32;

/// `y = x W^T`, or `y += x W^T` with `accumulate`; `y` is `[n, m]` row-major.
///
/// # Panics
/// If a buffer is shorter than its shape says.
pub(crate) fn xwt(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    (n, k, m): (usize, usize, usize),
    accumulate: bool,
) {
    assert!(x.len() >= n * k && w.len() >= m * k && y.len() >= n * m);
    if n == 0 || m == 0 {
        return;
    }
    let blocks = m.div_ceil(BLOCK);
    let out = SharedOut::new(y);
    let run = |r: Range<usize>| {
        let mut local = vec![0f32; n * BLOCK];
        for b in r {
            let (lo, hi) = (b * BLOCK, ((b + 1) * BLOCK).min(m));
            let cols = hi - lo;
            dots(
                &mut local[..n * cols],
                &x[..n * k],
                &w[lo * k..hi * k],
                n,
                k,
                cols,
            );
            for i in 0..n {
                // SAFETY: block `b` alone writes columns lo..hi of every row.
                let dst = unsafe { out.slice(i * m + lo..i * m + hi) };
                let src = &local[i * cols..(i + 1) * cols];
                if accumulate {
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d += s;
                    }
                } else {
                    dst.copy_from_slice(src);
                }
            }
        }
    };
    if threads() > 1 && blocks > 1 && n * k * m >= 1 << 18 {
        par_ranges(blocks, run);
    } else {
        run(0..blocks);
    }
}

/// `out[i * cols + j] = x_i . w_j` for the `n` rows of `x` and `cols` rows of `w`.
fn dots(out: &mut [f32], x: &[f32], w: &[f32], n: usize, k: usize, cols: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked just above); the slices hold `n` and
        // `cols` rows of `k` (the caller's shapes, asserted in `xwt`).
        unsafe { avx2::dots(out, x, w, n, k, cols) };
        return;
    }
    for i in 0..n {
        let xi = &x[i * k..(i + 1) * k];
        for j in 0..cols {
            out[i * cols + j] = dot(xi, &w[j * k..(j + 1) * k]);
        }
    }
}

/// A dot product in eight interleaved partial sums (vectorisable without reassociation).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    sum8_2(a, b, |x, y| x * y)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The AVX2 + FMA tiles: two rows of `x` by four rows of `W`, eight lanes along `k`.

    use std::arch::x86_64::{
        __m256, _mm256_castps256_ps128, _mm256_extractf128_ps, _mm256_fmadd_ps, _mm256_loadu_ps,
        _mm256_setzero_ps, _mm_add_ps, _mm_cvtss_f32, _mm_hadd_ps,
    };

    /// See [`super::dots`].
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA; `x` holds `n * k`, `w` `cols * k` and `out` `n * cols`
    /// values.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dots(
        out: &mut [f32],
        x: &[f32],
        w: &[f32],
        n: usize,
        k: usize,
        cols: usize,
    ) {
        debug_assert!(x.len() >= n * k && w.len() >= cols * k && out.len() >= n * cols);
        let mut j = 0;
        if n == 1 {
            // One row (batch-1 decode) is bound by streaming `W`: eight rows of it in flight.
            while j + 8 <= cols {
                // SAFETY: rows j..j + 8 of w and row 0 of x exist; features per contract.
                unsafe { tile::<1, 8>(out, x, w, 0, j, k, cols) };
                j += 8;
            }
        }
        while j < cols {
            let mut i = 0;
            while i < n {
                // SAFETY: rows i.. of x and j.. of w exist for the tile sizes chosen here;
                // the features are the caller's contract.
                unsafe {
                    match ((n - i).min(2), (cols - j).min(4)) {
                        (2, 4) => tile::<2, 4>(out, x, w, i, j, k, cols),
                        (2, 3) => tile::<2, 3>(out, x, w, i, j, k, cols),
                        (2, 2) => tile::<2, 2>(out, x, w, i, j, k, cols),
                        (2, _) => tile::<2, 1>(out, x, w, i, j, k, cols),
                        (_, 4) => tile::<1, 4>(out, x, w, i, j, k, cols),
                        (_, 3) => tile::<1, 3>(out, x, w, i, j, k, cols),
                        (_, 2) => tile::<1, 2>(out, x, w, i, j, k, cols),
                        _ => tile::<1, 1>(out, x, w, i, j, k, cols),
                    }
                }
                i += 2;
            }
            j += 4;
        }
    }

    /// `out[(i + r) * cols + j + c] = x_{i+r} . w_{j+c}` for `r < R`, `c < C`.
    ///
    /// # Safety
    /// As [`dots`], and rows `i..i + R` of `x` and `j..j + C` of `w` exist.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const R: usize, const C: usize>(
        out: &mut [f32],
        x: &[f32],
        w: &[f32],
        i: usize,
        j: usize,
        k: usize,
        cols: usize,
    ) {
        let k8 = k / 8 * 8;
        let xp = x.as_ptr();
        let wp = w.as_ptr();
        let mut acc: [[__m256; C]; R] = [[_mm256_setzero_ps(); C]; R];
        let mut p = 0;
        while p < k8 {
            let mut wv = [_mm256_setzero_ps(); C];
            for (c, v) in wv.iter_mut().enumerate() {
                // SAFETY: p + 8 <= k, row j + c of w exists (contract).
                *v = unsafe { _mm256_loadu_ps(wp.add((j + c) * k + p)) };
            }
            for (r, row) in acc.iter_mut().enumerate() {
                // SAFETY: as above for row i + r of x.
                let xv = unsafe { _mm256_loadu_ps(xp.add((i + r) * k + p)) };
                for (a, &v) in row.iter_mut().zip(&wv) {
                    *a = _mm256_fmadd_ps(xv, v, *a);
                }
            }
            p += 8;
        }
        for (r, row) in acc.iter().enumerate() {
            let xi = &x[(i + r) * k..(i + r + 1) * k];
            for (c, &a) in row.iter().enumerate() {
                let wj = &w[(j + c) * k..(j + c + 1) * k];
                let tail: f32 = xi[k8..].iter().zip(&wj[k8..]).map(|(a, b)| a * b).sum();
                out[(i + r) * cols + j + c] = hsum(a) + tail;
            }
        }
    }

    /// The sum of the eight lanes.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_hadd_ps(s, s);
        _mm_cvtss_f32(_mm_hadd_ps(s, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], w: &[f32], n: usize, k: usize, m: usize) -> Vec<f32> {
        let mut y = vec![0f32; n * m];
        for i in 0..n {
            for j in 0..m {
                y[i * m + j] = (0..k)
                    .map(|p| f64::from(x[i * k + p]) * f64::from(w[j * k + p]))
                    .sum::<f64>() as f32;
            }
        }
        y
    }

    fn data(len: usize, salt: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| {
                ((i.wrapping_mul(2654435761).wrapping_add(salt) >> 7) % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_a_float64_reference_on_ragged_shapes() {
        for &(n, k, m) in &[
            (1, 1, 1),
            (1, 7, 3),
            (2, 8, 4),
            (3, 13, 5),
            (5, 64, 33),
            (16, 256, 100),
            (32, 515, 257),
        ] {
            let (x, w) = (data(n * k, 1), data(m * k, 2));
            let want = reference(&x, &w, n, k, m);
            let mut y = vec![0f32; n * m];
            xwt(&mut y, &x, &w, (n, k, m), false);
            for (a, b) in y.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{n}x{k}x{m}: {a} vs {b}"
                );
            }
            let mut acc = vec![1f32; n * m];
            xwt(&mut acc, &x, &w, (n, k, m), true);
            for (a, b) in acc.iter().zip(&want) {
                assert!((a - (b + 1.0)).abs() <= 1e-4 * (2.0 + b.abs()));
            }
        }
    }

    #[test]
    fn a_row_does_not_depend_on_the_other_rows() {
        let (n, k, m) = (9, 300, 70);
        let (x, w) = (data(n * k, 3), data(m * k, 4));
        let mut all = vec![0f32; n * m];
        xwt(&mut all, &x, &w, (n, k, m), false);
        for i in 0..n {
            let mut one = vec![0f32; m];
            xwt(&mut one, &x[i * k..(i + 1) * k], &w, (1, k, m), false);
            assert_eq!(one, all[i * m..(i + 1) * m], "row {i}");
        }
    }
}
