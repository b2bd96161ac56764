//! mkfs: a new ext2/ext3/ext4 filesystem made with libext2fs calls in the order `mke2fs` makes
//! them, with Debian 12's default ext4 features (mke2fs.conf), reproducible when the UUID and time
//! are given.

use crate::fs::{check, message};
use crate::{io, sys};
use diskfab_fs::MkfsOptions;
use diskfab_storage::{DevRef, Error, Result};
use std::ffi::c_int;

/// Block size and bytes-per-inode for a device size, as Debian's mke2fs.conf size types
/// (floppy < 3 MiB, small < 512 MiB, default, big >= 4 TiB, huge >= 16 TiB).
fn geometry(size: u64) -> (u64, u64) {
    const MIB: u64 = 1 << 20;
    match size {
        s if s < 3 * MIB => (1024, 8192),
        s if s < 512 * MIB => (1024, 4096),
        s if s < 4 << 40 => (4096, 16384),
        s if s < 16 << 40 => (4096, 32768),
        _ => (4096, 65536),
    }
}

struct Features {
    compat: u32,
    incompat: u32,
    ro: u32,
    journal: bool,
}

fn features(t: &str) -> Result<Features> {
    let ext2 = Features {
        compat: sys::EXT2_FEATURE_COMPAT_EXT_ATTR
            | sys::EXT2_FEATURE_COMPAT_RESIZE_INODE
            | sys::EXT2_FEATURE_COMPAT_DIR_INDEX,
        incompat: sys::EXT2_FEATURE_INCOMPAT_FILETYPE,
        ro: sys::EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER | sys::EXT2_FEATURE_RO_COMPAT_LARGE_FILE,
        journal: false,
    };
    match t {
        "ext2" => Ok(ext2),
        "ext3" => Ok(Features {
            journal: true,
            ..ext2
        }),
        "ext4" => Ok(Features {
            compat: ext2.compat,
            incompat: ext2.incompat
                | sys::EXT3_FEATURE_INCOMPAT_EXTENTS
                | sys::EXT4_FEATURE_INCOMPAT_64BIT
                | sys::EXT4_FEATURE_INCOMPAT_FLEX_BG,
            ro: ext2.ro
                | sys::EXT4_FEATURE_RO_COMPAT_HUGE_FILE
                | sys::EXT4_FEATURE_RO_COMPAT_DIR_NLINK
                | sys::EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE
                | sys::EXT4_FEATURE_RO_COMPAT_METADATA_CSUM,
            journal: true,
        }),
        other => Err(Error::Invalid(format!(
            "unknown ext type {other:?}: use ext2, ext3 or ext4"
        ))),
    }
}

fn random16() -> Result<[u8; 16]> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::io("/dev/urandom", e))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(b)
}

struct Fs(sys::ext2_filsys, u64);

impl Drop for Fs {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: an initialised fs that was not closed (error path): free without writing.
            unsafe { sys::ext2fs_free(self.0) };
        }
        io::unregister(self.1);
    }
}

/// Formats the whole of `dev`.
pub fn mkfs(dev: DevRef, opts: &MkfsOptions) -> Result<()> {
    let f = features(if opts.fs_type.is_empty() {
        "ext4"
    } else {
        &opts.fs_type
    })?;
    let label = opts.label.as_deref().unwrap_or("");
    if label.len() > 16 {
        return Err(Error::Invalid(format!(
            "ext labels are at most 16 bytes; {label:?} is {}",
            label.len()
        )));
    }
    let (block_size, ratio) = geometry(dev.size());
    let blocks = dev.size() / block_size;
    if blocks < 128 {
        return Err(Error::Invalid(format!(
            "{} bytes is too small for an ext filesystem (at least 128 KiB)",
            dev.size()
        )));
    }
    // SAFETY: an all-zero superblock is the documented "defaults" parameter block.
    let mut p: sys::ext2_super_block = unsafe { std::mem::zeroed() };
    // SAFETY: p is a valid superblock struct.
    unsafe { sys::ext2fs_blocks_count_set(&mut p, blocks) };
    p.s_log_block_size = block_size.trailing_zeros() - 10;
    p.s_rev_level = 1;
    p.s_inode_size = 256;
    p.s_min_extra_isize = 32;
    p.s_want_extra_isize = 32;
    p.s_inodes_count = (blocks * block_size / ratio).clamp(64, u64::from(u32::MAX - 1)) as u32;
    p.s_r_blocks_count = (blocks / 20) as u32;
    p.s_feature_compat = f.compat;
    p.s_feature_incompat = f.incompat;
    p.s_feature_ro_compat = f.ro;
    if f.incompat & sys::EXT4_FEATURE_INCOMPAT_64BIT != 0 {
        p.s_desc_size = 64;
    }
    if f.incompat & sys::EXT4_FEATURE_INCOMPAT_FLEX_BG != 0 {
        p.s_log_groups_per_flex = 4;
    }
    p.s_default_mount_opts = sys::EXT2_DEFM_XATTR_USER | sys::EXT2_DEFM_ACL;
    let (id, name) = io::register(dev.clone());
    let mut raw: sys::ext2_filsys = std::ptr::null_mut();
    // SAFETY: valid name, parameter block, manager and out-pointer.
    let rc = unsafe {
        sys::ext2fs_initialize(
            name.as_ptr(),
            sys::EXT2_FLAG_64BITS as c_int,
            &mut p,
            io::manager(),
            &mut raw,
        )
    };
    let mut fs = Fs(raw, id);
    if rc != 0 {
        fs.0 = std::ptr::null_mut();
        return Err(Error::Failed(format!(
            "initialising ext filesystem: {}",
            message(rc)
        )));
    }
    let uuid = match opts.uuid {
        Some(u) => u,
        None => random16()?,
    };
    let now = opts.time.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    });
    // SAFETY: fs.0 is a freshly initialised filesystem; we only set documented fields.
    unsafe {
        let s = &mut *(*fs.0).super_;
        (*fs.0).now = now as _;
        s.s_uuid = uuid;
        // Hash seed derived from the UUID, so a fixed UUID gives a reproducible filesystem.
        let mut seed = uuid;
        seed.reverse();
        seed[6] = (seed[6] & 0x0f) | 0x40;
        for (i, w) in s.s_hash_seed.iter_mut().enumerate() {
            *w = u32::from_le_bytes([
                seed[4 * i],
                seed[4 * i + 1],
                seed[4 * i + 2],
                seed[4 * i + 3],
            ]);
        }
        s.s_def_hash_version = sys::EXT2_HASH_HALF_MD4 as u8;
        s.s_mkfs_time = now as u32;
        s.s_wtime = now as u32;
        s.s_lastcheck = now as u32;
        s.s_max_mnt_count = -1; // -1: no periodic fsck (Debian default)
        s.s_kbytes_written = 1;
        for (d, c) in s
            .s_volume_name
            .iter_mut()
            .zip(label.bytes().chain(std::iter::repeat(0)))
        {
            *d = c as _;
        }
        if f.ro & sys::EXT4_FEATURE_RO_COMPAT_METADATA_CSUM != 0 {
            s.s_checksum_type = sys::EXT2_CRC32C_CHKSUM as u8;
        }
        sys::ext2fs_init_csum_seed(fs.0);
        check(sys::ext2fs_allocate_tables(fs.0), "allocating group tables")?;
        for g in 0..(*fs.0).group_desc_count {
            let loc = sys::ext2fs_inode_table_loc(fs.0, g);
            let n = (*fs.0).inode_blocks_per_group;
            check(
                sys::ext2fs_zero_blocks2(
                    fs.0,
                    loc,
                    n as c_int,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                ),
                "zeroing inode tables",
            )?;
            sys::ext2fs_bg_flags_set(fs.0, g, sys::EXT2_BG_INODE_ZEROED as u16);
            sys::ext2fs_group_desc_csum_set(fs.0, g);
        }
        check(
            sys::ext2fs_mkdir(fs.0, 2, 2, std::ptr::null()),
            "creating the root directory",
        )?;
        check(
            sys::ext2fs_mkdir(fs.0, 2, 0, c"lost+found".as_ptr()),
            "creating lost+found",
        )?;
        let mut lpf: sys::ext2_ino_t = 0;
        check(
            sys::ext2fs_lookup(
                fs.0,
                2,
                c"lost+found".as_ptr(),
                10,
                std::ptr::null_mut(),
                &mut lpf,
            ),
            "lost+found",
        )?;
        let bs = (*fs.0).blocksize as u64;
        let mut size = bs;
        while size < 16 * 1024 || size < 2 * bs {
            check(sys::ext2fs_expand_dir(fs.0, lpf), "sizing lost+found")?;
            size += bs;
        }
        let first = (*(*fs.0).super_).s_first_ino;
        sys::ext2fs_inode_alloc_stats2(fs.0, 1, 1, 0);
        for i in 3..first {
            sys::ext2fs_inode_alloc_stats2(fs.0, i, 1, 0);
        }
        check(
            sys::ext2fs_update_bb_inode(fs.0, std::ptr::null_mut()),
            "bad-block inode",
        )?;
        (*fs.0).flags |=
            (sys::EXT2_FLAG_IB_DIRTY | sys::EXT2_FLAG_DIRTY | sys::EXT2_FLAG_CHANGED) as c_int;
        if f.compat & sys::EXT2_FEATURE_COMPAT_RESIZE_INODE != 0 {
            check(
                sys::ext2fs_create_resize_inode(fs.0),
                "creating the resize inode",
            )?;
        }
        if f.journal {
            let mut jp: sys::ext2fs_journal_params = std::mem::zeroed();
            if sys::ext2fs_get_journal_params(&mut jp, fs.0) == 0 && jp.num_journal_blocks > 0 {
                check(
                    sys::ext2fs_add_journal_inode3(
                        fs.0,
                        &mut jp,
                        !0u64,
                        sys::EXT2_MKJOURNAL_NO_MNT_CHECK as c_int,
                    ),
                    "creating the journal",
                )?;
            }
        }
        let raw = std::mem::replace(&mut fs.0, std::ptr::null_mut());
        let mut raw2 = raw;
        check(
            sys::ext2fs_close_free(&mut raw2),
            "writing the new filesystem",
        )?;
    }
    dev.flush()
}
