//! The stamp plan file: the replay analysis (templates, varying files, the shared chunks'
//! previous contents) in a self-checking binary form — `DFSTAMP1`, a length-prefixed JSON
//! header, raw chunks, and a BLAKE3 of everything before it. Pure encode/decode (no I/O);
//! decoding trusts nothing: bounded, checked, and `None` on any doubt.

use crate::record::Writes;
use crate::replay::{Analysis, Group};
use diskfab_fs::Timespec;
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"DFSTAMP1";
/// Largest plan accepted.
pub const MAX_PLAN: u64 = 1 << 30;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    fingerprint: String,
    clock: (i64, u32),
    chunk: u64,
    groups: Vec<Group>,
    group_offsets: Vec<Vec<u64>>,
    committed: Vec<u64>,
}

/// A decoded plan.
pub struct Plan {
    /// The analysis (its `common` holds the shared chunks' *previous* contents).
    pub analysis: Analysis,
    /// The clock the templates were recorded with.
    pub clock: Timespec,
}

/// Encodes the analysis with `undo` (the previous contents of the shared chunks).
pub fn encode(fingerprint: &str, a: &Analysis, undo: &Writes, clock: Timespec) -> Vec<u8> {
    let h = Header {
        fingerprint: fingerprint.to_string(),
        clock: (clock.sec, clock.nsec),
        chunk: a.chunk,
        groups: a.groups.clone(),
        group_offsets: a
            .groups
            .iter()
            .map(|g| g.writes.keys().copied().collect())
            .collect(),
        committed: undo.keys().copied().collect(),
    };
    let hj = serde_json::to_vec(&h).unwrap_or_default();
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(hj.len() as u64).to_le_bytes());
    out.extend_from_slice(&hj);
    for g in &a.groups {
        for v in g.writes.values() {
            out.extend_from_slice(v);
        }
    }
    for v in undo.values() {
        out.extend_from_slice(v);
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Decodes and verifies a plan of job `fingerprint`.
pub fn decode(d: &[u8], fingerprint: &str) -> Option<Plan> {
    if d.len() as u64 > MAX_PLAN {
        return None;
    }
    let (body, sum) = d.split_at_checked(d.len().checked_sub(32)?)?;
    if blake3::hash(body).as_bytes() != sum || !body.starts_with(MAGIC) {
        return None;
    }
    let hl = usize::try_from(u64::from_le_bytes(body.get(8..16)?.try_into().ok()?)).ok()?;
    let hj = body.get(16..16usize.checked_add(hl)?)?;
    let h: Header = serde_json::from_slice(hj).ok()?;
    if h.fingerprint != fingerprint
        || !h.chunk.is_power_of_two()
        || !(512..=65536).contains(&h.chunk)
        || h.groups.len() != h.group_offsets.len()
    {
        return None;
    }
    let mut rest = &body[16 + hl..];
    let c = h.chunk as usize;
    let mut take = || -> Option<Vec<u8>> {
        let (a, b) = rest.split_at_checked(c)?;
        rest = b;
        Some(a.to_vec())
    };
    let mut groups = h.groups;
    for (g, offs) in groups.iter_mut().zip(&h.group_offsets) {
        g.writes = offs
            .iter()
            .map(|o| Some((*o, take()?)))
            .collect::<Option<Writes>>()?;
    }
    let common = h
        .committed
        .iter()
        .map(|o| Some((*o, take()?)))
        .collect::<Option<Writes>>()?;
    if !rest.is_empty() {
        return None;
    }
    Some(Plan {
        analysis: Analysis {
            groups,
            group_of: Vec::new(),
            common,
            chunk: h.chunk,
        },
        clock: Timespec {
            sec: h.clock.0,
            nsec: h.clock.1,
        },
    })
}

/// Fuzz entry point for everything a user or an image hands the customization layer as bytes:
/// the first byte picks the parser. Must never panic. Returns 1 when the parser accepted the
/// input.
pub fn fuzz_inputs(data: &[u8]) -> usize {
    let Some((&sel, rest)) = data.split_first() else {
        return 0;
    };
    let text = String::from_utf8_lossy(rest);
    match sel % 4 {
        0 => {
            let parsed = crate::instances::parse(&text, "{{name}}");
            let ok = usize::from(parsed.is_ok());
            if let Ok(insts) = parsed {
                let op = crate::ops::Op::new("network-static", "eth0:{{ip}}/24:10.0.0.1");
                if let Ok(op) = op {
                    let all: Vec<_> = insts
                        .iter()
                        .filter_map(|i| {
                            Some((
                                i.clone(),
                                crate::instances::render_ops(std::slice::from_ref(&op), i).ok()?,
                            ))
                        })
                        .collect();
                    let _ = crate::instances::bulk_check(&all);
                }
            }
            ok
        }
        1 => usize::from(crate::spec::parse(&text).is_ok()),
        2 => {
            let _ = crate::system::check_hostname(&text);
            usize::from(crate::network::parse_static(&text).is_ok())
        }
        _ => usize::from(decode(rest, "").is_some()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::Mode;

    #[test]
    fn plans_round_trip_and_any_flipped_byte_is_refused() {
        let mut w = Writes::new();
        w.insert(4096, vec![7u8; 4096]);
        let a = Analysis {
            groups: vec![Group {
                shape: "s".into(),
                members: vec![0, 1],
                mode: Mode::Replay,
                reason: None,
                varying: Vec::new(),
                writes: w.clone(),
            }],
            group_of: vec![0, 0],
            common: Writes::new(),
            chunk: 4096,
        };
        let clock = Timespec { sec: 5, nsec: 6 };
        let bytes = encode("fp", &a, &w, clock);
        let p = decode(&bytes, "fp").unwrap();
        assert_eq!(p.analysis.groups[0].writes, w);
        assert_eq!(p.analysis.common, w);
        assert_eq!(p.clock, clock);
        assert!(decode(&bytes, "other job").is_none());
        for i in [0, 9, 40, bytes.len() / 2, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert!(decode(&b, "fp").is_none(), "flipped byte {i}");
        }
        assert!(decode(&bytes[..bytes.len() - 5], "fp").is_none());
        for n in 0..64 {
            fuzz_inputs(&bytes[..n.min(bytes.len())]);
        }
    }
}
