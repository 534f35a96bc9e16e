//! Site maintenance while the server runs: publishes a CRL that is missing or past half its
//! life, renews the site-issued server certificate when due, and notices a newly published CRL
//! or policy version so that handshakes and policy use them without a restart.

use crate::AppState;
use crate::config::TlsMode;
use fleetpki_ca::keys::KeyRole;
use fleetpki_ca::{Actor, CaError, Site};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;

/// How often the slow jobs (CRL freshness, server certificate renewal) run.
const SLOW_EVERY: Duration = Duration::from_secs(3600);

/// The site's CAs whose CRLs the server needs, root first.
fn cas(site: &Site) -> Vec<KeyRole> {
    let mut cas = vec![KeyRole::Root];
    if site.issuing.is_some() {
        cas.push(KeyRole::Issuing);
    }
    cas
}

/// Publishes a full CRL for every site CA whose latest is missing or past half its validity,
/// so clients are never refused for want of revocation data.
pub(crate) async fn ensure_crls(site: &Site) -> Result<(), CaError> {
    let now = fleetpki_model::now();
    for role in cas(site) {
        let latest = site.store.latest_crl(role.name(), false).await?;
        let due = match &latest {
            None => true,
            Some(c) => now >= c.this_update + (c.next_update - c.this_update) / 2,
        };
        if due {
            let actor = Actor::new("site", "site maintenance");
            let crl = site.publish_crl(Some(role), false, None, &actor).await?;
            tracing::info!(
                ca = role.name(),
                number = crl.number,
                "site maintenance published a CRL"
            );
        }
    }
    Ok(())
}

/// The latest full CRL of every site CA (DER), and their numbers (to notice a new one).
pub(crate) async fn crls(site: &Site) -> Result<(Vec<Vec<u8>>, Vec<i64>), CaError> {
    let mut ders = Vec::new();
    let mut numbers = Vec::new();
    for role in cas(site) {
        match site.store.latest_crl(role.name(), false).await? {
            Some(c) => {
                numbers.push(c.number);
                ders.push(c.der);
            }
            None => numbers.push(0),
        }
    }
    Ok((ders, numbers))
}

/// Runs until `stop`.
pub(crate) async fn run(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let poll = Duration::from_secs(state.config.tls.crl_poll_seconds);
    let mut seen = crls(&state.site).await.map(|(_, n)| n).unwrap_or_default();
    let mut last_slow = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = crate::stopped(&mut stop) => return,
        }
        if last_slow.elapsed() >= SLOW_EVERY {
            last_slow = tokio::time::Instant::now();
            if let Err(e) = ensure_crls(&state.site).await {
                tracing::warn!(error = %e, "site maintenance could not publish a CRL");
            }
            if let Some(tls) = &state.tls
                && state.config.tls.mode == TlsMode::EnhancedHttp
            {
                renew_server_cert(&state, tls).await;
            }
        }
        match state.site.store.policy_version().await {
            Ok(v) => state.policy_version.store(v, Ordering::Relaxed),
            Err(e) => tracing::warn!(error = %e, "cannot read the policy version"),
        }
        let Some(tls) = state.tls.as_ref().filter(|_| state.config.tls.check_crl) else {
            continue;
        };
        match crls(&state.site).await {
            Ok((ders, numbers)) if numbers != seen => match tls.trust.reload(ders) {
                Ok(()) => {
                    tracing::info!(?numbers, "new CRL loaded for client certificate checks");
                    seen = numbers;
                }
                Err(e) => tracing::warn!(error = %e, "cannot load the new CRL; keeping the old"),
            },
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the CRLs"),
        }
    }
}

async fn renew_server_cert(state: &AppState, tls: &crate::TlsState) {
    match crate::tls::identity::site_issued(&state.site, &state.config, &tls.provider).await {
        Ok((key, id, true)) => {
            tls.cert.replace(key);
            tracing::info!(
                serial = id.serial,
                not_after = id.not_after,
                "site maintenance renewed the site-system certificate"
            );
        }
        Ok((_, _, false)) => {}
        Err(e) => tracing::warn!(error = %e, "cannot renew the site-system certificate"),
    }
}
