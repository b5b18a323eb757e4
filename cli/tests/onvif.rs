//! ONVIF from the command line: `serve` sends a sidecar file's metadata
//! documents, `probe --metadata` prints a line per document and
//! `probe --save-metadata` writes them back in the sidecar format.

use std::time::Duration;

mod support;
use support::*;

const SIDECAR: &str = "\
# the motion alarm goes on and off
0.0 <tt:MetadataStream xmlns:tt=\"http://www.onvif.org/ver10/schema\"><tt:Event><wsnt:NotificationMessage><wsnt:Topic Dialect=\"x\">tns1:VideoSource/MotionAlarm</wsnt:Topic><wsnt:Message><tt:Message><tt:Data><tt:SimpleItem Name=\"State\" Value=\"true\"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage></tt:Event></tt:MetadataStream>
2.25 <tt:MetadataStream xmlns:tt=\"http://www.onvif.org/ver10/schema\"><tt:VideoAnalytics/></tt:MetadataStream>
";

/// `serve --dir DIR` on a free port, killed on drop, and its port.
fn serve(dir: &std::path::Path) -> (Proc, u16) {
    let mut p = spawn(&["serve", "--dir", dir.to_str().unwrap(), "--port", "0"]);
    let _stderr = drain(p.0.stderr.take().unwrap());
    let rx = lines(p.0.stdout.take().unwrap());
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("serve prints its address");
    let port = first
        .strip_prefix("listening on rtsp://127.0.0.1:")
        .and_then(|r| r.strip_suffix('/'))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {first:?}"));
    (p, port)
}

#[test]
fn probe_prints_and_saves_the_documents_of_a_served_sidecar() {
    let dir = temp_dir("onvif-metadata");
    std::fs::copy(media_dir().join("h264_aac.mp4"), dir.join("clip.mp4")).unwrap();
    std::fs::write(dir.join("clip.meta"), SIDECAR).unwrap();
    let (_server, port) = serve(&dir);
    let url = format!("rtsp://127.0.0.1:{port}/clip.mp4");
    let saved = dir.join("saved.meta");
    let r = run(
        &["probe", &url, "--save-metadata", saved.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().filter(|l| l.contains("meta 2")).collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(
        lines[0].contains("<tt:MetadataStream>") && lines[0].contains("topic tns1:VideoSource/MotionAlarm"),
        "{}",
        lines[0]
    );
    assert!(!lines[1].contains("topic"), "{}", lines[1]);
    assert!(
        r.stdout.contains("application  vnd.onvif.metadata/90000"),
        "{}",
        r.stdout
    );
    // Saved in the sidecar format, times from the first document.
    let expected: String = SIDECAR
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (t, doc) = l.split_once(' ').unwrap();
            format!("{:.6} {doc}\n", t.parse::<f64>().unwrap())
        })
        .collect();
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), expected);

    // JSON: a `metadata` line per document, with the document.
    let r = run(&["probe", &url, "--metadata", "--json"], Duration::from_secs(30));
    assert_eq!(r.code(), 0, "{r:?}");
    let docs: Vec<serde_json::Value> = r.json().into_iter().filter(|v| v["type"] == "metadata").collect();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["track"], 2);
    assert_eq!(docs[0]["topic"], "tns1:VideoSource/MotionAlarm");
    assert_eq!(docs[1]["root"], "tt:MetadataStream");
    assert_eq!(
        docs[1]["extended_timestamp"].as_i64().unwrap() - docs[0]["extended_timestamp"].as_i64().unwrap(),
        2 * 90_000 + 22_500
    );
    assert!(docs[1]["xml"]
        .as_str()
        .unwrap()
        .ends_with("<tt:VideoAnalytics/></tt:MetadataStream>"));
    let _ = std::fs::remove_dir_all(&dir);
}
