//! Fuzzes the package database parsers (rpm header blobs, sqlite rpmdb files, dpkg status, apk,
//! pacman) and netplan YAML; the first byte selects the parser.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_inspect::fuzz_packages(data);
});
