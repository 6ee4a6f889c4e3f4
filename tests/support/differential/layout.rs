//! The generated workspace's structured files as documents: a service manifest, a
//! Meshfile and `scone.toml`, each rendered in one fixed layout and read back from
//! it (a line scan of that layout, not a YAML parser: the edits change a field and
//! write the document again). Lines starting with `#` (edits that add a comment)
//! are kept at the end.

/// The registry part of every image reference.
pub const REGISTRY: &str = "127.0.0.1:5000";

/// A service manifest (`kind: genImage`, `build.kind: binary`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceDoc {
    /// `environment.local`: name, value.
    pub locals: Vec<(String, String)>,
    /// `environment.global`: name, default.
    pub globals: Vec<(String, Option<String>)>,
    /// `build.name`.
    pub name: String,
    /// `build.from` (else the `[base] binary` of `scone.toml`).
    pub from: Option<String>,
    /// `build.to`.
    pub to: String,
    pub command: String,
    pub copy: Vec<String>,
    /// `#` lines at the end.
    pub comments: Vec<String>,
}

/// A mesh service: its name, image, and `manifest:` (None: linked by image).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshEntry {
    pub name: String,
    pub image: String,
    pub manifest: Option<String>,
}

/// A Meshfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshDoc {
    pub namespace: String,
    /// The seed-form `env`: name, value.
    pub env: Vec<(String, String)>,
    pub services: Vec<MeshEntry>,
    pub comments: Vec<String>,
}

/// `scone.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigDoc {
    pub members: Vec<String>,
    /// `[base] binary`.
    pub base: Option<String>,
    /// `[signing] key`.
    pub key: Option<String>,
    pub comments: Vec<String>,
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('"').to_string()
}

/// The value after `prefix` on `line`, if the line starts with it.
fn field(line: &str, prefix: &str) -> Option<String> {
    line.strip_prefix(prefix).map(unquote)
}

fn comments(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with('#'))
        .map(String::from)
        .collect()
}

impl ServiceDoc {
    pub fn render(&self) -> String {
        let mut out = String::from("apiVersion: scone/5.8\nkind: genImage\n\nenvironment:\n");
        out.push_str("  local:\n");
        for (name, value) in &self.locals {
            out.push_str(&format!("    - name: {name}\n      value: \"{value}\"\n"));
        }
        out.push_str("  global:\n");
        for (name, default) in &self.globals {
            out.push_str(&format!("    - name: {name}\n"));
            if let Some(value) = default {
                out.push_str(&format!("      value: \"{value}\"\n"));
            }
        }
        out.push_str(&format!(
            "\nbuild:\n  name: {}\n  kind: binary\n",
            self.name
        ));
        if let Some(from) = &self.from {
            out.push_str(&format!("  from: \"{from}\"\n"));
        }
        out.push_str(&format!(
            "  to: \"{}\"\n  pwd: /app\n  command: \"{}\"\n",
            self.to, self.command
        ));
        if self.copy.is_empty() {
            out.push_str("  copy: []\n");
        } else {
            out.push_str("  copy:\n");
            for c in &self.copy {
                out.push_str(&format!("    - {c}\n"));
            }
        }
        for c in &self.comments {
            out.push_str(c);
            out.push('\n');
        }
        out
    }

    /// Reads a manifest this module rendered (None: not one).
    pub fn parse(text: &str) -> Option<ServiceDoc> {
        let mut doc = ServiceDoc {
            locals: Vec::new(),
            globals: Vec::new(),
            name: String::new(),
            from: None,
            to: String::new(),
            command: String::new(),
            copy: Vec::new(),
            comments: comments(text),
        };
        let mut section = "";
        for line in text.lines() {
            match line {
                "  local:" | "  global:" | "  copy:" => section = line.trim(),
                "build:" => section = "build",
                _ => {}
            }
            if let Some(name) = field(line, "    - name: ") {
                match section {
                    "local:" => doc.locals.push((name, String::new())),
                    "global:" => doc.globals.push((name, None)),
                    _ => return None,
                }
            } else if let Some(value) = field(line, "      value: ") {
                match section {
                    "local:" => doc.locals.last_mut()?.1 = value,
                    "global:" => doc.globals.last_mut()?.1 = Some(value),
                    _ => return None,
                }
            } else if let Some(v) = field(line, "  name: ") {
                doc.name = v;
            } else if let Some(v) = field(line, "  from: ") {
                doc.from = Some(v);
            } else if let Some(v) = field(line, "  to: ") {
                doc.to = v;
            } else if let Some(v) = field(line, "  command: ") {
                doc.command = v;
            } else if let Some(v) = field(line, "    - ") {
                (section == "copy:").then_some(())?;
                doc.copy.push(v);
            }
        }
        (!doc.name.is_empty() && !doc.to.is_empty()).then_some(doc)
    }
}

impl MeshDoc {
    pub fn render(&self) -> String {
        let mut out = format!(
            "apiVersion: scone/5.8\nkind: mesh\n\ncas:\n  - name: cas\n    cas_url: \"127.0.0.1:8081\"\n\npolicy:\n  namespace: {}\n\n",
            self.namespace
        );
        if self.env.is_empty() {
            out.push_str("env: []\n");
        } else {
            out.push_str("env:\n");
            for (name, value) in &self.env {
                out.push_str(&format!("  - name: {name}\n    value: \"{value}\"\n"));
            }
        }
        if self.services.is_empty() {
            out.push_str("\nservices: []\n");
        } else {
            out.push_str("\nservices:\n");
            for s in &self.services {
                out.push_str(&format!(
                    "  - name: {}\n    image: \"{}\"\n",
                    s.name, s.image
                ));
                if let Some(m) = &s.manifest {
                    out.push_str(&format!("    manifest: {m}\n"));
                }
            }
        }
        for c in &self.comments {
            out.push_str(c);
            out.push('\n');
        }
        out
    }

    /// Reads a Meshfile this module rendered (None: not one).
    pub fn parse(text: &str) -> Option<MeshDoc> {
        let mut doc = MeshDoc {
            namespace: String::new(),
            env: Vec::new(),
            services: Vec::new(),
            comments: comments(text),
        };
        let mut section = "";
        for line in text.lines() {
            if !line.starts_with(' ') && line.ends_with(':') || line.ends_with(": []") {
                section = line.split(':').next().unwrap_or("");
                continue;
            }
            if let Some(v) = field(line, "  namespace: ") {
                doc.namespace = v;
            } else if let Some(name) = field(line, "  - name: ") {
                match section {
                    "env" => doc.env.push((name, String::new())),
                    "services" => doc.services.push(MeshEntry {
                        name,
                        image: String::new(),
                        manifest: None,
                    }),
                    _ => {}
                }
            } else if let Some(v) = field(line, "    value: ") {
                (section == "env").then_some(())?;
                doc.env.last_mut()?.1 = v;
            } else if let Some(v) = field(line, "    image: ") {
                doc.services.last_mut()?.image = v;
            } else if let Some(v) = field(line, "    manifest: ") {
                doc.services.last_mut()?.manifest = Some(v);
            }
        }
        (!doc.namespace.is_empty()).then_some(doc)
    }
}

impl ConfigDoc {
    pub fn render(&self) -> String {
        let members: Vec<String> = self.members.iter().map(|m| format!("\"{m}\"")).collect();
        let mut out = format!("members = [{}]\n", members.join(", "));
        if let Some(base) = &self.base {
            out.push_str(&format!("\n[base]\nbinary = \"{base}\"\n"));
        }
        if let Some(key) = &self.key {
            out.push_str(&format!("\n[signing]\nkey = \"{key}\"\n"));
        }
        for c in &self.comments {
            out.push_str(c);
            out.push('\n');
        }
        out
    }

    /// Reads a `scone.toml` this module rendered (None: not one).
    pub fn parse(text: &str) -> Option<ConfigDoc> {
        let mut doc = ConfigDoc {
            members: Vec::new(),
            base: None,
            key: None,
            comments: comments(text),
        };
        let mut has_members = false;
        for line in text.lines() {
            if let Some(list) = line.strip_prefix("members = [") {
                has_members = true;
                doc.members = list
                    .trim_end_matches(']')
                    .split(',')
                    .map(unquote)
                    .filter(|m| !m.is_empty())
                    .collect();
            } else if let Some(v) = field(line, "binary = ") {
                doc.base = Some(v);
            } else if let Some(v) = field(line, "key = ") {
                doc.key = Some(v);
            }
        }
        has_members.then_some(doc)
    }
}

/// The image a service of team `team` named `svc` builds.
pub fn image(team: &str, svc: &str) -> String {
    format!("{REGISTRY}/{team}/{svc}:latest")
}
