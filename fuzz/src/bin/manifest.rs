//! AFL++ entry point of the `manifest` fuzz target (fuzz/targets/manifest.rs).

#[path = "../../targets/mod.rs"]
#[allow(dead_code)]
mod targets;

fn main() {
    afl::fuzz!(|data: &[u8]| targets::manifest::run(data));
}
