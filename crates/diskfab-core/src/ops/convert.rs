//! `convert`: sparse-aware, parallel, streaming. One worker per core claims 1 MiB chunks in
//! order, skips what the source reports unallocated or zero, reads the rest, finds the zero
//! pieces and compresses the others when the output stores compressed units (qcow2 `-c`,
//! streamOptimized VMDK grains). One writer stores the results in guest order. Workers stay at
//! most [`WINDOW_PER_WORKER`] chunks per worker ahead of the writer, so memory is bounded
//! whatever the image size.

use super::images::all_zero;
use diskfab_image::{
    create, BackingGate, Compressor, CreateOptions, Format, Image, OpenOptions, Packed,
};
use diskfab_storage::{DevRef, Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Condvar, Mutex};

const CHUNK: u64 = 4 << 20;
/// Granularity of zero detection for plain outputs.
const PIECE: usize = 64 << 10;
/// How many chunks each worker may run ahead of the writer.
const WINDOW_PER_WORKER: u64 = 2;

/// Options of [`convert`].
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Output format.
    pub format: Format,
    /// qcow2 cluster size.
    pub cluster_size: Option<u32>,
    /// Make the output an overlay of this base (stored as given); only ranges that differ from
    /// the base are written.
    pub backing: Option<PathBuf>,
    /// Policy for backing files of the source (and of the new output's base).
    pub gate: BackingGate,
    /// Fully allocated output layout (VDI static, VHD fixed).
    pub fixed: bool,
    /// VMDK output is streamOptimized (deflated, written in order) instead of monolithicSparse.
    pub stream_optimized: bool,
    /// Write compressed qcow2 clusters.
    pub compress: bool,
    /// Use zstd for compressed clusters (zlib otherwise).
    pub zstd: bool,
    /// qcow2 output with extended L2 entries (32 subclusters per cluster).
    pub extended_l2: bool,
    /// VHD: the size exactly as given (no CHS rounding by any reader).
    pub force_size: bool,
    /// VHD for Azure: fixed, size rounded up to a whole MiB and forced.
    pub azure: bool,
    /// Worker threads (0 = one per available core).
    pub threads: usize,
    /// No fdatasync of the output while converting or at the end (like qemu-img's default,
    /// `-t unsafe`); the image is still completed. Faster, but a host crash can lose it.
    pub no_sync: bool,
}

/// What [`convert`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConvertReport {
    /// Guest size.
    pub virtual_size: u64,
    /// Bytes written to the output.
    pub written: u64,
    /// Bytes skipped as zero, unallocated or equal to the base.
    pub skipped: u64,
    /// Output file size on the host.
    pub output_allocated: u64,
    /// The output's guest size when it differs from the source's (`azure=on` rounds up to a
    /// whole MiB; the added tail reads as zeroes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_size: Option<u64>,
}

/// Converts `src` into a new image `dst` (never overwritten). Unallocated and zero ranges are not
/// written; with a backing base, ranges equal to the base are not written either. A failed
/// conversion (in any worker or in the writer) removes the partial output.
pub fn convert(
    src: &Path,
    dst: &Path,
    opts: &ConvertOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ConvertReport> {
    let s = Image::open(
        src,
        &OpenOptions {
            writable: false,
            gate: opts.gate.clone(),
        },
    )?;
    let sdev = s.dev();
    let size = sdev.size();
    if opts.format == Format::Raw && opts.backing.is_some() {
        return Err(Error::Invalid(
            "raw images cannot have a backing file".into(),
        ));
    }
    create(
        dst,
        &CreateOptions {
            format: opts.format,
            size: Some(size),
            backing: opts.backing.clone(),
            backing_format: None,
            cluster_size: opts.cluster_size,
            fixed: opts.fixed,
            // A compressed VMDK is a stream-optimized one.
            stream_optimized: opts.stream_optimized
                || (opts.compress && opts.format == Format::Vmdk),
            zstd: opts.zstd,
            extended_l2: opts.extended_l2,
            force_size: opts.force_size,
            azure: opts.azure,
        },
    )?;
    let r = if opts.no_sync {
        diskfab_storage::without_sync(|| convert_into(&sdev, dst, opts, progress))
    } else {
        convert_into(&sdev, dst, opts, progress)
    };
    if r.is_err() {
        let _ = std::fs::remove_file(dst);
    }
    r
}

/// What a worker made of one chunk.
enum Out {
    /// Unallocated or zero in the source.
    Skip,
    /// Plain data and its non-zero byte ranges (all of it when writing over a base).
    Plain(Buf, Vec<(usize, usize)>),
    /// Whole output units, each zero (`None`) or packed.
    Units(Buf, Vec<Option<Packed>>),
    /// Already written by the worker (raw outputs): this many bytes.
    Written(u64),
}

/// A page-aligned byte buffer (safe: a larger `Vec` and an aligned window into it). The kernel
/// copies between user memory and the page cache several times faster when both sides are
/// page aligned; `malloc`'s large blocks are offset by 16 bytes.
struct Buf {
    v: Vec<u8>,
    start: usize,
    len: usize,
}

impl Buf {
    const ALIGN: usize = 4096;

    /// A recycled buffer from `pool` (its old bytes are overwritten by the next read), or a new
    /// one: fresh memory costs a page fault per 4 KiB, more than the copy itself.
    fn take(pool: &Mutex<Vec<Buf>>, len: usize) -> Self {
        let old = pool.lock().ok().and_then(|mut p| p.pop());
        match old {
            Some(mut b) if b.v.len() >= len + Self::ALIGN => {
                b.len = len;
                b
            }
            _ => {
                let v = vec![0u8; len + Self::ALIGN];
                let start = v.as_ptr().align_offset(Self::ALIGN).min(Self::ALIGN);
                Buf { v, start, len }
            }
        }
    }

    fn give(self, pool: &Mutex<Vec<Buf>>) {
        if let Ok(mut p) = pool.lock() {
            p.push(self);
        }
    }
}

impl std::ops::Deref for Buf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.v[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.v[self.start..self.start + self.len]
    }
}

/// What the workers share: the next chunk to claim, the writer's position, the stop flag.
struct Control {
    next: AtomicU64,
    written: Mutex<u64>,
    moved: Condvar,
    abort: AtomicBool,
    window: u64,
    /// Buffers the writer is done with.
    pool: Mutex<Vec<Buf>>,
}

impl Control {
    /// Waits until chunk `i` is inside the window; false when the conversion stopped.
    fn wait_turn(&self, i: u64) -> bool {
        let Ok(mut w) = self.written.lock() else {
            return false;
        };
        while i >= *w + self.window && !self.abort.load(Ordering::Relaxed) {
            w = match self.moved.wait(w) {
                Ok(w) => w,
                Err(_) => return false,
            };
        }
        !self.abort.load(Ordering::Relaxed)
    }

    fn advance(&self, to: u64) {
        if let Ok(mut w) = self.written.lock() {
            *w = to;
        }
        self.moved.notify_all();
    }

    fn stop(&self) {
        self.abort.store(true, Ordering::Relaxed);
        // Take the lock so no worker misses the wake-up between its check and its wait.
        drop(self.written.lock());
        self.moved.notify_all();
    }
}

/// How workers treat a chunk.
#[derive(Clone, Copy)]
struct Job<'a> {
    src: &'a DevRef,
    size: u64,
    chunk: u64,
    /// Writing over a base: every byte goes to the writer, which compares with the base.
    has_base: bool,
    comp: Option<Compressor>,
    /// A raw output: every byte has one fixed place, so workers write their chunks themselves
    /// (the page-cache copies then run on every core).
    direct: Option<&'a DevRef>,
}

impl Job<'_> {
    fn run(&self, i: u64, pool: &Mutex<Vec<Buf>>) -> Result<Out> {
        let off = i * self.chunk;
        let len = self.chunk.min(self.size - off);
        if !self.has_base && self.src.is_zero_hint(off, len)? {
            return Ok(Out::Skip);
        }
        let mut b = Buf::take(pool, len as usize);
        self.src.read_at(&mut b, off)?;
        if self.has_base {
            return Ok(Out::Plain(b, Vec::new()));
        }
        if let Some(c) = self.comp {
            let units = b
                .chunks(c.unit() as usize)
                .map(|u| (!all_zero(u)).then(|| c.compress(u)).transpose())
                .collect::<Result<Vec<_>>>()?;
            return Ok(Out::Units(b, units));
        }
        let runs = nonzero_runs(&b);
        if runs.is_empty() {
            b.give(pool);
            return Ok(Out::Skip);
        }
        let Some(dst) = self.direct else {
            return Ok(Out::Plain(b, runs));
        };
        let mut n = 0;
        for (s, e) in runs {
            dst.write_at(&b[s..e], off + s as u64)?;
            n += (e - s) as u64;
        }
        b.give(pool);
        Ok(Out::Written(n))
    }
}

/// The non-zero [`PIECE`]-granular byte ranges of `b`, adjacent pieces merged.
fn nonzero_runs(b: &[u8]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (k, p) in b.chunks(PIECE).enumerate() {
        if all_zero(p) {
            continue;
        }
        let (s, e) = (k * PIECE, k * PIECE + p.len());
        match runs.last_mut() {
            Some(last) if last.1 == s => last.1 = e,
            _ => runs.push((s, e)),
        }
    }
    runs
}

fn worker(job: Job<'_>, ctl: &Control, count: u64, tx: SyncSender<(u64, Result<Out>)>) {
    loop {
        let i = ctl.next.fetch_add(1, Ordering::Relaxed);
        if i >= count || !ctl.wait_turn(i) {
            return;
        }
        let r = job.run(i, &ctl.pool);
        let failed = r.is_err();
        if tx.send((i, r)).is_err() || failed {
            return;
        }
    }
}

fn worker_count(opts: &ConvertOptions) -> usize {
    if opts.threads > 0 {
        return opts.threads;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn convert_into(
    sdev: &DevRef,
    dst: &Path,
    opts: &ConvertOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ConvertReport> {
    let d = Image::open(
        dst,
        &OpenOptions {
            writable: true,
            gate: opts.gate.clone(),
        },
    )?;
    let size = sdev.size();
    let has_base = opts.backing.is_some();
    // qcow2 clusters are compressed only with -c; streamOptimized grains always are.
    let comp = d
        .compressor()
        .filter(|_| !has_base && (opts.compress || d.format() == Format::Vmdk));
    let chunk = comp.map_or(CHUNK, |c| CHUNK.max(c.unit()).div_ceil(c.unit()) * c.unit());
    let ddev = d.dev();
    let job = Job {
        src: sdev,
        size,
        chunk,
        has_base,
        comp,
        direct: (d.format() == Format::Raw && !has_base).then_some(&ddev),
    };
    let n = worker_count(opts);
    let ctl = Control {
        next: AtomicU64::new(0),
        written: Mutex::new(0),
        moved: Condvar::new(),
        abort: AtomicBool::new(false),
        window: WINDOW_PER_WORKER * n as u64,
        pool: Mutex::new(Vec::new()),
    };
    let count = size.div_ceil(chunk);
    let mut w = Writer {
        img: &d,
        dev: d.dev(),
        chunk,
        size,
        unit: comp.map_or(CHUNK, |c| c.unit()),
        has_base,
        below: Vec::new(),
        rep: ConvertReport {
            virtual_size: size,
            ..Default::default()
        },
    };
    std::thread::scope(|sc| -> Result<()> {
        let (tx, rx) = sync_channel(ctl.window as usize);
        for _ in 0..n {
            let tx = tx.clone();
            let ctl = &ctl;
            sc.spawn(move || worker(job, ctl, count, tx));
        }
        drop(tx);
        let r = w.run(rx, count, &ctl, progress);
        if r.is_err() {
            ctl.stop();
        }
        r
    })?;
    d.flush()?;
    let mut rep = w.rep;
    rep.output_size = Some(ddev.size()).filter(|&n| n != rep.virtual_size);
    rep.output_allocated = std::fs::metadata(dst)
        .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
        .unwrap_or(0);
    Ok(rep)
}

/// The one thread that writes the output, in guest order.
struct Writer<'a> {
    img: &'a Image,
    dev: DevRef,
    chunk: u64,
    size: u64,
    /// Output unit of [`Out::Units`] (compressed cluster or grain).
    unit: u64,
    /// The output is an overlay: chunks are compared with its base.
    has_base: bool,
    /// Scratch for reading the base below an overlay output.
    below: Vec<u8>,
    rep: ConvertReport,
}

impl Writer<'_> {
    /// Receives chunks (in any order), writes them in order; consumes `rx` so that returning
    /// (on success or error) releases the workers blocked on sending.
    fn run(
        &mut self,
        rx: Receiver<(u64, Result<Out>)>,
        count: u64,
        ctl: &Control,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        let mut early = BTreeMap::new();
        let mut next = 0u64;
        while next < count {
            let Ok((i, r)) = rx.recv() else {
                return Err(Error::Failed(
                    "a convert worker stopped unexpectedly".into(),
                ));
            };
            early.insert(i, r?);
            while let Some(out) = early.remove(&next) {
                let off = next * self.chunk;
                let len = self.chunk.min(self.size - off);
                if let Some(b) = self.write(off, len, out)? {
                    b.give(&ctl.pool);
                }
                progress(len);
                next += 1;
                ctl.advance(next);
            }
        }
        Ok(())
    }

    /// Writes one chunk; gives back its buffer for reuse.
    fn write(&mut self, off: u64, len: u64, out: Out) -> Result<Option<Buf>> {
        Ok(match out {
            Out::Skip => {
                self.rep.skipped += len;
                None
            }
            Out::Plain(b, _) if self.has_base => {
                self.write_over_base(off, &b)?;
                Some(b)
            }
            Out::Plain(b, runs) => {
                let mut n = 0;
                for (s, e) in runs {
                    self.dev.write_at(&b[s..e], off + s as u64)?;
                    n += (e - s) as u64;
                }
                self.rep.written += n;
                self.rep.skipped += len - n;
                Some(b)
            }
            Out::Units(b, units) => {
                self.write_units(off, &b, &units)?;
                Some(b)
            }
            Out::Written(n) => {
                self.rep.written += n;
                self.rep.skipped += len - n;
                None
            }
        })
    }

    /// The new overlay reads its base where unwritten: write only the [`PIECE`]s that differ.
    fn write_over_base(&mut self, off: u64, b: &[u8]) -> Result<()> {
        if self.below.len() < b.len() {
            self.below.resize(b.len(), 0);
        }
        self.dev.read_at(&mut self.below[..b.len()], off)?;
        for (k, p) in b.chunks(PIECE).enumerate() {
            let at = k * PIECE;
            let len = p.len() as u64;
            if self.below[at..at + p.len()] == p[..] {
                self.rep.skipped += len;
                continue;
            }
            if all_zero(p) {
                self.dev.write_zeroes(off + at as u64, len)?;
            } else {
                self.dev.write_at(p, off + at as u64)?;
            }
            self.rep.written += len;
        }
        Ok(())
    }

    /// Stores whole units: compressed ones one by one, runs of plain ones in one write.
    fn write_units(&mut self, off: u64, b: &[u8], units: &[Option<Packed>]) -> Result<()> {
        let u = self.unit as usize;
        let mut plain: Option<usize> = None;
        for (k, p) in units.iter().enumerate() {
            let (s, e) = (k * u, (k * u + u).min(b.len()));
            if !matches!(p, Some(Packed::Plain)) {
                if let Some(ps) = plain.take() {
                    self.dev.write_at(&b[ps..s], off + ps as u64)?;
                }
            }
            match p {
                None => self.rep.skipped += (e - s) as u64,
                Some(Packed::Plain) => {
                    plain.get_or_insert(s);
                    self.rep.written += (e - s) as u64;
                }
                Some(c) => {
                    self.img.write_packed(off + s as u64, &b[s..e], c)?;
                    self.rep.written += (e - s) as u64;
                }
            }
        }
        if let Some(ps) = plain {
            self.dev.write_at(&b[ps..], off + ps as u64)?;
        }
        Ok(())
    }
}
