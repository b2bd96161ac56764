//! The backing/data-file trust policy, against images made by qemu-img: raw bytes (any host
//! file) open only with explicit trust or diskfab's trust mark, structured images open from
//! anywhere, and devices, FIFOs, sockets, pseudo files and loops never open.

use diskfab_image::header::NewHeader;
use diskfab_image::overlay::{write_overlay, OverlaySpec};
use diskfab_image::trust::{load_key, TrustKey, EXT_TRUST_MARK};
use diskfab_image::{clone_many, create, BackingGate, CreateOptions, Format, Image, OpenOptions};
use diskfab_storage::Error;
use std::path::{Path, PathBuf};

mod common;
use common::{read_all, run, s};

const SECRET: &[u8] = b"root:$6$not-a-real-hash:19000:0:99999:7:::\n";

fn open_with(p: &Path, gate: BackingGate) -> diskfab_storage::Result<Image> {
    Image::open(
        p,
        &OpenOptions {
            writable: false,
            gate,
        },
    )
}

fn dirs(d: &[&Path]) -> BackingGate {
    BackingGate {
        allow_dirs: d.iter().map(|p| p.to_path_buf()).collect(),
        ..Default::default()
    }
}

fn any() -> BackingGate {
    BackingGate {
        allow_any: true,
        ..Default::default()
    }
}

/// An overlay made by qemu-img naming `backing` (stored as given) with format `fmt`.
fn qemu_overlay(p: &Path, backing: &str, fmt: &str) -> PathBuf {
    let _ = std::fs::remove_file(p);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-u",
            "-b",
            backing,
            "-F",
            fmt,
            s(p),
            "1M",
        ],
    );
    p.to_path_buf()
}

/// A "secret": a plain host file of 1 MiB holding [`SECRET`] at its start.
fn secret(dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    let mut v = SECRET.to_vec();
    v.resize(1 << 20, b'#');
    std::fs::write(&p, v).unwrap();
    p
}

fn denied(p: &Path, gate: BackingGate) -> String {
    let e = open_with(p, gate).expect_err("opened");
    assert!(matches!(e, Error::Denied(_)), "not a policy refusal: {e}");
    assert_eq!(e.exit_code(), 6);
    e.to_string()
}

#[test]
fn raw_backing_secrets_are_refused_wherever_the_overlay_sits_unless_trusted() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let sec = secret(&home.join(".ssh"), "id_rsa");
    // Next to the secret's directory, in its parent, deep below: the old "image dir or its
    // parent" allowance covered the first two.
    for (over, name) in [
        (home.join(".ssh/x.qcow2"), "id_rsa".to_string()),
        (home.join("x.qcow2"), s(&sec).to_string()),
        (
            home.join("Downloads/a/b/x.qcow2"),
            "../../../.ssh/id_rsa".into(),
        ),
        (t.path().join("x.qcow2"), "home/.ssh/id_rsa".into()),
    ] {
        let p = qemu_overlay(&over, &name, "raw");
        let m = denied(&p, BackingGate::default());
        for want in [
            s(&p),
            &name,
            s(&sec),
            "--backing-dir",
            "DISKFAB_BACKING_DIRS",
            "--allow-any-backing",
            "trust mark",
        ] {
            assert!(m.contains(want), "{want:?} missing: {m}");
        }
        assert!(!m.contains("not-a-real-hash"), "secret in the message: {m}");
        // Explicit trust opens it (and it is exactly the file's bytes).
        for g in [dirs(&[&home.join(".ssh")]), dirs(&[&home]), any()] {
            let img = open_with(&p, g).unwrap();
            assert!(read_all(&img).starts_with(SECRET));
        }
        // An allowed directory elsewhere does not.
        denied(&p, dirs(&[&home.join("Downloads")]));
    }
    let p = qemu_overlay(&t.path().join("shadow.qcow2"), "/etc/shadow", "raw");
    if Path::new("/etc/shadow").is_file() {
        denied(&p, BackingGate::default());
    }
}

#[test]
fn a_symlink_named_like_an_image_is_judged_by_the_file_it_leads_to() {
    let t = tempfile::tempdir().unwrap();
    let sec = secret(&t.path().join("private"), "token");
    let imgs = t.path().join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    std::os::unix::fs::symlink(&sec, imgs.join("base.qcow2")).unwrap();
    let p = qemu_overlay(&imgs.join("x.qcow2"), "base.qcow2", "qcow2");
    let m = denied(&p, dirs(&[&imgs]));
    assert!(m.contains(s(&sec)), "{m}");
    // Trusting the secret's real directory lets it be read, as what it is: not a qcow2.
    let e = open_with(&p, dirs(&[&t.path().join("private")])).expect_err("not a qcow2");
    assert!(matches!(e, Error::BadImage(_)), "{e}");
    assert!(!e.to_string().contains("not-a-real-hash"));
}

#[test]
fn fifos_sockets_devices_directories_and_proc_files_are_refused_even_with_allow_any() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    run("mkfifo", &[s(&d.join("fifo"))]);
    let _sock = std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
    std::fs::create_dir(d.join("dir")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.join("zero.img")).unwrap();
    for (target, why) in [
        (s(&d.join("fifo")), "FIFO"),
        (s(&d.join("sock")), "socket"),
        ("/dev/zero", "device"),
        (s(&d.join("zero.img")), "device"),
        (s(&d.join("dir")), "directory"),
        ("/proc/self/environ", "procfs"),
        ("/proc/self/mem", "procfs"),
        ("/sys/kernel/uevent_seqnum", "sysfs"),
    ] {
        if !Path::new(target).exists() {
            continue;
        }
        let p = qemu_overlay(&d.join("x.qcow2"), target, "raw");
        for g in [any(), dirs(&[Path::new("/")])] {
            let m = denied(&p, g);
            assert!(m.contains(why), "{target}: wrong reason: {m}");
        }
    }
}

#[test]
fn chain_loops_and_self_references_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let a = qemu_overlay(&d.join("a.qcow2"), "b.qcow2", "qcow2");
    qemu_overlay(&d.join("b.qcow2"), "a.qcow2", "qcow2");
    let m = denied(&a, any());
    assert!(m.contains("loop"), "{m}");
    let selfref = qemu_overlay(&d.join("self.qcow2"), "self.qcow2", "qcow2");
    assert!(denied(&selfref, any()).contains("loop"));
    // Through a symlink and a `..` detour: still the same file, still a loop.
    std::fs::create_dir(d.join("sub")).unwrap();
    std::os::unix::fs::symlink(d.join("c.qcow2"), d.join("alias.qcow2")).unwrap();
    let c = qemu_overlay(&d.join("c.qcow2"), "sub/../alias.qcow2", "qcow2");
    assert!(denied(&c, any()).contains("loop"));
}

/// qemu-img's view of an image, as raw bytes.
fn qemu_raw(p: &Path) -> Vec<u8> {
    let out = p.with_extension("oracle");
    let _ = std::fs::remove_file(&out);
    run("qemu-img", &["convert", "-U", "-O", "raw", s(p), s(&out)]);
    std::fs::read(&out).unwrap()
}

#[test]
fn structured_backing_files_of_every_format_open_from_any_directory_without_flags() {
    let t = tempfile::tempdir().unwrap();
    let far = t.path().join("unrelated/place");
    for fmt in ["qcow2", "vmdk", "vdi", "vpc", "vhdx"] {
        let base = far.join(format!("base.{fmt}"));
        std::fs::create_dir_all(&far).unwrap();
        run("qemu-img", &["create", "-q", "-f", fmt, s(&base), "4M"]);
        run(
            "qemu-io",
            &["-f", fmt, "-c", "write -P 0x5c 64k 128k", s(&base)],
        );
        let p = qemu_overlay(
            &t.path().join(format!("elsewhere/{fmt}/x.qcow2")),
            s(&base),
            fmt,
        );
        let img = open_with(&p, BackingGate::default()).unwrap_or_else(|e| panic!("{fmt}: {e}"));
        assert_eq!(img.info().unwrap().chain[0].format.to_string(), fmt);
        let got = read_all(&img);
        assert!(got == qemu_raw(&p), "{fmt}: differs from qemu-img");
        assert!(got[64 << 10..192 << 10].iter().all(|&b| b == 0x5c));
        // Declared raw but structured: read as raw bytes, like QEMU.
        let r = qemu_overlay(
            &t.path().join(format!("raw/{fmt}/x.qcow2")),
            s(&base),
            "raw",
        );
        let img = open_with(&r, BackingGate::default()).unwrap_or_else(|e| panic!("{fmt}: {e}"));
        assert!(read_all(&img) == qemu_raw(&r), "{fmt} as raw");
    }
}

/// A raw base of 1 MiB with a pattern, in its own directory.
fn raw_base(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("base.raw");
    std::fs::write(&p, vec![0x3au8; 1 << 20]).unwrap();
    p
}

fn qemu_ok(p: &Path, base: &Path) {
    run("qemu-img", &["check", "-q", s(p)]);
    run("qemu-img", &["compare", "-q", s(p), s(base)]);
    let info = run("qemu-img", &["info", s(p)]);
    assert!(info.contains("backing file"), "{info}");
}

#[test]
fn overlays_diskfab_writes_of_a_raw_base_open_anywhere_without_flags_and_pass_qemu_img() {
    let t = tempfile::tempdir().unwrap();
    let base = raw_base(&t.path().join("images"));
    let out = t.path().join("srv/clones");
    std::fs::create_dir_all(&out).unwrap();
    let names = vec!["c-0001.qcow2".to_string(), "c-0002.qcow2".to_string()];
    let mut made = clone_many(&base, &out, &names, None).unwrap();
    let c = out.join("created.qcow2");
    create(
        &c,
        &CreateOptions {
            format: Format::Qcow2,
            backing: Some(base.clone()),
            backing_format: Some(Format::Raw),
            ..Default::default()
        },
    )
    .unwrap();
    made.push(c);
    let w = out.join("written.qcow2");
    let rel = diskfab_image::relative(&out, &base);
    let spec = OverlaySpec {
        size: 1 << 20,
        cluster_bits: 16,
        backing: s(&rel),
        backing_format: Format::Raw,
    };
    write_overlay(&w, &spec, [(0u64, &[0x3au8; 65536][..])]).unwrap();
    made.push(w);
    for p in &made {
        let img = open_with(p, BackingGate::default()).unwrap_or_else(|e| panic!("{e}"));
        assert!(read_all(&img) == vec![0x3au8; 1 << 20]);
        qemu_ok(p, &base);
    }
}

/// The bytes of the trust mark extension's payload in `img`, and where they are.
fn mark_at(img: &[u8]) -> usize {
    let magic = EXT_TRUST_MARK.to_be_bytes();
    let at = img[..4096]
        .windows(4)
        .position(|w| w == magic)
        .expect("no mark");
    assert_eq!(&img[at + 4..at + 8], &32u32.to_be_bytes());
    at + 8
}

#[test]
fn forged_copied_foreign_and_stale_trust_marks_count_as_no_mark() {
    let t = tempfile::tempdir().unwrap();
    let a = raw_base(&t.path().join("a"));
    let b = secret(&t.path().join("b"), "base.raw");
    let out = t.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mk = |name: &str, base: &Path| {
        let p = out.join(name);
        create(
            &p,
            &CreateOptions {
                format: Format::Qcow2,
                backing: Some(base.to_path_buf()),
                backing_format: Some(Format::Raw),
                ..Default::default()
            },
        )
        .unwrap();
        p
    };
    let pa = mk("a.qcow2", &a);
    let pb = mk("b.qcow2", &b);
    open_with(&pa, BackingGate::default()).unwrap();
    open_with(&pb, BackingGate::default()).unwrap();
    let (ba, mut bb) = (std::fs::read(&pa).unwrap(), std::fs::read(&pb).unwrap());
    let (ma, mb) = (mark_at(&ba), mark_at(&bb));
    // a's valid mark copied into b (same name length: a/ vs b/).
    bb[mb..mb + 32].copy_from_slice(&ba[ma..ma + 32]);
    std::fs::write(&pb, &bb).unwrap();
    assert!(denied(&pb, BackingGate::default()).contains("does not verify"));
    // A mark made with another key for exactly b's name, format and length.
    let other = TrustKey::from_bytes([7; 32]).mark(s(&b), "raw", 1 << 20);
    bb[mb..mb + 32].copy_from_slice(&other);
    std::fs::write(&pb, &bb).unwrap();
    denied(&pb, BackingGate::default());
    // Control: the same bytes with this user's key open (so the refusals above are the mark's).
    let good = load_key().unwrap().mark(s(&b), "raw", 1 << 20);
    bb[mb..mb + 32].copy_from_slice(&good);
    std::fs::write(&pb, &bb).unwrap();
    open_with(&pb, BackingGate::default()).unwrap();
    // A marked overlay whose backing name is edited (a/ -> b/) no longer verifies.
    let mut ea = ba.clone();
    let at = ea
        .windows(s(&a).len())
        .position(|w| w == s(&a).as_bytes())
        .unwrap();
    ea[at..at + s(&a).len()].copy_from_slice(s(&b).as_bytes());
    std::fs::write(&pa, &ea).unwrap();
    denied(&pa, BackingGate::default());
    // The marked base swapped for a file of another length (a symlink to a secret) neither.
    std::fs::write(&pa, &ba).unwrap();
    open_with(&pa, BackingGate::default()).unwrap();
    std::fs::remove_file(&a).unwrap();
    let s2 = secret(&t.path().join("c"), "s");
    std::fs::write(&s2, SECRET).unwrap();
    std::os::unix::fs::symlink(&s2, &a).unwrap();
    denied(&pa, BackingGate::default());
}

#[test]
fn overlay_image_marks_the_header_and_qemu_writes_keep_the_mark_valid() {
    let t = tempfile::tempdir().unwrap();
    let base = raw_base(&t.path().join("b"));
    let p = t.path().join("o.qcow2");
    let bytes = diskfab_image::trust::overlay_image(
        t.path(),
        &NewHeader {
            cluster_bits: 16,
            size: 1 << 20,
            backing: Some(s(&base)),
            backing_format: Some("raw"),
            zstd: false,
            extended_l2: false,
            trust_mark: None,
        },
    )
    .unwrap();
    std::fs::write(&p, &bytes).unwrap();
    let h = diskfab_image::parse_qcow2_header(&bytes).unwrap();
    assert!(h.trust_mark.is_some());
    // QEMU writes into the overlay (rewriting its header); the mark survives and verifies.
    run("qemu-io", &["-c", "write -P 0x44 0 64k", s(&p)]);
    run("qemu-img", &["check", "-q", s(&p)]);
    let after = std::fs::read(&p).unwrap();
    assert_eq!(
        diskfab_image::parse_qcow2_header(&after)
            .unwrap()
            .trust_mark,
        h.trust_mark
    );
    let img = open_with(&p, BackingGate::default()).unwrap();
    let v = read_all(&img);
    assert!(v[..65536].iter().all(|&x| x == 0x44) && v[65536..].iter().all(|&x| x == 0x3a));
}

#[test]
fn data_files_are_raw_and_need_trust_even_next_to_the_image() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("imgs");
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("x.qcow2");
    // This QEMU resolves a relative data file name against its working directory.
    let st = std::process::Command::new("qemu-img")
        .current_dir(&d)
        .args([
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "data_file=x.data",
            s(&p),
            "1M",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let m = denied(&p, BackingGate::default());
    assert!(
        m.contains("external data file") && m.contains("--backing-dir") && m.contains("x.data"),
        "{m}"
    );
    open_with(&p, dirs(&[&d])).unwrap();
    open_with(&p, any()).unwrap();
}

#[test]
fn differencing_vhd_and_vhdx_backing_files_are_not_structured_and_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("far");
    std::fs::create_dir_all(&d).unwrap();
    let vhd = d.join("diff.vhd");
    run("qemu-img", &["create", "-q", "-f", "vpc", s(&vhd), "4M"]);
    make_vhd_differencing(&vhd);
    let e = open_with(&vhd, BackingGate::default()).expect_err("differencing VHD opened");
    assert!(e.to_string().contains("differencing"), "{e}");
    let p = qemu_overlay(&t.path().join("x.qcow2"), s(&vhd), "vpc");
    denied(&p, BackingGate::default());
    let vhdx = d.join("diff.vhdx");
    run("qemu-img", &["create", "-q", "-f", "vhdx", s(&vhdx), "4M"]);
    make_vhdx_differencing(&vhdx);
    let e = open_with(&vhdx, BackingGate::default()).expect_err("differencing VHDX opened");
    assert!(e.to_string().contains("differencing"), "{e}");
    // Its headers are valid (structured), its metadata says differencing: refused as such.
    let p = qemu_overlay(&t.path().join("y.qcow2"), s(&vhdx), "vhdx");
    let e = open_with(&p, BackingGate::default()).expect_err("differencing VHDX opened");
    assert!(e.to_string().contains("differencing VHDX"), "{e}");
}

/// Sets the HasParent flag of a VHDX made by qemu-img (file parameters metadata item; the
/// metadata region carries no checksum).
pub fn make_vhdx_differencing(p: &Path) {
    let mut b = std::fs::read(p).unwrap();
    let table = b.windows(8).position(|w| w == b"metadata").unwrap();
    let fp: [u8; 16] = [
        0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d, 0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7,
        0x6b,
    ];
    let e = table
        + b[table..table + 65536]
            .windows(16)
            .position(|w| w == fp)
            .unwrap();
    let off = u32::from_le_bytes(b[e + 16..e + 20].try_into().unwrap()) as usize;
    b[table + off + 4] |= 2;
    std::fs::write(p, b).unwrap();
}

/// Turns a dynamic VHD made by qemu-img into a differencing one (disk type 4 in both footer
/// copies, a parent name in the dynamic header), fixing every checksum.
pub fn make_vhd_differencing(p: &Path) {
    let mut b = std::fs::read(p).unwrap();
    let n = b.len();
    for at in [0, n - 512] {
        b[at + 60..at + 64].copy_from_slice(&4u32.to_be_bytes());
        let sum = diskfab_image::vhd::checksum(&b[at..at + 512], 64);
        b[at + 64..at + 68].copy_from_slice(&sum.to_be_bytes());
    }
    let dh = u64::from_be_bytes(b[16..24].try_into().unwrap()) as usize;
    let name: Vec<u8> = "parent.vhd"
        .encode_utf16()
        .flat_map(|c| c.to_be_bytes())
        .collect();
    b[dh + 64..dh + 64 + name.len()].copy_from_slice(&name);
    let sum = diskfab_image::vhd::checksum(&b[dh..dh + 1024], 36);
    b[dh + 36..dh + 40].copy_from_slice(&sum.to_be_bytes());
    std::fs::write(p, b).unwrap();
}

#[test]
fn vmdk_flat_extents_open_without_trust_only_when_named_vmdk() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let desc = home.join("x.vmdk");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "subformat=monolithicFlat",
            s(&desc),
            "1M",
        ],
    );
    run(
        "qemu-io",
        &["-f", "vmdk", "-c", "write -P 0x21 0 64k", s(&desc)],
    );
    let img = open_with(&desc, BackingGate::default()).unwrap();
    assert!(read_all(&img)[..65536].iter().all(|&b| b == 0x21));
    drop(img);
    let text = std::fs::read_to_string(&desc).unwrap();
    assert!(text.contains("\"x-flat.vmdk\""), "{text}");
    // A hostile descriptor next to a secret names it as its flat extent.
    secret(&home, ".netrc");
    std::fs::write(&desc, text.replace("\"x-flat.vmdk\"", "\".netrc\"")).unwrap();
    let m = denied(&desc, BackingGate::default());
    assert!(
        m.contains(".netrc") && m.contains(".vmdk") && m.contains("--backing-dir"),
        "{m}"
    );
    assert!(!m.contains("not-a-real-hash"));
    let img = open_with(&desc, dirs(&[&home])).unwrap();
    assert!(read_all(&img).starts_with(SECRET));
    // A *.vmdk name that is a symlink out of the directory is still refused.
    let sec = secret(&t.path().join("elsewhere"), "key");
    std::os::unix::fs::symlink(&sec, home.join("y-flat.vmdk")).unwrap();
    std::fs::write(&desc, text.replace("\"x-flat.vmdk\"", "\"y-flat.vmdk\"")).unwrap();
    assert!(open_with(&desc, any()).is_err());
}
