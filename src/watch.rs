//! What a workspace load read of the file system, and how much of each path
//! the result depends on. The loader lists them ([`crate::workspace::Workspace::watched`]);
//! the build state records them, and a later build loads the workspace again
//! only when one of them changed (`engine::state`).

use std::path::PathBuf;

/// How much of a path a load depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Watch {
    /// Its bytes (a manifest, `scone.toml`, an ignore file), or that it does
    /// not exist (a `scone.toml` looked for in a folder above the first file).
    Content,
    /// A folder's entries (a folder the discovery walk listed, a copied
    /// folder validation walked).
    Listing,
    /// Only whether it exists, its file type, and where a symlink points (a
    /// `copy:` entry, a path validation checked): editing a copied file does
    /// not change the workspace, replacing it with a symlink does.
    Kind,
    /// A folder of `target/` that steps publish into: a change (an entry
    /// removed, or one no step made) leaves the workspace as it is, but the
    /// folder must be cleaned of what no step made.
    Output,
}

impl Watch {
    pub fn code(self) -> u8 {
        match self {
            Watch::Content => 0,
            Watch::Listing => 1,
            Watch::Kind => 2,
            Watch::Output => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<Watch> {
        match code {
            0 => Some(Watch::Content),
            1 => Some(Watch::Listing),
            2 => Some(Watch::Kind),
            3 => Some(Watch::Output),
            _ => None,
        }
    }
}

/// The paths a load read, in the order it read them (duplicates allowed: the
/// strictest watch of a path counts).
pub type Watched = Vec<(PathBuf, Watch)>;
