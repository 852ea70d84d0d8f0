//! Logging writes rotated files in the chosen format. One test per binary: the subscriber is global.

use mapreduce::config::LoggingConfig;

#[test]
fn json_lines_go_to_a_rotated_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LoggingConfig {
        debug: true,
        json: true,
        logging_dir: Some(dir.path().join("logs")),
        max_files: Some(3),
        ..LoggingConfig::default()
    };
    let guard = mapreduce::logging::init(&cfg, "testrole").expect("init");
    tracing::debug!(answer = 42, "hello from the test");
    tracing::trace!("below the debug level: not written");
    drop(guard); // flushes the non-blocking writer

    let files: Vec<_> = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("testrole.") && name.ends_with(".log"),
        "{name}"
    );
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["level"], "DEBUG");
    assert_eq!(lines[0]["fields"]["message"], "hello from the test");
    assert_eq!(lines[0]["fields"]["answer"], 42);

    // A second init in the same process is an error, not a panic.
    assert!(mapreduce::logging::init(&cfg, "again").is_err());
}
