//! NodeClaims this process created that its watch has not shown yet.
//!
//! A loaded API server delivers watch events late: in the KWOK drift scenario on a 2-core
//! machine, 450 claims created at once were still missing from the watch 30 s later, three
//! times in one scale-out. The provisioner must count the claims it just created or its next
//! plan launches their pods again; waiting for the watch stalled provisioning, and giving up
//! after 30 s launched about 40 claims twice each time. The answer to the create call is the
//! object as stored, so the index takes it at once (upstream Karpenter's cluster state likewise
//! takes a NodeClaim as soon as it is created).
//!
//! The watch stays the authority: its event for the name replaces the object or removes it, a
//! relist keeps an unseen claim only while it is young, and a claim the watch never shows is
//! dropped after [`UNSEEN_TTL_MS`]. A creation answered after the watch already showed the
//! claim deleted (a launch refused at once) does not bring it back.

use std::collections::BTreeMap;
use std::sync::Arc;

use tandem_api::karpenter::NodeClaim;
use tokio::sync::mpsc;

/// How long a created claim counts without the watch showing it.
pub const UNSEEN_TTL_MS: i64 = 120_000;

/// Where the controllers send the NodeClaims they created; cheap to clone.
#[derive(Debug, Clone)]
pub struct CreatedClaims {
    tx: mpsc::UnboundedSender<NodeClaim>,
}

impl CreatedClaims {
    /// A sender and the receiver the index's writer task reads.
    pub(crate) fn channel() -> (CreatedClaims, mpsc::UnboundedReceiver<NodeClaim>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (CreatedClaims { tx }, rx)
    }

    /// Hands a claim the API server just stored (the create call's answer) to the index. A
    /// writer that has stopped is ignored: nothing reads the state any more.
    pub fn record(&self, claim: NodeClaim) {
        let _ = self.tx.send(claim);
    }
}

/// The index's bookkeeping of created claims not confirmed by the watch, and of claims the
/// watch showed deleted (so that a late creation answer is not taken for a live claim).
#[derive(Debug, Default)]
pub(crate) struct Unconfirmed {
    /// Name → (taken at, the object as created).
    unseen: BTreeMap<String, (i64, Arc<NodeClaim>)>,
    /// Name → when the watch showed it deleted.
    gone: BTreeMap<String, i64>,
}

impl Unconfirmed {
    /// Whether a created claim should be taken into the index at `now_ms`: not when the watch
    /// showed it already (`known`) or showed it deleted. Records it as unseen when taken.
    pub(crate) fn take(
        &mut self,
        name: &str,
        claim: &Arc<NodeClaim>,
        known: bool,
        now_ms: i64,
    ) -> bool {
        if known || self.gone.contains_key(name) {
            return false;
        }
        self.unseen.insert(name.to_owned(), (now_ms, claim.clone()));
        true
    }

    /// The watch showed the claim (any event but a deletion).
    pub(crate) fn seen(&mut self, name: &str) {
        self.unseen.remove(name);
    }

    /// The watch showed the claim deleted.
    pub(crate) fn deleted(&mut self, name: &str, now_ms: i64) {
        self.unseen.remove(name);
        self.gone.insert(name.to_owned(), now_ms);
    }

    /// After a relist that did not contain them: the unseen claims still young enough to keep.
    /// Those the list contained are confirmed.
    pub(crate) fn after_relist(
        &mut self,
        listed: impl Fn(&str) -> bool,
    ) -> Vec<(String, Arc<NodeClaim>)> {
        self.unseen.retain(|name, _| !listed(name));
        self.unseen
            .iter()
            .map(|(name, (_, claim))| (name.clone(), claim.clone()))
            .collect()
    }

    /// Forgets what is older than [`UNSEEN_TTL_MS`]; returns the unseen names to remove from
    /// the index.
    pub(crate) fn expire(&mut self, now_ms: i64) -> Vec<String> {
        self.gone.retain(|_, at| now_ms - *at < UNSEEN_TTL_MS);
        let old: Vec<String> = self
            .unseen
            .iter()
            .filter(|(_, (at, _))| now_ms - *at >= UNSEEN_TTL_MS)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &old {
            self.unseen.remove(name);
        }
        old
    }
}
