//! Host-side extended attributes and timestamps (the few libc calls copy-in/out need).

use diskfab_fs::Timespec;
use diskfab_storage::{Error, Result};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("{}: NUL in path", p.display())))
}

/// All xattrs of a host path (not following symlinks) as (name, value).
pub fn list(p: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let c = cpath(p)?;
    let err = |e: std::io::Error| Error::io(format!("xattrs of {}", p.display()), e);
    // SAFETY: size query with a null buffer.
    let n = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENOTSUP) {
            Ok(Vec::new())
        } else {
            Err(err(e))
        };
    }
    let mut names = vec![0u8; n as usize];
    // SAFETY: buffer of the advertised length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n < 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    names.truncate(n as usize);
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cn = CString::new(name).map_err(|_| Error::Invalid("bad xattr name".into()))?;
        // SAFETY: size query.
        let len = unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), std::ptr::null_mut(), 0) };
        if len < 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        let mut v = vec![0u8; len as usize];
        // SAFETY: buffer of the advertised length.
        let len =
            unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        if len < 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        v.truncate(len as usize);
        out.push((name.to_vec(), v));
    }
    Ok(out)
}

/// Sets one xattr on a host path (not following symlinks).
pub fn set(p: &Path, name: &[u8], value: &[u8]) -> Result<()> {
    let c = cpath(p)?;
    let cn = CString::new(name).map_err(|_| Error::Invalid("bad xattr name".into()))?;
    // SAFETY: valid C strings and a buffer of the given length.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            cn.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(Error::io(
            format!("set xattr on {}", p.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Sets access and modification times of a host path (not following symlinks).
pub fn set_times(p: &Path, atime: Timespec, mtime: Timespec) -> Result<()> {
    let c = cpath(p)?;
    let t = [
        libc::timespec {
            tv_sec: atime.sec as libc::time_t,
            tv_nsec: atime.nsec as libc::c_long,
        },
        libc::timespec {
            tv_sec: mtime.sec as libc::time_t,
            tv_nsec: mtime.nsec as libc::c_long,
        },
    ];
    // SAFETY: valid path and a two-element timespec array.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            t.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(Error::io(
            format!("set times on {}", p.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}
