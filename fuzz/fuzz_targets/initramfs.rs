//! Fuzzes the initramfs reader: concatenated cpio archives and gzip/xz/zstd/lz4 segments.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| diskfab_inspect::fuzz_initramfs(data));
