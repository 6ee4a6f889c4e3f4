//! `scone verify`: check that what is deployed is what the sources build
//! (`verify_sources`), or check an image alone (`verify_image`, `--image`),
//! and print the checks as a table (or JSON lines), naming what was not
//! checked (`-p`). Exit 0 only when every check holds, 1 when one does not,
//! 2 for bad manifests or usage.

use scone::verify::Check;

use super::args::{MessageFormat, VerifyArgs};

/// Runs `scone verify`.
pub fn run(args: &VerifyArgs) -> anyhow::Result<i32> {
    // The manifests verify would build from (`--image` reads none: clap
    // refuses the two together).
    if args.build.print_defaults {
        return super::defaults::run(&args.build);
    }
    let (checks, not_checked) = match &args.image {
        Some(image) => (super::verify_image::checks(args, image)?, Vec::new()),
        None => match super::verify_sources::checks(args)? {
            Ok(found) => found,
            Err(code) => return Ok(code),
        },
    };
    print(&checks, &not_checked, args.build.common.message_format);
    Ok(if checks.iter().all(|c| c.ok) { 0 } else { 1 })
}

/// Prints the checks: a table, then each mismatch with both values and its
/// likely cause; or one JSON object per check and a verdict. The verdict
/// names what was `not_checked`: "all match" is never said without it.
pub fn print(checks: &[Check], not_checked: &[String], format: MessageFormat) {
    let failed = checks.iter().filter(|c| !c.ok).count();
    if format == MessageFormat::Json {
        for c in checks {
            let mut v = serde_json::to_value(c).unwrap_or_default();
            v["reason"] = "verify-check".into();
            println!("{v}");
        }
        println!(
            "{}",
            serde_json::json!({
                "reason": "verify-finished",
                "success": failed == 0,
                "checks": checks.len(),
                "mismatches": failed,
                "not_checked": not_checked,
            })
        );
        return;
    }
    let rows: Vec<[String; 5]> = checks
        .iter()
        .map(|c| {
            [
                c.subject.clone(),
                c.field.clone(),
                c.place.clone(),
                if c.ok { "ok" } else { "MISMATCH" }.to_string(),
                scone::verify::short(&c.found),
            ]
        })
        .collect();
    let header = [
        "SUBJECT".to_string(),
        "FIELD".into(),
        "WHERE".into(),
        "RESULT".into(),
        "VALUE".into(),
    ];
    let mut width = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in width.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i < 4 {
                let pad = width[i] + 2 - cell.chars().count();
                out.push_str(&" ".repeat(pad));
            }
        }
        out.push('\n');
    }
    for c in checks.iter().filter(|c| !c.ok) {
        out.push_str(&format!(
            "\nmismatch: {} {} ({})\n  expected: {}\n  found:    {}\n",
            c.subject, c.field, c.place, c.expected, c.found
        ));
        if let Some(cause) = &c.cause {
            out.push_str(&format!("  likely cause: {cause}\n"));
        }
    }
    out.push_str(&if failed == 0 {
        format!("\nverified: {} checks, all match", checks.len())
    } else {
        format!(
            "\nnot verified: {failed} of {} checks do not match",
            checks.len()
        )
    });
    match not_checked {
        [] => out.push('\n'),
        _ => {
            out.push_str("; not checked:\n");
            for what in not_checked {
                out.push_str(&format!("  {what}\n"));
            }
        }
    }
    print!("{out}");
}
