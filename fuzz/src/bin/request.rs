//! AFL++ entry point of the `request` fuzz target (fuzz/targets/request.rs).

#[path = "../../targets/mod.rs"]
#[allow(dead_code)]
mod targets;

fn main() {
    afl::fuzz!(|data: &[u8]| targets::request::run(data));
}
