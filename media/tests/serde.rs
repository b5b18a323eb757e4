//! The `serde` feature: the server's options read back what they wrote.
#![cfg(feature = "serde")]

use std::time::Duration;

use rtsp_toolkit_media::serving::ServerOptions;

#[test]
fn server_options_round_trip() {
    let mut opts = ServerOptions {
        max_connections: 10,
        write_stall: Duration::from_millis(1500),
        send_buffer: Some(65_536),
        ..ServerOptions::default()
    };
    opts.config.max_payload = 1200;
    let json = serde_json::to_value(&opts).unwrap();
    assert_eq!(json["write_stall_s"], 1.5);
    assert_eq!(json["config"]["max_payload"], 1200);
    let back: ServerOptions = serde_json::from_value(json).unwrap();
    assert_eq!(format!("{back:?}"), format!("{opts:?}"));
    let partial: ServerOptions = serde_json::from_str(r#"{"config": {"udp": false}}"#).unwrap();
    assert!(!partial.config.udp);
    assert_eq!(partial.max_connections, ServerOptions::default().max_connections);
    assert!(serde_json::from_str::<ServerOptions>(r#"{"write_stall": 5}"#).is_err());
}
