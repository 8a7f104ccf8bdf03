//! Building blocks of the CPU kernels: strided f32 matrix products (the `gemm` crate candle
//! uses), work splitting over candle's compute threads, and access to tensor data without
//! copies.
//!
//! Threads: every kernel runs on candle's own pools, so the thread count is the one candle is
//! configured with (`RAYON_NUM_THREADS`, else the usable cores; see
//! [`candle_core::utils::get_num_threads`]). Large products are split by `gemm` over candle's
//! rayon pool; independent units of work (rows, heads) are split over candle's barrier pool,
//! each unit then running its products single-threaded.

use std::borrow::Cow;
use std::ops::Range;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, DType, Device, Layout, Shape, Storage, Tensor};
use half::bf16;

pub(crate) type CResult<T> = candle_core::Result<T>;

/// Number of compute threads candle uses.
pub(crate) fn threads() -> usize {
    candle_core::utils::get_num_threads().max(1)
}

/// Runs `f` on sub-ranges of `0..n` that together cover it exactly once, spread over candle's
/// compute threads (inline when `n < 2` or when called from inside the pool).
pub(crate) fn par_ranges(n: usize, f: impl Fn(Range<usize>) + Sync) {
    if n == 0 {
        return;
    }
    if n == 1 || threads() == 1 {
        f(0..n);
        return;
    }
    candle_core::utils::barrier_pool().execute_chunked(n, f);
}

/// Runs `f(i)` for every `i` in `0..n`, spread over candle's compute threads.
pub(crate) fn par_for(n: usize, f: impl Fn(usize) + Sync) {
    par_ranges(n, |r| r.for_each(&f));
}

/// Splits `rows` rows into about `4 * threads` chunks of at least `min_rows` rows (fewer
/// chunks for small inputs, so tiny ops stay on one thread).
pub(crate) fn row_chunks(rows: usize, min_rows: usize) -> usize {
    let by_size = rows.div_ceil(min_rows.max(1));
    by_size.clamp(1, 4 * threads()).min(rows.max(1))
}

/// An f32 output buffer that parallel workers write to at disjoint positions.
pub(crate) struct SharedOut {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: `SharedOut` is only a raw view of a buffer that outlives every worker (it is created
// from a `&mut [f32]` borrowed for the whole parallel section); each writer touches a set of
// positions no other writer touches (argued at every use).
unsafe impl Send for SharedOut {}
// SAFETY: as above.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// A shared view of `buf`; `buf` stays mutably borrowed while the view is used.
    pub(crate) fn new(buf: &mut [f32]) -> Self {
        Self {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
        }
    }

    /// Mutable access to `range`.
    ///
    /// # Safety
    /// No other live reference (from any thread) may overlap `range`.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, range: Range<usize>) -> &mut [f32] {
        assert!(range.start <= range.end && range.end <= self.len);
        // SAFETY: in bounds (checked above); exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }

    /// A strided matrix view starting at `offset`.
    ///
    /// # Safety
    /// While the view is written, no other thread may read or write the elements it covers.
    pub(crate) unsafe fn mat(
        &self,
        offset: usize,
        rows: usize,
        cols: usize,
        rs: usize,
    ) -> MatMut<'_> {
        let m = MatMut {
            ptr: self.ptr,
            len: self.len,
            offset,
            rows,
            cols,
            rs,
            cs: 1,
            _life: std::marker::PhantomData,
        };
        m.check();
        m
    }
}

/// A read-only strided f32 matrix: element `(i, j)` is `data[offset + i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a> {
    data: &'a [f32],
    offset: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows x cols` matrix at `offset` with row stride `rs`.
    pub(crate) fn new(data: &'a [f32], offset: usize, rows: usize, cols: usize, rs: usize) -> Self {
        let m = Self {
            data,
            offset,
            rows,
            cols,
            rs,
            cs: 1,
        };
        m.check();
        m
    }

    /// The transpose (a view).
    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Rows `r` of the matrix (a view).
    pub(crate) fn rows(self, r: Range<usize>) -> Self {
        assert!(r.end <= self.rows);
        Self {
            offset: self.offset + r.start * self.rs,
            rows: r.len(),
            ..self
        }
    }

    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            let last = self.offset + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
            assert!(last < self.data.len(), "matrix view out of bounds");
        }
    }
}

/// A mutable strided f32 matrix (see [`MatRef`]).
pub(crate) struct MatMut<'a> {
    ptr: *mut f32,
    len: usize,
    offset: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
    _life: std::marker::PhantomData<&'a mut [f32]>,
}

impl<'a> MatMut<'a> {
    /// A row-major `rows x cols` matrix at `offset` of `data` with row stride `rs`.
    pub(crate) fn new(
        data: &'a mut [f32],
        offset: usize,
        rows: usize,
        cols: usize,
        rs: usize,
    ) -> Self {
        let m = Self {
            ptr: data.as_mut_ptr(),
            len: data.len(),
            offset,
            rows,
            cols,
            rs,
            cs: 1,
            _life: std::marker::PhantomData,
        };
        m.check();
        m
    }

    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            let last = self.offset + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
            assert!(last < self.len, "matrix view out of bounds");
        }
    }
}

/// `dst = a b` (or `dst += a b` with `accumulate`), split over `threads` threads by `gemm`
/// when it is larger than a few tiles.
pub(crate) fn matmul(
    dst: MatMut<'_>,
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
    threads: usize,
) {
    assert_eq!(a.cols, b.rows, "inner dimensions");
    assert_eq!((dst.rows, dst.cols), (a.rows, b.cols), "output shape");
    let (m, n, k) = (a.rows, b.cols, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    // SAFETY: (i, j) is inside the checked view.
                    unsafe { *dst.ptr.add(dst.offset + i * dst.rs + j * dst.cs) = 0.0 };
                }
            }
        }
        return;
    }
    let par = if threads > 1 && m * n * k >= 1 << 18 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: all three views were bounds-checked at construction (every index the product
    // touches is inside its buffer); `dst` is exclusively borrowed (or, from `SharedOut`,
    // exclusive by the caller's contract) and does not alias `a` or `b`, which are shared
    // borrows of other buffers.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.ptr.add(dst.offset),
            dst.cs as isize,
            dst.rs as isize,
            accumulate,
            a.data.as_ptr().add(a.offset),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr().add(b.offset),
            b.cs as isize,
            b.rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// The contiguous data of a CPU storage as f32 (borrowed for f32, converted for bf16).
pub(crate) fn slice_f32<'a>(s: &'a CpuStorage, l: &Layout) -> CResult<Cow<'a, [f32]>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("custom op input must be contiguous")
    };
    match s {
        CpuStorage::F32(v) => Ok(Cow::Borrowed(&v[a..b])),
        CpuStorage::BF16(v) => Ok(Cow::Owned(v[a..b].iter().map(|x| x.to_f32()).collect())),
        other => bail!("custom op: unsupported dtype {:?}", other.dtype()),
    }
}

/// Calls `f` with the values of a CPU tensor as a contiguous f32 slice (borrowed when the
/// tensor is contiguous f32, converted otherwise).
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> CResult<R>) -> CResult<R> {
    let owned;
    let t = if t.is_contiguous() {
        t
    } else {
        owned = t.contiguous()?;
        &owned
    };
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(cs) => f(&slice_f32(cs, l)?),
        _ => bail!("expected a CPU tensor"),
    }
}

/// Wraps f32 results as a storage of `dtype`.
pub(crate) fn storage(v: Vec<f32>, dtype: DType) -> CpuStorage {
    match dtype {
        DType::BF16 => CpuStorage::BF16(v.into_iter().map(bf16::from_f32).collect()),
        _ => CpuStorage::F32(v),
    }
}

/// A CPU tensor of `shape` from f32 values, in `dtype`.
pub(crate) fn tensor(v: Vec<f32>, shape: impl Into<Shape>, dtype: DType) -> CResult<Tensor> {
    let t = Tensor::from_vec(v, shape.into(), &Device::Cpu)?;
    if dtype == DType::F32 {
        Ok(t)
    } else {
        t.to_dtype(dtype)
    }
}

/// A zero-filled f32 vector (calloc: fresh pages are already zero).
pub(crate) fn zeros(n: usize) -> Vec<f32> {
    vec![0f32; n]
}

/// `exp(x)` for `x <= 0` (and `-inf`; NaN stays NaN), within 1e-6 relative error, written so
/// that loops over it vectorise (no libm call): `2^(x log2 e)` split into an integer and a
/// fractional part, with a degree-6 polynomial for `2^f` on `[-0.5, 0.5]`.
#[inline(always)]
pub(crate) fn exp_neg(x: f32) -> f32 {
    // Below -87 the result is under f32's normal range: clamp (keeps NaN as NaN).
    let x = if x < -87.0 { -87.0 } else { x };
    let t = x * std::f32::consts::LOG2_E;
    // Round to nearest with the 1.5 * 2^23 trick (valid for |t| < 2^22).
    const MAGIC: f32 = 12_582_912.0;
    let n = (t + MAGIC) - MAGIC;
    let f = t - n;
    // 2^f = e^(f ln 2): Taylor coefficients ln2^i / i!.
    let p = 1.540_353_1e-4_f32;
    let p = p * f + 1.333_355_8e-3;
    let p = p * f + 9.618_129e-3;
    let p = p * f + 5.550_411e-2;
    let p = p * f + 2.402_265_1e-1;
    let p = p * f + std::f32::consts::LN_2;
    let p = p * f + 1.0;
    let bits = ((n as i32 + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_neg_is_accurate() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let (a, b) = (exp_neg(x), x.exp());
            worst = worst.max(((a - b) / b).abs());
            x += 0.001;
        }
        assert!(worst < 1e-6, "relative error {worst}");
        assert_eq!(exp_neg(f32::NEG_INFINITY), exp_neg(-87.0));
        assert!(exp_neg(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn strided_matmul_matches_naive() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
        // a is m x k row-major; b is stored n x k and used transposed.
        let mut c = vec![1.0f32; m * n];
        matmul(
            MatMut::new(&mut c, 0, m, n, n),
            MatRef::new(&a, 0, m, k, k),
            MatRef::new(&b, 0, n, k, k).t(),
            true,
            2,
        );
        for i in 0..m {
            for j in 0..n {
                let want: f32 = 1.0 + (0..k).map(|l| a[i * k + l] * b[j * k + l]).sum::<f32>();
                assert!((c[i * n + j] - want).abs() < 1e-5);
            }
        }
    }
}
