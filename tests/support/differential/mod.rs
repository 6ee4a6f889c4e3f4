//! The differential test of scone's incremental build (issue 21): a generated
//! workspace, a seeded random sequence of edits, one `scone build` after each, and
//! every result compared byte for byte with a build from scratch of a copy of the
//! same tree. It works only through the `scone` binary and the file system.
//!
//! - [`layout`]: the workspace's files (`scone.toml`, Meshfiles, service manifests)
//!   as small documents this generator writes and reads back;
//! - [`initial`]: the workspace an edit sequence starts from;
//! - [`edits`]: what one edit is and how it is shown; [`apply`]: applying it;
//! - [`generate`]: picks the next edit from the tree as it is ([`state`]), now and
//!   then one that [`repair`]s a breakage;
//! - [`outputs`]: what a build published, the source copy for the scratch build,
//!   and the first difference between two results;
//! - [`run`]: replays an edit list with builds and comparisons, and the kill -9 rounds;
//! - [`shrink`]: delta debugging down to the shortest failing edit list;
//! - [`known`]: the stale results found on `main`, as regression cases.
//!
//! The tree a sequence starts from (`Shape` sets the counts):
//!
//! ```text
//! scone.toml                      members = ["apps/*/mesh.yml"], [base] binary = "dir:base",
//!                                 [signing] key = "keys/signing.pem"
//! keys/signing.pem                the public sig1 test key
//! base/usr/bin/app                the generator's static ELF (exit 0); base/etc/motd
//! apps/tN/mesh.yml                one mesh per team, namespace tN
//! apps/tN/sK/service.yml          a service: copies main.cfg and the folder lib/
//! apps/tN/sK/{main.cfg,notes.md,lib/a.txt,lib/sub/b.txt}
//! solo/tool/service.yml           a service used alone (when `members` names it)
//! attic/old-sK/service.yml        builds the same image as an image-linked service:
//! .gitignore                      "attic/", so that linking finds one manifest only
//! ```
//!
//! Made by later edits only (`key-link`, `ignore-link`): `keys/store-a/key.pem` and
//! `keys/store-b/key.pem` (keys A and B) with `keys/signing.pem` a link to one, or to
//! `current/key.pem` through the folder link `keys/current`; `ignores/one/list` and
//! `ignores/two/list` (`attic/` lines) with the root's or `apps/`'s ignore file a
//! link to one, or to `ignores/current/list` through the folder link `ignores/current`.

pub mod apply;
pub mod edits;
pub mod generate;
pub mod initial;
pub mod known;
pub mod layout;
pub mod outputs;
pub mod repair;
pub mod run;
pub mod shrink;
pub mod state;

/// A small deterministic random source (splitmix64): the same seed gives the same
/// workspace and the same edits on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0)");
        (self.next_u64() % n as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// `len` bytes of text: lowercase words and newlines.
    pub fn text(&mut self, len: usize) -> Vec<u8> {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789 ";
        (0..len)
            .map(|pos| {
                if pos % 48 == 47 {
                    b'\n'
                } else {
                    ALPHABET[self.below(ALPHABET.len())]
                }
            })
            .collect()
    }
}

/// How big a generated workspace is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Meshes (teams) at the start.
    pub meshes: usize,
    /// Services per mesh at the start.
    pub services: usize,
}

impl Shape {
    /// The differential test's workspace: three meshes of two services.
    pub const SMALL: Shape = Shape {
        meshes: 3,
        services: 2,
    };
    /// The kill test's: one mesh of two services (builds of ~0.1 s, many kills).
    pub const TINY: Shape = Shape {
        meshes: 1,
        services: 2,
    };
}
