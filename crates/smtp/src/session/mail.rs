//! The mail transaction: MAIL (RFC 5321 §4.1.1.2), RCPT (§4.1.1.3), DATA (§4.1.1.4) and
//! BDAT (RFC 3030), ending in a [`Event::Deliver`] for the shell.

use super::*;
use crate::limits::FIRST_BODY_RESERVATION;
use crate::wire::BodyRefused;
use bulwark_core::sender::{check_header_senders, may_send_as};

impl Session {
    pub fn recipient_resolved(&mut self, verdict: RecipientVerdict) {
        let Some(Awaiting::Recipient { address }) = self.awaiting.take() else {
            return;
        };
        let authenticated = self.auth.is_some();
        let Some(txn) = self.txn.as_mut() else {
            return;
        };
        let reply = match verdict {
            RecipientVerdict::Local(account) => {
                txn.add_local(address, account);
                reply::RECIPIENT_OK
            }
            RecipientVerdict::LocalAs { address, account } => {
                txn.add_local(address, account);
                reply::RECIPIENT_OK
            }
            RecipientVerdict::Remote if authenticated => {
                if !txn.remote.iter().any(|a| a.eq_ignore_ascii_case(&address)) {
                    txn.remote.push(address);
                }
                reply::RECIPIENT_OK
            }
            RecipientVerdict::Remote => reply::RELAY_DENIED,
            RecipientVerdict::UnknownUser => reply::UNKNOWN_USER,
            RecipientVerdict::TemporaryFailure => reply::LOOKUP_FAILED,
            RecipientVerdict::MailboxFull => reply::MAILBOX_FULL,
            RecipientVerdict::Greylisted => reply::GREYLISTED,
        };
        self.send(reply);
    }

    /// `Ok` only after the message is durable (stored or queued); then `250`.
    pub fn delivery_result(&mut self, result: Result<(), DeliveryFailure>) {
        let Some(Awaiting::Delivery { id }) = self.awaiting.take() else {
            return;
        };
        match result {
            Ok(()) => self.send(reply::queued(&id)),
            Err(DeliveryFailure::Temporary(why)) => {
                self.send(reply::coded(&why, '4').unwrap_or(reply::STORAGE_FAILED))
            }
            Err(DeliveryFailure::Permanent(why)) => {
                self.send(reply::coded(&why, '5').unwrap_or_else(|| reply::refused(&why)))
            }
        }
    }

    pub(super) fn mail(&mut self, p: MailParams) {
        if self.hello == Hello::None {
            return self.send(reply::HELLO_FIRST);
        }
        if self.txn.is_some() {
            return self.send(reply::NESTED_MAIL);
        }
        // RFC 6409 §4.3 / RFC 4954 §6: submission requires authentication.
        if self.cfg.kind.is_submission() && self.auth.is_none() {
            return self.send(reply::AUTH_REQUIRED);
        }
        if let Some(name) = p.unsupported {
            return self.send(reply::unsupported_parameter(name));
        }
        // RFC 1870 §6.1: a declared size above the limit is refused at MAIL.
        if p.size > self.cfg.max_message_size {
            return self.send(reply::MESSAGE_TOO_BIG);
        }
        if !p.smtputf8 && !p.address.is_ascii() {
            return self.send(reply::SMTPUTF8_REQUIRED);
        }
        let hold = match self.hold_of(&p) {
            Ok(hold) => hold,
            Err(r) => return self.send(r),
        };
        if let Some(identity) = &self.auth
            && !may_send_as(&p.address, &identity.addresses)
        {
            return self.send(reply::SENDER_NOT_OWNED);
        }
        self.txn = Some(Transaction {
            sender: p.address,
            smtputf8: p.smtputf8,
            local: Vec::new(),
            remote: Vec::new(),
            declared_size: p.size,
            hold,
            bdat: None,
        });
        self.send(reply::SENDER_OK);
    }

    /// RFC 4865 §3: `HOLDFOR`/`HOLDUNTIL` only where FUTURERELEASE is offered (else `555`,
    /// RFC 5321 §4.1.1.11), not both, and within the advertised maximum (else `501 5.5.4`).
    fn hold_of(&self, p: &MailParams) -> Result<Option<Hold>, Reply> {
        let hold = match (p.hold_for, p.hold_until) {
            (0, 0) => return Ok(None),
            (_, 0) => Hold::For(p.hold_for),
            (0, _) => Hold::Until(i64::try_from(p.hold_until).unwrap_or(i64::MAX)),
            _ => return Err(reply::HOLD_BOTH),
        };
        let Some(since) = self.cfg.future_release else {
            return Err(reply::unsupported_parameter("HOLDFOR/HOLDUNTIL"));
        };
        if hold.release_at(since) > since + crate::limits::MAX_FUTURE_RELEASE_SECS {
            return Err(reply::HOLD_TOO_LONG);
        }
        Ok(Some(hold))
    }

    pub(super) fn rcpt(&mut self, p: wire::RcptParams) {
        if self.hello == Hello::None {
            return self.send(reply::HELLO_FIRST);
        }
        let Some(txn) = &self.txn else {
            return self.send(reply::MAIL_FIRST);
        };
        if let Some(name) = p.unsupported {
            return self.send(reply::unsupported_parameter(name));
        }
        if !txn.smtputf8 && !p.address.is_ascii() {
            return self.send(reply::SMTPUTF8_REQUIRED);
        }
        // RFC 5321 §4.5.3.1.10: 452 for recipients beyond the limit.
        if txn.recipient_count() >= self.cfg.max_recipients {
            return self.send(reply::TOO_MANY_RECIPIENTS);
        }
        // A bare `<postmaster>` arrives as `wire::POSTMASTER`; the shell resolves it.
        let address = p.address;
        let size = txn.declared_size;
        let sender = txn.sender.clone();
        self.awaiting = Some(Awaiting::Recipient {
            address: address.clone(),
        });
        self.ready = Some(Event::CheckRecipient {
            address,
            size,
            sender,
            authenticated: self.auth.is_some(),
        });
    }

    pub(super) fn data(&mut self) {
        if self.hello == Hello::None {
            return self.send(reply::HELLO_FIRST);
        }
        let Some(txn) = &self.txn else {
            return self.send(reply::MAIL_FIRST);
        };
        if txn.bdat.is_some() {
            return self.send(reply::DATA_AFTER_BDAT);
        }
        // RFC 2920 §3.1: DATA with no accepted recipient fails.
        if txn.recipient_count() == 0 {
            return self.send(reply::NO_VALID_RECIPIENTS);
        }
        // The memory budget of all sessions is used up: come back later (RFC 5321 §4.2.2).
        let Some(memory) = self.body_budget.try_reserve(FIRST_BODY_RESERVATION) else {
            return self.send(reply::INSUFFICIENT_STORAGE);
        };
        self.send(reply::START_DATA);
        self.phase = Phase::Data(DataBody::new(self.cfg.max_message_size, memory));
    }

    pub(super) fn data_finished(&mut self, body: wire::ReceivedBody) {
        match body {
            Err(why) => {
                self.txn = None;
                self.send(match why {
                    BodyRefused::TooBig => reply::MESSAGE_TOO_BIG,
                    BodyRefused::OverBudget => reply::INSUFFICIENT_STORAGE,
                });
            }
            Ok((body, memory)) => self.accept_body(body, memory),
        }
    }

    /// RFC 3030 §2: the chunk is always read (even when refused), then answered.
    pub(super) fn bdat(&mut self, size: usize, last: bool) {
        let max = self.cfg.max_message_size;
        let outcome = if self.hello == Hello::None {
            ChunkOutcome::Reject {
                reply: reply::HELLO_FIRST,
                end: false,
            }
        } else if let Some(txn) = self.txn.as_mut() {
            if txn.recipient_count() == 0 {
                ChunkOutcome::Reject {
                    reply: reply::NO_VALID_RECIPIENTS,
                    end: last,
                }
            } else {
                let budget = &self.body_budget;
                let bdat = txn.bdat.get_or_insert_with(|| BdatBody {
                    body: Vec::new(),
                    failed: None,
                    memory: Reservation::empty(budget),
                });
                let total = bdat.body.len().saturating_add(size);
                if bdat.failed.is_none() && total > max {
                    bdat.failed = Some(reply::MESSAGE_TOO_BIG);
                } else if bdat.failed.is_none() && !bdat.memory.try_grow_to(total) {
                    bdat.failed = Some(reply::INSUFFICIENT_STORAGE);
                }
                match &bdat.failed {
                    Some(reply) => {
                        bdat.body = Vec::new();
                        bdat.memory = Reservation::empty(budget);
                        ChunkOutcome::Reject {
                            reply: reply.clone(),
                            end: last,
                        }
                    }
                    None => {
                        // Reserved above: the chunk's bytes are allocated once, exactly.
                        bdat.body.reserve_exact(size);
                        ChunkOutcome::Append
                    }
                }
            }
        } else {
            ChunkOutcome::Reject {
                reply: reply::MAIL_FIRST,
                end: false,
            }
        };
        let chunk = match outcome {
            ChunkOutcome::Append => BdatChunk::keep(size, last),
            ChunkOutcome::Reject { .. } => BdatChunk::discard(size),
        };
        self.phase = Phase::Bdat {
            chunk,
            size,
            last,
            outcome,
        };
    }

    pub(super) fn bdat_finished(&mut self, size: usize, last: bool, outcome: ChunkOutcome) {
        match outcome {
            ChunkOutcome::Reject { reply, end } => {
                if end {
                    self.txn = None;
                }
                self.send(reply);
            }
            ChunkOutcome::Append if !last => self.send(reply::chunk_received(size)),
            ChunkOutcome::Append => {
                let (body, memory) = match self.txn.as_mut().and_then(|t| t.bdat.take()) {
                    Some(b) => (b.body, b.memory),
                    None => (Vec::new(), Reservation::empty(&self.body_budget)),
                };
                self.accept_body(body, memory);
            }
        }
    }

    /// The whole message is in: refuse smuggling-shaped bodies and, on submission, header
    /// senders the user may not use; else hand it to the shell.
    pub(super) fn accept_body(&mut self, body: Vec<u8>, memory: Reservation) {
        let Some(txn) = self.txn.take() else {
            return self.send(reply::MAIL_FIRST);
        };
        if wire::has_bare_line_ending(&body) {
            return self.send(reply::BARE_LINE_ENDING);
        }
        if let Some(identity) = &self.auth
            && let Err(problem) = check_header_senders(&body, &identity.addresses)
        {
            return self.send(reply::forbidden_header_sender(&problem.to_string()));
        }
        self.transactions += 1;
        let id = format!("{}.{}", self.session_id, self.transactions);
        let ehlo = matches!(self.hello, Hello::Ehlo(_));
        let helo = match &self.hello {
            Hello::Helo(h) | Hello::Ehlo(h) => h.clone(),
            Hello::None => String::new(),
        };
        let trace = TraceInfo {
            hostname: self.cfg.hostname.clone(),
            helo,
            peer: self.peer,
            protocol: trace::with_keyword(ehlo, self.tls, self.auth.is_some(), txn.smtputf8),
            id: id.clone(),
        };
        self.awaiting = Some(Awaiting::Delivery { id: id.clone() });
        self.ready = Some(Event::Deliver(Box::new(Delivery {
            id,
            sender: txn.sender,
            local: txn.local,
            remote: txn.remote,
            body,
            trace,
            inbound_mx: self.cfg.kind == ListenerKind::Mx && self.auth.is_none(),
            authenticated: self
                .auth
                .as_ref()
                .and_then(|a| a.addresses.first().cloned()),
            account: self.auth.as_ref().map(|a| a.account),
            hold: txn.hold,
            memory,
        })));
    }
}
