//! The folders a build or apply writes besides its workspace, kept where
//! they belong: a target dir the load refused is taken back (what this build
//! wrote there before the load said no), and the local CAS dir is kept apart
//! from the target dir (`scone clean` removes that) and refused when it is
//! someone else's folder (see docs/security.md and docs/cas.md).

use std::path::{Path, PathBuf};

use scone::workspace::boundary::Overlap;

use super::output::Output;

/// Whether a load failed because it refused the target dir.
pub(super) fn refuses_target(err: &anyhow::Error) -> bool {
    err.downcast_ref::<scone::manifest::Diagnostics>()
        .is_some_and(|d| {
            d.0.iter()
                .any(|d| d.kind == scone::manifest::ErrorKind::TargetDir)
        })
}

/// Takes away what this build wrote into a target dir (new or empty) before
/// its load refused it: its `.scone/` (the lock and the tag, all a build
/// writes before its load), then the folder if the build made it and
/// nothing else is in it.
pub(super) fn unmake_target(target: &Path, existed: bool) {
    let _ = std::fs::remove_dir_all(target.join(".scone"));
    if !existed {
        let _ = std::fs::remove_dir(target);
    }
}

/// Refuses a local CAS dir that is, is inside or holds the target dir `target`
/// (of a build, apply, verify or clean): `scone clean` removes the target dir,
/// and the next apply would make new secrets for the sessions lost with it.
pub fn refuse_cas_in_target(target: &Path, cwd: &Path) -> anyhow::Result<()> {
    let Ok(cas) = scone::cas::local::default_dir() else {
        return Ok(());
    };
    let Some(how) = scone::cas::local::target_overlap(&cas, target, cwd) else {
        return Ok(());
    };
    let from = match std::env::var_os(scone::cas::local::CAS_DIR_ENV) {
        Some(d) if !d.is_empty() => " (SCONE_CAS_DIR)",
        _ => "",
    };
    const LOST: &str = "`scone clean` removes the target dir, and the CAS's sessions and \
                        secrets with it (the next apply would make new secrets)";
    let (how, why) = match how {
        Overlap::Same => ("is", LOST),
        Overlap::Inside => ("is inside", LOST),
        Overlap::Holds => (
            "holds",
            "a local CAS keeps its sessions and secrets in a folder of its own, and `scone \
             clean` removes the target dir",
        ),
    };
    Err(super::UsageError::new(
        format!(
            "the local CAS dir {}{from} {how} the target dir {}: {why}",
            cas.display(),
            target.display()
        ),
        format!(
            "keep the local CAS apart from the target dir: point SCONE_CAS_DIR at a folder of \
             its own (unset, it is {}), or build into another target dir (--target-dir)",
            scone::cas::local::standard_dir_text()
        ),
    )
    .into())
}

/// The local CAS dir an apply uploads to, refused before anything is built
/// when it is a folder that is not a local CAS (see
/// [`scone::cas::local::check_dir`]); a CAS others may read is warned of.
pub(super) fn local_cas_dir(out: &Output) -> anyhow::Result<PathBuf> {
    let dir = scone::cas::local::default_dir()?;
    scone::cas::local::check_dir(&dir)?;
    if let Some(mode) = scone::cas::local::loose_mode(&dir) {
        out.warn(&format!(
            "the local CAS dir {} is mode {mode:o}: others may list its sessions (their \
             secrets stay private to you); `chmod 700 {}` if that is not meant",
            dir.display(),
            dir.display()
        ));
    }
    Ok(dir)
}
