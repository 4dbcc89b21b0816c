//! `kubectl aigov prices [MODEL]`: the price aigov charges for a model reference (a model ID,
//! an inference profile, an ARN) and where it comes from, the catalog, an `AIModelPrice` or
//! the fallback, so that a model nothing prices shows up before it costs anything. Pure: the
//! plugin lists the cluster's `AIModelPrice`s and hands them here with the time.

use aigov_api::catalog::{self, PRICING_SOURCE, TokenPrices};
use aigov_api::model::{ResolvedModel, Routing, resolve};
use aigov_api::pricing::{EffectivePrice, PriceBook, PriceFlag, PriceSource, ServiceTier};
use aigov_api::{AIModelPrice, Usd};
use jiff::Timestamp;
use serde::Serialize;

use crate::table::{Style, TableBuilder};

/// The price book in force: the catalog, the fallback, and every valid `AIModelPrice`; the
/// invalid ones, by name with why, so that the command can say they are ignored (as the
/// controller and gateway ignore them).
pub fn book(prices: &[AIModelPrice]) -> (PriceBook, Vec<(String, String)>) {
    let mut ignored = Vec::new();
    let overrides = prices
        .iter()
        .filter_map(|p| match p.to_override() {
            Ok(o) => Some(o),
            Err(e) => {
                ignored.push((p.metadata.name.clone().unwrap_or_default(), e.to_string()));
                None
            }
        })
        .collect();
    (PriceBook::default().with_overrides(overrides), ignored)
}

/// USD per 1M tokens, as `-o json` shows them (`null` for a rate the model does not have).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rates {
    /// Uncached input.
    pub input: Usd,
    /// Output.
    pub output: Usd,
    /// Cache reads.
    pub cache_read: Option<Usd>,
    /// Cache writes, 5-minute TTL.
    pub cache_write_5m: Option<Usd>,
    /// Cache writes, 1-hour TTL.
    pub cache_write_1h: Option<Usd>,
}

impl From<&TokenPrices> for Rates {
    fn from(p: &TokenPrices) -> Rates {
        Rates {
            input: p.input,
            output: p.output,
            cache_read: p.cache_read,
            cache_write_5m: p.cache_write_5m,
            cache_write_1h: p.cache_write_1h,
        }
    }
}

/// The effective price of one model reference, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelPrice {
    /// What was asked about.
    pub model: String,
    /// The foundation model behind it, when the reference alone says.
    pub resolved_model_id: Option<String>,
    /// The catalog's name for it.
    pub name: Option<String>,
    /// How a call with this reference is routed (`in-region`, `geographic (us)`, `global`,
    /// `application profile`, `provisioned`).
    pub routing: String,
    /// `catalog`, `AIModelPrice` or `fallback`.
    pub source: String,
    /// The catalog entry's date, or the AIModelPrice's name.
    pub source_detail: Option<String>,
    /// Caveats: `unknown-model` (the fallback prices it), `regional-premium`.
    pub flags: Vec<String>,
    /// The service tier priced, as Bedrock spells it (`default` is Standard).
    pub service_tier: &'static str,
    /// The rates a call pays.
    pub rates: Rates,
    /// The rates of a long prompt, and past how many input tokens they apply.
    pub long_context: Option<(u64, Rates)>,
    /// The most output tokens one call may produce: what a reservation assumes.
    pub max_output_tokens: u32,
}

/// The price of `reference` in `tier` at `at` in `book`.
pub fn price_of(book: &PriceBook, reference: &str, tier: ServiceTier, at: Timestamp) -> ModelPrice {
    let model = resolve(reference);
    let price = book.price_in(&model, tier, at);
    let (source, source_detail) = match &price.source {
        PriceSource::Catalog { since, .. } => ("catalog", Some(format!("since {since}"))),
        PriceSource::Override { name } => ("AIModelPrice", Some(name.clone())),
        PriceSource::Fallback => ("fallback", None),
    };
    ModelPrice {
        model: reference.to_owned(),
        resolved_model_id: model.model_id.clone(),
        name: model.catalog.map(|e| e.name.to_owned()),
        routing: routing(&model),
        source: source.to_owned(),
        source_detail,
        flags: price.flags.iter().map(|f| flag(*f).to_owned()).collect(),
        service_tier: tier.as_wire(),
        rates: Rates::from(&price.prices),
        long_context: long_context(&price),
        max_output_tokens: price.max_output_tokens,
    }
}

fn long_context(price: &EffectivePrice) -> Option<(u64, Rates)> {
    price
        .long_context
        .as_ref()
        .map(|l| (l.above, Rates::from(&l.prices)))
}

fn routing(model: &ResolvedModel) -> String {
    match &model.routing {
        Routing::InRegion => "in-region".to_owned(),
        Routing::Geographic(geo) => format!("geographic ({geo})"),
        Routing::Global => "global".to_owned(),
        Routing::ApplicationProfile => "application profile".to_owned(),
        Routing::Provisioned => "provisioned".to_owned(),
    }
}

fn flag(f: PriceFlag) -> &'static str {
    match f {
        PriceFlag::UnknownModel => "unknown-model",
        PriceFlag::CacheRateAssumed => "cache-rate-assumed",
        PriceFlag::RegionalPremium => "regional-premium",
        PriceFlag::PriorityPremium => "priority-premium",
        PriceFlag::FlexDiscount => "flex-discount",
        PriceFlag::TierRateAssumed => "tier-rate-assumed",
        PriceFlag::ReservedAtStandard => "reserved-at-standard",
    }
}

/// What a person reads about one model: where its price comes from, then its rates.
pub fn render_one(p: &ModelPrice, style: Style) -> String {
    let resolved = match (&p.resolved_model_id, &p.name) {
        (Some(id), Some(name)) => format!("{id} ({name})"),
        (Some(id), None) => id.clone(),
        (None, _) => "(known only to AWS)".to_owned(),
    };
    let source = match (p.source.as_str(), &p.source_detail) {
        ("catalog", Some(since)) => format!("the catalog, {since} ({PRICING_SOURCE})"),
        ("AIModelPrice", Some(name)) => format!("AIModelPrice {name}"),
        _ => "the FALLBACK: neither the catalog nor an AIModelPrice prices this model, so it \
              is charged Claude Opus 4's rates (the dearest) until an AIModelPrice names it"
            .to_owned(),
    };
    let mut out = format!(
        "Model:        {}\nResolves to:  {resolved}, routed {}\nPriced by:    {source}\n\
         Service tier: {}\n",
        p.model, p.routing, p.service_tier
    );
    if !p.flags.is_empty() {
        out.push_str(&format!("Flags:        {}\n", p.flags.join(", ")));
    }
    out.push_str(&format!(
        "Max output:   {} tokens (what a reservation assumes)\n\n",
        crate::table::count(u64::from(p.max_output_tokens))
    ));
    let mut t = rates_table(style, "RATES");
    t.row(rates_row("base".to_owned(), &p.rates));
    if let Some((above, rates)) = &p.long_context {
        let label = format!("input > {}", crate::table::count(*above));
        t.row(rates_row(label, rates));
    }
    out.push_str(&t.render());
    out.push_str("\nUSD per 1M tokens; – where the model has no such rate.\n");
    out
}

/// Every catalog model, then the cluster's AIModelPrices (and those ignored, with why).
pub fn render_all(prices: &[AIModelPrice], ignored: &[(String, String)], style: Style) -> String {
    let mut t = rates_table(style, "MODEL").numeric(&[1, 2, 3, 4, 5]);
    for entry in catalog::entries() {
        let mut row = rates_row(entry.model_id.to_owned(), &Rates::from(&entry.prices));
        row.push(entry.since.to_owned());
        t.row(row);
    }
    let mut out = format!(
        "{}\n{}\n",
        style.title(&format!("Catalog ({PRICING_SOURCE})")),
        t.render()
    );
    out.push_str(&format!("\n{}\n", style.title("AIModelPrices")));
    if prices.is_empty() {
        out.push_str("none: every model is priced by the catalog (or the fallback).\n");
    }
    for p in prices {
        let name = p.metadata.name.clone().unwrap_or_default();
        let why = ignored.iter().find(|(n, _)| *n == name).map(|(_, e)| e);
        out.push_str(&match why {
            Some(e) => format!("  {name}: IGNORED, {e}\n"),
            None => format!(
                "  {name}: {} at ${} in, ${} out{}\n",
                p.spec.model,
                p.spec.input,
                p.spec.output,
                p.spec
                    .effective_from
                    .as_deref()
                    .map_or(String::new(), |t| format!(", from {t}"))
            ),
        });
    }
    out.push_str("\nAny other model: the fallback, Claude Opus 4's rates, flagged unknown-model. USD per 1M tokens.\n");
    out
}

fn rates_table(style: Style, first: &str) -> TableBuilder {
    let headers = [
        first,
        "INPUT",
        "OUTPUT",
        "CACHE READ",
        "CACHE WRITE 5M",
        "CACHE WRITE 1H",
        "SINCE",
    ];
    let headers = if first == "MODEL" {
        &headers[..]
    } else {
        &headers[..6]
    };
    TableBuilder::new(style, headers).numeric(&[1, 2, 3, 4, 5])
}

fn rates_row(label: String, r: &Rates) -> Vec<String> {
    let rate = |p: Option<Usd>| p.map_or("–".to_owned(), |p| p.to_api_string());
    vec![
        label,
        r.input.to_api_string(),
        r.output.to_api_string(),
        rate(r.cache_read),
        rate(r.cache_write_5m),
        rate(r.cache_write_1h),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(name: &str, model: &str, input: &str, output: &str) -> AIModelPrice {
        serde_yaml::from_str(&format!(
            "apiVersion: aigov.dev/v1alpha1\nkind: AIModelPrice\nmetadata: {{name: {name}}}\n\
             spec: {{model: '{model}', input: '{input}', output: '{output}'}}\n"
        ))
        .unwrap()
    }

    fn now() -> Timestamp {
        "2026-12-02T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_catalog_model_through_a_geographic_profile_shows_the_premium_and_its_source() {
        let (book, _) = book(&[]);
        let p = price_of(
            &book,
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            ServiceTier::Standard,
            now(),
        );
        assert_eq!(p.source, "catalog");
        assert_eq!(p.routing, "geographic (us)");
        assert_eq!(p.flags, ["regional-premium"]);
        assert_eq!(p.rates.input, Usd::parse("3.30").unwrap(), "$3 + 10%");
        let (above, long) = p.long_context.clone().expect("1M-context rates");
        assert_eq!((above, long.input), (200_000, Usd::parse("6.60").unwrap()));
        let text = render_one(&p, Style::plain());
        assert!(text.contains("the catalog, since 2025-09-29"), "{text}");
        assert!(text.contains("input > 200,000"), "{text}");
    }

    #[test]
    fn an_unknown_model_is_shown_as_priced_by_the_fallback_before_it_costs_anything() {
        let (book, _) = book(&[]);
        let p = price_of(&book, "acme.frontier-9-v1:0", ServiceTier::Standard, now());
        assert_eq!(p.source, "fallback");
        assert_eq!(p.flags, ["unknown-model"]);
        assert_eq!(p.rates.output, Usd::parse("75").unwrap(), "Opus 4's rates");
        assert!(render_one(&p, Style::plain()).contains("FALLBACK"));
    }

    #[test]
    fn a_service_tier_is_priced_and_named() {
        let (book, _) = book(&[]);
        let flex = price_of(&book, "openai.gpt-oss-120b-1:0", ServiceTier::Flex, now());
        assert_eq!(flex.service_tier, "flex");
        assert_eq!(
            flex.rates.input,
            Usd::parse("0.075").unwrap(),
            "half of $0.15"
        );
        assert_eq!(flex.flags, ["flex-discount"]);
        assert!(render_one(&flex, Style::plain()).contains("Service tier: flex"));
    }

    #[test]
    fn an_aimodelprice_names_itself_as_the_source_and_an_invalid_one_is_listed_as_ignored() {
        let good = price("acme", "acme.*", "1.00", "2.00");
        let bad = price("broken", "acme.frontier-9-v1:0", "one dollar", "2.00");
        let (book, ignored) = book(&[good.clone(), bad.clone()]);
        let p = price_of(&book, "acme.frontier-9-v1:0", ServiceTier::Standard, now());
        assert_eq!(
            (p.source.as_str(), p.source_detail.as_deref()),
            ("AIModelPrice", Some("acme"))
        );
        assert_eq!(p.rates.input, Usd::parse("1.00").unwrap());
        assert_eq!(ignored.len(), 1);
        let all = render_all(&[good, bad], &ignored, Style::plain());
        assert!(all.contains("broken: IGNORED"), "{all}");
        assert!(all.contains("acme: acme.* at $1.00 in"), "{all}");
        assert!(
            all.contains("anthropic.claude-3-haiku-20240307-v1:0"),
            "{all}"
        );
    }
}
