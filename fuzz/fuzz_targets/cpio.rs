//! Fuzzes the cpio (newc) entry walker alone, without the initramfs decompressors.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_inspect::initramfs::fuzz_cpio(data);
});
