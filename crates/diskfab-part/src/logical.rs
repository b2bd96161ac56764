//! Writing MBR logical partitions: a new EBR appended to the extended partition's chain.

use crate::mbr::parse_mbr;
use crate::write::PartSpec;
use crate::Partition;
use diskfab_storage::{DevRef, Error, Result};

const ALIGN: u64 = 2048;

fn entry(e: &mut [u8], ty: u8, rel_start: u64, len: u64) -> Result<()> {
    let (Ok(s), Ok(l)) = (u32::try_from(rel_start), u32::try_from(len)) else {
        return Err(Error::Invalid(
            "logical partition is beyond the 2 TiB MBR limit".into(),
        ));
    };
    e[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
    e[4] = ty;
    e[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    e[8..12].copy_from_slice(&s.to_le_bytes());
    e[12..16].copy_from_slice(&l.to_le_bytes());
    Ok(())
}

/// Appends a logical partition of type `ty` after the last one in extended partition `ext`.
pub fn add_logical(dev: &DevRef, ext: &Partition, ty: u8, spec: &PartSpec) -> Result<()> {
    let es = ext.start / 512;
    let end = es + ext.size / 512;
    // Walk the chain: the last EBR and where its logical partition ends.
    let mut sector = vec![0u8; 512];
    let mut last: Option<(u64, u64)> = None; // (ebr, end of its logical)
    let mut ebr = es;
    for _ in 0..128 {
        dev.read_at(&mut sector, ebr * 512)?;
        let Ok(m) = parse_mbr(&sector) else { break };
        if !m.entries[0].used() {
            break;
        }
        let l = m.entries[0];
        last = Some((ebr, ebr + u64::from(l.lba_start) + u64::from(l.lba_len)));
        if !m.entries[1].used() {
            break;
        }
        ebr = es + u64::from(m.entries[1].lba_start);
    }
    let new_ebr = match last {
        None => es,
        Some((_, l_end)) => l_end.div_ceil(ALIGN) * ALIGN,
    };
    let data = new_ebr + ALIGN;
    let data_end = match spec.size {
        Some(b) if b % 512 != 0 => {
            return Err(Error::Invalid(
                "partition size must be a multiple of 512 bytes".into(),
            ))
        }
        Some(b) => data + b / 512,
        None => end,
    };
    if data >= end || data_end > end {
        return Err(Error::NoSpace(
            "no room left in the extended partition".into(),
        ));
    }
    let mut e = vec![0u8; 512];
    e[510] = 0x55;
    e[511] = 0xaa;
    entry(&mut e[446..462], ty, data - new_ebr, data_end - data)?;
    if spec.bootable {
        e[446] = 0x80;
    }
    dev.write_at(&e, new_ebr * 512)?;
    if let Some((prev, _)) = last {
        dev.read_at(&mut sector, prev * 512)?;
        entry(
            &mut sector[462..478],
            0x05,
            new_ebr - es,
            data_end - new_ebr,
        )?;
        dev.write_at(&sector, prev * 512)?;
    }
    Ok(())
}
