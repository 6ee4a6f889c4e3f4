//! The template set of a chart: the files embedded in the binary, overlaid file by file with a
//! user folder (`--helm-template DIR`). Files ending in `.hbs` are Handlebars templates (the
//! suffix is dropped on output); every other file is copied byte for byte, so Go template text
//! in `templates/*.yaml` reaches Helm untouched. Files under `manifests/` are per-service
//! templates of the plain manifests (`--output yaml`), not part of the chart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use handlebars::{Handlebars, RenderError, TemplateError};

use super::error::{HelmError, TemplateLocation};

/// The folder of per-service plain-manifest templates inside a template set.
pub const MANIFESTS_DIR: &str = "manifests/";

/// The suffix of files rendered by Handlebars.
pub const HANDLEBARS_SUFFIX: &str = ".hbs";

/// The embedded templates: (name in the set, text).
const EMBEDDED: &[(&str, &str)] = &[
    (".helmignore", include_str!("templates/.helmignore")),
    ("Chart.yaml.hbs", include_str!("templates/Chart.yaml.hbs")),
    ("README.md.hbs", include_str!("templates/README.md.hbs")),
    ("values.yaml.hbs", include_str!("templates/values.yaml.hbs")),
    (
        "values.schema.json",
        include_str!("templates/values.schema.json"),
    ),
    (
        "templates/NOTES.txt.hbs",
        include_str!("templates/templates/NOTES.txt.hbs"),
    ),
    (
        "templates/_helpers.tpl",
        include_str!("templates/templates/_helpers.tpl"),
    ),
    (
        "templates/deployment.yaml",
        include_str!("templates/templates/deployment.yaml"),
    ),
    (
        "templates/service.yaml",
        include_str!("templates/templates/service.yaml"),
    ),
    (
        "manifests/deployment.yaml.hbs",
        include_str!("templates/manifests/deployment.yaml.hbs"),
    ),
    (
        "manifests/service.yaml.hbs",
        include_str!("templates/manifests/service.yaml.hbs"),
    ),
];

/// The text of the embedded template `name`, if there is one.
pub(super) fn embedded_text(name: &str) -> Option<&'static str> {
    EMBEDDED
        .iter()
        .find(|(embedded, _)| *embedded == name)
        .map(|(_, text)| *text)
}

/// One file of a template set.
#[derive(Debug, Clone)]
pub struct TemplateFile {
    /// Where it came from, for error messages: the user's file or `<embedded>/<name>`.
    pub origin: PathBuf,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A complete template set, keyed by `/`-separated relative name (sorted).
#[derive(Debug, Clone)]
pub struct TemplateSet {
    files: BTreeMap<String, TemplateFile>,
}

impl TemplateSet {
    /// The templates built into scone.
    pub fn embedded() -> Self {
        let files = EMBEDDED
            .iter()
            .map(|(name, text)| {
                let file = TemplateFile {
                    origin: Path::new("<embedded>").join(name),
                    bytes: text.as_bytes().to_vec(),
                };
                ((*name).to_owned(), file)
            })
            .collect();
        TemplateSet { files }
    }

    /// The embedded templates with every file of `dir` put over them (same relative name
    /// replaces; new names add). An empty file effectively removes an embedded one.
    pub fn with_overrides(dir: &Path) -> Result<Self, HelmError> {
        let folder_error = |path: &Path, reason: String| HelmError::TemplateFolder {
            path: path.to_path_buf(),
            reason,
        };
        // Links are refused, not followed: the chart step's inputs are the
        // folder's own entries, so an edit behind a link would leave the
        // chart as it was.
        let linked = |path: &Path| {
            folder_error(
                path,
                "is a link; links are not followed here (an edit behind one would not rebuild the chart): put the file or folder itself there, or give the folder the link leads to".to_owned(),
            )
        };
        if std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(linked(dir));
        }
        if !dir.is_dir() {
            return Err(folder_error(dir, "is not a folder".to_owned()));
        }
        let mut set = TemplateSet::embedded();
        let walk = walkdir::WalkDir::new(dir)
            .follow_links(false)
            .sort_by_file_name();
        for entry in walk {
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(dir).to_path_buf();
                folder_error(&path, e.to_string())
            })?;
            if entry.path_is_symlink() {
                return Err(linked(entry.path()));
            }
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path();
            let relative = path
                .strip_prefix(dir)
                .map_err(|e| folder_error(path, e.to_string()))?;
            let name = relative_name(relative)
                .ok_or_else(|| folder_error(path, "the file name is not UTF-8".to_owned()))?;
            let bytes = std::fs::read(path).map_err(|e| folder_error(path, e.to_string()))?;
            set.replace_embedded_twin(&name, path)?;
            set.files.insert(
                name,
                TemplateFile {
                    origin: path.to_path_buf(),
                    bytes,
                },
            );
        }
        Ok(set)
    }

    /// A user file `x` replaces the embedded `x.hbs` and a user `x.hbs` the embedded `x`:
    /// both would write `x`. A user folder holding both is an error.
    fn replace_embedded_twin(&mut self, name: &str, path: &Path) -> Result<(), HelmError> {
        let twin = match name.strip_suffix(HANDLEBARS_SUFFIX) {
            Some(output) => output.to_owned(),
            None => format!("{name}{HANDLEBARS_SUFFIX}"),
        };
        match self.files.get(&twin) {
            Some(file) if file.origin.starts_with("<embedded>") => {
                self.files.remove(&twin);
                Ok(())
            }
            Some(file) => Err(HelmError::TemplateFolder {
                path: path.to_path_buf(),
                reason: format!(
                    "{} writes the same file; keep one of them",
                    file.origin.display()
                ),
            }),
            None => Ok(()),
        }
    }

    /// All files, by name.
    pub fn files(&self) -> &BTreeMap<String, TemplateFile> {
        &self.files
    }

    /// A strict Handlebars registry with every `.hbs` file of the set registered under its
    /// name, no HTML escaping and the `yaml` helper. Syntax errors carry file:line:column.
    pub fn registry(&self) -> Result<Handlebars<'static>, HelmError> {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        registry.register_helper("yaml", Box::new(yaml_helper));
        for (name, file) in &self.files {
            if !name.ends_with(HANDLEBARS_SUFFIX) {
                continue;
            }
            let text = std::str::from_utf8(&file.bytes).map_err(|e| HelmError::TemplateSyntax {
                at: TemplateLocation {
                    path: file.origin.clone(),
                    line: None,
                    column: None,
                },
                reason: format!("not UTF-8: {e}"),
            })?;
            registry
                .register_template_string(name, text)
                .map_err(|e| syntax_error(&file.origin, &e))?;
        }
        Ok(registry)
    }

    /// Turns a render error of template `name` into a [`HelmError`] naming its file.
    pub fn render_error(&self, name: &str, error: &RenderError) -> HelmError {
        let origin = self
            .files
            .get(error.template_name.as_deref().unwrap_or(name))
            .or_else(|| self.files.get(name))
            .map(|file| file.origin.clone())
            .unwrap_or_else(|| PathBuf::from(name));
        HelmError::TemplateRender {
            at: TemplateLocation {
                path: origin,
                line: error.line_no,
                column: error.column_no,
            },
            reason: match error.reason() {
                handlebars::RenderErrorReason::MissingVariable(Some(path)) => {
                    format!("unknown variable `{path}` (templates are rendered in strict mode)")
                }
                other => other.to_string(),
            },
        }
    }
}

/// `a/b/c` from a relative path, or `None` if a component is not UTF-8.
fn relative_name(relative: &Path) -> Option<String> {
    let parts: Option<Vec<&str>> = relative
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect();
    parts.map(|parts| parts.join("/"))
}

fn syntax_error(origin: &Path, error: &TemplateError) -> HelmError {
    let (line, column) = match error.pos() {
        Some((line, column)) => (Some(line), Some(column)),
        None => (None, None),
    };
    HelmError::TemplateSyntax {
        at: TemplateLocation {
            path: origin.to_path_buf(),
            line,
            column,
        },
        reason: error.reason().to_string(),
    }
}

/// `{{yaml x}}`: `x` as a YAML flow value (JSON), so strings are always safely quoted.
fn yaml_helper(
    helper: &handlebars::Helper<'_>,
    _: &Handlebars<'_>,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext<'_, '_>,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let param = helper
        .param(0)
        .ok_or(handlebars::RenderErrorReason::ParamNotFoundForIndex(
            "yaml", 0,
        ))?;
    if param.is_value_missing() {
        let path = param.relative_path().cloned();
        return Err(handlebars::RenderErrorReason::MissingVariable(path).into());
    }
    let text = serde_json::to_string(param.value())
        .map_err(|e| handlebars::RenderErrorReason::Other(e.to_string()))?;
    out.write(&text)?;
    Ok(())
}
