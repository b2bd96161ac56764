//! Replaying a VHDX's pending log (the I/O half; the parser is [`crate::vhdx_log`]).
//!
//! A read-only open replays in memory: the replayed sectors become an [`Overlay`] over the
//! untouched file. A writable open replays onto the file, extends it to the head entry's
//! `LastFileOffset`, flushes, and then writes both headers with a zero log GUID (the next
//! sequence numbers and a new file write GUID), as qemu does.

use crate::host::Host;
use crate::vhdx::{header_bytes, VhdxHeader, HEADER_OFFSETS, MAX_SIZE, MIB};
use crate::vhdx_log::{find_active, LogPlace, LogWrite, Overlay, Replay, MAX_LOG};
use diskfab_storage::{Error, Result};

/// The state of the file after the log is dealt with.
pub(crate) struct Replayed {
    /// Read-only opens: the replayed writes over the file.
    pub(crate) overlay: Option<Overlay>,
    /// The current header (a new one after a writable replay).
    pub(crate) hdr: VhdxHeader,
    /// Its slot.
    pub(crate) slot: usize,
}

/// Reads the log of `hdr` (its log GUID is not zero) and finds its active sequence.
fn read_replay(host: &Host, hdr: &VhdxHeader, file_len: u64) -> Result<Replay> {
    let name = host.path.display();
    let len = u64::from(hdr.log_length);
    if len == 0 || len > MAX_LOG {
        return Err(Error::Unsupported(format!(
            "{name}: VHDX has a pending log of {len} bytes (diskfab replays logs up to {MAX_LOG})"
        )));
    }
    if hdr.log_offset.saturating_add(len) > file_len {
        return Err(Error::bad(format!(
            "{name}: VHDX log at {:#x} ({len} bytes) lies past the end of the file",
            hdr.log_offset
        )));
    }
    let mut log = vec![0u8; len as usize];
    host.read(&mut log, hdr.log_offset)?;
    let place = LogPlace {
        offset: hdr.log_offset,
        guid: hdr.log_guid,
        max_file: 2 * MAX_SIZE,
    };
    let r = find_active(&log, &place)
        .map_err(|e| e.context(&name))?
        .ok_or_else(|| {
            Error::bad(format!(
                "{name}: VHDX header announces a pending log but the log holds no valid sequence"
            ))
        })?;
    if file_len < r.flushed_file_offset {
        return Err(Error::bad(format!(
            "{name}: VHDX file is {file_len} bytes, shorter than its log's flushed size {} \
             (it was truncated)",
            r.flushed_file_offset
        )));
    }
    Ok(r)
}

/// Deals with the pending log of `hdr` (current header, in `slot`): in memory for read-only
/// opens, on the file for writable ones.
pub(crate) fn replay(
    host: &Host,
    hdr: VhdxHeader,
    slot: usize,
    writable: bool,
) -> Result<Replayed> {
    let file_len = host.len()?;
    let r = read_replay(host, &hdr, file_len)?;
    if !writable {
        return Ok(Replayed {
            overlay: Some(Overlay::new(r, file_len)),
            hdr,
            slot,
        });
    }
    let mut end = file_len.max(r.last_file_offset);
    for w in &r.writes {
        match w {
            LogWrite::Data { offset, data } => {
                host.write(data, *offset)?;
                end = end.max(offset + data.len() as u64);
            }
            LogWrite::Zero { offset, len } => {
                zero_range(host, *offset, *len, file_len)?;
                end = end.max(offset + len);
            }
        }
    }
    if host.len()? < end {
        host.set_len(end)?;
    }
    host.sync()?;
    let (hdr, slot) = clear_log_guid(host, hdr, slot)?;
    Ok(Replayed {
        overlay: None,
        hdr,
        slot,
    })
}

/// Zeroes `[off, off + len)`: the part inside the file (`file_len` bytes) in 1 MiB steps; the
/// part beyond reads as zeroes once the file is extended.
fn zero_range(host: &Host, off: u64, len: u64, file_len: u64) -> Result<()> {
    let end = (off + len).min(file_len);
    let mut at = off;
    while at < end {
        let n = (end - at).min(MIB);
        host.punch(at, n)?;
        at += n;
    }
    Ok(())
}

/// Writes both headers with a zero log GUID, the next two sequence numbers and a new file
/// write GUID (the non-current slot first); returns the new current header and its slot.
fn clear_log_guid(host: &Host, hdr: VhdxHeader, slot: usize) -> Result<(VhdxHeader, usize)> {
    let mut h = hdr.clone();
    h.log_guid = [0; 16];
    h.file_write_guid = crate::create::random_uuid()?;
    let mut cur = slot;
    for k in 1..=2u64 {
        h.sequence = hdr.sequence.wrapping_add(k);
        cur = (slot + k as usize) % 2;
        host.write(&header_bytes(&h), HEADER_OFFSETS[cur])?;
        host.sync()?;
    }
    Ok((h, cur))
}
