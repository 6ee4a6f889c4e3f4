//! Rendering a chart: the model of a [`ChartInput`] through a [`TemplateSet`] into the chart's
//! files and, per service, plain Kubernetes manifests (for `--output yaml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::checks::check_app_version;
use super::error::HelmError;
use super::input::ChartInput;
use super::model::ChartModel;
use super::native;
use super::templates::{embedded_text, TemplateSet, HANDLEBARS_SUFFIX, MANIFESTS_DIR};

/// A rendered chart, nothing written yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedChart {
    /// The chart's files, by path relative to the chart folder (`Chart.yaml`,
    /// `templates/deployment.yaml`, ...).
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    /// Plain manifests, one `<kubernetes name>.yaml` per service (Deployment, then Service
    /// if it has ports), what `helm template <release>` would give minus Helm's own labels.
    pub manifests: BTreeMap<PathBuf, Vec<u8>>,
    /// Names changed to fit Kubernetes.
    pub warnings: Vec<String>,
    /// `helm install …` to use when a name changed (a hint, not a warning).
    pub install: Option<String>,
}

/// The embedded templates whose text shows the CAS session (`appVersion`):
/// [`PreparedChart::finish`] renders them once the session is known.
const SHOW_SESSION: [&str; 2] = ["Chart.yaml.hbs", "README.md.hbs"];

/// A chart of the embedded templates, rendered but for the files that show
/// the CAS session (`Chart.yaml` and `README.md`): what can be made while the
/// mesh's policy, whose hash is `appVersion`, is still being made.
#[derive(Debug)]
pub struct PreparedChart {
    model: ChartModel,
    /// The chart's files but those that show the session.
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    pub warnings: Vec<String>,
    pub install: Option<String>,
}

/// The chart of `input` with the embedded templates and no plain manifests,
/// but for the files that show the session: `input.app_version` is not read.
pub fn prepare_chart(input: &ChartInput) -> Result<PreparedChart, HelmError> {
    let (model, warnings) = ChartModel::build(input)?;
    let set = TemplateSet::embedded();
    let rendered = render_model(&model, warnings, &set, false, &SHOW_SESSION)?;
    Ok(PreparedChart {
        model,
        files: rendered.files,
        warnings: rendered.warnings,
        install: rendered.install,
    })
}

impl PreparedChart {
    /// The files that show the session, for `app_version` (the short session
    /// hash): with [`PreparedChart::files`], the whole chart.
    pub fn finish(&mut self, app_version: &str) -> Result<BTreeMap<PathBuf, Vec<u8>>, HelmError> {
        check_app_version(app_version)?;
        let model = &mut self.model;
        model.chart.app_version = app_version.to_owned();
        let mut files = BTreeMap::new();
        for name in SHOW_SESSION {
            let bytes = embedded_text(name).unwrap_or_default().as_bytes();
            let text =
                native::render(name, bytes, model).ok_or_else(|| HelmError::InvalidInput {
                    field: "templates",
                    reason: format!("internal: no writer for the embedded {name}"),
                })?;
            let output = name.strip_suffix(HANDLEBARS_SUFFIX).unwrap_or(name);
            files.insert(PathBuf::from(output), text.into_bytes());
        }
        Ok(files)
    }
}

/// Renders the chart of `input` with the embedded templates, overlaid by the files of
/// `templates` when given. A template with a syntax or render error gives its file, line and
/// column.
pub fn render(input: &ChartInput, templates: Option<&Path>) -> Result<RenderedChart, HelmError> {
    render_chart(input, templates, true)
}

/// [`render`], rendering the plain per-service manifests only when `manifests`
/// (they cost more than the chart itself: two templates per service).
/// Without them, [`RenderedChart::manifests`] is empty.
pub fn render_chart(
    input: &ChartInput,
    templates: Option<&Path>,
    manifests: bool,
) -> Result<RenderedChart, HelmError> {
    let set = match templates {
        Some(dir) => TemplateSet::with_overrides(dir)?,
        None if !manifests => {
            // What the chart step makes in two parts, made the same way.
            let mut prepared = prepare_chart(input)?;
            let mut files = prepared.finish(&input.app_version)?;
            files.extend(prepared.files);
            return Ok(RenderedChart {
                files,
                manifests: BTreeMap::new(),
                warnings: prepared.warnings,
                install: prepared.install,
            });
        }
        None => TemplateSet::embedded(),
    };
    render_set(input, &set, manifests)
}

/// [`render`] with an already loaded template set.
pub fn render_with(input: &ChartInput, set: &TemplateSet) -> Result<RenderedChart, HelmError> {
    render_set(input, set, true)
}

/// Handlebars and the JSON form of the model, made only when a template needs them.
struct Engine {
    registry: handlebars::Handlebars<'static>,
    wrapped: handlebars::Context,
}

impl Engine {
    fn new(set: &TemplateSet, model: &ChartModel) -> Result<Engine, HelmError> {
        let registry = set.registry()?;
        // Serialized once, straight into the context: `Registry::render` would
        // serialize the whole mesh again for every template.
        let wrapped = handlebars::Context::wraps(model).map_err(|e| HelmError::InvalidInput {
            field: "services",
            reason: e.to_string(),
        })?;
        Ok(Engine { registry, wrapped })
    }
}

fn render_set(
    input: &ChartInput,
    set: &TemplateSet,
    with_manifests: bool,
) -> Result<RenderedChart, HelmError> {
    check_app_version(&input.app_version)?;
    let (model, warnings) = ChartModel::build(input)?;
    render_model(&model, warnings, set, with_manifests, &[])
}

/// [`render_set`] of a built model, leaving out the templates `skip` names.
fn render_model(
    model: &ChartModel,
    warnings: Vec<String>,
    set: &TemplateSet,
    with_manifests: bool,
    skip: &[&str],
) -> Result<RenderedChart, HelmError> {
    // Any template the native writers do not cover (a user's, or the per-service
    // manifests) needs Handlebars; it is then set up first, so that a syntax error
    // in any template is reported as before.
    let needs_engine = with_manifests
        || set.files().iter().any(|(name, file)| {
            name.ends_with(HANDLEBARS_SUFFIX) && !native::covers(name, &file.bytes)
        });
    let mut engine = if needs_engine {
        Some(Engine::new(set, model)?)
    } else {
        None
    };
    let mut files = BTreeMap::new();
    let mut plain_static = BTreeMap::new();
    let mut per_service = Vec::new();
    for (name, file) in set.files() {
        if skip.contains(&name.as_str()) {
            continue;
        }
        if let Some(inside) = name.strip_prefix(MANIFESTS_DIR) {
            if name.ends_with(HANDLEBARS_SUFFIX) {
                per_service.push(name.as_str());
            } else {
                plain_static.insert(PathBuf::from(inside), file.bytes.clone());
            }
            continue;
        }
        match name.strip_suffix(HANDLEBARS_SUFFIX) {
            Some(output) => {
                let text = match native::render(name, &file.bytes, model) {
                    Some(text) => text,
                    None => {
                        if engine.is_none() {
                            engine = Some(Engine::new(set, model)?);
                        }
                        let Some(engine) = &engine else {
                            continue;
                        };
                        engine
                            .registry
                            .render_with_context(name, &engine.wrapped)
                            .map_err(|e| set.render_error(name, &e))?
                    }
                };
                files.insert(PathBuf::from(output), text.into_bytes());
            }
            None => {
                files.insert(PathBuf::from(name), file.bytes.clone());
            }
        }
    }

    let mut manifests = plain_static;
    let Some(Engine { registry, wrapped }) = engine.filter(|_| with_manifests) else {
        return Ok(RenderedChart {
            files,
            manifests: BTreeMap::new(),
            warnings,
            install: model.install_line(),
        });
    };
    // Each manifest sees the chart-wide values and its own service, not the lists
    // of all services and renames: cloning those per service would be quadratic.
    let mut shared = wrapped.data().clone();
    if let serde_json::Value::Object(map) = &mut shared {
        map.remove("services");
        map.remove("renamed");
    }
    for service in &model.services {
        let mut service_context = shared.clone();
        if let serde_json::Value::Object(map) = &mut service_context {
            let value = serde_json::to_value(service).map_err(|e| HelmError::InvalidService {
                service: service.name.clone(),
                reason: e.to_string(),
            })?;
            map.insert("service".to_owned(), value);
        }
        let mut documents = String::new();
        for name in &per_service {
            let text = registry
                .render(name, &service_context)
                .map_err(|e| set.render_error(name, &e))?;
            let text = text.trim();
            if !text.is_empty() {
                documents.push_str("---\n");
                documents.push_str(text);
                documents.push('\n');
            }
        }
        manifests.insert(
            PathBuf::from(format!("{}.yaml", service.key)),
            documents.into_bytes(),
        );
    }
    Ok(RenderedChart {
        files,
        manifests,
        warnings,
        install: model.install_line(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helm::ChartService;

    #[test]
    fn chart_without_manifests_has_the_same_chart_files() {
        let mut input = ChartInput::new("mesh", "0123456789ab", "cas.example:8081");
        for name in ["api", "db"] {
            input.services.push(ChartService::new(
                "mesh",
                name,
                "registry.example/app",
                &format!("sha256:{}", "a".repeat(64)),
            ));
        }
        let full = render(&input, None).unwrap();
        let chart_only = render_chart(&input, None, false).unwrap();
        assert_eq!(chart_only.files, full.files);
        assert_eq!(chart_only.warnings, full.warnings);
        assert!(chart_only.manifests.is_empty());
        assert!(full.manifests.contains_key(&PathBuf::from("api.yaml")));
        assert!(full.files.contains_key(&PathBuf::from("values.yaml")));
    }

    #[test]
    fn a_prepared_chart_does_not_show_the_session_until_finished() {
        let mut input = ChartInput::new("mesh", "", "cas.example:8081");
        input.services.push(ChartService::new(
            "mesh",
            "api_1",
            "registry.example/app",
            &format!("sha256:{}", "b".repeat(64)),
        ));
        let mut first = prepare_chart(&input).unwrap();
        input.app_version = "ffffffffffff".into();
        let second = prepare_chart(&input).unwrap();
        assert_eq!(first.files, second.files, "the session is not read");
        assert_eq!(first.warnings, second.warnings);
        for shown in ["Chart.yaml", "README.md"] {
            assert!(!first.files.contains_key(&PathBuf::from(shown)), "{shown}");
        }
        let last = first.finish("0123456789ab").unwrap();
        assert_eq!(
            last.keys().collect::<Vec<_>>(),
            [&PathBuf::from("Chart.yaml"), &PathBuf::from("README.md")]
        );
        assert!(String::from_utf8_lossy(&last[&PathBuf::from("Chart.yaml")])
            .contains("appVersion: \"0123456789ab\""));
        // Whole, it is the chart the one-part renderer (Handlebars for what
        // the writers do not cover) makes.
        input.app_version = "0123456789ab".into();
        let mut whole = last;
        whole.extend(first.files.clone());
        assert_eq!(whole, render(&input, None).unwrap().files);
        assert!(first.finish("not a hash!").is_err());
    }
}
