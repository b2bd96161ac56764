//! Linux swap areas (`mkswap`): recognised so that `info` names them and `inspect` resolves
//! fstab's swap lines (`UUID=`, `LABEL=`, `/dev/mapper/VG-swap`) as virt-inspector does. Only the
//! header page is read; nothing else of a swap area is interpreted.

use diskfab_storage::{bytes, DevRef};
use serde::Serialize;

/// What the swap header says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwapInfo {
    /// The page size the area was made for (where the signature was found).
    pub page_size: u32,
    /// The UUID, as blkid prints it; `None` when all zero.
    pub uuid: Option<String>,
    /// The label, if any.
    pub label: Option<String>,
}

/// The page sizes mkswap writes for (x86 4K, arm64/ppc64 16K and 64K).
const PAGE_SIZES: [u32; 3] = [4096, 16384, 65536];

/// Parses a swap header from the first bytes of a volume (at least one page): the signature
/// `SWAPSPACE2` ends the page; version 1, UUID at byte 1036, label at 1052.
pub fn parse(head: &[u8]) -> Option<SwapInfo> {
    let page_size = PAGE_SIZES
        .into_iter()
        .find(|&p| bytes::slice(head, p as usize - 10, 10).is_ok_and(|s| s == b"SWAPSPACE2"))?;
    if bytes::le_u32(head, 1024).ok()? != 1 {
        return None;
    }
    let u = bytes::slice(head, 1036, 16).ok()?;
    let uuid = u.iter().any(|&b| b != 0).then(|| {
        let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    });
    let l = bytes::slice(head, 1052, 16).ok()?;
    let end = l.iter().position(|&b| b == 0).unwrap_or(l.len());
    let label = (end > 0).then(|| String::from_utf8_lossy(&l[..end]).into_owned());
    Some(SwapInfo {
        page_size,
        uuid,
        label,
    })
}

/// Reads the header page of `dev` and parses it; `None` when it is no swap area (or unreadable).
pub fn probe(dev: &DevRef) -> Option<SwapInfo> {
    let len = (PAGE_SIZES[2] as u64).min(dev.size()) as usize;
    let mut head = vec![0u8; len];
    dev.read_at(&mut head, 0).ok()?;
    parse(&head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(page: usize, uuid: [u8; 16], label: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; page];
        b[1024..1028].copy_from_slice(&1u32.to_le_bytes());
        b[1036..1052].copy_from_slice(&uuid);
        b[1052..1052 + label.len()].copy_from_slice(label);
        b[page - 10..].copy_from_slice(b"SWAPSPACE2");
        b
    }

    #[test]
    fn a_mkswap_header_gives_its_uuid_label_and_page_size() {
        let u = [
            0x3d, 0x4c, 0x5b, 0x6a, 0x79, 0x80, 0x4a, 0x1b, 0x8c, 0x2d, 0x3e, 0x4f, 0x5a, 0x6b,
            0x7c, 0x8d,
        ];
        let s = parse(&header(4096, u, b"swap0")).expect("swap");
        assert_eq!(
            s.uuid.as_deref(),
            Some("3d4c5b6a-7980-4a1b-8c2d-3e4f5a6b7c8d")
        );
        assert_eq!(s.label.as_deref(), Some("swap0"));
        assert_eq!(s.page_size, 4096);
        let s = parse(&header(65536, [0; 16], b"")).expect("64K swap");
        assert_eq!((s.page_size, s.uuid, s.label), (65536, None, None));
    }

    #[test]
    fn short_buffers_wrong_versions_and_other_bytes_are_not_swap() {
        let h = header(4096, [1; 16], b"x");
        assert!(parse(&h[..4000]).is_none());
        let mut v2 = h.clone();
        v2[1024] = 2;
        assert!(parse(&v2).is_none());
        assert!(parse(&vec![0u8; 65536]).is_none());
    }
}
