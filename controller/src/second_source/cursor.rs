//! Where the reader of Bedrock's invocation logs has got to, kept in the cluster so that a
//! restarted or new leader resumes there: an annotation on a Lease of its own in the
//! controller's namespace (the controller may already create and update Leases; the leader
//! Lease itself is left to the elector, whose updates must not conflict with ours).

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

/// The annotation holding the position (RFC 3339, milliseconds).
pub const ANNOTATION: &str = "aigov.dev/invocation-logs-reconciled-through";

/// The stored position.
pub struct Cursor {
    api: Api<Lease>,
    name: String,
}

impl Cursor {
    /// The position kept on Lease `name` in the namespace of `api`.
    pub fn new(api: Api<Lease>, name: &str) -> Cursor {
        Cursor {
            api,
            name: name.to_owned(),
        }
    }

    /// The stored position, if any.
    pub async fn load(&self) -> Result<Option<Timestamp>, String> {
        let lease = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.error(e))?;
        Ok(lease
            .and_then(|l| l.metadata.annotations)
            .and_then(|a| a.get(ANNOTATION).and_then(|t| t.parse().ok())))
    }

    /// Stores `through` (creating the Lease the first time).
    pub async fn save(&self, through: Timestamp) -> Result<(), String> {
        let value = through
            .round(jiff::Unit::Millisecond)
            .unwrap_or(through)
            .to_string();
        let existing = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.error(e))?;
        let params = PostParams::default();
        match existing {
            Some(mut lease) => {
                lease
                    .metadata
                    .annotations
                    .get_or_insert_default()
                    .insert(ANNOTATION.to_owned(), value);
                self.api
                    .replace(&self.name, &params, &lease)
                    .await
                    .map_err(|e| self.error(e))?;
            }
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        annotations: Some(BTreeMap::from([(ANNOTATION.to_owned(), value)])),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                self.api
                    .create(&params, &lease)
                    .await
                    .map_err(|e| self.error(e))?;
            }
        }
        Ok(())
    }

    fn error(&self, e: kube::Error) -> String {
        format!("Lease {} (invocation-log position): {e}", self.name)
    }
}
