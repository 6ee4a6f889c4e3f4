//! `chart:<namespace>`: the mesh's Helm chart, with every image pinned by the
//! digest the image step produced. Published in `target/helm/` (one mesh) or
//! `target/helm/<namespace>/` (several), plus plain manifests in
//! `target/manifests/` with `--output yaml`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::policy::{borrow_record, sorted_json};
use super::{param, to_record};
use crate::engine::{
    BlobSource, Input, Prepared, Publish, PublishFile, Step, StepContext, StepError, StepId,
    StepOutput,
};
use crate::helm::{
    prepare_chart, render_chart, ChartInput, ChartPort, ChartService, PreparedChart,
};

/// A service of the chart, before its image digest is known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChartUnit {
    /// Mesh service name.
    pub name: String,
    /// `build.name`: which `image:` dep is this service's.
    pub unit: String,
    /// `(name, port, protocol)`.
    pub ports: Vec<(String, u16, String)>,
}

/// The field of the policy step's record (`PolicyRecord`) the chart needs.
#[derive(Deserialize)]
struct SessionHash<'a> {
    hash: &'a str,
}

/// A [`ChartUnit`] with its fields in alphabetical order: the text `param` gives
/// without a `serde_json::Value` of the whole mesh (see `policy::sorted_json`).
#[derive(Serialize)]
struct UnitParam<'a> {
    name: &'a str,
    ports: &'a [(String, u16, String)],
    unit: &'a str,
}

impl<'a> UnitParam<'a> {
    fn of(s: &'a ChartUnit) -> Self {
        UnitParam {
            name: &s.name,
            ports: &s.ports,
            unit: &s.unit,
        }
    }
}

/// See the module documentation.
#[derive(Serialize, Deserialize)]
pub struct ChartStep {
    pub id: StepId,
    pub namespace: String,
    pub version: String,
    pub cas_addr: String,
    pub services: Vec<ChartUnit>,
    /// Where under `target/` the chart goes (`helm` or `helm/<namespace>`).
    pub dir: String,
    /// How the docs should name the chart folder.
    pub chart_path: String,
    /// A user template folder (`--helm-template`).
    pub templates: Option<PathBuf>,
    /// Also publish plain manifests (`--output yaml`) under this dir.
    pub manifests_dir: Option<String>,
}

impl Step for ChartStep {
    fn stored(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }
    fn id(&self) -> &StepId {
        &self.id
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("namespace".to_string(), self.namespace.clone()),
            ("version".to_string(), self.version.clone()),
            ("cas".to_string(), self.cas_addr.clone()),
            (
                "services".to_string(),
                sorted_json(&self.services, UnitParam::of),
            ),
            ("dir".to_string(), self.dir.clone()),
            ("chart-path".to_string(), self.chart_path.clone()),
            ("manifests".to_string(), param(&self.manifests_dir)),
        ])
    }

    fn inputs(&self) -> Vec<Input> {
        self.templates
            .iter()
            .map(|path| Input::Tree {
                label: "templates".into(),
                path: path.clone(),
            })
            .collect()
    }

    /// The chart's files but `Chart.yaml` and `README.md`, which show the
    /// session hash: rendered and stored once the images are known.
    fn prepare_without(&self) -> Option<&str> {
        Some("policy")
    }

    fn prepare(&self, cx: &StepContext<'_>) -> Result<Option<Prepared>, StepError> {
        if !self.in_two_parts() {
            return Ok(None);
        }
        Ok(Some(Box::new(self.head(cx)?)))
    }

    fn run(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        let policy: SessionHash<'_> = borrow_record(&cx.dep("policy")?.record)?;
        let app_version = &policy.hash[..12.min(policy.hash.len())];
        if self.in_two_parts() {
            let mut head = match cx.take_prepared::<ChartHead>() {
                Some(head) => *head,
                None => self.head(cx)?,
            };
            let last = head
                .chart
                .finish(app_version)
                .map_err(|e| StepError::context("rendering the Helm chart", e))?;
            let mut digests = store_all(cx, &last)?;
            digests.append(&mut head.digests);
            let (stored, files) = published(digests, "chart");
            return Ok(StepOutput {
                record: chart_record(&self.dir, &head.chart.warnings, &head.chart.install)?,
                stored,
                publish: vec![Publish::Dir {
                    dir: self.dir.clone(),
                    files,
                }],
                ..StepOutput::default()
            });
        }
        let input = self.input(cx, app_version)?;
        let chart = render_chart(
            &input,
            self.templates.as_deref(),
            self.manifests_dir.is_some(),
        )
        .map_err(|e| StepError::context("rendering the Helm chart", e))?;
        let mut sets = vec![(self.dir.as_str(), &chart.files, "chart")];
        if let Some(dir) = &self.manifests_dir {
            sets.push((dir.as_str(), &chart.manifests, "manifests"));
        }
        let mut stored = BTreeMap::new();
        let mut publish = Vec::new();
        for (dir, set, prefix) in sets {
            let digests = store_all(cx, set)?;
            let (names, files) = published(digests, prefix);
            stored.extend(names);
            publish.push(Publish::Dir {
                dir: dir.to_string(),
                files,
            });
        }
        Ok(StepOutput {
            record: chart_record(&self.dir, &chart.warnings, &chart.install)?,
            stored,
            publish,
            ..StepOutput::default()
        })
    }
}

/// What [`ChartStep::prepare`] makes: the chart but for what shows the
/// session, with its files stored.
struct ChartHead {
    chart: PreparedChart,
    /// The digests of `chart.files`, by path.
    digests: BTreeMap<PathBuf, String>,
}

impl ChartStep {
    /// Whether the chart is made in two parts ([`Step::prepare`], then the
    /// files that show the session): with the embedded templates and no
    /// plain manifests. A user's template could show the session anywhere.
    fn in_two_parts(&self) -> bool {
        self.templates.is_none() && self.manifests_dir.is_none()
    }

    /// The chart's input, from the image deps (their two fields read from
    /// the build state without the rest of each record).
    fn input(&self, cx: &StepContext<'_>, app_version: &str) -> Result<ChartInput, StepError> {
        let mut input = ChartInput::new(&self.namespace, app_version, &self.cas_addr);
        input.chart_version = self.version.clone();
        input.chart_path = self.chart_path.clone();
        let images = cx.dep_fields("image", &["reference", "manifest_digest"])?;
        input.services.reserve(self.services.len());
        for s in &self.services {
            let [reference, manifest_digest] = images
                .get(&s.unit)
                .ok_or_else(|| StepError::new(format!("internal: no image step for {}", s.unit)))?
            else {
                return Err(StepError::new("internal: two fields asked, not two given"));
            };
            let mut service = ChartService::new(
                &self.namespace,
                &s.name,
                crate::helm::image_repository(reference.as_str()),
                manifest_digest.as_str(),
            );
            service.ports = s
                .ports
                .iter()
                .map(|(name, port, protocol)| ChartPort {
                    name: name.clone(),
                    port: *port,
                    protocol: protocol.clone(),
                })
                .collect();
            input.services.push(service);
        }
        Ok(input)
    }

    /// The chart but for what shows the session, stored.
    fn head(&self, cx: &StepContext<'_>) -> Result<ChartHead, StepError> {
        let input = self.input(cx, "")?;
        let chart =
            prepare_chart(&input).map_err(|e| StepError::context("rendering the Helm chart", e))?;
        let digests = store_all(cx, &chart.files)?;
        Ok(ChartHead { chart, digests })
    }
}

/// Stores each file straight from memory (in parallel: new ones are
/// fsynced; files that did not change are not written again); their digests.
fn store_all(
    cx: &StepContext<'_>,
    set: &BTreeMap<PathBuf, Vec<u8>>,
) -> Result<BTreeMap<PathBuf, String>, StepError> {
    use rayon::prelude::*;
    set.par_iter()
        .map(|(path, bytes)| Ok((path.clone(), cx.store_bytes(bytes)?)))
        .collect()
}

/// The stored names (`<prefix>/<path>`) and published entries of stored files.
fn published(
    digests: BTreeMap<PathBuf, String>,
    prefix: &str,
) -> (BTreeMap<String, String>, Vec<PublishFile>) {
    let mut stored = BTreeMap::new();
    let mut files = Vec::new();
    for (rel, digest) in digests {
        let name = format!("{prefix}/{}", rel.display());
        stored.insert(name.clone(), digest);
        files.push(PublishFile {
            path: rel.to_string_lossy().into_owned(),
            source: BlobSource::Own(name),
        });
    }
    (stored, files)
}

/// The record: the chart folder, the names changed to fit Kubernetes
/// (`warnings`) and, then, the line to install it with (`install`).
fn chart_record(
    dir: &str,
    warnings: &[String],
    install: &Option<String>,
) -> Result<serde_json::Value, StepError> {
    let mut record = serde_json::json!({
        "chart": dir,
        "warnings": warnings,
    });
    if let Some(line) = install {
        record["install"] = serde_json::json!(line);
    }
    to_record(&record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_param_is_the_text_of_the_generic_param() {
        let services = vec![
            ChartUnit {
                name: "svc \"a\"".into(),
                unit: "a".into(),
                ports: vec![("http".into(), 80, "TCP".into())],
            },
            ChartUnit {
                name: "b".into(),
                unit: "ü".into(),
                ports: Vec::new(),
            },
        ];
        let step = ChartStep {
            id: StepId::new("chart", "mesh"),
            namespace: "mesh".into(),
            version: "0.1.0".into(),
            cas_addr: "cas:8081".into(),
            services: services.clone(),
            dir: "helm".into(),
            chart_path: "target/helm".into(),
            templates: None,
            manifests_dir: None,
        };
        assert_eq!(step.params()["services"], param(&services));
    }
}
