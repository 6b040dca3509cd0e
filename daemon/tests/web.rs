//! What a web page can do to cnmd: nothing. A page on any site can make the
//! user's browser post to the API (no preflight for a form) or, on plain
//! TCP, reach it under the page's own domain rebound to the daemon's
//! address (DNS rebinding). Both are refused; API clients are not.

mod common;

use common::Daemon;
use std::io::{Read, Write};

const TEST: &str = "web_pages_get_nothing";

/// One raw HTTP/1.1 request to `port` on the loopback; the status code.
fn status(port: u16, request: &str) -> u16 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_pages_get_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("tcp://127.0.0.1:{port}");
    let Some(d) = Daemon::start_with_args(TEST, &["-H", &addr, "--insecure-tcp"]).await else { return };
    d.ok(&["network", "create", "unused"]);
    let prune = |extra: &str| {
        format!(
            "POST /networks/prune HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
    };
    // A form posted cross-site carries Origin; a fetch carries Sec-Fetch-Site.
    assert_eq!(status(port, &prune("Origin: http://attacker.example\r\n")), 403);
    assert_eq!(status(port, &prune("Sec-Fetch-Site: cross-site\r\n")), 403);
    assert!(d.ok(&["network", "ls"]).contains("unused"), "nothing was pruned");
    // A rebound name in Host, even for a read.
    let list = |host: &str| format!("GET /networks HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    assert_eq!(status(port, &list(&format!("attacker.example:{port}"))), 403);
    // Controls: an API client by address, and the prune it may do.
    assert_eq!(status(port, &list(&format!("127.0.0.1:{port}"))), 200);
    assert_eq!(status(port, &list(&format!("localhost:{port}"))), 200);
    assert_eq!(status(port, &prune("")), 200);
    assert!(!d.ok(&["network", "ls"]).contains("unused"), "an API client prunes");
}
