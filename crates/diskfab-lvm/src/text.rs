//! Parser of LVM2's text metadata format: `name = value` assignments and `name { ... }`
//! sections, values being quoted strings, integers or flat `[ ... ]` lists; `#` comments.
//! Hostile text is bounded: section depth, item count and string length are capped, duplicate
//! names in one section are refused, and nothing recurses deeper than [`MAX_DEPTH`].

use diskfab_storage::{Error, Result};

/// Deepest section nesting accepted (LVM writes four: VG, list, LV, segment).
pub const MAX_DEPTH: usize = 16;
/// Most items (assignments, sections, list elements) in one text.
pub const MAX_ITEMS: usize = 1 << 20;
/// Longest quoted string.
const MAX_STRING: usize = 1 << 16;

/// A value of an assignment.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A quoted string (escapes removed).
    Str(String),
    /// An integer.
    Int(i64),
    /// A flat list of strings and integers.
    List(Vec<Value>),
}

/// One entry of a section.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `name = value`.
    Value(Value),
    /// `name { ... }`.
    Section(Section),
}

/// A section: its entries in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Section {
    /// Entries by name, in file order; names are unique.
    pub items: Vec<(String, Item)>,
}

impl Section {
    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&Item> {
        self.items.iter().find(|(n, _)| n == name).map(|(_, i)| i)
    }
    /// The sub-section called `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        match self.get(name)? {
            Item::Section(s) => Some(s),
            Item::Value(_) => None,
        }
    }
    /// Every sub-section with its name.
    pub fn sections(&self) -> impl Iterator<Item = (&str, &Section)> {
        self.items.iter().filter_map(|(n, i)| match i {
            Item::Section(s) => Some((n.as_str(), s)),
            Item::Value(_) => None,
        })
    }
    /// The value called `name`.
    pub fn value(&self, name: &str) -> Option<&Value> {
        match self.get(name)? {
            Item::Value(v) => Some(v),
            Item::Section(_) => None,
        }
    }
    /// The string called `name`.
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.value(name)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The integer called `name`.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.value(name)? {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    /// The list called `name`.
    pub fn list(&self, name: &str) -> Option<&[Value]> {
        match self.value(name)? {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
}

/// Parses a whole metadata text into its top-level section.
pub fn parse(text: &[u8]) -> Result<Section> {
    let mut p = Parser {
        b: text,
        pos: 0,
        items: 0,
    };
    let top = p.section_body(0)?;
    p.skip_space();
    if p.pos < p.b.len() {
        return Err(p.err("unexpected '}'"));
    }
    Ok(top)
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    items: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> Error {
        let line = 1 + self.b[..self.pos.min(self.b.len())]
            .iter()
            .filter(|&&c| c == b'\n')
            .count();
        Error::bad(format!("LVM metadata text, line {line}: {what}"))
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// Skips blanks, comments and NULs (the text may end in NUL padding).
    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            if c == b'#' {
                while self.peek().is_some_and(|c| c != b'\n') {
                    self.pos += 1;
                }
            } else if c.is_ascii_whitespace() || c == 0 {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn count(&mut self) -> Result<()> {
        self.items += 1;
        if self.items > MAX_ITEMS {
            return Err(self.err("more than a million items"));
        }
        Ok(())
    }

    /// Entries until `}` (depth > 0) or the end of the text (depth 0).
    fn section_body(&mut self, depth: usize) -> Result<Section> {
        let mut s = Section::default();
        loop {
            self.skip_space();
            match self.peek() {
                None if depth == 0 => return Ok(s),
                None => return Err(self.err("section not closed")),
                Some(b'}') if depth == 0 => return Ok(s),
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some(_) => {}
            }
            let name = self.ident()?;
            if s.get(&name).is_some() {
                return Err(self.err(&format!("{name:?} defined twice")));
            }
            self.count()?;
            self.skip_space();
            let item = match self.peek() {
                Some(b'=') => {
                    self.pos += 1;
                    Item::Value(self.value(true)?)
                }
                Some(b'{') => {
                    self.pos += 1;
                    if depth + 1 > MAX_DEPTH {
                        return Err(self.err(&format!("sections nested deeper than {MAX_DEPTH}")));
                    }
                    Item::Section(self.section_body(depth + 1)?)
                }
                _ => return Err(self.err(&format!("expected '=' or '{{' after {name:?}"))),
            };
            s.items.push((name, item));
        }
    }

    fn ident(&mut self) -> Result<String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || b"_.+-".contains(&c))
        {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.err("expected a name"));
        }
        if self.pos - start > 1024 {
            return Err(self.err("name longer than 1024 bytes"));
        }
        Ok(String::from_utf8_lossy(&self.b[start..self.pos]).into_owned())
    }

    fn value(&mut self, list_ok: bool) -> Result<Value> {
        self.skip_space();
        match self.peek() {
            Some(b'"') => self.string().map(Value::Str),
            Some(b'[') if list_ok => self.list(),
            Some(c) if c == b'-' || c.is_ascii_digit() => self.number(),
            _ => Err(self.err("expected a value")),
        }
    }

    fn list(&mut self) -> Result<Value> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            self.skip_space();
            if self.peek() == Some(b']') {
                self.pos += 1;
                return Ok(Value::List(out));
            }
            if !out.is_empty() {
                if self.peek() != Some(b',') {
                    return Err(self.err("expected ',' or ']' in a list"));
                }
                self.pos += 1;
            }
            self.count()?;
            out.push(self.value(false)?);
        }
    }

    fn string(&mut self) -> Result<String> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("string not closed"));
            };
            self.pos += 1;
            match c {
                b'"' => return Ok(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    let Some(n) = self.peek() else {
                        return Err(self.err("string not closed"));
                    };
                    self.pos += 1;
                    out.push(n);
                }
                _ => out.push(c),
            }
            if out.len() > MAX_STRING {
                return Err(self.err("string longer than 64 KiB"));
            }
        }
    }

    fn number(&mut self) -> Result<Value> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let s = std::str::from_utf8(&self.b[start..self.pos]).unwrap_or("");
        s.parse::<i64>()
            .map(Value::Int)
            .map_err(|_| self.err(&format!("bad number {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_strings_lists_and_numbers() {
        let t = b"contents = \"Text Format Volume Group\"\nversion = 1\n\nrl {\n\tid = \"a\\\"b\"\n\tseqno = 4 # comment\n\tstatus = [\"READ\", \"WRITE\"]\n\tempty = []\n\tlv { n = -3 }\n}\n\0\0";
        let top = parse(t).unwrap();
        assert_eq!(top.int("version"), Some(1));
        let vg = top.section("rl").unwrap();
        assert_eq!(vg.str("id"), Some("a\"b"));
        assert_eq!(vg.int("seqno"), Some(4));
        assert_eq!(vg.list("status").unwrap().len(), 2);
        assert_eq!(vg.list("empty").unwrap().len(), 0);
        assert_eq!(vg.section("lv").unwrap().int("n"), Some(-3));
    }

    #[test]
    fn hostile_text_is_refused_with_a_line_number() {
        let deep = "a {".repeat(MAX_DEPTH + 1) + &"}".repeat(MAX_DEPTH + 1);
        let e = parse(deep.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("nested deeper"), "{e}");
        for bad in [
            &b"a = \"unterminated"[..],
            b"a { b = 1",
            b"a = 1\na = 2",
            b"a = [[1]]",
            b"a = 99999999999999999999999",
            b"= 1",
            b"}",
            b"a = [1 2]",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let e = parse(b"x = 1\ny = ?").unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
