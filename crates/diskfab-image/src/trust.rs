//! The diskfab trust mark: proof, inside a qcow2 overlay, that diskfab itself wrote it with this
//! backing file name, so that a raw backing file it names opens later without flags.
//!
//! Every overlay diskfab writes with a backing file is built by [`overlay_image`]: it carries a
//! qcow2 header extension ([`EXT_TRUST_MARK`], ignored and preserved by QEMU) holding a keyed
//! BLAKE3 MAC over a domain string, the backing file name exactly as stored, the backing
//! format and the backing file's length when the overlay was made. The 32-byte key lives in
//! `$DISKFAB_TRUST_KEY` (a file path) or `${XDG_CONFIG_HOME:-$HOME/.config}/diskfab/trust.key`
//! (mode 0600 in a 0700 directory, created atomically on first use). A stranger's image cannot
//! carry a mark that verifies (no key), and editing the name, the format or swapping the file
//! for one of another length breaks it. If the key cannot be created, overlays are written
//! without a mark (opening them then needs `--backing-dir` or `--allow-any-backing`).

use crate::header::{build_image, NewHeader};
use diskfab_storage::{Error, Result};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The qcow2 header extension type of the trust mark (`dfb1`).
pub const EXT_TRUST_MARK: u32 = 0x6466_6231;
const DOMAIN: &[u8] = b"diskfab trust mark v1: qcow2 overlay backing file";

/// A 32-byte MAC key.
#[derive(Clone)]
pub struct TrustKey([u8; 32]);

impl std::fmt::Debug for TrustKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrustKey(..)")
    }
}

impl TrustKey {
    /// A key from its bytes (tests, and keys kept elsewhere).
    pub fn from_bytes(b: [u8; 32]) -> TrustKey {
        TrustKey(b)
    }

    /// The mark of an overlay whose backing is `name` (as stored), format `format` (as stored,
    /// `""` when none) and `len` bytes long.
    pub fn mark(&self, name: &str, format: &str, len: u64) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(DOMAIN);
        for part in [name.as_bytes(), format.as_bytes()] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(&len.to_le_bytes());
        *h.finalize().as_bytes()
    }

    /// Whether `mark` is this key's mark for (`name`, `format`, `len`), in constant time.
    pub fn verify(&self, mark: &[u8; 32], name: &str, format: &str, len: u64) -> bool {
        blake3::Hash::from(*mark) == blake3::Hash::from(self.mark(name, format, len))
    }
}

/// Where the key lives: `$DISKFAB_TRUST_KEY`, else `${XDG_CONFIG_HOME:-$HOME/.config}/diskfab/
/// trust.key`; `None` without a home directory.
pub fn key_path() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = var("DISKFAB_TRUST_KEY") {
        return Some(p);
    }
    let config = var("XDG_CONFIG_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| var("HOME").map(|h| h.join(".config")))?;
    Some(config.join("diskfab").join("trust.key"))
}

/// Reads the key without creating it. `Err` says why there is no usable key (for messages).
pub fn load_key() -> std::result::Result<TrustKey, String> {
    let path = key_path().ok_or("no $HOME or $DISKFAB_TRUST_KEY to find the key in")?;
    read_key(&path)
}

fn read_key(path: &Path) -> std::result::Result<TrustKey, String> {
    let shown = path.display();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("key {shown}: {e}"))?;
    let m = f.metadata().map_err(|e| format!("key {shown}: {e}"))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !m.is_file() || m.len() != 32 {
        return Err(format!("key {shown} is not a 32-byte regular file"));
    }
    if m.uid() != me || m.mode() & 0o077 != 0 {
        return Err(format!(
            "key {shown} is not private (it must be owned by you, mode 0600)"
        ));
    }
    let mut k = [0u8; 32];
    f.read_exact(&mut k)
        .map_err(|e| format!("key {shown}: {e}"))?;
    Ok(TrustKey(k))
}

/// Reads the key, creating it on first use: 32 random bytes, mode 0600, in a 0700 directory,
/// published with `link(2)` so that a concurrent first use never sees a partial key.
pub fn load_or_create_key() -> std::result::Result<TrustKey, String> {
    let path = key_path().ok_or("no $HOME or $DISKFAB_TRUST_KEY to keep a key in")?;
    match read_key(&path) {
        Ok(k) => return Ok(k),
        Err(_) if std::fs::symlink_metadata(&path).is_err() => {}
        Err(e) => return Err(e),
    }
    let shown = path.display();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let (mut k, mut salt) = ([0u8; 32], [0u8; 8]);
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut k).and_then(|_| f.read_exact(&mut salt)))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    let tmp = dir.join(format!(
        ".trust.key.{}.{:016x}",
        std::process::id(),
        u64::from_le_bytes(salt)
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&k).and_then(|_| f.sync_all()));
    let linked = written.and_then(|_| std::fs::hard_link(&tmp, &path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => read_key(&path),
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(&path),
        Err(e) => Err(format!("creating key {shown}: {e}")),
    }
}

/// Builds a complete qcow2 image (see [`build_image`]); with a backing file, marked with the
/// trust mark. The one function through which diskfab writes every qcow2 header with a backing
/// file. `dir` is the overlay's directory (a relative backing name is resolved against it to
/// measure the backing file's length). Without a usable key the image is built unmarked.
pub fn overlay_image(dir: &Path, h: &NewHeader) -> Result<Vec<u8>> {
    let mut h = h.clone();
    h.trust_mark = None;
    if let Some(name) = h.backing {
        let p = Path::new(name);
        let target = if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        };
        let len = std::fs::metadata(&target)
            .map_err(|e| Error::io(format!("backing file {}", target.display()), e))?
            .len();
        if let Ok(key) = load_or_create_key() {
            h.trust_mark = Some(key.mark(name, h.backing_format.unwrap_or(""), len));
        }
    }
    build_image(&h)
}

/// Whether the qcow2 header `hdr` carries a trust mark that verifies with this user's key for
/// its backing file of `len` bytes; `Err` says why not (for the refusal message).
pub fn verify_header(hdr: &crate::Qcow2Header, len: u64) -> std::result::Result<(), String> {
    let (Some(mark), Some(name)) = (&hdr.trust_mark, &hdr.backing_file) else {
        return Err(match load_key() {
            Ok(_) => "it carries no diskfab trust mark".into(),
            Err(e) => format!(
                "it carries no diskfab trust mark (and diskfab has no usable trust key to mark                  the overlays it writes: {e})"
            ),
        });
    };
    let key = load_key().map_err(|e| format!("its trust mark cannot be checked ({e})"))?;
    let fmt = hdr.backing_format.as_deref().unwrap_or("");
    if key.verify(mark, name, fmt, len) {
        Ok(())
    } else {
        Err(
            "its diskfab trust mark does not verify (made with another key, or the backing \
             name, format or file changed since)"
                .into(),
        )
    }
}
