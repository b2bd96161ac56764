//! Replays, through the same entry points as the cargo-fuzz targets (fuzz/fuzz_targets), every
//! committed seed (fuzz/seeds/<target>/, written by fuzz/make_seeds.sh from reference tools and
//! real files) and every input a fuzzer ever crashed on (fuzz/regressions/<target>/), so a fixed
//! parser bug can never come back. Each target's counts are pinned: a seed directory that goes
//! missing or unreadable fails the test instead of replaying nothing. Every seed must also reach
//! real parsing (the entry point reports what it parsed), so a seed that only hits the first
//! "bad magic" check is caught. The generated working corpus (fuzz/corpus) is not read.

use std::path::{Path, PathBuf};

/// Seeds whose name ends in this were cut short on purpose (error paths): pinned, replayed,
/// but not required to parse.
const CUT: &str = "-cut";

fn inputs(dir: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(dir)
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&d)
        .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| {
            let b = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, b)
        })
        .collect();
    out.sort();
    out
}

/// Replays `target`'s seeds and regressions through `run`; asserts the pinned counts and that
/// every seed not marked [`CUT`] is `reached` (given the seed and what `run` returned).
fn replay(
    target: &str,
    (seeds, regressions): (usize, usize),
    run: impl Fn(&[u8]) -> usize,
    reached: impl Fn(&[u8], usize) -> bool,
) {
    let s = inputs("seeds", target);
    let mut shallow = Vec::new();
    for (p, b) in &s {
        let n = run(b);
        let cut = p.to_string_lossy().ends_with(CUT);
        if !cut && !reached(b, n) {
            shallow.push(p.display().to_string());
        }
    }
    let r = inputs("regressions", target);
    for (_, b) in &r {
        run(b);
    }
    assert_eq!(
        (s.len(), r.len()),
        (seeds, regressions),
        "{target}: (seeds, regressions) replayed; after adding inputs, update the pinned counts"
    );
    assert!(
        shallow.is_empty(),
        "{target}: seeds that do not reach real parsing: {shallow:?}"
    );
}

/// For entry points that report what they parsed: at least one item.
fn some(_: &[u8], n: usize) -> bool {
    n > 0
}

/// Pinned (seeds, regressions) per target; regenerate seeds with `bash fuzz/make_seeds.sh`.
mod pinned {
    pub const QCOW2: (usize, usize) = (7, 0);
    pub const MBR_GPT: (usize, usize) = (2, 0);
    pub const VDI: (usize, usize) = (2, 0);
    pub const VHD: (usize, usize) = (3, 0);
    pub const VMDK: (usize, usize) = (3, 1);
    pub const VHDX: (usize, usize) = (3, 0);
    pub const CUSTOMIZE: (usize, usize) = (4, 0);
    pub const DELTA: (usize, usize) = (1, 0);
    pub const HIVE: (usize, usize) = (3, 0);
    pub const PACKAGES: (usize, usize) = (7, 0);
    pub const INITRAMFS: (usize, usize) = (6, 1);
    pub const ACCOUNTS: (usize, usize) = (3, 1);
    pub const SUDOERS: (usize, usize) = (4, 0);
    pub const NETCONF: (usize, usize) = (14, 0);
    pub const FSTAB: (usize, usize) = (3, 0);
    pub const ELF: (usize, usize) = (11, 0);
    pub const OSRELEASE: (usize, usize) = (4, 0);
    pub const RPM: (usize, usize) = (3, 0);
    pub const CPIO: (usize, usize) = (3, 0);
    pub const FAT_DOTFIX: (usize, usize) = (4, 0);
    pub const LVM: (usize, usize) = (3, 0);
    pub const LUKS: (usize, usize) = (2, 0);
    pub const XFS: (usize, usize) = (3, 1);
    pub const BTRFS: (usize, usize) = (7, 0);
    pub const NTFS: (usize, usize) = (6, 0);
    pub const FILE_CONTEXTS: (usize, usize) = (3, 0);
}

#[test]
fn fuzz_seeds_and_regressions_replay_qcow2_and_every_seed_has_a_header() {
    let run = |d: &[u8]| {
        diskfab_image::fuzz_qcow2(d);
        0
    };
    replay("qcow2", pinned::QCOW2, run, |d, _| {
        diskfab_image::parse_qcow2_header(d).is_ok()
    });
}

#[test]
fn fuzz_seeds_and_regressions_replay_mbr_gpt_and_every_seed_has_partitions() {
    replay("mbr_gpt", pinned::MBR_GPT, diskfab_part::fuzz_parse, some);
}

/// The format the image probes detect from the seed's head, tail and length.
fn detected(d: &[u8]) -> diskfab_image::Format {
    let tail = &d[d.len().saturating_sub(512)..];
    diskfab_image::detect_format_file(&d[..d.len().min(4096)], tail, d.len() as u64)
}

#[test]
fn fuzz_seeds_and_regressions_replay_vdi_and_every_seed_is_detected_as_vdi() {
    let run = |d: &[u8]| {
        diskfab_image::fuzz_vdi(d);
        0
    };
    replay("vdi", pinned::VDI, run, |d, _| {
        detected(d) == diskfab_image::Format::Vdi
    });
}

#[test]
fn fuzz_seeds_and_regressions_replay_vhd_and_every_seed_is_detected_as_vhd() {
    let run = |d: &[u8]| {
        diskfab_image::fuzz_vhd(d);
        0
    };
    replay("vhd", pinned::VHD, run, |d, _| {
        detected(d) == diskfab_image::Format::Vhd
    });
}

#[test]
fn fuzz_seeds_and_regressions_replay_vmdk_and_every_seed_is_a_vmdk_extent_or_descriptor() {
    let run = |d: &[u8]| {
        diskfab_image::fuzz_vmdk(d);
        0
    };
    replay("vmdk", pinned::VMDK, run, |d, _| {
        detected(d) == diskfab_image::Format::Vmdk
            || diskfab_image::vmdk::parse_descriptor(d).is_ok()
    });
}

#[test]
fn fuzz_seeds_and_regressions_replay_vhdx_and_every_seed_is_detected_as_vhdx() {
    let run = |d: &[u8]| {
        diskfab_image::fuzz_vhdx(d);
        0
    };
    replay("vhdx", pinned::VHDX, run, |d, _| {
        detected(d) == diskfab_image::Format::Vhdx
    });
}

#[test]
fn fuzz_seeds_and_regressions_replay_customize_and_every_seed_is_accepted() {
    replay(
        "customize",
        pinned::CUSTOMIZE,
        diskfab_customize::planfile::fuzz_inputs,
        some,
    );
}

#[test]
fn fuzz_seeds_and_regressions_replay_delta_and_every_seed_verifies() {
    replay(
        "delta",
        pinned::DELTA,
        diskfab_delta::format::fuzz_read,
        some,
    );
}

#[test]
fn fuzz_seeds_and_regressions_replay_hive_and_every_seed_has_keys() {
    replay("hive", pinned::HIVE, diskfab_inspect::fuzz_hive, some);
}

#[test]
fn fuzz_seeds_and_regressions_replay_packages_and_every_seed_lists_packages() {
    replay(
        "packages",
        pinned::PACKAGES,
        diskfab_inspect::fuzz_packages,
        some,
    );
}

#[test]
fn fuzz_seeds_and_regressions_replay_initramfs_and_every_seed_has_segments() {
    replay(
        "initramfs",
        pinned::INITRAMFS,
        diskfab_inspect::fuzz_initramfs,
        some,
    );
}

#[test]
fn fuzz_seeds_and_regressions_replay_accounts_and_every_seed_has_users() {
    let run = |d: &[u8]| {
        let users = diskfab_inspect::fuzz::fuzz_accounts(d);
        users.min(diskfab_customize::accounts::fuzz_tables(d))
    };
    replay("accounts", pinned::ACCOUNTS, run, some);
}

#[test]
fn fuzz_seeds_and_regressions_replay_sudoers_and_every_seed_has_rules() {
    replay(
        "sudoers",
        pinned::SUDOERS,
        diskfab_inspect::fuzz::fuzz_sudoers,
        some,
    );
}

#[test]
fn fuzz_seeds_and_regressions_replay_netconf_and_every_seed_configures_an_interface() {
    replay(
        "netconf",
        pinned::NETCONF,
        diskfab_inspect::fuzz::fuzz_netconf,
        some,
    );
}

#[test]
fn fuzz_seeds_and_regressions_replay_fstab_and_every_seed_has_entries() {
    replay(
        "fstab",
        pinned::FSTAB,
        diskfab_inspect::fuzz::fuzz_fstab,
        some,
    );
}

#[test]
fn fuzz_seeds_and_regressions_replay_elf_and_every_seed_has_a_known_architecture() {
    replay("elf", pinned::ELF, diskfab_inspect::fuzz::fuzz_elf, some);
}

#[test]
fn fuzz_seeds_and_regressions_replay_osrelease_and_every_seed_names_a_distribution() {
    let run = |d: &[u8]| {
        diskfab_inspect::fuzz::fuzz_os_release(d) * diskfab_customize::guest::fuzz_os_release(d)
    };
    replay("osrelease", pinned::OSRELEASE, run, some);
}

#[test]
fn fuzz_seeds_and_regressions_replay_rpm_and_every_seed_decodes_a_package() {
    replay("rpm", pinned::RPM, diskfab_inspect::fuzz::fuzz_rpm, some);
}

#[test]
fn fuzz_seeds_and_regressions_replay_cpio_and_every_seed_has_entries() {
    replay(
        "cpio",
        pinned::CPIO,
        diskfab_inspect::initramfs::fuzz_cpio,
        some,
    );
}

#[test]
fn fuzz_seeds_and_regressions_replay_fat_dotfix_and_every_seed_finds_its_directories() {
    replay(
        "fat_dotfix",
        pinned::FAT_DOTFIX,
        diskfab_fat::fuzz_dotfix,
        |_, n| n == 2,
    );
}

#[test]
fn fuzz_seeds_and_regressions_replay_lvm_and_every_seed_parses_metadata() {
    replay("lvm", pinned::LVM, diskfab_core::lvm::fuzz_lvm, some);
}

#[test]
fn fuzz_seeds_and_regressions_replay_luks_and_every_seed_has_key_slots() {
    replay(
        "luks",
        pinned::LUKS,
        diskfab_core::lvm::fuzz_luks,
        |_, n| n > 2,
    );
}

/// The lvm2-made seed with 8 KiB extents maps its LVs: fz/a (two segments) and fz/b read.
#[test]
fn lvm_small_pv_seed_maps_its_logical_volumes() {
    use diskfab_core::lvm::{assemble, scan_pv, LvDev};
    use diskfab_core::storage::{BlockDev, DevRef, MemDev};
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/lvm/seed-pv-small");
    let mut b = std::fs::read(p).unwrap();
    b.resize(512 << 10, 0);
    let dev: DevRef = std::sync::Arc::new(MemDev::from_vec(b, false));
    let scan = scan_pv(&dev).unwrap().unwrap();
    let vg = assemble(&[(dev, scan)]).remove(0);
    assert_eq!(vg.vg.name, "fz");
    let a = LvDev::open(&vg, "a").unwrap();
    assert_eq!(a.size(), 6 * 8192);
    assert_eq!(
        vg.vg
            .lvs
            .iter()
            .find(|l| l.name == "a")
            .unwrap()
            .segments
            .len(),
        2
    );
    assert_eq!(LvDev::open(&vg, "b").unwrap().size(), 2 * 8192);
}

/// The qemu-made qcow2 seeds reach the parsers the fuzzer must cover: extended L2 entries, the
/// data-file extension and the snapshot table (all within the seed's bytes).
#[test]
fn qcow2_seeds_reach_extended_l2_data_file_and_snapshot_parsing() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/qcow2");
    let seed = |n: &str| std::fs::read(dir.join(n)).unwrap();
    let h = diskfab_image::parse_qcow2_header(&seed("seed-extl2")).unwrap();
    assert!(h.extended_l2());
    let h = diskfab_image::parse_qcow2_header(&seed("seed-df")).unwrap();
    assert_eq!(h.data_file.as_deref(), Some("df.raw"));
    let b = seed("seed-snap");
    let h = diskfab_image::parse_qcow2_header(&b).unwrap();
    let at = h.snapshots_offset as usize;
    let snaps =
        diskfab_image::snapshot::parse_snapshot_table(&b[at..], h.nb_snapshots, h.cluster_size())
            .unwrap();
    let names: Vec<&str> = snaps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["one", "two"]);
}

#[test]
fn fuzz_seeds_and_regressions_replay_xfs_and_every_seed_block_parses() {
    // The superblock plus at least one structure per 4 KiB block cut from the fixtures.
    replay("xfs", pinned::XFS, diskfab_xfs::fuzz_xfs, |b, n| {
        n > b.len().saturating_sub(512) / 4096
    });
}

#[test]
fn fuzz_seeds_and_regressions_replay_btrfs_and_every_seed_parses() {
    replay("btrfs", pinned::BTRFS, diskfab_btrfs::fuzz_btrfs, some);
}

#[test]
fn fuzz_seeds_and_regressions_replay_ntfs_and_every_seed_parses_its_structure() {
    replay("ntfs", pinned::NTFS, diskfab_ntfs::fuzz_ntfs, some);
}

#[test]
fn fuzz_seeds_and_regressions_replay_file_contexts_and_every_seed_labels_paths() {
    replay(
        "file_contexts",
        pinned::FILE_CONTEXTS,
        diskfab_customize::selinux::fuzz_file_contexts,
        some,
    );
}
