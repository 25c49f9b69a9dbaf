//! A dedicated thread with its own tokio runtime that serves listeners until
//! stopped: what the OTLP listeners and a viewer's page both run on, so
//! neither takes a worker from the application that embeds them, and both
//! work from sync code and from inside any runtime.

use std::fmt;
use std::future::Future;
use std::io;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The serving thread; stopping (or dropping) signals `serve` and joins.
pub struct ServingThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for ServingThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServingThread")
            .field("running", &self.thread.is_some())
            .finish()
    }
}

impl ServingThread {
    /// Starts `name`, hands it the bound `listeners` (made non-blocking and
    /// registered with its runtime) and a stop signal, and returns once the
    /// runtime is up.
    ///
    /// # Errors
    /// When a listener cannot be set up, or the thread or its runtime cannot start.
    pub fn start<F, Fut>(
        name: &str,
        listeners: Vec<std::net::TcpListener>,
        serve: F,
    ) -> io::Result<ServingThread>
    where
        F: FnOnce(Vec<TcpListener>, oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        for l in &listeners {
            l.set_nonblocking(true)?;
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        // The runtime is created and dropped on this thread only: dropping a
        // runtime inside a caller's async context would panic.
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let setup = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|rt| {
                        let listeners = {
                            let _guard = rt.enter();
                            listeners
                                .into_iter()
                                .map(TcpListener::from_std)
                                .collect::<io::Result<Vec<_>>>()
                        };
                        listeners.map(|l| (rt, l))
                    });
                let (rt, listeners) = match setup {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                rt.block_on(serve(listeners, stopped));
                // Dropping `rt` here cancels the connection tasks.
            })?;
        let serving = ServingThread {
            stop: Some(stop),
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(serving),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other(format!(
                "{name}: the serving thread did not start within 10 s"
            ))),
        }
        // On error, dropping `serving` signals and joins the thread.
    }

    /// Stops serving and joins the thread (dropping does the same).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ServingThread {
    fn drop(&mut self) {
        self.halt();
    }
}
