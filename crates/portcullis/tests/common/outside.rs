//! What a test needs from outside Rust (a program such as swaks or Dovecot, a Python module,
//! root), and what happens when it is missing. On a machine with only Rust, `cargo test` must
//! pass and say plainly what it did not test: the test prints SKIPPED, what is missing and how
//! to install it, and returns. With `PORTCULLIS_REQUIRE_ALL=1` (`.ci/run` exports it) a skip
//! is a failure instead, so that CI cannot go green with a suite that never ran.
//!
//! The notice goes straight to the process's stderr: libtest captures `eprintln!` of a test
//! that passes, and a skip that nobody sees is the "passed because nothing ran" this is for.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Set to 1 (`.ci/run` does): every test must run, and a skip fails.
pub const REQUIRE_ALL: &str = "PORTCULLIS_REQUIRE_ALL";
/// Set to 1 to skip, rather than fail, the tests that need root when the suite is not root.
pub const SKIP_ROOT_TESTS: &str = "PORTCULLIS_SKIP_ROOT_TESTS";
/// Where everything is installed from at once.
const INSTALL_ALL: &str = "or run .ci/run, which installs everything the suites use";

fn set(variable: &str) -> bool {
    std::env::var(variable).is_ok_and(|v| v == "1")
}

pub fn require_all() -> bool {
    set(REQUIRE_ALL)
}

/// The running test's name (libtest names each test's thread after it).
pub fn test_name() -> String {
    std::thread::current().name().unwrap_or("a test").to_string()
}

/// Prints a notice where `cargo test` shows it, also for a test that passes.
pub fn notice(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
    let _ = err.flush();
}

/// Gives the current test up for want of `missing`: a failure when everything must run, else
/// a SKIPPED notice. The caller returns right after.
pub fn skip(missing: &str, install: &str) {
    assert!(
        !require_all(),
        "{missing}, and {REQUIRE_ALL}=1 says that every test must run. Install: {install} ({INSTALL_ALL})."
    );
    notice(&format!(
        "\nSKIPPED {}: {missing}\n    install: {install} ({INSTALL_ALL})\n    \
         This test passed without testing anything; with {REQUIRE_ALL}=1 a skip fails instead.",
        test_name()
    ));
}

/// The path of `name` (searched on PATH, then in the sbin directories, where Dovecot and
/// Postfix live and a user's PATH often does not reach), or `None` after [`skip`].
pub fn program(name: &str, install: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate));
    if found.is_none() {
        skip(&format!("`{name}` is not installed (not on PATH nor in /usr/sbin)"), install);
    }
    found
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether `path` exists (a part of a package that has no program of its own); a [`skip`]
/// when it does not.
pub fn file(path: &Path, install: &str) -> bool {
    let found = path.exists();
    if !found {
        skip(&format!("{} does not exist", path.display()), install);
    }
    found
}

/// Whether `python3` can import `module`; a [`skip`] when it cannot.
pub fn python_module(python: &Path, module: &str, install: &str) -> bool {
    let found = std::process::Command::new(python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        skip(&format!("the Python module `{module}` is not installed"), install);
    }
    found
}

/// Whether the test may go on as root. Not root is a failure (root-only tests that pass when
/// not root would hide that they never ran), unless `PORTCULLIS_SKIP_ROOT_TESTS=1` asks to skip
/// them, and that only when not everything must run.
pub fn root(why: &str) -> bool {
    if super::is_root() {
        return true;
    }
    assert!(
        !require_all(),
        "this test needs root ({why}), and {REQUIRE_ALL}=1 says that every test must run: run the suite as root"
    );
    assert!(
        set(SKIP_ROOT_TESTS),
        "this test needs root ({why}). Run the suite as root (CI does), or set {SKIP_ROOT_TESTS}=1 to skip \
         the root-only tests."
    );
    notice(&format!(
        "\nSKIPPED {}: not root, and {SKIP_ROOT_TESTS}=1 ({why})\n    \
         This test passed without testing anything; run the suite as root to test it.",
        test_name()
    ));
    false
}
