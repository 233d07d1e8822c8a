//! The `policy-gateway` command line; see `policy-gateway --help`.

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    // Arguments as the OS gives them: one that is not UTF-8 is a usage error, not a panic.
    let code = policy_gateway::cli::run(
        std::env::args_os().skip(1),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    std::process::exit(code);
}

#[cfg(target_arch = "wasm32")]
fn main() {}
