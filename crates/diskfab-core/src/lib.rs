//! diskfab application core.
//!
//! Opens images down to one filesystem ([`open::Disk`], [`open::FsSession`]) using the format,
//! partition and filesystem layers, and defines every user-facing operation once
//! ([`ops`]); the CLI (and later the server) only parse arguments and print results.
#![deny(missing_docs)]

pub mod drivers;
pub mod open;
pub mod ops;
pub mod select;
pub mod swap;
pub mod volumes;

pub use diskfab_catalog as catalog;
pub use diskfab_customize as customize;
pub use diskfab_delta as delta;
pub use diskfab_fs as fs;
pub use diskfab_image as image;
pub use diskfab_lvm as lvm;
pub use diskfab_part as part;
pub use diskfab_storage as storage;
