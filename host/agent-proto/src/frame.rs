//! Sealed frames, and the two handshakes that start a session.
//!
//! - **Hello** (the very first bytes on a fresh agent's stdin, once): `WPK1`, the key (32
//!   bytes), the session nonce (16 bytes). The agent takes its key from it and never again.
//! - **Resume** (a daemon that restarted, on a new attach): `WPR1`, a new nonce, and the MAC of
//!   that nonce under the key. The agent starts a new session under it.
//! - **Frame** (everything else, both ways): `WPF1`, the payload's length (u32, big-endian), the
//!   sequence number (u64), the MAC (32 bytes), the payload. The MAC is HMAC-SHA256 under the key
//!   of the direction, the session nonce, the sequence number and the payload. Each direction
//!   numbers its frames from 0 in each session.
//!
//! A reader that joins a stream mid-way (a re-attach after the daemon restarted) syncs on the
//! first frame that verifies; once synced, any frame that does not verify, or comes out of
//! order, is an error the caller treats as an attack.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Length of the per-container key.
pub const KEY_LEN: usize = 32;
/// Length of a session nonce.
pub const NONCE_LEN: usize = 16;
/// Longest payload a frame may carry.
pub const MAX_PAYLOAD: usize = 256 << 10;

const HELLO: &[u8; 4] = b"WPK1";
const RESUME: &[u8; 4] = b"WPR1";
const FRAME: &[u8; 4] = b"WPF1";
const MAC_LEN: usize = 32;
const HEADER: usize = 4 + 4 + 8 + MAC_LEN;
/// Length of a hello on the wire.
pub const HELLO_LEN: usize = 4 + KEY_LEN + NONCE_LEN;
/// Length of a resume on the wire.
pub const RESUME_LEN: usize = 4 + NONCE_LEN + MAC_LEN;

/// Which way a frame goes; part of what its MAC covers, so a frame cannot be reflected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Daemon to agent.
    ToAgent,
    /// Agent to daemon.
    ToDaemon,
}

impl Dir {
    fn byte(self) -> u8 {
        match self {
            Dir::ToAgent => 1,
            Dir::ToDaemon => 2,
        }
    }
}

/// What went wrong reading frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A frame did not verify after the stream was in sync: forged or corrupted.
    Forged,
    /// A verified frame out of sequence: replayed or reordered.
    OutOfOrder {
        /// The sequence number expected.
        expected: u64,
        /// The one received.
        got: u64,
    },
    /// A frame announced a payload longer than [`MAX_PAYLOAD`].
    TooLarge(usize),
    /// Nothing verified within the bytes a sync may skip.
    NoSync,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Forged => f.write_str("a frame failed its MAC: forged or corrupted"),
            FrameError::OutOfOrder { expected, got } => {
                write!(
                    f,
                    "frame {got} out of order (expected {expected}): replayed?"
                )
            }
            FrameError::TooLarge(n) => write!(f, "a frame of {n} bytes is over the limit"),
            FrameError::NoSync => f.write_str("no frame verified: the stream is not the agent's"),
        }
    }
}

impl std::error::Error for FrameError {}

fn mac(key: &[u8; KEY_LEN]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC takes any key length")
}

fn frame_mac(
    key: &[u8; KEY_LEN],
    dir: Dir,
    nonce: &[u8; NONCE_LEN],
    seq: u64,
    payload: &[u8],
) -> [u8; MAC_LEN] {
    let mut m = mac(key);
    m.update(&[dir.byte()]);
    m.update(nonce);
    m.update(&seq.to_be_bytes());
    m.update(payload);
    m.finalize().into_bytes().into()
}

fn resume_mac(key: &[u8; KEY_LEN], nonce: &[u8; NONCE_LEN]) -> [u8; MAC_LEN] {
    let mut m = mac(key);
    m.update(b"resume");
    m.update(nonce);
    m.finalize().into_bytes().into()
}

/// The first message of a session: a fresh agent's key and nonce, or a restarted daemon's new
/// nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// The key and the first session's nonce.
    Start {
        /// The per-container key.
        key: [u8; KEY_LEN],
        /// The session nonce.
        nonce: [u8; NONCE_LEN],
    },
    /// A new session's nonce, authenticated under the key the agent already holds.
    Resume {
        /// The new session nonce.
        nonce: [u8; NONCE_LEN],
    },
}

impl Hello {
    /// A fresh agent's hello, on the wire.
    pub fn start(key: &[u8; KEY_LEN], nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
        let mut v = Vec::with_capacity(HELLO_LEN);
        v.extend_from_slice(HELLO);
        v.extend_from_slice(key);
        v.extend_from_slice(nonce);
        v
    }

    /// A restarted daemon's resume, on the wire.
    pub fn resume(key: &[u8; KEY_LEN], nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
        let mut v = Vec::with_capacity(RESUME_LEN);
        v.extend_from_slice(RESUME);
        v.extend_from_slice(nonce);
        v.extend_from_slice(&resume_mac(key, nonce));
        v
    }

    /// Parse a start hello from exactly [`HELLO_LEN`] bytes.
    pub fn parse_start(b: &[u8]) -> Option<Hello> {
        if b.len() != HELLO_LEN || &b[..4] != HELLO {
            return None;
        }
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(&b[4..4 + KEY_LEN]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&b[4 + KEY_LEN..]);
        Some(Hello::Start { key, nonce })
    }

    /// Whether `b` starts with a resume that verifies under `key`; its nonce if so.
    pub fn parse_resume(key: &[u8; KEY_LEN], b: &[u8]) -> Option<[u8; NONCE_LEN]> {
        if b.len() < RESUME_LEN || &b[..4] != RESUME {
            return None;
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&b[4..4 + NONCE_LEN]);
        let want = resume_mac(key, &nonce);
        bool::from(want.ct_eq(&b[4 + NONCE_LEN..RESUME_LEN])).then_some(nonce)
    }
}

/// Seals payloads into frames for one direction of one session.
pub struct Sealer {
    key: [u8; KEY_LEN],
    nonce: [u8; NONCE_LEN],
    dir: Dir,
    seq: u64,
}

impl Sealer {
    /// A sealer for `dir` in the session `nonce`.
    pub fn new(key: [u8; KEY_LEN], nonce: [u8; NONCE_LEN], dir: Dir) -> Self {
        Self {
            key,
            nonce,
            dir,
            seq: 0,
        }
    }

    /// The next frame carrying `payload` (at most [`MAX_PAYLOAD`] bytes).
    pub fn seal(&mut self, payload: &[u8]) -> Vec<u8> {
        assert!(payload.len() <= MAX_PAYLOAD, "payload over the frame limit");
        let seq = self.seq;
        self.seq += 1;
        let mut v = Vec::with_capacity(HEADER + payload.len());
        v.extend_from_slice(FRAME);
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&frame_mac(&self.key, self.dir, &self.nonce, seq, payload));
        v.extend_from_slice(payload);
        v
    }
}

/// Reads frames of one direction of one session from a byte stream, fed as it arrives.
pub struct Opener {
    key: [u8; KEY_LEN],
    nonce: [u8; NONCE_LEN],
    dir: Dir,
    next: u64,
    synced: bool,
    buf: Vec<u8>,
    start: usize,
    /// Bytes skipped while syncing.
    skipped: usize,
}

/// Bytes a reader may skip looking for its first frame: what the previous session may have
/// left in flight.
const SYNC_BUDGET: usize = 8 << 20;

impl Opener {
    /// An opener for `dir` in the session `nonce`. `synced`: the stream starts at a frame (a
    /// fresh session); otherwise the first frame that verifies syncs it (a re-attach).
    pub fn new(key: [u8; KEY_LEN], nonce: [u8; NONCE_LEN], dir: Dir, synced: bool) -> Self {
        Self {
            key,
            nonce,
            dir,
            next: 0,
            synced,
            buf: Vec::new(),
            start: 0,
            skipped: 0,
        }
    }

    /// Add bytes read from the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes fed but not yet read as frames.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Take `n` raw bytes from the front (a hello, which is not a frame).
    pub fn take_raw(&mut self, n: usize) -> Option<Vec<u8>> {
        let p = self.pending();
        if p.len() < n {
            return None;
        }
        let v = p[..n].to_vec();
        self.start += n;
        Some(v)
    }

    /// Start a new session (a resume): frames of the old one no longer verify, and the stream
    /// is in sync at the next byte.
    pub fn rekey(&mut self, nonce: [u8; NONCE_LEN]) {
        self.nonce = nonce;
        self.next = 0;
        self.synced = true;
    }

    /// The next whole frame's payload, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            let p = &self.buf[self.start..];
            if p.len() < 4 {
                return Ok(None);
            }
            if &p[..4] != FRAME {
                if self.synced {
                    return Err(FrameError::Forged);
                }
                self.skip()?;
                continue;
            }
            if p.len() < HEADER {
                return Ok(None);
            }
            let len = u32::from_be_bytes(p[4..8].try_into().expect("4 bytes")) as usize;
            if len > MAX_PAYLOAD {
                if self.synced {
                    return Err(FrameError::TooLarge(len));
                }
                self.skip()?;
                continue;
            }
            if p.len() < HEADER + len {
                return Ok(None);
            }
            let seq = u64::from_be_bytes(p[8..16].try_into().expect("8 bytes"));
            let payload = &p[HEADER..HEADER + len];
            let want = frame_mac(&self.key, self.dir, &self.nonce, seq, payload);
            if !bool::from(want.ct_eq(&p[16..HEADER])) {
                if self.synced {
                    return Err(FrameError::Forged);
                }
                self.skip()?;
                continue;
            }
            if seq != self.next {
                return Err(FrameError::OutOfOrder {
                    expected: self.next,
                    got: seq,
                });
            }
            let payload = payload.to_vec();
            self.start += HEADER + len;
            self.next += 1;
            self.synced = true;
            return Ok(Some(payload));
        }
    }

    fn skip(&mut self) -> Result<(), FrameError> {
        self.start += 1;
        self.skipped += 1;
        if self.skipped > SYNC_BUDGET {
            return Err(FrameError::NoSync);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: [u8; KEY_LEN] = [7; KEY_LEN];
    const N: [u8; NONCE_LEN] = [9; NONCE_LEN];

    #[test]
    fn frames_round_trip_in_order() {
        let mut s = Sealer::new(K, N, Dir::ToDaemon);
        let mut o = Opener::new(K, N, Dir::ToDaemon, true);
        let (a, b) = (s.seal(b"one"), s.seal(b"two"));
        o.feed(&a[..5]);
        assert_eq!(o.next_frame(), Ok(None), "half a frame waits");
        o.feed(&a[5..]);
        o.feed(&b);
        assert_eq!(o.next_frame().unwrap().unwrap(), b"one");
        assert_eq!(o.next_frame().unwrap().unwrap(), b"two");
        assert_eq!(o.next_frame(), Ok(None));
    }

    #[test]
    fn a_forged_replayed_or_reflected_frame_is_refused() {
        let mut s = Sealer::new(K, N, Dir::ToDaemon);
        let f = s.seal(b"exit 0");
        // Forged: the wrong key.
        let mut o = Opener::new(K, N, Dir::ToDaemon, true);
        o.feed(&Sealer::new([1; KEY_LEN], N, Dir::ToDaemon).seal(b"exit 0"));
        assert_eq!(o.next_frame(), Err(FrameError::Forged));
        // Tampered.
        let mut t = f.clone();
        *t.last_mut().unwrap() ^= 1;
        let mut o = Opener::new(K, N, Dir::ToDaemon, true);
        o.feed(&t);
        assert_eq!(o.next_frame(), Err(FrameError::Forged));
        // Replayed.
        let mut o = Opener::new(K, N, Dir::ToDaemon, true);
        o.feed(&f);
        o.feed(&f);
        assert!(o.next_frame().unwrap().is_some());
        assert_eq!(
            o.next_frame(),
            Err(FrameError::OutOfOrder {
                expected: 1,
                got: 0
            })
        );
        // Reflected: a frame of the other direction.
        let mut o = Opener::new(K, N, Dir::ToAgent, true);
        o.feed(&f);
        assert_eq!(o.next_frame(), Err(FrameError::Forged));
        // Another session's frame.
        let mut o = Opener::new(K, [3; NONCE_LEN], Dir::ToDaemon, true);
        o.feed(&f);
        assert_eq!(o.next_frame(), Err(FrameError::Forged));
    }

    #[test]
    fn a_reader_joining_mid_stream_syncs_on_the_first_good_frame() {
        let mut old = Sealer::new(K, N, Dir::ToDaemon);
        let stale = old.seal(b"from the last session");
        let new_nonce = [4; NONCE_LEN];
        let mut s = Sealer::new(K, new_nonce, Dir::ToDaemon);
        let mut o = Opener::new(K, new_nonce, Dir::ToDaemon, false);
        o.feed(&stale[7..]);
        o.feed(&stale);
        o.feed(&s.seal(b"ready"));
        assert_eq!(o.next_frame().unwrap().unwrap(), b"ready");
        // Synced now: a stale frame is an attack.
        o.feed(&stale);
        assert_eq!(o.next_frame(), Err(FrameError::Forged));
    }

    #[test]
    fn hellos() {
        let h = Hello::start(&K, &N);
        assert_eq!(
            Hello::parse_start(&h),
            Some(Hello::Start { key: K, nonce: N })
        );
        let r = Hello::resume(&K, &[5; NONCE_LEN]);
        assert_eq!(Hello::parse_resume(&K, &r), Some([5; NONCE_LEN]));
        assert_eq!(
            Hello::parse_resume(&[0; KEY_LEN], &r),
            None,
            "needs the key"
        );
        assert_eq!(Hello::parse_start(&r), None);
    }
}
