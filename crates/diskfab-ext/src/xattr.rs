//! Extended attributes through libext2fs' xattr handle API (in-inode and block xattrs; POSIX ACLs
//! are converted by libext2fs to and from the Linux `system.posix_acl_*` xattr encoding).

use crate::fs::{check, ExtFs};
use crate::sys;
use diskfab_storage::{Error, Result};
use std::ffi::{c_char, c_int, c_void, CStr, CString};

struct Handle(*mut sys::ext2_xattr_handle);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from ext2fs_xattrs_open and is closed once.
        unsafe { sys::ext2fs_xattrs_close(&mut self.0) };
    }
}

impl ExtFs {
    fn xattrs(&mut self, ino: u64) -> Result<Handle> {
        let i = self.ino32(ino)?;
        let mut h: *mut sys::ext2_xattr_handle = std::ptr::null_mut();
        // SAFETY: valid fs and out-pointer.
        check(
            unsafe { sys::ext2fs_xattrs_open(self.fs, i, &mut h) },
            "opening xattrs",
        )?;
        let h = Handle(h);
        // SAFETY: h is open.
        check(unsafe { sys::ext2fs_xattrs_read(h.0) }, "reading xattrs")?;
        Ok(h)
    }

    pub(crate) fn do_list_xattrs(&mut self, ino: u64) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if self.sb().s_feature_compat & sys::EXT2_FEATURE_COMPAT_EXT_ATTR == 0 {
            return Ok(Vec::new());
        }
        let h = self.xattrs(ino)?;
        unsafe extern "C" fn cb(
            name: *mut c_char,
            value: *mut c_char,
            len: usize,
            data: *mut c_void,
        ) -> c_int {
            // SAFETY: libext2fs passes a NUL-terminated name and `len` value bytes.
            unsafe {
                let out = &mut *(data as *mut Vec<(Vec<u8>, Vec<u8>)>);
                let n = CStr::from_ptr(name).to_bytes().to_vec();
                let v = if len == 0 || value.is_null() {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(value as *const u8, len).to_vec()
                };
                out.push((n, v));
            }
            0
        }
        let mut raw: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        // SAFETY: callback only appends to `raw`.
        check(
            unsafe { sys::ext2fs_xattrs_iterate(h.0, Some(cb), &mut raw as *mut _ as *mut c_void) },
            "listing xattrs",
        )?;
        // Iteration yields on-disk values; ext2fs_xattr_get translates POSIX ACLs from the ext4
        // disk format to the Linux xattr ABI, so fetch each value through it.
        let mut out = Vec::with_capacity(raw.len());
        for (name, value) in raw {
            if !name.starts_with(b"system.posix_acl_") {
                out.push((name, value));
                continue;
            }
            let key = CString::new(name.clone()).map_err(|_| Error::bad("NUL in xattr name"))?;
            let mut p: *mut c_void = std::ptr::null_mut();
            let mut len = 0usize;
            // SAFETY: valid handle and key; on success p is a buffer of len bytes we must free.
            check(
                unsafe { sys::ext2fs_xattr_get(h.0, key.as_ptr(), &mut p, &mut len) },
                "reading xattr",
            )?;
            let v = if p.is_null() {
                Vec::new()
            } else {
                unsafe { std::slice::from_raw_parts(p as *const u8, len) }.to_vec()
            };
            // SAFETY: allocated by libext2fs with malloc (ext2fs_get_mem).
            unsafe { libc::free(p) };
            out.push((name, normalize_acl(v)));
        }
        out.sort();
        Ok(out)
    }

    pub(crate) fn do_set_xattr(&mut self, ino: u64, name: &[u8], value: &[u8]) -> Result<()> {
        self.ro()?;
        let key = xattr_name(name)?;
        let h = self.xattrs(ino)?;
        // SAFETY: key NUL-terminated; value has value.len() bytes.
        check(
            unsafe {
                sys::ext2fs_xattr_set(
                    h.0,
                    key.as_ptr(),
                    value.as_ptr() as *const c_void,
                    value.len(),
                )
            },
            "setting xattr",
        )
    }

    pub(crate) fn do_remove_xattr(&mut self, ino: u64, name: &[u8]) -> Result<()> {
        self.ro()?;
        let key = xattr_name(name)?;
        let h = self.xattrs(ino)?;
        // SAFETY: key NUL-terminated.
        check(
            unsafe { sys::ext2fs_xattr_remove(h.0, key.as_ptr()) },
            "removing xattr",
        )
    }
}

fn xattr_name(name: &[u8]) -> Result<CString> {
    let ok_prefix = [&b"user."[..], b"trusted.", b"security.", b"system."]
        .iter()
        .any(|p| name.starts_with(p));
    if !ok_prefix || name.len() > 255 {
        return Err(Error::Invalid(format!(
            "xattr name {:?} must start with user., trusted., security. or system.",
            String::from_utf8_lossy(name)
        )));
    }
    CString::new(name).map_err(|_| Error::Invalid("NUL in xattr name".into()))
}

/// libext2fs leaves the id of USER_OBJ/GROUP_OBJ/MASK/OTHER entries at 0; the kernel reports
/// ACL_UNDEFINED_ID (0xffffffff) there. Normalise so values equal what getfattr shows.
fn normalize_acl(mut v: Vec<u8>) -> Vec<u8> {
    if v.len() < 4 || v[..4] != [2, 0, 0, 0] {
        return v;
    }
    for e in v[4..].chunks_exact_mut(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        if matches!(tag, 0x01 | 0x04 | 0x10 | 0x20) {
            e[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        }
    }
    v
}
