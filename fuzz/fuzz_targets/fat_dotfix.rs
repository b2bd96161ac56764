//! Fuzzes the FAT directory repair run after each mkdir (boot sector geometry, FAT chains,
//! directory entries) over a volume given as bytes; the first byte selects FAT12/16/32.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_fat::fuzz_dotfix(data);
});
