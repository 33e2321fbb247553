//! Typed calls: any serde type as a request and its answer, with
//! [`Client::call`] on the calling side.
//!
//! Values travel as MessagePack with named fields (`rmp_serde::to_vec_named`),
//! so a struct is a map, a [`ValueSet`](crate::ValueSet): what
//! `busd req --json '{…}'` sends, what `busd req` prints as JSON, and what a
//! client in another language reads without knowing the Rust type. A field
//! order or a tuple layout is never part of the contract.
//!
//! A service's `Failure` answer is an error of kind
//! [`ErrorKind::ServiceFailure`] whose message gives the service's reason:
//! the payload itself when it is text (as `busd reply --fail` and
//! [`serve_typed`](Client::serve_typed) send it), a MessagePack string, or
//! the `message` or `error` entry of a ValueSet.

use std::any::type_name;

use busd_proto::{Subject, Value, ValueSet};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::Client;
use crate::error::{Error, ErrorKind};
use crate::request::RequestOptions;
use crate::subject::{IntoSubject, literal};

impl Client {
    /// Calls `service` with `request`, any serde value, and decodes its
    /// answer as `Resp`, within the client's request timeout.
    ///
    /// # Errors
    /// As [`call_with`](Client::call_with).
    ///
    /// ```no_run
    /// #[derive(serde::Serialize)]
    /// struct Ask { city: String, days: u8 }
    /// #[derive(serde::Deserialize)]
    /// struct Forecast { highs: Vec<i32> }
    ///
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let ask = Ask { city: "Paris".into(), days: 3 };
    /// let forecast = client.call::<Ask, Forecast>("contoso.weather.forecast", &ask).await?;
    /// println!("{:?}", forecast.highs);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn call<Req, Resp>(
        &self,
        service: impl IntoSubject,
        request: &Req,
    ) -> Result<Resp, Error>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        self.call_with(service, request, RequestOptions::default())
            .await
    }

    /// Calls `service` with `request`, headers and a timeout of its own,
    /// and decodes its answer as `Resp`.
    ///
    /// # Errors
    /// - [`ErrorKind::ServiceFailure`] when the service answers `Failure`
    ///   (its reason in the message, its answer in
    ///   [`Error::service_failure`]); a service made with
    ///   [`serve_typed`](Client::serve_typed) answers so when the request does
    ///   not decode as the type it expects, naming that type;
    /// - [`ErrorKind::Decode`] when the answer is not a `Resp`: the message
    ///   names the service, the type and what did not fit;
    /// - [`ErrorKind::Encode`] when `request` cannot be encoded;
    /// - every error of [`request_with`](Client::request_with).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use busd_client::RequestOptions;
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let options = RequestOptions { timeout: Some(Duration::from_secs(1)), headers: None };
    /// let high: i32 = client.call_with("contoso.weather.high", "paris", options).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn call_with<Req, Resp>(
        &self,
        service: impl IntoSubject,
        request: &Req,
        options: RequestOptions,
    ) -> Result<Resp, Error>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let service = literal(service, "call")?;
        let payload = encode(request).map_err(|e| {
            Error::new(
                ErrorKind::Encode,
                format!(
                    "cannot encode the request to service {service} ({}) as MessagePack: {e}",
                    type_name::<Req>()
                ),
            )
            .with_source(e)
        })?;
        let response = self.request_with(&service, payload, options).await?;
        if !response.is_success() {
            let reason = failure_reason(&response.payload);
            return Err(Error::from_failure(
                format!("service {service} answered Failure: {reason}"),
                response,
            ));
        }
        decode(&response.payload).map_err(|e| decode_error(&service, type_name::<Resp>(), e))
    }
}

/// `value` as MessagePack with named fields: a struct becomes a map.
pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec_named(value)
}

/// `payload` read as a `T`.
pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, rmp_serde::decode::Error> {
    rmp_serde::from_slice(payload)
}

/// The caller's error for an answer of `service` that is not a `type_name`.
fn decode_error(service: &Subject, type_name: &str, e: rmp_serde::decode::Error) -> Error {
    Error::new(
        ErrorKind::Decode,
        format!("the answer of service {service} does not decode as {type_name}: {e}"),
    )
    .with_source(e)
}

/// The reason a `Failure` payload gives, as one line of text for an error
/// message: the text itself, a MessagePack string, or a ValueSet's
/// `message` or `error` entry; other payloads are only described, since the
/// whole answer stays in [`Error::service_failure`].
pub(crate) fn failure_reason(payload: &[u8]) -> String {
    if payload.is_empty() {
        return "(no reason given)".to_owned();
    }
    if let Ok(text) = std::str::from_utf8(payload) {
        return text.trim_end().to_owned();
    }
    if let Ok(text) = decode::<String>(payload) {
        return text;
    }
    if let Ok(set) = ValueSet::from_bytes(payload) {
        for key in ["message", "error"] {
            if let Some(Value::String(text)) = set.get(key) {
                return text.clone();
            }
        }
    }
    format!("a reason of {} bytes that is not text", payload.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons_are_read_from_text_strings_and_value_sets() {
        assert_eq!(failure_reason(b"out of order\n"), "out of order");
        assert_eq!(failure_reason(b""), "(no reason given)");
        let packed = encode("city unknown").unwrap();
        assert_eq!(failure_reason(&packed), "city unknown");
        #[derive(Serialize)]
        struct Reason {
            code: u32,
            error: &'static str,
        }
        let packed = encode(&Reason {
            code: 404,
            error: "no such city",
        })
        .unwrap();
        assert_eq!(failure_reason(&packed), "no such city");
        assert_eq!(
            failure_reason(&[0xc1, 0xff]),
            "a reason of 2 bytes that is not text"
        );
    }

    #[test]
    fn structs_travel_as_value_sets() {
        #[derive(Serialize)]
        struct Ask {
            city: &'static str,
            days: u8,
        }
        let packed = encode(&Ask {
            city: "Paris",
            days: 3,
        })
        .unwrap();
        let set = ValueSet::from_bytes(&packed).expect("a map with named fields");
        assert_eq!(set.get("city"), Some(&Value::String("Paris".into())));
        assert_eq!(set.get("days"), Some(&Value::Int(3)));
    }
}
