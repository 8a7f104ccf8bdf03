//! Building blocks of the CPU kernels: strided f32 matrix products (the `gemm` crate candle
//! uses, with its AVX-512 kernels enabled), a small thread pool to split work, and access to
//! tensor data without copies.
//!
//! Threads: the kernels use as many threads as candle is configured with (`RAYON_NUM_THREADS`,
//! else the usable cores; see [`candle_core::utils::get_num_threads`]): the calling thread plus
//! `threads - 1` pool workers. Work is cut into chunks that the participants claim from a
//! shared cursor, and the caller only waits for chunks a worker actually started: on a machine
//! shared with other processes a worker that is not scheduled in time costs nothing (the
//! caller does its chunks), unlike fork-join pools that wait for every thread. A caller that
//! finds the pool busy (another compute thread is using it) runs its work inline, and so do
//! nested calls and work too small to be worth splitting. An idle worker polls for the next
//! job for up to `SPIN` (100 µs) before it sleeps, and so does a caller waiting for its workers, so
//! back-to-back parallel calls (a decode step makes dozens) skip the futex wake-ups.
//!
//! Element-wise loops are compiled for AVX2 + FMA as well as the baseline target and picked at
//! run time (`multiversion!`); `sum8`, `sum8_2` and `max8` are the
//! vectorisable reductions they use.
//!
//! Training uses the same pool one level up: [`run_shards`] runs whole shards of a batch
//! (forward and backward) on the threads at once, and every kernel inside a shard then runs
//! undivided on its shard's thread ([`threads`] is 1 there), so a step synchronises the
//! threads once instead of at every op.

use std::any::Any;
use std::borrow::Cow;
use std::cell::Cell;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, DType, Device, Layout, Shape, Storage, Tensor};
use half::bf16;

pub(crate) type CResult<T> = candle_core::Result<T>;

/// Number of compute threads (candle's setting).
pub(crate) fn configured_threads() -> usize {
    candle_core::utils::get_num_threads().max(1)
}

/// Threads a kernel called from this thread may use: the configured count, or 1 inside pool
/// work (a shard of [`run_shards`], or a chunk of another kernel), where nested calls run
/// inline and a kernel is best done as one undivided piece.
pub(crate) fn threads() -> usize {
    if IN_POOL.with(|c| c.get()) {
        1
    } else {
        configured_threads()
    }
}

thread_local! {
    /// Set while this thread runs pool work: nested parallel calls then run inline.
    static IN_POOL: Cell<bool> = const { Cell::new(false) };
}

/// One parallel call: `f(i)` for every chunk `i < n`, claimed through `next`.
struct Job {
    f: *const (dyn Fn(usize) + Sync + 'static),
    n: usize,
    next: AtomicUsize,
}

impl Job {
    /// Claims and runs chunks until none is left.
    ///
    /// # Safety
    /// `self.f` must point to a live closure (the caller of [`Pool::run`] keeps it alive until
    /// every participant has finished).
    unsafe fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n {
                return;
            }
            // SAFETY: see the function's contract.
            unsafe { (*self.f)(i) };
        }
    }
}

#[derive(Default)]
struct State {
    /// Incremented for every job.
    gen: u64,
    /// The current job, while it accepts participants.
    job: Option<*const Job>,
    /// Workers inside the current job.
    in_flight: usize,
    /// First panic raised by a worker in the current job.
    panic: Option<Box<dyn Any + Send>>,
    /// Workers blocked on the `work` condition variable (the others are spinning or busy).
    sleeping: usize,
    /// Whether the job's owner is blocked on the `done` condition variable.
    owner_waiting: bool,
}

// SAFETY: the raw job pointer is only dereferenced by workers registered in `in_flight`, and
// the job's owner waits (under the same mutex) until that count is zero before the job dies.
unsafe impl Send for State {}

struct Pool {
    state: Mutex<State>,
    work: Condvar,
    done: Condvar,
    /// Held by the caller of the running job (one job at a time).
    busy: Mutex<()>,
    workers: usize,
    /// Mirror of `State::gen`, read by spinning workers without the lock.
    posted: AtomicU64,
    /// Mirror of `State::in_flight`, read by a spinning owner without the lock.
    active: AtomicUsize,
}

/// How long an idle worker polls for the next job, and the owner of a job for its workers to
/// finish, before blocking: back-to-back parallel calls (a decode step makes dozens) then
/// hand work over without a futex wake-up each.
const SPIN: Duration = Duration::from_micros(100);

/// Polls `done` with [`std::hint::spin_loop`] for up to [`SPIN`]; returns whether it became
/// true.
fn spin_until(done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= SPIN {
            return done();
        }
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // Closures run outside the lock, so a poisoned lock still holds consistent state.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    fn get() -> &'static Pool {
        static POOL: OnceLock<&'static Pool> = OnceLock::new();
        POOL.get_or_init(|| {
            let pool: &'static Pool = Box::leak(Box::new(Pool {
                state: Mutex::new(State::default()),
                work: Condvar::new(),
                done: Condvar::new(),
                busy: Mutex::new(()),
                workers: configured_threads() - 1,
                posted: AtomicU64::new(0),
                active: AtomicUsize::new(0),
            }));
            for i in 0..pool.workers {
                let spawned = std::thread::Builder::new()
                    .name(format!("azr-kernel-{i}"))
                    .spawn(move || pool.worker());
                if spawned.is_err() {
                    // Fewer workers only means less parallelism: the caller does all chunks.
                    tracing::warn!("could not start kernel worker thread {i}");
                }
            }
            pool
        })
    }

    fn worker(&self) {
        IN_POOL.with(|c| c.set(true));
        let mut seen = 0u64;
        let mut st = lock(&self.state);
        loop {
            let job = match st.job {
                Some(job) if st.gen != seen => job,
                _ => {
                    // Nothing to join (a closed job counts as seen): poll for the next one for
                    // a while, then sleep until it is posted.
                    seen = st.gen;
                    drop(st);
                    let posted = spin_until(|| self.posted.load(Ordering::Acquire) != seen);
                    st = lock(&self.state);
                    if !posted && st.gen == seen {
                        st.sleeping += 1;
                        while st.gen == seen {
                            st = self.work.wait(st).unwrap_or_else(|e| e.into_inner());
                        }
                        st.sleeping -= 1;
                    }
                    continue;
                }
            };
            seen = st.gen;
            st.in_flight += 1;
            self.active.store(st.in_flight, Ordering::Release);
            drop(st);
            // SAFETY: registered in `in_flight` while the job was open, so its owner is still
            // waiting and the job and its closure are alive.
            let res =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { (*job).work() }));
            st = lock(&self.state);
            if let Err(p) = res {
                st.panic.get_or_insert(p);
            }
            st.in_flight -= 1;
            self.active.store(st.in_flight, Ordering::Release);
            if st.in_flight == 0 && st.owner_waiting {
                self.done.notify_all();
            }
        }
    }

    fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        let Ok(_busy) = self.busy.try_lock() else {
            // Another thread is using the pool: do this work alone.
            (0..n).for_each(f);
            return;
        };
        // SAFETY: only the lifetime is erased; the closure outlives the job because this
        // function does not return before every participant is done with it.
        let f: *const (dyn Fn(usize) + Sync + 'static) = unsafe {
            std::mem::transmute::<
                *const (dyn Fn(usize) + Sync + '_),
                *const (dyn Fn(usize) + Sync + 'static),
            >(f)
        };
        let job = Job {
            f,
            n,
            next: AtomicUsize::new(0),
        };
        let wake = {
            let mut st = lock(&self.state);
            st.gen += 1;
            st.job = Some(&job as *const Job);
            self.posted.store(st.gen, Ordering::Release);
            st.sleeping > 0
        };
        if wake {
            self.work.notify_all();
        }
        IN_POOL.with(|c| c.set(true));
        // SAFETY: `job.f` is the live closure `f`.
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { job.work() }));
        IN_POOL.with(|c| c.set(false));
        let mut st = lock(&self.state);
        // Close the job: workers that wake up from now on do not touch it.
        st.job = None;
        if st.in_flight > 0 {
            drop(st);
            spin_until(|| self.active.load(Ordering::Acquire) == 0);
            st = lock(&self.state);
            st.owner_waiting = true;
            while st.in_flight > 0 {
                st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            st.owner_waiting = false;
        }
        let theirs = st.panic.take();
        drop(st);
        if let Err(p) = mine {
            std::panic::resume_unwind(p);
        }
        if let Some(p) = theirs {
            std::panic::resume_unwind(p);
        }
    }
}

/// Runs `f(i)` for every `i` in `0..n`, spread over the compute threads (inline when `n < 2`,
/// with one thread, from inside pool work, or while another thread uses the pool).
pub(crate) fn par_for(n: usize, f: impl Fn(usize) + Sync) {
    if n < 2 || threads() == 1 || IN_POOL.with(|c| c.get()) {
        (0..n).for_each(f);
        return;
    }
    let pool = Pool::get();
    if pool.workers == 0 {
        (0..n).for_each(f);
        return;
    }
    pool.run(n, &f);
}

/// How many data-parallel shards a training batch of `rows` rows on `device` is split into:
/// on the CPU one per compute thread, at most one per row (1 inside pool work, where it would
/// run inline anyway); on an accelerator 1 (the whole batch in one launch sequence is what
/// keeps a GPU busy; splitting it would only shrink every kernel).
pub fn train_shards(rows: usize, device: &Device) -> usize {
    if !device.is_cpu() {
        return 1;
    }
    threads().min(rows).max(1)
}

/// Runs `f(i)` for every `i` in `0..n` on the compute threads and returns the results in
/// order: coarse-grained (data-parallel) work. Each call of `f` runs on one thread, and every
/// kernel it calls runs single-threaded on that thread (no nested parallelism). As with
/// [`par_for`], a participant claims the next index when it is free, so a worker that is not
/// scheduled in time only means the caller runs more of the calls itself.
pub fn run_shards<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    if n < 2 {
        return (0..n).map(f).collect();
    }
    let slots: Vec<Mutex<Option<T>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let fill = |i: usize| {
        let v = f(i);
        *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
    };
    if threads() == 1 || IN_POOL.with(|c| c.get()) {
        (0..n).for_each(fill);
    } else {
        // With the pool busy (another thread's kernels), the calls run here one after the
        // other, their kernels sharing the pool when it frees up.
        Pool::get().run(n, &fill);
    }
    slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                // Every index in 0..n was run exactly once above (or a panic was propagated).
                .expect("every shard ran")
        })
        .collect()
}

/// [`par_for`] when the whole call does at least `work` ~ 64 K elementary operations, else
/// inline (a thread hand-off costs a few microseconds).
pub(crate) fn par_for_sized(n: usize, work: usize, f: impl Fn(usize) + Sync) {
    if work < 1 << 16 {
        (0..n).for_each(f);
    } else {
        par_for(n, f);
    }
}

/// Runs `f` on the unit ranges `i..i + 1` for `i` in `0..n` (see [`par_for`]).
pub(crate) fn par_ranges(n: usize, f: impl Fn(Range<usize>) + Sync) {
    par_for(n, |i| f(i..i + 1));
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
        assert!(r.start <= r.end && r.end <= self.rows);
        Self {
            offset: self.offset + r.start * self.rs,
            rows: r.len(),
            ..self
        }
    }

    /// Columns `c` of the matrix (a view).
    pub(crate) fn cols(self, c: Range<usize>) -> Self {
        assert!(c.start <= c.end && c.end <= self.cols);
        Self {
            offset: self.offset + c.start * self.cs,
            cols: c.len(),
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

/// A raw output pointer that can be shared by the participants of one [`par_for`] call, each
/// writing its own block.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: only used by `matmul` below, whose parts write disjoint blocks of one buffer that
// outlives the parallel call.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer `off` elements further.
    ///
    /// # Safety
    /// `off` must stay inside the buffer.
    unsafe fn at(self, off: usize) -> *mut f32 {
        // SAFETY: per the contract.
        unsafe { self.0.add(off) }
    }
}

/// `dst = a b` (or `dst += a b` with `accumulate`). Products of more than about a million
/// multiply-adds are split into row (or column) blocks over up to `threads` threads (one
/// single-threaded `gemm` call per block).
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
    let out = OutPtr(dst.ptr);
    let (d_off, d_rs, d_cs) = (dst.offset, dst.rs, dst.cs);
    let split_rows = m >= n;
    let dim = if split_rows { m } else { n };
    let parts = if threads > 1 && m * n * k >= 1 << 20 {
        (dim / 32).clamp(1, 4 * threads)
    } else {
        1
    };
    let per = dim.div_ceil(parts);
    let block = |p: usize| {
        let (lo, hi) = (p * per, ((p + 1) * per).min(dim));
        if lo >= hi {
            return;
        }
        let (rows, cols) = if split_rows {
            (lo..hi, 0..n)
        } else {
            (0..m, lo..hi)
        };
        // SAFETY: the views were bounds-checked at construction and each block is inside
        // them; blocks are disjoint, so no two threads write the same element; `dst` does not
        // alias `a` or `b` (it is a separate, exclusively borrowed buffer).
        unsafe {
            gemm_block(
                out.at(d_off + rows.start * d_rs + cols.start * d_cs),
                d_rs,
                d_cs,
                a.rows(rows.clone()),
                b.cols(cols.clone()),
                accumulate,
            )
        };
    };
    if parts == 1 {
        block(0);
    } else {
        par_for(parts, block);
    }
}

/// One single-threaded `gemm` call: `dst (+)= a b`, `dst` given by pointer and strides.
///
/// # Safety
/// `dst` must be valid for writes of an `a.rows x b.cols` matrix with strides `(rs, cs)`, and
/// no other thread may access those elements during the call.
unsafe fn gemm_block(
    dst: *mut f32,
    rs: usize,
    cs: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
) {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    // SAFETY: (i, j) is inside the destination (function contract).
                    unsafe { *dst.add(i * rs + j * cs) = 0.0 };
                }
            }
        }
        return;
    }
    // SAFETY: `a` and `b` are bounds-checked views of live buffers; `dst` per the contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            cs as isize,
            rs as isize,
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
            gemm::Parallelism::None,
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

/// Whether the CPU has AVX2 and FMA (detected once; `std` caches the answer).
#[inline]
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines a function whose body is compiled twice: once with AVX2 and FMA enabled (chosen at
/// run time when [`has_avx2_fma`] says the CPU has them) and once for the crate's baseline
/// target (x86-64 builds default to SSE2 only). LLVM then vectorises the body's loops at
/// 256-bit width on most machines; neither copy lets it reassociate floating-point sums or
/// fuse multiply-adds on its own, so both copies compute the same values. Callees are only
/// compiled for AVX2 when they inline into the body (small or `#[inline(always)]` functions).
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? $body
                if $crate::model::cpu_par::has_avx2_fma() {
                    // SAFETY: the CPU has AVX2 and FMA (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body
        }
    };
}
pub(crate) use multiversion;

/// The total of eight partial sums, in a fixed pairwise order.
#[inline(always)]
pub(crate) fn combine8(acc: &[f32; 8]) -> f32 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// `sum(f(a_i))` in eight interleaved partial sums, so that the loop vectorises (the
/// summation order is fixed by the length alone).
#[inline(always)]
pub(crate) fn sum8(a: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let tail: f32 = ca.remainder().iter().map(|&x| f(x)).sum();
    for xa in ca {
        for l in 0..8 {
            acc[l] += f(xa[l]);
        }
    }
    combine8(&acc) + tail
}

/// `sum(f(a_i, b_i))` over the common length, in eight interleaved partial sums.
#[inline(always)]
pub(crate) fn sum8_2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| f(x, y))
        .sum();
    for (xa, xb) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += f(xa[l], xb[l]);
        }
    }
    combine8(&acc) + tail
}

/// The largest value of `a` (NaNs ignored; `-inf` when empty), in eight lanes.
#[inline(always)]
pub(crate) fn max8(a: &[f32]) -> f32 {
    #[inline(always)]
    fn mx(m: f32, x: f32) -> f32 {
        if x > m {
            x
        } else {
            m
        }
    }
    let mut acc = [f32::NEG_INFINITY; 8];
    let ca = a.chunks_exact(8);
    let tail = ca
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| mx(m, x));
    for xa in ca {
        for l in 0..8 {
            acc[l] = mx(acc[l], xa[l]);
        }
    }
    acc.iter().fold(tail, |m, &x| mx(m, x))
}

multiversion! {
    /// `y += x` element-wise over the common length.
    pub(crate) fn add_assign(y: &mut [f32], x: &[f32]) {
        for (a, &b) in y.iter_mut().zip(x) {
            *a += b;
        }
    }
}

multiversion! {
    /// Softmax of `row` (plus `bias` first, when given: same length) in place; returns the
    /// log-sum-exp of the (biased) row.
    pub(crate) fn softmax_in_place(row: &mut [f32], bias: Option<&[f32]>) -> f32 {
        if let Some(bias) = bias {
            for (x, &m) in row.iter_mut().zip(bias) {
                *x += m;
            }
        }
        let max = max8(row);
        for x in row.iter_mut() {
            *x = exp_neg(*x - max);
        }
        let sum = sum8(row, |x| x);
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|x| *x *= inv);
        max + sum.ln()
    }
}

/// A zero-filled f32 vector (calloc: fresh pages are already zero).
pub(crate) fn zeros(n: usize) -> Vec<f32> {
    vec![0f32; n]
}

/// `exp(x)` for `x <= 0` (and `-inf`; NaN stays NaN), within 1e-6 relative error, written so
/// that loops over it vectorise (no libm call): `x = n ln2 + r` with `|r| <= ln2 / 2` (a two-part
/// ln2 keeps `r` exact), `e^r` by its degree-7 Taylor polynomial, times `2^n` built in the
/// exponent bits.
#[inline(always)]
pub(crate) fn exp_neg(x: f32) -> f32 {
    // Below -87 the result is under f32's normal range: clamp (keeps NaN as NaN).
    let x = if x < -87.0 { -87.0 } else { x };
    // Round to nearest with the 1.5 * 2^23 trick (valid for |t| < 2^22).
    const MAGIC: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + MAGIC) - MAGIC;
    // Exact in f32 (Cody-Waite split of ln 2), not an over-precise literal.
    #[allow(clippy::excessive_precision)]
    const LN2_HI: f32 = 0.693_359_375;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    let bits = ((n as i32 + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_reductions_and_softmax_match_float64() {
        for len in [0usize, 1, 7, 8, 9, 31, 64, 129] {
            let x: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.37)
                .collect();
            let want_sum: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            assert!((f64::from(sum8(&x, |v| v * v)) - want_sum).abs() <= 1e-5 * (1.0 + want_sum));
            let y: Vec<f32> = x.iter().map(|v| v * 0.5 + 1.0).collect();
            let want_dot: f64 = x.iter().zip(&y).map(|(&a, &b)| f64::from(a * b)).sum();
            let dot = f64::from(sum8_2(&x, &y, |a, b| a * b));
            assert!((dot - want_dot).abs() <= 1e-5 * (1.0 + want_dot.abs()));
            let want_max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max8(&x), want_max);
            if len == 0 {
                continue;
            }
            let mut row = x.clone();
            let bias: Vec<f32> = (0..len)
                .map(|i| if i % 5 == 4 { -1e30 } else { 0.1 })
                .collect();
            let lse = softmax_in_place(&mut row, Some(&bias));
            let z: Vec<f64> = x
                .iter()
                .zip(&bias)
                .map(|(&a, &b)| f64::from(a + b))
                .collect();
            let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let want_lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            assert!((f64::from(lse) - want_lse).abs() < 1e-5, "len {len}");
            for (p, v) in row.iter().zip(&z) {
                assert!(
                    (f64::from(*p) - (v - want_lse).exp()).abs() < 1e-6,
                    "len {len}"
                );
            }
            let mut acc = y.clone();
            add_assign(&mut acc, &x);
            for ((a, &b), &c) in acc.iter().zip(&x).zip(&y) {
                assert_eq!(*a, b + c);
            }
        }
    }

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
