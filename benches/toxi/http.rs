//! A minimal HTTP/1.1 client over one keep-alive `TcpStream`: write a request, read the
//! status line and headers, then the body by `Content-Length` (or chunked encoding).
//! Enough to drive the toxi API; every call is bounded by a timeout.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Client {
    addr: SocketAddr,
    conn: Option<TcpStream>,
    /// Bytes read past the end of the previous response.
    buf: Vec<u8>,
    timeout: Duration,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    #[allow(dead_code)]
    pub body: Vec<u8>,
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

impl Client {
    pub fn new(addr: SocketAddr, timeout: Duration) -> Client {
        Client {
            addr,
            conn: None,
            buf: Vec::new(),
            timeout,
        }
    }

    /// Sends one request; on any error the connection is dropped (the next call reconnects).
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> io::Result<Response> {
        let r = tokio::time::timeout(self.timeout, self.request_inner(method, path, body)).await;
        let r = match r {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "API request timed out",
            )),
        };
        if r.is_err() {
            self.conn = None;
            self.buf.clear();
        }
        r
    }

    async fn request_inner(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> io::Result<Response> {
        if self.conn.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.conn = Some(s);
            self.buf.clear();
        }
        let conn = self.conn.as_mut().expect("connected");
        let body = body.unwrap_or("");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: toxi-bench\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        conn.write_all(req.as_bytes()).await?;

        // Status line and headers.
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            read_more(conn, &mut self.buf).await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|_| bad("non-UTF-8 head"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().ok_or_else(|| bad("no status line"))?;
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut close = false;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse().map_err(|_| bad("bad content-length"))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        self.buf.drain(..head_end + 4);

        let body = if chunked {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    read_more(conn, &mut self.buf).await?;
                };
                let size_text = std::str::from_utf8(&self.buf[..line_end])
                    .map_err(|_| bad("bad chunk size"))?;
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| bad("bad chunk size"))?;
                self.buf.drain(..line_end + 2);
                while self.buf.len() < size + 2 {
                    read_more(conn, &mut self.buf).await?;
                }
                body.extend_from_slice(&self.buf[..size]);
                self.buf.drain(..size + 2);
                if size == 0 {
                    break body;
                }
            }
        } else if let Some(n) = length {
            while self.buf.len() < n {
                read_more(conn, &mut self.buf).await?;
            }
            self.buf.drain(..n).collect()
        } else if status == 204 || status == 304 || method == "HEAD" {
            Vec::new()
        } else {
            // Body delimited by close.
            let mut rest = std::mem::take(&mut self.buf);
            conn.read_to_end(&mut rest).await?;
            close = true;
            rest
        };
        if close {
            self.conn = None;
            self.buf.clear();
        }
        Ok(Response { status, body })
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn read_more(conn: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut tmp = [0u8; 4096];
    let n = conn.read(&mut tmp).await?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "API closed the connection",
        ));
    }
    buf.extend_from_slice(&tmp[..n]);
    Ok(())
}
