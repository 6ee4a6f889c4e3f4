//! `policy:<namespace>`: the CAS session of a mesh (SCONE session language
//! 0.3.10), from the services' commands, environments and signed enclaves.
//! Published as `target/policy/<namespace>.yaml`; the record carries its hash.
//! Secret *declarations* only: CAS generates the values, and a fixed value a
//! service manifest gives is not an input of this step at all: the session
//! holds a placeholder ([`crate::cas::fixed`]) that the upload step fills.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{param, to_record};
use crate::cas::session::{
    content_hash, render_with_entries, service_entry, SecretDecl, SecretKind, ServiceInput,
    SessionInput,
};
use crate::engine::{
    BlobSource, DepFields, Prepared, Publish, Step, StepContext, StepError, StepId, StepOutput,
};

/// The fields of a sign record (`SignRecord`) the session shows.
const SIGN_FIELDS: [&str; 2] = ["mrenclave", "fspf_tag"];

/// A service of the session, before the sign step's results are known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySecret {
    pub name: String,
    pub kind: String,
    pub size: Option<u32>,
    /// Whether the manifest gives a fixed value: only that, not the value,
    /// is a param (fingerprints go to the remote cache).
    pub fixed: bool,
    pub export_to: Vec<String>,
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
    fixed: bool,
    kind: &'a str,
    name: &'a str,
    size: Option<u32>,
}

impl<'a> SecretParam<'a> {
    fn of(s: &'a PolicySecret) -> Self {
        SecretParam {
            export_to: &s.export_to,
            fixed: s.fixed,
            kind: &s.kind,
            name: &s.name,
            size: s.size,
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
#[derive(Serialize, Deserialize)]
pub struct PolicyStep {
    pub id: StepId,
    pub namespace: String,
    pub services: Vec<PolicyService>,
    pub secrets: Vec<PolicySecret>,
    pub tolerate: Vec<String>,
    pub ignore_advisories: Vec<String>,
}

impl Step for PolicyStep {
    fn stored(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }
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

    /// The services whose sign step is done, with their session entries:
    /// made while the last enclaves are signed.
    fn prepare_without(&self) -> Option<&str> {
        Some("sign")
    }

    fn prepare(&self, cx: &StepContext<'_>) -> Result<Option<Prepared>, StepError> {
        let signs = cx.dep_fields("sign", &SIGN_FIELDS)?;
        let services = self
            .services
            .iter()
            .map(|s| signs.get(&s.unit).map(|v| service_input(s, v)).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let entries = services
            .iter()
            .map(|s| s.as_ref().map(service_entry))
            .collect();
        Ok(Some(Box::new(PolicyHead { services, entries })))
    }

    fn run(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        let PolicyHead {
            mut services,
            entries,
        } = match cx.take_prepared::<PolicyHead>() {
            Some(head) => *head,
            None => PolicyHead {
                services: vec![None; self.services.len()],
                entries: Vec::new(),
            },
        };
        // The services the prepare did not have (all, without one).
        let missing: std::collections::HashSet<&str> = self
            .services
            .iter()
            .zip(&services)
            .filter(|(_, input)| input.is_none())
            .map(|(s, _)| s.unit.as_str())
            .collect();
        if !missing.is_empty() {
            let signs = cx.dep_fields_of("sign", &SIGN_FIELDS, |u| missing.contains(u))?;
            for (s, input) in self.services.iter().zip(services.iter_mut()) {
                if input.is_none() {
                    *input = Some(service_input(s, fields(&signs, &s.unit)?)?);
                }
            }
        }
        let input = SessionInput {
            name: self.namespace.clone(),
            services: services.into_iter().flatten().collect(),
            secrets: self
                .secrets
                .iter()
                .map(|s| SecretDecl {
                    name: s.name.clone(),
                    kind: SecretKind::parse(&s.kind),
                    size: s.size,
                    fixed: s.fixed,
                    export_to: s.export_to.clone(),
                })
                .collect(),
            tolerate: self.tolerate.clone(),
            ignore_advisories: self.ignore_advisories.clone(),
            predecessor: None,
        };
        let yaml = render_with_entries(&input, &entries)
            .map_err(|e| StepError::context("rendering the session", e))?;
        // Stored (an fsync) while its SHA-256 is taken.
        let (session, hash) =
            rayon::join(|| cx.store_bytes(yaml.as_bytes()), || content_hash(&yaml));
        let session = session?;
        let rel = format!("policy/{}.yaml", self.namespace);
        Ok(StepOutput {
            record: to_record(&PolicyRecord {
                name: self.namespace.clone(),
                hash,
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

/// What [`PolicyStep::prepare`] makes: per service of the step, its session
/// input and entry, if its sign step was done.
struct PolicyHead {
    services: Vec<Option<ServiceInput>>,
    entries: Vec<Option<String>>,
}

/// The sign fields of `unit`.
fn fields<'a>(signs: &'a DepFields<'_>, unit: &str) -> Result<&'a [String], StepError> {
    signs
        .get(unit)
        .ok_or_else(|| StepError::new(format!("internal: no sign step for {unit}")))
}

/// A service of the session, with its sign step's [`SIGN_FIELDS`].
fn service_input(s: &PolicyService, sign: &[String]) -> Result<ServiceInput, StepError> {
    let [mrenclave, fspf_tag] = sign else {
        return Err(StepError::new("internal: two fields asked, not two given"));
    };
    Ok(ServiceInput {
        name: s.name.clone(),
        image_name: s.image_name.clone(),
        mrenclaves: vec![mrenclave.clone()],
        command: s.command.clone(),
        pwd: s.pwd.clone(),
        environment: s.environment.clone(),
        fspf_tag: Some(fspf_tag.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
                fixed: false,
                export_to: vec!["svc_0".into(), "svc_1".into()],
            },
            PolicySecret {
                name: "t".into(),
                kind: "x509".into(),
                size: None,
                fixed: true,
                export_to: Vec::new(),
            },
        ];
        assert_eq!(sorted_json(&secrets, SecretParam::of), param(&secrets));
        assert_eq!(sorted_json(&[] as &[PolicySecret], SecretParam::of), "[]");
    }
}
