//! Test doubles on 127.0.0.1: a scriptable SMTP sink and a tiny authoritative DNS server.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One message the sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub mail_from: String,
    pub rcpts: Vec<String>,
    pub data: Vec<u8>,
    pub tls: bool,
}

#[derive(Default)]
struct SinkState {
    /// Replies to RCPT TO per recipient, used in order; afterwards `250`.
    script: HashMap<String, VecDeque<String>>,
    transactions: Vec<Transaction>,
}

/// An SMTP server that records what it receives.
pub struct Sink {
    pub addr: SocketAddr,
    state: Arc<Mutex<SinkState>>,
}

/// Whether the sink offers STARTTLS and what it does then.
#[derive(Clone)]
pub enum SinkTls {
    None,
    Real(tokio_rustls::TlsAcceptor),
    /// Offers STARTTLS, says 220, then sends garbage instead of a handshake.
    Broken,
}

impl Sink {
    pub async fn start(tls: SinkTls) -> Sink {
        Sink::start_at("127.0.0.1:0".parse().expect("address"), tls)
            .await
            .expect("bind sink")
    }

    pub async fn start_at(addr: SocketAddr, tls: SinkTls) -> std::io::Result<Sink> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(SinkState::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let state = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _ = serve(Box::new(tcp), state, tls).await;
                });
            }
        });
        Ok(Sink { addr, state })
    }

    /// The next RCPT TO replies for `rcpt`, e.g. `["450 4.2.1 busy"]`.
    pub fn script(&self, rcpt: &str, replies: &[&str]) {
        let mut state = self.state.lock().expect("sink state");
        state.script.insert(
            rcpt.to_string(),
            replies.iter().map(|r| r.to_string()).collect(),
        );
    }

    pub fn transactions(&self) -> Vec<Transaction> {
        self.state.lock().expect("sink state").transactions.clone()
    }
}

async fn serve(
    stream: Box<dyn Stream>,
    state: Arc<Mutex<SinkState>>,
    tls: SinkTls,
) -> std::io::Result<()> {
    let mut io = BufReader::new(stream);
    let mut secure = false;
    io.get_mut().write_all(b"220 sink.test ESMTP\r\n").await?;
    let mut mail_from = String::new();
    let mut rcpts: Vec<String> = Vec::new();
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_string();
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let offer = !matches!(tls, SinkTls::None) && !secure;
            let starttls = if offer { "250-STARTTLS\r\n" } else { "" };
            format!(
                "250-sink.test\r\n250-SIZE 10485760\r\n{starttls}250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
            )
        } else if upper.starts_with("STARTTLS") {
            let acceptor = match &tls {
                SinkTls::None => {
                    io.get_mut().write_all(b"502 5.5.1 no TLS\r\n").await?;
                    continue;
                }
                SinkTls::Broken => {
                    io.get_mut()
                        .write_all(b"220 2.0.0 go ahead\r\nthis is not TLS\r\n")
                        .await?;
                    return Ok(());
                }
                SinkTls::Real(acceptor) => acceptor.clone(),
            };
            io.get_mut().write_all(b"220 2.0.0 go ahead\r\n").await?;
            let stream = acceptor.accept(io.into_inner()).await?;
            io = BufReader::new(Box::new(stream));
            secure = true;
            continue;
        } else if upper.starts_with("MAIL FROM:") {
            mail_from = between_brackets(&line);
            rcpts.clear();
            "250 2.1.0 ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = between_brackets(&line);
            let scripted = state
                .lock()
                .expect("sink state")
                .script
                .get_mut(&rcpt)
                .and_then(VecDeque::pop_front);
            let reply = scripted.unwrap_or_else(|| "250 2.1.5 ok".into());
            if reply.starts_with('2') {
                rcpts.push(rcpt);
            }
            format!("{reply}\r\n")
        } else if upper == "DATA" {
            if rcpts.is_empty() {
                "554 5.5.1 no valid recipients\r\n".into()
            } else {
                io.get_mut().write_all(b"354 go ahead\r\n").await?;
                let data = read_data(&mut io).await?;
                state
                    .lock()
                    .expect("sink state")
                    .transactions
                    .push(Transaction {
                        mail_from: mail_from.clone(),
                        rcpts: std::mem::take(&mut rcpts),
                        data,
                        tls: secure,
                    });
                "250 2.0.0 queued\r\n".into()
            }
        } else if upper == "RSET" {
            rcpts.clear();
            "250 2.0.0 ok\r\n".into()
        } else if upper == "QUIT" {
            io.get_mut().write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            "502 5.5.2 unknown command\r\n".into()
        };
        io.get_mut().write_all(reply.as_bytes()).await?;
    }
}

/// Reads dot-stuffed lines up to `.` CRLF and undoes the stuffing.
async fn read_data(io: &mut BufReader<Box<dyn Stream>>) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        if io.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" {
            return Ok(data);
        }
        let start = usize::from(line.first() == Some(&b'.'));
        data.extend_from_slice(&line[start..]);
    }
}

fn between_brackets(line: &str) -> String {
    let start = line.find('<').map(|i| i + 1).unwrap_or(0);
    let end = line[start..]
        .find('>')
        .map(|i| i + start)
        .unwrap_or(line.len());
    line[start..end].to_string()
}

/// A record the DNS server answers with.
#[derive(Debug, Clone)]
pub enum Rr {
    Mx(u16, String),
    A(Ipv4Addr),
}

const TYPE_A: u16 = 1;
const TYPE_MX: u16 = 15;

/// Answers A and MX queries for the names in its zone; NXDOMAIN for names it does not know,
/// an empty NOERROR answer for known names without records of the asked type.
pub async fn start_dns(zone: Vec<(&str, Rr)>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind dns");
    let addr = socket.local_addr().expect("dns address");
    let zone: Vec<(String, Rr)> = zone
        .into_iter()
        .map(|(n, r)| (n.to_ascii_lowercase(), r))
        .collect();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            if let Some(response) = answer(&buf[..n], &zone) {
                let _ = socket.send_to(&response, peer).await;
            }
        }
    });
    addr
}

fn answer(query: &[u8], zone: &[(String, Rr)]) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(pos)?);
        pos += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(pos..pos + len)?).to_ascii_lowercase());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*query.get(pos)?, *query.get(pos + 1)?]);
    let question_end = pos + 4;
    let name = labels.join(".");
    let known = zone.iter().any(|(n, _)| *n == name);
    let answers: Vec<&Rr> = zone
        .iter()
        .filter(|(n, rr)| {
            *n == name && matches!((rr, qtype), (Rr::Mx(..), TYPE_MX) | (Rr::A(_), TYPE_A))
        })
        .map(|(_, rr)| rr)
        .collect();
    let rcode: u8 = if known { 0 } else { 3 };
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&query[..2]); // id
    out.push(0x84 | (query[2] & 0x01)); // QR, AA, RD copied
    out.push(0x80 | rcode); // RA, rcode
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(query.get(12..question_end)?);
    for rr in answers {
        out.extend_from_slice(&[0xC0, 0x0C]); // name: pointer to the question
        let (rtype, rdata) = match rr {
            Rr::A(ip) => (TYPE_A, ip.octets().to_vec()),
            Rr::Mx(pref, host) => {
                let mut rdata = pref.to_be_bytes().to_vec();
                for label in host.split('.').filter(|l| !l.is_empty()) {
                    rdata.push(label.len() as u8);
                    rdata.extend_from_slice(label.as_bytes());
                }
                rdata.push(0);
                (TYPE_MX, rdata)
            }
        };
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes()); // class IN
        out.extend_from_slice(&60u32.to_be_bytes()); // TTL
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    Some(out)
}
