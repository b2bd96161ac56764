//! Writing: new inodes and links (expanding directories when full), data, attributes, removal,
//! rename. Follows the order debugfs/fuse2fs use with libext2fs so e2fsck stays clean.

use crate::fs::{check, encode_dev, ExtFs, Inode};
use crate::sys;
use diskfab_fs::{FileType, NewNode, SetAttr, Timespec};
use diskfab_storage::{Error, Result};
use std::ffi::{c_char, c_int, c_void, CString};

fn real_now() -> Timespec {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timespec {
        sec: d.as_secs() as i64,
        nsec: d.subsec_nanos(),
    }
}

fn cname(name: &[u8]) -> Result<CString> {
    if name.is_empty() || name.len() > 255 || name.contains(&b'/') || name == b"." || name == b".."
    {
        return Err(Error::Invalid(format!(
            "invalid file name {:?}",
            String::from_utf8_lossy(name)
        )));
    }
    CString::new(name).map_err(|_| Error::Invalid("file names cannot contain NUL".into()))
}

fn ft_code(t: FileType) -> u32 {
    match t {
        FileType::Regular => sys::EXT2_FT_REG_FILE,
        FileType::Directory => sys::EXT2_FT_DIR,
        FileType::Symlink => sys::EXT2_FT_SYMLINK,
        FileType::CharDevice => sys::EXT2_FT_CHRDEV,
        FileType::BlockDevice => sys::EXT2_FT_BLKDEV,
        FileType::Fifo => sys::EXT2_FT_FIFO,
        FileType::Socket => sys::EXT2_FT_SOCK,
    }
}

/// Splits a time into the 32-bit seconds field and the "extra" field (epoch bits + nanoseconds).
fn enc_time(t: Timespec) -> (u32, u32) {
    let sec = t.sec;
    let lo = sec as i32 as u32;
    let epoch = ((sec - i64::from(lo as i32)) >> 32) as u32 & 3;
    (lo, (t.nsec.min(999_999_999) << 2) | epoch)
}

impl ExtFs {
    /// The current time, or the pinned clock.
    fn now(&self) -> Timespec {
        self.clock.unwrap_or_else(real_now)
    }

    /// Pins (or unpins) the clock, also for libext2fs' own superblock write time.
    pub(crate) fn set_clock_to(&mut self, t: Option<Timespec>) {
        self.clock = t;
        // SAFETY: fs is open; `now` is a plain field libext2fs reads instead of time(NULL).
        unsafe { (*self.fs).now = t.map(|t| t.sec).unwrap_or(0) as _ };
    }

    /// Sets the given times; the nanosecond/epoch "extra" fields (and crtime) are written only
    /// where the inode's `i_extra_isize` has room for them (never resized: in-inode xattrs
    /// start right after it).
    fn set_times(
        &self,
        i: &mut Inode,
        a: Option<Timespec>,
        m: Option<Timespec>,
        c: Option<Timespec>,
        cr: Option<Timespec>,
    ) {
        let room = if self.large_inodes() {
            i.i_extra_isize
        } else {
            0
        };
        if let Some(t) = c {
            let (s, e) = enc_time(t);
            i.i_ctime = s;
            if room >= 8 {
                i.i_ctime_extra = e;
            }
        }
        if let Some(t) = m {
            let (s, e) = enc_time(t);
            i.i_mtime = s;
            if room >= 12 {
                i.i_mtime_extra = e;
            }
        }
        if let Some(t) = a {
            let (s, e) = enc_time(t);
            i.i_atime = s;
            if room >= 16 {
                i.i_atime_extra = e;
            }
        }
        if let Some(t) = cr {
            let (s, e) = enc_time(t);
            if room >= 24 {
                i.i_crtime = s;
                i.i_crtime_extra = e;
            }
        }
    }

    fn set_owner(i: &mut Inode, uid: u32, gid: u32) {
        i.i_uid = uid as u16;
        i.i_gid = gid as u16;
        // Writing a Copy union field is safe; linux2 is the Linux view of osd2.
        i.osd2.linux2.l_i_uid_high = (uid >> 16) as u16;
        i.osd2.linux2.l_i_gid_high = (gid >> 16) as u16;
    }

    /// Links `ino` as `name` in `dir`, expanding the directory when it is full.
    pub(crate) fn add_link(&mut self, dir: u64, name: &[u8], ino: u64, t: FileType) -> Result<()> {
        let c = cname(name)?;
        let d = self.ino32(dir)?;
        let i = self.ino32(ino)?;
        for _ in 0..64 {
            // SAFETY: valid fs and NUL-terminated name.
            let rc = unsafe { sys::ext2fs_link(self.fs, d, c.as_ptr(), i, ft_code(t) as c_int) };
            if rc == sys::EXT2_ET_DIR_NO_SPACE as sys::errcode_t {
                // SAFETY: valid fs and directory inode.
                check(
                    unsafe { sys::ext2fs_expand_dir(self.fs, d) },
                    "expanding directory",
                )?;
                continue;
            }
            return check(rc, "adding directory entry");
        }
        Err(Error::NoSpace("directory could not be expanded".into()))
    }

    /// Retries an operation that links into `dir` after expanding it on EXT2_ET_DIR_NO_SPACE.
    fn with_dir_space(
        &mut self,
        dir: u32,
        mut f: impl FnMut(&mut Self) -> sys::errcode_t,
        what: &str,
    ) -> Result<()> {
        for _ in 0..64 {
            let rc = f(self);
            if rc == sys::EXT2_ET_DIR_NO_SPACE as sys::errcode_t {
                // SAFETY: valid fs and directory inode.
                check(
                    unsafe { sys::ext2fs_expand_dir(self.fs, dir) },
                    "expanding directory",
                )?;
                continue;
            }
            return check(rc, what);
        }
        Err(Error::NoSpace("directory could not be expanded".into()))
    }

    fn exists(&mut self, dir: u64, name: &[u8]) -> Result<()> {
        if self.do_lookup(dir, name)?.is_some() {
            return Err(Error::Exists(String::from_utf8_lossy(name).into_owned()));
        }
        Ok(())
    }

    /// Creates a new non-directory inode of type `t` linked as `name` in `dir`.
    pub(crate) fn new_node(
        &mut self,
        dir: u64,
        name: &[u8],
        t: FileType,
        attr: &NewNode,
        rdev: (u32, u32),
    ) -> Result<u64> {
        self.ro()?;
        self.exists(dir, name)?;
        let d = self.ino32(dir)?;
        let mode = t.mode_bits() | (attr.perm & 0o7777);
        let mut ino: sys::ext2_ino_t = 0;
        // SAFETY: valid fs and out-pointer.
        check(
            unsafe {
                sys::ext2fs_new_inode(self.fs, d, mode as c_int, std::ptr::null_mut(), &mut ino)
            },
            "allocating an inode",
        )?;
        self.add_link(dir, name, u64::from(ino), t)?;
        // SAFETY: ino was just allocated by ext2fs_new_inode.
        unsafe { sys::ext2fs_inode_alloc_stats2(self.fs, ino, 1, 0) };
        // SAFETY: zeroed is a valid inode.
        let mut i: Inode = unsafe { std::mem::zeroed() };
        i.i_mode = mode as u16;
        i.i_links_count = 1;
        Self::set_owner(&mut i, attr.uid, attr.gid);
        let t0 = attr.time.unwrap_or_else(|| self.now());
        match t {
            FileType::CharDevice | FileType::BlockDevice => {
                let (b0, b1) = encode_dev(rdev.0, rdev.1);
                i.i_block[0] = b0;
                i.i_block[1] = b1;
            }
            FileType::Regular
                if self.sb().s_feature_incompat & sys::EXT3_FEATURE_INCOMPAT_EXTENTS != 0 =>
            {
                i.i_flags |= sys::EXT4_EXTENTS_FL;
                // Extent header in i_block: magic, entries 0, max 4, depth 0.
                i.i_block[0] = 0xf30a;
                i.i_block[1] = 4;
                i.i_block[2] = 0;
            }
            _ => {}
        }
        // SAFETY: i is a valid inode; write_new_inode initialises the large part.
        check(
            unsafe {
                sys::ext2fs_write_new_inode(
                    self.fs,
                    ino,
                    &mut i as *mut Inode as *mut sys::ext2_inode,
                )
            },
            "writing new inode",
        )?;
        let mut full = self.read_inode(u64::from(ino))?;
        self.set_times(&mut full, Some(t0), Some(t0), Some(t0), Some(t0));
        self.write_inode(u64::from(ino), &mut full)?;
        Ok(u64::from(ino))
    }

    /// Moves an inline-data file's contents out of the inode into a block, so writes and size
    /// changes go through libext2fs' block path: its inline-data write path in 1.47.0 computes
    /// the copy length as `nbytes - pos` (a huge memcpy when writing past offset 0, and a
    /// silent truncation at offset 0).
    fn uninline(&mut self, ino: u64) -> Result<()> {
        let i = self.read_inode(ino)?;
        if i.i_flags & sys::EXT4_INLINE_DATA_FL == 0 {
            return Ok(());
        }
        let n = self.ino32(ino)?;
        // SAFETY: valid fs and an allocated inode with inline data.
        check(
            unsafe { sys::ext2fs_inline_data_expand(self.fs, n) },
            "moving inline data out of the inode",
        )
    }

    /// Refuses data operations on anything but regular files.
    fn regular(&mut self, ino: u64) -> Result<()> {
        let mut i = self.read_inode(ino)?;
        match ExtFs::kind(&mut i) {
            Some(FileType::Regular) => Ok(()),
            _ => Err(Error::Invalid(format!("inode {ino} is not a regular file"))),
        }
    }

    pub(crate) fn do_write(&mut self, ino: u64, off: u64, data: &[u8]) -> Result<()> {
        self.ro()?;
        self.regular(ino)?;
        if data.is_empty() {
            return Ok(());
        }
        off.checked_add(data.len() as u64)
            .filter(|&e| e <= 1 << 44)
            .ok_or_else(|| Error::Invalid("write beyond the maximum file size".into()))?;
        self.uninline(ino)?;
        self.with_file(ino, true, off, |f| {
            let mut done = 0usize;
            while done < data.len() {
                let n = (data.len() - done).min(1 << 30) as u32;
                let mut w = 0u32;
                // SAFETY: f is open and data[done..] has n bytes.
                let rc = unsafe {
                    sys::ext2fs_file_write(f, data[done..].as_ptr() as *const c_void, n, &mut w)
                };
                check(rc, "writing file")?;
                if w == 0 {
                    return Err(Error::NoSpace("file write made no progress".into()));
                }
                done += w as usize;
            }
            Ok(())
        })
    }

    pub(crate) fn do_set_attr(&mut self, ino: u64, a: &SetAttr) -> Result<()> {
        self.ro()?;
        if let Some(size) = a.size {
            self.regular(ino)?;
            if size > 1 << 44 {
                return Err(Error::Invalid("file size too large".into()));
            }
            self.uninline(ino)?;
            // SAFETY: f is open for writing.
            self.with_file(ino, true, 0, |f| {
                check(
                    unsafe { sys::ext2fs_file_set_size2(f, size as _) },
                    "changing file size",
                )
            })?;
        }
        let mut i = self.read_inode(ino)?;
        if let Some(p) = a.perm {
            i.i_mode = ((u32::from(i.i_mode) & 0o170000) | (p & 0o7777)) as u16;
        }
        if a.uid.is_some() || a.gid.is_some() {
            let m = self.meta(ino, &mut i)?;
            Self::set_owner(&mut i, a.uid.unwrap_or(m.uid), a.gid.unwrap_or(m.gid));
        }
        self.set_times(&mut i, a.atime, a.mtime, Some(self.now()), None);
        self.write_inode(ino, &mut i)
    }

    pub(crate) fn do_mkdir(&mut self, dir: u64, name: &[u8], attr: &NewNode) -> Result<u64> {
        self.ro()?;
        self.exists(dir, name)?;
        let c = cname(name)?;
        let d = self.ino32(dir)?;
        // SAFETY: valid fs and name; ext2fs_mkdir allocates, links and accounts the directory.
        self.with_dir_space(
            d,
            |s| unsafe { sys::ext2fs_mkdir(s.fs, d, 0, c.as_ptr()) },
            "creating directory",
        )?;
        let ino = self
            .do_lookup(dir, name)?
            .ok_or_else(|| Error::Failed("new directory vanished".into()))?;
        let mut i = self.read_inode(ino)?;
        i.i_mode = (FileType::Directory.mode_bits() | (attr.perm & 0o7777)) as u16;
        Self::set_owner(&mut i, attr.uid, attr.gid);
        let t = attr.time.unwrap_or_else(|| self.now());
        self.set_times(&mut i, Some(t), Some(t), Some(t), Some(t));
        self.write_inode(ino, &mut i)?;
        Ok(ino)
    }

    pub(crate) fn do_symlink(
        &mut self,
        dir: u64,
        name: &[u8],
        target: &[u8],
        attr: &NewNode,
    ) -> Result<u64> {
        self.ro()?;
        self.exists(dir, name)?;
        if target.is_empty() || target.len() >= 4096 || target.contains(&0) {
            return Err(Error::Invalid(
                "symlink target must be 1..4095 bytes without NUL".into(),
            ));
        }
        let c = cname(name)?;
        let t = CString::new(target).map_err(|_| Error::Invalid("NUL in target".into()))?;
        let d = self.ino32(dir)?;
        // SAFETY: valid fs, names; ext2fs_symlink allocates, links and accounts the inode.
        self.with_dir_space(
            d,
            |s| unsafe { sys::ext2fs_symlink(s.fs, d, 0, c.as_ptr(), t.as_ptr()) },
            "creating symlink",
        )?;
        let ino = self
            .do_lookup(dir, name)?
            .ok_or_else(|| Error::Failed("new symlink vanished".into()))?;
        let mut i = self.read_inode(ino)?;
        Self::set_owner(&mut i, attr.uid, attr.gid);
        let tm = attr.time.unwrap_or_else(|| self.now());
        self.set_times(&mut i, Some(tm), Some(tm), Some(tm), Some(tm));
        self.write_inode(ino, &mut i)?;
        Ok(ino)
    }

    pub(crate) fn do_link(&mut self, ino: u64, dir: u64, name: &[u8]) -> Result<()> {
        self.ro()?;
        self.exists(dir, name)?;
        let mut i = self.read_inode(ino)?;
        let t = ExtFs::kind(&mut i).ok_or_else(|| Error::bad("invalid inode mode"))?;
        if t == FileType::Directory {
            return Err(Error::Invalid(
                "hard links to directories are not allowed".into(),
            ));
        }
        if i.i_links_count >= 65000 {
            return Err(Error::Failed("too many links".into()));
        }
        self.add_link(dir, name, ino, t)?;
        let mut i = self.read_inode(ino)?;
        i.i_links_count += 1;
        self.set_times(&mut i, None, None, Some(self.now()), None);
        self.write_inode(ino, &mut i)
    }

    /// Frees an inode whose last link is gone: its blocks, xattr block and the inode itself.
    fn release(&mut self, ino: u64, is_dir: bool) -> Result<()> {
        let i32ino = self.ino32(ino)?;
        let mut i = self.read_inode(ino)?;
        i.i_links_count = 0;
        let t = self.now();
        i.i_dtime = t.sec as u32;
        self.write_inode(ino, &mut i)?;
        // SAFETY: valid fs and inode buffer.
        unsafe {
            if i.i_file_acl != 0 {
                check(
                    sys::ext2fs_free_ext_attr(self.fs, i32ino, &mut i),
                    "freeing extended attributes",
                )?;
            }
            let fast_link =
                sys::ext2fs_is_fast_symlink(&mut i as *mut Inode as *mut sys::ext2_inode) != 0;
            let is_dev = matches!(
                ExtFs::kind(&mut i),
                Some(
                    FileType::CharDevice
                        | FileType::BlockDevice
                        | FileType::Fifo
                        | FileType::Socket
                )
            );
            if !fast_link
                && !is_dev
                && sys::ext2fs_inode_has_valid_blocks2(
                    self.fs,
                    &mut i as *mut Inode as *mut sys::ext2_inode,
                ) != 0
            {
                check(
                    sys::ext2fs_punch(
                        self.fs,
                        i32ino,
                        &mut i as *mut Inode as *mut sys::ext2_inode,
                        std::ptr::null_mut(),
                        0,
                        !0u64,
                    ),
                    "freeing blocks",
                )?;
            }
        }
        let mut i = self.read_inode(ino)?;
        i.i_links_count = 0;
        i.i_dtime = t.sec as u32;
        self.write_inode(ino, &mut i)?;
        // SAFETY: the inode is allocated and now unreferenced.
        unsafe { sys::ext2fs_inode_alloc_stats2(self.fs, i32ino, -1, is_dir as c_int) };
        Ok(())
    }

    fn remove_entry(&mut self, dir: u64, name: &[u8]) -> Result<()> {
        let c = cname(name)?;
        let d = self.ino32(dir)?;
        // SAFETY: valid fs and name.
        check(
            unsafe { sys::ext2fs_unlink(self.fs, d, c.as_ptr(), 0, 0) },
            "removing directory entry",
        )?;
        let mut p = self.read_inode(dir)?;
        let t = self.now();
        self.set_times(&mut p, None, Some(t), Some(t), None);
        self.write_inode(dir, &mut p)
    }

    pub(crate) fn do_unlink(&mut self, dir: u64, name: &[u8]) -> Result<()> {
        self.ro()?;
        let ino = self
            .do_lookup(dir, name)?
            .ok_or_else(|| Error::NotFound(String::from_utf8_lossy(name).into_owned()))?;
        let mut i = self.read_inode(ino)?;
        if ExtFs::kind(&mut i) == Some(FileType::Directory) {
            return Err(Error::Invalid("is a directory (use rmdir)".into()));
        }
        self.remove_entry(dir, name)?;
        let mut i = self.read_inode(ino)?;
        if i.i_links_count <= 1 {
            self.release(ino, false)
        } else {
            i.i_links_count -= 1;
            self.set_times(&mut i, None, None, Some(self.now()), None);
            self.write_inode(ino, &mut i)
        }
    }

    pub(crate) fn do_rmdir(&mut self, dir: u64, name: &[u8]) -> Result<()> {
        self.ro()?;
        let ino = self
            .do_lookup(dir, name)?
            .ok_or_else(|| Error::NotFound(String::from_utf8_lossy(name).into_owned()))?;
        if ino == 2 {
            return Err(Error::Invalid("cannot remove the root directory".into()));
        }
        if !self.do_read_dir(ino)?.is_empty() {
            return Err(Error::Failed(format!(
                "{}: directory not empty",
                String::from_utf8_lossy(name)
            )));
        }
        self.remove_entry(dir, name)?;
        self.release(ino, true)?;
        let mut p = self.read_inode(dir)?;
        if p.i_links_count > 1 {
            p.i_links_count -= 1;
        }
        self.write_inode(dir, &mut p)
    }

    /// Whether directory `d` is `ancestor` or lies below it (walks `..` up to the root).
    fn is_within(&mut self, mut d: u64, ancestor: u64) -> Result<bool> {
        for _ in 0..65536 {
            if d == ancestor {
                return Ok(true);
            }
            if d == 2 {
                return Ok(false);
            }
            d = self
                .do_lookup(d, b"..")?
                .ok_or_else(|| Error::bad(format!("directory {d} has no '..' entry")))?;
        }
        Err(Error::bad("directory tree too deep or looped"))
    }

    /// Points the `..` entry of directory `ino` at `parent`.
    fn set_dotdot(&mut self, ino: u64, parent: u64) -> Result<()> {
        unsafe extern "C" fn cb(
            _d: sys::ext2_ino_t,
            _e: c_int,
            dirent: *mut sys::ext2_dir_entry,
            _o: c_int,
            _b: c_int,
            _buf: *mut c_char,
            p: *mut c_void,
        ) -> c_int {
            // SAFETY: valid dirent from libext2fs; p is our u32.
            unsafe {
                let d = &mut *dirent;
                if (d.name_len & 0xff) == 2 && d.name[0] as u8 == b'.' && d.name[1] as u8 == b'.' {
                    d.inode = *(p as *const u32);
                    return (sys::DIRENT_CHANGED | sys::DIRENT_ABORT) as c_int;
                }
                0
            }
        }
        let mut p = self.ino32(parent)?;
        let d = self.ino32(ino)?;
        // SAFETY: callback only touches the dirent and our u32.
        let rc = unsafe {
            sys::ext2fs_dir_iterate2(
                self.fs,
                d,
                sys::DIRENT_FLAG_INCLUDE_EMPTY as c_int,
                std::ptr::null_mut(),
                Some(cb),
                &mut p as *mut u32 as *mut c_void,
            )
        };
        check(rc, "updating '..'")
    }

    pub(crate) fn do_rename(
        &mut self,
        dir: u64,
        name: &[u8],
        new_dir: u64,
        new_name: &[u8],
    ) -> Result<()> {
        self.ro()?;
        let ino = self
            .do_lookup(dir, name)?
            .ok_or_else(|| Error::NotFound(String::from_utf8_lossy(name).into_owned()))?;
        if dir == new_dir && name == new_name {
            return Ok(());
        }
        let mut i = self.read_inode(ino)?;
        let t = ExtFs::kind(&mut i).ok_or_else(|| Error::bad("invalid inode mode"))?;
        if t == FileType::Directory && dir != new_dir && self.is_within(new_dir, ino)? {
            return Err(Error::Invalid(
                "cannot move a directory into itself or one of its subdirectories".into(),
            ));
        }
        if let Some(existing) = self.do_lookup(new_dir, new_name)? {
            if existing == ino {
                // POSIX: renaming onto another link of the same file does nothing.
                return Ok(());
            }
            let mut e = self.read_inode(existing)?;
            match (ExtFs::kind(&mut e), t) {
                (Some(FileType::Directory), FileType::Directory) => {
                    self.do_rmdir(new_dir, new_name)?
                }
                (Some(FileType::Directory), _) => {
                    return Err(Error::Exists(format!(
                        "{} is a directory",
                        String::from_utf8_lossy(new_name)
                    )))
                }
                (_, FileType::Directory) => {
                    return Err(Error::Exists(format!(
                        "{} is not a directory",
                        String::from_utf8_lossy(new_name)
                    )))
                }
                _ => self.do_unlink(new_dir, new_name)?,
            }
        }
        self.add_link(new_dir, new_name, ino, t)?;
        self.remove_entry(dir, name)?;
        if t == FileType::Directory && dir != new_dir {
            self.set_dotdot(ino, new_dir)?;
            let mut old = self.read_inode(dir)?;
            old.i_links_count = old.i_links_count.saturating_sub(1).max(2);
            self.write_inode(dir, &mut old)?;
            let mut new = self.read_inode(new_dir)?;
            new.i_links_count += 1;
            self.write_inode(new_dir, &mut new)?;
        }
        let mut i = self.read_inode(ino)?;
        self.set_times(&mut i, None, None, Some(self.now()), None);
        self.write_inode(ino, &mut i)
    }
}
