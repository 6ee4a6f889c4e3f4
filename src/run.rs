//! `scone run`: run one built service locally in **simulation mode**, with the
//! environment CAS would inject: the session's command, pwd and environment,
//! `$$SCONE::x$$` replaced by the secret values the embedded local CAS holds.
//! No SGX: the secrets are visible to this host, and we say so.
//!
//! Two ways to run: in a Docker-API engine through bollard (the image loaded
//! from `target/images/<service>/`, `--network=none`, logs streamed, exit code
//! propagated), or `--native`: the image's rootfs unpacked to a temp folder and
//! the command run on the host in its `pwd` — the host's programs from `PATH`
//! (a `python3` command is the host's interpreter, running the image's files),
//! not the image's own.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cas::secret::SecretValue;

/// What to run, resolved from the session.
#[derive(Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// The mesh service name.
    pub service: String,
    pub argv: Vec<String>,
    pub pwd: String,
    /// With secret values substituted: never print this.
    pub env: Vec<(String, String)>,
}

impl std::fmt::Debug for RunSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSpec")
            .field("service", &self.service)
            .field("argv", &self.argv)
            .field("pwd", &self.pwd)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .finish()
    }
}

/// Why a service cannot run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the session has no service `{0}`")]
    NoService(String),
    #[error("the session cannot be read: {0}")]
    Session(String),
    #[error(
        "`$$SCONE::{0}$$` names a secret the local CAS does not hold; run `scone apply` first"
    )]
    NoSecret(String),
    #[error("secret `{0}` is binary and cannot be put into an environment variable")]
    BinarySecret(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Engine(String),
}

#[derive(Deserialize)]
struct Session {
    #[serde(default)]
    services: Vec<SessionService>,
}

#[derive(Deserialize)]
struct SessionService {
    name: String,
    command: String,
    #[serde(default)]
    pwd: String,
    #[serde(default)]
    environment: BTreeMap<String, String>,
}

/// Resolves `service` of a session as CAS would hand it to the attested program.
pub fn resolve(
    session_yaml: &str,
    service: &str,
    secrets: &BTreeMap<String, SecretValue>,
) -> Result<RunSpec, RunError> {
    let session: Session =
        serde_saphyr::from_str(session_yaml).map_err(|e| RunError::Session(e.to_string()))?;
    let svc = session
        .services
        .into_iter()
        .find(|s| s.name == service)
        .ok_or_else(|| RunError::NoService(service.to_string()))?;
    let mut env = Vec::new();
    for (name, value) in svc.environment {
        env.push((name, substitute(&value, secrets)?));
    }
    Ok(RunSpec {
        service: svc.name,
        argv: crate::plan::split_command(&svc.command),
        pwd: if svc.pwd.is_empty() {
            "/".into()
        } else {
            svc.pwd
        },
        env,
    })
}

/// Replaces every `$$SCONE::name$$` with the secret's value.
pub fn substitute(
    value: &str,
    secrets: &BTreeMap<String, SecretValue>,
) -> Result<String, RunError> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("$$SCONE::") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "$$SCONE::".len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_.-".contains(c)))
            .unwrap_or(after.len());
        let name = &after[..end];
        let secret = secrets
            .get(name)
            .ok_or_else(|| RunError::NoSecret(name.to_string()))?;
        out.push_str(
            secret
                .expose_str()
                .ok_or_else(|| RunError::BinarySecret(name.to_string()))?,
        );
        rest = after[end..].strip_prefix("$$").unwrap_or(&after[end..]);
    }
    out.push_str(rest);
    Ok(out)
}

/// Unpacks image layers (bottom first) into `dest`, honouring whiteouts.
pub fn unpack(layers: &[PathBuf], dest: &Path) -> Result<(), RunError> {
    let io = |context: String| move |source| RunError::Io { context, source };
    std::fs::create_dir_all(dest).map_err(io(format!("creating {}", dest.display())))?;
    for layer in layers {
        let reader =
            crate::oci::rootfs::open_layer(layer).map_err(|e| RunError::Engine(e.to_string()))?;
        let mut archive = tar::Archive::new(reader);
        archive.set_preserve_permissions(true);
        archive.set_overwrite(true);
        for entry in archive
            .entries()
            .map_err(io(format!("reading {}", layer.display())))?
        {
            let mut entry = entry.map_err(io(format!("reading {}", layer.display())))?;
            let path = entry
                .path()
                .map_err(io("an entry path".into()))?
                .into_owned();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
            if name == ".wh..wh..opq" {
                let dir = dest.join(&parent);
                if dir.is_dir() {
                    for child in std::fs::read_dir(&dir)
                        .map_err(io(dir.display().to_string()))?
                        .flatten()
                    {
                        crate::durable::remove_all(&child.path())
                            .map_err(io(child.path().display().to_string()))?;
                    }
                }
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                let victim = dest.join(&parent).join(hidden);
                crate::durable::remove_all(&victim).map_err(io(victim.display().to_string()))?;
                continue;
            }
            // `unpack_in` refuses paths that escape `dest`.
            entry
                .unpack_in(dest)
                .map_err(io(format!("unpacking {}", path.display())))?;
        }
    }
    Ok(())
}

/// Runs the spec on the host, in `<rootfs>/<pwd>`; returns the exit code.
pub fn run_native(spec: &RunSpec, rootfs: &Path) -> Result<i32, RunError> {
    let status = start_native(spec, rootfs)?
        .wait()
        .map_err(|source| RunError::Io {
            context: "waiting for the service".into(),
            source,
        })?;
    Ok(exit_code(status))
}

/// How a native service ended, waited for by [`wait_or_stop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It ended by itself: its exit code (128 + the signal that killed it).
    Exited(i32),
    /// Stopped on this signal scone was sent (Ctrl-C, SIGTERM, SIGHUP).
    Stopped(i32),
}

/// How long a service stopped by [`wait_or_stop`] has between SIGTERM and
/// SIGKILL.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Waits for `child`, a native service, to end; when a signal number comes
/// on `stop` first (scone was told to stop), sends it SIGTERM, then SIGKILL
/// after [`STOP_GRACE`], and waits for it: a service that holds the CAS's
/// secrets never outlives the `scone run` that started it.
pub fn wait_or_stop(
    child: &mut std::process::Child,
    stop: &std::sync::mpsc::Receiver<i32>,
) -> Result<Ended, RunError> {
    use std::sync::mpsc::RecvTimeoutError;
    let io = |source| RunError::Io {
        context: "waiting for the service".into(),
        source,
    };
    loop {
        if let Some(status) = child.try_wait().map_err(io)? {
            return Ok(Ended::Exited(exit_code(status)));
        }
        match stop.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(signal) => {
                end(child).map_err(io)?;
                return Ok(Ended::Stopped(signal));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Ok(Ended::Exited(exit_code(child.wait().map_err(io)?)));
            }
        }
    }
}

/// SIGTERM, then SIGKILL if it still runs after [`STOP_GRACE`]; reaped.
fn end(child: &mut std::process::Child) -> std::io::Result<()> {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: `kill` takes its arguments by value; `pid` is our child,
        // not yet reaped (so its pid is not anyone else's).
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = std::time::Instant::now() + STOP_GRACE;
    while std::time::Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill()?;
    child.wait().map(|_| ())
}

/// A shell's exit code for `status`: the code, or 128 + the killing signal.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(128)
}

/// A container started by [`start_docker`]; its output streams to ours.
pub struct DockerRun {
    id: String,
    host: String,
    waiter: Option<std::thread::JoinHandle<Result<i32, RunError>>>,
}

fn docker_host(docker_host: Option<&str>) -> String {
    docker_host
        .map(str::to_string)
        .or_else(|| std::env::var("DOCKER_HOST").ok())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into())
}

fn runtime() -> Result<tokio::runtime::Runtime, RunError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| RunError::Io {
            context: "starting a runtime".into(),
            source,
        })
}

async fn connect(host: &str) -> Result<bollard::Docker, RunError> {
    let engine = |e: bollard::errors::Error| RunError::Engine(format!("{host}: {e}"));
    let docker = bollard::Docker::connect_with_host(host).map_err(engine)?;
    docker.negotiate_version().await.map_err(engine)
}

/// Creates and starts a container for the spec (image `tag`, already loaded),
/// `--network=none` unless `network`; a thread streams its logs and waits.
pub fn start_docker(
    spec: &RunSpec,
    tag: &str,
    docker_host_arg: Option<&str>,
    network: bool,
) -> Result<DockerRun, RunError> {
    use bollard::models::{ContainerCreateBody, HostConfig};
    let host = docker_host(docker_host_arg);
    let engine = |e: bollard::errors::Error| RunError::Engine(format!("{e}"));
    let body = ContainerCreateBody {
        image: Some(tag.to_string()),
        entrypoint: Some(spec.argv.clone()),
        cmd: Some(Vec::new()),
        working_dir: Some(spec.pwd.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(std::collections::HashMap::from([(
            "dev.scone.run".to_string(),
            spec.service.clone(),
        )])),
        host_config: Some(HostConfig {
            network_mode: Some(if network { "bridge" } else { "none" }.into()),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let id = runtime()?.block_on(async {
        let docker = connect(&host).await?;
        let created = docker.create_container(None, body).await.map_err(engine)?;
        docker
            .start_container(&created.id, None)
            .await
            .map_err(engine)?;
        Ok::<_, RunError>(created.id)
    })?;
    let (wait_host, wait_id) = (host.clone(), id.clone());
    let waiter = std::thread::spawn(move || stream_and_wait(&wait_host, &wait_id));
    Ok(DockerRun {
        id,
        host,
        waiter: Some(waiter),
    })
}

fn stream_and_wait(host: &str, id: &str) -> Result<i32, RunError> {
    use bollard::query_parameters::LogsOptionsBuilder;
    use futures_util::StreamExt;
    use std::io::Write;
    let engine = |e: bollard::errors::Error| RunError::Engine(format!("{host}: {e}"));
    runtime()?.block_on(async {
        let docker = connect(host).await?;
        let mut logs = docker.logs(
            id,
            Some(
                LogsOptionsBuilder::new()
                    .follow(true)
                    .stdout(true)
                    .stderr(true)
                    .build(),
            ),
        );
        while let Some(chunk) = logs.next().await {
            match chunk.map_err(engine)? {
                bollard::container::LogOutput::StdErr { message } => {
                    let _ = std::io::stderr().write_all(&message);
                }
                other => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&other.into_bytes());
                    let _ = out.flush();
                }
            }
        }
        let mut wait = docker.wait_container(id, None);
        let mut code = 0i64;
        while let Some(r) = wait.next().await {
            match r {
                Ok(w) => code = w.status_code,
                Err(bollard::errors::Error::DockerContainerWaitError { code: c, .. }) => code = c,
                Err(e) => return Err(engine(e)),
            }
        }
        Ok(i32::try_from(code).unwrap_or(1))
    })
}

impl DockerRun {
    /// Waits for the container to exit; returns its exit code. Removes it.
    pub fn wait(mut self) -> Result<i32, RunError> {
        let code = match self.waiter.take().map(|w| w.join()) {
            Some(Ok(result)) => result,
            _ => Err(RunError::Engine("the log streamer panicked".into())),
        };
        self.remove();
        code
    }

    /// The container's exit code if it has exited (`Some(Err)`: the engine
    /// could not say); `None` while it runs. Never waits. Asked again after
    /// it answered, `None`: each exit is told once.
    pub fn exited(&mut self) -> Option<Result<i32, RunError>> {
        if !self.waiter.as_ref()?.is_finished() {
            return None;
        }
        match self.waiter.take()?.join() {
            Ok(result) => Some(result),
            Err(_) => Some(Err(RunError::Engine("the log streamer panicked".into()))),
        }
    }

    /// Stops and removes the container.
    pub fn stop(mut self) {
        self.remove();
        if let Some(w) = self.waiter.take() {
            let _ = w.join();
        }
    }

    fn remove(&self) {
        use bollard::query_parameters::RemoveContainerOptionsBuilder;
        if let Ok(rt) = runtime() {
            let _ = rt.block_on(async {
                let docker = connect(&self.host).await?;
                docker
                    .remove_container(
                        &self.id,
                        Some(RemoveContainerOptionsBuilder::new().force(true).build()),
                    )
                    .await
                    .map_err(|e| RunError::Engine(e.to_string()))
            });
        }
    }
}

/// Runs the spec in a Docker-API engine and waits for it; returns its exit code.
pub fn run_docker(
    spec: &RunSpec,
    tag: &str,
    docker_host: Option<&str>,
    network: bool,
) -> Result<i32, RunError> {
    start_docker(spec, tag, docker_host, network)?.wait()
}

/// Starts the spec on the host, in `<rootfs>/<pwd>`, without waiting.
pub fn start_native(spec: &RunSpec, rootfs: &Path) -> Result<std::process::Child, RunError> {
    spawn(native_command(spec, rootfs)?, spec)
}

/// [`start_native`], for a service that must not outlive this process: on
/// Linux the kernel kills it (SIGKILL) when the calling thread ends — the
/// whole process, when it is the main thread — even by `kill -9`.
pub fn start_native_tied(spec: &RunSpec, rootfs: &Path) -> Result<std::process::Child, RunError> {
    let mut command = native_command(spec, rootfs)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // The parent as the child will see it (`getppid`), read before the
        // fork: no allocation or lock is needed after it.
        let parent = std::process::id();
        let die_with_parent = move || {
            // SAFETY (of the closure, which runs in the forked child before
            // `exec`, where only async-signal-safe calls are sound): it
            // calls `prctl` and `getppid` only — two plain system calls,
            // async-signal-safe, that take no lock and allocate nothing —
            // and builds its error with `last_os_error` /
            // `from_raw_os_error`, which store an integer and allocate
            // nothing. `prctl(PR_SET_PDEATHSIG, SIGKILL)` takes its integer
            // arguments by value and reads no memory of ours.
            let set = unsafe {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                )
            };
            if set != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between the fork and `prctl`: then
            // no signal will come, and the child is someone else's already.
            // SAFETY: see above; `getppid` cannot fail.
            if unsafe { libc::getppid() } as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        };
        // SAFETY: the closure is async-signal-safe (see inside it).
        unsafe {
            command.pre_exec(die_with_parent);
        }
    }
    spawn(command, spec)
}

/// The command that runs the spec in `<rootfs>/<pwd>`, with only `PATH` and
/// the spec's variables.
fn native_command(spec: &RunSpec, rootfs: &Path) -> Result<std::process::Command, RunError> {
    let cwd = rootfs.join(spec.pwd.trim_start_matches('/'));
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| RunError::Engine("the command is empty".into()))?;
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(spec.env.iter().map(|(k, v)| (k, v)));
    Ok(command)
}

fn spawn(
    mut command: std::process::Command,
    spec: &RunSpec,
) -> Result<std::process::Child, RunError> {
    command.spawn().map_err(|source| RunError::Io {
        context: format!(
            "running `{}` in {}",
            spec.argv.first().map(String::as_str).unwrap_or_default(),
            command
                .get_current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        ),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cas::session::SecretKind;

    fn secrets() -> BTreeMap<String, SecretValue> {
        BTreeMap::from([(
            "password".to_string(),
            SecretValue::new(SecretKind::Ascii, b"s3cr3t-pw!".to_vec()),
        )])
    }

    #[test]
    fn substitutes_both_reference_forms() {
        let s = secrets();
        assert_eq!(substitute("$$SCONE::password$$", &s).unwrap(), "s3cr3t-pw!");
        assert_eq!(substitute("$$SCONE::password", &s).unwrap(), "s3cr3t-pw!");
        assert_eq!(
            substitute("a=$$SCONE::password$$;b", &s).unwrap(),
            "a=s3cr3t-pw!;b"
        );
        assert_eq!(substitute("plain", &s).unwrap(), "plain");
        assert!(
            matches!(substitute("$$SCONE::nope$$", &s), Err(RunError::NoSecret(n)) if n == "nope")
        );
    }

    #[test]
    fn resolves_a_service_and_hides_values_in_debug() {
        let yaml = "name: ns\nservices:\n  - name: app\n    command: \"python3 x.py\"\n    pwd: /p\n    environment:\n      A: \"$$SCONE::password$$\"\n      B: plain\n";
        let spec = resolve(yaml, "app", &secrets()).unwrap();
        assert_eq!(spec.argv, ["python3", "x.py"]);
        assert_eq!(spec.pwd, "/p");
        assert_eq!(
            spec.env,
            [
                ("A".into(), "s3cr3t-pw!".into()),
                ("B".into(), "plain".into())
            ]
        );
        assert!(!format!("{spec:?}").contains("s3cr3t"));
        assert!(matches!(
            resolve(yaml, "other", &secrets()),
            Err(RunError::NoService(_))
        ));
    }
}
