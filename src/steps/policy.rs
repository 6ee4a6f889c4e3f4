//! `policy:<namespace>`: the CAS session of a mesh (SCONE session language
//! 0.3.10), from the services' commands, environments and signed enclaves.
//! Published as `target/policy/<namespace>.yaml`; the record carries its hash.
//! Secret *declarations* only: CAS generates the values.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{param, to_record};
use crate::cas::session::{
    content_hash, render, SecretDecl, SecretKind, ServiceInput, SessionInput,
};
use crate::engine::{
    ActionRecord, BlobSource, Publish, Step, StepContext, StepError, StepId, StepOutput,
};

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

/// The fields of a sign step's record (`SignRecord`) the session needs, borrowed
/// from the record: no copy of the other fields, no clone of the JSON.
#[derive(Deserialize)]
struct SignedEnclave<'a> {
    mrenclave: &'a str,
    fspf_tag: &'a str,
}

/// The deps of one kind by unit, built once so that a mesh of N services finds
/// each service's dep in O(1) rather than scanning all deps per service. When a
/// unit appears twice, the first wins (as a linear `find` would).
pub(super) fn deps_by_unit<'a>(
    deps: &'a [(StepId, Arc<ActionRecord>)],
    kind: &str,
) -> HashMap<&'a str, &'a ActionRecord> {
    let mut index = HashMap::with_capacity(deps.len());
    for (id, record) in deps.iter().filter(|(id, _)| id.kind == kind) {
        index.entry(id.unit.as_str()).or_insert(record.as_ref());
    }
    index
}

/// Reads `T` straight from an upstream record, borrowing its strings.
pub(super) fn borrow_record<'a, T: Deserialize<'a>>(
    value: &'a serde_json::Value,
) -> Result<T, StepError> {
    T::deserialize(value)
        .map_err(|e| StepError::context("internal: decoding an upstream record", e))
}

/// A [`PolicyService`] with its fields in alphabetical order: serialized
/// directly it gives the text [`param`] gives (a `serde_json::Value` sorts object
/// keys) without building the `Value` of a 1,000-service mesh first.
#[derive(Serialize)]
struct ServiceParam<'a> {
    command: &'a str,
    environment: &'a [(String, String)],
    image_name: &'a str,
    name: &'a str,
    pwd: &'a str,
    unit: &'a str,
}

impl<'a> ServiceParam<'a> {
    fn of(s: &'a PolicyService) -> Self {
        ServiceParam {
            command: &s.command,
            environment: &s.environment,
            image_name: &s.image_name,
            name: &s.name,
            pwd: &s.pwd,
            unit: &s.unit,
        }
    }
}

/// A [`PolicySecret`] with its fields in alphabetical order (see [`ServiceParam`]).
#[derive(Serialize)]
struct SecretParam<'a> {
    export_to: &'a [String],
    kind: &'a str,
    name: &'a str,
    size: Option<u32>,
    value: Option<&'a str>,
}

impl<'a> SecretParam<'a> {
    fn of(s: &'a PolicySecret) -> Self {
        SecretParam {
            export_to: &s.export_to,
            kind: &s.kind,
            name: &s.name,
            size: s.size,
            value: s.value.as_deref(),
        }
    }
}

/// The JSON array of `items` seen through `view`, as [`param`] would write it.
pub(super) fn sorted_json<'a, T, V: Serialize>(
    items: &'a [T],
    view: impl Fn(&'a T) -> V,
) -> String {
    let views: Vec<V> = items.iter().map(view).collect();
    serde_json::to_string(&views).unwrap_or_default()
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
            (
                "services".to_string(),
                sorted_json(&self.services, ServiceParam::of),
            ),
            (
                "secrets".to_string(),
                sorted_json(&self.secrets, SecretParam::of),
            ),
            ("tolerate".to_string(), param(&self.tolerate)),
            (
                "ignore-advisories".to_string(),
                param(&self.ignore_advisories),
            ),
        ])
    }

    /// Reads only its deps' records (MRENCLAVEs, image digests).
    fn reads_dep_files(&self) -> bool {
        false
    }

    fn run(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        let signs = deps_by_unit(cx.deps, "sign");
        let mut services = Vec::with_capacity(self.services.len());
        for s in &self.services {
            let sign = signs
                .get(s.unit.as_str())
                .ok_or_else(|| StepError::new(format!("internal: no sign step for {}", s.unit)))?;
            let sign: SignedEnclave<'_> = borrow_record(&sign.record)?;
            services.push(ServiceInput {
                name: s.name.clone(),
                image_name: s.image_name.clone(),
                mrenclaves: vec![sign.mrenclave.to_owned()],
                command: s.command.clone(),
                pwd: s.pwd.clone(),
                environment: s.environment.clone(),
                fspf_tag: Some(sign.fspf_tag.to_owned()),
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
        let session = cx.store_bytes(yaml.as_bytes())?;
        let rel = format!("policy/{}.yaml", self.namespace);
        Ok(StepOutput {
            record: to_record(&PolicyRecord {
                name: self.namespace.clone(),
                hash: content_hash(&yaml),
                path: rel.clone(),
            })?,
            stored: BTreeMap::from([("session".to_string(), session)]),
            publish: vec![Publish::File {
                path: rel,
                source: BlobSource::Own("session".into()),
            }],
            ..StepOutput::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(kind: &str, unit: &str, record: serde_json::Value) -> (StepId, Arc<ActionRecord>) {
        let record = ActionRecord {
            step: format!("{kind}:{unit}"),
            fingerprint: format!("fp-{kind}-{unit}"),
            record,
            files: BTreeMap::new(),
            publish: Vec::new(),
            info: serde_json::Value::Null,
        };
        (StepId::new(kind, unit), Arc::new(record))
    }

    #[test]
    fn params_are_the_text_of_the_generic_param() {
        let services: Vec<PolicyService> = (0..3)
            .map(|i| PolicyService {
                name: format!("svc_{i}"),
                unit: format!("unit-{i}"),
                image_name: format!("img \"{i}\""),
                command: "app --flag=ü\\n".into(),
                pwd: "/app".into(),
                environment: vec![
                    ("A".into(), "$$SCONE::s".into()),
                    ("B\u{1}".into(), String::new()),
                ],
            })
            .collect();
        assert_eq!(sorted_json(&services, ServiceParam::of), param(&services));
        let secrets = vec![
            PolicySecret {
                name: "s".into(),
                kind: "ascii".into(),
                size: Some(32),
                value: None,
                export_to: vec!["svc_0".into(), "svc_1".into()],
            },
            PolicySecret {
                name: "t".into(),
                kind: "x509".into(),
                size: None,
                value: Some("line\nline".into()),
                export_to: Vec::new(),
            },
        ];
        assert_eq!(sorted_json(&secrets, SecretParam::of), param(&secrets));
        assert_eq!(sorted_json(&[] as &[PolicySecret], SecretParam::of), "[]");
    }

    #[test]
    fn deps_by_unit_finds_each_units_dep_of_that_kind_only() {
        let deps = vec![
            dep("image", "a", serde_json::json!({"n": "image-a"})),
            dep("sign", "b", serde_json::json!({"n": "sign-b"})),
            dep("sign", "a", serde_json::json!({"n": "sign-a"})),
            dep("sign", "a", serde_json::json!({"n": "second"})),
        ];
        let index = deps_by_unit(&deps, "sign");
        assert_eq!(index.len(), 2);
        assert_eq!(index["a"].record["n"], "sign-a", "the first of a unit wins");
        assert_eq!(index["b"].record["n"], "sign-b");
        let images = deps_by_unit(&deps, "image");
        assert_eq!(images.len(), 1);
        assert_eq!(images["a"].record["n"], "image-a");
        assert!(deps_by_unit(&deps, "layer").is_empty());
    }

    #[test]
    fn a_sign_record_is_read_without_copying_it() {
        let record = serde_json::json!({
            "mrenclave": "ab".repeat(32),
            "mrsigner": "cd".repeat(32),
            "fspf_tag": "ef".repeat(32),
            "binary": "/usr/bin/app",
        });
        let sign: SignedEnclave<'_> = borrow_record(&record).unwrap();
        assert_eq!(sign.mrenclave, "ab".repeat(32));
        assert_eq!(sign.fspf_tag, "ef".repeat(32));
        let broken = serde_json::json!({"mrenclave": 7});
        let err = borrow_record::<SignedEnclave<'_>>(&broken).err().unwrap();
        assert!(
            err.to_string().contains("decoding an upstream record"),
            "{err}"
        );
    }
}
