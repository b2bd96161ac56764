//! diskfab NTFS driver, read-only: boot sector, MFT records (update sequences verified),
//! attribute lists (also $MFT's own), resident and non-resident attributes, runlists, sparse
//! and LZNT1-compressed streams, alternate data streams (as `user.<name>` extended
//! attributes, like ntfs-3g's `streams_interface=xattr`), directory B+trees with $UpCase
//! case-insensitive lookups, reparse points (symlinks and junctions) and Interix special
//! files. Every write is refused with [`Error::ReadOnly`] ("NTFS is read-only in diskfab").
//!
//! Parsing (`boot`, `record`, `runlist`, `lznt1`, `index`, `names`) is pure functions over
//! bytes; `volume` and `dir` do the I/O with bounded sizes, depths and loops.
#![deny(missing_docs)]

mod boot;
mod dir;
mod fs;
mod index;
mod lznt1;
mod names;
mod record;
mod runlist;
mod volume;

pub use fs::{NtfsFs, READ_ONLY};

use diskfab_fs::{Filesystem, FsDriver};
use diskfab_storage::{DevRef, Error, Result};

/// The NTFS driver (read-only).
pub struct NtfsDriver;

impl FsDriver for NtfsDriver {
    fn name(&self) -> &'static str {
        "ntfs"
    }

    fn probe(&self, dev: &DevRef) -> Result<Option<String>> {
        if dev.size() < 512 {
            return Ok(None);
        }
        let mut s = [0u8; 512];
        dev.read_at(&mut s, 0)?;
        Ok(boot::parse(&s).ok().map(|_| "ntfs".to_string()))
    }

    fn open(&self, dev: DevRef, writable: bool) -> Result<Box<dyn Filesystem>> {
        if writable {
            return Err(Error::ReadOnly(READ_ONLY.into()));
        }
        Ok(Box::new(NtfsFs::open(dev)?))
    }
}

/// Fuzzing entry point. The first byte selects the parser, the rest is its input:
/// 0 a volume image (boot sector, $MFT, $UpCase, then a bounded walk: listings, attributes,
/// reads, streams, links), 1 an MFT record (fixups, attributes, runlists, attribute list,
/// names, reparse data), 2 an INDX record, 3 a runlist, 4 an LZNT1 compression unit.
/// Never panics; returns how much it parsed (entries, attributes, runs or bytes).
#[doc(hidden)]
pub fn fuzz_ntfs(data: &[u8]) -> usize {
    let Some((sel, data)) = data.split_first() else {
        return 0;
    };
    match sel % 5 {
        0 => {
            let _ = boot::parse(data);
            let dev: DevRef =
                std::sync::Arc::new(diskfab_storage::MemDev::from_vec(data.to_vec(), false));
            match NtfsFs::open(dev) {
                Ok(mut fs) => {
                    let _ = fs.info();
                    let root = fs.root();
                    1 + walk(&mut fs, root, 0)
                }
                Err(_) => 0,
            }
        }
        1 => {
            let mut r = data.to_vec();
            if record::apply_fixups(&mut r, b"FILE").is_err() {
                r = data.to_vec();
            }
            let Ok(rec) = record::parse_record(&r, 1 << 24) else {
                return 0;
            };
            for a in &rec.attrs {
                if let record::Body::Resident(v) = &a.body {
                    let _ = record::parse_attr_list(v, 1024);
                    let _ = names::parse_file_name(v);
                    let _ = names::parse_std_info(v);
                    let _ = names::parse_reparse(v);
                    let _ = index::parse_root(v);
                }
            }
            rec.attrs.len()
        }
        2 => {
            let mut r = data.to_vec();
            let vcn = diskfab_storage::bytes::le_u64(data, 0x10).unwrap_or(0);
            index::parse_indx(&mut r, vcn).map_or(0, |e| e.len())
        }
        3 => runlist::decode(data, 0, 1 << 32, 65536).map_or(0, |r| r.len()),
        _ => {
            let mut out = vec![0u8; 65536];
            lznt1::decompress(data, &mut out).unwrap_or(0)
        }
    }
}

fn walk(fs: &mut NtfsFs, dir: u64, depth: usize) -> usize {
    let Ok(entries) = fs.read_dir(dir) else {
        return 0;
    };
    let mut n = entries.len();
    let mut buf = vec![0u8; 4096];
    for e in entries.iter().take(256) {
        let _ = fs.getattr(e.ino);
        let _ = fs.read(e.ino, 0, &mut buf);
        let _ = fs.list_xattrs(e.ino);
        let _ = fs.read_link(e.ino);
        if e.file_type == diskfab_fs::FileType::Directory && depth < 8 {
            n += walk(fs, e.ino, depth + 1);
        }
    }
    n
}
