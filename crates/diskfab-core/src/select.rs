//! `-p`: which volume of a disk to work on — a partition number or an LVM logical volume
//! (`vg/lv`, `/dev/vg/lv`, `/dev/mapper/vg-lv` with dashes inside names doubled).

use diskfab_storage::Error;
use std::fmt;
use std::str::FromStr;

/// A volume selection given with `-p`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSel {
    /// Partition N (0: the whole disk when there is no partition table).
    Number(u32),
    /// Logical volume `lv` of volume group `vg`.
    Lv {
        /// Volume group name.
        vg: String,
        /// Logical volume name.
        lv: String,
    },
}

impl fmt::Display for VolumeSel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VolumeSel::Number(n) => write!(f, "{n}"),
            VolumeSel::Lv { vg, lv } => write!(f, "{vg}/{lv}"),
        }
    }
}

/// Splits a device-mapper name `vg-lv` (dashes inside names doubled) into its two names.
pub fn split_mapper_name(s: &str) -> Option<(String, String)> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'-' {
            if b.get(i + 1) == Some(&b'-') {
                i += 2;
                continue;
            }
            let (vg, lv) = (&s[..i], &s[i + 1..]);
            if vg.is_empty() || lv.is_empty() {
                return None;
            }
            return Some((vg.replace("--", "-"), lv.replace("--", "-")));
        }
        i += 1;
    }
    None
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_.+-".contains(&c))
}

impl FromStr for VolumeSel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(n) = s.parse::<u32>() {
            return Ok(VolumeSel::Number(n));
        }
        let usage = || {
            format!("{s:?}: expected a partition number N, VG/LV, /dev/VG/LV or /dev/mapper/VG-LV")
        };
        let (vg, lv) = if let Some(m) = s.strip_prefix("/dev/mapper/") {
            split_mapper_name(m).ok_or_else(usage)?
        } else {
            let rest = s.strip_prefix("/dev/").unwrap_or(s);
            let (vg, lv) = rest.split_once('/').ok_or_else(usage)?;
            (vg.to_string(), lv.to_string())
        };
        if !valid_name(&vg) || !valid_name(&lv) {
            return Err(usage());
        }
        Ok(VolumeSel::Lv { vg, lv })
    }
}

impl From<u32> for VolumeSel {
    fn from(n: u32) -> Self {
        VolumeSel::Number(n)
    }
}

/// Parses a selection, for callers outside the CLI.
pub fn parse(s: &str) -> diskfab_storage::Result<VolumeSel> {
    s.parse().map_err(Error::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(vg: &str, lv: &str) -> VolumeSel {
        VolumeSel::Lv {
            vg: vg.into(),
            lv: lv.into(),
        }
    }

    #[test]
    fn every_lv_spelling_selects_the_same_volume() {
        assert_eq!("2".parse::<VolumeSel>().unwrap(), VolumeSel::Number(2));
        for s in ["rl/root", "/dev/rl/root", "/dev/mapper/rl-root"] {
            assert_eq!(s.parse::<VolumeSel>().unwrap(), lv("rl", "root"), "{s}");
        }
        assert_eq!(
            "/dev/mapper/my--vg-st--data".parse::<VolumeSel>().unwrap(),
            lv("my-vg", "st-data")
        );
        assert_eq!(
            "/dev/my-vg/st-data".parse::<VolumeSel>().unwrap(),
            lv("my-vg", "st-data")
        );
    }

    #[test]
    fn malformed_selections_are_refused() {
        for s in [
            "",
            "root",
            "/dev/mapper/rlroot",
            "/dev/mapper/-root",
            "a/b/c",
            "rl/",
            "x y/z",
            "-1",
        ] {
            assert!(s.parse::<VolumeSel>().is_err(), "{s:?}");
        }
    }
}
