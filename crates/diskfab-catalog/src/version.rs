//! Version ordering as the package managers define it: dpkg's (`[epoch:]upstream[-revision]`,
//! `~` sorts before everything) and rpm's `rpmvercmp` (alternating digit/alpha segments).

use std::cmp::Ordering;

/// Which ordering to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// dpkg (Debian, Ubuntu; also used for OS versions and unknown formats).
    #[default]
    Dpkg,
    /// rpm (Fedora, RHEL, SUSE).
    Rpm,
}

fn split_epoch(v: &str) -> (u64, &str) {
    match v.split_once(':') {
        Some((e, r)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), r)
        }
        _ => (0, v),
    }
}

/// dpkg's character order: `~` first, then end of string, then letters, then other characters.
fn dpkg_order(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

fn dpkg_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit prefix.
        loop {
            let ca = a.get(i).filter(|c| !c.is_ascii_digit()).copied();
            let cb = b.get(j).filter(|c| !c.is_ascii_digit()).copied();
            if ca.is_none() && cb.is_none() {
                break;
            }
            let (oa, ob) = (dpkg_order(ca), dpkg_order(cb));
            if oa != ob {
                return oa.cmp(&ob);
            }
            i += usize::from(ca.is_some());
            j += usize::from(cb.is_some());
        }
        // Digit run.
        let sa = i;
        while a.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let sb = j;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        let o = num_cmp(&a[sa..i], &b[sb..j]);
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Compares two digit strings numerically without overflow.
fn num_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let strip = |x: &[u8]| -> usize { x.iter().take_while(|c| **c == b'0').count() };
    let (a, b) = (&a[strip(a)..], &b[strip(b)..]);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn dpkg_cmp(a: &str, b: &str) -> Ordering {
    let ((ea, ra), (eb, rb)) = (split_epoch(a), split_epoch(b));
    let split = |r: &str| -> (String, String) {
        match r.rsplit_once('-') {
            Some((u, v)) => (u.into(), v.into()),
            None => (r.into(), String::new()),
        }
    };
    let ((ua, va), (ub, vb)) = (split(ra), split(rb));
    ea.cmp(&eb)
        .then_with(|| dpkg_part(&ua, &ub))
        .then_with(|| dpkg_part(&va, &vb))
}

fn rpm_segments(s: &str) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'~' || b[i] == b'^' {
            out.push((false, &s[i..i + 1]));
            i += 1;
            continue;
        }
        if !b[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let digit = b[i].is_ascii_digit();
        let st = i;
        while i < b.len() && b[i].is_ascii_alphanumeric() && b[i].is_ascii_digit() == digit {
            i += 1;
        }
        out.push((digit, &s[st..i]));
    }
    out
}

/// rpmvercmp on one component.
fn rpm_part(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (sa, sb) = (rpm_segments(a), rpm_segments(b));
    let mut k = 0;
    loop {
        match (sa.get(k), sb.get(k)) {
            (None, None) => return Ordering::Equal,
            (Some((_, "~")), Some((_, "~"))) | (Some((_, "^")), Some((_, "^"))) => {}
            (Some((_, "~")), _) => return Ordering::Less,
            (_, Some((_, "~"))) => return Ordering::Greater,
            (Some((_, "^")), None) => return Ordering::Greater,
            (None, Some((_, "^"))) => return Ordering::Less,
            (Some((_, "^")), _) => return Ordering::Less,
            (_, Some((_, "^"))) => return Ordering::Greater,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((da, x)), Some((db, y))) => {
                let o = match (da, db) {
                    (true, true) => num_cmp(x.as_bytes(), y.as_bytes()),
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    (false, false) => x.cmp(y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
        k += 1;
    }
}

fn rpm_cmp(a: &str, b: &str) -> Ordering {
    let ((ea, ra), (eb, rb)) = (split_epoch(a), split_epoch(b));
    let split = |r: &str| -> (String, String) {
        match r.rsplit_once('-') {
            Some((u, v)) => (u.into(), v.into()),
            None => (r.into(), String::new()),
        }
    };
    let ((ua, va), (ub, vb)) = (split(ra), split(rb));
    let rel = if va.is_empty() || vb.is_empty() {
        Ordering::Equal
    } else {
        rpm_part(&va, &vb)
    };
    ea.cmp(&eb).then_with(|| rpm_part(&ua, &ub)).then(rel)
}

/// Compares two versions with `scheme`.
pub fn compare(scheme: Scheme, a: &str, b: &str) -> Ordering {
    match scheme {
        Scheme::Dpkg => dpkg_cmp(a, b),
        Scheme::Rpm => rpm_cmp(a, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn dpkg_ordering_matches_dpkg_compare_versions() {
        for (a, b, o) in [
            ("1.0", "1.0", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1:1.0", "2.0", Greater),
            ("1.0-1", "1.0-2", Less),
            ("1.10", "1.9", Greater),
            ("1.0a", "1.0", Greater),
            ("12", "11.8", Greater),
            ("1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u2", Greater),
            ("2.36-9+deb12u4", "2.36-9", Greater),
            ("0001", "1", Equal),
        ] {
            assert_eq!(compare(Scheme::Dpkg, a, b), o, "{a} vs {b}");
        }
    }

    #[test]
    fn rpm_ordering_matches_rpmvercmp() {
        for (a, b, o) in [
            ("1.0", "1.0", Equal),
            ("1.0", "1.0.1", Less),
            ("1.0a", "1.0", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0^git1", "1.0", Greater),
            ("2.0-1.fc38", "2.0-2.fc38", Less),
            ("1:1.0", "9.9", Greater),
            ("10", "9", Greater),
            ("a", "1", Less),
        ] {
            assert_eq!(compare(Scheme::Rpm, a, b), o, "{a} vs {b}");
        }
    }
}
