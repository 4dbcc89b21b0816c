//! The Terraform Registry pages under `provider/docs/`, rendered from the schemas (so the
//! argument reference cannot drift from the code) around hand-written examples in `docs-src/`.
//! `tests/docs.rs` checks the committed pages match; `AIGOV_UPDATE_DOCS=1` rewrites them.

use std::fmt::Write;

use crate::schema::{Attribute, Block, Mode, Nesting, Type};

/// What kind of page.
#[derive(Clone, Copy)]
pub enum Kind {
    /// The provider's index page.
    Provider,
    /// A resource.
    Resource,
    /// A data source.
    DataSource,
}

/// A registry page: front matter, description, example, schema, and import for resources.
pub fn page(kind: Kind, name: &str, block: &Block, example: &str, import: Option<&str>) -> String {
    let (title, heading) = match kind {
        Kind::Provider => ("aigov Provider".to_owned(), "aigov Provider".to_owned()),
        Kind::Resource => (
            format!("{name} Resource - terraform-provider-aigov"),
            format!("{name} (Resource)"),
        ),
        Kind::DataSource => (
            format!("{name} Data Source - terraform-provider-aigov"),
            format!("{name} (Data Source)"),
        ),
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "---\npage_title: \"{title}\"\nsubcategory: \"\"\ndescription: |-\n  {}\n---\n\n# {heading}\n\n{}\n\n## Example Usage\n\n```terraform\n{}\n```\n\n",
        block.description,
        block.description,
        example.trim_end()
    );
    out.push_str(
        "## Schema

",
    );
    schema(&mut out, block, "");
    // Only resources can be imported: a data source is read on every plan and has no state to
    // adopt, so its page never gets an Import section, whatever the caller passes.
    if let (Kind::Resource, Some(import)) = (kind, import) {
        let _ = write!(
            out,
            "## Import\n\nImport is supported using the following syntax:\n\n```shell\n{}\n```\n",
            import.trim_end()
        );
    }
    out
}

fn type_name(ty: &Type) -> String {
    match ty {
        Type::String => "String".into(),
        Type::Number => "Number".into(),
        Type::Bool => "Boolean".into(),
        Type::List(t) => format!("List of {}", type_name(t)),
        Type::Set(t) => format!("Set of {}", type_name(t)),
        Type::Map(t) => format!("Map of {}", type_name(t)),
    }
}

fn attribute_line(out: &mut String, a: &Attribute) {
    let sensitive = if a.sensitive { ", Sensitive" } else { "" };
    let replaces = if a.force_new {
        " Changing it forces a new resource."
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "- `{}` ({}{sensitive}) {}{replaces}",
        a.name,
        type_name(&a.ty),
        a.description
    );
}

/// Which attributes a schema section lists.
type Filter = fn(&Attribute) -> bool;

fn schema(out: &mut String, block: &Block, anchor: &str) {
    let sections: [(&str, Filter); 3] = [
        ("Required", |a| a.mode == Mode::Required),
        ("Optional", |a| {
            matches!(a.mode, Mode::Optional | Mode::OptionalComputed)
        }),
        ("Read-Only", |a| a.mode == Mode::Computed),
    ];
    for (title, wanted) in sections {
        let attrs: Vec<&Attribute> = block.attributes.iter().filter(|a| wanted(a)).collect();
        let blocks: Vec<_> = if title == "Optional" {
            block.blocks.iter().collect()
        } else {
            vec![]
        };
        if attrs.is_empty() && blocks.is_empty() {
            continue;
        }
        let _ = writeln!(out, "### {title}\n");
        for a in attrs {
            attribute_line(out, a);
        }
        for b in &blocks {
            let nesting = match b.nesting {
                Nesting::Single => "Block, Optional, at most one".to_owned(),
                Nesting::List if b.max_items > 0 => format!("Block List, Max: {}", b.max_items),
                Nesting::List => "Block List".to_owned(),
            };
            let _ = writeln!(
                out,
                "- `{}` ({nesting}) {} (see [below for nested schema](#nestedblock--{anchor}{}))",
                b.name, b.block.description, b.name
            );
        }
        out.push('\n');
    }
    for b in &block.blocks {
        let _ = writeln!(
            out,
            "<a id=\"nestedblock--{anchor}{}\"></a>\n### Nested Schema for `{anchor}{}`\n",
            b.name, b.name
        );
        schema(out, &b.block, &format!("{anchor}{}.", b.name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_resource_pages_have_an_import_section() {
        let block = Block {
            description: "A thing.",
            attributes: vec![],
            blocks: vec![],
        };
        let import = Some("terraform import aigov_x.y z");
        let resource = page(Kind::Resource, "aigov_x", &block, "# x", import);
        assert!(resource.contains("## Import"), "{resource}");
        for kind in [Kind::DataSource, Kind::Provider] {
            let other = page(kind, "aigov_x", &block, "# x", import);
            assert!(!other.contains("## Import"), "{other}");
        }
    }
}
