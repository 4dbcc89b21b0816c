//! Regenerates the committed CRD YAML from the Rust types, in every place it is committed
//! ([`aigov_api::crd::COMMITTED_DIRS`]: `crds/yaml/` and the Helm chart's `crds/`).
//! Run `cargo run -p aigov-api --bin crdgen`; with `--stdout`, prints instead of writing.
#![forbid(unsafe_code)]

fn main() -> std::io::Result<()> {
    let to_stdout = std::env::args().any(|a| a == "--stdout");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, yaml) in aigov_api::crd::yaml_files() {
        if to_stdout {
            println!("---\n{yaml}");
            continue;
        }
        for dir in aigov_api::crd::COMMITTED_DIRS {
            let dir = root.join(dir);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(name), &yaml)?;
            eprintln!("wrote {}", dir.join(name).display());
        }
    }
    Ok(())
}
