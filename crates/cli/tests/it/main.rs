//! The binary as a user runs it, including a process killed in the middle of a load.

use std::process::Command;

fn c360() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_c360"));
    c.arg("--quiet").env_remove("C360_FAIL_AT");
    c
}

fn sql(dir: &std::path::Path, wh: &str, q: &str) -> String {
    let out = c360()
        .current_dir(dir)
        .args(["sql", "--warehouse", wh, "--json", q])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_names_every_subcommand() {
    let out = c360().arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for c in ["sim", "etl", "sql", "quality", "identity", "demo"] {
        assert!(text.contains(c), "{c} missing from --help");
    }
}

#[test]
fn killed_etl_resumes_without_loss_or_doubles() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let ok = c360()
        .current_dir(p)
        .args(["sim", "--orders", "4000", "--stores", "50"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let ok = c360()
        .current_dir(p)
        .args(["etl", "--warehouse", "data/clean"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let q = "SELECT COUNT(*) AS n, SUM(total_fen) AS s FROM fact_orders";
    let want = sql(p, "data/clean", q);
    // Killed (SIGABRT) after step 6, then killed between writing data files and the manifest.
    for at in ["abort:orders", "commit"] {
        let out = c360()
            .current_dir(p)
            .env("C360_FAIL_AT", at)
            .args(["etl", "--warehouse", "data/killed"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{at} should kill the run");
    }
    let out = c360()
        .current_dir(p)
        .args(["etl", "--warehouse", "data/killed"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sql(p, "data/killed", q), want);
    // A later rerun adds nothing.
    let out = c360()
        .current_dir(p)
        .args(["etl", "--warehouse", "data/killed"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(sql(p, "data/killed", q), want);
    let json = sql(p, "data/killed", "SELECT COUNT(*) AS n FROM v_customer_360");
    assert!(json.contains("\"n\":"), "{json}");
}

#[test]
fn bad_database_url_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let out = c360()
        .current_dir(d.path())
        .args(["etl", "--pos", "oracle://x/y"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unsupported database URL"), "{err}");
}
