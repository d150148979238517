//! The reply side of the router: replies filed into their entries (a seat's
//! replies come in the order its commands were written), redirects and
//! lost nodes turned into retries, split and fan-out replies combined, and
//! finished entries handed on to the client in its order.

use super::*;

impl ClusterRouter {
    /// Files the kept replies into their entries and hands on, in client
    /// order, those that are done, until the client has enough output.
    pub fn deliver(&mut self, sink: &mut impl ReplySink) -> Result<(), LinkLost> {
        while !sink.full() {
            if let Some((tag, reply)) = self.backlog.pop_front() {
                self.file(tag, reply)?;
            }
            self.hand_on(sink)?;
            if self.backlog.is_empty() {
                break;
            }
        }
        self.flush();
        Ok(())
    }

    fn hand_on(&mut self, sink: &mut impl ReplySink) -> Result<(), LinkLost> {
        while self.entries.front().is_some_and(|e| e.reply.is_some()) && !sink.full() {
            let Some(e) = self.entries.pop_front() else {
                break;
            };
            self.first += 1;
            if let Some(Some(reply)) = e.reply {
                let ty = reply.first().copied().unwrap_or(0);
                sink.frame(&reply, ty, false)
                    .map_err(|_| LinkLost::Desync)?;
            }
        }
        Ok(())
    }

    /// One message from seat `tag`.
    fn file(&mut self, tag: u32, reply: PoolReply) -> Result<(), LinkLost> {
        let i = usize::try_from(tag).unwrap_or(usize::MAX);
        match reply {
            PoolReply::Frames { data, frames } => {
                let mut start = 0;
                for (end, _) in frames {
                    let mut frame = data.slice(start..end);
                    if let Some(mut front) = self.seats.get_mut(i).and_then(|s| s.partial.take()) {
                        front.extend_from_slice(&frame);
                        frame = front.freeze();
                    }
                    self.replies.taken(end - start);
                    start = end;
                    self.frame(i, frame)?;
                }
            }
            PoolReply::Part { data, .. } => {
                self.replies.taken(data.len());
                if let Some(s) = self.seats.get_mut(i) {
                    s.partial
                        .get_or_insert_with(BytesMut::new)
                        .extend_from_slice(&data);
                }
            }
            PoolReply::Failed { commands, lost } => {
                self.topology.request_refresh();
                if let Some(s) = self.seats.get_mut(i) {
                    s.partial = None;
                }
                for _ in 0..commands {
                    let Some(id) = self.seats.get_mut(i).and_then(|s| s.expect.pop_front()) else {
                        return Err(LinkLost::Desync);
                    };
                    self.lost(id, lost);
                }
            }
            PoolReply::Overflow => return Err(LinkLost::ReplyLimit),
        }
        Ok(())
    }

    /// Entry `id`'s connection went away: sent again later if that is safe.
    fn lost(&mut self, id: u64, written: bool) {
        let Some(e) = self.entry_mut(id) else { return };
        if (!written || e.reads_only) && e.retries < MAX_RETRIES {
            e.retries += 1;
            self.retries.push_back((Instant::now() + RETRY_AFTER, id));
            return;
        }
        let reply: &[u8] = if written {
            crate::conn::replies::UPSTREAM_LOST
        } else {
            crate::conn::replies::UPSTREAM_UNAVAILABLE
        };
        self.done(id, Bytes::from_static(reply));
    }

    /// A whole frame from seat `i`.
    fn frame(&mut self, i: usize, frame: Bytes) -> Result<(), LinkLost> {
        let Some(&id) = self.seats.get(i).and_then(|s| s.expect.front()) else {
            return Err(LinkLost::Desync);
        };
        let replying = self.seats[i].addr.clone();
        let redirect = redirect_of(&frame, &replying);
        let Some(e) = self.entry_mut(id) else {
            return Err(LinkLost::Desync);
        };
        if e.skipped < e.skip {
            e.skipped += 1;
            if e.redirect_seen.is_none() {
                e.redirect_seen = redirect;
            }
            return Ok(());
        }
        // A transaction whose commands were redirected: its EXEC aborted.
        let redirect = e.redirect_seen.take().or(redirect);
        let followed = redirect.filter(|_| e.redirects < MAX_REDIRECTS);
        if followed.is_some() {
            e.redirects += 1;
        }
        let in_unit = e.base_skip > 0;
        self.seats[i].expect.pop_front();
        let Some(redirect) = followed else {
            self.done(id, frame);
            return Ok(());
        };
        match redirect {
            Redirect::Moved(slot, addr) => {
                self.metrics.upstream_redirect("moved");
                self.topology.moved(slot, &addr);
                self.resend(id, &addr, false);
            }
            Redirect::Ask(_, addr) if !in_unit => {
                self.metrics.upstream_redirect("ask");
                self.resend(id, &addr, true);
            }
            // TRYAGAIN, or an ASK for a transaction (ASKING covers one command).
            _ => self.retries.push_back((Instant::now() + RETRY_AFTER, id)),
        }
        Ok(())
    }

    /// Entry `id` answered `reply` (the upstream's, or the proxy's).
    fn done(&mut self, id: u64, reply: Bytes) {
        let Some(e) = self.entry_mut(id) else { return };
        match &mut e.shape {
            Shape::Plain => e.reply = Some(Some(reply)),
            Shape::Scan { index, masters } => {
                let made = scan_reply(&reply, *index, *masters).map(Bytes::from);
                e.reply = Some(Some(made.unwrap_or(reply)));
            }
            Shape::Lead(group) => {
                group.replies[0] = Some(reply);
                self.complete_group(id);
            }
            Shape::Member { lead, index } => {
                let (lead, index) = (*lead, *index);
                e.reply = Some(None);
                if let Some(Entry {
                    shape: Shape::Lead(group),
                    ..
                }) = self.entry_mut(lead)
                {
                    if let Some(r) = group.replies.get_mut(index) {
                        *r = Some(reply);
                    }
                }
                self.complete_group(lead);
            }
        }
    }

    /// The lead `lead` gets the combined reply once every part answered.
    fn complete_group(&mut self, lead: u64) {
        let Some(e) = self.entry_mut(lead) else {
            return;
        };
        let Shape::Lead(group) = &e.shape else { return };
        if group.replies.iter().any(Option::is_none) {
            return;
        }
        let replies: Vec<&[u8]> = group.replies.iter().flatten().map(|b| &b[..]).collect();
        let combined = merge::combine(group.combine, &replies, &group.positions, group.total);
        e.reply = Some(Some(Bytes::from(combined)));
    }
}

/// `-MOVED slot host:port`, `-ASK slot host:port` or `-TRYAGAIN ...`; an
/// address with no host (`:port`) is on the host of the node that replied.
fn redirect_of(frame: &[u8], replying: &UpstreamAddr) -> Option<Redirect> {
    if frame.first() != Some(&b'-') {
        return None;
    }
    if frame.starts_with(b"-TRYAGAIN") {
        return Some(Redirect::TryAgain);
    }
    let line = std::str::from_utf8(frame.get(1..frame.len().checked_sub(2)?)?).ok()?;
    let mut words = line.split(' ');
    let kind = words.next()?;
    let slot: u16 = words.next()?.parse().ok()?;
    let target = words.next()?;
    let target = match target.strip_prefix(':') {
        Some(port) => {
            let UpstreamAddr::Tcp(from) = replying else {
                return None;
            };
            let host = from.rsplit_once(':').map_or(from.as_str(), |(h, _)| h);
            format!("{host}:{port}")
        }
        None => target.to_string(),
    };
    let addr = UpstreamAddr::Tcp(target);
    match kind {
        "MOVED" => Some(Redirect::Moved(slot, addr)),
        "ASK" => Some(Redirect::Ask(slot, addr)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_replies() {
        let from = UpstreamAddr::Tcp("10.0.0.1:7000".into());
        assert_eq!(
            redirect_of(b"-MOVED 3999 127.0.0.1:6381\r\n", &from),
            Some(Redirect::Moved(
                3999,
                UpstreamAddr::Tcp("127.0.0.1:6381".into())
            ))
        );
        assert_eq!(
            redirect_of(b"-ASK 1 :7002\r\n", &from),
            Some(Redirect::Ask(1, UpstreamAddr::Tcp("10.0.0.1:7002".into())))
        );
        assert_eq!(
            redirect_of(
                b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
                &from
            ),
            Some(Redirect::TryAgain)
        );
        assert_eq!(redirect_of(b"-ERR MOVED 1 x:1\r\n", &from), None);
        assert_eq!(redirect_of(b"+MOVED 1 x:1\r\n", &from), None);
    }
}
