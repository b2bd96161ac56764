use super::*;

fn built(bits: u32, size: u64, backing: Option<&str>) -> Vec<u8> {
    build_image(&NewHeader {
        cluster_bits: bits,
        size,
        backing,
        backing_format: backing.map(|_| "qcow2"),
        zstd: false,
        extended_l2: false,
        trust_mark: None,
    })
    .unwrap()
}

#[test]
fn built_header_parses_back_with_the_same_fields() {
    let img = built(16, 4 << 30, Some("../base.qcow2"));
    let h = parse_qcow2_header(&img).unwrap();
    assert_eq!(h.size, 4 << 30);
    assert_eq!(h.cluster_bits, 16);
    assert_eq!(h.backing_file.as_deref(), Some("../base.qcow2"));
    assert_eq!(h.backing_format.as_deref(), Some("qcow2"));
    assert_eq!(h.refcount_bits(), 16);
}

#[test]
fn small_clusters_get_enough_refcount_blocks() {
    let img = built(9, 4 << 30, None);
    let h = parse_qcow2_header(&img).unwrap();
    assert!(
        img.len() as u64 / 512 <= h.refblock_entries() * u64::from(h.refcount_table_clusters) * 64
    );
}

#[test]
fn every_truncation_and_bit_flip_of_a_header_is_an_error_or_valid_never_a_panic() {
    let img = built(12, 1 << 30, Some("b.qcow2"));
    for n in 0..600 {
        let _ = parse_qcow2_header(&img[..n.min(img.len())]);
    }
    for i in 0..200 {
        for bit in 0..8 {
            let mut b = img[..4096].to_vec();
            b[i] ^= 1 << bit;
            let _ = parse_qcow2_header(&b);
        }
    }
}

#[test]
fn absurd_sizes_and_unknown_features_are_refused() {
    let mut img = built(16, 1 << 20, None);
    img[24..32].copy_from_slice(&u64::MAX.to_be_bytes());
    assert!(matches!(parse_qcow2_header(&img), Err(Error::BadImage(_))));
    let mut img = built(16, 1 << 20, None);
    img[72..80].copy_from_slice(&(1u64 << 40).to_be_bytes());
    assert!(matches!(
        parse_qcow2_header(&img),
        Err(Error::Unsupported(_))
    ));
}

/// A valid 64 KiB-cluster, 1 GiB image with a backing name, patched by `f`, parsed.
fn patched(f: impl FnOnce(&mut Vec<u8>)) -> Result<Qcow2Header> {
    let mut img = built(16, 1 << 30, Some("b.qcow2"));
    f(&mut img);
    parse_qcow2_header(&img)
}

fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_be_bytes());
}

fn put64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_be_bytes());
}

fn is_bad(r: Result<Qcow2Header>) -> bool {
    matches!(r, Err(Error::BadImage(_)))
}

fn is_unsupported(r: Result<Qcow2Header>) -> bool {
    matches!(r, Err(Error::Unsupported(_)))
}

#[test]
fn only_versions_2_and_3_are_accepted() {
    for v in [0, 1, 4, u32::MAX] {
        assert!(is_unsupported(patched(|b| put32(b, 4, v))), "version {v}");
    }
    assert_eq!(patched(|b| put32(b, 4, 2)).unwrap().version, 2);
    assert!(patched(|b| b[0] = b'X').is_err(), "bad magic");
}

#[test]
fn cluster_bits_must_be_9_to_21() {
    for bits in [0, 8, 22, 63, u32::MAX] {
        assert!(is_bad(patched(|b| put32(b, 20, bits))), "bits {bits}");
    }
    for bits in [9, 21] {
        assert_eq!(
            parse_qcow2_header(&built(bits, 1 << 30, None))
                .unwrap()
                .cluster_bits,
            bits
        );
    }
}

#[test]
fn size_is_bounded_and_consistent_with_the_l1_table() {
    assert!(is_bad(patched(|b| put64(b, 24, MAX_SIZE + 1))));
    // 1 GiB with 64 KiB clusters needs 2 L1 entries: 1 is too few, 2 fine, 2^30 absurd.
    assert!(is_bad(patched(|b| put32(b, 36, 1))));
    assert!(is_bad(patched(|b| put32(b, 36, 0))));
    assert!(patched(|b| put32(b, 36, 2)).is_ok());
    assert!(is_bad(patched(|b| put32(b, 36, 1 << 30))));
    // A bigger size without a bigger L1 table is refused.
    assert!(is_bad(patched(|b| put64(b, 24, 1 << 40))));
}

#[test]
fn table_offsets_must_be_cluster_aligned_and_below_2_pow_56() {
    for off in [0x200u64, 0x10001, 1 << 56, u64::MAX] {
        assert!(is_bad(patched(|b| put64(b, 40, off))), "L1 at {off:#x}");
        assert!(
            is_bad(patched(|b| put64(b, 48, off))),
            "refcounts at {off:#x}"
        );
    }
    assert!(is_bad(patched(|b| put64(b, 48, 0))), "refcount table at 0");
    assert!(is_bad(patched(|b| put32(b, 56, 0))), "empty refcount table");
    assert!(
        is_bad(patched(|b| put32(b, 56, u32::MAX))),
        "huge refcount table"
    );
}

#[test]
fn refcount_order_above_6_is_refused() {
    assert!(is_bad(patched(|b| put32(b, 96, 7))));
    assert!(is_bad(patched(|b| put32(b, 96, u32::MAX))));
    assert_eq!(patched(|b| put32(b, 96, 6)).unwrap().refcount_bits(), 64);
}

#[test]
fn header_length_must_fit_v3_fields_and_the_first_cluster() {
    for len in [0, 72, 103, 65537, u32::MAX] {
        assert!(is_bad(patched(|b| put32(b, 100, len))), "length {len}");
    }
    assert!(is_bad(patched(|b| b.truncate(100))), "v3 header cut short");
}

#[test]
fn unknown_incompatible_features_encryption_and_data_files_are_unsupported() {
    for bits in [1u64 << 5, 1 << 63] {
        assert!(is_unsupported(patched(|b| put64(b, 72, bits))), "{bits:#x}");
    }
    // Unknown compatible and autoclear bits are harmless.
    assert!(patched(|b| put64(b, 80, u64::MAX)).is_ok());
    assert!(patched(|b| put64(b, 88, u64::MAX)).is_ok());
    for method in [1, 2, u32::MAX] {
        assert!(
            is_unsupported(patched(|b| put32(b, 32, method))),
            "crypt {method}"
        );
    }
    let h = patched(|b| put64(b, 72, INCOMPAT_DIRTY | INCOMPAT_CORRUPT)).unwrap();
    assert_eq!(h.incompatible, 3, "dirty/corrupt parse; the opener decides");
}

#[test]
fn backing_names_are_bounded_utf8_inside_the_header_cluster() {
    let off = |b: &[u8]| u64::from_be_bytes(b[8..16].try_into().unwrap()) as usize;
    assert!(is_bad(patched(|b| put32(b, 16, 1024))));
    assert!(
        is_bad(patched(|b| put64(b, 8, 65530))),
        "runs past the cluster"
    );
    assert!(is_bad(patched(|b| put64(b, 8, u64::MAX))));
    assert!(is_bad(patched(|b| {
        let o = off(b);
        b[o] = 0xff;
    })));
    assert!(is_bad(patched(|b| {
        let o = off(b);
        b[o + 1] = 0;
    })));
    let h = patched(|b| put32(b, 16, 0)).unwrap();
    assert_eq!(h.backing_file, None, "length 0 means no backing file");
}

#[test]
fn header_extensions_must_stay_inside_the_header() {
    // The first extension follows the 104-byte v3 header; give it an absurd length.
    let mut img = built(16, 1 << 30, Some("b.qcow2"));
    let hl = u32::from_be_bytes(img[100..104].try_into().unwrap()) as usize;
    put32(&mut img, hl + 4, u32::MAX);
    assert!(is_bad(parse_qcow2_header(&img)));
    let mut img = built(16, 1 << 30, None);
    put32(&mut img, hl, EXT_CRYPTO);
    put32(&mut img, hl + 4, 0);
    assert!(is_unsupported(parse_qcow2_header(&img)));
}

#[test]
fn extended_l2_needs_16k_clusters_and_halves_the_entries_per_l2_table() {
    let mut img = built(16, 1 << 30, None);
    put64(&mut img, 72, INCOMPAT_EXTL2);
    // 1 GiB with 64 KiB clusters and 4096-entry L2 tables needs 4 L1 entries, not 2.
    assert!(is_bad(parse_qcow2_header(&img)));
    put32(&mut img, 36, 4);
    let h = parse_qcow2_header(&img).unwrap();
    assert!(h.extended_l2());
    assert_eq!((h.l2_entries(), h.unit_bits()), (4096, 11));
    let mut small = built(13, 1 << 20, None);
    put64(&mut small, 72, INCOMPAT_EXTL2);
    assert!(is_bad(parse_qcow2_header(&small)), "8 KiB clusters");
}

#[test]
fn data_file_names_must_be_plain_names_and_match_the_feature_bit() {
    for bad in [
        &b"/etc/shadow"[..],
        b"../x.raw",
        b"d/x.raw",
        b"..",
        b".",
        b"",
        b"a\0b",
        b"\xff",
    ] {
        assert!(
            matches!(parse_data_file_name(bad), Err(Error::BadImage(_))),
            "{bad:?}"
        );
    }
    assert!(parse_data_file_name(&[b'a'; 1024]).is_err());
    assert_eq!(parse_data_file_name(b"x.raw").unwrap(), "x.raw");
    // The bit without the extension (and the other way round) is corruption.
    assert!(is_bad(patched(|b| put64(b, 72, INCOMPAT_DATA_FILE))));
    let mut img = built(16, 1 << 30, None);
    let hl = u32::from_be_bytes(img[100..104].try_into().unwrap()) as usize;
    put32(&mut img, hl, EXT_DATA_FILE);
    put32(&mut img, hl + 4, 5);
    img[hl + 8..hl + 13].copy_from_slice(b"x.raw");
    put64(&mut img, hl + 16, 0); // end marker
    assert!(
        is_bad(parse_qcow2_header(&img)),
        "extension without the bit"
    );
    put64(&mut img, 72, INCOMPAT_DATA_FILE);
    assert_eq!(
        parse_qcow2_header(&img).unwrap().data_file.as_deref(),
        Some("x.raw")
    );
    img[hl + 8..hl + 13].copy_from_slice(b"../xx");
    assert!(is_bad(parse_qcow2_header(&img)), "name with ..");
}

#[test]
fn absurd_snapshot_counts_are_refused() {
    assert!(is_bad(patched(|b| put32(b, 60, u32::MAX))));
    assert!(is_bad(patched(|b| put32(b, 60, 65537))));
    let h = patched(|b| {
        put32(b, 60, 2);
        put64(b, 64, 0x30000);
    })
    .unwrap();
    assert_eq!((h.nb_snapshots, h.snapshots_offset), (2, 0x30000));
}
