//! Checks a superblock against its device before libext2fs sees it. libext2fs sizes its group
//! descriptor table by the block count the superblock claims and reads it whole at open: a
//! hostile superblock on a small (or sparse) device would make it allocate and read gigabytes.

use diskfab_storage::limits::check_budget;
use diskfab_storage::{DevRef, Error, Result};

const INCOMPAT_64BIT: u32 = 0x80;

fn le32(sb: &[u8], o: usize) -> u64 {
    u64::from(u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]))
}

/// Refuses a superblock whose filesystem is larger than `dev` (a bad image) or whose group
/// descriptor table exceeds the memory budget (`--max-memory`).
pub(crate) fn check_superblock(dev: &DevRef) -> Result<()> {
    let mut sb = [0u8; 1024];
    dev.read_at(&mut sb, 1024)?;
    check_superblock_bytes(&sb, dev.size())
}

/// [`check_superblock`] on the 1024 superblock bytes and the device size.
pub(crate) fn check_superblock_bytes(sb: &[u8; 1024], dev_size: u64) -> Result<()> {
    let log = le32(sb, 0x18);
    if log > 6 {
        return Err(Error::bad(format!(
            "ext superblock block size 2^{} is invalid",
            log + 10
        )));
    }
    let bs = 1024u64 << log;
    let is64 = le32(sb, 0x60) as u32 & INCOMPAT_64BIT != 0;
    let blocks = le32(sb, 0x04) | if is64 { le32(sb, 0x150) << 32 } else { 0 };
    let fs_bytes = blocks.saturating_mul(bs);
    if fs_bytes > dev_size {
        return Err(Error::bad(format!(
            "ext superblock claims {blocks} blocks of {bs} bytes ({fs_bytes} bytes), more than \
             the {dev_size} bytes of its device (a truncated or hostile filesystem; \
             `e2fsck -f` reports the same)"
        )));
    }
    let per_group = le32(sb, 0x20);
    if per_group == 0 {
        return Ok(()); // libext2fs refuses it
    }
    let desc = if is64 {
        u64::from(u16::from_le_bytes([sb[0xfe], sb[0xff]])).max(32)
    } else {
        32
    };
    let groups = blocks.saturating_sub(le32(sb, 0x14)).div_ceil(per_group);
    check_budget(
        groups.saturating_mul(desc),
        &format!("the ext group descriptor table ({groups} groups)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(blocks: u64, log: u32, per_group: u32) -> [u8; 1024] {
        let mut b = [0u8; 1024];
        b[0x04..0x08].copy_from_slice(&(blocks as u32).to_le_bytes());
        b[0x150..0x154].copy_from_slice(&((blocks >> 32) as u32).to_le_bytes());
        b[0x18..0x1c].copy_from_slice(&log.to_le_bytes());
        b[0x20..0x24].copy_from_slice(&per_group.to_le_bytes());
        b[0x60..0x64].copy_from_slice(&INCOMPAT_64BIT.to_le_bytes());
        b[0xfe..0x100].copy_from_slice(&64u16.to_le_bytes());
        b
    }

    #[test]
    fn superblock_larger_than_its_device_is_a_bad_image() {
        let e = check_superblock_bytes(&sb(1 << 40, 2, 32768), 64 << 20).unwrap_err();
        assert!(matches!(e, Error::BadImage(_)), "{e:?}");
        assert!(check_superblock_bytes(&sb(16384, 2, 32768), 64 << 20).is_ok());
        assert!(check_superblock_bytes(&sb(16384, 60, 32768), 64 << 20).is_err());
    }

    #[test]
    fn descriptor_table_over_the_budget_fails_cleanly() {
        // 4 TiB of 1 KiB blocks in groups of 8 blocks: 2^29 descriptors of 64 bytes (32 GiB).
        let e = check_superblock_bytes(&sb(1 << 32, 0, 8), 4 << 40).unwrap_err();
        assert!(matches!(e, Error::Failed(_)), "{e:?}");
        assert!(e.to_string().contains("group descriptor table"), "{e}");
    }
}
