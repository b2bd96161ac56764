//! Fuzzes the btrfs superblock, tree node and item parsers and the zlib/LZO/zstd decoders.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_btrfs::fuzz_btrfs(data);
});
