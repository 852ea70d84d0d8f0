//! Where the binaries under test are: cargo builds them into the target profile directory, the
//! parent of the `deps/` folder an integration test runs from (`CARGO_BIN_EXE_*` exists only in
//! the package that defines the binary, so `mrctl`'s tests find `mrd` this way too).

use std::path::PathBuf;

/// The binary `name` beside the running test's profile directory; panics naming the build
/// command when it is missing. `MR_TESTKIT_BIN_DIR` overrides the directory.
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("MR_TESTKIT_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().expect("current_exe");
            let deps = exe.parent().expect("deps dir");
            // tests run from target/<profile>/deps; benches and examples from the same place
            if deps.file_name().is_some_and(|n| n == "deps") {
                deps.parent().expect("profile dir").to_path_buf()
            } else {
                deps.to_path_buf()
            }
        }
    };
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} not built: run `cargo build -p {} --bin {name}` (cargo test --workspace builds it)",
        p.display(),
        if name == "mrd" { "mapreduce" } else { "mrctl" }
    );
    p
}

pub fn mrd_bin() -> PathBuf {
    bin("mrd")
}

pub fn mrctl_bin() -> PathBuf {
    bin("mrctl")
}
