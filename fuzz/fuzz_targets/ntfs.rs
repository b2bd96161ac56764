//! Fuzzes the NTFS reader: the first byte picks a whole volume (boot sector, $MFT with its
//! attribute list, directory B+trees, streams) or one structure (MFT record, INDX record,
//! runlist, LZNT1 unit).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_ntfs::fuzz_ntfs(data);
});
