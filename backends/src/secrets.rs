//! Keeping secrets (API keys, `--header` values) out of every text charter writes.
//!
//! Error texts quote what a server sent back, and careless servers and proxies echo request
//! headers. Two rules make the scrub hold whatever the server does:
//!
//! - Every run of text covered by an occurrence of any [`MIN_FRAGMENT`]-byte piece of a secret
//!   is replaced, so a key cut by a truncation (ours, the server's, a proxy's) cannot leak a
//!   prefix of that length or longer. A secret shorter than that is matched whole.
//! - Scrubbing comes before any cut: [`Secrets::clip`] scrubs and shortens in one pass, so a key
//!   that straddles the cut point is redacted, never halved.

/// The shortest piece of a secret that is redacted where it appears on its own.
pub const MIN_FRAGMENT: usize = 8;

/// What stands in for a secret.
pub const REDACTED: &str = "[redacted]";

/// The secrets a client holds, ready to be scrubbed from texts.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// Every distinct `MIN_FRAGMENT`-byte window of every secret (or the whole secret when it is
    /// shorter), sorted for binary search.
    grams: Vec<Vec<u8>>,
    /// The shortest gram length; texts are probed at every byte with each length present.
    lens: Vec<usize>,
}

impl Secrets {
    /// No secrets: texts pass unchanged (still cut by [`clip`](Self::clip)).
    pub fn none() -> Self {
        Self::default()
    }

    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut grams = Vec::new();
        for s in secrets {
            let b = s.as_ref().as_bytes();
            if b.is_empty() {
                continue;
            }
            let n = b.len().min(MIN_FRAGMENT);
            grams.extend(b.windows(n).map(<[u8]>::to_vec));
        }
        grams.sort();
        grams.dedup();
        let mut lens: Vec<usize> = grams.iter().map(Vec::len).collect();
        lens.sort_unstable();
        lens.dedup();
        Self { grams, lens }
    }

    pub fn is_empty(&self) -> bool {
        self.grams.is_empty()
    }

    /// `text` with every secret (and every piece of one of [`MIN_FRAGMENT`] bytes or more)
    /// replaced by [`REDACTED`].
    pub fn scrub(&self, text: &str) -> String {
        self.scrub_limited(text, usize::MAX).0
    }

    /// At most `max_chars` characters of the scrubbed `text`, with `…` when it was cut.
    pub fn clip(&self, text: &str, max_chars: usize) -> String {
        // A character is at most 4 bytes; the scrub stops once the output can hold the cut.
        let (s, stopped) = self.scrub_limited(text, max_chars.saturating_mul(4).saturating_add(4));
        let mut out: String = s.chars().take(max_chars).collect();
        if stopped || out.len() < s.len() {
            out.push('…');
        }
        out
    }

    /// Scrub until the output holds `max_out` bytes; also says whether it stopped early.
    fn scrub_limited(&self, text: &str, max_out: usize) -> (String, bool) {
        let b = text.as_bytes();
        if self.grams.is_empty() {
            let cut = b.len().min(max_out);
            return (
                String::from_utf8_lossy(&b[..cut]).into_owned(),
                cut < b.len(),
            );
        }
        let mut out = Vec::with_capacity(b.len().min(max_out));
        // Bytes before `covered` are inside an occurrence of a secret's piece. A match starting
        // at `i` only covers bytes from `i` on, so byte `i`'s fate is known once starts up to
        // `i` have been probed.
        let mut covered = 0usize;
        let mut in_redaction = false;
        for i in 0..b.len() {
            if out.len() >= max_out {
                return (String::from_utf8_lossy(&out).into_owned(), true);
            }
            for &n in &self.lens {
                if let Some(w) = b.get(i..i + n) {
                    if self.grams.binary_search_by(|g| g.as_slice().cmp(w)).is_ok() {
                        covered = covered.max(i + n);
                    }
                }
            }
            if i < covered {
                if !in_redaction {
                    out.extend_from_slice(REDACTED.as_bytes());
                    in_redaction = true;
                }
            } else {
                in_redaction = false;
                out.push(b[i]);
            }
        }
        (String::from_utf8_lossy(&out).into_owned(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-live-0123456789abcdefghijKLMNOP";

    #[test]
    fn whole_and_partial_keys_are_redacted() {
        let s = Secrets::new([KEY]);
        assert_eq!(s.scrub(&format!("key {KEY} end")), "key [redacted] end");
        // A prefix of 8 or more bytes, as a truncation elsewhere would leave it.
        assert_eq!(s.scrub(&format!("cut {}", &KEY[..8])), "cut [redacted]");
        assert_eq!(s.scrub(&format!("{}…", &KEY[5..20])), "[redacted]…");
        // 7 bytes are below the threshold and stay.
        assert_eq!(s.scrub(&KEY[..7]), &KEY[..7]);
        // Two adjacent pieces become one redaction.
        assert_eq!(
            s.scrub(&format!("{}{}", &KEY[..10], &KEY[12..30])),
            "[redacted]"
        );
        assert_eq!(s.scrub("nothing here"), "nothing here");
    }

    #[test]
    fn short_secrets_match_whole() {
        let s = Secrets::new(["abc12", ""]);
        assert_eq!(s.scrub("x abc12 y abc1"), "x [redacted] y abc1");
        assert!(Secrets::new([""]).is_empty());
    }

    #[test]
    fn a_cut_never_halves_a_key() {
        let s = Secrets::new([KEY]);
        for cut in 1..120 {
            for at in 0..100 {
                let text = format!("{}{KEY}{}", "x".repeat(at), "y".repeat(50));
                // Exactly the cut of the scrubbed text: a cut first would leave a stub of the key.
                let scrubbed = format!("{}{REDACTED}{}", "x".repeat(at), "y".repeat(50));
                let mut want: String = scrubbed.chars().take(cut).collect();
                if want.len() < scrubbed.len() {
                    want.push('…');
                }
                assert_eq!(s.clip(&text, cut), want, "cut {cut} at {at}");
            }
        }
    }

    #[test]
    fn clip_marks_a_cut() {
        let s = Secrets::none();
        assert_eq!(s.clip("abcdef", 3), "abc…");
        assert_eq!(s.clip("abc", 3), "abc");
        assert_eq!(s.clip("ééé", 2), "éé…");
    }
}
