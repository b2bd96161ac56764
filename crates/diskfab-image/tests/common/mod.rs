//! Helpers shared by the image-format oracle tests (each test file uses the ones it needs).
#![allow(dead_code)]

use diskfab_image::{BackingGate, Image, OpenOptions};
use diskfab_storage::Error;
use std::path::Path;
use std::process::Command;

/// Runs a reference tool, failing the test with its output unless it succeeds; returns stdout.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (run scripts/deps.sh)"));
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A test path as `&str` (test paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Opens an image with the default backing gate.
pub fn try_open(p: &Path, writable: bool) -> Result<Image, Error> {
    Image::open(
        p,
        &OpenOptions {
            writable,
            gate: BackingGate::default(),
        },
    )
}

/// The whole guest view of an image.
pub fn read_all(img: &Image) -> Vec<u8> {
    let d = img.dev();
    let mut v = vec![0u8; d.size() as usize];
    d.read_at(&mut v, 0).unwrap();
    v
}
