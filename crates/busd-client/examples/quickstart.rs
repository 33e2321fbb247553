//! The README's SDK example, word for word (a test holds them the same):
//! subscribe, publish, serve and request. Run a daemon
//! (`cargo run --release -p busd -- run`), then
//! `cargo run -p busd-client --example quickstart`.

use busd_client::Client;
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), busd_client::Error> {
    // Where `busd` itself looks: BUSD_URL, else the default unix socket.
    let client = Client::connect_default().await?;

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
