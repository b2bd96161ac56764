//! The backing-file gate: the only way a file named inside an image (backing file, qcow2
//! external data file, VMDK extent) is ever opened.
//!
//! An image from a stranger can name any path (`/etc/shadow`, `~/.ssh/id_rsa`, a device, a
//! FIFO, `/proc/self/mem`). The gate opens the named file once (`O_RDONLY|O_CLOEXEC|
//! O_NONBLOCK`) and decides on that descriptor, which is then the one read:
//! - never, whatever the flags: anything that is not a regular file after resolving symlinks,
//!   files on kernel pseudo filesystems, chains deeper than [`BackingGate::max_depth`], loops;
//! - anywhere: a disk image of a structured format, its magic and header verified by our own
//!   parser ([`structured`]): such a file is not a host secret;
//! - raw bytes (anything is a valid raw image) only with explicit trust: the file's directory
//!   is at or under an allowed directory (`--backing-dir`, `DISKFAB_BACKING_DIRS`), or
//!   `--allow-any-backing`, or (backing files only) the overlay naming it carries a diskfab
//!   trust mark that verifies ([`crate::trust`]).

use crate::{detect_format_file, Format};
use diskfab_storage::{Error, Result};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Policy for opening backing files, data files and extents.
#[derive(Debug, Clone)]
pub struct BackingGate {
    /// Directories raw backing and data files may live in (`--backing-dir`,
    /// `DISKFAB_BACKING_DIRS`), subdirectories included.
    pub allow_dirs: Vec<PathBuf>,
    /// Trust every raw backing or data file (`--allow-any-backing`); regular files, pseudo
    /// filesystems, depth and loops still apply.
    pub allow_any: bool,
    /// Longest chain accepted below the top image.
    pub max_depth: usize,
}

impl Default for BackingGate {
    fn default() -> Self {
        BackingGate {
            allow_dirs: Vec::new(),
            allow_any: false,
            max_depth: 16,
        }
    }
}

/// What names the file, for messages and the trust rule that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A qcow2 backing file.
    Backing,
    /// A qcow2 external data file (raw by nature).
    DataFile,
    /// A VMDK extent named by a descriptor.
    Extent,
}

impl Role {
    fn what(self) -> &'static str {
        match self {
            Role::Backing => "backing file",
            Role::DataFile => "external data file",
            Role::Extent => "VMDK extent",
        }
    }
}

/// A named file, opened once and checked: a regular file, not on a pseudo filesystem.
pub(crate) struct Named {
    /// The open file (read-only); the file every later decision and read is about.
    pub file: File,
    /// Where it really is (symlinks resolved), from the descriptor.
    pub path: PathBuf,
    /// (device, inode), for loop detection.
    pub id: (u64, u64),
    /// Its length.
    pub len: u64,
}

/// (device, inode) of an open file.
pub(crate) fn file_id(f: &File) -> Option<(u64, u64)> {
    f.metadata().ok().map(|m| (m.dev(), m.ino()))
}

fn denied(image: &Path, role: Role, name: &str, why: impl std::fmt::Display) -> Error {
    Error::Denied(format!(
        "{}: {} {name:?} {why}; refusing to open it",
        image.display(),
        role.what()
    ))
}

impl BackingGate {
    /// Opens the file `name` stored in `image` names (relative names are relative to the
    /// image's directory), at chain depth `depth`, and refuses what is never a disk image.
    pub(crate) fn open_named(
        &self,
        role: Role,
        image: &Path,
        name: &str,
        depth: usize,
    ) -> Result<Named> {
        self.open_named_rw(role, image, name, depth, false)
    }

    /// [`BackingGate::open_named`], opened for writing too when `write` (VMDK extents of a
    /// writable image).
    pub(crate) fn open_named_rw(
        &self,
        role: Role,
        image: &Path,
        name: &str,
        depth: usize,
        write: bool,
    ) -> Result<Named> {
        if depth > self.max_depth {
            return Err(Error::Denied(format!(
                "{}: backing chain deeper than {} images (at {name:?}); refusing to follow it",
                image.display(),
                self.max_depth
            )));
        }
        let dir = image.parent().unwrap_or(Path::new("."));
        let candidate = if Path::new(name).is_absolute() {
            PathBuf::from(name)
        } else {
            dir.join(name)
        };
        let gone = |e: std::io::Error| {
            Error::bad(format!(
                "{}: {} {name:?} ({}) cannot be opened: {e}",
                image.display(),
                role.what(),
                candidate.display()
            ))
        };
        // Checked before opening so that a device is never opened (a FIFO would also block);
        // decided again on the descriptor below.
        let pre = std::fs::metadata(&candidate).map_err(gone)?;
        if !pre.is_file() {
            return Err(denied(image, role, name, not_regular(&pre)));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&candidate)
            .map_err(gone)?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(candidate.display().to_string(), e))?;
        if !meta.is_file() {
            return Err(denied(image, role, name, not_regular(&meta)));
        }
        let path = real_path(&file, &candidate, &meta).ok_or_else(|| {
            denied(
                image,
                role,
                name,
                "changed while it was being opened (its real path cannot be established)",
            )
        })?;
        if let Some(fs) = pseudo_filesystem(&file, &path) {
            return Err(denied(
                image,
                role,
                name,
                format_args!(
                    "resolves to {}, on {fs}, which is never a disk image",
                    path.display()
                ),
            ));
        }
        Ok(Named {
            id: (meta.dev(), meta.ino()),
            len: meta.len(),
            file,
            path,
        })
    }

    /// Whether the user trusts raw bytes in `path`: `--allow-any-backing`, or its directory is
    /// at or under an allowed directory.
    pub(crate) fn trusts_raw(&self, path: &Path) -> bool {
        let Some(dir) = path.parent() else {
            return false;
        };
        self.allow_any
            || self
                .allow_dirs
                .iter()
                .filter_map(|d| std::fs::canonicalize(d).ok())
                .any(|d| dir.starts_with(d))
    }

    /// The refusal of raw bytes without trust: names the image, the file, the rule and the flags.
    pub(crate) fn refuse_raw(
        &self,
        role: Role,
        image: &Path,
        name: &str,
        n: &Named,
        why: &str,
    ) -> Error {
        let dir = n.path.parent().unwrap_or(Path::new("/")).display();
        let rule = match role {
            Role::Backing => format!(
                "is not a disk image of a structured format (qcow2, vmdk, vdi, vhd, vhdx with a \
                 valid header), so it would be read as raw bytes, which could be any host file; \
                 raw backing files are opened only from directories you allow or when the \
                 overlay carries diskfab's trust mark, and {why}"
            ),
            Role::DataFile => "is raw bytes by nature (qcow2 external data files could be any \
                               host file); data files are opened only from directories you allow"
                .to_string(),
            Role::Extent => "is a raw (flat) extent whose name does not end in .vmdk; such \
                             extents are opened only from directories you allow"
                .to_string(),
        };
        Error::Denied(format!(
            "{}: {} {name:?} resolves to {}, which {rule}. If you trust this image, pass \
             --backing-dir {dir} (or set DISKFAB_BACKING_DIRS={dir}), or --allow-any-backing",
            image.display(),
            role.what(),
            n.path.display(),
        ))
    }
}

fn not_regular(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        "is a directory, not a disk image"
    } else if t.is_block_device() || t.is_char_device() {
        "is a device, not a disk image file"
    } else if t.is_fifo() {
        "is a FIFO, not a disk image"
    } else if t.is_socket() {
        "is a socket, not a disk image"
    } else {
        "is not a regular file"
    }
}

/// The real path of the open `file` (opened as `candidate`): from `/proc/self/fd`, else the
/// canonical path if it still names the same inode.
fn real_path(file: &File, candidate: &Path, meta: &std::fs::Metadata) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    let link = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    if let Ok(p) = std::fs::read_link(link) {
        if p.is_absolute()
            && std::fs::metadata(&p).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
        {
            return Some(p);
        }
    }
    let c = std::fs::canonicalize(candidate).ok()?;
    let m = std::fs::metadata(&c).ok()?;
    (m.dev() == meta.dev() && m.ino() == meta.ino()).then_some(c)
}

/// Names the kernel pseudo filesystem the open `file` (at `path`) lives on, whose "regular
/// files" are views of kernel or process state (`/proc/self/mem`, `/proc/kcore`), never images.
/// Refused even with `allow_any`.
fn pseudo_filesystem(file: &File, path: &Path) -> Option<&'static str> {
    use std::os::fd::AsRawFd;
    for (prefix, name) in [("/proc", "procfs"), ("/sys", "sysfs")] {
        if path.starts_with(prefix) {
            return Some(name);
        }
    }
    if path.starts_with("/dev") && !path.starts_with("/dev/shm") {
        return Some("devtmpfs");
    }
    // SAFETY: fstatfs writes into a zeroed struct we own; the descriptor is open.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
        return Some("a filesystem whose type cannot be read");
    }
    // Magic numbers from linux/magic.h.
    match st.f_type as i64 {
        0x9fa0 => Some("procfs"),
        0x6265_6572 => Some("sysfs"),
        0x6462_6720 => Some("debugfs"),
        0x7472_6163 => Some("tracefs"),
        0x0027_e0eb | 0x6367_7270 => Some("cgroupfs"),
        0x7363_6673 => Some("securityfs"),
        0x6265_6570 => Some("configfs"),
        0xcafe_4a11 => Some("bpffs"),
        0x6165_676c => Some("pstore"),
        0xde5e_81e4 => Some("efivarfs"),
        0xf97c_ff8c => Some("selinuxfs"),
        0x4341_5d53 => Some("smackfs"),
        0x4249_4e4d => Some("binfmt_misc"),
        0x6e73_6673 => Some("nsfs"),
        0x1980_0202 => Some("mqueue"),
        0x1cd1 => Some("devpts"),
        0x6573_5543 => Some("fusectl"),
        _ => None,
    }
}

fn read_at(f: &File, at: u64, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    let mut done = 0;
    while done < n {
        match f.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) | Err(_) => break,
            Ok(k) => done += k,
        }
    }
    buf.truncate(done);
    buf
}

/// The structured format of the open file, if its magic says one AND our parser accepts its
/// header (qcow2 header, VDI header, VHD footer with its checksum, VHDX header with its CRC,
/// VMDK sparse header or text descriptor). Reads at most a few KiB; never follows anything.
pub(crate) fn structured(f: &File, len: u64) -> Option<Format> {
    let head = read_at(f, 0, 4096);
    let tail = if len >= 512 {
        read_at(f, len - 512, 512)
    } else {
        Vec::new()
    };
    let fmt = detect_format_file(&head, &tail, len);
    let ok = match fmt {
        Format::Raw => false,
        Format::Qcow2 => {
            let bits = head
                .get(20..24)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            let big = match bits {
                Some(b @ 13..=21) => read_at(f, 0, 1 << b),
                _ => Vec::new(),
            };
            crate::header::parse_qcow2_header(&head).is_ok()
                || crate::header::parse_qcow2_header(&big).is_ok()
        }
        Format::Vdi => {
            let mut h = head.clone();
            h.resize(512, 0);
            crate::vdi::parse_vdi_header(&h).is_ok()
        }
        Format::Vhd => {
            crate::vhd::parse_vhd_footer(&tail).is_ok()
                || crate::vhd::parse_vhd_footer(&head).is_ok()
        }
        Format::Vhdx => crate::vhdx::HEADER_OFFSETS
            .iter()
            .any(|&o| crate::vhdx::parse_header(&read_at(f, o, 4096)).is_ok()),
        Format::Vmdk if head.starts_with(&crate::vmdk::MAGIC) => {
            crate::vmdk::parse_sparse_header(&head[..head.len().min(512)]).is_ok()
        }
        Format::Vmdk => {
            len <= crate::vmdk::MAX_DESCRIPTOR
                && crate::vmdk::parse_descriptor(&read_at(f, 0, len as usize)).is_ok()
        }
    };
    ok.then_some(fmt)
}
