//! Partition tables checked against util-linux sfdisk and gdisk's sgdisk.

use diskfab_part::{add_partition, create_table, fuzz_parse, read_table, PartSpec, TableKind};
use diskfab_storage::{BlockDev, DevRef, Error, FileDev, MemDev};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn run(cmd: &str, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut c = Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (run scripts/deps.sh)"));
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn disk(dir: &Path, name: &str, size: u64) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().set_len(size).unwrap();
    p
}

fn dev(p: &Path, w: bool) -> DevRef {
    Arc::new(FileDev::open(p, w).unwrap())
}

fn sfdisk_json(p: &Path) -> serde_json::Value {
    let out = run("sfdisk", &["--json", p.to_str().unwrap()], "");
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["partitiontable"].clone()
}

fn node_number(node: &str) -> u32 {
    node.rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Compares our reading of a disk with sfdisk's, field by field.
fn assert_same_as_sfdisk(p: &Path) {
    let j = sfdisk_json(p);
    let t = read_table(&dev(p, false)).unwrap().expect("a table");
    let sf = j["partitions"].as_array().unwrap();
    assert_eq!(t.partitions.len(), sf.len(), "partition count");
    for (ours, theirs) in t.partitions.iter().zip(sf) {
        assert_eq!(ours.number, node_number(theirs["node"].as_str().unwrap()));
        assert_eq!(ours.start, theirs["start"].as_u64().unwrap() * 512);
        assert_eq!(ours.size, theirs["size"].as_u64().unwrap() * 512);
        let ty = theirs["type"].as_str().unwrap().to_lowercase();
        match t.kind {
            TableKind::Gpt => {
                assert_eq!(ours.type_id, ty);
                assert_eq!(
                    ours.part_uuid.as_deref().unwrap(),
                    theirs["uuid"].as_str().unwrap().to_lowercase()
                );
                assert_eq!(
                    ours.name.as_deref(),
                    theirs["name"].as_str().filter(|s| !s.is_empty())
                );
            }
            TableKind::Mbr => assert_eq!(
                u8::from_str_radix(&ours.type_id[2..], 16).unwrap(),
                u8::from_str_radix(&ty, 16).unwrap()
            ),
        }
    }
    let id = j["id"].as_str().unwrap().to_lowercase();
    assert_eq!(t.disk_id.as_deref().unwrap(), id);
}

#[test]
fn mbr_with_extended_and_logical_partitions_reads_like_sfdisk() {
    let t = tempfile::tempdir().unwrap();
    let p = disk(t.path(), "mbr.img", 64 << 20);
    run(
        "sfdisk",
        &["-q", p.to_str().unwrap()],
        "label: dos\nlabel-id: 0x1234abcd\n,8M,83,*\n,8M,82\n,8M,c\n,,5\n,4M,83\n,,8e\n",
    );
    assert_same_as_sfdisk(&p);
    let tb = read_table(&dev(&p, false)).unwrap().unwrap();
    assert_eq!(tb.partitions[0].part_uuid.as_deref(), Some("1234abcd-01"));
    assert!(tb.partitions[0].bootable);
    assert_eq!(
        tb.partitions.iter().map(|p| p.number).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(tb.partitions[3].type_name, "extended");
}

#[test]
fn gpt_with_names_and_types_reads_like_sfdisk() {
    let t = tempfile::tempdir().unwrap();
    let p = disk(t.path(), "gpt.img", 64 << 20);
    run("sfdisk", &["-q", p.to_str().unwrap()], "label: gpt\nsize=8M, type=U, name=EFI\nsize=1M, type=21686148-6449-6E6F-744E-656564454649\nsize=16M, type=S, name=swap\ntype=L, name=root\n");
    assert_same_as_sfdisk(&p);
    let tb = read_table(&dev(&p, false)).unwrap().unwrap();
    let names: Vec<&str> = tb.partitions.iter().map(|p| p.type_name.as_str()).collect();
    assert_eq!(names, ["esp", "bios-boot", "swap", "linux"]);
}

#[test]
fn tables_we_write_pass_sgdisk_verify_and_match_sfdisk() {
    let t = tempfile::tempdir().unwrap();
    let p = disk(t.path(), "new-gpt.img", 256 << 20);
    let d = dev(&p, true);
    create_table(&d, TableKind::Gpt).unwrap();
    let esp = add_partition(
        &d,
        &PartSpec {
            size: Some(64 << 20),
            type_alias: "esp".into(),
            name: Some("EFI".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let root = add_partition(
        &d,
        &PartSpec {
            type_alias: "linux".into(),
            name: Some("root".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((esp.number, esp.start, esp.size), (1, 1 << 20, 64 << 20));
    assert_eq!((root.number, root.start), (2, 65 << 20));
    let v = run("sgdisk", &["-v", p.to_str().unwrap()], "");
    assert!(v.contains("No problems found"), "{v}");
    assert_same_as_sfdisk(&p);
    assert!(matches!(
        add_partition(
            &d,
            &PartSpec {
                type_alias: "linux".into(),
                ..Default::default()
            }
        ),
        Err(Error::NoSpace(_))
    ));

    let p = disk(t.path(), "new-mbr.img", 64 << 20);
    let d = dev(&p, true);
    create_table(&d, TableKind::Mbr).unwrap();
    add_partition(
        &d,
        &PartSpec {
            size: Some(16 << 20),
            type_alias: "fat32".into(),
            bootable: true,
            ..Default::default()
        },
    )
    .unwrap();
    add_partition(
        &d,
        &PartSpec {
            type_alias: "linux".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_same_as_sfdisk(&p);
    assert!(add_partition(
        &d,
        &PartSpec {
            type_alias: "bios-boot".into(),
            ..Default::default()
        }
    )
    .is_err());

    // Extended + logical partitions: the fifth partition goes into the extended one by itself.
    let p = disk(t.path(), "logical.img", 128 << 20);
    let d = dev(&p, true);
    create_table(&d, TableKind::Mbr).unwrap();
    for _ in 0..2 {
        add_partition(
            &d,
            &PartSpec {
                size: Some(8 << 20),
                type_alias: "linux".into(),
                ..Default::default()
            },
        )
        .unwrap();
    }
    add_partition(
        &d,
        &PartSpec {
            size: Some(64 << 20),
            type_alias: "extended".into(),
            ..Default::default()
        },
    )
    .unwrap();
    add_partition(
        &d,
        &PartSpec {
            size: Some(8 << 20),
            type_alias: "swap".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let l5 = add_partition(
        &d,
        &PartSpec {
            size: Some(16 << 20),
            type_alias: "linux".into(),
            logical: true,
            ..Default::default()
        },
    )
    .unwrap();
    let l6 = add_partition(
        &d,
        &PartSpec {
            type_alias: "lvm".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((l5.number, l6.number), (5, 6));
    assert_eq!(l6.type_name, "lvm");
    assert_same_as_sfdisk(&p);
}

#[test]
fn corrupt_primary_gpt_falls_back_to_the_backup_and_both_corrupt_is_a_bad_image() {
    use std::os::unix::fs::FileExt;
    let t = tempfile::tempdir().unwrap();
    let p = disk(t.path(), "g.img", 32 << 20);
    run(
        "sfdisk",
        &["-q", p.to_str().unwrap()],
        "label: gpt\n,4M,L\n",
    );
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.write_all_at(&[0xde, 0xad], 512 + 16).unwrap();
    let tb = read_table(&dev(&p, false)).unwrap().unwrap();
    assert_eq!(tb.partitions.len(), 1, "backup header used");
    let last = (32u64 << 20) - 512;
    f.write_all_at(&[0xde, 0xad], last + 16).unwrap();
    let e = read_table(&dev(&p, false)).unwrap_err();
    assert!(matches!(e, Error::BadImage(_)), "{e}");
    assert!(e.to_string().contains("CRC"), "{e}");
}

#[test]
fn partitions_beyond_the_disk_and_ebr_loops_are_bad_images() {
    use std::os::unix::fs::FileExt;
    let t = tempfile::tempdir().unwrap();
    let p = disk(t.path(), "m.img", 32 << 20);
    run(
        "sfdisk",
        &["-q", p.to_str().unwrap()],
        "label: dos\n,4M,83\n,,5\n,4M,83\n,4M,83\n",
    );
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    // Point the second EBR's "next" link back at the first EBR.
    let ext_start = read_table(&dev(&p, false)).unwrap().unwrap().partitions[1].start;
    let mut first = [0u8; 512];
    std::os::unix::fs::FileExt::read_exact_at(
        &std::fs::File::open(&p).unwrap(),
        &mut first,
        ext_start,
    )
    .unwrap();
    let next_rel = u32::from_le_bytes(first[446 + 16 + 8..446 + 16 + 12].try_into().unwrap());
    let second = ext_start + u64::from(next_rel) * 512;
    f.write_all_at(&0u32.to_le_bytes(), second + 446 + 16 + 8)
        .unwrap();
    f.write_all_at(&[0x05], second + 446 + 16 + 4).unwrap();
    f.write_all_at(&1u32.to_le_bytes(), second + 446 + 16 + 12)
        .unwrap();
    assert!(matches!(
        read_table(&dev(&p, false)),
        Err(Error::BadImage(_))
    ));
    // A primary partition running past the end of the disk.
    let p = disk(t.path(), "big.img", 8 << 20);
    run(
        "sfdisk",
        &["-q", p.to_str().unwrap()],
        "label: dos\n,4M,83\n",
    );
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.write_all_at(&0x00ff_ffffu32.to_le_bytes(), 446 + 12)
        .unwrap();
    assert!(matches!(
        read_table(&dev(&p, false)),
        Err(Error::BadImage(_))
    ));
}

#[test]
fn a_fat_filesystem_on_the_whole_disk_is_not_a_partition_table() {
    let t = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("f32.img", vec!["-F", "32"]),
        ("f12.img", vec!["-F", "12"]),
        ("f16.img", vec!["-F", "16"]),
    ] {
        let p = disk(t.path(), name, 64 << 20);
        let mut a: Vec<&str> = args.clone();
        a.push(p.to_str().unwrap());
        run("mkfs.vfat", &a, "");
        assert!(
            read_table(&dev(&p, false)).unwrap().is_none(),
            "{name} read as a table"
        );
    }
    let p = disk(t.path(), "ext.img", 16 << 20);
    run(
        "mke2fs",
        &["-q", "-F", "-t", "ext4", p.to_str().unwrap()],
        "",
    );
    assert!(read_table(&dev(&p, false)).unwrap().is_none());
}

#[test]
fn garbage_of_every_size_never_panics_the_parsers() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for len in [
        0usize,
        1,
        100,
        511,
        512,
        513,
        1024,
        4096,
        17 * 512,
        70 * 512,
    ] {
        for round in 0..50 {
            let mut v: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if len >= 512 && round % 2 == 0 {
                v[510] = 0x55;
                v[511] = 0xaa;
                v[446 + 4] = if round % 4 == 0 { 0xee } else { 0x05 };
            }
            if len >= 1024 && round % 3 == 0 {
                v[512..520].copy_from_slice(b"EFI PART");
            }
            fuzz_parse(&v);
        }
    }
    let _ = MemDev::new(512).size();
}
