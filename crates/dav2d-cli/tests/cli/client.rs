//! A raw HTTP/1.1 client for the CLI tests: one request per connection,
//! the whole answer back as text.

/// Sends one HTTP/1.1 request (`method path`, a JSON `body` if not empty)
/// to `address`; returns the whole answer.
pub fn request(address: &str, method: &str, path: &str, body: &str) -> String {
    try_request(address, method, path, body)
        .unwrap_or_else(|error| panic!("{method} {path} failed: {error}"))
}

/// [`request`], or the error of a connection that failed.
pub fn try_request(address: &str, method: &str, path: &str, body: &str) -> std::io::Result<String> {
    let json = "Content-Type: application/json\r\n";
    try_request_with(address, method, path, json, body)
}

/// [`request`] with `headers` (each line ending in CRLF) instead of the
/// JSON content type.
pub fn request_with(address: &str, method: &str, path: &str, headers: &str, body: &str) -> String {
    try_request_with(address, method, path, headers, body)
        .unwrap_or_else(|error| panic!("{method} {path} failed: {error}"))
}

pub fn try_request_with(
    address: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}
