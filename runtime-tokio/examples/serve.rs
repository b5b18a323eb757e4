//! Serves a directory over RTSP (media interleaved or over UDP) and prints the URL of every published file.
//!
//! ```sh
//! cargo run -p rtsp-toolkit-tokio --example serve -- fixtures/media 127.0.0.1:8554
//! ```

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let root = args.next().unwrap_or_else(|| "fixtures/media".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8554".into());
    let addr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: bad address {addr:?}: {e}");
            std::process::exit(2);
        }
    };
    let server = match rtsp_toolkit_tokio::ServerBuilder::new(&root).bind(addr).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on rtsp://{}/", server.local_addr());
    for url in server.urls() {
        println!("{url}");
    }
    server.wait().await;
}
