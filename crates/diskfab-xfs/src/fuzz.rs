//! The fuzz entry: a superblock sector followed by filesystem blocks, each tried as an inode
//! cluster, a directory data block, a block-map B+tree block, an attribute block, a remote
//! value block and (all together) a log. Checksums are re-sealed first so that mutations reach
//! the parsers behind them.

use crate::sb::Superblock;
use crate::{attr, bmbt, crc, dir, inode, log};
use diskfab_storage::bytes::be_u64;

fn inodes(sb: &Superblock, b: &mut [u8]) -> usize {
    let isz = usize::from(sb.inode_size);
    let mut ok = 0;
    for slot in b.chunks_mut(isz).filter(|s| s.len() == isz) {
        let _ = crc::store(slot, 100);
        let ino = be_u64(slot, 152).unwrap_or(128);
        let Ok(i) = inode::parse_inode(sb, slot, ino) else {
            continue;
        };
        ok += 1;
        let _ = dir::parse_shortform(sb, &i.data_fork, i.size);
        let _ = attr::parse_shortform(&i.attr_fork);
        let _ = inode::parse_extents(&i.data_fork, i.nextents);
        if i.format == inode::ForkFormat::Btree {
            let copy = slot.to_vec();
            let mut read = |_| Ok(copy.clone());
            let _ = bmbt::walk(sb, &i.data_fork, ino, i.nextents, &mut read);
        }
    }
    ok
}

fn block(sb: &Superblock, b: &[u8]) -> usize {
    let mut ok = 0;
    let mut d = b.to_vec();
    let _ = crc::store(&mut d, 4);
    let owner = be_u64(&d, 40).unwrap_or(0);
    ok += usize::from(dir::parse_data_block(sb, &d, owner, be_u64(&d, 8).unwrap_or(0)).is_ok());
    let mut m = b.to_vec();
    let _ = crc::store(&mut m, 64);
    ok += usize::from(bmbt::check_block(sb, &m, be_u64(&m, 56).unwrap_or(0), 0).is_ok());
    let mut a = b.to_vec();
    let _ = crc::store(&mut a, 12);
    let owner = be_u64(&a, 48).unwrap_or(0);
    ok += usize::from(attr::parse_block(sb, &a, owner, be_u64(&a, 16).unwrap_or(0)).is_ok());
    let owner = be_u64(&a, 32).unwrap_or(0);
    let want = diskfab_storage::bytes::be_u32(&a, 8).unwrap_or(0) as usize;
    let off = diskfab_storage::bytes::be_u32(&a, 4).unwrap_or(0) as usize;
    ok += usize::from(attr::parse_remote_block(sb, &a, owner, off, want).is_ok());
    ok
}

/// See the module documentation; returns how many structures parsed.
pub fn run(data: &[u8]) -> usize {
    let Some(head) = data.get(..512) else {
        return 0;
    };
    let mut sect = head.to_vec();
    let _ = crc::store(&mut sect, 224);
    let Ok(sb) = Superblock::parse(&sect) else {
        return 0;
    };
    let rest = &data[512..];
    let mut ok = 1;
    for chunk in rest.chunks(sb.block_size as usize) {
        ok += inodes(&sb, &mut chunk.to_vec()) + block(&sb, chunk);
    }
    let mut read = |blk: u64, n: u64| {
        diskfab_storage::bytes::slice(rest, (blk * 512) as usize, (n * 512) as usize)
            .map(<[u8]>::to_vec)
    };
    ok += usize::from(log::check_clean(rest.len() as u64 / 512, &mut read).is_ok());
    ok
}
