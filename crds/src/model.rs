//! Resolving what a caller put in the path (`modelId`) to the model that is billed:
//! base IDs, cross-region inference profile IDs, and foundation-model, inference-profile and
//! application-inference-profile ARNs.

use crate::catalog::{self, CatalogEntry};

/// Geographic and global prefixes of Bedrock's system-defined cross-region inference profiles.
pub const PROFILE_PREFIXES: &[&str] = &[
    "us-gov.", "us.", "eu.", "apac.", "jp.", "au.", "ca.", "global.",
];

/// Where the request is served, which decides the Claude 4.5-generation regional premium.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Routing {
    /// A plain foundation-model ID or ARN: served in the caller's region.
    InRegion,
    /// A geographic cross-region profile (`us.`, `eu.`, `apac.`, ...); the prefix without its dot.
    Geographic(String),
    /// The `global.` cross-region profile.
    Global,
    /// An application inference profile: its model is only known to AWS (or an `AIModelPrice`).
    ApplicationProfile,
    /// A provisioned or custom model ARN: not billed per token.
    Provisioned,
}

/// A model reference taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedModel {
    /// Exactly what the caller asked for, percent-decoded.
    pub requested: String,
    /// The foundation-model ID behind it, when it can be known from the reference alone.
    pub model_id: Option<String>,
    /// How the request is routed.
    pub routing: Routing,
    /// The catalog entry for `model_id`, if the catalog has one.
    pub catalog: Option<&'static CatalogEntry>,
}

impl ResolvedModel {
    /// The name usage is reported under: the foundation model when known, else what was asked.
    pub fn billing_name(&self) -> &str {
        self.model_id.as_deref().unwrap_or(&self.requested)
    }
}

/// Takes a (percent-decoded) model reference apart. Never fails: what cannot be resolved
/// keeps `model_id: None` or a `model_id` the catalog does not know, and is priced by an
/// `AIModelPrice` or the fallback.
pub fn resolve(requested: &str) -> ResolvedModel {
    let (model_id, routing) = match requested.strip_prefix("arn:") {
        Some(_) => resolve_arn(requested),
        None => split_profile(requested),
    };
    let catalog = model_id.as_deref().and_then(catalog::lookup);
    ResolvedModel {
        requested: requested.to_owned(),
        model_id,
        routing,
        catalog,
    }
}

fn split_profile(id: &str) -> (Option<String>, Routing) {
    for prefix in PROFILE_PREFIXES {
        if let Some(base) = id.strip_prefix(prefix) {
            let routing = match *prefix {
                "global." => Routing::Global,
                geo => Routing::Geographic(geo.trim_end_matches('.').to_owned()),
            };
            return (Some(base.to_owned()), routing);
        }
    }
    (Some(id.to_owned()), Routing::InRegion)
}

/// `arn:PARTITION:bedrock:REGION:ACCOUNT:RESOURCE_TYPE/RESOURCE_ID`; foundation-model IDs
/// contain colons themselves, so only the first five separate fields.
fn resolve_arn(arn: &str) -> (Option<String>, Routing) {
    let mut fields = arn.splitn(6, ':');
    let (
        Some("arn"),
        Some(_partition),
        Some("bedrock"),
        Some(_region),
        Some(_account),
        Some(resource),
    ) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    )
    else {
        return (None, Routing::InRegion);
    };
    match resource.split_once('/') {
        Some(("foundation-model", id)) if !id.is_empty() => {
            (Some(id.to_owned()), Routing::InRegion)
        }
        Some(("inference-profile", id)) if !id.is_empty() => split_profile(id),
        Some(("application-inference-profile", _)) => (None, Routing::ApplicationProfile),
        Some((
            "provisioned-model" | "custom-model" | "custom-model-deployment" | "imported-model",
            _,
        )) => (None, Routing::Provisioned),
        _ => (None, Routing::InRegion),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HAIKU3: &str = "anthropic.claude-3-haiku-20240307-v1:0";

    #[test]
    fn a_base_id_is_served_in_region() {
        let r = resolve(HAIKU3);
        assert_eq!(r.model_id.as_deref(), Some(HAIKU3));
        assert_eq!(r.routing, Routing::InRegion);
        assert_eq!(r.catalog.unwrap().name, "Claude 3 Haiku");
    }

    #[test]
    fn every_cross_region_prefix_resolves_to_the_same_model() {
        for (prefix, routing) in [
            ("us.", Routing::Geographic("us".into())),
            ("eu.", Routing::Geographic("eu".into())),
            ("apac.", Routing::Geographic("apac".into())),
            ("jp.", Routing::Geographic("jp".into())),
            ("au.", Routing::Geographic("au".into())),
            ("us-gov.", Routing::Geographic("us-gov".into())),
            ("global.", Routing::Global),
        ] {
            let r = resolve(&format!("{prefix}{HAIKU3}"));
            assert_eq!(r.model_id.as_deref(), Some(HAIKU3), "{prefix}");
            assert_eq!(r.routing, routing, "{prefix}");
            assert!(r.catalog.is_some(), "{prefix}");
        }
    }

    #[test]
    fn foundation_model_and_inference_profile_arns_resolve() {
        let fm = resolve(&format!(
            "arn:aws:bedrock:us-east-1::foundation-model/{HAIKU3}"
        ));
        assert_eq!(
            (fm.model_id.as_deref(), fm.routing),
            (Some(HAIKU3), Routing::InRegion)
        );
        let ip = resolve(&format!(
            "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.{HAIKU3}"
        ));
        assert_eq!(
            (ip.model_id.as_deref(), ip.routing),
            (Some(HAIKU3), Routing::Geographic("eu".into()))
        );
        let gov = resolve(&format!(
            "arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:inference-profile/us-gov.{HAIKU3}"
        ));
        assert_eq!(gov.model_id.as_deref(), Some(HAIKU3));
    }

    #[test]
    fn application_profiles_and_provisioned_models_are_not_guessed() {
        let app = resolve(
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5",
        );
        assert_eq!(
            (app.model_id, app.routing),
            (None, Routing::ApplicationProfile)
        );
        let pt = resolve("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc");
        assert_eq!(pt.routing, Routing::Provisioned);
        assert_eq!(resolve("arn:aws:s3:::bucket").model_id, None);
        assert_eq!(resolve("arn:aws:bedrock:us-east-1").model_id, None);
    }

    #[test]
    fn an_unknown_id_keeps_its_name_for_reporting() {
        let r = resolve("acme.made-up-model-v9");
        assert!(r.catalog.is_none());
        assert_eq!(r.billing_name(), "acme.made-up-model-v9");
    }
}
