//! Replay nonces (RFC 8555 §6.5): random, each accepted once. Held in memory: a restart (or
//! another process behind the same name) answers badNonce, and clients retry with a fresh one.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Unused nonces, and the order they were issued in (for dropping the oldest).
type Pool = (HashSet<[u8; 16]>, VecDeque<[u8; 16]>);

/// Nonces handed out and not yet used, oldest dropped first beyond `cap`.
pub(crate) struct Nonces {
    inner: Mutex<Pool>,
    cap: usize,
}

impl Nonces {
    pub fn new(cap: usize) -> Self {
        Self {
            inner: Mutex::new((HashSet::new(), VecDeque::new())),
            cap,
        }
    }

    /// A fresh nonce, base64url.
    pub fn issue(&self) -> String {
        let mut n = [0u8; 16];
        // aws-lc's RNG does not fail in practice; a zero nonce would only be refused later.
        let _ = aws_lc_rs::rand::fill(&mut n);
        {
            let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let (set, order) = &mut *g;
            if set.insert(n) {
                order.push_back(n);
            }
            while order.len() > self.cap {
                if let Some(old) = order.pop_front() {
                    set.remove(&old);
                }
            }
        }
        super::b64(&n)
    }

    /// Uses up `text`: true once for each nonce this server issued.
    pub fn consume(&self, text: &str) -> bool {
        let Some(n) = super::unb64(text).and_then(|b| <[u8; 16]>::try_from(b).ok()) else {
            return false;
        };
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // The queue entry stays until it ages out; its set entry is what counts.
        g.0.remove(&n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_each_and_bounded() {
        let n = Nonces::new(3);
        let a = n.issue();
        assert!(n.consume(&a));
        assert!(!n.consume(&a), "a replayed nonce is refused");
        assert!(!n.consume("AAAA"));
        let old = n.issue();
        for _ in 0..3 {
            n.issue();
        }
        assert!(!n.consume(&old), "aged out");
    }
}
