//! Hostile input never panics: random bytes and random JSON through the event parser, the
//! record decoder, the checkpoint and proof parsers and `verify-proof`'s verifiers.
//!
//! 256 cases per property in the normal run; `CHIPLEDGER_PROPTEST_CASES=10000` for the gated run
//! (the command is in README.md).

mod common;

use chipledger::proof::{self, checkpoint, compliance, consistency, inclusion};
use proptest::prelude::*;

/// JSON values of every shape, with field names from the event format so that objects often
/// get past the first checks.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let names = prop::sample::select(vec![
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
        "colour",
    ]);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "shipment",
            "entity",
            "void",
            "US",
            "MY",
            "H100",
            "2025-03-01",
            "2025-02-30",
            "3e26",
            "universal",
            "national",
            "lpp",
            "",
            "chipledger:genesis",
            "acme",
        ])
        .prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 32, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::vec((names.clone(), inner), 0..12).prop_map(|pairs| {
                serde_json::Value::Object(
                    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                )
            }),
        ]
    })
}

fn vkey() -> &'static (String, String) {
    static KEYS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| signed_note::generate_key(&mut rand_core::OsRng, "hostile.example/log"))
}

/// A valid signed checkpoint and inclusion proof, for mutation.
fn valid_proofs() -> &'static (String, String, String) {
    static PROOFS: std::sync::OnceLock<(String, String, String)> = std::sync::OnceLock::new();
    PROOFS.get_or_init(|| {
        let (signer, _) = vkey();
        let record = chipledger::codec::Record {
            seq: 0,
            recorded_at: chipledger::date::Instant::parse("2026-01-01").unwrap(),
            effective: chipledger::date::Date::parse("1900-01-01").unwrap(),
            prev_chain: [0; 32],
            links: Default::default(),
            event: chipledger::codec::Event {
                id: chipledger::name::Id::parse("chipledger:genesis").unwrap(),
                body: chipledger::codec::Body::Genesis(Box::new(chipledger::codec::Genesis {
                    origin: chipledger::name::Text::parse("hostile.example/log").unwrap(),
                    ruleset: chipledger::rules::builtin::ruleset(),
                })),
            },
            outcome: chipledger::codec::Outcome::None,
        };
        let bytes = chipledger::codec::encode_record(&record).unwrap();
        let root = chipledger::codec::leaf_hash(&bytes);
        let signed = checkpoint::sign(signer, "hostile.example/log", 1, root).unwrap();
        let proof = inclusion::build(&bytes, 0, &[], &signed.note);
        let consistency = consistency::build(&signed, &signed, &[]);
        (signed.note, proof, consistency)
    })
}

fn verify_any(text: &str) {
    let (_, vkey) = vkey();
    let _ = match proof::kind_of(text) {
        proof::Kind::Inclusion => inclusion::verify(text, vkey).map(|_| ()),
        proof::Kind::Consistency => consistency::verify(text, vkey).map(|_| ()),
        proof::Kind::Compliance => compliance::verify(text, vkey).map(|_| ()),
        proof::Kind::Checkpoint => checkpoint::verify(text, vkey).map(|_| ()),
    };
}

fn mutate(text: &str, mutations: &[(prop::sample::Index, u8, u8)]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for (index, byte, kind) in mutations {
        if bytes.is_empty() {
            bytes.push(*byte);
            continue;
        }
        let at = index.index(bytes.len());
        match kind % 3 {
            0 => bytes[at] = *byte,
            1 => bytes.insert(at, *byte),
            _ => {
                bytes.remove(at);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::proptest_cases(256)))]

    #[test]
    fn random_text_never_panics_the_event_parser(text in ".{0,300}") {
        let _ = chipledger::input::parse_event(&text);
    }

    #[test]
    fn random_json_never_panics_the_event_parser(value in json_value()) {
        let _ = chipledger::input::parse_event(&value.to_string());
    }

    #[test]
    fn random_objects_with_a_real_type_never_panic_the_parser(
        kind in prop::sample::select(chipledger::codec::INPUT_TYPES.to_vec()),
        value in json_value(),
    ) {
        let mut object = match value {
            serde_json::Value::Object(object) => object,
            _ => serde_json::Map::new(),
        };
        object.insert("type".into(), kind.into());
        let _ = chipledger::input::parse_event(&serde_json::Value::Object(object).to_string());
    }

    #[test]
    fn random_bytes_never_panic_the_decoders(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = chipledger::codec::decode_record(&bytes);
        chipledger::codec::BundleEntries::new(&bytes).for_each(drop);
        let _ = chipledger::rules::snapshot::decode(&bytes, std::sync::Arc::new(chipledger::rules::Params::new(chipledger::rules::builtin::ruleset())));
        let mut lines = chipledger::input::Lines::new(bytes.as_slice());
        while lines.next_line().is_some() {}
    }

    #[test]
    fn random_text_never_panics_the_proof_verifiers(text in ".{0,400}") {
        verify_any(&text);
        verify_any(&format!("{}{text}", inclusion::HEADER));
        verify_any(&format!("{{\"format\":\"chipledger/compliance-bundle@v1\"{text}"));
        verify_any(&format!("{{\"format\":\"chipledger/consistency-proof@v1\"{text}"));
    }

    #[test]
    fn mutated_proofs_never_panic_and_never_verify(
        which in 0usize..3,
        mutations in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any::<u8>()), 1..4),
    ) {
        let (note, inclusion_proof, consistency_proof) = valid_proofs();
        let original = [note, inclusion_proof, consistency_proof][which];
        let changed = mutate(original, &mutations);
        let (_, vkey) = vkey();
        let result = match proof::kind_of(&changed) {
            proof::Kind::Inclusion => inclusion::verify(&changed, vkey).map(|_| ()),
            proof::Kind::Consistency => consistency::verify(&changed, vkey).map(|_| ()),
            proof::Kind::Compliance => compliance::verify(&changed, vkey).map(|_| ()),
            proof::Kind::Checkpoint => checkpoint::verify(&changed, vkey).map(|_| ()),
        };
        if changed != *original {
            prop_assert!(result.is_err(), "a changed proof verified: {changed:?}");
        }
    }

    #[test]
    fn random_json_never_panics_the_compliance_verifier(value in json_value()) {
        let mut object = match value {
            serde_json::Value::Object(object) => object,
            _ => serde_json::Map::new(),
        };
        object.insert("format".into(), "chipledger/compliance-bundle@v1".into());
        let _ = compliance::verify(&(serde_json::Value::Object(object).to_string() + "\n"), &vkey().1);
    }
}

#[test]
fn the_valid_proofs_used_for_mutation_do_verify() {
    let (note, inclusion_proof, consistency_proof) = valid_proofs();
    let (_, vkey) = vkey();
    checkpoint::verify(note, vkey).unwrap();
    inclusion::verify(inclusion_proof, vkey).unwrap();
    consistency::verify(consistency_proof, vkey).unwrap();
}
