//! VDI (VirtualBox) checked against qemu-img: images it made read back exactly, images we write
//! pass `qemu-img check`/`compare`, hostile block maps are refused.

use diskfab_image::{create, BackingGate, CreateOptions, Format, Image, OpenOptions};
use std::path::Path;

mod common;
use common::{run, s};

fn open(p: &Path, w: bool) -> Image {
    Image::open(
        p,
        &OpenOptions {
            writable: w,
            gate: BackingGate::default(),
        },
    )
    .unwrap()
}

fn read_all(img: &Image) -> Vec<u8> {
    let d = img.dev();
    let mut v = vec![0u8; d.size() as usize];
    diskfab_storage::BlockDev::read_at(d.as_ref(), &mut v, 0).unwrap();
    v
}

#[test]
fn qemu_made_dynamic_and_static_vdi_read_exactly_like_qemu() {
    let t = tempfile::tempdir().unwrap();
    for extra in [&[][..], &["-o", "static=on"][..]] {
        let p = t.path().join("q.vdi");
        let _ = std::fs::remove_file(&p);
        let mut args = vec!["create", "-q", "-f", "vdi"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[s(&p), "8M"]);
        run("qemu-img", &args);
        run(
            "qemu-io",
            &[
                "-f",
                "vdi",
                "-c",
                "write -P 0x33 1000 3M",
                "-c",
                "write -P 0x44 7M 4096",
                s(&p),
            ],
        );
        let raw = t.path().join("q.raw");
        let _ = std::fs::remove_file(&raw);
        run("qemu-img", &["convert", "-O", "raw", s(&p), s(&raw)]);
        let img = open(&p, false);
        assert_eq!(img.format(), Format::Vdi);
        assert!(read_all(&img) == std::fs::read(&raw).unwrap(), "{extra:?}");
    }
}

#[test]
fn vdi_we_create_and_write_pass_qemu_img_check_and_compare() {
    let t = tempfile::tempdir().unwrap();
    for fixed in [false, true] {
        let p = t.path().join(format!("w{fixed}.vdi"));
        create(
            &p,
            &CreateOptions {
                format: Format::Vdi,
                size: Some(10 << 20),
                fixed,
                ..Default::default()
            },
        )
        .unwrap();
        let img = open(&p, true);
        img.dev()
            .write_at(&[0x5a; 300_000], (2 << 20) - 100)
            .unwrap();
        img.dev().write_at(&[0u8; 4096], 9 << 20).unwrap();
        img.flush().unwrap();
        drop(img);
        run("qemu-img", &["check", "-q", s(&p)]);
        let expect = t.path().join("e.raw");
        let _ = std::fs::remove_file(&expect);
        run(
            "qemu-img",
            &["create", "-q", "-f", "raw", s(&expect), "10M"],
        );
        run(
            "qemu-io",
            &[
                "-f",
                "raw",
                "-c",
                "write -P 0x5a 2097052 300000",
                s(&expect),
            ],
        );
        run("qemu-img", &["compare", "-q", s(&p), s(&expect)]);
        let info: serde_json::Value =
            serde_json::from_str(&run("qemu-img", &["info", "--output=json", s(&p)])).unwrap();
        assert_eq!(info["virtual-size"], 10u64 << 20);
    }
}

#[test]
fn hostile_vdi_block_maps_and_sizes_are_refused() {
    use std::os::unix::fs::FileExt;
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("h.vdi");
    run("qemu-img", &["create", "-q", "-f", "vdi", s(&p), "8M"]);
    run("qemu-io", &["-f", "vdi", "-c", "write -P 1 0 1M", s(&p)]);
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.write_all_at(&77u32.to_le_bytes(), 512 + 4).unwrap(); // block 1 -> data block 77 (not allocated)
    let e = Image::open(&p, &OpenOptions::default()).unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
    f.write_all_at(&u32::MAX.to_le_bytes(), 512 + 4).unwrap();
    f.write_all_at(&u64::MAX.to_le_bytes(), 0x170).unwrap(); // absurd disk size
    let e = Image::open(&p, &OpenOptions::default()).unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
}
