//! The events a record carries, and the outcome the rules resolved for them.
//!
//! These types are hashed: their bincode encoding (FORMAT.md, "Event" and "Outcome") is the
//! record's canonical form. Variants are only ever appended, never reordered or removed, because
//! the variant index is part of the bytes. No maps, floats, `skip`, `flatten` or `untagged`.

use crate::country::Country;
use crate::date::Date;
use crate::name::{Id, Text};

use super::ruleset::Ruleset;

/// An event as the caller submitted it (its `id` and fields), without its `effective` date,
/// which the record holds beside it.
#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode)]
pub struct Event {
    pub id: Id,
    pub body: Body,
}

/// As derived (the fields in order), but the event id is decoded without the identifier cache:
/// it names one event, and would evict the names events repeat.
impl<Context> bincode::Decode<Context> for Event {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Ok(Event {
            id: Id::decode_unique(decoder)?,
            body: Body::decode(decoder)?,
        })
    }
}
bincode::impl_borrow_decode!(Event);

/// What happened. One variant per event type of framework.md section 5, plus the two the
/// ledger writes itself: `Genesis` (record 0) and `Commitment` (at checkpoint time).
#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub enum Body {
    Genesis(Box<Genesis>),
    Entity(EntityEvent),
    ChipModel(ChipModelEvent),
    TierChange(TierChangeEvent),
    AllocationChange(AllocationChangeEvent),
    VeuGrant(VeuGrantEvent),
    VeuRevoke(VeuRevokeEvent),
    AiaCertification(AiaCertificationEvent),
    Inventory(HoldingEvent),
    Shipment(ShipmentEvent),
    Transfer(TransferEvent),
    Decommission(HoldingEvent),
    WeightsHosting(WeightsHostingEvent),
    Void(VoidEvent),
    Commitment(CommitmentEvent),
}

/// Record 0: the ledger's origin (its checkpoint key name) and the full ruleset it enforces.
#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct Genesis {
    pub origin: Text,
    pub ruleset: Ruleset,
}

#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct EntityEvent {
    pub entity: Id,
    pub name: Text,
    pub hq: Country,
    pub parent: Option<Id>,
}

#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct ChipModelEvent {
    pub chip: Id,
    pub tpp: u64,
    pub controlled: bool,
}

#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct TierChangeEvent {
    pub country: Country,
    pub tier: Tier,
}

#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct AllocationChangeEvent {
    pub country: Country,
    pub allocation_tpp: u64,
}

#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct VeuGrantEvent {
    pub veu: Id,
    pub entity: Id,
    pub scope: Scope,
}

#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct VeuRevokeEvent {
    pub veu: Id,
}

#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct AiaCertificationEvent {
    pub entity: Id,
}

/// `inventory` (baseline holdings declared) and `decommission` (holdings retired).
#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct HoldingEvent {
    pub entity: Id,
    pub chip: Id,
    pub quantity: u64,
    pub country: Country,
}

#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct ShipmentEvent {
    pub exporter: Id,
    pub consignee: Id,
    pub country: Country,
    pub chip: Id,
    pub quantity: u64,
    pub basis: Option<Basis>,
}

#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct TransferEvent {
    pub entity: Id,
    pub from_country: Country,
    pub to_country: Country,
    pub to_entity: Option<Id>,
    pub chip: Id,
    pub quantity: u64,
    pub basis: Option<Basis>,
}

#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct WeightsHostingEvent {
    pub entity: Id,
    pub model: Text,
    pub training_ops: u128,
    pub open_weights: bool,
    pub country: Country,
    pub secured: bool,
}

#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode)]
pub struct VoidEvent {
    pub target: Id,
    pub reason: Text,
}

/// As derived; the target, an event id, is decoded without the identifier cache (see [`Event`]).
impl<Context> bincode::Decode<Context> for VoidEvent {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Ok(VoidEvent {
            target: Id::decode_unique(decoder)?,
            reason: Text::decode(decoder)?,
        })
    }
}
bincode::impl_borrow_decode!(VoidEvent);

/// Written by the ledger when it signs a checkpoint: a Merkle root over every subject's latest
/// sequence number and state digest (FORMAT.md, "Commitment"), so that a compliance proof can
/// show that none of a subject's records was left out.
#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct CommitmentEvent {
    /// The log size the commitment describes: every record before this one.
    pub size: u64,
    /// How many subjects the root covers.
    pub subject_count: u64,
    /// RFC 6962 root over the sorted subject leaves.
    pub subjects_root: [u8; 32],
}

/// A country's tier under the framework.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, bincode::Encode, bincode::Decode,
)]
pub enum Tier {
    One,
    Two,
    Three,
}

impl Tier {
    pub fn number(self) -> u8 {
        match self {
            Tier::One => 1,
            Tier::Two => 2,
            Tier::Three => 3,
        }
    }

    pub fn from_number(number: u64) -> Option<Tier> {
        match number {
            1 => Some(Tier::One),
            2 => Some(Tier::Two),
            3 => Some(Tier::Three),
            _ => None,
        }
    }
}

/// A VEU's scope: universal, or national for one country.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, bincode::Encode, bincode::Decode)]
pub enum Scope {
    Universal,
    National(Country),
}

/// The authorization under which controlled chips arrive (framework.md section 7).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, bincode::Encode, bincode::Decode)]
pub enum Basis {
    Aia,
    Uveu,
    Nveu,
    Lpp,
    License,
    /// Uncontrolled chips: no authorization needed.
    Uncontrolled,
    /// Inventory and decommission declare holdings; nothing arrives, so no basis applies.
    Declared,
}

impl Basis {
    pub fn name(self) -> &'static str {
        match self {
            Basis::Aia => "aia",
            Basis::Uveu => "uveu",
            Basis::Nveu => "nveu",
            Basis::Lpp => "lpp",
            Basis::License => "license",
            Basis::Uncontrolled => "uncontrolled",
            Basis::Declared => "declared",
        }
    }

    /// The bases a caller may name in an event's `basis` field.
    pub fn parse_requested(text: &str) -> Option<Basis> {
        match text {
            "aia" => Some(Basis::Aia),
            "uveu" => Some(Basis::Uveu),
            "nveu" => Some(Basis::Nveu),
            "lpp" => Some(Basis::Lpp),
            "license" => Some(Basis::License),
            _ => None,
        }
    }
}

/// What the rules resolved when the event was recorded. Stored in the record so that the record
/// is self-contained: its effect on every balance follows from its own bytes.
#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub enum Outcome {
    /// Reference data and registrations: nothing to resolve.
    None,
    Chips(ChipsOutcome),
    Weights(WeightsOutcome),
    Void(Box<VoidOutcome>),
    /// A revoke names only the VEU; the outcome names whose authorization ended.
    Revoke(RevokeOutcome),
}

#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct RevokeOutcome {
    pub holder: Id,
    pub scope: Scope,
}

#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct ChipsOutcome {
    /// The chip model's TPP when recorded.
    pub unit_tpp: u64,
    /// `quantity × unit_tpp`.
    pub amount_tpp: u64,
    pub controlled: bool,
    pub basis: Basis,
    /// Whether the amount counts against the destination's country allocation (licence to a
    /// Tier 2 country).
    pub counts_allocation: bool,
}

#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct WeightsOutcome {
    /// Closed weights trained with more than the ruleset's threshold (ECCN 4E091).
    pub controlled: bool,
    pub authority: WeightsAuthority,
}

/// Why hosting the weights was allowed (framework.md section 9).
#[derive(Clone, Copy, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub enum WeightsAuthority {
    Uncontrolled,
    TierOne,
    UniversalVeu,
    NationalVeu,
    SecuredTierOneHeadquarters,
}

impl WeightsAuthority {
    pub fn name(self) -> &'static str {
        match self {
            WeightsAuthority::Uncontrolled => "uncontrolled",
            WeightsAuthority::TierOne => "tier1",
            WeightsAuthority::UniversalVeu => "uveu",
            WeightsAuthority::NationalVeu => "nveu",
            WeightsAuthority::SecuredTierOneHeadquarters => "secured",
        }
    }
}

/// A void copies its target, so that undoing the target's effect needs no other record.
#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct VoidOutcome {
    pub target_seq: u64,
    pub target_effective: Date,
    pub target_event: Event,
    pub target_outcome: Box<Outcome>,
}

impl Body {
    /// The event type's name, as in the `type` field of the input.
    pub fn type_name(&self) -> &'static str {
        match self {
            Body::Genesis(_) => "genesis",
            Body::Entity(_) => "entity",
            Body::ChipModel(_) => "chip_model",
            Body::TierChange(_) => "tier_change",
            Body::AllocationChange(_) => "allocation_change",
            Body::VeuGrant(_) => "veu_grant",
            Body::VeuRevoke(_) => "veu_revoke",
            Body::AiaCertification(_) => "aia_certification",
            Body::Inventory(_) => "inventory",
            Body::Shipment(_) => "shipment",
            Body::Transfer(_) => "transfer",
            Body::Decommission(_) => "decommission",
            Body::WeightsHosting(_) => "weights_hosting",
            Body::Void(_) => "void",
            Body::Commitment(_) => "commitment",
        }
    }
}

/// The 13 event types a caller may submit, in framework.md's order.
pub const INPUT_TYPES: [&str; 13] = [
    "entity",
    "chip_model",
    "tier_change",
    "allocation_change",
    "veu_grant",
    "veu_revoke",
    "aia_certification",
    "inventory",
    "shipment",
    "transfer",
    "decommission",
    "weights_hosting",
    "void",
];
