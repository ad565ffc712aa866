//! `cargo-e2e`: run as `cargo e2e ...` in any Cargo workspace.

fn main() -> std::process::ExitCode {
    cargo_e2e::main()
}
