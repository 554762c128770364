//! `audit verify`: walks the hash chain and the signed checkpoints and says where they break.
//!
//! For each event, oldest first: its contents must give its hash after its `prev_hash` (else it
//! was **edited**), and its `prev_hash` must be the hash of the event before it. When that link
//! breaks, the neighbours tell how: a gap in the sequence numbers, or a link to nothing nearby,
//! is a **deleted** event; a link to the next event's hash is two events **reordered**; a link to
//! the hash two events back is an **inserted** event. A checkpoint must carry a valid signature
//! of a trusted key over the hash its event has (else the events up to it were rewritten, even if
//! the chain was recomputed to look whole). Checkpoints or a chain head beyond the last event
//! mean the tail was **truncated**. A chain that does not start at event 1 must start right after
//! a signed checkpoint that a `prune` event in the chain accounts for.
//!
//! What it cannot see: whoever holds the signing key, or changes the tail after the last
//! checkpoint together with the chain head, can rewrite that tail (at most
//! `checkpoint_every_events` events or `checkpoint_interval` of time); sinks outside the database
//! (issue 6's JSON-lines file and webhook) carry the checkpoints away for that reason.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;

use crate::audit::{AuditCheckpoint, AuditEvent, AuditFilter, AuditPublicKey, GENESIS_HASH};
use crate::{Store, StoreError};

/// The `kind` of the event that records a prune; its JSON carries `holdpoint.prune.firstKept`.
pub const PRUNE_KIND: &str = "prune";

/// The first event a prune record kept, from its JSON.
pub fn prune_first_kept(event_json: &str) -> Option<i64> {
    serde_json::from_str::<serde_json::Value>(event_json)
        .ok()?
        .pointer("/holdpoint/prune/firstKept")?
        .as_i64()
}

/// What kind of damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProblemKind {
    /// An event's contents do not give its hash.
    Edited,
    /// One or more events are missing.
    Deleted,
    /// An event was added that the chain does not account for.
    Inserted,
    /// Events are out of order.
    Reordered,
    /// Events at the end are missing.
    Truncated,
    /// A checkpoint is not signed by a trusted key, or signs a different hash.
    Checkpoint,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Edited => "edited",
            Self::Deleted => "deleted",
            Self::Inserted => "inserted",
            Self::Reordered => "reordered",
            Self::Truncated => "truncated",
            Self::Checkpoint => "checkpoint",
        })
    }
}

/// One place where the log does not hold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The sequence number where it shows.
    pub seq: i64,
    /// What.
    pub kind: ProblemKind,
    /// Explanation.
    pub detail: String,
}

/// What `verify_audit` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// Events whose hash and link were checked.
    pub events: u64,
    /// The first and last event checked.
    pub first_seq: Option<i64>,
    /// See `first_seq`.
    pub last_seq: Option<i64>,
    /// Checkpoints whose signature and hash were checked.
    pub checkpoints: u64,
    /// The newest checkpoint that verified.
    pub last_checkpoint: Option<i64>,
    /// No trusted key was given: checkpoints were not checked.
    pub checkpoints_unverified: bool,
    /// Problems found, in chain order (at most [`MAX_PROBLEMS`]).
    pub problems: Vec<Problem>,
    /// More problems than listed.
    pub more_problems: bool,
}

/// The most problems a report lists.
pub const MAX_PROBLEMS: usize = 50;

impl VerifyReport {
    /// No problem found.
    pub fn holds(&self) -> bool {
        self.problems.is_empty()
    }

    /// Events after the newest verified checkpoint (protected by the chain only).
    pub fn unsigned_tail(&self) -> i64 {
        match (self.last_seq, self.last_checkpoint) {
            (Some(last), Some(cp)) => last - cp,
            (Some(last), None) => last - self.first_seq.unwrap_or(1) + 1,
            _ => 0,
        }
    }

    fn add(&mut self, seq: i64, kind: ProblemKind, detail: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem { seq, kind, detail });
        } else {
            self.more_problems = true;
        }
    }
}

/// Rows read per query.
const PAGE: u32 = 5000;

struct Walk<'a> {
    keys: &'a [AuditPublicKey],
    checkpoints: BTreeMap<i64, AuditCheckpoint>,
    report: VerifyReport,
    /// The last two events seen: (seq, hash).
    prev: Option<(i64, Vec<u8>)>,
    prev_prev: Option<Vec<u8>>,
    /// The links of this many next events were already explained (after a reorder).
    skip_links: u8,
    /// The largest `firstKept` of the prune records seen.
    pruned_to: i64,
}

impl Walk<'_> {
    fn check_checkpoint(&mut self, cp: &AuditCheckpoint, event_hash: Option<&[u8]>) {
        if self.keys.is_empty() {
            return;
        }
        self.report.checkpoints += 1;
        let Some(key) = self.keys.iter().find(|k| k.key_id() == cp.key_id) else {
            self.report.add(
                cp.seq,
                ProblemKind::Checkpoint,
                format!(
                    "checkpoint at event {} is signed by key {}, which is not trusted",
                    cp.seq, cp.key_id
                ),
            );
            return;
        };
        if !key.verifies(cp) {
            self.report.add(
                cp.seq,
                ProblemKind::Checkpoint,
                format!(
                    "checkpoint at event {} has an invalid signature (forged or altered)",
                    cp.seq
                ),
            );
            return;
        }
        match event_hash {
            Some(h) if h == cp.hash.as_slice() => {
                self.report.last_checkpoint = Some(cp.seq);
            }
            Some(_) => self.report.add(
                cp.seq,
                ProblemKind::Edited,
                format!(
                    "the events up to {} were rewritten after checkpoint {} signed them (the \
                     chain was recomputed; compare with an exported copy to find which)",
                    cp.seq, cp.seq
                ),
            ),
            None => {}
        }
    }

    fn event(&mut self, e: &AuditEvent, next: Option<&AuditEvent>) {
        self.report.events += 1;
        self.report.first_seq.get_or_insert(e.seq);
        self.report.last_seq = Some(e.seq);
        if e.kind == PRUNE_KIND
            && let Some(first) = prune_first_kept(&e.event)
        {
            self.pruned_to = self.pruned_to.max(first);
        }
        if e.computed_hash(&e.prev_hash).as_slice() != e.hash.as_slice() {
            self.report.add(
                e.seq,
                ProblemKind::Edited,
                format!("event {}: its contents do not match its hash", e.seq),
            );
        }
        match &self.prev {
            None => {}
            Some((prev_seq, prev_hash)) => {
                let prev_seq = *prev_seq;
                let skip = self.skip_links > 0;
                self.skip_links = self.skip_links.saturating_sub(1);
                if e.seq != prev_seq + 1 {
                    self.report.add(
                        prev_seq + 1,
                        ProblemKind::Deleted,
                        format!("events {}..={} are missing", prev_seq + 1, e.seq - 1),
                    );
                } else if e.prev_hash != *prev_hash && !skip {
                    if next.is_some_and(|n| n.hash == e.prev_hash) {
                        self.report.add(
                            e.seq,
                            ProblemKind::Reordered,
                            format!("events {} and {} are in swapped order", e.seq, e.seq + 1),
                        );
                        // The swapped pair's second event and the event after the pair link
                        // across the swap too.
                        self.skip_links = 2;
                    } else if self.prev_prev.as_ref() == Some(&e.prev_hash) {
                        self.report.add(
                            prev_seq,
                            ProblemKind::Inserted,
                            format!(
                                "event {prev_seq} was inserted: the chain goes from event {} to \
                                 event {}",
                                prev_seq - 1,
                                e.seq
                            ),
                        );
                    } else {
                        self.report.add(
                            e.seq,
                            ProblemKind::Deleted,
                            format!(
                                "the event before {} is missing: it links to an event that is \
                                 not there",
                                e.seq
                            ),
                        );
                    }
                }
            }
        }
        if let Some(cp) = self.checkpoints.remove(&e.seq) {
            self.check_checkpoint(&cp, Some(&e.hash));
        }
        self.prev_prev = self.prev.take().map(|(_, h)| h);
        self.prev = Some((e.seq, e.hash.clone()));
    }
}

impl Store {
    /// Walks the chain (from the newest signed checkpoint before `since`, or from the start) and
    /// the checkpoints, verified with `keys` (none: checkpoints are not checked, and the report
    /// says so).
    ///
    /// The gateway may append and prune while the walk reads (`audit verify` on a running
    /// gateway):
    /// - events appended during the walk are walked if seen, and the tail is judged by the head
    ///   read before the walk;
    /// - the first event kept is anchored by the checkpoint its prune wrote, read again when
    ///   the walk finds a first event it has no checkpoint for;
    /// - a walk that found a problem after the first kept event moved under it (another prune)
    ///   is walked again, at most twice more. A real problem is found by every walk.
    pub async fn verify_audit(
        &self,
        keys: &[AuditPublicKey],
        since: Option<Timestamp>,
    ) -> Result<VerifyReport, StoreError> {
        let mut walks = 0;
        loop {
            let first = self.audit_bounds().await?.0;
            let report = self.verify_walk(keys, since).await?;
            walks += 1;
            if report.holds() || walks == 3 || self.audit_bounds().await?.0 == first {
                return Ok(report);
            }
        }
    }

    async fn verify_walk(
        &self,
        keys: &[AuditPublicKey],
        since: Option<Timestamp>,
    ) -> Result<VerifyReport, StoreError> {
        // Every event up to this head existed before the walk read anything; events appended
        // while it reads are walked if seen (the head is read again at the end).
        let head_before = self.audit_head().await?;
        let checkpoints: BTreeMap<i64, AuditCheckpoint> = self
            .audit_checkpoints(0)
            .await?
            .into_iter()
            .map(|c| (c.seq, c))
            .collect();
        // Where to start: the newest verified checkpoint before the first event at `since`.
        let mut start_after: Option<(i64, Vec<u8>)> = None;
        if let Some(since) = since
            && let Some(first) = self.audit_first_seq_since(since).await?
        {
            start_after = checkpoints
                .range(..first)
                .rev()
                .find(|(_, cp)| keys.iter().any(|k| k.verifies(cp)))
                .map(|(seq, cp)| (*seq, cp.hash.clone()));
        }
        let mut walk = Walk {
            keys,
            checkpoints,
            report: VerifyReport {
                checkpoints_unverified: keys.is_empty(),
                ..Default::default()
            },
            prev: None,
            prev_prev: None,
            skip_links: 0,
            pruned_to: 1,
        };
        // Checkpoints before the start are not walked.
        let start_seq = start_after.as_ref().map(|(s, _)| *s).unwrap_or(0);
        walk.checkpoints = walk.checkpoints.split_off(&(start_seq + 1));
        if let Some((seq, hash)) = &start_after {
            walk.report.last_checkpoint = Some(*seq);
            walk.prev = Some((*seq, hash.clone()));
        }

        let mut after = start_seq;
        let mut first_row = true;
        loop {
            let page = self
                .audit_events(&AuditFilter {
                    after_seq: Some(after),
                    limit: PAGE,
                    ..Default::default()
                })
                .await?;
            // The next page's first event, for the reorder check at a page boundary.
            let lookahead = match page.last() {
                Some(last) if page.len() == PAGE as usize => self
                    .audit_events(&AuditFilter {
                        after_seq: Some(last.seq),
                        limit: 1,
                        ..Default::default()
                    })
                    .await?
                    .pop(),
                _ => None,
            };
            if first_row && let Some(first) = page.first() {
                first_row = false;
                if start_after.is_none() {
                    // Retention may have pruned since the checkpoints were read: the checkpoint
                    // that anchors the first event kept is committed with the deletion.
                    if first.seq > 1 && !walk.checkpoints.contains_key(&(first.seq - 1)) {
                        for cp in self.audit_checkpoints(first.seq - 1).await? {
                            walk.checkpoints.entry(cp.seq).or_insert(cp);
                        }
                    }
                    anchor(&mut walk, first);
                }
            }
            for (i, e) in page.iter().enumerate() {
                let next = page.get(i + 1).or(lookahead.as_ref());
                walk.event(e, next);
            }
            match page.last() {
                Some(last) if page.len() == PAGE as usize => after = last.seq,
                _ => break,
            }
        }

        // The start of the chain: event 1, or a prune that the chain records.
        if start_after.is_none()
            && let Some(first) = walk.report.first_seq
            && first > walk.pruned_to
        {
            walk.report.add(
                walk.pruned_to,
                ProblemKind::Deleted,
                format!(
                    "events {}..={} are missing and no prune in the log accounts for them",
                    walk.pruned_to,
                    first - 1
                ),
            );
        }
        // The tail: checkpoints and the chain head beyond the last event.
        let last = walk.report.last_seq.unwrap_or(start_seq);
        let remaining: Vec<AuditCheckpoint> = std::mem::take(&mut walk.checkpoints)
            .into_values()
            .collect();
        for cp in remaining {
            walk.check_checkpoint(&cp, None);
            if cp.seq > last {
                walk.report.add(
                    last + 1,
                    ProblemKind::Truncated,
                    format!(
                        "events {}..={} are missing: checkpoint {} covers them",
                        last + 1,
                        cp.seq,
                        cp.seq
                    ),
                );
                break;
            }
        }
        let head = self.audit_head().await?;
        let last_hash = walk.prev.as_ref().map(|(_, h)| h.clone());
        // The head the walk ends at: the one read now, or (events appended during the walk,
        // after its last page) the one read before it.
        let ends_at = if head.seq == last {
            &head
        } else {
            &head_before
        };
        if head_before.seq > last {
            walk.report.add(
                last + 1,
                ProblemKind::Truncated,
                format!(
                    "events {}..={} are missing (the chain head is at {})",
                    last + 1,
                    head_before.seq,
                    head_before.seq
                ),
            );
        } else if head.seq < last {
            walk.report.add(
                head.seq + 1,
                ProblemKind::Inserted,
                format!(
                    "events {}..={} were added outside the chain (the chain head is at {})",
                    head.seq + 1,
                    last,
                    head.seq
                ),
            );
        } else if ends_at.seq == last
            && last > 0
            && last_hash.as_deref() != Some(ends_at.hash.as_slice())
        {
            walk.report.add(
                last,
                ProblemKind::Edited,
                format!("event {last}'s hash is not the chain head's"),
            );
        }
        walk.report.problems.sort_by_key(|p| p.seq);
        Ok(walk.report)
    }
}

/// The first event's link: the genesis hash for event 1, else a signed checkpoint just before it
/// (written by a prune).
fn anchor(walk: &mut Walk<'_>, first: &AuditEvent) {
    if first.seq == 1 {
        if first.prev_hash != GENESIS_HASH {
            walk.report.add(
                1,
                ProblemKind::Inserted,
                "event 1 does not start the chain (an event before it is missing or it was \
                     inserted)"
                    .into(),
            );
        }
        return;
    }
    match walk.checkpoints.get(&(first.seq - 1)) {
        Some(cp) if cp.hash == first.prev_hash => {
            let cp = cp.clone();
            walk.checkpoints.remove(&cp.seq);
            walk.check_checkpoint(&cp, Some(&first.prev_hash));
        }
        _ => walk.report.add(
            first.seq,
            ProblemKind::Deleted,
            format!(
                "events before {} are missing and no checkpoint anchors event {}",
                first.seq, first.seq
            ),
        ),
    }
}
