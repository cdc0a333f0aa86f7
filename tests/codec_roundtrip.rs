//! The record codec: every record of every shape round-trips to identical bytes, and no
//! mutation of valid bytes is accepted as a different valid record without being canonical.

mod common;

use chipledger::codec::*;
use chipledger::country::Country;
use chipledger::date::{Date, Instant};
use chipledger::name::{Id, Text};
use proptest::prelude::*;

// Mostly short, sometimes as long as allowed: a void of a movement with long identifiers and
// a long reason is over the 1,024 bytes that the encoder handles on its fast path.
fn id() -> impl Strategy<Value = Id> {
    prop_oneof![
        4 => "[A-Za-z0-9._:-]{1,24}",
        1 => "[A-Za-z0-9._:-]{100,128}",
    ]
    .prop_map(|text| Id::parse(&text).unwrap())
}

fn text() -> impl Strategy<Value = Text> {
    prop_oneof![
        4 => "[A-Za-z0-9 ,.'<>&é-]{1,40}",
        1 => "[A-Za-z0-9 ,.'<>&-]{400,512}",
    ]
    .prop_filter_map("not blank", |text| Text::parse(&text).ok())
}

fn country() -> impl Strategy<Value = Country> {
    let all: Vec<Country> = Country::all().collect();
    proptest::sample::select(all)
}

fn date() -> impl Strategy<Value = Date> {
    (1900u16..=2100, 1u8..=12, 1u8..=28)
        .prop_map(|(year, month, day)| Date::new(year, month, day).unwrap())
}

fn basis() -> impl Strategy<Value = Basis> {
    prop_oneof![
        Just(Basis::Aia),
        Just(Basis::Uveu),
        Just(Basis::Nveu),
        Just(Basis::Lpp),
        Just(Basis::License),
        Just(Basis::Uncontrolled),
        Just(Basis::Declared),
    ]
}

fn chips_outcome() -> impl Strategy<Value = Outcome> {
    (
        1u64..100_000,
        1u64..1_000_000,
        any::<bool>(),
        basis(),
        any::<bool>(),
    )
        .prop_map(
            |(unit_tpp, quantity, controlled, basis, counts_allocation)| {
                Outcome::Chips(ChipsOutcome {
                    unit_tpp,
                    amount_tpp: unit_tpp * quantity,
                    controlled,
                    basis,
                    counts_allocation,
                })
            },
        )
}

fn movement() -> impl Strategy<Value = (Body, Outcome)> {
    prop_oneof![
        (
            id(),
            id(),
            country(),
            id(),
            1u64..1_000_000_000,
            proptest::option::of(basis()),
            chips_outcome()
        )
            .prop_map(
                |(exporter, consignee, country, chip, quantity, basis, outcome)| {
                    (
                        Body::Shipment(ShipmentEvent {
                            exporter,
                            consignee,
                            country,
                            chip,
                            quantity,
                            basis,
                        }),
                        outcome,
                    )
                }
            ),
        (
            id(),
            country(),
            country(),
            proptest::option::of(id()),
            id(),
            1u64..1_000_000,
            chips_outcome()
        )
            .prop_map(
                |(entity, from_country, to_country, to_entity, chip, quantity, outcome)| {
                    (
                        Body::Transfer(TransferEvent {
                            entity,
                            from_country,
                            to_country,
                            to_entity,
                            chip,
                            quantity,
                            basis: None,
                        }),
                        outcome,
                    )
                }
            ),
        (id(), id(), 1u64..1_000_000, country(), chips_outcome()).prop_map(
            |(entity, chip, quantity, country, outcome)| {
                (
                    Body::Inventory(HoldingEvent {
                        entity,
                        chip,
                        quantity,
                        country,
                    }),
                    outcome,
                )
            }
        ),
        (id(), id(), 1u64..1_000_000, country(), chips_outcome()).prop_map(
            |(entity, chip, quantity, country, outcome)| {
                (
                    Body::Decommission(HoldingEvent {
                        entity,
                        chip,
                        quantity,
                        country,
                    }),
                    outcome,
                )
            }
        ),
        (
            id(),
            text(),
            any::<u128>(),
            any::<bool>(),
            country(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(
                |(entity, model, training_ops, open_weights, country, secured, controlled)| {
                    (
                        Body::WeightsHosting(WeightsHostingEvent {
                            entity,
                            model,
                            training_ops,
                            open_weights,
                            country,
                            secured,
                        }),
                        Outcome::Weights(WeightsOutcome {
                            controlled,
                            authority: WeightsAuthority::NationalVeu,
                        }),
                    )
                }
            ),
    ]
}

fn body_and_outcome() -> impl Strategy<Value = (Body, Outcome)> {
    prop_oneof![
        (id(), text(), country(), proptest::option::of(id())).prop_map(
            |(entity, name, hq, parent)| {
                (
                    Body::Entity(EntityEvent {
                        entity,
                        name,
                        hq,
                        parent,
                    }),
                    Outcome::None,
                )
            }
        ),
        (id(), 1u64..1_000_000_000, any::<bool>()).prop_map(|(chip, tpp, controlled)| (
            Body::ChipModel(ChipModelEvent {
                chip,
                tpp,
                controlled
            }),
            Outcome::None
        )),
        (
            country(),
            prop_oneof![Just(Tier::One), Just(Tier::Two), Just(Tier::Three)]
        )
            .prop_map(|(country, tier)| (
                Body::TierChange(TierChangeEvent { country, tier }),
                Outcome::None
            )),
        (country(), any::<u64>()).prop_map(|(country, allocation_tpp)| {
            (
                Body::AllocationChange(AllocationChangeEvent {
                    country,
                    allocation_tpp,
                }),
                Outcome::None,
            )
        }),
        (id(), id(), proptest::option::of(country())).prop_map(|(veu, entity, national)| {
            let scope = national.map_or(Scope::Universal, Scope::National);
            (
                Body::VeuGrant(VeuGrantEvent { veu, entity, scope }),
                Outcome::None,
            )
        }),
        (id(), id()).prop_map(|(veu, holder)| {
            (
                Body::VeuRevoke(VeuRevokeEvent { veu }),
                Outcome::Revoke(RevokeOutcome {
                    holder,
                    scope: Scope::Universal,
                }),
            )
        }),
        id().prop_map(|entity| (
            Body::AiaCertification(AiaCertificationEvent { entity }),
            Outcome::None
        )),
        movement(),
        (id(), text(), movement(), 0u64..1_000_000, date(), id()).prop_map(
            |(target, reason, (body, outcome), target_seq, target_effective, target_id)| {
                (
                    Body::Void(VoidEvent { target, reason }),
                    Outcome::Void(Box::new(VoidOutcome {
                        target_seq,
                        target_effective,
                        target_event: Event {
                            id: target_id,
                            body,
                        },
                        target_outcome: Box::new(outcome),
                    })),
                )
            }
        ),
        (any::<u64>(), any::<u64>(), any::<[u8; 32]>()).prop_map(
            |(size, subject_count, subjects_root)| {
                (
                    Body::Commitment(CommitmentEvent {
                        size,
                        subject_count,
                        subjects_root,
                    }),
                    Outcome::None,
                )
            }
        ),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    (
        any::<u64>(),
        0i64..4_000_000_000_000_000,
        date(),
        any::<[u8; 32]>(),
        id(),
        body_and_outcome(),
        any::<u64>(),
    )
        .prop_map(
            |(seq, micros, effective, prev_chain, event_id, (body, outcome), link_seed)| {
                let mut record = Record {
                    seq,
                    recorded_at: Instant::from_microseconds(micros).unwrap(),
                    effective,
                    prev_chain,
                    links: Default::default(),
                    event: Event { id: event_id, body },
                    outcome,
                };
                let subjects = record.subjects().len();
                record.links = (0..subjects)
                    .map(|index| {
                        (link_seed >> index & 1 == 1)
                            .then_some(link_seed % 1_000_000 + index as u64)
                    })
                    .collect();
                record
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::proptest_cases(512)))]

    #[test]
    fn records_round_trip_to_identical_bytes(record in record()) {
        let bytes = encode_record(&record).unwrap();
        let decoded = decode_record(&bytes).unwrap();
        prop_assert_eq!(&decoded, &record);
        prop_assert_eq!(encode_record(&decoded).unwrap(), bytes);
    }

    /// A record staged with zeros for `prev_chain` and sealed later is, byte for byte, the
    /// record encoded with its `prev_chain`, and sealing gives that encoding's chain hash.
    #[test]
    fn a_sealed_record_is_the_record_encoded_with_its_prev_chain(record in record()) {
        let bytes = encode_record(&record).unwrap();
        let mut staged = encode_record(&Record { prev_chain: [0; 32], ..record.clone() }).unwrap();
        prop_assert_eq!(&staged[PREV_CHAIN_BYTES], &[0u8; 32][..]);
        prop_assert_eq!(seal(&mut staged, &record.prev_chain), chain_hash(&bytes));
        prop_assert_eq!(staged, bytes);
    }

    #[test]
    fn a_changed_byte_never_decodes_to_the_same_record(record in record(), position in any::<prop::sample::Index>(), bit in 0u8..8) {
        let bytes = encode_record(&record).unwrap();
        let mut changed = bytes.clone();
        let index = position.index(changed.len());
        changed[index] ^= 1 << bit;
        // Either the bytes are refused, or they decode to a different (canonical) record:
        // never silently to the same one, and never to non-canonical bytes.
        if let Ok(other) = decode_record(&changed) {
            prop_assert_ne!(&other, &record);
            prop_assert_eq!(encode_record(&other).unwrap(), changed);
        }
    }

    /// Decoding a stored record onto a vector is decoding it: the same record for the same
    /// bytes, the same error for bytes that are not one, and nothing pushed then.
    #[test]
    fn a_stored_record_pushed_is_the_record_decoded(record in record(), position in any::<prop::sample::Index>(), bit in 0u8..8, cut in 0usize..3) {
        let bytes = encode_record(&record).unwrap();
        let mut changed = bytes.clone();
        let index = position.index(changed.len());
        changed[index] ^= 1 << bit;
        let mut longer = bytes.clone();
        longer.push(0);
        let shorter = &bytes[..bytes.len() - cut];
        for candidate in [&bytes[..], &changed, &longer, shorter] {
            let mut records = vec![(7u8, record.clone())];
            let pushed = push_stored_record(candidate, &mut records, 9u8);
            match decode_stored_record(candidate) {
                Ok(decoded) => {
                    prop_assert_eq!(pushed, Ok(()));
                    prop_assert_eq!(records, vec![(7, record.clone()), (9, decoded)]);
                }
                Err(error) => {
                    prop_assert_eq!(pushed, Err(error));
                    prop_assert_eq!(records.len(), 1);
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode_record(&bytes);
        BundleEntries::new(&bytes).for_each(drop);
    }
}

#[test]
fn non_canonical_encodings_are_refused() {
    let record = Record {
        seq: 7,
        recorded_at: Instant::parse("2026-01-01").unwrap(),
        effective: Date::parse("2025-03-01").unwrap(),
        prev_chain: [9; 32],
        links: [None].into_iter().collect(),
        event: Event {
            id: Id::parse("C-1").unwrap(),
            body: Body::AiaCertification(AiaCertificationEvent {
                entity: Id::parse("acme").unwrap(),
            }),
        },
        outcome: Outcome::None,
    };
    let bytes = encode_record(&record).unwrap();
    assert_eq!(decode_record(&bytes).unwrap(), record);
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        decode_record(&trailing),
        Err(CodecError::TrailingBytes { .. })
    ));
    // The links' Option tag is the byte after the 8-byte vector length (offset 8+8+4+32).
    let mut bad_option = bytes.clone();
    bad_option[52 + 8] = 2;
    assert!(decode_record(&bad_option).is_err());
    // Dates are validated: month 13 at offset 16+2.
    let mut bad_date = bytes.clone();
    bad_date[18] = 13;
    assert!(decode_record(&bad_date).is_err());
    // A record whose links do not match its subjects cannot be encoded.
    let mut wrong_links = record.clone();
    wrong_links.links = BackLinks::default();
    assert!(matches!(
        encode_record(&wrong_links),
        Err(CodecError::LinksMismatch { .. })
    ));
}

/// An entry bundle's framing: the entries found, in order, or the first break in it; and the
/// iterator stops at that break.
#[test]
fn bundle_framing_is_found_entry_by_entry() {
    fn check(bundle: &[u8], expected: Result<Vec<std::ops::Range<usize>>, &str>) {
        let found = BundleEntries::new(bundle)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| error.to_string());
        assert_eq!(found, expected.map_err(str::to_string), "bundle {bundle:?}");
        let items: Vec<_> = BundleEntries::new(bundle).collect();
        let errors = items.iter().filter(|item| item.is_err()).count();
        assert!(errors <= 1, "bundle {bundle:?}: {items:?}");
        assert!(errors == 0 || items.last().unwrap().is_err());
    }
    let mut full = Vec::new();
    for _ in 0..BUNDLE_RECORDS {
        push_entry(&mut full, b"x");
    }
    let full_ranges = (0..BUNDLE_RECORDS as usize)
        .map(|entry| entry * 3 + 2..entry * 3 + 3)
        .collect();
    let mut over = full.clone();
    push_entry(&mut over, b"y");

    check(&[], Ok(vec![]));
    check(&[0, 0, 0, 1, 5], Ok(vec![2..2, 4..5]));
    check(&[0, 2, 7, 7, 0, 1, 9], Ok(vec![2..4, 6..7]));
    check(&full, Ok(full_ranges));
    check(
        &[0, 1, 9, 0],
        Err("entry bundle is broken: a length prefix is cut short"),
    );
    check(
        &[0, 1, 9, 0, 3, 1],
        Err("entry bundle is broken: entry 1 claims 3 bytes but 1 remain"),
    );
    check(&over, Err("entry bundle is broken: more than 256 entries"));

    // One entry alone is found through the same framing.
    let bundle = [0, 2, 7, 7, 0, 1, 9, 0, 3, 1];
    assert_eq!(bundle_entry(&bundle, 0), Ok(&[7, 7][..]));
    assert_eq!(bundle_entry(&bundle, 1), Ok(&[9][..]));
    let broken = bundle_entry(&bundle, 2).unwrap_err().to_string();
    assert_eq!(
        broken,
        "entry bundle is broken: entry 2 claims 3 bytes but 1 remain"
    );
    let missing = bundle_entry(&bundle[..7], 2).unwrap_err().to_string();
    assert_eq!(missing, "entry bundle is broken: entry 2 is missing");
}

/// Back-links are held inline but encoded as the vector FORMAT.md names; a list longer than
/// any record's subjects is refused.
#[test]
fn back_links_encode_as_a_vector_of_options() {
    let config = bincode::config::legacy();
    let lists: [&[Option<u64>]; 5] = [
        &[],
        &[None],
        &[Some(0), None],
        &[Some(7), Some(u64::MAX), None],
        &[None, Some(1), Some(2), Some(3)],
    ];
    for list in lists {
        let links: BackLinks = list.iter().copied().collect();
        assert_eq!(&links[..], list);
        let bytes = bincode::encode_to_vec(links, config).unwrap();
        assert_eq!(
            bytes,
            bincode::encode_to_vec(list.to_vec(), config).unwrap()
        );
        let (decoded, used): (BackLinks, usize) =
            bincode::decode_from_slice(&bytes, config).unwrap();
        assert_eq!((decoded, used), (links, bytes.len()));
    }
    let five = bincode::encode_to_vec(vec![None::<u64>; MAX_SUBJECTS + 1], config).unwrap();
    let refused = bincode::decode_from_slice::<BackLinks, _>(&five, config).unwrap_err();
    assert!(refused.to_string().contains("more back-links"), "{refused}");
}
