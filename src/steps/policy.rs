//! `policy:<namespace>`: the CAS session of a mesh (SCONE session language
//! 0.3.10), from the services' commands, environments and signed enclaves.
//! Published as `target/policy/<namespace>.yaml`; the record carries its hash.
//! Secret *declarations* only: CAS generates the values.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::sign::SignRecord;
use super::{from_record, param, to_record};
use crate::cas::session::{
    content_hash, render, SecretDecl, SecretKind, ServiceInput, SessionInput,
};
use crate::engine::{BlobSource, Publish, Step, StepContext, StepError, StepId, StepOutput};

/// A service of the session, before the sign step's results are known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyService {
    /// Mesh service name.
    pub name: String,
    /// `build.name`: which `sign:` dep is this service's.
    pub unit: String,
    pub image_name: String,
    pub command: String,
    pub pwd: String,
    pub environment: Vec<(String, String)>,
}

/// A secret declaration (no value is ever generated here).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct PolicySecret {
    pub name: String,
    pub kind: String,
    pub size: Option<u32>,
    /// A fixed value the manifest gives: it goes into the session, as in the manifest.
    pub value: Option<String>,
    pub export_to: Vec<String>,
}

impl std::fmt::Debug for PolicySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySecret")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The record of a policy step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub name: String,
    /// [`content_hash`] of the session (its predecessor left out).
    pub hash: String,
    /// Path under `target/`.
    pub path: String,
}

/// See the module documentation.
pub struct PolicyStep {
    pub id: StepId,
    pub namespace: String,
    pub services: Vec<PolicyService>,
    pub secrets: Vec<PolicySecret>,
    pub tolerate: Vec<String>,
    pub ignore_advisories: Vec<String>,
}

impl Step for PolicyStep {
    fn id(&self) -> &StepId {
        &self.id
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("namespace".to_string(), self.namespace.clone()),
            ("services".to_string(), param(&self.services)),
            ("secrets".to_string(), param(&self.secrets)),
            ("tolerate".to_string(), param(&self.tolerate)),
            (
                "ignore-advisories".to_string(),
                param(&self.ignore_advisories),
            ),
        ])
    }

    fn run(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        let mut services = Vec::new();
        for s in &self.services {
            let sign = cx
                .deps
                .iter()
                .find(|(id, _)| id.kind == "sign" && id.unit == s.unit)
                .ok_or_else(|| StepError::new(format!("internal: no sign step for {}", s.unit)))?;
            let sign: SignRecord = from_record(&sign.1.record)?;
            services.push(ServiceInput {
                name: s.name.clone(),
                image_name: s.image_name.clone(),
                mrenclaves: vec![sign.mrenclave],
                command: s.command.clone(),
                pwd: s.pwd.clone(),
                environment: s.environment.clone(),
                fspf_tag: Some(sign.fspf_tag),
            });
        }
        let input = SessionInput {
            name: self.namespace.clone(),
            services,
            secrets: self
                .secrets
                .iter()
                .map(|s| SecretDecl {
                    name: s.name.clone(),
                    kind: SecretKind::parse(&s.kind),
                    size: s.size,
                    value: s.value.clone(),
                    export_to: s.export_to.clone(),
                })
                .collect(),
            tolerate: self.tolerate.clone(),
            ignore_advisories: self.ignore_advisories.clone(),
            predecessor: None,
        };
        let yaml = render(&input).map_err(|e| StepError::context("rendering the session", e))?;
        let path = cx.scratch.join("session.yaml");
        std::fs::write(&path, &yaml).map_err(|e| StepError::context("writing the session", e))?;
        let rel = format!("policy/{}.yaml", self.namespace);
        Ok(StepOutput {
            record: to_record(&PolicyRecord {
                name: self.namespace.clone(),
                hash: content_hash(&yaml),
                path: rel.clone(),
            })?,
            files: BTreeMap::from([("session".to_string(), path)]),
            publish: vec![Publish::File {
                path: rel,
                source: BlobSource::Own("session".into()),
            }],
            ..StepOutput::default()
        })
    }
}
