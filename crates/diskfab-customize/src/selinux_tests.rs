use super::*;

fn pol(fc: &str) -> Policy {
    Policy::parse(&[("fc", fc.as_bytes())], None, None).unwrap()
}

fn look(p: &Policy, path: &str, m: u32) -> Option<String> {
    p.lookup(path.as_bytes(), m).unwrap().map(String::from)
}

#[test]
fn plain_path_beats_any_regex_and_last_line_wins_among_equals() {
    let p = pol("/etc/foo\ta_t\n/etc(/.*)?\tetc_t\n/etc/.*\tlater_t\n/etc/foo\tb_t\n");
    assert_eq!(look(&p, "/etc/foo", mode::REG).as_deref(), Some("b_t"));
    assert_eq!(look(&p, "/etc/bar", mode::REG).as_deref(), Some("later_t"));
    assert_eq!(look(&p, "/etc", mode::DIR).as_deref(), Some("etc_t"));
}

#[test]
fn type_field_restricts_the_file_type_and_mode_zero_matches_all() {
    let p = pol("/x(/.*)?\tany_t\n/x/y\t-d\tdir_t\n/x/l\t-l\tlnk_t\n/x/f\t--\tfile_t\n");
    assert_eq!(look(&p, "/x/y", mode::DIR).as_deref(), Some("dir_t"));
    assert_eq!(look(&p, "/x/y", mode::REG).as_deref(), Some("any_t"));
    assert_eq!(look(&p, "/x/l", mode::LNK).as_deref(), Some("lnk_t"));
    assert_eq!(look(&p, "/x/f", mode::REG).as_deref(), Some("file_t"));
    assert_eq!(look(&p, "/x/f", 0).as_deref(), Some("file_t"));
}

#[test]
fn none_context_and_no_match_give_no_label() {
    let p = pol("/proc(/.*)?\t<<none>>\n/a\ta_t\n");
    assert_eq!(look(&p, "/proc/1", mode::REG), None);
    assert_eq!(look(&p, "/nowhere", mode::REG), None);
}

#[test]
fn regex_is_anchored_at_both_ends_and_dot_matches_newline() {
    let p = pol("/a.c\tx_t\n");
    assert_eq!(look(&p, "/abc", 0).as_deref(), Some("x_t"));
    assert_eq!(look(&p, "/a\nc", 0).as_deref(), Some("x_t"));
    assert_eq!(look(&p, "/abcd", 0), None);
    assert_eq!(look(&p, "/zz/abc", 0), None);
    // PCRE's $ also matches before a final newline.
    assert_eq!(look(&p, "/abc\n", 0).as_deref(), Some("x_t"));
}

#[test]
fn top_level_alternation_splits_the_anchors_as_pcre_does() {
    let p = pol("/a|/b\tx_t\n");
    assert_eq!(look(&p, "/a/anything", 0).as_deref(), Some("x_t"));
    assert_eq!(look(&p, "/zz/b", 0).as_deref(), Some("x_t"));
    assert_eq!(look(&p, "/zz/c", 0), None);
}

#[test]
fn substitutions_rewrite_whole_leading_components_last_line_first() {
    let subs = b"/lib /usr/lib\n/lib/systemd /usr/lib/systemd-alias\n";
    let dist = b"/usr/lib/systemd-alias /usr/lib/systemd\n/srv /\n";
    let p = Policy::parse(
        &[(
            "fc",
            b"/usr/lib(/.*)?\tlib_t\n/usr/lib/systemd(/.*)?\tsd_t\n/www\tw_t\n",
        )],
        Some(subs),
        Some(dist),
    )
    .unwrap();
    assert_eq!(p.substitute(b"/library"), b"/library".to_vec());
    assert_eq!(p.substitute(b"/lib/x"), b"/usr/lib/x".to_vec());
    assert_eq!(look(&p, "/lib/systemd/x", 0).as_deref(), Some("sd_t"));
    assert_eq!(look(&p, "/srv/www", 0).as_deref(), Some("w_t"));
}

#[test]
fn duplicate_and_trailing_slashes_are_removed_from_the_key() {
    let p = pol("/etc/foo\tf_t\n");
    assert_eq!(look(&p, "//etc//foo/", 0).as_deref(), Some("f_t"));
}

#[test]
fn stems_only_filter_specs_with_a_plain_first_component() {
    assert_eq!(spec_stem("/usr/bin(/.*)?").as_deref(), Some("/usr"));
    assert_eq!(spec_stem("/usr(/.*)?"), None);
    assert_eq!(spec_stem("/u.r/bin"), None);
    assert_eq!(spec_stem("/usr"), None);
    let p = pol("/.*\tall_t\n/usr/.*\tusr_t\n");
    assert_eq!(look(&p, "/usr/x", 0).as_deref(), Some("usr_t"));
    assert_eq!(look(&p, "/var/x", 0).as_deref(), Some("all_t"));
}

#[test]
fn meta_detection_skips_escaped_bytes() {
    assert!(!has_meta("/etc/foo\\.bar"));
    assert!(has_meta("/etc/foo.bar"));
    assert!(has_meta("/etc/(x)"));
}

#[test]
fn fields_past_the_third_are_ignored_and_comments_skipped() {
    let p = pol("# comment\n   \n  /a\t--\ta_t extra junk\n");
    assert_eq!(look(&p, "/a", mode::REG).as_deref(), Some("a_t"));
}

#[test]
fn malformed_lines_reject_the_policy() {
    for bad in ["/a\n", "/a -x a_t\n", "/a a_\u{e9}_t\n", "/a --- a_t\n"] {
        assert!(
            Policy::parse(&[("fc", bad.as_bytes())], None, None).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn a_regex_that_does_not_compile_fails_the_lookup_that_reaches_it() {
    let p = pol("/a(\tx_t\n/b\tb_t\n");
    assert_eq!(look(&p, "/b", 0).as_deref(), Some("b_t"));
    assert!(p.lookup(b"/c", 0).is_err());
}

#[test]
fn a_huge_counted_repetition_is_refused_not_compiled() {
    let p = pol("/a{1000}{1000}{1000}\tx_t\n");
    assert!(p.lookup(b"/a", 0).is_err());
}

#[test]
fn config_reads_mode_and_type_and_refuses_unsafe_types() {
    let c = parse_config(b"# x\nSELINUX=enforcing\nSELINUXTYPE=targeted\n").unwrap();
    assert!(c.enabled);
    assert_eq!(c.policy_type, "targeted");
    let c = parse_config(b"SELINUX=Disabled\n").unwrap();
    assert!(!c.enabled);
    assert_eq!(c.policy_type, "targeted");
    assert!(
        parse_config(b"SELINUX=permissive\nSELINUXTYPE=default\n")
            .unwrap()
            .enabled
    );
    assert!(parse_config(b"SELINUXTYPE=../../x\n").is_err());
    assert!(parse_config(b"SELINUXTYPE=..\n").is_err());
}

#[test]
fn dollar_inside_a_class_or_escaped_stays_literal() {
    assert_eq!(pcre_dollars("a[$]b\\$c$"), "a[$]b\\$c(?:\n?\\z)");
    assert_eq!(pcre_dollars("[]$]$"), "[]$](?:\n?\\z)");
    let p = pol("/a[$]b\tx_t\n");
    assert_eq!(look(&p, "/a$b", 0).as_deref(), Some("x_t"));
}

#[test]
fn fuzz_entry_survives_its_own_shapes() {
    assert!(fuzz_file_contexts(b"/etc(/.*)?\tetc_t\n%%\n/etc/x\n") > 0);
    assert_eq!(fuzz_file_contexts(b"\xff\xfe"), 0);
    fuzz_file_contexts(b"/a(\tx\n%%\n/a\n\n//\n");
}
