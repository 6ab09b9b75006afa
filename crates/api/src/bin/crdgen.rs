//! Writes the generated CRD files: `crdgen DIR...` writes `<plural>.<group>.yaml` into each DIR
//! (replacing stale generated files); without arguments it prints all CRDs to stdout.

use std::path::Path;
use std::process::ExitCode;

fn write_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let files = bylaw_api::crd_files();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let stale = path.extension().is_some_and(|ext| ext == "yaml")
            && !files
                .iter()
                .any(|(name, _)| path.file_name().is_some_and(|f| f == name.as_str()));
        if stale {
            std::fs::remove_file(&path)?;
        }
    }
    for (name, content) in files {
        std::fs::write(dir.join(name), content)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let dirs: Vec<String> = std::env::args().skip(1).collect();
    if dirs.is_empty() {
        print!("{}", bylaw_api::crds_yaml());
        return ExitCode::SUCCESS;
    }
    for dir in dirs {
        if let Err(error) = write_dir(Path::new(&dir)) {
            eprintln!("crdgen: {dir}: {error}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
