//! The folders `scone dev --native` and `scone run --native` unpack an
//! image's rootfs into, and the ones a dev loop or run that is gone left
//! behind (`kill -9`, a crash, a power cut). A folder's name says whose it is:
//! `scone-dev-<pid namespace>-<pid>-<start time>-XXXXXX` (`scone-run-…` for
//! `scone run`) — the process's pid
//! namespace (`/proc/self/ns/pid`'s inode), pid and start time (clock ticks
//! after boot, `/proc/<pid>/stat`). Pid, start time and namespace together
//! name one process for as long as the machine runs, so a folder whose
//! owner's pid, in that namespace, runs no process started then is no live
//! loop's; it is removed at the next start. Folders of another namespace
//! (another container sharing `/tmp`) or of older scones (`scone-dev-XXXXXX`,
//! which say no owner) are left alone: nothing tells they are dead.

use std::path::{Path, PathBuf};

/// Who unpacks a rootfs: what its folders' names start with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `scone dev --native`: `scone-dev-`.
    Dev,
    /// `scone run --native`: `scone-run-`.
    Run,
}

impl Kind {
    /// What every such folder's name starts with.
    fn prefix(self) -> &'static str {
        match self {
            Kind::Dev => "scone-dev-",
            Kind::Run => "scone-run-",
        }
    }
}

/// Every kind, whose dead owners' folders [`remove_stale`] removes.
const KINDS: [Kind; 2] = [Kind::Dev, Kind::Run];

/// A process, as a folder name tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    namespace: u64,
    pid: u32,
    start: u64,
}

impl Owner {
    /// This process, if `/proc` says who it is.
    fn this_process() -> Option<Owner> {
        let pid = std::process::id();
        Some(Owner {
            namespace: pid_namespace()?,
            pid,
            start: start_time(pid)?,
        })
    }

    /// `scone-dev-<ns>-<pid>-<start>-` (or `scone-run-…`).
    fn prefix(&self, kind: Kind) -> String {
        let (ns, pid, start) = (self.namespace, self.pid, self.start);
        format!("{}{ns}-{pid}-{start}-", kind.prefix())
    }

    /// The owner a folder name says (`None`: no owner said).
    fn of(name: &str) -> Option<Owner> {
        let rest = KINDS.iter().find_map(|k| name.strip_prefix(k.prefix()))?;
        let mut parts = rest.splitn(4, '-');
        let owner = Owner {
            namespace: parts.next()?.parse().ok()?,
            pid: parts.next()?.parse().ok()?,
            start: parts.next()?.parse().ok()?,
        };
        // The random part tempfile adds.
        parts.next().filter(|r| !r.is_empty())?;
        Some(owner)
    }

    /// Whether it still runs (seen from its own namespace, which must be
    /// ours).
    fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// This process's pid namespace: the inode of `/proc/self/ns/pid`.
fn pid_namespace() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino())
}

/// When `pid` started (field 22 of `/proc/<pid>/stat`, in clock ticks after
/// boot); `None` if no such process runs.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything;
    // the fields after its last `)` start at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A new, empty folder for a service's rootfs, named after this process
/// (in the temp folder, `TMPDIR`); removed when dropped.
pub fn tempdir(kind: Kind) -> std::io::Result<tempfile::TempDir> {
    let prefix =
        Owner::this_process().map_or_else(|| kind.prefix().to_string(), |o| o.prefix(kind));
    tempfile::Builder::new().prefix(&prefix).tempdir()
}

/// Removes, from the temp folder, the rootfs folders of dev loops and runs
/// (every [`Kind`]) of this pid namespace that no longer run, and that this user owns; returns those
/// it removed.
pub fn remove_stale() -> Vec<PathBuf> {
    remove_stale_in(&std::env::temp_dir())
}

fn remove_stale_in(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let Some(me) = Owner::this_process() else {
        return Vec::new();
    };
    // SAFETY: `geteuid` only returns this process's effective user id.
    let uid = unsafe { libc::geteuid() };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(Owner::of) else {
            continue;
        };
        if owner.namespace != me.namespace || owner == me || owner.alive() {
            continue;
        }
        let path = entry.path();
        // Only a real folder (never a symlink: not followed) of this user.
        let ours = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == uid);
        if ours && crate::durable::remove_all(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_says_its_owner_or_none() {
        let o = Owner {
            namespace: 4026531836,
            pid: 42,
            start: 1234,
        };
        assert_eq!(
            Owner::of(&format!("{}Ab3xYz", o.prefix(Kind::Dev))),
            Some(o)
        );
        assert_eq!(
            Owner::of(&format!("{}Ab3xYz", o.prefix(Kind::Run))),
            Some(o)
        );
        assert_eq!(Owner::of("scone-dev-Ab3xYz"), None, "an older scone's");
        assert_eq!(Owner::of("scone-run-Ab3xYz"), None, "an older scone's");
        assert_eq!(Owner::of(&o.prefix(Kind::Dev)), None, "no random part");
        assert_eq!(Owner::of("scone-dev-1-2-x-abc"), None);
        assert_eq!(Owner::of("other-1-2-3-abc"), None);
    }

    #[test]
    fn removes_only_a_dead_loops_folders_of_this_namespace() {
        let tmp = tempfile::tempdir().unwrap();
        let me = Owner::this_process().expect("/proc");
        // A process that ended: a child we waited for.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        let dead_start = start_time(dead_pid);
        child.wait().unwrap();
        let dead = Owner {
            pid: dead_pid,
            start: dead_start.unwrap_or(1),
            ..me
        };
        // A live process (this one) under another start time: its pid was
        // reused, so the folder's loop is gone.
        let reused = Owner {
            start: me.start + 1,
            ..me
        };
        let other_ns = Owner {
            namespace: me.namespace + 1,
            ..dead
        };
        let names = [
            format!("{}aaaaaa", dead.prefix(Kind::Dev)),
            format!("{}bbbbbb", reused.prefix(Kind::Dev)),
            format!("{}gggggg", dead.prefix(Kind::Run)),
            format!("{}cccccc", me.prefix(Kind::Run)),
            format!("{}dddddd", other_ns.prefix(Kind::Run)),
            "scone-dev-eeeeee".to_string(),
            "scone-run-eeeeee".to_string(),
        ];
        for n in &names {
            std::fs::create_dir_all(tmp.path().join(n).join("usr/bin")).unwrap();
        }
        std::os::unix::fs::symlink(
            tmp.path().join(&names[3]),
            tmp.path().join(format!("{}ffffff", dead.prefix(Kind::Run))),
        )
        .unwrap();
        let mut removed = remove_stale_in(tmp.path());
        removed.sort();
        let mut expected: Vec<_> = names[..3].iter().map(|n| tmp.path().join(n)).collect();
        expected.sort();
        assert_eq!(removed, expected);
        for n in &names[3..] {
            assert!(tmp.path().join(n).is_dir(), "{n} kept");
        }
    }
}
