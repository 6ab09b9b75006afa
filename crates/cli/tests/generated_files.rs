//! Generated files stay in step with their sources: docs/cli.md with the clap definitions, the
//! chart's copy of the Pod Security policies with policies/.

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

#[test]
fn chart_carries_the_shipped_pod_security_policies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut compared = 0;
    for level in ["baseline", "restricted"] {
        let source = root.join("policies/pod-security").join(level);
        let copy = root.join("helm/bylaw/policies/pod-security").join(level);
        let yaml_files = |dir: &Path| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".yaml"))
                .collect();
            names.sort();
            names
        };
        let names = yaml_files(&source);
        assert_eq!(
            names,
            yaml_files(&copy),
            "helm/bylaw/policies is out of date: run `make chart-files`"
        );
        for name in names {
            assert_eq!(
                std::fs::read(source.join(&name)).unwrap(),
                std::fs::read(copy.join(&name)).unwrap(),
                "helm/bylaw/policies/pod-security/{level}/{name} is out of date: run `make chart-files`"
            );
            compared += 1;
        }
    }
    assert!(compared >= 19, "{compared} policies");
}
