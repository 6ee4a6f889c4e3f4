//! The `scone` binary: parse arguments, call the library, render errors.
//!
//! Exit codes: 0 success, 1 build failure, 2 bad manifest or usage
//! (`apply --plan --detailed-exitcode`: 0 no changes, 2 changes, 1 any error).

mod cli;

use clap::{CommandFactory, FromArgMatches};
use cli::args::{Cli, Command};
use scone::manifest::{Diagnostic, Diagnostics, ErrorKind, Pos};
use std::io::Write;

/// mimalloc: a build allocates and frees tens of thousands of small strings
/// and a few big buffers; glibc's allocator spends much of a small build in
/// `malloc`, `free` and page faults on freshly mapped buffers. Without
/// transparent huge pages (`no_thp`): the kernel zeroing 2 MB pages that a
/// short process barely touches cost more than the faults they save.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs the command, then ends the process once stdout and stderr are
/// flushed, without the C runtime's exit handlers: in one of them mimalloc
/// hands every page the process used back to the kernel one range at a time
/// (`mi_process_done`: ~5 ms of a 1,000-service one-file change's ~110), which
/// the kernel does anyway, at once, when the process ends. Every file scone
/// writes is written, synced and renamed into place before `run` returns, and
/// nothing scone relies on runs at exit.
fn main() {
    let code = run();
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` only ends the process (all of its threads, as returning
    // from `main` does) and never returns, so no Rust value is used after it;
    // the values it does not drop are leaked, which is safe.
    unsafe { libc::_exit(i32::from(code)) }
}

/// A command that only prints ends quietly when its reader goes away
/// (`scone graph | head`), as `cat` does: SIGPIPE's default action, which
/// Rust's runtime sets aside (a write then fails, and `println!` panics with
/// "failed printing to stdout"). Builds keep it aside: a line of their log
/// nobody reads is dropped and the build finishes (`cli::output`).
fn quiet_on_a_closed_pipe() {
    // SAFETY: `signal` only sets how this process takes SIGPIPE, to the
    // default (no handler of ours runs); it is called on the main thread
    // before the command starts any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Whether `command` only prints what it finds (no build, no server): then it
/// ends quietly when its reader goes away ([`quiet_on_a_closed_pipe`]).
fn only_prints(command: &Command) -> bool {
    match command {
        Command::Graph(_)
        | Command::Check(_)
        | Command::Verify(_)
        | Command::Enclave(_)
        | Command::Reference => true,
        Command::Cas(cas) => !matches!(cas, cli::cas::CasCommand::Serve { .. }),
        _ => false,
    }
}

/// An option's variable set to nothing (`SCONE_TARGET_DIR= scone build`, the
/// usual way to unset one for one command) is taken as not set, as most tools
/// take it: clap would read it as the option given with no value, and blame
/// an option the user never typed. Runs before any thread starts.
fn unset_empty_option_variables() {
    for name in cli::args::option_variables() {
        if std::env::var_os(&name).is_some_and(|v| v.is_empty()) {
            std::env::remove_var(&name);
        }
    }
}

/// The command's exit code.
fn run() -> u8 {
    unset_empty_option_variables();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `scone apply -f FILE --help`: the options FILE's kind takes.
    if let Some(code) = cli::help::manifest_help(&argv) {
        return code;
    }
    // `apply --plan --detailed-exitcode`: 2 means "changes to apply" (as with
    // `terraform plan -detailed-exitcode`), so every error exits 1.
    let detailed = argv.iter().any(|a| a == "--detailed-exitcode");
    let parsed = Cli::command()
        .try_get_matches_from(&argv)
        .and_then(|matches| {
            cli::args::refuse_conflicts(&matches)?;
            Cli::from_arg_matches(&matches)
        });
    let mut cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let code = if detailed && e.use_stderr() {
                1
            } else {
                e.exit_code()
            };
            let _ = e.print();
            return u8::try_from(code).unwrap_or(2);
        }
    };
    cli.settle();
    let usage_code = if detailed { 1 } else { 2 };
    if only_prints(&cli.command) {
        quiet_on_a_closed_pipe();
    }
    let result = match &cli.command {
        Command::Build(args) => cli::build::run_build(args),
        Command::Apply(args) => cli::build::run_apply(args),
        Command::Verify(args) => cli::verify::run(args),
        Command::Clean(args) => cli::clean::run(args),
        Command::Graph(args) => cli::graph::run(args),
        Command::Check(args) => cli::check::run(args),
        Command::Run(args) => cli::run::run(args),
        Command::Dev(args) => cli::dev::run(args),
        Command::Enclave(cmd) => cli::enclave::run(cmd),
        Command::Cas(cmd) => cli::cas::run(cmd),
        Command::Reference => cli::reference::run(),
    };
    match result {
        Ok(code) => u8::try_from(code).unwrap_or(1),
        Err(err) => {
            let out = cli::output::Output::messages(&cli.common());
            let code = failed(&err, &out, usage_code);
            if matches!(cli.command, Command::Build(_) | Command::Apply(_)) {
                cli::output::close_failed(&out);
            }
            code
        }
    }
}

/// Prints the error a command ended with; its exit code.
fn failed(err: &anyhow::Error, out: &cli::output::Output, usage_code: u8) -> u8 {
    if let Some(diags) = err.downcast_ref::<Diagnostics>() {
        out.diagnostics(&diags.0);
        return usage_code;
    }
    if let Some(usage) = err.downcast_ref::<cli::UsageError>() {
        out.diagnostics(&[usage.diagnostic()]);
        return usage_code;
    }
    if let Some(refused) = err.downcast_ref::<cli::Refused>() {
        out.diagnostics(&[refused.diagnostic()]);
        return 1;
    }
    // The cause once: a message that already says its source is
    // not followed by it again (`{err:#}` said it twice).
    let mut diag = Diagnostic::new(
        ErrorKind::Build,
        "",
        Pos::default(),
        scone::cause::with_causes(err.as_ref()),
    );
    if let Some(scone::engine::EngineError::Io { .. }) = err.downcast_ref() {
        diag = diag.with_hint(
            "scone keeps its build state and outputs there: build into a folder it may write (--target-dir DIR, or SCONE_TARGET_DIR)",
        );
    }
    out.diagnostics(&[diag]);
    1
}
