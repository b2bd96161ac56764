//! SELinux file labelling as the guest's own policy defines it: `/etc/selinux/config`, the
//! `file_contexts` family (`file_contexts`, `.homedirs`, `.local`) and the path aliases of
//! `.subs_dist` / `.subs`, looked up with libselinux 3.4's `selabel_lookup` semantics:
//!
//! - a line is `REGEX [TYPE] CONTEXT` (C `isspace` separators, fields past the third ignored,
//!   `#` comments, non-ASCII in a field or an unknown TYPE rejects the whole policy);
//! - files are read base, `.homedirs`, `.local`; then the specs whose regex has a meta character
//!   (`.^$?*+|[({`, a backslash escaping the next byte) keep their order at the front and the
//!   plain paths follow in their order; lookup scans from the end, so a plain path beats any
//!   regex and among equals the last line wins;
//! - each regex is matched as `^REGEX$` with PCRE2's `DOTALL` (`$` also before a final newline),
//!   over bytes, unanchored search (a top-level `|` splits the anchors as in PCRE);
//! - a spec with a TYPE (`--` file, `-d`, `-l`, `-c`, `-b`, `-p`, `-s`) matches that file type
//!   only; a spec whose first path component has no meta character (its *stem*) is only tried
//!   for paths with the same first component (libselinux's stem filter, exact for such specs);
//! - the key is first rewritten by the `.subs` aliases, then `.subs_dist` (each list tried from
//!   its last line back; `SRC` matches a whole leading path prefix);
//! - `<<none>>` (or no match) means no label.
//!
//! Regexes compile lazily (as libselinux does) with size limits; parsing is a pure function
//! over bytes, bounded in size and count.

use diskfab_storage::{Error, Result};
use regex::bytes::{Regex, RegexBuilder};
use std::cell::{Cell, OnceCell};

/// Largest policy file read (Fedora's `file_contexts` is under 1 MiB).
pub const MAX_FILE: usize = 16 << 20;
/// Most specs accepted from all files together.
pub const MAX_SPECS: usize = 100_000;
/// Longest regex accepted (real ones are under 100 bytes).
pub const MAX_REGEX: usize = 4096;
/// Compiled size limit of one regex, and of its lazy DFA cache.
pub const REGEX_SIZE_LIMIT: usize = 256 << 10;
/// Budget for all regexes compiled by one policy, counted as `64 × pattern length` each.
pub const COMPILE_BUDGET: usize = 256 << 20;
/// Most path aliases in a `.subs` file.
pub const MAX_SUBS: usize = 10_000;

/// File type bits (`S_IFMT`) of the node being labelled.
pub mod mode {
    /// Regular file.
    pub const REG: u32 = 0o100000;
    /// Directory.
    pub const DIR: u32 = 0o040000;
    /// Symbolic link.
    pub const LNK: u32 = 0o120000;
    /// Character device.
    pub const CHR: u32 = 0o020000;
    /// Block device.
    pub const BLK: u32 = 0o060000;
    /// FIFO.
    pub const FIFO: u32 = 0o010000;
    /// Socket.
    pub const SOCK: u32 = 0o140000;
}

/// What `/etc/selinux/config` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// False only for `SELINUX=disabled` (a missing or unknown value still loads the policy
    /// at boot, as libselinux's `selinux_init_load_policy` does).
    pub enabled: bool,
    /// `SELINUXTYPE` (default `targeted`), checked to be one safe path component.
    pub policy_type: String,
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn trim_c(s: &[u8]) -> &[u8] {
    let a = s.iter().position(|&b| !is_c_space(b)).unwrap_or(s.len());
    let e = s.iter().rposition(|&b| !is_c_space(b)).map_or(a, |i| i + 1);
    &s[a..e.max(a)]
}

/// Parses `/etc/selinux/config`.
pub fn parse_config(data: &[u8]) -> Result<Config> {
    let mut enabled = true;
    let mut policy_type = b"targeted".to_vec();
    for line in data.split(|&b| b == b'\n') {
        let l = trim_c(line);
        if let Some(v) = strip_prefix_ci(l, b"SELINUXTYPE=") {
            policy_type = trim_c(v).to_vec();
        } else if let Some(v) = l.strip_prefix(b"SELINUX=") {
            enabled = strip_prefix_ci(v, b"disabled").is_none();
        }
    }
    let ok = !policy_type.is_empty()
        && policy_type.len() <= 255
        && policy_type != b"."
        && policy_type != b".."
        && policy_type
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !ok {
        return Err(Error::bad(format!(
            "/etc/selinux/config: SELINUXTYPE={:?} is not a policy name",
            String::from_utf8_lossy(&policy_type)
        )));
    }
    Ok(Config {
        enabled,
        policy_type: String::from_utf8_lossy(&policy_type).into_owned(),
    })
}

fn strip_prefix_ci<'a>(s: &'a [u8], p: &[u8]) -> Option<&'a [u8]> {
    (s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p)).then(|| &s[p.len()..])
}

/// One `file_contexts` line.
#[derive(Debug)]
struct Spec {
    regex_str: String,
    mode: u32,
    /// `None` for `<<none>>`.
    context: Option<String>,
    stem: Option<String>,
    has_meta: bool,
    compiled: OnceCell<std::result::Result<Regex, String>>,
}

/// A loaded policy: specs in lookup order and the path aliases.
#[derive(Debug)]
pub struct Policy {
    specs: Vec<Spec>,
    subs: Vec<(String, String)>,
    dist_subs: Vec<(String, String)>,
    spent: Cell<usize>,
}

const META: &[u8] = b".^$?*+|[({";

fn has_meta(re: &str) -> bool {
    let b = re.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        if META.contains(&b[i]) {
            return true;
        }
        i += 1;
    }
    false
}

/// The spec's stem: its first path component when that has no regex character.
fn spec_stem(re: &str) -> Option<String> {
    let b = re.as_bytes();
    let end = 1 + b.get(1..)?.iter().position(|&c| c == b'/')?;
    (!b[..end].iter().any(|c| META.contains(c))).then(|| re[..end].to_string())
}

fn file_stem(key: &[u8]) -> Option<&[u8]> {
    let end = 1 + key.get(1..)?.iter().position(|&c| c == b'/')?;
    Some(&key[..end])
}

fn type_mode(t: &str) -> Option<u32> {
    let b = t.as_bytes();
    if b.len() != 2 || b[0] != b'-' {
        return None;
    }
    Some(match b[1] {
        b'b' => mode::BLK,
        b'c' => mode::CHR,
        b'd' => mode::DIR,
        b'p' => mode::FIFO,
        b'l' => mode::LNK,
        b's' => mode::SOCK,
        b'-' => mode::REG,
        _ => return None,
    })
}

/// Splits a line into at most three fields as libselinux's `read_spec_entries` does.
fn fields(line: &[u8]) -> std::result::Result<Vec<&[u8]>, &'static str> {
    let line = line.split(|&b| b == 0).next().unwrap_or_default();
    let mut out = Vec::new();
    let mut rest = line;
    while out.len() < 3 {
        let start = rest
            .iter()
            .position(|&b| !is_c_space(b))
            .unwrap_or(rest.len());
        rest = &rest[start..];
        if out.is_empty() && rest.first() == Some(&b'#') {
            return Ok(out);
        }
        let len = rest
            .iter()
            .position(|&b| is_c_space(b))
            .unwrap_or(rest.len());
        if len == 0 {
            break;
        }
        if !rest[..len].is_ascii() {
            return Err("non-ASCII characters found");
        }
        out.push(&rest[..len]);
        rest = &rest[len..];
    }
    Ok(out)
}

fn parse_specs(name: &str, data: &[u8], out: &mut Vec<Spec>) -> Result<()> {
    if data.len() > MAX_FILE {
        return Err(Error::bad(format!("{name}: larger than {MAX_FILE} bytes")));
    }
    for (n, line) in data.split(|&b| b == b'\n').enumerate() {
        let bad = |m: &str| Error::bad(format!("{name} line {}: {m}", n + 1));
        let f = fields(line).map_err(bad)?;
        let (re, ty, ctx) = match f.as_slice() {
            [] => continue,
            [_] => return Err(bad("line has invalid format")),
            [re, ctx] => (*re, None, *ctx),
            [re, ty, ctx, ..] => (*re, Some(*ty), *ctx),
        };
        if out.len() >= MAX_SPECS {
            return Err(bad(&format!("more than {MAX_SPECS} specifications")));
        }
        if re.len() > MAX_REGEX {
            return Err(bad(&format!("regex longer than {MAX_REGEX} bytes")));
        }
        // All fields are ASCII (checked by `fields`).
        let re = String::from_utf8_lossy(re).into_owned();
        let mode = match ty {
            None => 0,
            Some(t) => {
                let t = String::from_utf8_lossy(t);
                type_mode(&t).ok_or_else(|| bad(&format!("invalid type {t:?}")))?
            }
        };
        let ctx = String::from_utf8_lossy(ctx).into_owned();
        out.push(Spec {
            stem: spec_stem(&re),
            has_meta: has_meta(&re),
            regex_str: re,
            mode,
            context: (ctx != "<<none>>").then_some(ctx),
            compiled: OnceCell::new(),
        });
    }
    Ok(())
}

/// Parses a `.subs` / `.subs_dist` file into (src, dst) pairs in lookup order (last line
/// first, as libselinux prepends each line to its list).
pub fn parse_subs(name: &str, data: &[u8]) -> Result<Vec<(String, String)>> {
    if data.len() > MAX_FILE {
        return Err(Error::bad(format!("{name}: larger than {MAX_FILE} bytes")));
    }
    let mut out = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        let l = trim_c(line.split(|&b| b == 0).next().unwrap_or_default());
        if l.first() == Some(&b'#') {
            continue;
        }
        let mut it = l.split(|&b| is_c_space(b)).filter(|w| !w.is_empty());
        let (Some(src), Some(dst)) = (it.next(), it.next()) else {
            continue;
        };
        if out.len() >= MAX_SUBS {
            return Err(Error::bad(format!("{name}: more than {MAX_SUBS} aliases")));
        }
        out.push((
            String::from_utf8_lossy(src).into_owned(),
            String::from_utf8_lossy(dst).into_owned(),
        ));
    }
    out.reverse();
    Ok(out)
}

fn sub_one(list: &[(String, String)], key: &[u8]) -> Option<Vec<u8>> {
    for (src, dst) in list {
        let s = src.as_bytes();
        if key.starts_with(s) && matches!(key.get(s.len()), None | Some(b'/')) {
            let cut = if key.get(s.len()) == Some(&b'/') && dst == "/" {
                s.len() + 1
            } else {
                s.len()
            };
            let mut out = dst.as_bytes().to_vec();
            out.extend_from_slice(&key[cut..]);
            return Some(out);
        }
    }
    None
}

/// Rewrites every unescaped `$` outside a bracket class as PCRE's "end, or before a final
/// newline", which the regex crate spells `(?:\n?\z)` (the match is only tested, not used).
fn pcre_dollars(re: &str) -> String {
    let mut out = String::with_capacity(re.len() + 16);
    let mut chars = re.chars().peekable();
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some(n) = chars.next() {
                    out.push(n);
                }
                class_start = false;
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push(c);
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                continue;
            }
            ']' if in_class && !class_start => in_class = false,
            '$' if !in_class => {
                out.push_str("(?:\n?\\z)");
                continue;
            }
            _ => {}
        }
        class_start = false;
        out.push(c);
    }
    out
}

fn compile(re: &str) -> std::result::Result<Regex, String> {
    let mut anchored = format!("^{re}");
    let trailing = re.bytes().rev().take_while(|&b| b == b'\\').count();
    if trailing % 2 == 0 {
        anchored.push('$');
    }
    RegexBuilder::new(&pcre_dollars(&anchored))
        .unicode(false)
        .dot_matches_new_line(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("regex {re:?} does not compile: {e}"))
}

impl Policy {
    /// Builds a policy from the `file_contexts` files in libselinux's load order (base,
    /// `.homedirs`, `.local`; `None` = absent) and the two alias files.
    pub fn parse(
        files: &[(&str, &[u8])],
        subs: Option<&[u8]>,
        subs_dist: Option<&[u8]>,
    ) -> Result<Policy> {
        let mut specs = Vec::new();
        for (name, data) in files {
            parse_specs(name, data, &mut specs)?;
        }
        // Regexes first, plain paths last, each group in file order.
        let (mut ordered, plain): (Vec<Spec>, Vec<Spec>) =
            specs.into_iter().partition(|s| s.has_meta);
        ordered.extend(plain);
        Ok(Policy {
            specs: ordered,
            subs: match subs {
                Some(d) => parse_subs("file_contexts.subs", d)?,
                None => Vec::new(),
            },
            dist_subs: match subs_dist {
                Some(d) => parse_subs("file_contexts.subs_dist", d)?,
                None => Vec::new(),
            },
            spent: Cell::new(0),
        })
    }

    /// Number of specifications.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// True when the policy has no specification.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// The key after alias substitution (`.subs` first, then `.subs_dist` on its result).
    pub fn substitute(&self, key: &[u8]) -> Vec<u8> {
        match sub_one(&self.subs, key) {
            Some(k) => sub_one(&self.dist_subs, &k).unwrap_or(k),
            None => sub_one(&self.dist_subs, key).unwrap_or_else(|| key.to_vec()),
        }
    }

    fn regex<'a>(&self, s: &'a Spec) -> Result<&'a Regex> {
        let r = s.compiled.get_or_init(|| {
            let cost = s.regex_str.len().saturating_add(1).saturating_mul(64);
            let spent = self.spent.get().saturating_add(cost);
            if spent > COMPILE_BUDGET {
                return Err("the policy's regexes exceed the compile budget".into());
            }
            self.spent.set(spent);
            compile(&s.regex_str)
        });
        r.as_ref()
            .map_err(|e| Error::bad(format!("file_contexts: {e}")))
    }

    /// The label for `path` (absolute; duplicate and trailing slashes are removed as
    /// libselinux does) of file type `mode` (`S_IFMT` bits, 0 = any); `None` = no label.
    pub fn lookup(&self, path: &[u8], mode: u32) -> Result<Option<&str>> {
        let mut key: Vec<u8> = Vec::with_capacity(path.len());
        for (i, &b) in path.iter().enumerate() {
            if !(b == b'/' && path.get(i + 1) == Some(&b'/')) {
                key.push(b);
            }
        }
        if key.is_empty() {
            return Err(Error::Invalid("SELinux lookup of an empty path".into()));
        }
        if key.len() > 1 && key.last() == Some(&b'/') {
            key.pop();
        }
        let key = self.substitute(&key);
        let fstem = file_stem(&key);
        let mode = mode & 0o170000;
        for s in self.specs.iter().rev() {
            let stem_ok = match &s.stem {
                None => true,
                Some(st) => fstem == Some(st.as_bytes()),
            };
            if !stem_ok || (mode != 0 && s.mode != 0 && mode != s.mode) {
                continue;
            }
            if self.regex(s)?.is_match(&key) {
                return Ok(s.context.as_deref());
            }
        }
        Ok(None)
    }
}

/// Fuzz entry: `data` is a `file_contexts` file, then (after a line `%%`) paths to look up.
/// Returns the number of paths that got a label.
pub fn fuzz_file_contexts(data: &[u8]) -> usize {
    let (fc, keys) = match data.windows(3).position(|w| w == b"%%\n") {
        Some(i) => (&data[..i], &data[i + 3..]),
        None => (data, &b"/etc/passwd\n/usr/bin/ls\n/home/u/.ssh"[..]),
    };
    let _ = parse_config(fc);
    let aliases = Policy::parse(&[], Some(fc), Some(fc)).ok();
    let Ok(p) = Policy::parse(&[("fuzz", fc)], None, None) else {
        return 0;
    };
    let mut n = 0;
    for k in keys.split(|&b| b == b'\n').take(64) {
        if let Some(a) = &aliases {
            let _ = a.substitute(k);
        }
        for m in [0, mode::REG, mode::DIR, mode::LNK] {
            if let Ok(Some(_)) = p.lookup(k, m) {
                n += 1;
            }
        }
    }
    n
}

#[cfg(test)]
#[path = "selinux_tests.rs"]
mod tests;
