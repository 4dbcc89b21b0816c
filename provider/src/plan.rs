//! The planning rules every resource shares: what stays, what becomes "known after apply", which
//! changes force replacement. Pure functions over values and the schema.

use crate::diag::Path;
use crate::schema::{Block, Mode, Nesting};
use crate::value::Value;

/// A planned change.
#[derive(Debug)]
pub struct Planned {
    /// The planned new state (null: the object is destroyed).
    pub state: Value,
    /// The attributes whose change forces replacement.
    pub requires_replace: Vec<Path>,
}

/// Plans a change from the prior state to Terraform's proposed new state.
pub fn plan(block: &Block, prior: &Value, proposed: &Value, config: &Value) -> Planned {
    if proposed.is_null() {
        return Planned {
            state: Value::Null,
            requires_replace: Vec::new(),
        };
    }
    let requires_replace = if prior.is_null() {
        Vec::new()
    } else {
        block
            .attributes
            .iter()
            .filter(|a| a.force_new && !a.ty.same(prior.get(a.name), proposed.get(a.name)))
            .map(|a| Path::attr(a.name))
            .collect()
    };
    let fresh = prior.is_null() || !requires_replace.is_empty();
    let mut state = proposed.clone();
    fill(
        block,
        &mut state,
        config,
        if fresh { &Value::Null } else { prior },
    );
    Planned {
        state,
        requires_replace,
    }
}

/// Fills computed attributes: from the prior object when there is one, else the default, else
/// unknown.
fn fill(block: &Block, planned: &mut Value, config: &Value, prior: &Value) {
    for a in &block.attributes {
        let configured = !config.get(a.name).is_null();
        let Some(slot) = planned.get_mut(a.name) else {
            return;
        };
        match a.mode {
            Mode::Computed => *slot = from_prior(prior, a.name, &None),
            // A static default is what an omitted attribute means, whatever was there before.
            Mode::OptionalComputed if !configured => match &a.default {
                Some(default) => *slot = default.clone(),
                None => *slot = from_prior(prior, a.name, &None),
            },
            _ => {}
        }
    }
    for b in &block.blocks {
        let configs = config.get(b.name);
        let priors = prior.get(b.name);
        let Some(slot) = planned.get_mut(b.name) else {
            return;
        };
        match (b.nesting, slot) {
            (Nesting::Single, slot @ Value::Map(_)) => fill(&b.block, slot, configs, priors),
            (Nesting::List, Value::Seq(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let cfg = configs.items().get(i).cloned().unwrap_or_default();
                    let matched = if b.key.is_empty() {
                        priors.items().get(i).cloned()
                    } else {
                        priors
                            .items()
                            .iter()
                            .find(|p| b.key.iter().all(|k| p.get(k) == item.get(k)))
                            .cloned()
                    };
                    fill(&b.block, item, &cfg, &matched.unwrap_or_default());
                }
            }
            _ => {}
        }
    }
}

fn from_prior(prior: &Value, name: &str, default: &Option<Value>) -> Value {
    match prior.get(name) {
        Value::Null if prior.is_null() => default.clone().unwrap_or_else(Value::unknown),
        v => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Attribute, NestedBlock, Type};

    fn block() -> Block {
        Block {
            attributes: vec![
                Attribute::required("name", Type::String, "").force_new(),
                Attribute::required("amount", Type::Number, ""),
                Attribute::computed("arn", Type::String, ""),
                Attribute::optional("unit", Type::String, "")
                    .with_default(Value::string("MONTHLY")),
            ],
            blocks: vec![NestedBlock {
                name: "subscription",
                nesting: Nesting::List,
                max_items: 0,
                key: &["endpoint"],
                block: Block {
                    attributes: vec![
                        Attribute::required("endpoint", Type::String, ""),
                        Attribute::computed("arn", Type::String, ""),
                    ],
                    ..Block::default()
                },
            }],
            description: "",
        }
    }

    fn sub(endpoint: &str, arn: Value) -> Value {
        Value::object([("endpoint", Value::string(endpoint)), ("arn", arn)])
    }

    fn obj(name: &str, amount: i64, arn: Value, unit: Value, subs: Vec<Value>) -> Value {
        Value::object([
            ("name", Value::string(name)),
            ("amount", Value::Number(amount.into())),
            ("arn", arn),
            ("unit", unit),
            ("subscription", Value::Seq(subs)),
        ])
    }

    #[test]
    fn create_plans_defaults_and_leaves_computed_unknown() {
        let config = obj(
            "a",
            1,
            Value::Null,
            Value::Null,
            vec![sub("x", Value::Null)],
        );
        let p = plan(&block(), &Value::Null, &config, &config);
        assert!(p.state.get("arn").is_unknown());
        assert_eq!(p.state.get("unit").as_str(), Some("MONTHLY"));
        assert!(
            p.state.get("subscription").items()[0]
                .get("arn")
                .is_unknown()
        );
        assert!(p.requires_replace.is_empty());
    }

    #[test]
    fn an_in_place_change_keeps_computed_values() {
        let prior = obj(
            "a",
            1,
            Value::string("arn:1"),
            Value::string("MONTHLY"),
            vec![],
        );
        let config = obj("a", 2, Value::Null, Value::Null, vec![]);
        let proposed = obj(
            "a",
            2,
            Value::string("arn:1"),
            Value::string("MONTHLY"),
            vec![],
        );
        let p = plan(&block(), &prior, &proposed, &config);
        assert_eq!(p.state.get("arn").as_str(), Some("arn:1"));
        assert!(p.requires_replace.is_empty());
    }

    #[test]
    fn a_force_new_change_requires_replace_and_recomputes() {
        let prior = obj(
            "a",
            1,
            Value::string("arn:1"),
            Value::string("MONTHLY"),
            vec![],
        );
        let config = obj("b", 1, Value::Null, Value::Null, vec![]);
        let proposed = obj(
            "b",
            1,
            Value::string("arn:1"),
            Value::string("MONTHLY"),
            vec![],
        );
        let p = plan(&block(), &prior, &proposed, &config);
        assert_eq!(p.requires_replace, vec![Path::attr("name")]);
        assert!(p.state.get("arn").is_unknown());
    }

    #[test]
    fn list_block_elements_keep_computed_values_by_key_not_position() {
        let prior = obj(
            "a",
            1,
            Value::string("arn:1"),
            Value::string("MONTHLY"),
            vec![sub("x", Value::string("sub:x"))],
        );
        let config = obj(
            "a",
            1,
            Value::Null,
            Value::Null,
            vec![sub("y", Value::Null), sub("x", Value::Null)],
        );
        // Terraform proposes prior computed values by position; the key corrects that.
        let proposed = obj(
            "a",
            1,
            Value::string("arn:1"),
            Value::string("MONTHLY"),
            vec![sub("y", Value::string("sub:x")), sub("x", Value::Null)],
        );
        let p = plan(&block(), &prior, &proposed, &config);
        let subs = p.state.get("subscription").items();
        assert!(subs[0].get("arn").is_unknown());
        assert_eq!(subs[1].get("arn").as_str(), Some("sub:x"));
    }

    #[test]
    fn destroy_plans_null() {
        let prior = obj(
            "a",
            1,
            Value::string("arn:1"),
            Value::string("MONTHLY"),
            vec![],
        );
        assert!(
            plan(&block(), &prior, &Value::Null, &Value::Null)
                .state
                .is_null()
        );
    }
}
