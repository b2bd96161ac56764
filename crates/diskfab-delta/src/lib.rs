//! diskfab deltas (seed 001): compare two guest filesystems file by file, store the difference
//! as a self-verifying delta file, and apply it to other images — verifying what it expects to
//! find first, and trusting none of the paths it carries.
#![deny(missing_docs)]

pub mod apply;
pub mod create;
pub mod diff;
pub mod format;
pub mod tree;
