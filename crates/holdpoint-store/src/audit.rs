//! The audit log's events in one hash chain, signed checkpoints, and the key that signs them
//! (how events are laid out in the database: [`crate::pack`]).
//!
//! The store does not know what an event means: the gateway builds the event (the Kubernetes
//! `audit.k8s.io/v1` Event with Holdpoint's fields, as JSON text) and the encoded bodies; the
//! store assigns the sequence number and the session of callers without a session header, and
//! chains the event. Everything an event has is covered by its hash (`event_hash`): each hash
//! covers the previous hash, so editing, deleting, inserting or reordering an event breaks the
//! chain at that point. A signed checkpoint (`AuditSigner`) binds a sequence number to the chain's
//! hash there, so whoever can write to the database still cannot rewrite history up to a
//! checkpoint without the key. [`crate::Store::verify_audit`] walks it all.

use std::fmt;
use std::path::Path;

use jiff::Timestamp;
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use sha2::{Digest, Sha256};

use crate::StoreError;

/// The hash before the first event.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// Which session a new event belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionKey {
    /// A session the caller named (`Kubectl-Session`, `Holdpoint-Session`), or that the event
    /// inherits (an approved request executed later): the id is used as given.
    Fixed(String),
    /// No header: the caller's open session, or a new one when the caller's last event is older
    /// than the session gap. The string identifies the caller (username, or the source address
    /// of an unauthenticated request).
    Gap(String),
}

/// An event to append. `event` is the event as JSON text; the bodies are already masked and
/// encoded by the caller. Everything here is covered by the event's hash.
#[derive(Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    /// The request's id (`auditID`); several events (stages) may share one.
    pub audit_id: String,
    /// `request` (the data path), `admin` (reviewer and admin actions), `execution` (an approved
    /// request the gateway sent itself), `stream` (an exec/attach/port-forward recording).
    pub kind: String,
    /// The stage time.
    pub at: Timestamp,
    /// The authenticated caller, if any.
    pub username: Option<String>,
    /// The session.
    pub session: SessionKey,
    /// The event (JSON text).
    pub event: String,
    /// The masked, encoded request body.
    pub request_body: Option<Vec<u8>>,
    /// The masked, encoded response body (or stream recording).
    pub response_body: Option<Vec<u8>>,
}

/// Bodies may hold (masked) payloads: `Debug` shows only their sizes.
impl fmt::Debug for NewAuditEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAuditEvent")
            .field("audit_id", &self.audit_id)
            .field("kind", &self.kind)
            .field("at", &self.at)
            .field("username", &self.username)
            .field("session", &self.session)
            .field(
                "request_body_len",
                &self.request_body.as_ref().map(Vec::len),
            )
            .field(
                "response_body_len",
                &self.response_body.as_ref().map(Vec::len),
            )
            .finish_non_exhaustive()
    }
}

/// Where an appended event went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendedEvent {
    /// Its position in the chain (1, 2, ...).
    pub seq: i64,
    /// Its session.
    pub session_id: String,
    /// Its hash.
    pub hash: [u8; 32],
}

/// A stored event.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Position in the chain.
    pub seq: i64,
    /// The request's id.
    pub audit_id: String,
    /// See [`NewAuditEvent::kind`].
    pub kind: String,
    /// The stage time.
    pub at: Timestamp,
    /// The caller.
    pub username: Option<String>,
    /// The session.
    pub session_id: String,
    /// The event (JSON text).
    pub event: String,
    /// The masked, encoded request body.
    pub request_body: Option<Vec<u8>>,
    /// The masked, encoded response body.
    pub response_body: Option<Vec<u8>>,
    /// The hash of the event before.
    pub prev_hash: Vec<u8>,
    /// This event's hash.
    pub hash: Vec<u8>,
}

impl fmt::Debug for AuditEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditEvent")
            .field("seq", &self.seq)
            .field("audit_id", &self.audit_id)
            .field("kind", &self.kind)
            .field("at", &self.at)
            .field("username", &self.username)
            .field("session_id", &self.session_id)
            .field(
                "request_body_len",
                &self.request_body.as_ref().map(Vec::len),
            )
            .field(
                "response_body_len",
                &self.response_body.as_ref().map(Vec::len),
            )
            .field("hash", &crate::types::hex(&self.hash))
            .finish_non_exhaustive()
    }
}

impl AuditEvent {
    /// The hash this event's contents give after `prev` ([`event_hash`]).
    pub fn computed_hash(&self, prev: &[u8]) -> [u8; 32] {
        event_hash(
            prev,
            &EventContent {
                audit_id: &self.audit_id,
                kind: &self.kind,
                at: self.at,
                username: self.username.as_deref(),
                session_id: &self.session_id,
                event: &self.event,
                request_body: self.request_body.as_deref(),
                response_body: self.response_body.as_deref(),
            },
        )
    }
}

/// The hashed contents of an event.
#[derive(Debug, Clone, Copy)]
pub struct EventContent<'a> {
    /// See [`AuditEvent`].
    pub audit_id: &'a str,
    /// See [`AuditEvent`].
    pub kind: &'a str,
    /// See [`AuditEvent`].
    pub at: Timestamp,
    /// See [`AuditEvent`].
    pub username: Option<&'a str>,
    /// See [`AuditEvent`].
    pub session_id: &'a str,
    /// See [`AuditEvent`].
    pub event: &'a str,
    /// See [`AuditEvent`].
    pub request_body: Option<&'a [u8]>,
    /// See [`AuditEvent`].
    pub response_body: Option<&'a [u8]>,
}

/// An event's hash: SHA-256 over a version tag, the previous hash and every column of the
/// event, each length-prefixed (absent values marked), so no two different events hash alike.
/// The sequence number is not hashed: order is what the chain of hashes says, and `seq` only
/// locates an event (a checkpoint signs both).
pub fn event_hash(prev: &[u8], e: &EventContent<'_>) -> [u8; 32] {
    fn field(h: &mut Sha256, v: Option<&[u8]>) {
        match v {
            Some(v) => {
                h.update([1u8]);
                h.update((v.len() as u64).to_be_bytes());
                h.update(v);
            }
            None => h.update([0u8]),
        }
    }
    let mut h = Sha256::new();
    h.update(b"holdpoint-audit-v1\0");
    field(&mut h, Some(prev));
    field(&mut h, Some(e.audit_id.as_bytes()));
    field(&mut h, Some(e.kind.as_bytes()));
    h.update(e.at.as_microsecond().to_be_bytes());
    field(&mut h, e.username.map(str::as_bytes));
    field(&mut h, Some(e.session_id.as_bytes()));
    field(&mut h, Some(e.event.as_bytes()));
    field(&mut h, e.request_body);
    field(&mut h, e.response_body);
    h.finalize().into()
}

/// A signed checkpoint: the chain's hash at `seq`, signed by `key_id`'s key.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditCheckpoint {
    /// The event it covers (and every event before it).
    pub seq: i64,
    /// That event's hash.
    pub hash: Vec<u8>,
    /// When it was signed.
    pub at: Timestamp,
    /// Which key signed it ([`AuditPublicKey::key_id`]).
    pub key_id: String,
    /// Ed25519 signature over [`checkpoint_message`].
    pub signature: Vec<u8>,
}

impl fmt::Debug for AuditCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditCheckpoint")
            .field("seq", &self.seq)
            .field("hash", &crate::types::hex(&self.hash))
            .field("at", &self.at)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// What a checkpoint's signature covers.
pub fn checkpoint_message(seq: i64, hash: &[u8], at: Timestamp) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + 8 + hash.len() + 8);
    m.extend_from_slice(b"holdpoint-audit-checkpoint-v1\0");
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&(hash.len() as u64).to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(&at.as_microsecond().to_be_bytes());
    m
}

/// The Ed25519 key that signs checkpoints. Kept in a file (PKCS#8, mode 0600) in the gateway's
/// data directory or where the config says. `Debug` never shows the key.
pub struct AuditSigner {
    pair: Ed25519KeyPair,
    public: AuditPublicKey,
}

impl fmt::Debug for AuditSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditSigner")
            .field("key_id", &self.public.key_id())
            .finish_non_exhaustive()
    }
}

impl AuditSigner {
    /// Reads the key at `path`, or creates one there (mode 0600) when the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, StoreError> {
        match std::fs::read(path) {
            Ok(pkcs8) => Self::from_pkcs8(&pkcs8),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let rng = ring::rand::SystemRandom::new();
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
                    .map_err(|_| StoreError::Invalid("cannot generate an Ed25519 key".into()))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| key_io(path, &e))?;
                }
                write_private(path, pkcs8.as_ref()).map_err(|e| key_io(path, &e))?;
                Self::from_pkcs8(pkcs8.as_ref())
            }
            Err(e) => Err(key_io(path, &e)),
        }
    }

    /// Reads an existing key (fails when the file is missing).
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        let pkcs8 = std::fs::read(path).map_err(|e| key_io(path, &e))?;
        Self::from_pkcs8(&pkcs8)
    }

    /// A key from PKCS#8 DER.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, StoreError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|_| {
            StoreError::Invalid("the audit signing key is not Ed25519 PKCS#8".into())
        })?;
        let public = AuditPublicKey::from_bytes(pair.public_key().as_ref())?;
        Ok(Self { pair, public })
    }

    /// The public half (to verify with).
    pub fn public_key(&self) -> &AuditPublicKey {
        &self.public
    }

    /// Signs a checkpoint of `seq`/`hash` at `at`.
    pub fn sign(&self, seq: i64, hash: &[u8], at: Timestamp) -> AuditCheckpoint {
        let sig = self.pair.sign(&checkpoint_message(seq, hash, at));
        AuditCheckpoint {
            seq,
            hash: hash.to_vec(),
            at,
            key_id: self.public.key_id().to_owned(),
            signature: sig.as_ref().to_vec(),
        }
    }
}

fn key_io(path: &Path, e: &std::io::Error) -> StoreError {
    StoreError::Invalid(format!(
        "audit signing key {}: {}",
        path.display(),
        e.kind()
    ))
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// An Ed25519 public key that checkpoints are verified with; `key_id` is the first 8 bytes of
/// its SHA-256 in hex.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditPublicKey {
    bytes: Vec<u8>,
    key_id: String,
}

impl fmt::Debug for AuditPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditPublicKey")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl AuditPublicKey {
    /// From the 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.len() != 32 {
            return Err(StoreError::Invalid(
                "an Ed25519 public key has 32 bytes".into(),
            ));
        }
        let key_id = crate::types::hex(&Sha256::digest(bytes)[..8]);
        Ok(Self {
            bytes: bytes.to_vec(),
            key_id,
        })
    }

    /// From base64 (standard alphabet, as `holdpoint audit public-key` prints it).
    pub fn from_base64(text: &str) -> Result<Self, StoreError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| StoreError::Invalid("the public key is not base64".into()))?;
        Self::from_bytes(&bytes)
    }

    /// Base64 of the raw key.
    pub fn to_base64(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&self.bytes)
    }

    /// The key's id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Whether `cp` carries a valid signature by this key.
    pub fn verifies(&self, cp: &AuditCheckpoint) -> bool {
        cp.key_id == self.key_id
            && signature::UnparsedPublicKey::new(&signature::ED25519, &self.bytes)
                .verify(&checkpoint_message(cp.seq, &cp.hash, cp.at), &cp.signature)
                .is_ok()
    }
}

/// Which events to read; oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only events after this sequence number (paging).
    pub after_seq: Option<i64>,
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// Only events before this time.
    pub until: Option<Timestamp>,
    /// Only this caller's.
    pub username: Option<String>,
    /// Only this session's.
    pub session_id: Option<String>,
    /// Only this request's. Not indexed: on a long log, combine it with a time range or a
    /// session.
    pub audit_id: Option<String>,
    /// Leave the bodies out (listing).
    pub without_bodies: bool,
    /// At most this many (at most 10,000).
    pub limit: u32,
}

impl Default for AuditFilter {
    fn default() -> Self {
        Self {
            after_seq: None,
            since: None,
            until: None,
            username: None,
            session_id: None,
            audit_id: None,
            without_bodies: false,
            limit: 1000,
        }
    }
}

/// The chain head as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    /// The last event's sequence number (0: none yet).
    pub seq: i64,
    /// Its hash.
    pub hash: Vec<u8>,
}
