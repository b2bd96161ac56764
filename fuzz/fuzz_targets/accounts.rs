//! Fuzzes /etc/passwd, /etc/shadow and /etc/group (`passwd NUL shadow NUL group`) as inspection
//! reads them (users, password state, admin groups) and as customization edits them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_inspect::fuzz::fuzz_accounts(data);
    diskfab_customize::accounts::fuzz_tables(data);
});
