//! A libext2fs `io_manager` implemented in Rust: every block libext2fs reads or writes goes
//! through a diskfab [`DevRef`], so ext filesystems work inside raw, qcow2 overlays, partition
//! slices and any later storage layer.
//!
//! libext2fs opens a channel by name; [`register`] stores a device under a fresh id and returns
//! the name `diskfab:<id>` to pass to `ext2fs_open2`/`ext2fs_initialize`.

use crate::sys;
use diskfab_storage::DevRef;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_ulong, c_ulonglong, c_void, CStr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

fn registry() -> &'static Mutex<HashMap<u64, DevRef>> {
    static R: OnceLock<Mutex<HashMap<u64, DevRef>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Registers `dev` and returns the channel name for libext2fs. Call [`unregister`] when done.
pub fn register(dev: DevRef) -> (u64, std::ffi::CString) {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut r) = registry().lock() {
        r.insert(id, dev);
    }
    let name = std::ffi::CString::new(format!("diskfab:{id}")).unwrap_or_default();
    (id, name)
}

/// Forgets a registered device.
pub fn unregister(id: u64) {
    if let Ok(mut r) = registry().lock() {
        r.remove(&id);
    }
}

struct Chan {
    dev: DevRef,
    writable: bool,
}

const EIO: sys::errcode_t = libc::EIO as sys::errcode_t;
const EROFS: sys::errcode_t = libc::EROFS as sys::errcode_t;

/// The manager's static description, handed to libext2fs as `io_manager`.
pub fn manager() -> *mut sys::struct_io_manager {
    struct M(*mut sys::struct_io_manager);
    // SAFETY: the manager is immutable after creation and only read by libext2fs.
    unsafe impl Send for M {}
    unsafe impl Sync for M {}
    static MGR: OnceLock<M> = OnceLock::new();
    MGR.get_or_init(|| {
        // SAFETY: all-zero is a valid io_manager (null callbacks mean "unsupported").
        let mut m: sys::struct_io_manager = unsafe { std::mem::zeroed() };
        m.magic = sys::EXT2_ET_MAGIC_IO_MANAGER as sys::errcode_t;
        m.name = c"diskfab".as_ptr();
        m.open = Some(open);
        m.close = Some(close);
        m.set_blksize = Some(set_blksize);
        m.read_blk = Some(read_blk);
        m.write_blk = Some(write_blk);
        m.read_blk64 = Some(read_blk64);
        m.write_blk64 = Some(write_blk64);
        m.flush = Some(flush);
        m.write_byte = Some(write_byte);
        m.set_option = Some(set_option);
        m.discard = Some(discard);
        m.zeroout = Some(zeroout);
        M(Box::into_raw(Box::new(m)))
    })
    .0
}

unsafe extern "C" fn open(
    name: *const c_char,
    flags: c_int,
    channel: *mut sys::io_channel,
) -> sys::errcode_t {
    if name.is_null() || channel.is_null() {
        return sys::EXT2_ET_BAD_DEVICE_NAME as sys::errcode_t;
    }
    // SAFETY: libext2fs passes the NUL-terminated name we gave it.
    let n = unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned();
    let Some(id) = n
        .strip_prefix("diskfab:")
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return sys::EXT2_ET_BAD_DEVICE_NAME as sys::errcode_t;
    };
    let Some(dev) = registry().lock().ok().and_then(|r| r.get(&id).cloned()) else {
        return sys::EXT2_ET_BAD_DEVICE_NAME as sys::errcode_t;
    };
    let writable = flags & sys::IO_FLAG_RW as c_int != 0;
    if writable && !dev.writable() {
        return EROFS;
    }
    // SAFETY: a zeroed io_channel is valid; libext2fs frees it with ext2fs_free_mem (free()), so
    // it is allocated with calloc, and so is its name.
    unsafe {
        let ch = libc::calloc(1, std::mem::size_of::<sys::struct_io_channel>()) as sys::io_channel;
        if ch.is_null() {
            return libc::ENOMEM as sys::errcode_t;
        }
        (*ch).magic = sys::EXT2_ET_MAGIC_IO_CHANNEL as sys::errcode_t;
        (*ch).manager = manager();
        (*ch).name = libc::strdup(name);
        (*ch).block_size = 1024;
        (*ch).refcount = 1;
        (*ch).private_data = Box::into_raw(Box::new(Chan { dev, writable })) as *mut c_void;
        *channel = ch;
    }
    0
}

/// The channel's state.
unsafe fn chan<'a>(ch: sys::io_channel) -> Option<&'a Chan> {
    // SAFETY: private_data was set by `open` to a live Box<Chan>.
    unsafe {
        ch.as_ref()
            .and_then(|c| (c.private_data as *const Chan).as_ref())
    }
}

unsafe extern "C" fn close(ch: sys::io_channel) -> sys::errcode_t {
    // SAFETY: ch came from `open`.
    unsafe {
        let Some(c) = ch.as_mut() else { return 0 };
        c.refcount -= 1;
        if c.refcount > 0 {
            return 0;
        }
        if !c.private_data.is_null() {
            drop(Box::from_raw(c.private_data as *mut Chan));
        }
        libc::free(c.name as *mut c_void);
        libc::free(ch as *mut c_void);
    }
    0
}

unsafe extern "C" fn set_blksize(ch: sys::io_channel, size: c_int) -> sys::errcode_t {
    // SAFETY: ch came from `open`.
    unsafe {
        if let Some(c) = ch.as_mut() {
            c.block_size = size;
        }
    }
    0
}

/// Byte range for `count` blocks at `block` (negative count = bytes, as in unix_io).
unsafe fn range(ch: sys::io_channel, block: u64, count: c_int) -> Option<(u64, usize)> {
    // SAFETY: ch came from `open`.
    let bs = unsafe { ch.as_ref()?.block_size } as u64;
    let len = if count < 0 {
        (-(count as i64)) as u64
    } else {
        count as u64 * bs
    };
    let off = block.checked_mul(bs)?;
    off.checked_add(len)?;
    Some((off, usize::try_from(len).ok()?))
}

unsafe extern "C" fn read_blk64(
    ch: sys::io_channel,
    block: c_ulonglong,
    count: c_int,
    data: *mut c_void,
) -> sys::errcode_t {
    // SAFETY: libext2fs guarantees `data` holds the requested bytes.
    unsafe {
        let (Some(c), Some((off, len))) = (chan(ch), range(ch, block, count)) else {
            return EIO;
        };
        let buf = std::slice::from_raw_parts_mut(data as *mut u8, len);
        match c.dev.read_at(buf, off) {
            Ok(()) => 0,
            Err(_) => sys::EXT2_ET_SHORT_READ as sys::errcode_t,
        }
    }
}

unsafe extern "C" fn write_blk64(
    ch: sys::io_channel,
    block: c_ulonglong,
    count: c_int,
    data: *const c_void,
) -> sys::errcode_t {
    // SAFETY: libext2fs guarantees `data` holds the given bytes.
    unsafe {
        let (Some(c), Some((off, len))) = (chan(ch), range(ch, block, count)) else {
            return EIO;
        };
        if !c.writable {
            return EROFS;
        }
        let buf = std::slice::from_raw_parts(data as *const u8, len);
        match c.dev.write_at(buf, off) {
            Ok(()) => 0,
            Err(diskfab_storage::Error::NoSpace(_)) => libc::ENOSPC as sys::errcode_t,
            Err(_) => sys::EXT2_ET_SHORT_WRITE as sys::errcode_t,
        }
    }
}

unsafe extern "C" fn read_blk(
    ch: sys::io_channel,
    block: c_ulong,
    count: c_int,
    data: *mut c_void,
) -> sys::errcode_t {
    // SAFETY: forwarded with the same contract.
    unsafe { read_blk64(ch, block as c_ulonglong, count, data) }
}

unsafe extern "C" fn write_blk(
    ch: sys::io_channel,
    block: c_ulong,
    count: c_int,
    data: *const c_void,
) -> sys::errcode_t {
    // SAFETY: forwarded with the same contract.
    unsafe { write_blk64(ch, block as c_ulonglong, count, data) }
}

unsafe extern "C" fn write_byte(
    ch: sys::io_channel,
    offset: c_ulong,
    size: c_int,
    data: *const c_void,
) -> sys::errcode_t {
    if size < 0 {
        return EIO;
    }
    // SAFETY: `data` holds `size` bytes.
    unsafe {
        let Some(c) = chan(ch) else { return EIO };
        if !c.writable {
            return EROFS;
        }
        let buf = std::slice::from_raw_parts(data as *const u8, size as usize);
        match c.dev.write_at(buf, offset) {
            Ok(()) => 0,
            Err(_) => sys::EXT2_ET_SHORT_WRITE as sys::errcode_t,
        }
    }
}

unsafe extern "C" fn flush(ch: sys::io_channel) -> sys::errcode_t {
    // SAFETY: ch came from `open`.
    unsafe {
        match chan(ch) {
            Some(c) if c.writable => c.dev.flush().map(|_| 0).unwrap_or(EIO),
            _ => 0,
        }
    }
}

unsafe extern "C" fn set_option(
    _: sys::io_channel,
    _: *const c_char,
    _: *const c_char,
) -> sys::errcode_t {
    sys::EXT2_ET_INVALID_ARGUMENT as sys::errcode_t
}

unsafe extern "C" fn zeroout(
    ch: sys::io_channel,
    block: c_ulonglong,
    count: c_ulonglong,
) -> sys::errcode_t {
    // SAFETY: ch came from `open`.
    unsafe {
        let Some(c) = chan(ch) else { return EIO };
        if !c.writable {
            return EROFS;
        }
        let bs = (*ch).block_size as u64;
        let (Some(off), Some(len)) = (block.checked_mul(bs), count.checked_mul(bs)) else {
            return EIO;
        };
        match c.dev.write_zeroes(off, len) {
            Ok(()) => 0,
            Err(_) => EIO,
        }
    }
}

unsafe extern "C" fn discard(
    ch: sys::io_channel,
    block: c_ulonglong,
    count: c_ulonglong,
) -> sys::errcode_t {
    // SAFETY: same contract as zeroout; discarded blocks read back as zeroes here.
    unsafe { zeroout(ch, block, count) }
}
