//! Generated documentation stays in step with the code it describes.

use std::path::Path;
use std::process::Command;

#[test]
fn cli_reference_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(env!("CARGO_BIN_EXE_bylaw"))
        .arg("__cli-docs")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).unwrap();
    let committed = std::fs::read_to_string(root.join("docs/cli.md")).unwrap_or_default();
    assert!(
        generated == committed,
        "docs/cli.md is out of date with the command-line definitions: run `make cli-docs`"
    );
    // The reference covers every public command and a flag of each kind.
    for fragment in [
        "## `bylaw serve`",
        "## `bylaw test`",
        "### `bylaw jp query`",
        "`BYLAW_LISTEN`",
    ] {
        assert!(generated.contains(fragment), "missing {fragment}");
    }
}
