//! diskfab read-only btrfs driver: own bounded parsers for the superblock (primary and mirrors,
//! CRC-32C/xxHash64/SHA-256), the system chunk array and chunk tree (SINGLE, DUP, mirrored
//! profiles), the root tree and subvolumes, inodes, directory entries, xattrs and file extents
//! (inline, regular, holes, prealloc; zlib, LZO, zstd). Every mutating call is refused.
//!
//! Which subvolume is `/` is decided in [`subvol`]; `DISKFAB_BTRFS_SUBVOL` overrides it.
#![deny(missing_docs)]

mod chunk;
mod csum;
mod decompress;
mod fs;
mod items;
mod key;
mod lzo;
mod node;
mod sb;
pub mod subvol;
mod volume;

pub use fs::BtrfsFs;
pub use subvol::ENV_SUBVOL;

use diskfab_fs::{Filesystem, FsDriver};
use diskfab_storage::{DevRef, Error, Result};

/// The message of every refused write.
pub const READ_ONLY: &str = "btrfs is read-only in diskfab: writing is not supported yet";

/// The btrfs driver.
pub struct BtrfsDriver;

impl BtrfsDriver {
    /// Opens `dev` rooted at the subvolume `subvol` names (see [`subvol::select`]).
    pub fn open_subvol(dev: DevRef, subvol: Option<&str>) -> Result<BtrfsFs> {
        let vol = volume::Volume::open(dev)?;
        let mut fs = BtrfsFs::new(vol)?;
        subvol::select(&mut fs, subvol)?;
        Ok(fs)
    }
}

impl FsDriver for BtrfsDriver {
    fn name(&self) -> &'static str {
        "btrfs"
    }

    fn probe(&self, dev: &DevRef) -> Result<Option<String>> {
        let at = sb::SB_OFFSETS[0];
        if dev.size() < at + sb::SB_SIZE as u64 {
            return Ok(None);
        }
        let mut b = [0u8; 0x48];
        dev.read_at(&mut b, at)?;
        Ok(sb::has_magic(&b).then(|| "btrfs".to_string()))
    }

    fn open(&self, dev: DevRef, writable: bool) -> Result<Box<dyn Filesystem>> {
        if writable {
            return Err(Error::Unsupported(READ_ONLY.into()));
        }
        let choice = std::env::var(ENV_SUBVOL).ok();
        Ok(Box::new(Self::open_subvol(dev, choice.as_deref())?))
    }
}

/// Fuzzing entry point for the btrfs parsers. The first byte picks: 0 superblock (with its
/// checksum fixed up so parsing goes past it) and system chunk array; 1 a tree node (checksum,
/// fsid and address fixed up) and every item in it through the item parsers; 2 zlib, 3 LZO
/// (btrfs framing), 4 zstd, 5 raw LZO1X; for these the next byte `b` gives the decoded
/// size `(b + 1) * 512`. Must never panic. Returns how many parses succeeded.
#[doc(hidden)]
pub fn fuzz_btrfs(data: &[u8]) -> usize {
    let Some((&sel, rest)) = data.split_first() else {
        return 0;
    };
    match sel % 6 {
        0 => fuzz_sb(rest),
        1 => fuzz_node(rest),
        n => {
            let ram = rest.first().map_or(0, |&b| (u64::from(b) + 1) << 9);
            let body = rest.get(1..).unwrap_or(&[]);
            let r = match n {
                2 => decompress::decompress(items::Compression::Zlib, body, ram, 4096),
                3 => decompress::decompress(items::Compression::Lzo, body, ram, 4096),
                4 => decompress::decompress(items::Compression::Zstd, body, ram, 4096),
                _ => lzo::lzo1x(body, ram as usize),
            };
            usize::from(r.is_ok())
        }
    }
}

fn fuzz_sb(rest: &[u8]) -> usize {
    let mut b = rest.to_vec();
    b.resize(sb::SB_SIZE, 0);
    b[0x40..0x48].copy_from_slice(sb::MAGIC);
    b[0x30..0x38].copy_from_slice(&sb::SB_OFFSETS[0].to_le_bytes());
    b[0xc4..0xc6].copy_from_slice(&0u16.to_le_bytes());
    let c = csum::crc32c(&b[0x20..]);
    b[..4].copy_from_slice(&c.to_le_bytes());
    let mut n = 0;
    if let Ok(s) = sb::parse(&b, sb::SB_OFFSETS[0]) {
        n += 1 + s.feature_names().len();
        let mut m = chunk::ChunkMap::default();
        for c in s.sys_chunks {
            n += usize::from(m.insert(c).is_ok());
        }
        n += usize::from(m.map(s.chunk_root, s.devid).is_ok());
    }
    n + usize::from(sb::choose(&[(sb::SB_OFFSETS[0], b)]).is_ok())
}

fn fuzz_node(rest: &[u8]) -> usize {
    let mut b = rest.to_vec();
    b.resize(b.len().clamp(node::HEADER_SIZE, 65536), 0);
    let fsid = [7u8; 16];
    b[0x20..0x30].copy_from_slice(&fsid);
    b[0x30..0x38].copy_from_slice(&4096u64.to_le_bytes());
    let c = csum::crc32c(&b[0x20..]);
    b[..4].copy_from_slice(&c.to_le_bytes());
    let exp = node::Expect {
        bytenr: 4096,
        level: None,
        csum: csum::CsumType::Crc32c,
        fsid: &fsid,
    };
    let Ok(n) = node::parse(b, &exp) else {
        return 0;
    };
    let mut ok = 1 + n.ptrs.len();
    for (i, (k, _)) in n.items.iter().enumerate() {
        let d = n.item_data(i);
        let r = match k.ty {
            key::INODE_ITEM => items::parse_inode(d).is_ok(),
            key::DIR_ITEM | key::DIR_INDEX | key::XATTR_ITEM => items::parse_dir_entries(d).is_ok(),
            key::EXTENT_DATA => match items::parse_extent(d) {
                Ok(e) => match e.data {
                    items::ExtentData::Inline(x) => {
                        decompress::decompress(e.compression, &x, e.ram_bytes, 4096).is_ok()
                    }
                    _ => true,
                },
                Err(_) => false,
            },
            key::ROOT_ITEM => items::parse_root_item(d).is_ok(),
            key::CHUNK_ITEM => chunk::parse_chunk(k.offset, d).is_ok(),
            _ => false,
        };
        ok += usize::from(r);
    }
    ok
}
