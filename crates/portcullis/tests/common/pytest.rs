//! Runs one of the pytest suites (tests/clients, tests/admin: clients and tools nobody here
//! wrote) against the binary under test. What pytest skipped (a client program or a Python
//! module that is not installed) is repeated where `cargo test` shows it, with pytest's own
//! summary line, so that "passed" and "passed with parts skipped" read differently.

use std::path::Path;
use std::process::Command;

use super::outside::{notice, program, python_module, require_all, test_name, REQUIRE_ALL};

/// Runs `python3 -m pytest TARGET` (a path under the repository root) and fails the test when
/// pytest fails.
pub fn pytest(target: &str) {
    let Some(python) = program("python3", "apt-get install python3") else { return };
    if !python_module(&python, "pytest", "python3 -m pip install pytest") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(&python)
        // -rs: the reason of every skip, in the short summary.
        .args(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", target])
        .current_dir(&root)
        .env("PORTCULLIS_BIN", super::BIN)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run python3 -m pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "pytest {target} failed:\n{report}");

    let skipped: Vec<&str> = stdout.lines().filter(|l| l.starts_with("SKIPPED")).collect();
    let summary = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim_matches(['=', ' ']);
    if skipped.is_empty() && !summary.contains("skipped") {
        return;
    }
    // The Python side fails rather than skips under REQUIRE_ALL; a skip it did not foresee
    // (a new `pytest.skip`) must fail as well.
    assert!(!require_all(), "pytest {target} skipped tests, and {REQUIRE_ALL}=1 says everything must run:\n{report}");
    let what = if summary.contains(" passed") { "SKIPPED in part" } else { "SKIPPED" };
    notice(&format!(
        "\n{what} {} (pytest {target}: {summary}):\n    {}\n    \
         What was skipped was not tested; with {REQUIRE_ALL}=1 a skip fails instead.",
        test_name(),
        skipped.join("\n    ")
    ));
}
