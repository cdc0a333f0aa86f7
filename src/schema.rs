//! JSON Schemas of every JSON shape chipledger reads or writes, generated from Rust types
//! (`schemas/*.schema.json`; `tests/schemas.rs` regenerates them and fails on any drift).
//!
//! Output shapes are the types the program serializes. The input shape is described by the
//! types below; the parser (`input.rs`) validates fields itself for its messages, and the test
//! checks that its table of fields per event type and this description agree.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::country::Country;
use crate::date::{Date, Instant};
use crate::name::Id;

pub const ID_PATTERN: &str = "^[A-Za-z0-9._:-]{1,128}$";
pub const COUNTRY_PATTERN: &str = "^[A-Z]{2}$";
pub const DATE_PATTERN: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$";

impl JsonSchema for Country {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Country".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": COUNTRY_PATTERN,
            "description": "An officially assigned ISO 3166-1 alpha-2 code, uppercase."
        })
    }
}

impl JsonSchema for Date {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Date".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date",
            "pattern": DATE_PATTERN,
            "description": "A calendar day YYYY-MM-DD (UTC), years 1900 to 9999."
        })
    }
}

impl JsonSchema for Instant {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Instant".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "An RFC 3339 time in UTC."
        })
    }
}

impl JsonSchema for Id {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Id".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": ID_PATTERN})
    }
}

/// An identifier: 1 to 128 characters from `[A-Za-z0-9._:-]`. Ids beginning `chipledger:` are
/// reserved.
#[derive(JsonSchema, Default)]
#[schemars(transparent)]
pub struct IdText(#[schemars(regex(pattern = ID_PATTERN))] pub String);

/// Free text: 1 to 512 bytes, not blank, no control characters.
#[derive(JsonSchema)]
#[schemars(transparent)]
pub struct FreeText(#[schemars(length(min = 1, max = 512))] pub String);

/// A whole number of chips, 1 to 1,000,000,000.
#[derive(JsonSchema)]
#[schemars(transparent)]
pub struct Quantity(#[schemars(range(min = 1, max = 1_000_000_000))] pub u64);

/// Training operations: a JSON integer, or a string of digits or of a decimal exponent form
/// such as "3e26" or "2.5e25", whose value is a whole number below 2^128.
#[derive(JsonSchema)]
#[schemars(untagged)]
pub enum Operations {
    Number(u64),
    Text(#[schemars(regex(pattern = "^[0-9]+(\\.[0-9]+)?([eE][0-9]{1,3})?$"))] String),
}

/// An officially assigned ISO 3166-1 alpha-2 code, uppercase.
#[derive(JsonSchema, Default)]
#[schemars(transparent)]
pub struct CountryCode(#[schemars(regex(pattern = COUNTRY_PATTERN))] pub String);

/// An authorization basis a caller may request.
#[derive(JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum RequestedBasis {
    #[default]
    Aia,
    Uveu,
    Nveu,
    Lpp,
    License,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VeuScope {
    Universal,
    National,
}

/// One event, as a line of NDJSON or a JSON document (framework.md section 5). Unknown fields
/// are refused, as are fields of another type.
#[derive(JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[schemars(title = "chipledger input event")]
pub enum InputEvent {
    /// Register a company.
    Entity {
        id: IdText,
        effective: Date,
        entity: IdText,
        name: FreeText,
        hq: Country,
        /// Optional: the parent company, already registered.
        #[serde(default)]
        parent: IdText,
    },
    /// Add a chip model to the catalog.
    ChipModel {
        id: IdText,
        effective: Date,
        chip: IdText,
        #[schemars(range(min = 1, max = 1_000_000_000))]
        tpp: u64,
        controlled: bool,
    },
    /// From `effective` on, `country` is in `tier`.
    TierChange {
        id: IdText,
        effective: Date,
        country: Country,
        #[schemars(range(min = 1, max = 3))]
        tier: u8,
    },
    /// From `effective` on, `country`'s cumulative allocation is `allocation_tpp`.
    AllocationChange {
        id: IdText,
        effective: Date,
        country: Country,
        #[schemars(range(max = 1_000_000_000_000_000_000u64))]
        allocation_tpp: u64,
    },
    /// Authorization `veu` to `entity`; a national VEU names its `country`.
    VeuGrant {
        id: IdText,
        effective: Date,
        veu: IdText,
        entity: IdText,
        scope: VeuScope,
        /// Required for a national VEU, absent for a universal one.
        #[serde(default)]
        country: CountryCode,
    },
    /// Authorization `veu` ends.
    VeuRevoke {
        id: IdText,
        effective: Date,
        veu: IdText,
    },
    /// `entity` filed its AIA consignee certification.
    AiaCertification {
        id: IdText,
        effective: Date,
        entity: IdText,
    },
    /// Baseline holdings already installed.
    Inventory {
        id: IdText,
        effective: Date,
        entity: IdText,
        chip: IdText,
        quantity: Quantity,
        country: Country,
    },
    /// `exporter` exports `quantity` of `chip` to `consignee` in `country`.
    Shipment {
        id: IdText,
        effective: Date,
        exporter: IdText,
        consignee: IdText,
        country: Country,
        chip: IdText,
        quantity: Quantity,
        /// Optional: the basis to use; without it the first that applies is chosen.
        #[serde(default)]
        basis: RequestedBasis,
    },
    /// `entity` moves chips between countries, optionally to another owner.
    Transfer {
        id: IdText,
        effective: Date,
        entity: IdText,
        from_country: Country,
        to_country: Country,
        /// Optional: the new owner (default: `entity`).
        #[serde(default)]
        to_entity: IdText,
        chip: IdText,
        quantity: Quantity,
        /// Optional: the basis to use; without it the first that applies is chosen.
        #[serde(default)]
        basis: RequestedBasis,
    },
    /// `entity` retires chips.
    Decommission {
        id: IdText,
        effective: Date,
        entity: IdText,
        chip: IdText,
        quantity: Quantity,
        country: Country,
    },
    /// `entity` hosts model weights in `country`.
    WeightsHosting {
        id: IdText,
        effective: Date,
        entity: IdText,
        model: FreeText,
        training_ops: Operations,
        open_weights: bool,
        country: Country,
        secured: bool,
    },
    /// Reverses the effect of an earlier shipment, transfer, inventory, decommission or
    /// weights hosting, as if it never happened.
    Void {
        id: IdText,
        effective: Date,
        target: IdText,
        reason: FreeText,
    },
}

/// Every schema chipledger publishes: file name and schema.
pub fn all() -> Vec<(&'static str, Schema)> {
    vec![
        ("input-event.schema.json", schemars::schema_for!(InputEvent)),
        (
            "state.schema.json",
            schemars::schema_for!(crate::view::StateView),
        ),
        (
            "refusal.schema.json",
            schemars::schema_for!(crate::view::RefusalView),
        ),
        (
            "export-line.schema.json",
            schemars::schema_for!(crate::view::ExportLine),
        ),
        (
            "consistency-proof.schema.json",
            schemars::schema_for!(crate::proof::consistency::ConsistencyProof),
        ),
        (
            "compliance-bundle.schema.json",
            schemars::schema_for!(crate::proof::compliance::Bundle),
        ),
    ]
}
