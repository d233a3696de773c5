//! The delivery policy, in one place: a scrubbed request goes straight to the upstream
//! while the breaker says it is up; when the upstream cannot take it (unreachable,
//! timed out, 5xx), it goes to the spool instead; while the breaker knows the upstream
//! is down, requests go to the spool without trying it. Every other answer of the store
//! (2xx, 4xx, 429 with its rate-limit headers) is the caller's to relay.

use crate::forward::{ForwardError, ForwardRequest, Forwarder, UpstreamResponse};

use super::{is_retryable, Spool, SpoolError};

/// Where scrubbed requests go: the forwarder, and the spool when one is enabled.
#[derive(Debug, Clone)]
pub struct Delivery {
    forwarder: Forwarder,
    spool: Option<Spool>,
}

/// What became of a delivered request.
#[derive(Debug)]
pub enum Delivered {
    /// The store answered (anything but a 5xx when a spool is there to take it).
    Answered(UpstreamResponse),
    /// The store could not take it; it is on disk in the spool.
    Spooled,
}

/// Why a request could not be delivered or spooled.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The upstream failed and there is no spool (or the failure is not one to retry).
    #[error("upstream delivery failed")]
    Forward(#[source] ForwardError),
    /// The upstream cannot take the request and the spool cannot either.
    #[error("the upstream is unavailable and the spool cannot take the request")]
    Spool {
        /// Why the spool refused it.
        #[source]
        source: SpoolError,
        /// Seconds until the upstream is next tried, for `Retry-After`.
        retry_after_secs: u64,
    },
}

impl Delivery {
    /// Delivery through `forwarder`, spooling into `spool` when given.
    pub fn new(forwarder: Forwarder, spool: Option<Spool>) -> Delivery {
        Delivery { forwarder, spool }
    }

    /// The forwarder (the drainer replays through it).
    pub fn forwarder(&self) -> &Forwarder {
        &self.forwarder
    }

    /// The spool, when enabled.
    pub fn spool(&self) -> Option<&Spool> {
        self.spool.as_ref()
    }

    /// Delivers one scrubbed request under the policy above.
    ///
    /// # Errors
    /// [`DeliveryError::Forward`] without a spool (or for an error no retry would fix);
    /// [`DeliveryError::Spool`] when the spool cannot take a request the upstream did not.
    pub async fn deliver(&self, request: ForwardRequest) -> Result<Delivered, DeliveryError> {
        let Some(spool) = &self.spool else {
            return self
                .forwarder
                .forward(request)
                .await
                .map(Delivered::Answered)
                .map_err(DeliveryError::Forward);
        };
        if !spool.breaker().is_open() {
            match self.forwarder.forward(request.clone()).await {
                Ok(answer) if !answer.status.is_server_error() => {
                    return Ok(Delivered::Answered(answer))
                }
                Ok(_) => spool.upstream_failed(),
                Err(error) if is_retryable(&error) => spool.upstream_failed(),
                Err(error) => return Err(DeliveryError::Forward(error)),
            }
        }
        match spool.append(&request).await {
            Ok(()) => Ok(Delivered::Spooled),
            Err(source) => Err(DeliveryError::Spool {
                source,
                retry_after_secs: spool.breaker().retry_after_secs(),
            }),
        }
    }
}
