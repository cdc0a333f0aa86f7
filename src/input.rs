//! Strict parsing of submitted events (JSON objects, one per NDJSON line).
//!
//! The parser reads each object in one pass, capturing every value as a scalar, and then
//! validates the fields itself, so that every refusal names the field and says what was
//! expected: unknown or repeated fields, a missing `type`, fields that belong to another type,
//! invalid country codes, impossible dates, negative, fractional or overflowing numbers,
//! malformed identifiers and over-long lines.

use std::borrow::Cow;
use std::fmt;
use std::io::BufRead;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::codec::{
    AiaCertificationEvent, AllocationChangeEvent, Basis, Body, ChipModelEvent, EntityEvent, Event,
    HoldingEvent, INPUT_TYPES, Scope, ShipmentEvent, Tier, TierChangeEvent, TransferEvent,
    VeuGrantEvent, VeuRevokeEvent, VoidEvent, WeightsHostingEvent,
};
use crate::country::{Country, printable};
use crate::date::Date;
use crate::name::{Id, Text};

mod flat;

/// The longest line accepted, in bytes, not counting the newline.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// The most chips one event may move: far above any real shipment, and small enough that
/// `quantity × TPP` always fits in 64 bits.
pub const MAX_QUANTITY: u64 = 1_000_000_000;
/// The largest TPP a chip model may declare (a B300 is 60,000).
pub const MAX_CHIP_TPP: u64 = 1_000_000_000;
/// The largest country allocation an `allocation_change` may set.
pub const MAX_ALLOCATION_TPP: u64 = 1_000_000_000_000_000_000;

/// Ids of the ledger's own records (genesis, commitments) begin with this.
pub const RESERVED_PREFIX: &str = "chipledger:";

/// An event as submitted: its effective date and the event itself.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Submission {
    pub effective: Date,
    pub event: Event,
}

/// Why a submitted object was refused as bad input.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InputError {
    /// The offending field, when one can be named.
    pub field: Option<String>,
    pub message: String,
}

impl InputError {
    fn field(field: &str, message: impl Into<String>) -> InputError {
        InputError {
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    fn whole(message: impl Into<String>) -> InputError {
        InputError {
            field: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "field `{field}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A JSON value as captured from the object: scalars as they are, anything nested as `Nested`.
#[derive(Debug, PartialEq)]
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Unsigned(u64),
    Negative(i64),
    Float(f64),
    Bool(bool),
    Null,
    Nested(&'static str),
}

impl Scalar<'_> {
    fn describe(&self) -> String {
        match self {
            Scalar::Str(text) => format!("the string \"{}\"", printable(text)),
            Scalar::Unsigned(number) => format!("the number {number}"),
            Scalar::Negative(number) => format!("the number {number}"),
            Scalar::Float(number) => format!("the number {number}"),
            Scalar::Bool(value) => format!("{value}"),
            Scalar::Null => "null".to_string(),
            Scalar::Nested(kind) => format!("an {kind}"),
        }
    }
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(value)))
            }
            fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(value.to_string())))
            }
            fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
                Ok(Scalar::Unsigned(value))
            }
            fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
                Ok(if value >= 0 {
                    Scalar::Unsigned(value as u64)
                } else {
                    Scalar::Negative(value)
                })
            }
            fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Float(value))
            }
            fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool(value))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Nested("array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Nested("object"))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// Every field any event type uses, in the order fields are validated. The parser refers to
/// fields by this enum, so no field name is compared as a string after the object is read.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Field {
    Type,
    Id,
    Effective,
    Entity,
    Name,
    Hq,
    Parent,
    Chip,
    Tpp,
    Controlled,
    Country,
    Tier,
    AllocationTpp,
    Veu,
    Scope,
    Exporter,
    Consignee,
    Quantity,
    Basis,
    FromCountry,
    ToCountry,
    ToEntity,
    Model,
    TrainingOps,
    OpenWeights,
    Secured,
    Target,
    Reason,
}

/// The name of each [`Field`], in its order.
const FIELDS: [&str; FIELD_COUNT] = [
    "type",
    "id",
    "effective",
    "entity",
    "name",
    "hq",
    "parent",
    "chip",
    "tpp",
    "controlled",
    "country",
    "tier",
    "allocation_tpp",
    "veu",
    "scope",
    "exporter",
    "consignee",
    "quantity",
    "basis",
    "from_country",
    "to_country",
    "to_entity",
    "model",
    "training_ops",
    "open_weights",
    "secured",
    "target",
    "reason",
];
const FIELD_COUNT: usize = 28;

impl Field {
    fn name(self) -> &'static str {
        FIELDS[self as usize]
    }
}

/// The object's fields by position in [`FIELDS`], plus what did not belong.
#[derive(Debug, PartialEq)]
struct RawObject<'a> {
    values: [Option<Scalar<'a>>; FIELD_COUNT],
    unknown: Vec<String>,
    repeated: Vec<&'static str>,
}

impl<'a> RawObject<'a> {
    fn new() -> RawObject<'a> {
        RawObject {
            values: std::array::from_fn(|_| None),
            unknown: Vec::new(),
            repeated: Vec::new(),
        }
    }

    /// Takes a field's value; a field given twice is noted (and the last value kept).
    fn field(&mut self, field: Field, value: Scalar<'a>) {
        if self.values[field as usize].replace(value).is_some() {
            self.repeated.push(field.name());
        }
    }

    /// Notes a key that no event has (the first eight, for the message).
    fn unknown_key(&mut self, key: &str) {
        if self.unknown.len() < 8 {
            self.unknown.push(printable(key));
        }
    }
}

impl<'de> de::Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object (one event)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut object = RawObject::new();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match field_index(&key) {
                        Some(field) => object.field(field, map.next_value::<Scalar<'de>>()?),
                        None => {
                            map.next_value::<IgnoredAny>()?;
                            object.unknown_key(&key);
                        }
                    }
                }
                Ok(object)
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// The fields of each event type besides `type`, `id` and `effective`: required, then optional;
/// `None` for a name that is not an event type.
fn fields_of(event_type: &str) -> Option<(&'static [Field], &'static [Field])> {
    let fields: (&[Field], &[Field]) = match event_type {
        "entity" => (&[Field::Entity, Field::Name, Field::Hq], &[Field::Parent]),
        "chip_model" => (&[Field::Chip, Field::Tpp, Field::Controlled], &[]),
        "tier_change" => (&[Field::Country, Field::Tier], &[]),
        "allocation_change" => (&[Field::Country, Field::AllocationTpp], &[]),
        "veu_grant" => (
            &[Field::Veu, Field::Entity, Field::Scope],
            &[Field::Country],
        ),
        "veu_revoke" => (&[Field::Veu], &[]),
        "aia_certification" => (&[Field::Entity], &[]),
        "inventory" | "decommission" => (
            &[Field::Entity, Field::Chip, Field::Quantity, Field::Country],
            &[],
        ),
        "shipment" => (
            &[
                Field::Exporter,
                Field::Consignee,
                Field::Country,
                Field::Chip,
                Field::Quantity,
            ],
            &[Field::Basis],
        ),
        "transfer" => (
            &[
                Field::Entity,
                Field::FromCountry,
                Field::ToCountry,
                Field::Chip,
                Field::Quantity,
            ],
            &[Field::ToEntity, Field::Basis],
        ),
        "weights_hosting" => (
            &[
                Field::Entity,
                Field::Model,
                Field::TrainingOps,
                Field::OpenWeights,
                Field::Country,
                Field::Secured,
            ],
            &[],
        ),
        "void" => (&[Field::Target, Field::Reason], &[]),
        _ => return None,
    };
    Some(fields)
}

/// The names of the fields of each event type besides `type`, `id` and `effective`: required,
/// then optional (empty for a name that is not an event type). The JSON Schema is checked
/// against this.
pub fn field_names_of(event_type: &str) -> (Vec<&'static str>, Vec<&'static str>) {
    let names = |fields: &[Field]| fields.iter().map(|field| field.name()).collect();
    fields_of(event_type).map_or((Vec::new(), Vec::new()), |(required, optional)| {
        (names(required), names(optional))
    })
}

/// Parses one JSON object into a submission.
pub fn parse_event(json: &str) -> Result<Submission, InputError> {
    let object = match flat::scan(json) {
        Some(object) => object,
        None => parse_object(json)?,
    };
    Fields { object }.into_submission()
}

/// Reads one JSON object with serde_json: any line [`flat::scan`] leaves, and every error.
fn parse_object(json: &str) -> Result<RawObject<'_>, InputError> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    de::Deserialize::deserialize(&mut deserializer)
        .and_then(|object: RawObject| deserializer.end().map(|()| object))
        .map_err(|error| InputError::whole(describe_json_error(&error)))
}

fn describe_json_error(error: &serde_json::Error) -> String {
    // serde_json appends "at line L column C"; inside one NDJSON line only the column matters.
    let text = error.to_string();
    let message = match text.rfind(" at line ") {
        Some(position) => &text[..position],
        None => &text,
    };
    let message = match message {
        "invalid type: string, expected a JSON object (one event)"
        | "invalid type: sequence, expected a JSON object (one event)" => {
            "expected a JSON object (one event)"
        }
        other => other,
    };
    match error.classify() {
        serde_json::error::Category::Eof => format!("not valid JSON: {message}"),
        _ => format!("not valid JSON: {message} (column {})", error.column()),
    }
}

struct Fields<'a> {
    object: RawObject<'a>,
}

impl<'a> Fields<'a> {
    fn into_submission(mut self) -> Result<Submission, InputError> {
        if let Some(field) = self.object.repeated.first() {
            return Err(InputError::field(field, "appears more than once"));
        }
        let event_type = match self.take(Field::Type) {
            None => return Err(InputError::field("type", "is missing")),
            Some(Scalar::Str(text)) => text,
            Some(other) => {
                return Err(InputError::field(
                    "type",
                    format!("expected an event type name, found {}", other.describe()),
                ));
            }
        };
        let Some((required, optional)) = fields_of(&event_type) else {
            return Err(InputError::field(
                "type",
                format!(
                    "`{}` is not an event type; the types are {}",
                    printable(&event_type),
                    INPUT_TYPES.join(", ")
                ),
            ));
        };
        let allowed = || {
            let mut names = vec!["id", "effective"];
            names.extend(required.iter().chain(optional).map(|field| field.name()));
            names.join(", ")
        };
        if let Some(unknown) = self.object.unknown.first() {
            return Err(InputError::field(
                unknown,
                format!(
                    "is not a field of any event; `{event_type}` takes {}",
                    allowed()
                ),
            ));
        }
        for (index, value) in self.object.values.iter().enumerate() {
            if value.is_none() || index <= Field::Effective as usize {
                continue;
            }
            if !required
                .iter()
                .chain(optional)
                .any(|field| *field as usize == index)
            {
                return Err(InputError::field(
                    FIELDS[index],
                    format!(
                        "does not belong to `{event_type}`, which takes {}",
                        allowed()
                    ),
                ));
            }
        }
        for field in [Field::Id, Field::Effective].iter().chain(required) {
            if self.object.values[*field as usize].is_none() {
                return Err(InputError::field(field.name(), "is missing"));
            }
        }

        let id = self.id(Field::Id)?;
        if id.as_str().starts_with(RESERVED_PREFIX) {
            return Err(InputError::field(
                "id",
                format!(
                    "ids beginning `{RESERVED_PREFIX}` are reserved for the ledger's own records"
                ),
            ));
        }
        let effective = self.date(Field::Effective)?;
        let body = match event_type.as_ref() {
            "entity" => Body::Entity(EntityEvent {
                entity: self.id(Field::Entity)?,
                name: self.text(Field::Name)?,
                hq: self.country(Field::Hq)?,
                parent: self.optional_id(Field::Parent)?,
            }),
            "chip_model" => Body::ChipModel(ChipModelEvent {
                chip: self.id(Field::Chip)?,
                tpp: self.number(Field::Tpp, 1, MAX_CHIP_TPP)?,
                controlled: self.boolean(Field::Controlled)?,
            }),
            "tier_change" => Body::TierChange(TierChangeEvent {
                country: self.country(Field::Country)?,
                tier: Tier::from_number(self.number(Field::Tier, 1, 3)?).expect("range checked"),
            }),
            "allocation_change" => Body::AllocationChange(AllocationChangeEvent {
                country: self.country(Field::Country)?,
                allocation_tpp: self.number(Field::AllocationTpp, 0, MAX_ALLOCATION_TPP)?,
            }),
            "veu_grant" => {
                let veu = self.id(Field::Veu)?;
                let entity = self.id(Field::Entity)?;
                let scope = self.scope()?;
                Body::VeuGrant(VeuGrantEvent { veu, entity, scope })
            }
            "veu_revoke" => Body::VeuRevoke(VeuRevokeEvent {
                veu: self.id(Field::Veu)?,
            }),
            "aia_certification" => Body::AiaCertification(AiaCertificationEvent {
                entity: self.id(Field::Entity)?,
            }),
            "inventory" | "decommission" => {
                let holding = HoldingEvent {
                    entity: self.id(Field::Entity)?,
                    chip: self.id(Field::Chip)?,
                    quantity: self.number(Field::Quantity, 1, MAX_QUANTITY)?,
                    country: self.country(Field::Country)?,
                };
                if event_type == "inventory" {
                    Body::Inventory(holding)
                } else {
                    Body::Decommission(holding)
                }
            }
            "shipment" => Body::Shipment(ShipmentEvent {
                exporter: self.id(Field::Exporter)?,
                consignee: self.id(Field::Consignee)?,
                country: self.country(Field::Country)?,
                chip: self.id(Field::Chip)?,
                quantity: self.number(Field::Quantity, 1, MAX_QUANTITY)?,
                basis: self.basis()?,
            }),
            "transfer" => Body::Transfer(TransferEvent {
                entity: self.id(Field::Entity)?,
                from_country: self.country(Field::FromCountry)?,
                to_country: self.country(Field::ToCountry)?,
                to_entity: self.optional_id(Field::ToEntity)?,
                chip: self.id(Field::Chip)?,
                quantity: self.number(Field::Quantity, 1, MAX_QUANTITY)?,
                basis: self.basis()?,
            }),
            "weights_hosting" => Body::WeightsHosting(WeightsHostingEvent {
                entity: self.id(Field::Entity)?,
                model: self.text(Field::Model)?,
                training_ops: self.operations(Field::TrainingOps)?,
                open_weights: self.boolean(Field::OpenWeights)?,
                country: self.country(Field::Country)?,
                secured: self.boolean(Field::Secured)?,
            }),
            "void" => Body::Void(VoidEvent {
                target: self.id(Field::Target)?,
                reason: self.text(Field::Reason)?,
            }),
            _ => unreachable!("the type was checked against INPUT_TYPES"),
        };
        Ok(Submission {
            effective,
            event: Event { id, body },
        })
    }

    fn take(&mut self, field: Field) -> Option<Scalar<'a>> {
        self.object.values[field as usize].take()
    }

    fn has(&self, field: Field) -> bool {
        self.object.values[field as usize].is_some()
    }

    fn string(&mut self, field: Field, what: &str) -> Result<Cow<'a, str>, InputError> {
        let name = field.name();
        match self.take(field) {
            Some(Scalar::Str(text)) => Ok(text),
            Some(other) => Err(InputError::field(
                name,
                format!("expected {what} as a string, found {}", other.describe()),
            )),
            None => Err(InputError::field(name, "is missing")),
        }
    }

    fn id(&mut self, field: Field) -> Result<Id, InputError> {
        let name = field.name();
        let text = self.string(field, "an identifier")?;
        let parse = match field {
            Field::Id | Field::Target => Id::parse_unique,
            _ => Id::parse,
        };
        parse(&text).map_err(|message| InputError::field(name, message))
    }

    fn optional_id(&mut self, field: Field) -> Result<Option<Id>, InputError> {
        if !self.has(field) {
            return Ok(None);
        }
        self.id(field).map(Some)
    }

    fn text(&mut self, field: Field) -> Result<Text, InputError> {
        let name = field.name();
        let text = self.string(field, "text")?;
        Text::parse(&text).map_err(|message| InputError::field(name, message))
    }

    fn country(&mut self, field: Field) -> Result<Country, InputError> {
        let name = field.name();
        let text = self.string(field, "a country code")?;
        Country::parse(&text).map_err(|message| InputError::field(name, message))
    }

    fn date(&mut self, field: Field) -> Result<Date, InputError> {
        let name = field.name();
        let text = self.string(field, "a date (YYYY-MM-DD)")?;
        Date::parse(&text).map_err(|message| InputError::field(name, message))
    }

    fn boolean(&mut self, field: Field) -> Result<bool, InputError> {
        let name = field.name();
        match self.take(field) {
            Some(Scalar::Bool(value)) => Ok(value),
            Some(other) => Err(InputError::field(
                name,
                format!("expected true or false, found {}", other.describe()),
            )),
            None => Err(InputError::field(name, "is missing")),
        }
    }

    /// A whole number within `minimum..=maximum`, written as a JSON integer.
    fn number(&mut self, field: Field, minimum: u64, maximum: u64) -> Result<u64, InputError> {
        let name = field.name();
        let range = || format!("a whole number from {minimum} to {maximum}");
        match self.take(field) {
            Some(Scalar::Unsigned(value)) if (minimum..=maximum).contains(&value) => Ok(value),
            Some(Scalar::Unsigned(value)) => Err(InputError::field(
                name,
                format!("{value} is out of range: expected {}", range()),
            )),
            Some(Scalar::Negative(value)) => Err(InputError::field(
                name,
                format!("{value} is negative: expected {}", range()),
            )),
            Some(Scalar::Float(value)) => Err(InputError::field(
                name,
                format!(
                    "{value} is not a whole number within 64 bits: expected {}",
                    range()
                ),
            )),
            Some(other) => Err(InputError::field(
                name,
                format!("expected {}, found {}", range(), other.describe()),
            )),
            None => Err(InputError::field(name, "is missing")),
        }
    }

    /// Training operations: a JSON integer, or a string of digits or a decimal exponent form
    /// such as "3e26" or "2.5e25", whose value must be a whole number below 2^128.
    fn operations(&mut self, field: Field) -> Result<u128, InputError> {
        let name = field.name();
        match self.take(field) {
            Some(Scalar::Unsigned(value)) => Ok(u128::from(value)),
            Some(Scalar::Str(text)) => {
                parse_operations(&text).map_err(|message| InputError::field(name, message))
            }
            Some(other) => Err(InputError::field(
                name,
                format!(
                    "expected a whole number of operations such as \"3e26\", found {}",
                    other.describe()
                ),
            )),
            None => Err(InputError::field(name, "is missing")),
        }
    }

    fn scope(&mut self) -> Result<Scope, InputError> {
        let scope = self.string(Field::Scope, "`universal` or `national`")?;
        let has_country = self.has(Field::Country);
        match scope.as_ref() {
            "universal" if has_country => Err(InputError::field(
                "country",
                "a universal VEU covers every country; leave `country` out",
            )),
            "universal" => Ok(Scope::Universal),
            "national" if !has_country => Err(InputError::field(
                "country",
                "is missing: a national VEU names its country",
            )),
            "national" => Ok(Scope::National(self.country(Field::Country)?)),
            other => Err(InputError::field(
                "scope",
                format!(
                    "`{}` is not a scope: expected `universal` or `national`",
                    printable(other)
                ),
            )),
        }
    }

    fn basis(&mut self) -> Result<Option<Basis>, InputError> {
        if !self.has(Field::Basis) {
            return Ok(None);
        }
        let text = self.string(Field::Basis, "a basis")?;
        Basis::parse_requested(&text).map(Some).ok_or_else(|| {
            InputError::field(
                "basis",
                format!(
                    "`{}` is not a basis: expected aia, uveu, nveu, lpp or license",
                    printable(&text)
                ),
            )
        })
    }
}

/// The field with this name, by a `match` the compiler turns into a few comparisons (this
/// runs for every key of every event).
fn field_index(name: &str) -> Option<Field> {
    let field = match name {
        "type" => Field::Type,
        "id" => Field::Id,
        "effective" => Field::Effective,
        "entity" => Field::Entity,
        "name" => Field::Name,
        "hq" => Field::Hq,
        "parent" => Field::Parent,
        "chip" => Field::Chip,
        "tpp" => Field::Tpp,
        "controlled" => Field::Controlled,
        "country" => Field::Country,
        "tier" => Field::Tier,
        "allocation_tpp" => Field::AllocationTpp,
        "veu" => Field::Veu,
        "scope" => Field::Scope,
        "exporter" => Field::Exporter,
        "consignee" => Field::Consignee,
        "quantity" => Field::Quantity,
        "basis" => Field::Basis,
        "from_country" => Field::FromCountry,
        "to_country" => Field::ToCountry,
        "to_entity" => Field::ToEntity,
        "model" => Field::Model,
        "training_ops" => Field::TrainingOps,
        "open_weights" => Field::OpenWeights,
        "secured" => Field::Secured,
        "target" => Field::Target,
        "reason" => Field::Reason,
        _ => return None,
    };
    debug_assert_eq!(field.name(), name);
    Some(field)
}

/// Parses "300000000000000000000000000", "3e26", "3E26" or "2.5e25" exactly.
pub fn parse_operations(text: &str) -> Result<u128, String> {
    let invalid = || {
        format!(
            "`{}` is not a whole number of operations (digits, or a form such as \"3e26\")",
            printable(text)
        )
    };
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(position) => (&text[..position], Some(&text[position + 1..])),
        None => (text, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) if exponent.is_some() => (whole, fraction),
        Some(_) => return Err(invalid()),
        None => (mantissa, ""),
    };
    let digits_only = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || !digits_only(whole) || !digits_only(fraction) {
        return Err(invalid());
    }
    let exponent: u32 = match exponent {
        None => 0,
        Some(digits) if !digits.is_empty() && digits.len() <= 3 && digits_only(digits) => {
            digits.parse().map_err(|_| invalid())?
        }
        Some(_) => return Err(invalid()),
    };
    let fraction = fraction.trim_end_matches('0');
    let fraction_length = u32::try_from(fraction.len()).map_err(|_| invalid())?;
    if fraction_length > exponent {
        return Err(format!("`{}` is not a whole number", printable(text)));
    }
    let too_large = || format!("`{}` is larger than 2^128", printable(text));
    let mut value: u128 = 0;
    for byte in whole.bytes().chain(fraction.bytes()) {
        value = value
            .checked_mul(10)
            .and_then(|value| value.checked_add(u128::from(byte - b'0')))
            .ok_or_else(too_large)?;
    }
    let scale = 10u128
        .checked_pow(exponent - fraction_length)
        .ok_or_else(too_large)?;
    value.checked_mul(scale).ok_or_else(too_large)
}

/// Why a line of an NDJSON stream could not even be read as text.
#[derive(Debug)]
pub enum LineError {
    TooLong,
    NotUtf8,
    Io(std::io::Error),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::TooLong => write!(
                f,
                "the line is longer than {MAX_LINE_BYTES} bytes (64 KiB); one event per line"
            ),
            LineError::NotUtf8 => f.write_str("the line is not valid UTF-8"),
            LineError::Io(error) => write!(f, "cannot read: {error}"),
        }
    }
}

/// Reads an NDJSON stream line by line without ever holding more than one bounded line.
pub struct Lines<R> {
    reader: R,
    buffer: Vec<u8>,
    number: u64,
    /// Bytes consumed from the reader so far.
    consumed: u64,
    /// Where the line last returned starts, in bytes from the start of the stream.
    line_start: u64,
}

impl<R: BufRead> Lines<R> {
    pub fn new(reader: R) -> Lines<R> {
        Lines {
            reader,
            buffer: Vec::with_capacity(1024),
            number: 0,
            consumed: 0,
            line_start: 0,
        }
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        &self.reader
    }

    /// Where the line last returned by [`Lines::next_line`] starts, in bytes from the start of
    /// the stream: its text is that many bytes in, without the line ending.
    pub fn line_start(&self) -> u64 {
        self.line_start
    }

    /// The next non-blank line with its 1-based number, or `None` at the end.
    pub fn next_line(&mut self) -> Option<(u64, Result<&str, LineError>)> {
        loop {
            self.buffer.clear();
            self.number += 1;
            self.line_start = self.consumed;
            let mut too_long = false;
            let mut ended = false;
            loop {
                let available = match self.reader.fill_buf() {
                    Ok(available) => available,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(error) => return Some((self.number, Err(LineError::Io(error)))),
                };
                if available.is_empty() {
                    ended = true;
                    break;
                }
                // memchr searches whole words at a time: a byte-by-byte search was most of the
                // time spent reading an import file.
                let (chunk, found) = match memchr::memchr(b'\n', available) {
                    Some(position) => (&available[..position], true),
                    None => (available, false),
                };
                let used = chunk.len() + usize::from(found);
                if !too_long {
                    if self.buffer.len() + chunk.len() > MAX_LINE_BYTES + 1 {
                        too_long = true;
                        self.buffer.clear();
                    } else {
                        self.buffer.extend_from_slice(chunk);
                    }
                }
                self.reader.consume(used);
                self.consumed += used as u64;
                if found {
                    break;
                }
            }
            if too_long {
                return Some((self.number, Err(LineError::TooLong)));
            }
            if ended && self.buffer.is_empty() {
                return None;
            }
            if self.buffer.last() == Some(&b'\r') {
                self.buffer.pop();
            }
            if self.buffer.len() > MAX_LINE_BYTES {
                return Some((self.number, Err(LineError::TooLong)));
            }
            if self.buffer.iter().all(u8::is_ascii_whitespace) {
                if ended {
                    return None;
                }
                continue;
            }
            return Some((
                self.number,
                std::str::from_utf8(&self.buffer).map_err(|_| LineError::NotUtf8),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(json: &str) -> InputError {
        parse_event(json).expect_err(json)
    }

    #[test]
    fn every_field_name_has_its_index() {
        for (index, name) in FIELDS.iter().enumerate() {
            assert_eq!(
                field_index(name).map(|field| field as usize),
                Some(index),
                "{name}"
            );
        }
        assert_eq!(field_index("colour"), None);
    }

    #[test]
    fn operations_accept_digits_and_exponents_exactly() {
        assert_eq!(
            parse_operations("3e26"),
            Ok(300_000_000_000_000_000_000_000_000)
        );
        assert_eq!(
            parse_operations("2.5E25"),
            Ok(25_000_000_000_000_000_000_000_000)
        );
        assert_eq!(parse_operations("1000"), Ok(1000));
        assert_eq!(parse_operations("1.50e1"), Ok(15));
        for bad in [
            "", "e5", "1e", "1.5", "1.55e1", "-1e3", "1e39", "0x10", "1e-3", " 1",
        ] {
            assert!(parse_operations(bad).is_err(), "{bad}");
        }
        assert!(parse_operations("340282366920938463463374607431768211456").is_err());
    }

    #[test]
    fn field_errors_name_the_field() {
        let base = r#""type":"shipment","id":"S-1","effective":"2025-03-01","exporter":"nv","consignee":"acme","country":"MY","chip":"H100""#;
        let cases = [
            (
                format!("{{{base},\"quantity\":-5}}"),
                "quantity",
                "negative",
            ),
            (
                format!("{{{base},\"quantity\":1.5}}"),
                "quantity",
                "whole number",
            ),
            (
                format!("{{{base},\"quantity\":18446744073709551616}}"),
                "quantity",
                "whole number",
            ),
            (
                format!("{{{base},\"quantity\":\"10\"}}"),
                "quantity",
                "found the string",
            ),
            (
                format!("{{{base},\"quantity\":0}}"),
                "quantity",
                "out of range",
            ),
            (
                format!("{{{base},\"quantity\":1,\"colour\":\"red\"}}"),
                "colour",
                "not a field",
            ),
            (
                format!("{{{base},\"quantity\":1,\"tier\":2}}"),
                "tier",
                "does not belong",
            ),
            (
                format!("{{{base},\"quantity\":1,\"basis\":\"gift\"}}"),
                "basis",
                "not a basis",
            ),
            (
                format!("{{{base},\"quantity\":1,\"id\":\"S-2\"}}"),
                "id",
                "more than once",
            ),
            (format!("{{{base}}}"), "quantity", "missing"),
        ];
        for (json, field, words) in cases {
            let error = refused(&json);
            assert_eq!(error.field.as_deref(), Some(field), "{json}: {error}");
            assert!(error.message.contains(words), "{json}: {error}");
        }
    }

    #[test]
    fn whole_line_errors_have_no_field() {
        for json in [
            "",
            "{",
            "[1,2]",
            "\"shipment\"",
            "{} {}",
            "{\"type\":\"shipment\",}",
        ] {
            let error = refused(json);
            assert!(error.field.is_none(), "{json}: {error}");
        }
        let error = refused("{\"type\":\"gift\",\"id\":\"a\"}");
        assert_eq!(error.field.as_deref(), Some("type"));
    }

    #[test]
    fn every_example_line_of_the_blueprint_parses() {
        let lines = [
            r#"{"type":"entity","id":"e-acme","effective":"2025-01-13","entity":"acme","name":"Acme Cloud","hq":"US"}"#,
            r#"{"type":"veu_grant","id":"g-1","effective":"2025-02-01","veu":"V-1","entity":"acme","scope":"universal"}"#,
            r#"{"type":"shipment","id":"S-1","effective":"2025-03-01","exporter":"nvidia","consignee":"acme","country":"MY","chip":"H100","quantity":1000}"#,
            r#"{"type":"transfer","id":"T-1","effective":"2025-04-01","entity":"acme","from_country":"US","to_country":"IN","chip":"H100","quantity":10}"#,
            r#"{"type":"weights_hosting","id":"W-1","effective":"2025-05-01","entity":"acme","model":"frontier-1","training_ops":"3e26","open_weights":false,"country":"AE","secured":true}"#,
            r#"{"type":"void","id":"X-1","effective":"2025-05-02","target":"S-1","reason":"entered twice"}"#,
        ];
        for line in lines {
            parse_event(line).unwrap_or_else(|error| panic!("{line}: {error}"));
        }
    }

    #[test]
    fn lines_are_bounded_and_numbered() {
        let long = "x".repeat(MAX_LINE_BYTES + 10);
        let text = format!("a\n\n  \nb\r\n{long}\nc");
        let mut lines = Lines::new(text.as_bytes());
        let mut seen = Vec::new();
        let mut starts = Vec::new();
        while let Some((number, line)) = lines.next_line() {
            seen.push((
                number,
                line.map(str::to_string).map_err(|error| error.to_string()),
            ));
            starts.push(lines.line_start());
        }
        // Each line's text is where it starts, without its ending ("\r\n" after "b").
        assert_eq!(starts, [0, 6, 9, 10 + long.len() as u64]);
        for (start, (_, line)) in starts.iter().zip(&seen) {
            if let Ok(line) = line {
                let start = *start as usize;
                assert_eq!(&text[start..start + line.len()], line);
            }
        }
        assert_eq!(seen[0], (1, Ok("a".to_string())));
        assert_eq!(seen[1], (4, Ok("b".to_string())));
        assert_eq!(seen[2].0, 5);
        assert!(seen[2].1.is_err());
        assert_eq!(seen[3], (6, Ok("c".to_string())));
        assert_eq!(seen.len(), 4);
    }
}
