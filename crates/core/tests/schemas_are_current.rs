//! The checked-in schemas under `schemas/` must match the types. Run with
//! `OPTICLAW_WRITE_SCHEMAS=1` to regenerate them after changing a contract.

use std::path::PathBuf;

#[test]
fn checked_in_schemas_match_the_contract_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let write = std::env::var_os("OPTICLAW_WRITE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for (name, generated) in opticlaw_core::schemas::all() {
        let path = dir.join(name);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(on_disk) if on_disk == generated => {}
            _ => stale.push(name),
        }
    }
    assert!(
        stale.is_empty(),
        "schemas are stale or missing: {stale:?}; regenerate with \
         OPTICLAW_WRITE_SCHEMAS=1 cargo test -p opticlaw-core --test schemas_are_current"
    );
}
