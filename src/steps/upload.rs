//! `upload:<namespace>` (apply only): bring the CAS to the mesh's session. An
//! effect, not cached: it runs every apply, and uploads nothing when the CAS
//! already holds the same content. The update names the predecessor from
//! `scone.lock` (or the CAS's current hash). On the local CAS the session must
//! be this project's (see [`crate::cas::local::LocalCas::for_project`]); with
//! `take_over` it is replaced as it is now, whoever made it, and whatever
//! `scone.lock` remembers. A session this project sent after the apply
//! `scone.lock` records (an apply stopped before it wrote the lock, see
//! [`crate::cas::is_own_update`]) is updated with a note, not refused.
//!
//! The session the `policy` step made holds a placeholder for each fixed
//! secret value; this step puts the values in (from the service manifests as
//! this apply loaded them, with the salt of the session on CAS:
//! [`crate::cas::fixed::to_send`]) and sends the result. That text lives in
//! memory only: it is not a param, not part of the record, and not written.
//! `apply --plan` and `verify` make the same session and compare it the same
//! way ([`crate::cas::pending`]).
//!
//! An update whose session no longer declares a secret CAS generated deletes
//! its value ([`crate::cas::dropped_generated`], from the session CAS holds
//! and the one sent): the step warns of it by name (`dropped_secrets` in its
//! JSON), or, with `keep_generated` (`scone dev`), sends nothing and fails.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::to_record;
use crate::cas::{
    apply_session_with, dropped_generated, fixed, secret_list, ApplyOutcome, Cas, CasError,
};
use crate::engine::{Step, StepContext, StepError, StepId, StepOutput};
use crate::manifest::FixedValue;

/// Which CAS to upload to.
pub enum CasTarget {
    /// The embedded local CAS: its folder, and the project uploading (its
    /// canonical workspace root).
    Local {
        dir: std::path::PathBuf,
        project: String,
    },
    /// A remote CAS at this URL (client identity from the CAS config dir).
    Remote {
        url: String,
        ca_file: Option<std::path::PathBuf>,
    },
}

/// The warning of an apply that deleted the values of `dropped`, generated
/// secrets the session sent no longer declares (names only).
fn dropped_warning(dropped: &[String]) -> String {
    let (its, it) = match dropped.len() {
        1 => ("its value", "it is"),
        _ => ("their values", "they are"),
    };
    format!(
        "the session no longer declares {}, which CAS generated: CAS deleted {its}, and a \
         new value is made if {it} declared again",
        secret_list(dropped)
    )
}

/// The record of an upload step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub name: String,
    /// The session's hash on the CAS after the upload.
    pub hash: String,
}

/// See the module documentation.
pub struct UploadStep {
    pub id: StepId,
    pub namespace: String,
    pub target: CasTarget,
    /// The session hash `scone.lock` remembers.
    pub known_predecessor: Option<String>,
    /// `--take-over`: replace the session as it is now (another project's,
    /// or changed since this project's last apply).
    pub take_over: bool,
    /// This project's `scone.lock` (named when the session changed since).
    pub lock: std::path::PathBuf,
    /// The fixed secret values of the mesh's service manifests, by secret
    /// name: sent to CAS, never a param (`FixedValue`'s `Debug` hides them).
    pub fixed_values: BTreeMap<String, FixedValue>,
    /// Refuse an upload that would delete the value of a secret CAS
    /// generated (`scone dev`: a transient save must not lose keys); an
    /// apply warns of it instead.
    pub keep_generated: bool,
}

impl Step for UploadStep {
    fn id(&self) -> &StepId {
        &self.id
    }

    fn params(&self) -> BTreeMap<String, String> {
        let target = match &self.target {
            CasTarget::Local { dir, .. } => format!("local:{}", dir.display()),
            CasTarget::Remote { url, .. } => format!("remote:{url}"),
        };
        BTreeMap::from([("cas".to_string(), target)])
    }

    fn cacheable(&self) -> bool {
        false
    }

    fn run(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        let policy = cx.dep("policy")?;
        let yaml = std::fs::read_to_string(cx.dep_file(policy, "session")?)
            .map_err(|e| StepError::context("reading the session", e))?;
        let cas: Box<dyn Cas> = match &self.target {
            CasTarget::Local { dir, project } => {
                let cas = crate::cas::local::LocalCas::create(dir)
                    .map_err(|e| StepError::context("local CAS", e))?
                    .for_project(project.clone(), self.take_over);
                cas.check_project(&self.namespace)
                    .map_err(|e| StepError::new(e.to_string()))?;
                Box::new(cas)
            }
            CasTarget::Remote { url, ca_file } => Box::new(
                crate::cas::remote::RemoteCas::connect_default(url, ca_file.as_deref())
                    .map_err(|e| StepError::context(format!("CAS {url}"), e))?,
            ),
        };
        let values =
            fixed::exposed(&self.fixed_values).map_err(|e| StepError::new(e.to_string()))?;
        let known = match self.take_over {
            true => None,
            false => self.known_predecessor.as_deref(),
        };
        // The generated secrets the session sent no longer declares: CAS
        // deletes their values (see the module documentation).
        let mut dropped = Vec::new();
        let outcome = apply_session_with(cas.as_ref(), &self.namespace, known, |current| {
            let sent = fixed::to_send(&yaml, &values, current)?;
            dropped = current
                .map(|c| dropped_generated(&c.yaml, &sent))
                .unwrap_or_default();
            if self.keep_generated && !dropped.is_empty() {
                return Err(CasError::KeepsGenerated {
                    name: self.namespace.clone(),
                    secrets: std::mem::take(&mut dropped),
                });
            }
            Ok(sent)
        })
        .map_err(|e| self.upload_error(e))?;
        let (uploaded, predecessor, own_update) = match &outcome {
            ApplyOutcome::Unchanged { .. } => (false, None, false),
            ApplyOutcome::Uploaded {
                predecessor,
                own_update,
                ..
            } => (true, predecessor.clone(), *own_update),
        };
        let mut info = serde_json::json!({ "uploaded": uploaded, "predecessor": predecessor });
        if let (true, Some(replaced)) = (own_update, &predecessor) {
            info["note"] = serde_json::Value::String(self.own_update_note(replaced));
        }
        if uploaded && !dropped.is_empty() {
            info["dropped_secrets"] = serde_json::json!(dropped);
            info["warnings"] = serde_json::json!([dropped_warning(&dropped)]);
        }
        Ok(StepOutput {
            record: to_record(&UploadRecord {
                name: self.namespace.clone(),
                hash: outcome.hash().to_string(),
            })?,
            info,
            changed: uploaded,
            ..StepOutput::default()
        })
    }
}

impl UploadStep {
    /// The note of an update that replaced `replaced`, this project's own
    /// session sent after the apply `scone.lock` records.
    fn own_update_note(&self, replaced: &str) -> String {
        format!(
            "CAS held {replaced}, a session this project sent after the apply {} records \
             (an interrupted apply?); updated it from there",
            self.lock.display(),
        )
    }

    /// What went wrong, and what to do: a session changed since this
    /// project's last apply names `scone.lock` and the command that accepts
    /// the CAS's session and replaces it (never a hand edit of the lock).
    /// The hash named is the lock's: an update of this project's own
    /// session (which names the CAS's hash) is refused only when the session
    /// moved on again while this apply ran.
    fn upload_error(&self, err: CasError) -> StepError {
        let ns = &self.namespace;
        match err {
            CasError::PredecessorConflict {
                given: Some(given),
                current: Some(current),
                ..
            } => StepError::new(format!(
                "the CAS session `{ns}` changed since this project's last apply: it is at \
                 {current}, not at {} as {} says. Review that change{}, then replace \
                 the session as it is now with this project's: `scone apply --take-over {ns}`",
                self.known_predecessor.as_deref().unwrap_or(&given),
                self.lock.display(),
                match self.target {
                    CasTarget::Local { .. } => format!(" (`scone cas session {ns}`)"),
                    CasTarget::Remote { .. } => String::new(),
                },
            )),
            CasError::OtherProject { .. } | CasError::ClientOwned { .. } => {
                StepError::new(err.to_string())
            }
            CasError::KeepsGenerated { secrets, .. } => {
                let (it, its) = match secrets.len() {
                    1 => ("it", "its value"),
                    _ => ("them", "their values"),
                };
                StepError::new(format!(
                    "not applied: the mesh no longer declares {}, which CAS generated, and \
                     `scone dev` does not delete {its} (a save of a half-edited file would \
                     lose {it} for good): restore the declaration, or run `scone apply` to \
                     drop {it} (a new value is made if {it} is declared again)",
                    secret_list(&secrets),
                ))
            }
            err => StepError::context(format!("uploading session {ns}"), err),
        }
    }
}
