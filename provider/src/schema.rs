//! Resource and provider schemas: what Terraform shows in `providers schema`, validates
//! configurations against, and what every value this provider sends back must conform to.

use crate::proto::tfplugin6 as pb;
use crate::value::Value;

/// An attribute's type (the subset of cty types the provider uses).
#[derive(Clone, Debug, PartialEq)]
pub enum Type {
    /// A string.
    String,
    /// An exact number.
    Number,
    /// A bool.
    Bool,
    /// An ordered list.
    List(Box<Type>),
    /// An unordered set.
    Set(Box<Type>),
    /// A map with string keys.
    Map(Box<Type>),
}

impl Type {
    /// A set of strings.
    pub fn string_set() -> Type {
        Type::Set(Box::new(Type::String))
    }

    /// A map of strings.
    pub fn string_map() -> Type {
        Type::Map(Box::new(Type::String))
    }

    /// cty's JSON type notation.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Type::String => json!("string"),
            Type::Number => json!("number"),
            Type::Bool => json!("bool"),
            Type::List(t) => json!(["list", t.to_json()]),
            Type::Set(t) => json!(["set", t.to_json()]),
            Type::Map(t) => json!(["map", t.to_json()]),
        }
    }

    /// Brings a decoded value into this type's shape: numbers sent as strings become numbers.
    fn conform(&self, value: Value) -> Value {
        match (self, value) {
            (Type::Number, Value::String(s)) => match crate::value::number_from_string(&s) {
                Ok(n) => Value::Number(n),
                Err(_) => Value::String(s),
            },
            (Type::List(t) | Type::Set(t), Value::Seq(items)) => {
                Value::Seq(items.into_iter().map(|v| t.conform(v)).collect())
            }
            (Type::Map(t), Value::Map(m)) => {
                Value::Map(m.into_iter().map(|(k, v)| (k, t.conform(v))).collect())
            }
            (_, v) => v,
        }
    }

    /// Equality as Terraform sees it: sets ignore order.
    pub fn same(&self, a: &Value, b: &Value) -> bool {
        match (self, a, b) {
            (Type::Set(_), Value::Seq(x), Value::Seq(y)) => {
                x.len() == y.len() && x.iter().all(|v| y.contains(v))
            }
            _ => a == b,
        }
    }
}

/// Who sets an attribute.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// The configuration must set it.
    Required,
    /// The configuration may set it; null otherwise.
    Optional,
    /// The provider sets it.
    Computed,
    /// The configuration may set it; otherwise the provider does (a default, or what the API chose).
    OptionalComputed,
}

/// One attribute of a block.
#[derive(Clone, Debug)]
pub struct Attribute {
    /// Its name in HCL.
    pub name: &'static str,
    /// Its type.
    pub ty: Type,
    /// Who sets it.
    pub mode: Mode,
    /// Hidden in plans and output (secrets such as webhook URLs).
    pub sensitive: bool,
    /// A change cannot be made in place: the object is replaced.
    pub force_new: bool,
    /// What the provider plans when the configuration leaves an optional+computed attribute out.
    pub default: Option<Value>,
    /// What the registry docs and `providers schema` show.
    pub description: &'static str,
}

impl Attribute {
    fn new(name: &'static str, ty: Type, mode: Mode, description: &'static str) -> Attribute {
        Attribute {
            name,
            ty,
            mode,
            sensitive: false,
            force_new: false,
            default: None,
            description,
        }
    }

    /// A required attribute.
    pub fn required(name: &'static str, ty: Type, description: &'static str) -> Attribute {
        Attribute::new(name, ty, Mode::Required, description)
    }

    /// An optional attribute.
    pub fn optional(name: &'static str, ty: Type, description: &'static str) -> Attribute {
        Attribute::new(name, ty, Mode::Optional, description)
    }

    /// An attribute only the provider sets.
    pub fn computed(name: &'static str, ty: Type, description: &'static str) -> Attribute {
        Attribute::new(name, ty, Mode::Computed, description)
    }

    /// An optional attribute with a provider-side default.
    pub fn defaulted(name: &'static str, ty: Type, description: &'static str) -> Attribute {
        Attribute::new(name, ty, Mode::OptionalComputed, description)
    }

    /// Marks a change to it as forcing replacement.
    pub fn force_new(mut self) -> Attribute {
        self.force_new = true;
        self
    }

    /// An optional attribute whose value, when left out, is this.
    pub fn with_default(mut self, value: Value) -> Attribute {
        self.mode = Mode::OptionalComputed;
        self.default = Some(value);
        self
    }

    /// Marks it sensitive.
    pub fn sensitive(mut self) -> Attribute {
        self.sensitive = true;
        self
    }

    /// True when the provider may set it.
    pub fn is_computed(&self) -> bool {
        matches!(self.mode, Mode::Computed | Mode::OptionalComputed)
    }
}

/// How a nested block repeats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nesting {
    /// At most one; null when absent.
    Single,
    /// An ordered list.
    List,
}

/// A nested block such as `notification { ... }`.
#[derive(Clone, Debug)]
pub struct NestedBlock {
    /// Its name in HCL.
    pub name: &'static str,
    /// How it repeats.
    pub nesting: Nesting,
    /// The most instances allowed (0: no limit).
    pub max_items: i64,
    /// The attributes that identify an instance of a list block across changes (how a planned
    /// element finds the prior one whose computed values it keeps); empty means by position.
    pub key: &'static [&'static str],
    /// Its contents.
    pub block: Block,
}

/// A block: attributes and nested blocks.
#[derive(Clone, Debug, Default)]
pub struct Block {
    /// Its attributes.
    pub attributes: Vec<Attribute>,
    /// Its nested blocks.
    pub blocks: Vec<NestedBlock>,
    /// What the registry docs show.
    pub description: &'static str,
}

impl Block {
    /// The attribute of this name.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// Brings a decoded object into this block's shape: every attribute present (null when
    /// absent), every list block a list, numbers sent as strings made numbers.
    pub fn conform(&self, value: Value) -> Value {
        let Value::Map(mut m) = value else {
            return value;
        };
        let mut out = std::collections::BTreeMap::new();
        for a in &self.attributes {
            let v = m.remove(a.name).unwrap_or_default();
            out.insert(a.name.to_owned(), a.ty.conform(v));
        }
        for b in &self.blocks {
            let v = m.remove(b.name).unwrap_or_default();
            let v = match (b.nesting, v) {
                (Nesting::List, Value::Null) => Value::Seq(Vec::new()),
                (Nesting::List, Value::Seq(items)) => {
                    Value::Seq(items.into_iter().map(|i| b.block.conform(i)).collect())
                }
                (Nesting::Single, v @ Value::Map(_)) => b.block.conform(v),
                (_, v) => v,
            };
            out.insert(b.name.to_owned(), v);
        }
        Value::Map(out)
    }

    /// The wire form.
    pub fn to_proto(&self) -> pb::schema::Block {
        pb::schema::Block {
            version: 0,
            attributes: self
                .attributes
                .iter()
                .map(|a| pb::schema::Attribute {
                    name: a.name.to_owned(),
                    r#type: a.ty.to_json().to_string().into_bytes(),
                    description: a.description.to_owned(),
                    required: a.mode == Mode::Required,
                    optional: matches!(a.mode, Mode::Optional | Mode::OptionalComputed),
                    computed: a.is_computed(),
                    sensitive: a.sensitive,
                    description_kind: pb::StringKind::Markdown as i32,
                    deprecated: false,
                })
                .collect(),
            block_types: self
                .blocks
                .iter()
                .map(|b| pb::schema::NestedBlock {
                    type_name: b.name.to_owned(),
                    block: Some(b.block.to_proto()),
                    nesting: match b.nesting {
                        Nesting::Single => pb::schema::nested_block::NestingMode::Single,
                        Nesting::List => pb::schema::nested_block::NestingMode::List,
                    } as i32,
                    min_items: 0,
                    // Terraform wants no limits on single blocks (they hold at most one anyway).
                    max_items: if b.nesting == Nesting::Single {
                        0
                    } else {
                        b.max_items
                    },
                })
                .collect(),
            description: self.description.to_owned(),
            description_kind: pb::StringKind::Markdown as i32,
            deprecated: false,
        }
    }
}

/// A resource or data source schema with its version.
pub fn to_proto(block: &Block) -> pb::Schema {
    pb::Schema {
        version: 0,
        block: Some(block.to_proto()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn block() -> Block {
        Block {
            attributes: vec![
                Attribute::required("amount", Type::Number, ""),
                Attribute::optional("tags", Type::string_map(), ""),
            ],
            blocks: vec![NestedBlock {
                name: "notification",
                nesting: Nesting::List,
                max_items: 0,
                key: &[],
                block: Block {
                    attributes: vec![Attribute::required("threshold", Type::Number, "")],
                    ..Block::default()
                },
            }],
            description: "",
        }
    }

    #[test]
    fn a_number_sent_as_a_string_becomes_an_exact_number() {
        let v = block().conform(Value::object([
            ("amount", Value::string("0.1")),
            (
                "notification",
                Value::Seq(vec![Value::object([("threshold", Value::string("80.5"))])]),
            ),
        ]));
        assert_eq!(v.get("amount").as_decimal(), Some(dec!(0.1)));
        assert_eq!(
            v.get("notification").items()[0]
                .get("threshold")
                .as_decimal(),
            Some(dec!(80.5))
        );
        assert!(v.as_map().unwrap().contains_key("tags"));
    }

    #[test]
    fn sets_compare_without_order() {
        let t = Type::string_set();
        assert!(t.same(&Value::strings(["a", "b"]), &Value::strings(["b", "a"])));
        assert!(
            !Type::List(Box::new(Type::String))
                .same(&Value::strings(["a", "b"]), &Value::strings(["b", "a"]))
        );
    }
}
