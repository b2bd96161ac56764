//! Replays every input the fuzzers ever crashed on (fuzz/regressions/<target>/*) plus the seed
//! corpus through the same entry points, so a fixed parser bug can never come back.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for dir in ["regressions", "corpus"] {
        let Ok(rd) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if let Ok(data) = std::fs::read(e.path()) {
                run(&data);
                n += 1;
            }
        }
    }
    n
}

#[test]
fn fuzz_regressions_never_panic_qcow2() {
    replay("qcow2", diskfab_image::fuzz_qcow2);
}

#[test]
fn fuzz_regressions_never_panic_mbr_gpt() {
    replay("mbr_gpt", diskfab_part::fuzz_parse);
}

#[test]
fn fuzz_regressions_never_panic_vdi() {
    replay("vdi", diskfab_image::fuzz_vdi);
}

#[test]
fn fuzz_regressions_never_panic_vhd() {
    replay("vhd", diskfab_image::fuzz_vhd);
}

#[test]
fn fuzz_regressions_never_panic_vmdk() {
    replay("vmdk", diskfab_image::fuzz_vmdk);
}

#[test]
fn fuzz_regressions_never_panic_customize() {
    replay("customize", diskfab_customize::planfile::fuzz_inputs);
}

#[test]
fn fuzz_regressions_never_panic_delta() {
    replay("delta", diskfab_delta::format::fuzz_read);
}

#[test]
fn fuzz_regressions_never_panic_hive() {
    assert!(replay("hive", diskfab_inspect::fuzz_hive) > 0);
}

#[test]
fn fuzz_regressions_never_panic_packages() {
    assert!(replay("packages", diskfab_inspect::fuzz_packages) > 0);
}

#[test]
fn fuzz_regressions_never_panic_initramfs() {
    assert!(replay("initramfs", diskfab_inspect::fuzz_initramfs) > 0);
}

#[test]
fn fuzz_regressions_never_panic_vhdx() {
    replay("vhdx", diskfab_image::fuzz_vhdx);
}

/// The qemu-made qcow2 seeds reach the parsers the fuzzer must cover: extended L2 entries, the
/// data-file extension and the snapshot table (all within the seed's bytes).
#[test]
fn qcow2_seeds_reach_extended_l2_data_file_and_snapshot_parsing() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/qcow2");
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
