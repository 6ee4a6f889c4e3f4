use super::*;

/// Every line of `text`, masked, joined again.
fn masked(text: &str) -> String {
    let spans = SecretSpans::find(text);
    (1..=text.split('\n').count())
        .map(|n| spans.line(text, u32::try_from(n).unwrap()).unwrap().text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts that `text` masked is `expected` and holds none of `secrets`.
fn assert_masked(text: &str, expected: &str, secrets: &[&str]) {
    let got = masked(text);
    assert_eq!(got, expected, "\n{text}\n---\n{got}");
    for secret in secrets {
        assert!(!got.contains(secret), "{secret} in:\n{got}");
    }
}

#[test]
fn block_and_flow_values_in_a_secrets_section_are_masked_and_nothing_else() {
    let text = "\
environment:
  local:
    - name: A
      value: plain-env
secrets:
  global:
  - name: tok
    kind: ascii
    value: s3cret-1 # a comment
  - name: cert
    kind: x509
    dns:
      - api.example.com
  local:
  - { name: t2, kind: asci, value: s3cret-2, size: 3 }
  - {name: t3, value: \"s3cret, 3\"}
  import:
  - other_secret
build:
  name: x
";
    let expected = "\
environment:
  local:
    - name: A
      value: plain-env
secrets:
  global:
  - name: tok
    kind: ascii
    value: ***
  - name: cert
    kind: x509
    dns:
      - api.example.com
  local:
  - { name: t2, kind: asci, value: ***, size: 3 }
  - {name: t3, value: ***}
  import:
  - other_secret
build:
  name: x
";
    assert_masked(text, expected, &["s3cret"]);
}

#[test]
fn values_that_break_the_yaml_are_masked_too() {
    // A `: ` inside a plain value; a list; a duplicate key; a value that
    // lost its indentation; no space after the colon; misspelt keys (the
    // value of one meant as `value` is masked, of one meant as `kind` not);
    // a value that reads as a key; a comment as value.
    let text = "\
secrets:
  local:
  - name: a
    value: s3cret-1: x
  - name: b
    value:
    - s3cret-2
    - s3cret-3
  - name: c
    value: s3cret-4
    value: s3cret-5
  - name: d
    value:
    s3cret-6
  - name: e
    value:s3cret-7
    valeu: s3cret-8
    knd: asci
    s3cret-9: x
    value: #s3cret-10
build: {}
";
    let expected = "\
secrets:
  local:
  - name: a
    value: ***
  - name: b
    value:
    ***
    ***
  - name: c
    value: ***
    value: ***
  - name: d
    value:
    ***
  - name: e
    ***
    valeu: ***
    knd: asci
    ***
    value: ***
build: {}
";
    assert_masked(text, expected, &["s3cret"]);
}

#[test]
fn block_scalars_and_multi_line_scalars_are_masked_on_every_line() {
    let text = "\
secrets:
  local:
    - name: pem
      kind: ascii
      value: |2
          -----BEGIN s3cret-----
        s3cret-line: 2

        # s3cret-comment
      size: 3
    - name: quoted
      value: \"s3cret-a
  s3cret-b \\\" s3cret-c
        s3cret-d\" # after
    - name: single
      value: 's3cret-e

        s3cret-''f'
    - name: plain
      value: s3cret-g
        s3cret-h
    - { name: flow, value: s3cret-i
        s3cret-j, kind: x }
    - name: folded
      value: >-
        s3cret-k
    - name: tagged
      value: !!str &anchor s3cret-l
    - name: nested
      value: {s3cret-m: [s3cret-n, {a: s3cret-o}]}
";
    let expected = "\
secrets:
  local:
    - name: pem
      kind: ascii
      value: ***
          ***
        ***

        ***
      size: 3
    - name: quoted
      value: ***
  ***
        ***
    - name: single
      value: ***

        ***
    - name: plain
      value: ***
        ***
    - { name: flow, value: ***
        ***, kind: x }
    - name: folded
      value: ***
        ***
    - name: tagged
      value: ***
    - name: nested
      value: ***
";
    assert_masked(text, expected, &["s3cret"]);
}

#[test]
fn a_value_written_without_its_indentation_is_masked_below_its_key() {
    // `value: |` (or `value:`) with nothing below it more indented: the next
    // line is what the author meant as the value, whatever YAML makes of it
    // (`s3cret-1: x` at column 0 is a top-level key to the parser, which then
    // names it in an error), up to a line that starts an entry a manifest
    // has there. A value that has its text keeps the rule as it was: a key
    // at column 0 starts another entry.
    let text = "\
secrets:
  local:
  - name: a
    value: |
s3cret-1: x
s3cret-2
  - name: b
    value: >- # folded

# a comment
s3cret-3: x
    kind: ascii
  - name: c
    value: !!str
  s3cret-4: x
  - s3cret-5: x
  - name: d
    value:
name: s3cret-6
build:
  name: shown
";
    let expected = "\
secrets:
  local:
  - name: a
    value: ***
***
***
  - name: b
    value: ***

# a comment
***
    kind: ascii
  - name: c
    value: !!str
  ***
  - ***
  - name: d
    value:
***
build:
  name: shown
";
    assert_masked(text, expected, &["s3cret"]);
    let text = "secrets:\n  local:\n  - name: a\n    value: |\n      text\nother: shown\n";
    assert_masked(
        text,
        "secrets:\n  local:\n  - name: a\n    value: ***\n      ***\nother: shown\n",
        &["text"],
    );
}

#[test]
fn a_secrets_section_in_flow_style_and_under_other_names_is_found() {
    let text = "\
secrets: {local: [{name: a, value: s3cret-1}], import: [x, y]}
services:
  - name: s
    image_secrets:
      - token: s3cret-2
      - knd: shown
Secret:
  - s3cret-3
other:
  value: shown
";
    let expected = "\
secrets: {local: [{name: a, value: ***}], import: [x, y]}
services:
  - name: s
    image_secrets:
      - ***
      - knd: shown
Secret:
  - ***
other:
  value: shown
";
    assert_masked(text, expected, &["s3cret"]);
}

#[test]
fn an_unclosed_quote_or_bracket_masks_to_the_end() {
    let text = "secrets:\n  local:\n  - name: a\n    value: \"s3cret-1\n    kind: x\n";
    assert_masked(
        text,
        "secrets:\n  local:\n  - name: a\n    value: ***\n    ***\n",
        &["s3cret"],
    );
    let text = "secrets:\n  local:\n  - {name: a, value: [s3cret-1,\n  s3cret-2\n";
    assert_masked(
        text,
        "secrets:\n  local:\n  - {name: a, value: ***\n  ***\n",
        &["s3cret"],
    );
}

#[test]
fn tabs_crlf_and_wide_characters_do_not_break_the_rule() {
    let text = "secrets:\r\n\tlocal:\r\n\t- name: ä\r\n\t  value: s3cret-ü€\r\n";
    let spans = SecretSpans::find(text);
    let line = spans.line(text, 4).unwrap();
    assert_eq!(line.text, "\t  value: ***");
    assert_eq!(spans.values(text), ["s3cret-ü€"]);
    let text = "secrets:\n  local:\n  - {name: \"€\", value: ü€s3cret}\n";
    assert_masked(
        text,
        "secrets:\n  local:\n  - {name: \"€\", value: ***}\n",
        &["s3cret"],
    );
}

#[test]
fn columns_map_around_the_masks() {
    let text = "secrets:\n  local:\n  - { name: t, value: s3cret-1, kind: asci }\n";
    let spans = SecretSpans::find(text);
    let line = spans.line(text, 3).unwrap();
    assert_eq!(line.text, "  - { name: t, value: ***, kind: asci }");
    // `name` is before the mask, `s3cret-1` in it, `asci` after it.
    assert_eq!(line.column(6), (6, false));
    assert_eq!(line.column(22), (22, true));
    assert_eq!(line.column(25), (22, true));
    let asci = "  - { name: t, value: s3cret-1, kind: ".chars().count();
    assert_eq!(
        line.column(asci),
        (asci - "s3cret-1".len() + MASK.len(), false)
    );
    assert_eq!(&line.text[line.column(asci).0..], "asci }");
    assert!(spans.line(text, 9).is_none());
}

#[test]
fn a_message_quoting_a_value_or_part_of_one_is_scrubbed() {
    let values = ["s3cret-1x", "1.5e999999", "ab"];
    let cases = [
        (
            "duplicate key `s3cret-1x` in this mapping",
            "duplicate key `***` in this mapping",
        ),
        (
            "template variable `cret-1` is not defined",
            "template variable `***` is not defined",
        ),
        (
            "non-finite float `1.5e999999` rejected",
            "non-finite float `***` rejected",
        ),
        (
            "invalid type: string \"xs3cret-1xy\", expected u32",
            "invalid type: string \"***\", expected u32",
        ),
        ("duplicate key `ab`", "duplicate key `***`"),
        ("unexpected character: `b'", "unexpected character: `***'"),
        // Words of its own, punctuation and other names are kept.
        (
            "a `:` after each key; the handle wasn't declared",
            "a `:` after each key; the handle wasn't declared",
        ),
        ("unknown field `valeu`", "unknown field `valeu`"),
    ];
    for (message, expected) in cases {
        assert_eq!(scrub(message, &values), expected, "{message}");
    }
}

#[test]
fn a_diagnostic_about_a_manifest_loses_what_it_quotes_of_a_value() {
    use crate::manifest::{ErrorKind, Pos};
    let text = "secrets:\n  local:\n  - name: a\n    value: {SUPER-s3cret: 1, SUPER-s3cret: 2}\n";
    let d = Diagnostic::new(
        ErrorKind::Yaml,
        "s.yml",
        Pos {
            line: 4,
            column: 30,
        },
        "duplicate key `SUPER-s3cret` in this mapping",
    )
    .with_hint("rename `SUPER-s3cret`");
    let d = scrub_diagnostic(d, text);
    assert_eq!(d.message, "duplicate key `***` in this mapping");
    assert_eq!(d.hint.as_deref(), Some("rename `***`"));
    assert_eq!(
        d.pos,
        Pos {
            line: 4,
            column: 30
        }
    );
}

#[test]
fn no_text_panics() {
    for text in [
        "",
        "\n",
        "secrets:",
        "secrets: [",
        "secrets: {",
        "secrets:\n  - \"",
        "secrets:\n  - '",
        "secrets:\n  local:\n  - {value: \"\\",
        "secrets:\n  local:\n  - {value: ]}}}",
        "secrets:\n- - - value: é",
        "secrets:\n  ? x\n  : y\n  \"k\": \"v\n",
        "secrets:\n  'a''b': c\n  \"\": x\n  '",
        "secrets: {a: b, ? c, [d]: e, {f: g}: h, \"i\":j}\n",
        "é: {secret: [é, {é: é}], value: é\u{feff}}",
    ] {
        let spans = SecretSpans::find(text);
        for n in 0..=text.lines().count() as u32 + 1 {
            let _ = spans.line(text, n);
        }
        let _ = spans.values(text);
    }
}
