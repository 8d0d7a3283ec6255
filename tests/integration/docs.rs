//! The tutorial's commands run as written: every line of every `sh` block in
//! docs/evolution.md, from the repository, with this build's `portico` first on PATH.

use std::path::Path;
use std::process::Command;

use crate::harness::PORTICO;

#[test]
fn every_command_in_the_evolution_tutorial_runs() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(repo.join("docs/evolution.md")).unwrap();
    let mut commands = Vec::new();
    let mut in_block = false;
    for line in doc.lines() {
        match (in_block, line.trim()) {
            (false, "```sh") => in_block = true,
            (true, "```") => in_block = false,
            (true, command) if !command.is_empty() => commands.push(command.to_owned()),
            _ => {}
        }
    }
    assert!(commands.len() >= 6, "{commands:?}");
    let bin = Path::new(PORTICO).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for command in &commands {
        let output = Command::new("sh")
            .args(["-c", command])
            .current_dir(repo)
            .env("PATH", &path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "`{command}` failed (scripts/build-examples builds what it needs):\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let expected = if command.starts_with("portico explain") {
            "6. Time (status 200)"
        } else if command.starts_with("portico bench") {
            "FastCGI over CGI, app hello"
        } else {
            "hello"
        };
        assert!(
            stdout.contains(expected),
            "`{command}`: no {expected:?} in\n{stdout}"
        );
    }
}
