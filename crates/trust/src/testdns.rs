//! A tiny authoritative DNS server on 127.0.0.1 for the tests (UDP only): answers the
//! records of its zone, NXDOMAIN for names it does not know.

use bulwark_dns::hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use bulwark_dns::hickory_resolver::proto::rr::rdata::{A, MX, PTR, TXT};
use bulwark_dns::hickory_resolver::proto::rr::{Name, RData, Record};
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use tokio::net::UdpSocket;

pub enum Rr {
    Txt(String),
    A(Ipv4Addr),
    Mx(u16, String),
    Ptr(String),
}

fn rdata(rr: &Rr) -> RData {
    let name = |n: &str| Name::from_str(&format!("{}.", n.trim_end_matches('.'))).expect("name");
    match rr {
        Rr::Txt(t) => RData::TXT(TXT::new(
            t.as_bytes()
                .chunks(255)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect(),
        )),
        Rr::A(ip) => RData::A(A(*ip)),
        Rr::Mx(p, h) => RData::MX(MX::new(*p, name(h))),
        Rr::Ptr(h) => RData::PTR(PTR(name(h))),
    }
}

pub async fn start(zone: Vec<(&str, Rr)>) -> SocketAddr {
    let zone: Vec<(String, RData)> = zone
        .into_iter()
        .map(|(n, rr)| (n.trim_end_matches('.').to_ascii_lowercase(), rdata(&rr)))
        .collect();
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind dns");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut resp = Message::response(query.metadata.id, query.metadata.op_code);
            resp.metadata.message_type = MessageType::Response;
            resp.metadata.authoritative = true;
            let Some(q) = query.queries.first().cloned() else {
                continue;
            };
            let qname = q
                .name()
                .to_utf8()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            let known = zone.iter().any(|(n, _)| *n == qname);
            for (n, data) in &zone {
                if *n == qname && data.record_type() == q.query_type() {
                    resp.add_answer(Record::from_rdata(q.name().clone(), 60, data.clone()));
                }
            }
            if !known {
                resp.metadata.response_code = ResponseCode::NXDomain;
            }
            resp.add_query(q);
            if let Ok(bytes) = resp.to_vec() {
                let _ = socket.send_to(&bytes, peer).await;
            }
        }
    });
    addr
}
