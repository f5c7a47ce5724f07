//! Running the project venv's Python: fixtures that build models and
//! references, and scripts that call maas with the standard clients.

use std::path::PathBuf;
use std::process::Command;

use crate::cluster::workspace_root;

/// The project venv's interpreter.
pub fn interpreter() -> PathBuf {
    workspace_root().join(".venv/bin/python")
}

/// Runs the interpreter with `args`; returns what it printed, or panics
/// with its output when it fails.
pub fn run(args: &[&str]) -> String {
    let output = Command::new(interpreter()).args(args).output().expect("starting the venv's python");
    assert!(
        output.status.success(),
        "python {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("python printed UTF-8")
}
