//! Deterministic inputs shared by the matcher benches: a seeded generator of realistic
//! 2–4-word trigger phrases, a card library built from them as YAML, and a fixed corpus of
//! ~90-byte utterances. Nothing here reads outside the repository.

#![allow(dead_code)]

use std::collections::HashSet;

/// SplitMix64: tiny, seeded, and the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 11) as u128 * n as u128) >> 53) as usize
    }

    /// Skewed towards small indices (roughly Zipf-like): the first words of [`WORDS`] are
    /// the common ones, as in speech.
    pub fn skewed(&mut self, n: usize) -> usize {
        let a = self.below(n);
        let b = self.below(n);
        a.min(b)
    }
}

/// Vocabulary of sales conversations, most common first.
pub const WORDS: &[&str] = &[
    "the",
    "we",
    "to",
    "a",
    "our",
    "you",
    "is",
    "it",
    "for",
    "and",
    "that",
    "this",
    "of",
    "price",
    "team",
    "contract",
    "budget",
    "cost",
    "need",
    "would",
    "next",
    "year",
    "quarter",
    "deal",
    "time",
    "plan",
    "renewal",
    "support",
    "seats",
    "license",
    "security",
    "review",
    "legal",
    "finance",
    "boss",
    "manager",
    "director",
    "approval",
    "pilot",
    "trial",
    "demo",
    "integration",
    "api",
    "salesforce",
    "hubspot",
    "slack",
    "data",
    "migration",
    "onboarding",
    "training",
    "rollout",
    "users",
    "adoption",
    "usage",
    "value",
    "roi",
    "discount",
    "quote",
    "proposal",
    "terms",
    "month",
    "annual",
    "monthly",
    "invoice",
    "payment",
    "procurement",
    "vendor",
    "competitor",
    "cheaper",
    "expensive",
    "high",
    "low",
    "too",
    "much",
    "more",
    "less",
    "than",
    "send",
    "email",
    "info",
    "deck",
    "call",
    "meeting",
    "week",
    "friday",
    "monday",
    "decision",
    "committee",
    "sign",
    "signed",
    "signature",
    "lock",
    "in",
    "out",
    "cancel",
    "churn",
    "risk",
    "problem",
    "issue",
    "pain",
    "challenge",
    "leads",
    "pipeline",
    "forecast",
    "reporting",
    "dashboard",
    "analytics",
    "compliance",
    "gdpr",
    "soc",
    "audit",
    "sso",
    "okta",
    "admin",
    "permissions",
    "roles",
    "features",
    "roadmap",
    "release",
    "update",
    "version",
    "bug",
    "outage",
    "uptime",
    "sla",
    "response",
    "times",
    "tickets",
    "customer",
    "success",
    "account",
    "executive",
    "sponsor",
    "champion",
    "stakeholder",
    "board",
    "cfo",
    "ceo",
    "cto",
    "it",
    "department",
    "headcount",
    "hiring",
    "freeze",
    "cuts",
    "layoffs",
    "growth",
    "scale",
    "enterprise",
    "mid",
    "market",
    "small",
    "business",
    "startup",
    "tier",
    "plan",
    "starter",
    "pro",
    "premium",
    "add",
    "on",
    "module",
    "bundle",
    "implementation",
    "timeline",
    "kickoff",
    "weeks",
    "days",
    "hours",
    "fast",
    "slow",
    "quick",
    "easy",
    "hard",
    "complex",
    "simple",
    "already",
    "using",
    "switch",
    "move",
    "replace",
    "build",
    "house",
    "internal",
    "tool",
    "spreadsheet",
    "excel",
    "manual",
    "process",
    "workflow",
    "automation",
    "ai",
    "transcript",
    "notes",
    "coaching",
    "calls",
    "reps",
    "quota",
    "target",
    "commission",
    "territory",
    "region",
    "emea",
    "apac",
    "north",
    "america",
    "europe",
    "germany",
    "france",
    "uk",
    "london",
    "berlin",
    "paris",
    "office",
    "remote",
    "hybrid",
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "contoso",
    "northwind",
    "fabrikam",
    "tailspin",
    "wingtip",
    "reference",
    "case",
    "study",
    "logo",
    "testimonial",
    "partner",
    "reseller",
    "channel",
    "marketplace",
    "aws",
    "azure",
    "gcp",
    "cloud",
    "hosting",
    "region",
    "residency",
    "encryption",
    "backup",
    "retention",
    "export",
    "import",
    "csv",
    "sync",
    "real",
    "live",
    "batch",
    "nightly",
    "weekly",
    "daily",
];

/// Conversational filler for generated utterances.
const FILLER: &[&str] = &[
    "honestly", "well", "so", "um", "like", "I", "think", "we", "are", "just", "really", "maybe",
    "probably", "right", "now", "okay", "yeah", "you", "know", "I", "mean", "that", "was", "kind",
    "of", "what", "about", "how", "does", "the", "it", "on", "our", "side", "can", "do", "with",
    "said", "last", "thing",
];

/// `n` distinct phrases of 2–4 words, the same for the same seed. A prefix of the list
/// for a larger `n` is the list for a smaller `n`, so all sizes share their first phrases.
pub fn phrases(n: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let len = 2 + rng.below(3);
        let words: Vec<&str> = (0..len).map(|_| WORDS[rng.skewed(WORDS.len())]).collect();
        // No phrase made only of function words ("the to a"): real triggers carry content.
        if words.iter().all(|w| w.len() <= 3) {
            continue;
        }
        let phrase = words.join(" ");
        if seen.insert(phrase.clone()) {
            out.push(phrase);
        }
    }
    out
}

pub const SEED: u64 = 0x00c0_ffee_dec0_0001;

/// Phrases per generated card.
pub const PER_CARD: usize = 10;

/// The generated cards, `PER_CARD` phrases each, one YAML list item per card.
pub fn card_yamls(phrases: &[String]) -> Vec<String> {
    phrases
        .chunks(PER_CARD)
        .enumerate()
        .map(|(i, chunk)| {
            let mut y = format!(
                "- id: gen-{i:06}\n  title: Generated card {i}\n  category: other\n  triggers:\n    any: ["
            );
            for (j, p) in chunk.iter().enumerate() {
                if j > 0 {
                    y.push_str(", ");
                }
                y.push('"');
                y.push_str(p);
                y.push('"');
            }
            y.push_str("]\n  body: generated\n");
            y
        })
        .collect()
}

/// A card library in one YAML file (a list of cards) whose cards carry `PER_CARD`
/// phrases each.
pub fn library_yaml(phrases: &[String]) -> String {
    card_yamls(phrases).concat()
}

/// The same cards one file each (`gen-000000.yaml`, …), as a card directory in git holds
/// them (the bundled cards are one per file).
pub fn library_files(phrases: &[String]) -> Vec<(String, String)> {
    card_yamls(phrases)
        .into_iter()
        .enumerate()
        .map(|(i, y)| (format!("gen-{i:06}.yaml"), y))
        .collect()
}

/// Final transcript texts of the bundled demo calls.
fn demo_texts() -> Vec<String> {
    let mut out = Vec::new();
    for file in [
        include_str!("../../battlecards/demo/demo-new-deal.jsonl"),
        include_str!("../../battlecards/demo/demo-renewal.jsonl"),
    ] {
        for line in file.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if v["type"] == "transcript" && v["is_final"] == true {
                if let Some(t) = v["text"].as_str() {
                    out.push(t.to_string());
                }
            }
        }
    }
    out
}

/// Cuts `text` at word boundaries into pieces of about `target` bytes.
fn chunks(text: &str, target: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for w in text.split_whitespace() {
        if !cur.is_empty() && cur.len() + 1 + w.len() > target + 10 {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if cur.len() >= target / 2 {
        out.push(cur);
    }
    out
}

/// The fixed corpus: 32 pieces of the demo calls' real dialogue (~90 bytes each) and 32
/// generated utterances of filler and vocabulary words, half of which carry one of the
/// first 1,000 generated phrases (so every library size has hits). 64 utterances.
pub fn corpus() -> Vec<String> {
    let mut out: Vec<String> = demo_texts()
        .iter()
        .flat_map(|t| chunks(t, 90))
        .filter(|c| c.len() >= 60)
        .take(32)
        .collect();
    let planted = phrases(1000, SEED);
    let mut rng = Rng::new(SEED ^ 0x5eed);
    let mut i = 0;
    while out.len() < 64 {
        let mut s = String::new();
        let plant = i % 2 == 0;
        let at = rng.below(60);
        let mut did_plant = false;
        while s.len() < 88 {
            if !s.is_empty() {
                s.push(' ');
            }
            if plant && !did_plant && s.len() >= at {
                let p = &planted[rng.below(planted.len())];
                // Capitalized, as a speech-to-text engine would write a sentence start.
                let mut c = p.chars();
                if s.is_empty() {
                    if let Some(first) = c.next() {
                        s.extend(first.to_uppercase());
                    }
                }
                s.push_str(c.as_str());
                did_plant = true;
            } else if rng.below(3) == 0 {
                s.push_str(WORDS[rng.skewed(WORDS.len())]);
            } else {
                s.push_str(FILLER[rng.below(FILLER.len())]);
            }
        }
        s.push(if rng.below(4) == 0 { '?' } else { ',' });
        out.push(s);
        i += 1;
    }
    out
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
