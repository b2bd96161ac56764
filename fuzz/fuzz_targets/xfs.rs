//! Fuzzes the XFS parsers: superblock, inodes (with their short-form directory and attribute
//! forks, extent lists and block-map B+tree walks), directory data blocks, B+tree blocks,
//! attribute leaf/node/remote blocks and the clean-log check.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_xfs::fuzz_xfs(data);
});
