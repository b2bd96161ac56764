//! Fuzzes the Windows registry hive reader through every lookup Windows inspection makes, after
//! transaction-log recovery with the log that may follow the hive in the input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_inspect::fuzz_hive(data);
});
