//! Finding the enclave's entry binary: the first word of the service's `command`,
//! looked up like a shell does (a name with a `/` is a path, relative to `pwd`; a bare
//! name is searched in the image's `PATH`). Pure: the caller says which in-image paths
//! are executable files (after following the image's symlinks).

use super::error::SgxError;

/// `PATH` when the image config sets none (the Docker default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Joins an absolute `dir` and a relative `name`, resolving `.` and `..` lexically.
fn join(dir: &str, name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in dir.split('/').chain(name.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The absolute in-image path of the program `command` runs. `pwd` is the working
/// directory, `path_var` the image's `PATH` (default [`DEFAULT_PATH`]), and
/// `is_executable` answers for an absolute in-image path.
pub fn resolve_entry(
    command: &str,
    pwd: &str,
    path_var: Option<&str>,
    is_executable: impl Fn(&str) -> bool,
) -> Result<String, SgxError> {
    let program = command
        .split_whitespace()
        .next()
        .ok_or_else(|| SgxError::EntryNotFound {
            program: String::new(),
            searched: "the command is empty".to_string(),
        })?;
    if program.contains('/') {
        let path = join(if program.starts_with('/') { "/" } else { pwd }, program);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(SgxError::EntryNotFound {
                program: program.to_string(),
                searched: path,
            })
        };
    }
    let path_var = path_var.unwrap_or(DEFAULT_PATH);
    let mut searched = Vec::new();
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { pwd } else { dir };
        let candidate = join(
            if dir.starts_with('/') { "/" } else { pwd },
            &format!("{dir}/{program}"),
        );
        if is_executable(&candidate) {
            return Ok(candidate);
        }
        searched.push(candidate);
    }
    Err(SgxError::EntryNotFound {
        program: program.to_string(),
        searched: searched.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(paths: &'static [&'static str]) -> impl Fn(&str) -> bool {
        move |p: &str| paths.contains(&p)
    }

    #[test]
    fn bare_names_are_searched_in_path_order() {
        let exe = image(&["/usr/bin/python3", "/usr/local/bin/python3"]);
        let found = resolve_entry("python3 print_env.py", "/python", None, &exe).expect("found");
        assert_eq!(found, "/usr/local/bin/python3");
        let found =
            resolve_entry("python3", "/", Some("/usr/bin:/usr/local/bin"), &exe).expect("found");
        assert_eq!(found, "/usr/bin/python3");
    }

    #[test]
    fn paths_are_taken_as_given_relative_to_pwd() {
        let exe = image(&["/app/bin/server", "/opt/tool"]);
        assert_eq!(
            resolve_entry("./bin/server --port 1", "/app", None, &exe).expect("found"),
            "/app/bin/server"
        );
        assert_eq!(
            resolve_entry("/opt/../opt/tool", "/", None, &exe).expect("found"),
            "/opt/tool"
        );
    }

    #[test]
    fn a_missing_program_names_where_it_looked() {
        let err = resolve_entry("python3 x.py", "/python", Some("/usr/bin:/bin"), image(&[]))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("python3") && text.contains("/usr/bin/python3, /bin/python3"),
            "{text}"
        );
        assert!(resolve_entry("  ", "/", None, image(&[])).is_err());
    }
}
