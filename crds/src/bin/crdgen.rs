//! Regenerates the committed CRD YAML under `crds/yaml/` from the Rust types.
//! Run `cargo run -p aigov-api --bin crdgen`; with `--stdout`, prints instead of writing.
#![forbid(unsafe_code)]

fn main() -> std::io::Result<()> {
    let to_stdout = std::env::args().any(|a| a == "--stdout");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("yaml");
    std::fs::create_dir_all(&dir)?;
    for (name, yaml) in aigov_api::crd::yaml_files() {
        if to_stdout {
            println!("---\n{yaml}");
        } else {
            std::fs::write(dir.join(name), yaml)?;
            eprintln!("wrote crds/yaml/{name}");
        }
    }
    Ok(())
}
