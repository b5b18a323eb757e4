//! Serves a directory over RTSP (media interleaved or over UDP) on smol and
//! prints the URL of every published file; two threads run the connections.
//!
//! ```sh
//! cargo run -p rtsp-toolkit-smol --example smol_serve -- fixtures/media 127.0.0.1:8554
//! ```

fn main() {
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
    let server = match smol::block_on(rtsp_toolkit_smol::ServerBuilder::new(&root).bind(addr)) {
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
    // `wait` takes `&self`: a second thread runs connections too.
    std::thread::scope(|s| {
        s.spawn(|| smol::block_on(server.wait()));
        smol::block_on(server.wait());
    });
}
