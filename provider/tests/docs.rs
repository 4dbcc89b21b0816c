//! The registry pages in `provider/docs/` are rendered from the schemas: this fails when they
//! drift. Regenerate with `AIGOV_UPDATE_DOCS=1 cargo test -p terraform-provider-aigov --test docs`.

use std::path::{Path, PathBuf};

use aigov_provider::docs::{Kind, page};
use aigov_provider::{config, resources};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn source(path: &str) -> String {
    std::fs::read_to_string(root().join("docs-src").join(path))
        .unwrap_or_else(|e| panic!("docs-src/{path}: {e}"))
}

fn check(path: &Path, rendered: &str, stale: &mut Vec<String>) {
    if std::env::var_os("AIGOV_UPDATE_DOCS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, rendered).unwrap();
    } else if std::fs::read_to_string(path).ok().as_deref() != Some(rendered) {
        stale.push(path.display().to_string());
    }
}

#[test]
fn registry_docs_match_the_schemas_and_cover_every_resource() {
    let docs = root().join("docs");
    let mut stale = Vec::new();
    let index = page(
        Kind::Provider,
        "aigov",
        &config::schema(),
        &source("index.tf"),
        None,
    );
    check(&docs.join("index.md"), &index, &mut stale);
    for r in resources::all() {
        let short = r.type_name().trim_start_matches("aigov_");
        let rendered = page(
            Kind::Resource,
            r.type_name(),
            &r.schema(),
            &source(&format!("resources/{short}.tf")),
            Some(&source(&format!("resources/{short}.import.sh"))),
        );
        check(
            &docs.join(format!("resources/{short}.md")),
            &rendered,
            &mut stale,
        );
    }
    for d in resources::data_sources() {
        let short = d.type_name().trim_start_matches("aigov_");
        let rendered = page(
            Kind::DataSource,
            d.type_name(),
            &d.schema(),
            &source(&format!("data-sources/{short}.tf")),
            None,
        );
        check(
            &docs.join(format!("data-sources/{short}.md")),
            &rendered,
            &mut stale,
        );
    }
    assert!(
        stale.is_empty(),
        "stale registry docs {stale:?}: run AIGOV_UPDATE_DOCS=1 cargo test -p terraform-provider-aigov --test docs"
    );
}
