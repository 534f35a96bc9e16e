//! Owns the cache of what a request names (its template, its principal and the principal's
//! groups), valid while the site's policy version stands.
//!
//! Every change to a template, a principal or a group membership raises the policy version in
//! the same transaction (see the store), so one read of that version replaces three reads per
//! request. The version is read before the entries: data read after it is at least that new,
//! so an entry is never older than the version it is filed under.

use fleetpki_model::directory::Principal;
use fleetpki_model::template::Template;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What one request names, as it stood at one policy version.
#[derive(Debug)]
pub struct RequestContext {
    pub template: Template,
    pub principal: Principal,
    pub groups: Vec<String>,
}

/// Entries beyond this many are dropped all at once (a fleet's principals are many; the cache
/// is there for the ones enrolling now).
const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct ContextCache {
    inner: Mutex<Cached>,
}

#[derive(Debug, Default)]
struct Cached {
    version: i64,
    entries: HashMap<(String, String), Arc<RequestContext>>,
}

impl ContextCache {
    /// The entry for (`template` as named, `principal`) if it was filed under `version`.
    pub(crate) fn get(
        &self,
        version: i64,
        template: &str,
        principal: &str,
    ) -> Option<Arc<RequestContext>> {
        let cached = self.inner.lock().ok()?;
        if cached.version != version {
            return None;
        }
        // Keyed by owned strings; a miss costs two small allocations, a hit the same.
        cached
            .entries
            .get(&(template.to_string(), principal.to_string()))
            .cloned()
    }

    /// Files `context` under `version`, dropping every entry of another version.
    pub(crate) fn put(
        &self,
        version: i64,
        template: &str,
        principal: &str,
        context: Arc<RequestContext>,
    ) {
        // A poisoned lock only means another thread panicked while holding it; the cache is
        // an optimisation, so it is simply not used then.
        let Ok(mut cached) = self.inner.lock() else {
            return;
        };
        if cached.version != version {
            if cached.version > version {
                // A reader that started before a change: keep the newer entries.
                return;
            }
            cached.version = version;
            cached.entries.clear();
        }
        if cached.entries.len() >= MAX_ENTRIES {
            cached.entries.clear();
        }
        cached
            .entries
            .insert((template.to_string(), principal.to_string()), context);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetpki_model::directory::PrincipalKind;

    fn context(name: &str) -> Arc<RequestContext> {
        let template = Template::bases()
            .into_iter()
            .next()
            .expect("base templates");
        Arc::new(RequestContext {
            template,
            principal: Principal {
                name: name.into(),
                kind: PrincipalKind::Computer,
                dns: Some(format!("{}.fleet.test", name.to_lowercase())),
                email: None,
                upn: None,
                disabled: false,
            },
            groups: vec!["G".into()],
        })
    }

    #[test]
    fn an_entry_is_served_only_at_its_version() {
        let cache = ContextCache::default();
        cache.put(3, "Workstation", "PC1", context("PC1"));
        assert!(cache.get(3, "Workstation", "PC1").is_some());
        assert!(
            cache.get(4, "Workstation", "PC1").is_none(),
            "newer version"
        );
        assert!(
            cache.get(3, "Workstation", "PC2").is_none(),
            "other principal"
        );
        assert!(cache.get(3, "Web", "PC1").is_none(), "other template");
    }

    #[test]
    fn a_newer_version_drops_older_entries_and_an_older_one_is_not_filed() {
        let cache = ContextCache::default();
        cache.put(3, "Workstation", "PC1", context("PC1"));
        cache.put(4, "Workstation", "PC2", context("PC2"));
        assert!(cache.get(3, "Workstation", "PC1").is_none());
        assert!(cache.get(4, "Workstation", "PC2").is_some());
        cache.put(3, "Workstation", "PC1", context("PC1"));
        assert!(cache.get(4, "Workstation", "PC1").is_none());
        assert!(cache.get(4, "Workstation", "PC2").is_some());
    }
}
