//! The committed JSON Schemas of run.json, charter.json and tokens.json must match their types.
//! Regenerate with `CHARTER_BLESS=1 cargo test -p charter-reports --test schema`.

use std::path::Path;

fn check(generated: schemars::Schema, file: &str) {
    let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(file);
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

#[test]
fn committed_schemas_are_up_to_date() {
    check(
        schemars::schema_for!(charter_reports::RunRecord),
        "run.schema.json",
    );
    check(
        schemars::schema_for!(charter_reports::charter::Charter),
        "charter.schema.json",
    );
    check(
        schemars::schema_for!(charter_record::tokens::TokensRecord),
        "tokens.schema.json",
    );
}
