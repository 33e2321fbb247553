//! Typed calls through a real daemon: `Client::call` and
//! `Client::serve_typed` with serde structs, what a mismatch says on each
//! side, and a typed service answering `busd req --json`.

use busd_client::{Client, ErrorKind, Status, TypedService};
use busd_e2e::{TestDaemon, Transport, busd_bin};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Ask {
    city: String,
    days: u8,
    units: Option<Units>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Units {
    celsius: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Forecast {
    city: String,
    days: Vec<Day>,
    note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Day {
    high: i32,
    sky: String,
}

/// What the forecast service answers: a day per asked day, a note only
/// when the units were given.
fn forecast(ask: Ask) -> Result<Forecast, String> {
    if ask.city == "Atlantis" {
        return Err(format!("no such city: {}", ask.city));
    }
    let days = (0..i32::from(ask.days))
        .map(|i| Day {
            high: 20 + i,
            sky: "sunny".into(),
        })
        .collect();
    let note = ask
        .units
        .map(|u| if u.celsius { "°C" } else { "°F" }.to_owned());
    Ok(Forecast {
        city: ask.city,
        days,
        note,
    })
}

async fn connect(d: &TestDaemon, t: Transport) -> Client {
    Client::connect(&d.url(t)).await.expect("connect")
}

/// Connects over `t` and serves `service` with [`forecast`] until the
/// handle is dropped.
async fn serve_forecasts(d: &TestDaemon, t: Transport, service: &str) -> TypedService {
    connect(d, t)
        .await
        .serve_typed(service, |ask: Ask| async move { forecast(ask) })
        .await
        .expect("serve")
}

#[tokio::test]
async fn structs_round_trip_on_every_transport() {
    let d = TestDaemon::start().await;
    for t in Transport::ALL {
        let _serving = serve_forecasts(&d, t, "contoso.weather.typed").await;
        let caller = connect(&d, t).await;
        for units in [None, Some(Units { celsius: true })] {
            let ask = Ask {
                city: "Paris".into(),
                days: 3,
                units: units.clone(),
            };
            let answer: Forecast = caller
                .call("contoso.weather.typed", &ask)
                .await
                .unwrap_or_else(|e| panic!("{t:?}: {e}"));
            assert_eq!(answer, forecast(ask).unwrap(), "{t:?}");
        }
    }
}

#[tokio::test]
async fn a_request_of_the_wrong_type_answers_failure_naming_service_and_type() {
    let d = TestDaemon::start().await;
    let _serving = serve_forecasts(&d, Transport::Unix, "contoso.weather.strict").await;
    let caller = connect(&d, Transport::Tcp).await;

    #[derive(Serialize)]
    struct Wrong {
        town: &'static str,
    }
    let err = caller
        .call::<_, Forecast>("contoso.weather.strict", &Wrong { town: "Paris" })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ServiceFailure, "{err}");
    let text = err.to_string();
    assert!(text.contains("contoso.weather.strict"), "{text}");
    assert!(text.contains(std::any::type_name::<Ask>()), "{text}");
    assert!(text.contains("city"), "names the missing field: {text}");

    // The answer itself is the service's Failure, readable as text by any caller.
    let raw = caller
        .request("contoso.weather.strict", "not msgpack")
        .await
        .unwrap();
    assert_eq!(raw.status, Status::Failure);
    let reason = String::from_utf8(raw.payload.to_vec()).unwrap();
    assert!(
        reason.contains("contoso.weather.strict") && reason.contains("Ask"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_answer_of_the_wrong_type_is_a_decode_error_naming_service_and_type() {
    let d = TestDaemon::start().await;
    let server = connect(&d, Transport::Unix).await;
    let _serving = server
        .serve_typed("contoso.weather.text", |city: String| async move {
            Ok::<_, String>(format!("sunny in {city}"))
        })
        .await
        .unwrap();
    let caller = connect(&d, Transport::Unix).await;
    let err = caller
        .call::<_, Forecast>("contoso.weather.text", "Paris")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    let text = err.to_string();
    assert!(text.contains("contoso.weather.text"), "{text}");
    assert!(text.contains(std::any::type_name::<Forecast>()), "{text}");
    // The right type decodes, so the failure above was the type alone.
    let answer: String = caller.call("contoso.weather.text", "Paris").await.unwrap();
    assert_eq!(answer, "sunny in Paris");
}

#[tokio::test]
async fn a_handler_error_or_panic_answers_failure_with_its_text() {
    let d = TestDaemon::start().await;
    let server = connect(&d, Transport::Unix).await;
    let _serving = server
        .serve_typed("contoso.weather.picky", |ask: Ask| async move {
            if ask.days > 14 {
                panic!("a fortnight at most");
            }
            forecast(ask)
        })
        .await
        .unwrap();
    let caller = connect(&d, Transport::Unix).await;
    let ask = |city: &str, days| Ask {
        city: city.into(),
        days,
        units: None,
    };
    let err = caller
        .call::<_, Forecast>("contoso.weather.picky", &ask("Atlantis", 1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ServiceFailure);
    assert_eq!(
        err.to_string(),
        "service contoso.weather.picky answered Failure: no such city: Atlantis"
    );
    let answer = err.service_failure().expect("the service's answer");
    assert_eq!(answer.status, Status::Failure);
    assert_eq!(&answer.payload[..], b"no such city: Atlantis");

    let err = caller
        .call::<_, Forecast>("contoso.weather.picky", &ask("Paris", 30))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ServiceFailure);
    assert!(err.to_string().contains("panicked"), "{err}");
    // The service survives its handler's panic.
    let ok: Forecast = caller
        .call("contoso.weather.picky", &ask("Paris", 1))
        .await
        .unwrap();
    assert_eq!(ok.days.len(), 1);
}

#[tokio::test]
async fn a_typed_service_answers_busd_req_json() {
    let d = TestDaemon::start().await;
    let _serving = serve_forecasts(&d, Transport::Unix, "contoso.weather.shell").await;
    // tokio's Command, so the test's runtime goes on serving meanwhile.
    let out = tokio::process::Command::new(busd_bin())
        .args(["req", "--json", "contoso.weather.shell"])
        .arg(r#"{"city":"Oslo","days":2,"units":{"celsius":true}}"#)
        .env("BUSD_URL", d.url(Transport::Unix))
        .output()
        .await
        .expect("run busd req");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let printed: Forecast = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let expected = Ask {
        city: "Oslo".into(),
        days: 2,
        units: Some(Units { celsius: true }),
    };
    assert_eq!(printed, forecast(expected).unwrap());
}

#[tokio::test]
async fn a_caller_aware_handler_learns_who_called() {
    let d = TestDaemon::start().await;
    let server = connect(&d, Transport::Unix).await;
    let _serving = server
        .serve_typed_from(
            "contoso.greeter",
            |name: String, from: busd_client::Sender| async move {
                Ok::<_, String>(format!("hello {name}, client {}", from.client_id))
            },
        )
        .await
        .unwrap();
    let caller = connect(&d, Transport::Tcp).await;
    let answer: String = caller.call("contoso.greeter", "Ada").await.unwrap();
    assert_eq!(answer, format!("hello Ada, client {}", caller.client_id()));
}

#[tokio::test]
async fn an_answer_over_max_frame_fails_at_once_instead_of_timing_out() {
    let d = TestDaemon::start_with(|c| c.limits.max_frame = 64 * 1024).await;
    let server = connect(&d, Transport::Unix).await;
    let _serving = server
        .serve_typed("contoso.weather.huge", |n: usize| async move {
            Ok::<_, String>(vec![7u8; n])
        })
        .await
        .unwrap();
    let caller = Client::builder(d.url(Transport::Unix))
        .request_timeout(std::time::Duration::from_secs(60))
        .connect()
        .await
        .unwrap();
    let small: Vec<u8> = caller.call("contoso.weather.huge", &10usize).await.unwrap();
    assert_eq!(small.len(), 10);
    let err = caller
        .call::<_, Vec<u8>>("contoso.weather.huge", &(1usize << 20))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ServiceFailure, "{err}");
    // Not `Timeout`: the service said why at once.
    assert!(err.to_string().contains("max_frame"), "{err}");
}
