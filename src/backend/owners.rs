//! Who owns the requests in flight: a task each, tracked so that a graceful shutdown can
//! wait for them or end them all, and a future that, dropped by its client, finishes as a
//! task of its own (a script must still be reaped and its log line written).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The tasks that own the requests in flight, and the signal that ends them all at the end
/// of a graceful shutdown. Shared by CGI and FastCGI.
#[derive(Default)]
pub struct Owners {
    pub kill_all: CancellationToken,
    pub tasks: TaskTracker,
}

impl Owners {
    /// Waits for the requests in flight, without ending them.
    pub async fn wait_idle(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Ends every request in flight and waits until their owners are done.
    pub async fn kill_all_and_wait(&self) {
        self.kill_all.cancel();
        self.wait_idle().await;
    }
}

/// A future polled in place by its caller that, dropped before it is done, goes on as a
/// task of its own: a run must reach its end (reap, log line) whatever the client does.
pub struct FinishesAlone(Option<Pin<Box<dyn Future<Output = ()> + Send>>>);

impl FinishesAlone {
    pub fn new(future: impl Future<Output = ()> + Send + 'static) -> FinishesAlone {
        FinishesAlone(Some(Box::pin(future)))
    }
}

impl Future for FinishesAlone {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(future) = &mut self.0 {
            ready!(future.as_mut().poll(cx));
            self.0 = None;
        }
        Poll::Ready(())
    }
}

impl Drop for FinishesAlone {
    fn drop(&mut self) {
        if let Some(future) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(future);
        }
    }
}
