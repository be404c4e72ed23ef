//! The per-account statistical classifier: what the user taught by moving mail into Junk
//! (spam) or out of it (not spam), applied to new mail.
//!
//! * **Tokens** ([`tokens`]): the words of the subject and the text parts, the From
//!   address's domain and display name, lowercase, 3–24 characters, each once; at most
//!   [`MAX_TOKENS`] per message. A token is kept as a 32-bit FNV-1a hash (stable across
//!   nodes and versions).
//! * **The model** is the account collection `spam-model`: item `totals` (messages trained
//!   as spam and as ham) and [`BUCKETS`] items `b-XX` (by the hash's first byte), each a map
//!   hash → `[spam, ham]` counts. Every node reads the same model; a training is one
//!   compare-and-set write, so two writers never lose each other's counts.
//! * **Classifying** ([`Model::probability`]): Robinson's per-token probability with Fisher's
//!   chi-square combination over the most telling tokens (as SpamBayes and Bogofilter do).
//!   It says nothing until the account trained [`MIN_TRAINED`] messages of each kind.

use bulwark_store::collections::MAX_VALUE_LEN;
use bulwark_store::{AccountId, Expect, ItemWrite, Store, StoreError};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The collection of the model.
pub const COLLECTION: &str = "spam-model";
/// Model items by the token hash's first byte.
pub const BUCKETS: usize = 256;
/// Distinct tokens taken from one message.
pub const MAX_TOKENS: usize = 400;
/// Messages of each kind trained before the classifier says anything.
pub const MIN_TRAINED: u64 = 10;
/// Tokens kept per bucket; beyond, the rarest are dropped (bounds the model at about
/// 256 × this many tokens).
pub const MAX_PER_BUCKET: usize = 4000;
/// Tokens combined per message (the most telling ones).
const MAX_CLUES: usize = 150;
/// Tokens whose probability is this close to 0.5 say nothing.
const MIN_STRENGTH: f64 = 0.1;

/// What a message was taught as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Spam,
    Ham,
}

fn fnv1a(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The distinct token hashes of a message.
pub fn tokens(raw: &[u8]) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let Some(msg) = mail_parser::MessageParser::default().parse(raw) else {
        return out;
    };
    let add_words = |text: &str, prefix: &str, out: &mut BTreeSet<u32>| {
        for word in text.split(|c: char| !c.is_alphanumeric() && c != '$' && c != '\'') {
            if out.len() >= MAX_TOKENS {
                return;
            }
            let n = word.chars().count();
            if (3..=24).contains(&n) {
                out.insert(fnv1a(&format!("{prefix}{}", word.to_lowercase())));
            }
        }
    };
    if let Some(s) = msg.subject() {
        add_words(s, "s:", &mut out);
    }
    if let Some(from) = msg.from().and_then(|a| a.first()) {
        if let Some((_, domain)) = from.address().and_then(|a| a.rsplit_once('@')) {
            out.insert(fnv1a(&format!("d:{}", domain.to_lowercase())));
        }
        if let Some(name) = from.name() {
            add_words(name, "n:", &mut out);
        }
    }
    let mut i = 0;
    while let Some(text) = msg.body_text(i) {
        add_words(&text, "", &mut out);
        i += 1;
        if out.len() >= MAX_TOKENS || i > 8 {
            break;
        }
    }
    out
}

fn bucket_of(token: u32) -> String {
    format!("b-{:02x}", token >> 24)
}

/// One model item as read: its version (`None`: not written yet) and hash → `[spam, ham]`.
type Bucket = (Option<u64>, HashMap<u32, [u32; 2]>);

/// The part of an account's model a message needs (or a training touches).
#[derive(Debug, Default)]
pub struct Model {
    pub spam: u64,
    pub ham: u64,
    /// Bucket id → (version, hash → [spam, ham]).
    buckets: BTreeMap<String, Bucket>,
    totals_version: Option<u64>,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Totals {
    spam: u64,
    ham: u64,
}

impl Model {
    /// Whether the account trained enough for [`Model::probability`] to answer (one read
    /// of the totals).
    pub async fn trained(store: &dyn Store, account: AccountId) -> Result<bool, StoreError> {
        let items = store
            .collection_get(account, COLLECTION, Some(&["totals".to_string()]))
            .await?;
        Ok(items.first().is_some_and(|i| {
            serde_json::from_str::<Totals>(&i.value)
                .is_ok_and(|t| t.spam >= MIN_TRAINED && t.ham >= MIN_TRAINED)
        }))
    }

    /// Reads the totals and the buckets holding `tokens`.
    pub async fn load(
        store: &dyn Store,
        account: AccountId,
        tokens: &BTreeSet<u32>,
    ) -> Result<Model, StoreError> {
        let mut ids: Vec<String> = tokens.iter().map(|t| bucket_of(*t)).collect();
        ids.sort();
        ids.dedup();
        ids.push("totals".into());
        let mut model = Model::default();
        for id in &ids {
            if id != "totals" {
                model.buckets.insert(id.clone(), (None, HashMap::new()));
            }
        }
        for item in store
            .collection_get(account, COLLECTION, Some(&ids))
            .await?
        {
            if item.id == "totals" {
                let t: Totals = serde_json::from_str(&item.value).unwrap_or_default();
                model.spam = t.spam;
                model.ham = t.ham;
                model.totals_version = Some(item.version.0);
            } else {
                let counts: HashMap<String, [u32; 2]> =
                    serde_json::from_str(&item.value).unwrap_or_default();
                let counts = counts
                    .into_iter()
                    .filter_map(|(k, v)| u32::from_str_radix(&k, 16).ok().map(|k| (k, v)))
                    .collect();
                model
                    .buckets
                    .insert(item.id.clone(), (Some(item.version.0), counts));
            }
        }
        Ok(model)
    }

    fn counts(&self, token: u32) -> [u32; 2] {
        self.buckets
            .get(&bucket_of(token))
            .and_then(|(_, m)| m.get(&token))
            .copied()
            .unwrap_or([0, 0])
    }

    /// The probability that the message of `tokens` is spam (0–1), or `None` while the
    /// account has trained too little.
    pub fn probability(&self, tokens: &BTreeSet<u32>) -> Option<f64> {
        if self.spam < MIN_TRAINED || self.ham < MIN_TRAINED {
            return None;
        }
        let (ns, nh) = (self.spam as f64, self.ham as f64);
        let mut clues: Vec<f64> = tokens
            .iter()
            .filter_map(|t| {
                let [s, h] = self.counts(*t);
                let n = f64::from(s) + f64::from(h);
                if n == 0.0 {
                    return None;
                }
                let ps = (f64::from(s) / ns).min(1.0);
                let ph = (f64::from(h) / nh).min(1.0);
                let p = ps / (ps + ph);
                // Robinson: shrink towards 0.5 with little evidence (s = 1, x = 0.5).
                let f = (0.5 + n * p) / (1.0 + n);
                ((f - 0.5).abs() >= MIN_STRENGTH).then_some(f.clamp(0.01, 0.99))
            })
            .collect();
        if clues.is_empty() {
            return Some(0.5);
        }
        clues.sort_by(|a, b| (b - 0.5).abs().total_cmp(&(a - 0.5).abs()));
        clues.truncate(MAX_CLUES);
        let n = clues.len();
        let ln_f: f64 = clues.iter().map(|f| f.ln()).sum();
        let ln_1f: f64 = clues.iter().map(|f| (1.0 - f).ln()).sum();
        let h = chi2q(-2.0 * ln_f, 2 * n);
        let s = chi2q(-2.0 * ln_1f, 2 * n);
        Some((1.0 + h - s) / 2.0)
    }

    /// Adds one message of `class` with `tokens` to the model and writes the touched items
    /// with compare-and-set; `Conflict` when another writer got there first (load again and
    /// retry). `extra` goes into the same write (a trainer's cursor).
    pub async fn train(
        mut self,
        store: &dyn Store,
        account: AccountId,
        examples: &[(Class, BTreeSet<u32>)],
        extra: Vec<ItemWrite>,
    ) -> Result<(), StoreError> {
        let mut touched = BTreeSet::new();
        for (class, tokens) in examples {
            let i = match class {
                Class::Spam => {
                    self.spam += 1;
                    0
                }
                Class::Ham => {
                    self.ham += 1;
                    1
                }
            };
            for t in tokens {
                let id = bucket_of(*t);
                let entry = self.buckets.entry(id.clone()).or_default();
                let c = entry.1.entry(*t).or_insert([0, 0]);
                c[i] = c[i].saturating_add(1);
                touched.insert(id);
            }
        }
        let expect = |v: Option<u64>| match v {
            Some(v) => Expect::Version(bulwark_store::ModSeq(v)),
            None => Expect::Absent,
        };
        let mut writes = extra;
        let totals = serde_json::to_string(&Totals {
            spam: self.spam,
            ham: self.ham,
        })
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
        writes.push(ItemWrite::put(
            COLLECTION,
            "totals",
            expect(self.totals_version),
            totals,
        ));
        for id in touched {
            let Some((version, counts)) = self.buckets.get_mut(&id) else {
                continue;
            };
            if counts.len() > MAX_PER_BUCKET {
                let mut by_count: Vec<(u32, u32)> =
                    counts.iter().map(|(k, v)| (*k, v[0] + v[1])).collect();
                by_count.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
                let keep: BTreeSet<u32> = by_count
                    .into_iter()
                    .take(MAX_PER_BUCKET)
                    .map(|(k, _)| k)
                    .collect();
                counts.retain(|k, _| keep.contains(k));
            }
            let map: BTreeMap<String, [u32; 2]> = counts
                .iter()
                .map(|(k, v)| (format!("{k:08x}"), *v))
                .collect();
            let value =
                serde_json::to_string(&map).map_err(|e| StoreError::Invalid(e.to_string()))?;
            if value.len() > MAX_VALUE_LEN {
                continue;
            }
            writes.push(ItemWrite::put(COLLECTION, &id, expect(*version), value));
        }
        store.collection_write(account, writes).await.map(|_| ())
    }
}

/// The probability that a chi-square variable with `dof` (even) degrees of freedom is at
/// least `x2` (the series for even degrees, as in SpamBayes' `chi2Q`).
fn chi2q(x2: f64, dof: usize) -> f64 {
    let m = x2 / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    for i in 1..dof / 2 {
        term *= m / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_store::sqlite::SqliteStore;

    fn msg(subject: &str, body: &str) -> Vec<u8> {
        format!("From: Someone <a@b.example>\r\nSubject: {subject}\r\n\r\n{body}\r\n").into_bytes()
    }

    #[test]
    fn tokens_are_words_once_lowercase() {
        let a = tokens(&msg("Cheap PILLS", "cheap pills cheap pills now"));
        let b = tokens(&msg("cheap pills", "Cheap Pills Now"));
        assert_eq!(a, b);
        assert!(a.contains(&fnv1a("s:cheap")));
        assert!(a.contains(&fnv1a("pills")));
        assert!(a.contains(&fnv1a("d:b.example")));
        assert!(!a.contains(&fnv1a("no"))); // too short
        let many: String = (0..5000).map(|i| format!("word{i} ")).collect();
        assert_eq!(tokens(&msg("x", &many)).len(), MAX_TOKENS);
        assert!(tokens(b"\xff\xfe").len() <= 1);
    }

    #[test]
    fn chi2q_matches_known_values() {
        assert!((chi2q(0.0, 2) - 1.0).abs() < 1e-12);
        assert!((chi2q(2.0, 2) - (-1.0f64).exp()).abs() < 1e-12);
        assert!(chi2q(1000.0, 4) < 1e-100);
    }

    #[tokio::test]
    async fn training_teaches_what_spam_and_ham_look_like() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let store = store.as_ref();
        store.domain_add("example.test").await.unwrap();
        let account = store
            .account_create(bulwark_store::NewAccount {
                address: "u@example.test".into(),
                password_hash: "x".into(),
                display_name: String::new(),
            })
            .await
            .unwrap()
            .id;
        let spam_text = |i: usize| {
            msg(
                &format!("Win a prize {i}"),
                "claim your lottery prize casino bonus now",
            )
        };
        let ham_text = |i: usize| {
            msg(
                &format!("Meeting notes {i}"),
                "agenda for the project meeting tomorrow",
            )
        };
        let probe_spam = tokens(&msg("Lottery prize", "casino bonus claim"));
        let probe_ham = tokens(&msg("Project agenda", "meeting tomorrow"));
        let m = Model::load(store, account, &probe_spam).await.unwrap();
        assert_eq!(m.probability(&probe_spam), None, "nothing trained yet");
        for i in 0..MIN_TRAINED as usize {
            for (class, raw) in [(Class::Spam, spam_text(i)), (Class::Ham, ham_text(i))] {
                let t = tokens(&raw);
                Model::load(store, account, &t)
                    .await
                    .unwrap()
                    .train(store, account, &[(class, t)], Vec::new())
                    .await
                    .unwrap();
            }
        }
        let m = Model::load(store, account, &probe_spam).await.unwrap();
        assert_eq!((m.spam, m.ham), (MIN_TRAINED, MIN_TRAINED));
        assert!(m.probability(&probe_spam).unwrap() > 0.9);
        let m = Model::load(store, account, &probe_ham).await.unwrap();
        assert!(m.probability(&probe_ham).unwrap() < 0.1);
        // A stale model (loaded before another writer trained) conflicts instead of losing counts.
        let stale = Model::load(store, account, &probe_ham).await.unwrap();
        let fresh = Model::load(store, account, &probe_ham).await.unwrap();
        fresh
            .train(
                store,
                account,
                &[(Class::Ham, probe_ham.clone())],
                Vec::new(),
            )
            .await
            .unwrap();
        assert!(matches!(
            stale
                .train(
                    store,
                    account,
                    &[(Class::Ham, probe_ham.clone())],
                    Vec::new()
                )
                .await,
            Err(StoreError::Conflict(_))
        ));
    }
}
