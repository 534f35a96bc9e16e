//! The one DNS exchange dns-01 needs: a TXT query over UDP to the configured server. hickory-proto
//! encodes and decodes the messages; the socket is ours (no resolver, no cache: the validation
//! must see what the server answers now).

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::UdpSocket;

/// The largest UDP answer read (EDNS is not offered, so servers keep to 512 bytes or truncate).
const MAX_ANSWER: usize = 4096;

/// The TXT strings at `qname` (each record's strings joined, RFC 1035 §3.3.14), empty when the
/// name does not exist. Bounded in time by the caller.
pub(crate) async fn txt(server: SocketAddr, qname: &str) -> Result<Vec<String>, String> {
    let name = Name::from_ascii(qname).map_err(|e| format!("`{qname}` is not a DNS name: {e}"))?;
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name, RecordType::TXT));
    let id = query.metadata.id;
    let bytes = query
        .to_vec()
        .map_err(|e| format!("cannot encode the query: {e}"))?;
    // A loopback server is asked from loopback; others from any address.
    let local: IpAddr = match (server.ip().is_loopback(), server.is_ipv4()) {
        (true, true) => Ipv4Addr::LOCALHOST.into(),
        (true, false) => Ipv6Addr::LOCALHOST.into(),
        (false, true) => Ipv4Addr::UNSPECIFIED.into(),
        (false, false) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let sock = UdpSocket::bind((local, 0))
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    sock.connect(server)
        .await
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    sock.send(&bytes)
        .await
        .map_err(|e| format!("cannot send to {server}: {e}"))?;
    let mut buf = vec![0u8; MAX_ANSWER];
    let answer = loop {
        let n = sock
            .recv(&mut buf)
            .await
            .map_err(|e| format!("no answer from {server}: {e}"))?;
        // Stray datagrams (another id, garbage) are skipped, not trusted.
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.metadata.id == id => break m,
            _ => continue,
        }
    };
    if answer.metadata.truncation {
        return Err(
            "the answer was truncated; dns-01 TXT records must fit in one UDP answer".into(),
        );
    }
    match answer.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Ok(Vec::new()),
        other => return Err(format!("the server answered {other}")),
    }
    Ok(answer
        .answers
        .iter()
        // Wire names are fully qualified; compare without the root label, case-insensitively.
        .filter(|r| {
            r.name
                .to_ascii()
                .trim_end_matches('.')
                .eq_ignore_ascii_case(qname.trim_end_matches('.'))
        })
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect())
}
