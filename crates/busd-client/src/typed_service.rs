//! Typed services: [`Client::serve_typed`] decodes each request as the
//! handler's argument, runs the handler and encodes what it returns, in a
//! task that a [`TypedService`] handle owns.
//!
//! Every request is answered, so that no caller waits for its timeout on a
//! mistake it can be told about: a payload that is not the expected type, a
//! handler's `Err` and a handler's panic each answer `Failure` with a
//! sentence saying so (as text, which `busd req` prints as it is and
//! [`Client::call`] puts in its error).

use std::any::type_name;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use busd_proto::{Sender, Subject};
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::Error;
use crate::service::{Request, ServeOptions, Service};
use crate::subject::IntoSubject;
use crate::typed::{decode, encode};

/// How many requests one typed service handles at once. Past it, requests
/// wait in the registration's queue (bounded too), and when that is full
/// the connection stops reading, which the daemon's overflow policy sees:
/// a busy service slows down, it never grows without bound.
pub const TYPED_CONCURRENCY: usize = 64;

impl Client {
    /// Serves `service` with `handler`: each request is decoded as `Req`
    /// (MessagePack with named fields; see [`Client::call`]), `handler` runs
    /// on it, and its `Ok` is encoded as the `Success` answer, its `Err`
    /// answers `Failure` with the error's text. Up to [`TYPED_CONCURRENCY`]
    /// requests are handled at once.
    ///
    /// Returns once the daemon has the registration; serving goes on in a
    /// task until the returned [`TypedService`] is dropped.
    ///
    /// # Errors
    /// As [`serve_with`](Client::serve_with).
    ///
    /// ```no_run
    /// #[derive(serde::Deserialize)]
    /// struct Ask { city: String, days: u8 }
    /// #[derive(serde::Serialize)]
    /// struct Forecast { highs: Vec<i32> }
    ///
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let forecasts = client
    ///     .serve_typed("contoso.weather.forecast", |ask: Ask| async move {
    ///         if ask.city.is_empty() {
    ///             return Err("which city?");
    ///         }
    ///         Ok(Forecast { highs: vec![21; usize::from(ask.days)] })
    ///     })
    ///     .await?;
    /// // … serving until `forecasts` is dropped.
    /// # drop(forecasts);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn serve_typed<Req, H>(
        &self,
        service: impl IntoSubject,
        handler: H,
    ) -> Result<TypedService, Error>
    where
        Req: DeserializeOwned + Send + 'static,
        H: TypedHandler<Req>,
    {
        self.serve_typed_with(service, ServeOptions::default(), handler)
            .await
    }

    /// [`serve_typed`](Client::serve_typed) with registration options, e.g.
    /// a capability its callers need.
    ///
    /// # Errors
    /// As [`serve_with`](Client::serve_with).
    ///
    /// ```no_run
    /// use busd_client::ServeOptions;
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let options = ServeOptions { require_capability: Some("contoso.hsa".into()) };
    /// let telemetry = client
    ///     .serve_typed_with("contoso.hsa.telemetry", options, |n: u32| async move {
    ///         Ok::<_, String>(n * 2)
    ///     })
    ///     .await?;
    /// # drop(telemetry);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn serve_typed_with<Req, H>(
        &self,
        service: impl IntoSubject,
        options: ServeOptions,
        handler: H,
    ) -> Result<TypedService, Error>
    where
        Req: DeserializeOwned + Send + 'static,
        H: TypedHandler<Req>,
    {
        self.serve_typed_from_with(service, options, AnyCaller(handler))
            .await
    }

    /// As [`serve_typed`](Client::serve_typed), for a handler that also
    /// takes who called, as the daemon proved it (the caller's connection
    /// and package: what Windows app services learn from
    /// `CallerPackageFamilyName`), to answer each caller its own way.
    ///
    /// # Errors
    /// As [`serve_with`](Client::serve_with).
    ///
    /// ```no_run
    /// use busd_client::Sender;
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let greeter = client
    ///     .serve_typed_from("contoso.greeter", |name: String, from: Sender| async move {
    ///         let who = from.pfn.map_or("an unpackaged app".to_owned(), |p| p.to_string());
    ///         Ok::<_, String>(format!("hello {name}, from {who}"))
    ///     })
    ///     .await?;
    /// # drop(greeter);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn serve_typed_from<Req, H>(
        &self,
        service: impl IntoSubject,
        handler: H,
    ) -> Result<TypedService, Error>
    where
        Req: DeserializeOwned + Send + 'static,
        H: TypedCallerHandler<Req>,
    {
        self.serve_typed_from_with(service, ServeOptions::default(), handler)
            .await
    }

    /// [`serve_typed_from`](Client::serve_typed_from) with registration
    /// options.
    ///
    /// # Errors
    /// As [`serve_with`](Client::serve_with).
    pub async fn serve_typed_from_with<Req, H>(
        &self,
        service: impl IntoSubject,
        options: ServeOptions,
        handler: H,
    ) -> Result<TypedService, Error>
    where
        Req: DeserializeOwned + Send + 'static,
        H: TypedCallerHandler<Req>,
    {
        let service = self.serve_with(service, options).await?;
        let name = service.name().clone();
        let task = tokio::spawn(serve_all(service, handler));
        Ok(TypedService { name, task })
    }
}

/// A handler for [`Client::serve_typed`]: any
/// `Fn(Req) -> impl Future<Output = Result<Resp, E>>` where `Resp` is
/// serde-serializable and `E` displays as the `Failure` answer's text.
///
/// Implemented for every such closure or function; it exists so that the
/// serve methods name one bound instead of five, and is not meant to be
/// implemented by hand.
pub trait TypedHandler<Req>: Send + Sync + 'static {
    /// What a request is answered with on `Success`.
    type Answer: Serialize + Send + 'static;
    /// Why a request failed; its text is the `Failure` answer.
    type Error: Display + Send + 'static;
    /// The handler's future for one request.
    type Future: Future<Output = Result<Self::Answer, Self::Error>> + Send + 'static;

    /// Handles one request.
    fn handle(&self, request: Req) -> Self::Future;
}

impl<Req, Resp, E, F, Fut> TypedHandler<Req> for F
where
    Resp: Serialize + Send + 'static,
    E: Display + Send + 'static,
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, E>> + Send + 'static,
{
    type Answer = Resp;
    type Error = E;
    type Future = Fut;

    fn handle(&self, request: Req) -> Fut {
        self(request)
    }
}

/// A handler for [`Client::serve_typed_from`]: any
/// `Fn(Req, Sender) -> impl Future<Output = Result<Resp, E>>`, as
/// [`TypedHandler`] with the caller beside the request.
pub trait TypedCallerHandler<Req>: Send + Sync + 'static {
    /// What a request is answered with on `Success`.
    type Answer: Serialize + Send + 'static;
    /// Why a request failed; its text is the `Failure` answer.
    type Error: Display + Send + 'static;
    /// The handler's future for one request.
    type Future: Future<Output = Result<Self::Answer, Self::Error>> + Send + 'static;

    /// Handles one request from `from`.
    fn handle(&self, request: Req, from: Sender) -> Self::Future;
}

impl<Req, Resp, E, F, Fut> TypedCallerHandler<Req> for F
where
    Resp: Serialize + Send + 'static,
    E: Display + Send + 'static,
    F: Fn(Req, Sender) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, E>> + Send + 'static,
{
    type Answer = Resp;
    type Error = E;
    type Future = Fut;

    fn handle(&self, request: Req, from: Sender) -> Fut {
        self(request, from)
    }
}

/// A [`TypedHandler`] served as a [`TypedCallerHandler`] that does not
/// look at the caller.
struct AnyCaller<H>(H);

impl<Req, H: TypedHandler<Req>> TypedCallerHandler<Req> for AnyCaller<H> {
    type Answer = H::Answer;
    type Error = H::Error;
    type Future = H::Future;

    fn handle(&self, request: Req, _from: Sender) -> H::Future {
        self.0.handle(request)
    }
}

/// A service served by [`Client::serve_typed`]: dropping it stops serving
/// and ends the registration. Requests being handled then are dropped
/// unanswered; their callers get `Timeout`.
#[derive(Debug)]
#[must_use = "the service stops serving when this handle is dropped"]
pub struct TypedService {
    name: Subject,
    task: JoinHandle<()>,
}

impl TypedService {
    /// The service name.
    pub fn name(&self) -> &Subject {
        &self.name
    }

    /// Waits until serving ends by itself, which it does only when the
    /// client is closed for good (its connection lost with reconnect off);
    /// a program that only serves awaits this.
    ///
    /// ```no_run
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let mut doubler = client
    ///     .serve_typed("contoso.math.double", |n: i64| async move { Ok::<_, String>(n * 2) })
    ///     .await?;
    /// doubler.finished().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn finished(&mut self) {
        // Handlers' panics are caught in `answer`, so the task ends only
        // when the registration does; a join error has nothing to add.
        let _ = (&mut self.task).await;
    }
}

impl Drop for TypedService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers every request of `service` with `handler`, up to
/// [`TYPED_CONCURRENCY`] at once, until the registration ends.
async fn serve_all<Req: DeserializeOwned, H: TypedCallerHandler<Req>>(
    service: Service,
    handler: H,
) {
    let handler = &handler;
    service
        .for_each_concurrent(TYPED_CONCURRENCY, |request| answer(request, handler))
        .await;
}

/// Decodes `request`, runs `handler` on it and answers: `Success` with the
/// encoded result, or `Failure` with a sentence saying what went wrong.
async fn answer<Req: DeserializeOwned, H: TypedCallerHandler<Req>>(request: Request, handler: &H) {
    let outcome = match decode::<Req>(&request.payload) {
        Err(e) => Err(format!(
            "service {} expects a request of type {}: {e}",
            request.service,
            type_name::<Req>()
        )),
        // Inside the async block, a panic while making the future is caught
        // as well as one while polling it.
        Ok(req) => {
            match AssertUnwindSafe(async { handler.handle(req, request.from.clone()).await })
                .catch_unwind()
                .await
            {
                Ok(Ok(resp)) => encode(&resp).map_err(|e| {
                    format!(
                        "service {} cannot encode its answer ({}) as MessagePack: {e}",
                        request.service,
                        type_name::<H::Answer>()
                    )
                }),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!(
                    "the handler of service {} panicked",
                    request.service
                )),
            }
        }
    };
    let service = request.service.clone();
    let answered = match outcome {
        Ok(payload) => request.respond(payload).await,
        Err(reason) => request.respond_failure(reason).await,
    };
    if let Err(e) = answered {
        // The caller learns of it from the daemon (a timeout, or
        // ResponderGone); this side can only log it.
        tracing::warn!(%service, cause = %e, "cannot answer a request");
    }
}
