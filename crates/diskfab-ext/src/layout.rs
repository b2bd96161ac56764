//! Where a file's inode record and data blocks sit on the device, and patching a raw inode's
//! size (with its checksum), for block-level replay of customizations.

use crate::fs::{check, ExtFs};
use crate::sys;
use diskfab_fs::FileLayout;
use diskfab_storage::{Error, Result};

impl ExtFs {
    /// The on-disk inode record size.
    fn inode_size(&self) -> u32 {
        u32::from(self.sb().s_inode_size).max(128)
    }

    /// Byte offset of inode `ino`'s record in the device.
    fn inode_offset(&self, ino: u64) -> Result<u64> {
        let i = self.ino32(ino)?;
        let ipg = self.sb().s_inodes_per_group;
        if ipg == 0 {
            return Err(Error::bad("inodes per group is 0"));
        }
        let group = (i - 1) / ipg;
        let index = u64::from((i - 1) % ipg);
        // SAFETY: fs is open; group < group count because ino is in range.
        let table = unsafe { sys::ext2fs_inode_table_loc(self.fs, group) };
        if table == 0 || table >= self.blocks_count() {
            return Err(Error::bad(format!(
                "inode table of group {group} is out of range"
            )));
        }
        Ok(table * self.block_size() + index * u64::from(self.inode_size()))
    }

    /// See [`diskfab_fs::Filesystem::file_layout`].
    pub(crate) fn do_file_layout(&mut self, ino: u64) -> Result<Option<FileLayout>> {
        let mut inode = self.read_inode(ino)?;
        if u32::from(inode.i_mode) & sys::LINUX_S_IFMT != sys::LINUX_S_IFREG
            || inode.i_flags & sys::EXT4_INLINE_DATA_FL != 0
        {
            return Ok(None);
        }
        let bs = self.block_size();
        let size = u64::from(inode.i_size) | (u64::from(inode.i_size_high) << 32);
        let nblocks = size.div_ceil(bs);
        let map = self.file_map(ino, &mut inode)?;
        let mut blocks = Vec::new();
        for r in &map.runs {
            if r.zero || r.lblk != blocks.len() as u64 {
                return Ok(None);
            }
            blocks.extend((0..r.len).map(|k| (r.pblk + k) * bs));
        }
        if blocks.len() as u64 != nblocks {
            return Ok(None);
        }
        Ok(Some(FileLayout {
            inode_offset: self.inode_offset(ino)?,
            inode_len: self.inode_size(),
            block_size: bs as u32,
            blocks,
        }))
    }

    /// See [`diskfab_fs::Filesystem::content_ranges`].
    pub(crate) fn do_content_ranges(&mut self, ino: u64) -> Result<Option<Vec<(u64, u64)>>> {
        let i = self.ino32(ino)?;
        let mut inode = self.read_inode(ino)?;
        let bs = self.block_size();
        let mut out = vec![(self.inode_offset(ino)?, u64::from(self.inode_size()))];
        if inode.i_file_acl != 0 {
            out.push((u64::from(inode.i_file_acl) * bs, bs));
        }
        if inode.i_flags & sys::EXT4_INLINE_DATA_FL != 0 {
            return Ok(Some(out));
        }
        if inode.i_flags & sys::EXT4_EXTENTS_FL == 0 {
            return Ok(None);
        }
        let mut h: sys::ext2_extent_handle_t = std::ptr::null_mut();
        // SAFETY: valid fs, inode buffer and out-pointer.
        check(
            unsafe {
                sys::ext2fs_extent_open2(
                    self.fs,
                    i,
                    &mut inode as *mut _ as *mut sys::ext2_inode,
                    &mut h,
                )
            },
            "opening the extent tree",
        )?;
        struct Handle(sys::ext2_extent_handle_t);
        impl Drop for Handle {
            fn drop(&mut self) {
                // SAFETY: opened above, freed once.
                unsafe { sys::ext2fs_extent_free(self.0) };
            }
        }
        let h = Handle(h);
        let mut op = sys::EXT2_EXTENT_ROOT;
        let total = self.blocks_count();
        loop {
            let mut e = sys::ext2fs_extent::default();
            // SAFETY: h is open; e is a valid out-struct.
            let rc = unsafe { sys::ext2fs_extent_get(h.0, op as std::ffi::c_int, &mut e) };
            op = sys::EXT2_EXTENT_NEXT;
            if rc == sys::EXT2_ET_EXTENT_NO_NEXT as sys::errcode_t {
                break;
            }
            check(rc, "walking an extent tree")?;
            if e.e_flags & sys::EXT2_EXTENT_FLAGS_SECOND_VISIT != 0 {
                continue;
            }
            let len = if e.e_flags & sys::EXT2_EXTENT_FLAGS_LEAF != 0 {
                u64::from(e.e_len)
            } else {
                1
            };
            if e.e_pblk.checked_add(len).is_none_or(|end| end > total) {
                return Err(Error::bad(format!("inode {ino} has a corrupt extent tree")));
            }
            out.push((e.e_pblk * bs, len * bs));
        }
        Ok(Some(out))
    }

    /// See [`diskfab_fs::Filesystem::patch_inode_size`].
    pub(crate) fn do_patch_inode_size(
        &mut self,
        ino: u64,
        raw: &mut [u8],
        size: u64,
    ) -> Result<bool> {
        let i = self.ino32(ino)?;
        if raw.len() != self.inode_size() as usize || raw.len() < 128 {
            return Ok(false);
        }
        raw[4..8].copy_from_slice(&(size as u32).to_le_bytes());
        raw[108..112].copy_from_slice(&((size >> 32) as u32).to_le_bytes());
        // An 8-byte aligned copy: libext2fs accesses it through struct fields.
        let mut buf = vec![0u64; raw.len().div_ceil(8)];
        // SAFETY: buf has at least raw.len() bytes; u64 has no invalid bit patterns.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, raw.len()) };
        bytes.copy_from_slice(raw);
        // SAFETY: the buffer holds a whole on-disk inode record (s_inode_size bytes, ≥ 128),
        // which is exactly what ext2fs_inode_csum_set reads and writes; on-disk layout is
        // little-endian like the host.
        let rc = unsafe {
            sys::ext2fs_inode_csum_set(self.fs, i, buf.as_mut_ptr() as *mut sys::ext2_inode_large)
        };
        check(rc, "inode checksum")?;
        // SAFETY: as above.
        let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const u8, raw.len()) };
        raw.copy_from_slice(bytes);
        Ok(true)
    }
}
