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

/// A chain with only an export of orders (customer, date, amount): `c360 import` loads it with
/// the contract's mapping, quarantines bad rows by file and line, loads nothing twice on a
/// re-import, and the refresh still gives RFM, tiers, CLV, churn and segments.
#[test]
fn import_of_orders_alone_gets_profiles_and_reimports_nothing_twice() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let mut csv = String::from("customer,date,amount,note\n");
    // 400 customers buying at their own pace for a while, over two years (a fixed
    // pseudo-random sequence, so the test is the same every run).
    let mut seed: u64 = 2030;
    let mut next = |m: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % m
    };
    let start = chrono::NaiveDate::from_ymd_opt(2023, 7, 1).unwrap();
    for c in 0..400u64 {
        let gap = 10 + next(90);
        let mut day = next(700);
        let life = next(730);
        let mut until = day + life;
        while day < 730 && day <= until {
            let date = start + chrono::Duration::days(day as i64);
            csv.push_str(&format!(
                "C{c:04},{date},{}.{:02},\"x, y\"\n",
                10 + next(70),
                next(100)
            ));
            day += 1 + next(2 * gap);
            if next(10) == 0 {
                until = day; // gone
            }
        }
    }
    csv.push_str("C9000,2024-13-45,12.00,bad date\n");
    csv.push_str("C9001,2024-05-01,12.345,fractions of a fen\n");
    std::fs::write(p.join("orders.csv"), &csv).unwrap();
    std::fs::write(
        p.join("export.toml"),
        "[sources.export]\ndir = \".\"\n[entities.orders]\nsource = \"export\"\nfile = \"orders.csv\"\n\
         missing = [\"order_id\"]\nmoney = \"yuan\"\ntime_format = \"%Y-%m-%d\"\n\
         columns = { member_id = \"customer\", order_time = \"date\", total = \"amount\", status = { value = \"paid\" } }\n",
    )
    .unwrap();
    let import = || {
        let out = c360()
            .current_dir(p)
            .args([
                "--contract",
                "export.toml",
                "--warehouse",
                "wh",
                "import",
                "orders=orders.csv",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let good = csv.lines().count() - 3;
    let first = import();
    assert!(
        first.contains(&format!("orders: {good} new row(s)")),
        "{first}"
    );
    let n = |q: &str| -> i64 {
        let v: serde_json::Value = serde_json::from_str(&sql(p, "wh", q)).unwrap();
        v["n"].as_i64().unwrap()
    };
    assert_eq!(n("SELECT COUNT(*) AS n FROM fact_orders"), good as i64);
    assert_eq!(n("SELECT COUNT(*) AS n FROM customer_segmentation"), 400);
    assert!(n("SELECT COUNT(DISTINCT tier) AS n FROM customer_segmentation") >= 3);
    assert!(n("SELECT COUNT(DISTINCT cluster) AS n FROM customer_segmentation") >= 2);
    assert_eq!(
        n("SELECT COUNT(*) AS n FROM customer_predictions WHERE metric = 'p_churn_90d'"),
        400
    );
    assert_eq!(
        n("SELECT COUNT(*) AS n FROM customer_predictions WHERE metric = 'clv_fen'"),
        400
    );
    // The bad rows, by file and line, field and reason.
    let q = sql(
        p,
        "wh",
        "SELECT row_id, field, reason FROM quarantine ORDER BY row_id",
    );
    let lines = csv.lines().count();
    assert!(
        q.contains(&format!("orders.csv:{}", lines - 1)) && q.contains("order_time"),
        "{q}"
    );
    assert!(
        q.contains(&format!("orders.csv:{lines}")) && q.contains("fractions of a fen"),
        "{q}"
    );
    // Again: nothing new, nothing doubled.
    let again = import();
    assert!(again.contains("orders: 0 new row(s)"), "{again}");
    assert_eq!(n("SELECT COUNT(*) AS n FROM fact_orders"), good as i64);
    assert_eq!(n("SELECT COUNT(*) AS n FROM quarantine"), 2);
    // A file that grew: only its new rows are new.
    std::fs::write(
        p.join("orders.csv"),
        format!("{csv}C0001,2025-07-01,20.00,later\n"),
    )
    .unwrap();
    let grown = import();
    assert!(grown.contains("orders: 1 new row(s)"), "{grown}");
}

/// `c360 sources check` names each unreadable value with its row and column and exits 2; a
/// mapping that does not fit the schema exits 1; personal data in the samples is masked.
#[test]
fn sources_check_reports_rows_and_columns_and_masks_samples() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let ok = c360()
        .current_dir(p)
        .args(["sim", "--orders", "2000", "--stores", "50"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let out = c360()
        .current_dir(p)
        .args(["sources", "check", "--show", "50"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // The simulator writes malformed order times: a data problem, not a mapping one.
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("order_time — not a timestamp"), "{text}");
    assert!(text.contains("rows: "), "{text}");
    // Samples carry no member's or user's phone number.
    let phones: Vec<String> = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut out = Vec::new();
        for (db, sql) in [
            ("data/cyrg2025.db", "SELECT phone FROM members"),
            ("data/cyrgweixin.db", "SELECT phone FROM wx_users"),
        ] {
            let db = c360_db::Db::connect(&p.join(db).display().to_string())
                .await
                .unwrap();
            for r in db.fetch_all(sql).await.unwrap() {
                if let Some(ph) =
                    c360_db::get_text(&r, "phone").and_then(|t| c360_model::Phone::parse(&t).ok())
                {
                    out.push(ph.expose().to_string());
                }
            }
        }
        out
    });
    assert!(phones.len() > 100);
    for ph in &phones {
        assert!(
            !text.contains(ph.as_str()),
            "a phone number in the samples: {text}"
        );
    }
    // A column the source does not have.
    std::fs::write(
        p.join("c.toml"),
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/sim.toml"
        ))
        .unwrap()
        .replace(
            "columns = { price = \"price_fen\", cost = \"cost_fen\" }",
            "columns = { price = \"price_yuan\", cost = \"cost_fen\" }",
        ),
    )
    .unwrap();
    let out = c360()
        .current_dir(p)
        .args([
            "--contract",
            "c.toml",
            "sources",
            "check",
            "--entity",
            "products",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("column price_yuan (field price) is not in the source"),
        "{text}"
    );
}
