//! Memory bounded by configuration, not by the image: every read-only command on hostile images
//! (headers declaring absurd sizes and tables, sparse files of 4 TiB), run as the real binary
//! under a 1 GiB address-space limit, ends with a clean `diskfab:` error or a valid answer —
//! never an allocation abort, a panic or a hang. Images are made by reference tools (qemu-img,
//! sfdisk, mkfs.ext4, mkfs.vfat) and then byte-patched.

mod common;
use common::*;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TIB: u64 = 1 << 40;
/// The address-space limit every command runs under: 1 GiB, in KiB for `ulimit -v`.
const LIMIT_KIB: u64 = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(60);
/// The read-only commands run on every hostile image.
const VERBS: [&str; 9] = [
    "info", "ls", "cat", "check", "map", "inspect", "compare", "diff", "convert",
];

/// How one run of diskfab ended.
struct Run {
    what: String,
    verb: String,
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs diskfab with `args` and `env` under `ulimit -v` 1 GiB; killed (and failed) after 60 s.
fn run_limited(args: &[&str], env: &[(&str, &str)], scratch: &Path) -> Run {
    let what = format!("diskfab {}", args.join(" "));
    let id = format!("{:x}", Instant::now().elapsed().as_nanos() ^ rand_id());
    let (out_p, err_p) = (
        scratch.join(format!("{id}.out")),
        scratch.join(format!("{id}.err")),
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -v {LIMIT_KIB} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_diskfab"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_p).unwrap())
        .stderr(fs::File::create(&err_p).unwrap());
    let mut child = cmd.spawn().expect("spawn sh");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {TIMEOUT:?} (killed)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned();
    let r = Run {
        what: format!("{what} ({:.1?})", start.elapsed()),
        verb: args
            .iter()
            .find(|a| VERBS.contains(a))
            .map_or(String::new(), |v| v.to_string()),
        code: status.code(),
        signal: status.signal(),
        stdout: text(&out_p),
        stderr: text(&err_p),
    };
    let _ = (fs::remove_file(out_p), fs::remove_file(err_p));
    r
}

fn rand_id() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    u128::from(N.fetch_add(1, Ordering::Relaxed)) << 64 | u128::from(std::process::id())
}

impl Run {
    /// The process ended by itself (no signal, no abort), without a panic or an allocation
    /// failure; a failure printed a `diskfab:` error line.
    fn assert_clean(&self) {
        let Run {
            what,
            code,
            signal,
            stderr,
            ..
        } = self;
        eprintln!(
            "{what}: exit {code:?}: {}",
            stderr.lines().next().unwrap_or("")
        );
        assert!(
            signal.is_none() && code.is_some(),
            "{what}: killed by signal {signal:?}: {stderr}"
        );
        assert_ne!(*code, Some(134), "{what}: aborted: {stderr}");
        assert!(
            !stderr.contains("memory allocation of"),
            "{what}: allocation abort: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{what}: panic: {stderr}");
        // `check` answers 2 (corrupt) and 3 (leaks), `compare` and `diff` 1 (different) on
        // standard output; anything else non-zero is an error with a message.
        let answer = match self.verb.as_str() {
            "check" => matches!(code, Some(2 | 3)),
            "compare" | "diff" => *code == Some(1),
            _ => false,
        };
        if *code != Some(0) && (!answer || self.stdout.is_empty()) {
            assert!(
                stderr.lines().any(|l| l.starts_with("diskfab: ")),
                "{what}: exit {code:?} without a diskfab: error line: {stderr}"
            );
        }
    }

    fn assert_error(&self) {
        self.assert_clean();
        assert_ne!(
            self.code,
            Some(0),
            "{}: accepted: {}",
            self.what,
            self.stdout
        );
    }
}

/// A hostile image and whether opening it must fail (its header declares the impossible).
struct Hostile {
    path: PathBuf,
    refused: bool,
}

fn qemu_img(args: &[&str]) {
    tool("qemu-img", args);
}

fn create(dir: &Path, name: &str, fmt: &str, opts: &str, size: &str) -> PathBuf {
    let p = dir.join(name);
    let mut args = vec!["create", "-q", "-f", fmt];
    if !opts.is_empty() {
        args.extend(["-o", opts]);
    }
    args.extend([p.to_str().unwrap(), size]);
    qemu_img(&args);
    p
}

fn patch(p: &Path, off: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(p).unwrap();
    f.write_all_at(bytes, off).unwrap();
}

fn read_at(p: &Path, off: u64, n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    fs::File::open(p)
        .unwrap()
        .read_exact_at(&mut b, off)
        .unwrap();
    b
}

fn set_len(p: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(p)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// VHD footer/dynamic-header checksum: one's complement of the byte sum, field zeroed.
fn vhd_fix_checksum(p: &Path, at: u64, len: usize, field: usize) {
    let mut b = read_at(p, at, len);
    b[field..field + 4].fill(0);
    let sum = !b.iter().fold(0u32, |s, &x| s.wrapping_add(u32::from(x)));
    patch(p, at + field as u64, &sum.to_be_bytes());
}

/// CRC-32 (IEEE), as GPT headers carry.
fn crc32(b: &[u8]) -> u32 {
    !b.iter().fold(!0u32, |mut c, &x| {
        c ^= u32::from(x);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
        c
    })
}

/// The file offset of the VHDX "virtual disk size" metadata item.
fn vhdx_size_item(p: &Path) -> u64 {
    const META_REGION: [u8; 16] = [
        0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b, 0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88,
        0x6e,
    ];
    const SIZE_ITEM: [u8; 16] = [
        0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48, 0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4,
        0xb8,
    ];
    let rt = read_at(p, 192 << 10, 4096);
    let n = u32::from_le_bytes(rt[8..12].try_into().unwrap()) as usize;
    let meta = (0..n)
        .map(|i| &rt[16 + 32 * i..48 + 32 * i])
        .find(|e| e[..16] == META_REGION)
        .map(|e| u64::from_le_bytes(e[16..24].try_into().unwrap()))
        .expect("VHDX metadata region");
    let mt = read_at(p, meta, 4096);
    let n = usize::from(u16::from_le_bytes([mt[10], mt[11]]));
    (0..n)
        .map(|i| &mt[32 + 32 * i..64 + 32 * i])
        .find(|e| e[..16] == SIZE_ITEM)
        .map(|e| meta + u64::from(u32::from_le_bytes(e[16..20].try_into().unwrap())))
        .expect("VHDX virtual disk size item")
}

fn qcow2_hostiles(d: &Path, out: &mut Vec<Hostile>) {
    // Finding 3: 512-byte clusters, then the file made 4 TiB long (sparse).
    let p = create(d, "q-512-4t.qcow2", "qcow2", "cluster_size=512", "1G");
    set_len(&p, 4 * TIB);
    out.push(Hostile {
        path: p,
        refused: false,
    });
    let field = |name: &str, off: u64, bytes: &[u8], refused: bool, out: &mut Vec<Hostile>| {
        let p = create(d, name, "qcow2", "", "64M");
        patch(&p, off, bytes);
        out.push(Hostile { path: p, refused });
    };
    field(
        "q-size-2p63.qcow2",
        24,
        &((1u64 << 63) - 512).to_be_bytes(),
        true,
        out,
    );
    field("q-l1-huge.qcow2", 36, &u32::MAX.to_be_bytes(), true, out);
    field(
        "q-reftable-huge.qcow2",
        56,
        &u32::MAX.to_be_bytes(),
        true,
        out,
    );
    field(
        "q-snapshots-huge.qcow2",
        60,
        &u32::MAX.to_be_bytes(),
        true,
        out,
    );
    // Tables at their largest accepted size, placed terabytes into a sparse 4 TiB file.
    let p = create(d, "q-l1-max-4t.qcow2", "qcow2", "cluster_size=512", "1G");
    patch(&p, 36, &(4u32 << 20).to_be_bytes()); // 32 MiB of L1 entries
    patch(&p, 40, &TIB.to_be_bytes());
    set_len(&p, 4 * TIB);
    out.push(Hostile {
        path: p,
        refused: false,
    });
    let p = create(
        d,
        "q-reftable-max-4t.qcow2",
        "qcow2",
        "cluster_size=512",
        "1G",
    );
    patch(&p, 48, &(2 * TIB).to_be_bytes());
    patch(&p, 56, &16384u32.to_be_bytes()); // 8 MiB of refcount table
    set_len(&p, 4 * TIB);
    out.push(Hostile {
        path: p,
        refused: false,
    });
    let p = create(d, "q-snapshots-max-4t.qcow2", "qcow2", "", "64M");
    patch(&p, 60, &65536u32.to_be_bytes());
    patch(&p, 64, &TIB.to_be_bytes());
    set_len(&p, 4 * TIB);
    out.push(Hostile {
        path: p,
        refused: false,
    });
    // Valid, and as large as diskfab accepts: 64 PiB.
    let p = create(d, "q-64p.qcow2", "qcow2", "cluster_size=2M", "64P");
    out.push(Hostile {
        path: p,
        refused: false,
    });
}

fn other_format_hostiles(d: &Path, out: &mut Vec<Hostile>) {
    let p = create(d, "size-2p63.vdi", "vdi", "", "64M");
    patch(&p, 0x170, &(1u64 << 63).to_le_bytes());
    out.push(Hostile {
        path: p,
        refused: true,
    });
    // 16M blocks (16 TiB) and a 64 MiB block map declared, the map past the end of the file.
    let p = create(d, "blocks-max.vdi", "vdi", "", "64M");
    patch(&p, 0x158, &0x0500_0000u32.to_le_bytes());
    patch(&p, 0x170, &(16 * TIB).to_le_bytes());
    patch(&p, 0x180, &(1u32 << 24).to_le_bytes());
    out.push(Hostile {
        path: p,
        refused: true,
    });
    // (A fixed VHD whose footer declares 2^63 bytes has no valid footer: it is a raw file.)
    {
        let p = create(d, "size-2p63.vhd", "vpc", "", "64M");
        let len = fs::metadata(&p).unwrap().len();
        for at in [0, len - 512] {
            if read_at(&p, at, 8) == b"conectix" {
                // Not made by qemu: the size is the footer's, not the CHS geometry's.
                patch(&p, at + 28, b"win ");
                patch(&p, at + 40, &(1u64 << 63).to_be_bytes());
                patch(&p, at + 48, &(1u64 << 63).to_be_bytes());
                vhd_fix_checksum(&p, at, 512, 64);
            }
        }
        out.push(Hostile {
            path: p,
            refused: true,
        });
    }
    // Dynamic header: a block table of 2^32 - 1 entries.
    let p = create(d, "bat-huge.vhd", "vpc", "", "64M");
    let dyn_at = u64::from_be_bytes(read_at(&p, 16, 8).try_into().unwrap());
    patch(&p, dyn_at + 28, &u32::MAX.to_be_bytes());
    vhd_fix_checksum(&p, dyn_at, 1024, 36);
    out.push(Hostile {
        path: p,
        refused: true,
    });
    let p = create(d, "size-2p63.vhdx", "vhdx", "", "64M");
    patch(&p, vhdx_size_item(&p), &(1u64 << 63).to_le_bytes());
    out.push(Hostile {
        path: p,
        refused: true,
    });
    // 64 TiB (the largest accepted) with 1 MiB blocks: 64M block-table entries.
    let p = create(d, "size-64t-1m.vhdx", "vhdx", "block_size=1M", "64M");
    patch(&p, vhdx_size_item(&p), &(64 * TIB).to_le_bytes());
    set_len(&p, 4 * TIB);
    out.push(Hostile {
        path: p,
        refused: true,
    });
    let p = create(d, "capacity-2p63.vmdk", "vmdk", "", "64M");
    patch(&p, 12, &(1u64 << 54).to_le_bytes()); // sectors: 2^63 bytes
    out.push(Hostile {
        path: p,
        refused: true,
    });
}

fn raw_hostiles(d: &Path, out: &mut Vec<Hostile>) {
    // A 4 TiB sparse disk with a GPT made by sfdisk (both headers and arrays).
    let p = d.join("gpt-4t.raw");
    fs::File::create(&p).unwrap().set_len(4 * TIB).unwrap();
    let mut sf = Command::new("sfdisk")
        .args(["-q", p.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("sfdisk (util-linux) is required");
    use std::io::Write;
    sf.stdin
        .take()
        .unwrap()
        .write_all(b"label: gpt\nsize=1G, type=linux\n")
        .unwrap();
    assert!(sf.wait().unwrap().success(), "sfdisk failed");
    let valid = d.join("gpt-4t-valid.raw");
    fs::File::create(&valid).unwrap().set_len(4 * TIB).unwrap();
    fs::File::open(&p)
        .map(|f| {
            let mut b = vec![0u8; 34 * 512];
            f.read_exact_at(&mut b, 0).unwrap();
            patch(&valid, 0, &b);
            f.read_exact_at(&mut b[..33 * 512], 4 * TIB - 33 * 512)
                .unwrap();
            patch(&valid, 4 * TIB - 33 * 512, &b[..33 * 512]);
        })
        .unwrap();
    out.push(Hostile {
        path: valid,
        refused: false,
    });
    let bad = d.join("gpt-entries-huge.raw");
    fs::File::create(&bad).unwrap().set_len(TIB).unwrap();
    fs::File::open(&p)
        .map(|f| {
            let mut b = vec![0u8; 34 * 512];
            f.read_exact_at(&mut b, 0).unwrap();
            patch(&bad, 0, &b);
        })
        .unwrap();
    fs::remove_file(&p).unwrap();
    let p = bad;
    // The primary header only (the backup is missing): 2^32 - 1 entries, CRC made valid.
    patch(&p, 512 + 80, &u32::MAX.to_le_bytes());
    let mut h = read_at(&p, 512, 92);
    h[16..20].fill(0);
    patch(&p, 512 + 16, &crc32(&h).to_le_bytes());
    out.push(Hostile {
        path: p,
        refused: false,
    });
    // ext4 whose superblock claims 2^40 blocks and inodes on a 64 MiB disk.
    let p = d.join("ext4-counts.raw");
    fs::File::create(&p).unwrap().set_len(64 << 20).unwrap();
    tool("mkfs.ext4", &["-q", "-F", p.to_str().unwrap()]);
    patch(&p, 1024 + 0x04, &0u32.to_le_bytes());
    patch(&p, 1024 + 0x150, &256u32.to_le_bytes());
    patch(&p, 1024, &u32::MAX.to_le_bytes());
    out.push(Hostile {
        path: p,
        refused: false,
    });
    // ext4 of 1 KiB blocks grown (by its superblock) to fill a sparse 1 TiB disk in groups of
    // 8 blocks: 2^27 group descriptors (8 GiB).
    let p = d.join("ext4-groups-1t.raw");
    fs::File::create(&p).unwrap().set_len(64 << 20).unwrap();
    tool(
        "mkfs.ext4",
        &["-q", "-F", "-b", "1024", p.to_str().unwrap()],
    );
    set_len(&p, TIB);
    patch(&p, 1024 + 0x04, &(1u32 << 30).to_le_bytes());
    patch(&p, 1024 + 0x20, &8u32.to_le_bytes());
    out.push(Hostile {
        path: p,
        refused: false,
    });
    // FAT boot sector with absurd sector and FAT sizes.
    let p = d.join("fat-counts.raw");
    fs::File::create(&p).unwrap().set_len(64 << 20).unwrap();
    tool("mkfs.vfat", &[p.to_str().unwrap()]);
    patch(&p, 19, &0u16.to_le_bytes());
    patch(&p, 22, &u16::MAX.to_le_bytes());
    patch(&p, 32, &u32::MAX.to_le_bytes());
    out.push(Hostile {
        path: p,
        refused: false,
    });
}

/// Runs every read-only command on `img`; returns the runs.
fn every_command(img: &Hostile, scratch: &Path) -> Vec<Run> {
    let p = img.path.to_str().unwrap();
    let out = scratch.join(format!(
        "{}.converted.qcow2",
        img.path.file_name().unwrap().to_str().unwrap()
    ));
    let o = out.to_str().unwrap();
    let commands: [&[&str]; 9] = [
        &["info", p],
        &["ls", "-R", p, "/"],
        &["cat", p, "/etc/hostname"],
        &["check", p],
        &["map", p],
        &["inspect", p],
        &["compare", p, p],
        &["diff", p, p],
        &["convert", p, o, "-O", "qcow2"],
    ];
    let mut runs = Vec::new();
    for args in commands {
        let r = run_limited(args, &[], scratch);
        if img.refused {
            r.assert_error();
        } else {
            r.assert_clean();
        }
        if args[0] == "convert" && r.code != Some(0) {
            assert!(!out.exists(), "{}: failed but left {}", r.what, o);
        }
        let _ = fs::remove_file(&out);
        runs.push(r);
    }
    runs
}

#[test]
fn every_read_only_command_on_hostile_images_ends_cleanly_under_a_1_gib_address_space() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let mut imgs = Vec::new();
    qcow2_hostiles(d, &mut imgs);
    other_format_hostiles(d, &mut imgs);
    raw_hostiles(d, &mut imgs);
    let start = Instant::now();
    let runs: Vec<Run> = std::thread::scope(|s| {
        let hs: Vec<_> = imgs
            .chunks(imgs.len().div_ceil(2))
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .flat_map(|i| every_command(i, d))
                        .collect::<Vec<Run>>()
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect::<Vec<_>>()
    });
    assert_eq!(runs.len(), imgs.len() * 9);
    eprintln!(
        "{} runs on {} hostile images in {:?}",
        runs.len(),
        imgs.len(),
        start.elapsed()
    );
}

#[test]
fn check_of_a_4_tib_sparse_qcow2_with_512_byte_clusters_completes_without_aborting() {
    let t = tempfile::tempdir().unwrap();
    let p = create(t.path(), "x.qcow2", "qcow2", "cluster_size=512", "1G");
    set_len(&p, 4 * TIB);
    let r = run_limited(&["check", p.to_str().unwrap()], &[], t.path());
    r.assert_clean();
    assert_eq!(r.code, Some(0), "{}: {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("No errors were found"), "{}", r.stdout);
}

#[test]
fn max_memory_flag_and_env_bound_what_an_image_may_make_diskfab_allocate() {
    let t = tempfile::tempdir().unwrap();
    // 1 GiB of 512-byte clusters: a 256 KiB L1 table.
    let p = create(t.path(), "x.qcow2", "qcow2", "cluster_size=512", "1G");
    let p = p.to_str().unwrap();
    let over = run_limited(&["--max-memory", "64K", "info", p], &[], t.path());
    over.assert_error();
    assert!(
        over.stderr
            .contains("the qcow2 L1 table needs 262144 bytes")
            && over.stderr.contains("--max-memory")
            && over.stderr.contains("DISKFAB_MAX_MEMORY"),
        "{}",
        over.stderr
    );
    let env = [("DISKFAB_MAX_MEMORY", "64K")];
    let check = run_limited(&["check", p], &env, t.path());
    check.assert_error();
    assert_eq!(check.code, Some(1), "{}", check.stderr);
    assert!(
        check.stderr.contains("check could not complete"),
        "{}",
        check.stderr
    );
    let raised = run_limited(&["--max-memory", "1M", "check", p], &env, t.path());
    raised.assert_clean();
    assert_eq!(raised.code, Some(0), "{}", raised.stderr);
    let bad = run_limited(&["info", p], &[("DISKFAB_MAX_MEMORY", "lots")], t.path());
    bad.assert_error();
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("DISKFAB_MAX_MEMORY"), "{}", bad.stderr);
}
