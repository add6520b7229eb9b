//! Step 10: the analytics refresh hook, run after the load commits. It builds every customer's
//! profile as of the day after the last order: RFM scored against per-city dynamic thresholds
//! (rules in `c360_analytics::rfm`), lifecycle stage, k-means segments with explanations,
//! BG/NBD + Gamma-Gamma lifetime value (P(alive), expected purchases, 12-month CLV), 12-month
//! value growth and a churn probability from gradient-boosted trees trained on the past —
//! into `customer_segmentation` and `customer_predictions`, with the fitted models in the
//! manifest so a new order can be scored without a refit. Review sentiment, sessions and the
//! customer network are rebuilt here too (see `enrich`).

use c360_core::clv::{customer_summaries, fit_models, predict_many, Prediction, HORIZON_DAYS};
use c360_warehouse::arrow::record_batch::RecordBatch;
use c360_warehouse::{tables, Session, Warehouse, WriterLock};
use indicatif::ProgressBar;

use crate::error::Result;

pub async fn refresh(
    cfg: &crate::config::EtlConfig,
    wh: &Warehouse,
    lock: &WriterLock,
    run_id: i64,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    use c360_core::profile;
    use std::collections::HashMap;
    let sess = Session::open(wh).await?;
    let clock = std::time::Instant::now();
    // Each part's peak resident memory, as the step table gives each step's.
    let rss = crate::report::RssPeak::start();
    let lap = |what: &str| {
        tracing::info!(
            part = what,
            ms = clock.elapsed().as_millis() as u64,
            peak_mib = rss.as_ref().map_or(0, |r| r.take_mib()),
            "refresh"
        )
    };
    // Everything the parts computed is dropped before the serving index is built (the network
    // alone held ~2 GB at 10M orders), except each customer's live state, which the index
    // stores.
    let (m, bases, n) = {
        let (summaries, end_day) = customer_summaries(&sess).await?;
        let feats = if summaries.is_empty() {
            Vec::new()
        } else {
            profile::features_sliced(&sess, end_day, cfg.slice_customers).await?
        };
        pb.set_position(feats.len() as u64);
        lap("features");

        // Lifetime value: BG/NBD + Gamma-Gamma on every customer, predictions in closed form.
        let mut models = None;
        if summaries.iter().filter(|s| s.s.x > 0.0).count() >= 20 {
            match fit_models(&summaries, end_day, false) {
                Ok(m) => {
                    if m.ridge > 0.0 {
                        tracing::warn!(
                            ridge = m.ridge,
                            "lifetime value models: plain maximum likelihood did not converge (customers buy too alike to tell apart); fitted with a ridge on the log-parameters"
                        );
                    }
                    models = Some(m)
                }
                Err(e) => tracing::warn!(error = %e, "lifetime value models not fitted"),
            }
        }
        let preds: HashMap<i64, Prediction> = match &models {
            Some(m) => summaries
                .iter()
                .map(|r| r.customer_id)
                .zip(predict_many(m, &summaries))
                .collect(),
            None => HashMap::new(),
        };
        lap("clv");
        // Churn: trained on the past with a time split, scored now.
        let churn = profile::train_churn(&sess, end_day).await?;
        let p_churn = churn.as_ref().map(|m| profile::churn_scores(m, &feats));
        lap("churn");
        let rfm = profile::rfm_model(&feats, cfg.rfm_group);
        let seg = profile::segments(&feats);
        lap("rfm+segments");

        // Newer dimensions, each rebuilt from the whole snapshot.
        let review_rows = crate::enrich::reviews(&sess).await?;
        // The stored model, unless the chain's rated reviews changed since it was trained.
        let (sentiment_model, sentiment_card) = c360_core::sentiment::fit_or_reuse(
            wh,
            c360_core::sentiment::card_of(&sess.manifest.notes).as_ref(),
            crate::enrich::rated_examples(review_rows.iter()),
        )?;
        let sentiment_b = crate::enrich::sentiment_batch(&review_rows, &sentiment_model)?;
        lap("sentiment");
        // Sessions are written as they close, into the version this refresh commits.
        let mut txn = wh.begin_locked(lock, run_id)?;
        let bounded =
            Session::bounded_sort(wh, sess.manifest.clone(), SESSIONS_MEMORY, true).await?;
        let mut f = txn.replace_start("customer_sessions")?;
        crate::enrich::write_sessions(&bounded, &mut f).await?;
        txn.replace_finish(f)?;
        drop(bounded);
        lap("sessions");
        let net = crate::enrich::network(&sess).await?;
        let (network_b, cascades_b, network_note) = crate::enrich::network_batches(&net)?;
        lap("network");

        let as_of = (end_day - 1) as i32;
        let seg_batch =
            segmentation_batch(&feats, &rfm, cfg.rfm_group, seg.as_ref(), &preds, as_of)?;
        let pred_batch = prediction_batch(&feats, &preds, p_churn.as_deref(), as_of)?;
        let n = feats.len() as u64;
        crate::config::fail_point(cfg, "refresh_commit")?;
        txn.replace("customer_segmentation", vec![seg_batch])?;
        txn.replace("customer_predictions", vec![pred_batch])?;
        txn.replace("review_sentiment", vec![sentiment_b])?;
        txn.replace("customer_network", vec![network_b])?;
        txn.replace("network_cascades", vec![cascades_b])?;
        txn.note(
            c360_core::notes::NetworkNote::KEY,
            serde_json::to_value(&network_note).unwrap_or_default(),
        );
        txn.note("segmentation_run", serde_json::json!(run_id));
        txn.note(
            c360_core::sentiment::NOTE_KEY,
            serde_json::to_value(&sentiment_card).unwrap_or_default(),
        );
        txn.note("models", serde_json::to_value(&models).unwrap_or_default());
        txn.note("rfm", serde_json::to_value(&rfm).unwrap_or_default());
        txn.note(
            "rfm_group",
            serde_json::to_value(cfg.rfm_group).unwrap_or_default(),
        );
        let clusters = seg.as_ref().map(|s| c360_core::notes::ClusterNote {
            k: s.k,
            silhouette_by_k: s.silhouette_by_k.clone(),
            descriptions: s.descriptions.clone(),
            traits: s.traits.clone(),
            features: profile::SEGMENT_FEATURES
                .iter()
                .map(|f| f.to_string())
                .collect(),
        });
        txn.note(
            c360_core::notes::ClusterNote::KEY,
            serde_json::to_value(&clusters).unwrap_or_default(),
        );
        txn.note(
            "churn",
            serde_json::json!(churn.as_ref().map(|m| serde_json::json!({
                "features": profile::Features::MODEL_NAMES,
                "importance": m.importance,
                "calibration": [m.calib_a, m.calib_b],
                "label": "no paid order in the next 90 days",
            }))),
        );
        let m = txn.commit()?;
        lap("commit");
        // The live states are this refresh's own summaries and features (the commit added no
        // orders).
        (m, profile::LiveBases::join(&summaries, &feats, end_day), n)
    };
    // What a server reads per customer, built now so a server switches to this version without
    // computing it. The version is committed either way: a server builds an index it does not
    // find, so a failure here is reported, not fatal.
    match Session::at(wh, m).await {
        Ok(s) => {
            if let Err(e) =
                c360_core::serving::build_sliced(wh, &s, Some(&bases), cfg.slice_customers).await
            {
                tracing::warn!(error = %e, "the serving index was not built; a server will build it");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "the serving index was not built; a server will build it")
        }
    }
    lap("serving index");
    Ok((n, n))
}

/// What the sessions' sort of every page event may hold in memory before it spills (at 10M
/// orders 512 MiB over two partitions failed in the merge of the spilled runs).
const SESSIONS_MEMORY: usize = 1 << 30;

fn segmentation_batch(
    feats: &[c360_core::profile::Features],
    rfm: &c360_analytics::rfm::RfmModel,
    rfm_group: c360_core::profile::RfmGroup,
    seg: Option<&c360_core::profile::Segments>,
    preds: &std::collections::HashMap<i64, Prediction>,
    as_of: i32,
) -> Result<RecordBatch> {
    use c360_warehouse::arrow::array::{
        Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    };
    let mut b_id = Int64Builder::new();
    let (mut rec, mut freq, mut mon, mut rs, mut fs, mut ms) = (
        Int64Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
    );
    let mut home = Int64Builder::new();
    let (mut class, mut tier, mut asof, mut segn, mut city, mut life, mut cl, mut growth) = (
        StringBuilder::new(),
        StringBuilder::new(),
        Date32Builder::new(),
        StringBuilder::new(),
        Int64Builder::new(),
        StringBuilder::new(),
        Int64Builder::new(),
        Float64Builder::new(),
    );
    for (i, f) in feats.iter().enumerate() {
        let group = rfm_group.key(f);
        let sc = rfm.score(&c360_core::profile::rfm_values(f), group.as_deref());
        let p = preds.get(&f.customer_id);
        b_id.append_value(f.customer_id);
        rec.append_value(f.recency as i64);
        freq.append_value(f.orders as i64);
        mon.append_value(f.spend as i64);
        rs.append_value(sc.r as i64);
        fs.append_value(sc.f as i64);
        ms.append_value(sc.m as i64);
        class.append_value(sc.class.as_str());
        tier.append_value(sc.tier.as_str());
        asof.append_value(as_of);
        segn.append_value(sc.segment);
        city.append_option(f.city_id);
        home.append_option(f.home_store_id);
        life.append_value(c360_core::profile::lifecycle(f, p.map(|p| p.p_alive)).as_str());
        cl.append_option(seg.map(|s| s.labels[i] as i64));
        // 12-month value growth: forecast spend next year against spend in the last year.
        growth.append_option(
            p.filter(|_| f.spend_365 > 0.0)
                .map(|p| p.expected_purchases * p.expected_spend_fen / f.spend_365 - 1.0),
        );
    }
    let schema = tables::schema("customer_segmentation");
    let cols: Vec<std::sync::Arc<dyn c360_warehouse::arrow::array::Array>> = vec![
        std::sync::Arc::new(b_id.finish()),
        std::sync::Arc::new(rec.finish()),
        std::sync::Arc::new(freq.finish()),
        std::sync::Arc::new(mon.finish()),
        std::sync::Arc::new(rs.finish()),
        std::sync::Arc::new(fs.finish()),
        std::sync::Arc::new(ms.finish()),
        std::sync::Arc::new(class.finish()),
        std::sync::Arc::new(tier.finish()),
        std::sync::Arc::new(asof.finish()),
        std::sync::Arc::new(segn.finish()),
        std::sync::Arc::new(city.finish()),
        std::sync::Arc::new(life.finish()),
        std::sync::Arc::new(cl.finish()),
        std::sync::Arc::new(growth.finish()),
        std::sync::Arc::new(home.finish()),
    ];
    Ok(RecordBatch::try_new(schema, cols)?)
}

fn prediction_batch(
    feats: &[c360_core::profile::Features],
    preds: &std::collections::HashMap<i64, Prediction>,
    p_churn: Option<&[f64]>,
    as_of: i32,
) -> Result<RecordBatch> {
    use c360_warehouse::arrow::array::{
        Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    };
    let (mut id, mut model, mut metric, mut hz, mut val, mut asof) = (
        Int64Builder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        Int64Builder::new(),
        Float64Builder::new(),
        Date32Builder::new(),
    );
    let mut push = |c: i64, mo: &str, me: &str, h: Option<i64>, v: f64| {
        id.append_value(c);
        model.append_value(mo);
        metric.append_value(me);
        hz.append_option(h);
        val.append_value(v);
        asof.append_value(as_of);
    };
    for (i, f) in feats.iter().enumerate() {
        if let Some(p) = preds.get(&f.customer_id) {
            push(f.customer_id, "bgnbd", "p_alive", None, p.p_alive);
            push(
                f.customer_id,
                "bgnbd",
                "expected_purchases",
                Some(HORIZON_DAYS as i64),
                p.expected_purchases,
            );
            push(
                f.customer_id,
                "gamma_gamma",
                "expected_spend_fen",
                None,
                p.expected_spend_fen,
            );
            push(f.customer_id, "bgnbd_gg", "clv_fen", Some(360), p.clv_fen);
            push(
                f.customer_id,
                "bgnbd",
                "next_order_days",
                None,
                p.next_order_days,
            );
            push(f.customer_id, "bgnbd", "overdue", None, p.overdue);
        }
        if let Some(c) = p_churn {
            push(f.customer_id, "churn_gbt", "p_churn_90d", Some(90), c[i]);
        }
    }
    let schema = tables::schema("customer_predictions");
    Ok(RecordBatch::try_new(
        schema,
        vec![
            std::sync::Arc::new(id.finish()),
            std::sync::Arc::new(model.finish()),
            std::sync::Arc::new(metric.finish()),
            std::sync::Arc::new(hz.finish()),
            std::sync::Arc::new(val.finish()),
            std::sync::Arc::new(asof.finish()),
        ],
    )?)
}
