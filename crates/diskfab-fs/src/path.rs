//! Path resolution inside a filesystem: chroot semantics (`/` and `..` never leave the
//! filesystem root), symlinks followed with a hop limit, every name validated.

use crate::driver::Filesystem;
use crate::types::{FileType, Ino};
use diskfab_storage::{Error, Result};

/// Maximum symlinks followed while resolving one path (as Linux's MAXSYMLINKS).
pub const MAX_SYMLINK_HOPS: u32 = 40;
/// Maximum path length accepted.
pub const MAX_PATH: usize = 4096;

/// Splits a path into its non-empty, non-`.` components.
pub fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

/// Checks that `name` is usable as one directory entry name.
pub fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." {
        return Err(Error::Invalid(format!(
            "invalid file name {:?}",
            String::from_utf8_lossy(name)
        )));
    }
    if name.len() > 255 || name.contains(&b'/') || name.contains(&0) {
        return Err(Error::Invalid(format!(
            "invalid file name {:?} (contains '/' or NUL, or longer than 255 bytes)",
            String::from_utf8_lossy(name)
        )));
    }
    Ok(())
}

/// Resolves `path` (absolute; relative paths are taken from the root) to an inode.
/// Symlinks in the middle are always followed; the last component only when `follow`.
pub fn resolve(fs: &mut dyn Filesystem, path: &[u8], follow: bool) -> Result<Ino> {
    if path.len() > MAX_PATH {
        return Err(Error::Invalid("path too long".into()));
    }
    let mut hops = 0u32;
    let root = fs.root();
    walk(fs, root, path, follow, &mut hops).map_err(|e| e.context(display(path)))
}

/// Like [`resolve`], but returns every directory from the root down to the resolved node
/// (symlinks already followed), so callers can check ancestry (e.g. moving a directory into
/// itself).
pub fn resolve_chain(fs: &mut dyn Filesystem, path: &[u8], follow: bool) -> Result<Vec<Ino>> {
    if path.len() > MAX_PATH {
        return Err(Error::Invalid("path too long".into()));
    }
    let mut hops = 0u32;
    let mut stack = vec![fs.root()];
    walk_into(fs, &mut stack, path, follow, &mut hops).map_err(|e| e.context(display(path)))?;
    Ok(stack)
}

/// Resolves the parent directory of `path` and returns it with the final name.
/// `/` itself has no parent and is refused.
pub fn resolve_parent(fs: &mut dyn Filesystem, path: &[u8]) -> Result<(Ino, Vec<u8>)> {
    let trimmed = trim_trailing_slashes(path);
    let (dir, name) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    if name.is_empty() || name == b"." || name == b".." {
        return Err(Error::Invalid(format!(
            "{}: path names no entry",
            display(path)
        )));
    }
    check_name(name)?;
    let parent = resolve(fs, dir, true)?;
    let meta = fs.getattr(parent)?;
    if meta.file_type != FileType::Directory {
        return Err(Error::Failed(format!("{}: not a directory", display(dir))));
    }
    Ok((parent, name.to_vec()))
}

fn trim_trailing_slashes(p: &[u8]) -> &[u8] {
    let mut end = p.len();
    while end > 1 && p[end - 1] == b'/' {
        end -= 1;
    }
    &p[..end]
}

/// Human-readable form of a raw path.
pub fn display(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// Like [`display`], for names from an image that reach a terminal: control characters are
/// escaped (`\n`, `\u{1b}`) and bytes that are not UTF-8 shown as `\xff`, so a hostile name
/// can neither forge output lines nor send escape sequences.
pub fn display_escaped(path: &[u8]) -> String {
    let mut out = String::with_capacity(path.len());
    for chunk in path.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.extend(c.escape_debug());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn walk(
    fs: &mut dyn Filesystem,
    start: Ino,
    path: &[u8],
    follow: bool,
    hops: &mut u32,
) -> Result<Ino> {
    let root = fs.root();
    // Stack of directories from the root, so `..` works without trusting on-disk `..` entries
    // and can never climb above the filesystem root.
    let mut stack: Vec<Ino> = vec![start];
    walk_into(fs, &mut stack, path, follow, hops)?;
    Ok(*stack.last().unwrap_or(&root))
}

fn walk_into(
    fs: &mut dyn Filesystem,
    stack: &mut Vec<Ino>,
    path: &[u8],
    follow: bool,
    hops: &mut u32,
) -> Result<()> {
    let root = fs.root();
    if path.first() == Some(&b'/') {
        stack.clear();
        stack.push(root);
    }
    // A trailing `/` (or `/.`) names a directory, as on Linux: a final symlink is followed
    // and the result must be a directory (`passwd/` is "not a directory").
    let dir_only = names_dir(path);
    let follow = follow || dir_only;
    let comps: Vec<&[u8]> = components(path).collect();
    for (i, comp) in comps.iter().enumerate() {
        let dir = *stack.last().unwrap_or(&root);
        require_dir(fs, dir)?;
        if *comp == b".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let ino = fs
            .lookup(dir, comp)?
            .ok_or_else(|| Error::NotFound("no such file or directory".into()))?;
        let last = i + 1 == comps.len();
        if (!last || follow) && fs.getattr(ino)?.file_type == FileType::Symlink {
            *hops += 1;
            if *hops > MAX_SYMLINK_HOPS {
                return Err(Error::Failed("too many levels of symbolic links".into()));
            }
            let target = fs.read_link(ino)?;
            walk_into(fs, stack, &target, true, hops)?;
            continue;
        }
        stack.push(ino);
    }
    if dir_only {
        require_dir(fs, *stack.last().unwrap_or(&root))?;
    }
    Ok(())
}

fn names_dir(path: &[u8]) -> bool {
    path.len() > 1 && (path.ends_with(b"/") || path.ends_with(b"/."))
}

fn require_dir(fs: &mut dyn Filesystem, ino: Ino) -> Result<()> {
    if fs.getattr(ino)?.file_type != FileType::Directory {
        return Err(Error::Failed("a path component is not a directory".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testfs::MemFs;

    /// `/etc/passwd`, `/etc/shadow`, `/a/b/` and the root inode.
    fn image() -> (MemFs, Ino, Ino) {
        let mut fs = MemFs::new();
        let etc = fs.dir(1, "etc");
        let passwd = fs.file(etc, "passwd", b"root:x:0:0::/root:/bin/sh\n");
        fs.file(etc, "shadow", b"root:*:1::::::\n");
        let a = fs.dir(1, "a");
        fs.dir(a, "b");
        (fs, etc, passwd)
    }

    fn is_loop_error(e: &Error) -> bool {
        e.to_string().contains("too many levels of symbolic links")
    }

    #[test]
    fn symlink_loop_a_to_b_to_a_is_refused_after_the_hop_limit() {
        let (mut fs, _, _) = image();
        fs.link(1, "a1", "/b1");
        fs.link(1, "b1", "a1");
        let e = resolve(&mut fs, b"/a1", true).unwrap_err();
        assert!(is_loop_error(&e), "{e}");
        // Through the loop in the middle of a path, too.
        let e = resolve(&mut fs, b"/a1/x", false).unwrap_err();
        assert!(is_loop_error(&e), "{e}");
        // Not following the last component never reads the loop.
        assert!(resolve(&mut fs, b"/a1", false).is_ok());
    }

    #[test]
    fn self_referencing_symlink_is_refused() {
        let (mut fs, _, _) = image();
        fs.link(1, "me", "me");
        assert!(is_loop_error(&resolve(&mut fs, b"/me", true).unwrap_err()));
    }

    #[test]
    fn dotdot_at_the_root_stays_at_the_root() {
        let (mut fs, etc, passwd) = image();
        assert_eq!(resolve(&mut fs, b"/..", true).unwrap(), 1);
        assert_eq!(resolve(&mut fs, b"../../..", true).unwrap(), 1);
        assert_eq!(resolve(&mut fs, b"/../../etc", true).unwrap(), etc);
        assert_eq!(
            resolve(&mut fs, b"/etc/../../../../etc/passwd", true).unwrap(),
            passwd
        );
    }

    #[test]
    fn absolute_symlink_resolves_inside_the_image() {
        let (mut fs, _, passwd) = image();
        let a = resolve(&mut fs, b"/a", true).unwrap();
        fs.link(a, "abs", "/etc/passwd");
        assert_eq!(resolve(&mut fs, b"/a/abs", true).unwrap(), passwd);
        // An absolute symlink to a directory, then more components.
        fs.link(1, "e", "/etc");
        assert_eq!(resolve(&mut fs, b"/e/passwd", false).unwrap(), passwd);
    }

    #[test]
    fn relative_symlink_climbing_out_stops_at_the_image_root() {
        let (mut fs, _, passwd) = image();
        let b = resolve(&mut fs, b"/a/b", true).unwrap();
        fs.link(b, "up", "../../../../../../../../etc/passwd");
        assert_eq!(resolve(&mut fs, b"/a/b/up", true).unwrap(), passwd);
    }

    #[test]
    fn relative_symlink_is_taken_from_its_own_directory() {
        let (mut fs, _, _) = image();
        let a = resolve(&mut fs, b"/a", true).unwrap();
        let b = resolve(&mut fs, b"/a/b", true).unwrap();
        fs.link(a, "rel", "b");
        assert_eq!(resolve(&mut fs, b"/a/rel", true).unwrap(), b);
        // `..` after a symlink leaves the symlink's target, not the symlink (as on Linux).
        fs.link(1, "deep", "a/b");
        assert_eq!(resolve(&mut fs, b"/deep/..", true).unwrap(), a);
    }

    /// `/s1` -> `/s2` -> ... -> `/s{n}` -> `/etc/passwd`: resolving `/s1` takes `n` hops.
    fn chain(n: u32) -> (MemFs, Ino) {
        let (mut fs, _, passwd) = image();
        for i in 1..=n {
            let next = if i == n {
                "/etc/passwd".to_string()
            } else {
                format!("/s{}", i + 1)
            };
            fs.link(1, &format!("s{i}"), &next);
        }
        (fs, passwd)
    }

    #[test]
    fn forty_symlink_hops_are_followed_as_on_linux() {
        let (mut fs, passwd) = chain(MAX_SYMLINK_HOPS);
        assert_eq!(MAX_SYMLINK_HOPS, 40);
        assert_eq!(resolve(&mut fs, b"/s1", true).unwrap(), passwd);
    }

    #[test]
    fn forty_one_symlink_hops_are_refused() {
        let (mut fs, _) = chain(MAX_SYMLINK_HOPS + 1);
        assert!(is_loop_error(&resolve(&mut fs, b"/s1", true).unwrap_err()));
        // One hop fewer from the second link works: the limit counts hops, not links.
        assert!(resolve(&mut fs, b"/s2", true).is_ok());
    }

    #[test]
    fn hops_are_counted_over_the_whole_path() {
        // 21 hops to reach a directory, then 20 more from there: 41 in one path.
        let (mut fs, _, _) = image();
        for i in 1..=21 {
            let next = if i == 21 {
                "/a".to_string()
            } else {
                format!("/d{}", i + 1)
            };
            fs.link(1, &format!("d{i}"), &next);
        }
        let a = resolve(&mut fs, b"/a", true).unwrap();
        for i in 1..=20 {
            let next = if i == 20 {
                "/etc".to_string()
            } else {
                format!("/a/f{}", i + 1)
            };
            fs.link(a, &format!("f{i}"), &next);
        }
        assert!(resolve(&mut fs, b"/d2/f1", true).is_ok()); // 20 + 20 = 40
        assert!(is_loop_error(
            &resolve(&mut fs, b"/d1/f1", true).unwrap_err()
        ));
    }

    #[test]
    fn trailing_slash_names_a_directory() {
        let (mut fs, etc, _) = image();
        assert_eq!(resolve(&mut fs, b"/etc/", false).unwrap(), etc);
        assert_eq!(resolve(&mut fs, b"/etc///", false).unwrap(), etc);
        assert_eq!(resolve(&mut fs, b"/etc/.", false).unwrap(), etc);
        // A regular file with a trailing slash is "not a directory", as on Linux.
        for p in [&b"/etc/passwd/"[..], b"/etc/passwd/.", b"/etc/passwd/.."] {
            let e = resolve(&mut fs, p, true).unwrap_err();
            assert!(e.to_string().contains("not a directory"), "{e}");
        }
        // A trailing slash follows a final symlink even when the caller does not.
        let l = fs.link(1, "etclink", "/etc");
        assert_eq!(resolve(&mut fs, b"/etclink", false).unwrap(), l);
        assert_eq!(resolve(&mut fs, b"/etclink/", false).unwrap(), etc);
    }

    #[test]
    fn empty_and_dot_components_are_ignored() {
        let (mut fs, etc, passwd) = image();
        assert_eq!(resolve(&mut fs, b"//etc////passwd", true).unwrap(), passwd);
        assert_eq!(resolve(&mut fs, b"/./etc/./passwd", true).unwrap(), passwd);
        assert_eq!(resolve(&mut fs, b"etc/passwd", true).unwrap(), passwd);
        assert_eq!(resolve(&mut fs, b"", true).unwrap(), 1);
        assert_eq!(resolve(&mut fs, b".", true).unwrap(), 1);
        assert_eq!(resolve(&mut fs, b"/./", true).unwrap(), 1);
        assert_eq!(resolve(&mut fs, b"./etc/", true).unwrap(), etc);
    }

    #[test]
    fn a_file_in_the_middle_of_a_path_is_not_a_directory() {
        let (mut fs, _, _) = image();
        let e = resolve(&mut fs, b"/etc/passwd/x", true).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        let e = resolve(&mut fs, b"/etc/missing", true).unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e}");
    }

    #[test]
    fn overlong_paths_are_refused() {
        let (mut fs, _, _) = image();
        let p = vec![b'/'; MAX_PATH + 1];
        assert!(resolve(&mut fs, &p, true).is_err());
        assert!(resolve(&mut fs, &p[..MAX_PATH], true).is_ok());
    }

    #[test]
    fn check_name_refuses_what_is_not_one_component() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0b", &[b'x'; 256]] {
            assert!(check_name(bad).is_err(), "{:?}", display(bad));
        }
        for good in [
            &b"a"[..],
            b"...",
            b"\x1b[31m",
            b"new\nline",
            b"\xff\xfe",
            &[b'x'; 255],
        ] {
            assert!(check_name(good).is_ok(), "{:?}", display(good));
        }
    }

    #[test]
    fn display_escaped_shows_control_characters_and_bad_utf8_as_escapes() {
        assert_eq!(display_escaped(b"a\x1b[2J\r\nb"), "a\\u{1b}[2J\\r\\nb");
        assert_eq!(display_escaped(b"bad\xff\xfe"), "bad\\xff\\xfe");
        assert_eq!(display_escaped("ünï/cöde ok".as_bytes()), "ünï/cöde ok");
        assert!(display_escaped(b"\x01\x07\x7f\x9b")
            .chars()
            .all(|c| !c.is_control()));
    }

    #[test]
    fn resolve_parent_refuses_root_dot_and_dotdot() {
        let (mut fs, etc, _) = image();
        for p in [&b"/"[..], b"/etc/..", b"/etc/.", b""] {
            assert!(resolve_parent(&mut fs, p).is_err(), "{:?}", display(p));
        }
        assert_eq!(
            resolve_parent(&mut fs, b"/etc/new/").unwrap(),
            (etc, b"new".to_vec())
        );
    }
}
