//! Fuzzes the initramfs reader: every segment of concatenated cpio archives and gzip/xz/zstd/lz4
//! streams with zero padding between them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_inspect::fuzz_initramfs(data);
});
