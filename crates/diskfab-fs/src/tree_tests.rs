//! Tests of the shared walker over the in-memory test filesystem.

use super::*;
use crate::testfs::MemFs;

/// Records `enter`/`leave` calls as `+path@depth` / `-path`, walking into everything.
#[derive(Default)]
struct Log {
    calls: Vec<String>,
    skip: Vec<&'static str>,
}

impl Visitor for Log {
    fn enter(&mut self, _: &mut dyn Filesystem, v: &Visit) -> Result<Step> {
        let p = path::display(&v.path);
        self.calls.push(format!("+{p}@{}", v.depth));
        Ok(if self.skip.contains(&p.as_str()) {
            Step::Over
        } else {
            Step::Into
        })
    }
    fn leave(&mut self, _: &mut dyn Filesystem, v: &Visit) -> Result<()> {
        self.calls.push(format!("-{}", path::display(&v.path)));
        Ok(())
    }
}

fn sample() -> MemFs {
    let mut fs = MemFs::new();
    let b = fs.dir(1, "b");
    fs.file(b, "z", b"");
    fs.file(b, "a", b"");
    fs.file(1, "c", b"");
    let a = fs.dir(1, "a");
    fs.link(a, "l", "/b");
    fs
}

#[test]
fn walk_is_depth_first_sorted_by_name_with_leave_after_children() {
    let mut fs = sample();
    let mut log = Log::default();
    walk(&mut fs, 1, b"/", &mut log).unwrap();
    assert_eq!(
        log.calls,
        ["+/a@1", "+/a/l@2", "-/a", "+/b@1", "+/b/a@2", "+/b/z@2", "-/b", "+/c@1"]
    );
}

#[test]
fn walk_never_follows_symlinks_and_honours_step_over() {
    let mut fs = sample();
    let mut log = Log {
        skip: vec!["/b"],
        ..Log::default()
    };
    walk(&mut fs, 1, b"", &mut log).unwrap();
    // `/a/l` -> `/b` is visited as a symlink, not walked into; `/b` is skipped: no leave.
    assert_eq!(log.calls, ["+/a@1", "+/a/l@2", "-/a", "+/b@1", "+/c@1"]);
}

#[test]
fn walk_below_a_subdirectory_prefixes_its_path() {
    let mut fs = sample();
    let b = fs.lookup(1, b"b").unwrap().unwrap();
    let mut log = Log::default();
    walk(&mut fs, b, b"/b", &mut log).unwrap();
    assert_eq!(log.calls, ["+/b/a@1", "+/b/z@1"]);
}

#[test]
fn a_directory_linked_to_its_ancestor_is_a_bad_image_not_an_endless_walk() {
    let mut fs = sample();
    let a = fs.lookup(1, b"a").unwrap().unwrap();
    fs.link_raw(a, b"up", 1);
    let e = walk(&mut fs, 1, b"/", &mut Log::default()).unwrap_err();
    assert!(matches!(e, Error::BadImage(_)), "{e}");
    assert!(e.to_string().contains("/a/up: directory loop"), "{e}");
    // A directory listing itself.
    let mut fs = sample();
    let a = fs.lookup(1, b"a").unwrap().unwrap();
    fs.link_raw(a, b"self", a);
    assert!(matches!(
        walk(&mut fs, 1, b"/", &mut Log::default()),
        Err(Error::BadImage(_))
    ));
}

#[test]
fn a_directory_shared_by_two_parents_is_walked_once_then_refused() {
    // Without this, d levels of two links each would be walked 2^d times.
    let mut fs = sample();
    let b = fs.lookup(1, b"b").unwrap().unwrap();
    let a = fs.lookup(1, b"a").unwrap().unwrap();
    fs.link_raw(a, b"alias", b);
    let e = walk(&mut fs, 1, b"/", &mut Log::default()).unwrap_err();
    assert!(e.to_string().contains("/b: directory loop"), "{e}");
}

fn nested(levels: usize) -> MemFs {
    let mut fs = MemFs::new();
    let mut d = 1;
    for _ in 0..levels {
        d = fs.dir(d, "d");
    }
    fs
}

#[test]
fn nesting_is_limited_to_max_depth() {
    // Deep recursion: run with a roomy stack, as the CLI's main thread has.
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(|| {
            let mut ok = nested(MAX_DEPTH);
            walk(&mut ok, 1, b"/", &mut Log::default()).unwrap();
            let mut deep = nested(MAX_DEPTH + 1);
            let e = walk(&mut deep, 1, b"/", &mut Log::default()).unwrap_err();
            assert!(e.to_string().contains("nested deeper than 4096"), "{e}");
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn join_never_doubles_the_slash() {
    assert_eq!(join(b"/", b"a"), b"/a");
    assert_eq!(join(b"", b"a"), b"/a");
    assert_eq!(join(b"/x", b"a"), b"/x/a");
}
