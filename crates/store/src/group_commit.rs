//! Group commit: concurrent writers' change lists are gathered into one transaction, so that
//! many issuances share one fsync, and each writer is answered only after that commit.

use crate::{Applied, Change, Store, StoreError};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

type Answer = Result<Vec<Applied>, StoreError>;

/// One caller's change list and where to send its answer.
struct Job {
    changes: Vec<Change>,
    reply: oneshot::Sender<Answer>,
}

/// Batches [`Store::apply`] calls from concurrent callers. Cloning shares the same batcher;
/// the background task ends when the last clone is dropped.
#[derive(Clone)]
pub struct GroupCommitter {
    queue: mpsc::Sender<Job>,
}

impl std::fmt::Debug for GroupCommitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommitter").finish_non_exhaustive()
    }
}

impl GroupCommitter {
    /// Starts the committer task on the current Tokio runtime (so call this inside one).
    /// `max_batch` bounds how many callers share a transaction (at least 1).
    pub fn new(store: Arc<dyn Store>, max_batch: usize) -> Self {
        let max_batch = max_batch.max(1);
        // Room for a few batches: beyond that, callers wait to enqueue (backpressure).
        let (queue, jobs) = mpsc::channel(max_batch.saturating_mul(4));
        tokio::spawn(run(store, jobs, max_batch));
        Self { queue }
    }

    /// Applies `changes` in one transaction shared with other callers' changes, and returns
    /// this caller's results once it committed. A failure of another caller's changes never
    /// fails these (see [`commit`]).
    ///
    /// Cancellation: dropping the future before it has enqueued does nothing; after, the
    /// changes are still applied (the committer owns them), only the answer is discarded.
    pub async fn apply(&self, changes: Vec<Change>) -> Result<Vec<Applied>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { changes, reply })
            .await
            .map_err(|_| StoreError::CommitterGone)?;
        answer.await.map_err(|_| StoreError::CommitterGone)?
    }
}

async fn run(store: Arc<dyn Store>, mut queue: mpsc::Receiver<Job>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    // Waits for one job, then takes whatever else is already queued: no timer, so a lone
    // caller is not delayed, and under load the batch grows while the previous one commits.
    while queue.recv_many(&mut batch, max_batch).await > 0 {
        commit(store.as_ref(), std::mem::take(&mut batch)).await;
    }
}

/// Applies a batch in one transaction. If that fails, applies each caller's changes on its own
/// so that only the caller at fault (e.g. a duplicate serial) gets an error.
async fn commit(store: &dyn Store, mut jobs: Vec<Job>) {
    if jobs.len() == 1 {
        if let Some(job) = jobs.pop() {
            let answer = store.apply(job.changes).await;
            // A caller that went away does not want its answer; that is not an error here.
            let _ = job.reply.send(answer);
        }
        return;
    }
    // Cloned because the changes are needed again if the batch fails.
    let all: Vec<Change> = jobs
        .iter()
        .flat_map(|j| j.changes.iter().cloned())
        .collect();
    let total = all.len();
    match store.apply(all).await {
        Ok(results) if results.len() == total => {
            tracing::trace!(callers = jobs.len(), changes = total, "group commit");
            let mut results = results.into_iter();
            for job in jobs {
                let mine: Vec<Applied> = results.by_ref().take(job.changes.len()).collect();
                let _ = job.reply.send(Ok(mine));
            }
        }
        Ok(results) => {
            let why = format!(
                "the store returned {} results for {total} changes",
                results.len()
            );
            for job in jobs {
                let _ = job.reply.send(Err(StoreError::Corrupt(why.clone())));
            }
        }
        Err(e) => {
            tracing::debug!(callers = jobs.len(), error = %e, "group commit failed; applying each caller on its own");
            for job in jobs {
                let answer = store.apply(job.changes).await;
                let _ = job.reply.send(answer);
            }
        }
    }
}
