//! RFC 5256 threading. REFERENCES (§2.2, all six steps: the parent/child tree from
//! Message-ID and References, dummies pruned, root threads merged by base subject, siblings
//! sorted by sent date). ORDEREDSUBJECT groups by base subject.

use std::collections::{BTreeMap, HashMap};

pub(crate) struct ThreadMsg {
    /// Sequence number or UID to print.
    pub number: u32,
    pub message_id: Option<String>,
    pub references: Vec<String>,
    /// RFC 5256 §2.1 base subject.
    pub subject: String,
    /// Whether base-subject extraction removed a reply/forward marker (RFC 5256 §2.1:
    /// `Re:`, `Fwd:`, a `(fwd)` trailer or a `[fwd: …]` wrapper), for step 5.
    pub is_reply: bool,
    pub date: i64,
}

/// Deepest nesting followed while walking a thread (input is hostile: References chains
/// can be long; beyond this depth the walk stops instead of recursing further).
const MAX_DEPTH: usize = 256;

struct Node {
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Forest<'a> {
    msgs: &'a [ThreadMsg],
    nodes: Vec<Node>,
}

impl Forest<'_> {
    fn add(&mut self) -> usize {
        self.nodes.push(Node {
            msg: None,
            parent: None,
            children: Vec::new(),
        });
        self.nodes.len() - 1
    }

    /// Is `b` reachable from `a` going down (or `a == b`)? Parents are followed up from
    /// `b`, which is the same question on a forest.
    fn reaches(&self, a: usize, b: usize) -> bool {
        let mut cur = Some(b);
        let mut steps = 0;
        while let Some(n) = cur {
            if n == a {
                return true;
            }
            steps += 1;
            if steps > self.nodes.len() {
                return true; // cannot happen on a forest; refuse the link if it does
            }
            cur = self.nodes[n].parent;
        }
        false
    }

    fn unlink(&mut self, child: usize) {
        if let Some(old) = self.nodes[child].parent.take() {
            self.nodes[old].children.retain(|&c| c != child);
        }
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.unlink(child);
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }

    fn is_dummy(&self, n: usize) -> bool {
        self.nodes[n].msg.is_none()
    }

    /// The sent date of a node: its message's, or (a dummy) its first child's, the
    /// children being sorted already (RFC 5256 §2.2 step 6).
    fn date(&self, n: usize) -> (i64, u32) {
        let mut cur = n;
        for _ in 0..MAX_DEPTH {
            if let Some(m) = self.nodes[cur].msg {
                return (self.msgs[m].date, self.msgs[m].number);
            }
            match self.nodes[cur].children.first() {
                Some(&c) => cur = c,
                None => break,
            }
        }
        (i64::MAX, u32::MAX)
    }

    /// The message that gives a root its subject: its own, or a dummy's first child's
    /// (RFC 5256 §2.2 step 5B).
    fn subject_msg(&self, n: usize) -> Option<&ThreadMsg> {
        let mut cur = n;
        for _ in 0..MAX_DEPTH {
            if let Some(m) = self.nodes[cur].msg {
                return self.msgs.get(m);
            }
            cur = *self.nodes[cur].children.first()?;
        }
        None
    }

    /// RFC 5256 §2.2 step 4: dummies without children go; dummies with children are
    /// replaced by them, except at the root where that is done only for a single child.
    /// Returns the node's replacement list.
    fn prune(&mut self, n: usize, at_root: bool, depth: usize) -> Vec<usize> {
        if depth < MAX_DEPTH {
            let kids = std::mem::take(&mut self.nodes[n].children);
            let mut kept = Vec::with_capacity(kids.len());
            for c in kids {
                kept.extend(self.prune(c, false, depth + 1));
            }
            for &c in &kept {
                self.nodes[c].parent = Some(n);
            }
            self.nodes[n].children = kept;
        }
        if !self.is_dummy(n) {
            return vec![n];
        }
        let kids = self.nodes[n].children.clone();
        match kids.len() {
            0 => Vec::new(),
            1 => kids,
            _ if !at_root => kids,
            _ => vec![n],
        }
    }

    /// Sorts every set of siblings by sent date, youngest sets first (RFC 5256 §2.2 step 6).
    fn sort(&mut self, n: usize, depth: usize) {
        if depth >= MAX_DEPTH {
            return;
        }
        let kids = self.nodes[n].children.clone();
        for &c in &kids {
            self.sort(c, depth + 1);
        }
        let mut kids = kids;
        kids.sort_by_key(|&c| self.date(c));
        self.nodes[n].children = kids;
    }

    fn render(&self, n: usize, depth: usize, s: &mut String) {
        if let Some(m) = self.nodes[n].msg {
            s.push_str(&self.msgs[m].number.to_string());
        }
        if depth > MAX_DEPTH {
            return;
        }
        let kids = &self.nodes[n].children;
        match kids.len() {
            0 => {}
            1 if !self.is_dummy(n) => {
                s.push(' ');
                self.render(kids[0], depth + 1, s);
            }
            _ => {
                if !self.is_dummy(n) {
                    s.push(' ');
                }
                for &k in kids {
                    s.push('(');
                    self.render(k, depth + 1, s);
                    s.push(')');
                }
            }
        }
    }
}

/// RFC 5256 §2.2 THREAD=REFERENCES, steps 1–6.
pub(crate) fn references(msgs: Vec<ThreadMsg>) -> String {
    let mut f = Forest {
        msgs: &msgs,
        nodes: Vec::new(),
    };
    let mut by_id: HashMap<String, usize> = HashMap::new();
    // Step 1.
    for (mi, m) in msgs.iter().enumerate() {
        // 1A: the message's container; a duplicate Message-ID (or none) gets a unique one.
        let own = match &m.message_id {
            Some(id) => match by_id.get(id) {
                Some(&n) if f.nodes[n].msg.is_none() => n,
                Some(_) => f.add(),
                None => {
                    let n = f.add();
                    by_id.insert(id.clone(), n);
                    n
                }
            },
            None => f.add(),
        };
        f.nodes[own].msg = Some(mi);
        // 1B: link the References in order, parent before child. Existing links stay;
        // a link is not added when either end is reachable from the other (a loop).
        let mut prev: Option<usize> = None;
        for r in &m.references {
            let n = match by_id.get(r) {
                Some(&n) => n,
                None => {
                    let n = f.add();
                    by_id.insert(r.clone(), n);
                    n
                }
            };
            if let Some(p) = prev
                && p != n
                && f.nodes[n].parent.is_none()
                && !f.reaches(n, p)
                && !f.reaches(p, n)
            {
                f.link(p, n);
            }
            prev = Some(n);
        }
        // 1C: the message's parent is the last reference, replacing a parent presumed
        // from other messages' References; none without references. Not when that would
        // make a loop (then the message stays a root).
        f.unlink(own);
        if let Some(p) = prev
            && !f.reaches(own, p)
        {
            f.link(p, own);
        }
    }
    // Step 2: the root set.
    let roots: Vec<usize> = (0..f.nodes.len())
        .filter(|&n| f.nodes[n].parent.is_none())
        .collect();
    // Step 4: prune dummies.
    let mut pruned: Vec<usize> = Vec::new();
    for r in roots {
        pruned.extend(f.prune(r, true, 0));
    }
    for &r in &pruned {
        f.nodes[r].parent = None;
    }
    for &r in &pruned {
        f.sort(r, 0);
    }
    // Step 5: merge roots by base subject.
    let roots = merge_by_subject(&mut f, pruned);
    // Step 6: sort (merging may have added children), roots by date too.
    let mut roots = roots;
    for &r in &roots {
        f.sort(r, 0);
    }
    roots.sort_by_key(|&r| f.date(r));
    let mut out = String::new();
    for r in roots {
        out.push('(');
        f.render(r, 0, &mut out);
        out.push(')');
    }
    out
}

/// RFC 5256 §2.2 step 5: roots whose threads share a base subject are merged.
fn merge_by_subject(f: &mut Forest<'_>, roots: Vec<usize>) -> Vec<usize> {
    let key = |f: &Forest<'_>, n: usize| -> Option<(String, bool)> {
        let m = f.subject_msg(n)?;
        (!m.subject.is_empty()).then(|| (m.subject.to_ascii_lowercase(), m.is_reply))
    };
    // 5B/5C: one thread per subject: prefer a dummy, then one that is not a reply.
    let mut table: HashMap<String, usize> = HashMap::new();
    for &r in &roots {
        let Some((subject, reply)) = key(f, r) else {
            continue;
        };
        match table.get(&subject).copied() {
            None => {
                table.insert(subject, r);
            }
            Some(old) => {
                let old_reply = f.subject_msg(old).is_some_and(|m| m.is_reply);
                if (f.is_dummy(r) && !f.is_dummy(old)) || (old_reply && !reply) {
                    table.insert(subject, r);
                }
            }
        }
    }
    // 5D: merge every other root with the same subject into the table's thread.
    let mut gone: std::collections::HashSet<usize> = std::collections::HashSet::new();
    let mut added: Vec<usize> = Vec::new();
    for &r in &roots {
        let Some((subject, reply)) = key(f, r) else {
            continue;
        };
        let Some(&t) = table.get(&subject) else {
            continue;
        };
        if t == r {
            continue;
        }
        let table_reply = f.subject_msg(t).is_some_and(|m| m.is_reply);
        match (f.is_dummy(t), f.is_dummy(r)) {
            // (i) both dummies: r's children join t.
            (true, true) => {
                for c in f.nodes[r].children.clone() {
                    f.link(t, c);
                }
                gone.insert(r);
            }
            // (ii) one dummy: the other becomes its child.
            (true, false) => {
                f.link(t, r);
                gone.insert(r);
            }
            (false, true) => {
                f.link(r, t);
                gone.insert(t);
                table.insert(subject, r);
            }
            (false, false) => {
                if !table_reply && reply {
                    // (iii) a reply joins the original as its child.
                    f.link(t, r);
                    gone.insert(r);
                } else {
                    // (iv) otherwise both become children of a new dummy.
                    let d = f.add();
                    f.link(d, t);
                    f.link(d, r);
                    gone.insert(t);
                    gone.insert(r);
                    added.push(d);
                    table.insert(subject, d);
                }
            }
        }
    }
    roots
        .into_iter()
        .chain(added)
        .filter(|r| !gone.contains(r) && f.nodes[*r].parent.is_none())
        .collect()
}

/// RFC 5256 ORDEREDSUBJECT: threads by base subject, each ordered by date; later
/// messages are children of the first.
pub(crate) fn ordered_subject(mut msgs: Vec<ThreadMsg>) -> String {
    msgs.sort_by_key(|m| (m.date, m.number));
    let mut groups: BTreeMap<String, Vec<&ThreadMsg>> = BTreeMap::new();
    for m in &msgs {
        // RFC 5256 §2.1: base subjects compare with i;ascii-casemap.
        groups
            .entry(m.subject.to_ascii_lowercase())
            .or_default()
            .push(m);
    }
    let mut threads: Vec<&Vec<&ThreadMsg>> = groups.values().collect();
    threads.sort_by_key(|g| g.first().map(|m| (m.date, m.number)));
    let mut out = String::new();
    for g in threads {
        let nums: Vec<String> = g.iter().map(|m| m.number.to_string()).collect();
        match nums.len() {
            0 => {}
            1 | 2 => out.push_str(&format!("({})", nums.join(" "))),
            _ => {
                let rest: String = nums[1..].iter().map(|n| format!("({n})")).collect();
                out.push_str(&format!("({} {rest})", nums[0]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(number: u32, id: &str, refs: &[&str], date: i64) -> ThreadMsg {
        ThreadMsg {
            number,
            message_id: Some(id.into()),
            references: refs.iter().map(|s| s.to_string()).collect(),
            // Distinct subjects: these tests are about References (step 5 merges by subject).
            subject: format!("s{number}"),
            is_reply: false,
            date,
        }
    }

    fn with_subject(mut m: ThreadMsg, subject: &str) -> ThreadMsg {
        let (base, reply) = crate::message::base_subject_reply(subject);
        m.subject = base;
        m.is_reply = reply;
        m
    }

    #[test]
    fn references_threads_replies_under_their_parents() {
        let msgs = vec![
            msg(1, "a", &[], 1),
            msg(2, "b", &["a"], 2),
            msg(3, "c", &["a"], 3),
            msg(4, "d", &[], 4),
            msg(5, "e", &["a", "b"], 5),
        ];
        assert_eq!(references(msgs), "(1 (2 5)(3))(4)");
    }

    #[test]
    fn missing_parent_becomes_a_dummy_root() {
        let msgs = vec![msg(1, "x", &["gone"], 1), msg(2, "y", &["gone"], 2)];
        assert_eq!(references(msgs), "((1)(2))");
    }

    #[test]
    fn reference_loops_are_broken_as_step_1_reads() {
        // 1C: a's parent is b; b's parent would be a: a loop, so b stays a root.
        let msgs = vec![msg(1, "a", &["b"], 1), msg(2, "b", &["a"], 2)];
        assert_eq!(references(msgs), "(2 1)");
        // 1C throws away the parent presumed from another message's References: b was
        // put under c by message 1, its own References name nothing, so it is a root.
        let msgs = vec![msg(1, "a", &["c", "b"], 1), msg(2, "b", &[], 2)];
        assert_eq!(references(msgs), "(2 1)");
        // 1B: a link that would close a loop is not added.
        let msgs = vec![msg(1, "x", &["p", "q"], 1), msg(2, "y", &["q", "p"], 2)];
        assert_eq!(references(msgs), "((1)(2))");
    }

    #[test]
    fn step_5_merges_roots_by_base_subject() {
        let s = |m: ThreadMsg, subject: &str| with_subject(m, subject);
        // (iii) a reply whose parent is unknown joins the original by subject.
        let msgs = vec![
            s(msg(1, "a", &[], 1), "Lunch"),
            s(msg(2, "b", &["gone"], 2), "Re: Lunch"),
            s(msg(3, "c", &[], 3), "Other"),
        ];
        assert_eq!(references(msgs), "(1 2)(3)");
        // (iv) two originals with one subject: a dummy holds both.
        let msgs = vec![
            s(msg(1, "a", &[], 1), "Report"),
            s(msg(2, "b", &[], 2), "report"),
        ];
        assert_eq!(references(msgs), "((1)(2))");
        // (ii) a dummy root (two replies to a missing parent) takes the original.
        let msgs = vec![
            s(msg(1, "x", &["gone"], 1), "Re: Plan"),
            s(msg(2, "y", &["gone"], 2), "Re: Plan"),
            s(msg(3, "z", &[], 3), "Plan"),
        ];
        assert_eq!(references(msgs), "((1)(2)(3))");
        // Empty subjects are never merged.
        let msgs = vec![s(msg(1, "a", &[], 1), ""), s(msg(2, "b", &[], 2), "Re:")];
        assert_eq!(references(msgs), "(1)(2)");
    }
}
