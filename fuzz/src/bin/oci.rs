//! AFL++ entry point of the `oci` fuzz target (fuzz/targets/oci.rs).

#[path = "../../targets/mod.rs"]
#[allow(dead_code)]
mod targets;

fn main() {
    afl::fuzz!(|data: &[u8]| targets::oci::run(data));
}
