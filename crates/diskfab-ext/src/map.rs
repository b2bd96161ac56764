//! Logical-to-physical maps of whole files, so reads become a few large device reads: the
//! extent tree (or the indirect blocks of ext2/ext3 files) is walked once per inode and cached
//! until the next mutation.

use crate::fs::{check, ExtFs, Inode};
use crate::sys;
use diskfab_storage::{Error, Result};
use std::ffi::{c_int, c_void};

/// A run of logical blocks `lblk..lblk+len` stored at `pblk..` (`zero`: unwritten extent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub lblk: u64,
    pub pblk: u64,
    pub len: u64,
    pub zero: bool,
}

/// The cached map of one inode; runs are sorted and non-overlapping, holes are absent.
#[derive(Debug, Default)]
pub(crate) struct FileMap {
    pub ino: u64,
    pub runs: Vec<Run>,
}

impl FileMap {
    /// The run containing `lblk`, or the length of the hole starting there (`None` = to EOF).
    pub fn find(&self, lblk: u64) -> std::result::Result<Run, Option<u64>> {
        let i = self.runs.partition_point(|r| r.lblk + r.len <= lblk);
        match self.runs.get(i) {
            Some(r) if r.lblk <= lblk => Ok(*r),
            Some(r) => Err(Some(r.lblk - lblk)),
            None => Err(None),
        }
    }
}

fn push(runs: &mut Vec<Run>, r: Run) {
    if let Some(last) = runs.last_mut() {
        if last.zero == r.zero
            && last.lblk + last.len == r.lblk
            && (r.zero || last.pblk + last.len == r.pblk)
        {
            last.len += r.len;
            return;
        }
    }
    runs.push(r);
}

struct ExtentHandle(sys::ext2_extent_handle_t);

impl Drop for ExtentHandle {
    fn drop(&mut self) {
        // SAFETY: the handle came from ext2fs_extent_open2 and is freed once.
        unsafe { sys::ext2fs_extent_free(self.0) };
    }
}

impl ExtFs {
    /// The block map of `ino` (from the cache when it is still valid).
    pub(crate) fn file_map(&mut self, ino: u64, inode: &mut Inode) -> Result<&FileMap> {
        if self.map_cache.as_ref().map(|m| m.ino) != Some(ino) {
            self.map_cache = None;
            let runs = self.build_map(ino, inode)?;
            self.map_cache = Some(FileMap { ino, runs });
        }
        self.map_cache
            .as_ref()
            .ok_or_else(|| Error::Failed("file map cache".into()))
    }

    fn build_map(&mut self, ino: u64, inode: &mut Inode) -> Result<Vec<Run>> {
        let i = self.ino32(ino)?;
        let total = self.blocks_count();
        let mut runs = Vec::new();
        let valid = |r: &Run| r.len > 0 && r.pblk.checked_add(r.len).is_some_and(|e| e <= total);
        if inode.i_flags & sys::EXT4_EXTENTS_FL != 0 {
            let mut h: sys::ext2_extent_handle_t = std::ptr::null_mut();
            // SAFETY: valid fs, inode buffer and out-pointer.
            check(
                unsafe {
                    sys::ext2fs_extent_open2(
                        self.fs,
                        i,
                        inode as *mut Inode as *mut sys::ext2_inode,
                        &mut h,
                    )
                },
                "opening the extent tree",
            )?;
            let h = ExtentHandle(h);
            let mut op = sys::EXT2_EXTENT_ROOT;
            loop {
                let mut e = sys::ext2fs_extent::default();
                // SAFETY: h is open; e is a valid out-struct.
                let rc = unsafe { sys::ext2fs_extent_get(h.0, op as c_int, &mut e) };
                op = sys::EXT2_EXTENT_NEXT;
                if rc == sys::EXT2_ET_EXTENT_NO_NEXT as sys::errcode_t {
                    break;
                }
                check(rc, &format!("walking the extents of inode {ino}"))?;
                if e.e_flags & sys::EXT2_EXTENT_FLAGS_LEAF == 0
                    || e.e_flags & sys::EXT2_EXTENT_FLAGS_SECOND_VISIT != 0
                {
                    continue;
                }
                let r = Run {
                    lblk: e.e_lblk,
                    pblk: e.e_pblk,
                    len: u64::from(e.e_len),
                    zero: e.e_flags & sys::EXT2_EXTENT_FLAGS_UNINIT != 0,
                };
                if !valid(&r) || runs.last().is_some_and(|l: &Run| l.lblk + l.len > r.lblk) {
                    return Err(Error::bad(format!("inode {ino} has a corrupt extent map")));
                }
                push(&mut runs, r);
            }
            return Ok(runs);
        }
        struct Acc {
            runs: Vec<Run>,
            bad: bool,
            total: u64,
        }
        unsafe extern "C" fn cb(
            _fs: sys::ext2_filsys,
            blocknr: *mut sys::blk64_t,
            blockcnt: sys::e2_blkcnt_t,
            _ref_blk: sys::blk64_t,
            _ref_offset: c_int,
            priv_: *mut c_void,
        ) -> c_int {
            // SAFETY: libext2fs passes a valid block pointer and our Acc.
            unsafe {
                let acc = &mut *(priv_ as *mut Acc);
                let (b, n) = (*blocknr, blockcnt);
                if n < 0 || b == 0 || b >= acc.total {
                    acc.bad = n >= 0 && b != 0;
                    return if acc.bad {
                        sys::BLOCK_ABORT as c_int
                    } else {
                        0
                    };
                }
                let r = Run {
                    lblk: n as u64,
                    pblk: b,
                    len: 1,
                    zero: false,
                };
                push(&mut acc.runs, r);
                0
            }
        }
        let mut acc = Acc {
            runs,
            bad: false,
            total,
        };
        // SAFETY: callback only touches the Acc we pass; read-only iteration.
        let rc = unsafe {
            sys::ext2fs_block_iterate3(
                self.fs,
                i,
                (sys::BLOCK_FLAG_DATA_ONLY | sys::BLOCK_FLAG_READ_ONLY) as c_int,
                std::ptr::null_mut(),
                Some(cb),
                &mut acc as *mut Acc as *mut c_void,
            )
        };
        check(rc, &format!("mapping the blocks of inode {ino}"))?;
        if acc.bad {
            return Err(Error::bad(format!(
                "inode {ino} maps data beyond the end of the filesystem"
            )));
        }
        acc.runs.sort_by_key(|r| r.lblk);
        Ok(acc.runs)
    }
}
