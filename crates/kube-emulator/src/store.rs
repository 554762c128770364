//! The object store: every object as a `serde_json::Value` in a `BTreeMap` per resource, keyed by
//! `(namespace, name)`, behind one `RwLock`, with one global resourceVersion counter, a bounded
//! event history for watches that resume from a resourceVersion, and a broadcast channel for live
//! watchers. CRD changes re-derive the custom resources served.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::Value;
use tokio::sync::broadcast;

use crate::error::{ApiError, ApiResult};
use crate::resources::{self, ResourceInfo};

/// Storage key of CRDs.
pub const CRD_KEY: &str = "apiextensions.k8s.io/customresourcedefinitions";
const HISTORY: usize = 20_000;

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// ADDED
    Added,
    /// MODIFIED
    Modified,
    /// DELETED
    Deleted,
}

impl EventType {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as watchers see it.
#[derive(Debug)]
pub struct WatchEvent {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Storage key of the resource.
    pub key: String,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// Type.
    pub kind: EventType,
    /// The object after the change (before, for DELETED, with the deletion's resourceVersion).
    pub object: Value,
}

/// Result of a [`Store::modify`] closure.
#[derive(Debug)]
pub enum Change {
    /// Store a new object.
    Create(Value),
    /// Replace the existing object.
    Update(Value),
    /// Remove the object; the value is what to return (and send in the DELETED event).
    Delete(Value),
    /// Nothing changed; return this.
    Unchanged(Value),
}

/// Live watch events.
pub type EventReceiver = broadcast::Receiver<Arc<WatchEvent>>;

/// Objects of one resource, ordered by `(namespace, name)`.
pub type Table = BTreeMap<(String, String), Value>;

/// The state behind the lock.
#[derive(Debug)]
pub struct Inner {
    /// Last resourceVersion handed out.
    pub rv: u64,
    /// Objects per storage key.
    pub tables: HashMap<String, Table>,
    history: VecDeque<Arc<WatchEvent>>,
    /// Events with rv <= this are no longer in the history.
    history_floor: u64,
    builtins: Vec<ResourceInfo>,
    crd_resources: Vec<ResourceInfo>,
}

/// All emulator state.
#[derive(Debug)]
pub struct Store {
    inner: RwLock<Inner>,
    events: broadcast::Sender<Arc<WatchEvent>>,
}

static EMPTY: std::sync::LazyLock<Table> = std::sync::LazyLock::new(BTreeMap::new);

impl Inner {
    /// Objects of a storage key.
    pub fn table(&self, key: &str) -> &Table {
        self.tables.get(key).unwrap_or(&EMPTY)
    }

    /// Whether a namespace exists.
    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.table("/namespaces")
            .contains_key(&(String::new(), ns.to_string()))
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(16_384);
        Self {
            inner: RwLock::new(Inner {
                rv: 1,
                tables: HashMap::new(),
                history: VecDeque::new(),
                history_floor: 1,
                builtins: resources::builtins(),
                crd_resources: Vec::new(),
            }),
            events,
        }
    }

    /// Read access.
    pub fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Current resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.read().rv
    }

    /// All served resources (built-ins, then custom).
    pub fn all_resources(&self) -> Vec<ResourceInfo> {
        let g = self.read();
        g.builtins
            .iter()
            .chain(g.crd_resources.iter())
            .cloned()
            .collect()
    }

    /// Finds a resource by group, version and plural.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<ResourceInfo> {
        let g = self.read();
        g.builtins
            .iter()
            .chain(g.crd_resources.iter())
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// Finds a resource by apiVersion and kind.
    pub fn resolve_kind(&self, api_version: &str, kind: &str) -> Option<ResourceInfo> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let g = self.read();
        g.builtins
            .iter()
            .chain(g.crd_resources.iter())
            .find(|r| r.group == group && r.version == version && r.kind == kind && !r.is_virtual())
            .cloned()
    }

    /// Clone of one object.
    pub fn get(&self, key: &str, ns: &str, name: &str) -> Option<Value> {
        self.read()
            .table(key)
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Atomically reads, decides and writes one object. `f` gets the current object and the
    /// resourceVersion a write would get. With `dry_run` nothing is stored.
    pub fn modify<F>(
        &self,
        key: &str,
        ns: &str,
        name: &str,
        dry_run: bool,
        f: F,
    ) -> ApiResult<(Value, Option<EventType>)>
    where
        F: FnOnce(Option<&Value>, &Inner, u64) -> ApiResult<Change>,
    {
        let mut g = self.write();
        let k = (ns.to_string(), name.to_string());
        let next = g.rv + 1;
        let change = f(g.table(key).get(&k), &g, next)?;
        let (mut obj, kind) = match change {
            Change::Unchanged(v) => return Ok((v, None)),
            Change::Create(v) => (v, EventType::Added),
            Change::Update(v) => (v, EventType::Modified),
            Change::Delete(v) => (v, EventType::Deleted),
        };
        if dry_run {
            if kind != EventType::Deleted {
                set_rv(&mut obj, "");
                if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
            }
            return Ok((obj, Some(kind)));
        }
        g.rv = next;
        set_rv(&mut obj, &next.to_string());
        let table = g.tables.entry(key.to_string()).or_default();
        if kind == EventType::Deleted {
            table.remove(&k);
        } else {
            table.insert(k, obj.clone());
        }
        self.emit(&mut g, key, ns, name, kind, obj.clone());
        if key == CRD_KEY {
            Self::refresh_crds(&mut g);
        }
        Ok((obj, Some(kind)))
    }

    /// Removes every object of `key` (in `ns` when given) for which `pred` holds, emitting DELETED
    /// events. Returns the removed objects.
    pub fn remove_where(
        &self,
        key: &str,
        ns: Option<&str>,
        pred: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let mut g = self.write();
        let keys: Vec<(String, String)> = g
            .table(key)
            .iter()
            .filter(|((n, _), v)| ns.is_none_or(|want| want == n) && pred(v))
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            g.rv += 1;
            let rv = g.rv;
            let Some(mut obj) = g.tables.get_mut(key).and_then(|t| t.remove(&k)) else {
                continue;
            };
            set_rv(&mut obj, &rv.to_string());
            self.emit(&mut g, key, &k.0, &k.1, EventType::Deleted, obj.clone());
            out.push(obj);
        }
        if key == CRD_KEY {
            Self::refresh_crds(&mut g);
        }
        out
    }

    /// Deletes every namespaced object in `ns` (namespace deletion).
    pub fn purge_namespace(&self, ns: &str) {
        let keys: Vec<String> = self
            .read()
            .tables
            .keys()
            .filter(|k| *k != "/namespaces")
            .cloned()
            .collect();
        for k in keys {
            self.remove_where(&k, Some(ns), |_| true);
        }
    }

    /// Drops all objects of a storage key (CRD deletion).
    pub fn purge_key(&self, key: &str) {
        self.remove_where(key, None, |_| true);
    }

    fn emit(&self, g: &mut Inner, key: &str, ns: &str, name: &str, kind: EventType, object: Value) {
        let ev = Arc::new(WatchEvent {
            rv: g.rv,
            key: key.to_string(),
            namespace: ns.to_string(),
            name: name.to_string(),
            kind,
            object,
        });
        g.history.push_back(ev.clone());
        while g.history.len() > HISTORY {
            if let Some(old) = g.history.pop_front() {
                g.history_floor = old.rv;
            }
        }
        let _ = self.events.send(ev);
    }

    fn refresh_crds(g: &mut Inner) {
        let mut res = Vec::new();
        for crd in g.table(CRD_KEY).values() {
            if crd["metadata"].get("deletionTimestamp").is_some() {
                continue;
            }
            res.extend(resources::from_crd(crd));
        }
        g.crd_resources = res;
    }

    /// Subscribes to live events and returns the history strictly after `after_rv`, atomically.
    /// Errors with 410 Gone when that history was already dropped.
    pub fn subscribe_after(
        &self,
        key: &str,
        after_rv: u64,
    ) -> ApiResult<(Vec<Arc<WatchEvent>>, EventReceiver)> {
        let g = self.read();
        if after_rv < g.history_floor {
            return Err(ApiError::gone(format!(
                "too old resource version: {after_rv} ({})",
                g.history_floor + 1
            )));
        }
        let rx = self.events.subscribe();
        let backlog = g
            .history
            .iter()
            .filter(|e| e.rv > after_rv && e.key == key)
            .cloned()
            .collect();
        Ok((backlog, rx))
    }

    /// Subscribes to live events and returns a snapshot of the current objects, atomically.
    pub fn subscribe_snapshot(
        &self,
        key: &str,
        ns: Option<&str>,
    ) -> (u64, Vec<Value>, broadcast::Receiver<Arc<WatchEvent>>) {
        let g = self.read();
        let rx = self.events.subscribe();
        let objs = g
            .table(key)
            .iter()
            .filter(|((n, _), _)| ns.is_none_or(|w| w == n))
            .map(|(_, v)| v.clone())
            .collect();
        (g.rv, objs, rx)
    }
}

/// Sets `metadata.resourceVersion`.
pub fn set_rv(obj: &mut Value, rv: &str) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}
