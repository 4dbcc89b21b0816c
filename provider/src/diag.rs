//! Diagnostics: what Terraform shows the user, pinned to the attribute they are about.

use crate::proto::tfplugin6 as pb;

/// One step of an attribute path: an attribute, a map key or a list index.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// An attribute or nested block by name.
    Attr(String),
    /// A map element by key.
    Key(String),
    /// A list element by index.
    Index(i64),
}

/// A path to an attribute, such as `notification[0].threshold`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Path(pub Vec<Step>);

impl Path {
    /// The path to a top-level attribute.
    pub fn attr(name: &str) -> Path {
        Path(vec![Step::Attr(name.to_owned())])
    }

    /// This path extended by an attribute.
    pub fn then(&self, name: &str) -> Path {
        let mut steps = self.0.clone();
        steps.push(Step::Attr(name.to_owned()));
        Path(steps)
    }

    /// This path extended by a list index.
    pub fn index(&self, i: usize) -> Path {
        let mut steps = self.0.clone();
        steps.push(Step::Index(i as i64));
        Path(steps)
    }

    /// This path extended by a map key.
    pub fn key(&self, key: &str) -> Path {
        let mut steps = self.0.clone();
        steps.push(Step::Key(key.to_owned()));
        Path(steps)
    }

    /// The wire form.
    pub fn to_proto(&self) -> pb::AttributePath {
        use pb::attribute_path::step::Selector;
        pb::AttributePath {
            steps: self
                .0
                .iter()
                .map(|s| pb::attribute_path::Step {
                    selector: Some(match s {
                        Step::Attr(a) => Selector::AttributeName(a.clone()),
                        Step::Key(k) => Selector::ElementKeyString(k.clone()),
                        Step::Index(i) => Selector::ElementKeyInt(*i),
                    }),
                })
                .collect(),
        }
    }
}

/// Errors and warnings collected while serving one call.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics(pub Vec<pb::Diagnostic>);

impl Diagnostics {
    /// An error about the whole call.
    pub fn error(&mut self, summary: impl Into<String>, detail: impl Into<String>) {
        self.push(pb::diagnostic::Severity::Error, summary, detail, None);
    }

    /// An error on one attribute: Terraform underlines it in the configuration.
    pub fn attr_error(
        &mut self,
        path: &Path,
        summary: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.push(pb::diagnostic::Severity::Error, summary, detail, Some(path));
    }

    /// A warning about the whole call.
    pub fn warning(&mut self, summary: impl Into<String>, detail: impl Into<String>) {
        self.push(pb::diagnostic::Severity::Warning, summary, detail, None);
    }

    fn push(
        &mut self,
        severity: pb::diagnostic::Severity,
        summary: impl Into<String>,
        detail: impl Into<String>,
        path: Option<&Path>,
    ) {
        self.0.push(pb::Diagnostic {
            severity: severity as i32,
            summary: summary.into(),
            detail: detail.into(),
            attribute: path.map(Path::to_proto),
        });
    }

    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.0
            .iter()
            .any(|d| d.severity == pb::diagnostic::Severity::Error as i32)
    }

    /// The diagnostics, for the response.
    pub fn into_vec(self) -> Vec<pb::Diagnostic> {
        self.0
    }
}

impl From<crate::Error> for Diagnostics {
    fn from(err: crate::Error) -> Diagnostics {
        let mut d = Diagnostics::default();
        d.error(err.to_string(), String::new());
        d
    }
}
