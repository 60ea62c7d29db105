//! The committed JSON Schema of run.json must match the record types.
//! Regenerate with `CHARTER_BLESS=1 cargo test -p charter-reports --test schema`.

use std::path::Path;

#[test]
fn committed_schema_is_up_to_date() {
    let generated = schemars::schema_for!(charter_reports::RunRecord);
    let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/run.schema.json");
    if std::env::var_os("CHARTER_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} is stale: run CHARTER_BLESS=1 cargo test -p charter-reports --test schema",
        path.display()
    );
}
