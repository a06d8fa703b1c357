//! JavaScript chooses TLS certificates at handshake time: the handshake asks through a TLS_SNI
//! event and waits for `resolveSni` (bounded by the handshake timeout).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use tcpserver_core::tls::{PemIdentity, SniCallback, TlsSettings};
use tokio::sync::oneshot;

use crate::events::JsSink;
use crate::options::BindingTlsOptions;

type Pending = Arc<Mutex<HashMap<u32, oneshot::Sender<Option<PemIdentity>>>>>;

/// One server's SNI questions in flight.
pub(crate) struct SniBridge {
    sink: Arc<JsSink>,
    pending: Pending,
    next: Arc<AtomicU32>,
}

/// Forgets a question whose handshake gave up (timeout, abort) before JavaScript answered.
struct Forget(Pending, u32);

impl Drop for Forget {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

impl SniBridge {
    pub(crate) fn new(sink: &Arc<JsSink>) -> Self {
        Self {
            sink: sink.clone(),
            pending: Arc::default(),
            next: Arc::new(AtomicU32::new(1)),
        }
    }

    /// `settings` with the callback attached when the options ask for one.
    pub(crate) fn attach(
        &self,
        options: &BindingTlsOptions,
        mut settings: TlsSettings,
    ) -> TlsSettings {
        if options.sni_callback == Some(true) {
            let (sink, pending, next) =
                (self.sink.clone(), self.pending.clone(), self.next.clone());
            settings.sni_callback = Some(SniCallback(Arc::new(move |name| {
                let (tx, rx) = oneshot::channel();
                let token = next.fetch_add(1, Relaxed);
                pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(token, tx);
                sink.sni_request(token, name.as_deref());
                let forget = Forget(pending.clone(), token);
                Box::pin(async move {
                    let answer = rx.await.ok().flatten();
                    drop(forget);
                    answer
                })
            })));
        }
        settings
    }

    pub(crate) fn resolve(&self, token: u32, identity: Option<PemIdentity>) {
        if let Some(tx) = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&token)
        {
            let _ = tx.send(identity);
        }
    }
}
