//! A deliberately broken agent, for the tests of what the daemon does with one: placed instead
//! of the real agent (`WARMPOOL_AGENT_BIN`), it misbehaves as its first argument says (the
//! pool's command). Never shipped: the daemon embeds only `warmpool-agent`.
//!
//! - `forge`: comes up, then sends a frame whose MAC is wrong;
//! - `replay`: comes up, then sends its first frame again;
//! - `silent`: comes up, then answers nothing (not even a ping);
//! - `mute`: never comes up;
//! - `old`: comes up speaking another protocol version.

use std::io::{Read, Write};

use warmpool_agent_proto::frame::{Dir, HELLO_LEN, Hello, Sealer};
use warmpool_agent_proto::msg::{Ev, FromAgent, encode};

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let mut hello = vec![0u8; HELLO_LEN];
    if std::io::stdin().read_exact(&mut hello).is_err() {
        std::process::exit(2);
    }
    let Some(Hello::Start { key, nonce }) = Hello::parse_start(&hello) else {
        std::process::exit(2);
    };
    let mut out = std::io::stdout();
    let mut sealer = Sealer::new(key, nonce, Dir::ToDaemon);
    let version = if mode == "old" {
        999
    } else {
        warmpool_agent_proto::VERSION
    };
    let ready = encode(&FromAgent {
        id: 0,
        ev: Ev::Ready {
            version,
            resumed: false,
        },
    });
    let first = sealer.seal(&ready);
    if mode != "mute" {
        let _ = out.write_all(&first);
        let _ = out.flush();
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    match mode.as_str() {
        "forge" => {
            let mut f = sealer.seal(&encode(&FromAgent {
                id: 0,
                ev: Ev::Pong,
            }));
            let n = f.len();
            f[n - 1] ^= 0x55;
            let _ = out.write_all(&f);
        }
        "replay" => {
            let _ = out.write_all(&first);
        }
        _ => {}
    }
    let _ = out.flush();
    loop {
        std::thread::park();
    }
}
