//! `aigov_pricing_override`: an `AIModelPrice` in the cluster, so a negotiated or new price is
//! reviewed in a pull request like the rest of the cost policy.

use aigov_api::model_price::{AIModelPrice, AIModelPriceSpec};
use aigov_api::pattern::ModelPattern;
use async_trait::async_trait;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use rust_decimal::Decimal;

use super::Resource;
use crate::Error;
use crate::config::Clients;
use crate::diag::{Diagnostics, Path};
use crate::schema::{Attribute, Block, Type};
use crate::validate;
use crate::value::Value;

/// The field manager the provider's writes are recorded under.
pub const FIELD_MANAGER: &str = "terraform-provider-aigov";

/// The price attributes: HCL name, CRD field, required.
const PRICES: [(&str, &str, bool); 5] = [
    ("input", "input", true),
    ("output", "output", true),
    ("cache_read", "cacheRead", false),
    ("cache_write", "cacheWrite", false),
    ("cache_write_1h", "cacheWrite1h", false),
];

/// The resource.
pub struct PricingOverride;

#[async_trait]
impl Resource for PricingOverride {
    fn type_name(&self) -> &'static str {
        "aigov_pricing_override"
    }

    fn schema(&self) -> Block {
        let mut attributes = vec![
            Attribute::computed("id", Type::String, "The `AIModelPrice` name."),
            Attribute::required(
                "name",
                Type::String,
                "The `AIModelPrice` name (a DNS subdomain).",
            )
            .force_new(),
            Attribute::required(
                "model",
                Type::String,
                "The model ID, inference profile ID or ARN it prices; `*` matches any run of characters (`anthropic.claude-sonnet-4*`).",
            ),
        ];
        for (name, _, required) in PRICES {
            let doc = match name {
                "input" => "USD per 1M uncached input tokens.",
                "output" => "USD per 1M output tokens.",
                "cache_read" => {
                    "USD per 1M prompt-cache read tokens; unset inherits the catalog's."
                }
                "cache_write" => {
                    "USD per 1M prompt-cache write tokens (5-minute TTL); unset inherits the catalog's."
                }
                _ => {
                    "USD per 1M prompt-cache write tokens with the 1-hour TTL; unset inherits the catalog's."
                }
            };
            attributes.push(if required {
                Attribute::required(name, Type::Number, doc)
            } else {
                Attribute::optional(name, Type::Number, doc)
            });
        }
        attributes.push(Attribute::optional("effective_from", Type::String, "From when on the price applies (RFC 3339, such as `2026-01-01T00:00:00Z`); unset means always."));
        attributes.push(Attribute::optional(
            "description",
            Type::String,
            "Why the price exists (a contract, a discount).",
        ));
        Block {
            description: "An `AIModelPrice` in the cluster: a Bedrock model price (USD per 1M tokens) that overrides aigov's catalog; the most specific match wins.",
            attributes,
            blocks: vec![],
        }
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        validate::name(
            config.get("name"),
            &validate::KUBE_NAME,
            "use lower-case letters, digits, - and . (a Kubernetes object name), at most 253 characters",
            &Path::attr("name"),
            diags,
        );
        if let Some(model) = config.get("model").as_str() {
            match ModelPattern::parse(model) {
                Err(e) => {
                    diags.attr_error(&Path::attr("model"), "Invalid model pattern", e.to_string())
                }
                Ok(pattern) => {
                    let known = aigov_api::catalog::entries()
                        .iter()
                        .any(|e| pattern.matches(e.model_id));
                    if pattern.has_wildcard() && !known && model != "*" {
                        diags.attr_error(
                            &Path::attr("model"),
                            "Model pattern matches no known model",
                            format!("{model:?} matches no model in aigov's catalog, so this override would price nothing; check the spelling (for example anthropic.claude-sonnet-4*), or name a new model by its exact ID."),
                        );
                    } else if !pattern.has_wildcard()
                        && aigov_api::model::resolve(model).catalog.is_none()
                    {
                        diags.warning(
                            "Model not in aigov's catalog",
                            format!("{model:?} is not in aigov's catalog: this override will be its only price, and cache tokens without a cache price are charged at the input rate."),
                        );
                    }
                }
            }
        }
        for (name, _, _) in PRICES {
            let value = config.get(name);
            let path = Path::attr(name);
            validate::range(
                value,
                Decimal::ZERO,
                false,
                Some(Decimal::from(999_999_999)),
                &path,
                diags,
            );
            validate::max_places(value, 9, &path, diags);
        }
        if let Some(at) = config.get("effective_from").as_str()
            && at.parse::<jiff::Timestamp>().is_err()
        {
            diags.attr_error(
                &Path::attr("effective_from"),
                "Invalid time",
                format!("{at:?} is not an RFC 3339 time; write it like 2026-01-01T00:00:00Z."),
            );
        }
    }

    fn plan(&self, _clients: &Clients, planned: &mut Value, _prior: &Value) {
        planned.set("id", planned.get("name").clone());
    }

    async fn create(&self, clients: &Clients, planned: &Value) -> Result<Value, Error> {
        let api: Api<AIModelPrice> = Api::all(clients.kube().await?);
        let name = planned.get("name").as_str().unwrap_or_default();
        let object = AIModelPrice::new(name, spec(planned));
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        let created = api
            .create(&params, &object)
            .await
            .map_err(|e| clients.kube_error(e))?;
        Ok(state(&created, planned))
    }

    async fn read(&self, clients: &Clients, state_now: &Value) -> Result<Option<Value>, Error> {
        let api: Api<AIModelPrice> = Api::all(clients.kube().await?);
        let name = state_now.get("name").as_str().unwrap_or_default();
        Ok(api
            .get_opt(name)
            .await
            .map_err(|e| clients.kube_error(e))?
            .map(|o| state(&o, state_now)))
    }

    async fn update(
        &self,
        clients: &Clients,
        _prior: &Value,
        planned: &Value,
    ) -> Result<Value, Error> {
        let api: Api<AIModelPrice> = Api::all(clients.kube().await?);
        let name = planned.get("name").as_str().unwrap_or_default();
        // A merge patch of the whole spec: fields the configuration dropped are sent as null.
        let mut spec_json =
            serde_json::to_value(spec(planned)).map_err(|e| Error::Value(e.to_string()))?;
        if let Some(map) = spec_json.as_object_mut() {
            for field in [
                "cacheRead",
                "cacheWrite",
                "cacheWrite1h",
                "effectiveFrom",
                "description",
            ] {
                map.entry(field).or_insert(serde_json::Value::Null);
            }
        }
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let patched = api
            .patch(
                name,
                &params,
                &Patch::Merge(serde_json::json!({ "spec": spec_json })),
            )
            .await
            .map_err(|e| clients.kube_error(e))?;
        Ok(state(&patched, planned))
    }

    async fn delete(&self, clients: &Clients, state_now: &Value) -> Result<(), Error> {
        let api: Api<AIModelPrice> = Api::all(clients.kube().await?);
        let name = state_now.get("name").as_str().unwrap_or_default();
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(clients.kube_error(e)),
        }
    }

    async fn import(&self, _clients: &Clients, id: &str) -> Result<Value, String> {
        if !validate::KUBE_NAME.is_match(id) {
            return Err(format!(
                "import a pricing override by its AIModelPrice name; {id:?} is not a Kubernetes object name"
            ));
        }
        Ok(Value::object([("name", Value::string(id))]))
    }
}

fn price(value: &Value) -> Option<String> {
    value.as_decimal().map(|d| d.normalize().to_string())
}

fn spec(planned: &Value) -> AIModelPriceSpec {
    AIModelPriceSpec {
        model: planned.get("model").as_str().unwrap_or_default().to_owned(),
        input: price(planned.get("input")).unwrap_or_default(),
        output: price(planned.get("output")).unwrap_or_default(),
        cache_read: price(planned.get("cache_read")),
        cache_write: price(planned.get("cache_write")),
        cache_write_1h: price(planned.get("cache_write_1h")),
        effective_from: planned.get("effective_from").as_str().map(str::to_owned),
        description: planned.get("description").as_str().map(str::to_owned),
    }
}

/// The state for an object; the time keeps the configuration's spelling when it is the same
/// instant (the API server may normalise it).
fn state(object: &AIModelPrice, known: &Value) -> Value {
    let name = object.metadata.name.clone().unwrap_or_default();
    let number = |s: &Option<String>| {
        Value::opt_number(s.as_deref().and_then(|s| Decimal::from_str_exact(s).ok()))
    };
    let spec = &object.spec;
    let effective_from = match (&spec.effective_from, known.get("effective_from").as_str()) {
        (Some(remote), Some(mine))
            if remote.parse::<jiff::Timestamp>().ok() == mine.parse::<jiff::Timestamp>().ok() =>
        {
            Value::string(mine)
        }
        (remote, _) => Value::opt_string(remote.clone()),
    };
    Value::object([
        ("id", Value::string(&name)),
        ("name", Value::string(&name)),
        ("model", Value::string(&spec.model)),
        ("input", number(&Some(spec.input.clone()))),
        ("output", number(&Some(spec.output.clone()))),
        ("cache_read", number(&spec.cache_read)),
        ("cache_write", number(&spec.cache_write)),
        ("cache_write_1h", number(&spec.cache_write_1h)),
        ("effective_from", effective_from),
        ("description", Value::opt_string(spec.description.clone())),
    ])
}
