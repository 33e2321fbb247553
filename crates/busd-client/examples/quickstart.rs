//! The README's SDK example: subscribe, publish, serve and request.
//!
//! Run a daemon (`cargo run -p busd -- run`), then
//! `cargo run -p busd-client --example quickstart [URL]`.

use busd_client::Client;
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), busd_client::Error> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| busd_transport::Endpoint::default().to_string());
    let client = Client::connect(&url).await?;

    let mut forecasts = client.subscribe("weather.*.paris").await?;
    client.publish("weather.today.paris", "sunny").await?;
    let msg = forecasts.next().await.expect("a message");
    println!("{} from {:?}: {:?}", msg.subject, msg.from, msg.payload);

    let mut service = client.serve("contoso.weather.forecast").await?;
    tokio::spawn(async move {
        while let Some(request) = service.next().await {
            let _ = request.respond("21°C").await;
        }
    });
    let answer = client.request("contoso.weather.forecast", "paris").await?;
    println!("{:?}", answer.payload);
    Ok(())
}
