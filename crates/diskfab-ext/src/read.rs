//! Reading: lookup, directory listing, symlinks and file data (mapped extents read straight from
//! the device, coalesced into large reads).

use crate::fs::{check, ExtFs};
use crate::sys;
use diskfab_fs::{DirEntry, FileType};
use diskfab_storage::{Error, Result};
use std::ffi::{c_char, c_int, c_void};

impl ExtFs {
    pub(crate) fn do_lookup(&mut self, dir: u64, name: &[u8]) -> Result<Option<u64>> {
        let d = self.ino32(dir)?;
        if name.is_empty() || name.len() > 255 || name.contains(&b'/') || name.contains(&0) {
            return Err(Error::Invalid(format!(
                "invalid name {:?}",
                String::from_utf8_lossy(name)
            )));
        }
        let mut ino: sys::ext2_ino_t = 0;
        // SAFETY: name points to name.len() bytes; out-pointer valid.
        let rc = unsafe {
            sys::ext2fs_lookup(
                self.fs,
                d,
                name.as_ptr() as *const c_char,
                name.len() as c_int,
                std::ptr::null_mut(),
                &mut ino,
            )
        };
        if rc == sys::EXT2_ET_FILE_NOT_FOUND as sys::errcode_t {
            return Ok(None);
        }
        check(rc, "directory lookup")?;
        Ok(Some(u64::from(ino)))
    }

    pub(crate) fn do_read_dir(&mut self, dir: u64) -> Result<Vec<DirEntry>> {
        let d = self.ino32(dir)?;
        let mut i = self.read_inode(dir)?;
        if crate::fs::ExtFs::kind(&mut i) != Some(FileType::Directory) {
            return Err(Error::Failed(format!("inode {dir} is not a directory")));
        }
        struct Acc {
            out: Vec<DirEntry>,
            filetype: bool,
        }
        unsafe extern "C" fn cb(
            _dir: sys::ext2_ino_t,
            _entry: c_int,
            dirent: *mut sys::ext2_dir_entry,
            _offset: c_int,
            _bs: c_int,
            _buf: *mut c_char,
            priv_: *mut c_void,
        ) -> c_int {
            // SAFETY: libext2fs passes a valid dirent inside its block buffer and our Acc.
            unsafe {
                let acc = &mut *(priv_ as *mut Acc);
                let d = &*dirent;
                let len = (d.name_len & 0xff) as usize;
                let name = std::slice::from_raw_parts(d.name.as_ptr() as *const u8, len).to_vec();
                if name == b"." || name == b".." || d.inode == 0 {
                    return 0;
                }
                let ft = if acc.filetype {
                    match (d.name_len >> 8) as u32 {
                        sys::EXT2_FT_REG_FILE => FileType::Regular,
                        sys::EXT2_FT_DIR => FileType::Directory,
                        sys::EXT2_FT_SYMLINK => FileType::Symlink,
                        sys::EXT2_FT_CHRDEV => FileType::CharDevice,
                        sys::EXT2_FT_BLKDEV => FileType::BlockDevice,
                        sys::EXT2_FT_FIFO => FileType::Fifo,
                        sys::EXT2_FT_SOCK => FileType::Socket,
                        _ => FileType::Regular,
                    }
                } else {
                    FileType::Regular
                };
                acc.out.push(DirEntry {
                    name,
                    ino: u64::from(d.inode),
                    file_type: ft,
                });
                0
            }
        }
        let filetype = self.sb().s_feature_incompat & sys::EXT2_FEATURE_INCOMPAT_FILETYPE != 0;
        let mut acc = Acc {
            out: Vec::new(),
            filetype,
        };
        // SAFETY: callback only touches the Acc we pass.
        let rc = unsafe {
            sys::ext2fs_dir_iterate2(
                self.fs,
                d,
                0,
                std::ptr::null_mut(),
                Some(cb),
                &mut acc as *mut Acc as *mut c_void,
            )
        };
        check(rc, &format!("reading directory inode {dir}"))?;
        if !filetype {
            for e in &mut acc.out {
                if let Ok(mut i) = self.read_inode(e.ino) {
                    e.file_type = ExtFs::kind(&mut i).unwrap_or(FileType::Regular);
                }
            }
        }
        Ok(acc.out)
    }

    pub(crate) fn kind(i: &mut crate::fs::Inode) -> Option<FileType> {
        FileType::from_mode(u32::from(i.i_mode))
    }

    pub(crate) fn do_read_link(&mut self, ino: u64) -> Result<Vec<u8>> {
        let mut i = self.read_inode(ino)?;
        if ExtFs::kind(&mut i) != Some(FileType::Symlink) {
            return Err(Error::Invalid(format!(
                "inode {ino} is not a symbolic link"
            )));
        }
        let size = u64::from(i.i_size) | (u64::from(i.i_size_high) << 32);
        if size == 0 || size > 4096 {
            return Err(Error::bad(format!("symlink inode {ino} has size {size}")));
        }
        // SAFETY: i is a valid inode buffer.
        let fast =
            unsafe { sys::ext2fs_is_fast_symlink(&mut i as *mut _ as *mut sys::ext2_inode) } != 0;
        if fast {
            let bytes: Vec<u8> = i.i_block.iter().flat_map(|w| w.to_le_bytes()).collect();
            return Ok(bytes[..(size as usize).min(60)].to_vec());
        }
        let mut buf = vec![0u8; size as usize];
        let n = self.file_read(ino, 0, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Reads through libext2fs' file API (inline data, and anything unusual).
    pub(crate) fn file_read(&mut self, ino: u64, off: u64, buf: &mut [u8]) -> Result<usize> {
        self.with_file(ino, false, off, |f| {
            let mut done = 0usize;
            while done < buf.len() {
                let want = (buf.len() - done).min(1 << 30) as u32;
                let mut got = 0u32;
                // SAFETY: f is open and buf[done..] has at least `want` bytes.
                let rc = unsafe {
                    sys::ext2fs_file_read(
                        f,
                        buf[done..].as_mut_ptr() as *mut c_void,
                        want,
                        &mut got,
                    )
                };
                check(rc, "reading file")?;
                if got == 0 {
                    break;
                }
                done += got as usize;
            }
            Ok(done)
        })
    }

    /// Reads file data: looks the range up in the file's block map and reads each contiguous
    /// run straight from the device (holes and unwritten extents read as zeroes).
    pub(crate) fn do_read(&mut self, ino: u64, off: u64, buf: &mut [u8]) -> Result<usize> {
        let mut inode = self.read_inode(ino)?;
        if ExtFs::kind(&mut inode) != Some(FileType::Regular) {
            return Err(Error::Invalid(format!("inode {ino} is not a regular file")));
        }
        let size = u64::from(inode.i_size) | (u64::from(inode.i_size_high) << 32);
        if off >= size || buf.is_empty() {
            return Ok(0);
        }
        let len = usize::try_from(size - off)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if inode.i_flags & sys::EXT4_INLINE_DATA_FL != 0 {
            return self.file_read(ino, off, &mut buf[..len]);
        }
        let bs = self.block_size();
        let dev = self.dev.clone();
        let map = self.file_map(ino, &mut inode)?;
        let mut pos = 0usize;
        while pos < len {
            let abs = off + pos as u64;
            let (lblk, inner) = (abs / bs, abs % bs);
            let avail = |blocks: u64| -> usize {
                let bytes = blocks.saturating_mul(bs).saturating_sub(inner);
                usize::try_from(bytes).unwrap_or(usize::MAX).min(len - pos)
            };
            match map.find(lblk) {
                Ok(r) => {
                    let n = avail(r.lblk + r.len - lblk);
                    let dst = &mut buf[pos..pos + n];
                    if r.zero {
                        dst.fill(0);
                    } else {
                        dev.read_at(dst, (r.pblk + (lblk - r.lblk)) * bs + inner)?;
                    }
                    pos += n;
                }
                Err(hole) => {
                    let n = hole.map_or(len - pos, avail);
                    buf[pos..pos + n].fill(0);
                    pos += n;
                }
            }
        }
        Ok(len)
    }
}
