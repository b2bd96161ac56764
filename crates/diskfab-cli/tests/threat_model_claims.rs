//! One test per copy-out rule of docs/threat-model.md ("Hostile names on copy-out",
//! "Privilege carried out of an image", "Symlinks inside the image"). Every image is made by
//! the reference tool (`mke2fs -d` from a host tree); names a host tree cannot hold (`/`
//! inside a name, a regular file called `..`, duplicate names) are made by writing a
//! placeholder of the same length and patching its bytes in the image file. Those images are
//! hostile on purpose: e2fsck would complain, debugfs shows the hostile entries.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch directory `T` (mode 0755, so an unprivileged user can reach it) holding
/// `T/tree` (the host tree), `T/img` (the image), `T/out` (the copy-out target, mode 0777) and
/// `T/elsewhere` (a directory hostile entries try to reach).
struct Case {
    _tmp: tempfile::TempDir,
    t: PathBuf,
}

impl Case {
    fn new() -> Case {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path().to_path_buf();
        fs::set_permissions(&t, fs::Permissions::from_mode(0o755)).unwrap();
        for d in ["tree", "out", "elsewhere"] {
            fs::create_dir(t.join(d)).unwrap();
        }
        fs::set_permissions(t.join("out"), fs::Permissions::from_mode(0o777)).unwrap();
        fs::set_permissions(t.join("elsewhere"), fs::Permissions::from_mode(0o777)).unwrap();
        Case { _tmp: tmp, t }
    }
    fn tree(&self) -> PathBuf {
        self.t.join("tree")
    }
    fn img(&self) -> PathBuf {
        self.t.join("img")
    }
    fn out(&self) -> PathBuf {
        self.t.join("out")
    }
    fn elsewhere(&self) -> PathBuf {
        self.t.join("elsewhere")
    }

    /// `mke2fs -d tree img`. `patchable` turns off metadata checksums so directory blocks can
    /// be patched afterwards (a checksummed block would be refused before any name is seen).
    fn mkfs(&self, patchable: bool) {
        let img = self.img();
        let tree = self.tree();
        let mut args = vec!["-q", "-F", "-t", "ext4"];
        if patchable {
            args.extend(["-O", "^metadata_csum"]);
        }
        args.extend(["-d", tree.to_str().unwrap(), img.to_str().unwrap(), "16M"]);
        tool("mke2fs", &args);
        fs::set_permissions(&img, fs::Permissions::from_mode(0o644)).unwrap();
    }

    /// Runs `diskfab copy-out T/img SRC T/out`, as root or as `nobody` (uid/gid 65534).
    fn copy_out(&self, src: &str, as_nobody: bool) -> Output {
        let img = self.img();
        let out = self.out();
        let args = [
            "copy-out",
            img.to_str().unwrap(),
            src,
            out.to_str().unwrap(),
        ];
        let bin = env!("CARGO_BIN_EXE_diskfab");
        let mut cmd = if as_nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
            c
        } else {
            Command::new(bin)
        };
        cmd.args(args).output().expect("run diskfab")
    }

    /// Everything in `T` except `T/out`: (type, mode, size, owner, link target, content hash).
    fn outside(&self) -> BTreeMap<PathBuf, String> {
        let mut m = BTreeMap::new();
        walk(&self.t, &self.t, &mut |rel, md, p| {
            if rel.starts_with("out/") || rel == Path::new("out") {
                return;
            }
            m.insert(rel.to_path_buf(), describe(md, p));
        });
        m
    }
}

fn describe(md: &fs::Metadata, p: &Path) -> String {
    let extra = if md.file_type().is_symlink() {
        format!("{:?}", fs::read_link(p).unwrap())
    } else if md.is_file() {
        // Names may not be UTF-8 (so no sha256sum); the content itself is compared.
        format!("{:?}", fs::read(p).unwrap())
    } else {
        String::new()
    };
    format!(
        "{:o} {} {}:{} {extra}",
        md.mode(),
        md.len(),
        md.uid(),
        md.gid()
    )
}

/// Walks `dir` without following symlinks; calls `f(relative path, lstat, path)`.
fn walk(root: &Path, dir: &Path, f: &mut dyn FnMut(&Path, &fs::Metadata, &Path)) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let md = fs::symlink_metadata(&p).unwrap();
        f(p.strip_prefix(root).unwrap(), &md, &p);
        if md.is_dir() {
            walk(root, &p, f);
        }
    }
}

/// Every node under `dir`: relative path → lstat.
fn listing(dir: &Path) -> BTreeMap<PathBuf, fs::Metadata> {
    let mut m = BTreeMap::new();
    walk(dir, dir, &mut |rel, md, _| {
        m.insert(rel.to_path_buf(), md.clone());
    });
    m
}

/// The offset of the only directory entry called `name` with file type `ftype`: the position
/// of its name_len byte (followed by file_type and the name, as in an ext4 directory block).
fn find_entry(data: &[u8], name: &[u8], ftype: u8) -> usize {
    let mut pat = vec![name.len() as u8, ftype];
    pat.extend_from_slice(name);
    let hits: Vec<usize> = data
        .windows(pat.len())
        .enumerate()
        .filter(|(_, w)| *w == &pat[..])
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "placeholder {:?} is not unique",
        String::from_utf8_lossy(name)
    );
    hits[0]
}

/// Renames the only directory entry `from` to `to` (as long) by patching the image file.
fn patch_name(img: &Path, from: &[u8], ftype: u8, to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut data = fs::read(img).unwrap();
    let at = find_entry(&data, from, ftype) + 2;
    data[at..at + to.len()].copy_from_slice(to);
    fs::write(img, data).unwrap();
}

/// `debugfs -R CMD img` (the reference tool's view of a hostile image).
fn debugfs(img: &Path, cmd: &str) -> String {
    let o = Command::new("debugfs")
        .args(["-R", cmd, img.to_str().unwrap()])
        .output()
        .expect("debugfs (e2fsprogs) is required");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const FT_REG: u8 = 1;
const FT_DIR: u8 = 2;

#[test]
fn names_with_slash_or_dotdot_never_create_anything_outside_the_target() {
    let c = Case::new();
    let marker = format!("diskfab-escape-{}", std::process::id());
    // 16 × "../" climbs from T/out/root/sub past `/`, then into /tmp.
    let slash_name = format!("{}tmp/{marker}", "../".repeat(16));
    let slash_ph = "P".repeat(slash_name.len());
    let sub = c.tree().join("sub");
    fs::create_dir(&sub).unwrap();
    fs::write(sub.join(&slash_ph), "SLASH-CONTENT").unwrap();
    fs::write(sub.join("Qz"), "DOTDOT-CONTENT").unwrap(); // becomes `..`, a regular file
    fs::write(sub.join("Q"), "DOT-CONTENT").unwrap(); // becomes `.`, a regular file
    fs::write(sub.join("ok.txt"), "fine").unwrap();
    c.mkfs(true);
    patch_name(&c.img(), slash_ph.as_bytes(), FT_REG, slash_name.as_bytes());
    patch_name(&c.img(), b"Qz", FT_REG, b"..");
    patch_name(&c.img(), b"Q", FT_REG, b".");
    // The reference tool sees the hostile entries: two `..`, two `.`, a name with slashes.
    let ls = debugfs(&c.img(), "ls -p /sub");
    assert!(
        ls.contains(&format!("/100644/0/0/{slash_name}/13/")),
        "{ls}"
    );
    assert!(ls.contains("/100644/0/0/../14/"), "{ls}");
    assert!(ls.contains("/100644/0/0/./11/"), "{ls}");

    let before = c.outside();
    let o = c.copy_out("/", false);
    // Skip with a warning, copy the rest, exit 0.
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("skipped: /sub: bad name") && err.contains(&marker),
        "the slash name is reported: {err}"
    );
    assert_eq!(fs::read(c.out().join("root/sub/ok.txt")).unwrap(), b"fine");
    assert_eq!(c.outside(), before, "something changed outside the target");
    assert!(!Path::new("/tmp").join(&marker).exists());
    // No hostile entry's content landed anywhere under the target either.
    for (rel, md) in listing(&c.out()) {
        if md.is_file() {
            let data = fs::read(c.out().join(&rel)).unwrap();
            assert!(
                !data.ends_with(b"-CONTENT"),
                "{rel:?} holds a hostile entry's data"
            );
        }
    }
}

#[test]
fn names_with_control_characters_invalid_utf8_and_255_bytes_are_copied_byte_for_byte() {
    let c = Case::new();
    let long = vec![b'n'; 255];
    let names: Vec<&[u8]> = vec![
        b"new\nline",
        b"esc\x1b[31mred",
        b"soh\x01",
        b"bad\xff\xfeutf8",
        &long,
    ];
    for n in &names {
        fs::write(c.tree().join(std::ffi::OsStr::from_bytes(n)), n).unwrap();
    }
    c.mkfs(false);
    let before = c.outside();
    let o = c.copy_out("/", false);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for n in &names {
        let p = c.out().join("root").join(std::ffi::OsStr::from_bytes(n));
        assert_eq!(&fs::read(&p).unwrap(), n, "{p:?}");
    }
    assert_eq!(c.outside(), before);
}

#[test]
fn warnings_about_hostile_names_never_print_raw_control_characters() {
    let c = Case::new();
    // Device nodes are skipped with a warning that names them: the name clears the screen.
    let name = "dev\x1b[2J\x1b]0;owned\x07\rclear";
    tool(
        "mknod",
        &[c.tree().join(name).to_str().unwrap(), "c", "1", "3"],
    );
    c.mkfs(false);
    let o = c.copy_out("/", false);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("not copied out"), "{err}");
    assert!(
        !o.stderr.iter().any(|&b| b < 0x20 && b != b'\n'),
        "raw control bytes on stderr: {err:?}"
    );
    assert!(
        err.contains(r"\u{1b}[2J"),
        "the name is shown escaped: {err}"
    );
}

/// A tree with setuid/setgid files, a foreign owner, a sticky directory, device nodes and a
/// fifo, as a root-made template would carry.
fn privileged_case() -> Case {
    let c = Case::new();
    let t = c.tree();
    for (name, mode) in [("suid", 0o4755), ("sgid", 0o2755), ("both", 0o6711)] {
        fs::write(t.join(name), "#!/bin/sh\n").unwrap();
        fs::set_permissions(t.join(name), fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::write(t.join("owned"), "x").unwrap();
    std::os::unix::fs::chown(t.join("owned"), Some(1234), Some(5678)).unwrap();
    fs::create_dir(t.join("tmp")).unwrap();
    fs::set_permissions(t.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::create_dir(t.join("dev")).unwrap();
    tool(
        "mknod",
        &[t.join("dev/sda").to_str().unwrap(), "b", "8", "0"],
    );
    tool(
        "mknod",
        &[t.join("dev/mem").to_str().unwrap(), "c", "1", "1"],
    );
    tool("mkfifo", &[t.join("fifo").to_str().unwrap()]);
    c.mkfs(false);
    // The image really carries the bits (reference tool's view).
    let st = debugfs(&c.img(), "stat /suid");
    assert!(st.contains("Mode:  04755"), "{st}");
    let st = debugfs(&c.img(), "stat /dev/sda");
    assert!(st.contains("Type: block special"), "{st}");
    c
}

fn perm(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn assert_no_device_nodes(out: &Path) {
    for (rel, md) in listing(out) {
        let ft = md.file_type();
        assert!(
            !ft.is_block_device() && !ft.is_char_device(),
            "device node created on the host: {rel:?}"
        );
    }
}

#[test]
fn setuid_and_setgid_bits_are_dropped_for_a_non_root_user() {
    let c = privileged_case();
    let o = c.copy_out("/", true);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = c.out().join("root");
    assert_eq!(perm(&r.join("suid")), 0o755);
    assert_eq!(perm(&r.join("sgid")), 0o755);
    assert_eq!(perm(&r.join("both")), 0o711);
    assert_eq!(
        perm(&r.join("tmp")),
        0o1777,
        "the sticky bit is harmless and kept"
    );
    // Files belong to the user who ran the copy, not to the image's owners.
    let md = fs::symlink_metadata(r.join("owned")).unwrap();
    assert_eq!((md.uid(), md.gid()), (65534, 65534));
    assert_no_device_nodes(&c.out());
    let err = stderr(&o);
    assert!(
        err.contains("/dev/sda: device node or socket not copied out")
            && err.contains("/dev/mem: device node or socket not copied out"),
        "{err}"
    );
}

#[test]
fn as_root_owners_and_setuid_are_kept_but_device_nodes_are_never_created() {
    let c = privileged_case();
    let o = c.copy_out("/", false);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = c.out().join("root");
    assert_eq!(perm(&r.join("suid")), 0o4755);
    assert_eq!(perm(&r.join("sgid")), 0o2755);
    assert_eq!(perm(&r.join("both")), 0o6711);
    let md = fs::symlink_metadata(r.join("owned")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    assert_no_device_nodes(&c.out());
    assert!(r.join("dev").is_dir());
    assert!(fs::read_dir(r.join("dev")).unwrap().next().is_none());
    // A fifo is not a device: it is recreated (owner-only until the image's mode is applied).
    let fifo = fs::symlink_metadata(r.join("fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
}

#[test]
fn symlinks_pointing_out_of_the_image_are_copied_as_symlinks_and_never_followed() {
    let c = Case::new();
    let t = c.tree();
    fs::create_dir_all(t.join("etc/sub")).unwrap();
    let elsewhere = c.elsewhere();
    let targets = [
        ("etc/sub/rel", "../../../../../../etc/passwd".to_string()),
        ("etc/abs", "/etc/passwd".to_string()),
        ("etc/host_dir", elsewhere.to_str().unwrap().to_string()),
        ("etc/host_file", format!("{}/planted", elsewhere.display())),
    ];
    for (l, target) in &targets {
        std::os::unix::fs::symlink(target, t.join(l)).unwrap();
    }
    c.mkfs(false);
    let before = c.outside();
    let o = c.copy_out("/etc", false);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for (l, target) in &targets {
        let p = c.out().join(l);
        let md = fs::symlink_metadata(&p).unwrap();
        assert!(md.file_type().is_symlink(), "{p:?} is not a symlink");
        assert_eq!(fs::read_link(&p).unwrap(), Path::new(target));
    }
    assert_eq!(c.outside(), before);
    assert!(fs::read_dir(&elsewhere).unwrap().next().is_none());
}

#[test]
fn a_directory_or_file_with_the_same_name_as_a_symlink_is_never_written_through_it() {
    // A hostile directory holds three entries called LINKNAME: a symlink to T/elsewhere, a
    // directory with a file in it and a regular file; and two called FILELINK: a symlink to
    // T/elsewhere/planted and a regular file. A copy that followed the symlinks would write
    // into T/elsewhere.
    let c = Case::new();
    let t = c.tree();
    let ew = c.elsewhere();
    std::os::unix::fs::symlink(&ew, t.join("LINKNAMEAAAAAAAA")).unwrap();
    fs::create_dir(t.join("LINKNAMEBBBBBBBB")).unwrap();
    fs::write(t.join("LINKNAMEBBBBBBBB/planted"), "PWNED").unwrap();
    fs::write(t.join("LINKNAMECCCCCCCC"), "PWNED").unwrap();
    std::os::unix::fs::symlink(ew.join("planted"), t.join("FILELINKAAAAAAAA")).unwrap();
    fs::write(t.join("FILELINKBBBBBBBB"), "PWNED").unwrap();
    c.mkfs(true);
    patch_name(&c.img(), b"LINKNAMEBBBBBBBB", FT_DIR, b"LINKNAMEAAAAAAAA");
    patch_name(&c.img(), b"LINKNAMECCCCCCCC", FT_REG, b"LINKNAMEAAAAAAAA");
    patch_name(&c.img(), b"FILELINKBBBBBBBB", FT_REG, b"FILELINKAAAAAAAA");
    let ls = debugfs(&c.img(), "ls -p /");
    assert_eq!(ls.matches("/LINKNAMEAAAAAAAA/").count(), 3, "{ls}");
    assert_eq!(ls.matches("/FILELINKAAAAAAAA/").count(), 2, "{ls}");

    let before = c.outside();
    let o = c.copy_out("/", false);
    // Whatever order the entries come in, nothing is written through the symlinks.
    assert_eq!(c.outside(), before, "{}", stderr(&o));
    assert!(fs::read_dir(&ew).unwrap().next().is_none());
    assert!(
        !o.status.success() || stderr(&o).contains("skipped"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_existing_host_symlink_in_the_target_is_never_followed() {
    let c = Case::new();
    let t = c.tree();
    fs::create_dir(t.join("etc")).unwrap();
    fs::write(t.join("etc/hostname"), "guest\n").unwrap();
    fs::write(t.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    c.mkfs(false);
    let ew = c.elsewhere();
    // T/out/etc -> T/elsewhere: copying the directory /etc must not write into T/elsewhere.
    std::os::unix::fs::symlink(&ew, c.out().join("etc")).unwrap();
    let before = c.outside();
    let o = c.copy_out("/etc", false);
    assert!(
        !o.status.success(),
        "copy-out followed or replaced a host symlink"
    );
    let err = stderr(&o);
    assert!(
        err.contains("out/etc: exists and is not a directory"),
        "{err}"
    );
    assert!(fs::symlink_metadata(c.out().join("etc"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(c.outside(), before);
    assert!(fs::read_dir(&ew).unwrap().next().is_none());

    // T/out/hostname -> T/elsewhere/hostname: the file is created in place of the link
    // (O_NOFOLLOW | O_EXCL), T/elsewhere/hostname never appears.
    std::os::unix::fs::symlink(ew.join("hostname"), c.out().join("hostname")).unwrap();
    let o = c.copy_out("/etc/hostname", false);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let md = fs::symlink_metadata(c.out().join("hostname")).unwrap();
    assert!(md.is_file());
    assert_eq!(fs::read(c.out().join("hostname")).unwrap(), b"guest\n");
    assert!(!ew.join("hostname").exists());
    assert_eq!(c.outside(), before);
}

fn xattrs(p: &Path) -> String {
    tool(
        "getfattr",
        &["-h", "-d", "-m", "-", "-e", "text", p.to_str().unwrap()],
    )
}

#[test]
fn capability_trusted_and_security_xattrs_are_not_copied_out_only_user_xattrs_are() {
    let c = Case::new();
    let f = c.tree().join("ping");
    fs::write(&f, "\x7fELF").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).unwrap();
    let fp = f.to_str().unwrap();
    tool("setcap", &["cap_net_raw,cap_sys_admin+ep", fp]);
    tool("setfattr", &["-n", "user.note", "-v", "hello", fp]);
    tool("setfattr", &["-n", "trusted.overlay.opaque", "-v", "y", fp]);
    tool("setfattr", &["-n", "security.evil", "-v", "x", fp]);
    c.mkfs(false);
    // The image carries all four (reference tool's view).
    let ea = debugfs(&c.img(), "ea_list /ping");
    for k in [
        "security.capability",
        "user.note",
        "trusted.overlay.opaque",
        "security.evil",
    ] {
        assert!(ea.contains(k), "{k} missing from the image: {ea}");
    }
    // As root (who could set every namespace on the host) and as a user.
    for nobody in [false, true] {
        let o = c.copy_out("/ping", nobody);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let out = c.out().join("ping");
        let x = xattrs(&out);
        assert!(x.contains("user.note=\"hello\""), "{x}");
        for k in ["security.capability", "trusted.", "security.evil"] {
            assert!(
                !x.contains(k),
                "{k} was copied out (as nobody: {nobody}): {x}"
            );
        }
        assert!(tool("getcap", &[out.to_str().unwrap()]).trim().is_empty());
        fs::remove_file(&out).unwrap();
    }
}

/// Points the directory entry `name` (a directory) at inode `ino`: a directory hard link.
fn patch_entry_inode(img: &Path, name: &[u8], ino: u32) {
    let mut data = fs::read(img).unwrap();
    let at = find_entry(&data, name, FT_DIR) - 6; // inode (4 bytes), rec_len (2), name_len
    data[at..at + 4].copy_from_slice(&ino.to_le_bytes());
    fs::write(img, data).unwrap();
}

#[test]
fn a_directory_linked_to_its_ancestor_stops_copy_out_and_ls_with_exit_3() {
    let c = Case::new();
    fs::create_dir_all(c.tree().join("a/LOOPDIRAAAAAAAAA")).unwrap();
    fs::write(c.tree().join("a/file"), "x").unwrap();
    c.mkfs(true);
    patch_entry_inode(&c.img(), b"LOOPDIRAAAAAAAAA", 2); // -> the root directory
    let ls = debugfs(&c.img(), "ls -p /a/LOOPDIRAAAAAAAAA");
    assert!(ls.contains("/a/"), "the loop leads back to the root: {ls}");

    let before = c.outside();
    let o = c.copy_out("/", false);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("/a/LOOPDIRAAAAAAAAA: directory loop"), "{err}");
    assert!(listing(&c.out()).len() < 10, "the loop was walked into");
    assert_eq!(c.outside(), before);

    let o = diskfab(&["ls", "-R", c.img().to_str().unwrap(), "/"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}
