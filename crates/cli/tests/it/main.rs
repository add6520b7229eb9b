//! The binary as a user runs it, including a process killed in the middle of a load.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

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
fn sql_refuses_every_statement_that_writes() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    run_ok(p, &["sim", "--orders", "1500", "--stores", "50"]);
    run_ok(p, &["etl", "--warehouse", "data/wh"]);
    let count = "SELECT COUNT(*) AS n FROM fact_orders";
    let before = sql(p, "data/wh", count);
    let out_file = p.join("leak.csv");
    let writes = [
        format!("COPY (SELECT * FROM customers) TO '{}'", out_file.display()),
        format!(
            "CREATE EXTERNAL TABLE pw (line VARCHAR) STORED AS CSV LOCATION '{}'",
            p.join("c360.toml").display()
        ),
        "CREATE EXTERNAL TABLE etc (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'".into(),
        "CREATE TABLE t AS SELECT 1 AS x".into(),
        "CREATE VIEW v AS SELECT 1 AS x".into(),
        "DROP VIEW v_customer_360".into(),
        "DROP TABLE fact_orders".into(),
        "INSERT INTO fact_orders SELECT * FROM fact_orders".into(),
        "DELETE FROM fact_orders".into(),
        "SET datafusion.execution.batch_size = 1".into(),
    ];
    for q in &writes {
        let out = c360()
            .current_dir(p)
            .args(["sql", "--warehouse", "data/wh", q])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{q} ran");
        assert!(err.contains("read-only"), "{q}: {err}");
    }
    assert!(!out_file.exists(), "COPY wrote a file");
    assert_eq!(sql(p, "data/wh", count), before);
    // Reading still works, EXPLAIN included.
    let plan = sql(p, "data/wh", &format!("EXPLAIN {count}"));
    assert!(plan.contains("plan"), "{plan}");
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

/// Runs `c360 args…` in `dir`, asserts success, returns stdout.
fn run_ok(dir: &std::path::Path, args: &[&str]) -> String {
    let out = c360().current_dir(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "c360 {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn campaigns_experiments_service_and_audit_from_the_cli() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    run_ok(p, &["sim", "--orders", "6000", "--stores", "50"]);
    run_ok(p, &["etl"]);
    // A suggested spec, created, launched, lived through by the simulator, evaluated.
    let sugg: serde_json::Value =
        serde_json::from_str(&run_ok(p, &["campaign", "suggest"])).unwrap();
    let spec = &sugg[0]["spec"];
    std::fs::write(p.join("spec.json"), spec.to_string()).unwrap();
    let c: serde_json::Value = serde_json::from_str(&run_ok(
        p,
        &["campaign", "create", "spec.json", "--actor", "ops"],
    ))
    .unwrap();
    let id = c["campaign_id"].as_i64().unwrap().to_string();
    let l: serde_json::Value =
        serde_json::from_str(&run_ok(p, &["campaign", "launch", &id])).unwrap();
    assert!(l["audience"].as_i64().unwrap() > 0, "{l}");
    let members = run_ok(p, &["campaign", "members", &id, "--limit", "5"]);
    assert!(members.lines().count() > 1, "{members}");
    run_ok(p, &["advance", "--campaign", &id, "--days", "10"]);
    run_ok(p, &["etl"]);
    let r: serde_json::Value =
        serde_json::from_str(&run_ok(p, &["campaign", "results", &id])).unwrap();
    assert!(r["arms"][0]["members"].as_i64().unwrap() > 0, "{r}");
    // A bad action is refused with the reason, and audited.
    let out = c360()
        .current_dir(p)
        .args(["campaign", "status", &id, "resume"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot resume a campaign that is running")
    );
    // The engine's validation, a diagnosis, the audit trail.
    let v: serde_json::Value = serde_json::from_str(&run_ok(
        p,
        &[
            "experiment",
            "validate",
            "--n",
            "10",
            "--truth",
            "data/truth.db",
        ],
    ))
    .unwrap();
    assert_eq!(v["experiments"], 10);
    let dg: serde_json::Value = serde_json::from_str(&run_ok(
        p,
        &[
            "service",
            "diagnose",
            "--message",
            "外卖太慢了，等了一个多小时还没到",
        ],
    ))
    .unwrap();
    // (A 6k-order chain has few closed tickets to learn from; accuracy is measured elsewhere.)
    let psum: f64 = dg["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["p"].as_f64().unwrap())
        .sum();
    assert!((psum - 1.0).abs() < 1e-9, "{dg}");
    assert_eq!(dg["keyword_rule"], "late_order", "{dg}");
    assert!(
        dg["resolution"]["compensation_fen"].as_i64().unwrap() > 0,
        "{dg}"
    );
    let audit = run_ok(p, &["audit", "--limit", "20"]);
    for a in [
        "campaign.create",
        "campaign.launch",
        "campaign.resume",
        "service.diagnose",
    ] {
        assert!(
            audit.contains(a),
            "{a} missing from the audit trail:\n{audit}"
        );
    }
    assert!(audit.contains("ops"), "{audit}");
}

/// One configuration: a flag beats the environment, the environment beats the file, the file
/// beats the default; `config show` says which, and never prints a secret.
#[test]
fn configuration_precedence_and_show() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    std::fs::write(
        p.join("c360.toml"),
        "warehouse = \"from-file/wh\"\naddr = \"127.0.0.1:9999\"\nsalt = \"pepper-in-file\"\n[llm]\nmodel = \"file-model\"\napi_key = \"sk-file-secret\"\n",
    )
    .unwrap();
    let show = |envs: &[(&str, &str)], args: &[&str]| {
        let mut c = c360();
        c.current_dir(p)
            .env_remove("C360_WAREHOUSE")
            .env_remove("C360_ADDR")
            .env_remove("C360_LLM_MODEL")
            .env_remove("C360_CONFIG");
        for (k, v) in envs {
            c.env(k, v);
        }
        let out = c.args(args).args(["config", "show"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let line = |text: &str, key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} missing:\n{text}"))
            .to_string()
    };
    let t = show(&[], &[]);
    assert!(
        line(&t, "warehouse").contains("\"from-file/wh\"  # file"),
        "{t}"
    );
    assert!(line(&t, "addr").contains("# file"), "{t}");
    assert!(
        line(&t, "llm_model").contains("\"file-model\"  # file"),
        "{t}"
    );
    assert!(line(&t, "pos").contains("# default"), "{t}");
    assert!(line(&t, "salt").contains("\"***\""), "{t}");
    assert!(
        !t.contains("pepper-in-file") && !t.contains("sk-file-secret"),
        "{t}"
    );
    let t = show(&[("C360_WAREHOUSE", "from-env/wh")], &[]);
    assert!(
        line(&t, "warehouse").contains("\"from-env/wh\"  # env"),
        "{t}"
    );
    let t = show(
        &[("C360_WAREHOUSE", "from-env/wh")],
        &["--warehouse", "from-flag/wh"],
    );
    assert!(
        line(&t, "warehouse").contains("\"from-flag/wh\"  # flag"),
        "{t}"
    );
    // --config names another file; an unknown key there is an error naming it.
    std::fs::write(p.join("other.toml"), "warehous = \"typo\"\n").unwrap();
    let out = c360()
        .current_dir(p)
        .args(["--config", "other.toml", "config", "show"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown setting \"warehous\""), "{err}");
    let out = c360()
        .current_dir(p)
        .args(["--config", "missing.toml", "config", "show"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn sentiment_model_is_stored_reused_until_reviews_change_and_scores_files() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    run_ok(p, &["sim", "--orders", "3000", "--stores", "50"]);
    run_ok(p, &["etl"]);
    let card = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&run_ok(p, &["sentiment", "model"])).unwrap()
    };
    let first = card(p);
    assert_eq!(first["version"], 1, "{first}");
    assert!(
        first["held_out_corpus"]["n"].as_u64().unwrap() > 1_000,
        "{first}"
    );
    assert!(
        first["held_out_corpus"]["auc"].as_f64().unwrap() > 0.8,
        "{first}"
    );
    assert!(first["chain_examples"].as_u64().unwrap() > 0, "{first}");
    // Nothing new to learn from: the stored model is reused, not retrained.
    run_ok(p, &["etl"]);
    assert_eq!(card(p), first);
    // A new rated review: the next refresh trains version 2.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let wx = c360_db::Db::connect(&format!("sqlite://{}", p.join("data/cyrgweixin.db").display()))
            .await
            .unwrap();
        wx.execute(
            "INSERT INTO wx_reviews (review_id, user_id, order_id, store_id, rating, content, created_at) \
             SELECT MAX(review_id) + 1, user_id, order_id, store_id, 1, '香肠是凉的，面包也硬，不会再来了', created_at \
             FROM wx_reviews WHERE review_id = (SELECT MAX(review_id) FROM wx_reviews)",
            &[],
        )
        .await
        .unwrap();
        wx.close().await;
    });
    run_ok(p, &["etl"]);
    let second = card(p);
    assert_eq!(second["version"], 2, "{second}");
    assert_ne!(second["fingerprint"], first["fingerprint"]);

    // Texts from elsewhere, as CSV (the text column found by name) and as lines.
    std::fs::write(
        p.join("meituan.csv"),
        "id,content,stars\n1,\"热狗非常好吃，服务也很热情\",5\n2,太难吃了，等了一个小时，服务态度差,1\n3,,3\n",
    )
    .unwrap();
    let out = run_ok(p, &["sentiment", "score", "meituan.csv"]);
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows[0],
        [
            "row",
            "polarity",
            "probability",
            "score",
            "taste",
            "service",
            "price",
            "environment",
            "speed",
            "hygiene"
        ]
    );
    assert_eq!(rows.len(), 3, "the blank text is skipped: {out}");
    assert_eq!((rows[1][0], rows[1][1]), ("1", "positive"), "{out}");
    assert_eq!((rows[2][0], rows[2][1]), ("2", "negative"), "{out}");
    assert!(
        !rows[1][4].is_empty() && !rows[1][5].is_empty(),
        "taste and service scored: {out}"
    );
    assert!(rows[1][6].is_empty(), "price not mentioned: {out}");
    std::fs::write(p.join("survey.txt"), "很好吃\n\n卫生太差了\n").unwrap();
    let out = run_ok(p, &["sentiment", "score", "survey.txt"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[2].starts_with("3,negative,"), "{out}");
    // A CSV whose text column cannot be told is a clear error.
    std::fs::write(p.join("two.csv"), "a,b\nx,y\n").unwrap();
    let e = c360()
        .current_dir(p)
        .args(["sentiment", "score", "two.csv"])
        .output()
        .unwrap();
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("--column"));
}
