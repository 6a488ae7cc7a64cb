//! Any bytes as a config file: validation answers with problems or a config, never a panic,
//! and never builds more than its bounds allow.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let env = [
        ("WARMPOOL_POOLS__A__MIN_READY".to_string(), "2".to_string()),
        (
            "WARMPOOL_SERVER__LISTEN".to_string(),
            "127.0.0.1:1".to_string(),
        ),
    ];
    if let Err(e) = warmpool_config::parse(&text, "fuzz", env) {
        assert!(!e.problems.is_empty(), "an error without a problem");
        for p in &e.problems {
            assert!(!p.path.is_empty(), "a problem without a path: {p}");
        }
    }
});
