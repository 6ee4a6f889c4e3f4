//! The file an interpreter entry runs, read from `build.command` as the
//! interpreter reads its arguments: `python3 [options] app.py`, `node
//! [options] server.js`, `java [options] -jar app.jar`. [`super::entry`]
//! looks it up where it looks up the entry binary, so a misspelt script is
//! refused by `check` rather than found when the service fails to start.
//!
//! Only a command that names its file plainly is read: code given inline
//! (`-c`, `-e`), a module or class (`-m`, `java Main`), standard input (`-`)
//! and a word that is expanded later (`$APP`) are not looked at.

/// The file an interpreter runs.
#[derive(Debug, PartialEq, Eq)]
pub struct Script {
    /// `python`, `node` or `java`.
    pub runner: &'static str,
    /// As the image sees it: a relative path is under `pwd`, where the
    /// interpreter starts.
    pub path: String,
    /// As the command writes it.
    pub word: String,
}

/// The file `command` has an interpreter run, if it names one plainly.
pub fn run_by(command: &str, pwd: &str) -> Option<Script> {
    let words = super::split_command(command);
    let (first, args) = words.split_first()?;
    let name = std::path::Path::new(first).file_name()?.to_str()?;
    let (runner, file) = if is_python(name) {
        ("python", python_file(args)?)
    } else if name == "node" || name == "nodejs" {
        ("node", node_file(args)?)
    } else if name == "java" {
        ("java", java_jar(args)?)
    } else {
        return None;
    };
    if file.contains('$') {
        return None;
    }
    let path = if file.starts_with('/') {
        file.to_string()
    } else {
        format!(
            "{}/{}",
            pwd.trim_end_matches('/'),
            file.trim_start_matches("./")
        )
    };
    Some(Script {
        runner,
        path,
        word: file.to_string(),
    })
}

/// `python`, `python3` or `python3.N`.
fn is_python(name: &str) -> bool {
    let Some(version) = name.strip_prefix("python") else {
        return false;
    };
    let versioned = version
        .strip_prefix("3.")
        .is_some_and(|minor| !minor.is_empty() && minor.bytes().all(|c| c.is_ascii_digit()));
    matches!(version, "" | "3") || versioned
}

/// `python [options] FILE`: `-W` and `-X` take the next word (or the rest
/// of their own); `-c`, `-m` and `-` end the options without a file.
fn python_file(args: &[String]) -> Option<&str> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-m" | "-c" | "-" => return None,
            "-W" | "-X" | "--check-hash-based-pycs" => {
                args.next();
            }
            long if long.starts_with("--") => {}
            // `-u`, `-OO`, `-Wignore`; `-uc`, `-um`, `-uW`: code, a module
            // or a value follows.
            flags if flags.starts_with('-') => {
                if flags.len() > 2
                    && flags.ends_with(['c', 'm', 'W', 'X'])
                    && !flags.starts_with("-W")
                    && !flags.starts_with("-X")
                {
                    return None;
                }
            }
            file => return Some(file),
        }
    }
    None
}

/// `node [options] FILE`: `-r`, `--require`, `--import`, `--loader`, `-C`
/// and `--conditions` take the next word (or `=value`); `-e`, `-p`, `-i`,
/// `--test` and `-` end the options without a file of scone's to look at.
fn node_file(args: &[String]) -> Option<&str> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-e" | "--eval" | "-p" | "--print" | "-i" | "--interactive" | "--test" | "-" => {
                return None
            }
            "-r"
            | "--require"
            | "--import"
            | "--loader"
            | "--experimental-loader"
            | "-C"
            | "--conditions"
            | "--title" => {
                args.next();
            }
            flag if flag.starts_with('-') => {}
            file => return Some(file),
        }
    }
    None
}

/// `java [options] -jar FILE`: only the jar form names a file; a main class
/// or module (`java -cp lib Main`, `-m`) is not looked at.
fn java_jar(args: &[String]) -> Option<&str> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-jar" => return args.next().map(String::as_str),
            "-cp" | "-classpath" | "--class-path" | "-p" | "--module-path" | "--add-modules"
            | "--add-opens" | "--add-exports" | "--add-reads" => {
                args.next();
            }
            flag if flag.starts_with('-') => {}
            // A main class (or `-m`'s module, caught as a flag above and its
            // value here): no file.
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(command: &str) -> Option<(&'static str, String)> {
        run_by(command, "/app/").map(|s| (s.runner, s.path))
    }

    #[test]
    fn the_file_each_interpreter_runs_is_read_as_it_reads_it() {
        let runs = |command: &str, runner: &'static str, file: &str| {
            assert_eq!(path(command), Some((runner, file.to_string())), "{command}");
        };
        runs("python3 app.py", "python", "/app/app.py");
        runs(
            "python3 ./src/main.py --port 80",
            "python",
            "/app/src/main.py",
        );
        runs(
            "/usr/bin/python3.11 -u -W ignore /srv/x.py",
            "python",
            "/srv/x.py",
        );
        runs("python -OO -Wignore -X dev app.py", "python", "/app/app.py");
        runs(
            "node --require ./trace.js -r dotenv/config server.js",
            "node",
            "/app/server.js",
        );
        runs(
            "node --max-old-space-size=512 dist/index.js",
            "node",
            "/app/dist/index.js",
        );
        runs(
            "java -Xmx512m -cp lib -jar app.jar --spring.profiles.active=x",
            "java",
            "/app/app.jar",
        );
        for none in [
            "python3 -m http.server",
            "python3 -c 'print(1)'",
            "python3 -uc 'print(1)'",
            "python3 -",
            "python3 $APP",
            "python3",
            "python3-config app.py",
            "pythonista app.py",
            "node -e 'console.log(1)'",
            "node --test",
            "java -cp app.jar com.example.Main",
            "java -m app/com.example.Main",
            "ruby app.rb",
        ] {
            assert_eq!(path(none), None, "{none}");
        }
    }
}
