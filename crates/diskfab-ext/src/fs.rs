//! [`ExtFs`]: an open ext2/3/4 filesystem (libext2fs handle) with error mapping and inode helpers.

use crate::io;
use crate::sys;
use diskfab_fs::{FileType, FsInfo, Metadata, Timespec};
use diskfab_storage::{DevRef, Error, Result};
use std::ffi::CStr;

/// Inode type used for every read/write (the large layout; libext2fs copies what the fs has).
pub type Inode = sys::ext2_inode_large;

/// An open ext2/3/4 filesystem.
pub struct ExtFs {
    pub(crate) fs: sys::ext2_filsys,
    pub(crate) dev: DevRef,
    pub(crate) writable: bool,
    reg_id: u64,
    pub(crate) fs_type: String,
    /// Block map of the last file read (dropped by every mutation).
    pub(crate) map_cache: Option<crate::map::FileMap>,
    /// Pinned clock (see `Filesystem::set_clock`).
    pub(crate) clock: Option<diskfab_fs::Timespec>,
}

// SAFETY: the libext2fs handle is used only through `&mut self` (one thread at a time), and the
// device it reaches through our io_manager is Send + Sync.
unsafe impl Send for ExtFs {}

/// libext2fs error text.
pub fn message(code: sys::errcode_t) -> String {
    // SAFETY: error_message returns a pointer to a static or thread-local string.
    let p = unsafe { sys::error_message(code) };
    if p.is_null() {
        return format!("libext2fs error {code}");
    }
    // SAFETY: non-null NUL-terminated string from com_err.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn is(code: sys::errcode_t, c: u32) -> bool {
    code == c as sys::errcode_t
}

/// Maps a libext2fs error code to a diskfab error class.
pub fn err(code: sys::errcode_t, what: &str) -> Error {
    let m = format!("{what}: {}", message(code));
    if code == libc::ENOSPC as sys::errcode_t
        || is(code, sys::EXT2_ET_BLOCK_ALLOC_FAIL)
        || is(code, sys::EXT2_ET_INODE_ALLOC_FAIL)
        || is(code, sys::EXT2_ET_DIR_NO_SPACE_FOR_CSUM)
        || is(code, sys::EXT2_ET_INLINE_DATA_NO_SPACE)
        || is(code, sys::EXT2_ET_EA_NO_SPACE)
    {
        return Error::NoSpace(m);
    }
    if is(code, sys::EXT2_ET_FILE_NOT_FOUND) {
        return Error::NotFound(m);
    }
    if is(code, sys::EXT2_ET_FILE_EXISTS) || is(code, sys::EXT2_ET_DIR_EXISTS) {
        return Error::Exists(m);
    }
    if is(code, sys::EXT2_ET_RO_FILSYS) || code == libc::EROFS as sys::errcode_t {
        return Error::ReadOnly(m);
    }
    let bad = [
        sys::EXT2_ET_BAD_MAGIC,
        sys::EXT2_ET_SB_CSUM_INVALID,
        sys::EXT2_ET_CORRUPT_SUPERBLOCK,
        sys::EXT2_ET_UNSUPP_FEATURE,
        sys::EXT2_ET_RO_UNSUPP_FEATURE,
        sys::EXT2_ET_DIR_CORRUPTED,
        sys::EXT2_ET_DIR_CSUM_INVALID,
        sys::EXT2_ET_INODE_CSUM_INVALID,
        sys::EXT2_ET_EXTENT_CSUM_INVALID,
        sys::EXT2_ET_EXTENT_HEADER_BAD,
        sys::EXT2_ET_BAD_BLOCK_NUM,
        sys::EXT2_ET_BAD_INODE_NUM,
        sys::EXT2_ET_GDESC_BAD_BLOCK_MAP,
        sys::EXT2_ET_GDESC_BAD_INODE_MAP,
        sys::EXT2_ET_GDESC_BAD_INODE_TABLE,
        sys::EXT2_ET_BLOCK_BITMAP_CSUM_INVALID,
        sys::EXT2_ET_INODE_BITMAP_CSUM_INVALID,
        sys::EXT2_ET_BAD_EA_HEADER,
        sys::EXT2_ET_EXT_ATTR_CSUM_INVALID,
        sys::EXT2_ET_SHORT_READ,
        sys::EXT2_ET_CORRUPT_JOURNAL_SB,
        sys::EXT2_ET_INLINE_DATA_CANT_ITERATE,
    ];
    if bad.iter().any(|&b| is(code, b)) {
        return Error::BadImage(m);
    }
    Error::Failed(m)
}

/// Turns a libext2fs return code into a Result.
pub fn check(code: sys::errcode_t, what: &str) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(err(code, what))
    }
}

/// The type name probe reports for superblock feature words.
pub fn type_from_features(compat: u32, incompat: u32, ro_compat: u32) -> &'static str {
    let ext4_incompat = sys::EXT3_FEATURE_INCOMPAT_EXTENTS
        | sys::EXT4_FEATURE_INCOMPAT_64BIT
        | sys::EXT4_FEATURE_INCOMPAT_FLEX_BG
        | sys::EXT4_FEATURE_INCOMPAT_MMP
        | sys::EXT4_FEATURE_INCOMPAT_INLINE_DATA
        | sys::EXT4_FEATURE_INCOMPAT_CSUM_SEED;
    let ext4_ro = sys::EXT4_FEATURE_RO_COMPAT_HUGE_FILE
        | sys::EXT4_FEATURE_RO_COMPAT_GDT_CSUM
        | sys::EXT4_FEATURE_RO_COMPAT_DIR_NLINK
        | sys::EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE
        | sys::EXT4_FEATURE_RO_COMPAT_METADATA_CSUM;
    if incompat & ext4_incompat != 0 || ro_compat & ext4_ro != 0 {
        "ext4"
    } else if compat & sys::EXT3_FEATURE_COMPAT_HAS_JOURNAL != 0 {
        "ext3"
    } else {
        "ext2"
    }
}

impl ExtFs {
    /// Opens the filesystem on `dev`. Writable opens are refused when the journal needs
    /// recovery or the filesystem is marked as having errors.
    pub fn open(dev: DevRef, writable: bool) -> Result<ExtFs> {
        if writable && !dev.writable() {
            return Err(Error::ReadOnly("the device is read-only".into()));
        }
        crate::sbcheck::check_superblock(&dev)?;
        let (reg_id, name) = io::register(dev.clone());
        let mut flags = sys::EXT2_FLAG_64BITS | sys::EXT2_FLAG_SKIP_MMP;
        if writable {
            flags |= sys::EXT2_FLAG_RW;
        }
        let mut fs: sys::ext2_filsys = std::ptr::null_mut();
        // SAFETY: valid name, manager and out-pointer; superblock 0/blocksize 0 = auto.
        let rc = unsafe {
            sys::ext2fs_open2(
                name.as_ptr(),
                std::ptr::null(),
                flags as i32,
                0,
                0,
                io::manager(),
                &mut fs,
            )
        };
        if rc != 0 {
            io::unregister(reg_id);
            return Err(Error::BadImage(format!(
                "not a usable ext2/3/4 filesystem: {}",
                message(rc)
            )));
        }
        let mut me = ExtFs {
            fs,
            dev,
            writable,
            reg_id,
            fs_type: String::new(),
            map_cache: None,
            clock: None,
        };
        let (compat, incompat, ro, state) = {
            let sb = me.sb();
            (
                sb.s_feature_compat,
                sb.s_feature_incompat,
                sb.s_feature_ro_compat,
                sb.s_state,
            )
        };
        me.fs_type = type_from_features(compat, incompat, ro).to_string();
        if writable {
            if incompat & sys::EXT3_FEATURE_INCOMPAT_RECOVER != 0 {
                return Err(Error::Unsupported(
                    "the ext journal needs recovery (the filesystem was not cleanly unmounted); \
                     refusing to write. Reading works; to write, run `e2fsck -fy` on it (or boot it once)"
                        .into(),
                ));
            }
            if u32::from(state) & sys::EXT2_ERROR_FS != 0 {
                return Err(Error::Unsupported(
                    "the filesystem is marked as having errors; refusing to write: run `e2fsck -fy` first".into(),
                ));
            }
            // SAFETY: fs is open.
            check(
                unsafe { sys::ext2fs_read_bitmaps(me.fs) },
                "reading allocation bitmaps",
            )
            .map_err(|e| match e {
                Error::Failed(m) => Error::BadImage(m),
                e => e,
            })?;
        }
        Ok(me)
    }

    /// The superblock.
    pub(crate) fn sb(&self) -> &sys::ext2_super_block {
        // SAFETY: fs is open for the lifetime of self; super_ is always set by ext2fs_open2.
        unsafe { &*(*self.fs).super_ }
    }

    pub(crate) fn ro(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::ReadOnly("the filesystem is open read-only".into()))
        }
    }

    /// Total blocks in the filesystem.
    pub(crate) fn blocks_count(&self) -> u64 {
        // SAFETY: the superblock is valid while fs is open; the function only reads it.
        unsafe { sys::ext2fs_blocks_count((*self.fs).super_) }
    }

    /// Block size in bytes.
    pub(crate) fn block_size(&self) -> u64 {
        // SAFETY: fs is open.
        unsafe { (*self.fs).blocksize as u64 }
    }

    pub(crate) fn ino32(&self, ino: u64) -> Result<u32> {
        let n = self.sb().s_inodes_count;
        match u32::try_from(ino) {
            Ok(i) if i >= 1 && i <= n => Ok(i),
            _ => Err(Error::bad(format!("inode number {ino} is out of range"))),
        }
    }

    /// Reads an inode in the large layout.
    pub(crate) fn read_inode(&self, ino: u64) -> Result<Inode> {
        let i = self.ino32(ino)?;
        // SAFETY: zeroed is a valid inode; the buffer is sizeof(Inode).
        let mut inode: Inode = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            sys::ext2fs_read_inode_full(
                self.fs,
                i,
                &mut inode as *mut Inode as *mut sys::ext2_inode,
                std::mem::size_of::<Inode>() as i32,
            )
        };
        check(rc, &format!("reading inode {ino}"))?;
        Ok(inode)
    }

    /// Writes an inode in the large layout.
    pub(crate) fn write_inode(&self, ino: u64, inode: &mut Inode) -> Result<()> {
        let i = self.ino32(ino)?;
        // SAFETY: inode is a valid large inode buffer.
        let rc = unsafe {
            sys::ext2fs_write_inode_full(
                self.fs,
                i,
                inode as *mut Inode as *mut sys::ext2_inode,
                std::mem::size_of::<Inode>() as i32,
            )
        };
        check(rc, &format!("writing inode {ino}"))
    }

    /// Opens inode `ino` through libext2fs' file API (for writing with `write`), positions it at
    /// `off`, runs `f` and closes the file on every path; a close error is reported when `f`
    /// succeeded (closing flushes the last block and the inode).
    pub(crate) fn with_file<R>(
        &self,
        ino: u64,
        write: bool,
        off: u64,
        f: impl FnOnce(sys::ext2_file_t) -> Result<R>,
    ) -> Result<R> {
        let i = self.ino32(ino)?;
        let flags = if write {
            sys::EXT2_FILE_WRITE as std::ffi::c_int
        } else {
            0
        };
        let mut file: sys::ext2_file_t = std::ptr::null_mut();
        // SAFETY: valid fs and out-pointer; the file is closed below on every path.
        check(
            unsafe { sys::ext2fs_file_open2(self.fs, i, std::ptr::null_mut(), flags, &mut file) },
            "opening file",
        )?;
        // SAFETY: file is open.
        let r = check(
            unsafe {
                sys::ext2fs_file_llseek(
                    file,
                    off,
                    sys::EXT2_SEEK_SET as std::ffi::c_int,
                    std::ptr::null_mut(),
                )
            },
            "seek",
        )
        .and_then(|_| f(file));
        // SAFETY: file is open and closed exactly once.
        let rc = unsafe { sys::ext2fs_file_close(file) };
        let v = r?;
        check(rc, "closing file")?;
        Ok(v)
    }

    /// Whether this filesystem's inodes have room for the large fields (nanoseconds, crtime).
    pub(crate) fn large_inodes(&self) -> bool {
        self.sb().s_inode_size >= 160
    }

    /// Attributes of an inode.
    pub(crate) fn meta(&self, ino: u64, i: &mut Inode) -> Result<Metadata> {
        let mode = u32::from(i.i_mode);
        let file_type = FileType::from_mode(mode)
            .ok_or_else(|| Error::bad(format!("inode {ino} has an invalid mode {mode:o}")))?;
        // SAFETY: osd2 is a union of two u16 layouts; linux2 is the Linux meaning.
        let (uid_hi, gid_hi) = unsafe { (i.osd2.linux2.l_i_uid_high, i.osd2.linux2.l_i_gid_high) };
        let room = if self.large_inodes() {
            i.i_extra_isize
        } else {
            0
        };
        let ts = |sec: u32, extra: u32, need: u16| -> Timespec {
            let mut s = i64::from(sec as i32);
            let mut nsec = 0;
            if room >= need {
                s += i64::from(extra & 3) << 32;
                nsec = extra >> 2;
            }
            Timespec {
                sec: s,
                nsec: nsec.min(999_999_999),
            }
        };
        let rdev = if matches!(file_type, FileType::CharDevice | FileType::BlockDevice) {
            decode_dev(i.i_block[0], i.i_block[1])
        } else {
            (0, 0)
        };
        // SAFETY: fs is open and i is a valid inode buffer.
        let blocks = unsafe {
            sys::ext2fs_get_stat_i_blocks(self.fs, i as *mut Inode as *mut sys::ext2_inode)
        };
        Ok(Metadata {
            ino,
            file_type,
            perm: mode & 0o7777,
            uid: u32::from(i.i_uid) | (u32::from(uid_hi) << 16),
            gid: u32::from(i.i_gid) | (u32::from(gid_hi) << 16),
            size: u64::from(i.i_size) | (u64::from(i.i_size_high) << 32),
            nlink: u32::from(i.i_links_count),
            atime: ts(i.i_atime, i.i_atime_extra, 16),
            mtime: ts(i.i_mtime, i.i_mtime_extra, 12),
            ctime: ts(i.i_ctime, i.i_ctime_extra, 8),
            rdev,
            allocated: blocks * 512,
        })
    }

    /// `info`.
    pub(crate) fn fs_info(&self) -> FsInfo {
        let sb = self.sb();
        let label: Vec<u8> = sb
            .s_volume_name
            .iter()
            .copied()
            .take_while(|&c| c != 0)
            .collect();
        let u = sb.s_uuid;
        let uuid = format!(
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]
        );
        let sbp = sb as *const sys::ext2_super_block as *mut sys::ext2_super_block;
        // SAFETY: the superblock pointer is valid; these functions only read it.
        let (total, free) = unsafe {
            (
                sys::ext2fs_blocks_count(sbp),
                sys::ext2fs_free_blocks_count(sbp),
            )
        };
        let bs = self.block_size();
        FsInfo {
            fs_type: self.fs_type.clone(),
            label: (!label.is_empty()).then(|| String::from_utf8_lossy(&label).into_owned()),
            uuid: Some(uuid),
            block_size: bs as u32,
            total_bytes: total * bs,
            used_bytes: total.saturating_sub(free) * bs,
            needs_recovery: sb.s_feature_incompat & sys::EXT3_FEATURE_INCOMPAT_RECOVER != 0,
            features: feature_names(
                sb.s_feature_compat,
                sb.s_feature_incompat,
                sb.s_feature_ro_compat,
            ),
        }
    }

    /// Writes every buffered change and flushes the device.
    pub(crate) fn flush(&mut self) -> Result<()> {
        if !self.writable {
            return Ok(());
        }
        // SAFETY: fs is open read-write.
        check(
            unsafe { sys::ext2fs_flush2(self.fs, 0) },
            "writing filesystem metadata",
        )?;
        self.dev.flush()
    }
}

impl Drop for ExtFs {
    fn drop(&mut self) {
        // SAFETY: fs is open; ext2fs_close2 writes dirty metadata (if writable) and frees it.
        unsafe {
            if self.writable {
                sys::ext2fs_close2(self.fs, 0);
            } else {
                sys::ext2fs_free(self.fs);
            }
        }
        io::unregister(self.reg_id);
    }
}

/// Decodes a device number from i_block[0..2] (old and new encodings, as the kernel does).
pub fn decode_dev(b0: u32, b1: u32) -> (u32, u32) {
    if b0 != 0 {
        ((b0 >> 8) & 0xff, b0 & 0xff)
    } else {
        ((b1 & 0xfff00) >> 8, (b1 & 0xff) | ((b1 >> 12) & 0xfff00))
    }
}

/// Encodes a device number into (i_block[0], i_block[1]).
pub fn encode_dev(major: u32, minor: u32) -> (u32, u32) {
    if major < 256 && minor < 256 {
        ((major << 8) | minor, 0)
    } else {
        (0, (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12))
    }
}

fn feature_names(compat: u32, incompat: u32, ro: u32) -> Vec<String> {
    let mut v = Vec::new();
    for (kind, word) in [
        (sys::E2P_FEATURE_COMPAT, compat),
        (sys::E2P_FEATURE_INCOMPAT, incompat),
        (sys::E2P_FEATURE_RO_INCOMPAT, ro),
    ] {
        for bit in 0..32 {
            if word & (1 << bit) != 0 {
                // SAFETY: e2p_feature2string returns a pointer to a static buffer.
                let p = unsafe { sys::e2p_feature2string(kind as i32, 1 << bit) };
                if !p.is_null() {
                    v.push(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned());
                }
            }
        }
    }
    v
}
