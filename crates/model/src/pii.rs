//! Personal data outside the identity table: keyed hashes of identifiers, and free text with
//! phone numbers, e-mail addresses, WeChat ids and WeChat openids/unionids masked.
//!
//! **Hashing.** [`PiiKey::hash`] is HMAC-SHA256 under the metastore's generated secret
//! (hex, 32 characters): without the secret, a hash cannot be tested against the ~10^9 possible
//! mobile numbers. Metastores whose identity graph was hashed before (salted SHA-256) keep that
//! scheme ([`HashScheme::SaltedSha256`]), since their hashes cannot be recomputed without the raw
//! values; `c360` warns about them.
//!
//! **Scrubbing.** [`scrub`] finds what people type into a review or a ticket: mobile and
//! landline numbers with any of the separators people use (spaces, `-`, `.`, `·`, brackets,
//! full-width forms, zero-width characters), with or without `+86`/`0086`, in half- or
//! full-width digits or Chinese numerals; e-mail addresses (also with `＠`); WeChat ids after
//! the words people put before them (微信, 微信号, VX, WX, V信, 薇信, 威信, 加我 …); and
//! openid/unionid-shaped tokens. Each is replaced by a tag saying what was there.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::Secret;

/// How identifiers are hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashScheme {
    /// HMAC-SHA256 keyed with the secret: every metastore created since migration 3.
    HmacSha256,
    /// SHA-256 over `secret || 0 || value`: metastores hashed before, kept so hashes still match.
    SaltedSha256,
}

impl HashScheme {
    /// The metastore setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            HashScheme::HmacSha256 => "hmac-sha256",
            HashScheme::SaltedSha256 => "salted-sha256",
        }
    }
    pub fn parse(s: &str) -> Option<HashScheme> {
        match s {
            "hmac-sha256" => Some(HashScheme::HmacSha256),
            "salted-sha256" => Some(HashScheme::SaltedSha256),
            _ => None,
        }
    }
}

/// The key personal identifiers are hashed with. Never printed.
#[derive(Clone)]
pub struct PiiKey {
    secret: Secret,
    scheme: HashScheme,
}

impl fmt::Debug for PiiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PiiKey({}, ***)", self.scheme.as_str())
    }
}

impl PiiKey {
    pub fn new(secret: Secret, scheme: HashScheme) -> PiiKey {
        PiiKey { secret, scheme }
    }
    pub fn scheme(&self) -> HashScheme {
        self.scheme
    }
    /// The keyed hash of an identifier (phone, openid, unionid), hex, 32 characters.
    pub fn hash(&self, value: &str) -> String {
        let full = match self.scheme {
            HashScheme::HmacSha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(self.secret.expose().as_bytes())
                    .expect("HMAC takes a key of any length");
                m.update(value.as_bytes());
                m.finalize().into_bytes().to_vec()
            }
            HashScheme::SaltedSha256 => {
                let mut h = Sha256::new();
                h.update(self.secret.expose().as_bytes());
                h.update([0u8]);
                h.update(value.as_bytes());
                h.finalize().to_vec()
            }
        };
        hex::encode(&full[..16])
    }
}

const PHONE_TAG: &str = "[号码已隐藏]";
const EMAIL_TAG: &str = "[邮箱已隐藏]";
const WECHAT_TAG: &str = "[微信号已隐藏]";
const ID_TAG: &str = "[ID已隐藏]";

/// A digit as people type it: ASCII, full-width, or a Chinese numeral.
fn digit_of(c: char) -> Option<(u8, bool)> {
    match c {
        '0'..='9' => Some((c as u8 - b'0', false)),
        '０'..='９' => Some(((c as u32 - '０' as u32) as u8, false)),
        '〇' | '零' => Some((0, true)),
        '一' | '壹' | '幺' => Some((1, true)),
        '二' | '贰' | '两' => Some((2, true)),
        '三' | '叁' => Some((3, true)),
        '四' | '肆' => Some((4, true)),
        '五' | '伍' => Some((5, true)),
        '六' | '陆' => Some((6, true)),
        '七' | '柒' => Some((7, true)),
        '八' | '捌' => Some((8, true)),
        '九' | '玖' => Some((9, true)),
        _ => None,
    }
}

/// What may stand between the digits of one number.
fn is_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '-'
            | '.'
            | '·'
            | '('
            | ')'
            | '（'
            | '）'
            | '－'
            | '—'
            | '–'
            | '‐'
            | '‑'
            | '\u{3000}'
            | '\u{00A0}'
            | '\u{200B}'
            | '\u{200C}'
            | '\u{200D}'
            | '\u{2060}'
            | '\u{FEFF}'
            | '/'
            | '_'
            | '．'
            | '、'
            | '＿'
    )
}

fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}'
    )
}

/// A number found at `chars[start..end]`, with its digits.
struct NumberRun {
    end: usize,
    digits: Vec<u8>,
    chinese: usize,
}

/// The longest run of digits from `start`, separators allowed between digits (at most three in a
/// row), a leading `+` allowed.
fn number_run(chars: &[char], start: usize) -> Option<NumberRun> {
    let mut i = start;
    // "(+86) …", "（021）…", "+86 …"
    while i < start + 2 && matches!(chars.get(i), Some('+' | '＋' | '(' | '（')) {
        i += 1;
    }
    digit_of(*chars.get(i)?)?;
    let mut digits = Vec::new();
    let mut chinese = 0;
    let mut end = i;
    while i < chars.len() {
        if let Some((d, zh)) = digit_of(chars[i]) {
            digits.push(d);
            chinese += usize::from(zh);
            i += 1;
            end = i;
            continue;
        }
        let gap = chars[i..].iter().take_while(|c| is_separator(**c)).count();
        if gap == 0 || gap > 3 || chars.get(i + gap).is_none_or(|c| digit_of(*c).is_none()) {
            break;
        }
        i += gap;
    }
    Some(NumberRun {
        end,
        digits,
        chinese,
    })
}

/// Whether a run's digits are a phone number (mobile or landline, with or without a country
/// code), as opposed to a price, a date, a time or a count.
fn is_phone(run: &NumberRun) -> bool {
    let mut d: &[u8] = &run.digits;
    if d.starts_with(&[0, 0, 8, 6]) {
        d = &d[4..];
    } else if d.starts_with(&[8, 6]) && d.len() >= 13 {
        d = &d[2..];
    }
    let mobile = d.len() == 11 && d[0] == 1 && (3..=9).contains(&d[1]);
    if run.chinese * 2 > run.digits.len() {
        // Chinese numerals: only an 11-digit mobile number is a phone (a run of numerals in
        // prose is otherwise a quantity).
        return mobile;
    }
    if mobile {
        return true;
    }
    // A landline (0 + area code + 7–8 digits) or any other run of 7+ digits: hidden.
    d.len() >= 7
}

/// The end of a date typed with separators at `i` (2025-10-01, 2025.10.01, 2025/10/1): not a
/// phone, whatever follows it.
fn date_at(chars: &[char], i: usize) -> Option<usize> {
    let ascii = |j: usize| chars.get(j).is_some_and(|c| c.is_ascii_digit());
    if !(0..4).all(|k| ascii(i + k)) || !matches!(chars[i..i + 2], ['1', '9'] | ['2', '0']) {
        return None;
    }
    let sep = chars.get(i + 4).copied()?;
    if !matches!(sep, '-' | '.' | '/') {
        return None;
    }
    let mut j = i + 5;
    for part in 0..2 {
        let n = (0..2).take_while(|k| ascii(j + k)).count();
        if n == 0 {
            return None;
        }
        j += n;
        if part == 0 {
            if chars.get(j) != Some(&sep) {
                return None;
            }
            j += 1;
        }
    }
    (!ascii(j)).then_some(j)
}

/// Masks phone numbers, e-mail addresses, WeChat ids and openid-like tokens in free text.
pub fn scrub(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        // A WeChat id after the words that announce one.
        if let Some(end) = wechat_id_at(&chars, i) {
            out.push_str(WECHAT_TAG);
            i = end;
            continue;
        }
        if let Some((start, end)) = email_at(&chars, i) {
            out.extend(&chars[i..start]);
            out.push_str(EMAIL_TAG);
            i = end;
            continue;
        }
        if let Some(end) = openid_at(&chars, i) {
            out.push_str(ID_TAG);
            i = end;
            continue;
        }
        let prev_is_digitish = i > 0 && (chars[i - 1].is_ascii_alphanumeric());
        if !prev_is_digitish {
            if let Some(end) = date_at(&chars, i) {
                out.extend(&chars[i..end]);
                i = end;
                continue;
            }
            if let Some(run) = number_run(&chars, i) {
                if is_phone(&run) {
                    out.push_str(PHONE_TAG);
                    i = run.end;
                    continue;
                }
                out.extend(&chars[i..run.end]);
                i = run.end;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

const WECHAT_WORDS: &[&str] = &[
    "微信号",
    "微信",
    "威信",
    "薇信",
    "徽信",
    "v信",
    "V信",
    "ｖ信",
    "Ｖ信",
    "vx",
    "VX",
    "Vx",
    "vX",
    "wx",
    "WX",
    "Wx",
    "wechat",
    "WeChat",
    "Wechat",
    "WECHAT",
    "加我",
    "加微",
    "ｖｘ",
    "ＶＸ",
    "ｗｘ",
    "ＷＸ",
];

/// The end of `<word><separators><id>` starting at `i`, for a WeChat id (6–20 characters:
/// letters, digits, `_`, `-`, starting with a letter; or a phone number, which is also an id).
fn wechat_id_at(chars: &[char], i: usize) -> Option<usize> {
    let word = WECHAT_WORDS.iter().find(|w| {
        let w: Vec<char> = w.chars().collect();
        chars.len() >= i + w.len() && chars[i..i + w.len()] == w[..]
    })?;
    // "vx", "wechat" only as words of their own (not inside "twx", "xwechat" or "vxaaaa").
    let after = chars.get(i + word.chars().count());
    if word.is_ascii()
        && ((i > 0 && chars[i - 1].is_ascii_alphanumeric())
            || after.is_some_and(|c| c.is_ascii_alphanumeric()))
    {
        return None;
    }
    let mut j = i + word.chars().count();
    // "微信号是：", "vx:", "加我微信 " …
    let skip = |c: char| {
        matches!(
            c,
            ':' | '：' | ' ' | '是' | '号' | '=' | '＝' | '\u{3000}' | '-' | '_' | '微' | '信'
        ) || is_invisible(c)
    };
    while j < chars.len() && skip(chars[j]) && j - i < 12 {
        j += 1;
    }
    let id_start = j;
    let id = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || is_invisible(c);
    while j < chars.len() && id(chars[j]) {
        j += 1;
    }
    let len = chars[id_start..j]
        .iter()
        .filter(|c| !is_invisible(**c))
        .count();
    let first = chars.get(id_start).copied().unwrap_or(' ');
    ((6..=20).contains(&len) && first.is_ascii_alphanumeric()).then_some(j)
}

/// (where the address starts, where it ends) for an e-mail address whose `@` is at or after `i`
/// on the same word; only when `i` is the start of the local part.
fn email_at(chars: &[char], i: usize) -> Option<(usize, usize)> {
    let local = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-');
    if !local(chars[i]) || (i > 0 && local(chars[i - 1])) {
        return None;
    }
    let mut j = i;
    while j < chars.len() && local(chars[j]) {
        j += 1;
    }
    if j == i || !matches!(chars.get(j), Some('@') | Some('＠')) {
        return None;
    }
    let dom = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '。' | '．');
    let mut k = j + 1;
    while k < chars.len() && dom(chars[k]) {
        k += 1;
    }
    let domain: String = chars[j + 1..k].iter().collect();
    let has_dot = domain.contains(['.', '。', '．']);
    (has_dot && domain.len() >= 3).then_some((i, k))
}

/// The end of an openid/unionid-shaped token at `i`: 28 characters of `[A-Za-z0-9_-]` starting
/// with `o`, standing alone.
fn openid_at(chars: &[char], i: usize) -> Option<usize> {
    let tok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if chars[i] != 'o' || (i > 0 && tok(chars[i - 1])) {
        return None;
    }
    let n = chars[i..].iter().take_while(|c| tok(**c)).count();
    let word = &chars[i..i + n];
    let mixed =
        word.iter().any(|c| c.is_ascii_digit()) && word.iter().any(|c| c.is_ascii_uppercase());
    ((26..=32).contains(&n) && mixed).then_some(i + n)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hmac_and_legacy_hashes() {
        let k = PiiKey::new(Secret::new("key"), HashScheme::HmacSha256);
        // RFC 4231-style check: HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        assert_eq!(
            k.hash("The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143"
        );
        let legacy = PiiKey::new(Secret::new("key"), HashScheme::SaltedSha256);
        assert_ne!(legacy.hash("13912345678"), k.hash("13912345678"));
        assert_eq!(legacy.hash("x"), crate::hash_pii("key", "x"));
        assert!(!format!("{k:?}").contains("key"));
    }

    #[test]
    fn phones_in_the_forms_people_type_them() {
        for s in [
            "13912345678",
            "139-1234-5678",
            "139 1234 5678",
            "139.1234.5678",
            "+86 139 1234 5678",
            "+8613912345678",
            "0086-139-1234-5678",
            "(+86) 139 1234 5678",
            "１３９１２３４５６７８",
            "１３９－１２３４－５６７８",
            "139\u{200B}1234\u{200B}5678",
            "一三九一二三四五六七八",
            "幺三九 幺二三四 五六七八",
            "010-12345678",
            "0755 8765 4321",
            "（021）12345678",
        ] {
            let text = format!("有事打我{s}谢谢");
            assert_eq!(scrub(&text), "有事打我[号码已隐藏]谢谢", "{s:?}");
        }
    }

    #[test]
    fn what_is_not_personal_stays() {
        for s in [
            "等了20分钟",
            "第一次来，三个人吃了两个热狗",
            "价格12.50元",
            "2025-10-01 12:30 到店",
            "2025.10.01来过",
            "订单 A1234 有问题",
            "送了1000积分",
            "the staff at store 12 were great",
        ] {
            assert_eq!(scrub(s), s, "{s:?}");
        }
    }

    #[test]
    fn emails_wechat_ids_and_openids() {
        assert_eq!(
            scrub("发到 li.ming+hd@example.com 吧"),
            "发到 [邮箱已隐藏] 吧"
        );
        assert_eq!(scrub("邮箱 wang＠qq.com"), "邮箱 [邮箱已隐藏]");
        assert_eq!(scrub("加我微信：hotdog_fan88"), "[微信号已隐藏]");
        assert_eq!(scrub("vx hotdog-2025 私聊"), "[微信号已隐藏] 私聊");
        assert_eq!(scrub("V信号是abc123456"), "[微信号已隐藏]");
        assert_eq!(scrub("微信 13912345678"), "[微信号已隐藏]");
        assert_eq!(
            scrub("my id oAbC1234567890dEfGhIjKlMnOpQ ok"),
            "my id [ID已隐藏] ok"
        );
        assert_eq!(scrub("微信支付很方便"), "微信支付很方便");
    }

    /// Every digit of a text, however written, in order.
    fn digits_in(s: &str) -> String {
        s.chars()
            .filter_map(digit_of)
            .map(|(d, _)| char::from(b'0' + d))
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// A generated mobile number, typed any way people type one, inside any text: it is
        /// gone from the scrubbed text, and the text around it stays.
        #[test]
        fn no_typed_phone_survives(
            second in 3u8..=9,
            rest in proptest::collection::vec(0u8..=9, 9),
            groups in proptest::sample::select(vec![vec![11], vec![3, 4, 4], vec![3, 8], vec![4, 3, 4], vec![3, 3, 5]]),
            sep in proptest::sample::select(vec!["", " ", "-", ".", "·", "\u{200B}", "\u{3000}", "－", " - ", "\u{FEFF}"]),
            width in 0u8..3,
            prefix in proptest::sample::select(vec!["", "+86", "+86 ", "0086-", "(+86) ", "＋86"]),
            before in proptest::sample::select(vec!["", "联系", "有问题打", "call me ", "电话：", "热狗好吃！"]),
            after in proptest::sample::select(vec!["", "谢谢", " thanks", "，周末去", "。"]),
        ) {
            let mut d = vec![1, second];
            d.extend(rest);
            let plain: String = d.iter().map(|x| char::from(b'0' + x)).collect();
            let zh = ['〇', '一', '二', '三', '四', '五', '六', '七', '八', '九'];
            let glyph = |x: u8| match width {
                0 => char::from(b'0' + x),
                1 => char::from_u32('０' as u32 + u32::from(x)).unwrap(),
                _ => zh[x as usize],
            };
            let mut typed = String::new();
            let mut k = 0;
            for (gi, g) in groups.iter().enumerate() {
                if gi > 0 {
                    typed.push_str(sep);
                }
                for x in &d[k..k + g] {
                    typed.push(glyph(*x));
                }
                k += g;
            }
            let prefix = if width == 2 { "" } else { prefix };
            let text = format!("{before}{prefix}{typed}{after}");
            let out = scrub(&text);
            proptest::prop_assert!(!digits_in(&out).contains(&plain), "{text:?} -> {out:?}");
            proptest::prop_assert!(out.contains(PHONE_TAG), "{text:?} -> {out:?}");
            proptest::prop_assert!(out.starts_with(before) && out.ends_with(after), "{text:?} -> {out:?}");
        }

        /// Text with no phone-length number keeps every character.
        #[test]
        fn short_numbers_stay(a in 0u32..100_000, b in 0u32..1000, word in "[a-z]{1,8}") {
            let s = format!("点了{a}个，花了{b}元 {word}");
            proptest::prop_assert_eq!(scrub(&s), s);
        }
    }
}
