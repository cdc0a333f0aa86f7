fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let store = chipledger::store::Store::open(&dir.join("store")).unwrap();
    let (mut bundles, mut bundle_bytes) = (0u64, 0u64);
    for item in store.bundles_from(0) {
        let (_, bytes) = item.unwrap();
        bundles += 1;
        bundle_bytes += bytes.len() as u64;
    }
    let (mut tiles, mut tile_bytes) = (0u64, 0u64);
    for item in store.tiles() {
        let (_, _, bytes) = item.unwrap();
        tiles += 1;
        tile_bytes += bytes.len() as u64;
    }
    let mut derived: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for item in store.derived_from(b"", b"") {
        let (key, value) = item.unwrap();
        let prefix = String::from_utf8_lossy(&key[..key.iter().position(|b| *b == b'/').unwrap_or(0)]).to_string();
        let entry = derived.entry(prefix).or_default();
        entry.0 += 1;
        entry.1 += value.len() as u64;
    }
    eprintln!("bundles {bundles} {bundle_bytes} B; tiles {tiles} {tile_bytes} B; derived {derived:?}; disk {}", store.disk_bytes());
}
