//! The user-facing operations, each defined once here and called by the CLI (and later the
//! server): file operations inside images, host copies, info, create/clone, mkfs, partitioning.

pub mod build;
pub mod catalog;
mod convert;
pub mod customize;
pub mod delta;
pub mod files;
pub mod hostcopy;
pub mod images;
pub mod info;
pub mod inspect;
pub mod inspect_dev;
pub mod inspect_xml;
pub mod manage;
mod names;
pub mod stamp;
mod stamp_plan;
mod stamp_write;
mod timefmt;
mod xattr_host;

pub use timefmt::format_time;
