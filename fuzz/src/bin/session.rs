//! AFL++ entry point of the `session` fuzz target (fuzz/targets/session.rs).

#[path = "../../targets/mod.rs"]
#[allow(dead_code)]
mod targets;

fn main() {
    afl::fuzz!(|data: &[u8]| targets::session::run(data));
}
